/**
 * How a worker learns it was revoked (docs/security.md "Worker enrolment"):
 *
 * - Enforced, with a Redis ACL: revoking deletes the worker's Redis user and kills its connections. ioredis then
 *   reconnects and Redis answers its AUTH with WRONGPASS. When every reconnect keeps being refused for
 *   WORKER_REVOKED_AFTER_MS (a Redis restarted without its ACL file refuses for a moment too, until the API puts the
 *   enrolled users back), the worker takes itself for revoked.
 * - Cooperative, without an ACL (`sri up`, the default user): the revocation is a field of `sri:workers:revoked`,
 *   read at every heartbeat (`markedRevoked`). A worker that does not look (an old release, a hostile one) is not
 *   stopped by it.
 *
 * Either way `onRevoked` is called once; the worker then abandons its jobs (their leases expire and other workers
 * run them again) and exits with EXIT_CODE_REVOKED.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';

/** Redis refusing the connection's credentials (deleted or disabled user, changed password). */
export function isAuthRefusal(e: Error): boolean {
  return /^(WRONGPASS|NOAUTH)\b/.test(e.message ?? '');
}

export class RevocationWatch {
  private timer: NodeJS.Timeout | undefined;
  private fired = false;
  private readonly off: Array<() => void> = [];

  constructor(private readonly opts: {
    /** WORKER_REVOKED_AFTER_MS: how long the refusal must last. */
    confirmMs: number;
    logger: Logger;
    onRevoked: (reason: string) => void;
  }) {}

  /** Follows one of the worker's connections: refused credentials start the clock, a successful login stops it. */
  watch(conn: Redis): void {
    const onError = (e: Error) => { if (isAuthRefusal(e)) this.refused(e.message); };
    const onReady = () => this.accepted();
    conn.on('error', onError);
    conn.on('ready', onReady);
    this.off.push(() => { conn.off('error', onError); conn.off('ready', onReady); });
  }

  private refused(message: string): void {
    if (this.fired || this.timer) return;
    this.opts.logger.warn({ err: message.slice(0, 120), confirmMs: this.opts.confirmMs },
      'Redis refuses this worker\'s credentials; taken as revoked unless they are accepted again in time');
    this.timer = setTimeout(() => this.fire(`Redis kept refusing the worker's credentials for ${this.opts.confirmMs} ms (${message.slice(0, 80)})`), this.opts.confirmMs);
    this.timer.unref();
  }

  private accepted(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.opts.logger.info('Redis accepts this worker\'s credentials again');
  }

  /** The heartbeat found the worker's field in `sri:workers:revoked`. */
  markedRevoked(): void {
    this.fire('the worker is marked revoked in sri:workers:revoked');
  }

  private fire(reason: string): void {
    if (this.fired) return;
    this.fired = true;
    this.stop();
    this.opts.onRevoked(reason);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const f of this.off.splice(0)) f();
  }
}
