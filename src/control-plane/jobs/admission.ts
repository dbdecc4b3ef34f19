/**
 * What a tenant may put into the shared queue (docs/security.md "One tenant cannot exhaust shared resources"):
 * every run — `POST /api/run` and `POST /api/jobs/{id}/retry` — is counted against a rate limit per organisation
 * and per user (fixed windows in Redis, shared by every API process: ./lua/hitRunLimits-2.lua), refused while the
 * organisation already has ORG_MAX_QUEUED_JOBS jobs waiting in Redis, and a run's `metadata` is capped, because
 * each queued message carries its script and metadata in Redis memory until a worker takes it.
 *
 * Each check is one plain Redis call (a script, or LLENs) with no retry of its own, so a caller can wrap it.
 */
import type { Redis } from 'ioredis';
import { SriError } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import { registerScripts, type ScriptArea } from '../../shared/lua/scripts.ts';
import { isTransientRedisError, retryTransient } from '../../shared/retry.ts';

/** The run limits' scripts, registered by the platform's one loader. Bump `version` when one changes behaviour. */
export const API_SCRIPTS: ScriptArea = Object.freeze({ area: 'api', version: 1, dir: new URL('./lua/', import.meta.url) });

export interface AdmissionLimits {
  /** Runs per user and window; 0 = no limit. */
  readonly runRateLimitPerUser: number;
  /** Runs per organisation and window; 0 = no limit. */
  readonly runRateLimitPerOrg: number;
  readonly runRateLimitWindowMs: number;
  /** Jobs an organisation may have waiting in Redis; 0 = no limit. */
  readonly orgMaxQueuedJobs: number;
  readonly runMaxMetadataBytes: number;
}

export class RunAdmission {
  constructor(private readonly redis: Redis, private readonly limits: AdmissionLimits) {}

  /** Throws METADATA_TOO_LARGE when `metadata` as JSON is over RUN_MAX_METADATA_BYTES. */
  checkMetadata(metadata: unknown): void {
    if (metadata === undefined) return;
    const bytes = Buffer.byteLength(JSON.stringify(metadata), 'utf8');
    const limit = this.limits.runMaxMetadataBytes;
    if (bytes > limit) {
      throw new SriError('METADATA_TOO_LARGE', `The run's metadata is ${bytes} bytes as JSON, over RUN_MAX_METADATA_BYTES (${limit}); `
        + 'send less — large inputs belong in S3 or in tenant secrets, not in metadata.', { details: { bytes, limit } });
    }
  }

  /**
   * Counts one run of `userId` in `orgId`; throws RATE_LIMITED when either window is over its limit, with
   * `details.retryAfterSeconds` (the API answers it as Retry-After, http/errors.ts). The organisation's limit is named
   * first: no user of it can do anything about it but wait.
   */
  async countRun(orgId: string, userId: string): Promise<void> {
    const { runRateLimitPerOrg: perOrg, runRateLimitPerUser: perUser, runRateLimitWindowMs: windowMs } = this.limits;
    if (perOrg === 0 && perUser === 0) return;
    const hit = registerScripts(this.redis, API_SCRIPTS)['hitRunLimits']!;
    const [orgRuns, orgTtl, userRuns, userTtl] = (await retryTransient(() => hit([keys.runRateOrg(orgId), keys.runRateUser(userId)], [windowMs]), { isRetryable: isTransientRedisError, deadlineMs: 15_000 }) as number[]).map(Number);
    const refuse = (who: string, limit: number, setting: string, ttlMs: number) => {
      const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
      return new SriError('RATE_LIMITED', `Too many runs: ${who} may start ${limit} per ${Math.round(windowMs / 1000)} s (${setting}). `
        + `Try again in ${seconds} s.`, { details: { limit: setting, retryAfterSeconds: seconds } });
    };
    if (perOrg > 0 && orgRuns! > perOrg) throw refuse('your organisation', perOrg, 'RUN_RATE_LIMIT_PER_ORG', orgTtl!);
    if (perUser > 0 && userRuns! > perUser) throw refuse('each user', perUser, 'RUN_RATE_LIMIT_PER_USER', userTtl!);
  }

  /**
   * Jobs of the organisation waiting in Redis: its producer list and both ready lists (leased ones are running). A
   * cancelled job's message counts until a take drops it: what is bounded is the memory the messages hold.
   */
  async queuedJobs(orgId: string): Promise<number> {
    const lengths = await Promise.all([keys.orgJobs(orgId), keys.orgReadyHigh(orgId), keys.orgReadyNormal(orgId)].map((k) => retryTransient(() => this.redis.llen(k), { isRetryable: isTransientRedisError, deadlineMs: 15_000 })));
    return lengths.reduce((a, b) => a + b, 0);
  }

  /**
   * Throws QUEUE_FULL when the organisation already has ORG_MAX_QUEUED_JOBS jobs waiting. Checked before anything is
   * recorded; concurrent runs may pass together, so the queue can go over by the runs in flight — the rate limits
   * bound how many those are.
   */
  async assertQueueRoom(orgId: string): Promise<void> {
    const limit = this.limits.orgMaxQueuedJobs;
    if (limit === 0) return;
    const queued = await this.queuedJobs(orgId);
    if (queued >= limit) {
      throw new SriError('QUEUE_FULL', `Your organisation already has ${queued} jobs waiting for a worker (ORG_MAX_QUEUED_JOBS is ${limit}); `
        + 'try again once workers have taken some (jobs you cancel leave the queue when a worker reaches them), or ask the operator to raise ORG_MAX_QUEUED_JOBS.',
      { details: { queued, limit } });
    }
  }
}
