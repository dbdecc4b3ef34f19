/**
 * POST /api/run: checks, records and enqueues one job (JobQueue.enqueue: the push, the status key and the
 * organisation's registration in one step). The job row is committed before the message is pushed, so a worker's
 * result always finds its job. The push is tried again while Redis is only slow; when it still fails the job is
 * marked failed (nothing was queued, so a new request may be sent) and the caller gets 503.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { SriError } from '../../../shared/errors.ts';
import { keys } from '../../../shared/keys.ts';
import { isTransientRedisError, retryTransient } from '../../../shared/retry.ts';
import type { JobMessage } from '../../../shared/schemas.ts';
import { ROOT_CONTEXT, SpanKind, setSpanError, startChildSpan, traceFields, traceparentOf } from '../../../shared/tracing.ts';
import { transportKeyring } from '../../../shared/transport-secrets.ts';
import type { ApiContext } from '../../context.ts';
import { isUniqueViolation } from '../../db/index.ts';
import { findActiveFlow, type FlowRow } from '../../db/queries/flows.ts';
import { failJob, findJobByIdempotencyKey, insertJob, type JobRow } from '../../db/queries/jobs.ts';
import { findProvider } from '../../db/queries/providers.ts';
import { secretRefsOfScript } from '../../flows/compile.ts';
import { RunAdmission } from '../../jobs/admission.ts';
import { assertFlowIntact, verifiedJobMessage } from '../../jobs/job-message.ts';
import { sealSecretsForJob } from '../../secrets/vault.ts';
import { authOf } from '../auth.ts';
import { doc } from '../openapi.ts';
import { RunBody, RunHeaders } from '../schemas.ts';
import { spanOf, tracedRoute } from '../tracing.ts';

/** Same key + same request → the first job; same key + another request → IDEMPOTENCY_CONFLICT. */
function replay(existing: JobRow, requestHash: string) {
  if (existing.request_hash !== requestHash) throw new SriError('IDEMPOTENCY_CONFLICT');
  return { jobId: existing.id, status: existing.status };
}

export function runRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admission = new RunAdmission(ctx.redis, ctx.config);
  app.post('/api/run', {
    ...tracedRoute(ctx.tracer),
    preHandler: ctx.tokens.hook(),
    schema: doc({ summary: 'Run the active flow of a provider with the caller\'s session; returns the queued job.', tags: ['jobs'], body: RunBody, headers: RunHeaders }),
  }, async (req, reply) => {
    const { orgId, userId } = authOf(req);
    const body = RunBody.parse(req.body);
    // Tenant limits (jobs/admission.ts): metadata size, runs per organisation and user; the queue's room below.
    admission.checkMetadata(body.metadata);
    await admission.countRun(orgId, userId, reply);
    const idempotencyKey = RunHeaders.parse(req.headers)['idempotency-key'];
    // priority and maxAttempts join the hash only when given, so keys used before they existed still replay.
    const requestHash = createHash('sha256').update(JSON.stringify({
      userId, providerId: body.providerId, metadata: body.metadata ?? null,
      ...(body.priority === undefined ? {} : { priority: body.priority }),
      ...(body.maxAttempts === undefined ? {} : { maxAttempts: body.maxAttempts }),
    })).digest('hex');

    if (idempotencyKey !== undefined) {
      const existing = await ctx.db.withOrg(orgId, (tx) => findJobByIdempotencyKey(tx, idempotencyKey));
      if (existing) return reply.status(200).send(replay(existing, requestHash));
    }
    // Before anything is recorded: a refused run leaves no job behind (a replay above is answered even when full).
    await admission.assertQueueRoom(orgId);

    const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, body.providerId));
    if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
    // A read: tried again while Redis is slow (a busy machine), so a run is not refused for a timeout.
    const connected = await retryTransient(() => ctx.redis.exists(keys.session(orgId, userId, provider.name)), { isRetryable: isTransientRedisError, deadlineMs: 15_000 });
    if (connected !== 1) throw new SriError('PROVIDER_NOT_CONNECTED');

    const jobId = randomUUID();
    // The job's trace id is the request span's: the job row, the messages and every log line of the job share it.
    const span = spanOf(req);
    const traceId = (span && traceFields(span).traceId) ?? randomUUID().replace(/-/g, '');
    span?.setAttributes({ 'sri.job.id': jobId, 'sri.org.id': orgId, 'sri.provider.id': body.providerId });
    let created: { job: JobRow; flow: FlowRow; message: JobMessage; secretNames: string[] };
    try {
      created = await ctx.db.withOrg(orgId, async (tx) => {
        const flow = await findActiveFlow(tx, provider.id);
        if (!flow) throw new SriError('NO_ACTIVE_FLOW');
        const job = await insertJob(tx, {
          id: jobId, orgId, userId, providerId: provider.id, flowId: flow.id, flowVersion: flow.version,
          idempotencyKey, requestHash, metadata: body.metadata, traceId, priority: body.priority, maxAttempts: body.maxAttempts,
        });
        // Built (and the flow verified) before the commit: a tampered flow leaves no job behind. The secrets the
        // verified script fills go with the job, sealed for its ids; their names are audited in this transaction.
        assertFlowIntact(flow, ctx.config.scriptSigningSecret);
        const secrets = await sealSecretsForJob(tx, {
          secretsKeys: ctx.config.secretsKeys, transport: transportKeyring(ctx.config), job: { jobId, orgId, userId }, names: secretRefsOfScript(flow.script),
        });
        const message = verifiedJobMessage({ job, flow, provider, signingSecret: ctx.config.scriptSigningSecret, secrets: secrets.sealed });
        return { job, flow, message, secretNames: secrets.names };
      });
    } catch (e) {
      if (idempotencyKey !== undefined && isUniqueViolation(e)) {
        // A concurrent request with the same key won the insert.
        const existing = await ctx.db.withOrg(orgId, (tx) => findJobByIdempotencyKey(tx, idempotencyKey));
        if (existing) return reply.status(200).send(replay(existing, requestHash));
      }
      throw e;
    }

    // The worker's spans are children of this one: its context travels in the message (unsigned, docs/security.md).
    const enqueue = startChildSpan(ctx.tracer, 'enqueue', span ?? ROOT_CONTEXT, {
      kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'redis', 'messaging.destination.name': keys.orgJobs(orgId), 'sri.job.id': jobId },
    });
    const tp = traceparentOf(enqueue);
    const message: JobMessage = tp === undefined ? created.message : { ...created.message, traceparent: tp };
    try {
      // JobQueue.enqueue itself keeps trying for a while when Redis is slow or reconnecting: only a Redis that stays
      // unreachable makes this a 503.
      await ctx.queue.enqueue(orgId, message, { onRetry: (err, attempt) => req.log.warn({ err: (err as Error).message, jobId, attempt }, 'enqueue timed out or lost its connection; trying again') });
    } catch (err) {
      setSpanError(enqueue, 'SERVICE_UNAVAILABLE', (err as Error).message);
      enqueue.end();
      req.log.error({ err, jobId, orgId }, 'could not enqueue the job');
      await ctx.db.withOrg(orgId, (tx) => failJob(tx, jobId, 'SERVICE_UNAVAILABLE', 'The job could not be queued: Redis is unreachable.'))
        .catch((e: unknown) => req.log.error({ err: e, jobId }, 'could not mark the job failed'));
      throw new SriError('SERVICE_UNAVAILABLE', 'The job could not be queued (Redis unreachable); it is recorded as failed. Try again.');
    }
    enqueue.end();
    // traceId and spanId come with req.log (tracedRoute).
    req.log.info({ jobId, orgId, userId, providerId: provider.id, flowId: created.flow.id, priority: message.priority, maxAttempts: message.maxAttempts, secretNames: created.secretNames }, 'job queued');
    return reply.status(202).send({ jobId, status: 'queued' });
  });
}
