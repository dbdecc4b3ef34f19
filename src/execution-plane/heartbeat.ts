import type { Redis } from 'ioredis';
import { keys } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import { HEARTBEAT_TTL_SECONDS } from './config.ts';
import { boundWait } from './job/deadline.ts';

/**
 * Writes `sri:worker:{id}:heartbeat` = epoch ms with a 30 s TTL every `intervalMs`: the key disappears on its own
 * when the worker dies, which is how autoscalers and (later) lease recovery tell a live worker from a dead one.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly redis: Redis, private readonly workerId: string, private readonly intervalMs: number, private readonly logger: Logger) {}

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => { void this.beat(); }, this.intervalMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    try {
      await this.redis.set(keys.workerHeartbeat(this.workerId), String(Date.now()), 'EX', HEARTBEAT_TTL_SECONDS);
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, 'heartbeat failed');
    }
  }

  /** Stops beating and removes the key: a cleanly stopped worker is gone at once, not 30 s later. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    // Bounded: with Redis down, ioredis would queue the command until it returns and the stop would hang.
    await boundWait(this.redis.del(keys.workerHeartbeat(this.workerId)), 2000, 'removing the heartbeat').catch(() => {});
  }
}
