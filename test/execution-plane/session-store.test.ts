/**
 * Saving a connection's cookies back (src/execution-plane/job/session-health.ts StoredSession, replaceSession-1.lua)
 * on a real redis-server: the new cookies replace the session only while its key holds what the job read — a session
 * connected again during the job, or removed, is left as it is — the key keeps its TTL, a sealed session stays sealed
 * (bound to its key) with its credentials and TOTP seeds, a plain one stays plain, and unchanged cookies write nothing.
 * Also the rules of the session check that need no browser (namesFilledBy, sessionToCheck).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { StoredSession, namesFilledBy, sessionCookiesOf, sessionToCheck, type SessionHealth } from '../../src/execution-plane/job/session-health.ts';
import { verifyJobScript } from '../../src/execution-plane/script/verified-script.ts';
import { keys } from '../../src/shared/keys.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import type { JobMessage, Session } from '../../src/shared/schemas.ts';
import { isSealed, parseKeyring } from '../../src/shared/sealed.ts';
import { signScript } from '../../src/shared/signing.ts';
import { decodeSession, sealSession } from '../../src/shared/transport-secrets.ts';
import { startTestRedis, TEST_SIGNING_SECRET } from '../support/services.ts';

const keyring = parseKeyring(`t1:${randomBytes(32).toString('base64')}`);
const cookie = (value: string) => ({ name: 'sid', value, domain: '127.0.0.1', path: '/', expires: -1, httpOnly: true, secure: false, sameSite: 'Lax' as const });

describe('saving a connection\'s cookies back', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
  });
  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  const jobFor = (): JobMessage => ({ jobId: randomUUID(), orgId: `o-${randomUUID()}`, userId: 'u1', providerName: 'demo' }) as unknown as JobMessage;
  const original: Session = { cookies: [{ name: 'sid', value: 'old', domain: '127.0.0.1', path: '/', httpOnly: true }], credentials: { portalPassword: 'pw' }, totp: { demo: 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ' }, connectedAt: 1 };

  it('replaces a sealed session over the value the job read, sealed again with its credentials and seeds, TTL kept', async () => {
    const job = jobFor();
    const key = keys.session(job.orgId, job.userId, job.providerName);
    const raw = sealSession(keyring, key, original);
    await redis.set(key, raw, 'EX', 3600);
    const stored = new StoredSession(redis, keyring, job, raw, original);
    assert.equal(await stored.save(sessionCookiesOf([cookie('old')])), 'unchanged', 'the same cookies write nothing');
    assert.equal(await redis.get(key), raw);
    assert.equal(await stored.save(sessionCookiesOf([cookie('new')])), 'replaced');
    const now = (await redis.get(key))!;
    assert.ok(isSealed(now), 'still sealed');
    const session = decodeSession(keyring, key, now);
    assert.deepEqual(session.cookies.map((c) => c.value), ['new']);
    assert.equal(session.cookies[0]!.expires, undefined, 'a session cookie is stored without expiry');
    assert.deepEqual(session.credentials, original.credentials);
    assert.deepEqual(session.totp, original.totp);
    assert.equal(session.connectedAt, 1);
    const ttl = await redis.ttl(key);
    assert.ok(ttl > 3500 && ttl <= 3600, `TTL kept (${ttl})`);
    // A second save goes over what the job wrote itself.
    assert.equal(await stored.save(sessionCookiesOf([cookie('newer')])), 'replaced');
    assert.deepEqual(decodeSession(keyring, key, (await redis.get(key))!).cookies.map((c) => c.value), ['newer']);
  });

  it('leaves a session connected again, or removed, during the job as it is', async () => {
    const job = jobFor();
    const key = keys.session(job.orgId, job.userId, job.providerName);
    const raw = JSON.stringify(original);
    await redis.set(key, raw, 'EX', 3600);
    const stored = new StoredSession(redis, keyring, job, raw, original);
    const reconnected = JSON.stringify({ ...original, cookies: [{ name: 'sid', value: 'by-the-user' }] });
    await redis.set(key, reconnected, 'EX', 3600);
    assert.equal(await stored.save(sessionCookiesOf([cookie('job')])), 'superseded');
    assert.equal(await redis.get(key), reconnected);
    await redis.del(key);
    assert.equal(await stored.save(sessionCookiesOf([cookie('job')])), 'superseded');
    assert.equal(await redis.exists(key), 0, 'a removed session is not brought back');
  });

  it('keeps a plain JSON session plain', async () => {
    const job = jobFor();
    const key = keys.session(job.orgId, job.userId, job.providerName);
    const raw = JSON.stringify(original);
    await redis.set(key, raw);
    assert.equal(await new StoredSession(redis, keyring, job, raw, original).save(sessionCookiesOf([cookie('plain')])), 'replaced');
    const now = (await redis.get(key))!;
    assert.ok(!isSealed(now));
    assert.deepEqual((JSON.parse(now) as Session).cookies.map((c) => c.value), ['plain']);
    assert.equal(await redis.ttl(key), -1, 'no TTL before, none after');
  });
});

describe('when the session is checked', () => {
  const script = [
    '// Login flow of provider "demo", generated by the SRI step compiler; do not edit: the hash and signature cover this text.',
    'export default async function run({ page, payload, helpers, context }) {',
    '  // step 1: fill',
    '  await helpers.fillSecret("#u", "portalUser");',
    '  // step 2: fill',
    '  await helpers.fillSecret("#p\\", \\"x", "portalPassword");',
    '  // step 3: fill',
    '  await helpers.fillTotp("#code", "demo");',
    '}',
    '',
  ].join('\n');
  const signed = signScript(script, TEST_SIGNING_SECRET);
  const health: SessionHealth = { check: { url: 'http://127.0.0.1/', loggedInSelector: '#x' }, login: verifyJobScript(script, signed.scriptHash, signed.signature, TEST_SIGNING_SECRET) };

  it('reads the names a login flow fills from its script', () => {
    assert.deepEqual(namesFilledBy(script), { secrets: ['portalUser', 'portalPassword'], totp: ['demo'] });
  });

  it('checks a session with cookies, or one holding all the login flow needs; not one with neither', () => {
    assert.equal(sessionToCheck(health, { cookies: [{ name: 'a', value: 'b' }] }), true);
    assert.equal(sessionToCheck(health, { cookies: [], credentials: { portalUser: 'u', portalPassword: 'p' }, totp: { demo: 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ' } }), true);
    assert.equal(sessionToCheck(health, { cookies: [], credentials: { portalUser: 'u' } }), false);
    assert.equal(sessionToCheck({ check: health.check }, { cookies: [], credentials: { portalUser: 'u' } }), false);
  });
});
