/**
 * The attempt's last stage: its error classified (toJobError), then exactly one queue transition — a retry with
 * backoff, done/failed/cancelled (with the slot's next job leased in the same round trip), the dead-letter list, or
 * the job released untouched when the worker shut down under it.
 */
import type { Browser } from 'playwright-core';
import { ERRORS, isSriError, type ErrorCode } from '../../../shared/errors.ts';
import type { Taken } from '../../../shared/queue/job-queue.ts';
import type { ResultArtifact, ResultBlocker, ResultFiles, ResultMessage } from '../../../shared/schemas.ts';
import type { LogStreamEnd } from '../../../shared/job-logs.ts';
import { messageOf, type AttemptPhase, type JobAttempt } from '../attempt.ts';
import type { JobTrace } from '../job-trace.ts';
import { rememberFinished } from '../job-guard.ts';
import type { Redactor } from '../redactor.ts';
import type { JobOutcome, PipelineDeps } from '../pipeline.ts';
import type { ResultEgress } from '../egress-report.ts';
import type { StoredSession } from '../session-health.ts';

export type JobError = { code: ErrorCode; message: string };

/** Full jitter: a random delay in [0, min(cap, base × 2^(attempt-1))] (attempt = the attempt that failed). */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30)));
}

/** A leased message and what reporting on it needs; a JobAttempt is one. */
export interface Leased {
  readonly taken: Taken;
  readonly deps: PipelineDeps;
  readonly trace: JobTrace;
  readonly started: number;
}

/** Who a result is about: the job's ids and its attempt. */
export type ResultIds = { jobId: string; orgId: string; userId: string; providerId: string; attempt: number; blocker?: ResultBlocker };

/** Dead-letters a leased message; with `report`, status 'dead' and the error result published. */
export async function bury(
  l: Leased, reason: string, report: ResultIds | undefined, error: JobError,
  files: ResultFiles = { log: '', screenshots: [] }, artifacts?: ResultArtifact[],
): Promise<JobOutcome> {
  const { taken, trace, deps: { config, queue, logger } } = l;
  const durationMs = Date.now() - l.started;
  trace.enter('publish');
  logger.warn({ orgId: taken.orgId, jobId: report?.jobId, reason: reason.slice(0, 500), bytes: taken.raw.length, ...trace.logFields() }, 'job moved to the dead-letter list');
  const result: ResultMessage | undefined = report && {
    jobId: report.jobId, orgId: report.orgId, userId: report.userId, providerId: report.providerId,
    success: false, status: 'dead', duration: durationMs, attempt: report.attempt, workerId: config.workerId,
    finishedAt: new Date().toISOString(), error, files, ...(artifacts ? { artifacts } : {}), ...(report.blocker ? { blocker: report.blocker } : {}), ...trace.resultFields(),
  };
  const r = await queue.bury(taken, reason, result);
  if (r === 'late') return { jobId: report?.jobId, status: 'late', durationMs, errorCode: error.code };
  await queue.recordWorkerJob(config.workerId, false, durationMs, Date.now());
  return { jobId: report?.jobId, status: 'dead', durationMs, errorCode: error.code };
}

/** The job goes back to the front of its queue untouched (worker shutdown after the grace period). */
export async function release(a: JobAttempt, closeLiveLog = true): Promise<JobOutcome> {
  a.exec.info('worker stopping: the job goes back to its queue untouched');
  if (closeLiveLog) await a.closeLiveLog();
  await a.deps.queue.release(a.taken);
  a.log.info({ duration: a.elapsedMs() }, 'job released back to its queue (worker stopping)');
  return { jobId: a.job.jobId, status: 'released', durationMs: a.elapsedMs() };
}

/** What the attempt produced, for its result message. */
export interface AttemptReport {
  readonly error: JobError | undefined;
  readonly files: ResultFiles;
  readonly list: ResultArtifact[];
  readonly logs: LogStreamEnd;
  readonly egress: ResultEgress | undefined;
  readonly storedSession: StoredSession | undefined;
}

/** One queue transition for a finished attempt: retry, done/failed/cancelled, or dead. */
export async function reportOutcome(a: JobAttempt, r: AttemptReport): Promise<JobOutcome> {
  const { job, taken, deps, config, attempt, log, redactor, trace } = a;
  const { error, files, list, logs, egress, storedSession } = r;
  const finishedAt = Date.now();
  const durationMs = finishedAt - a.started;
  const retryable = error !== undefined && error.code !== 'CANCELLED' && ERRORS[error.code].retryable;
  // Read again at the failure: a live change made while the job ran applies to it (../../live-config.ts).
  const retry = deps.retryPolicy?.(job);
  const maxAttempts = retry && job.maxAttempts === undefined ? retry.maxAttempts : a.maxAttempts;
  if (error && retryable && attempt < maxAttempts) {
    const delayMs = retryDelayMs(attempt, retry?.backoffBaseMs ?? config.retryBaseMs, retry?.backoffMaxMs ?? config.retryMaxMs);
    // The next attempt is the message as pushed with only `attempt` changed (unknown fields kept).
    const next = { ...(JSON.parse(taken.raw) as Record<string, unknown>), attempt: attempt + 1 };
    // An attempt that met a blocker is announced now (status 'retrying', published by the retry itself): the control
    // plane records its blocker and sends job.blocked for it, once per blocked attempt (docs/webhooks.md).
    const blocker = a.artifacts.blocker;
    const announce: ResultMessage | undefined = blocker && {
      jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId,
      success: false, status: 'retrying', duration: durationMs, attempt, workerId: config.workerId,
      finishedAt: new Date(finishedAt).toISOString(), error, files, artifacts: list, logs, blocker, ...trace.resultFields(),
    };
    const outcome = await deps.queue.retry(taken, JSON.stringify(next), finishedAt + delayMs, error, announce);
    await deps.queue.recordWorkerJob(config.workerId, false, durationMs, finishedAt);
    log.warn({ duration: durationMs, errorCode: error.code, error: error.message, attempt, maxAttempts, delayMs, outcome }, 'job failed transiently; retry scheduled');
    return { jobId: job.jobId, status: outcome === 'late' ? 'late' : 'retrying', durationMs, errorCode: error.code };
  }
  const status = !error ? 'done' : error.code === 'CANCELLED' ? 'cancelled' : retryable ? 'dead' : 'failed';
  // Built from parts that are already redacted where they carry text from the job (error messages, object names,
  // the hosts the browser was refused) — never by redacting the serialised message and parsing it again, which a
  // secret such as `true` or a job's own id would turn into invalid JSON or another job's result.
  const redacted: ResultMessage = {
    jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId,
    success: !error, status, duration: durationMs, attempt, workerId: config.workerId,
    finishedAt: new Date(finishedAt).toISOString(), ...(error ? { error } : {}), files, artifacts: list, logs,
    ...(egress ? { egress: { ...egress, blocked: egress.blocked.map((b) => ({ ...b, host: redactor.redact(b.host) })) } } : {}),
    ...(storedSession?.renewedUntil ? { session: { renewedUntil: storedSession.renewedUntil.toISOString() } } : {}),
    ...(a.artifacts.blocker ? { blocker: a.artifacts.blocker } : {}),
    ...trace.resultFields(),
  };
  if (status === 'dead') {
    const reason = `exhausted: ${attempt} of ${maxAttempts} attempts failed; last ${redacted.error!.code}: ${redacted.error!.message}`;
    return bury(a, reason, { jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, attempt, ...(redacted.blocker ? { blocker: redacted.blocker } : {}) },
      redacted.error as JobError, files, list);
  }
  // The worker's counters are kept in the same step; with takeNextFor the slot's next job comes back with it.
  const counted = { workerId: config.workerId, durationMs, finishedAt };
  const nextFor = deps.takeNextFor?.();
  const { outcome, next } = nextFor === undefined
    ? { outcome: await deps.queue.complete(taken, redacted, counted), next: undefined }
    : await deps.queue.completeAndTake(taken, redacted, counted, nextFor);
  const withNext = next ? { next } : {};
  if (outcome === 'recorded') {
    // The job id is spent: with REQUIRE_JOB_SIGNATURE a replay of it is refused (job-guard.ts).
    await rememberFinished(deps.redis, job.jobId, status).catch((e: unknown) => log.warn({ err: messageOf(e) }, 'could not mark the job finished (replays of it are not refused)'));
  }
  if (outcome === 'late') {
    log.warn({ duration: durationMs, status }, 'job outcome refused: the job already had one, or its lease was lost (counted as late)');
    return { jobId: job.jobId, status: 'late', durationMs, errorCode: error?.code, ...withNext };
  }
  if (error) log.warn({ duration: durationMs, status, errorCode: error.code, error: error.message }, 'job failed');
  else log.info({ duration: durationMs, status }, 'job done');
  return { jobId: job.jobId, status, durationMs, errorCode: error?.code, ...withNext };
}

/**
 * A page the portal did not deliver: Playwright navigation calls failing on the network (`net::ERR_…`) or timing
 * out. Transient; an error the script throws itself, or a failed click, is not.
 */
function isNavigationError(e: unknown): boolean {
  const m = messageOf(e);
  return /net::ERR_|NS_ERROR_NET/.test(m) || /^(page|frame)\.(goto|reload|goBack|goForward|waitForNavigation|waitForURL): Timeout/.test(m);
}

export function toJobError(e: unknown, phase: AttemptPhase, browser: Browser | undefined, redactor: Redactor, crashed = false): JobError {
  let code: ErrorCode;
  let message: string;
  const timeUp = isSriError(e) && (e.code === 'EXECUTION_TIMEOUT' || e.code === 'CANCELLED' || e.code === 'WORKER_SHUTDOWN');
  if ((crashed || (phase === 'script' && browser && !browser.isConnected())) && !timeUp) {
    // Whatever the script made of it (a failed call, an error of its own): the page or the browser under it died.
    code = 'BROWSER_CRASHED';
    message = crashed ? `The job's page crashed while the job ran: ${messageOf(e)}` : `The browser stopped while running the job: ${messageOf(e)}`;
  } else if (isSriError(e)) {
    code = e.code;
    message = e.message;
  } else if (browser && !browser.isConnected()) {
    code = 'BROWSER_ERROR';
    message = `The browser stopped while running the job: ${messageOf(e)}`;
  } else if (phase === 'script' && isNavigationError(e)) {
    code = 'NAVIGATION_ERROR';
    message = messageOf(e);
  } else if (phase === 'script') {
    code = 'SCRIPT_ERROR';
    message = messageOf(e);
  } else {
    code = phase === 'browser' ? 'BROWSER_ERROR' : 'INTERNAL';
    message = messageOf(e);
  }
  // Playwright appends a multi-line call log; the first lines say what failed.
  message = message.split('\n').slice(0, 3).join(' ').slice(0, 2000);
  return { code, message: redactor.redact(message) };
}
