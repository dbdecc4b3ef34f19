/**
 * What a worker checks of a job before it touches anything of the job (its live log, its evidence prefix, its
 * session), and what it remembers afterwards (docs/security.md "Job envelope"):
 * - the envelope signature (v3: ids, scriptHash, allowedHosts, providerName, timeoutMs, maxAttempts, metadata; HMAC
 *   with SCRIPT_SIGNING_SECRET): a signature that is present must verify; with REQUIRE_JOB_SIGNATURE one must be
 *   present — so a signed script cannot be replayed under another organisation's, user's or provider's ids, with
 *   another session, for longer or more often, or with other input. A v2 signature (an older API) does not verify;
 * - with REQUIRE_JOB_SIGNATURE, a job id the worker fleet has already finished (keys.jobFinished) is not run again.
 *   Retries of a job that has not finished (attempt > 1 after a transient failure or a lost worker) run as usual;
 *   POST /api/jobs/{id}/retry deletes the mark before it queues a failed job again.
 * A refused job runs nothing and writes nothing under its ids but its dead-letter entry and result.
 */
import type { Redis } from 'ioredis';
import { SriError } from '../../shared/errors.ts';
import { JOB_FINISHED_TTL_SECONDS, keys } from '../../shared/keys.ts';
import type { JobMessage } from '../../shared/schemas.ts';
import { verifyEnvelope } from '../../shared/signing.ts';

export interface GuardConfig {
  readonly requireJobSignature: boolean;
  readonly scriptSigningSecret: string;
}

/** The refusal of `job`, or undefined when it may run. */
export async function guardJob(job: JobMessage, config: GuardConfig, redis: Redis): Promise<SriError | undefined> {
  if (job.envelopeSignature === undefined) {
    if (config.requireJobSignature) {
      return new SriError('JOB_SIGNATURE_INVALID', 'Job signature missing: this worker runs only jobs whose envelope the control plane signed (REQUIRE_JOB_SIGNATURE=true); see docs/security.md.');
    }
  } else if (!verifyEnvelope(job, job.envelopeSignature, config.scriptSigningSecret)) {
    return new SriError('JOB_SIGNATURE_INVALID', 'Job signature invalid: the envelope signature (v3) does not match the job\'s ids, script hash, creation time, allowed hosts, provider name, timeout, attempts or metadata (altered, replayed under other ids, or signed by an older release as v2: retry it with POST /api/jobs/{id}/retry).');
  }
  if (config.requireJobSignature) {
    const finished = await redis.get(keys.jobFinished(job.jobId));
    if (finished !== null) {
      return new SriError('JOB_REPLAYED', `Job replayed: job ${job.jobId} already finished (${finished.slice(0, 20)}); a finished job is not run again. Retry a failed job with POST /api/jobs/{id}/retry.`);
    }
  }
  return undefined;
}

/** Remembers that `jobId` finished with `status` (after its outcome was recorded). */
export async function rememberFinished(redis: Redis, jobId: string, status: string): Promise<void> {
  await redis.set(keys.jobFinished(jobId), status, 'EX', JOB_FINISHED_TTL_SECONDS);
}
