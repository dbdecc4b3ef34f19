/**
 * Webhooks cannot be aimed inward (docs/webhooks.md "Where deliveries may go", docs/security.md): attacks on the
 * webhook API of a real API (redis-server, s3rver, PGlite in memory) with receivers on 127.0.0.1, random ports.
 *
 * Two stacks: `strict` (the default: public addresses only) and `onPrem` (WEBHOOK_ALLOW_PRIVATE=true, so that local
 * receivers can stand in for a public one where the attack is about something else: redirects, huge answers,
 * pinning). Both resolve webhook host names with an injected resolver (`.test` names that mean what the test says),
 * so no lookup leaves the machine.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadApiConfig, type ApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { insertUser } from '../../src/control-plane/db/queries/accounts.ts';
import { TokenService } from '../../src/control-plane/http/auth.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import type { Resolve } from '../../src/control-plane/webhooks/target.ts';
import { keys } from '../../src/shared/keys.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { startTestRedis, startTestS3, TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { openTestDatabase } from '../support/database.ts';

interface Stack {
  api: ApiHandle;
  db: Database;
  redis: Redis;
  config: ApiConfig;
  /** JSON log lines the API wrote. */
  logLines: Record<string, unknown>[];
  admin: { token: string; orgId: string; userId: string };
  member: { token: string };
  http(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Publishes a final result of a new job of the admin's organisation. */
  finishJob(status: 'done' | 'failed'): Promise<string>;
  /** The webhook's deliveries, as the API shows them. */
  deliveries(webhookId: string): Promise<any[]>;
  stop(): Promise<void>;
}

/** Host names the stacks resolve, and how often each was asked for. */
const dns = new Map<string, (call: number) => readonly string[]>();
const lookups = new Map<string, number>();
const resolve: Resolve = async (host) => {
  const n = (lookups.get(host) ?? 0) + 1;
  lookups.set(host, n);
  const answer = dns.get(host);
  if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return answer(n);
};

async function startStack(env: Record<string, string>): Promise<Stack> {
  const [redisServer, s3Server, db] = await Promise.all([startTestRedis(), startTestS3(), openTestDatabase()]);
  const redis = createRedis(redisServer.url);
  let api: ApiHandle | undefined;
  let blobStore: BlobStore | undefined;
  const stop = async () => {
    await api?.close();
    redis.disconnect();
    blobStore?.client.destroy();
    await db.close();
    await Promise.all([redisServer.stop(), s3Server.close()]);
  };
  try {
    return await startOn({ redisUrl: redisServer.url, s3Endpoint: s3Server.endpoint, db, redis, env, stop, started: (a, b) => { api = a; blobStore = b; } });
  } catch (e) {
    await stop();
    throw e;
  }
}

async function startOn(o: {
  redisUrl: string; s3Endpoint: string; db: Database; redis: Redis; env: Record<string, string>; stop: () => Promise<void>;
  started: (api: ApiHandle, blobStore: BlobStore) => void;
}): Promise<Stack> {
  const { db, redis } = o;
  await migrate(db);
  await seedDemoProvider(db); // only `sri up` registers the demo provider; its runs give these tests results to deliver
  const config = loadApiConfig({
    JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: o.redisUrl, S3_ENDPOINT: o.s3Endpoint,
    PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'info', WEBHOOK_MAX_ATTEMPTS: '2', WEBHOOK_RETRY_BASE_MS: '50',
    WEBHOOK_TIMEOUT_MS: '10000', ...o.env,
  });
  const blobStore = new BlobStore(createS3Client(config));
  const logLines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l) logLines.push(JSON.parse(l)); cb(); } });
  const logger = pino({ level: 'info' }, sink);
  const api = await startApi(config, { db, redis, blobStore, logger, webhookResolve: resolve });
  o.started(api, blobStore);

  const http = async (method: string, path: string, token: string, body?: unknown) => {
    const r = await fetch(api.url + path, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  const registered = await fetch(`${api.url}/api/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: `wt-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Admin', orgName: `Org ${randomUUID()}` }),
  });
  const reg = await registered.json() as { token: string; user: { id: string }; org: { id: string } };
  assert.equal(registered.status, 201, `${JSON.stringify(reg)} ${JSON.stringify(logLines.filter((l) => Number(l["level"]) >= 50))}`);
  const admin = { token: reg.token, orgId: reg.org.id, userId: reg.user.id };
  const memberId = randomUUID();
  await db.withOrg(admin.orgId, (tx) => insertUser(tx, {
    id: memberId, org_id: admin.orgId, email: `member-${randomUUID()}@example.com`, name: 'Member', password_hash: 'x', role: 'member',
  }));
  const member = { token: await new TokenService(TEST_JWT_SECRET, 3600).sign({ userId: memberId, orgId: admin.orgId }) };
  assert.equal((await http('POST', '/api/providers/demo/connect', admin.token, { cookies: [] })).status, 200);
  const flow = await http('POST', '/api/flows', admin.token, { providerId: 'demo', version: '1.0.0', name: 'F', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }] });
  assert.equal(flow.status, 201, JSON.stringify(flow.body));
  assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, admin.token)).status, 200);

  return {
    api, db, redis, config, logLines, admin, member, http,
    async finishJob(status) {
      const run = await http('POST', '/api/run', admin.token, { providerId: 'demo' });
      assert.equal(run.status, 202, JSON.stringify(run.body));
      const jobId = run.body.jobId as string;
      const msg: ResultMessage = {
        jobId, orgId: admin.orgId, userId: admin.userId, providerId: 'demo', success: status === 'done', status, duration: 10, attempt: 1,
        workerId: 'worker-t', finishedAt: new Date().toISOString(),
        ...(status === 'failed' ? { error: { code: 'SCRIPT_ERROR', message: 'boom' } } : {}),
        files: { log: `s3://sri-results/results/${admin.orgId}/${admin.userId}/${jobId}/execution.log`, screenshots: [] },
      };
      await redis.publish(keys.orgDone(admin.orgId), JSON.stringify(msg));
      return jobId;
    },
    async deliveries(webhookId) {
      const r = await http('GET', `/api/webhooks/${webhookId}/deliveries`, admin.token);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.deliveries as any[];
    },
    stop: o.stop,
  };
}

/** A receiver on 127.0.0.1 (random port) that records what reaches it and answers with `handler`. */
async function startReceiver(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const hits: { path: string; host: string | undefined; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => { body += c; });
    req.on('end', () => {
      hits.push({ path: req.url ?? '/', host: req.headers.host, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    hits, port, url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/** A delivery of `webhookId` that has finished (delivered or failed). */
async function finished(stack: Stack, webhookId: string, what: string) {
  return waitFor(async () => (await stack.deliveries(webhookId)).find((d) => d.status === 'delivered' || d.status === 'failed'), { what, timeoutMs: 30_000 });
}

describe('webhook targets', () => {
  let strict: Stack;
  let onPrem: Stack;
  let receiver: Receiver;

  before(async () => {
    receiver = await startReceiver((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'); });
    strict = await startStack({});
    onPrem = await startStack({ WEBHOOK_ALLOW_PRIVATE: 'true' });
  });

  // Every test leaves no webhook behind, even when it fails half-way: a later result would be delivered to it.
  afterEach(async () => {
    for (const s of [strict, onPrem]) {
      if (!s) continue;
      const listed = await s.http('GET', '/api/webhooks', s.admin.token);
      for (const w of listed.body?.webhooks ?? []) await s.http('DELETE', `/api/webhooks/${w.id}`, s.admin.token);
    }
  });

  after(async () => {
    await strict?.stop();
    await onPrem?.stop();
    await receiver?.close();
  });

  it('refuses loopback, private, metadata and other non-public addresses at registration, in every spelling', async () => {
    const cases: [string, string][] = [
      ['http://127.0.0.1:6379/', 'loopback'], // the embedded Redis
      ['http://127.0.0.1:9000/sri-results/', 'loopback'], // the embedded S3
      ['http://localhost:3000/api/operator/worker-enrolments', 'loopback'],
      ['http://LOCALHOST./x', 'loopback'], ['http://metrics.localhost:9464/metrics', 'loopback'],
      ['http://2130706433/', 'loopback'], // decimal
      ['http://0x7f000001/', 'loopback'], ['http://0x7f.1/', 'loopback'], // hex
      ['http://0177.0.0.1/', 'loopback'], ['http://127.1/', 'loopback'], ['http://%31%32%37.0.0.1/', 'loopback'],
      ['http://[::1]:3000/', 'loopback'], ['http://[::ffff:127.0.0.1]/', 'loopback'], ['http://[0:0:0:0:0:ffff:7f00:1]/', 'loopback'],
      ['http://[64:ff9b::7f00:1]/', 'loopback'],
      ['http://10.0.0.5/', 'private'], ['http://172.16.0.1/', 'private'], ['http://192.168.1.1:8080/', 'private'],
      ['http://[fd12:3456::1]/', 'private'], ['http://[2002:c0a8:101::1]/', 'private'],
      ['http://100.64.0.1/', 'shared'],
      ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 'link-local'],
      ['http://2852039166/latest/meta-data/', 'link-local'], // 169.254.169.254 in decimal
      ['http://0xa9.0xfe.0xa9.0xfe/', 'link-local'], ['http://[::ffff:a9fe:a9fe]/', 'link-local'], ['http://[fe80::1]/', 'link-local'],
      ['http://[fd00:ec2::254]/', 'metadata'], ['http://100.100.100.200/', 'metadata'],
      ['http://0.0.0.0:3000/', 'unspecified'], ['http://0/', 'unspecified'], ['http://[::]/', 'unspecified'],
      ['http://224.0.0.1/', 'multicast'], ['http://192.0.2.10/', 'reserved'], ['https://255.255.255.255/', 'reserved'],
    ];
    for (const [url, addressClass] of cases) {
      const r = await strict.http('POST', '/api/webhooks', strict.admin.token, { url, events: ['*'] });
      assert.equal(r.status, 400, `${url}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'WEBHOOK_TARGET_REFUSED', url);
      assert.equal(r.body.error.details.addressClass, addressClass, url);
      assert.match(r.body.error.message, /public/, 'says what to do');
    }
    assert.deepEqual((await strict.http('GET', '/api/webhooks', strict.admin.token)).body.webhooks, [], 'none was stored');

    // Public addresses and names are accepted (names are checked when delivering).
    for (const url of ['https://93.184.215.14/hook', 'https://hooks.example.com/sri']) {
      const r = await strict.http('POST', '/api/webhooks', strict.admin.token, { url, events: ['job.dead'] });
      assert.equal(r.status, 201, `${url}: ${JSON.stringify(r.body)}`);
      assert.equal((await strict.http('DELETE', `/api/webhooks/${r.body.webhook.id}`, strict.admin.token)).status, 204);
    }
  });

  it('refuses at delivery a public-looking name that resolves to 127.0.0.1, or to a private address among public ones', async () => {
    dns.set('hooks.public.test', () => ['127.0.0.1']);
    dns.set('mixed.public.test', () => ['93.184.215.14', '10.1.2.3']);
    const loop = await strict.http('POST', '/api/webhooks', strict.admin.token, { url: `http://hooks.public.test:${receiver.port}/inward`, events: ['*'] });
    assert.equal(loop.status, 201, 'a name passes registration');
    const mixed = await strict.http('POST', '/api/webhooks', strict.admin.token, { url: `http://mixed.public.test:${receiver.port}/mixed`, events: ['*'] });
    assert.equal(mixed.status, 201);
    await strict.finishJob('done');
    for (const [hook, cls] of [[loop, 'loopback'], [mixed, 'private']] as const) {
      const d = await finished(strict, hook.body.webhook.id, `the delivery to a name resolving to ${cls}`);
      assert.equal(d.status, 'failed');
      assert.equal(d.errorClass, 'target-refused');
      assert.equal(d.refusedAddressClass, cls);
      assert.equal(d.responseStatus, null, 'nothing was connected to');
      assert.equal(d.attempts, 2, 'each attempt resolved and refused again');
      assert.match(d.lastError, new RegExp(`\\(${cls}\\)`));
    }
    assert.equal(lookups.get('hooks.public.test'), 2, 'resolved at every attempt');
    assert.deepEqual(receiver.hits.filter((h) => h.path === '/inward' || h.path === '/mixed'), [], 'the receiver on 127.0.0.1 got nothing');
  });

  it('lets only admins manage webhooks and read deliveries: a member gets 403 FORBIDDEN', async () => {
    const hook = await strict.http('POST', '/api/webhooks', strict.admin.token, { url: 'https://hooks.example.com/admin-made', events: ['job.dead'] });
    assert.equal(hook.status, 201);
    const id = hook.body.webhook.id as string;
    for (const [method, path, body] of [
      ['POST', '/api/webhooks', { url: 'https://hooks.example.com/member-made', events: ['*'] }],
      ['GET', '/api/webhooks', undefined],
      ['GET', `/api/webhooks/${id}/deliveries`, undefined],
      ['DELETE', `/api/webhooks/${id}`, undefined],
    ] as const) {
      const r = await strict.http(method, path, strict.member.token, body);
      assert.equal(r.status, 403, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'FORBIDDEN');
    }
    const listed = await strict.http('GET', '/api/webhooks', strict.admin.token);
    assert.deepEqual(listed.body.webhooks.map((w: { url: string }) => w.url), ['https://hooks.example.com/admin-made'], 'the member created and deleted nothing');
  });

  it('shows a delivery row of an earlier version (a receiver\'s text in last_error) as an unknown error, without the text', async () => {
    const hook = await strict.http('POST', '/api/webhooks', strict.admin.token, { url: 'https://hooks.example.com/legacy', events: ['job.dead'] });
    const webhookId = hook.body.webhook.id as string;
    const jobId = (await strict.http('POST', '/api/run', strict.admin.token, { providerId: 'demo' })).body.jobId as string;
    await strict.db.withOrg(strict.admin.orgId, (tx) => tx.query(
      `INSERT INTO webhook_deliveries (id, org_id, webhook_id, job_id, job_attempt, event, payload, status, attempts, last_error, response_status)
       VALUES ($1, $2, $3, $4, 1, 'job.done', '{}', 'failed', 1, $5, 200)`,
      [randomUUID(), strict.admin.orgId, webhookId, jobId, 'HTTP 404: -ERR unknown command \'POST\', redis_version:7.2.4 INTERNAL-MARKER']));
    const [d] = await strict.deliveries(webhookId);
    assert.equal(d.errorClass, 'unknown');
    assert.ok(!JSON.stringify(d).includes('INTERNAL-MARKER') && !JSON.stringify(d).includes('redis_version'), JSON.stringify(d));
  });

  it('says WEBHOOK_ALLOW_PRIVATE at start as a warning, and only when it is on', () => {
    const warned = (s: Stack) => s.logLines.filter((l) => l['level'] === 40 && String(l['msg']).includes('WEBHOOK_ALLOW_PRIVATE=true'));
    assert.equal(warned(onPrem).length, 1, JSON.stringify(onPrem.logLines.filter((l) => l['level'] === 40)));
    assert.equal(warned(strict).length, 0);
  });

  it('with WEBHOOK_ALLOW_PRIVATE opens loopback and private addresses, never link-local or metadata ones', async () => {
    for (const [url, cls] of [['http://169.254.169.254/latest/meta-data/', 'link-local'], ['http://[fd00:ec2::254]/', 'metadata'], ['http://0x646464c8/', 'metadata'], ['http://0.0.0.0/', 'unspecified']]) {
      const r = await onPrem.http('POST', '/api/webhooks', onPrem.admin.token, { url, events: ['*'] });
      assert.equal(r.status, 400, url);
      assert.equal(r.body.error.code, 'WEBHOOK_TARGET_REFUSED', url);
      assert.equal(r.body.error.details.addressClass, cls, url);
    }
    dns.set('imds.onprem.test', () => ['169.254.169.254']);
    const imds = await onPrem.http('POST', '/api/webhooks', onPrem.admin.token, { url: 'http://imds.onprem.test/latest/meta-data/', events: ['*'] });
    const local = await onPrem.http('POST', '/api/webhooks', onPrem.admin.token, { url: `${receiver.url}/on-prem`, events: ['*'] });
    assert.equal(local.status, 201, JSON.stringify(local.body));
    await onPrem.finishJob('failed');
    const refused = await finished(onPrem, imds.body.webhook.id, 'the delivery to a name resolving to the metadata address');
    assert.equal(refused.errorClass, 'target-refused');
    assert.equal(refused.refusedAddressClass, 'link-local');
    const ok = await finished(onPrem, local.body.webhook.id, 'the delivery to the local receiver');
    assert.equal(ok.status, 'delivered');
    assert.equal(ok.errorClass, null);
  });

  it('connects to the address it checked: the name is resolved once per attempt, never again by the socket', async () => {
    // First answer loopback (allowed here), every later one the metadata address: a rebinding DNS. The connection
    // must use the first answer; `.test` names do not resolve on the system, so a second lookup would fail too.
    dns.set('receiver.rebind.test', (call) => (call === 1 ? ['127.0.0.1'] : ['169.254.169.254']));
    const hook = await onPrem.http('POST', '/api/webhooks', onPrem.admin.token, { url: `http://receiver.rebind.test:${receiver.port}/pinned`, events: ['*'] });
    await onPrem.finishJob('done');
    const d = await finished(onPrem, hook.body.webhook.id, 'the pinned delivery');
    assert.equal(d.status, 'delivered', JSON.stringify(d));
    assert.equal(lookups.get('receiver.rebind.test'), 1);
    const [hit] = receiver.hits.filter((h) => h.path === '/pinned');
    assert.equal(hit?.host, `receiver.rebind.test:${receiver.port}`, 'the request names the host; only the socket went to the checked address');
  });

  it('does not follow a redirect to 127.0.0.1: the attempt fails as a redirect and the target sees nothing', async () => {
    const inner = await startReceiver((_req, res) => { res.writeHead(200).end('INTERNAL-MARKER'); });
    const bouncer = await startReceiver((_req, res) => { res.writeHead(302, { location: `${inner.url}/stolen` }).end('moved'); });
    try {
      const hook = await onPrem.http('POST', '/api/webhooks', onPrem.admin.token, { url: `${bouncer.url}/bounce`, events: ['*'] });
      await onPrem.finishJob('done');
      const d = await finished(onPrem, hook.body.webhook.id, 'the redirected delivery');
      assert.equal(d.status, 'failed');
      assert.equal(d.errorClass, 'redirect');
      assert.equal(d.responseStatus, 302);
      assert.equal(bouncer.hits.length, 2, 'both attempts reached the receiver');
      assert.deepEqual(inner.hits, [], 'the redirect target was never asked');
      assert.ok(!JSON.stringify(d).includes('moved') && !JSON.stringify(d).includes(String(inner.port)));
      } finally {
      await Promise.all([inner.close(), bouncer.close()]);
    }
  });

  it('reads at most 4 KiB of a huge answer and closes the socket; the delivery keeps a status, never the body', async () => {
    const ANSWER_BYTES = 400 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 'INTERNAL-MARKER ');
    const sent = { bytes: 0, closedEarly: false, done: false };
    const huge = await startReceiver((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(ANSWER_BYTES) });
      res.on('close', () => { if (!res.writableFinished) sent.closedEarly = true; sent.done = true; });
      const pump = () => {
        while (sent.bytes < ANSWER_BYTES && !res.destroyed) {
          sent.bytes += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        if (sent.bytes >= ANSWER_BYTES) res.end();
      };
      pump();
    });
    const failing = await startReceiver((_req, res) => { res.writeHead(500).end('INTERNAL-MARKER: stack trace of the receiver'); });
    try {
      const rssBefore = process.memoryUsage().rss;
      const hook = await onPrem.http('POST', '/api/webhooks', onPrem.admin.token, { url: `${huge.url}/huge`, events: ['*'] });
      const down = await onPrem.http('POST', '/api/webhooks', onPrem.admin.token, { url: `${failing.url}/down`, events: ['*'] });
      await onPrem.finishJob('done');
      const d = await finished(onPrem, hook.body.webhook.id, 'the delivery with a huge answer');
      await waitFor(() => sent.done, { what: 'the receiver to see its answer cut' });
      assert.equal(d.status, 'delivered');
      assert.equal(d.responseStatus, 200);
      assert.ok(sent.closedEarly, 'the API closed the socket before the answer ended');
      assert.ok(sent.bytes < 32 * 1024 * 1024, `the receiver got to send ${sent.bytes} bytes of ${ANSWER_BYTES} only (socket buffers)`);
      assert.ok(process.memoryUsage().rss - rssBefore < 200 * 1024 * 1024, 'the API did not hold the answer');
      const failed = await finished(onPrem, down.body.webhook.id, 'the delivery to a receiver answering 500');
      assert.equal(failed.status, 'failed');
      assert.equal(failed.errorClass, 'http-status');
      assert.equal(failed.responseStatus, 500);
      for (const x of [...await onPrem.deliveries(hook.body.webhook.id), ...await onPrem.deliveries(down.body.webhook.id)]) {
        assert.ok(!JSON.stringify(x).includes('INTERNAL-MARKER'), `no receiver text in ${JSON.stringify(x)}`);
      }
      const stored = await onPrem.db.asSystem((tx) => tx.query<{ last_error: string | null }>('SELECT last_error FROM webhook_deliveries'));
      assert.ok(stored.every((r) => !String(r.last_error).includes('INTERNAL-MARKER')), 'nor in the table');
    } finally {
      await Promise.all([huge.close(), failing.close()]);
    }
  });
});
