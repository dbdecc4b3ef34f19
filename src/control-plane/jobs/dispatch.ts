/**
 * What a run (./submit.ts) and a retry (./control.ts) share on their way to the queue: the provider session the job
 * will use, the sealed and signed job message, and the producer span whose context travels in the message.
 */
import type { BaseLogger } from 'pino';
import { SriError } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import { isTransientRedisError, retryTransient } from '../../shared/retry.ts';
import { JobStatus, type JobMessage } from '../../shared/schemas.ts';
import { ROOT_CONTEXT, SpanKind, startChildSpan, traceparentOf, type Span } from '../../shared/tracing.ts';
import { transportKeyring } from '../../shared/transport-secrets.ts';
import type { ApiContext } from '../context.ts';
import type { Tx } from '../db/index.ts';
import type { FlowRow } from '../db/queries/flows.ts';
import type { JobRow } from '../db/queries/jobs.ts';
import type { Provider } from '../db/queries/providers.ts';
import { secretRefsOfScript } from '../flows/compile.ts';
import { sealSecretsForJob } from '../secrets/vault.ts';
import { assertFlowIntact, verifiedJobMessage } from './job-message.ts';

/** Where a use case says what it did: the request's logger, with its request id and trace ids. */
export type JobLog = Pick<BaseLogger, 'info' | 'warn' | 'error'>;

/** A status read from PostgreSQL, which only ever stores the statuses of src/shared/schemas.ts (its CHECK constraint). */
export function recordedStatus(status: string): JobStatus {
  const parsed = JobStatus.safeParse(status);
  if (!parsed.success) throw new Error(`job status "${status}" in the database is not one of ${JobStatus.options.join(', ')}`);
  return parsed.data;
}

/**
 * Throws PROVIDER_NOT_CONNECTED unless `userId` has a session for `provider` in Redis. A read: tried again while
 * Redis is only slow (a busy machine), so a run is not refused for a timeout.
 */
export async function assertConnected(ctx: ApiContext, orgId: string, userId: string, provider: Provider, message?: string): Promise<void> {
  const connected = await retryTransient(() => ctx.redis.exists(keys.session(orgId, userId, provider.name)), { isRetryable: isTransientRedisError, deadlineMs: 15_000 });
  if (connected !== 1) throw new SriError('PROVIDER_NOT_CONNECTED', message);
}

/**
 * The message of `job` at `attempt`, in the transaction that records it: the flow verified first (FLOW_TAMPERED, so a
 * tampered flow leaves no job and seals no secret), then the organisation's secrets its script fills sealed for this
 * job (their values of now; the names are audited in `tx`), then the envelope signed.
 */
export async function sealedJobMessage(tx: Tx, ctx: ApiContext, a: { job: JobRow; flow: FlowRow; provider: Provider; attempt?: number }): Promise<{ message: JobMessage; secretNames: string[] }> {
  assertFlowIntact(a.flow, ctx.config.scriptSigningSecret);
  const secrets = await sealSecretsForJob(tx, {
    secretsKeys: ctx.config.secretsKeys, transport: transportKeyring(ctx.config),
    job: { jobId: a.job.id, orgId: a.job.org_id, userId: a.job.user_id }, names: secretRefsOfScript(a.flow.script),
  });
  const message = verifiedJobMessage({
    job: a.job, flow: a.flow, provider: a.provider, signingSecret: ctx.config.scriptSigningSecret, secrets: secrets.sealed,
    ...(a.attempt === undefined ? {} : { attempt: a.attempt }),
  });
  return { message, secretNames: secrets.names };
}

/**
 * The PRODUCER span of pushing `jobId`, a child of `parent` (the request's span): the worker's spans are its
 * children, through the `traceparent` it gives the message (unsigned, docs/security.md).
 */
export function startEnqueueSpan(ctx: ApiContext, parent: Span | undefined, orgId: string, jobId: string, attempt?: number): { span: Span; traceparent: string | undefined } {
  const span = startChildSpan(ctx.tracer, 'enqueue', parent ?? ROOT_CONTEXT, {
    kind: SpanKind.PRODUCER,
    attributes: {
      'messaging.system': 'redis', 'messaging.destination.name': keys.orgJobs(orgId), 'sri.job.id': jobId,
      ...(attempt === undefined ? {} : { 'sri.job.attempt': attempt }),
    },
  });
  return { span, traceparent: traceparentOf(span) };
}

/** `message` with the span's context, when there is one. */
export const withTraceparent = (message: JobMessage, traceparent: string | undefined): JobMessage => (traceparent === undefined ? message : { ...message, traceparent });
