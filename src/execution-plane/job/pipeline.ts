/**
 * One leased job from raw message to its outcome:
 * size → parse → validate → attempts left? → verify envelope → provider gate → a JobAttempt (attempt.ts) through its
 * stages (stages/*.ts): prepare (script verified, from S3 or a module; session; secrets; hosts) → browser (a fresh
 * context, egress, the script under the attempt's deadline) → evidence (upload) → report, one queue transition:
 * - success: completeJob 'done'; permanent failure: completeJob 'failed'; cancelled: completeJob 'cancelled';
 * - transient failure (retryable in ERRORS) with attempts left: retryJob (backoff with full jitter);
 *   without attempts left: buryJob (dead-letter list, status 'dead', result published);
 * - malformed, oversized or poisoned (lost its worker maxAttempts times): buryJob;
 * - worker shutdown after the grace period: releaseJob (back to the front of its queue, untouched).
 * Nothing here throws for a bad job; a throw means Redis or S3 failed while reporting (the lease then expires
 * and the job runs again).
 */
import type { Redis } from 'ioredis';
import type { WorkerConfig } from '../config.ts';
import type { BrowserPool } from '../browser.ts';
import type { JobQueue, Taken } from '../../shared/queue/job-queue.ts';
import type { ScriptRunner } from '../script/runner.ts';
import type { Tracer } from '../../shared/tracing.ts';
import type { ModuleLoader } from '../script/module-loader.ts';
import { ERRORS } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { BlobStore } from '../../shared/s3.ts';
import type { LogStreamEnd } from '../../shared/job-logs.ts';
import { MAX_CONSOLE_LINES } from './execution-log.ts';
import type { EgressProxy } from './egress-proxy.ts';
import { guardJob } from './job-guard.ts';
import { JobTrace } from './job-trace.ts';
import { parseJobMessage } from './message.ts';
import { gateJob, recordGateOutcome, type GateStepDeps } from './gate-step.ts';
import type { ProviderPacing } from '../../shared/provider-pacing.ts';
import type { EvidenceParser } from './parse-evidence.ts';
import type { RetryPolicy, WorkerFeatures } from '../../shared/live-config.ts';
import type { BlockerKind, JobMessage } from '../../shared/schemas.ts';
import { JobAttempt } from './attempt.ts';
import { prepareAttempt, type Prepared } from './stages/prepare.ts';
import { runBrowserStage, type BrowserStageResult } from './stages/browser.ts';
import { addParsedEvidence, uploadEvidence } from './stages/evidence.ts';
import { bury, release, reportOutcome, toJobError, type JobError } from './stages/report.ts';

export interface PipelineDeps {
  readonly config: WorkerConfig;
  readonly redis: Redis;
  readonly queue: JobQueue;
  readonly blobStore: BlobStore;
  readonly browsers: BrowserPool;
  readonly egress: EgressProxy;
  readonly runner: ScriptRunner;
  readonly logger: Logger;
  /** The worker's tracer: each attempt's spans (job-trace.ts). */
  readonly tracer: Tracer;
  /**
   * Asked when a job is about to be completed: the worker id to lease this slot's next job to in the same
   * round trip (JobQueue.completeAndTake), or undefined when the slot should not take one (draining).
   */
  readonly takeNextFor?: () => string | undefined;
  /** Told the live log's totals when a job attempt closes it (the worker's dropped-lines metrics). */
  readonly onLiveLogClosed?: (end: LogStreamEnd) => void;
  /** The provider gate (gate-step.ts, docs/providers.md): pacing, maintenance windows, circuit breaker. @default none: nothing paced */
  readonly gate?: GateStepDeps;
  /** Module bundles of jobs that name `module` (module-loader.ts). @default one loader per blob store (moduleLoaderOf) */
  readonly modules?: ModuleLoader;
  /** Reads the XML evidence of its provider's jobs into parsed data (parse-evidence.ts, docs/documents.md). @default none */
  readonly evidenceParser?: EvidenceParser;
  /** The live retry policy of a job's provider (../live-config.ts), asked at start and at failure. @default the environment's */
  readonly retryPolicy?: (job: JobMessage) => RetryPolicy;
  /** The live feature flags of a job's provider (../live-config.ts), read once when its attempt starts. @default all on */
  readonly features?: (job: JobMessage) => WorkerFeatures;
  /** Told each kind of blocker a job attempt meets, once per attempt (the worker's blocker metrics; blocker-watch.ts). */
  readonly onBlocker?: (providerName: string, kind: BlockerKind) => void;
}

export interface JobOutcome {
  readonly jobId?: string;
  readonly status: 'done' | 'failed' | 'cancelled' | 'dead' | 'retrying' | 'released' | 'late' | 'deferred';
  readonly durationMs: number;
  readonly errorCode?: string;
  /** The slot's next job, leased with the completion (takeNextFor): the caller must run or release it. */
  readonly next?: Taken;
}

export async function processJob(taken: Taken, deps: PipelineDeps, signal: AbortSignal): Promise<JobOutcome> {
  const trace = new JobTrace(deps.tracer, taken, { workerId: deps.config.workerId, leaseMs: deps.config.leaseMs });
  try {
    const outcome = await processLeased(taken, deps, signal, trace);
    trace.end(outcome);
    return outcome;
  } catch (e) {
    trace.abort(e);
    throw e;
  }
}

async function processLeased(taken: Taken, deps: PipelineDeps, signal: AbortSignal, trace: JobTrace): Promise<JobOutcome> {
  const started = Date.now();
  const leased = { taken, deps, trace, started };
  const bytes = Buffer.byteLength(taken.raw, 'utf8');
  const parsed = parseJobMessage(taken.raw, taken.orgId);
  trace.begin(parsed.ok ? parsed.job : undefined);
  if (!parsed.ok || bytes > deps.config.maxJobBytes) {
    const reason = parsed.ok ? `oversized: ${bytes} bytes, over WORKER_MAX_JOB_BYTES (${deps.config.maxJobBytes})` : parsed.reason;
    const report = parsed.ok
      ? { jobId: parsed.job.jobId, orgId: parsed.job.orgId, userId: parsed.job.userId, providerId: parsed.job.providerId }
      : parsed.report;
    return bury(leased, reason, report && { ...report, attempt: taken.attempt }, { code: 'INVALID_JOB', message: `Invalid job message: ${reason}` });
  }
  const job = parsed.job;
  if (taken.jobId !== job.jobId) {
    // Valid JSON for Node that Redis's Lua cjson could not read (nesting deeper than 1000, a lone surrogate
    // escape, …): the queue leased it without a job id, so no status, lease index or outcome could be kept for
    // it. Run nothing; dead-letter it with the job id read here, so it is visible and can be fixed and requeued.
    const reason = `unreadable by the queue: Redis could not decode this message (deeply nested or invalid Unicode escapes); simplify the message and push it again`;
    return bury(leased, reason, { jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, attempt: taken.attempt },
      { code: 'INVALID_JOB', message: `Invalid job message: ${reason}` });
  }
  const maxAttempts = job.maxAttempts ?? deps.retryPolicy?.(job).maxAttempts ?? deps.config.maxAttempts;
  if (taken.recovered && taken.attempt > maxAttempts) {
    // Retries stop at maxAttempts; a recovery raised the attempt past it: the job lost its worker again and again.
    // (A job queued again by hand with a higher attempt runs: recovered is false for it.)
    const reason = `poisoned: attempt ${taken.attempt} of ${maxAttempts}; the job lost its worker on every attempt`;
    return bury(leased, reason, { jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, attempt: taken.attempt },
      { code: 'JOB_POISONED', message: ERRORS.JOB_POISONED.message });
  }
  // Envelope and replay checks come before anything is written under the job's ids (job-guard.ts).
  trace.enter('verify');
  const refused = await guardJob(job, deps.config, deps.redis);
  if (refused) {
    trace.fail(refused.code, refused.message);
    return bury(leased, `${refused.code}: ${refused.message}`, { jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, attempt: taken.attempt },
      { code: refused.code, message: refused.message });
  }
  // The provider's gate (gate-step.ts): a job that may not start yet waits, deferred, with its attempt unchanged.
  const gated = deps.gate ? await gateJob(job, taken, deps.gate) : undefined;
  if (gated?.deferred) return { jobId: job.jobId, status: gated.outcome, durationMs: Date.now() - started };
  const attempt = new JobAttempt(job, taken, maxAttempts, deps, signal, trace, started);
  try {
    return await runAttempt(attempt, gated?.pacing);
  } finally {
    await attempt.dispose();
  }
}

/** A valid job's attempt through its stages: prepare → browser → (release on shutdown) → evidence → report. */
async function runAttempt(a: JobAttempt, pacing: ProviderPacing | undefined): Promise<JobOutcome> {
  const { job, config, exec, trace, redactor } = a;
  const traceId = trace.logFields().traceId;
  exec.info(`job ${job.jobId}: flow ${job.flowId}@${job.flowVersion}, provider ${job.providerId} (${job.providerName}), attempt ${a.attempt} of ${a.maxAttempts}, worker ${config.workerId}${traceId ? `, trace ${traceId}` : ''}`);
  a.log.info('job started');

  let error: JobError | undefined;
  let prepared: Prepared | undefined;
  const browserStage: BrowserStageResult = {};
  try {
    prepared = await prepareAttempt(a);
    await runBrowserStage(a, prepared, pacing, browserStage);
  } catch (e) {
    error = toJobError(e, a.phase, a.browser, redactor, a.crashed);
    // A flow that failed on a 5xx page of its portal failed because of the portal (gate-step.ts).
    if (browserStage.portal) error = browserStage.portal.explain(error, (t) => redactor.redact(t));
    trace.fail(error.code, error.message);
    exec.error(`${error.code}: ${error.message}`);
  }
  // An abort reaches a job that is past its script too (while loading, uploading): its reason decides.
  const aborted = a.abortKind();
  if (aborted === 'cancelled') error = { code: 'CANCELLED', message: ERRORS.CANCELLED.message };
  // Shutdown after the grace period: the job goes back untouched; its evidence would be overwritten anyway.
  if (aborted === 'shutdown' && error) return release(a);

  trace.enter('upload');
  const logs = await a.closeLiveLog();
  if (exec.consoleLinesDropped) exec.warn(`page console: ${exec.consoleLinesDropped} line(s) beyond the first ${MAX_CONSOLE_LINES} were not kept`);
  await addParsedEvidence(a);
  const { files, list, uploadError } = await uploadEvidence(a);
  // The worker shut down during the upload (its S3 calls were cancelled): the job goes back untouched.
  if (uploadError && a.abortKind() === 'shutdown') return release(a, false);
  if (uploadError) {
    a.log.error({ err: redactor.redact(uploadError.message) }, 'uploading the evidence failed');
    // A download that could not be stored fails the job as UPLOAD_FAILED (retried), also when the script, handed the
    // helper's error, threw one of its own with it.
    if (!error || (a.artifacts.storeError && error.code === 'SCRIPT_ERROR')) {
      error = { code: 'UPLOAD_FAILED', message: `Uploading the evidence to S3 failed: ${redactor.redact(uploadError.message)}` };
    }
    trace.fail('UPLOAD_FAILED', redactor.redact(uploadError.message));
  }
  // The provider's breaker hears what the attempt said of the portal before the queue does (gate-step.ts): whoever
  // sees its result (the API, a webhook, a person about to run it again) finds the breaker as this attempt left it.
  if (pacing && a.deps.gate) await recordGateOutcome(a.job, error?.code, pacing, a.deps.gate, a.artifacts.blocker?.kind);
  trace.enter('publish');
  return reportOutcome(a, { error, files, list, logs, egress: browserStage.egress, storedSession: prepared?.sessions.stored });
}
