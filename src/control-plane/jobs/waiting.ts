/**
 * Why a queued job has not started (GET /api/jobs/{id} `waiting`): a queued job may be waiting for its turn only, or
 * for something the dashboard can name —
 * - `account`: its portal account (organisation, user, provider) already has as many runs as the provider's
 *   `maxConcurrentPerAccount` (docs/queue.md "One run at a time per portal account"): it starts when one ends;
 * - `maintenance`, `breaker`, `rate`, `spacing`: its provider's gate put it back until `until`
 *   (docs/providers.md): a maintenance window, an open circuit breaker, the requests-per-minute ceiling, the spacing.
 * Read from the queue's own keys, without writing: the account's lease count (`sri:queue:leased-by-org`) and the
 * deferred jobs (`sri:queue:deferred:jobs`, scanned for the job: at most 4,000 deferred jobs are looked at).
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { keys } from '../../shared/keys.ts';

export const WAITING_REASONS = ['account', 'maintenance', 'breaker', 'rate', 'spacing'] as const;
export type WaitingReason = (typeof WAITING_REASONS)[number];
export interface JobWaiting { readonly reason: WaitingReason; readonly until?: string }

const Deferred = z.object({ j: z.string(), w: z.string() });
/** Deferred jobs read at most to find one (HGETALL of sri:queue:deferred:jobs). */
const MAX_DEFERRED_READ = 4000;

export async function jobWaiting(redis: Redis, job: { id: string; orgId: string; userId: string; providerName: string | undefined; maxConcurrentPerAccount: number | undefined }): Promise<JobWaiting | undefined> {
  // Its fields are take tokens, the job id is in the value: read whole while it is small (the API's Redis user may
  // read a hash, not scan one); a queue with more deferred jobs than that says nothing of them here.
  if (await redis.hlen(keys.queueDeferredJobs) <= MAX_DEFERRED_READ) {
    const entries = await redis.hgetall(keys.queueDeferredJobs);
    for (const [token, value] of Object.entries(entries)) {
      if (!value.includes(job.id)) continue;
      const d = Deferred.safeParse(safeJson(value));
      if (!d.success || d.data.j !== job.id) continue;
      const score = await redis.zscore(keys.queueDeferred, token);
      const reason = (WAITING_REASONS as readonly string[]).includes(d.data.w) ? d.data.w as WaitingReason : 'spacing';
      return { reason, ...(score !== null ? { until: new Date(Number(score)).toISOString() } : {}) };
    }
  }
  if (job.providerName === undefined) return undefined;
  const held = Number(await redis.hget(keys.queueLeasedByOrg, `${job.orgId}/${job.userId}/${job.providerName}`) ?? 0);
  return held >= (job.maxConcurrentPerAccount ?? 1) ? { reason: 'account' } : undefined;
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
