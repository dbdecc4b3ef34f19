/**
 * An organisation's members through the API, on real services (redis-server, s3rver, PGlite): an admin adds a member
 * with a password or with a one-time invitation link, changes roles, removes members; removal refuses the member's
 * bearer token and dashboard session on the very next request — also on an API process whose look-up of the user is
 * cached (AUTH_USER_CACHE_MS) — and drops their portal sessions. Members get FORBIDDEN; no organisation is left
 * without an admin (LAST_ADMIN); an invitation works once and only until it expires.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { redisRemovedUsers } from '../../src/control-plane/auth/removed-users.ts';
import { findUser } from '../../src/control-plane/db/queries/accounts.ts';
import { TokenService } from '../../src/control-plane/http/auth.ts';
import { keys } from '../../src/shared/keys.ts';
import { startTestApi, type TestApi, type TestOrg } from '../support/api.ts';

const STRONG = 'tangerine-orbit-lantern-58';

describe('members API', () => {
  let t: TestApi;
  let org: TestOrg;

  const http = async (method: string, path: string, opts: { token?: string; body?: unknown; cookie?: string; csrf?: string } = {}) => {
    const headers: Record<string, string> = {};
    if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
    if (opts.cookie) headers['cookie'] = opts.cookie;
    if (opts.csrf) headers['x-csrf-token'] = opts.csrf;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(t.api.url + path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined, headers: r.headers };
  };
  const login = async (email: string, password: string) => http('POST', '/api/auth/login', { body: { email, password } });
  const session = async (email: string, password: string) => {
    const r = await http('POST', '/api/session', { body: { email, password } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return { cookie: r.headers.getSetCookie().map((c) => c.split(';')[0]).join('; '), csrf: r.body.csrfToken as string };
  };
  const email = (tag: string) => `${tag}-${randomUUID()}@example.com`;

  before(async () => {
    // A long look-up cache: removal must not wait for it.
    t = await startTestApi({ AUTH_USER_CACHE_MS: '600000' });
    org = await t.createOrg();
  });
  after(async () => { await t?.stop(); });

  it('lists the admin who registered, then adds a member with a password, who logs in as a member', async () => {
    const before = await http('GET', '/api/members', { token: org.token });
    assert.equal(before.status, 200);
    assert.deepEqual(before.body.members.map((m: { id: string; role: string; status: string }) => [m.id, m.role, m.status]), [[org.userId, 'admin', 'active']]);
    const e = email('bea');
    const created = await http('POST', '/api/members', { token: org.token, body: { email: e, name: 'Bea', role: 'member', password: STRONG } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual([created.body.member.email, created.body.member.role, created.body.member.status, created.body.invitation], [e, 'member', 'active', undefined]);
    const li = await login(e, STRONG);
    assert.equal(li.status, 200);
    assert.deepEqual([li.body.user.role, li.body.org.id], ['member', org.orgId]);
    const list = await http('GET', '/api/members', { token: org.token });
    assert.deepEqual(list.body.members.map((m: { email: string }) => m.email).slice(1), [e]);
  });

  it('refuses a weak initial password, a taken e-mail (any organisation\'s), and unknown fields', async () => {
    const weak = await http('POST', '/api/members', { token: org.token, body: { email: email('w'), name: 'W', password: 'password1234' } });
    assert.deepEqual([weak.status, weak.body.error.code], [400, 'WEAK_PASSWORD']);
    const other = await t.createOrg();
    const otherEmail = (await http('GET', '/api/me', { token: other.token })).body.user.email;
    const taken = await http('POST', '/api/members', { token: org.token, body: { email: otherEmail.toUpperCase(), name: 'X', password: STRONG } });
    assert.deepEqual([taken.status, taken.body.error.code], [409, 'EMAIL_TAKEN']);
    const smuggled = await http('POST', '/api/members', { token: org.token, body: { email: email('s'), name: 'S', orgId: other.orgId } });
    assert.deepEqual([smuggled.status, smuggled.body.error.code], [400, 'VALIDATION_FAILED']);
  });

  it('invites by link: the token is shown once, stored hashed, accepted once with a strong password, then the member logs in', async () => {
    const e = email('carla');
    const created = await http('POST', '/api/members', { token: org.token, body: { email: e, name: 'Carla' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { member, invitation } = created.body;
    assert.equal(member.status, 'invited');
    assert.match(invitation.token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(member.invitationExpiresAt, invitation.expiresAt);
    const stored = await t.db.asSystem((tx) => tx.query<Record<string, unknown>>('SELECT * FROM member_invitations WHERE user_id = $1', [member.id]));
    assert.equal(stored.length, 1);
    assert.ok(!JSON.stringify(stored).includes(invitation.token), 'only the token\'s hash is stored');
    // Not a user yet: no password logs them in.
    assert.equal((await login(e, STRONG)).status, 401);

    const weak = await http('POST', '/api/invitations/accept', { body: { token: invitation.token, password: 'carla12345678' } });
    assert.deepEqual([weak.status, weak.body.error.code], [400, 'WEAK_PASSWORD']);
    const accepted = await http('POST', '/api/invitations/accept', { body: { token: invitation.token, password: STRONG } });
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
    assert.equal(accepted.body.email, e);
    const again = await http('POST', '/api/invitations/accept', { body: { token: invitation.token, password: `${STRONG}-x` } });
    assert.deepEqual([again.status, again.body.error.code], [410, 'INVITATION_INVALID']);
    assert.equal((await login(e, STRONG)).status, 200);
    const listed = (await http('GET', '/api/members', { token: org.token })).body.members.find((m: { id: string }) => m.id === member.id);
    assert.deepEqual([listed.status, listed.invitationExpiresAt], ['active', null]);
  });

  it('refuses an unknown, expired or replaced invitation; a new link replaces the old one', async () => {
    assert.equal((await http('POST', '/api/invitations/accept', { body: { token: 'x'.repeat(43), password: STRONG } })).body.error.code, 'INVITATION_INVALID');
    const created = (await http('POST', '/api/members', { token: org.token, body: { email: email('dan'), name: 'Dan' } })).body;
    const renewed = await http('POST', `/api/members/${created.member.id}/invitation`, { token: org.token });
    assert.equal(renewed.status, 201);
    assert.notEqual(renewed.body.invitation.token, created.invitation.token);
    assert.equal((await http('POST', '/api/invitations/accept', { body: { token: created.invitation.token, password: STRONG } })).body.error.code, 'INVITATION_INVALID');
    await t.db.asSystem((tx) => tx.query("UPDATE member_invitations SET expires_at = now() - interval '1 second' WHERE user_id = $1", [created.member.id]));
    assert.equal((await http('POST', '/api/invitations/accept', { body: { token: renewed.body.invitation.token, password: STRONG } })).body.error.code, 'INVITATION_INVALID');
    // An active member has nothing to be invited to.
    assert.equal((await http('POST', `/api/members/${org.userId}/invitation`, { token: org.token })).status, 404);
  });

  it('answers FORBIDDEN to members on every member endpoint, and keeps an admin: LAST_ADMIN', async () => {
    const e = email('eva');
    const eva = (await http('POST', '/api/members', { token: org.token, body: { email: e, name: 'Eva', password: STRONG } })).body.member;
    const evaToken = (await login(e, STRONG)).body.token as string;
    for (const [method, path, body] of [['GET', '/api/members'], ['POST', '/api/members', { email: email('x'), name: 'X' }],
      ['PATCH', `/api/members/${org.userId}`, { role: 'member' }], ['DELETE', `/api/members/${org.userId}`], ['POST', `/api/members/${eva.id}/invitation`]] as const) {
      const r = await http(method, path, { token: evaToken, body });
      assert.deepEqual([r.status, r.body.error.code], [403, 'FORBIDDEN'], `${method} ${path}`);
    }
    for (const [method, body] of [['PATCH', { role: 'member' }], ['DELETE', undefined]] as const) {
      const r = await http(method, `/api/members/${org.userId}`, { token: org.token, body });
      assert.deepEqual([r.status, r.body.error.code], [409, 'LAST_ADMIN'], method);
    }
    // Promoted, Eva is an admin at once (her cached look-up is dropped); then the first admin may step down.
    const promoted = await http('PATCH', `/api/members/${eva.id}`, { token: org.token, body: { role: 'admin' } });
    assert.equal(promoted.body.member.role, 'admin');
    assert.equal((await http('GET', '/api/members', { token: evaToken })).status, 200);
    assert.equal((await http('PATCH', `/api/members/${org.userId}`, { token: evaToken, body: { role: 'member' } })).body.member.role, 'member');
    assert.equal((await http('GET', '/api/members', { token: org.token })).body.error.code, 'FORBIDDEN', 'demoted at once');
    assert.equal((await http('PATCH', `/api/members/${org.userId}`, { token: evaToken, body: { role: 'admin' } })).body.member.role, 'admin');
  });

  it('removes a member: their bearer token and dashboard session are refused on the next request, their portal sessions are gone', async () => {
    const e = email('fede');
    const fede = (await http('POST', '/api/members', { token: org.token, body: { email: e, name: 'Fede', password: STRONG } })).body.member;
    const token = (await login(e, STRONG)).body.token as string;
    const browser = await session(e, STRONG);
    // Both are honoured, and cached for AUTH_USER_CACHE_MS (10 minutes here).
    assert.equal((await http('GET', '/api/jobs', { token })).status, 200);
    assert.equal((await http('GET', '/api/session', { cookie: browser.cookie })).status, 200);
    assert.equal((await http('POST', '/api/providers/demo/connect', { token, body: { cookies: [] } })).status, 200);
    assert.equal(await t.redis.exists(keys.session(org.orgId, fede.id, 'demo')), 1);

    const removed = await http('DELETE', `/api/members/${fede.id}`, { token: org.token });
    assert.equal(removed.status, 204);
    for (const r of [await http('GET', '/api/jobs', { token }), await http('GET', '/api/session', { cookie: browser.cookie }),
      await http('POST', '/api/providers/demo/connect', { cookie: browser.cookie, csrf: browser.csrf, body: { cookies: [] } })]) {
      assert.deepEqual([r.status, r.body.error.code], [401, 'TOKEN_INVALID']);
    }
    assert.equal((await login(e, STRONG)).status, 401, 'no login any more');
    assert.equal(await t.redis.exists(keys.session(org.orgId, fede.id, 'demo')), 0, 'their portal session is deleted');
    assert.ok(!(await http('GET', '/api/members', { token: org.token })).body.members.some((m: { id: string }) => m.id === fede.id));
    assert.equal((await http('DELETE', `/api/members/${fede.id}`, { token: org.token })).status, 404);
    // The e-mail is free again: the same person can be added anew, as a new member.
    const back = await http('POST', '/api/members', { token: org.token, body: { email: e, name: 'Fede', password: STRONG } });
    assert.equal(back.status, 201);
    assert.notEqual(back.body.member.id, fede.id);
    assert.equal((await http('GET', '/api/jobs', { token })).status, 401, 'the old token stays refused');
  });

  it('refuses a removed member on another API process too, whose look-up of them is still cached', async () => {
    const e = email('hugo');
    const hugo = (await http('POST', '/api/members', { token: org.token, body: { email: e, name: 'Hugo', password: STRONG } })).body.member;
    // Two more "API processes" (token services over the same database and Redis), each with a 10-minute cache:
    // one told about removals through Redis, one not.
    const lookup = async ({ orgId, userId }: { orgId: string; userId: string }) => {
      const u = await t.db.withOrg(orgId, (tx) => findUser(tx, userId));
      return u ? { role: u.role } : undefined;
    };
    const other = new TokenService(t.config.jwtSecret, 3600, { lookup, cacheMs: 600_000, removedUsers: redisRemovedUsers(t.redis) });
    const uninformed = new TokenService(t.config.jwtSecret, 3600, { lookup, cacheMs: 600_000 });
    const auth = { orgId: org.orgId, userId: hugo.id };
    assert.equal((await other.checkPrincipal(auth)).role, 'member');
    assert.equal((await uninformed.checkPrincipal(auth)).role, 'member');
    assert.equal((await http('DELETE', `/api/members/${hugo.id}`, { token: org.token })).status, 204);
    await assert.rejects(other.checkPrincipal(auth), (err: { code?: string }) => err.code === 'TOKEN_INVALID');
    // Without the mark, the cache alone would have honoured the removed member for AUTH_USER_CACHE_MS.
    assert.equal((await uninformed.checkPrincipal(auth)).role, 'member');
    assert.ok(await t.redis.ttl(keys.authRemovedUser(hugo.id)) > 3000, 'the mark lasts as long as a token can');
  });

  it('removes an invited member: their link stops working', async () => {
    const created = (await http('POST', '/api/members', { token: org.token, body: { email: email('gus'), name: 'Gus' } })).body;
    assert.equal((await http('DELETE', `/api/members/${created.member.id}`, { token: org.token })).status, 204);
    const r = await http('POST', '/api/invitations/accept', { body: { token: created.invitation.token, password: STRONG } });
    assert.deepEqual([r.status, r.body.error.code], [410, 'INVITATION_INVALID']);
  });
});
