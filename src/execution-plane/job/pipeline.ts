/**
 * One leased job from raw message to its outcome:
 * size → parse → validate → attempts left? → verify hash → verify signature → (script from S3) → session → run in a
 * fresh browser context → upload evidence → one queue transition:
 * - success: completeJob 'done'; permanent failure: completeJob 'failed'; cancelled: completeJob 'cancelled';
 * - transient failure (retryable in ERRORS) with attempts left: retryJob (backoff with full jitter);
 *   without attempts left: buryJob (dead-letter list, status 'dead', result published);
 * - malformed, oversized or poisoned (lost its worker maxAttempts times): buryJob;
 * - worker shutdown after the grace period: releaseJob (back to the front of its queue, untouched).
 * Nothing here throws for a bad job; a throw means Redis or S3 failed while reporting (the lease then expires
 * and the job runs again).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { WorkerConfig } from '../config.ts';
import type { BrowserPool, PreparedContext } from '../browser.ts';
import type { JobQueue, Taken } from '../../shared/queue/job-queue.ts';
import type { ScriptRunner } from '../script/runner.ts';
import type { Tracer } from '../../shared/tracing.ts';
import { verifyJobScript, type VerifiedScript } from '../script/verified-script.ts';
import { moduleLoaderOf, type ModuleLoader } from '../script/module-loader.ts';
import { moduleRefScript } from '../../shared/modules/ref.ts';
import { ERRORS, isSriError, SriError, type ErrorCode } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/logger.ts';
import { isNotFound, parseS3Uri, s3Uri, type BlobStore } from '../../shared/s3.ts';
import type { Keyring } from '../../shared/sealed.ts';
import type { BlockerKind, Cookie, ResultBlocker, JobMessage, ResultArtifact, ResultFiles, ResultMessage, Session } from '../../shared/schemas.ts';
import { decodeSession, openJobSecrets, transportKeyring } from '../../shared/transport-secrets.ts';
import { totpSecretOf } from '../../shared/totp.ts';
import { boundWait, JobClock, withDeadline } from './deadline.ts';
import { watchJobBlockers } from './blocker-watch.ts';
import { captchaSolverFor } from './captcha.ts';
import { JobHandoff } from './handoff.ts';
import { ExecutionLog, MAX_CONSOLE_LINES } from './execution-log.ts';
import { createJobLogBatcher } from '../logs/redis-sink.ts';
import type { LogStreamEnd } from '../../shared/job-logs.ts';
import { createHelpers, JobArtifacts, type Artifact, type EvidenceStore } from './helpers.ts';
import type { EgressProxy } from './egress-proxy.ts';
import { describeJobHosts, egressPolicyMissingError, egressPolicyOf, resolveJobHosts } from './egress-hosts.ts';
import { egressLimitError, EgressTally, type ResultEgress } from './egress-report.ts';
import { guardJob, rememberFinished } from './job-guard.ts';
import { JobTrace } from './job-trace.ts';
import { parseJobMessage } from './message.ts';
import { gateJob, recordGateOutcome, watchPortal, type GateStepDeps, type PortalWatch } from './gate-step.ts';
import type { ProviderPacing } from '../../shared/provider-pacing.ts';
import type { RetryPolicy } from '../../shared/live-config.ts';
import { Redactor, SecretValues } from './redactor.ts';
import { parseXmlEvidence, withParsedEvidence, type EvidenceParser } from './parse-evidence.ts';
import { recordingOf, reserveContext } from './recording.ts';
import { ensureSession, loadSessionHealth, saveRefreshedCookies, sessionToCheck, StoredSession, type SessionHealth } from './session-health.ts';

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

const UPLOAD_TIMEOUT_MS = 60_000;

type JobError = { code: ErrorCode; message: string };

/** The abort reason the worker uses when a job's lease was lost: the job is someone else's now. */
export const LEASE_LOST = 'lease-lost';

/** Full jitter: a random delay in [0, min(cap, base × 2^(attempt-1))] (attempt = the attempt that failed). */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30)));
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
  const bytes = Buffer.byteLength(taken.raw, 'utf8');
  const parsed = parseJobMessage(taken.raw, taken.orgId);
  trace.begin(parsed.ok ? parsed.job : undefined);
  if (!parsed.ok || bytes > deps.config.maxJobBytes) {
    const reason = parsed.ok ? `oversized: ${bytes} bytes, over WORKER_MAX_JOB_BYTES (${deps.config.maxJobBytes})` : parsed.reason;
    const report = parsed.ok
      ? { jobId: parsed.job.jobId, orgId: parsed.job.orgId, userId: parsed.job.userId, providerId: parsed.job.providerId }
      : parsed.report;
    return bury(taken, reason, report && { ...report, attempt: taken.attempt }, { code: 'INVALID_JOB', message: `Invalid job message: ${reason}` }, deps, trace, started);
  }
  const job = parsed.job;
  if (taken.jobId !== job.jobId) {
    // Valid JSON for Node that Redis's Lua cjson could not read (nesting deeper than 1000, a lone surrogate
    // escape, …): the queue leased it without a job id, so no status, lease index or outcome could be kept for
    // it. Run nothing; dead-letter it with the job id read here, so it is visible and can be fixed and requeued.
    const reason = `unreadable by the queue: Redis could not decode this message (deeply nested or invalid Unicode escapes); simplify the message and push it again`;
    return bury(taken, reason, { jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, attempt: taken.attempt },
      { code: 'INVALID_JOB', message: `Invalid job message: ${reason}` }, deps, trace, started);
  }
  const maxAttempts = job.maxAttempts ?? deps.retryPolicy?.(job).maxAttempts ?? deps.config.maxAttempts;
  if (taken.recovered && taken.attempt > maxAttempts) {
    // Retries stop at maxAttempts; a recovery raised the attempt past it: the job lost its worker again and again.
    // (A job queued again by hand with a higher attempt runs: recovered is false for it.)
    const reason = `poisoned: attempt ${taken.attempt} of ${maxAttempts}; the job lost its worker on every attempt`;
    return bury(taken, reason, { jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, attempt: taken.attempt },
      { code: 'JOB_POISONED', message: ERRORS.JOB_POISONED.message }, deps, trace, started);
  }
  // Envelope and replay checks come before anything is written under the job's ids (job-guard.ts).
  trace.enter('verify');
  const refused = await guardJob(job, deps.config, deps.redis);
  if (refused) {
    trace.fail(refused.code, refused.message);
    return bury(taken, `${refused.code}: ${refused.message}`, { jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, attempt: taken.attempt },
      { code: refused.code, message: refused.message }, deps, trace, started);
  }
  // The provider's gate (gate-step.ts): a job that may not start yet waits, deferred, with its attempt unchanged.
  if (!deps.gate) return runValidJob(job, taken, maxAttempts, deps, signal, started, trace);
  const gated = await gateJob(job, taken, deps.gate);
  if (gated.deferred) return { jobId: job.jobId, status: gated.outcome, durationMs: Date.now() - started };
  const outcome = await runValidJob(job, taken, maxAttempts, deps, signal, started, trace, gated.pacing);
  await recordGateOutcome(job, outcome.status, outcome.errorCode, gated.pacing, deps.gate);
  return outcome;
}

/** Dead-letters a leased message; with `report`, status 'dead' and the error result published. */
async function bury(
  taken: Taken, reason: string, report: { jobId: string; orgId: string; userId: string; providerId: string; attempt: number; blocker?: ResultBlocker } | undefined,
  error: JobError, deps: PipelineDeps, trace: JobTrace, started: number, files: ResultFiles = { log: '', screenshots: [] },
  artifacts?: ResultArtifact[],
): Promise<JobOutcome> {
  const { config, queue, logger } = deps;
  const durationMs = Date.now() - started;
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

async function runValidJob(job: JobMessage, taken: Taken, maxAttempts: number, deps: PipelineDeps, signal: AbortSignal, started: number, trace: JobTrace,
  pacing?: ProviderPacing): Promise<JobOutcome> {
  const { config } = deps;
  const traceFields = trace.logFields();
  const log = deps.logger.child({ jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, ...traceFields });
  const redactor = new Redactor([config.scriptSigningSecret, config.s3SecretKey]);
  // Parsed data is the portal's data: only values that *are* a secret are replaced there (redactor.ts SecretValues).
  const secretValues = new SecretValues([config.scriptSigningSecret, config.s3SecretKey]);
  // Live log: every execution.log line (redacted) is also batched into the job's Redis stream; never blocks.
  const liveLog = createJobLogBatcher(deps.redis, config, job.jobId, {
    onError: (e) => log.warn({ err: redactor.redact(messageOf(e)) }, 'a live-log batch could not be written (counted as dropped)'),
  });
  const exec = new ExecutionLog(redactor, (line) => liveLog.append(line));
  const closeLiveLog = async (): Promise<LogStreamEnd> => {
    const s = await liveLog.close();
    deps.onLiveLogClosed?.(s);
    // After close: in execution.log (and the result), no longer streamed.
    if (s.droppedLines) exec.warn(`live log: ${s.droppedLines} line(s) in ${s.droppedBatches} batch(es) were not streamed (Redis fell behind); this execution.log is complete`);
    return s;
  };
  const artifacts = new JobArtifacts();
  const attempt = taken.attempt;
  exec.info(`job ${job.jobId}: flow ${job.flowId}@${job.flowVersion}, provider ${job.providerId} (${job.providerName}), attempt ${attempt} of ${maxAttempts}, worker ${config.workerId}${traceFields.traceId ? `, trace ${traceFields.traceId}` : ''}`);
  log.info('job started');

  let error: JobError | undefined;
  let phase: 'prepare' | 'browser' | 'script' = 'prepare';
  let browser: Browser | undefined;
  const crash = { crashed: false };
  let egress: ResultEgress | undefined;
  let portal: PortalWatch | undefined;
  /** The connection's session, whose renewedUntil says when this job saved renewed cookies to it. */
  let storedSession: StoredSession | undefined;
  try {
    const script = await loadVerifiedScript(job, deps, (line) => exec.info(line));
    exec.info(`script verified: sha256 ${script.scriptHash}, signature valid`);
    trace.enter('session');
    const keyring = transportKeyring(config);
    const { stored, raw: storedRaw } = await loadSession(job, deps.redis, keyring);
    redactor.add(stored.cookies.map((c) => c.value));
    redactor.add(Object.values(stored.credentials ?? {}));
    // HttpOnly cookies are the session's tokens: no page can read them, so no data the page shows can be one. The
    // others (a locale, a consent flag) are session metadata the page may well show, and stay in parsed data.
    secretValues.add(stored.cookies.filter((c) => c.httpOnly === true).map((c) => c.value));
    secretValues.add(Object.values(stored.credentials ?? {}));
    // TOTP seeds: the base32 text as stored (normalised by the API); their codes are added as fillTotp makes them.
    const seeds = Object.values(stored.totp ?? {}).map(totpSecretOf);
    redactor.add(seeds);
    secretValues.add(seeds);
    exec.info(`session loaded: ${stored.cookies.length} cookie(s), ${Object.keys(stored.credentials ?? {}).length} credential(s)${seeds.length ? `, ${seeds.length} TOTP seed(s)` : ''}`);
    // The organisation's secrets the flow references (sealed by the control plane for this job): fillSecret looks
    // them up before the session's credentials. Only their names are logged.
    const jobSecrets = job.secrets === undefined ? {} : openJobSecrets(keyring, job, job.secrets);
    redactor.add(Object.values(jobSecrets));
    secretValues.add(Object.values(jobSecrets));
    if (job.secrets !== undefined) exec.info(`job secrets: ${Object.keys(jobSecrets).map((n) => JSON.stringify(n)).join(', ') || 'none'}`);
    const session: Session = { ...stored, credentials: { ...stored.credentials, ...jobSecrets } };

    // Deny by default: the job's allowedHosts, else its provider's from the catalogue, else nothing (egress-hosts.ts).
    const hosts = await resolveJobHosts(job, deps.redis, config.requireJobSignature);
    if (hosts.source === 'missing') exec.warn(describeJobHosts(hosts, job.providerName));
    else exec.info(describeJobHosts(hosts, job.providerName));
    const policy = egressPolicyOf(hosts);
    // The provider's session check and login flow (verified like the script), and the session to save cookies to.
    const sessions: JobSessions = {
      health: await loadSessionHealth(deps.redis, job.providerName, config.scriptSigningSecret, exec),
      stored: new StoredSession(deps.redis, keyring, job, storedRaw, stored),
    };
    storedSession = sessions.stored;

    phase = 'browser';
    trace.enter('run');
    const tally = new EgressTally();
    const onBlocked = tally.onBlocked;
    // Every job's context goes through the egress proxy, under the same policy as the route guard
    // (docs/security.md "Egress"). Without one, a refusal is the job's failure: EGRESS_POLICY_MISSING.
    const missing = (cause?: unknown) => egressPolicyMissingError(job.providerName, tally.blockedTotal, cause);
    // Over its byte budget the job ends at once: closing the context fails every pending page call.
    let closeContext: (() => void) | undefined;
    let reserved: PreparedContext;
    try {
      // A context of its own, prepared ahead or opened now: no cookie, storage or cache of another job (invariant 3).
      // A job that asks for recordings gets a context of its own with a video (recording.ts).
      reserved = await reserveContext(job, { browsers: deps.browsers, maxBytes: config.maxRecordingBytes, exec, artifacts, store: evidenceStore(job, deps), redact: (t) => redactor.redact(t) });
    } catch (e) {
      if (isSriError(e)) throw e;
      throw new SriError('BROWSER_ERROR', `Could not open a browser context: ${messageOf(e).split('\n')[0]}`, { cause: e });
    }
    browser = reserved.browser;
    const lease = reserved.arm(policy, onBlocked, { maxBytes: config.egressMaxBytes, onLimitExceeded: () => closeContext?.() });
    try {
      const context = reserved.context;
      closeContext = () => { void context.close().catch(() => {}); };
      portal = watchPortal(context, job.providerName, pacing, deps.gate, {
        signal,
        onHeld: (until, used, ceiling) => exec.info(`provider ${job.providerName}: ${used} of its ${ceiling} requests per minute are used (every organisation together); the job's next page action waits until ${new Date(until).toISOString()}`),
      });
      const evidence = { store: evidenceStore(job, deps), charge: (n: number) => lease.charge(n), redact: (t: string) => redactor.redact(t), protect: (v: string) => { redactor.add([v]); secretValues.add([v]); }, secretValues };
      await runInBrowser(job, taken, script, session, reserved, deps, exec, artifacts, evidence, signal, () => { phase = 'script'; }, sessions, crash, portal.beforeAction);
    } catch (e) {
      throw lease.limitExceeded() ? egressLimitError(config.egressMaxBytes, e) : hosts.source === 'missing' && tally.blockedTotal ? missing(e) : e;
    } finally {
      lease.release();
      egress = tally.finish(lease, (line) => exec.warn(line));
    }
    if (lease.limitExceeded()) throw egressLimitError(config.egressMaxBytes);
    if (hosts.source === 'missing' && tally.blockedTotal) throw missing();
    exec.info('script finished');
    // Cookies the portal renewed during the job go back to the connection (a daily schedule keeps its session).
    if (sessions.finalCookies) await saveRefreshedCookies(sessions.stored, sessions.finalCookies, exec);
  } catch (e) {
    error = toJobError(e, phase, browser, redactor, crash.crashed);
    // A flow that failed on a 5xx page of its portal failed because of the portal (gate-step.ts).
    if (portal) error = portal.explain(error, (t) => redactor.redact(t));
    trace.fail(error.code, error.message);
    exec.error(`${error.code}: ${error.message}`);
  }
  // An abort reaches a job that is past its script too (while loading, uploading): its reason decides.
  const abortReason: unknown = signal.aborted ? signal.reason : undefined;
  if (isSriError(abortReason) && abortReason.code === 'CANCELLED') error = { code: 'CANCELLED', message: ERRORS.CANCELLED.message };
  if (isSriError(abortReason) && abortReason.code === 'WORKER_SHUTDOWN' && abortReason.details !== LEASE_LOST && error) {
    // Shutdown after the grace period: the job goes back untouched; its evidence would be overwritten anyway.
    exec.info('worker stopping: the job goes back to its queue untouched');
    await closeLiveLog();
    await deps.queue.release(taken);
    log.info({ duration: Date.now() - started }, 'job released back to its queue (worker stopping)');
    return { jobId: job.jobId, status: 'released', durationMs: Date.now() - started };
  }

  trace.enter('upload');
  const logs = await closeLiveLog();
  if (exec.consoleLinesDropped) exec.warn(`page console: ${exec.consoleLinesDropped} line(s) beyond the first ${MAX_CONSOLE_LINES} were not kept`);
  if (deps.evidenceParser) await addParsedEvidence(deps.evidenceParser, job, exec, artifacts, deps);
  const { files, list, uploadError } = await uploadEvidence(job, exec, artifacts, secretValues, deps);
  if (uploadError) {
    log.error({ err: redactor.redact(uploadError.message) }, 'uploading the evidence failed');
    // A download that could not be stored fails the job as UPLOAD_FAILED (retried), also when the script, handed the
    // helper's error, threw one of its own with it.
    if (!error || (artifacts.storeError && error.code === 'SCRIPT_ERROR')) {
      error = { code: 'UPLOAD_FAILED', message: `Uploading the evidence to S3 failed: ${redactor.redact(uploadError.message)}` };
    }
    trace.fail('UPLOAD_FAILED', redactor.redact(uploadError.message));
  }
  trace.enter('publish');

  const finishedAt = Date.now();
  const durationMs = finishedAt - started;
  const retryable = error !== undefined && error.code !== 'CANCELLED' && ERRORS[error.code].retryable;
  // Read again at the failure: a live change made while the job ran applies to it (issue 14).
  const retry = deps.retryPolicy?.(job);
  if (retry && job.maxAttempts === undefined) maxAttempts = retry.maxAttempts;
  if (error && retryable && attempt < maxAttempts) {
    const delayMs = retryDelayMs(attempt, retry?.backoffBaseMs ?? config.retryBaseMs, retry?.backoffMaxMs ?? config.retryMaxMs);
    // The next attempt is the message as pushed with only `attempt` changed (unknown fields kept).
    const next = { ...(JSON.parse(taken.raw) as Record<string, unknown>), attempt: attempt + 1 };
    const outcome = await deps.queue.retry(taken, JSON.stringify(next), finishedAt + delayMs, error);
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
    ...(artifacts.blocker ? { blocker: artifacts.blocker } : {}),
    ...trace.resultFields(),
  };
  if (status === 'dead') {
    const reason = `exhausted: ${attempt} of ${maxAttempts} attempts failed; last ${redacted.error!.code}: ${redacted.error!.message}`;
    return bury(taken, reason, { jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, attempt, ...(redacted.blocker ? { blocker: redacted.blocker } : {}) },
      redacted.error as JobError, deps, trace, started, files, list);
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
 * Inline content, else the object scriptKey names; hash and signature verified either way. A module job: the signed
 * reference, then the bundle it resolves to (module-loader.ts), which runs as a script does.
 */
async function loadVerifiedScript(job: JobMessage, deps: PipelineDeps, note: (line: string) => void): Promise<VerifiedScript> {
  if (job.module !== undefined) {
    verifyJobScript(moduleRefScript(job.module), job.scriptHash, job.signature, deps.config.scriptSigningSecret);
    const m = await (deps.modules ?? moduleLoaderOf(deps.blobStore, deps.config)).load(job.module, job.orgId);
    note(`module ${job.module}: running ${m.name}@${m.version} (signature and checksums verified)`);
    return m.script;
  }
  let text = job.scriptContent;
  if (text === undefined) {
    const key = job.scriptKey!;
    let body: Buffer | undefined;
    try {
      body = await boundWait(deps.blobStore.get(deps.config.s3ScriptsBucket, key), UPLOAD_TIMEOUT_MS, 'reading the script');
    } catch (e) {
      if (isNotFound(e)) body = undefined;
      else throw new SriError('SERVICE_UNAVAILABLE', `Could not read the script ${key} from S3: ${(e as Error).message}`);
    }
    if (!body) throw new SriError('SCRIPT_NOT_FOUND', `Script ${key} is not in bucket ${deps.config.s3ScriptsBucket}`);
    text = body.toString('utf8');
  }
  return verifyJobScript(text, job.scriptHash, job.signature, deps.config.scriptSigningSecret);
}

/**
 * The session: sealed by the API under TRANSPORT_KEYS, or plain JSON written by hand (transport-secrets.ts), with
 * the value as stored (cookies are saved back only over it: session-health.ts).
 */
async function loadSession(job: JobMessage, redis: Redis, keyring: Keyring): Promise<{ stored: Session; raw: string }> {
  const key = keys.session(job.orgId, job.userId, job.providerName);
  const raw = await redis.get(key);
  if (raw === null) throw new SriError('SESSION_NOT_FOUND', 'Session not found');
  return { stored: decodeSession(keyring, key, raw), raw };
}

/** The job's session health: the provider's check and login flow, the stored session, the cookies at the end. */
interface JobSessions {
  readonly health: SessionHealth | undefined;
  readonly stored: StoredSession;
  /** The context's cookies when the script ended (unset when the context was already closing). */
  finalCookies?: Awaited<ReturnType<BrowserContext['cookies']>>;
}

type PlaywrightCookie = Parameters<BrowserContext['addCookies']>[0][number];

/** Playwright wants either `url`, or `domain` + `path`, per cookie; cookies with neither cannot be placed. */
export function toPlaywrightCookies(cookies: readonly Cookie[], warn: (text: string) => void): PlaywrightCookie[] {
  const out: PlaywrightCookie[] = [];
  for (const c of cookies) {
    const common = {
      name: c.name, value: c.value,
      ...(c.expires !== undefined ? { expires: c.expires } : {}),
      ...(c.httpOnly !== undefined ? { httpOnly: c.httpOnly } : {}),
      ...(c.secure !== undefined ? { secure: c.secure } : {}),
      ...(c.sameSite !== undefined ? { sameSite: c.sameSite } : {}),
    };
    if (c.url) out.push({ ...common, url: c.url });
    else if (c.domain) out.push({ ...common, domain: c.domain, path: c.path ?? '/' });
    else warn(`cookie "${c.name}" has neither url nor domain; it was not loaded`);
  }
  return out;
}

/** What the helpers need to keep evidence: where downloads go, the job's byte budget, and the job's secrets. */
interface EvidenceIo {
  readonly store: EvidenceStore;
  readonly charge: (bytes: number) => boolean;
  readonly redact: (text: string) => string;
  /** Makes a value produced during the job (a TOTP code) one of its secrets: redacted in logs and errors, replaced in parsed data. */
  readonly protect: (value: string) => void;
  readonly secretValues: SecretValues;
}

/** The job's prefix in the results bucket, for downloads stored as they finish. */
function evidenceStore(job: JobMessage, deps: PipelineDeps): EvidenceStore {
  const bucket = deps.config.s3ResultsBucket;
  const prefix = `results/${job.orgId}/${job.userId}/${job.jobId}/`;
  return { put: (name, body, contentType, signal) => deps.blobStore.put(bucket, prefix + name, body, contentType, { signal }) };
}

async function runInBrowser(
  job: JobMessage, taken: Taken, script: VerifiedScript, session: Session, reserved: PreparedContext, deps: PipelineDeps,
  exec: ExecutionLog, artifacts: JobArtifacts, evidence: EvidenceIo, signal: AbortSignal, scriptStarts: () => void, sessions: JobSessions,
  crash: { crashed: boolean },
  beforeAction: (() => Promise<void>) | undefined,
): Promise<void> {
  const { config } = deps;
  const context = reserved.context;
  const attempt = taken.attempt;
  const runStarted = Date.now();
  let closing = false;
  let scriptRuns = false;
  let blockers: ReturnType<typeof watchJobBlockers> | undefined;
  context.once('close', () => { closing = true; });
  try {
    context.setDefaultTimeout(config.playwrightTimeoutMs);
    context.setDefaultNavigationTimeout(config.playwrightTimeoutMs);
    // The host guard was installed when the context was prepared (browser.ts); `arm` gave it this job's policy.
    const cookies = toPlaywrightCookies(session.cookies, (t) => exec.warn(t));
    try {
      if (cookies.length) await context.addCookies(cookies);
    } catch (e) {
      throw new SriError('SESSION_NOT_FOUND', `Session not found: the browser refused its cookies (${(e as Error).message.split('\n')[0]}); connect the provider again.`);
    }
    await recordingOf(context)?.start(); // after the cookies: their values are not in the trace
    // The page's console (the portal's own and the script's `evaluate`), every page of the context.
    context.on('console', (m) => exec.console(m.type(), m.text()));
    // The prepared context's one page, blank until the script navigates.
    const page = reserved.page;
    // A page whose renderer crashed answers nothing more: the job ends at once (BROWSER_CRASHED, retried) instead of
    // waiting for its deadline; the context is closed with it, and the slot's next job has a fresh one anyway.
    const onCrash = () => {
      if (crash.crashed) return;
      crash.crashed = true;
      exec.error('the page crashed (its renderer process died)');
      closing = true;
      void context.close().catch(() => {});
    };
    page.on('crash', onCrash);
    context.on('page', (p) => p.on('crash', onCrash));
    // Popups and window.open: at most WORKER_MAX_PAGES open at once; the rest are closed as they open.
    let pagesClosed = 0;
    context.on('page', (p) => {
      if (context.pages().length <= config.maxPages) return;
      if (++pagesClosed === 1) exec.warn(`the job opened more than ${config.maxPages} pages at once (WORKER_MAX_PAGES); further pages are closed as they open`);
      void p.close().catch(() => {});
    });
    const timeoutMs = job.timeoutMs ?? config.executionTimeoutMs;
    // The job's run time, paused while it waits for a person (deadline.ts JobClock, handoff.ts).
    const clock = new JobClock(timeoutMs);
    const handoff = new JobHandoff(page, {
      redis: deps.redis, queue: deps.queue, taken, jobId: job.jobId, orgId: job.orgId, attempt, workerId: config.workerId,
      maxTimeoutMs: config.handoffMaxMs, frameIntervalMs: Math.ceil(1000 / Math.min(30, config.liveViewFps)), frameQuality: 60,
      clock, signal, exec, logger: deps.logger,
      announce: (state) => ({
        jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, success: false, status: 'waiting_for_user',
        duration: Date.now() - runStarted, attempt, workerId: config.workerId, finishedAt: new Date().toISOString(),
        files: { log: '', screenshots: [] }, handoff: { reason: evidence.redact(state.reason), expiresAt: state.expiresAt },
      }),
    });
    // Blocker classification after each navigation and at a failure (blocker-watch.ts, docs/scripts.md "Blockers").
    blockers = watchJobBlockers(context, page, { exec, redact: evidence.redact, loggedOut: sessions.health?.check, artifacts, onBlocker: deps.onBlocker && ((k) => deps.onBlocker!(job.providerName, k)) });
    const helpers = createHelpers({
      blockers,
      handoff: (reason, o) => handoff.request(reason, o),
      captcha: { solver: captchaSolverFor(config), signal, handoff: (reason, source) => handoff.request(reason, { source }) },
      page, credentials: session.credentials ?? {}, totp: session.totp ?? {}, protect: evidence.protect, exec, artifacts, timeoutMs: config.playwrightTimeoutMs,
      limits: { maxScreenshots: config.maxScreenshots, maxDownloads: config.maxDownloads, maxDownloadBytes: config.maxDownloadBytes },
      store: evidence.store, charge: evidence.charge, redact: evidence.redact, ...(beforeAction ? { beforeAction } : {}),
    });
    const jobContext = Object.freeze({
      jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId,
      flowId: job.flowId, flowVersion: job.flowVersion, attempt,
    });
    scriptStarts();
    reserved.to('running');
    // Before the flow's steps: is the portal session still logged in? Logged out, the provider's login flow signs in
    // again in this context, sandboxed and bounded like the script (docs/sessions.md).
    const health = sessions.health;
    if (health && sessionToCheck(health, session)) {
      await ensureSession({
        page, health, providerName: job.providerName, exec,
        runLogin: (login) => withDeadline(
          deps.runner.run(login, { page, payload: {}, helpers, context: jobContext }, { timeoutMs, signal, filename: `login-${job.providerName}.js` }),
          timeoutMs, signal, () => { closing = true; return context.close(); }),
        save: async () => {
          const cookies = await context.cookies();
          evidence.secretValues.add(cookies.filter((c) => c.httpOnly).map((c) => c.value));
          await saveRefreshedCookies(sessions.stored, cookies, exec, 'replace');
        },
      });
    }
    exec.info(`running the script (${deps.runner.name}, limit ${timeoutMs} ms)`);
    scriptRuns = true;
    await withDeadline(
      deps.runner.run(script, { page, payload: structuredClone(job.metadata ?? {}), helpers, context: jobContext },
        { timeoutMs, signal, clock, filename: `flow-${job.flowId}-${job.flowVersion}.js` }),
      timeoutMs, signal, () => { closing = true; return context.close(); }, clock);
  } catch (e) {
    recordingOf(context)?.failed();
    // What a person needs to see why: the page as it was when the script failed. Not from a page that is gone
    // (crash, timeout, cancel: the context is closing) — the job's end must not wait on it.
    if (!closing && !crash.crashed) await blockers?.atFailure(reserved.page);
    if (scriptRuns && !closing && !crash.crashed) await captureFailure(reserved.page, artifacts, evidence.redact, exec);
    throw e;
  } finally {
    // Downloads still being stored (a script that did not await one) finish, or fail, before their files go away
    // with the context; each is bounded by its own upload deadline.
    await Promise.allSettled([...artifacts.storing]);
    await blockers?.settle(); // a navigation's look still under way (bounded: blocker-watch.ts)
    await recordingOf(context)?.stop(); // before the cookies are read back: they stay out of the trace
    // Cookies the portal set during the job (a new session token after a login) count for parsed data too. Not
    // asked of a context already closing (timeout, cancel, byte budget): the job's end must not wait on it.
    if (!closing) {
      const cookies = await context.cookies().catch(() => []);
      evidence.secretValues.add(cookies.filter((c) => c.httpOnly).map((c) => c.value));
      sessions.finalCookies = cookies;
    }
    await reserved.recycle();
  }
}

/** Longest the failure captures may take together: the job's failure is reported after them. */
const FAILURE_CAPTURE_MS = 5000;

/**
 * A screenshot (secret fields masked, as helpers.screenshot does) and the page's HTML (redacted: the job's secrets
 * replaced) at the moment of failure, kept as `failure` evidence. Best effort: a capture that fails is logged.
 */
async function captureFailure(page: Page, artifacts: JobArtifacts, redact: (text: string) => string, exec: ExecutionLog): Promise<void> {
  const capture = async () => {
    const mask = [...artifacts.secretFields].map((sel) => page.locator(sel));
    const shot = await page.screenshot({ timeout: FAILURE_CAPTURE_MS, ...(mask.length ? { mask } : {}) });
    artifacts.failure.push({ name: 'failure-screenshot.png', body: shot, contentType: 'image/png' });
    const html = redact(await page.content());
    artifacts.failure.push({ name: 'failure-page.html', body: Buffer.from(html, 'utf8'), contentType: 'text/html; charset=utf-8' });
  };
  try {
    await boundWait(capture(), FAILURE_CAPTURE_MS, 'capturing the failed page');
    exec.info(`failure captured: ${artifacts.failure.map((a) => `${a.name} (${a.body.length} bytes)`).join(', ')}`);
  } catch (e) {
    exec.warn(`the failed page could not be captured: ${redact(messageOf(e).split('\n')[0] ?? '')}`);
  }
}

function messageOf(e: unknown): string {
  const m = (e as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? m : String(e);
}

/**
 * A page the portal did not deliver: Playwright navigation calls failing on the network (`net::ERR_…`) or timing
 * out. Transient; an error the script throws itself, or a failed click, is not.
 */
function isNavigationError(e: unknown): boolean {
  const m = messageOf(e);
  return /net::ERR_|NS_ERROR_NET/.test(m) || /^(page|frame)\.(goto|reload|goBack|goForward|waitForNavigation|waitForURL): Timeout/.test(m);
}

function toJobError(e: unknown, phase: 'prepare' | 'browser' | 'script', browser: Browser | undefined, redactor: Redactor, crashed = false): JobError {
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

/**
 * The SRI pack's reading of the job's XML evidence into parsed data (parse-evidence.ts). Whatever happens here is
 * logged and never fails the job: the evidence is stored either way, and documents can be read from it again.
 */
async function addParsedEvidence(parser: EvidenceParser, job: JobMessage, exec: ExecutionLog, artifacts: JobArtifacts, deps: PipelineDeps): Promise<void> {
  try {
    await Promise.allSettled([...artifacts.storing]);
    const parsed = await parseXmlEvidence(parser, job.providerName, artifacts.downloads, {
      read: async (uri) => {
        const loc = parseS3Uri(uri);
        return loc ? boundWait(deps.blobStore.get(loc.bucket, loc.key), UPLOAD_TIMEOUT_MS, `reading ${loc.key}`) : undefined;
      },
      info: (line) => exec.info(line),
      warn: (line) => exec.warn(line),
    });
    if (parsed) artifacts.parsedData = withParsedEvidence(artifacts.parsedData, parsed);
  } catch (e) {
    exec.warn(`SRI: the XML evidence could not be read into parsed data: ${messageOf(e)}`);
  }
}

const sha256Of = (body: Buffer) => createHash('sha256').update(body).digest('hex');

/**
 * Uploads what the job kept in memory (screenshots, parsed data, execution.log) and lists every evidence file with
 * its hash. Downloads were stored as they finished (helpers.ts); screenshots and downloads are stored as the portal
 * served them, parsed data with secret values replaced (SecretValues), execution.log redacted line by line.
 */
async function uploadEvidence(
  job: JobMessage, exec: ExecutionLog, artifacts: JobArtifacts, secretValues: SecretValues, deps: PipelineDeps,
): Promise<{ files: ResultFiles; list: ResultArtifact[]; uploadError?: Error }> {
  const bucket = deps.config.s3ResultsBucket;
  const prefix = `results/${job.orgId}/${job.userId}/${job.jobId}/`;
  const put = async (a: Artifact, kind: ResultArtifact['kind']): Promise<ResultArtifact> => {
    // An upload given up on (over its bound) is cancelled too, so it does not go on in the background.
    const cancel = new AbortController();
    const uri = await boundWait(deps.blobStore.put(bucket, prefix + a.name, a.body, a.contentType, { signal: cancel.signal }), UPLOAD_TIMEOUT_MS, `uploading ${a.name}`)
      .catch((e: unknown) => { cancel.abort(); throw e; });
    return { name: a.name, kind, uri, bytes: a.body.length, sha256: sha256Of(a.body), contentType: a.contentType };
  };
  const files: ResultFiles = { log: s3Uri(bucket, `${prefix}execution.log`), screenshots: [] };
  let uploadError: Error | undefined = artifacts.storeError;

  // A download the script did not await may still be on its way (runInBrowser waited for it unless the job was cut).
  await Promise.allSettled([...artifacts.storing]);
  const screenshots = artifacts.screenshots.filter((s) => s.body.length > 0);
  const shots: (ResultArtifact | undefined)[] = [];
  const failure: (ResultArtifact | undefined)[] = [];
  let parsed: ResultArtifact | undefined;
  const uploads: Promise<void>[] = screenshots.map(async (s, i) => { shots[i] = await put(s, 'screenshot'); });
  uploads.push(...artifacts.failure.map(async (a, i) => { failure[i] = await put(a, 'failure'); }));
  if (artifacts.parsedData !== undefined) {
    const body = Buffer.from(secretValues.stringify(artifacts.parsedData, 2), 'utf8');
    uploads.push(put({ name: 'parsed-data.json', body, contentType: 'application/json' }, 'parsedData').then((a) => { parsed = a; }));
  }
  for (const r of await Promise.allSettled(uploads)) {
    if (r.status === 'rejected') uploadError ??= r.reason instanceof Error ? r.reason : new Error(String(r.reason));
  }
  const downloads = [...artifacts.downloads];
  // The first download is the job's document; further ones are listed in `artifacts` and in execution.log.
  if (downloads[0]) files.download = downloads[0].uri;
  files.screenshots = shots.filter((s) => s !== undefined).map((s) => s.uri);
  if (parsed) files.parsedData = parsed.uri;
  if (uploadError) exec.error(`upload failed: ${uploadError.message}`);
  const count = screenshots.length + downloads.length + (artifacts.parsedData ? 1 : 0) + artifacts.failure.length;
  exec.info(`evidence: ${count} file(s) under s3://${bucket}/${prefix}`);
  const list: ResultArtifact[] = [];
  try {
    list.push(await put({ name: 'execution.log', body: Buffer.from(exec.text(), 'utf8'), contentType: 'text/plain; charset=utf-8' }, 'log'));
  } catch (e) {
    uploadError ??= e as Error;
  }
  list.push(...shots.filter((s) => s !== undefined), ...downloads, ...(parsed ? [parsed] : []), ...failure.filter((a) => a !== undefined), ...artifacts.recordings);
  return { files, list, uploadError };
}
