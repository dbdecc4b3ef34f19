/**
 * Session health and re-login from end to end (issue 13, docs/sessions.md), on real services (PGlite, redis-server,
 * s3rver, Chromium, the demo portal): the demo provider's session check finds a session the portal expired on
 * purpose logged out, its login flow (password, then the TOTP second factor at /2fa) signs in again in the job's
 * context, the job succeeds and the connection's session in Redis holds the fresh cookies; a provider with a check
 * and no login flow ends the job SESSION_EXPIRED, not retried, the connection shows expired in the API and the
 * organisation's webhook receives `session.expired`; a login flow that fails ends the same way; cookies a flow
 * gets from the portal during a job are saved back to the connection at its end; a session the portal ends while the
 * flow runs (the flow fails on the login wall) retries the job, announces the attempt's blocker, and signs in again.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loginToDemoPortal } from '../../src/cli/demo.ts';
import { registerProvider } from '../../src/control-plane/providers/catalogue.ts';
import { DEMO_PASSWORD, DEMO_SESSION_COOKIE, DEMO_TOTP_SEED, DEMO_USERNAME, demoProvider, demoSessionCheck, startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { parseKeyring } from '../../src/shared/sealed.ts';
import type { Session } from '../../src/shared/schemas.ts';
import { decodeSession } from '../../src/shared/transport-secrets.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { tempDir, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { testWorkerConfig } from '../execution-plane/support/jobs.ts';

const TRANSPORT_KEYS = `t1:${randomBytes(32).toString('base64')}`;

describe('session health: check, re-login with TOTP, SESSION_EXPIRED, cookies saved back', () => {
  let t: TestApi;
  let portal: DemoPortal;
  let worker: WorkerHandle;
  let receiver: Server;
  let receiverUrl = '';
  const received: { event: string; body: any }[] = [];
  const logs = tempDir('sri-e2e-sessions-');
  let token = '';
  let orgId = '';
  let userId = '';

  async function http(method: string, path: string, body?: unknown) {
    const r = await fetch(t.api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: `Bearer ${token}` },
    });
    const text = await r.text();
    return { status: r.status, text, body: text ? JSON.parse(text) as any : undefined };
  }

  const finished = (jobId: string) => waitFor(async () => {
    const r = await http('GET', `/api/jobs/${jobId}`);
    // Final, and recorded by the results listener (a status read from Redis comes before the result).
    return ['done', 'failed', 'dead'].includes(r.body?.job?.status) && r.body.job.finishedAt ? r.body.job : undefined;
  }, { timeoutMs: 120_000, what: `job ${jobId} to finish` });

  /** The flow every test runs: the invoices behind the session, read into parsed data. */
  const invoiceSteps = () => [
    { type: 'navigate', url: `${portal.url}/invoices` },
    { type: 'waitFor', selector: '#invoices' },
    { type: 'extract', name: 'invoices', selector: '#invoices tbody tr', fields: { number: 'td.number' } },
  ];

  async function activate(providerId: string, steps: unknown[]) {
    const flow = await http('POST', '/api/flows', { providerId, version: `1.0.${Date.now() % 100000}`, name: `Sessions ${providerId}`, steps });
    assert.equal(flow.status, 201, flow.text);
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, {})).status, 200);
  }

  async function run(providerId: string) {
    const r = await http('POST', '/api/run', { providerId });
    assert.equal(r.status, 202, r.text);
    return r.body.jobId as string;
  }

  async function connect(providerId: string, body: Record<string, unknown>) {
    const r = await http('POST', `/api/providers/${providerId}/connect`, body);
    assert.equal(r.status, 200, r.text);
  }

  const sessionCookie = (value: string) => ({ name: DEMO_SESSION_COOKIE, value, domain: '127.0.0.1', path: '/', httpOnly: true, sameSite: 'Lax' });

  async function storedSession(providerName: string): Promise<Session> {
    const key = keys.session(orgId, userId, providerName);
    const raw = await t.redis.get(key);
    assert.ok(raw, `a session at ${key}`);
    assert.match(raw, /^sri-enc:/, 'still sealed');
    return decodeSession(parseKeyring(TRANSPORT_KEYS), key, raw);
  }

  /** Whether the portal takes this session cookie as logged in (its /invoices answers instead of redirecting). */
  async function portalAccepts(value: string): Promise<boolean> {
    const r = await fetch(`${portal.url}/invoices`, { redirect: 'manual', headers: { cookie: `${DEMO_SESSION_COOKIE}=${value}` } });
    return r.status === 200;
  }

  async function connection(providerId: string) {
    const r = await http('GET', '/api/providers/connected');
    assert.equal(r.status, 200, r.text);
    return (r.body.connections as { providerId: string; status: string; expiredAt: string | null }[]).find((c) => c.providerId === providerId);
  }

  before(async () => {
    portal = await startDemoPortal({ port: 0 });
    receiver = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => { body += c; });
      req.on('end', () => {
        const parsed = JSON.parse(body) as { event: string };
        received.push({ event: parsed.event, body: parsed });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    t = await startTestApi({ TRANSPORT_KEYS, WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_RETRY_BASE_MS: '50' });
    // The demo provider as `sri up` seeds it, for this portal: its session check and its login flow. `demo-check`
    // has the check alone; `demo-plain` neither (its flows sign in by themselves).
    const demo = demoProvider(portal.port);
    await registerProvider(t.db, t.redis, demo, TEST_SIGNING_SECRET);
    const { sessionCheck: _c, loginSteps: _l, ...plain } = demo;
    await registerProvider(t.db, t.redis, { ...plain, id: 'demo-check', name: 'demo-check', sessionCheck: demoSessionCheck(`http://127.0.0.1:${portal.port}`) }, TEST_SIGNING_SECRET);
    await registerProvider(t.db, t.redis, { ...plain, id: 'demo-plain', name: 'demo-plain' }, TEST_SIGNING_SECRET);
    const config = testWorkerConfig({ redisUrl: t.redisUrl, s3Endpoint: t.config.s3Endpoint, logDir: logs.path, extra: { TRANSPORT_KEYS, EXECUTION_TIMEOUT: '60000' } });
    worker = await startWorker(config, { logger: createLogger({ name: 'worker', level: 'info', logDir: logs.path, stdout: false }), orgRefreshMs: 100 });
    const reg = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `sessions-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Ana', orgName: 'Acme' }),
    }).then((r) => r.json()) as any;
    token = reg.token;
    orgId = reg.org.id;
    userId = reg.user.id;
    const hook = await http('POST', '/api/webhooks', { url: `${receiverUrl}/hook`, events: ['session.expired'] });
    assert.equal(hook.status, 201, hook.text);
    await activate('demo', invoiceSteps());
    await activate('demo-check', invoiceSteps());
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await t?.stop();
    await portal?.close();
    await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
    logs.remove();
  });

  it('renews a session the portal expired with the provider\'s login flow (password + TOTP), and the job succeeds', async () => {
    const old = await loginToDemoPortal(portal.url);
    await connect('demo', {
      cookies: [sessionCookie(old)], credentials: { portalUser: DEMO_USERNAME, portalPassword: DEMO_PASSWORD }, totp: { demo: DEMO_TOTP_SEED },
    });
    const expired = await fetch(`${portal.url}/__admin/expire-sessions`, { method: 'POST' }).then((r) => r.json()) as { expired: number };
    assert.ok(expired.expired >= 1, 'the portal logged the session out');
    assert.equal(await portalAccepts(old), false);
    const since = Date.now();

    const job = await finished(await run('demo'));
    assert.equal(job.status, 'done', JSON.stringify(job));
    assert.deepEqual(job.result.invoices.map((r: { number: string }) => r.number), ['INV-1001', 'INV-1002', 'INV-1003']);
    // The portal saw the login flow: the password form with its second factor, then a good code.
    const seen = portal.requests().filter((r) => r.at >= since).map((r) => `${r.method} ${r.url}`);
    for (const step of ['GET /invoices', 'GET /login?mfa=1', 'POST /login?mfa=1', 'GET /2fa', 'POST /2fa']) assert.ok(seen.includes(step), `${step} in ${seen.join(', ')}`);

    // The connection's session in Redis holds the fresh cookie, which the portal takes; credentials and seed kept.
    const session = await storedSession('demo');
    const fresh = session.cookies.find((c) => c.name === DEMO_SESSION_COOKIE);
    assert.ok(fresh && fresh.value !== old, 'a new session cookie was saved');
    assert.equal(await portalAccepts(fresh.value), true);
    assert.deepEqual(session.credentials, { portalUser: DEMO_USERNAME, portalPassword: DEMO_PASSWORD });
    assert.ok(session.totp?.['demo']);
    assert.ok(await t.redis.ttl(keys.session(orgId, userId, 'demo')) > 0, 'the session keeps its TTL');
    assert.equal((await connection('demo'))?.status, 'connected');

    // The next job finds the saved session logged in: no login this time.
    const before = Date.now();
    const again = await finished(await run('demo'));
    assert.equal(again.status, 'done', JSON.stringify(again));
    const next = portal.requests().filter((r) => r.at >= before).map((r) => `${r.method} ${r.url}`);
    assert.ok(!next.some((s) => s.includes('/login')), `no login: ${next.join(', ')}`);
  });

  it('ends a job SESSION_EXPIRED, not retried, when the provider has no login flow: connection expired, session.expired delivered', async () => {
    const old = await loginToDemoPortal(portal.url);
    await connect('demo-check', { cookies: [sessionCookie(old)] });
    portal.expireSessions();

    const jobId = await run('demo-check');
    const job = await finished(jobId);
    assert.equal(job.status, 'failed', JSON.stringify(job));
    assert.equal(job.errorCode ?? job.error?.code, 'SESSION_EXPIRED', JSON.stringify(job));
    assert.equal(job.attempt, 1, 'not retried');
    assert.match(job.errorMessage ?? job.error?.message ?? '', /no login flow/);

    await waitFor(async () => (await connection('demo-check'))?.status === 'expired', { what: 'the connection shown expired' });
    assert.ok((await connection('demo-check'))?.expiredAt);
    const delivery = await waitFor(() => received.find((r) => r.event === 'session.expired' && r.body.result.jobId === jobId), { what: 'the session.expired webhook' });
    assert.equal(delivery.body.result.providerId, 'demo-check');
    assert.equal(delivery.body.result.userId, userId);
    assert.equal(delivery.body.result.error.code, 'SESSION_EXPIRED');
    assert.ok(!JSON.stringify(delivery.body).includes(old), 'no cookie in the webhook');

    // Connecting again clears it.
    await connect('demo-check', { cookies: [sessionCookie(await loginToDemoPortal(portal.url))] });
    assert.equal((await connection('demo-check'))?.status, 'connected');
  });

  it('ends a job SESSION_EXPIRED when the login flow cannot sign in (wrong password)', async () => {
    const old = await loginToDemoPortal(portal.url);
    await connect('demo', {
      cookies: [sessionCookie(old)], credentials: { portalUser: DEMO_USERNAME, portalPassword: 'not-the-password' }, totp: { demo: DEMO_TOTP_SEED },
    });
    portal.expireSessions();
    const jobId = await run('demo');
    const job = await finished(jobId);
    assert.equal(job.status, 'failed', JSON.stringify(job));
    assert.equal(job.errorCode ?? job.error?.code, 'SESSION_EXPIRED', JSON.stringify(job));
    assert.equal(job.attempt, 1, 'not retried');
    assert.ok(!JSON.stringify(job).includes('not-the-password'), 'the password stays out of the job');
    await waitFor(async () => (await connection('demo'))?.status === 'expired', { what: 'the connection shown expired' });
    await waitFor(() => received.some((r) => r.event === 'session.expired' && r.body.result.jobId === jobId), { what: 'the session.expired webhook' });
  });

  it('retries a job whose session the portal ended mid-flow (a login wall): SESSION_LOGGED_OUT, job.blocked for that attempt, then the login flow signs in again and the job succeeds', async () => {
    const blockedHook = await http('POST', '/api/webhooks', { url: `${receiverUrl}/blocked`, events: ['job.blocked'] });
    assert.equal(blockedHook.status, 201, blockedHook.text);
    const old = await loginToDemoPortal(portal.url);
    await connect('demo', {
      cookies: [sessionCookie(old)], credentials: { portalUser: DEMO_USERNAME, portalPassword: DEMO_PASSWORD }, totp: { demo: DEMO_TOTP_SEED },
    });
    // The invoices, then a page where the portal ends the session (the first visit only), then the invoices again:
    // the first attempt meets the login page where it waits for #invoices.
    await activate('demo', [
      { type: 'navigate', url: `${portal.url}/invoices` },
      { type: 'waitFor', selector: '#invoices' },
      { type: 'navigate', url: `${portal.url}/blockers/session-ends?once=${randomUUID()}` },
      ...invoiceSteps(),
    ]);
    const since = Date.now();
    const jobId = await run('demo');
    const job = await finished(jobId);
    assert.equal(job.status, 'done', JSON.stringify(job));
    assert.equal(job.attempt, 2, 'retried once');
    assert.deepEqual(job.result.invoices.map((r: { number: string }) => r.number), ['INV-1001', 'INV-1002', 'INV-1003']);
    assert.equal(job.blocker?.kind, 'login-wall');

    // The first attempt: SESSION_LOGGED_OUT (retried), its login wall announced as job.blocked.
    const blocked = await waitFor(() => received.find((r) => r.event === 'job.blocked' && r.body.result.jobId === jobId && r.body.result.attempt === 1), { what: 'job.blocked of attempt 1' });
    assert.equal(blocked.body.result.status, 'retrying');
    assert.equal(blocked.body.result.error.code, 'SESSION_LOGGED_OUT');
    assert.match(blocked.body.result.error.message, /^The portal logged the session out while the flow ran \(the provider.s logged-out address/);
    assert.equal(blocked.body.result.blocker.kind, 'login-wall');
    assert.match(blocked.body.result.blocker.url, /\/login$/);
    assert.ok(!JSON.stringify(blocked.body).includes(old), 'no cookie in the webhook');

    // The second attempt's session check found the session logged out and the login flow signed in again.
    const seen = portal.requests().filter((r) => r.at >= since).map((r) => `${r.method} ${r.url}`);
    const ended = seen.findIndex((x) => x.startsWith('GET /blockers/session-ends'));
    assert.ok(ended >= 0, seen.join(', '));
    const after = seen.slice(ended + 1);
    for (const step of ['GET /login?mfa=1', 'POST /login?mfa=1', 'POST /2fa']) assert.ok(after.includes(step), `${step} after the session ended: ${after.join(', ')}`);
    const session = await storedSession('demo');
    const fresh = session.cookies.find((c) => c.name === DEMO_SESSION_COOKIE);
    assert.ok(fresh && fresh.value !== old && await portalAccepts(fresh.value), 'the new session was saved');
    assert.equal((await connection('demo'))?.status, 'connected');
    assert.ok(!received.some((r) => r.event === 'session.expired' && r.body.result.jobId === jobId), 'no session.expired');
    assert.equal((await http('DELETE', `/api/webhooks/${blockedHook.body.webhook.id}`)).status, 204);
  });

  it('saves the cookies the portal renewed during the job back to the connection, and starts its lifetime again', async () => {
    // A session cookie without an expiry, as pasted; the portal's invoices page renews it for a day at each visit.
    const value = await loginToDemoPortal(portal.url);
    await connect('demo-plain', { cookies: [sessionCookie(value)], credentials: { portalPassword: DEMO_PASSWORD } });
    await activate('demo-plain', [
      { type: 'navigate', url: `${portal.url}/invoices` },
      { type: 'waitFor', selector: '#invoices' },
    ]);
    // A connection near its end: a day left of its lifetime, in Redis and in the API.
    const key = keys.session(orgId, userId, 'demo-plain');
    await t.redis.expire(key, 86_400);
    await t.db.withOrg(orgId, (tx) => tx.query(`UPDATE provider_connections SET expires_at = now() + interval '1 day' WHERE user_id = $1 AND provider_id = 'demo-plain'`, [userId]));
    const before = Date.parse((await connection('demo-plain') as unknown as { expiresAt: string }).expiresAt);
    const job = await finished(await run('demo-plain'));
    assert.equal(job.status, 'done', JSON.stringify(job));
    const session = await storedSession('demo-plain');
    const cookie = session.cookies.find((c) => c.name === DEMO_SESSION_COOKIE);
    assert.ok(cookie, 'the connection keeps its session cookie');
    assert.equal(cookie.value, value);
    assert.ok(cookie.expires && cookie.expires * 1000 > Date.now() + 23 * 3600_000, `the renewed expiry was saved (${cookie.expires})`);
    assert.equal(session.cookies.length, 1, 'only the connection\'s own cookies are saved');
    assert.deepEqual(session.credentials, { portalPassword: DEMO_PASSWORD });
    // Saving the renewed cookies started the connection's lifetime again (SESSION_TTL_SECONDS, 7 days by default):
    // the key's TTL and the expiry the API shows both moved forward, so a connection in regular use never runs out.
    const ttl = await t.redis.ttl(key);
    assert.ok(ttl > 6 * 86_400, `the session's TTL starts again (${ttl} s)`);
    const after = Date.parse((await connection('demo-plain') as unknown as { expiresAt: string }).expiresAt);
    assert.ok(after > before + 5 * 86_400, `the connection's expiry moves forward (${new Date(before).toISOString()} → ${new Date(after).toISOString()})`);
  });
});
