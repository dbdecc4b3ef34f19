/**
 * The pipeline's provider gate step (docs/providers.md): after the job's envelope is verified and before anything
 * of it runs, its provider's gate (src/shared/provider-gate/gate.ts) decides whether it may start now. "Not yet"
 * defers it (JobQueue.defer: the lease and the worker's slot end, the message waits unchanged — same attempt,
 * status 'queued' — until the time the gate named, then goes back to the front of its queue). After the job, its
 * outcome goes to the provider's circuit breaker; while it runs, its page actions wait while the provider's
 * requests-per-minute budget is spent (ProviderRequestPacer).
 *
 * A gate that cannot be asked (Redis trouble) throws like any other queue call: the lease then expires and the job
 * runs again. A provider whose catalogue pacing cannot be read runs unpaced, with a warning: pacing protects a
 * portal, and a broken entry must not stop every job of the provider.
 */
import type { BrowserContext } from 'playwright-core';
import type { Redis } from 'ioredis';
import type { JobQueue, Taken } from '../../shared/queue/job-queue.ts';
import type { BlockerKind, JobMessage } from '../../shared/schemas.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import { readCataloguePacing } from '../../shared/provider-catalogue.ts';
import type { ProviderPacing } from '../../shared/provider-pacing.ts';
import { breakerOutcomeOf, type GateWait, type ProviderGate } from '../../shared/provider-gate/gate.ts';

/** Deferred jobs come back spread over this much time after the gate's time, so that they do not all race for one slot. */
const SPREAD_MS = 500;

export interface GateStepDeps {
  readonly gate: ProviderGate;
  readonly queue: JobQueue;
  readonly redis: Redis;
  readonly logger: Logger;
  /** The job's longest run (its timeoutMs, else EXECUTION_TIMEOUT): how long a half-open breaker's probe holds the others. */
  readonly probeMs: (job: JobMessage) => number;
  /** The pacing as the live configuration adjusts it (its breaker threshold, ../live-config.ts). @default as in the catalogue */
  readonly adjustPacing?: (providerName: string, pacing: ProviderPacing) => ProviderPacing;
  /** Blocker kinds the live configuration counts as the portal's failure in the breaker (breaker.blockerKinds). @default none */
  readonly breakerBlockerKinds?: (providerName: string) => readonly BlockerKind[];
}

export type GateStep =
  | { readonly deferred: true; readonly until: number; readonly why: GateWait; readonly outcome: 'deferred' | 'late' }
  | { readonly deferred: false; readonly pacing: ProviderPacing };

/** Asks the job's provider gate; on "not yet", defers the job and says until when. */
export async function gateJob(job: JobMessage, taken: Taken, deps: GateStepDeps): Promise<GateStep> {
  const read = await readCataloguePacing(deps.redis, job.providerName);
  if (!read.found) {
    deps.logger.warn({ jobId: job.jobId, provider: job.providerName, problem: read.problem }, 'provider pacing unreadable in the catalogue; the job runs unpaced');
    return { deferred: false, pacing: {} };
  }
  const pacing = deps.adjustPacing ? deps.adjustPacing(job.providerName, read.pacing) : read.pacing;
  const decision = await deps.gate.pass(job.providerName, job.jobId, pacing, { probeMs: deps.probeMs(job) });
  if (decision.go) return { deferred: false, pacing };
  const until = decision.until + Math.floor(Math.random() * SPREAD_MS);
  const r = await deps.queue.defer(taken, until, decision.why);
  deps.logger.info({ jobId: job.jobId, orgId: job.orgId, provider: job.providerName, why: decision.why, until: new Date(until).toISOString(), attempt: taken.attempt },
    'job deferred by its provider\'s gate (no attempt counted)');
  return { deferred: true, until, why: decision.why, outcome: r === 'late' ? 'late' : 'deferred' };
}

/**
 * Tells the provider's breaker what the attempt said of the portal (it ended done without `errorCode`, else with it),
 * before the queue hears of the attempt; a failure to do so is logged, never the job's. An attempt released at
 * shutdown said nothing and is not told.
 */
export async function recordGateOutcome(
  job: JobMessage, errorCode: string | undefined, pacing: ProviderPacing, deps: GateStepDeps, blocker?: BlockerKind,
): Promise<void> {
  if (!pacing.breaker) return;
  const status = errorCode === undefined ? 'done' : 'failed';
  try {
    // A blocker of a kind the live configuration counts (a rate-limit or maintenance page, say) is the portal's failure,
    // however the job ended: enough of them in a row open the breaker, and the provider's jobs wait its cool-down.
    const blocked = blocker !== undefined && (deps.breakerBlockerKinds?.(job.providerName) ?? []).includes(blocker);
    const r = await deps.gate.record(job.providerName, job.jobId, blocked ? 'failure' : breakerOutcomeOf(status, errorCode), pacing);
    if (r && r.before !== r.after) {
      deps.logger.warn({ provider: job.providerName, from: r.before, to: r.after, failures: r.failures, jobId: job.jobId, errorCode, ...(blocked ? { blocker } : {}) }, `provider circuit breaker ${r.after === 'open' ? 'opened' : r.after}`);
    }
  } catch (e) {
    deps.logger.warn({ provider: job.providerName, err: (e as Error).message }, 'could not record the job\'s outcome in its provider\'s circuit breaker');
  }
}

/** What a job's browser saw of its portal (watchPortal). */
export interface PortalWatch {
  /** While the provider has a requests-per-minute ceiling: waits while the minute's budget is spent. */
  readonly beforeAction: (() => Promise<void>) | undefined;
  /**
   * The job's error as its provider's breaker should see it: a failure while the page the portal last delivered was
   * a 5xx answer is the portal's (PORTAL_UNAVAILABLE, retried), not the flow's — the script's next step failed
   * because the portal was down. Other errors are returned as they are.
   */
  explain(error: { code: ErrorCode; message: string }, redact: (text: string) => string): { code: ErrorCode; message: string };
}

/** Errors that a portal answering 5xx explains (the script failed on the error page, or waited in vain). */
const EXPLAINED_BY_5XX: ReadonlySet<string> = new Set(['SCRIPT_ERROR', 'NAVIGATION_ERROR', 'EXECUTION_TIMEOUT']);

/** Requests counted in memory are added to Redis at most this often (before each paced action, and at the end). */
const COUNT_FLUSH_MS = 1000;

/**
 * Keeps a running job at its provider's requests-per-minute ceiling, every worker and organisation together: every
 * request of the job's browser is counted into the provider's minute (`ProviderGate.countRequests`, batched), and
 * before each page action that may send requests (a navigation, a click, a key press, an evaluate: the sandbox
 * host asks `beforeAction`), the job waits while the minute's budget is spent, until the next minute.
 *
 * Why between actions and not request by request: a request held inside a page action counts against that action's
 * Playwright timeout (PLAYWRIGHT_TIMEOUT_MS), so holding the second page's request for the rest of the minute made
 * the navigation fail (NAVIGATION_ERROR, which the breaker counts as the portal's failure). Waiting between actions
 * keeps every action's timeout whole; the price is that the requests of one action already under way (a page and
 * its images, scripts, styles) may go past the ceiling by that action's requests. They are counted, so the next
 * actions of every job wait longer. The wait counts towards the job's time, like any wait of its script.
 *
 * Redis trouble lets actions through, with a warning once: pacing protects a portal and must not fail jobs.
 */
export class ProviderRequestPacer {
  private pending = 0;
  private warned = false;
  private readonly timer: NodeJS.Timeout;
  /** Actions that waited for a later minute. */
  held = 0;

  constructor(
    private readonly gate: Pick<ProviderGate, 'countRequests' | 'requestsThisMinute'>,
    private readonly providerName: string,
    private readonly ceiling: number,
    private readonly signal: AbortSignal,
    private readonly onWait: (until: number, used: number) => void,
    private readonly logger?: Logger,
  ) {
    this.timer = setInterval(() => { void this.flush(); }, COUNT_FLUSH_MS);
    this.timer.unref();
  }

  /** One request of the job's browser (sync: the browser's request event). */
  count(): void {
    this.pending++;
  }

  /** Resolves when the job's next page action may go; rejects when the job ended first. */
  async beforeAction(): Promise<void> {
    let waited = false;
    for (;;) {
      this.signal.throwIfAborted();
      const now = Date.now();
      let used: number;
      try {
        await this.flush();
        used = await this.gate.requestsThisMinute(this.providerName, now);
      } catch (e) {
        this.warn(e);
        return;
      }
      if (used < this.ceiling) return;
      const until = (Math.floor(now / 60_000) + 1) * 60_000;
      if (!waited) {
        waited = true;
        this.held++;
        this.onWait(until, used);
      }
      await sleepUntil(until + Math.floor(Math.random() * 250), this.signal);
    }
  }

  /** Stops the flush timer and adds what is left to the count. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch((e: unknown) => this.warn(e));
  }

  private async flush(): Promise<void> {
    const n = this.pending;
    if (!n) return;
    this.pending = 0;
    try {
      await this.gate.countRequests(this.providerName, n);
    } catch (e) {
      this.pending += n;
      throw e;
    }
  }

  private warn(e: unknown): void {
    if (!this.warned) this.logger?.warn({ provider: this.providerName, err: (e as Error).message }, 'could not count or read the provider\'s requests per minute; the job goes unpaced meanwhile');
    this.warned = true;
  }
}

function sleepUntil(at: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, Math.max(0, at - Date.now()));
    const onAbort = () => { clearTimeout(timer); reject(signal.reason as Error); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Watches the job's browser for its provider: the last main-frame document each page received (5xx answers make
 * PORTAL_UNAVAILABLE), and, while the provider has a requests-per-minute ceiling, its requests (ProviderRequestPacer,
 * whose `beforeAction` the sandbox host calls before each page action).
 */
export function watchPortal(
  context: BrowserContext, providerName: string, pacing: ProviderPacing | undefined, deps: GateStepDeps | undefined,
  job: { readonly signal: AbortSignal; readonly onHeld: (until: number, used: number, ceiling: number) => void },
): PortalWatch {
  let last: { status: number; url: string } | undefined;
  context.on('response', (r) => {
    try {
      const frame = r.request().isNavigationRequest() ? r.frame() : undefined;
      if (frame && frame.parentFrame() === null) last = { status: r.status(), url: r.url() };
    } catch {
      // a response of a service worker or a closed page: no frame to speak of
    }
  });
  const ceiling = pacing?.requestsPerMinute;
  let pacer: ProviderRequestPacer | undefined;
  if (deps && ceiling !== undefined) {
    // An action waiting past the job's end (cancelled, or its context closed) stops waiting.
    const closed = new AbortController();
    const p = new ProviderRequestPacer(deps.gate, providerName, ceiling, AbortSignal.any([job.signal, closed.signal]),
      (until, used) => job.onHeld(until, used, ceiling), deps.logger);
    context.on('request', () => p.count());
    context.once('close', () => {
      closed.abort(new Error('the job\'s browser context closed'));
      void p.close();
    });
    pacer = p;
  }
  return {
    beforeAction: pacer ? () => pacer.beforeAction() : undefined,
    explain(error, redact) {
      if (!last || last.status < 500 || !EXPLAINED_BY_5XX.has(error.code)) return error;
      const url = redact(last.url.split('?')[0] ?? '');
      return { code: 'PORTAL_UNAVAILABLE', message: `The portal answered HTTP ${last.status} for ${url}, and the flow failed on that page (${error.code}: ${error.message.slice(0, 300)}). The portal is down or overloaded; the job is retried.` };
    },
  };
}
