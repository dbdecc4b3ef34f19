/**
 * One job from raw message to published result:
 * parse → validate → verify hash → verify signature → (script from S3) → session → run in a fresh browser context
 * → upload evidence → completeJob (status, stored result, publish) → stats.
 * Every failure ends as status 'failed' with a published `{ code, message }`; nothing here throws for a bad job.
 */
import type { Redis } from 'ioredis';
import type { Browser, BrowserContext } from 'playwright-core';
import type { WorkerConfig } from '../config.ts';
import type { BrowserPool } from '../browser.ts';
import type { QueueCommands } from '../queue/commands.ts';
import type { ScriptRunner } from '../script/runner.ts';
import { verifyJobScript, type VerifiedScript } from '../script/verified-script.ts';
import { isSriError, SriError, type ErrorCode } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/logger.ts';
import { isNotFound, s3Uri, type BlobStore } from '../../shared/s3.ts';
import { describeZodError, Session, type Cookie, type JobMessage, type ResultFiles, type ResultMessage } from '../../shared/schemas.ts';
import { boundWait, withDeadline } from './deadline.ts';
import { ExecutionLog } from './execution-log.ts';
import { createHelpers, JobArtifacts, type Artifact } from './helpers.ts';
import type { EgressProxy } from './egress-proxy.ts';
import { installHostGuard } from './host-guard.ts';
import { parseJobMessage } from './message.ts';
import { Redactor } from './redactor.ts';

export interface PipelineDeps {
  readonly config: WorkerConfig;
  readonly redis: Redis;
  readonly queue: QueueCommands;
  readonly blobStore: BlobStore;
  readonly browsers: BrowserPool;
  readonly egress: EgressProxy;
  readonly runner: ScriptRunner;
  readonly logger: Logger;
}

/** A message as takeJob returned it. */
export interface TakenJob {
  readonly orgId: string;
  readonly raw: string;
  readonly token: string;
}

export interface JobOutcome {
  readonly jobId?: string;
  readonly status: 'done' | 'failed' | 'dead-lettered';
  readonly durationMs: number;
  readonly errorCode?: string;
}

/** Raw messages kept in a dead-letter record are cut here; the reason says what was wrong. */
export const DLQ_RAW_LIMIT_BYTES = 64 * 1024;
const UPLOAD_TIMEOUT_MS = 60_000;

type JobError = { code: ErrorCode; message: string };

export async function processJob(taken: TakenJob, deps: PipelineDeps, signal: AbortSignal): Promise<JobOutcome> {
  const started = Date.now();
  const parsed = parseJobMessage(taken.raw, taken.orgId);
  if (!parsed.ok) return deadLetter(taken, parsed.reason, parsed.report, deps, started);
  return runValidJob(parsed.job, taken, deps, signal, started);
}

async function deadLetter(
  taken: TakenJob, reason: string, report: { jobId: string; orgId: string; userId: string; providerId: string; attempt: number } | undefined,
  deps: PipelineDeps, started: number,
): Promise<JobOutcome> {
  const { config, queue, logger } = deps;
  const record = {
    reason, raw: Buffer.from(taken.raw, 'utf8').subarray(0, DLQ_RAW_LIMIT_BYTES).toString('utf8'), orgId: taken.orgId,
    at: new Date().toISOString(), workerId: config.workerId, bytes: Buffer.byteLength(taken.raw, 'utf8'),
  };
  const durationMs = Date.now() - started;
  logger.warn({ orgId: taken.orgId, jobId: report?.jobId, reason, bytes: record.bytes }, 'invalid job message moved to the dead-letter list');
  if (report) {
    const result: ResultMessage = {
      jobId: report.jobId, orgId: report.orgId, userId: report.userId, providerId: report.providerId,
      success: false, status: 'failed', duration: durationMs, attempt: report.attempt, workerId: config.workerId,
      finishedAt: new Date().toISOString(), error: { code: 'INVALID_JOB', message: `Invalid job message: ${reason}` },
      files: { log: '', screenshots: [] },
    };
    await queue.deadLetterAndFail(record, {
      jobId: report.jobId, orgId: report.orgId, workerId: config.workerId, token: taken.token, status: 'failed', resultJson: JSON.stringify(result),
    });
  } else {
    await queue.deadLetter(config.workerId, taken.token, record);
  }
  await queue.recordJob(config.workerId, false, durationMs, Date.now());
  return { jobId: report?.jobId, status: 'dead-lettered', durationMs, errorCode: 'INVALID_JOB' };
}

async function runValidJob(job: JobMessage, taken: TakenJob, deps: PipelineDeps, signal: AbortSignal, started: number): Promise<JobOutcome> {
  const { config } = deps;
  const log = deps.logger.child({ jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId });
  const redactor = new Redactor([config.scriptSigningSecret, config.s3SecretKey]);
  const exec = new ExecutionLog(redactor);
  const artifacts = new JobArtifacts();
  const attempt = job.attempt ?? 1;
  exec.info(`job ${job.jobId}: flow ${job.flowId}@${job.flowVersion}, provider ${job.providerId} (${job.providerName}), attempt ${attempt}, worker ${config.workerId}`);
  log.info('job started');

  let error: JobError | undefined;
  let phase: 'prepare' | 'browser' | 'script' = 'prepare';
  let browser: Browser | undefined;
  try {
    const script = await loadVerifiedScript(job, deps);
    exec.info(`script verified: sha256 ${script.scriptHash}, signature valid`);
    const session = await loadSession(job, deps.redis);
    redactor.add(session.cookies.map((c) => c.value));
    redactor.add(Object.values(session.credentials ?? {}));
    exec.info(`session loaded: ${session.cookies.length} cookie(s), ${Object.keys(session.credentials ?? {}).length} credential(s)`);

    phase = 'browser';
    const blocked = new Map<string, number>();
    const onBlocked = (host: string) => { blocked.set(host, (blocked.get(host) ?? 0) + 1); };
    const lease = job.allowedHosts ? deps.egress.lease(job.allowedHosts, onBlocked) : undefined;
    try {
      let context: BrowserContext;
      try {
        // A context of its own: no cookie, storage or cache of another job (invariant 3).
        ({ browser, context } = await deps.browsers.newContext({
          acceptDownloads: true, serviceWorkers: 'block', ...(lease ? { proxy: lease.proxy } : {}),
        }));
      } catch (e) {
        if (isSriError(e)) throw e;
        throw new SriError('BROWSER_ERROR', `Could not open a browser context: ${messageOf(e).split('\n')[0]}`, { cause: e });
      }
      await runInBrowser(job, script, session, context, onBlocked, deps, exec, artifacts, signal, () => { phase = 'script'; });
    } finally {
      lease?.release();
      if (blocked.size) {
        const total = [...blocked.values()].reduce((a, b) => a + b, 0);
        exec.warn(`blocked ${total} request(s) to hosts outside allowedHosts: ${[...blocked.entries()].map(([h, n]) => `${h} (${n})`).join(', ')}`);
      }
    }
    exec.info('script finished');
  } catch (e) {
    error = toJobError(e, phase, browser, redactor);
    exec.error(`${error.code}: ${error.message}`);
  }

  const { files, uploadError } = await uploadEvidence(job, exec, artifacts, redactor, deps);
  if (uploadError) {
    log.error({ err: redactor.redact(uploadError.message) }, 'uploading the evidence failed');
    error ??= { code: 'UPLOAD_FAILED', message: `Uploading the evidence to S3 failed: ${redactor.redact(uploadError.message)}` };
  }

  const finishedAt = Date.now();
  const durationMs = finishedAt - started;
  const status = error ? 'failed' : 'done';
  const result: ResultMessage = {
    jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId,
    success: !error, status, duration: durationMs, attempt, workerId: config.workerId,
    finishedAt: new Date(finishedAt).toISOString(), ...(error ? { error } : {}), files,
  };
  await deps.queue.complete({
    jobId: job.jobId, orgId: job.orgId, workerId: config.workerId, token: taken.token, status,
    resultJson: redactor.redact(JSON.stringify(result)),
  });
  await deps.queue.recordJob(config.workerId, !error, durationMs, finishedAt);
  if (error) log.warn({ duration: durationMs, status, errorCode: error.code, error: error.message }, 'job failed');
  else log.info({ duration: durationMs, status }, 'job done');
  return { jobId: job.jobId, status, durationMs, errorCode: error?.code };
}

/** Inline content, else the object scriptKey names; hash and signature verified either way. */
async function loadVerifiedScript(job: JobMessage, deps: PipelineDeps): Promise<VerifiedScript> {
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

async function loadSession(job: JobMessage, redis: Redis): Promise<Session> {
  const raw = await redis.get(keys.session(job.orgId, job.userId, job.providerName));
  if (raw === null) throw new SriError('SESSION_NOT_FOUND', 'Session not found');
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    throw new SriError('SESSION_NOT_FOUND', 'Session not found: the stored session is not valid JSON; connect the provider again.');
  }
  const r = Session.safeParse(data);
  if (!r.success) throw new SriError('SESSION_NOT_FOUND', `Session not found: the stored session is not valid (${describeZodError(r.error)}); connect the provider again.`);
  return r.data;
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

async function runInBrowser(
  job: JobMessage, script: VerifiedScript, session: Session, context: BrowserContext, onBlocked: (host: string) => void, deps: PipelineDeps,
  exec: ExecutionLog, artifacts: JobArtifacts, signal: AbortSignal, scriptStarts: () => void,
): Promise<void> {
  const { config } = deps;
  try {
    context.setDefaultTimeout(config.playwrightTimeoutMs);
    context.setDefaultNavigationTimeout(config.playwrightTimeoutMs);
    await installHostGuard(context, job.allowedHosts, onBlocked);
    if (job.allowedHosts) exec.info(`allowed hosts: ${job.allowedHosts.join(', ')}`);
    const cookies = toPlaywrightCookies(session.cookies, (t) => exec.warn(t));
    try {
      if (cookies.length) await context.addCookies(cookies);
    } catch (e) {
      throw new SriError('SESSION_NOT_FOUND', `Session not found: the browser refused its cookies (${(e as Error).message.split('\n')[0]}); connect the provider again.`);
    }
    const page = await context.newPage();
    const helpers = createHelpers({
      page, credentials: session.credentials ?? {}, exec, artifacts, timeoutMs: config.playwrightTimeoutMs,
    });
    const timeoutMs = job.timeoutMs ?? config.executionTimeoutMs;
    const jobContext = Object.freeze({
      jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId,
      flowId: job.flowId, flowVersion: job.flowVersion, attempt: job.attempt ?? 1,
    });
    exec.info(`running the script (${deps.runner.name}, limit ${timeoutMs} ms)`);
    scriptStarts();
    await withDeadline(
      deps.runner.run(script, { page, payload: structuredClone(job.metadata ?? {}), helpers, context: jobContext },
        { timeoutMs, signal, filename: `flow-${job.flowId}-${job.flowVersion}.js` }),
      timeoutMs, signal, () => context.close());
  } finally {
    await context.close().catch(() => {});
  }
}

function messageOf(e: unknown): string {
  const m = (e as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? m : String(e);
}

function toJobError(e: unknown, phase: 'prepare' | 'browser' | 'script', browser: Browser | undefined, redactor: Redactor): JobError {
  let code: ErrorCode;
  let message: string;
  if (isSriError(e)) {
    code = e.code;
    message = e.message;
  } else if (browser && !browser.isConnected()) {
    code = 'BROWSER_ERROR';
    message = `The browser stopped while running the job: ${messageOf(e)}`;
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

async function uploadEvidence(
  job: JobMessage, exec: ExecutionLog, artifacts: JobArtifacts, redactor: Redactor, deps: PipelineDeps,
): Promise<{ files: ResultFiles; uploadError?: Error }> {
  const bucket = deps.config.s3ResultsBucket;
  const prefix = `results/${job.orgId}/${job.userId}/${job.jobId}/`;
  const put = async (a: Artifact) => {
    const uri = await boundWait(deps.blobStore.put(bucket, prefix + a.name, a.body, a.contentType), UPLOAD_TIMEOUT_MS, `uploading ${a.name}`);
    return uri;
  };
  const files: ResultFiles = { log: s3Uri(bucket, `${prefix}execution.log`), screenshots: [] };
  let uploadError: Error | undefined;

  const screenshots = artifacts.screenshots.filter((s) => s.body.length > 0);
  const uploads: Promise<void>[] = [
    ...screenshots.map(async (s, i) => { files.screenshots[i] = await put(s); }),
    ...artifacts.downloads.map(async (d) => { const uri = await put(d); files.download ??= uri; }),
  ];
  if (artifacts.parsedData !== undefined) {
    const body = Buffer.from(redactor.redact(JSON.stringify(artifacts.parsedData, null, 2)), 'utf8');
    uploads.push(put({ name: 'parsed-data.json', body, contentType: 'application/json' }).then((uri) => { files.parsedData = uri; }));
  }
  for (const r of await Promise.allSettled(uploads)) {
    if (r.status === 'rejected') uploadError ??= r.reason instanceof Error ? r.reason : new Error(String(r.reason));
  }
  // The first download is the job's document; further ones are uploaded and listed in execution.log.
  if (artifacts.downloads.length > 1) files.download = s3Uri(bucket, prefix + artifacts.downloads[0]!.name);
  files.screenshots = files.screenshots.filter((s) => s !== undefined);
  if (uploadError) exec.error(`upload failed: ${uploadError.message}`);
  const count = screenshots.length + artifacts.downloads.length + (artifacts.parsedData ? 1 : 0);
  exec.info(`evidence: ${count} file(s) under s3://${bucket}/${prefix}`);
  try {
    await put({ name: 'execution.log', body: Buffer.from(exec.text(), 'utf8'), contentType: 'text/plain; charset=utf-8' });
  } catch (e) {
    uploadError ??= e as Error;
  }
  return { files, uploadError };
}
