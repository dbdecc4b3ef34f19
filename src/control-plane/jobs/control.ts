/**
 * Control of one job of an organisation: cancel it, or run a failed or dead one again. Redis (JobQueue) decides
 * what happens to the message; PostgreSQL records the outcome. Another organisation's job ids are NOT_FOUND like ids
 * that do not exist (every read is under the organisation's row-level security).
 */
import { SriError } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import { setSpanError, type Span } from '../../shared/tracing.ts';
import type { ApiContext } from '../context.ts';
import { findFlow } from '../db/queries/flows.ts';
import { cancelJob as recordCancelled, findJob, requeueFinishedJob, type JobRow } from '../db/queries/jobs.ts';
import { findProvider } from '../db/queries/providers.ts';
import { syncJobFromRedis } from '../results/listener.ts';
import type { RunAdmission } from './admission.ts';
import { assertConnected, sealedJobMessage, startEnqueueSpan, withTraceparent, type JobLog } from './dispatch.ts';
import { isFinalStatus } from './load.ts';

const RETRYABLE_STATUSES = ['failed', 'dead'];

const jobFinal = (id: string, status: string) => new SriError('JOB_FINAL', `Job ${id} has already finished (${status}); there is nothing to cancel.`
  + (RETRYABLE_STATUSES.includes(status) ? ' Run it again with POST /api/jobs/{id}/retry.' : ''));
const notRetryable = (id: string, status: string) => new SriError('JOB_NOT_RETRYABLE', `Job ${id} is ${status}; only failed or dead jobs can be retried.`);

/** The job as recorded, without bringing it up to date from Redis (cancel and retry ask the queue themselves). */
async function recordedJob(ctx: ApiContext, orgId: string, id: string): Promise<JobRow> {
  const job = await ctx.db.withOrg(orgId, (tx) => findJob(tx, id));
  if (!job) throw new SriError('NOT_FOUND', `No job ${id} in your organisation.`);
  return job;
}

/** `cancelled`: it will never run. `cancelling`: its worker stops it within 2 s, and the job then ends as cancelled. */
export type CancelOutcome = { jobId: string; status: 'cancelled' } | { jobId: string; status: 'cancelling' };

/** Cancels job `id`: removed from the queue when it waits, stopped by its worker when it runs; JOB_FINAL when it has finished. */
export async function cancelJob(ctx: ApiContext, orgId: string, id: string, log: JobLog): Promise<CancelOutcome> {
  const job = await recordedJob(ctx, orgId, id);
  if (isFinalStatus(job.status)) throw jobFinal(id, job.status);

  const outcome = await ctx.queue.cancel(orgId, id);
  if (outcome === 'cancelling') {
    log.info({ jobId: id, orgId }, 'job cancellation requested; its worker stops it');
    return { jobId: id, status: 'cancelling' };
  }
  if (outcome === 'final') {
    // Redis has its outcome already and the listener has not recorded it yet: record it, then say so.
    const resultsDeps = { db: ctx.db, blobStore: ctx.blobStore, resultsBucket: ctx.config.s3ResultsBucket, logger: ctx.logger, tracer: ctx.tracer };
    await syncJobFromRedis(resultsDeps, ctx.redis, orgId, id).catch((err: unknown) => log.warn({ err, jobId: id }, 'could not sync the job from Redis'));
    const now = await recordedJob(ctx, orgId, id);
    throw jobFinal(id, isFinalStatus(now.status) ? now.status : (await ctx.redis.get(keys.jobStatus(id))) ?? 'finished');
  }
  // 'cancelled': the queue removed the message before any worker took it. 'unknown': Redis holds nothing of the
  // job (lost with a Redis that ran without its append-only file, or never pushed), so nothing will ever run it.
  // The same error the queue puts in the result it publishes, so the record reads alike whoever writes it first.
  const changed = await ctx.db.withOrg(orgId, (tx) => recordCancelled(tx, id, 'CANCELLED', 'The job was cancelled before it ran.'));
  if (!changed) {
    const now = await recordedJob(ctx, orgId, id);
    if (now.status !== 'cancelled') throw jobFinal(id, now.status);
  }
  log.info({ jobId: id, orgId, queue: outcome }, 'job cancelled');
  return { jobId: id, status: 'cancelled' };
}

/**
 * Runs failed or dead job `id` again: the same job id, the next attempt number, its flow verified and its secrets
 * sealed afresh; JOB_NOT_RETRYABLE for any other status. It puts a job back into the shared queue like a run, so
 * it counts against the same limits (RATE_LIMITED, QUEUE_FULL) and needs the job user's session. A retry is a trace
 * of its own (the job's traceId stays that of its first run): `span` (the request's) → enqueue → the worker's spans.
 */
export async function retryJob(ctx: ApiContext, admission: RunAdmission, a: { orgId: string; userId: string; id: string; span?: Span | undefined; log: JobLog }): Promise<{ jobId: string; status: 'queued'; attempt: number }> {
  const { orgId, id } = a;
  const job = await recordedJob(ctx, orgId, id);
  if (!RETRYABLE_STATUSES.includes(job.status)) throw notRetryable(id, job.status);
  await admission.countRun(orgId, a.userId);
  await admission.assertQueueRoom(orgId);

  const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, job.provider_id));
  if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
  await assertConnected(ctx, orgId, job.user_id, provider, `The session of the job's user on ${provider.name} is gone; connect the provider again, then retry.`);
  const attempt = job.attempt + 1;
  const enqueue = startEnqueueSpan(ctx, a.span, orgId, id, attempt);
  // The row goes back to queued and the message is pushed in one database transaction: when the push fails the
  // row rolls back to failed/dead, and of two concurrent retries only the one whose UPDATE matched pushes.
  const message = await ctx.db.withOrg(orgId, async (tx) => {
    const row = await requeueFinishedJob(tx, id, attempt);
    if (!row) throw notRetryable(id, (await findJob(tx, id))?.status ?? 'gone');
    const flow = await findFlow(tx, row.flow_id);
    if (!flow) throw new SriError('NOT_FOUND', `The flow ${row.flow_id} of job ${id} no longer exists.`);
    const msg = withTraceparent((await sealedJobMessage(tx, ctx, { job: row, flow, provider, attempt })).message, enqueue.traceparent);
    // A failed job is marked finished for the workers' replay check; this retry is the one way to run it again.
    await ctx.redis.del(keys.jobFinished(id));
    // A job that failed because it could never be pushed (Redis was down at POST /api/run) is unknown to Redis:
    // it is enqueued like a new one. Otherwise the queue checks that it is failed or dead and holds no lease.
    if ((await ctx.redis.exists(keys.jobStatus(id))) === 0) await ctx.queue.enqueue(orgId, msg);
    else await ctx.queue.retryFinished(orgId, id, msg);
    return msg;
  }).catch((e: unknown) => {
    setSpanError(enqueue.span, e instanceof SriError ? e.code : 'INTERNAL', (e as Error).message);
    throw e;
  }).finally(() => enqueue.span.end());
  a.log.info({ jobId: id, orgId, attempt, previous: job.status }, 'job retried');
  return { jobId: id, status: 'queued', attempt: message.attempt ?? attempt };
}
