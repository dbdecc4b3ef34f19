/** An organisation's webhooks and their deliveries (migrations/0003_webhooks.sql). Run inside withOrg: RLS scopes. */
import type { Tx } from '../types.ts';

export interface WebhookRow {
  id: string;
  org_id: string;
  url: string;
  events: string[];
  secret_enc: string;
  created_by: string | null;
  created_at: Date;
}

export type DeliveryStatus = 'pending' | 'retrying' | 'delivered' | 'failed';

export interface DeliveryRow {
  id: string;
  org_id: string;
  webhook_id: string;
  job_id: string;
  job_attempt: number;
  event: string;
  payload: string;
  status: DeliveryStatus;
  attempts: number;
  /**
   * An error class (webhooks/target.ts storedError: `http-status`, `target-refused:loopback`, …), never text from the
   * receiver: the column kept its name so that no migration is needed; rows of earlier versions may hold such text
   * and are shown as `unknown` (describeStoredError).
   */
  last_error: string | null;
  response_status: number | null;
  created_at: Date;
  last_attempt_at: Date | null;
  next_attempt_at: Date | null;
  delivered_at: Date | null;
}

export async function insertWebhook(tx: Tx, w: { id: string; orgId: string; url: string; events: string[]; secretEnc: string; createdBy: string | null }): Promise<WebhookRow> {
  const rows = await tx.query<WebhookRow>(
    `INSERT INTO webhooks (id, org_id, url, events, secret_enc, created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
    [w.id, w.orgId, w.url, w.events, w.secretEnc, w.createdBy]);
  return rows[0]!;
}

export async function listWebhooks(tx: Tx): Promise<WebhookRow[]> {
  return tx.query<WebhookRow>('SELECT * FROM webhooks ORDER BY created_at, id');
}

export async function countWebhooks(tx: Tx): Promise<number> {
  const rows = await tx.query<{ n: number | string }>('SELECT count(*) AS n FROM webhooks');
  return Number(rows[0]?.n ?? 0);
}

export async function findWebhook(tx: Tx, id: string): Promise<WebhookRow | undefined> {
  return (await tx.query<WebhookRow>('SELECT * FROM webhooks WHERE id = $1', [id]))[0];
}

/** Webhooks subscribed to `event` (or to every event with '*'). */
export async function webhooksFor(tx: Tx, event: string): Promise<WebhookRow[]> {
  return tx.query<WebhookRow>(`SELECT * FROM webhooks WHERE $1 = ANY (events) OR '*' = ANY (events) ORDER BY created_at, id`, [event]);
}

export async function deleteWebhook(tx: Tx, id: string): Promise<boolean> {
  return (await tx.query('DELETE FROM webhooks WHERE id = $1 RETURNING id', [id])).length > 0;
}

/** Records a delivery to make; undefined when this webhook already has one for the job's attempt and this event. */
/**
 * One delivery per (webhook, job, attempt, event, occurrence); `occurrence` tells apart several events of one kind in
 * one attempt (each hand-off of job.waiting_for_user: its expiresAt), '' otherwise. Undefined when it exists already.
 */
export async function insertDelivery(tx: Tx, d: { id: string; orgId: string; webhookId: string; jobId: string; jobAttempt: number; event: string; payload: string; occurrence?: string }): Promise<DeliveryRow | undefined> {
  const rows = await tx.query<DeliveryRow>(
    `INSERT INTO webhook_deliveries (id, org_id, webhook_id, job_id, job_attempt, event, payload, occurrence)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (webhook_id, job_id, job_attempt, event, occurrence) DO NOTHING RETURNING *`,
    [d.id, d.orgId, d.webhookId, d.jobId, d.jobAttempt, d.event, d.payload, d.occurrence ?? '']);
  return rows[0];
}

export async function updateDelivery(tx: Tx, id: string, u: {
  status: DeliveryStatus; attempts: number; lastError: string | null; responseStatus: number | null; nextAttemptAt: Date | null;
}): Promise<void> {
  await tx.query(
    `UPDATE webhook_deliveries SET status = $2, attempts = $3, last_error = $4, response_status = $5,
       last_attempt_at = now(), next_attempt_at = $6, delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END
     WHERE id = $1`,
    [id, u.status, u.attempts, u.lastError, u.responseStatus, u.nextAttemptAt?.toISOString() ?? null]);
}

export async function listDeliveries(tx: Tx, webhookId: string, limit: number): Promise<DeliveryRow[]> {
  return tx.query<DeliveryRow>(
    'SELECT * FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2', [webhookId, limit]);
}
