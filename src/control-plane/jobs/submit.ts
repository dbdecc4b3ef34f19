/**
 * Submitting a run (POST /api/run): checks, records and enqueues one job (JobQueue.enqueue: the push, the status
 * key and the organisation's registration in one step). The job row is committed before the message is pushed, so a
 * worker's result always finds its job. The push is tried again while Redis is only slow; when it still fails the job
 * is marked failed (nothing was queued, so a new request may be sent) and the caller gets SERVICE_UNAVAILABLE.
 */
import { createHash, randomUUID } from 'node:crypto';
import { SriError } from '../../shared/errors.ts';
import type { z } from 'zod';
import type { JobPriority, JobStatus, RecordMode } from '../../shared/schemas.ts';
import { setSpanError, traceFields, type Span } from '../../shared/tracing.ts';
import type { ApiContext } from '../context.ts';
import { isUniqueViolation } from '../db/index.ts';
import { findActiveFlow, findFlow, type FlowRow } from '../db/queries/flows.ts';
import { failJob, findJobByIdempotencyKey, insertJob, type JobRow } from '../db/queries/jobs.ts';
import { findProvider } from '../db/queries/providers.ts';
import type { RunAdmission } from './admission.ts';
import { assertConnected, recordedStatus, sealedJobMessage, startEnqueueSpan, withTraceparent, type JobLog } from './dispatch.ts';

export interface RunRequest {
  orgId: string;
  userId: string;
  providerId: string;
  metadata?: Record<string, unknown> | undefined;
  priority?: z.infer<typeof JobPriority> | undefined;
  maxAttempts?: number | undefined;
  /** The run's recording override (docs/scripts.md "Recordings"); @default the flow's. */
  record?: RecordMode | undefined;
  /** Same key + same request → the first job; same key + another request → IDEMPOTENCY_CONFLICT. */
  idempotencyKey?: string | undefined;
  /** Runs this flow of the provider (a schedule pinned to it) instead of the provider's active flow. */
  flowId?: string | undefined;
  /** The schedule and due time the run is made for (schedules/scheduler.ts): recorded on the job, one job per pair. */
  schedule?: { id: string; dueAt: Date } | undefined;
}

/** A new job, queued; or the job an earlier request with the same Idempotency-Key made, as it is now. */
export type Submitted = { replayed: false; jobId: string; status: 'queued' } | { replayed: true; jobId: string; status: JobStatus };

function replay(existing: JobRow, requestHash: string): Submitted {
  if (existing.request_hash !== requestHash) throw new SriError('IDEMPOTENCY_CONFLICT');
  return { replayed: true, jobId: existing.id, status: recordedStatus(existing.status) };
}

/**
 * Runs the active flow of `run.providerId` for `run.userId`. `span` is the request's: the job's trace id is its trace
 * id, and the enqueue span its child.
 */
export async function submitRun(ctx: ApiContext, admission: RunAdmission, run: RunRequest, obs: { span?: Span | undefined; log: JobLog }): Promise<Submitted> {
  const { orgId, userId, idempotencyKey } = run;
  // Tenant limits (./admission.ts): metadata size, runs per organisation and user; the queue's room below.
  admission.checkMetadata(run.metadata);
  await admission.countRun(orgId, userId);
  // priority and maxAttempts join the hash only when given, so keys used before they existed still replay.
  const requestHash = createHash('sha256').update(JSON.stringify({
    userId, providerId: run.providerId, metadata: run.metadata ?? null,
    ...(run.priority === undefined ? {} : { priority: run.priority }),
    ...(run.maxAttempts === undefined ? {} : { maxAttempts: run.maxAttempts }),
    ...(run.flowId === undefined ? {} : { flowId: run.flowId }),
    ...(run.record === undefined ? {} : { record: run.record }),
  })).digest('hex');

  if (idempotencyKey !== undefined) {
    const existing = await ctx.db.withOrg(orgId, (tx) => findJobByIdempotencyKey(tx, idempotencyKey));
    if (existing) return replay(existing, requestHash);
  }
  // Before anything is recorded: a refused run leaves no job behind (a replay above is answered even when full).
  await admission.assertQueueRoom(orgId);

  const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, run.providerId));
  if (!provider) throw new SriError('PROVIDER_NOT_FOUND');
  await assertConnected(ctx, orgId, userId, provider);

  const jobId = randomUUID();
  // The job's trace id is the request span's: the job row, the messages and every log line of the job share it.
  const traceId = (obs.span && traceFields(obs.span).traceId) ?? randomUUID().replace(/-/g, '');
  obs.span?.setAttributes({ 'sri.job.id': jobId, 'sri.org.id': orgId, 'sri.provider.id': run.providerId });
  let created: { flow: FlowRow; message: Awaited<ReturnType<typeof sealedJobMessage>> };
  try {
    created = await ctx.db.withOrg(orgId, async (tx) => {
      const flow = run.flowId === undefined ? await findActiveFlow(tx, provider.id) : await findFlow(tx, run.flowId);
      if (!flow && run.flowId === undefined) throw new SriError('NO_ACTIVE_FLOW');
      if (!flow || flow.provider_id !== provider.id) throw new SriError('NOT_FOUND', `No flow ${run.flowId} of provider ${provider.id} in your organisation.`);
      const job = await insertJob(tx, {
        id: jobId, orgId, userId, providerId: provider.id, flowId: flow.id, flowVersion: flow.version,
        idempotencyKey, requestHash, metadata: run.metadata, traceId, priority: run.priority, maxAttempts: run.maxAttempts,
        // A second job for the same schedule and due time fails the insert (jobs_schedule_due_key).
        schedule: run.schedule, record: run.record,
      });
      // Built (and the flow verified) before the commit: a tampered flow leaves no job behind.
      return { flow, message: await sealedJobMessage(tx, ctx, { job, flow, provider }) };
    });
  } catch (e) {
    if (idempotencyKey !== undefined && isUniqueViolation(e)) {
      // A concurrent request with the same key won the insert.
      const existing = await ctx.db.withOrg(orgId, (tx) => findJobByIdempotencyKey(tx, idempotencyKey));
      if (existing) return replay(existing, requestHash);
    }
    throw e;
  }

  const enqueue = startEnqueueSpan(ctx, obs.span, orgId, jobId);
  const message = withTraceparent(created.message.message, enqueue.traceparent);
  try {
    // JobQueue.enqueue itself keeps trying for a while when Redis is slow or reconnecting: only a Redis that stays
    // unreachable makes this a SERVICE_UNAVAILABLE.
    await ctx.queue.enqueue(orgId, message, { onRetry: (err, attempt) => obs.log.warn({ err: (err as Error).message, jobId, attempt }, 'enqueue timed out or lost its connection; trying again') });
  } catch (err) {
    setSpanError(enqueue.span, 'SERVICE_UNAVAILABLE', (err as Error).message);
    enqueue.span.end();
    obs.log.error({ err, jobId, orgId }, 'could not enqueue the job');
    await ctx.db.withOrg(orgId, (tx) => failJob(tx, jobId, 'SERVICE_UNAVAILABLE', 'The job could not be queued: Redis is unreachable.'))
      .catch((e: unknown) => obs.log.error({ err: e, jobId }, 'could not mark the job failed'));
    throw new SriError('SERVICE_UNAVAILABLE', 'The job could not be queued (Redis unreachable); it is recorded as failed. Try again.');
  }
  enqueue.span.end();
  obs.log.info({
    jobId, orgId, userId, providerId: provider.id, flowId: created.flow.id, priority: message.priority, maxAttempts: message.maxAttempts,
    secretNames: created.message.secretNames,
  }, 'job queued');
  return { replayed: false, jobId, status: 'queued' };
}
