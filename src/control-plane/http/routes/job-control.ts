/**
 * Control of one job of the caller's organisation: cancel (POST /api/jobs/{id}/cancel) and retry of a failed or
 * dead job (POST /api/jobs/{id}/retry). Redis (JobQueue) decides what happens to the message; PostgreSQL records
 * the outcome. Another organisation's job ids answer 404 like ids that do not exist.
 */
import type { FastifyInstance } from 'fastify';
import { SriError } from '../../../shared/errors.ts';
import { keys } from '../../../shared/keys.ts';
import { TERMINAL_STATUSES } from '../../../shared/schemas.ts';
import { ROOT_CONTEXT, SpanKind, setSpanError, startChildSpan, traceparentOf } from '../../../shared/tracing.ts';
import { transportKeyring } from '../../../shared/transport-secrets.ts';
import type { ApiContext } from '../../context.ts';
import { findFlow } from '../../db/queries/flows.ts';
import { cancelJob, findJob, requeueFinishedJob, type JobRow } from '../../db/queries/jobs.ts';
import { findProvider } from '../../db/queries/providers.ts';
import { secretRefsOfScript } from '../../flows/compile.ts';
import { RunAdmission } from '../../jobs/admission.ts';
import { assertFlowIntact, verifiedJobMessage } from '../../jobs/job-message.ts';
import { sealSecretsForJob } from '../../secrets/vault.ts';
import { syncJobFromRedis } from '../../results/listener.ts';
import { authOf } from '../auth.ts';
import { toSriError } from '../errors.ts';
import { doc } from '../openapi.ts';
import { IdParams } from '../schemas.ts';
import { spanOf, tracedRoute } from '../tracing.ts';

const isFinal = (status: string) => (TERMINAL_STATUSES as readonly string[]).includes(status);
const RETRYABLE_STATUSES = ['failed', 'dead'];

const jobFinal = (id: string, status: string) => new SriError('JOB_FINAL', `Job ${id} has already finished (${status}); there is nothing to cancel.`
  + (RETRYABLE_STATUSES.includes(status) ? ' Run it again with POST /api/jobs/{id}/retry.' : ''));

export function jobControlRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const preHandler = ctx.tokens.hook();
  // A retry puts a job back into the shared queue like a run: it counts against the same limits.
  const admission = new RunAdmission(ctx.redis, ctx.config);
  const resultsDeps = { db: ctx.db, blobStore: ctx.blobStore, resultsBucket: ctx.config.s3ResultsBucket, logger: ctx.logger, tracer: ctx.tracer };

  const loadJob = async (orgId: string, id: string): Promise<JobRow> => {
    const job = await ctx.db.withOrg(orgId, (tx) => findJob(tx, id));
    if (!job) throw new SriError('NOT_FOUND', `No job ${id} in your organisation.`);
    return job;
  };

  app.post('/api/jobs/:id/cancel', {
    preHandler,
    schema: doc({
      summary: 'Cancel a job: a queued one is removed (200, cancelled); a running one is stopped by its worker within 2 s '
        + '(202, cancelling; the job then ends as cancelled); a finished one answers 409 JOB_FINAL.',
      tags: ['jobs'], params: IdParams,
    }),
  }, async (req, reply) => {
    const { orgId } = authOf(req);
    const { id } = IdParams.parse(req.params);
    const job = await loadJob(orgId, id);
    if (isFinal(job.status)) throw jobFinal(id, job.status);

    const outcome = await ctx.queue.cancel(orgId, id);
    if (outcome === 'cancelling') {
      req.log.info({ jobId: id, orgId }, 'job cancellation requested; its worker stops it');
      return reply.status(202).send({ jobId: id, status: 'cancelling' });
    }
    if (outcome === 'final') {
      // Redis has its outcome already and the listener has not recorded it yet: record it, then say so.
      await syncJobFromRedis(resultsDeps, ctx.redis, orgId, id).catch((err: unknown) => req.log.warn({ err, jobId: id }, 'could not sync the job from Redis'));
      const now = await loadJob(orgId, id);
      throw jobFinal(id, isFinal(now.status) ? now.status : (await ctx.redis.get(keys.jobStatus(id))) ?? 'finished');
    }
    // 'cancelled': the queue removed the message before any worker took it. 'unknown': Redis holds nothing of the
    // job (lost with a Redis that ran without its append-only file, or never pushed), so nothing will ever run it.
    // The same error the queue puts in the result it publishes, so the record reads alike whoever writes it first.
    const changed = await ctx.db.withOrg(orgId, (tx) => cancelJob(tx, id, 'CANCELLED', 'The job was cancelled before it ran.'));
    if (!changed) {
      const now = await loadJob(orgId, id);
      if (now.status !== 'cancelled') throw jobFinal(id, now.status);
    }
    req.log.info({ jobId: id, orgId, queue: outcome }, 'job cancelled');
    return reply.status(200).send({ jobId: id, status: 'cancelled' });
  });

  app.post('/api/jobs/:id/retry', {
    ...tracedRoute(ctx.tracer),
    preHandler,
    schema: doc({
      summary: 'Run a failed or dead job again: same job id, next attempt number, the script re-verified; other statuses answer 409.',
      tags: ['jobs'], params: IdParams,
    }),
  }, async (req, reply) => {
    const { orgId } = authOf(req);
    const { id } = IdParams.parse(req.params);
    const job = await loadJob(orgId, id);
    const notRetryable = (status: string) => new SriError('JOB_NOT_RETRYABLE', `Job ${id} is ${status}; only failed or dead jobs can be retried.`);
    if (!RETRYABLE_STATUSES.includes(job.status)) throw notRetryable(job.status);
    await admission.countRun(orgId, authOf(req).userId, reply);
    await admission.assertQueueRoom(orgId);

    const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, job.provider_id));
    if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
    if ((await ctx.redis.exists(keys.session(orgId, job.user_id, provider.name))) !== 1) {
      throw new SriError('PROVIDER_NOT_CONNECTED', `The session of the job's user on ${provider.name} is gone; connect the provider again, then retry.`);
    }
    const attempt = job.attempt + 1;
    // A retry is a trace of its own (the job's traceId stays the one of its first run): this request → enqueue → the
    // worker's spans of this attempt.
    const enqueue = startChildSpan(ctx.tracer, 'enqueue', spanOf(req) ?? ROOT_CONTEXT, {
      kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'redis', 'messaging.destination.name': keys.orgJobs(orgId), 'sri.job.id': id, 'sri.job.attempt': attempt },
    });
    const traceparent = traceparentOf(enqueue);
    // The row goes back to queued and the message is pushed in one database transaction: when the push fails the
    // row rolls back to failed/dead, and of two concurrent retries only the one whose UPDATE matched pushes.
    const message = await ctx.db.withOrg(orgId, async (tx) => {
      const row = await requeueFinishedJob(tx, id, attempt);
      if (!row) throw notRetryable((await findJob(tx, id))?.status ?? 'gone');
      const flow = await findFlow(tx, row.flow_id);
      if (!flow) throw new SriError('NOT_FOUND', `The flow ${row.flow_id} of job ${id} no longer exists.`);
      // The flow verified first, then its secrets sealed afresh for this attempt (the values of now, audited again).
      assertFlowIntact(flow, ctx.config.scriptSigningSecret);
      const secrets = await sealSecretsForJob(tx, {
        secretsKeys: ctx.config.secretsKeys, transport: transportKeyring(ctx.config), job: { jobId: id, orgId, userId: row.user_id }, names: secretRefsOfScript(flow.script),
      });
      const signed = verifiedJobMessage({ job: row, flow, provider, signingSecret: ctx.config.scriptSigningSecret, attempt, secrets: secrets.sealed });
      const msg = traceparent === undefined ? signed : { ...signed, traceparent };
      // A failed job is marked finished for the workers' replay check; this retry is the one way to run it again.
      await ctx.redis.del(keys.jobFinished(id));
      // A job that failed because it could never be pushed (Redis was down at POST /api/run) is unknown to Redis:
      // it is enqueued like a new one. Otherwise the queue checks that it is failed or dead and holds no lease.
      if ((await ctx.redis.exists(keys.jobStatus(id))) === 0) await ctx.queue.enqueue(orgId, msg);
      else await ctx.queue.retryFinished(orgId, id, msg);
      return msg;
    }).catch((e: unknown) => {
      setSpanError(enqueue, toSriError(e)?.code ?? 'INTERNAL', (e as Error).message);
      throw e;
    }).finally(() => enqueue.end());
    req.log.info({ jobId: id, orgId, attempt, previous: job.status }, 'job retried');
    return reply.status(202).send({ jobId: id, status: 'queued', attempt: message.attempt });
  });
}
