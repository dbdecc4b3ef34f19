/**
 * A job's hand-off to a person (docs/scripts.md "helpers.handoff", docs/dashboard.md "Hand-off"): the script (a
 * `handoff` step, helpers.handoff) or the worker itself (requestHandoff: a CAPTCHA or one-time-code form it cannot
 * fill) asks a person to act on the page. While the job waits:
 *   - its status is `waiting_for_user` and the organisation hears of it (markWaiting-2.lua publishes the
 *     announcement with the status change: the control plane records it and sends the job.waiting_for_user webhook);
 *   - the page's screencast (CDP Page.startScreencast, JPEG) goes into the job's frame stream, a frame at most every
 *     `frameIntervalMs` — Chromium sends the next frame only once the last is acknowledged, and the acknowledgement
 *     waits for the write and the interval, so a slow Redis slows the frames instead of queueing them in memory;
 *   - the person's input events arrive on the job's input list, in order, and are replayed with page.mouse and
 *     page.keyboard — in the job's own context, so the egress policy (host guard, egress proxy) applies to whatever a
 *     click navigates to, as it does to the script;
 *   - the job's clock is paused (its EXECUTION_TIMEOUT does not run while a person is asked), the worker keeps its
 *     slot and keeps renewing its lease, and the wait is bounded by the hand-off's own timeout (HANDOFF_TIMEOUT).
 * "Done" ends the wait and the script goes on; "Give up" fails the job (HANDOFF_ABANDONED). A cancel, a lost lease or
 * the worker's shutdown end it through the job's abort signal. Every hand-off has its own CDP session and its own
 * blocking Redis connection, so several jobs of one worker wait at once, each with its own live view.
 */
import type { Redis } from 'ioredis';
import type { CDPSession, Page } from 'playwright-core';
import { isSriError, SriError } from '../../shared/errors.ts';
import {
  FRAMES_MAXLEN, HANDOFF_DEFAULT_TIMEOUT_MS, HandoffReason, InputListEntry, LIVE_KEYS_TTL_SECONDS, type HandoffInput, type HandoffState,
} from '../../shared/handoff.ts';
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/logger.ts';
import type { JobQueue, Taken } from '../../shared/queue/job-queue.ts';
import type { ResultMessage } from '../../shared/schemas.ts';
import { boundWait, type JobClock } from './deadline.ts';
import type { ExecutionLog } from './execution-log.ts';

export type HandoffSource = HandoffState['source'];

export interface HandoffOptions {
  /** The worker's connection: frames, the state key; duplicated for the blocking read of the input list. */
  readonly redis: Redis;
  readonly queue: JobQueue;
  readonly taken: Taken;
  readonly jobId: string;
  readonly orgId: string;
  readonly attempt: number;
  readonly workerId: string;
  /** Longest wait a hand-off may ask for (WORKER_HANDOFF_MAX_MS). */
  readonly maxTimeoutMs: number;
  /** Shortest time between two frames (ms): 200 = at most 5 frames a second. */
  readonly frameIntervalMs: number;
  /** JPEG quality of the frames, 1-100. */
  readonly frameQuality: number;
  readonly clock: JobClock;
  readonly signal: AbortSignal;
  readonly exec: ExecutionLog;
  readonly logger: Logger;
  /** The message announcing the wait (status `waiting_for_user`), published with the status change. */
  readonly announce: (state: HandoffState) => ResultMessage;
}

export interface HandoffRequest {
  /** How long the person has (ms). @default HANDOFF_DEFAULT_TIMEOUT_MS, at most WORKER_HANDOFF_MAX_MS */
  readonly timeoutMs?: number;
  /** @default 'script' */
  readonly source?: HandoffSource;
}

/** Longest one replayed input event may take (a click that starts a slow navigation does not wait for it). */
const INPUT_TIMEOUT_MS = 10_000;
/** Longest one BLPOP blocks before the wait looks at its deadline again (s). */
const BLOCK_SECONDS = 1;

/** The job's hand-off for each page whose job has one: what requestHandoff finds from a page. */
const byPage = new WeakMap<Page, JobHandoff>();

/**
 * Hands the job whose page this is over to a person and resolves when they press "Done" (throws HANDOFF_ABANDONED,
 * HANDOFF_TIMEOUT, or the job's abort reason otherwise). For code of the worker that detects what a script cannot
 * do — a CAPTCHA, a one-time-code form — on a job's page: `await requestHandoff(page, 'CAPTCHA on the login page',
 * { source: 'captcha' })`. Throws SCRIPT_ERROR when the page belongs to no running job.
 */
export function requestHandoff(page: Page, reason: string, request: HandoffRequest = {}): Promise<void> {
  const h = byPage.get(page) ?? byPage.get(page.context().pages()[0]!);
  if (!h) return Promise.reject(new SriError('SCRIPT_ERROR', 'requestHandoff: this page belongs to no running job.'));
  return h.request(reason, request);
}

export class JobHandoff {
  private active = false;

  constructor(private readonly page: Page, private readonly o: HandoffOptions) {
    byPage.set(page, this);
  }

  /** Whether the job waits for a person now. */
  get waiting(): boolean {
    return this.active;
  }

  async request(reason: string, request: HandoffRequest = {}): Promise<void> {
    const parsedReason = HandoffReason.safeParse(typeof reason === 'string' ? reason.trim() : reason);
    if (!parsedReason.success) throw new SriError('SCRIPT_ERROR', 'helpers.handoff: pass a reason of 1 to 500 characters (shown to the person).');
    const asked = request.timeoutMs;
    if (asked !== undefined && (typeof asked !== 'number' || !Number.isFinite(asked) || asked < 1000)) {
      throw new SriError('SCRIPT_ERROR', 'helpers.handoff: timeoutMs must be a number of milliseconds, at least 1000.');
    }
    if (this.active) throw new SriError('SCRIPT_ERROR', 'helpers.handoff: the job already waits for a person; await one hand-off before asking for another.');
    if (this.o.signal.aborted) throw abortError(this.o.signal);
    this.active = true;
    const timeoutMs = Math.min(Math.round(asked ?? HANDOFF_DEFAULT_TIMEOUT_MS), this.o.maxTimeoutMs);
    try {
      await this.wait(parsedReason.data, request.source ?? 'script', timeoutMs);
    } finally {
      this.active = false;
    }
  }

  private async wait(reason: string, source: HandoffSource, timeoutMs: number): Promise<void> {
    const { redis, exec, jobId } = this.o;
    const startedAt = Date.now();
    const expiresAt = startedAt + timeoutMs;
    const viewport = this.page.viewportSize() ?? { width: 1280, height: 720 };
    const state: HandoffState = {
      jobId, orgId: this.o.orgId, reason, source, startedAt, expiresAt, attempt: this.o.attempt, workerId: this.o.workerId, viewport,
    };
    const stateTtlMs = timeoutMs + LIVE_KEYS_TTL_SECONDS * 1000;
    // Input left from an earlier hand-off of this job is not this person's answer.
    await redis.del(keys.jobLiveInput(jobId));
    const input = redis.duplicate({
      connectionName: `sri-worker-${this.o.workerId}-handoff`, maxRetriesPerRequest: null, commandTimeout: undefined,
      blockingTimeout: BLOCK_SECONDS * 1000 + 10_000, blockingTimeoutGrace: 5000,
    });
    input.on('error', () => { /* reconnects by itself; the wait reads again */ });
    const stop = new AbortController();
    const onAbort = () => { stop.abort(); input.disconnect(); };
    const onClose = () => onAbort();
    this.o.signal.addEventListener('abort', onAbort, { once: true });
    this.page.once('close', onClose);
    let framesSent = 0;
    let waitedMs = 0;
    let inputs = 0;
    const counted = () => { framesSent++; };
    // The live view follows the window the person works in: a window the page opens while it waits (a popup, a
    // window.open) is shown and driven until it closes, then the one before it again.
    const view = new LiveWindows(this.page, (p) => this.startScreencast(p, stop.signal, counted), (line) => exec.info(line), stop.signal);
    this.o.clock.pause();
    try {
      await view.start();
      await redis.set(keys.jobHandoff(jobId), JSON.stringify(state), 'PX', stateTtlMs);
      const marked = await this.o.queue.markWaiting(this.o.taken, true, this.o.announce(state));
      if (marked === 'late') exec.warn('hand-off: the job\'s lease is gone; it stops');
      exec.info(`waiting for a person (${source}): ${reason} — up to ${Math.round(timeoutMs / 1000)} s, live view in the dashboard`);
      this.o.logger.info({ jobId, orgId: this.o.orgId, source, timeoutMs }, 'job handed off to a person');
      for (;;) {
        if (this.o.signal.aborted) throw abortError(this.o.signal);
        if (this.page.isClosed()) throw new SriError('BROWSER_ERROR', 'The job\'s page was closed while it waited for a person.');
        const left = expiresAt - Date.now();
        if (left <= 0) {
          throw new SriError('HANDOFF_TIMEOUT', `Nobody answered the hand-off ("${reason}") within ${Math.round(timeoutMs / 1000)} s; the job was stopped. ${new SriError('HANDOFF_TIMEOUT').message}`);
        }
        let popped: [string, string] | null;
        try {
          popped = await input.blpop(keys.jobLiveInput(jobId), Math.max(0.05, Math.min(BLOCK_SECONDS, left / 1000)));
        } catch (e) {
          if (this.o.signal.aborted || this.page.isClosed()) continue;
          this.o.logger.warn({ jobId, err: (e as Error).message }, 'hand-off: reading the input list failed; reading again');
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        if (!popped) continue;
        const entry = parseEntry(popped[1]);
        if (!entry) {
          exec.warn('hand-off: an input event that is not valid was ignored');
          continue;
        }
        if (entry.type === 'answer') {
          if (entry.answer === 'giveUp') {
            throw new SriError('HANDOFF_ABANDONED', `The person gave up the hand-off ("${reason}"). ${new SriError('HANDOFF_ABANDONED').message}`);
          }
          exec.info(`the person answered the hand-off: done (${inputs} input event(s)); the script goes on`);
          return;
        }
        inputs++;
        await this.replay(view.current, entry);
      }
    } finally {
      this.o.signal.removeEventListener('abort', onAbort);
      this.page.off('close', onClose);
      stop.abort();
      input.disconnect();
      waitedMs = this.o.clock.resume();
      await view.stop();
      // The view ends with the wait: the API sees the key gone and the status, and closes its streams.
      await redis.del(keys.jobHandoff(jobId), keys.jobLiveInput(jobId), keys.jobLiveFrames(jobId)).catch(() => {});
      if (!this.o.signal.aborted) await this.o.queue.markWaiting(this.o.taken, false).catch(() => 'late');
      exec.info(`hand-off ended after ${Math.round(waitedMs / 1000)} s (${framesSent} frame(s) streamed); the job's time limit was extended by as much`);
    }
  }

  /** Starts `page`'s screencast into the frame stream; frames stop with `signal`. */
  private async startScreencast(page: Page, signal: AbortSignal, counted: () => void): Promise<CDPSession> {
    const { redis, jobId } = this.o;
    const key = keys.jobLiveFrames(jobId);
    const cdp = await page.context().newCDPSession(page);
    let lastAt = 0;
    cdp.on('Page.screencastFrame', (frame) => {
      if (signal.aborted) return;
      const meta = frame.metadata;
      const at = Math.round((meta.timestamp ?? Date.now() / 1000) * 1000);
      const write = redis.pipeline()
        .xadd(key, 'MAXLEN', FRAMES_MAXLEN, '*', 'data', frame.data, 'viewportWidth', Math.round(meta.deviceWidth),
          'viewportHeight', Math.round(meta.deviceHeight), 'at', at)
        .expire(key, LIVE_KEYS_TTL_SECONDS)
        .exec();
      void write.then(() => { counted(); }, (e: unknown) => this.o.logger.debug({ jobId, err: (e as Error).message }, 'hand-off: a frame could not be written'))
        .then(async () => {
          // The next frame comes only after this acknowledgement: at most one every frameIntervalMs.
          const wait = lastAt + this.o.frameIntervalMs - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          lastAt = Date.now();
          if (!signal.aborted) await cdp.send('Page.screencastFrameAck', { sessionId: frame.sessionId }).catch(() => {});
        });
    });
    const viewport = page.viewportSize() ?? { width: 1280, height: 720 };
    await cdp.send('Page.startScreencast', { format: 'jpeg', quality: this.o.frameQuality, maxWidth: viewport.width, maxHeight: viewport.height, everyNthFrame: 1 });
    return cdp;
  }

  /** One input event on the page shown, as a person's: coordinates within the viewport; failures are logged, not fatal. */
  private async replay(page: Page, e: HandoffInput): Promise<void> {
    const { exec } = this.o;
    const vp = page.viewportSize() ?? { width: 1280, height: 720 };
    const clampX = (x: number) => Math.min(Math.max(0, x), vp.width - 1);
    const clampY = (y: number) => Math.min(Math.max(0, y), vp.height - 1);
    try {
      switch (e.type) {
        case 'click':
          await boundWait(page.mouse.click(clampX(e.x), clampY(e.y), { button: e.button ?? 'left', clickCount: e.clickCount ?? 1 }), INPUT_TIMEOUT_MS, 'a click');
          exec.info(`hand-off input: click at (${Math.round(clampX(e.x))}, ${Math.round(clampY(e.y))})`);
          break;
        case 'type':
          await boundWait(page.keyboard.type(e.text), INPUT_TIMEOUT_MS, 'typing');
          // What a person types may be a password or a code: its length only.
          exec.info(`hand-off input: typed ${e.text.length} character(s)`);
          break;
        case 'key':
          await boundWait(page.keyboard.press(e.key), INPUT_TIMEOUT_MS, 'a key press');
          exec.info(`hand-off input: key ${e.key.length === 1 ? '(a character)' : e.key}`);
          break;
        case 'scroll':
          await boundWait(page.mouse.move(clampX(e.x), clampY(e.y)).then(() => page.mouse.wheel(e.deltaX, e.deltaY)), INPUT_TIMEOUT_MS, 'scrolling');
          exec.info(`hand-off input: scroll by (${Math.round(e.deltaX)}, ${Math.round(e.deltaY)})`);
          break;
      }
    } catch (err) {
      exec.warn(`hand-off input ${e.type} failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }
}

/**
 * The windows of a job during a hand-off, and which one the live view shows: the job's page, and any window a page
 * opens meanwhile (shown as it opens, until it closes; then the one before it). One screencast at a time: switching
 * stops the last before starting the next, in order.
 */
class LiveWindows {
  private readonly open: Page[];
  private cast: CDPSession | undefined;
  private switching: Promise<void> = Promise.resolve();
  current: Page;

  constructor(
    private readonly page: Page,
    private readonly startCast: (page: Page) => Promise<CDPSession>,
    private readonly log: (line: string) => void,
    private readonly stopped: AbortSignal,
  ) {
    this.open = [page];
    this.current = page;
  }

  private readonly onPage = (p: Page) => {
    this.open.push(p);
    p.once('close', () => {
      const i = this.open.indexOf(p);
      if (i >= 0) this.open.splice(i, 1);
      if (this.current === p && this.open.length) this.show(this.open.at(-1)!, 'the live view shows the window before it again');
    });
    this.show(p, 'a page opened a new window; the live view shows it (input goes to it) until it closes');
  };

  async start(): Promise<void> {
    this.page.context().on('page', this.onPage);
    this.cast = await this.startCast(this.page);
  }

  private show(p: Page, line: string): void {
    this.switching = this.switching.then(async () => {
      if (this.stopped.aborted || p.isClosed()) return;
      await this.stopCast();
      // A window in the background sends no frames: the one shown comes to the front.
      await p.bringToFront().catch(() => {});
      this.current = p;
      this.log(`hand-off: ${line}`);
      this.cast = await this.startCast(p).catch(() => undefined);
    });
  }

  private async stopCast(): Promise<void> {
    const cdp = this.cast;
    this.cast = undefined;
    if (cdp) await cdp.send('Page.stopScreencast').catch(() => {}).then(() => cdp.detach().catch(() => {}));
  }

  async stop(): Promise<void> {
    this.page.context().off('page', this.onPage);
    await this.switching;
    await this.stopCast();
  }
}

function parseEntry(raw: string): InputListEntry | undefined {
  try {
    const r = InputListEntry.safeParse(JSON.parse(raw));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

function abortError(signal: AbortSignal): Error {
  return isSriError(signal.reason) ? signal.reason : new SriError('WORKER_SHUTDOWN', 'The worker stopped before the job could finish; run it again.');
}
