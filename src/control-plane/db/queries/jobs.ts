/** Jobs: created by POST /api/run, completed by the results listener. */
import type { ResultFiles } from '../../../shared/schemas.ts';
import type { Tx } from '../types.ts';

export const FINAL_STATUSES = ['done', 'failed', 'cancelled', 'dead'] as const;

export interface JobRow {
  id: string;
  org_id: string;
  user_id: string;
  provider_id: string;
  flow_id: string;
  flow_version: string;
  status: string;
  attempt: number;
  idempotency_key: string | null;
  request_hash: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  worker_id: string | null;
  error_code: string | null;
  error_message: string | null;
  result: unknown;
  files: ResultFiles | null;
}

const COLUMNS = `id, org_id, user_id, provider_id, flow_id, flow_version, status, attempt, idempotency_key, request_hash,
  created_at, started_at, finished_at, duration_ms, worker_id, error_code, error_message, result, files`;

export async function insertJob(tx: Tx, j: {
  id: string; orgId: string; userId: string; providerId: string; flowId: string; flowVersion: string;
  idempotencyKey?: string; requestHash?: string; metadata?: unknown; traceId: string;
}): Promise<JobRow> {
  return (await tx.query<JobRow>(`INSERT INTO jobs
      (id, org_id, user_id, provider_id, flow_id, flow_version, status, attempt, idempotency_key, request_hash, metadata, trace_id)
    VALUES ($1, $2, $3, $4, $5, $6, 'queued', 1, $7, $8, $9::jsonb, $10) RETURNING ${COLUMNS}`,
  [j.id, j.orgId, j.userId, j.providerId, j.flowId, j.flowVersion, j.idempotencyKey ?? null, j.requestHash ?? null,
    j.metadata === undefined ? null : JSON.stringify(j.metadata), j.traceId]))[0]!;
}

export async function findJobByIdempotencyKey(tx: Tx, key: string): Promise<JobRow | undefined> {
  return (await tx.query<JobRow>(`SELECT ${COLUMNS} FROM jobs WHERE idempotency_key = $1`, [key]))[0];
}

export async function findJob(tx: Tx, id: string): Promise<JobRow | undefined> {
  return (await tx.query<JobRow>(`SELECT ${COLUMNS} FROM jobs WHERE id = $1`, [id]))[0];
}

export async function listJobs(tx: Tx, page: number, pageSize: number): Promise<{ jobs: JobRow[]; total: number }> {
  const jobs = await tx.query<JobRow>(`SELECT ${COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2`,
    [pageSize, (page - 1) * pageSize]);
  const total = (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs'))[0]?.n ?? 0;
  return { jobs, total };
}

export async function failJob(tx: Tx, id: string, code: string, message: string): Promise<void> {
  await tx.query(`UPDATE jobs SET status = 'failed', error_code = $2, error_message = $3, finished_at = now()
    WHERE id = $1 AND status NOT IN ('done', 'failed', 'cancelled', 'dead')`, [id, code, message]);
}

/** Records a result; a job already in a final status is left as it is. Returns false when nothing changed. */
export async function recordResult(tx: Tx, r: {
  id: string; status: string; attempt: number; workerId: string; durationMs: number; finishedAt: string | null;
  errorCode: string | null; errorMessage: string | null; files: ResultFiles; result: unknown;
}): Promise<boolean> {
  const rows = await tx.query(`UPDATE jobs SET status = $2, attempt = $3, worker_id = $4, duration_ms = $5,
      finished_at = $6::timestamptz, error_code = $7, error_message = $8, files = $9::jsonb, result = $10::jsonb
    WHERE id = $1 AND status NOT IN ('done', 'failed', 'cancelled', 'dead') RETURNING id`,
  [r.id, r.status, r.attempt, r.workerId, Math.round(r.durationMs), r.finishedAt, r.errorCode, r.errorMessage,
    JSON.stringify(r.files), r.result === undefined || r.result === null ? null : JSON.stringify(r.result)]);
  return rows.length > 0;
}

/** A non-final status seen in Redis (e.g. running) while no result exists yet. */
export async function recordProgress(tx: Tx, id: string, status: string): Promise<void> {
  await tx.query(`UPDATE jobs SET status = $2, started_at = COALESCE(started_at, now())
    WHERE id = $1 AND status NOT IN ('done', 'failed', 'cancelled', 'dead') AND status <> $2`, [id, status]);
}

/** Jobs not yet final in any organisation, oldest first (for the reconciler; runs asSystem). */
export async function listUnfinishedJobs(tx: Tx, limit: number): Promise<{ id: string; org_id: string }[]> {
  return tx.query(`SELECT id, org_id FROM jobs WHERE status NOT IN ('done', 'failed', 'cancelled', 'dead')
    ORDER BY created_at LIMIT $1`, [limit]);
}
