/**
 * The pipeline's provider gate step (docs/providers.md): after the job's envelope is verified and before anything
 * of it runs, its provider's gate (src/shared/provider-gate/gate.ts) decides whether it may start now. "Not yet"
 * defers it (JobQueue.defer: the lease and the worker's slot end, the message waits unchanged — same attempt,
 * status 'queued' — until the time the gate named, then goes back to the front of its queue). After the job, its
 * outcome goes to the provider's circuit breaker; while it runs, its browser requests to the provider's per-minute count.
 *
 * A gate that cannot be asked (Redis trouble) throws like any other queue call: the lease then expires and the job
 * runs again. A provider whose catalogue pacing cannot be read runs unpaced, with a warning: pacing protects a
 * portal, and a broken entry must not stop every job of the provider.
 */
import type { BrowserContext } from 'playwright-core';
import type { Redis } from 'ioredis';
import type { JobQueue, Taken } from '../../shared/queue/job-queue.ts';
import type { JobMessage } from '../../shared/schemas.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ErrorCode } from '../../shared/errors.ts';
import { readCataloguePacing } from '../../shared/provider-catalogue.ts';
import type { ProviderPacing } from '../../shared/provider-pacing.ts';
import { breakerOutcomeOf, type GateWait, type ProviderGate } from '../../shared/provider-gate/gate.ts';

/** Requests counted in memory are added to Redis at most this often (and when the job's context closes). */
const COUNT_FLUSH_MS = 1000;
/** Deferred jobs come back spread over this much time after the gate's time, so that they do not all race for one slot. */
const SPREAD_MS = 500;

export interface GateStepDeps {
  readonly gate: ProviderGate;
  readonly queue: JobQueue;
  readonly redis: Redis;
  readonly logger: Logger;
  /** The job's longest run (its timeoutMs, else EXECUTION_TIMEOUT): how long a half-open breaker's probe holds the others. */
  readonly probeMs: (job: JobMessage) => number;
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
  const pacing = read.pacing;
  const decision = await deps.gate.pass(job.providerName, job.jobId, pacing, { probeMs: deps.probeMs(job) });
  if (decision.go) return { deferred: false, pacing };
  const until = decision.until + Math.floor(Math.random() * SPREAD_MS);
  const r = await deps.queue.defer(taken, until, decision.why);
  deps.logger.info({ jobId: job.jobId, orgId: job.orgId, provider: job.providerName, why: decision.why, until: new Date(until).toISOString(), attempt: taken.attempt },
    'job deferred by its provider\'s gate (no attempt counted)');
  return { deferred: true, until, why: decision.why, outcome: r === 'late' ? 'late' : 'deferred' };
}

/** Tells the provider's breaker what the job said of the portal; a failure to do so is logged, never the job's. */
export async function recordGateOutcome(job: JobMessage, status: string, errorCode: string | undefined, pacing: ProviderPacing, deps: GateStepDeps): Promise<void> {
  if (!pacing.breaker || status === 'late' || status === 'released') return;
  try {
    const r = await deps.gate.record(job.providerName, job.jobId, breakerOutcomeOf(status, errorCode), pacing);
    if (r && r.before !== r.after) {
      deps.logger.warn({ provider: job.providerName, from: r.before, to: r.after, failures: r.failures, jobId: job.jobId, errorCode }, `provider circuit breaker ${r.after === 'open' ? 'opened' : r.after}`);
    }
  } catch (e) {
    deps.logger.warn({ provider: job.providerName, err: (e as Error).message }, 'could not record the job\'s outcome in its provider\'s circuit breaker');
  }
}

/** What a job's browser saw of its portal (watchPortal). */
export interface PortalWatch {
  /**
   * The job's error as its provider's breaker should see it: a failure while the page the portal last delivered was
   * a 5xx answer is the portal's (PORTAL_UNAVAILABLE, retried), not the flow's — the script's next step failed
   * because the portal was down. Other errors are returned as they are.
   */
  explain(error: { code: ErrorCode; message: string }, redact: (text: string) => string): { code: ErrorCode; message: string };
}

/** Errors that a portal answering 5xx explains (the script failed on the error page, or waited in vain). */
const EXPLAINED_BY_5XX: ReadonlySet<string> = new Set(['SCRIPT_ERROR', 'NAVIGATION_ERROR', 'EXECUTION_TIMEOUT']);

/**
 * Watches the job's browser for its provider: the last main-frame document each page received (5xx answers make
 * PORTAL_UNAVAILABLE), and, while the provider has a requests-per-minute ceiling, every request into the provider's
 * per-minute count (flushed every second and when the context closes).
 */
export function watchPortal(context: BrowserContext, providerName: string, pacing: ProviderPacing | undefined, deps: GateStepDeps | undefined): PortalWatch {
  let last: { status: number; url: string } | undefined;
  context.on('response', (r) => {
    try {
      const frame = r.request().isNavigationRequest() ? r.frame() : undefined;
      if (frame && frame.parentFrame() === null) last = { status: r.status(), url: r.url() };
    } catch {
      // a response of a service worker or a closed page: no frame to speak of
    }
  });
  if (deps && pacing?.requestsPerMinute !== undefined) {
    let pending = 0;
    const flush = () => {
      const n = pending;
      pending = 0;
      if (n) deps.gate.countRequests(providerName, n).catch((e: unknown) => deps.logger.debug({ err: (e as Error).message }, 'could not count provider requests'));
    };
    const timer = setInterval(flush, COUNT_FLUSH_MS);
    timer.unref();
    context.on('request', () => { pending++; });
    context.once('close', () => {
      clearInterval(timer);
      flush();
    });
  }
  return {
    explain(error, redact) {
      if (!last || last.status < 500 || !EXPLAINED_BY_5XX.has(error.code)) return error;
      const url = redact(last.url.split('?')[0] ?? '');
      return { code: 'PORTAL_UNAVAILABLE', message: `The portal answered HTTP ${last.status} for ${url}, and the flow failed on that page (${error.code}: ${error.message.slice(0, 300)}). The portal is down or overloaded; the job is retried.` };
    },
  };
}
