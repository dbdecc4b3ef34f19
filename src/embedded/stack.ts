/**
 * The embedded stack behind `sri up`: one command brings the whole platform up on one machine with no external
 * services (ARCHITECTURE.md "The embedded default"). Each embedded piece is swapped for the real service by its
 * variable (REDIS_URL, S3_ENDPOINT, DATABASE_URL); the API and workers run the same code either way.
 *
 * Whoever calls startStack owns what it starts: `stop()` ends every child by PID and closes every server, and a
 * start that fails half way stops what it had already started before rethrowing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SriError } from '../shared/errors.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { keys } from '../shared/keys.ts';
import { createRedis } from '../shared/redis.ts';
import { BlobStore, createS3Client } from '../shared/s3.ts';
import { loadEmbeddedConfig, type EmbeddedConfig } from './config.ts';
import { demoProvider, startDemoPortal, type DemoPortal } from './demo-portal.ts';
import { freePort, portInUse } from './ports.ts';
import { redisServerBinary, startEmbeddedRedis, type EmbeddedRedis } from './redis-server.ts';
import { loadEmbeddedS3Server, startEmbeddedS3, type EmbeddedS3 } from './s3-server.ts';
import { resolveSecrets, type ResolvedSecrets } from './secrets.ts';
import { boundToParent } from './bound-child.ts';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * Compiled (`npm run build`: this file is dist/src/embedded/stack.js, PROJECT_ROOT is dist/): workers run the built
 * JavaScript with plain node. From the sources (tsx, `npm start`): they run the TypeScript through tsx.
 */
const COMPILED = import.meta.url.endsWith('.js');
const WORKER_MAIN = join(PROJECT_ROOT, 'src', 'execution-plane', COMPILED ? 'main.js' : 'main.ts');

/** Variables a worker refuses to start with (ARCHITECTURE.md): it must hold no database or API credentials. */
export function isForbiddenForWorker(name: string): boolean {
  return name === 'DATABASE_URL' || name.startsWith('POSTGRES_') || /^PG[A-Z]+$/.test(name)
    || name.startsWith('API_') || name === 'JWT_SECRET' || name === 'SECRETS_KEYS' || name === 'OPERATOR_TOKEN';
}

export interface StackOptions {
  /** Environment to read settings from. @default process.env */
  env?: Record<string, string | undefined>;
  /** Where worker processes' stderr goes. @default process.stderr with a `[worker-N]` prefix */
  onWorkerOutput?: (workerId: string, line: string) => void;
  /** Logger of the in-process API. @default JSON to LOG_DIR/api-*.log, not to stdout */
  logger?: Logger;
  /** Progress lines while starting. @default none */
  onProgress?: (line: string) => void;
  /**
   * The dashboard the API serves at /: built from src/web when its build is missing or older than its sources
   * (web-build.ts; a build in dist/ has it already), or left as it is. @default 'build-if-stale'
   */
  web?: 'build-if-stale' | 'skip';
}

export interface StackWorker {
  readonly workerId: string;
  /** PID of the worker's child process. */
  readonly pid: number;
  /** Base URL of the worker's /metrics, /healthz, /readyz (from its registry entry); undefined with WORKER_HTTP_PORT=off. */
  readonly httpUrl?: string;
  /** How it isolates scripts (its registry entry): `sandbox-bwrap`, or `sandbox-process` when bubblewrap cannot run here. */
  readonly sandbox?: string;
}

export interface StackHandle {
  readonly config: EmbeddedConfig;
  readonly apiUrl: string;
  readonly portalUrl: string;
  readonly redisUrl: string;
  readonly s3Endpoint: string;
  /** `pglite:<dir>` or the DATABASE_URL with its password hidden. */
  readonly database: string;
  readonly dataDir: string;
  readonly logDir: string;
  readonly secrets: Pick<ResolvedSecrets, 'source' | 'file'>;
  readonly embedded: { redis: boolean; s3: boolean; database: boolean };
  readonly migrations: readonly string[];
  readonly workers: readonly StackWorker[];
  /** PIDs of the child processes the stack started (redis-server, workers). */
  readonly childPids: readonly number[];
  stop(opts?: { graceMs?: number }): Promise<void>;
}

interface WantedPort {
  readonly port: number;
  readonly host: string;
  readonly variable: string;
  readonly alternative?: string;
}

/**
 * Fails with PORT_IN_USE for the first wanted port something already listens on, naming the variable that moves
 * it (and the one that swaps in an external service, when there is one).
 */
export async function checkPorts(wanted: readonly WantedPort[]): Promise<void> {
  for (const w of wanted) {
    if (w.port !== 0 && await portInUse(w.port, w.host)) {
      throw new SriError('PORT_IN_USE',
        `port ${w.port} is in use; set ${w.variable} to another port${w.alternative ? `, or ${w.alternative}` : ''}`,
        { details: { port: w.port, variable: w.variable } });
    }
  }
}

/** Throws DEPENDENCY_MISSING when `binary` is not an executable on PATH (or at its absolute path). */
export function requireProgram(binary: string, installHint: string, env: Record<string, string | undefined> = process.env): void {
  const candidates = binary.includes('/') ? [binary] : (env['PATH'] ?? '').split(delimiter).filter(Boolean).map((d) => join(d, binary));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return;
    } catch {
      // try the next PATH entry
    }
  }
  throw new SriError('DEPENDENCY_MISSING', `${binary} is not installed. ${installHint}`);
}

const REDIS_INSTALL_HINT = process.platform === 'darwin'
  ? 'Install it with: brew install redis — or set REDIS_URL to an existing Redis.'
  : 'Install it with: apt-get install -y redis-server (or run npm install as root) — or set REDIS_URL to an existing Redis.';

export async function startStack(options: StackOptions = {}): Promise<StackHandle> {
  const env = options.env ?? process.env;
  const config = loadEmbeddedConfig(env);
  const progress = options.onProgress ?? (() => {});
  const dataDir = isAbsolute(config.dataDir) ? config.dataDir : resolve(config.dataDir);
  const logDir = isAbsolute(config.logDir) ? config.logDir : resolve(config.logDir);

  const embedded = { redis: !config.redisUrl, s3: !config.s3Endpoint, database: !config.databaseUrl };
  await checkPorts([
    ...(embedded.redis ? [{ port: config.embeddedRedisPort, host: '127.0.0.1', variable: 'EMBEDDED_REDIS_PORT', alternative: 'REDIS_URL to use an existing Redis' }] : []),
    ...(embedded.s3 ? [{ port: config.embeddedS3Port, host: '127.0.0.1', variable: 'EMBEDDED_S3_PORT', alternative: 'S3_ENDPOINT to use an existing S3' }] : []),
    { port: config.port, host: config.host, variable: 'PORT' },
    { port: config.demoPort, host: '127.0.0.1', variable: 'DEMO_PORT' },
  ]);
  if (embedded.redis) requireProgram(redisServerBinary(), REDIS_INSTALL_HINT, env);
  // A production install has no embedded S3 server (a dev dependency): say so before starting anything.
  const S3rver = embedded.s3 ? await loadEmbeddedS3Server() : undefined;

  mkdirSync(dataDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  // SECRETS_KEYS from the environment wins (loadEmbeddedConfig checked it, naming it when malformed).
  const secrets = resolveSecrets(dataDir, {
    scriptSigningSecret: config.scriptSigningSecret, jwtSecret: config.jwtSecret,
    secretsKeys: env['SECRETS_KEYS'] || undefined,
  });

  // Everything started so far, in start order; stopped in reverse.
  const stoppers: Array<{ name: string; stop: (graceMs: number) => Promise<void> }> = [];
  const childPids: number[] = [];
  // If this process exits without stop() (an uncaught error, process.exit elsewhere), children must not outlive it.
  const killChildrenOnExit = () => {
    for (const pid of childPids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killChildrenOnExit);
  const stopAll = async (graceMs: number) => {
    const errors: unknown[] = [];
    for (const s of stoppers.splice(0).reverse()) {
      try {
        await s.stop(graceMs);
      } catch (e) {
        errors.push(e);
      }
    }
    process.removeListener('exit', killChildrenOnExit);
    if (errors.length) throw new AggregateError(errors, `stopping the stack: ${errors.map(String).join('; ')}`);
  };

  try {
    // ── Redis ──
    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      const port = config.embeddedRedisPort || await freePort();
      const redis: EmbeddedRedis = await startEmbeddedRedis({ dir: join(dataDir, 'redis'), port });
      stoppers.push({ name: 'redis-server', stop: (g) => redis.stop(g) });
      childPids.push(redis.pid);
      redisUrl = redis.url;
      progress(`redis-server started (pid ${redis.pid}) at ${redisUrl}`);
    }

    // ── S3 ──
    let s3Endpoint = config.s3Endpoint;
    if (!s3Endpoint) {
      const s3: EmbeddedS3 = await startEmbeddedS3({
        directory: join(dataDir, 's3'), port: config.embeddedS3Port, host: '127.0.0.1',
        buckets: [config.s3ScriptsBucket, config.s3ResultsBucket], accessKey: config.s3AccessKey, secretKey: config.s3SecretKey,
        ...(S3rver ? { S3rver } : {}),
      });
      stoppers.push({ name: 's3', stop: () => s3.close() });
      s3Endpoint = s3.endpoint;
      progress(`S3 server started at ${s3Endpoint}`);
    } else {
      // An external S3 may be empty; creating the buckets here saves a manual step (a no-op when they exist).
      const store = new BlobStore(createS3Client({ ...config, s3Endpoint }));
      try {
        for (const b of [config.s3ScriptsBucket, config.s3ResultsBucket]) await store.ensureBucket(b);
      } finally {
        store.client.destroy();
      }
    }

    // The API and workers read their own settings tables from this environment: same variables as an external setup.
    const apiPort = config.port || await freePort();
    const sharedEnv: Record<string, string | undefined> = {
      ...env,
      REDIS_URL: redisUrl,
      S3_ENDPOINT: s3Endpoint,
      SCRIPT_SIGNING_SECRET: secrets.scriptSigningSecret,
      DATA_DIR: dataDir,
      LOG_DIR: logDir,
    };

    // ── Database + migrations ──
    const dbModule = await import('../control-plane/db/index.ts');
    const pgliteDir = join(dataDir, 'pglite');
    const db = await dbModule.openDatabase(config.databaseUrl ? { databaseUrl: config.databaseUrl } : { dataDir: pgliteDir });
    stoppers.push({ name: 'database', stop: () => db.close() });
    const migrations = await dbModule.migrate(db);
    progress(`database ready (${migrations.length} migration(s) applied)`);
    // The demo provider exists only where its portal runs (migration 0005 keeps it out of other catalogues), for this
    // portal's port alone; the API publishes it to the workers' catalogue in Redis as it starts.
    const demoPort = config.demoPort || await freePort();
    const { upsertProvider } = await import('../control-plane/db/queries/providers.ts');
    await db.asSystem((tx) => upsertProvider(tx, demoProvider(demoPort)));
    // The `sri` provider also reaches the demo portal's imitation of the SRI's portal (/sri, docs/sri.md "Run the SRI
    // pack"), besides the SRI's own hosts (migration 0001); its pacing and concurrency are kept.
    await db.asSystem((tx) => upsertProvider(tx, {
      id: 'sri', name: 'sri', displayName: 'SRI en línea (Ecuador tax authority)',
      allowedHosts: ['srienlinea.sri.gob.ec', '*.sri.gob.ec', `127.0.0.1:${demoPort}`, `localhost:${demoPort}`],
    }));

    // ── Dashboard (src/web → dist/web), before the API that serves it ──
    if (options.web !== 'skip') {
      const { ensureWebBuilt } = await import('./web-build.ts');
      await ensureWebBuilt({ onProgress: progress });
    }

    // ── API (in this process) ──
    const apiEnv = { ...sharedEnv, PORT: String(apiPort), HOST: config.host, JWT_SECRET: secrets.jwtSecret, SECRETS_KEYS: secrets.secretsKeys };
    const { loadApiConfig } = await import('../control-plane/config.ts');
    const { startApi } = await import('../control-plane/server.ts');
    const apiLogger = options.logger ?? createLogger({ name: 'api', level: config.logLevel, logDir, stdout: false });
    const api = await startApi(loadApiConfig(apiEnv), { db, logger: apiLogger });
    stoppers.push({ name: 'api', stop: () => api.close() });
    progress(`API listening at ${api.url}`);

    // ── Workers ──
    const workerEnv: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(sharedEnv)) if (!isForbiddenForWorker(k) && v !== undefined) workerEnv[k] = v;
    // The demo stack runs hand-signed jobs (README "Testing the worker by hand"): no envelope signature required
    // unless the environment asks for it (docs/security.md "Job envelope").
    workerEnv['REQUIRE_JOB_SIGNATURE'] = env['REQUIRE_JOB_SIGNATURE'] || 'false';
    // One command on any machine: bubblewrap when it works, else the process sandbox — said by each worker at start.
    workerEnv['WORKER_SANDBOX'] = env['WORKER_SANDBOX'] || 'auto';
    // The SRI pack's busy month keeps 55 XML files and a report in one job: more than the default of 50 files.
    workerEnv['WORKER_MAX_DOWNLOADS'] = env['WORKER_MAX_DOWNLOADS'] || '200';
    const workers: StackWorker[] = [];
    const spawned: Array<{ workerId: string; child: SpawnedWorker }> = [];
    for (let i = 1; i <= config.workers; i++) {
      const workerId = `${env['WORKER_ID'] || 'embedded-worker'}-${i}`;
      // Worker N listens on WORKER_HTTP_PORT + N - 1, so several workers on one machine do not collide (a taken
      // port makes the worker pick a free one; the summary shows where each one really listens).
      const httpPort = config.workerHttpPort === 'off' || config.workerHttpPort === 0 ? config.workerHttpPort : config.workerHttpPort + i - 1;
      const thisEnv = { ...workerEnv, WORKER_ID: workerId, WORKER_HTTP_PORT: String(httpPort) };
      // A child process each, as in production: the worker holds no database or API settings and shares nothing
      // with the API's process.
      const child = spawnWorker(thisEnv, workerId, options.onWorkerOutput);
      stoppers.push({ name: workerId, stop: (g) => stopChild(child.process, g) });
      childPids.push(child.process.pid!);
      spawned.push({ workerId, child });
    }
    for (const w of spawned) {
      const { httpUrl, sandbox } = await waitForHeartbeat(redisUrl, w.workerId, w.child, logDir);
      workers.push({ workerId: w.workerId, pid: w.child.process.pid!, ...(httpUrl ? { httpUrl } : {}), ...(sandbox ? { sandbox } : {}) });
      progress(`worker ${w.workerId} started (pid ${w.child.process.pid})${httpUrl ? `, metrics at ${httpUrl}/metrics` : ''}`);
      // WORKER_SANDBOX=auto fell back: said here too, not only in the worker's log (docs/security.md "Script sandbox").
      if (sandbox === 'sandbox-process') progress(`WARNING: worker ${w.workerId} runs scripts WITHOUT namespaces (WORKER_SANDBOX=process, or auto where bubblewrap cannot run) — see docs/security.md "Script sandbox"`);
    }

    // ── Demo portal ──
    const portal: DemoPortal = await startDemoPortal({ port: demoPort, host: '127.0.0.1' });
    stoppers.push({ name: 'demo portal', stop: () => portal.close() });
    progress(`demo portal at ${portal.url}`);

    let stopped: Promise<void> | undefined;
    return {
      config,
      apiUrl: api.url,
      portalUrl: portal.url,
      redisUrl,
      s3Endpoint,
      database: config.databaseUrl ? hidePassword(config.databaseUrl) : `pglite:${pgliteDir}`,
      dataDir,
      logDir,
      secrets: { source: secrets.source, file: secrets.file },
      embedded,
      migrations,
      workers,
      childPids,
      stop: (opts) => (stopped ??= stopAll(opts?.graceMs ?? 10_000)),
    };
  } catch (e) {
    await stopAll(2000).catch(() => {});
    throw e;
  }
}

interface SpawnedWorker {
  readonly process: ChildProcess;
  /** The last lines the worker wrote to stderr (its start-up errors). */
  readonly stderrTail: () => string;
}

/**
 * A worker counts as started when its heartbeat key appears in Redis — it has parsed its configuration and
 * connected — not when its process exists. A worker that exits first fails the start with its own message.
 * Returns where its HTTP endpoints listen, from its registry entry.
 */
async function waitForHeartbeat(redisUrl: string, workerId: string, child: SpawnedWorker, logDir: string, timeoutMs = 60_000): Promise<{ httpUrl?: string; sandbox?: string }> {
  const redis = createRedis(redisUrl, { name: 'sri-up-probe', maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  const exited = new Promise<'exited'>((r) => {
    if (child.process.exitCode !== null || child.process.signalCode !== null) r('exited');
    else child.process.once('exit', () => r('exited'));
  });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = await Promise.race([redis.exists(keys.workerHeartbeat(workerId)).then((n) => n > 0), exited]);
      if (seen === true) {
        const [httpUrl, sandbox] = await redis.hmget(keys.workerInfo(workerId), 'httpUrl', 'sandbox');
        return { ...(httpUrl ? { httpUrl } : {}), ...(sandbox ? { sandbox } : {}) };
      }
      if (seen === 'exited') {
        const tail = child.stderrTail().trim();
        const configProblem = /Invalid configuration: (.*)/.exec(tail);
        if (configProblem) throw new SriError('CONFIG_INVALID', `worker ${workerId}: ${configProblem[0]}`);
        throw new SriError('INTERNAL', `worker ${workerId} exited while starting (code ${child.process.exitCode}): ${tail.split('\n').slice(-3).join(' | ') || 'no output'}; see ${join(logDir, 'worker-error.log')}`);
      }
      if (Date.now() > deadline) {
        throw new SriError('INTERNAL', `worker ${workerId} wrote no heartbeat within ${timeoutMs} ms; see ${join(logDir, 'worker-error.log')}`);
      }
      // Polling a condition with a deadline, not a fixed wait: it returns as soon as the key exists.
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    redis.disconnect();
  }
}

/** `--import tsx` when running from the sources; nothing when compiled (dist/ has no tsx to import). */
function loaderArgs(): string[] {
  if (COMPILED) return [];
  let tsx = 'tsx';
  try {
    tsx = import.meta.resolve('tsx');
  } catch {
    // fall back to resolution from the project root (the child's cwd)
  }
  return ['--import', tsx];
}

function spawnWorker(env: Record<string, string | undefined>, workerId: string, onOutput?: (workerId: string, line: string) => void): SpawnedWorker {
  const child = spawn(...boundToParent(process.execPath, [...loaderArgs(), WORKER_MAIN]), {
    // Node's warnings are not hidden (no NODE_NO_WARNINGS): on Node 24 the dependencies raise none at start, and a
    // deprecation a worker hits should reach the operator.
    cwd: PROJECT_ROOT, env: { ...env } as NodeJS.ProcessEnv, stdio: ['ignore', 'ignore', 'pipe'],
  });
  const out = onOutput ?? ((id: string, line: string) => process.stderr.write(`[${id}] ${line}\n`));
  let buf = '';
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4000);
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) out(workerId, l);
  });
  child.once('exit', (code, signal) => {
    if (buf.trim()) out(workerId, buf);
    if (!child.killed) out(workerId, `exited unexpectedly (code ${code}, signal ${signal}); see the worker logs`);
  });
  return { process: child, stderrTail: () => tail };
}

/** SIGTERM lets the worker drain; SIGKILL after `graceMs` bounds the wait. */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

function hidePassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(DATABASE_URL)';
  }
}

/** The summary `sri up` prints: where everything is and what to try next. */
export function describeStack(s: StackHandle): string {
  const lines = [
    'SRI automation platform is up.',
    '',
    `  Dashboard      ${s.apiUrl}/   (sign up, or log in; docs/dashboard.md)`,
    `  API            ${s.apiUrl}   (OpenAPI UI: ${s.apiUrl}/docs, health: ${s.apiUrl}/health, ready: ${s.apiUrl}/ready, metrics: ${s.apiUrl}/metrics)`,
    `  Demo portal    ${s.portalUrl}   (user demo / password demo-password)`,
    `  Redis          ${s.redisUrl}${s.embedded.redis ? '   (embedded redis-server, append-only file in ' + join(s.dataDir, 'redis') + ')' : '   (external, REDIS_URL)'}`,
    `  S3             ${s.s3Endpoint}${s.embedded.s3 ? '   (embedded, objects in ' + join(s.dataDir, 's3') + '; key minioadmin/minioadmin)' : '   (external, S3_ENDPOINT)'}`,
    `  Database       ${s.database}${s.embedded.database ? '   (embedded PGlite)' : '   (external, DATABASE_URL)'}`,
    `  Workers        ${s.workers.length ? s.workers.map((w) => `${w.workerId} (pid ${w.pid}${w.sandbox ? `, ${w.sandbox.replace(/^sandbox-/, 'sandbox ')}` : ''})${w.httpUrl ? ` metrics ${w.httpUrl}/metrics` : ''}`).join(', ') : 'none (WORKERS=0)'}`,
    `  Data dir       ${s.dataDir}`,
    `  Log dir        ${s.logDir}   (api-combined.log, worker-combined.log, *-error.log)`,
    `  Secrets        signing: ${s.secrets.source.scriptSigningSecret === 'env' ? 'SCRIPT_SIGNING_SECRET' : s.secrets.file}, JWT: ${s.secrets.source.jwtSecret === 'env' ? 'JWT_SECRET' : s.secrets.file}, `
      + `tenant secrets key: ${s.secrets.source.secretsKeys === 'env' ? 'SECRETS_KEYS' : s.secrets.file}`,
    `  Migrations     ${s.migrations.length ? s.migrations.join(', ') : 'up to date'}`,
    '',
    'Next, in another terminal:',
    `  npm run sri -- demo --api ${s.apiUrl} --portal ${s.portalUrl}`,
    '',
    'Ctrl-C stops everything.',
  ];
  return lines.join('\n');
}
