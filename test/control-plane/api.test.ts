/**
 * The control plane over HTTP against real services — redis-server, s3rver and, per suite, one database backend:
 * PGlite (in memory) and a PostgreSQL server started by the test. The same assertions run on both.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { loadApiConfig, type ApiConfig } from '../../src/control-plane/config.ts';
import { listMigrations, migrate, openDatabase, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { recordResultMessage } from '../../src/control-plane/results/listener.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client, s3Uri } from '../../src/shared/s3.ts';
import { JobMessage, type ResultMessage } from '../../src/shared/schemas.ts';
import { verifyScript } from '../../src/shared/signing.ts';
import { decodeSession, transportKeyring } from '../../src/shared/transport-secrets.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { startTestRedis, startTestS3, TEST_SIGNING_SECRET, waitFor, TEST_JWT_SECRET } from '../support/services.ts';
import { startTestPostgres, type TestPostgres } from '../support/postgres.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { openTestDatabase } from '../support/database.ts';

const JWT_SECRET = TEST_JWT_SECRET;
const logger = createLogger({ name: 'api-test', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

interface Res { status: number; body: any; headers: Headers }

function client(base: () => string) {
  return async (method: string, path: string, opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Res> => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.raw !== undefined) { body = opts.raw; headers['content-type'] ??= 'application/json'; }
    else if (opts.body !== undefined) { body = JSON.stringify(opts.body); headers['content-type'] = 'application/json'; }
    const r = await fetch(base() + path, { method, headers, body });
    const text = await r.text();
    let json: unknown = text;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, body: json, headers: r.headers };
  };
}

const demoSteps = [
  { type: 'navigate', url: 'http://127.0.0.1:3100/login' },
  { type: 'fill', selector: '#user', value: 'alice' },
  { type: 'fill', selector: '#password', secretRef: 'portalPassword' },
  { type: 'click', selector: 'button[type=submit]' },
  { type: 'screenshot' },
  { type: 'extract', name: 'invoices', selector: 'table tr', fields: { number: 'td.number' } },
];

function backendSuite(backend: 'pglite' | 'postgres') {
  describe(`control plane API on ${backend}`, () => {
    let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
    let s3Server: Awaited<ReturnType<typeof startTestS3>>;
    let pgServer: TestPostgres | undefined;
    let db: Database;
    let redis: Redis;
    let blobStore: BlobStore;
    let config: ApiConfig;
    let api: ApiHandle;
    const http = client(() => api.url);

    // Two organisations, each with one user.
    const a = { email: `alice-${randomUUID()}@example.com`, password: 'correct-horse-42', token: '', userId: '', orgId: '' };
    const b = { email: `bob-${randomUUID()}@example.com`, password: 'battery-staple-7', token: '', userId: '', orgId: '' };
    let flowA1 = '';
    let jobA = '';

    before(async () => {
      [redisServer, s3Server, pgServer] = await Promise.all([
        startTestRedis(), startTestS3(), backend === 'postgres' ? startTestPostgres() : Promise.resolve(undefined),
      ]);
      db = await openDatabase(pgServer ? { databaseUrl: await pgServer.createDatabase() } : {});
      assert.deepEqual(await migrate(db), listMigrations().map((f) => f.replace(/\.sql$/, '')));
      assert.deepEqual(await migrate(db), [], 'a second migrate applies nothing');
      // Only `sri up` registers demo (migration 0005); these tests run its flows.
      await seedDemoProvider(db);
      redis = createRedis(redisServer.url);
      config = loadApiConfig({
        JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
        PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent',
      });
      blobStore = new BlobStore(createS3Client(config));
      api = await startApi(config, { db, redis, blobStore, logger });
    });

    after(async () => {
      await api?.close();
      redis?.disconnect();
      blobStore?.client.destroy();
      await db?.close();
      await Promise.all([redisServer?.stop(), s3Server?.close(), pgServer?.stop()]);
    });

    it('registers users and organisations, logs in and answers /api/me', async () => {
      for (const [u, org] of [[a, 'Org A'], [b, 'Org B']] as const) {
        const r = await http('POST', '/api/auth/register', { body: { email: u.email, password: u.password, name: 'User', orgName: org } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.equal(r.body.user.email, u.email);
        assert.equal(r.body.org.name, org);
        assert.equal(r.body.user.orgId, r.body.org.id);
        assert.equal(await redis.sismember(keys.orgs, r.body.org.id), 1, 'registration adds the org to sri:orgs');
        Object.assign(u, { userId: r.body.user.id, orgId: r.body.org.id });
      }
      const login = await http('POST', '/api/auth/login', { body: { email: a.email.toUpperCase(), password: a.password } });
      assert.equal(login.status, 200);
      a.token = login.body.token;
      b.token = (await http('POST', '/api/auth/login', { body: { email: b.email, password: b.password } })).body.token;
      const me = await http('GET', '/api/me', { token: a.token });
      assert.equal(me.status, 200);
      assert.deepEqual(me.body, { user: { id: a.userId, email: a.email, name: 'User', orgId: a.orgId, role: 'admin' }, org: { id: a.orgId, name: 'Org A' } });
      const stored = await db.asSystem((tx) => tx.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [a.userId]));
      assert.match(stored[0]!.password_hash, /^\$argon2id\$/);
    });

    it('refuses wrong passwords, missing and forged tokens', async () => {
      const bad = await http('POST', '/api/auth/login', { body: { email: a.email, password: 'wrong-password-1' } });
      assert.equal(bad.status, 401);
      assert.equal(bad.body.error.code, 'INVALID_CREDENTIALS');
      assert.equal((await http('GET', '/api/me')).body.error.code, 'UNAUTHENTICATED');
      const [h, p] = a.token.split('.');
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
      for (const token of [none, `${h}.${p}.AAAA`, 'garbage']) {
        const r = await http('GET', '/api/me', { token });
        assert.equal(r.status, 401);
        assert.equal(r.body.error.code, 'TOKEN_INVALID');
      }
    });

    it('refuses weak passwords, duplicate e-mails and malformed or invalid bodies with clear JSON errors', async () => {
      const weak = await http('POST', '/api/auth/register', { body: { email: 'w@example.com', password: 'short1', name: 'W', orgName: 'W' } });
      assert.equal(weak.status, 400);
      assert.equal(weak.body.error.code, 'WEAK_PASSWORD');
      assert.equal((await http('POST', '/api/auth/register', { body: { email: 'w@example.com', password: 'aaaaaaaaaaaa1', name: 'W', orgName: 'W' } })).body.error.code, 'WEAK_PASSWORD');
      const dup = await http('POST', '/api/auth/register', { body: { email: a.email, password: 'another-pass-99', name: 'X', orgName: 'X' } });
      assert.equal(dup.status, 409);
      assert.equal(dup.body.error.code, 'EMAIL_TAKEN');
      const malformed = await http('POST', '/api/auth/register', { raw: '{"email": "x@example.com", ' });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.error.code, 'MALFORMED_BODY');
      const invalid = await http('POST', '/api/auth/register', { body: { email: 'not-an-email', password: 'x' } });
      assert.equal(invalid.status, 400);
      assert.equal(invalid.body.error.code, 'VALIDATION_FAILED');
      const fields = invalid.body.error.details.map((d: { field: string }) => d.field);
      for (const f of ['email', 'name', 'orgName']) assert.ok(fields.includes(f), `details name ${f}: ${JSON.stringify(fields)}`);
      const big = await http('POST', '/api/auth/login', { raw: JSON.stringify({ email: 'x'.repeat(1_100_000), password: 'x' }) });
      assert.equal(big.status, 413);
      assert.equal(big.body.error.code, 'PAYLOAD_TOO_LARGE');
      const poisoned = await http('POST', '/api/auth/login', { raw: '{"email":"a@b.c","password":"x","__proto__":{"admin":true}}' });
      assert.equal(poisoned.status, 400);
      assert.equal(poisoned.body.error.code, 'MALFORMED_BODY');
      const notObject = await http('POST', '/api/auth/login', { raw: '[1,2]' });
      assert.equal(notObject.body.error.code, 'VALIDATION_FAILED');
      const nf = await http('GET', '/api/nope');
      assert.equal(nf.status, 404);
      assert.equal(nf.body.error.code, 'ROUTE_NOT_FOUND');
      for (const r of [weak, dup, malformed, invalid, big, nf]) assert.ok(!JSON.stringify(r.body).includes('    at '), 'no stack trace');
    });

    it('lists the seeded providers', async () => {
      const r = await http('GET', '/api/providers', { token: a.token });
      assert.equal(r.status, 200);
      const byId = Object.fromEntries(r.body.providers.map((p: { id: string }) => [p.id, p]));
      // Pacing and per-account concurrency at their defaults: none, one run at a time (docs/providers.md, docs/queue.md).
      const { pacing, maxConcurrentPerAccount, ...rest } = byId['demo'];
      assert.deepEqual(rest, { id: 'demo', name: 'demo', displayName: 'Demo supplier portal', allowedHosts: ['127.0.0.1', 'localhost'] });
      assert.equal(maxConcurrentPerAccount, 1);
      assert.ok(pacing === undefined || pacing === null || typeof pacing === 'object', `pacing ${JSON.stringify(pacing)}`);
      assert.deepEqual(byId['sri'].allowedHosts, ['srienlinea.sri.gob.ec', '*.sri.gob.ec']);
      assert.deepEqual(byId['cargill'].allowedHosts, ['*.cargill.com']);
    });

    it('connects, lists and disconnects a provider session (Redis key with TTL, record in the database)', async () => {
      const cookies = [{ name: 'portal_session', value: 'secret-cookie-value', domain: '127.0.0.1', path: '/' }];
      const r = await http('POST', '/api/providers/demo/connect', { token: a.token, body: { cookies, credentials: { portalPassword: 'pw-123' } } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.providerId, 'demo');
      assert.equal(r.body.connected, true);
      assert.ok(Date.parse(r.body.expiresAt) > Date.now() + 6 * 24 * 3600 * 1000);
      const key = keys.session(a.orgId, a.userId, 'demo');
      // Sealed in Redis (docs/security.md "Sessions"): neither the cookie nor the credential is there in clear.
      const raw = (await redis.get(key))!;
      assert.ok(raw.startsWith('sri-enc:v1:') && !raw.includes('secret-cookie-value') && !raw.includes('pw-123'));
      const session = decodeSession(transportKeyring(config), key, raw);
      assert.deepEqual(session.cookies, cookies);
      assert.deepEqual(session.credentials, { portalPassword: 'pw-123' });
      const ttl = await redis.ttl(key);
      assert.ok(ttl > 604_000 && ttl <= 604_800, `ttl ${ttl}`);
      const list = await http('GET', '/api/providers/connected', { token: a.token });
      assert.deepEqual(list.body.connections.map((c: { providerId: string }) => c.providerId), ['demo']);
      assert.deepEqual((await http('GET', '/api/providers/connected', { token: b.token })).body.connections, [], 'org B sees none of A\'s connections');

      // Connect and disconnect cargill to see DELETE remove both the key and the record.
      await http('POST', '/api/providers/cargill/connect', { token: a.token, body: { cookies: [] } });
      assert.equal(await redis.exists(keys.session(a.orgId, a.userId, 'cargill')), 1);
      const del = await http('DELETE', '/api/providers/cargill/connect', { token: a.token });
      assert.deepEqual(del.body, { providerId: 'cargill', connected: false });
      assert.equal(await redis.exists(keys.session(a.orgId, a.userId, 'cargill')), 0);
      assert.equal((await http('GET', '/api/providers/connected', { token: a.token })).body.connections.length, 1);
      assert.equal((await http('POST', '/api/providers/nope/connect', { token: a.token, body: { cookies: [] } })).body.error.code, 'PROVIDER_NOT_FOUND');
    });

    it('creates flows (compiled, signed, uploaded), lists, gets and activates one per provider', async () => {
      const r = await http('POST', '/api/flows', { token: a.token, body: { providerId: 'demo', version: '1.0.0', name: 'Invoices', steps: demoSteps } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const flow = r.body.flow;
      flowA1 = flow.id;
      assert.equal(flow.active, false);
      assert.equal(flow.scriptKey, `scripts/${a.orgId}/demo/1.0.0.js`, 'under the organisation\'s own prefix');
      const detail = await http('GET', `/api/flows/${flow.id}`, { token: a.token });
      assert.equal(verifyScript(detail.body.flow.script, flow.scriptHash, flow.signature, TEST_SIGNING_SECRET), 'ok');
      assert.equal((await blobStore.get(config.s3ScriptsBucket, flow.scriptKey))?.toString(), detail.body.flow.script);
      assert.deepEqual(detail.body.flow.steps, demoSteps);

      const dup = await http('POST', '/api/flows', { token: a.token, body: { providerId: 'demo', version: '1.0.0', name: 'Again', steps: demoSteps } });
      assert.equal(dup.status, 409);
      assert.equal(dup.body.error.code, 'FLOW_VERSION_EXISTS');
      const semverBad = await http('POST', '/api/flows', { token: a.token, body: { providerId: 'demo', version: 'one', name: 'x', steps: demoSteps } });
      assert.equal(semverBad.body.error.code, 'FLOW_INVALID');
      const unknown = await http('POST', '/api/flows', { token: a.token, body: { providerId: 'demo', version: '9.0.0', name: 'x', steps: [{ type: 'click', selector: 'a' }, { type: 'exec' }] } });
      assert.equal(unknown.status, 400);
      assert.match(unknown.body.error.message, /steps\[1\]: unknown step type "exec"/);
      const host = await http('POST', '/api/flows', { token: a.token, body: { providerId: 'demo', version: '9.0.0', name: 'x', steps: [{ type: 'navigate', url: 'https://evil.example/' }] } });
      assert.equal(host.body.error.code, 'FLOW_INVALID');
      assert.match(host.body.error.message, /allowedHosts/);

      const v2 = (await http('POST', '/api/flows', { token: a.token, body: { providerId: 'demo', version: '1.1.0', name: 'Invoices v2', steps: demoSteps.slice(0, 2) } })).body.flow;
      assert.equal((await http('POST', `/api/flows/${v2.id}/activate`, { token: a.token })).body.flow.active, true);
      const act = await http('POST', `/api/flows/${flowA1}/activate`, { token: a.token, raw: '' }); // Content-Type: application/json, empty body
      assert.equal(act.status, 200);
      assert.equal(act.body.flow.active, true);
      const flows = (await http('GET', '/api/flows', { token: a.token })).body.flows;
      assert.equal(flows.length, 2);
      assert.deepEqual(flows.filter((f: { active: boolean }) => f.active).map((f: { id: string }) => f.id), [flowA1], 'exactly one active flow per provider');

      // Another organisation may use the same provider and version: its script has a key of its own, under its own
      // prefix — the same key shape whether or not A used that version first, so B's key tells nothing about A.
      const bFlow = await http('POST', '/api/flows', { token: b.token, body: { providerId: 'demo', version: '1.0.0', name: 'B', steps: demoSteps.slice(0, 1) } });
      assert.equal(bFlow.status, 201);
      assert.equal(bFlow.body.flow.scriptKey, `scripts/${b.orgId}/demo/1.0.0.js`);
      assert.notEqual(bFlow.body.flow.scriptKey, flow.scriptKey);
      assert.equal((await blobStore.get(config.s3ScriptsBucket, flow.scriptKey))?.toString(), detail.body.flow.script, 'A\'s script is not overwritten');
      assert.equal(await blobStore.exists(config.s3ScriptsBucket, 'scripts/demo/1.0.0.js'), false, 'no shared key any more');
    });

    it('runs: records the job, pushes a valid signed message, and honours Idempotency-Key', async () => {
      const r = await http('POST', '/api/run', { token: a.token, body: { providerId: 'demo', metadata: { month: '2026-10' } } });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.status, 'queued');
      jobA = r.body.jobId;
      const raw = await redis.lindex(keys.orgJobs(a.orgId), 0);
      const msg = JobMessage.parse(JSON.parse(raw!));
      assert.equal(msg.jobId, jobA);
      assert.equal(msg.orgId, a.orgId);
      assert.equal(msg.userId, a.userId);
      assert.equal(msg.providerName, 'demo');
      assert.equal(msg.flowId, flowA1);
      assert.equal(msg.scriptKey, `scripts/${a.orgId}/demo/1.0.0.js`);
      assert.equal(msg.attempt, 1);
      assert.ok(msg.traceId);
      assert.deepEqual(msg.allowedHosts, ['127.0.0.1', 'localhost']);
      assert.deepEqual(msg.metadata, { month: '2026-10' });
      assert.equal(verifyScript(msg.scriptContent!, msg.scriptHash, msg.signature, TEST_SIGNING_SECRET), 'ok');
      assert.equal(await redis.get(keys.jobStatus(jobA)), 'queued');
      assert.equal(await redis.sismember(keys.orgs, a.orgId), 1);
      const status = await http('GET', `/api/jobs/${jobA}/status`, { token: a.token });
      assert.deepEqual(status.body, { jobId: jobA, status: 'queued' });

      const headers = { 'idempotency-key': `key-${randomUUID()}` };
      const first = await http('POST', '/api/run', { token: a.token, headers, body: { providerId: 'demo' } });
      assert.equal(first.status, 202);
      const again = await http('POST', '/api/run', { token: a.token, headers, body: { providerId: 'demo' } });
      assert.equal(again.status, 200);
      assert.equal(again.body.jobId, first.body.jobId);
      const conflict = await http('POST', '/api/run', { token: a.token, headers, body: { providerId: 'demo', metadata: { other: true } } });
      assert.equal(conflict.status, 409);
      assert.equal(conflict.body.error.code, 'IDEMPOTENCY_CONFLICT');
      assert.equal(await redis.llen(keys.orgJobs(a.orgId)), 2, 'the replay pushed nothing');

      // Concurrent requests with one key make one job.
      const racing = { 'idempotency-key': `race-${randomUUID()}` };
      const all = await Promise.all(Array.from({ length: 5 }, () => http('POST', '/api/run', { token: a.token, headers: racing, body: { providerId: 'demo' } })));
      assert.deepEqual(new Set(all.map((x) => x.status)).has(202), true);
      assert.equal(new Set(all.map((x) => x.body.jobId)).size, 1, JSON.stringify(all.map((x) => x.body)));
      assert.equal(await redis.llen(keys.orgJobs(a.orgId)), 3);
      await redis.del(keys.orgJobs(a.orgId));
    });

    it('refuses to run without a session, without an active flow, or with a tampered flow', async () => {
      const noSession = await http('POST', '/api/run', { token: b.token, body: { providerId: 'demo' } });
      assert.equal(noSession.status, 409);
      assert.equal(noSession.body.error.code, 'PROVIDER_NOT_CONNECTED');
      await http('POST', '/api/providers/demo/connect', { token: b.token, body: { cookies: [] } });
      const noFlow = await http('POST', '/api/run', { token: b.token, body: { providerId: 'demo' } });
      assert.equal(noFlow.body.error.code, 'NO_ACTIVE_FLOW');

      await http('POST', '/api/providers/sri/connect', { token: a.token, body: { cookies: [] } });
      const f = (await http('POST', '/api/flows', { token: a.token, body: { providerId: 'sri', version: '1.0.0', name: 'SRI', steps: [{ type: 'navigate', url: 'https://srienlinea.sri.gob.ec/' }] } })).body.flow;
      await http('POST', `/api/flows/${f.id}/activate`, { token: a.token });
      await db.withOrg(a.orgId, (tx) => tx.query("UPDATE flows SET script = script || '\nawait fetch(\"https://evil\");' WHERE id = $1", [f.id]));
      const tampered = await http('POST', '/api/run', { token: a.token, body: { providerId: 'sri' } });
      assert.equal(tampered.status, 500);
      assert.equal(tampered.body.error.code, 'FLOW_TAMPERED');
      assert.equal(await redis.llen(keys.orgJobs(a.orgId)), 0, 'nothing was enqueued');
    });

    it('isolates organisations: 404 on the other\'s flows and jobs, nothing of theirs in lists', async () => {
      for (const path of [`/api/flows/${flowA1}`, `/api/jobs/${jobA}`, `/api/jobs/${jobA}/status`]) {
        const r = await http('GET', path, { token: b.token });
        assert.equal(r.status, 404, path);
        assert.equal(r.body.error.code, 'NOT_FOUND');
      }
      assert.equal((await http('POST', `/api/flows/${flowA1}/activate`, { token: b.token })).status, 404);
      const flowsB = (await http('GET', '/api/flows', { token: b.token })).body.flows;
      assert.ok(flowsB.every((f: { id: string }) => f.id !== flowA1));
      const jobsB = await http('GET', '/api/jobs', { token: b.token });
      assert.equal(jobsB.body.total, 0);
      assert.deepEqual(jobsB.body.jobs, []);
      const jobsA = await http('GET', '/api/jobs?page=1&pageSize=1', { token: a.token });
      assert.equal(jobsA.body.total, 3);
      assert.equal(jobsA.body.jobs.length, 1);
      assert.equal(jobsA.body.pageSize, 1);
      assert.equal((await http('GET', '/api/jobs?page=3&pageSize=1', { token: a.token })).body.jobs[0].id, jobA, 'newest first');
      assert.equal((await http('GET', '/api/jobs?pageSize=1000', { token: a.token })).body.error.code, 'VALIDATION_FAILED');
    });

    it('enforces row-level security even for queries without an organisation filter', async () => {
      const seen = await db.withOrg(b.orgId, async (tx) => ({
        flows: await tx.query<{ org_id: string }>('SELECT * FROM flows'),
        jobs: await tx.query('SELECT * FROM jobs'),
        users: await tx.query<{ id: string }>('SELECT * FROM users'),
        orgs: await tx.query<{ id: string }>('SELECT * FROM organisations'),
        role: await tx.query<{ rolsuper: boolean; rolbypassrls: boolean; u: string }>('SELECT current_user AS u, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user'),
      }));
      assert.ok(seen.flows.length >= 1 && seen.flows.every((f) => f.org_id === b.orgId));
      assert.equal(seen.jobs.length, 0);
      assert.deepEqual(seen.users.map((u) => u.id), [b.userId]);
      assert.deepEqual(seen.orgs.map((o) => o.id), [b.orgId]);
      assert.deepEqual(seen.role, [{ u: 'sri_app', rolsuper: false, rolbypassrls: false }]);
      const updated = await db.withOrg(b.orgId, (tx) => tx.query('UPDATE flows SET name = $1 WHERE id = $2 RETURNING id', ['hijacked', flowA1]));
      assert.equal(updated.length, 0, 'cannot update another organisation\'s row');
      await assert.rejects(db.withOrg(b.orgId, (tx) => tx.query("INSERT INTO organisations (id, name) VALUES ('x-org', 'X')")), /row-level security/);
      await assert.rejects(db.withOrg(b.orgId, (tx) => tx.query('INSERT INTO jobs (id, org_id, user_id, provider_id, flow_id, flow_version, status) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [randomUUID(), a.orgId, a.userId, 'demo', flowA1, '1.0.0', 'queued'])), /row-level security/);
    });

    it('records a published result: status, worker, duration, error, files, parsed data and artifact links', async () => {
      const prefix = `results/${a.orgId}/${a.userId}/${jobA}`;
      const parsed = { invoices: [{ number: 'F-001' }] };
      await blobStore.put(config.s3ResultsBucket, `${prefix}/execution.log`, 'line 1\n');
      await blobStore.put(config.s3ResultsBucket, `${prefix}/screenshot-0.png`, Buffer.from([0x89, 0x50, 0x4e, 0x47]));
      await blobStore.put(config.s3ResultsBucket, `${prefix}/parsed-data.json`, JSON.stringify(parsed));
      const result: ResultMessage = {
        jobId: jobA, orgId: a.orgId, userId: a.userId, providerId: 'demo', success: true, status: 'done', duration: 1234, attempt: 1,
        workerId: 'worker-t', finishedAt: new Date().toISOString(),
        files: {
          log: s3Uri(config.s3ResultsBucket, `${prefix}/execution.log`),
          screenshots: [s3Uri(config.s3ResultsBucket, `${prefix}/screenshot-0.png`)],
          parsedData: s3Uri(config.s3ResultsBucket, `${prefix}/parsed-data.json`),
        },
      };
      // A result for A's job published on B's channel must not touch it; one for an unknown job is ignored.
      await redis.publish(keys.orgDone(b.orgId), JSON.stringify({ ...result, orgId: b.orgId, status: 'failed' }));
      await redis.publish(keys.orgDone(a.orgId), JSON.stringify({ ...result, jobId: randomUUID() }));
      await redis.publish(keys.orgDone(a.orgId), 'not json');
      await redis.publish(keys.orgDone(a.orgId), JSON.stringify(result));
      const job = await waitFor(async () => {
        const r = await http('GET', `/api/jobs/${jobA}`, { token: a.token });
        return r.body.job?.status === 'done' ? r.body.job : undefined;
      }, { what: 'job recorded as done' });
      assert.equal(job.workerId, 'worker-t');
      assert.equal(job.duration, 1234);
      assert.equal(job.error, null);
      assert.deepEqual(job.result, parsed);
      assert.deepEqual(job.artifacts.map((x: { kind: string; name: string }) => `${x.kind}:${x.name}`), ['log:execution.log', 'screenshot:screenshot-0.png', 'parsedData:parsed-data.json']);
      const log = await fetch(job.artifacts[0].url);
      assert.equal(log.status, 200);
      assert.equal(await log.text(), 'line 1\n');
      // Links are signed, short-lived and for one object: a SigV4 query signature over this object's path and the
      // host only, living ARTIFACT_URL_TTL_SECONDS (S3 refuses the signature on any other key; s3rver checks expiry but
      // not SigV4 signatures, so the scope is checked on the link itself), and S3 refuses it once expired.
      const link = new URL(job.artifacts[0].url);
      assert.equal(link.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
      assert.equal(link.searchParams.get('X-Amz-SignedHeaders'), 'host');
      assert.equal(link.searchParams.get('X-Amz-Expires'), String(config.artifactUrlTtlSeconds));
      assert.match(link.searchParams.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
      const logKey = decodeURIComponent(link.pathname).split('/').slice(2).join('/');
      assert.equal(`/${config.s3ResultsBucket}/${logKey}`, decodeURIComponent(link.pathname), 'the path names exactly one object');
      assert.ok(logKey.endsWith(`/${jobA}/execution.log`), logKey);
      const otherLink = new URL(job.artifacts[1].url);
      assert.notEqual(otherLink.searchParams.get('X-Amz-Signature'), link.searchParams.get('X-Amz-Signature'));
      const shortLived = await blobStore.presignGet(config.s3ResultsBucket, logKey, 1);
      assert.equal((await fetch(shortLived)).status, 200);
      await waitFor(async () => (await fetch(shortLived)).status === 403, { timeoutMs: 10_000, what: 'the 1 s link to expire' });

      // A later message never overwrites a final status.
      const late: ResultMessage = { ...result, status: 'failed', success: false, error: { code: 'SCRIPT_ERROR', message: 'late' } };
      const deps = { db, blobStore, resultsBucket: config.s3ResultsBucket, logger };
      assert.equal(await recordResultMessage(deps, a.orgId, late), 'already-final');
      assert.equal(await recordResultMessage(deps, a.orgId, { ...late, jobId: randomUUID() }), 'unknown-job');
      assert.equal(await recordResultMessage(deps, b.orgId, late), 'invalid', 'a message naming another org than its channel');
      const still = (await http('GET', `/api/jobs/${jobA}`, { token: a.token })).body.job;
      assert.equal(still.status, 'done');
      assert.equal(still.error, null);
    });

    it('serves /health, /ready and the OpenAPI document', async () => {
      assert.deepEqual((await http('GET', '/health')).body, { status: 'ok' });
      const ready = await http('GET', '/ready');
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      assert.deepEqual(ready.body, { status: 'ready', checks: { postgres: 'ok', redis: 'ok', s3: 'ok' } });
      const docJson = await http('GET', '/docs/json');
      assert.equal(docJson.status, 200);
      assert.ok(docJson.body.paths['/api/flows'].post);
      assert.ok(docJson.body.paths['/api/run'].post.requestBody);
      assert.equal((await http('GET', '/docs')).status < 400, true);
    });

    it('a read of an unfinished job records the result a worker left in Redis (status and detail agree)', async () => {
      const jobId = (await http('POST', '/api/run', { token: a.token, body: { providerId: 'demo' } })).body.jobId as string;
      await redis.set(keys.jobStatus(jobId), 'running');
      assert.equal((await http('GET', `/api/jobs/${jobId}/status`, { token: a.token })).body.status, 'running', 'live status from Redis');
      const result: ResultMessage = {
        jobId, orgId: a.orgId, userId: a.userId, providerId: 'demo', success: true, status: 'done', duration: 10, attempt: 1,
        workerId: 'worker-quiet', finishedAt: new Date().toISOString(), files: { log: s3Uri(config.s3ResultsBucket, `results/${a.orgId}/${a.userId}/${jobId}/execution.log`), screenshots: [] },
      };
      await redis.set(keys.jobStatus(jobId), 'done');
      await redis.set(keys.jobResult(jobId), JSON.stringify(result), 'EX', 3600); // no PUBLISH
      assert.deepEqual((await http('GET', `/api/jobs/${jobId}/status`, { token: a.token })).body, { jobId, status: 'done' });
      const job = (await http('GET', `/api/jobs/${jobId}`, { token: a.token })).body.job;
      assert.equal(job.status, 'done');
      assert.equal(job.workerId, 'worker-quiet');
    });

    it('reconciles on start a result published while no listener ran', async () => {
      const run = await http('POST', '/api/run', { token: a.token, body: { providerId: 'demo' } });
      const jobId = run.body.jobId as string;
      await api.close();
      const result: ResultMessage = {
        jobId, orgId: a.orgId, userId: a.userId, providerId: 'demo', success: false, status: 'failed', duration: 50, attempt: 1,
        workerId: 'worker-offline', finishedAt: new Date().toISOString(), error: { code: 'SESSION_NOT_FOUND', message: 'Session not found' },
        files: { log: s3Uri(config.s3ResultsBucket, `results/${a.orgId}/${a.userId}/${jobId}/execution.log`), screenshots: [] },
      };
      // What a worker does: status, result key, publish — with nobody subscribed.
      await redis.set(keys.jobStatus(jobId), 'failed');
      await redis.set(keys.jobResult(jobId), JSON.stringify(result), 'EX', 3600);
      assert.equal(await redis.publish(keys.orgDone(a.orgId), JSON.stringify(result)), 0, 'nobody listened');
      const before = await db.withOrg(a.orgId, (tx) => tx.query<{ status: string }>('SELECT status FROM jobs WHERE id = $1', [jobId]));
      assert.equal(before[0]!.status, 'queued');

      api = await startApi(config, { db, redis, blobStore, logger });
      // Read the row directly: an HTTP read would itself pick the result up from Redis.
      const row = await db.withOrg(a.orgId, (tx) => tx.query<{ status: string; worker_id: string }>('SELECT status, worker_id FROM jobs WHERE id = $1', [jobId]));
      assert.deepEqual(row, [{ status: 'failed', worker_id: 'worker-offline' }], 'recorded by the start-up reconciliation');
      const job = (await http('GET', `/api/jobs/${jobId}`, { token: a.token })).body.job;
      assert.equal(job.status, 'failed');
      assert.deepEqual(job.error, { code: 'SESSION_NOT_FOUND', message: 'Session not found' });
      assert.equal(job.workerId, 'worker-offline');
    });
  });
}

backendSuite('pglite');
backendSuite('postgres');

describe('control plane API edges', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3Server: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  // One PGlite for the suite: it takes seconds to start.
  before(async () => {
    [redisServer, s3Server, db] = await Promise.all([startTestRedis(), startTestS3(), openTestDatabase()]);
    await migrate(db);
    // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
    await seedDemoProvider(db);
  });
  after(async () => {
    await db?.close();
    await Promise.all([redisServer?.stop(), s3Server?.close()]);
  });

  it('rate-limits /api/auth/* and reports an unreachable S3 on /ready', async () => {
    const redis = createRedis(redisServer.url);
    const deadPort = await freePort();
    const config = loadApiConfig({
      JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: `http://127.0.0.1:${deadPort}`,
      PORT: '0', AUTH_RATE_LIMIT_MAX: '3', LOG_LEVEL: 'silent',
    });
    const blobStore = new BlobStore(createS3Client(config));
    const api = await startApi(config, { db, redis, blobStore, logger });
    const http = client(() => api.url);
    try {
      const codes = [];
      for (let i = 0; i < 4; i++) codes.push((await http('POST', '/api/auth/login', { body: { email: 'n@example.com', password: 'x' } })).status);
      assert.deepEqual(codes, [401, 401, 401, 429]);
      const limited = await http('POST', '/api/auth/login', { body: { email: 'n@example.com', password: 'x' } });
      assert.equal(limited.body.error.code, 'RATE_LIMITED');
      const ready = await http('GET', '/ready');
      assert.equal(ready.status, 503);
      assert.equal(ready.body.checks.postgres, 'ok');
      assert.equal(ready.body.checks.redis, 'ok');
      assert.match(ready.body.checks.s3, /^fail/);
      assert.deepEqual(ready.body.error.details.failing, ['s3']);
    } finally {
      await api.close();
      redis.disconnect();
      blobStore.client.destroy();
    }
  });

  it('marks the job failed and answers 503 when the job cannot be pushed to Redis', async () => {
    // A Redis user that may do everything but LPUSH: the run's checks pass and only the push fails.
    const admin = createRedis(redisServer.url);
    await admin.call('ACL', 'SETUSER', 'nopush', 'on', 'nopass', '~*', '&*', '+@all', '-lpush');
    admin.disconnect();
    const redis = createRedis(redisServer.url.replace('redis://', 'redis://nopush:x@'));
    const config = loadApiConfig({
      JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint, PORT: '0', LOG_LEVEL: 'silent',
    });
    const blobStore = new BlobStore(createS3Client(config));
    const api = await startApi(config, { db, redis, blobStore, logger });
    const http = client(() => api.url);
    try {
      const token = (await http('POST', '/api/auth/register', { body: { email: 'p@example.com', password: 'push-fails-123', name: 'P', orgName: 'P' } })).body.token;
      await http('POST', '/api/providers/demo/connect', { token, body: { cookies: [] } });
      const flow = (await http('POST', '/api/flows', { token, body: { providerId: 'demo', version: '1.0.0', name: 'f', steps: demoSteps } })).body.flow;
      await http('POST', `/api/flows/${flow.id}/activate`, { token });
      const r = await http('POST', '/api/run', { token, body: { providerId: 'demo' } });
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'SERVICE_UNAVAILABLE');
      const jobs = (await http('GET', '/api/jobs', { token })).body.jobs;
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0].status, 'failed');
      assert.equal(jobs[0].error.code, 'SERVICE_UNAVAILABLE');
    } finally {
      await api.close();
      redis.disconnect();
      blobStore.client.destroy();
    }
  });
});
