/**
 * The dashboard's browser session and its serving, over HTTP against a real API (redis-server, s3rver, PGlite):
 * the HttpOnly session cookie, CSRF on state-changing requests it authenticates, logout revoking the token on every
 * API process, bearer tokens unchanged; and the app at / with its Content-Security-Policy, never shadowing the API.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestApi, type TestApi } from '../support/api.ts';
import { keys } from '../../src/shared/keys.ts';
import { WEB_DIST_DIR } from '../../src/control-plane/http/web-app.ts';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';

interface Answer { status: number; headers: Headers; text: string; body: any; cookies: string[] }

describe('the dashboard\'s session and serving', () => {
  let t: TestApi;
  const email = `web-${randomUUID()}@example.com`;
  const password = 'correct-horse-battery-42';

  async function http(method: string, path: string, opts: { body?: unknown; cookie?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
    const r = await fetch(t.api.url + path, {
      method,
      headers: {
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(opts.cookie ? { cookie: opts.cookie } : {}),
        ...opts.headers,
      },
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    });
    const text = await r.text();
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: r.status, headers: r.headers, text, body, cookies: r.headers.getSetCookie() };
  }

  /** `name=value` of a Set-Cookie line, and its attributes lower-cased. */
  const cookieOf = (lines: string[], name: string) => {
    const line = lines.find((l) => l.startsWith(`${name}=`));
    assert.ok(line, `Set-Cookie ${name} in ${lines.join(' | ')}`);
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    return { pair: pair!, value: decodeURIComponent(pair!.slice(name.length + 1)), attrs: attrs.map((a) => a.toLowerCase()) };
  };

  async function login() {
    const r = await http('POST', '/api/session', { body: { email, password } });
    assert.equal(r.status, 200, r.text);
    const session = cookieOf(r.cookies, 'sri_session');
    const csrf = cookieOf(r.cookies, 'sri_csrf');
    return { r, session, csrf, cookie: `${session.pair}; ${csrf.pair}` };
  }

  before(async () => {
    // The API serves dist/web: built here when it is missing or older than src/web (as `sri up` does).
    await ensureWebBuilt();
    t = await startTestApi();
    const reg = await http('POST', '/api/auth/register', { body: { email, password, name: 'Ana', orgName: 'Acme' } });
    assert.equal(reg.status, 201, reg.text);
  });

  after(async () => {
    await t?.stop();
  });

  it('logs in into an HttpOnly, SameSite=Strict cookie scoped to /api, with a readable CSRF cookie, and no token in the body', async () => {
    const { r, session, csrf } = await login();
    assert.deepEqual(Object.keys(r.body).sort(), ['csrfToken', 'expiresAt', 'org', 'user']);
    assert.equal(r.body.user.email, email);
    assert.equal(r.body.csrfToken, csrf.value);
    assert.ok(!r.text.includes(session.value), 'the session token is not in the body');
    assert.ok(session.attrs.includes('httponly'));
    assert.ok(session.attrs.includes('samesite=strict'));
    assert.ok(session.attrs.includes('path=/api'));
    assert.ok(!session.attrs.includes('secure'), 'plain HTTP with SESSION_COOKIE_SECURE=auto: not Secure');
    assert.ok(session.attrs.some((a) => /^max-age=\d+$/.test(a) && Number(a.slice(8)) > 3000));
    assert.ok(!csrf.attrs.includes('httponly'), 'the page reads the CSRF cookie');
    assert.ok(csrf.attrs.includes('samesite=strict'));
    assert.ok(csrf.attrs.includes('path=/'));
  });

  it('answers INVALID_CREDENTIALS for a wrong password, and sets no cookie', async () => {
    const r = await http('POST', '/api/session', { body: { email, password: 'wrong-password-123' } });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'INVALID_CREDENTIALS');
    assert.deepEqual(r.cookies, []);
  });

  it('authenticates reads by the cookie alone, and refuses state-changing requests without the session\'s CSRF token', async () => {
    const { cookie, csrf } = await login();
    const me = await http('GET', '/api/session', { cookie });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.user.email, email);
    assert.equal(me.body.csrfToken, csrf.value);
    assert.equal((await http('GET', '/api/providers', { cookie })).status, 200);

    const connect = (headers: Record<string, string> = {}) => http('POST', '/api/providers/demo/connect', { cookie, body: { cookies: [] }, headers });
    const none = await connect();
    assert.equal(none.status, 403, none.text);
    assert.equal(none.body.error.code, 'CSRF_TOKEN_INVALID');
    const other = await login();
    const wrong = await connect({ 'x-csrf-token': other.csrf.value });
    assert.equal(wrong.status, 403, 'another session\'s CSRF token does not do');
    const right = await connect({ 'x-csrf-token': csrf.value });
    assert.equal(right.status, 200, right.text);
  });

  it('leaves bearer tokens as they were: no cookie, no CSRF token', async () => {
    const reg = await http('POST', '/api/auth/login', { body: { email, password } });
    assert.equal(reg.status, 200);
    assert.deepEqual(reg.cookies, [], 'the API login sets no cookie');
    const r = await http('POST', '/api/providers/demo/connect', { body: { cookies: [] }, headers: { authorization: `Bearer ${reg.body.token}` } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await http('GET', '/api/session', { headers: { authorization: `Bearer ${reg.body.token}` } })).status, 200);
  });

  it('logs out: both cookies cleared, the token refused from then on, and the denylist entry expires with the token', async () => {
    const { cookie, csrf, session } = await login();
    const refused = await http('DELETE', '/api/session', { cookie });
    assert.equal(refused.status, 403, 'a logout needs the CSRF token too (no other site can end the session)');
    const out = await http('DELETE', '/api/session', { cookie, headers: { 'x-csrf-token': csrf.value } });
    assert.equal(out.status, 204, out.text);
    for (const name of ['sri_session', 'sri_csrf']) {
      const c = cookieOf(out.cookies, name);
      assert.equal(c.value, '');
      assert.ok(c.attrs.includes('max-age=0'), `${name} expires`);
    }
    const after = await http('GET', '/api/session', { cookie });
    assert.equal(after.status, 401);
    assert.equal(after.body.error.code, 'TOKEN_INVALID');
    assert.equal((await http('GET', '/api/jobs', { cookie })).status, 401);
    const jti = JSON.parse(Buffer.from(session.value.split('.')[1]!, 'base64url').toString()).jti as string;
    const ttl = await t.redis.ttl(keys.authRevokedSession(jti));
    assert.ok(ttl > 3000 && ttl <= 3600, `TTL ${ttl}`);
    // Without a live session a logout just clears the cookies.
    const again = await http('DELETE', '/api/session');
    assert.equal(again.status, 204);
  });

  it('serves the app at / and at client routes with a strict Content-Security-Policy', async () => {
    for (const path of ['/', '/jobs', '/jobs/1234?page=2', '/flows/new']) {
      const r = await http('GET', path);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(r.text, /<div id="root">/);
      const csp = r.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self'(;|$)/, csp);
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(r.headers.get('cache-control'), 'no-cache');
      assert.doesNotMatch(r.text, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    }
  });

  it('serves the hashed assets for a year, and never shadows the API or its docs', async () => {
    const js = readdirSync(join(WEB_DIST_DIR, 'assets')).find((f) => f.endsWith('.js'));
    assert.ok(js);
    const asset = await http('GET', `/assets/${js}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('content-type') ?? '', /javascript/);
    assert.match(asset.headers.get('cache-control') ?? '', /max-age=31536000.*immutable|immutable.*max-age=31536000/);

    const missingAsset = await http('GET', '/assets/nope-123.js');
    assert.equal(missingAsset.status, 404);
    const api = await http('GET', '/api/nope');
    assert.equal(api.status, 404);
    assert.equal(api.body.error.code, 'ROUTE_NOT_FOUND');
    const docs = await http('GET', '/docs/static/index.html');
    assert.equal(docs.status, 200);
    assert.match(docs.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.equal((await http('GET', '/health')).status, 200);
  });
});
