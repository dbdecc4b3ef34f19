/**
 * Worker enrolment and revocation (docs/security.md "Worker enrolment"), on a redis-server loaded with
 * deploy/redis/users.acl as a deployment renders it, the API on the `sri-api` user with an OPERATOR_TOKEN, and a real
 * worker process (Chromium) that starts with nothing but the bootstrap user `sri-enrol` and a one-time token:
 *
 * - the operator creates a token through the API; Redis holds only its SHA-256 and the sealed credentials;
 * - the worker redeems it, connects as its own Redis user and runs a job pushed through the API;
 * - the token does not work twice, nor once expired; the bootstrap user can do nothing but GETDEL `sri:enrol:*`;
 *   an enrolled worker's user cannot write another worker's keys or lift its own revocation;
 * - revoking the worker kills its connections: it takes no job pushed afterwards and exits 77 ("worker revoked");
 * - the API puts enrolled users back when Redis lost them, and deletes those of expired tokens.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { redeemEnrolment } from '../../src/execution-plane/enrolment.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { EXIT_CODE_REVOKED, enrolTokenKey, sha256Hex, workerAclUsername } from '../../src/shared/enrolment.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { TEST_JWT_SECRET } from '../support/api.ts';
import { startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { startTestPortal, type TestPortal } from '../execution-plane/support/portal.ts';
import { boundToParent } from '../../src/embedded/bound-child.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { writeUsersAcl } from '../support/acl.ts';
import { openTestDatabase } from '../support/database.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const USERS = ['admin', 'api', 'worker', 'enrol'] as const;
type AclUser = (typeof USERS)[number];
const OPERATOR_TOKEN = `operator-${randomBytes(24).toString('hex')}`;

function spawnWorker(env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(...boundToParent(process.execPath, ['--import', 'tsx', 'src/execution-plane/main.ts']), {
    cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', NODE_NO_WARNINGS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}

describe('worker enrolment and revocation (Redis ACL of deploy/redis/users.acl)', () => {
  const dir = tempDir('sri-enrol-');
  const passwords = Object.fromEntries(USERS.map((u) => [u, randomBytes(18).toString('hex')])) as Record<AclUser, string>;
  let redisServer: EmbeddedRedis;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  let portal: TestPortal;
  let db: Database;
  let blobStore: BlobStore;
  let api: ApiHandle;
  let admin: Redis;
  const opened: Redis[] = [];
  const workers: ReturnType<typeof spawnWorker>[] = [];
  let token = '';
  /** The enrolment token of the worker process of the tests below. */
  let enrolToken = '';
  let flowVersion = 0;
  /** The worker process enrolled by the first test, and its id. */
  let enrolled: ReturnType<typeof spawnWorker> | undefined;
  let enrolledId = '';

  const urlOf = (user: AclUser) => `redis://sri-${user}:${passwords[user]}@127.0.0.1:${redisServer.port}`;
  const connect = (url: string, opts: { readyCheck?: boolean } = {}) => {
    const r = createRedis(url, { maxRetriesPerRequest: 1, enableReadyCheck: opts.readyCheck ?? true, disableClientInfo: true });
    r.on('error', () => { /* a refusal shows in the command that fails */ });
    opened.push(r);
    return r;
  };
  const call = async (method: string, path: string, opts: { body?: unknown; bearer?: string } = {}) => {
    const r = await fetch(api.url + path, {
      method,
      headers: { ...(opts.bearer ? { authorization: `Bearer ${opts.bearer}` } : {}), ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    return { status: r.status, body: await r.json() as any, headers: r.headers };
  };
  const op = (method: string, path: string, body?: unknown) => call(method, path, { body, bearer: OPERATOR_TOKEN });
  const asOrg = (method: string, path: string, body?: unknown) => call(method, path, { body, bearer: token });
  const aclUsers = async () => await admin.call('ACL', 'USERS') as string[];
  const clientsOf = async (user: string) => String(await admin.call('CLIENT', 'LIST')).split('\n').filter((l) => l.includes(` user=${user} `)).length;
  const status = (jobId: string) => admin.get(keys.jobStatus(jobId));

  /** A new active flow that lists the portal's invoices, then POST /api/run; returns the job id. */
  async function runJob(): Promise<string> {
    flowVersion += 1;
    const flow = await asOrg('POST', '/api/flows', {
      providerId: 'demo', version: `1.${flowVersion}.0`, name: `enrol ${flowVersion}`,
      steps: [{ type: 'navigate', url: `${portal.url}/invoices` }, { type: 'extract', name: 'invoices', selector: '#invoices tbody tr', fields: { number: 'td.number' } }],
    });
    assert.equal(flow.status, 201, JSON.stringify(flow.body));
    assert.equal((await asOrg('POST', `/api/flows/${flow.body.flow.id}/activate`)).status, 200);
    const r = await asOrg('POST', '/api/run', { providerId: 'demo' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.jobId as string;
  }

  const workerEnv = (extra: Record<string, string>) => ({
    REDIS_URL: urlOf('enrol'), S3_ENDPOINT: s3.endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, WORKER_POLL_INTERVAL: '50',
    WORKER_MAX_JOBS: '1', LOG_DIR: join(dir.path, 'logs'), LOG_LEVEL: 'info', WORKER_HTTP_PORT: '0', WORKER_REVOKED_AFTER_MS: '1000',
    WORKER_HEARTBEAT_INTERVAL_MS: '500', WORKER_SANDBOX: 'auto', PLAYWRIGHT_TIMEOUT: '10000',
    ...extra,
  });

  before(async () => {
    const aclFile = writeUsersAcl(dir.path, passwords).path;
    [redisServer, s3, portal, db] = await Promise.all([
      freePort().then((port) => startEmbeddedRedis({ dir: join(dir.path, 'redis'), port, extraArgs: ['--aclfile', aclFile] })),
      startTestS3(), startTestPortal(), openTestDatabase(),
    ]);
    await migrate(db);
    // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
    await seedDemoProvider(db);
    admin = connect(urlOf('admin'));
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: urlOf('api'), S3_ENDPOINT: s3.endpoint,
      PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent', OPERATOR_TOKEN, RECONCILE_INTERVAL_MS: '1000',
    });
    blobStore = new BlobStore(createS3Client(config));
    api = await startApi(config, { db, blobStore, logger: createLogger({ name: 'api-enrol', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }) });
    const reg = await call('POST', '/api/auth/register', {
      body: { email: `enrol-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Enrol', orgName: 'Enrol' },
    });
    token = reg.body.token;
    assert.equal((await asOrg('POST', '/api/providers/demo/connect', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }] })).status, 200);
  });

  after(async () => {
    for (const w of workers) {
      if (w.child.exitCode === null && w.child.signalCode === null) {
        w.child.kill('SIGKILL');
        await w.exited;
      }
    }
    await api?.close();
    for (const r of opened) r.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([redisServer?.stop(), s3?.close(), portal?.close()]);
    dir.remove();
  });

  it('keeps the operator endpoints from an organisation\'s token, no token and a wrong token (OPERATOR_ONLY)', async () => {
    for (const bearer of [token, undefined, `${OPERATOR_TOKEN}x`, OPERATOR_TOKEN.slice(0, -1)]) {
      for (const [method, path] of [['POST', '/api/operator/worker-enrolments'], ['GET', '/api/operator/worker-enrolments'], ['POST', '/api/operator/workers/x/revoke']] as const) {
        const r = await call(method, path, { bearer, ...(method === 'POST' ? { body: {} } : {}) });
        assert.equal(r.status, 403, `${method} ${path}`);
        assert.equal(r.body.error.code, 'OPERATOR_ONLY');
      }
    }
    assert.equal((await admin.hlen(keys.enrolments)), 0, 'nothing was created');
  });

  it('creates a one-time token: Redis holds only its SHA-256 and the sealed credentials, and the worker\'s own ACL user', async () => {
    const r = await op('POST', '/api/operator/worker-enrolments', { ttlSeconds: 600, name: 'e2e' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    enrolToken = r.body.token as string;
    assert.match(enrolToken, /^sri-enrol\.[A-Za-z0-9_-]{43}$/);
    enrolledId = r.body.enrolment.workerId;
    assert.match(enrolledId, /^e2e-[0-9a-f]{10}$/);
    assert.equal(r.body.enrolment.status, 'pending');
    assert.equal(r.body.enrolment.redisUser, workerAclUsername(enrolledId));
    const sealed = await admin.get(enrolTokenKey(enrolToken));
    assert.ok(sealed?.startsWith('sri-enc:v1:'), 'sealed credentials under sri:enrol:{sha256(token)}');
    assert.equal(enrolTokenKey(enrolToken), `sri:enrol:${sha256Hex(enrolToken)}`);
    const ttl = await admin.pttl(enrolTokenKey(enrolToken));
    assert.ok(ttl > 590_000 && ttl <= 600_000, `TTL ${ttl}`);
    assert.ok((await aclUsers()).includes(workerAclUsername(enrolledId)));
    // The token is in no key, value or ACL rule.
    const dump = [JSON.stringify(await admin.hgetall(keys.enrolments)), String(await admin.call('ACL', 'LIST')), sealed!];
    for (const text of dump) assert.ok(!text.includes(enrolToken) && !text.includes(enrolToken.slice(10)), 'the token is stored nowhere');

    // The worker starts with the bootstrap user and the token only.
    enrolled = spawnWorker(workerEnv({ WORKER_ENROLMENT_TOKEN: enrolToken, WORKER_ID: 'ignored-id' }));
    workers.push(enrolled);
  });

  it('a worker enrolled with the token runs a job pushed through the API, as its own Redis user', async () => {
    const w = enrolled!;
    const jobId = await runJob();
    // Done as the API recorded it (the results listener), not only in Redis.
    const job = await waitFor(async () => {
      const j = (await asOrg('GET', `/api/jobs/${jobId}`)).body.job;
      return j?.status === 'done' ? j : undefined;
    }, { timeoutMs: 90_000, what: `job done; worker output: ${w.output().slice(-1500)}` });
    assert.equal(job.workerId, enrolledId, 'the result names the id the enrolment assigned (WORKER_ID ignored)');
    assert.deepEqual(job.result, { invoices: [{ number: 'F-001' }, { number: 'F-002' }] });
    assert.ok((await clientsOf(workerAclUsername(enrolledId))) >= 2, 'its connections are its own user\'s');
    assert.equal(await clientsOf('sri-enrol'), 0, 'the bootstrap connection is closed');
    const list = (await op('GET', '/api/operator/worker-enrolments')).body.enrolments;
    assert.equal(list.find((e: { workerId: string }) => e.workerId === enrolledId).status, 'enrolled');
    const refusals = (await admin.call('ACL', 'LOG', '128') as unknown[][]).map((flat) => flat.join(' ')).filter((l) => /worker-|sri-enrol|sri-api/.test(l));
    assert.deepEqual(refusals, [], 'the enrolled worker, the bootstrap user and the API needed nothing the ACL refuses');
    assert.ok(!w.output().includes(enrolToken.slice(10)), 'the token is not logged');
  });

  it('refuses the same token a second time: a second worker exits 1 with the ENROLMENT_TOKEN_INVALID message', async () => {
    assert.equal(await admin.exists(enrolTokenKey(enrolToken)), 0, 'redeemed: the key is gone');
    const again = spawnWorker(workerEnv({ WORKER_ENROLMENT_TOKEN: enrolToken }));
    workers.push(again);
    assert.equal(await again.exited, 1, again.output());
    assert.match(again.output(), /enrolment token is unknown, expired or already used/);
    await assert.rejects(redeemEnrolment(urlOf('enrol'), enrolToken, 5000), (e: { code?: string }) => e.code === 'ENROLMENT_TOKEN_INVALID');
    await assert.rejects(redeemEnrolment(urlOf('enrol'), `sri-enrol.${randomBytes(32).toString('base64url')}`, 5000),
      (e: { code?: string }) => e.code === 'ENROLMENT_TOKEN_INVALID', 'an unknown token reads the same');
  });

  it('refuses an expired token the same way; its Redis user is deleted by the API\'s reconciliation', async () => {
    const r = await op('POST', '/api/operator/worker-enrolments', { ttlSeconds: 1 });
    assert.equal(r.status, 201);
    const { token: shortLived, enrolment } = r.body;
    await waitFor(async () => (await admin.exists(enrolTokenKey(shortLived))) === 0, { timeoutMs: 5000, what: 'the token key expired' });
    await assert.rejects(redeemEnrolment(urlOf('enrol'), shortLived, 5000), (e: { code?: string }) => e.code === 'ENROLMENT_TOKEN_INVALID');
    await waitFor(async () => !(await aclUsers()).includes(enrolment.redisUser), { timeoutMs: 10_000, what: 'the expired enrolment\'s user deleted' });
    const list = (await op('GET', '/api/operator/worker-enrolments')).body.enrolments;
    assert.equal(list.find((e: { workerId: string }) => e.workerId === enrolment.workerId).status, 'expired');
  });

  it('the bootstrap user may only GETDEL sri:enrol:* keys; an enrolled worker\'s user only its own worker keys', async () => {
    const boot = connect(urlOf('enrol'), { readyCheck: false });
    await admin.set('sri:orgs:probe', 'x');
    for (const [cmd, ...args] of [['GET', 'sri:enrol:x'], ['GETDEL', 'sri:orgs'], ['GETDEL', keys.enrolments], ['GETDEL', 'sri:enrolx'], ['HGETALL', keys.enrolments],
      ['SCAN', '0'], ['KEYS', '*'], ['EVAL', "return redis.call('GETDEL', KEYS[1])", '1', 'sri:enrol:x'], ['SET', 'sri:enrol:x', '1'], ['LPUSH', 'sri:org:x:jobs', '{}'],
      ['PING'], ['INFO'], ['ACL', 'WHOAMI'], ['PUBLISH', 'sri:control', 'x']] as const) {
      await assert.rejects(boot.call(cmd, ...args), /NOPERM/, `${cmd} ${args.join(' ')}`);
    }
    assert.equal(await boot.getdel('sri:enrol:unknown'), null, 'GETDEL of its keys is all it has');
    assert.equal(await admin.get('sri:orgs:probe'), 'x');

    // A worker's own user: the keys of workers, its own only; the revocation list, read only.
    const { token: t } = (await op('POST', '/api/operator/worker-enrolments', { name: 'probe' })).body;
    const creds = await redeemEnrolment(urlOf('enrol'), t, 5000);
    const own = connect(`redis://${creds.username}:${creds.password}@127.0.0.1:${redisServer.port}`);
    await own.set(keys.workerHeartbeat(creds.workerId), String(Date.now()));
    assert.equal(await own.hget(keys.workersRevoked, creds.workerId), null);
    await assert.rejects(own.set(keys.workerHeartbeat(enrolledId), '1'), /NOPERM/, 'another worker\'s heartbeat');
    await assert.rejects(own.hset(keys.workerStats(enrolledId), 'totalJobs', '0'), /NOPERM/, 'another worker\'s stats');
    await assert.rejects(own.hdel(keys.workersRevoked, creds.workerId), /NOPERM/, 'lifting a revocation');
    await assert.rejects(own.get(enrolTokenKey(t)), /NOPERM/, 'enrolment tokens');
    await assert.rejects(own.call('ACL', 'SETUSER', creds.username, '+@all'), /NOPERM/);
  });

  it('puts an enrolled worker\'s Redis user back when Redis lost it (a restart without the ACL file)', async () => {
    const { enrolment } = (await op('POST', '/api/operator/worker-enrolments', { name: 'lost' })).body;
    await admin.call('ACL', 'DELUSER', enrolment.redisUser);
    await waitFor(async () => (await aclUsers()).includes(enrolment.redisUser), { timeoutMs: 10_000, what: 'the user put back' });
  });

  it('revoking the worker kills its connections: it takes no job pushed afterwards and exits 77 saying "worker revoked"', async () => {
    const w = enrolled!;
    const username = workerAclUsername(enrolledId);
    const r = await op('POST', `/api/operator/workers/${enrolledId}/revoke`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.worker.enforced, true);
    assert.ok(!(await aclUsers()).includes(username), 'its Redis user is deleted');
    assert.equal(await clientsOf(username), 0, 'its connections are killed');
    assert.ok(await admin.hget(keys.workersRevoked, enrolledId));
    const jobId = await runJob();
    assert.equal(await w.exited, EXIT_CODE_REVOKED, w.output().slice(-2000));
    assert.match(w.output(), /worker revoked/);
    assert.equal(await status(jobId), 'queued', 'the job pushed after the revocation was taken by nobody');
    const list = (await op('GET', '/api/operator/worker-enrolments')).body.enrolments;
    assert.equal(list.find((e: { workerId: string }) => e.workerId === enrolledId).status, 'revoked');
    // Revoking again answers the same; an id nobody knows is WORKER_NOT_FOUND.
    assert.equal((await op('POST', `/api/operator/workers/${enrolledId}/revoke`)).body.worker.revokedAt, r.body.worker.revokedAt);
    const unknown = await op('POST', '/api/operator/workers/nobody-here/revoke');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'WORKER_NOT_FOUND');
    // The reconciliation does not bring a revoked worker's user back (another user lost meanwhile shows it ran).
    const { enrolment: other } = (await op('POST', '/api/operator/worker-enrolments', { name: 'witness' })).body;
    await admin.call('ACL', 'DELUSER', other.redisUser);
    await waitFor(async () => (await aclUsers()).includes(other.redisUser), { timeoutMs: 10_000, what: 'a reconciliation' });
    assert.ok(!(await aclUsers()).includes(username));
  });
});
