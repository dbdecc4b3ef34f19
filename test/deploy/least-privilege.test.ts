/**
 * Least privilege of the deployment's credentials (docs/security.md "Redis ACL" and "S3 policy"), on real services:
 *
 * - a redis-server loaded with deploy/redis/users.acl (rendered by deploy/redis/render-users-acl.sh), the API on the
 *   `sri-api` user and a real worker (startWorker, Chromium) on the `sri-worker` user. Jobs go through the API to a
 *   normal done, a cancel, a lease recovery, a transient retry, a dead letter and an API retry of the dead job, and
 *   Redis's ACL LOG shows not one refusal on the way: the users hold everything the code needs. Lua scripts run
 *   with their caller's ACL, so the queue's scripts are checked command by command and key by key;
 * - then the worker's user is refused what it does not need: FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, SHUTDOWN,
 *   MONITOR, ACL, writing sessions, quotas or the organisation set, keys outside its patterns (directly or from a
 *   Lua script), other pub/sub channels;
 * - deploy/s3/worker-policy.json: valid IAM JSON granting read of scripts and write of results only, matching the
 *   keys a real job read and wrote.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { workerAclRules } from '../../src/shared/enrolment.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client, parseS3Uri } from '../../src/shared/s3.ts';
import { TEST_JWT_SECRET } from '../support/api.ts';
import { startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { startTestPortal, type TestPortal } from '../execution-plane/support/portal.ts';
import { NORMAL_SCRIPT, signedJob, testWorkerConfig } from '../execution-plane/support/jobs.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { writeUsersAcl } from '../support/acl.ts';
import { openTestDatabase } from '../support/database.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OPERATOR_TOKEN = `op-${randomBytes(24).toString('hex')}`;
const USERS = ['admin', 'api', 'worker', 'enrol', 'keda', 'producer'] as const;
type AclUser = (typeof USERS)[number];

/** One entry of ACL LOG, as a field → value map. */
type AclLogEntry = Record<string, string>;

async function aclLog(admin: Redis): Promise<AclLogEntry[]> {
  const raw = await admin.call('ACL', 'LOG', '128') as unknown[][];
  return raw.map((flat) => {
    const e: AclLogEntry = {};
    for (let i = 0; i + 1 < flat.length; i += 2) e[String(flat[i])] = String(flat[i + 1]);
    return e;
  });
}
const describeEntry = (e: AclLogEntry) => `${e['username']} ${e['reason']} ${e['object']} (${e['context']})`;

/**
 * A page whose first `n` requests per key fail the navigation at once — each is redirected into an endless loop of
 * redirects, which Chromium ends with net::ERR_TOO_MANY_REDIRECTS: a transient NAVIGATION_ERROR (a dropped connection
 * would not do: the job's egress proxy turns it into a 502 page; a request held unanswered would fail only when
 * PLAYWRIGHT_TIMEOUT ran out, 5 s at each of the file's three failures) — then answers.
 */
async function startFlakyServer(): Promise<{ url: string; close(): Promise<void> }> {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const loop = /^\/loop\/(\d+)$/.exec(req.url ?? '');
    if (loop) {
      res.writeHead(302, { location: `/loop/${Number(loop[1]) + 1}` }).end();
      return;
    }
    const [, key = '', n = '0'] = /^\/flaky\/([^/]+)\/(\d+)/.exec(req.url ?? '') ?? [];
    const seen = (hits.get(key) ?? 0) + 1;
    hits.set(key, seen);
    if (seen <= Number(n)) {
      res.writeHead(302, { location: '/loop/1' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<html><body><p id="ok">attempt ${seen}</p></body></html>`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

describe('Redis ACL (deploy/redis/users.acl): the API and a worker on their own users', () => {
  const dir = tempDir('sri-acl-');
  const passwords = Object.fromEntries(USERS.map((u) => [u, randomBytes(18).toString('hex')])) as Record<AclUser, string>;
  let redisServer: EmbeddedRedis;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  let portal: TestPortal;
  let flaky: Awaited<ReturnType<typeof startFlakyServer>>;
  let db: Database;
  let blobStore: BlobStore;
  let api: ApiHandle;
  let admin: Redis;
  let worker: WorkerHandle | undefined;
  const opened: Redis[] = [];
  let token = '';
  let orgId = '';
  let userId = '';
  let flowVersion = 0;
  const email = `acl-${randomUUID()}@example.com`;
  /** S3 keys the jobs' results named (for the S3 policy check). */
  const resultKeys: string[] = [];

  const urlOf = (user: AclUser) => `redis://sri-${user}:${passwords[user]}@127.0.0.1:${redisServer.port}`;
  const connect = (user: AclUser) => {
    // KEDA and producers get no INFO (server details): they connect without ioredis's INFO ready check.
    const r = createRedis(urlOf(user), { maxRetriesPerRequest: 1, enableReadyCheck: user !== 'keda' && user !== 'producer' });
    r.on('error', () => { /* a refused connection shows in the command that fails */ });
    opened.push(r);
    return r;
  };

  const http = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(api.url + path, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: ((r.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text) as any };
  };
  const jobOf = async (id: string) => (await http('GET', `/api/jobs/${id}`)).body.job;
  const waitForJob = (id: string, status: string, timeoutMs = 40_000) =>
    waitFor(async () => { const j = await jobOf(id); return j?.status === status ? j : undefined; }, { timeoutMs, what: `job ${id} ${status}` });

  /** A new active flow of `steps`, then POST /api/run; returns the job id. */
  async function run(steps: unknown[], runBody: Record<string, unknown> = {}): Promise<string> {
    flowVersion += 1;
    const flow = await http('POST', '/api/flows', { providerId: 'demo', version: `1.${flowVersion}.0`, name: `acl ${flowVersion}`, steps });
    assert.equal(flow.status, 201, JSON.stringify(flow.body));
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`)).status, 200);
    const r = await http('POST', '/api/run', { providerId: 'demo', ...runBody });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.jobId as string;
  }

  const invoiceSteps = () => [
    { type: 'navigate', url: `${portal.url}/invoices` },
    { type: 'screenshot' },
    { type: 'extract', name: 'invoices', selector: '#invoices tbody tr', fields: { number: 'td.number' } },
  ];

  before(async () => {
    // The file as a deployment renders it: the script puts the SHA-256 of each password in.
    const { path: aclFile, text: rendered } = writeUsersAcl(dir.path, passwords);
    for (const u of USERS) assert.ok(!rendered.includes(passwords[u]), 'no password in clear in the rendered file');
    [redisServer, s3, portal, flaky, db] = await Promise.all([
      freePort().then((port) => startEmbeddedRedis({ dir: join(dir.path, 'redis'), port, extraArgs: ['--aclfile', aclFile] })),
      startTestS3(), startTestPortal(), startFlakyServer(), openTestDatabase(),
    ]);
    await migrate(db);
    // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
    await seedDemoProvider(db);
    admin = connect('admin');
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: urlOf('api'), S3_ENDPOINT: s3.endpoint,
      PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent', OPERATOR_TOKEN,
    });
    blobStore = new BlobStore(createS3Client(config));
    const logger = createLogger({ name: 'api-acl', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
    // The API opens its own connection to REDIS_URL, as the `sri-api` user.
    api = await startApi(config, { db, blobStore, logger });
    const reg = await fetch(`${api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: 'correct-horse-42', name: 'Acl', orgName: 'Acl' }),
    });
    ({ token, user: { id: userId }, org: { id: orgId } } = (await reg.json()) as { token: string; user: { id: string }; org: { id: string } });
    assert.equal((await http('POST', '/api/providers/demo/connect', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }] })).status, 200);
    assert.deepEqual(await aclLog(admin), [], 'the API started without a refusal');
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await api?.close();
    for (const r of opened) r.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([redisServer?.stop(), s3?.close(), portal?.close(), flaky?.close()]);
    dir.remove();
  });

  it('refuses clients without a user: the default user is off', async () => {
    const anon = createRedis(`redis://127.0.0.1:${redisServer.port}`, { maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null });
    anon.on('error', () => {});
    try {
      await assert.rejects(anon.get('sri:orgs'), /NOAUTH|NOPERM/);
    } finally {
      anon.disconnect();
    }
    const wrong = createRedis(`redis://sri-worker:wrong-password@127.0.0.1:${redisServer.port}`, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    const failed = new Promise<Error>((r) => wrong.once('error', r));
    assert.match((await failed).message, /WRONGPASS|invalid username-password/);
    wrong.disconnect();
    assert.ok((await aclLog(admin)).some((e) => e['reason'] === 'auth' && e['username'] === 'sri-worker'), 'the failed login is in ACL LOG');
    // From here on ACL LOG must stay empty until the refusals are tried on purpose.
    await admin.call('ACL', 'LOG', 'RESET');
  });

  it('recovers the lease of a worker that died holding a job: the worker on sri-worker runs it again as attempt 2', async () => {
    const jobId = await run(invoiceSteps());
    // A worker that takes the job and dies: same user, never renews its lease (1.5 s).
    const ghost = await JobQueue.connect(connect('worker'), { leaseMs: 1500 });
    const taken = await ghost.take(`ghost-${randomUUID().slice(0, 6)}`);
    assert.equal(taken?.jobId, jobId);
    const config = testWorkerConfig({
      redisUrl: urlOf('worker'), s3Endpoint: s3.endpoint, logDir: join(dir.path, 'logs'),
      extra: {
        WORKER_LEASE_MS: '3000', WORKER_RECOVERY_INTERVAL_MS: '100', WORKER_RETRY_BASE_MS: '50', WORKER_RETRY_MAX_MS: '200',
        WORKER_HEARTBEAT_INTERVAL_MS: '500', WORKER_MAX_JOBS: '1',
      },
    });
    assert.match(config.redisUrl, /^redis:\/\/sri-worker:/);
    const logger = createLogger({ name: 'worker-acl', level: 'info', logDir: join(dir.path, 'logs'), stdout: false });
    worker = await startWorker(config, { logger, orgRefreshMs: 100 });
    const job = await waitForJob(jobId, 'done');
    assert.equal(job.attempt, 2, 'the recovered lease counts as an attempt');
    assert.equal(job.workerId, worker.workerId);
  });

  it('runs a normal job to done: session read, evidence uploaded, result published and recorded', async () => {
    const jobId = await run(invoiceSteps());
    const job = await waitForJob(jobId, 'done');
    assert.deepEqual(job.result, { invoices: [{ number: 'F-001' }, { number: 'F-002' }] });
    assert.deepEqual(job.artifacts.map((x: { kind: string }) => x.kind).sort(), ['log', 'parsedData', 'screenshot']);
    for (const a of job.artifacts as { uri: string }[]) resultKeys.push(parseS3Uri(a.uri)!.key);
    const stats = await admin.hgetall(keys.workerStats(worker!.workerId));
    assert.ok(Number(stats['successfulJobs']) >= 2, JSON.stringify(stats));
    assert.ok(Number(await admin.get(keys.workerHeartbeat(worker!.workerId))) > 0, 'heartbeat written');
    assert.ok((await admin.xlen(keys.jobLogs(jobId))) > 0, 'live log written');
  });

  it('runs a job a producer pushed with a plain LPUSH on the sri-producer user', async () => {
    const job = signedJob(orgId, NORMAL_SCRIPT, { userId, metadata: { base: portal.url }, allowedHosts: ['127.0.0.1'] });
    assert.equal(await connect('producer').lpush(keys.orgJobs(orgId), JSON.stringify(job)), 1);
    await waitFor(async () => (await admin.get(keys.jobStatus(job.jobId))) === 'done', { timeoutMs: 40_000, what: 'the pushed job done' });
    assert.deepEqual(JSON.parse((await admin.get(keys.jobResult(job.jobId)))!).status, 'done');
  });

  it('retries a transient failure with backoff and succeeds on attempt 2', async () => {
    const jobId = await run([{ type: 'navigate', url: `${flaky.url}/flaky/${randomUUID()}/1` }, { type: 'waitFor', selector: '#ok' }]);
    const job = await waitForJob(jobId, 'done');
    assert.equal(job.attempt, 2);
  });

  it('cancels a running job through the API: the worker stops it', async () => {
    const jobId = await run([{ type: 'waitFor', timeoutMs: 30_000 }]);
    await waitFor(async () => (await admin.get(keys.jobStatus(jobId))) === 'running', { what: 'job running' });
    const r = await http('POST', `/api/jobs/${jobId}/cancel`);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const job = await waitForJob(jobId, 'cancelled', 10_000);
    assert.equal(job.error.code, 'CANCELLED');
  });

  it('dead-letters a job out of attempts; the admin API lists it, and a job retry or a dead-letter requeue through the API runs it to done', async () => {
    const jobId = await run([{ type: 'navigate', url: `${flaky.url}/flaky/${randomUUID()}/1` }, { type: 'waitFor', selector: '#ok' }], { maxAttempts: 1 });
    const dead = await waitForJob(jobId, 'dead');
    assert.equal(dead.error.code, 'NAVIGATION_ERROR');
    const dlq = await http('GET', '/api/admin/dlq');
    assert.ok(dlq.body.entries.some((e: { jobId: string }) => e.jobId === jobId), JSON.stringify(dlq.body));
    const retry = await http('POST', `/api/jobs/${jobId}/retry`);
    assert.equal(retry.status, 202, JSON.stringify(retry.body));
    const done = await waitForJob(jobId, 'done');
    assert.equal(done.attempt, 2);
    // The other way back: the admin requeues a dead letter, which leaves the list.
    const other = await run([{ type: 'navigate', url: `${flaky.url}/flaky/${randomUUID()}/1` }, { type: 'waitFor', selector: '#ok' }], { maxAttempts: 1 });
    await waitForJob(other, 'dead');
    const entry = (await http('GET', '/api/admin/dlq')).body.entries.find((e: { jobId: string }) => e.jobId === other);
    assert.equal((await http('POST', `/api/admin/dlq/${entry.id}/requeue`)).status, 202);
    await waitForJob(other, 'done');
  });

  it('writes the workers\' live configuration as sri-api (PUT /api/operator/worker-config) and the worker on sri-worker applies it', async () => {
    const r = await fetch(`${api.url}/api/operator/worker-config`, {
      method: 'PUT', headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ version: 0, config: { global: { maxJobs: 1 } } }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    assert.ok(worker?.httpUrl, 'the worker serves /metrics');
    await waitFor(async () => /^sri_worker_config_version\{[^}]*\} 1$/m.test(await (await fetch(`${worker!.httpUrl}/metrics`)).text()),
      { timeoutMs: 20_000, what: 'the worker applies version 1' });
  });

  it('needed no permission outside the ACL: ACL LOG holds no refusal of the API\'s or the worker\'s commands', async () => {
    // Read paths of the API too: status, live log, workers, quota, queue metrics.
    const [last] = (await http('GET', '/api/jobs?pageSize=1')).body.jobs;
    assert.equal((await http('GET', `/api/jobs/${last.id}/status`)).status, 200);
    assert.equal((await http('GET', `/api/jobs/${last.id}/logs?follow=false`)).status, 200);
    // Its live log, still in Redis, as events (XREAD on the API's user) up to the `end` event.
    const live = await fetch(`${api.url}/api/jobs/${last.id}/logs`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    assert.match(live.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.match(await live.text(), /event: end/);
    assert.ok((await http('DELETE', '/api/admin/dlq')).body.purged >= 1);
    assert.equal((await http('GET', '/api/workers')).status, 200);
    assert.equal((await http('PUT', '/api/admin/quota', { maxConcurrent: 3 })).status, 200);
    assert.equal((await fetch(`${api.url}/metrics`)).status, 200);
    // Logins: a failure counts towards the account's lockout (Lua on sri:auth:*), a success clears it.
    const login = (password: string) => fetch(`${api.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
    assert.equal((await login('wrong-password-1')).status, 401);
    assert.equal((await login('correct-horse-42')).status, 200);
    const readyz = await fetch(`${worker!.httpUrl}/readyz`);
    assert.equal(readyz.status, 200, await readyz.text());
    assert.match(await (await fetch(`${worker!.httpUrl}/metrics`)).text(), /sri_queue_metrics_up(\{[^}]*\})? 1/);
    const refused = await aclLog(admin);
    assert.deepEqual(refused.map(describeEntry), []);
  });

  it('deploy/s3/worker-policy.json is IAM JSON granting read of scripts and write of results only, covering the keys jobs used', async () => {
    const policy = JSON.parse(readFileSync(join(ROOT, 'deploy/s3/worker-policy.json'), 'utf8')) as {
      Version: string; Statement: { Sid?: string; Effect: string; Action: string | string[]; Resource: string | string[]; Condition?: Record<string, Record<string, string | string[]>> }[];
    };
    assert.equal(policy.Version, '2012-10-17');
    const statements = policy.Statement.map((s) => ({ ...s, Action: [s.Action].flat(), Resource: [s.Resource].flat() }));
    assert.ok(statements.every((s) => s.Effect === 'Allow'));
    const granted = statements.flatMap((s) => s.Action.flatMap((action) => s.Resource.map((resource) => `${action} ${resource}`))).sort();
    assert.deepEqual(granted, [
      's3:AbortMultipartUpload arn:aws:s3:::sri-results/results/*',
      's3:GetObject arn:aws:s3:::sri-scripts/modules/*',
      's3:GetObject arn:aws:s3:::sri-scripts/scripts/*',
      's3:ListBucket arn:aws:s3:::sri-scripts',
      's3:PutObject arn:aws:s3:::sri-results/results/*',
    ]);
    const list = statements.find((s) => s.Action.includes('s3:ListBucket'))!;
    // Module versions are resolved by listing modules/{name}/ (docs/modules.md).
    assert.deepEqual(list.Condition, { StringLike: { 's3:prefix': ['scripts/*', 'modules/*'] } }, 'listing is limited to the scripts and modules prefixes');
    // The layout it encodes is the one the code uses: the objects a real job wrote, and flow scripts' keys.
    const matches = (pattern: string, key: string) => new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(key);
    assert.ok(resultKeys.length >= 3, 'the normal job ran first');
    for (const key of resultKeys) assert.ok(matches('arn:aws:s3:::sri-results/results/*', `arn:aws:s3:::sri-results/${key}`), key);
    const flows = (await http('GET', '/api/flows')).body.flows as { scriptKey: string }[];
    for (const f of flows) assert.ok(matches('arn:aws:s3:::sri-scripts/scripts/*', `arn:aws:s3:::sri-scripts/${f.scriptKey}`), f.scriptKey);
    const config = testWorkerConfig({ redisUrl: 'redis://x', s3Endpoint: 'http://x', logDir: dir.path });
    assert.deepEqual([config.s3ScriptsBucket, config.s3ResultsBucket], ['sri-scripts', 'sri-results'], 'the policy names the default buckets');
  });

  it('stops the worker and the API (release, unsubscribe, quit) without a refusal', async () => {
    await worker!.stop({ graceMs: 5000 });
    worker = undefined;
    await api.close();
    assert.deepEqual((await aclLog(admin)).map(describeEntry), []);
  });

  it('refuses the worker\'s user every command and key it does not need', async () => {
    const w = connect('worker');
    // DEBUG is also off in redis-server's own configuration (enable-debug-command), which answers first.
    const refusedCommand = /NOPERM .*(command|subcommand)|DEBUG command not allowed/i;
    for (const cmd of [['FLUSHALL'], ['FLUSHDB'], ['CONFIG', 'GET', '*'], ['CONFIG', 'SET', 'appendonly', 'no'], ['KEYS', '*'], ['DEBUG', 'SLEEP', '0'],
      ['SHUTDOWN', 'NOSAVE'], ['MONITOR'], ['ACL', 'LIST'], ['ACL', 'SETUSER', 'sri-worker', '+@all'], ['SCRIPT', 'FLUSH'], ['FUNCTION', 'FLUSH'],
      ['SWAPDB', '0', '1'], ['SELECT', '1'], ['CLIENT', 'KILL', 'TYPE', 'normal'], ['SAVE'], ['BGREWRITEAOF'], ['REPLICAOF', 'NO', 'ONE'],
      ['MIGRATE', '127.0.0.1', '1', 'sri:orgs', '0', '1'], ['RENAME', 'sri:job:x:status', 'other'], ['SORT', 'sri:orgs']] as const) {
      // The ACL's verdict without running anything (ACL DRYRUN), then the attempt itself.
      assert.match(String(await admin.call('ACL', 'DRYRUN', 'sri-worker', ...cmd)), /no permissions to run/, `ACL DRYRUN sri-worker ${cmd.join(' ')}`);
      await assert.rejects(w.call(cmd[0], ...cmd.slice(1)), refusedCommand, cmd.join(' '));
    }
    const refusedKey = /NOPERM .*key/i;
    const session = keys.session('org-x', 'user-x', 'demo');
    await admin.set(session, '{"cookies":[],"connectedAt":0}');
    assert.equal(await w.get(session), '{"cookies":[],"connectedAt":0}', 'reading a session is what a job needs');
    // Writing one is too since issue 13: a job saves the cookies of a renewed login back (docs/sessions.md).
    await assert.rejects(w.hset(keys.orgQuota('org-x'), 'maxConcurrent', '1000'), refusedKey, 'raising a quota');
    await assert.rejects(w.sadd(keys.orgs, 'org-y'), refusedKey, 'adding an organisation');
    // The provider catalogue: a worker reads a provider's hosts; widening them is the API's alone.
    assert.match(String(await w.hget(keys.provider('demo'), 'allowedHosts')), /127\.0\.0\.1/, 'reading the catalogue is what a job needs');
    await assert.rejects(w.hset(keys.provider('demo'), 'allowedHosts', '["*.evil.example"]'), refusedKey, 'widening a provider\'s hosts');
    await assert.rejects(w.del(keys.provider('demo')), refusedKey, 'deleting a provider\'s entry');
    // The workers' live configuration: read it, never write it (raising every worker's limits is the API's alone).
    const liveConfig = await w.get(keys.workerConfig);
    assert.match(String(liveConfig), /"version":1/, 'reading the live configuration is what a worker needs');
    await assert.rejects(w.set(keys.workerConfig, '{"version":2,"config":{"global":{"maxJobs":1000}}}'), refusedKey, 'writing the live configuration');
    await assert.rejects(w.del(keys.workerConfig), refusedKey, 'deleting the live configuration');
    await assert.rejects(w.lpush(keys.workerConfigHistory, 'x'), refusedKey, 'writing its audit');
    await assert.rejects(w.eval("return redis.call('SET', KEYS[1], '{}')", 1, keys.workerConfig), /NOPERM|can't access at least one of the keys/i, 'a live configuration write from Lua');
    assert.equal(await admin.get(keys.workerConfig), liveConfig, 'unchanged');
    for (const key of ['other-app:data', 'sri:secrets:x', 'sri:enrolment:x', 'sri:sessionsx', 'sri:org:x:other']) {
      await assert.rejects(w.get(key), refusedKey, `GET ${key}`);
      await assert.rejects(w.set(key, '1'), refusedKey, `SET ${key}`);
    }
    // Lua scripts run with the caller's ACL: EVAL is no way around it.
    await assert.rejects(w.eval("return redis.call('FLUSHALL')", 0), /NOPERM|can't run this command/i, 'FLUSHALL from Lua');
    await assert.rejects(w.eval("return redis.call('GET', 'other-app:data')", 0), /NOPERM|can't access at least one of the keys/i, 'a foreign key from Lua');
    await assert.rejects(w.eval("return redis.call('HSET', KEYS[1], 'allowedHosts', '[]')", 1, keys.provider('demo')), /NOPERM|can't access at least one of the keys/i, 'a catalogue write from Lua');
    // Pub/sub: the control channel and the results channels only.
    await assert.rejects(w.publish('other-channel', 'x'), /NOPERM .*channel/i);
    const sub = connect('worker');
    await assert.rejects(sub.subscribe('sri:other'), /NOPERM .*channel/i);
    await assert.rejects(connect('worker').psubscribe('sri:*'), /NOPERM/i, 'pattern subscriptions (every organisation\'s results)');
    const logged = (await aclLog(admin)).filter((e) => e['username'] === 'sri-worker');
    assert.ok(logged.length >= 10, 'each refusal is in ACL LOG for the operators');
    assert.equal(await admin.get(session), '{"cookies":[],"connectedAt":0}');
    assert.equal(await admin.dbsize() > 0, true, 'nothing was flushed');
  });

  it('gives enrolled workers\' own users the rules of sri-worker in users.acl, narrowed to their own worker keys', () => {
    const line = readFileSync(join(ROOT, 'deploy/redis/users.acl'), 'utf8').split('\n').find((l) => l.startsWith('user sri-worker '))!;
    const rules = line.split(' ').slice(4); // user sri-worker on #{{…}} <rules>
    assert.deepEqual(rules, workerAclRules(), 'deploy/redis/users.acl and src/shared/enrolment.ts workerAclRules() agree');
    const own = workerAclRules('w-1');
    assert.deepEqual(own.filter((r) => !rules.includes(r)), ['~sri:worker:w-1:*', '~{sri}:worker:w-1:*']);
    assert.deepEqual(rules.filter((r) => !own.includes(r)), ['~sri:worker:*', '~{sri}:worker:*']);
  });

  it('refuses the API\'s user server administration and keys outside sri:*; KEDA may only LLEN the queues, a producer only LPUSH them', async () => {
    const a = connect('api');
    for (const cmd of [['FLUSHALL'], ['FLUSHDB'], ['CONFIG', 'GET', '*'], ['KEYS', '*'], ['DEBUG', 'SLEEP', '0'], ['SHUTDOWN', 'NOSAVE'], ['MONITOR'], ['ACL', 'LIST']] as const) {
      assert.match(String(await admin.call('ACL', 'DRYRUN', 'sri-api', ...cmd)), /no permissions to run/, `ACL DRYRUN sri-api ${cmd.join(' ')}`);
      await assert.rejects(a.call(cmd[0], ...cmd.slice(1)), /NOPERM|DEBUG command not allowed/, cmd.join(' '));
    }
    await assert.rejects(a.get('other-app:data'), /NOPERM .*key/i);
    const k = connect('keda');
    await admin.lpush(keys.orgJobs('org-k'), '{}', '{}');
    assert.equal(await k.llen(keys.orgJobs('org-k')), 2);
    assert.equal(await k.llen(keys.orgReadyNormal('org-k')), 0);
    await assert.rejects(k.lrange(keys.orgJobs('org-k'), 0, -1), /NOPERM/, 'KEDA cannot read the messages');
    await assert.rejects(k.get(keys.session('org-x', 'user-x', 'demo')), /NOPERM/);
    await assert.rejects(k.llen(keys.orgDlq('org-k')), /NOPERM .*key/i);
    const p = connect('producer');
    assert.equal(await p.lpush(keys.orgJobs('org-k'), '{}'), 3);
    await assert.rejects(p.lrange(keys.orgJobs('org-k'), 0, -1), /NOPERM/, 'a producer cannot read the queue');
    await assert.rejects(p.call('LPOP', keys.orgJobs('org-k')), /NOPERM/, 'nor take from it');
    await assert.rejects(p.get(keys.session('org-x', 'user-x', 'demo')), /NOPERM/);
    await assert.rejects(p.set(keys.jobStatus('x'), 'done'), /NOPERM/);
    await assert.rejects(p.lpush(keys.orgReadyHigh('org-k'), '{}'), /NOPERM .*key/i, 'nor jump the queue');
  });

});
