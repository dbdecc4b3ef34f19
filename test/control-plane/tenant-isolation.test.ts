/**
 * Tenant isolation (ARCHITECTURE.md invariant 7), attacked from organisation A against organisation B, on real
 * services — redis-server, s3rver and, per suite, PGlite or a PostgreSQL server started by the test:
 *
 * 1. Through HTTP: every route of the running Fastify app (read from the route table at start, through Fastify's
 *    `fastify.initialization` diagnostics channel and an onRoute hook) is called as A with B's ids, guessed ids,
 *    crafted ids and crafted bodies. Each answers 404 (or the status its route documents) and no response carries
 *    anything of B: ids, names, e-mail, script text, webhook URL, secret name or value. A route the table below
 *    does not cover fails the suite, so a new endpoint cannot be forgotten.
 * 2. In the database: every table holding organisation data (found in pg_catalog) has row-level security enabled
 *    and forced, and a query that forgot its organisation filter — `SELECT * FROM t`, an UPDATE or DELETE without
 *    WHERE — run as the API's role with A's organisation set (Database.withOrg) sees and touches A's rows only;
 *    inserting or moving a row into B is refused.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import type { FastifyInstance, RouteOptions } from 'fastify';
import type { Database, Tx } from '../../src/control-plane/db/index.ts';
import { findJob, listJobs } from '../../src/control-plane/db/queries/jobs.ts';
import { findFlow, listFlows } from '../../src/control-plane/db/queries/flows.ts';
import { upsertDocument } from '../../src/control-plane/db/queries/documents.ts';
import { TokenService } from '../../src/control-plane/http/auth.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { writeHeartbeat } from '../../src/shared/worker-registry.ts';
import { startTestApi, TEST_JWT_SECRET, type TestApi } from '../support/api.ts';
import { startTestPostgres, type TestPostgres } from '../support/postgres.ts';
import { waitFor } from '../support/services.ts';
import { makeDocument } from '../support/sri-documents.ts';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';

const METRICS_TOKEN = `metrics-${randomBytes(12).toString('hex')}`;
const SECRETS_KEYS = `k1:${randomBytes(32).toString('base64')}`;

interface Res { status: number; text: string; body: any; headers: Headers }
interface CallOpts { token?: string; body?: unknown; headers?: Record<string, string> }

/** One organisation as its admin sees it, with everything the suite created in it. */
interface Tenant {
  token: string; userId: string; orgId: string; email: string; name: string; orgName: string;
  flowId: string; flowName: string; scriptMarker: string;
  /** queued (later leased by a fake worker), failed, dead-lettered */
  jobQueued: string; jobFailed: string; jobDead: string;
  idempotencyKey: string; metadataMarker: string;
  webhookId: string; webhookUrl: string; secretName: string; secretValue: string; dlqEntryId: string;
  /** paused (it makes no runs here); its run is jobFailed, marked so in the database */
  scheduleId: string;
  /** A member added with a password, and one invited by link (its one-time token). */
  memberId: string; memberEmail: string; invitedId: string; invitedEmail: string; invitationToken: string;
  /** An SRI document fetched by jobFailed (0014_documents.sql): its access key and its issuer's name, a marker. */
  claveAcceso: string; issuerMarker: string;
}

/** Ids that are not B's but shaped to trip a careless query or path join. */
const CRAFTED_IDS = [
  "' OR '1'='1", '1 OR 1=1', "x' UNION SELECT * FROM jobs --", '../../etc/passwd', '%', '*', '$ne', 'null', '0', '-1',
  'x'.repeat(300),
];

/** Routes that hold no tenant data and take no id; each still gets a leak check below. */
const NO_TENANT_DATA = new Map<string, string>([
  ['GET /health', 'liveness, a constant'],
  ['GET /ready', 'readiness of the backing services'],
  ['GET /', 'the dashboard\'s static page (src/web, built): the same bytes for everyone'],
  ['GET /*', 'the dashboard\'s static files and its client-side routes (index.html)'],
  ['GET /assets/*', 'the dashboard\'s built scripts and styles (immutable, hashed names)'],
]);
/** Everything under /docs is @fastify/swagger-ui: the static API description. /docs/json is leak-checked. */
const isDocsRoute = (key: string) => / \/docs(\/|$)/.test(key);

function backendSuite(backend: 'pglite' | 'postgres') {
  describe(`tenant isolation on ${backend}`, () => {
    let pg: TestPostgres | undefined;
    let t: TestApi;
    let queue: JobQueue;
    let a: Tenant;
    let b: Tenant;
    /** "METHOD url" of every route the app registered, HEAD included. */
    const routes = new Set<string>();

    const call = async (method: string, path: string, opts: CallOpts = {}): Promise<Res> => {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
      let body: string | undefined;
      if (opts.body !== undefined) { body = JSON.stringify(opts.body); headers['content-type'] = 'application/json'; }
      const r = await fetch(t.api.url + path, { method, headers, body });
      const text = await r.text();
      let json: unknown;
      try { json = JSON.parse(text); } catch { json = undefined; }
      return { status: r.status, text, body: json, headers: r.headers };
    };
    const ok = async (method: string, path: string, opts: CallOpts = {}) => {
      const r = await call(method, path, opts);
      assert.ok(r.status >= 200 && r.status < 300, `${method} ${path} → ${r.status} ${r.text.slice(0, 300)}`);
      return r.body;
    };

    /** Registers an organisation with markers of its own, a connected session, an active flow, jobs, webhook, secret. */
    async function tenant(tag: string): Promise<Tenant> {
      const u = randomUUID();
      const email = `${tag}-${u}@example.com`;
      const name = `${tag}-user-${u.slice(0, 8)}`;
      const orgName = `${tag}-org-${u.slice(0, 8)}`;
      const reg = await ok('POST', '/api/auth/register', { body: { email, password: 'correct-horse-42', name, orgName } });
      const token = reg.token as string;
      await ok('POST', '/api/providers/demo/connect', { token, body: { cookies: [{ name: 'sid', value: `${tag}-cookie-${u}`, domain: '127.0.0.1', path: '/' }] } });
      const scriptMarker = `${tag}-script-path-${u}`;
      const flowName = `${tag}-flow-${u.slice(0, 8)}`;
      const flow = (await ok('POST', '/api/flows', {
        token, body: { providerId: 'demo', version: '1.0.0', name: flowName, steps: [{ type: 'navigate', url: `http://127.0.0.1:3100/${scriptMarker}` }] },
      })).flow;
      await ok('POST', `/api/flows/${flow.id}/activate`, { token });
      const metadataMarker = `${tag}-metadata-${u}`;
      const idempotencyKey = `${tag}-idem-${u}`;
      const run = async (headers: Record<string, string> = {}) =>
        (await ok('POST', '/api/run', { token, headers, body: { providerId: 'demo', metadata: { marker: metadataMarker } } })).jobId as string;
      const jobQueued = await run({ 'idempotency-key': idempotencyKey });
      const jobFailed = await run();
      const jobDead = await run();
      const webhookUrl = `http://127.0.0.1:9/${tag}-hook-${u}`;
      const webhookId = (await ok('POST', '/api/webhooks', { token, body: { url: webhookUrl, events: ['*'] } })).webhook.id as string;
      const secretName = `${tag}-secret-${u.slice(0, 8)}`;
      const secretValue = `${tag}-secret-value-${u}`;
      await ok('PUT', `/api/secrets/${secretName}`, { token, body: { value: secretValue } });
      const scheduleId = (await ok('POST', '/api/schedules', {
        token, body: { flowId: flow.id, cron: '0 8 * * *', timezone: 'America/Guayaquil', enabled: false, metadata: { marker: metadataMarker } },
      })).schedule.id as string;
      await t.db.asSystem((tx) => tx.query('UPDATE jobs SET schedule_id = $1, due_at = now() WHERE id = $2', [scheduleId, jobFailed]));
      const memberEmail = `${tag}-member-${u}@example.com`;
      const memberId = (await ok('POST', '/api/members', { token, body: { email: memberEmail, name: `${tag}-member`, password: 'correct-horse-42' } })).member.id as string;
      const invitedEmail = `${tag}-invited-${u}@example.com`;
      const invited = await ok('POST', '/api/members', { token, body: { email: invitedEmail, name: `${tag}-invited` } });
      const issuerMarker = `${tag}-issuer-${u}`;
      const doc = makeDocument({ fecha: '2026-11-03', ruc: tag === 'alice' ? '1790011111001' : '0990022222001', razonSocial: issuerMarker,
        secuencial: Number.parseInt(u.slice(0, 6), 16), sinImpuestos: '10.00', total: '11.50', iva: [['4', '15', '10.00', '1.50']] });
      await t.db.withOrg(reg.org.id, (tx) => upsertDocument(tx, reg.org.id, jobFailed, doc, null));
      return {
        token, userId: reg.user.id, orgId: reg.org.id, email, name, orgName, flowId: flow.id, flowName, scriptMarker,
        jobQueued, jobFailed, jobDead, idempotencyKey, metadataMarker, webhookId, webhookUrl, secretName, secretValue, dlqEntryId: '',
        scheduleId,
        memberId, memberEmail, invitedId: invited.member.id, invitedEmail, invitationToken: invited.invitation.token,
        claveAcceso: doc.claveAcceso, issuerMarker,
      };
    }

    before(async () => {
      // The app serves the built dashboard at / (src/web → dist/web): built here when missing, as `sri up` does.
      await ensureWebBuilt();
      pg = backend === 'postgres' ? await startTestPostgres() : undefined;
      // Every route of the app, as Fastify registers it: the hook is added by the time the instance exists, before
      // buildApp adds a single route (diagnostics channel `fastify.initialization`, published by fastify()).
      const onInit = (message: unknown) => {
        const { fastify } = message as { fastify: FastifyInstance };
        fastify.addHook('onRoute', (r: RouteOptions) => {
          for (const m of [r.method].flat()) routes.add(`${m} ${r.url}`);
        });
      };
      diagnostics.subscribe('fastify.initialization', onInit);
      try {
        // Webhooks here point at 127.0.0.1:9 (nothing listens): allowed only with WEBHOOK_ALLOW_PRIVATE.
        t = await startTestApi({ METRICS_TOKEN, SECRETS_KEYS, WEBHOOK_ALLOW_PRIVATE: 'true' }, pg ? { databaseUrl: await pg.createDatabase() } : {});
      } finally {
        diagnostics.unsubscribe('fastify.initialization', onInit);
      }
      queue = await JobQueue.connect(t.redis);
      a = await tenant('alice');
      b = await tenant('bob');
      for (const x of [a, b]) {
        // One failed job (retryable), one dead-lettered (a DLQ entry, status dead, its webhook delivery recorded).
        await t.db.withOrg(x.orgId, (tx) => tx.query("UPDATE jobs SET status = 'failed', error_code = 'SCRIPT_ERROR' WHERE id = $1", [x.jobFailed]));
        await t.redis.set(keys.jobStatus(x.jobFailed), 'failed');
        x.dlqEntryId = await queue.deadLetter(x.orgId, JSON.stringify({ jobId: x.jobDead, orgId: x.orgId, marker: x.metadataMarker }), `poisoned ${x.metadataMarker}`, x.jobDead);
        await ok('PUT', '/api/admin/quota', { token: x.token, body: { maxConcurrent: x === a ? 5 : 7 } });
      }
      await waitFor(async () => {
        const rows = await t.db.asSystem((tx) => tx.query<{ n: number }>('SELECT count(DISTINCT org_id)::int AS n FROM webhook_deliveries'));
        return rows[0]!.n === 2;
      }, { what: 'webhook deliveries of both organisations recorded', timeoutMs: 20_000 });
      // A worker of the fleet (shared by every organisation) leases B's queued job: A's view of the registry must
      // not show it. Only that message is left in the queues, so the take finds it.
      await t.redis.del(keys.orgJobs(a.orgId));
      const bMessages = await t.redis.lrange(keys.orgJobs(b.orgId), 0, -1);
      await t.redis.del(keys.orgJobs(b.orgId));
      await t.redis.lpush(keys.orgJobs(b.orgId), ...bMessages.filter((m) => JSON.parse(m).jobId === b.jobQueued));
      const fakeWorker = `shared-worker-${randomUUID().slice(0, 8)}`;
      await writeHeartbeat(t.redis, {
        // A minute between heartbeats: the registry shows it live (not `lost`) however long the attacks below take.
        workerId: fakeWorker, state: 'busy', host: 'test', pid: 1, startedAt: Date.now(), heartbeatIntervalMs: 60_000, maxJobs: 2, jobsInFlight: 1,
      }, 300);
      const taken = await queue.take(fakeWorker);
      assert.equal(taken?.jobId, b.jobQueued, 'the fleet worker leased B\'s job');
    });

    after(async () => {
      await t?.stop();
      await pg?.stop();
    });

    // ── leak checks ─────────────────────────────────────────────────────────────────────────────────────────────

    /** Every value of B that must never reach A. */
    const markersOf = (x: Tenant): [string, string][] => [
      ['orgId', x.orgId], ['userId', x.userId], ['email', x.email], ['user name', x.name], ['org name', x.orgName],
      ['flow id', x.flowId], ['flow name', x.flowName], ['script text', x.scriptMarker], ['queued job', x.jobQueued],
      ['failed job', x.jobFailed], ['dead job', x.jobDead], ['idempotency key', x.idempotencyKey], ['metadata', x.metadataMarker],
      ['webhook id', x.webhookId], ['webhook url', x.webhookUrl], ['secret name', x.secretName], ['secret value', x.secretValue],
      ['dlq entry', x.dlqEntryId], ['session cookie', 'bob-cookie-'], ['schedule id', x.scheduleId],
      ['member id', x.memberId], ['member e-mail', x.memberEmail],
      ['invited member id', x.invitedId], ['invited e-mail', x.invitedEmail], ['invitation token', x.invitationToken],
      ['document access key', x.claveAcceso], ['document issuer', x.issuerMarker],
    ];

    /**
     * Asserts that `res` (body and headers) holds no value of B — except values A put in the request itself (an
     * error message may echo the id it was asked about).
     */
    function assertNoLeak(what: string, res: Res, sent: string): void {
      const hay = `${res.text}\n${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}`.toLowerCase();
      const asked = sent.toLowerCase();
      for (const [name, value] of markersOf(b)) {
        if (asked.includes(value.toLowerCase())) continue;
        assert.ok(!hay.includes(value.toLowerCase()), `${what} leaks B's ${name} (${value}): ${res.text.slice(0, 500)}`);
      }
      assert.ok(!/\n\s+at .+:\d+:\d+/.test(res.text), `${what}: no stack trace`);
      assert.ok(res.status < 500, `${what} → ${res.status} ${res.text.slice(0, 300)}`);
    }

    /** Calls as A and checks the response for leaks; HEAD too when the method is GET. */
    async function asA(method: string, path: string, opts: CallOpts = {}): Promise<Res> {
      const res = await call(method, path, { token: a.token, ...opts });
      const sent = `${path} ${JSON.stringify(opts.body ?? '')} ${JSON.stringify(opts.headers ?? {})}`;
      assertNoLeak(`${method} ${path}`, res, sent);
      if (method === 'GET') {
        const head = await call('HEAD', path, { token: a.token, ...opts });
        assert.equal(head.status, res.status, `HEAD ${path} answers like GET`);
        assertNoLeak(`HEAD ${path}`, head, sent);
      }
      return res;
    }

    /**
     * The id attack of one route: B's ids and a guessed id answer 404 with `code`; crafted ids answer 404 or 400
     * (VALIDATION_FAILED for an id the route's schema refuses) — never 2xx, never 5xx, never B's data.
     */
    async function probeIds(method: string, path: (id: string) => string, bIds: string[], opts: { body?: unknown; code?: string; headers?: Record<string, string> } = {}) {
      const code = opts.code ?? 'NOT_FOUND';
      for (const id of [...bIds, randomUUID(), b.orgId, b.userId]) {
        const r = await asA(method, path(encodeURIComponent(id)), { body: opts.body, headers: opts.headers });
        assert.equal(r.status, 404, `${method} ${path(id)} as A → ${r.status} ${r.text.slice(0, 300)}`);
        assert.equal(r.body?.error?.code, code, `${method} ${path(id)}: ${r.text.slice(0, 300)}`);
      }
      for (const id of CRAFTED_IDS) {
        const r = await asA(method, path(encodeURIComponent(id)), { body: opts.body, headers: opts.headers });
        const shown = `${method} ${path(id.slice(0, 40))} (crafted) as A → ${r.status} ${r.text.slice(0, 200)}`;
        // Fastify's router answers 414 itself for a path parameter over its maxParamLength (100).
        if (id.length > 100 && r.status === 414) continue;
        assert.ok([400, 404].includes(r.status), shown);
        assert.ok(['NOT_FOUND', code, 'VALIDATION_FAILED', 'ROUTE_NOT_FOUND'].includes(r.body?.error?.code), shown);
      }
    }

    const bSees = async (path: string) => ok('GET', path, { token: b.token });

    // ── the attack table: one entry per route of the app ─────────────────────────────────────────────────────────

    const attacks: Record<string, () => Promise<void>> = {
      'GET /api/documents': async () => {
        const r = await asA('GET', '/api/documents?pageSize=100');
        assert.deepEqual([r.body.total, r.body.documents.map((d: { claveAcceso: string }) => d.claveAcceso)], [1, [a.claveAcceso]]);
        for (const q of [`q=${b.issuerMarker}`, `q=${b.claveAcceso}`, 'issuerRuc=0990022222001', `q=${encodeURIComponent("' OR '1'='1")}`, 'q=%25']) {
          const other = await asA('GET', `/api/documents?${q}`);
          assert.equal(other.body.total, 0, q);
          assert.equal(other.body.totals.count, 0, q);
        }
      },
      'GET /api/documents/:claveAcceso': async () => { await probeIds('GET', (id) => `/api/documents/${id}`, [b.claveAcceso]); },
      'GET /api/documents/export': async () => {
        const r = await asA('GET', '/api/documents/export?format=csv');
        assert.equal(r.status, 200);
        assert.ok(r.text.includes(a.claveAcceso), 'A exports its own document');
        const other = await asA('GET', `/api/documents/export?q=${b.issuerMarker}`);
        assert.equal(other.text.trim().split('\r\n').length, 1, 'the headers only');
      },
      'POST /api/auth/register': async () => {
        const taken = await asA('POST', '/api/auth/register', { body: { email: b.email, password: 'another-pass-99', name: 'Mallory', orgName: 'M' } });
        assert.equal(taken.status, 409);
        assert.equal(taken.body.error.code, 'EMAIL_TAKEN');
        // An orgId smuggled into the body is ignored: the account gets an organisation of its own.
        const r = await asA('POST', '/api/auth/register', {
          body: { email: `m-${randomUUID()}@example.com`, password: 'another-pass-99', name: 'Mallory', orgName: 'M', orgId: b.orgId, org: { id: b.orgId }, role: 'admin' },
        });
        assert.equal(r.status, 201);
        assert.notEqual(r.body.org.id, b.orgId);
        assert.notEqual(r.body.user.orgId, b.orgId);
      },
      'POST /api/auth/login': async () => {
        const known = await asA('POST', '/api/auth/login', { body: { email: b.email, password: 'wrong-password-1' } });
        const unknown = await asA('POST', '/api/auth/login', { body: { email: `nobody-${randomUUID()}@example.com`, password: 'wrong-password-1' } });
        assert.equal(known.status, 401);
        assert.deepEqual(known.body, unknown.body, 'a wrong password for B\'s e-mail reads like an unknown e-mail');
        const mine = await asA('POST', '/api/auth/login', { body: { email: a.email, password: 'correct-horse-42', orgId: b.orgId } });
        assert.equal(mine.body.org.id, a.orgId, 'an orgId in the body does not pick the organisation');
      },
      'POST /api/session': async () => {
        const known = await asA('POST', '/api/session', { body: { email: b.email, password: 'wrong-password-1' } });
        const unknown = await asA('POST', '/api/session', { body: { email: `nobody-${randomUUID()}@example.com`, password: 'wrong-password-1' } });
        assert.equal(known.status, 401);
        assert.deepEqual(known.body, unknown.body, 'a wrong password for B\'s e-mail reads like an unknown e-mail');
        assert.equal(known.headers.getSetCookie().length, 0, 'no cookie for a failed login');
        const mine = await asA('POST', '/api/session', { body: { email: a.email, password: 'correct-horse-42', orgId: b.orgId } });
        assert.equal(mine.body.org.id, a.orgId, 'an orgId in the body does not pick the organisation');
        assert.equal(mine.body.token, undefined, 'the cookie login hands the page no token');
      },
      'GET /api/session': async () => {
        const r = await asA('GET', '/api/session');
        assert.deepEqual([r.body.org.id, r.body.user.id, r.body.csrfToken], [a.orgId, a.userId, undefined]);
        // A cookie that is not a token this API signed reads as no session.
        const forged = await call('GET', '/api/session', { headers: { cookie: `sri_session=${a.token.slice(0, -4)}AAAA` } });
        assert.equal(forged.status, 401);
        assertNoLeak('GET /api/session (forged cookie)', forged, '');
      },
      'DELETE /api/session': async () => {
        // B logs in on the dashboard; A, holding B's cookie (a cross-site request carries it) and A's own CSRF
        // token, tries to end B's session: refused, and B's session still stands.
        const cookieOf = (r: Res) => r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
        const bLogin = await call('POST', '/api/session', { body: { email: b.email, password: 'correct-horse-42' } });
        assert.equal(bLogin.status, 200, bLogin.text);
        const aLogin = await call('POST', '/api/session', { body: { email: a.email, password: 'correct-horse-42' } });
        for (const csrf of [aLogin.body.csrfToken as string, undefined]) {
          const r = await call('DELETE', '/api/session', { headers: { cookie: cookieOf(bLogin), ...(csrf ? { 'x-csrf-token': csrf } : {}) } });
          assert.deepEqual([r.status, r.body.error.code], [403, 'CSRF_TOKEN_INVALID']);
          assertNoLeak('DELETE /api/session', r, '');
        }
        const still = await call('GET', '/api/session', { headers: { cookie: cookieOf(bLogin) } });
        assert.deepEqual([still.status, still.body.org.id], [200, b.orgId], 'B is still logged in');
      },
      'GET /api/me': async () => {
        const r = await asA('GET', '/api/me');
        assert.equal(r.body.org.id, a.orgId);
        // A's token with B's organisation written into its payload: the signature no longer matches.
        const [h, p, s] = a.token.split('.') as [string, string, string];
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
        const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, org: b.orgId, sub: b.userId })).toString('base64url')}.${s}`;
        const f = await call('GET', '/api/me', { token: forged });
        assert.equal(f.status, 401);
        assertNoLeak('GET /api/me (forged token)', f, b.orgId + b.userId);
      },
      'GET /api/providers': async () => { assert.equal((await asA('GET', '/api/providers')).status, 200); },
      'GET /api/providers/connected': async () => {
        const r = await asA('GET', '/api/providers/connected');
        assert.deepEqual(r.body.connections.map((c: { providerId: string }) => c.providerId), ['demo']);
      },
      'GET /api/providers/:id/health': async () => {
        // A provider's gate is catalogue data shared by every organisation (docs/providers.md): B's ids name no provider.
        await probeIds('GET', (id) => `/api/providers/${id}/health`, [b.flowId], { code: 'PROVIDER_NOT_FOUND' });
        const r = await asA('GET', '/api/providers/demo/health');
        assert.equal(r.status, 200);
        assertNoLeak('GET /api/providers/demo/health', r, '');
      },
      'POST /api/providers/:id/connect': async () => {
        const bKey = keys.session(b.orgId, b.userId, 'demo');
        const before = await t.redis.get(bKey);
        // B's ids as a provider id: no such provider.
        await probeIds('POST', (id) => `/api/providers/${id}/connect`, [b.flowId], { body: { cookies: [] }, code: 'PROVIDER_NOT_FOUND' });
        // B's ids in the body are ignored: the session lands under A's own key.
        const r = await asA('POST', '/api/providers/demo/connect', { body: { cookies: [], orgId: b.orgId, userId: b.userId, key: bKey } });
        assert.equal(r.status, 200);
        assert.equal(await t.redis.get(bKey), before, 'B\'s session is untouched');
        assert.equal(await t.redis.exists(keys.session(a.orgId, a.userId, 'demo')), 1);
      },
      'DELETE /api/providers/:id/connect': async () => {
        await probeIds('DELETE', (id) => `/api/providers/${id}/connect`, [b.flowId], { code: 'PROVIDER_NOT_FOUND' });
        const r = await asA('DELETE', '/api/providers/demo/connect');
        assert.equal(r.status, 200);
        assert.equal(await t.redis.exists(keys.session(b.orgId, b.userId, 'demo')), 1, 'B\'s session is still there');
        assert.deepEqual((await bSees('/api/providers/connected')).connections.map((c: { providerId: string }) => c.providerId), ['demo']);
        await ok('POST', '/api/providers/demo/connect', { token: a.token, body: { cookies: [] } });
      },
      'POST /api/flows': async () => {
        const r = await asA('POST', '/api/flows', {
          body: { providerId: 'demo', version: '3.0.0', name: 'mine', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }], id: b.flowId, orgId: b.orgId, org_id: b.orgId },
        });
        assert.equal(r.status, 201);
        assert.notEqual(r.body.flow.id, b.flowId);
        assert.ok(r.body.flow.scriptKey.startsWith(`scripts/${a.orgId}/demo/`), r.body.flow.scriptKey);
        // The same provider and version as B's flow: a version of A's own, not a conflict with B's.
        const same = await asA('POST', '/api/flows', { body: { providerId: 'demo', version: '1.0.1', name: 'mine', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }] } });
        assert.equal(same.status, 201);
        const bFlow = (await bSees(`/api/flows/${b.flowId}`)).flow;
        assert.equal(bFlow.name, b.flowName);
        assert.equal(bFlow.active, true);
      },
      'GET /api/flows': async () => {
        const r = await asA('GET', '/api/flows');
        assert.ok(r.body.flows.length >= 1);
      },
      'GET /api/flows/:id': async () => { await probeIds('GET', (id) => `/api/flows/${id}`, [b.flowId]); },
      'POST /api/flows/:id/activate': async () => {
        await probeIds('POST', (id) => `/api/flows/${id}/activate`, [b.flowId]);
        assert.equal((await bSees(`/api/flows/${b.flowId}`)).flow.active, true, 'B\'s flow is still the active one');
      },
      'POST /api/run': async () => {
        const bQueue = await t.redis.llen(keys.orgJobs(b.orgId));
        // B's idempotency key names A's own (new) job; B's ids in the body are ignored.
        const r = await asA('POST', '/api/run', {
          headers: { 'idempotency-key': b.idempotencyKey },
          body: { providerId: 'demo', orgId: b.orgId, userId: b.userId, flowId: b.flowId, metadata: { x: 1 } },
        });
        assert.equal(r.status, 202, r.text);
        assert.notEqual(r.body.jobId, b.jobQueued);
        const raw = await t.redis.lindex(keys.orgJobs(a.orgId), 0);
        const msg = JSON.parse(raw!);
        assert.deepEqual([msg.jobId, msg.orgId, msg.userId], [r.body.jobId, a.orgId, a.userId]);
        assert.notEqual(msg.flowId, b.flowId);
        assert.ok(!raw!.includes(b.scriptMarker), 'A\'s job carries A\'s script');
        assert.equal(await t.redis.llen(keys.orgJobs(b.orgId)), bQueue, 'nothing was pushed to B\'s queue');
        // Providers are a global catalogue: an unknown provider is PROVIDER_NOT_FOUND whoever asks.
        const guessed = await asA('POST', '/api/run', { body: { providerId: b.flowId } });
        assert.equal(guessed.status, 404);
        assert.equal(guessed.body.error.code, 'PROVIDER_NOT_FOUND');
      },
      'GET /api/jobs': async () => {
        const r = await asA('GET', '/api/jobs?pageSize=100');
        assert.ok(r.body.jobs.length >= 3);
        assert.ok(r.body.jobs.every((j: { id: string }) => ![b.jobQueued, b.jobFailed, b.jobDead].includes(j.id)));
        // Filters narrow A's own jobs: B's statuses, its provider and its days hold nothing of B for A, and `total`
        // counts A's jobs only.
        for (const q of ['status=failed', 'status=dead&status=queued&status=running', 'providerId=demo', 'from=2000-01-01',
          `providerId=${encodeURIComponent(b.flowId)}`]) {
          const f = await asA('GET', `/api/jobs?pageSize=100&${q}`);
          assert.equal(f.status, 200, q);
          assert.ok(f.body.jobs.every((j: { userId: string }) => j.userId === a.userId), q);
          const own = await t.db.withOrg(a.orgId, (tx) => listJobs(tx, 1, 100, {
            ...(q.includes('status=') ? { statuses: [...q.matchAll(/status=(\w+)/g)].map((m) => m[1]!) } : {}),
            ...(q.startsWith('providerId=') ? { providerId: decodeURIComponent(q.slice('providerId='.length)) } : {}),
            ...(q.startsWith('from=') ? { from: new Date('2000-01-01') } : {}),
          }));
          assert.equal(f.body.total, own.total, `${q}: total counts A's jobs only`);
        }
      },
      'GET /api/jobs/:id': async () => { await probeIds('GET', (id) => `/api/jobs/${id}`, [b.jobQueued, b.jobFailed, b.jobDead]); },
      'GET /api/jobs/:id/status': async () => { await probeIds('GET', (id) => `/api/jobs/${id}/status`, [b.jobQueued, b.jobFailed, b.jobDead]); },
      'GET /api/jobs/:id/logs': async () => {
        await t.redis.xadd(keys.jobLogs(b.jobQueued), '*', 'lines', JSON.stringify([{ ts: Date.now(), level: 'info', stream: 'script', message: b.metadataMarker }]));
        const variants: Record<string, string>[] = [{}, { accept: 'text/event-stream' }, { accept: 'text/event-stream', 'last-event-id': '0-0' }];
        for (const headers of variants) {
          await probeIds('GET', (id) => `/api/jobs/${id}/logs`, [b.jobQueued, b.jobFailed, b.jobDead], { headers });
          await probeIds('GET', (id) => `/api/jobs/${id}/logs?follow=false`, [b.jobQueued, b.jobDead], { headers });
        }
      },
      // B's leased job made to look as if it waited for a person (its hand-off state, a frame, input awaited): A's
      // requests must neither see the frame nor put anything on B's input list.
      ...Object.fromEntries(['GET /api/jobs/:id/handoff', 'GET /api/jobs/:id/live', 'POST /api/jobs/:id/live/input', 'POST /api/jobs/:id/handoff'].map((key) => [key, async () => {
        const [method, route] = key.split(' ') as [string, string];
        const state = { jobId: b.jobQueued, orgId: b.orgId, reason: `${b.metadataMarker} captcha`, source: 'script', startedAt: Date.now(),
          expiresAt: Date.now() + 60_000, attempt: 1, workerId: 'shared-worker', viewport: { width: 1280, height: 720 } };
        await t.redis.set(keys.jobHandoff(b.jobQueued), JSON.stringify(state), 'PX', 60_000);
        await t.redis.xadd(keys.jobLiveFrames(b.jobQueued), '*', 'data', Buffer.from(b.metadataMarker).toString('base64'), 'viewportWidth', 1280, 'viewportHeight', 720, 'at', Date.now());
        try {
          const body = route.endsWith('/input') ? { type: 'type', text: 'x' } : route.endsWith('/handoff') && method === 'POST' ? { answer: 'giveUp' } : undefined;
          await probeIds(method, (id) => route.replace(':id', id), [b.jobQueued, b.jobFailed, b.jobDead], { ...(body ? { body } : {}) });
          assert.equal(await t.redis.llen(keys.jobLiveInput(b.jobQueued)), 0, 'nothing reached B\'s input list');
        } finally {
          await t.redis.del(keys.jobHandoff(b.jobQueued), keys.jobLiveFrames(b.jobQueued), keys.jobLiveInput(b.jobQueued));
        }
      }])),
      'POST /api/jobs/:id/cancel': async () => {
        await probeIds('POST', (id) => `/api/jobs/${id}/cancel`, [b.jobQueued, b.jobFailed]);
        assert.equal(await t.redis.get(keys.jobStatus(b.jobQueued)), 'running', 'B\'s job still runs');
        assert.equal(await t.redis.exists(keys.jobCancel(b.jobQueued)), 0, 'no cancel flag was set');
      },
      'POST /api/jobs/:id/retry': async () => {
        const bQueue = await t.redis.llen(keys.orgJobs(b.orgId));
        await probeIds('POST', (id) => `/api/jobs/${id}/retry`, [b.jobFailed, b.jobDead]);
        assert.equal((await bSees(`/api/jobs/${b.jobFailed}`)).job.status, 'failed');
        assert.equal(await t.redis.llen(keys.orgJobs(b.orgId)), bQueue, 'nothing was requeued for B');
      },
      'GET /api/admin/dlq': async () => {
        const r = await asA('GET', '/api/admin/dlq');
        assert.deepEqual(r.body.entries.map((e: { id: string }) => e.id), [a.dlqEntryId]);
      },
      'GET /api/admin/dlq/:entryId': async () => { await probeIds('GET', (id) => `/api/admin/dlq/${id}`, [b.dlqEntryId]); },
      'POST /api/admin/dlq/:entryId/requeue': async () => {
        await probeIds('POST', (id) => `/api/admin/dlq/${id}/requeue`, [b.dlqEntryId]);
        assert.ok(await queue.dlqGet(b.dlqEntryId), 'B\'s entry is still dead-lettered');
      },
      'DELETE /api/admin/dlq': async () => {
        const r = await asA('DELETE', '/api/admin/dlq');
        assert.equal(r.body.purged, 1, 'A\'s own entry only');
        assert.ok(await queue.dlqGet(b.dlqEntryId), 'B\'s entry survives A\'s purge');
        assert.deepEqual((await bSees('/api/admin/dlq')).entries.map((e: { id: string }) => e.id), [b.dlqEntryId]);
      },
      'GET /api/admin/quota': async () => {
        const r = await asA('GET', '/api/admin/quota');
        assert.deepEqual(r.body, { orgId: a.orgId, maxConcurrent: 5, perMinute: null });
      },
      'PUT /api/admin/quota': async () => {
        const smuggled = await asA('PUT', '/api/admin/quota', { body: { orgId: b.orgId, maxConcurrent: 0 } });
        assert.equal(smuggled.status, 400, 'unknown fields (orgId) are refused');
        const r = await asA('PUT', '/api/admin/quota', { body: { maxConcurrent: 6 } });
        assert.equal(r.body.orgId, a.orgId);
        assert.deepEqual(await queue.getQuota(b.orgId), { maxConcurrent: 7, perMinute: null }, 'B\'s quota is untouched');
      },
      'POST /api/webhooks': async () => {
        const smuggled = await asA('POST', '/api/webhooks', { body: { url: 'http://127.0.0.1:9/x', events: ['*'], orgId: b.orgId } });
        assert.equal(smuggled.status, 400, 'unknown fields (orgId) are refused');
      },
      'GET /api/webhooks': async () => {
        const r = await asA('GET', '/api/webhooks');
        assert.deepEqual(r.body.webhooks.map((w: { id: string }) => w.id), [a.webhookId]);
      },
      'DELETE /api/webhooks/:id': async () => {
        await probeIds('DELETE', (id) => `/api/webhooks/${id}`, [b.webhookId]);
        assert.deepEqual((await bSees('/api/webhooks')).webhooks.map((w: { id: string }) => w.id), [b.webhookId]);
      },
      'GET /api/webhooks/:id/deliveries': async () => { await probeIds('GET', (id) => `/api/webhooks/${id}/deliveries`, [b.webhookId]); },
      'POST /api/schedules': async () => {
        // B's flow is not A's to schedule; B's ids in the body are refused, not obeyed.
        const bFlow = await asA('POST', '/api/schedules', { body: { flowId: b.flowId, cron: '0 8 * * *', timezone: 'UTC' } });
        assert.deepEqual([bFlow.status, bFlow.body.error.code], [404, 'NOT_FOUND']);
        for (const smuggled of [{ orgId: b.orgId }, { userId: b.userId }, { id: b.scheduleId }]) {
          const r = await asA('POST', '/api/schedules', { body: { providerId: 'demo', cron: '0 8 * * *', timezone: 'UTC', enabled: false, ...smuggled } });
          assert.equal(r.status, 400, `unknown fields are refused: ${JSON.stringify(smuggled)}`);
        }
        const bRows = await t.db.asSystem((tx) => tx.query('SELECT id FROM schedules WHERE org_id = $1', [b.orgId]));
        assert.deepEqual(bRows, [{ id: b.scheduleId }], 'B has its one schedule, nothing more');
      },
      'GET /api/schedules': async () => {
        const r = await asA('GET', '/api/schedules');
        assert.deepEqual(r.body.schedules.map((s: { id: string }) => s.id), [a.scheduleId]);
      },
      'GET /api/schedules/:id': async () => { await probeIds('GET', (id) => `/api/schedules/${id}`, [b.scheduleId]); },
      'PATCH /api/schedules/:id': async () => {
        await probeIds('PATCH', (id) => `/api/schedules/${id}`, [b.scheduleId], { body: { enabled: true, cron: '* * * * * *', metadata: { x: 1 } } });
        const s = (await bSees(`/api/schedules/${b.scheduleId}`)).schedule;
        assert.deepEqual([s.enabled, s.cron, s.metadata], [false, '0 8 * * *', { marker: b.metadataMarker }], 'B\'s schedule is as it was');
      },
      'DELETE /api/schedules/:id': async () => {
        await probeIds('DELETE', (id) => `/api/schedules/${id}`, [b.scheduleId]);
        assert.deepEqual((await bSees('/api/schedules')).schedules.map((s: { id: string }) => s.id), [b.scheduleId]);
      },
      'POST /api/schedules/:id/pause': async () => { await probeIds('POST', (id) => `/api/schedules/${id}/pause`, [b.scheduleId]); },
      'POST /api/schedules/:id/resume': async () => {
        await probeIds('POST', (id) => `/api/schedules/${id}/resume`, [b.scheduleId]);
        assert.equal((await bSees(`/api/schedules/${b.scheduleId}`)).schedule.enabled, false, 'B\'s schedule is still paused');
      },
      'GET /api/schedules/:id/runs': async () => {
        await probeIds('GET', (id) => `/api/schedules/${id}/runs`, [b.scheduleId]);
        const own = await asA('GET', `/api/schedules/${a.scheduleId}/runs`);
        assert.deepEqual(own.body.runs.map((r: { jobId: string }) => r.jobId), [a.jobFailed]);
        assert.deepEqual((await bSees(`/api/schedules/${b.scheduleId}/runs`)).runs.map((r: { jobId: string }) => r.jobId), [b.jobFailed]);
      },
      'GET /api/secrets': async () => {
        const r = await asA('GET', '/api/secrets');
        assert.ok(r.body.secrets.some((s: { name: string }) => s.name === a.secretName));
      },
      'GET /api/secrets/audit': async () => {
        for (const q of [`jobId=${b.jobQueued}`, `jobId=${b.jobDead}`, `name=${b.secretName}`]) {
          const r = await asA('GET', `/api/secrets/audit?${q}`);
          assert.equal(r.status, 200);
          assert.deepEqual(r.body.events, [], q);
        }
      },
      'DELETE /api/secrets/:name': async () => {
        await probeIds('DELETE', (id) => `/api/secrets/${id}`, [b.secretName]);
        assert.ok((await bSees('/api/secrets')).secrets.some((s: { name: string }) => s.name === b.secretName), 'B\'s secret survives');
      },
      'PUT /api/secrets/:name': async () => {
        const [bRowBefore] = await t.db.asSystem((tx) => tx.query('SELECT * FROM secrets WHERE org_id = $1 AND name = $2', [b.orgId, b.secretName]));
        // Names are per organisation: B's name stores a secret of A's own, B's row is untouched.
        const r = await asA('PUT', `/api/secrets/${b.secretName}`, { body: { value: 'alice-value' } });
        assert.equal(r.status, 201, r.text);
        const [bRowAfter] = await t.db.asSystem((tx) => tx.query('SELECT * FROM secrets WHERE org_id = $1 AND name = $2', [b.orgId, b.secretName]));
        assert.deepEqual(bRowAfter, bRowBefore);
        assert.equal((await t.db.asSystem((tx) => tx.query('SELECT 1 FROM secrets WHERE org_id = $1', [b.orgId]))).length, 1, 'B still has its one secret');
        for (const id of CRAFTED_IDS) {
          const c = await asA('PUT', `/api/secrets/${encodeURIComponent(id)}`, { body: { value: 'x' } });
          // A valid name (`null`, `0`) stores a secret of A's own; any other is refused.
          assert.ok([200, 201, 400, ...(id.length > 100 ? [414] : [])].includes(c.status), `PUT /api/secrets/${id.slice(0, 40)} → ${c.status}`);
        }
      },
      'GET /api/members': async () => {
        const r = await asA('GET', '/api/members');
        assert.deepEqual(r.body.members.map((m: { id: string }) => m.id).sort(), [a.userId, a.memberId, a.invitedId].sort());
      },
      'POST /api/members': async () => {
        // B's e-mail is taken (e-mails are unique across organisations): said without naming the organisation.
        const taken = await asA('POST', '/api/members', { body: { email: b.memberEmail, name: 'Mallory', password: 'correct-horse-42' } });
        assert.deepEqual([taken.status, taken.body.error.code], [409, 'EMAIL_TAKEN']);
        const smuggled = await asA('POST', '/api/members', { body: { email: `m-${randomUUID()}@example.com`, name: 'M', orgId: b.orgId } });
        assert.equal(smuggled.status, 400, 'unknown fields (orgId) are refused');
        const r = await asA('POST', '/api/members', { body: { email: `m-${randomUUID()}@example.com`, name: 'M', password: 'correct-horse-42' } });
        assert.equal(r.status, 201);
        const [row] = await t.db.asSystem((tx) => tx.query<{ org_id: string }>('SELECT org_id FROM users WHERE id = $1', [r.body.member.id]));
        assert.equal(row!.org_id, a.orgId, 'the member joins A');
        await ok('DELETE', `/api/members/${r.body.member.id}`, { token: a.token });
      },
      'POST /api/members/:id/invitation': async () => {
        const before = await t.db.asSystem((tx) => tx.query('SELECT * FROM member_invitations WHERE org_id = $1 ORDER BY id', [b.orgId]));
        await probeIds('POST', (id) => `/api/members/${id}/invitation`, [b.invitedId, b.memberId]);
        assert.deepEqual(await t.db.asSystem((tx) => tx.query('SELECT * FROM member_invitations WHERE org_id = $1 ORDER BY id', [b.orgId])), before, 'B\'s invitation is untouched');
      },
      'PATCH /api/members/:id': async () => {
        await probeIds('PATCH', (id) => `/api/members/${id}`, [b.memberId, b.invitedId], { body: { role: 'admin' } });
        const roles = await t.db.asSystem((tx) => tx.query<{ id: string; role: string }>('SELECT id, role FROM users WHERE org_id = $1 ORDER BY id', [b.orgId]));
        assert.deepEqual(roles.filter((x) => x.role === 'admin').map((x) => x.id), [b.userId], 'nobody of B was promoted');
      },
      'DELETE /api/members/:id': async () => {
        await probeIds('DELETE', (id) => `/api/members/${id}`, [b.memberId, b.invitedId]);
        const members = (await bSees('/api/members')).members.map((m: { id: string }) => m.id).sort();
        assert.deepEqual(members, [b.userId, b.memberId, b.invitedId].sort(), 'B\'s members are all there');
        assert.equal((await call('POST', '/api/auth/login', { body: { email: b.memberEmail, password: 'correct-horse-42' } })).status, 200, 'B\'s member still logs in');
      },
      'POST /api/invitations/accept': async () => {
        // Only B's own link accepts B's invitation: A's admin guessing or crafting tokens gets nowhere.
        for (const token of [randomUUID(), b.invitedId, b.memberId, b.orgId, ...CRAFTED_IDS]) {
          const r = await asA('POST', '/api/invitations/accept', { body: { token: token.slice(0, 200), password: 'another-pass-99-zebra' } });
          assert.deepEqual([r.status, r.body.error.code], [410, 'INVITATION_INVALID'], token.slice(0, 40));
        }
        const smuggled = await asA('POST', '/api/invitations/accept', { body: { token: 'x', password: 'another-pass-99-zebra', userId: b.invitedId } });
        assert.equal(smuggled.status, 400, 'unknown fields are refused');
        const [inv] = await t.db.asSystem((tx) => tx.query<{ accepted_at: Date | null }>('SELECT accepted_at FROM member_invitations WHERE user_id = $1', [b.invitedId]));
        assert.equal(inv!.accepted_at, null, 'B\'s invitation is still open');
      },
      'GET /api/workers': async () => {
        const r = await asA('GET', '/api/workers');
        assert.equal(r.status, 200);
        const w = r.body.workers.find((x: { workerId: string }) => x.workerId.startsWith('shared-worker-'));
        assert.ok(w, 'the fleet worker holding B\'s job is listed');
        // Nothing of B's job, not even that one runs (docs/observability.md "GET /api/workers").
        assert.deepEqual([w.state, w.jobsInFlight, w.jobs, 'stats' in w], ['ready', 0, [], false]);
        assert.equal(r.body.counts.busy, 0);
      },
      'GET /metrics': async () => {
        // Operators' endpoint, behind METRICS_TOKEN (its series carry organisation ids): a tenant's token is refused.
        for (const token of [a.token, undefined]) {
          const r = await call('GET', '/metrics', token ? { token } : {});
          assert.equal(r.status, 401);
          assertNoLeak('GET /metrics', r, '');
        }
      },
      // The platform operator's endpoints (OPERATOR_TOKEN): an organisation's token, even its admin's, is no operator's.
      'POST /api/operator/worker-enrolments': async () => {
        const r = await asA('POST', '/api/operator/worker-enrolments', { body: { name: 'tenant' } });
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
      },
      'GET /api/operator/worker-enrolments': async () => {
        const r = await asA('GET', '/api/operator/worker-enrolments');
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
      },
      'PUT /api/operator/providers/:id/pacing': async () => {
        for (const id of ['demo', randomUUID()]) {
          const r = await asA('PUT', `/api/operator/providers/${id}/pacing`, { body: { minSpacingMs: 1 } });
          assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY'], id);
        }
        assert.equal(await t.redis.hget(keys.provider('demo'), 'pacing'), '{}', 'the demo provider is still unpaced');
      },
      'PUT /api/operator/providers/:id/account-concurrency': async () => {
        for (const id of ['demo', randomUUID()]) {
          const r = await asA('PUT', `/api/operator/providers/${id}/account-concurrency`, { body: { maxConcurrentPerAccount: 100 } });
          assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY'], id);
        }
      },
      'GET /api/operator/modules': async () => {
        const r = await asA('GET', '/api/operator/modules');
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
      },
      'POST /api/operator/modules': async () => {
        const r = await asA('POST', '/api/operator/modules', { body: { manifest: { name: 'evil', version: '1.0.0' }, files: {} } });
        assert.equal(r.status === 403 || r.status === 400, true, `refused: ${r.status}`);
        if (r.status === 403) assert.equal(r.body.error.code, 'OPERATOR_ONLY');
      },
      'GET /api/admin/modules': async () => {
        // Modules are the platform's; an organisation's admin lists those whose manifest allows its organisation.
        const r = await asA('GET', '/api/admin/modules');
        assert.equal(r.status, 200, r.text);
        assertNoLeak('GET /api/admin/modules', r, '');
      },
      'GET /api/operator/system/tasks': async () => {
        const r = await asA('GET', '/api/operator/system/tasks');
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
      },
      'GET /api/operator/system/tasks/:id': async () => {
        for (const id of [randomUUID(), ...CRAFTED_IDS.filter((c) => c.length <= 100)]) {
          const r = await asA('GET', `/api/operator/system/tasks/${encodeURIComponent(id)}`);
          assert.equal(r.status === 403 || r.status === 400 || r.status === 404, true, `${id}: ${r.status}`);
          if (r.status === 403) assert.equal(r.body.error.code, 'OPERATOR_ONLY');
        }
      },
      'GET /api/operator/system/tasks/:id/logs': async () => {
        // An event stream: no HEAD route, like a job's logs.
        const path = `/api/operator/system/tasks/${randomUUID()}/logs`;
        const r = await call('GET', path, { token: a.token });
        assertNoLeak(`GET ${path}`, r, path);
        assert.deepEqual([r.status, (r.body as { error: { code: string } }).error.code], [403, 'OPERATOR_ONLY']);
      },
      'POST /api/operator/system/check': async () => {
        const r = await asA('POST', '/api/operator/system/check', { body: {} });
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
      },
      'POST /api/operator/system/update': async () => {
        const r = await asA('POST', '/api/operator/system/update', { body: { runMigrations: false } });
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
        assert.equal(await t.redis.llen(keys.opsJobs), 0, 'no task was queued');
      },
      'POST /api/operator/session': async () => {
        // An organisation's API token is no operator token: no operator cookie for it.
        const r = await asA('POST', '/api/operator/session', { body: { token: a.token } });
        assert.deepEqual([r.status, r.body.error.code], [401, 'INVALID_CREDENTIALS']);
        assert.equal(r.headers.get('set-cookie'), null, 'no cookie set');
      },
      'GET /api/operator/session': async () => {
        const r = await asA('GET', '/api/operator/session');
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
      },
      'DELETE /api/operator/session': async () => {
        // Without an operator session it only clears the operator's cookies: nothing of anyone's to touch.
        const r = await asA('DELETE', '/api/operator/session');
        assert.equal(r.status, 204);
      },
      'GET /api/operator/worker-config': async () => {
        const r = await asA('GET', '/api/operator/worker-config');
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
      },
      'PUT /api/operator/worker-config': async () => {
        const r = await asA('PUT', '/api/operator/worker-config', { body: { version: 0, config: { global: { maxJobs: 0 } } } });
        assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY']);
        assert.equal(await t.redis.exists(keys.workerConfig), 0, 'the workers\' configuration was not written');
      },
      'POST /api/operator/workers/:id/revoke': async () => {
        for (const id of ['shared-worker-1', randomUUID(), ...CRAFTED_IDS.filter((c) => c.length <= 100)]) {
          const r = await asA('POST', `/api/operator/workers/${encodeURIComponent(id)}/revoke`);
          assert.deepEqual([r.status, r.body.error.code], [403, 'OPERATOR_ONLY'], id);
        }
        assert.equal(await t.redis.hlen(keys.workersRevoked), 0, 'nobody was revoked');
      },
    };

    it('covers every route of the app: each is attacked below or holds no tenant data', () => {
      assert.ok(routes.size > 20, `route table read: ${[...routes].join(', ')}`);
      const covered = (key: string): boolean => key in attacks || NO_TENANT_DATA.has(key) || isDocsRoute(key)
        // HEAD routes are Fastify's own copies of GET routes; every GET probe sends HEAD too.
        || (key.startsWith('HEAD ') && covered(`GET ${key.slice(5)}`));
      const missing = [...routes].filter((k) => !covered(k)).sort();
      assert.deepEqual(missing, [], `routes without an attack in test/control-plane/tenant-isolation.test.ts: ${missing.join(', ')}`);
      const stale = Object.keys(attacks).filter((k) => !routes.has(k));
      assert.deepEqual(stale, [], 'attacks for routes the app no longer has');
    });

    it('answers every route called as A with B\'s ids, guessed and crafted ids and bodies with 404 (or its documented status), leaking nothing of B', async () => {
      // The detector itself: B's own view of its job holds B's markers, and is caught.
      const own = await call('GET', `/api/jobs/${b.jobQueued}`, { token: b.token });
      assert.throws(() => assertNoLeak('B reading its own job', own, ''), /leaks B's/);
      for (const [route, attack] of Object.entries(attacks)) {
        await attack().catch((e: unknown) => { throw new Error(`${route}: ${(e as Error).message}`, { cause: e }); });
      }
      for (const key of [...NO_TENANT_DATA.keys(), 'GET /docs/json', 'GET /docs/yaml']) {
        const path = key.split(' ')[1]!;
        assertNoLeak(key, await call('GET', path, { token: a.token }), '');
      }
    });

    it('refuses A\'s requests without a token, and with a token signed by another key', async () => {
      const other = await new TokenService(`${TEST_JWT_SECRET}-other-key`, 3600).sign({ userId: b.userId, orgId: b.orgId });
      for (const path of [`/api/jobs/${b.jobQueued}`, `/api/flows/${b.flowId}`, '/api/jobs']) {
        for (const token of [undefined, other]) {
          const r = await call('GET', path, token ? { token } : {});
          assert.equal(r.status, 401, path);
          assertNoLeak(`GET ${path}`, r, path);
        }
      }
    });

    // ── row-level security ──────────────────────────────────────────────────────────────────────────────────────

    /** Tables that hold no organisation data, and why (every other table must carry org_id and forced RLS). */
    const GLOBAL_TABLES = new Map([
      ['providers', 'the provider catalogue, the same for everyone, written by migrations only (sri_app: SELECT)'],
      ['schema_migrations', 'the migration loader\'s record (no grant to sri_app)'],
      ['ops_tasks', 'the operations worker\'s audit of system updates and checks: the platform\'s, not an organisation\'s, read only through the operator\'s endpoints (OPERATOR_TOKEN)'],
    ]);

    interface TableInfo { name: string; orgColumn: string; rls: boolean; forced: boolean; pk: string[]; referenced: boolean }

    async function orgTables(db: Database): Promise<{ org: TableInfo[]; other: string[] }> {
      return db.asSystem(async (tx) => {
        const rows = await tx.query<{ name: string; rls: boolean; forced: boolean; has_org: boolean; pk: string[] | null; referenced: boolean }>(`
          SELECT c.relname AS name, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
                 EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped) AS has_org,
                 (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                   WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
                 EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = c.oid AND f.contype = 'f') AS referenced
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
           ORDER BY c.relname`);
        const org = rows.filter((r) => r.has_org || r.name === 'organisations').map((r) => ({
          name: r.name, orgColumn: r.name === 'organisations' ? 'id' : 'org_id', rls: r.rls, forced: r.forced, pk: r.pk ?? [], referenced: r.referenced,
        }));
        return { org, other: rows.filter((r) => !r.has_org && r.name !== 'organisations').map((r) => r.name) };
      });
    }

    /** Rolls back whatever `fn` did as `orgId` and returns what it returned. */
    async function rolledBack<T>(db: Database, orgId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
      const marker = new Error('roll back');
      let out: T | undefined;
      await db.withOrg(orgId, async (tx) => { out = await fn(tx); throw marker; }).catch((e: unknown) => { if (e !== marker) throw e; });
      return out as T;
    }

    const privilege = (db: Database, table: string, what: string) =>
      db.asSystem(async (tx) => (await tx.query<{ ok: boolean }>('SELECT has_table_privilege($1, $2, $3) AS ok', ['sri_app', table, what]))[0]!.ok);

    it('has row-level security enabled and forced on every table holding organisation data, with sri_app neither superuser nor BYPASSRLS', async () => {
      const { org, other } = await orgTables(t.db);
      for (const must of ['organisations', 'users', 'provider_connections', 'flows', 'jobs', 'webhooks', 'webhook_deliveries', 'secrets', 'secret_audit', 'schedules', 'member_invitations']) {
        assert.ok(org.some((x) => x.name === must), `${must} is found as organisation data`);
      }
      const unprotected = org.filter((x) => !x.rls || !x.forced).map((x) => `${x.name} (enabled ${x.rls}, forced ${x.forced})`);
      assert.deepEqual(unprotected, [], 'tables with organisation data but without ENABLE + FORCE ROW LEVEL SECURITY');
      const unknown = other.filter((n) => !GLOBAL_TABLES.has(n));
      assert.deepEqual(unknown, [], 'tables without org_id that are not listed as global: give them org_id and RLS, or list them with a reason');
      const role = await t.db.asSystem((tx) => tx.query<{ rolsuper: boolean; rolbypassrls: boolean }>("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'sri_app'"));
      assert.deepEqual(role, [{ rolsuper: false, rolbypassrls: false }]);
      // Every policy that applies to sri_app filters by the transaction's organisation.
      const policies = await t.db.asSystem((tx) => tx.query<{ tablename: string; policyname: string; qual: string | null; with_check: string | null }>(
        "SELECT tablename, policyname, qual, with_check FROM pg_policies WHERE 'sri_app' = ANY (roles) OR 'public' = ANY (roles)"));
      for (const x of org) assert.ok(policies.some((p) => p.tablename === x.name), `${x.name} has a policy for sri_app`);
      for (const p of policies) {
        assert.match(p.qual ?? '', /current_setting\('app\.org_id'/, `${p.tablename}.${p.policyname} USING filters by app.org_id`);
        if (p.with_check !== null) assert.match(p.with_check, /current_setting\('app\.org_id'/, `${p.tablename}.${p.policyname} WITH CHECK`);
      }
      // A view or a SECURITY DEFINER function runs with its owner's rights, which the owner's all-rows policy
      // (system_access) would let through: sri_app must reach none.
      const bypasses = await t.db.asSystem((tx) => tx.query<{ name: string }>(`
        SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('v', 'm') AND n.nspname = 'public' AND has_table_privilege('sri_app', c.oid, 'SELECT')
        UNION ALL
        SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prosecdef AND n.nspname = 'public' AND has_function_privilege('sri_app', p.oid, 'EXECUTE')`));
      assert.deepEqual(bypasses, [], 'views or SECURITY DEFINER functions sri_app can use');
    });

    it('a query that forgot its organisation filter sees only the caller\'s rows, in every organisation table', async () => {
      const { org } = await orgTables(t.db);
      for (const table of org) {
        const col = table.orgColumn;
        const perOrg = await t.db.asSystem((tx) => tx.query<{ o: string; n: number }>(`SELECT ${col} AS o, count(*)::int AS n FROM ${table.name} GROUP BY 1`));
        const count = (o: string) => perOrg.find((r) => r.o === o)?.n ?? 0;
        assert.ok(count(a.orgId) > 0 && count(b.orgId) > 0, `${table.name} holds rows of both A and B (${JSON.stringify(perOrg)}), so the check means something`);
        for (const x of [a, b]) {
          const seen = await t.db.withOrg(x.orgId, (tx) => tx.query<Record<string, unknown>>(`SELECT * FROM ${table.name}`));
          assert.equal(seen.length, count(x.orgId), `${table.name}: every row of the organisation, as that organisation`);
          assert.ok(seen.every((r) => r[col] === x.orgId), `${table.name}: nothing of another organisation`);
        }
        for (const nobody of [randomUUID(), '', b.orgId.toUpperCase(), `${b.orgId}' OR '1'='1`]) {
          assert.equal((await t.db.withOrg(nobody, (tx) => tx.query(`SELECT * FROM ${table.name}`))).length, 0, `${table.name} as org "${nobody}"`);
        }
      }
      // The queries of the code base, which carry no organisation filter of their own, behave the same.
      await t.db.withOrg(a.orgId, async (tx) => {
        assert.equal(await findJob(tx, b.jobQueued), undefined);
        assert.equal(await findFlow(tx, b.flowId), undefined);
        assert.ok((await listJobs(tx, 1, 100)).jobs.every((j) => j.org_id === a.orgId));
        assert.ok((await listFlows(tx)).every((f) => f.org_id === a.orgId));
      });
    });

    it('UPDATE and DELETE without WHERE touch only the caller\'s rows; rows cannot be inserted into or moved to another organisation', async () => {
      const { org } = await orgTables(t.db);
      for (const table of org) {
        const col = table.orgColumn;
        const bRowsBefore = await t.db.asSystem((tx) => tx.query(`SELECT * FROM ${table.name} WHERE ${col} = $1 ORDER BY 1`, [b.orgId]));
        const [bRow] = await t.db.asSystem((tx) => tx.query<Record<string, unknown>>(`SELECT row_to_json(x.*) AS r FROM ${table.name} x WHERE ${col} = $1 LIMIT 1`, [b.orgId]));
        const copy = { ...(bRow!['r'] as Record<string, unknown>) };
        // A new row of B: fresh values for the primary key's columns other than the organisation.
        for (const k of table.pk) if (k !== col) copy[k] = `forged-${randomUUID()}`;
        const insert = (tx: Tx) => tx.query(`INSERT INTO ${table.name} SELECT * FROM json_populate_record(NULL::${table.name}, $1::json)`, [JSON.stringify(copy)]);
        await assert.rejects(t.db.withOrg(a.orgId, insert), /row-level security/, `${table.name}: A inserts a row of B`);

        if (await privilege(t.db, table.name, 'UPDATE')) {
          // Moving A's rows into B violates the policy's WITH CHECK.
          await assert.rejects(t.db.withOrg(a.orgId, (tx) => tx.query(`UPDATE ${table.name} SET ${col} = $1`, [b.orgId])), /row-level security/, `${table.name}: A moves its rows to B`);
          const touched = await rolledBack(t.db, a.orgId, (tx) => tx.query<Record<string, unknown>>(`UPDATE ${table.name} SET ${col} = ${col} RETURNING ${col}`));
          assert.ok(touched.length > 0 && touched.every((r) => r[col] === a.orgId), `${table.name}: UPDATE without WHERE touched ${JSON.stringify(touched)}`);
        } else {
          await assert.rejects(t.db.withOrg(a.orgId, (tx) => tx.query(`UPDATE ${table.name} SET ${col} = ${col}`)), /permission denied/, `${table.name} is append-only for sri_app`);
        }
        if (!(await privilege(t.db, table.name, 'DELETE'))) {
          await assert.rejects(t.db.withOrg(a.orgId, (tx) => tx.query(`DELETE FROM ${table.name}`)), /permission denied/, `${table.name} is append-only for sri_app`);
        } else if (!table.referenced) {
          // (Tables other rows reference would fail the DELETE on their foreign keys; the UPDATE above shows the
          // same USING clause at work on them.)
          const gone = await rolledBack(t.db, a.orgId, (tx) => tx.query<Record<string, unknown>>(`DELETE FROM ${table.name} RETURNING ${col}`));
          assert.ok(gone.length > 0 && gone.every((r) => r[col] === a.orgId), `${table.name}: DELETE without WHERE removed ${JSON.stringify(gone)}`);
        }
        const bRowsAfter = await t.db.asSystem((tx) => tx.query(`SELECT * FROM ${table.name} WHERE ${col} = $1 ORDER BY 1`, [b.orgId]));
        assert.deepEqual(bRowsAfter, bRowsBefore, `${table.name}: B's rows are as they were`);
      }
    });
  });
}

backendSuite('pglite');
backendSuite('postgres');

describe('GET /metrics without METRICS_TOKEN', () => {
  let t: TestApi;
  before(async () => { t = await startTestApi(); });
  after(async () => { await t?.stop(); });

  // The queue series are labelled with organisation ids (sri_queue_length{org=…}): without METRICS_TOKEN they are
  // left out of /metrics, so no tenant reads another organisation's id or queue depth there.
  it('shows no organisation id to a caller without the metrics token', async () => {
    const b = await t.createOrg();
    await t.runJob(b);
    const r = await fetch(`${t.api.url}/metrics`);
    const text = await r.text();
    assert.ok(r.status === 401 || !text.includes(b.orgId), `GET /metrics (no token) → ${r.status}, names organisation ${b.orgId}`);
  });
});
