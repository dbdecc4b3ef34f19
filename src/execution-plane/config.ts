/**
 * The worker's configuration: one table (commonSettings plus the worker's own), parsed once at start.
 * A worker talks only to Redis and S3, so it refuses to start when its environment holds database or API
 * settings — holding them would already break ARCHITECTURE.md's invariant 2, whether or not the code used them.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { commonSettings, intSetting, loadConfig, setting, type ConfigOf } from '../shared/config.ts';
import { isEnrolmentToken } from '../shared/enrolment.ts';
import { SriError } from '../shared/errors.ts';

/** A worker's heartbeat key lives 30 s; the interval must stay well below that or the worker looks dead. */
export const HEARTBEAT_TTL_SECONDS = 30;
/** Prometheus' registered default port for Node.js exporters; `sri up` gives its workers 9464, 9465, … */
export const DEFAULT_WORKER_HTTP_PORT = 9464;

export const workerSettings = {
  ...commonSettings,
  workerId: setting('WORKER_ID',
    z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 _ . -')
      .default(() => `worker-${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-${process.pid}`),
    'Worker id used in Redis keys and result messages. @default worker-<hostname>-<pid>'),
  pollIntervalMs: setting('WORKER_POLL_INTERVAL', intSetting(1000, 10),
    'Milliseconds the worker sleeps when every organisation queue is empty.'),
  maxJobs: setting('WORKER_MAX_JOBS', intSetting(2, 1), 'Jobs one worker runs at once.'),
  playwrightTimeoutMs: setting('PLAYWRIGHT_TIMEOUT', intSetting(30_000, 100),
    'Default timeout (ms) of each Playwright action and navigation inside a script.'),
  executionTimeoutMs: setting('EXECUTION_TIMEOUT', intSetting(300_000, 1000),
    'Longest a job may run (ms) unless the job message sets timeoutMs.'),
  chromiumPath: setting('CHROMIUM_PATH', z.string().min(1).optional(),
    'Chromium executable. Unset: /usr/lib/chromium/chromium or /usr/bin/chromium when present, else Playwright\'s own browser.'),
  heartbeatIntervalMs: setting('WORKER_HEARTBEAT_INTERVAL_MS', intSetting(10_000, 100),
    `Milliseconds between heartbeats (the heartbeat key lives ${HEARTBEAT_TTL_SECONDS} s).`),
  leaseMs: setting('WORKER_LEASE_MS', intSetting(30_000, 300),
    'Lease of a taken job (ms). The worker renews all its leases every WORKER_LEASE_MS / 3; a worker silent for longer loses its jobs to the others (attempt + 1).'),
  maxJobBytes: setting('WORKER_MAX_JOB_BYTES', intSetting(1024 * 1024, 1024),
    'Largest job message (bytes) a worker runs; larger ones go to the dead-letter list unread.'),
  retryBaseMs: setting('WORKER_RETRY_BASE_MS', intSetting(1000, 0),
    'Backoff base (ms) of transient failures: attempt n waits a random time in [0, min(WORKER_RETRY_MAX_MS, base × 2^(n-1))] (full jitter).'),
  retryMaxMs: setting('WORKER_RETRY_MAX_MS', intSetting(60_000, 0), 'Backoff cap (ms) of transient failures.'),
  requireJobSignature: setting('REQUIRE_JOB_SIGNATURE',
    z.enum(['true', 'false'], { error: 'must be true or false' }).default('true').transform((v) => v === 'true'),
    'Refuse jobs without a valid envelope signature (JOB_SIGNATURE_INVALID) and job ids that already finished (JOB_REPLAYED). `sri up` sets false for its demo workers, so hand-signed jobs run there. @default true'),
  maxAttempts: setting('WORKER_MAX_ATTEMPTS', intSetting(3, 1),
    'Attempts of a job whose message sets no maxAttempts; then it is dead-lettered.'),
  recoveryIntervalMs: setting('WORKER_RECOVERY_INTERVAL_MS', intSetting(1000, 50),
    'How often every worker moves due retries back to their queue and takes back expired leases (independent of polling).'),
  // ── Script sandbox and limits (src/execution-plane/script/sandbox/, docs/security.md "Script sandbox") ──
  sandbox: setting('WORKER_SANDBOX', z.enum(['bwrap', 'auto', 'process'], { error: 'must be bwrap, auto or process' }).default('bwrap'),
    'How scripts are isolated. bwrap: a process per job in bubblewrap namespaces (no network, no files, own PIDs) under Node\'s permission model; the worker refuses to start when bubblewrap cannot run (SANDBOX_UNAVAILABLE). process: a process per job under Node\'s permission model and limits, without namespaces (weaker: said at start). auto: bwrap when it works, else process with a warning. `sri up` uses auto. @default bwrap'),
  scriptCpuSeconds: setting('WORKER_SCRIPT_CPU_SECONDS', intSetting(60, 1),
    'CPU seconds a job\'s script process may use (RLIMIT_CPU); over it the script is stopped with SCRIPT_CPU_LIMIT.'),
  scriptMemoryMb: setting('WORKER_SCRIPT_MEMORY_MB', intSetting(256, 32),
    'JavaScript heap (MiB) of a job\'s script process; its address space is capped at 1.5 GiB more (V8\'s reservations and buffers count too). Over it: SCRIPT_MEMORY_LIMIT.'),
  scriptMaxCalls: setting('WORKER_SCRIPT_MAX_CALLS', intSetting(100_000, 10),
    'Page and helper calls one script may make; more stops it with SCRIPT_RESOURCE_LIMIT.'),
  maxScreenshots: setting('WORKER_MAX_SCREENSHOTS', intSetting(100, 0), 'Screenshots one job may take (SCRIPT_RESOURCE_LIMIT beyond).'),
  maxDownloads: setting('WORKER_MAX_DOWNLOADS', intSetting(50, 0), 'Files one job may download (SCRIPT_RESOURCE_LIMIT beyond).'),
  maxDownloadBytes: setting('WORKER_MAX_DOWNLOAD_BYTES', intSetting(100 * 1024 * 1024, 1024),
    'Largest file a job may keep from a download (bytes); a larger one fails the job with SCRIPT_RESOURCE_LIMIT.'),
  moduleCacheMax: setting('WORKER_MODULE_CACHE_MAX', intSetting(32, 1),
    'Module versions (name@version, verified) one worker keeps in memory; the least recently used goes first (docs/modules.md).'),
  browsers: setting('WORKER_BROWSERS', intSetting(1, 1),
    'Chromium processes one worker keeps: its job slots\' contexts spread over them, each is retired and relaunched on its own, and a crash of one fails only the jobs running in it (BROWSER_CRASHED, retried). @default 1'),
  browserMaxContexts: setting('WORKER_BROWSER_MAX_CONTEXTS', intSetting(500, 1),
    'Contexts (jobs) one Chromium serves before it is retired: the next job opens in a new browser and the old one closes after its last job, so memory creep of a long-running Chromium is bounded.'),
  browserMaxAgeMs: setting('WORKER_BROWSER_MAX_AGE_MS', intSetting(3_600_000, 1000),
    'Likewise, milliseconds after its launch. @default 3600000 (1 hour)'),
  maxPages: setting('WORKER_MAX_PAGES', intSetting(10, 1),
    'Pages (tabs, popups) a job\'s browser context may have open at once; further ones are closed at once and counted in the log.'),
  egressMaxBytes: setting('WORKER_EGRESS_MAX_BYTES', intSetting(256 * 1024 * 1024, 1024),
    'Bytes a job\'s browser may move through the egress proxy, both directions, all its connections together; over it every connection is cut and the job fails (egress-bytes), so a huge download cannot fill the disk. @default 268435456 (256 MiB)'),
  maxRecordingBytes: setting('WORKER_MAX_RECORDING_BYTES', intSetting(100 * 1024 * 1024, 1024),
    'Largest trace.zip or video.webm a job keeps when its flow or run asks for recordings (bytes, each file on its own); a larger one is not stored and execution.log says so. @default 104857600 (100 MiB)'),
  // ── Hand-off to a person (src/execution-plane/job/handoff.ts, docs/dashboard.md "Hand-off") ──
  handoffMaxMs: setting('WORKER_HANDOFF_MAX_MS', intSetting(30 * 60 * 1000, 1000),
    'Longest a job may wait for a person in a hand-off (ms), whatever its step or helper asks; the wait does not count against the job\'s EXECUTION_TIMEOUT. @default 1800000 (30 min)'),
  liveViewFps: setting('WORKER_LIVE_VIEW_FPS', intSetting(5, 1),
    'Most screencast frames per second a waiting job\'s live view streams (Chromium sends frames only when the page changes).'),
  // ── CAPTCHAs (src/execution-plane/job/captcha.ts, docs/scripts.md "CAPTCHAs") ──
  captchaSolver: setting('CAPTCHA_SOLVER', z.enum(['none', '2captcha'], { error: 'must be none or 2captcha' }).default('none'),
    'What the worker does with a CAPTCHA on a job\'s page. none: hands the page to a person (the dashboard\'s live view). 2captcha: asks a service that speaks the 2captcha HTTP API (CAPTCHA_SOLVER_URL) first, and hands off when it fails. @default none'),
  captchaSolverUrl: setting('CAPTCHA_SOLVER_URL', z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).default('https://2captcha.com'),
    'The CAPTCHA-solving service\'s address (its in.php and res.php are under it). @default https://2captcha.com'),
  captchaSolverKey: setting('CAPTCHA_SOLVER_KEY', z.string().min(8, 'must be the service\'s API key').optional(),
    'The CAPTCHA-solving service\'s API key (required with CAPTCHA_SOLVER=2captcha; never logged).'),
  captchaSolverTimeoutMs: setting('CAPTCHA_SOLVER_TIMEOUT_MS', intSetting(180_000, 1000),
    'Longest the worker waits for the service\'s answer to one CAPTCHA (ms) before handing the page to a person.'),
  captchaSolverPollMs: setting('CAPTCHA_SOLVER_POLL_MS', intSetting(5000, 10),
    'Between two asks for the answer (ms); the first ask comes after three of them (the 2captcha API asks for 5 s, and 15–20 s before the first).'),
  // ── Live job logs (src/execution-plane/logs/batcher.ts) ──
  logBatchMaxLines: setting('WORKER_LOG_BATCH_MAX_LINES', intSetting(500, 1),
    'Lines per live-log batch; a full batch is sent at once.'),
  logBatchMaxBytes: setting('WORKER_LOG_BATCH_MAX_BYTES', intSetting(64 * 1024, 256),
    'Bytes of messages per live-log batch; a batch that reaches it is sent at once.'),
  logFlushIntervalMs: setting('WORKER_LOG_FLUSH_INTERVAL_MS', intSetting(250, 1),
    'Longest a logged line waits (ms) before its batch is sent even when not full.'),
  logMaxPendingBatches: setting('WORKER_LOG_MAX_PENDING_BATCHES', intSetting(8, 1),
    'Batches a job may have queued or being written; beyond that new batches are dropped (counted, and said in the log) so logging never blocks the job.'),
  logStreamMaxBatches: setting('WORKER_LOG_STREAM_MAX_BATCHES', intSetting(1000, 1),
    'Entries (batches) kept in a job\'s live-log stream in Redis (XADD MAXLEN ~); older ones are trimmed.'),
  logTtlSeconds: setting('WORKER_LOG_TTL_SECONDS', intSetting(3600, 1),
    'Lifetime of a job\'s live-log stream in Redis, renewed with every batch (the whole log stays in S3).'),
  // ── Observability (src/execution-plane/observability/, docs/observability.md) ──
  httpPort: setting('WORKER_HTTP_PORT',
    z.union([z.literal('off'), z.coerce.number().int().min(0).max(65535)]).default(DEFAULT_WORKER_HTTP_PORT),
    `Port of the worker's /metrics, /healthz and /readyz (0 = any free port, off = none). Taken: the worker says so and uses a free port. @default ${DEFAULT_WORKER_HTTP_PORT}`),
  httpHost: setting('WORKER_HTTP_HOST', z.string().min(1).default('127.0.0.1'),
    'Address the worker\'s HTTP endpoints bind to (0.0.0.0 for Prometheus or probes from another host).'),
  redisMaxOutageMs: setting('WORKER_REDIS_MAX_OUTAGE_MS', intSetting(60_000, 0),
    'Longest the worker keeps reconnecting to an unreachable Redis (ms) before it exits non-zero for its supervisor to restart it (0 = never).'),
  maxEventLoopDelayMs: setting('WORKER_MAX_EVENT_LOOP_DELAY_MS', intSetting(5000, 10),
    '/healthz answers 503 while the event loop was blocked longer than this (ms) within the last WORKER_EVENT_LOOP_WINDOW_MS.'),
  eventLoopWindowMs: setting('WORKER_EVENT_LOOP_WINDOW_MS', intSetting(10_000, 100),
    'How long (ms) a block of the event loop longer than WORKER_MAX_EVENT_LOOP_DELAY_MS keeps /healthz at 503 and sri_worker_event_loop_stuck at 1 after it ended (long enough for a probe or a scrape to see it).'),
  // ── Enrolment and revocation (src/execution-plane/enrolment.ts, docs/security.md "Worker enrolment") ──
  enrolmentToken: setting('WORKER_ENROLMENT_TOKEN', z.string().refine(isEnrolmentToken, 'must be a token from POST /api/operator/worker-enrolments (sri-enrol.<43 characters>)').optional(),
    'One-time enrolment token. The worker redeems it at start as REDIS_URL\'s user (the bootstrap user sri-enrol), then connects as its own Redis user with the id the enrolment assigned (WORKER_ID is ignored).'),
  credentialsFile: setting('WORKER_CREDENTIALS_FILE', z.string().min(1).optional(),
    'File keeping the credentials an enrolment gave (written once, mode 0600). When it exists the worker uses it and needs no token, so a restarted container keeps its identity; when it does not and no token is given, the worker runs as REDIS_URL says. Unset: the credentials live in memory only and a restart needs a new token.'),
  revokedAfterMs: setting('WORKER_REVOKED_AFTER_MS', intSetting(10_000, 0),
    'How long Redis must keep refusing the worker\'s credentials (WRONGPASS) before the worker takes itself for revoked: it abandons its jobs and exits 77 (WORKER_REVOKED).'),
} as const;

export type WorkerConfig = ConfigOf<typeof workerSettings>;

/** Variables a worker must never hold (ARCHITECTURE.md "Configuration"). */
function forbiddenSettings(env: Record<string, string | undefined>): string[] {
  return Object.keys(env)
    .filter((name) => env[name] !== undefined && env[name] !== '')
    // SECRETS_KEYS opens every tenant secret at rest; workers get the secrets of their own jobs only (TRANSPORT_KEYS).
    // OPERATOR_TOKEN enrols and revokes workers: never on a worker.
    .filter((name) => name === 'DATABASE_URL' || name.startsWith('POSTGRES_') || name === 'API_URL' || name === 'API_KEY' || name === 'SECRETS_KEYS'
      || name === 'OPERATOR_TOKEN')
    .sort();
}

/**
 * Parses the worker's environment. Throws SriError CONFIG_INVALID whose message names every variable to fix.
 */
export function loadWorkerConfig(env: Record<string, string | undefined>): WorkerConfig {
  const forbidden = forbiddenSettings(env);
  if (forbidden.length) {
    throw new SriError('CONFIG_INVALID',
      `Invalid configuration: ${forbidden.join(', ')} ${forbidden.length === 1 ? 'is' : 'are'} set, but a worker must not hold database or API settings (it talks only to Redis and S3); remove ${forbidden.length === 1 ? 'it' : 'them'} from the worker's environment. See docs/configuration.md.`);
  }
  const config = loadConfig(workerSettings, env);
  if (config.heartbeatIntervalMs >= HEARTBEAT_TTL_SECONDS * 1000) {
    throw new SriError('CONFIG_INVALID',
      `Invalid configuration: WORKER_HEARTBEAT_INTERVAL_MS must be below ${HEARTBEAT_TTL_SECONDS * 1000} (the heartbeat key's TTL). See docs/configuration.md.`);
  }
  return config;
}
