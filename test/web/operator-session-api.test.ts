/**
 * The platform operator's dashboard session over HTTP against a real API (redis-server, s3rver, PGlite): OPERATOR_TOKEN
 * exchanged for an HttpOnly cookie (never in the body), CSRF on state-changing operator requests it authenticates,
 * sign-out revoking it, the login lockout on wrong tokens, the CLI's bearer token unchanged — and isolation both
 * ways: an organisation user's session reaches no operator endpoint, an operator's session no organisation endpoint.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { startTestApi, type TestApi } from '../support/api.ts';
import { waitFor } from '../support/services.ts';

interface Answer { status: number; headers: Headers; text: string; body: any; cookies: string[] }

const OPERATOR_TOKEN = randomBytes(24).toString('hex');
const LOCK_MS = 3000;

describe('the operator\'s dashboard session', () => {
  let t: TestApi;
  const email = `admin-${randomUUID()}@example.com`;
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
    try { body = JSON.parse(text); } catch { body = undefined; }
    return { status: r.status, headers: r.headers, text, body, cookies: r.headers.getSetCookie() };
  }

  const cookieOf = (lines: string[], name: string) => {
    const line = lines.find((l) => l.startsWith(`${name}=`));
    assert.ok(line, `Set-Cookie ${name} in ${lines.join(' | ')}`);
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    return { pair: pair!, value: decodeURIComponent(pair!.slice(name.length + 1)), attrs: attrs.map((a) => a.toLowerCase()) };
  };

  async function signIn() {
    const r = await http('POST', '/api/operator/session', { body: { token: OPERATOR_TOKEN } });
    assert.equal(r.status, 200, r.text);
    const session = cookieOf(r.cookies, 'sri_operator_session');
    const csrf = cookieOf(r.cookies, 'sri_operator_csrf');
    return { r, session, csrf, cookie: `${session.pair}; ${csrf.pair}` };
  }

  async function userLogin() {
    const r = await http('POST', '/api/session', { body: { email, password } });
    assert.equal(r.status, 200, r.text);
    const session = cookieOf(r.cookies, 'sri_session');
    const csrf = cookieOf(r.cookies, 'sri_csrf');
    return { session, csrf, cookie: `${session.pair}; ${csrf.pair}` };
  }

  before(async () => {
    t = await startTestApi({
      OPERATOR_TOKEN, SESSION_COOKIE_SECURE: 'true', OPERATOR_SESSION_SECONDS: '600',
      AUTH_LOCKOUT_MAX_FAILURES: '3', AUTH_LOCKOUT_WINDOW_MS: '60000', AUTH_LOCKOUT_MS: String(LOCK_MS),
    });
    const reg = await http('POST', '/api/auth/register', { body: { email, password, name: 'Ana', orgName: 'Acme' } });
    assert.equal(reg.status, 201, reg.text);
  });

  after(async () => {
    await t?.stop();
  });

  it('signs in with the right token into an HttpOnly, Secure, SameSite=Strict cookie scoped to /api/operator, with a bounded lifetime and no token in the body', async () => {
    const { r, session, csrf } = await signIn();
    assert.deepEqual(Object.keys(r.body).sort(), ['csrfToken', 'expiresAt', 'operator', 'via']);
    assert.match(r.body.operator.identity, /^operator:[0-9a-f]{12}$/);
    assert.equal(r.body.csrfToken, csrf.value);
    assert.ok(!r.text.includes(session.value) && !r.text.includes(OPERATOR_TOKEN), 'neither the session nor the operator token is in the body');
    assert.ok(!session.value.includes(OPERATOR_TOKEN), 'the cookie does not carry the operator token');
    for (const a of ['httponly', 'secure', 'samesite=strict', 'path=/api/operator', 'max-age=600']) assert.ok(session.attrs.includes(a), `${a} in ${session.attrs.join('; ')}`);
    assert.ok(!csrf.attrs.includes('httponly'), 'the page reads the CSRF cookie');
    const lifetime = Date.parse(r.body.expiresAt) - Date.now();
    assert.ok(lifetime > 500_000 && lifetime <= 600_000, `expires in ${lifetime} ms`);
  });

  it('refuses a wrong token with INVALID_CREDENTIALS and sets no cookie', async () => {
    const r = await http('POST', '/api/operator/session', { body: { token: `${OPERATOR_TOKEN}x` } });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'INVALID_CREDENTIALS');
    assert.deepEqual(r.cookies, []);
    const empty = await http('POST', '/api/operator/session', { body: { token: '' } });
    assert.equal(empty.status, 400);
    // A success clears the count: the lockout case below starts from zero.
    await signIn();
  });

  it('lets the session read and act on the operator endpoints, a state-changing request only with its CSRF token, and audits it as the operator', async () => {
    const { cookie, csrf } = await signIn();
    const me = await http('GET', '/api/operator/session', { cookie });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.via, 'cookie');
    assert.equal(me.body.csrfToken, csrf.value);
    assert.equal((await http('GET', '/api/operator/system/tasks', { cookie })).status, 200);

    const noCsrf = await http('POST', '/api/operator/system/check', { cookie });
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.body.error.code, 'CSRF_TOKEN_INVALID');
    const wrongCsrf = await http('POST', '/api/operator/system/check', { cookie, headers: { 'x-csrf-token': csrf.value.slice(1) + 'A' } });
    assert.equal(wrongCsrf.body.error.code, 'CSRF_TOKEN_INVALID');
    const ok = await http('POST', '/api/operator/system/check', { cookie, headers: { 'x-csrf-token': csrf.value } });
    assert.equal(ok.status, 202, ok.text);
    // The same identity as the CLI's bearer token: the audit names the operator, whichever door they came through.
    const bearer = await http('GET', '/api/operator/session', { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
    assert.equal(bearer.status, 200);
    assert.equal(bearer.body.via, 'bearer');
    assert.equal(ok.body.task.requestedBy.identity, bearer.body.operator.identity);
    assert.ok(!JSON.stringify(ok.body).includes(OPERATOR_TOKEN));
    // Nobody takes the task here (no ops worker); it only needs to be recorded.
    const list = await http('GET', '/api/operator/system/tasks', { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
    assert.ok(list.body.tasks.some((x: any) => x.id === ok.body.task.id));
  });

  it('keeps an organisation user\'s session out of the operator endpoints, its admin included', async () => {
    const user = await userLogin();
    for (const [method, path] of [['GET', '/api/operator/session'], ['GET', '/api/operator/system/tasks'], ['POST', '/api/operator/system/check'], ['GET', '/api/operator/worker-enrolments']] as const) {
      const r = await http(method, path, { cookie: user.cookie, headers: { 'x-csrf-token': user.csrf.value } });
      assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
      assert.equal(r.body.error.code, 'OPERATOR_ONLY');
    }
    // Its token under the operator's cookie name, or as a bearer token: not an operator session either.
    const planted = await http('GET', '/api/operator/system/tasks', { cookie: `sri_operator_session=${user.session.value}` });
    assert.equal(planted.body.error.code, 'OPERATOR_ONLY');
    const asBearer = await http('GET', '/api/operator/system/tasks', { headers: { authorization: `Bearer ${user.session.value}` } });
    assert.equal(asBearer.body.error.code, 'OPERATOR_ONLY');
  });

  it('keeps an operator\'s session out of the organisation endpoints', async () => {
    const op = await signIn();
    for (const path of ['/api/session', '/api/jobs', '/api/providers', '/api/members']) {
      const r = await http('GET', path, { cookie: op.cookie });
      assert.equal(r.status, 401, `${path}: ${r.text}`);
    }
    // Its token under the user's cookie name, or as a bearer token: refused.
    const planted = await http('GET', '/api/jobs', { cookie: `sri_session=${op.session.value}` });
    assert.equal(planted.status, 401);
    assert.equal(planted.body.error.code, 'TOKEN_INVALID');
    const asBearer = await http('GET', '/api/jobs', { headers: { authorization: `Bearer ${op.session.value}` } });
    assert.equal(asBearer.status, 401);
    assert.equal(asBearer.body.error.code, 'TOKEN_INVALID');
  });

  it('signs out only with the CSRF token, after which the session is refused and both cookies are cleared', async () => {
    const { cookie, csrf } = await signIn();
    const forged = await http('DELETE', '/api/operator/session', { cookie });
    assert.equal(forged.status, 403);
    assert.equal(forged.body.error.code, 'CSRF_TOKEN_INVALID');
    assert.equal((await http('GET', '/api/operator/system/tasks', { cookie })).status, 200, 'still signed in');
    const out = await http('DELETE', '/api/operator/session', { cookie, headers: { 'x-csrf-token': csrf.value } });
    assert.equal(out.status, 204);
    assert.ok(cookieOf(out.cookies, 'sri_operator_session').attrs.includes('max-age=0'));
    assert.ok(cookieOf(out.cookies, 'sri_operator_csrf').attrs.includes('max-age=0'));
    const after = await http('GET', '/api/operator/system/tasks', { cookie });
    assert.equal(after.status, 403);
    assert.equal(after.body.error.code, 'OPERATOR_ONLY');
    // The CLI's bearer token is unchanged.
    assert.equal((await http('GET', '/api/operator/system/tasks', { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } })).status, 200);
  });

  it('locks the operator sign-in after AUTH_LOCKOUT_MAX_FAILURES wrong tokens, the right one included, until AUTH_LOCKOUT_MS has passed', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await http('POST', '/api/operator/session', { body: { token: `wrong-${i}` } });
      assert.equal(r.body.error.code, 'INVALID_CREDENTIALS');
    }
    const locked = await http('POST', '/api/operator/session', { body: { token: OPERATOR_TOKEN } });
    assert.equal(locked.status, 429);
    assert.equal(locked.body.error.code, 'ACCOUNT_LOCKED');
    assert.ok(Number(locked.headers.get('retry-after')) >= 1);
    assert.deepEqual(locked.cookies, []);
    // The CLI is not locked out with it.
    assert.equal((await http('GET', '/api/operator/system/tasks', { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } })).status, 200);
    // Organisation users' logins are another account.
    assert.equal((await http('POST', '/api/session', { body: { email, password } })).status, 200);
    await waitFor(async () => ((await http('POST', '/api/operator/session', { body: { token: OPERATOR_TOKEN } })).status === 200 ? true : undefined),
      { timeoutMs: LOCK_MS + 30_000, intervalMs: 500, what: 'the lock to end' });
  });
});
