import { isSriError, SriError } from '../../shared/errors.ts';

/**
 * Settles with `work`, unless `timeoutMs` passes (EXECUTION_TIMEOUT) or `signal` aborts (WORKER_SHUTDOWN) first;
 * then `stop` runs — for a job, closing its browser context, which makes every pending page call of the script
 * fail so the script cannot go on working after its job ended. `stop` also runs when `work` itself rejects with
 * EXECUTION_TIMEOUT (the runner's own timer at the same deadline), before the caller hears the rejection: a job over
 * its time ends the same way whichever timer saw it first.
 */
export function withDeadline<T>(work: Promise<T>, timeoutMs: number, signal: AbortSignal, stop: () => Promise<unknown>, clock?: JobClock): Promise<T> {
  // The work may reject after we gave up on it (its context was closed): that is expected, not unhandled.
  work.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      if (timer instanceof JobTimer) timer.clear();
      else clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const giveUp = (err: SriError) => finish(() => {
      reject(err);
      stop().catch(() => {});
    });
    const timer = clock ? clock.timer(() => giveUp(new SriError('EXECUTION_TIMEOUT', `Execution timed out after ${timeoutMs} ms`)))
      : setTimeout(() => giveUp(new SriError('EXECUTION_TIMEOUT', `Execution timed out after ${timeoutMs} ms`)), timeoutMs);
    // The abort reason says why (CANCELLED, WORKER_SHUTDOWN); a bare abort() means shutdown.
    const onAbort = () => giveUp(isSriError(signal.reason) ? signal.reason
      : new SriError('WORKER_SHUTDOWN', 'The worker stopped before the job could finish; run it again.'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    // The work's own EXECUTION_TIMEOUT is the same end as ours: the sandbox runner keeps the same limit on the same
    // clock, and its timer, armed first, fires first — so `stop` runs for it too. Without it the context stayed open
    // and the failure path looked at and captured a page still loading, up to 8 s past the limit (docs/scripts.md).
    work.then((v) => finish(() => resolve(v)),
      (e: unknown) => (isSriError(e) && e.code === 'EXECUTION_TIMEOUT' ? giveUp(e) : finish(() => reject(e))));
  });
}

/**
 * Stops waiting for `work` after `timeoutMs`, or when `signal` aborts (then with its reason, or a plain "cancelled"
 * error). Give `work` the same signal when it can be cancelled (an S3 call: BlobStore, JobAttempt.ioSignal), so it
 * does not go on in the background.
 */
export function boundWait<T>(work: Promise<T>, timeoutMs: number, what: string, signal?: AbortSignal): Promise<T> {
  work.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const done = () => { clearTimeout(timer); signal?.removeEventListener('abort', onAbort); };
    const onAbort = () => {
      done();
      reject(isSriError(signal?.reason) ? signal.reason : new Error(`${what} was cancelled`));
    };
    const timer = setTimeout(() => { done(); reject(new Error(`${what} took longer than ${timeoutMs} ms`)); }, timeoutMs);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    work.then((v) => { done(); resolve(v); }, (e: unknown) => { done(); reject(e); });
  });
}

/** A timer of a JobClock: fires when the job's time is up, however often the clock was paused meanwhile. */
export class JobTimer {
  private handle: NodeJS.Timeout | undefined;
  private cleared = false;

  constructor(private readonly clock: JobClock, private readonly fire: () => void) {}

  /** Sets the next check: at the deadline, or — while the clock is paused — a little later to look again. */
  arm(): void {
    if (this.cleared) return;
    clearTimeout(this.handle);
    const left = this.clock.remainingMs();
    if (left <= 0) {
      this.cleared = true;
      this.clock.forget(this);
      this.fire();
      return;
    }
    // Paused: no timer at all; resume arms it again.
    if (left === Infinity) return;
    this.handle = setTimeout(() => this.arm(), Math.min(left, 2 ** 31 - 1));
  }

  clear(): void {
    this.cleared = true;
    clearTimeout(this.handle);
    this.clock.forget(this);
  }
}

/**
 * A job's run time (EXECUTION_TIMEOUT or its timeoutMs) that a hand-off stops: while the job waits for a person
 * (`pause` … `resume`), its deadline moves by the time it waited, so a job is never killed for a person's slowness —
 * the hand-off's own timeoutMs bounds that wait (HANDOFF_TIMEOUT). Timers made with `timer` fire at the deadline as
 * it is when they would.
 */
export class JobClock {
  private deadline: number;
  private pausedAt: number | undefined;
  private readonly timers = new Set<JobTimer>();

  constructor(timeoutMs: number, private readonly now: () => number = Date.now) {
    this.deadline = now() + timeoutMs;
  }

  /** Milliseconds left; Infinity while paused. */
  remainingMs(): number {
    return this.pausedAt !== undefined ? Infinity : this.deadline - this.now();
  }

  paused(): boolean {
    return this.pausedAt !== undefined;
  }

  pause(): void {
    if (this.pausedAt !== undefined) return;
    this.pausedAt = this.now();
    for (const t of [...this.timers]) t.arm();
  }

  /** Ends a pause: the deadline moves by its length. Returns how long it lasted (ms). */
  resume(): number {
    if (this.pausedAt === undefined) return 0;
    const waited = this.now() - this.pausedAt;
    this.deadline += waited;
    this.pausedAt = undefined;
    for (const t of [...this.timers]) t.arm();
    return waited;
  }

  /** Calls `fire` once the job's time is up. */
  timer(fire: () => void): JobTimer {
    const t = new JobTimer(this, fire);
    this.timers.add(t);
    t.arm();
    return t;
  }

  /** @internal */
  forget(t: JobTimer): void {
    this.timers.delete(t);
  }
}
