/**
 * Webhook deliveries: when the results listener records a job's final status it calls `onJobFinal(orgId, result)`;
 * every webhook of the organisation subscribed to the event gets the result POSTed, signed
 * (`X-SRI-Signature: sha256=<hex HMAC of "<timestamp>.<body>">`, `X-SRI-Timestamp`), retried with exponential
 * backoff until `maxAttempts`, and each delivery is recorded in webhook_deliveries with its status.
 *
 * What must hold:
 *   - `onJobFinal` returns at once: recording results never waits on a receiver.
 *   - One webhook receives its deliveries in the order the results were recorded: a per-organisation intake chain
 *     keeps the order of `onJobFinal` calls, and a per-webhook chain sends one delivery at a time — a delivery
 *     waiting for its retry holds back the later ones of that webhook (not those of other webhooks).
 *   - A webhook gets one delivery per job attempt (unique row), whoever calls twice.
 *   - A deleted webhook stops receiving, even mid-retry; `close()` abandons waiting retries (their rows stay
 *     `retrying`).
 * Limits (docs/webhooks.md): deliveries live in this process; those still open when it stops are not resumed.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../shared/logger.ts';
import type { JobStatus, ResultMessage } from '../../shared/schemas.ts';
import type { Database } from '../db/index.ts';
import { findWebhook, insertDelivery, updateDelivery, webhooksFor, type DeliveryRow } from '../db/queries/webhooks.ts';
import { decryptSecret, signWebhook } from './secrets.ts';

export const WEBHOOK_EVENTS = ['job.done', 'job.failed', 'job.dead', 'job.cancelled'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

const EVENT_OF: Partial<Record<JobStatus, WebhookEvent>> = {
  done: 'job.done', failed: 'job.failed', dead: 'job.dead', cancelled: 'job.cancelled',
};

/** The event a result announces; undefined for statuses that are not final. */
export function eventOf(status: JobStatus): WebhookEvent | undefined {
  return EVENT_OF[status];
}

/** Characters of a receiver's error kept in last_error. */
const MAX_ERROR_CHARS = 500;

export interface WebhookDelivererOptions {
  db: Database;
  logger: Logger;
  /** Key material the stored secrets are encrypted with (JWT_SECRET). */
  masterSecret: string;
  /** Attempts per delivery, the first included. @default 5 */
  maxAttempts?: number;
  /** Wait before the 2nd attempt (ms); doubled each time. @default 1000 */
  retryBaseMs?: number;
  /** Longest wait between two attempts (ms). @default 300000 */
  retryMaxMs?: number;
  /** Longest one POST may take (ms). @default 10000 */
  timeoutMs?: number;
}

export class WebhookDeliverer {
  private readonly db: Database;
  private readonly logger: Logger;
  private readonly masterSecret: string;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly timeoutMs: number;
  /** Per organisation: accepting results (listing webhooks, inserting rows) in call order. */
  private readonly intake = new Map<string, Promise<void>>();
  /** Per webhook: its deliveries, one at a time. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();

  constructor(opts: WebhookDelivererOptions) {
    this.db = opts.db;
    this.logger = opts.logger;
    this.masterSecret = opts.masterSecret;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.retryBaseMs = Math.max(0, opts.retryBaseMs ?? 1000);
    this.retryMaxMs = Math.max(this.retryBaseMs, opts.retryMaxMs ?? 300_000);
    this.timeoutMs = Math.max(1, opts.timeoutMs ?? 10_000);
  }

  /** For the results listener: call after a job's final status is recorded. Never throws, never waits. */
  readonly onJobFinal = (orgId: string, result: ResultMessage): void => {
    if (this.stopping.signal.aborted) return;
    const event = eventOf(result.status);
    if (!event) return;
    const prev = this.intake.get(orgId) ?? Promise.resolve();
    const next = prev.then(() => this.accept(orgId, event, result))
      .catch((err: unknown) => this.logger.error({ err, orgId, jobId: result.jobId }, 'could not queue webhook deliveries'));
    this.intake.set(orgId, next);
    void next.finally(() => { if (this.intake.get(orgId) === next) this.intake.delete(orgId); });
  };

  /** Resolves when every accepted delivery has finished (delivered, failed, or abandoned by close). */
  async idle(): Promise<void> {
    while (this.intake.size > 0 || this.chains.size > 0) {
      await Promise.allSettled([...this.intake.values(), ...this.chains.values()]);
    }
  }

  /** Stops: no new deliveries, waiting retries are abandoned, a POST in flight is aborted. */
  async close(): Promise<void> {
    this.stopping.abort();
    await this.idle();
  }

  private async accept(orgId: string, event: WebhookEvent, result: ResultMessage): Promise<void> {
    const created = await this.db.withOrg(orgId, async (tx) => {
      const rows: DeliveryRow[] = [];
      for (const hook of await webhooksFor(tx, event)) {
        const id = randomUUID();
        const payload = JSON.stringify({ id, event, webhookId: hook.id, createdAt: new Date().toISOString(), result });
        const row = await insertDelivery(tx, { id, orgId, webhookId: hook.id, jobId: result.jobId, jobAttempt: result.attempt, event, payload });
        if (row) rows.push(row);
      }
      return rows;
    });
    for (const row of created) this.enqueue(row);
  }

  private enqueue(row: DeliveryRow): void {
    const prev = this.chains.get(row.webhook_id) ?? Promise.resolve();
    const next = prev.then(() => this.deliver(row))
      .catch((err: unknown) => this.logger.error({ err, deliveryId: row.id, webhookId: row.webhook_id }, 'webhook delivery failed unexpectedly'));
    this.chains.set(row.webhook_id, next);
    void next.finally(() => { if (this.chains.get(row.webhook_id) === next) this.chains.delete(row.webhook_id); });
  }

  private backoffMs(attempts: number): number {
    return Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** (attempts - 1));
  }

  private async deliver(row: DeliveryRow): Promise<void> {
    const log = { deliveryId: row.id, webhookId: row.webhook_id, orgId: row.org_id, jobId: row.job_id, event: row.event };
    let attempts = row.attempts;
    while (!this.stopping.signal.aborted) {
      // Read before every attempt: a webhook deleted meanwhile (its deliveries go with it) gets nothing more.
      const hook = await this.db.withOrg(row.org_id, (tx) => findWebhook(tx, row.webhook_id));
      if (!hook) return;
      const record = (u: Parameters<typeof updateDelivery>[2]) => this.db.withOrg(row.org_id, (tx) => updateDelivery(tx, row.id, u));
      let secret: string;
      try {
        secret = decryptSecret(this.masterSecret, hook.secret_enc);
      } catch {
        await record({ status: 'failed', attempts, lastError: 'the webhook\'s secret cannot be decrypted (JWT_SECRET changed?); create the webhook again', responseStatus: null, nextAttemptAt: null });
        this.logger.error(log, 'webhook secret unreadable; delivery failed');
        return;
      }
      attempts++;
      const timestamp = String(Math.floor(Date.now() / 1000));
      let responseStatus: number | null = null;
      let error: string | null = null;
      try {
        const res = await fetch(hook.url, {
          method: 'POST',
          redirect: 'manual',
          signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.stopping.signal]),
          headers: {
            'content-type': 'application/json',
            'user-agent': 'sri-webhooks/1',
            'x-sri-event': row.event,
            'x-sri-delivery': row.id,
            'x-sri-timestamp': timestamp,
            'x-sri-signature': signWebhook(secret, timestamp, row.payload),
          },
          body: row.payload,
        });
        responseStatus = res.status;
        const text = await res.text().catch(() => '');
        if (res.status < 200 || res.status > 299) error = `HTTP ${res.status}${text ? `: ${text.slice(0, MAX_ERROR_CHARS)}` : ''}`;
      } catch (err) {
        error = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : String((err as Error).cause ?? (err as Error).message);
      }
      if (error === null) {
        await record({ status: 'delivered', attempts, lastError: null, responseStatus, nextAttemptAt: null });
        this.logger.info({ ...log, attempts }, 'webhook delivered');
        return;
      }
      error = error.slice(0, MAX_ERROR_CHARS);
      if (attempts >= this.maxAttempts) {
        await record({ status: 'failed', attempts, lastError: error, responseStatus, nextAttemptAt: null });
        this.logger.warn({ ...log, attempts, error }, 'webhook delivery failed; no attempts left');
        return;
      }
      const waitMs = this.backoffMs(attempts);
      await record({ status: 'retrying', attempts, lastError: error, responseStatus, nextAttemptAt: new Date(Date.now() + waitMs) });
      this.logger.info({ ...log, attempts, error, waitMs }, 'webhook delivery failed; retrying');
      try {
        await sleep(waitMs, undefined, { signal: this.stopping.signal });
      } catch {
        return; // closing: the row stays `retrying`
      }
    }
  }
}
