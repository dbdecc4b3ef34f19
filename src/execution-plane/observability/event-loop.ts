/**
 * Is the event loop stuck? A timer that should fire every `tickMs` measures how late it fires; /healthz fails while
 * the worst lateness of the last `windowMs` is over the limit. A loop that is blocked right now cannot answer the
 * probe at all (the probe's timeout fails it); one that was blocked recently answers 503 until the window passes.
 * (Scripts run in processes of their own, so a script stuck in synchronous code blocks only its own process, and
 * URL patterns are matched there too; what this catches is the worker's own code, a library call that runs long on
 * it — as Playwright's waitForURL glob once did — or a flood of work handed to it.) Every tick later than the limit
 * is counted and reported (`onBlocked`: the worker logs it and /metrics counts it), so a block that ended between
 * two probes still leaves a trace.
 */
export interface EventLoopStatus {
  /** Worst lateness of the tick timer over the window (ms). */
  maxDelayMs: number;
  /** How long ago the tick timer last fired (ms): large while the loop is blocked. */
  sinceLastTickMs: number;
  windowMs: number;
  limitMs: number;
  stuck: boolean;
  /** Ticks since start that came later than the limit. */
  blocks: number;
}

export class EventLoopWatch {
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  /** [when, lateness ms] of recent ticks that were late; pruned to the window. */
  private late: Array<[number, number]> = [];
  private blockCount = 0;

  constructor(private readonly opts: {
    limitMs: number;
    /** @default 10000 */
    windowMs?: number;
    /** @default 250 */
    tickMs?: number;
    /** A tick came `delayMs` late, over the limit: the loop was blocked that long. */
    onBlocked?: (delayMs: number) => void;
  }) {}

  private get windowMs(): number { return this.opts.windowMs ?? 10_000; }
  private get tickMs(): number { return this.opts.tickMs ?? 250; }

  start(): void {
    if (this.timer) return;
    this.lastTick = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      const lateness = now - this.lastTick - this.tickMs;
      this.lastTick = now;
      if (lateness > 1) this.late.push([now, lateness]);
      if (lateness > this.opts.limitMs) {
        this.blockCount++;
        this.opts.onBlocked?.(Math.round(lateness));
      }
      this.prune(now);
    }, this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private prune(now: number): void {
    while (this.late.length && now - this.late[0]![0] > this.windowMs) this.late.shift();
  }

  status(): EventLoopStatus {
    const now = performance.now();
    this.prune(now);
    const sinceLastTickMs = Math.round(now - this.lastTick);
    // A tick not yet fired counts as late by what it has missed so far.
    const maxDelayMs = Math.round(Math.max(0, sinceLastTickMs - this.tickMs, ...this.late.map(([, l]) => l)));
    return { maxDelayMs, sinceLastTickMs, windowMs: this.windowMs, limitMs: this.opts.limitMs, stuck: maxDelayMs > this.opts.limitMs, blocks: this.blockCount };
  }
}
