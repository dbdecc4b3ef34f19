/**
 * The production build, run the way the images run it (deploy/docker/Dockerfile), without a container engine:
 * `npm run build` into a temporary /app-like folder — dist/ from the build, bin/ and package.json copied, and a
 * node_modules holding the production dependencies only (what `npm ci --omit=dev` installs: no tsx, esbuild or
 * TypeScript) — then the built API, worker and CLI started with plain `node` (no loader) against real Redis and S3,
 * and real jobs run end to end on the built code.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { boundToParent } from '../../src/embedded/bound-child.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { keys } from '../../src/shared/keys.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { startTestPortal, type TestPortal } from '../execution-plane/support/portal.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg } from '../execution-plane/support/jobs.ts';
import { startTestRedis, startTestS3, tempDir, TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/**
 * node_modules as `npm ci --omit=dev` leaves it: a link to each installed package package-lock.json does not mark
 * `dev` (top-level entries; nested ones come with their parent).
 */
function productionModules(into: string): string[] {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const linked: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (!path.startsWith('node_modules/') || path.lastIndexOf('node_modules/') !== 0 || entry.dev) continue;
    const name = path.slice('node_modules/'.length);
    if (!existsSync(join(ROOT, path))) continue; // an optional package for another platform
    mkdirSync(dirname(join(into, name)), { recursive: true });
    symlinkSync(join(ROOT, path), join(into, name), 'dir');
    linked.push(name);
  }
  return linked;
}

/** The environment of a container: nothing of this test process (no NODE_OPTIONS, no npm_*), no node_modules/.bin. */
function imageEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const path = (process.env['PATH'] ?? '/usr/bin:/bin').split(':').filter((p) => !p.includes('node_modules')).join(':');
  return { PATH: path, HOME: process.env['HOME'] ?? '/tmp', NODE_ENV: 'production', ...extra };
}

interface Proc { child: ChildProcess; output(): string; exited: Promise<number | null> }
const started: Proc[] = [];

function start(cwd: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(...boundToParent(process.execPath, args), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const p = { child, output: () => out, exited };
  started.push(p);
  return p;
}

async function stop(p: Proc, graceMs = 30_000): Promise<number | null> {
  if (p.child.exitCode === null && p.child.signalCode === null) {
    p.child.kill('SIGTERM');
    const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
    await p.exited;
    clearTimeout(t);
  }
  return p.child.exitCode;
}

describe('the production build (npm run build → dist/), run with plain node and production dependencies only', () => {
  const app = tempDir('sri-dist-');
  const dist = join(app.path, 'dist');
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  let portal: TestPortal;
  let redis: Redis;
  let build: { status: number | null; output: string };

  before(async () => {
    assert.ok(Number(process.versions.node.split('.')[0]) >= 24,
      `Node ${process.versions.node}: the platform runs on Node 24; run the tests through npm (npm test) or node_modules/.bin/node`);
    const r = spawnSync('npm', ['run', 'build', '--', '--out-dir', dist], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
    build = { status: r.status, output: `${r.stdout}${r.stderr}` };
    for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, f), join(app.path, f));
    mkdirSync(join(app.path, 'bin'));
    copyFileSync(join(ROOT, 'bin', 'sri.js'), join(app.path, 'bin', 'sri.js'));
    mkdirSync(join(app.path, 'deploy', 'docker'), { recursive: true });
    copyFileSync(join(ROOT, 'deploy', 'docker', 'healthcheck.mjs'), join(app.path, 'deploy', 'docker', 'healthcheck.mjs'));
    productionModules(join(app.path, 'node_modules'));
    [redisServer, s3, portal] = await Promise.all([startTestRedis(), startTestS3(), startTestPortal()]);
    redis = createRedis(redisServer.url);
  });

  after(async () => {
    for (const p of started) await stop(p, 5000);
    redis?.disconnect();
    await Promise.all([redisServer?.stop(), s3?.close(), portal?.close()]);
    app.remove();
  });

  it('emits JavaScript only, with every Lua script, the migrations and the sandbox child prebuilt', () => {
    assert.equal(build.status, 0, build.output);
    assert.match(build.output, /built .*: \d+ modules/);
    const built = filesUnder(dist).map((f) => relative(dist, f));
    assert.deepEqual(built.filter((f) => f.endsWith('.ts')), [], 'no TypeScript in dist/');
    // src/web is the dashboard's source: built by Vite into dist/web (index.html and hashed assets), not copied.
    const sources = filesUnder(join(ROOT, 'src')).map((f) => relative(ROOT, f)).filter((f) => !f.startsWith(join('src', 'web') + '/'));
    assert.ok(built.includes(join('web', 'index.html')), 'the dashboard in dist/web');
    assert.ok(built.some((f) => f.startsWith(join('web', 'assets') + '/') && f.endsWith('.js')), 'its scripts in dist/web/assets');
    assert.deepEqual(built.filter((f) => f.startsWith(join('src', 'web'))), [], 'no dashboard source in dist/src');
    for (const s of sources) {
      const want = s.endsWith('.ts') ? s.replace(/\.ts$/, '.js') : s;
      assert.ok(built.includes(want), `${want} in dist/`);
    }
    assert.ok(sources.filter((s) => s.endsWith('.lua')).length >= 20, 'the Lua scripts are among them');
    for (const m of readdirSync(join(ROOT, 'migrations')).filter((f) => f.endsWith('.sql'))) assert.ok(built.includes(join('migrations', m)), m);
    assert.equal(JSON.parse(readFileSync(join(dist, 'package.json'), 'utf8')).type, 'module');

    // Every relative import resolves to a built file: none still names a .ts file.
    for (const f of built.filter((b) => b.endsWith('.js') && !b.endsWith('child.bundle.js'))) {
      const text = readFileSync(join(dist, f), 'utf8');
      for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)["'](\.{1,2}\/[^"']+)["']/g)) {
        assert.ok(existsSync(resolve(dirname(join(dist, f)), m[1]!)), `${f} imports ${m[1]}`);
      }
    }
    // The sandbox child: one module importing node: builtins only (it runs under --permission with no grants).
    const bundle = readFileSync(join(dist, 'src/execution-plane/script/sandbox/child.bundle.js'), 'utf8');
    const imports = [...bundle.matchAll(/\bfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']/g)].map((m) => m[1] ?? m[2]);
    assert.ok(imports.length > 0 && imports.every((s) => s!.startsWith('node:')), `child bundle imports ${imports.join(', ')}`);
  });

  it('installs like the image: fastify and the AWS SDK load from it, tsx, esbuild, TypeScript, the npm node package and the embedded S3 server do not', () => {
    const req = createRequire(join(dist, 'src', 'cli', 'main.js'));
    // fast-xml-parser is the SRI parsers' (src/sri/parse.ts), exceljs the documents export's: production dependencies.
    for (const present of ['fastify', 'ioredis', '@aws-sdk/client-s3', 'playwright-core', '@electric-sql/pglite', 'fast-xml-parser', 'exceljs']) assert.ok(req.resolve(present), present);
    for (const absent of ['tsx', 'esbuild', 'typescript', 'node/package.json', '@20minutes/s3rver', 's3rver', 'busboy', 'dicer']) {
      assert.throws(() => req.resolve(absent), /Cannot find module/, `${absent} must not be loadable from the image layout`);
    }
  });

  it('runs the built API (node dist/src/control-plane/main.js): migrations on PGlite, /ready with Redis and S3, the image health check, exit 0 on SIGTERM', async () => {
    const port = await freePort();
    const api = start(app.path, ['dist/src/control-plane/main.js'], imageEnv({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3.endpoint,
      PORT: String(port), DATA_DIR: join(app.path, 'api-data'), LOG_DIR: join(app.path, 'api-logs'), LOG_LEVEL: 'warn',
    }));
    const ready = await waitFor(async () => {
      if (api.child.exitCode !== null) throw new Error(`API exited: ${api.output()}`);
      const r = await fetch(`http://127.0.0.1:${port}/ready`);
      return r.status === 200 ? r.json() : undefined;
    }, { timeoutMs: 90_000, what: 'the built API ready' });
    assert.deepEqual(ready, { status: 'ready', checks: { postgres: 'ok', redis: 'ok', s3: 'ok' } });
    // Registration hashes a password (node:crypto's argon2) and writes through the migrated schema.
    const reg = await fetch(`http://127.0.0.1:${port}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `dist-${randomUUID()}@example.com`, password: 'violet tractor anchors 93', name: 'Dist', orgName: 'Dist' }),
    });
    assert.equal(reg.status, 201, await reg.clone().text());
    const hc = spawnSync(process.execPath, ['deploy/docker/healthcheck.mjs', 'api'], { cwd: app.path, env: imageEnv({ PORT: String(port) }), encoding: 'utf8' });
    assert.equal(hc.status, 0, hc.stderr);
    assert.equal(await stop(api), 0, api.output());
    assert.doesNotMatch(api.output(), /Warning/, 'no warning at start (Node 24 is what the dependencies want)');
  });

  it('runs the built worker (node dist/src/execution-plane/main.js): the prebuilt sandbox child in bubblewrap runs a signed job end to end, results in S3', async () => {
    const workerId = `dist-worker-${randomUUID().slice(0, 8)}`;
    const worker = start(app.path, ['dist/src/execution-plane/main.js'], imageEnv({
      REDIS_URL: redisServer.url, S3_ENDPOINT: s3.endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, WORKER_ID: workerId,
      WORKER_POLL_INTERVAL: '50', WORKER_MAX_JOBS: '1', WORKER_HTTP_PORT: '0', WORKER_SANDBOX: 'bwrap',
      LOG_DIR: join(app.path, 'worker-logs'), LOG_LEVEL: 'warn',
    }));
    await waitFor(async () => {
      if (worker.child.exitCode !== null) throw new Error(`worker exited: ${worker.output()}`);
      return (await redis.exists(keys.workerHeartbeat(workerId))) === 1;
    }, { timeoutMs: 90_000, what: 'the built worker\'s heartbeat' });
    assert.equal(await redis.hget(keys.workerInfo(workerId), 'sandbox'), 'sandbox-bwrap');

    const org = testOrg('dist');
    await setSession(redis, org, 'user-1', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], connectedAt: Date.now() });
    const job = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url }, allowedHosts: [`127.0.0.1:${portal.port}`] });
    await push(redis, org, job);
    const raw = await waitFor(() => redis.get(keys.jobResult(job.jobId)), { timeoutMs: 90_000, what: `the job's result; worker output: ${worker.output().slice(-1000)}` });
    const result = ResultMessage.parse(JSON.parse(raw));
    assert.equal(result.status, 'done', JSON.stringify(result.error));
    assert.equal(result.workerId, workerId);
    const store = new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
    try {
      const object = (uri: string) => {
        const [bucket, ...key] = uri.replace(/^s3:\/\//, '').split('/');
        return store.get(bucket!, key.join('/'));
      };
      assert.match((await object(result.files.log))?.toString() ?? '', /\S/, `${result.files.log} in S3`);
      assert.deepEqual(JSON.parse((await object(result.files.parsedData!))!.toString()), { rows: 2 });
    } finally {
      store.client.destroy();
    }
    assert.equal(await stop(worker), 0, worker.output());
  });

  it('`sri up` from dist without S3_ENDPOINT stops at once with EMBEDDED_S3_MISSING (the embedded S3 server is a dev dependency), no stack trace', async () => {
    const up = start(app.path, ['bin/sri.js', 'up'], imageEnv({
      REDIS_URL: redisServer.url, EMBEDDED_S3_PORT: '0', DATA_DIR: join(app.path, 'up-no-s3-data'), LOG_DIR: join(app.path, 'up-no-s3-logs'),
      LOG_LEVEL: 'warn', PORT: '0', DEMO_PORT: '0', WORKERS: '0',
    }));
    assert.equal(await up.exited, 1, up.output());
    const out = up.output().trim();
    assert.match(out, /^error EMBEDDED_S3_MISSING: the embedded S3 server \(@20minutes\/s3rver, a development dependency\) is not installed/m);
    assert.match(out, /Set S3_ENDPOINT/);
    assert.doesNotMatch(out, /^\s+at /m, 'no stack trace');
    assert.doesNotMatch(out, /S3 server started|API listening/, 'nothing started');
  });

  it('runs `sri up` and `sri demo` from dist (node bin/sri.js, no tsx): the stack\'s worker is the built one, and the demo job is done', async () => {
    const env = imageEnv({
      REDIS_URL: redisServer.url, S3_ENDPOINT: s3.endpoint, DATA_DIR: join(app.path, 'up-data'), LOG_DIR: join(app.path, 'up-logs'),
      LOG_LEVEL: 'warn', PORT: '0', DEMO_PORT: '0', WORKERS: '1', WORKER_HTTP_PORT: '0',
    });
    const up = start(app.path, ['bin/sri.js', 'up'], env);
    const summary = await waitFor(() => {
      if (up.child.exitCode !== null) throw new Error(`sri up exited: ${up.output()}`);
      return /SRI automation platform is up\.[\s\S]*Ctrl-C stops everything/.exec(up.output())?.[0];
    }, { timeoutMs: 180_000, what: 'sri up from dist' });
    const apiUrl = /API\s+(http:\/\/\S+)/.exec(summary)![1]!;
    const portalUrl = /Demo portal\s+(http:\/\/\S+)/.exec(summary)![1]!;
    const pid = Number(/embedded-worker-1 \(pid (\d+)/.exec(summary)![1]);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.deepEqual(cmdline.slice(1), [join(dist, 'src', 'execution-plane', 'main.js')], `the worker runs the built file with no loader: ${cmdline.join(' ')}`);
    assert.match(summary, /sandbox bwrap/);

    const demo = start(app.path, ['bin/sri.js', 'demo', '--api', apiUrl, '--portal', portalUrl, '--timeout', '120000'], env);
    assert.equal(await demo.exited, 0, demo.output());
    assert.match(demo.output(), /done/);
    assert.equal(await stop(up), 0, up.output());
    assert.doesNotMatch(up.output(), /Warning/);
  });
});
