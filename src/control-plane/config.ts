/**
 * The control plane's settings: the shared table plus the API's own (docs/configuration.md lists every one).
 * Parsed once at start by loadApiConfig; nothing else in the control plane reads process.env.
 */
import { z } from 'zod';
import { commonSettings, intSetting, keyringSchema, loadConfig, setting, type ConfigOf } from '../shared/config.ts';

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
  secretsKeys: setting('SECRETS_KEYS', keyringSchema().optional(),
    'Keys (kid:base64 of 32 bytes, comma-separated, the first seals) encrypting tenant secrets at rest in PostgreSQL; API only, never give it to workers. Unset: PUT /api/secrets answers SECRETS_NOT_CONFIGURED. `sri up` generates one under .data/.'),
  sessionTtlSeconds: setting('SESSION_TTL_SECONDS', intSetting(604800, 60), 'Lifetime of a connected provider session in Redis.'),
  artifactUrlTtlSeconds: setting('ARTIFACT_URL_TTL_SECONDS', z.coerce.number().int().min(1).max(7 * 24 * 3600).default(900),
    'Lifetime of the presigned download links of job artifacts.'),
  authRateLimitMax: setting('AUTH_RATE_LIMIT_MAX', intSetting(20, 1), 'Requests per window and client IP allowed on /api/auth/*.'),
  authRateLimitWindowMs: setting('AUTH_RATE_LIMIT_WINDOW_MS', intSetting(60_000, 1000), 'Window of the /api/auth/* rate limit.'),
  authLockoutMaxFailures: setting('AUTH_LOCKOUT_MAX_FAILURES', intSetting(10, 0),
    'Failed logins of one account (whatever the client) within AUTH_LOCKOUT_WINDOW_MS that lock it for AUTH_LOCKOUT_MS (ACCOUNT_LOCKED, even with the right password); 0 = no lockout.'),
  authLockoutWindowMs: setting('AUTH_LOCKOUT_WINDOW_MS', intSetting(15 * 60_000, 1000), 'Window (ms) in which an account\'s failed logins are counted, from the first one.'),
  authLockoutMs: setting('AUTH_LOCKOUT_MS', intSetting(15 * 60_000, 1000), 'How long (ms) a locked account refuses every login.'),
  reconcileIntervalMs: setting('RECONCILE_INTERVAL_MS', intSetting(60_000, 1000),
    'How often the results listener re-reads results of unfinished jobs from Redis (pub/sub loses messages).'),
  logsHeartbeatIntervalMs: setting('LOGS_HEARTBEAT_INTERVAL_MS', intSetting(15_000, 100),
    'How often GET /api/jobs/{id}/logs sends a heartbeat comment on a live log stream (ms); also how often it checks whether the job finished without an end entry.'),
  // ── Webhooks (src/control-plane/webhooks/deliver.ts, docs/webhooks.md) ──
  webhookMaxAttempts: setting('WEBHOOK_MAX_ATTEMPTS', intSetting(5, 1), 'Attempts per webhook delivery, the first included.'),
  webhookRetryBaseMs: setting('WEBHOOK_RETRY_BASE_MS', intSetting(1000, 0), 'Wait before a delivery\'s 2nd attempt (ms), doubled after each failure.'),
  webhookRetryMaxMs: setting('WEBHOOK_RETRY_MAX_MS', intSetting(300_000, 0), 'Longest wait between two attempts of a delivery (ms).'),
  webhookTimeoutMs: setting('WEBHOOK_TIMEOUT_MS', intSetting(10_000, 100), 'Longest one webhook POST may take (ms) before it counts as failed.'),
  // ── Platform operator (docs/security.md "Worker enrolment") ──
  operatorToken: setting('OPERATOR_TOKEN', z.string().min(32, 'must be at least 32 characters').optional(),
    'Bearer token of the platform operator\'s endpoints (/api/operator/*: worker enrolment and revocation). Unset: they answer OPERATOR_ONLY to everyone. API only: a worker refuses to start with it.'),
  // ── Observability (docs/observability.md) ──
  metricsToken: setting('METRICS_TOKEN', z.string().min(16, 'must be at least 16 characters').optional(),
    'When set, GET /metrics answers only "Authorization: Bearer <METRICS_TOKEN>" and includes the per-organisation queue series. Unset: /metrics is open but has the request and process metrics only (the queue series name organisations).'),
} as const;

export type ApiConfig = ConfigOf<typeof apiSettings>;

export function loadApiConfig(env: Record<string, string | undefined> = process.env): ApiConfig {
  return loadConfig(apiSettings, env);
}
