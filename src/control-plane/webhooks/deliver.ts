/**
 * Webhook deliveries: when the results listener records a job's final status it calls `onJobFinal(orgId, result)`;
 * every webhook of the organisation subscribed to the event gets the result POSTed, signed the Standard Webhooks way
 * (`webhook-id`, `webhook-timestamp`, `webhook-signature`; secrets.ts) and, for one more release, with the deprecated
 * `X-SRI-Signature`/`X-SRI-Timestamp`, retried with exponential backoff until `maxAttempts`, and each delivery is
 * recorded in webhook_deliveries with its status.
 *
 * What must hold:
 *   - `onJobFinal` returns at once: recording results never waits on a receiver.
 *   - One webhook receives its deliveries in the order the results were recorded: a per-organisation intake chain
 *     keeps the order of `onJobFinal` calls, and a per-webhook chain sends one delivery at a time — a delivery
 *     waiting for its retry holds back the later ones of that webhook (not those of other webhooks).
 *   - A webhook gets one delivery per job attempt and event (unique row), whoever calls twice: a job that hands off
 *     twice in one attempt announces the first hand-off only.
 *   - A deleted webhook stops receiving, even mid-retry; `close()` abandons waiting retries (their rows stay
 *     `retrying`).
 *   - Every attempt resolves the URL's host again and connects only to addresses the target policy allows, pinned,
 *     following no redirect, reading at most 4 KiB of the answer (target.ts); a delivery records the answer's
 *     status and an error class, never what the receiver said.
 * Limits (docs/webhooks.md): deliveries live in this process; those still open when it stops are not resumed.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../shared/logger.ts';
import type { JobStatus, ResultMessage } from '../../shared/schemas.ts';
import type { Database } from '../db/index.ts';
import { findWebhook, insertDelivery, updateDelivery, webhooksFor, type DeliveryRow } from '../db/queries/webhooks.ts';
import { decryptSecret, signLegacyWebhook, signStandardWebhook } from './secrets.ts';
import { checkedAddresses, DeliveryError, postOnce, storedError, systemResolve, type Resolve } from './target.ts';

export const WEBHOOK_EVENTS = ['job.done', 'job.failed', 'job.dead', 'job.cancelled', 'job.waiting_for_user', 'job.blocked', 'session.expired'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

const EVENT_OF: Partial<Record<JobStatus, WebhookEvent>> = {
  done: 'job.done', failed: 'job.failed', dead: 'job.dead', cancelled: 'job.cancelled',
  // Not final: the job waits for a person in the live view (a hand-off); its result (`handoff`) says why and until when.
  waiting_for_user: 'job.waiting_for_user',
};

/** The event a result announces; undefined for statuses that announce none (queued, running, retrying). */
export function eventOf(status: JobStatus): WebhookEvent | undefined {
  return EVENT_OF[status];
}

/**
 * Every event a result announces: its status's; `job.blocked` for an attempt's outcome that names a blocker (a login
 * wall, CAPTCHA, rate limit, maintenance or access-denied page the worker classified; docs/scripts.md "Blockers") —
 * once per attempt, as every event; and `session.expired` for a job that ended SESSION_EXPIRED (the portal logged the
 * connection out and no login flow could sign in again; docs/sessions.md).
 */
export function eventsOf(result: ResultMessage): WebhookEvent[] {
  const event = eventOf(result.status);
  const blocked = result.blocker !== undefined && result.status !== 'waiting_for_user';
  const expired = result.error?.code === 'SESSION_EXPIRED' && (result.status === 'failed' || result.status === 'dead');
  return [...(event ? [event] : []), ...(blocked ? ['job.blocked' as const] : []), ...(expired ? ['session.expired' as const] : [])];
}

/** Bytes of a receiver's answer read before its socket is destroyed (none of them is kept). */
export const MAX_RESPONSE_BYTES = 4096;

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
  /** Longest one attempt may take (ms), resolving the host included. @default 10000 */
  timeoutMs?: number;
  /** Deliver to loopback and private addresses too (WEBHOOK_ALLOW_PRIVATE); link-local and metadata never. @default false */
  allowPrivate?: boolean;
  /** Resolves webhook host names at each attempt. @default the system resolver (dns.lookup, all addresses) */
  resolve?: Resolve;
  /** Bytes of an answer read before the socket is destroyed. @default 4096 */
  maxResponseBytes?: number;
}

export class WebhookDeliverer {
  private readonly db: Database;
  private readonly logger: Logger;
  private readonly masterSecret: string;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly timeoutMs: number;
  private readonly allowPrivate: boolean;
  private readonly resolve: Resolve;
  private readonly maxResponseBytes: number;
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
    this.allowPrivate = opts.allowPrivate ?? false;
    this.resolve = opts.resolve ?? systemResolve;
    this.maxResponseBytes = Math.max(1, opts.maxResponseBytes ?? MAX_RESPONSE_BYTES);
  }

  /**
   * For the results listener: call after a job's final status is recorded, or its hand-off (waiting_for_user). Never
   * throws, never waits.
   */
  readonly onJobFinal = (orgId: string, result: ResultMessage): void => {
    if (this.stopping.signal.aborted) return;
    const events = eventsOf(result);
    if (!events.length) return;
    const prev = this.intake.get(orgId) ?? Promise.resolve();
    const next = prev.then(async () => { for (const event of events) await this.accept(orgId, event, result); })
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
        // Each hand-off of an attempt is its own occurrence (a second wait for a person is announced again).
        const occurrence = event === 'job.waiting_for_user' && result.handoff ? String(result.handoff.expiresAt) : '';
        const row = await insertDelivery(tx, { id, orgId, webhookId: hook.id, jobId: result.jobId, jobAttempt: result.attempt, event, payload, occurrence });
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
        await record({ status: 'failed', attempts, lastError: storedError('secret-unreadable'), responseStatus: null, nextAttemptAt: null });
        this.logger.error(log, 'webhook secret unreadable (JWT_SECRET changed?); delivery failed');
        return;
      }
      attempts++;
      const { status: responseStatus, error } = await this.attempt(hook.url, row, secret);
      if (error === null) {
        await record({ status: 'delivered', attempts, lastError: null, responseStatus, nextAttemptAt: null });
        this.logger.info({ ...log, attempts, responseStatus }, 'webhook delivered');
        return;
      }
      if (attempts >= this.maxAttempts) {
        await record({ status: 'failed', attempts, lastError: error, responseStatus, nextAttemptAt: null });
        this.logger.warn({ ...log, attempts, error, responseStatus }, 'webhook delivery failed; no attempts left');
        return;
      }
      const waitMs = this.backoffMs(attempts);
      await record({ status: 'retrying', attempts, lastError: error, responseStatus, nextAttemptAt: new Date(Date.now() + waitMs) });
      this.logger.info({ ...log, attempts, error, responseStatus, waitMs }, 'webhook delivery failed; retrying');
      try {
        await sleep(waitMs, undefined, { signal: this.stopping.signal });
      } catch {
        return; // closing: the row stays `retrying`
      }
    }
  }

  /**
   * One attempt: resolve and check the host, POST to the checked addresses. `error` (the stored form, storedError)
   * is null for a 2xx answer. A refused target is retried like any other failure: its DNS may be fixed meanwhile.
   */
  private async attempt(url: string, row: DeliveryRow, secret: string): Promise<{ status: number | null; error: string | null }> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.stopping.signal]);
    const timestamp = String(Math.floor(Date.now() / 1000));
    try {
      const target = new URL(url);
      const addresses = await checkedAddresses(target, { resolve: this.resolve, allowPrivate: this.allowPrivate, signal });
      const status = await postOnce({
        url: target, addresses, signal, maxResponseBytes: this.maxResponseBytes, body: row.payload,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'sri-webhooks/1',
          'x-sri-event': row.event,
          'x-sri-delivery': row.id,
          // Standard Webhooks: the delivery id is the message id, so a receiver deduplicates retries on it.
          'webhook-id': row.id,
          'webhook-timestamp': timestamp,
          'webhook-signature': signStandardWebhook(secret, row.id, timestamp, row.payload),
          // Deprecated, removed in LEGACY_SIGNATURE_REMOVED_IN (docs/webhooks.md "The X-SRI-Signature header").
          'x-sri-timestamp': timestamp,
          'x-sri-signature': signLegacyWebhook(secret, timestamp, row.payload),
        },
      });
      if (status >= 200 && status <= 299) return { status, error: null };
      return { status, error: storedError(status >= 300 && status <= 399 ? 'redirect' : 'http-status') };
    } catch (err) {
      if (err instanceof DeliveryError) return { status: null, error: storedError(err.errorClass, err.refused) };
      // Aborted while resolving (deadline or close), or an unexpected failure: no text of it is kept.
      return { status: null, error: storedError(signal.aborted && (signal.reason as Error | undefined)?.name === 'TimeoutError' ? 'timeout' : 'network') };
    }
  }
}
