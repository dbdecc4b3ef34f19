/**
 * Keeps the audit of the ops tasks (docs/operations.md): each result the ops worker writes to `sri:ops:results` is
 * recorded in PostgreSQL (ops_tasks) and then removed from Redis. Results are drained when `sri:ops:done` announces
 * one, at start, and before every read of the audit — so a result written while the API was down is recorded by the
 * first API process that looks, and no announcement lost on pub/sub loses a result.
 */
import type { Redis } from 'ioredis';
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/logger.ts';
import type { OpsQueue } from '../../shared/ops/queue.ts';
import type { Database } from '../db/index.ts';
import { recordOpsResult } from '../db/queries/ops-tasks.ts';

export class OpsRecorder {
  private sub: Redis | undefined;
  private draining: Promise<void> | undefined;

  constructor(private readonly db: Database, private readonly redis: Redis, private readonly queue: OpsQueue, private readonly logger: Logger) {}

  /** Records every waiting result (one drain at a time; a call during one waits for it). */
  drain(): Promise<void> {
    this.draining ??= this.drainOnce().finally(() => { this.draining = undefined; });
    return this.draining;
  }

  private async drainOnce(): Promise<void> {
    for (const p of await this.queue.pendingResults()) {
      if (!p.result) {
        this.logger.error({ taskId: p.taskId, raw: p.raw.slice(0, 500) }, 'dropped a malformed ops result');
        await this.queue.acknowledge(p.taskId);
        continue;
      }
      const result = p.result;
      const known = await this.db.asSystem((tx) => recordOpsResult(tx, result));
      if (!known) this.logger.warn({ taskId: p.taskId }, 'ops result of a task the API never enqueued; not recorded');
      await this.queue.acknowledge(p.taskId);
    }
  }

  async start(): Promise<void> {
    const sub = this.redis.duplicate({ connectionName: 'sri-api-ops-done', commandTimeout: undefined, maxRetriesPerRequest: null });
    sub.on('error', () => { /* reconnects by itself */ });
    sub.on('message', () => { this.drain().catch((err: unknown) => this.logger.warn({ err }, 'recording ops results failed')); });
    // Results written while the subscription was down are drained on every (re)subscription.
    sub.on('ready', () => { this.drain().catch((err: unknown) => this.logger.warn({ err }, 'recording ops results failed')); });
    this.sub = sub;
    // Queued until connected (ioredis re-subscribes after every reconnect by itself).
    await sub.subscribe(keys.opsDone);
    await this.drain().catch((err: unknown) => this.logger.warn({ err }, 'recording ops results failed'));
  }

  async close(): Promise<void> {
    this.sub?.disconnect();
    await this.draining?.catch(() => undefined);
  }
}
