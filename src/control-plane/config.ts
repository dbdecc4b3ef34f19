/**
 * The control plane's settings: the shared table plus the API's own (docs/configuration.md lists every one).
 * Parsed once at start by loadApiConfig; nothing else in the control plane reads process.env.
 */
import { z } from 'zod';
import { commonSettings, intSetting, keyringSchema, loadConfig, setting, type ConfigOf } from '../shared/config.ts';
import { SriError } from '../shared/errors.ts';

export const apiSettings = {
  ...commonSettings,
  port: setting('PORT', z.coerce.number().int().min(0).max(65535).default(3000), 'Port the HTTP API listens on (0 = any free port).'),
  host: setting('HOST', z.string().min(1).default('127.0.0.1'), 'Address the HTTP API binds to.'),
  databaseUrl: setting('DATABASE_URL', z.string().regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://').optional(),
    'PostgreSQL server URL; when unset the embedded PGlite under DATA_DIR is used.'),
  dataDir: setting('DATA_DIR', z.string().min(1).default('.data'), 'Directory of embedded data (PGlite lives in DATA_DIR/pglite).'),
  jwtSecret: setting('JWT_SECRET', z.string({ error: 'is required' }).min(32, 'must be at least 32 characters'),
    'HMAC key of the API tokens (HS256).'),
  jwtExpiresInSeconds: setting('JWT_EXPIRES_IN_SECONDS', intSetting(3600, 60), 'Lifetime of an API token.'),
  sessionCookieSecure: setting('SESSION_COOKIE_SECURE', z.enum(['auto', 'true', 'false'], { error: 'must be auto, true or false' }).default('auto'),
    'Secure attribute of the dashboard\'s session and CSRF cookies: auto = when the request reached the API over HTTPS; set true behind a TLS-terminating proxy.'),
  secretsKeys: setting('SECRETS_KEYS', keyringSchema().optional(),
    'Keys (kid:base64 of 32 bytes, comma-separated, the first seals) encrypting tenant secrets at rest in PostgreSQL; API only, never give it to workers. Unset: PUT /api/secrets answers SECRETS_NOT_CONFIGURED. `sri up` generates one under .data/.'),
  sessionTtlSeconds: setting('SESSION_TTL_SECONDS', intSetting(604800, 60), 'Lifetime of a connected provider session in Redis.'),
  artifactUrlTtlSeconds: setting('ARTIFACT_URL_TTL_SECONDS', z.coerce.number().int().min(1).max(7 * 24 * 3600).default(900),
    'Lifetime of the presigned download links of job artifacts.'),
  authRateLimitMax: setting('AUTH_RATE_LIMIT_MAX', intSetting(20, 1), 'Requests per window and client IP allowed on /api/auth/* (counted in Redis, shared by every API process).'),
  authRateLimitWindowMs: setting('AUTH_RATE_LIMIT_WINDOW_MS', intSetting(60_000, 1000), 'Window of the /api/auth/* rate limit.'),
  authLockoutMaxFailures: setting('AUTH_LOCKOUT_MAX_FAILURES', intSetting(10, 0),
    'Failed logins of one account (whatever the client) within AUTH_LOCKOUT_WINDOW_MS that lock it for AUTH_LOCKOUT_MS (ACCOUNT_LOCKED, even with the right password); 0 = no lockout.'),
  authLockoutWindowMs: setting('AUTH_LOCKOUT_WINDOW_MS', intSetting(15 * 60_000, 1000), 'Window (ms) in which an account\'s failed logins are counted, from the first one.'),
  authLockoutMs: setting('AUTH_LOCKOUT_MS', intSetting(15 * 60_000, 1000), 'How long (ms) a locked account refuses every login.'),
  authUserCacheMs: setting('AUTH_USER_CACHE_MS', intSetting(5000, 0),
    'How long (ms) an API process trusts its last look-up of a token\'s user (exists, in the token\'s organisation, role): a removed user or member loses access within this bound. 0 = look up on every request.'),
  // ── Shared resources per tenant (docs/security.md "One tenant cannot exhaust shared resources") ──
  runRateLimitPerUser: setting('RUN_RATE_LIMIT_PER_USER', intSetting(60, 0),
    'Runs (POST /api/run and POST /api/jobs/{id}/retry) one user may start per RUN_RATE_LIMIT_WINDOW_MS, counted in Redis across API processes; 0 = no limit.'),
  runRateLimitPerOrg: setting('RUN_RATE_LIMIT_PER_ORG', intSetting(300, 0),
    'Runs one organisation (all its users) may start per RUN_RATE_LIMIT_WINDOW_MS; 0 = no limit.'),
  runRateLimitWindowMs: setting('RUN_RATE_LIMIT_WINDOW_MS', intSetting(60_000, 1000), 'Window (ms) of the run rate limits, from the first run counted in it.'),
  orgMaxQueuedJobs: setting('ORG_MAX_QUEUED_JOBS', intSetting(1000, 0),
    'Jobs one organisation may have waiting in Redis (queued, not yet taken by a worker); a run beyond it answers 429 QUEUE_FULL. 0 = no limit.'),
  runMaxMetadataBytes: setting('RUN_MAX_METADATA_BYTES', intSetting(64 * 1024, 2),
    'Largest `metadata` of a run, in bytes of its JSON; larger answers 413 METADATA_TOO_LARGE.'),
  logsMaxStreamsPerUser: setting('LOGS_MAX_STREAMS_PER_USER', intSetting(10, 1),
    'Live log streams (GET /api/jobs/{id}/logs as events) one user may have open at once on one API process; more answer 429 TOO_MANY_STREAMS.'),
  logsMaxStreamsPerOrg: setting('LOGS_MAX_STREAMS_PER_ORG', intSetting(50, 1),
    'Live log streams one organisation may have open at once on one API process.'),
  reconcileIntervalMs: setting('RECONCILE_INTERVAL_MS', intSetting(60_000, 1000),
    'How often the results listener re-reads results of unfinished jobs from Redis (pub/sub loses messages).'),
  logsHeartbeatIntervalMs: setting('LOGS_HEARTBEAT_INTERVAL_MS', intSetting(15_000, 100),
    'How often GET /api/jobs/{id}/logs sends a heartbeat comment on a live log stream (ms); also how often it checks whether the job finished without an end entry.'),
  // ── Webhooks (src/control-plane/webhooks/deliver.ts, docs/webhooks.md) ──
  webhookMaxAttempts: setting('WEBHOOK_MAX_ATTEMPTS', intSetting(5, 1), 'Attempts per webhook delivery, the first included.'),
  webhookRetryBaseMs: setting('WEBHOOK_RETRY_BASE_MS', intSetting(1000, 0), 'Wait before a delivery\'s 2nd attempt (ms), doubled after each failure.'),
  webhookRetryMaxMs: setting('WEBHOOK_RETRY_MAX_MS', intSetting(300_000, 0), 'Longest wait between two attempts of a delivery (ms).'),
  webhookTimeoutMs: setting('WEBHOOK_TIMEOUT_MS', intSetting(10_000, 100), 'Longest one webhook POST may take (ms) before it counts as failed.'),
  webhookAllowPrivate: setting('WEBHOOK_ALLOW_PRIVATE',
    z.enum(['true', 'false'], { error: 'must be true or false' }).default('false').transform((v) => v === 'true'),
    'Let webhooks be delivered to loopback and private addresses (on-premise receivers); link-local and cloud metadata addresses stay refused. Logged as a warning at start.'),
  // ── Schedules (src/control-plane/schedules/scheduler.ts, docs/schedules.md) ──
  schedulerEnabled: setting('SCHEDULER_ENABLED',
    z.enum(['true', 'false'], { error: 'must be true or false' }).default('true').transform((v) => v === 'true'),
    'Run the scheduler in this API process. Any number of processes may run it: each due time makes one run. false = this process only serves the API.'),
  schedulerTickMs: setting('SCHEDULER_TICK_MS', intSetting(1000, 50),
    'How often (ms) the scheduler looks for schedules that have come due: a run starts at most this long after its due time.'),
  schedulerMisfireGraceMs: setting('SCHEDULER_MISFIRE_GRACE_MS', intSetting(60_000, 0),
    'How late (ms) a due time may be found and still run as on time; due times found later (no scheduler was running) are missed and follow the schedule\'s missedRunPolicy (skip, or runOnce for all of them).'),
  // ── Platform operator (docs/security.md "Worker enrolment") ──
  operatorToken: setting('OPERATOR_TOKEN', z.string().min(32, 'must be at least 32 characters').optional(),
    'Bearer token of the platform operator\'s endpoints (/api/operator/*: worker enrolment and revocation). Unset: they answer OPERATOR_ONLY to everyone. API only: a worker refuses to start with it.'),
  operatorSessionSeconds: setting('OPERATOR_SESSION_SECONDS', intSetting(3600, 60),
    'Lifetime (s) of the operator\'s dashboard session (POST /api/operator/session); the operator signs in again with OPERATOR_TOKEN after it.'),
  // ── Observability (docs/observability.md) ──
  metricsToken: setting('METRICS_TOKEN', z.string().min(16, 'must be at least 16 characters').optional(),
    'When set, GET /metrics answers only "Authorization: Bearer <METRICS_TOKEN>" and includes the per-organisation queue series. Unset: /metrics is open but has the request and process metrics only (the queue series name organisations).'),
} as const;

export type ApiConfig = ConfigOf<typeof apiSettings>;

export function loadApiConfig(env: Record<string, string | undefined> = process.env): ApiConfig {
  const config = loadConfig(apiSettings, env);
  if (config.schedulerEnabled && config.schedulerMisfireGraceMs < config.schedulerTickMs) {
    // A due time is found up to one tick late: with less grace than that, a schedule with missedRunPolicy skip
    // would never run.
    throw new SriError('CONFIG_INVALID', `Invalid configuration: SCHEDULER_MISFIRE_GRACE_MS (${config.schedulerMisfireGraceMs}) must be at least `
      + `SCHEDULER_TICK_MS (${config.schedulerTickMs}): the scheduler finds a due time up to one tick late, and a shorter grace would count every `
      + 'due time as missed. See docs/configuration.md.');
  }
  return config;
}
