/**
 * The control side of the reliable queue over HTTP: admin role, cancel, retry, the admin dead-letter and quota
 * endpoints, priority and maxAttempts on runs. Real redis-server, s3rver and PGlite; the queue is the real
 * JobQueue on that Redis, and this file plays the worker with JobQueue.take/complete (the worker itself is tested
 * with the queue). Every test leaves no job queued, so `take` in the next one sees only its own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadApiConfig, type ApiConfig } from '../../src/control-plane/config.ts';
import { MIGRATIONS_DIR, migrate, openDatabase, type Database } from '../../src/control-plane/db/index.ts';
import { insertUser } from '../../src/control-plane/db/queries/accounts.ts';
import { failJob, insertJob } from '../../src/control-plane/db/queries/jobs.ts';
import { TokenService } from '../../src/control-plane/http/auth.ts';
import { recordResultMessage } from '../../src/control-plane/results/listener.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { JobQueue, type Taken } from '../../src/shared/queue/job-queue.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client, s3Uri } from '../../src/shared/s3.ts';
import { JobMessage, type ResultMessage } from '../../src/shared/schemas.ts';
import { verifyScript } from '../../src/shared/signing.ts';
import { startTestRedis, startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor, TEST_JWT_SECRET } from '../support/services.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { openTestDatabase } from '../support/database.ts';

const JWT_SECRET = TEST_JWT_SECRET;
const WORKER = 'reliability-test-worker';
const logger = createLogger({ name: 'reliability-test', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

interface Res { status: number; body: any }
interface Org { email: string; token: string; userId: string; orgId: string }

describe('reliability control API (cancel, retry, dead letters, quotas, admin role)', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3Server: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  let redis: Redis;
  let queue: JobQueue;
  let blobStore: BlobStore;
  let config: ApiConfig;
  let api: ApiHandle;
  const a: Org = { email: `admin-a-${randomUUID()}@example.com`, token: '', userId: '', orgId: '' };
  const b: Org = { email: `admin-b-${randomUUID()}@example.com`, token: '', userId: '', orgId: '' };
  let memberToken = '';
  let flowId = '';

  const http = async (method: string, path: string, token?: string, body?: unknown): Promise<Res> => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(api.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  const run = async (extra: Record<string, unknown> = {}): Promise<string> => {
    const r = await http('POST', '/api/run', a.token, { providerId: 'demo', metadata: { period: '2026-10' }, ...extra });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.jobId as string;
  };
  const jobOf = async (jobId: string) => (await http('GET', `/api/jobs/${jobId}`, a.token)).body.job;
  const waitStatus = (jobId: string, status: string) =>
    waitFor(async () => ((await jobOf(jobId))?.status === status ? true : undefined), { what: `job ${jobId} ${status}` });
  /** Takes the next job of any organisation (this file keeps only its own jobs queued). */
  const takeOne = async (): Promise<Taken> => waitFor(() => queue.take(WORKER), { what: 'a job to take' });
  const resultOf = (t: Taken, status: ResultMessage['status'], error?: ResultMessage['error']): ResultMessage => {
    const m = JobMessage.parse(JSON.parse(t.raw));
    return {
      jobId: m.jobId, orgId: m.orgId, userId: m.userId, providerId: m.providerId, success: status === 'done', status,
      duration: 5, attempt: m.attempt ?? 1, workerId: WORKER, finishedAt: new Date().toISOString(), ...(error ? { error } : {}),
      files: { log: s3Uri(config.s3ResultsBucket, `results/${m.orgId}/${m.userId}/${m.jobId}/execution.log`), screenshots: [] },
    };
  };

  before(async () => {
    [redisServer, s3Server] = await Promise.all([startTestRedis(), startTestS3()]);
    db = await openTestDatabase();
    await migrate(db);
    // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
    await seedDemoProvider(db);
    // These tests take and leave leases of one portal account at will (no worker runs): the account limit of the
    // queue (docs/queue.md "One run at a time per portal account", tested in test/shared/queue-accounts.test.ts) would
    // park each next job behind them.
    await db.asSystem((tx) => tx.query(`UPDATE providers SET max_concurrent_per_account = 100 WHERE id = 'demo'`));
    redis = createRedis(redisServer.url);
    queue = await JobQueue.connect(redis);
    config = loadApiConfig({
      JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
      PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent',
    });
    blobStore = new BlobStore(createS3Client(config));
    api = await startApi(config, { db, redis, blobStore, logger });

    for (const [o, name] of [[a, 'Org A'], [b, 'Org B']] as const) {
      const r = await http('POST', '/api/auth/register', undefined, { email: o.email, password: 'correct-horse-42', name: 'Admin', orgName: name });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      Object.assign(o, { token: r.body.token, userId: r.body.user.id, orgId: r.body.org.id });
    }
    // There is no endpoint that adds a member yet; one is inserted as an invitation would.
    const memberId = randomUUID();
    await db.withOrg(a.orgId, (tx) => insertUser(tx, {
      id: memberId, org_id: a.orgId, email: `member-${randomUUID()}@example.com`, name: 'Member', password_hash: 'x', role: 'member',
    }));
    memberToken = await new TokenService(JWT_SECRET, 3600).sign({ userId: memberId, orgId: a.orgId });

    assert.equal((await http('POST', '/api/providers/demo/connect', a.token, { cookies: [] })).status, 200);
    const flow = await http('POST', '/api/flows', a.token, {
      providerId: 'demo', version: '1.0.0', name: 'Invoices', maxAttempts: 4, steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }],
    });
    assert.equal(flow.status, 201, JSON.stringify(flow.body));
    assert.equal(flow.body.flow.maxAttempts, 4);
    flowId = flow.body.flow.id;
    assert.equal((await http('POST', `/api/flows/${flowId}/activate`, a.token)).status, 200);
  });

  after(async () => {
    await api?.close();
    redis?.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([redisServer?.stop(), s3Server?.close()]);
  });

  it('makes the registering user the admin; a member gets 403 FORBIDDEN from every admin endpoint', async () => {
    assert.equal((await http('GET', '/api/me', a.token)).body.user.role, 'admin');
    assert.equal((await http('GET', '/api/me', memberToken)).body.user.role, 'member');
    for (const [method, path, body] of [
      ['GET', '/api/admin/dlq'], ['GET', '/api/admin/dlq/1'], ['POST', '/api/admin/dlq/1/requeue'], ['DELETE', '/api/admin/dlq'],
      ['GET', '/api/admin/quota'], ['PUT', '/api/admin/quota', { maxConcurrent: 1 }],
    ] as const) {
      const r = await http(method, path, memberToken, body);
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.equal(r.body.error.code, 'FORBIDDEN');
      assert.match(r.body.error.message, /administrators of your organisation.*role is member/);
    }
    assert.equal((await http('GET', '/api/admin/dlq')).body.error.code, 'UNAUTHENTICATED');
    assert.deepEqual(await queue.getQuota(a.orgId), { maxConcurrent: null, perMinute: null }, 'the member\'s PUT changed nothing');
  });

  it('migration 0002 makes the first user of each existing organisation its admin', async () => {
    const old = tempDir('sri-mig-');
    const legacy = await openDatabase({});
    try {
      mkdirSync(join(old.path, 'm'));
      cpSync(join(MIGRATIONS_DIR, '0001_schema.sql'), join(old.path, 'm', '0001_schema.sql'));
      assert.deepEqual(await migrate(legacy, join(old.path, 'm')), ['0001_schema']);
      await legacy.asSystem(async (tx) => {
        await tx.query("INSERT INTO organisations (id, name) VALUES ('o1', 'One'), ('o2', 'Two')");
        await tx.query(`INSERT INTO users (id, org_id, email, name, password_hash, created_at) VALUES
          ('u1', 'o1', 'u1@x', 'U1', 'h', '2026-01-01'), ('u2', 'o1', 'u2@x', 'U2', 'h', '2026-02-01'), ('u3', 'o2', 'u3@x', 'U3', 'h', '2026-03-01')`);
      });
      assert.ok((await migrate(legacy)).includes('0002_roles_and_reliability'));
      const roles = await legacy.asSystem((tx) => tx.query<{ id: string; role: string }>('SELECT id, role FROM users ORDER BY id'));
      assert.deepEqual(roles, [{ id: 'u1', role: 'admin' }, { id: 'u2', role: 'member' }, { id: 'u3', role: 'admin' }]);
    } finally {
      await legacy.close();
      old.remove();
    }
  });

  it('carries priority and maxAttempts from the run (else the flow) into the job message and the job record', async () => {
    const high = await run({ priority: 'high', maxAttempts: 6 });
    const plain = await run();
    const messages = new Map<string, JobMessage>();
    for (let i = 0; i < 2; i++) {
      const t = await takeOne();
      const m = JobMessage.parse(JSON.parse(t.raw));
      messages.set(m.jobId, m);
      assert.equal(await queue.complete(t, resultOf(t, 'done')), 'recorded');
    }
    assert.equal(messages.get(high)?.priority, 'high');
    assert.equal(messages.get(high)?.maxAttempts, 6);
    assert.equal(messages.get(plain)?.priority, 'normal');
    assert.equal(messages.get(plain)?.maxAttempts, 4, 'the flow\'s maxAttempts');
    assert.equal(messages.get(high)?.attempt, 1);
    const row = await db.withOrg(a.orgId, (tx) => tx.query<{ priority: string; max_attempts: number }>('SELECT priority, max_attempts FROM jobs WHERE id = $1', [high]));
    assert.deepEqual(row, [{ priority: 'high', max_attempts: 6 }]);
    await Promise.all([waitStatus(high, 'done'), waitStatus(plain, 'done')]);

    for (const bad of [{ maxAttempts: 0 }, { maxAttempts: 11 }, { maxAttempts: 2.5 }, { priority: 'urgent' }]) {
      const r = await http('POST', '/api/run', a.token, { providerId: 'demo', ...bad });
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
    }
    const badFlow = await http('POST', '/api/flows', a.token, { providerId: 'demo', version: '9.9.9', name: 'x', maxAttempts: 20, steps: [] });
    assert.equal(badFlow.body.error.code, 'VALIDATION_FAILED');
  });

  it('cancels a queued job: 200 cancelled, recorded, never run; then 409 JOB_FINAL; 404 for another organisation', async () => {
    const jobId = await run();
    const other = await http('POST', `/api/jobs/${jobId}/cancel`, b.token);
    assert.equal(other.status, 404);
    assert.equal(other.body.error.code, 'NOT_FOUND');
    const r = await http('POST', `/api/jobs/${jobId}/cancel`, a.token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { jobId, status: 'cancelled' });
    const job = await jobOf(jobId);
    assert.equal(job.status, 'cancelled');
    assert.equal(job.error.code, 'CANCELLED');
    assert.ok(job.finishedAt);
    assert.equal(await queue.take(WORKER), undefined, 'the cancelled message never runs');
    const again = await http('POST', `/api/jobs/${jobId}/cancel`, a.token);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'JOB_FINAL');
    assert.equal((await http('POST', `/api/jobs/${randomUUID()}/cancel`, a.token)).status, 404);
  });

  it('cancels a running job with 202 cancelling; the job ends cancelled when its worker reports it', async () => {
    const jobId = await run();
    const taken = await takeOne();
    assert.equal(taken.jobId, jobId);
    const r = await http('POST', `/api/jobs/${jobId}/cancel`, a.token);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body, { jobId, status: 'cancelling' });
    assert.equal(await queue.isCancelled(jobId), true, 'the worker is told through the queue');
    // What the worker does next (tested with the worker): stop the job and report it cancelled.
    await queue.complete(taken, resultOf(taken, 'cancelled'));
    await waitStatus(jobId, 'cancelled');
    assert.equal((await http('POST', `/api/jobs/${jobId}/cancel`, a.token)).body.error.code, 'JOB_FINAL');
  });

  it('retries a failed job with the same id, attempt + 1 and a valid signature; refuses other statuses', async () => {
    const jobId = await run({ maxAttempts: 1 });
    const first = await takeOne();
    await queue.complete(first, resultOf(first, 'failed', { code: 'SCRIPT_ERROR', message: 'selector not found' }));
    await waitStatus(jobId, 'failed');
    assert.equal((await http('POST', `/api/jobs/${jobId}/retry`, b.token)).status, 404, 'another organisation');

    const r = await http('POST', `/api/jobs/${jobId}/retry`, a.token);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body, { jobId, status: 'queued', attempt: 2 });
    const job = await jobOf(jobId);
    assert.equal(job.status, 'queued');
    assert.equal(job.attempt, 2);
    assert.equal(job.error, null);
    const notNow = await http('POST', `/api/jobs/${jobId}/retry`, a.token);
    assert.equal(notNow.status, 409);
    assert.equal(notNow.body.error.code, 'JOB_NOT_RETRYABLE');

    const second = await takeOne();
    const m = JobMessage.parse(JSON.parse(second.raw));
    const original = JobMessage.parse(JSON.parse(first.raw));
    assert.equal(m.jobId, jobId);
    assert.equal(m.attempt, 2);
    assert.equal(second.attempt, 2);
    assert.equal(verifyScript(m.scriptContent!, m.scriptHash, m.signature, TEST_SIGNING_SECRET), 'ok');
    // A retry is a trace of its own (docs/observability.md "Traces"): only its traceparent differs.
    assert.match(m.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.notEqual(m.traceparent!.slice(3, 35), original.traceparent!.slice(3, 35), 'a new trace');
    assert.deepEqual({ ...m, attempt: 1, traceparent: original.traceparent }, original, 'the same message, next attempt');

    // The first attempt's failure is still in sri:job:{id}:result: reading it back (reconciler, job reads) does not
    // undo the retry, because the status key says the job runs again.
    assert.equal(JSON.parse((await redis.get(keys.jobResult(jobId)))!).status, 'failed');
    await api.listener.reconcile();
    assert.equal((await jobOf(jobId)).status, 'running', 'the second attempt runs (status key); the old failure is not recorded');
    // Nor does a progress message of the earlier attempt.
    const deps = { db, blobStore, resultsBucket: config.s3ResultsBucket, logger };
    assert.equal(await recordResultMessage(deps, a.orgId, { ...resultOf(first, 'retrying', { code: 'BROWSER_ERROR', message: 'old' }), success: false }), 'stale');
    assert.equal((await jobOf(jobId)).status, 'running');

    await queue.complete(second, resultOf(second, 'done'));
    await waitStatus(jobId, 'done');
    assert.equal((await jobOf(jobId)).attempt, 2);
    assert.equal((await http('POST', `/api/jobs/${jobId}/retry`, a.token)).body.error.code, 'JOB_NOT_RETRYABLE');
  });

  it('retries a job that failed because it was never pushed (Redis knows nothing of it)', async () => {
    const jobId = randomUUID();
    await db.withOrg(a.orgId, async (tx) => {
      await insertJob(tx, { id: jobId, orgId: a.orgId, userId: a.userId, providerId: 'demo', flowId, flowVersion: '1.0.0', traceId: 't', priority: 'high' });
      await failJob(tx, jobId, 'SERVICE_UNAVAILABLE', 'The job could not be queued: Redis is unreachable.');
    });
    assert.equal(await redis.exists(keys.jobStatus(jobId)), 0);
    const r = await http('POST', `/api/jobs/${jobId}/retry`, a.token);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const t = await takeOne();
    assert.equal(t.jobId, jobId);
    const m = JobMessage.parse(JSON.parse(t.raw));
    assert.equal(m.attempt, 2);
    assert.equal(m.priority, 'high');
    assert.equal(m.maxAttempts, 4, 'the flow\'s');
    await queue.complete(t, resultOf(t, 'done'));
    await waitStatus(jobId, 'done');
  });

  it('records retrying (not final) then dead with its error; a dead job can be retried', async () => {
    const jobId = await run({ maxAttempts: 2 });
    const t = await takeOne();
    assert.equal(t.jobId, jobId, 'the job just run is the one taken');
    // The take marks the job running a moment later (startJob): wait for it, so it cannot land after the retry below.
    await waitFor(async () => ((await redis.get(keys.jobStatus(jobId))) === 'running' ? true : undefined), { what: `job ${jobId} running` });
    const deps = { db, blobStore, resultsBucket: config.s3ResultsBucket, logger };
    const retrying = { ...resultOf(t, 'retrying', { code: 'BROWSER_ERROR', message: 'crashed' }), success: false };
    assert.equal(await recordResultMessage(deps, a.orgId, retrying), 'recorded');
    // The worker's retry step sets the status key too (retryJob-9.lua); GET /api/jobs/{id} shows that key for a job
    // that is not final yet.
    await redis.set(keys.jobStatus(jobId), 'retrying');
    let job = await jobOf(jobId);
    assert.equal(job.status, 'retrying');
    assert.equal(job.finishedAt, null);
    assert.equal((await http('POST', `/api/jobs/${jobId}/retry`, a.token)).body.error.code, 'JOB_NOT_RETRYABLE');
    const dead = { ...retrying, status: 'dead' as const, attempt: 2, error: { code: 'BROWSER_ERROR', message: 'attempts exhausted' } };
    await queue.complete(t, dead);
    await waitStatus(jobId, 'dead');
    job = await jobOf(jobId);
    assert.deepEqual(job.error, { code: 'BROWSER_ERROR', message: 'attempts exhausted' });
    assert.equal(job.attempt, 2);
    assert.equal(await recordResultMessage(deps, a.orgId, { ...dead, status: 'done', success: true, error: undefined }), 'already-final');

    const r = await http('POST', `/api/jobs/${jobId}/retry`, a.token);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.attempt, 3);
    const again = await takeOne();
    assert.equal(again.jobId, jobId);
    await queue.complete(again, resultOf(again, 'done'));
    await waitStatus(jobId, 'done');
  });

  it('lists, shows, requeues and purges dead letters through the API, each organisation seeing only its own', async () => {
    // A job of A that ran out of attempts: dead in Redis and PostgreSQL, its message in the dead-letter list.
    const jobId = await run();
    const t = await takeOne();
    const deadEntry = await queue.bury(t, 'attempts exhausted (BROWSER_ERROR)', resultOf(t, 'dead', { code: 'BROWSER_ERROR', message: 'attempts exhausted' }));
    assert.notEqual(deadEntry, 'late');
    await waitStatus(jobId, 'dead');
    const junkA = await queue.deadLetter(a.orgId, 'not json {', 'not JSON');
    const junkB = await queue.deadLetter(b.orgId, '{"jobId":1}', 'not a job: jobId must be a string');

    const listA = await http('GET', '/api/admin/dlq', a.token);
    assert.equal(listA.status, 200, JSON.stringify(listA.body));
    assert.deepEqual(new Set(listA.body.entries.map((e: { id: string }) => e.id)), new Set([deadEntry, junkA]));
    assert.equal(listA.body.hasMore, false);
    const shown = listA.body.entries.find((e: { id: string }) => e.id === deadEntry);
    assert.equal(shown.jobId, jobId);
    assert.equal(shown.orgId, a.orgId);
    assert.match(shown.reason, /attempts exhausted/);
    assert.ok(Date.parse(shown.at) > 0);
    const listB = await http('GET', '/api/admin/dlq', b.token);
    assert.deepEqual(listB.body.entries.map((e: { id: string }) => e.id), [junkB], 'B sees none of A\'s entries');
    const page1 = await http('GET', '/api/admin/dlq?limit=1', a.token);
    const page2 = await http('GET', '/api/admin/dlq?limit=1&offset=1', a.token);
    assert.equal(page1.body.entries.length, 1);
    assert.equal(page1.body.hasMore, true);
    assert.equal(page2.body.hasMore, false);
    assert.notEqual(page1.body.entries[0].id, page2.body.entries[0].id);
    assert.equal((await http('GET', '/api/admin/dlq?limit=500', a.token)).body.error.code, 'VALIDATION_FAILED');

    const one = await http('GET', `/api/admin/dlq/${junkA}`, a.token);
    assert.equal(one.status, 200);
    assert.equal(one.body.entry.raw, 'not json {');
    assert.equal(one.body.entry.truncated, false);
    for (const [method, path] of [['GET', `/api/admin/dlq/${junkA}`], ['POST', `/api/admin/dlq/${deadEntry}/requeue`]] as const) {
      const r = await http(method, path, b.token);
      assert.equal(r.status, 404, `${method} ${path} as B`);
      assert.equal(r.body.error.code, 'NOT_FOUND');
    }

    const requeued = await http('POST', `/api/admin/dlq/${deadEntry}/requeue`, a.token);
    assert.equal(requeued.status, 202, JSON.stringify(requeued.body));
    assert.equal(requeued.body.jobId, jobId);
    assert.equal((await jobOf(jobId)).status, 'queued', 'the record left dead');
    assert.equal((await http('GET', `/api/admin/dlq/${deadEntry}`, a.token)).status, 404, 'gone from the list');
    const back = await takeOne();
    assert.equal(back.jobId, jobId);
    await queue.complete(back, resultOf(back, 'done'));
    await waitStatus(jobId, 'done');

    const huge = await queue.deadLetter(a.orgId, JSON.stringify({ jobId: 'x', pad: 'p'.repeat(200_000) }), 'oversized');
    const cut = await http('GET', `/api/admin/dlq/${huge}`, a.token);
    assert.equal(cut.body.entry.truncated, true);
    const refused = await http('POST', `/api/admin/dlq/${huge}/requeue`, a.token);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'DLQ_ENTRY_TRUNCATED');

    const purgedB = await http('DELETE', '/api/admin/dlq', b.token);
    assert.deepEqual(purgedB.body, { purged: 1 });
    assert.deepEqual(new Set((await http('GET', '/api/admin/dlq', a.token)).body.entries.map((e: { id: string }) => e.id)), new Set([junkA, huge]), 'B\'s purge left A\'s');
    assert.deepEqual((await http('DELETE', '/api/admin/dlq', a.token)).body, { purged: 2 });
    assert.deepEqual((await http('GET', '/api/admin/dlq', a.token)).body.entries, []);
  });

  it('sets and reads the organisation\'s quotas (admin only, own organisation)', async () => {
    const put = await http('PUT', '/api/admin/quota', a.token, { maxConcurrent: 2, perMinute: 30 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body, { orgId: a.orgId, maxConcurrent: 2, perMinute: 30 });
    assert.deepEqual(await queue.getQuota(a.orgId), { maxConcurrent: 2, perMinute: 30 });
    const partial = await http('PUT', '/api/admin/quota', a.token, { perMinute: null });
    assert.deepEqual(partial.body, { orgId: a.orgId, maxConcurrent: 2, perMinute: null }, 'null removes, absent keeps');
    assert.deepEqual((await http('PUT', '/api/admin/quota', a.token, { maxConcurrent: 0 })).body.maxConcurrent, 0, '0 pauses');
    await http('PUT', '/api/admin/quota', a.token, { maxConcurrent: 2 });
    assert.deepEqual((await http('GET', '/api/admin/quota', a.token)).body, { orgId: a.orgId, maxConcurrent: 2, perMinute: null });
    assert.deepEqual((await http('GET', '/api/admin/quota', b.token)).body, { orgId: b.orgId, maxConcurrent: null, perMinute: null });
    for (const bad of [{ maxConcurrent: 1.5 }, { perMinute: -1 }, { maxConcurrent: 'many' }, { orgId: b.orgId, maxConcurrent: 1 }]) {
      const r = await http('PUT', '/api/admin/quota', a.token, bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
    }
    assert.deepEqual(await queue.getQuota(b.orgId), { maxConcurrent: null, perMinute: null });
    await queue.setQuota(a.orgId, { maxConcurrent: null, perMinute: null });
  });

  it('documents the new routes in the OpenAPI description', async () => {
    const paths = (await http('GET', '/docs/json')).body.paths;
    for (const [path, method] of [
      ['/api/jobs/{id}/cancel', 'post'], ['/api/jobs/{id}/retry', 'post'], ['/api/admin/dlq', 'get'], ['/api/admin/dlq', 'delete'],
      ['/api/admin/dlq/{entryId}', 'get'], ['/api/admin/dlq/{entryId}/requeue', 'post'], ['/api/admin/quota', 'get'], ['/api/admin/quota', 'put'],
    ] as const) assert.ok(paths[path]?.[method], `${method} ${path}`);
    assert.ok(paths['/api/run'].post.requestBody.content['application/json'].schema.properties.priority);
    assert.equal(await redis.exists(keys.orgJobs(a.orgId)), 0, 'nothing left queued');
  });
});
