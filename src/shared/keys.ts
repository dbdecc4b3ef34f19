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
  /** string — `queued | running | retrying | done | failed | cancelled | dead`. */
  jobStatus: (jobId: string) => `sri:job:${jobId}:status`,
  /** string, TTL — the full result message, kept so a control plane that was down can reconcile. */
  jobResult: (jobId: string) => `sri:job:${jobId}:result`,
  /** stream, capped (MAXLEN ~), TTL — the job's live log, one entry per batch of lines (src/shared/job-logs.ts). */
  jobLogs: (jobId: string) => `sri:job:${jobId}:logs`,
  /** string, TTL 30 s — epoch ms of the worker's last heartbeat. */
  workerHeartbeat: (workerId: string) => `sri:worker:${workerId}:heartbeat`,
  /** hash — the worker's counters. */
  workerStats: (workerId: string) => `sri:worker:${workerId}:stats`,
  /** hash, TTL 24 h — what the worker says about itself at each heartbeat: state, resources, jobs (worker-registry.ts). */
  workerInfo: (workerId: string) => `sri:worker:${workerId}:info`,
  /** sorted set — worker id → epoch ms of its last heartbeat; the registry `GET /api/workers` and `sri workers` read. */
  workers: 'sri:workers',
  /** string, TTL — a provider session: `{"cookies":[…],"credentials"?:{…},"connectedAt":ms}`. */
  session: (orgId: string, userId: string, providerName: string) =>
    `sri:sessions:${orgId}:${userId}:${providerName}`,
  // ── Reliable queue (src/shared/queue, docs/queue.md) ─────────────────────────────────────────────────────
  /** list — high-priority jobs of one organisation moved out of `jobs` by the take script; taken first. */
  orgReadyHigh: (orgId: string) => `sri:org:${orgId}:ready:high`,
  /** list — normal jobs moved out of `jobs` by the take script, plus released/recovered/promoted jobs (front). */
  orgReadyNormal: (orgId: string) => `sri:org:${orgId}:ready:normal`,
  /** hash — the organisation's quota: `maxConcurrent`, `perMinute` (absent field = unlimited). */
  orgQuota: (orgId: string) => `sri:org:${orgId}:quota`,
  /** string, TTL 120 s — jobs of the organisation taken in one clock minute (`minute` = epoch ms / 60000). */
  orgMinute: (orgId: string, minute: string) => `sri:org:${orgId}:minute:${minute}`,
  /** list — dead-letter entry ids of one organisation, newest first. */
  orgDlq: (orgId: string) => `sri:org:${orgId}:dlq`,
  /** list — the ring of organisation ids the take script rotates (round-robin across all workers). */
  queueRing: 'sri:queue:ring',
  /** set — the members of the ring (so registering is idempotent). */
  queueRingMembers: 'sri:queue:ring:members',
  /** sorted set — take token → lease deadline (epoch ms). */
  queueLeases: 'sri:queue:leases',
  /** hash — organisation id → number of jobs it has leased now (for maxConcurrent). */
  queueLeasedByOrg: 'sri:queue:leased-by-org',
  /** sorted set — take token of a job waiting for its retry → due time (epoch ms). */
  queueDelayed: 'sri:queue:delayed',
  /** hash — take token → `{"o":orgId,"r":raw}` of a job waiting for its retry. */
  queueDelayedJobs: 'sri:queue:delayed:jobs',
  /** string — counter of completions refused because the job already had an outcome or the lease was gone. */
  queueLateResults: 'sri:queue:late-results',
  /** pub/sub channel — control messages to all workers, e.g. `{"type":"cancel","jobId":…}`. */
  queueControl: 'sri:control',
  /** hash — one lease: `orgId, jobId, attempt, workerId, takenAt, recovered` (the message is in leaseMessage). */
  lease: (token: string) => `sri:lease:${token}`,
  /** list of one element — the leased message itself, moved here with LMOVE (the AOF records key names, not bytes). */
  leaseMessage: (token: string) => `sri:lease:${token}:message`,
  /** string — the take token currently leasing the job (index jobId → token). */
  jobLease: (jobId: string) => `sri:job:${jobId}:lease`,
  /** string, TTL — the attempt number the job's next take runs as (set when a lease is recovered). */
  jobAttempt: (jobId: string) => `sri:job:${jobId}:attempt`,
  /** string, TTL — present when the job was cancelled; takes drop it, its worker stops it. */
  jobCancel: (jobId: string) => `sri:job:${jobId}:cancel`,
  /**
   * string, TTL 30 days — the terminal status a worker recorded for the job; with REQUIRE_JOB_SIGNATURE a worker
   * refuses the job id while it exists (JOB_REPLAYED). POST /api/jobs/{id}/retry deletes it (docs/security.md).
   */
  jobFinished: (jobId: string) => `sri:job:${jobId}:finished`,
  /** hash — dead-letter entry id → entry JSON `{id, orgId, jobId?, reason, raw, truncated, at}`. */
  dlqEntries: 'sri:dlq:entries',
  /** sorted set — dead-letter entry id → time (epoch ms), all organisations. */
  dlqIndex: 'sri:dlq:index',
  /** string — counter behind dead-letter entry ids. */
  dlqSeq: 'sri:dlq:seq',
  // ── Worker enrolment and revocation (src/shared/enrolment.ts, docs/security.md "Worker enrolment") ────────────
  /**
   * string, TTL = the token's lifetime — one unused enrolment token, named by the SHA-256 of the token: the worker's
   * credentials sealed under a key derived from the token. The worker redeems it with GETDEL (once).
   */
  enrolToken: (tokenSha256: string) => `sri:enrol:${tokenSha256}`,
  /** hash — worker id → JSON record of its enrolment (API only; outside `sri:enrol:*`, so the bootstrap user cannot touch it). */
  enrolments: 'sri:enrolments',
  /** hash — worker id → epoch ms of its revocation; workers read their own field at every heartbeat. */
  workersRevoked: 'sri:workers:revoked',
  // ── Login lockout (src/control-plane/auth/lockout.ts) ───────────────────────────────────────────────────────────
  /** string (counter), TTL = AUTH_LOCKOUT_WINDOW_MS — failed logins of one account (SHA-256 of its e-mail) in the window. */
  authFailures: (accountSha256: string) => `sri:auth:failures:${accountSha256}`,
  /** string, TTL = AUTH_LOCKOUT_MS — present while the account is locked (its failures reached AUTH_LOCKOUT_MAX_FAILURES). */
  authLocked: (accountSha256: string) => `sri:auth:locked:${accountSha256}`,
} as const;

/** Extracts the organisation id from `sri:org:{orgId}:jobs` or `sri:org:{orgId}:done`. */
export function orgIdFromKey(key: string): string | undefined {
  const m = /^sri:org:([^:]+):(jobs|done)$/.exec(key);
  return m?.[1];
}

/** How long a worker remembers that a job finished (keys.jobFinished): a replay within this time is refused. */
export const JOB_FINISHED_TTL_SECONDS = 30 * 24 * 3600;

/** How long a job's result message stays in Redis for reconciliation. */
export const JOB_RESULT_TTL_SECONDS = 7 * 24 * 3600;
