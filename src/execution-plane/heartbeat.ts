import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import { isWorkerRevoked, removeWorker, writeHeartbeat, type WorkerSelfReport } from '../shared/worker-registry.ts';
import { HEARTBEAT_TTL_SECONDS } from './config.ts';
import { boundWait } from './job/deadline.ts';

/**
 * Every `intervalMs`: `sri:worker:{id}:heartbeat` = epoch ms with a 30 s TTL (the contract: the key disappears on
 * its own when the worker dies), plus the worker's info hash and registry entry in the same MULTI
 * (src/shared/worker-registry.ts). `report()` is synchronous and reads only cached values (resource usage comes
 * from the background sampler), so a heartbeat never waits for anything but Redis.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private beating = false;
  private lastOk: number | undefined;

  constructor(private readonly opts: {
    redis: Redis;
    workerId: string;
    intervalMs: number;
    logger: Logger;
    report: () => WorkerSelfReport;
    /** Told about every heartbeat Redis did not take (metrics). */
    onFailure?: () => void;
    /**
     * Called when, after a heartbeat, the worker's field in `sri:workers:revoked` is set: the cooperative revocation
     * of deployments without a Redis ACL (src/execution-plane/revocation.ts).
     */
    onRevoked?: () => void;
  }) {}

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => { void this.beat(); }, this.opts.intervalMs);
    this.timer.unref();
  }

  /** Epoch ms of the last heartbeat Redis acknowledged. */
  lastAcknowledgedAt(): number | undefined {
    return this.lastOk;
  }

  /** Writes one heartbeat now (also used on state changes, so the registry need not wait for the next tick). */
  async beat(): Promise<void> {
    // One at a time, and none while Redis is away: ioredis would queue them and replay a pile on reconnect.
    if (this.beating || (this.lastOk !== undefined && this.opts.redis.status !== 'ready')) return;
    this.beating = true;
    try {
      const now = Date.now();
      await writeHeartbeat(this.opts.redis, this.opts.report(), HEARTBEAT_TTL_SECONDS, now);
      this.lastOk = now;
      // Its own command, not part of the heartbeat's MULTI: a Redis user of an older ACL file that may not read
      // sri:workers:revoked then loses this check (said at debug level), not its heartbeat.
      if (this.opts.onRevoked) {
        const revoked = await isWorkerRevoked(this.opts.redis, this.opts.workerId).catch((e: unknown) => {
          this.opts.logger.debug({ err: (e as Error).message }, 'could not read sri:workers:revoked');
          return false;
        });
        if (revoked) this.opts.onRevoked();
      }
    } catch (e) {
      this.opts.onFailure?.();
      this.opts.logger.warn({ err: (e as Error).message }, 'heartbeat failed');
    } finally {
      this.beating = false;
    }
  }

  /** Stops beating and leaves the registry: a cleanly stopped worker is gone at once, not listed as lost. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    // Bounded: with Redis down, ioredis would queue the command until it returns and the stop would hang.
    await boundWait(removeWorker(this.opts.redis, this.opts.workerId), 2000, 'removing the heartbeat').catch(() => {});
  }
}
