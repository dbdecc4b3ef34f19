/**
 * API hardening on real services (PGlite, redis-server, s3rver): login and register rate-limited per client,
 * tokens pinned to HS256 with issuer, type, expiry and age checked, body size limits, security headers on every
 * answer, and no stack trace, SQL or driver message in any error.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { AUTH_BODY_LIMIT_BYTES } from '../../src/control-plane/http/routes/auth.ts';
import { SECURITY_HEADERS } from '../../src/control-plane/http/security-headers.ts';
import { BODY_LIMIT_BYTES, startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { startTestRedis, startTestS3, TEST_SIGNING_SECRET, TEST_JWT_SECRET } from '../support/services.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { openTestDatabase } from '../support/database.ts';

const JWT_SECRET = TEST_JWT_SECRET;
const KEY = new TextEncoder().encode(JWT_SECRET);
const AUTH_LIMIT = 4;

describe('API hardening', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3Server: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  let redis: Redis;
  let blobStore: BlobStore;
  let api: ApiHandle;
  /** What the next withOrg does instead of its work (a simulated database failure); undefined: the real one. */
  let sabotage: ((orgId: string) => Promise<never>) | undefined;
  let token = '';
  let userId = '';
  let orgId = '';
  let startInstance: () => Promise<ApiHandle>;

  async function http(method: string, path: string, opts: { token?: string; body?: string; headers?: Record<string, string> } = {}) {
    const r = await fetch(api.url + path, {
      method, ...(opts.body === undefined ? {} : { body: opts.body }),
      headers: { ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }), ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
    });
    const text = await r.text();
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: r.status, headers: r.headers, text, body };
  }

  before(async () => {
    [redisServer, s3Server, db] = await Promise.all([startTestRedis(), startTestS3(), openTestDatabase()]);
    await migrate(db);
    // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
    await seedDemoProvider(db);
    redis = createRedis(redisServer.url);
    const config = loadApiConfig({
      JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
      PORT: '0', LOG_LEVEL: 'silent', AUTH_RATE_LIMIT_MAX: String(AUTH_LIMIT), AUTH_RATE_LIMIT_WINDOW_MS: '60000', JWT_EXPIRES_IN_SECONDS: '600',
    });
    blobStore = new BlobStore(createS3Client(config));
    const real = db;
    const wrapped: Database = {
      kind: real.kind, asSystem: (fn) => real.asSystem(fn), ping: () => real.ping(), close: () => real.close(),
      withOrg: (id, fn) => {
        const s = sabotage;
        sabotage = undefined;
        return s ? s(id) : real.withOrg(id, fn);
      },
    };
    startInstance = () => startApi(config, { db: wrapped, redis, blobStore, logger: createLogger({ name: 'api-test', level: 'silent' }) });
    api = await startInstance();
    const reg = await http('POST', '/api/auth/register', { body: JSON.stringify({ email: `h-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'H', orgName: 'H' }) });
    assert.equal(reg.status, 201, reg.text);
    ({ token } = reg.body);
    userId = reg.body.user.id;
    orgId = reg.body.org.id;
  });

  after(async () => {
    await api?.close();
    redis?.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([redisServer?.stop(), s3Server?.close()]);
  });

  const sign = (claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }) =>
    new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(KEY);
  const now = () => Math.floor(Date.now() / 1000);
  const good = { sub: '', org: '', iss: 'sri-control-plane' };

  describe('tokens', () => {
    before(() => { Object.assign(good, { sub: userId, org: orgId }); });

    it('accepts the API\'s own token', async () => {
      assert.equal((await http('GET', '/api/me', { token })).status, 200);
      assert.equal((await http('GET', '/api/me', { token: await sign({ ...good, iat: now(), exp: now() + 60 }) })).status, 200);
    });

    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const cases: Record<string, () => Promise<string>> = {
      'alg "none" (unsigned)': async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...good, iat: now(), exp: now() + 60 })}.`,
      'HS512 with the right secret': () => sign({ ...good, iat: now(), exp: now() + 60 }, { alg: 'HS512', typ: 'JWT' }),
      'HS256 with another secret': () => new SignJWT({ ...good, iat: now(), exp: now() + 60 }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .sign(new TextEncoder().encode('another-secret-of-at-least-32-characters')),
      'RS256 (an asymmetric algorithm)': () => {
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        return new SignJWT({ ...good, iat: now(), exp: now() + 60 }).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).sign(privateKey);
      },
      'expired': () => sign({ ...good, iat: now() - 120, exp: now() - 60 }),
      'without exp': () => sign({ ...good, iat: now() }),
      'without iat': () => sign({ ...good, exp: now() + 60 }),
      'older than JWT_EXPIRES_IN_SECONDS though exp is far away': () => sign({ ...good, iat: now() - 3600, exp: now() + 86_400 }),
      'another issuer': () => sign({ ...good, iss: 'someone-else', iat: now(), exp: now() + 60 }),
      'another type': () => sign({ ...good, iat: now(), exp: now() + 60 }, { alg: 'HS256', typ: 'at+jwt' }),
      'without sub': () => sign({ org: orgId, iss: good.iss, iat: now(), exp: now() + 60 }),
      'a tampered payload': async () => {
        const [h, , s] = token.split('.');
        return `${h}.${b64({ ...good, org: 'another-org', iat: now(), exp: now() + 60 })}.${s}`;
      },
    };
    for (const [name, make] of Object.entries(cases)) {
      it(`refuses a token ${name} with TOKEN_INVALID`, async () => {
        const r = await http('GET', '/api/me', { token: await make() });
        assert.equal(r.status, 401, r.text);
        assert.equal(r.body.error.code, 'TOKEN_INVALID');
      });
    }

    it('asks for a token when the header is missing or not a bearer token', async () => {
      const variants: Record<string, string>[] = [{}, { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, { authorization: 'Bearer' }];
      for (const headers of variants) {
        const r = await http('GET', '/api/me', { headers });
        assert.equal(r.status, 401);
        assert.equal(r.body.error.code, 'UNAUTHENTICATED');
      }
    });
  });

  describe('body limits', () => {
    it(`refuses login and register bodies over ${AUTH_BODY_LIMIT_BYTES} bytes, and any body over ${BODY_LIMIT_BYTES}, with PAYLOAD_TOO_LARGE`, async () => {
      const big = (n: number) => JSON.stringify({ email: 'a@example.com', password: 'x'.repeat(n) });
      for (const [path, body, opts] of [
        ['/api/auth/login', big(AUTH_BODY_LIMIT_BYTES), {}],
        ['/api/auth/register', big(AUTH_BODY_LIMIT_BYTES), {}],
        ['/api/flows', JSON.stringify({ steps: 'x'.repeat(BODY_LIMIT_BYTES) }), { token }],
      ] as const) {
        const r = await http('POST', path, { body, ...opts });
        assert.equal(r.status, 413, `${path}: ${r.text.slice(0, 200)}`);
        assert.equal(r.body.error.code, 'PAYLOAD_TOO_LARGE');
      }
    });
  });

  describe('errors', () => {
    const leaks = [/SELEC/i, /syntax error/i, /\bat .+:\d+:\d+/, /\/work\/|\.ts\b|node_modules/, /42601|pglite|postgres/i, /Unexpected token|position \d+/];
    const clean = (text: string) => { for (const l of leaks) assert.doesNotMatch(text, l); };

    it('answers a database failure with INTERNAL and the request id — no SQL, no stack, no driver message', async () => {
      sabotage = () => {
        const e = Object.assign(new Error('syntax error at or near "SELEC": SELEC * FROM users WHERE id = $1'), { code: '42601' });
        e.stack = `${e.message}\n    at Object.query (/work/main/node_modules/@electric-sql/pglite/dist/index.js:1:2)\n    at run (/work/main/src/control-plane/db/pglite.ts:40:5)`;
        return Promise.reject(e);
      };
      const r = await http('GET', '/api/me', { token });
      assert.equal(r.status, 500);
      assert.equal(r.body.error.code, 'INTERNAL');
      assert.match(r.body.error.message, /logged with request id \S+/);
      clean(r.text);
    });

    it('answers a real SQL error of PGlite the same way', async () => {
      sabotage = (id) => db.withOrg(id, async (tx) => { await tx.query('SELEC broken FROM nowhere'); throw new Error('unreachable'); });
      const r = await http('GET', '/api/providers', { token });
      assert.equal(r.status, 500, r.text);
      assert.equal(r.body.error.code, 'INTERNAL');
      clean(r.text);
    });

    it('answers malformed JSON, a wrong content type, validation errors and unknown routes with a code and no internals', async () => {
      const malformed = await http('POST', '/api/auth/login', { body: '{"email": "a@example.com", "password": ' });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.error.code, 'MALFORMED_BODY');
      const poisoned = await http('POST', '/api/flows', { token, body: '{"__proto__": {"admin": true}}' });
      assert.equal(poisoned.status, 400);
      const media = await http('POST', '/api/auth/login', { body: '<email>a</email>', headers: { 'content-type': 'application/xml' } });
      assert.equal(media.status, 415);
      assert.equal(media.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
      const invalid = await http('POST', '/api/flows', { token, body: JSON.stringify({ providerId: 5 }) });
      assert.equal(invalid.status, 400);
      assert.equal(invalid.body.error.code, 'VALIDATION_FAILED');
      const missing = await http('GET', '/api/nope');
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'ROUTE_NOT_FOUND');
      for (const r of [malformed, poisoned, media, invalid, missing]) {
        clean(r.text);
        assert.deepEqual(Object.keys(r.body), ['error']);
        assert.ok(!('stack' in r.body.error));
      }
    });
  });

  describe('security headers', () => {
    it('sends them on success, error, unknown route and health answers; API answers are not cached', async () => {
      const answers = {
        me: await http('GET', '/api/me', { token }),
        unauthenticated: await http('GET', '/api/me'),
        missing: await http('GET', '/api/nope'),
        health: await http('GET', '/health'),
      };
      for (const [name, r] of Object.entries(answers)) {
        for (const [h, v] of Object.entries(SECURITY_HEADERS)) assert.equal(r.headers.get(h), v, `${name}: ${h}`);
      }
      assert.equal(answers.me.headers.get('cache-control'), 'no-store');
      assert.equal(answers.unauthenticated.headers.get('cache-control'), 'no-store');
      assert.equal(answers.health.headers.get('x-powered-by'), null);
    });

    it('sends them on a hijacked answer too: the live log\'s event stream', async () => {
      assert.equal((await http('POST', '/api/providers/demo/connect', { token, body: JSON.stringify({ cookies: [] }) })).status, 200);
      const flow = await http('POST', '/api/flows', { token, body: JSON.stringify({ providerId: 'demo', version: '1.0.0', name: 'F', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }] }) });
      assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, { token, body: '{}' })).status, 200);
      const run = await http('POST', '/api/run', { token, body: JSON.stringify({ providerId: 'demo' }) });
      assert.equal(run.status, 202, run.text);
      const ctrl = new AbortController();
      const res = await fetch(`${api.url}/api/jobs/${run.body.jobId}/logs`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: ctrl.signal });
      try {
        assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
        for (const [h, v] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers.get(h), v, h);
      } finally {
        ctrl.abort();
        await res.body?.cancel().catch(() => {});
      }
    });

    it('lets the OpenAPI UI load its own scripts and styles, and nothing from elsewhere', async () => {
      const r = await http('GET', '/docs/static/index.html');
      assert.equal(r.status, 200);
      const csp = r.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /script-src 'self'/);
      assert.doesNotMatch(csp, /script-src[^;]*'unsafe-inline'/);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    });
  });

  describe('rate limits', () => {
    // The tests above used the auth routes: their counts are in Redis (shared by every API process), cleared here.
    before(async () => {
      await api.close();
      for (const k of await redis.keys(`${keys.authRateLimitPrefix}*`)) await redis.del(k);
      api = await startInstance();
    });

    it(`allows ${AUTH_LIMIT} logins per window and client, then answers 429 RATE_LIMITED with Retry-After`, async () => {
      const login = () => http('POST', '/api/auth/login', { body: JSON.stringify({ email: 'nobody@example.com', password: 'wrong-password-1' }) });
      for (let i = 0; i < AUTH_LIMIT; i++) assert.equal((await login()).status, 401);
      const limited = await login();
      assert.equal(limited.status, 429, limited.text);
      assert.equal(limited.body.error.code, 'RATE_LIMITED');
      assert.match(limited.body.error.message, /try again in \d+ s/);
      assert.ok(Number(limited.headers.get('retry-after')) > 0);
    });

    it('limits register the same way, and leaves other endpoints alone', async () => {
      const register = () => http('POST', '/api/auth/register', { body: JSON.stringify({ email: `r-${randomUUID()}@example.com`, password: 'weak', name: 'R', orgName: 'R' }) });
      const statuses: number[] = [];
      for (let i = 0; i < AUTH_LIMIT + 1; i++) statuses.push((await register()).status);
      // Counted per route: the logins above do not count here.
      assert.deepEqual(statuses, [...Array(AUTH_LIMIT).fill(400), 429]);
      assert.equal((await http('GET', '/api/me', { token })).status, 200);
      assert.equal((await http('GET', '/health')).status, 200);
    });
  });
});
