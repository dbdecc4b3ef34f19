/**
 * Redis key names shared by both planes (ARCHITECTURE.md "Redis keys"). Every key the platform uses is built here;
 * docs/redis-keys.md lists them.
 */
export const KEY_PREFIX = 'sri:';

export const keys = {
  /** list — incoming jobs of one organisation; producers LPUSH, workers take the oldest (right end). */
  orgJobs: (orgId: string) => `sri:org:${orgId}:jobs`,
  /** pub/sub channel — one result message per finished job. */
  orgDone: (orgId: string) => `sri:org:${orgId}:done`,
  /** pattern the control plane's results listener follows. */
  orgDonePattern: 'sri:org:*:done',
  /** pattern that discovers organisations whose queue a client pushed to directly. */
  orgJobsPattern: 'sri:org:*:jobs',
  /** set — organisations known to the control plane (added at registration), polled by workers. */
  orgs: 'sri:orgs',
  /** string — `queued | running | done | failed`. */
  jobStatus: (jobId: string) => `sri:job:${jobId}:status`,
  /** string, TTL — the full result message, kept so a control plane that was down can reconcile. */
  jobResult: (jobId: string) => `sri:job:${jobId}:result`,
  /** hash — jobs a worker currently holds (take token → raw message), so later releases can hand them back. */
  workerActive: (workerId: string) => `sri:worker:${workerId}:active`,
  /** string, TTL 30 s — epoch ms of the worker's last heartbeat. */
  workerHeartbeat: (workerId: string) => `sri:worker:${workerId}:heartbeat`,
  /** hash — the worker's counters. */
  workerStats: (workerId: string) => `sri:worker:${workerId}:stats`,
  /** string, TTL — a provider session: `{"cookies":[…],"credentials"?:{…},"connectedAt":ms}`. */
  session: (orgId: string, userId: string, providerName: string) =>
    `sri:sessions:${orgId}:${userId}:${providerName}`,
  /** list — dead letters: messages a worker could not run (not JSON, not a job), newest first, never dropped. */
  dlq: 'sri:dlq',
} as const;

/** Extracts the organisation id from `sri:org:{orgId}:jobs` or `sri:org:{orgId}:done`. */
export function orgIdFromKey(key: string): string | undefined {
  const m = /^sri:org:([^:]+):(jobs|done)$/.exec(key);
  return m?.[1];
}

/** How long a job's result message stays in Redis for reconciliation. */
export const JOB_RESULT_TTL_SECONDS = 7 * 24 * 3600;
