/** The audit of the operations worker's tasks (migration 0013, docs/operations.md). Operator-only: used with asSystem. */
import type { OpsResultMessage, RequestedBy } from '../../../shared/ops/schemas.ts';
import type { Tx } from '../types.ts';

export interface OpsTaskRow {
  id: string;
  kind: 'system.update' | 'system.check';
  params: Record<string, unknown>;
  status: 'queued' | 'running' | 'done' | 'failed' | 'interrupted';
  requested_by: RequestedBy;
  requested_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  worker_id: string | null;
  steps: OpsResultMessage['steps'];
  details: OpsResultMessage['details'] | null;
  error: OpsResultMessage['error'] | null;
}

export async function insertOpsTask(tx: Tx, t: { id: string; kind: string; params: unknown; requestedBy: RequestedBy; requestedAt: string }): Promise<void> {
  await tx.query('INSERT INTO ops_tasks (id, kind, params, status, requested_by, requested_at) VALUES ($1, $2, $3, \'queued\', $4, $5)',
    [t.id, t.kind, JSON.stringify(t.params), JSON.stringify(t.requestedBy), t.requestedAt]);
}

export async function deleteOpsTask(tx: Tx, id: string): Promise<void> {
  await tx.query('DELETE FROM ops_tasks WHERE id = $1 AND status = \'queued\'', [id]);
}

/** Records a result; false when no row has the id (a task the API never enqueued: pushed by hand). */
export async function recordOpsResult(tx: Tx, r: OpsResultMessage): Promise<boolean> {
  const rows = await tx.query<{ id: string }>(`UPDATE ops_tasks SET status = $2, started_at = $3, finished_at = $4, worker_id = $5,
      steps = $6, details = $7, error = $8 WHERE id = $1 RETURNING id`,
  [r.taskId, r.status, r.startedAt ?? null, r.finishedAt, r.workerId, JSON.stringify(r.steps), r.details ? JSON.stringify(r.details) : null, r.error ? JSON.stringify(r.error) : null]);
  return rows.length > 0;
}

export async function listOpsTasks(tx: Tx, limit: number): Promise<OpsTaskRow[]> {
  return tx.query<OpsTaskRow>('SELECT * FROM ops_tasks ORDER BY requested_at DESC, id DESC LIMIT $1', [limit]);
}

export async function findOpsTask(tx: Tx, id: string): Promise<OpsTaskRow | undefined> {
  return (await tx.query<OpsTaskRow>('SELECT * FROM ops_tasks WHERE id = $1', [id]))[0];
}
