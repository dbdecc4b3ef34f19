/** Flows. Every query runs inside withOrg, so row-level security limits it to the caller's organisation. */
import type { RecordMode } from '../../../shared/schemas.ts';
import type { Tx } from '../types.ts';

export interface FlowRow {
  id: string;
  org_id: string;
  provider_id: string;
  version: string;
  name: string;
  description: string | null;
  steps: unknown[];
  script: string;
  script_hash: string;
  signature: string;
  script_key: string;
  active: boolean;
  /** How many times a job of this flow may run; NULL = the queue's default. A run's own maxAttempts wins. */
  max_attempts: number | null;
  /** Recordings of its jobs' pages (0017_record_mode.sql); NULL = not set (none). A run's own record wins. */
  record: RecordMode | null;
  created_at: Date;
}

const COLUMNS = 'id, org_id, provider_id, version, name, description, steps, script, script_hash, signature, script_key, active, max_attempts, record, created_at';

export async function insertFlow(tx: Tx, f: Omit<FlowRow, 'created_at' | 'active'> & { created_by: string }): Promise<FlowRow> {
  const rows = await tx.query<FlowRow>(`INSERT INTO flows
      (id, org_id, provider_id, version, name, description, steps, script, script_hash, signature, script_key, created_by, max_attempts, record)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14) RETURNING ${COLUMNS}`,
  [f.id, f.org_id, f.provider_id, f.version, f.name, f.description, JSON.stringify(f.steps), f.script, f.script_hash,
    f.signature, f.script_key, f.created_by, f.max_attempts, f.record]);
  return rows[0]!;
}

export async function flowVersionExists(tx: Tx, providerId: string, version: string): Promise<boolean> {
  return (await tx.query('SELECT 1 FROM flows WHERE provider_id = $1 AND version = $2', [providerId, version])).length > 0;
}

export async function listFlows(tx: Tx): Promise<FlowRow[]> {
  return tx.query<FlowRow>(`SELECT ${COLUMNS} FROM flows ORDER BY created_at DESC, id`);
}

export async function findFlow(tx: Tx, id: string): Promise<FlowRow | undefined> {
  return (await tx.query<FlowRow>(`SELECT ${COLUMNS} FROM flows WHERE id = $1`, [id]))[0];
}

export async function findActiveFlow(tx: Tx, providerId: string): Promise<FlowRow | undefined> {
  return (await tx.query<FlowRow>(`SELECT ${COLUMNS} FROM flows WHERE provider_id = $1 AND active`, [providerId]))[0];
}

/** Makes `id` the one active flow of its provider; the caller's transaction makes both updates one step. */
export async function activateFlow(tx: Tx, flow: FlowRow): Promise<FlowRow> {
  await tx.query('UPDATE flows SET active = false WHERE provider_id = $1 AND active AND id <> $2', [flow.provider_id, flow.id]);
  return (await tx.query<FlowRow>(`UPDATE flows SET active = true WHERE id = $1 RETURNING ${COLUMNS}`, [flow.id]))[0]!;
}
