/**
 * The results listener: follows `sri:org:*:done` on a connection of its own and records each result in the job's
 * row. Pub/sub drops messages while nobody listens, so it also reconciles: on start and then periodically, for every
 * job not final in PostgreSQL it reads the result message workers keep at `sri:job:{id}:result`.
 * A result is recorded only for a job of the channel's organisation (RLS scopes the update); a final status is
 * never overwritten by a later message, a `retrying` message of an earlier attempt than the recorded one is
 * ignored, and a final result read back from Redis counts only while the status key agrees that the job is over.
 * Statuses: `retrying` (an attempt failed and the job waits for its next one; published only for an attempt that met
 * a blocker) is recorded with its attempt, error and blocker but is not final; `waiting_for_user` (a hand-off's announcement) sets the status only; `done`, `failed`,
 * `cancelled` and `dead` are final.
 */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import { keys, orgIdFromKey } from '../../shared/keys.ts';
import type { Logger } from '../../shared/logger.ts';
import { parseS3Uri, type BlobStore } from '../../shared/s3.ts';
import { JobStatus, ResultMessage, TERMINAL_STATUSES } from '../../shared/schemas.ts';
import { contextFromTraceparent, setSpanError, SpanKind, traceIdOf, type Tracer } from '../../shared/tracing.ts';
import type { Database } from '../db/index.ts';
import { findJob, listUnfinishedJobs, recordProgress, recordResult, recordWaiting } from '../db/queries/jobs.ts';
import { markConnectionExpired, renewConnection } from '../db/queries/providers.ts';
import { recordDocuments } from '../documents/record.ts';
import { ReconcileOrder } from './reconcile-order.ts';

/** parsed-data.json larger than this is not copied into PostgreSQL (the file stays in S3). */
export const MAX_PARSED_DATA_BYTES = 1024 * 1024;
const RECONCILE_BATCH = 500;

export interface ResultsDeps {
  db: Database;
  blobStore: BlobStore;
  resultsBucket: string;
  logger: Logger;
  /**
   * Told after a final status (done, failed, cancelled, dead) is recorded, once per job attempt, after a `retrying`
   * result that names a blocker (job.blocked), and when a job starts waiting for a person (`waiting_for_user`, a
   * hand-off) — for webhooks.
   */
  onJobFinal?: (orgId: string, result: ResultMessage) => void;
  /** Each recording is a `result.record` span, a child of the worker's `publish` span the result names. */
  tracer?: Tracer;
}

/** `stale`: a `retrying` message of an earlier attempt than the one recorded. */
export type RecordOutcome = 'recorded' | 'already-final' | 'stale' | 'unknown-job' | 'invalid';

const isFinalStatus = (s: string) => (TERMINAL_STATUSES as readonly string[]).includes(s);

async function readParsedData(deps: ResultsDeps, orgId: string, uri: string | undefined): Promise<unknown> {
  if (!uri) return null;
  const loc = parseS3Uri(uri);
  if (!loc || loc.bucket !== deps.resultsBucket || !loc.key.startsWith(`results/${orgId}/`)) return null;
  try {
    const head = await deps.blobStore.client.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }));
    if ((head.ContentLength ?? 0) > MAX_PARSED_DATA_BYTES) {
      return { truncated: true, reason: `parsed-data.json is larger than ${MAX_PARSED_DATA_BYTES} bytes; download it from the artifacts` };
    }
    const bytes = await deps.blobStore.get(loc.bucket, loc.key);
    if (!bytes) return null;
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    const nul = { count: 0 };
    const recordable = withoutNul(parsed, nul);
    if (nul.count > 0) deps.logger.warn({ orgId, uri, strings: nul.count }, 'parsed data holds NUL characters, which PostgreSQL cannot store: U+FFFD in the recorded copy, the file in S3 unchanged');
    return recordable;
  } catch (err) {
    deps.logger.warn({ err, orgId, uri }, 'could not read parsed data');
    return null;
  }
}

/**
 * PostgreSQL's jsonb (and text) cannot hold U+0000, which a portal's data or a script's result may contain: the
 * recorded copy of the parsed data has U+FFFD in its place, in values and keys, so the result is still recorded;
 * parsed-data.json in S3 keeps the bytes as the worker wrote them.
 */
function withoutNul(v: unknown, nul: { count: number }): unknown {
  const clean = (x: string) => (x.includes('\u0000') ? (nul.count += 1, x.replaceAll('\u0000', '\uFFFD')) : x);
  if (typeof v === 'string') return clean(v);
  if (Array.isArray(v)) return v.map((x) => withoutNul(x, nul));
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [clean(k), withoutNul(x, nul)]));
}

/** Records one result message (already parsed) for the job in `orgId`. */
export async function recordResultMessage(deps: ResultsDeps, orgId: string, msg: ResultMessage): Promise<RecordOutcome> {
  const span = deps.tracer?.startSpan('result.record', {
    kind: SpanKind.CONSUMER,
    attributes: { 'sri.job.id': msg.jobId, 'sri.org.id': orgId, 'sri.job.attempt': msg.attempt, 'sri.job.status': msg.status, 'sri.worker.id': msg.workerId },
  }, contextFromTraceparent(msg.traceparent));
  try {
    const outcome = await recordOnce(deps, orgId, msg);
    span?.setAttribute('sri.result.outcome', outcome);
    return outcome;
  } catch (e) {
    if (span) setSpanError(span, 'INTERNAL', (e as Error).message);
    throw e;
  } finally {
    span?.end();
  }
}

async function recordOnce(deps: ResultsDeps, orgId: string, msg: ResultMessage): Promise<RecordOutcome> {
  if (msg.orgId !== orgId) {
    deps.logger.warn({ jobId: msg.jobId, orgId, messageOrgId: msg.orgId }, 'result message names another organisation than its channel; ignored');
    return 'invalid';
  }
  if (msg.status === 'waiting_for_user') {
    // A hand-off's announcement (markWaiting-2.lua): the status, and the job.waiting_for_user webhook; never a result.
    const waiting = await deps.db.withOrg(orgId, async (tx): Promise<RecordOutcome> => {
      if (await recordWaiting(tx, msg.jobId, msg.attempt)) return 'recorded';
      const job = await findJob(tx, msg.jobId);
      return !job ? 'unknown-job' : isFinalStatus(job.status) ? 'already-final' : 'stale';
    });
    if (waiting === 'recorded') deps.onJobFinal?.(orgId, msg);
    return waiting;
  }
  const final = isFinalStatus(msg.status);
  const result = final && msg.files.parsedData ? await readParsedData(deps, orgId, msg.files.parsedData) : null;
  const outcome = await deps.db.withOrg(orgId, async (tx): Promise<RecordOutcome> => {
    const changed = await recordResult(tx, {
      id: msg.jobId, status: msg.status, attempt: msg.attempt, workerId: msg.workerId, durationMs: msg.duration,
      finishedAt: final ? msg.finishedAt : null, errorCode: msg.error?.code ?? null, errorMessage: msg.error ? (withoutNul(msg.error.message, { count: 0 }) as string) : null,
      files: msg.files, result, ...(msg.artifacts ? { artifacts: msg.artifacts } : {}), ...(msg.blocker ? { blocker: msg.blocker } : {}),
    });
    if (changed) {
      // Renewed cookies saved by the job started the session's lifetime again: the connection lasts until then.
      if (msg.session) await renewConnection(tx, { userId: msg.userId, providerId: msg.providerId, expiresAt: new Date(msg.session.renewedUntil) });
      // The connection's health (docs/sessions.md): expired when the portal logged it out for good, working again
      // when a job of it finished done.
      if (final && (msg.error?.code === 'SESSION_EXPIRED' || msg.status === 'done')) {
        const expired = msg.status !== 'done';
        if (await markConnectionExpired(tx, { userId: msg.userId, providerId: msg.providerId, expired })) {
          deps.logger.info({ orgId, userId: msg.userId, providerId: msg.providerId, jobId: msg.jobId }, expired ? 'provider connection expired' : 'provider connection working again');
        }
      }
      // SRI documents the worker parsed from the job's evidence (docs/documents.md): in the same transaction, so a
      // recorded result never lacks its documents. Invalid objects are logged and left out, never fatal.
      if (final && result !== null) {
        const docs = await recordDocuments(tx, {
          orgId, jobId: msg.jobId, parsed: result, artifacts: msg.artifacts ?? [], resultsBucket: deps.resultsBucket, logger: deps.logger,
        });
        if (docs.inserted + docs.seenAgain + docs.unchanged + docs.rejected > 0) deps.logger.info({ orgId, jobId: msg.jobId, ...docs }, 'SRI documents recorded');
      }
      return 'recorded';
    }
    const job = await findJob(tx, msg.jobId);
    if (!job) return 'unknown-job';
    return isFinalStatus(job.status) ? 'already-final' : 'stale';
  });
  // After the commit, so nothing is announced for a result that was not recorded. A `retrying` result is announced
  // only when its attempt met a blocker (job.blocked; the worker publishes no other `retrying` result).
  if (outcome === 'recorded' && (final || msg.blocker)) deps.onJobFinal?.(orgId, msg);
  return outcome;
}

/**
 * Records the result a worker left at `sri:job:{id}:result`, if any. Used by the reconciler and by reads of a job
 * that is not final yet, so that a status read from Redis and the job record never disagree for long.
 */
export async function syncJobFromRedis(deps: ResultsDeps, redis: Redis, orgId: string, jobId: string): Promise<RecordOutcome | 'no-result'> {
  const [raw, status] = await redis.mget(keys.jobResult(jobId), keys.jobStatus(jobId));
  if (raw === null || raw === undefined) return 'no-result';
  const parsed = ResultMessage.safeParse(safeJson(raw));
  if (!parsed.success || parsed.data.jobId !== jobId) return 'invalid';
  // A final result while the status key says the job is queued or running again is the previous attempt's,
  // left behind by a retry or a dead-letter requeue: the job's new outcome has not come yet.
  const live = JobStatus.safeParse(status);
  if (isFinalStatus(parsed.data.status) && live.success && !isFinalStatus(live.data)) return 'no-result';
  return recordResultMessage(deps, orgId, parsed.data);
}

export interface ResultsListener {
  /** Reads results of unfinished jobs from Redis and records them; returns how many were recorded. */
  reconcile(): Promise<number>;
  stop(): Promise<void>;
}

export async function startResultsListener(deps: ResultsDeps & {
  /** Connection used only for PSUBSCRIBE (a subscribed connection can do nothing else); owned by the listener. */
  subscriber: Redis;
  /** Connection for reading status and result keys. */
  redis: Redis;
  reconcileIntervalMs: number;
}): Promise<ResultsListener> {
  const { logger } = deps;
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => { pending.add(p); void p.finally(() => pending.delete(p)); };

  const onMessage = async (channel: string, raw: string) => {
    const orgId = orgIdFromKey(channel);
    if (!orgId) return;
    let msg: ResultMessage;
    try {
      msg = ResultMessage.parse(JSON.parse(raw));
    } catch {
      logger.warn({ channel }, 'result message is not valid JSON of the result schema; ignored');
      return;
    }
    const outcome = await recordResultMessage(deps, orgId, msg);
    if (outcome === 'unknown-job') logger.warn({ jobId: msg.jobId, orgId }, 'result for a job the control plane did not create; ignored');
    else logger.info({ jobId: msg.jobId, orgId, status: msg.status, outcome, ...traceIdOf(msg.traceparent) }, 'job result');
  };

  deps.subscriber.on('pmessage', (_pattern: string, channel: string, raw: string) => {
    track(onMessage(channel, raw).catch((err: unknown) => logger.error({ err, channel }, 'could not record a job result')));
  });
  await deps.subscriber.psubscribe(keys.orgDonePattern);

  let running: Promise<number> | undefined;
  // Fair across organisations, and each pass goes on where the last stopped (reconcile-order.ts).
  const order = new ReconcileOrder(RECONCILE_BATCH);
  const reconcileOnce = async (): Promise<number> => {
    let recorded = 0;
    const { cursors, orgAfter } = order.next();
    const jobs = await deps.db.asSystem((tx) => listUnfinishedJobs(tx, RECONCILE_BATCH, cursors, orgAfter));
    order.advance(jobs);
    for (const job of jobs) {
      const outcome = await syncJobFromRedis(deps, deps.redis, job.org_id, job.id);
      if (outcome === 'recorded') recorded++;
      if (outcome !== 'no-result') continue;
      const status = JobStatus.safeParse(await deps.redis.get(keys.jobStatus(job.id)));
      if (status.success && (status.data === 'running' || status.data === 'retrying' || status.data === 'waiting_for_user')) {
        await deps.db.withOrg(job.org_id, (tx) => recordProgress(tx, job.id, status.data));
      }
    }
    if (recorded > 0) logger.info({ recorded }, 'reconciled job results from Redis');
    return recorded;
  };
  // One reconciliation at a time; a caller arriving during a run waits for that run.
  const reconcile = () => {
    running ??= reconcileOnce().finally(() => { running = undefined; });
    return running;
  };

  await reconcile().catch((err: unknown) => logger.error({ err }, 'reconciliation failed'));
  const timer = setInterval(() => {
    track(reconcile().catch((err: unknown) => logger.error({ err }, 'reconciliation failed')));
  }, deps.reconcileIntervalMs);
  timer.unref();

  return {
    reconcile,
    stop: async () => {
      clearInterval(timer);
      await deps.subscriber.punsubscribe().catch(() => {});
      await Promise.allSettled([...pending]);
      deps.subscriber.disconnect();
    },
  };
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
