/**
 * Blockers on the control plane (docs/scripts.md "Blockers", docs/webhooks.md): a result whose attempt met a blocker
 * is recorded with it, GET /api/jobs/{id} shows it, and a webhook subscribed to `job.blocked` gets one delivery per
 * attempt with the blocker's kind and URL — a retried attempt's too (its `retrying` result), while the job keeps the
 * last blocker seen; results without one (older workers) announce nothing more, and a
 * malformed blocker is dropped, never the result with it. Real redis-server, S3 server, PGlite and a local receiver.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { startTestRedis, startTestS3, TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { openTestDatabase } from '../support/database.ts';

const logger = createLogger({ name: 'job-blocked-test', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

describe('job.blocked: the control plane records a result\'s blocker, shows it and announces it', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3Server: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  let redis: Redis;
  let blobStore: BlobStore;
  let api: ApiHandle;
  let receiver: Server;
  let receiverUrl = '';
  const received: Array<{ path: string; event: string; body: string }> = [];
  const user = { token: '', orgId: '', userId: '' };

  const http = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(api.url + path, {
      method, headers: { authorization: `Bearer ${user.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  const newJob = async (): Promise<string> => {
    const r = await http('POST', '/api/run', { providerId: 'demo' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.jobId as string;
  };
  const result = (jobId: string, status: 'done' | 'failed' | 'retrying', extra: Record<string, unknown> = {}): ResultMessage => ({
    jobId, orgId: user.orgId, userId: user.userId, providerId: 'demo', success: status === 'done', status, duration: 10, attempt: 1,
    workerId: 'worker-t', finishedAt: new Date().toISOString(),
    ...(status === 'failed' ? { error: { code: 'SCRIPT_ERROR', message: 'boom' } } : {}),
    ...(status === 'retrying' ? { error: { code: 'NAVIGATION_ERROR', message: 'net::ERR_FAILED' } } : {}),
    files: { log: `s3://sri-results/results/${user.orgId}/${user.userId}/${jobId}/execution.log`, screenshots: [] },
    ...extra,
  } as ResultMessage);
  const publish = (msg: ResultMessage) => redis.publish(keys.orgDone(msg.orgId), JSON.stringify(msg));
  const at = (path: string) => received.filter((r) => r.path === path);

  before(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => { body += c; });
      req.on('end', () => {
        received.push({ path: req.url ?? '/', event: String(req.headers['x-sri-event'] ?? ''), body });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    [redisServer, s3Server] = await Promise.all([startTestRedis(), startTestS3()]);
    db = await openTestDatabase();
    await migrate(db);
    await seedDemoProvider(db);
    redis = createRedis(redisServer.url);
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
      PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent', WEBHOOK_RETRY_BASE_MS: '50', WEBHOOK_ALLOW_PRIVATE: 'true',
    });
    blobStore = new BlobStore(createS3Client(config));
    api = await startApi(config, { db, redis, blobStore, logger });
    const r = await fetch(`${api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `blocked-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'a', orgName: 'Org blocked' }),
    });
    const reg = await r.json() as { token: string; user: { id: string }; org: { id: string } };
    Object.assign(user, { token: reg.token, orgId: reg.org.id, userId: reg.user.id });
    assert.equal((await http('POST', '/api/providers/demo/connect', { cookies: [] })).status, 200);
    const flow = await http('POST', '/api/flows', { providerId: 'demo', version: '1.0.0', name: 'F', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }] });
    assert.equal(flow.status, 201, JSON.stringify(flow.body));
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`)).status, 200);
  });

  after(async () => {
    await api?.close();
    redis?.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
    await Promise.all([redisServer?.stop(), s3Server?.close()]);
  });

  it('delivers job.blocked once per attempt with the kind and URL, records the blocker and shows it on GET /api/jobs/{id}', async () => {
    const hook = await http('POST', '/api/webhooks', { url: `${receiverUrl}/blocked`, events: ['job.blocked'] });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const all = await http('POST', '/api/webhooks', { url: `${receiverUrl}/all`, events: ['*'] });
    assert.equal(all.status, 201);

    const blocker = { kind: 'rate-limit', url: 'http://127.0.0.1:3100/blockers/rate-limit', evidence: 'HTTP status 429' };
    const blockedJob = await newJob();
    await publish(result(blockedJob, 'failed', { blocker }));
    const [got] = await waitFor(() => (at('/blocked').length ? at('/blocked') : undefined), { what: 'job.blocked at /blocked' });
    assert.equal(got!.event, 'job.blocked');
    const payload = JSON.parse(got!.body);
    assert.equal(payload.event, 'job.blocked');
    assert.equal(payload.result.jobId, blockedJob);
    assert.deepEqual(payload.result.blocker, blocker);
    // The * webhook gets job.failed and job.blocked for the attempt.
    await waitFor(() => at('/all').length === 2, { what: 'job.failed and job.blocked at *' });
    assert.deepEqual(at('/all').map((r) => r.event).sort(), ['job.blocked', 'job.failed']);

    const read = await http('GET', `/api/jobs/${blockedJob}`);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.job.blocker, blocker);

    // The same result again is not announced twice.
    await publish(result(blockedJob, 'failed', { blocker }));
    const clean = await newJob();
    await publish(result(clean, 'done'));
    await waitFor(() => at('/all').length === 3, { what: 'job.done of the job without a blocker' });
    assert.equal(at('/blocked').length, 1, 'one job.blocked for the attempt; none for a result without a blocker');
    assert.equal((await http('GET', `/api/jobs/${clean}`)).body.job.blocker, null);

    for (const id of [hook.body.webhook.id, all.body.webhook.id]) assert.equal((await http('DELETE', `/api/webhooks/${id}`)).status, 204);
  });

  it('announces each retried attempt\'s blocker (status retrying) once, and the job keeps the last blocker seen after a clean attempt', async () => {
    const hook = await http('POST', '/api/webhooks', { url: `${receiverUrl}/retried`, events: ['*'] });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const path = '/retried';
    const jobId = await newJob();
    const rateLimit = { kind: 'rate-limit', url: 'http://127.0.0.1:3100/blockers/rate-limit', evidence: 'HTTP status 429' };
    const maintenance = { kind: 'maintenance', url: 'http://127.0.0.1:3100/blockers/maintenance', evidence: 'page text: "under maintenance" (HTTP status 503)' };

    // Attempt 1 blocked and retried: job.blocked alone, the job retrying with that blocker. The worker's retryJob sets
    // the status key and publishes the attempt's result in one step; the API shows the key's status until final.
    await redis.set(keys.jobStatus(jobId), 'retrying');
    await publish(result(jobId, 'retrying', { attempt: 1, blocker: rateLimit }));
    await waitFor(() => at(path).length === 1, { what: 'job.blocked of attempt 1' });
    const first = JSON.parse(at(path)[0]!.body);
    assert.equal(first.event, 'job.blocked');
    assert.equal(first.result.status, 'retrying');
    assert.equal(first.result.attempt, 1);
    assert.deepEqual(first.result.blocker, rateLimit);
    const retrying = (await http('GET', `/api/jobs/${jobId}`)).body.job;
    assert.equal(retrying.status, 'retrying');
    assert.equal(retrying.attempt, 1);
    assert.equal(retrying.error?.code, 'NAVIGATION_ERROR');
    assert.deepEqual(retrying.blocker, rateLimit);

    // The same announcement again (a duplicate publish) is not delivered twice; attempt 2 blocked by another page is.
    await publish(result(jobId, 'retrying', { attempt: 1, blocker: rateLimit }));
    await publish(result(jobId, 'retrying', { attempt: 2, blocker: maintenance }));
    await waitFor(() => at(path).length === 2, { what: 'job.blocked of attempt 2' });
    const second = JSON.parse(at(path)[1]!.body);
    assert.equal(second.event, 'job.blocked');
    assert.equal(second.result.attempt, 2);
    assert.deepEqual(second.result.blocker, maintenance);
    assert.deepEqual((await http('GET', `/api/jobs/${jobId}`)).body.job.blocker, maintenance);

    // Attempt 3 meets none and finishes: job.done only; the job shows the last blocker seen (attempt 2's).
    await publish(result(jobId, 'done', { attempt: 3 }));
    await waitFor(() => at(path).length === 3, { what: 'job.done of attempt 3' });
    const done = JSON.parse(at(path)[2]!.body);
    assert.equal(done.event, 'job.done');
    assert.equal(done.result.attempt, 3);
    const final = (await http('GET', `/api/jobs/${jobId}`)).body.job;
    assert.equal(final.status, 'done');
    assert.equal(final.attempt, 3);
    assert.deepEqual(final.blocker, maintenance);

    // A retrying result without a blocker announces nothing (no worker sends one; an older one might).
    const plain = await newJob();
    await redis.set(keys.jobStatus(plain), 'retrying');
    await publish(result(plain, 'retrying', { attempt: 1 }));
    await waitFor(async () => (await http('GET', `/api/jobs/${plain}`)).body.job.error?.code === 'NAVIGATION_ERROR' || undefined, { what: 'the plain retrying result recorded' });
    await publish(result(plain, 'done', { attempt: 2 }));
    await waitFor(() => at(path).length === 4, { what: 'job.done of the plain job' });
    assert.deepEqual(at(path).map((r) => JSON.parse(r.body).event), ['job.blocked', 'job.blocked', 'job.done', 'job.done']);
    assert.equal((await http('GET', `/api/jobs/${plain}`)).body.job.blocker, null);
    assert.equal((await http('DELETE', `/api/webhooks/${hook.body.webhook.id}`)).status, 204);
  });

  it('records a result whose blocker is malformed, without the blocker', async () => {
    const jobId = await newJob();
    await publish(result(jobId, 'done', { blocker: { kind: 'weather', url: 'x', evidence: 'rain' } }));
    const job = await waitFor(async () => { const r = await http('GET', `/api/jobs/${jobId}`); return r.body.job.status === 'done' ? r.body.job : undefined; }, { what: 'the result recorded' });
    assert.equal(job.blocker, null);
  });
});
