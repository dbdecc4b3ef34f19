/**
 * Redis key names shared by both planes (ARCHITECTURE.md "Redis keys"). Every key the platform uses is built here;
 * docs/redis-keys.md lists them. The names below are those of a single Redis; on Redis Cluster (REDIS_CLUSTER_NODES)
 * `keys` gives every key but the few used alone the deployment's hash tag, `{sri}:` instead of `sri:`, so that the
 * queue's scripts, MULTIs and pipelines, which touch many keys at once, find them all in one slot
 * (docs/redis-keys.md "On Redis Cluster").
 */
export const KEY_PREFIX = 'sri:';

/** The deployment's hash tag on Redis Cluster: every tagged key starts with it instead of `sri:`. */
export const CLUSTER_HASH_TAG = '{sri}';

const singleNodeKeys = {
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
  /** string — `queued | running | retrying | waiting_for_user | done | failed | cancelled | dead`. */
  jobStatus: (jobId: string) => `sri:job:${jobId}:status`,
  /** string, TTL — the full result message, kept so a control plane that was down can reconcile. */
  jobResult: (jobId: string) => `sri:job:${jobId}:result`,
  /** stream, capped (MAXLEN ~), TTL — the job's live log, one entry per batch of lines (src/shared/job-logs.ts). */
  jobLogs: (jobId: string) => `sri:job:${jobId}:logs`,
  /** string, TTL — the job's hand-off while it waits for a person: HandoffState JSON (src/shared/handoff.ts). */
  jobHandoff: (jobId: string) => `sri:job:${jobId}:handoff`,
  /** stream, capped (exact MAXLEN), TTL — the page's screencast frames while the job waits for a person. */
  jobLiveFrames: (jobId: string) => `sri:job:${jobId}:live:frames`,
  /** list, TTL — the person's input events and answer, oldest first (API RPUSH, worker BLPOP). */
  jobLiveInput: (jobId: string) => `sri:job:${jobId}:live:input`,
  /** string, TTL 30 s — epoch ms of the worker's last heartbeat. */
  workerHeartbeat: (workerId: string) => `sri:worker:${workerId}:heartbeat`,
  /** hash — the worker's counters. */
  workerStats: (workerId: string) => `sri:worker:${workerId}:stats`,
  /** hash, TTL 24 h — what the worker says about itself at each heartbeat: state, resources, jobs (worker-registry.ts). */
  workerInfo: (workerId: string) => `sri:worker:${workerId}:info`,
  /** sorted set — worker id → epoch ms of its last heartbeat; the registry `GET /api/workers` and `sri workers` read. */
  workers: 'sri:workers',
  /**
   * hash — one provider of the catalogue as workers need it (`id`, `name`, `displayName`, `allowedHosts` JSON,
   * `publishedAt`), written by the control plane from PostgreSQL at start and on every change (provider-catalogue.ts).
   */
  provider: (providerName: string) => `sri:provider:${providerName}`,
  /** pattern of every provider entry, for the control plane's removal of providers no longer in the catalogue. */
  providerPattern: 'sri:provider:*',
  /**
   * hash — a provider's gate (src/execution-plane/job/provider-gate.ts, docs/providers.md): `nextStartAt` (epoch ms
   * before which no job of the provider starts: the last start + minSpacingMs + jitter) and its circuit breaker
   * (`state`, `failures`, `openUntil`, `openedAt`, `probeJob`, `probeUntil`, `changedAt`). Written by workers' gate scripts.
   */
  providerGate: (providerName: string) => `sri:provider-gate:${providerName}`,
  /** string (counter), TTL 2 min — browser requests of the provider's jobs in one clock minute (epoch ms / 60000), all organisations. */
  providerGateRpm: (providerName: string, minute: string) => `sri:provider-gate:${providerName}:rpm:${minute}`,
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
  /** list — dead-letter entry ids of one organisation, newest first. */
  orgDlq: (orgId: string) => `sri:org:${orgId}:dlq`,
  /**
   * list — the ring of the organisations that may have waiting jobs, rotated by the take script (round-robin across
   * all workers); an organisation found with nothing waiting leaves it, a push through the queue puts it back.
   */
  queueRing: 'sri:queue:ring',
  /** set — the members of the ring (so registering is idempotent). */
  queueRingMembers: 'sri:queue:ring:members',
  /** sorted set — take token → lease deadline (epoch ms). */
  queueLeases: 'sri:queue:leases',
  /**
   * hash — organisation id → number of jobs it has leased now (for maxConcurrent); and portal account
   * `<orgId>/<userId>/<providerName>` → leases holding it now (for maxConcurrentPerAccount; released with the lease).
   */
  queueLeasedByOrg: 'sri:queue:leased-by-org',
  /**
   * sorted set (all scores 0, read by ZRANGEBYLEX) — jobs parked because their portal account was full:
   * `<account>\t<seq>\t<limit>\t<h|n>`; taken back first once the account has room.
   */
  queueParked: 'sri:queue:parked',
  /** hash — parked job (member of queueParked) → its message; field `seq` numbers the parks. */
  queueParkedJobs: 'sri:queue:parked:jobs',
  /** sorted set — take token of a job waiting for its retry → due time (epoch ms). */
  queueDelayed: 'sri:queue:delayed',
  /** hash — take token → `{"o":orgId,"r":raw}` of a job waiting for its retry. */
  queueDelayedJobs: 'sri:queue:delayed:jobs',
  /** sorted set — take token of a job its provider's gate deferred (deferJob) → when it may be taken again (epoch ms). */
  queueDeferred: 'sri:queue:deferred',
  /** hash — take token → `{"o":orgId,"j":jobId,"w":why}` of a deferred job; its message waits in `sri:lease:{token}:message`. */
  queueDeferredJobs: 'sri:queue:deferred:jobs',
  /** hash — organisation id → `<clock minute>:<jobs taken in it>` (minute = epoch ms / 60000), for perMinute quotas. */
  queueRate: 'sri:queue:rate',
  /** hash — job id → the take token currently leasing it (an outcome from any other token is late). */
  queueJobLeases: 'sri:queue:job-leases',
  /** hash — job id → the attempt its next take runs as (set when its lease was recovered; the take removes it). */
  queueAttempts: 'sri:queue:attempts',
  /** set — job ids cancelled while they waited in a ready or producer list; the take drops their message. */
  queueCancelled: 'sri:queue:cancelled',
  /** string — counter of completions refused because the job already had an outcome or the lease was gone. */
  queueLateResults: 'sri:queue:late-results',
  /** pub/sub channel — control messages to all workers, e.g. `{"type":"cancel","jobId":…}`. */
  queueControl: 'sri:control',
  /** hash — one lease: `orgId, jobId, attempt, workerId, takenAt, recovered` (the message is in leaseMessage). */
  lease: (token: string) => `sri:lease:${token}`,
  /** list of one element — the leased message itself, moved here with LMOVE (the AOF records key names, not bytes). */
  leaseMessage: (token: string) => `sri:lease:${token}:message`,
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
  /** set — organisations that have dead-letter entries (so purging all names every list it deletes). */
  dlqOrgs: 'sri:dlq:orgs',
  // ── Live configuration of the workers (src/shared/live-config.ts, docs/configuration.md "Live configuration") ──
  /**
   * string — the workers' live configuration, one versioned JSON document `{version, config, updatedAt, updatedBy}`
   * written whole by the API's setWorkerConfig script (version check); workers may only read it.
   */
  workerConfig: 'sri:worker-config',
  /** list, capped — the audit of its changes, newest first: `{version, at, by, changed}` JSON (API only). */
  workerConfigHistory: 'sri:worker-config:history',
  /** pub/sub channel — `{"version":n}` after each write of workerConfig; workers reread it at once. */
  workerConfigChanged: 'sri:worker-config:changed',
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
  /** string, TTL = the token's remaining lifetime — a logged-out browser session (its token id): its cookie is refused. */
  authRevokedSession: (tokenId: string) => `sri:auth:revoked:${tokenId}`,
  /**
   * string, TTL = JWT_EXPIRES_IN_SECONDS — a member removed from their organisation: every token of theirs (bearer or
   * session cookie) is refused at once by every API process, also those holding a cached look-up of the user.
   */
  authRemovedUser: (userId: string) => `sri:auth:removed-user:${userId}`,
  // ── Rate limits (src/control-plane/http/run-limits.ts, @fastify/rate-limit) ─────────────────────────────────────
  /**
   * prefix of @fastify/rate-limit's counters of /api/auth/* (string, TTL = AUTH_RATE_LIMIT_WINDOW_MS):
   * `{prefix}{METHOD}{url}-{client address}`, shared by every API process.
   */
  authRateLimitPrefix: 'sri:ratelimit:auth:',
  /** string (counter), TTL = RUN_RATE_LIMIT_WINDOW_MS — runs the organisation started in the current window. */
  runRateOrg: (orgId: string) => `sri:ratelimit:run:org:${orgId}`,
  /** string (counter), TTL = RUN_RATE_LIMIT_WINDOW_MS — runs the user started in the current window. */
  runRateUser: (userId: string) => `sri:ratelimit:run:user:${userId}`,
  // ── Operations worker (src/shared/ops, docs/operations.md): only `sri:ops:*`, the ops worker's ACL user's keys ───
  /** list — ops tasks waiting (OpsTaskMessage JSON); the control plane LPUSHes through enqueueTask, the ops worker takes the oldest. */
  opsJobs: 'sri:ops:jobs',
  /** pub/sub channel — `{"taskId":…}` each time a task's result is written to `sri:ops:results`. */
  opsDone: 'sri:ops:done',
  /** hash — the one task running now: `token, taskId, kind, workerId, takenAt, deadline, raw` (one task at a time, all ops workers). */
  opsLease: 'sri:ops:lease',
  /** hash — task id → status (`queued | running | done | failed | interrupted`), for the tasks Redis knows. */
  opsStatuses: 'sri:ops:statuses',
  /** hash — task id → result message JSON not yet recorded in PostgreSQL; the control plane deletes each field it recorded. */
  opsResults: 'sri:ops:results',
  /** string — id of the system.update queued or running (rollback included); a second update is refused (OPS_BUSY) while it exists. */
  opsActiveUpdate: 'sri:ops:active-update',
  /** stream, capped, TTL — a task's live log, in the format of a job's (src/shared/job-logs.ts). */
  opsTaskLogs: (taskId: string) => `sri:ops:task:${taskId}:logs`,
} as const;

type SingleNodeKeys = typeof singleNodeKeys;
type KeyName = keyof SingleNodeKeys;

/**
 * Keys that keep their single-node name on Cluster and so spread over its nodes: each is only ever read or written
 * alone (never in a script, MULTI or pipeline with another key), and together they are most of what the platform
 * stores besides the queue — sessions, live logs, the replay marks of finished jobs — plus the pub/sub channels,
 * whose names are part of the contract (channels have no slot). Every other key, including any added later, is
 * tagged: the safe default, as a key that later joins a multi-key step would otherwise fail there with CROSSSLOT.
 */
export const UNTAGGED_ON_CLUSTER: ReadonlySet<KeyName> = new Set<KeyName>(['session', 'jobLogs', 'jobFinished', 'jobHandoff', 'jobLiveFrames', 'jobLiveInput', 'orgDone', 'orgDonePattern', 'queueControl', 'opsDone', 'opsTaskLogs', 'workerConfigChanged']);

let clusterNames = false;

/**
 * Switches this process between single-node names and Cluster names. createRedis does it when it connects to a
 * cluster; a process talks to one kind of Redis, so the switch is process-wide (as ioredis' TLS material is).
 */
export function useClusterKeyNames(on: boolean): void {
  clusterNames = on;
}

export function clusterKeyNamesInUse(): boolean {
  return clusterNames;
}

/** `sri:…` → `{sri}:…`: the Cluster name of a tagged key's single-node name. */
export function withClusterTag(singleNodeName: string): string {
  return singleNodeName.startsWith(KEY_PREFIX) ? `${CLUSTER_HASH_TAG}:${singleNodeName.slice(KEY_PREFIX.length)}` : singleNodeName;
}

function nameFor(key: KeyName, singleNodeName: string): string {
  return clusterNames && !UNTAGGED_ON_CLUSTER.has(key) ? withClusterTag(singleNodeName) : singleNodeName;
}

type Keys = { readonly [K in KeyName]: SingleNodeKeys[K] extends string ? string : SingleNodeKeys[K] };

/**
 * Every key name of the platform, for the kind of Redis this process uses: builders keep their parameters (and
 * their `length`, which docs tests read), string entries are read at each use.
 */
export const keys: Keys = (() => {
  const out = {};
  for (const [name, value] of Object.entries(singleNodeKeys) as [KeyName, unknown][]) {
    if (typeof value === 'string') {
      Object.defineProperty(out, name, { enumerable: true, get: () => nameFor(name, value) });
    } else {
      const build = value as (...a: string[]) => string;
      const tagged = (...a: string[]) => nameFor(name, build(...a));
      Object.defineProperty(tagged, 'length', { value: build.length });
      Object.defineProperty(out, name, { enumerable: true, value: tagged });
    }
  }
  return Object.freeze(out) as Keys;
})();

/** Extracts the organisation id from `sri:org:{orgId}:jobs` or `sri:org:{orgId}:done` (or their Cluster names). */
export function orgIdFromKey(key: string): string | undefined {
  const m = /^(?:sri|\{sri\}):org:([^:]+):(jobs|done)$/.exec(key);
  return m?.[1];
}

/** How long a worker remembers that a job finished (keys.jobFinished): a replay within this time is refused. */
export const JOB_FINISHED_TTL_SECONDS = 30 * 24 * 3600;

/** How long a job's result message stays in Redis for reconciliation. */
export const JOB_RESULT_TTL_SECONDS = 7 * 24 * 3600;
