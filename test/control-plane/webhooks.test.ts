/**
 * Webhooks end to end: the API (redis-server, the embedded S3 server, and per suite PGlite in memory or a PostgreSQL
 * server) records results published on Redis, and a local receiver (node http on 127.0.0.1, random port) gets them
 * signed, retried and in order. The receiver verifies deliveries as a real one would: with the Standard Webhooks
 * library (`standardwebhooks`) and the secret the API returned. The receiver is on loopback, so the API runs with
 * WEBHOOK_ALLOW_PRIVATE=true (the on-premise setting); what the default refuses is in webhook-targets.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import semver from 'semver';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { loadApiConfig, type ApiConfig } from '../../src/control-plane/config.ts';
import { migrate, openDatabase, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { decryptSecret, encryptSecret, LEGACY_SIGNATURE_REMOVED_IN, signStandardWebhook } from '../../src/control-plane/webhooks/secrets.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { startTestRedis, startTestS3, TEST_SIGNING_SECRET, waitFor, TEST_JWT_SECRET } from '../support/services.ts';
import { startTestPostgres, type TestPostgres } from '../support/postgres.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { openTestDatabase } from '../support/database.ts';

const JWT_SECRET = TEST_JWT_SECRET;
const logger = createLogger({ name: 'webhooks-test', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

interface Received { path: string; headers: IncomingHttpHeaders; body: string; answered: number }

/** Headers as a receiver's framework hands them to the library: one string per name. */
function plainHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v ?? '')]));
}

/** The receiver's check with the Standard Webhooks library, as docs/webhooks.md shows it: the payload, or a throw. */
function verify(secret: string, headers: IncomingHttpHeaders, rawBody: string): unknown {
  return new Webhook(secret).verify(rawBody, plainHeaders(headers));
}

/** The deprecated X-SRI-Signature check (docs/webhooks.md "The X-SRI-Signature header"), still sent until 0.3.0. */
function verifyLegacy(secret: string, headers: IncomingHttpHeaders, rawBody: string): boolean {
  const timestamp = String(headers['x-sri-timestamp'] ?? '');
  const signature = String(headers['x-sri-signature'] ?? '');
  const expected = `sha256=${createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`;
  const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300;
  return fresh && signature.length === expected.length && timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
}

function backendSuite(backend: 'pglite' | 'postgres') {
  describe(`webhooks on ${backend}`, () => {
    let pgServer: TestPostgres | undefined;
    let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
    let s3Server: Awaited<ReturnType<typeof startTestS3>>;
    let db: Database;
    let redis: Redis;
    let blobStore: BlobStore;
    let config: ApiConfig;
    let api: ApiHandle;
    let receiver: Server;
    let receiverUrl = '';
    const received: Received[] = [];
    /** Per path: how many of its next requests answer 500. */
    const failNext = new Map<string, number>();

    const http = async (method: string, path: string, token: string, body?: unknown) => {
      const r = await fetch(api.url + path, {
        method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : undefined };
    };

    const users: Record<'a' | 'b', { token: string; orgId: string; userId: string }> = {
      a: { token: '', orgId: '', userId: '' }, b: { token: '', orgId: '', userId: '' },
    };

    /** A job of org A (POST /api/run), to publish results for. */
    const newJob = async (): Promise<string> => {
      const r = await http('POST', '/api/run', users.a.token, { providerId: 'demo' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      return r.body.jobId as string;
    };

    const result = (jobId: string, status: 'done' | 'failed'): ResultMessage => ({
      jobId, orgId: users.a.orgId, userId: users.a.userId, providerId: 'demo', success: status === 'done', status, duration: 10, attempt: 1,
      workerId: 'worker-t', finishedAt: new Date().toISOString(),
      ...(status === 'failed' ? { error: { code: 'SCRIPT_ERROR', message: 'boom' } } : {}),
      files: { log: `s3://sri-results/results/${users.a.orgId}/${users.a.userId}/${jobId}/execution.log`, screenshots: [] },
    });

    const publish = (msg: ResultMessage) => redis.publish(keys.orgDone(msg.orgId), JSON.stringify(msg));
    const deliveredTo = (path: string) => received.filter((r) => r.path === path && r.answered === 200);

    before(async () => {
      receiver = createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => { body += c; });
        req.on('end', () => {
          const path = req.url ?? '/';
          const fails = failNext.get(path) ?? 0;
          const answered = fails > 0 ? 500 : 200;
          if (fails > 0) failNext.set(path, fails - 1);
          received.push({ path, headers: req.headers, body, answered });
          res.writeHead(answered, { 'content-type': 'text/plain' }).end(answered === 200 ? 'ok' : 'try later');
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

      [redisServer, s3Server, pgServer] = await Promise.all([
        startTestRedis(), startTestS3(), backend === 'postgres' ? startTestPostgres() : Promise.resolve(undefined),
      ]);
      db = await (pgServer ? openDatabase({ databaseUrl: await pgServer.createDatabase() }) : openTestDatabase());
      await migrate(db);
      // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
      await seedDemoProvider(db);
      redis = createRedis(redisServer.url);
      config = loadApiConfig({
        JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
        PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent',
        WEBHOOK_MAX_ATTEMPTS: '4', WEBHOOK_RETRY_BASE_MS: '50', WEBHOOK_TIMEOUT_MS: '5000', WEBHOOK_ALLOW_PRIVATE: 'true',
      });
      blobStore = new BlobStore(createS3Client(config));
      api = await startApi(config, { db, redis, blobStore, logger });

      for (const who of ['a', 'b'] as const) {
        const r = await fetch(`${api.url}/api/auth/register`, {
          method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: `${who}-${randomUUID()}@example.com`, password: 'correct-horse-42', name: who, orgName: `Org ${who}` }),
        });
        const reg = await r.json() as { token: string; user: { id: string }; org: { id: string } };
        users[who] = { token: reg.token, orgId: reg.org.id, userId: reg.user.id };
      }
      const a = users.a.token;
      assert.equal((await http('POST', '/api/providers/demo/connect', a, { cookies: [] })).status, 200);
      const flow = await http('POST', '/api/flows', a, { providerId: 'demo', version: '1.0.0', name: 'F', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }] });
      assert.equal(flow.status, 201, JSON.stringify(flow.body));
      assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, a)).status, 200);
    });

    after(async () => {
      await api?.close();
      redis?.disconnect();
      blobStore?.client.destroy();
      await db?.close();
      await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
      await Promise.all([redisServer?.stop(), s3Server?.close(), pgServer?.stop()]);
    });

    it('refuses URLs that are not http(s) and unknown events', async () => {
      for (const body of [
        { url: 'ftp://127.0.0.1/x', events: ['job.done'] },
        { url: 'http://user:pw@127.0.0.1/x', events: ['job.done'] },
        { url: 'not a url', events: ['job.done'] },
        { url: `${receiverUrl}/x`, events: ['job.started'] },
        { url: `${receiverUrl}/x`, events: [] },
      ]) {
        const r = await http('POST', '/api/webhooks', users.a.token, body);
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(r.body.error.code, 'VALIDATION_FAILED');
      }
    });

    it('POSTs a final result signed with the secret shown once, only to webhooks subscribed to its event', async () => {
      const created = await http('POST', '/api/webhooks', users.a.token, { url: `${receiverUrl}/signed`, events: ['job.done'] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const { secret, webhook } = created.body as { secret: string; webhook: { id: string; events: string[] } };
      // Standard Webhooks' form: whsec_ and the key in base64 (32 bytes).
      assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      assert.equal(Buffer.from(secret.slice(6), 'base64').length, 32);
      assert.deepEqual(webhook.events, ['job.done']);
      const all = await http('POST', '/api/webhooks', users.a.token, { url: `${receiverUrl}/all`, events: ['*'] });
      assert.equal(all.status, 201);

      // The secret is stored encrypted and never shown again.
      const stored = await db.asSystem((tx) => tx.query<{ secret_enc: string }>('SELECT secret_enc FROM webhooks WHERE id = $1', [webhook.id]));
      assert.ok(!stored[0]!.secret_enc.includes(secret.slice(6)), 'not in clear');
      assert.equal(decryptSecret(JWT_SECRET, stored[0]!.secret_enc), secret);
      const listed = await http('GET', '/api/webhooks', users.a.token);
      assert.ok(!JSON.stringify(listed.body).includes(secret.slice(6)));
      assert.deepEqual(listed.body.webhooks.map((w: { id: string }) => w.id), [webhook.id, all.body.webhook.id]);

      const failedJob = await newJob();
      await publish(result(failedJob, 'failed'));
      await waitFor(() => deliveredTo('/all').length === 1, { what: 'the failed result at the * webhook' });
      const doneJob = await newJob();
      await publish(result(doneJob, 'done'));
      const [got] = await waitFor(() => (deliveredTo('/signed').length ? deliveredTo('/signed') : undefined), { what: 'the done result at /signed' });
      assert.equal(deliveredTo('/signed').length, 1, 'job.done only: the failed result did not go there');
      // Standard Webhooks headers, verified by the library with the secret the API returned.
      assert.equal(got!.headers['webhook-id'], got!.headers['x-sri-delivery']);
      assert.match(String(got!.headers['webhook-timestamp']), /^\d{10}$/);
      assert.match(String(got!.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]{43}=$/);
      assert.deepEqual(verify(secret, got!.headers, got!.body), JSON.parse(got!.body), 'the signature verifies');
      const tampered = got!.body.replace('"done"', '"failed"');
      assert.notEqual(tampered, got!.body);
      assert.throws(() => verify(secret, got!.headers, tampered), WebhookVerificationError, 'a changed body does not verify');
      assert.throws(() => verify(`whsec_${Buffer.alloc(32, 7).toString('base64')}`, got!.headers, got!.body), WebhookVerificationError, 'another secret');
      assert.throws(() => verify(secret, { ...got!.headers, 'webhook-id': randomUUID() }, got!.body), WebhookVerificationError, 'another message id');
      // The deprecated header, kept for one release, still verifies the old way.
      assert.ok(verifyLegacy(secret, got!.headers, got!.body), 'X-SRI-Signature verifies');
      assert.ok(!verifyLegacy('whsec_wrong', got!.headers, got!.body));
      assert.ok(!verifyLegacy(secret, got!.headers, tampered));
      assert.equal(got!.headers['x-sri-event'], 'job.done');
      assert.equal(got!.headers['content-type'], 'application/json');
      const payload = JSON.parse(got!.body);
      assert.equal(payload.event, 'job.done');
      assert.equal(payload.id, got!.headers['x-sri-delivery']);
      assert.equal(payload.result.jobId, doneJob);
      assert.equal(payload.result.status, 'done');

      // The same result again (a duplicate message) is not delivered twice.
      await publish(result(doneJob, 'done'));
      await waitFor(() => deliveredTo('/all').length === 2, { what: 'the done result at *' });
      const deliveries = await http('GET', `/api/webhooks/${webhook.id}/deliveries`, users.a.token);
      assert.equal(deliveries.body.deliveries.length, 1);

      for (const id of [webhook.id, all.body.webhook.id]) assert.equal((await http('DELETE', `/api/webhooks/${id}`, users.a.token)).status, 204);
    });

    it('delivers a result that a GET of the job recorded before the listener did (no message published)', async () => {
      const created = await http('POST', '/api/webhooks', users.a.token, { url: `${receiverUrl}/read-first`, events: ['*'] });
      assert.equal(created.status, 201);
      const jobId = await newJob();
      // As a worker leaves it when its published message is missed: result and status keys, no message.
      await redis.mset(keys.jobResult(jobId), JSON.stringify(result(jobId, 'done')), keys.jobStatus(jobId), 'done');
      const read = await http('GET', `/api/jobs/${jobId}`, users.a.token);
      assert.equal(read.body.job.status, 'done', JSON.stringify(read.body));
      const [got] = await waitFor(() => (deliveredTo('/read-first').length ? deliveredTo('/read-first') : undefined), { what: 'the result recorded by the read' });
      assert.equal(JSON.parse(got!.body).result.jobId, jobId);
      assert.equal((await http('DELETE', `/api/webhooks/${created.body.webhook.id}`, users.a.token)).status, 204);
    });

    it('retries with backoff: a receiver that fails twice gets the delivery on the 3rd attempt, and the list shows it', async () => {
      const created = await http('POST', '/api/webhooks', users.a.token, { url: `${receiverUrl}/flaky`, events: ['job.done', 'job.failed'] });
      const id = created.body.webhook.id as string;
      failNext.set('/flaky', 2);
      const jobId = await newJob();
      await publish(result(jobId, 'failed'));
      const d = await waitFor(async () => {
        const r = await http('GET', `/api/webhooks/${id}/deliveries`, users.a.token);
        return r.body.deliveries.find((x: { status: string }) => x.status === 'delivered');
      }, { what: 'the delivery to be delivered' });
      assert.equal(d.attempts, 3);
      assert.equal(d.responseStatus, 200);
      assert.equal(d.jobId, jobId);
      assert.equal(d.event, 'job.failed');
      assert.equal(d.lastError, null);
      assert.ok(d.deliveredAt);
      const tries = received.filter((r) => r.path === '/flaky');
      assert.deepEqual(tries.map((r) => r.answered), [500, 500, 200]);
      assert.equal(new Set(tries.map((r) => r.headers['x-sri-delivery'])).size, 1, 'the same delivery each time');
      assert.equal(new Set(tries.map((r) => r.headers['webhook-id'])).size, 1, 'the same webhook-id each time: receivers deduplicate on it');
      assert.equal((await http('DELETE', `/api/webhooks/${id}`, users.a.token)).status, 204);
    });

    it('records a delivery as failed after the last attempt, with the receiver\'s status and an error class, not its answer', async () => {
      const created = await http('POST', '/api/webhooks', users.a.token, { url: `${receiverUrl}/down`, events: ['*'] });
      const id = created.body.webhook.id as string;
      failNext.set('/down', 100);
      await publish(result(await newJob(), 'done'));
      const d = await waitFor(async () => {
        const r = await http('GET', `/api/webhooks/${id}/deliveries`, users.a.token);
        return r.body.deliveries.find((x: { status: string }) => x.status === 'failed');
      }, { what: 'the delivery to fail' });
      assert.equal(d.attempts, 4, 'WEBHOOK_MAX_ATTEMPTS');
      assert.equal(d.responseStatus, 500);
      assert.equal(d.errorClass, 'http-status');
      assert.match(d.lastError, /status outside 2xx/);
      assert.ok(!JSON.stringify(d).includes('try later'), 'the receiver\'s text is not kept');
      assert.equal((await http('DELETE', `/api/webhooks/${id}`, users.a.token)).status, 204);
      failNext.delete('/down');
    });

    it('delivers two results to one webhook in the order they were recorded, even when the first needs a retry', async () => {
      const created = await http('POST', '/api/webhooks', users.a.token, { url: `${receiverUrl}/ordered`, events: ['*'] });
      const id = created.body.webhook.id as string;
      const [first, second] = [await newJob(), await newJob()];
      failNext.set('/ordered', 1); // the first result's first attempt fails; the second must still come after it
      await publish(result(first, 'done'));
      await waitFor(async () => (await http('GET', `/api/webhooks/${id}/deliveries`, users.a.token)).body.deliveries.length === 1, { what: 'the first delivery recorded' });
      await publish(result(second, 'failed'));
      await waitFor(() => deliveredTo('/ordered').length === 2, { what: 'both results' });
      const order = received.filter((r) => r.path === '/ordered').map((r) => `${JSON.parse(r.body).result.jobId === first ? 'first' : 'second'}:${r.answered}`);
      assert.deepEqual(order, ['first:500', 'first:200', 'second:200']);
      assert.equal((await http('DELETE', `/api/webhooks/${id}`, users.a.token)).status, 204);
    });

    it('keeps organisations apart: B cannot list, read the deliveries of, or delete A\'s webhooks', async () => {
      const created = await http('POST', '/api/webhooks', users.a.token, { url: `${receiverUrl}/a-only`, events: ['*'] });
      const id = created.body.webhook.id as string;
      assert.deepEqual((await http('GET', '/api/webhooks', users.b.token)).body.webhooks, []);
      const del = await http('DELETE', `/api/webhooks/${id}`, users.b.token);
      assert.equal(del.status, 404);
      assert.equal(del.body.error.code, 'NOT_FOUND');
      assert.equal((await http('GET', `/api/webhooks/${id}/deliveries`, users.b.token)).status, 404);
      assert.deepEqual((await http('GET', '/api/webhooks', users.a.token)).body.webhooks.map((w: { id: string }) => w.id), [id], 'still there for A');
      // A result of B's organisation never reaches A's webhook: deliveries are looked up under the result's organisation.
      const rows = await db.withOrg(users.b.orgId, (tx) => tx.query('SELECT id FROM webhooks'));
      assert.deepEqual(rows, [], 'row-level security hides A\'s rows from B');
      assert.equal((await http('DELETE', `/api/webhooks/${id}`, users.a.token)).status, 204);
      assert.equal((await http('DELETE', `/api/webhooks/${id}`, users.a.token)).status, 404);
      assert.equal((await http('GET', '/api/webhooks', users.a.token)).body.webhooks.length, 0);
    });

    it('encrypts secrets so that another key cannot read them', () => {
      const enc = encryptSecret(JWT_SECRET, 'whsec_abc');
      assert.equal(decryptSecret(JWT_SECRET, enc), 'whsec_abc');
      assert.throws(() => decryptSecret('another-secret-another-secret-another', enc));
      assert.notEqual(encryptSecret(JWT_SECRET, 'whsec_abc'), enc, 'a fresh IV every time');
    });
  });
}

describe('webhook signatures', () => {
  it('signs secrets made before base64 (whsec_ + 64 hex characters) so that the library verifies them too', () => {
    const hexSecret = `whsec_${'0123456789abcdef'.repeat(4)}`;
    const body = '{"id":"d1","event":"job.done"}';
    const timestamp = String(Math.floor(Date.now() / 1000));
    const headers = { 'webhook-id': 'd1', 'webhook-timestamp': timestamp, 'webhook-signature': signStandardWebhook(hexSecret, 'd1', timestamp, body) };
    assert.deepEqual(new Webhook(hexSecret).verify(body, headers), JSON.parse(body));
    // The library's own signature over the same message is the one sent.
    assert.equal(new Webhook(hexSecret).sign('d1', new Date(Number(timestamp) * 1000), body), headers['webhook-signature']);
  });

  it(`stops sending X-SRI-Signature in ${LEGACY_SIGNATURE_REMOVED_IN}, as docs/webhooks.md announces`, () => {
    const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    const deliver = readFileSync(new URL('../../src/control-plane/webhooks/deliver.ts', import.meta.url), 'utf8');
    const docs = readFileSync(new URL('../../docs/webhooks.md', import.meta.url), 'utf8');
    assert.match(docs, new RegExp(`X-SRI-Signature[^\\n]*(deprecated|Deprecated)[\\s\\S]*removed in ${LEGACY_SIGNATURE_REMOVED_IN.replace(/\./g, '\\.')}`));
    if (/'x-sri-signature'/.test(deliver)) {
      assert.ok(semver.lt(version, LEGACY_SIGNATURE_REMOVED_IN),
        `version ${version}: remove the deprecated X-SRI-Signature and X-SRI-Timestamp headers (deliver.ts, secrets.ts, docs/webhooks.md)`);
    }
  });
});

backendSuite('pglite');
backendSuite('postgres');
