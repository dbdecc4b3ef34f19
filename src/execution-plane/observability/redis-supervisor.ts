/**
 * Follows the worker's Redis connection: `connected` ↔ `reconnecting`. ioredis reconnects by itself with backoff
 * (src/shared/redis.ts: 50 ms doubling, capped at 2 s) and commands issued meanwhile wait; this class says so in the
 * log (each change of state, and each reconnect attempt at debug level), keeps the numbers the metrics export, and
 * calls `onOutageLimit` once when an outage lasts longer than `maxOutageMs` (0 = never) — the worker then gives
 * up and exits non-zero so that its supervisor (Kubernetes, systemd, Compose) restarts it.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.ts';

export type RedisLinkState = 'connected' | 'reconnecting';

export interface RedisSupervisorOptions {
  maxOutageMs: number;
  logger: Logger;
  /** Told about every change of state (the worker's lifecycle follows it). */
  onChange?: (state: RedisLinkState) => void;
  /** Called once, when an outage reaches `maxOutageMs`. */
  onOutageLimit?: (outageMs: number) => void;
  now?: () => number;
}

export class RedisSupervisor {
  private linkState: RedisLinkState;
  private since: number | undefined;
  private limitTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private reconnectsTotal = 0;
  private stopped = false;
  /** The current outage is the wait for the first connection: it was never announced, so its end is not either. */
  private quiet = false;
  private readonly now: () => number;
  private readonly off: Array<() => void> = [];

  constructor(private readonly redis: Redis, private readonly opts: RedisSupervisorOptions) {
    this.now = opts.now ?? Date.now;
    this.linkState = redis.status === 'ready' ? 'connected' : 'reconnecting';
    // Not connected yet (the worker is starting): the limit applies, but nothing was lost, so nothing is said.
    if (this.linkState === 'reconnecting') this.lost('not connected yet', true);
    this.listen('ready', () => this.regained());
    this.listen('close', () => this.lost('connection closed'));
    this.listen('reconnecting', (delayMs: unknown) => {
      this.attempts++;
      this.reconnectsTotal++;
      this.opts.logger.debug({ attempt: this.attempts, delayMs }, 'reconnecting to Redis');
    });
    // Connection errors come with every failed attempt; the state changes above say what matters.
    this.listen('error', (e: unknown) => this.opts.logger.debug({ err: (e as Error).message }, 'Redis connection error'));
  }

  private listen(event: string, fn: (...a: any[]) => void): void {
    this.redis.on(event, fn);
    this.off.push(() => this.redis.off(event, fn));
  }

  state(): RedisLinkState {
    return this.linkState;
  }

  /** How long the current outage has lasted (ms); 0 when connected. */
  outageMs(): number {
    return this.since === undefined ? 0 : this.now() - this.since;
  }

  /** Reconnect attempts since the process started. */
  reconnects(): number {
    return this.reconnectsTotal;
  }

  private lost(why: string, quiet = false): void {
    if (this.stopped || this.since !== undefined) return;
    this.since = this.now();
    this.attempts = 0;
    this.linkState = 'reconnecting';
    this.quiet = quiet;
    if (!quiet) {
      this.opts.logger.warn({ why, maxOutageMs: this.opts.maxOutageMs || 'none' }, 'Redis unreachable; worker reconnecting (with backoff)');
      this.opts.onChange?.('reconnecting');
    }
    if (this.opts.maxOutageMs > 0) {
      this.limitTimer = setTimeout(() => {
        if (this.stopped || this.since === undefined) return;
        this.opts.onOutageLimit?.(this.outageMs());
      }, this.opts.maxOutageMs);
      this.limitTimer.unref();
    }
  }

  private regained(): void {
    if (this.stopped || this.since === undefined) return;
    const outageMs = this.outageMs();
    clearTimeout(this.limitTimer);
    this.since = undefined;
    this.linkState = 'connected';
    if (this.quiet) return;
    this.opts.logger.info({ outageMs, attempts: this.attempts }, 'Redis reachable again; worker ready');
    this.opts.onChange?.('connected');
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.limitTimer);
    for (const f of this.off.splice(0)) f();
  }
}
