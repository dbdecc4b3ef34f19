/**
 * The job message of a run or of a retry, built from the job's row, its flow and its provider. POST /api/run and
 * POST /api/jobs/{id}/retry both go through here, so a retried job is the same job as the original (same id,
 * script, metadata, trace, priority) with the next attempt number, and neither path can enqueue a script whose
 * stored hash or signature no longer verifies.
 */
import { SriError } from '../../shared/errors.ts';
import { moduleRefOfScript } from '../../shared/modules/ref.ts';
import { JobMessage } from '../../shared/schemas.ts';
import { signEnvelope, verifyScript } from '../../shared/signing.ts';
import type { FlowRow } from '../db/queries/flows.ts';
import type { JobRow } from '../db/queries/jobs.ts';
import type { Provider } from '../db/queries/providers.ts';

/** Throws FLOW_TAMPERED when the stored script no longer matches its hash or HMAC signature. */
export function assertFlowIntact(flow: FlowRow, signingSecret: string): void {
  // The row could have been altered in the database since creation; never enqueue what we did not sign.
  if (verifyScript(flow.script, flow.script_hash, flow.signature, signingSecret) !== 'ok') throw new SriError('FLOW_TAMPERED');
}

/**
 * The message for `job` at `attempt` (@default the row's attempt). Verifies the flow first; the job's own
 * maxAttempts wins over the flow's, and with neither the queue applies its default. The envelope (ids, script
 * hash, creation time) is signed, so workers with REQUIRE_JOB_SIGNATURE run it under these ids only; `secrets` is
 * the sealed bundle of the organisation's secrets the flow references (secrets/vault.ts), when there are any.
 */
export function verifiedJobMessage(a: {
  job: JobRow; flow: FlowRow; provider: Provider; signingSecret: string; attempt?: number; secrets?: string;
}): JobMessage {
  const { job, flow, provider } = a;
  assertFlowIntact(flow, a.signingSecret);
  const maxAttempts = job.max_attempts ?? flow.max_attempts ?? undefined;
  // The run's recording override, else the flow's (docs/scripts.md "Recordings"); unsigned, like scheduleId.
  const record = job.record ?? flow.record ?? undefined;
  const envelope = {
    jobId: job.id, orgId: job.org_id, userId: job.user_id, providerId: provider.id,
    flowId: flow.id, flowVersion: flow.version, scriptHash: flow.script_hash, createdAt: new Date(job.created_at).toISOString(),
  };
  const message = JobMessage.parse({
    ...envelope, providerName: provider.name,
    // A module flow names its module; the worker resolves it (docs/modules.md). scriptHash/signature cover the reference.
    ...(moduleRefOfScript(flow.script) === undefined ? { scriptContent: flow.script, scriptKey: flow.script_key } : { module: moduleRefOfScript(flow.script) }),
    signature: flow.signature,
    metadata: job.metadata ?? undefined, traceId: job.trace_id ?? undefined, allowedHosts: provider.allowedHosts,
    priority: job.priority, attempt: a.attempt ?? job.attempt, ...(maxAttempts === undefined ? {} : { maxAttempts }),
    ...(a.secrets === undefined ? {} : { secrets: a.secrets }),
    ...(record === undefined || record === 'none' ? {} : { record }),
    ...(job.schedule_id === null || job.due_at === null ? {} : { scheduleId: job.schedule_id, dueAt: new Date(job.due_at).toISOString() }),
    // The queue runs at most this many jobs of the job's portal account at once (docs/queue.md); unsigned.
    ...(provider.maxConcurrentPerAccount === undefined ? {} : { maxConcurrentPerAccount: provider.maxConcurrentPerAccount }),
  });
  // Signed as parsed, so the worker verifies exactly the allowedHosts (and ids) it will read.
  return { ...message, envelopeSignature: signEnvelope(message, a.signingSecret) };
}
