/**
 * Keyrings and sealed values (src/shared/sealed.ts), the session and job-secret codecs built on them
 * (src/shared/transport-secrets.ts), the envelope signature (src/shared/signing.ts), and the start-up refusal of a
 * malformed or short key, naming the variable.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { loadWorkerConfig } from '../../src/execution-plane/config.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { derivedKeyring, open, parseKeyring, seal, SealError, sealedKeyId } from '../../src/shared/sealed.ts';
import { canonicalJson, envelopeText, hmacHex, signEnvelope, verifyEnvelope, type JobEnvelope } from '../../src/shared/signing.ts';
import { decodeSession, openJobSecrets, sealJobSecrets, sealSession, transportKeyring } from '../../src/shared/transport-secrets.ts';
import { TEST_SIGNING_SECRET, TEST_JWT_SECRET } from '../support/services.ts';

const key = () => randomBytes(32).toString('base64');
const JWT_SECRET = TEST_JWT_SECRET;

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isSriError(e) && e.code === 'CONFIG_INVALID', String(e));
    return e.message;
  }
  return assert.fail('the configuration was accepted');
}

describe('keyrings and sealed values', () => {
  it('seals under the first key and opens with any key of the ring (rotation)', () => {
    const k1 = key();
    const old = parseKeyring(`k1:${k1}`);
    const sealedOld = seal(old, 'value one', 'ctx');
    assert.equal(sealedKeyId(sealedOld), 'k1');
    const rotated = parseKeyring(`k2:${key()},k1:${k1}`);
    assert.equal(rotated.primary, 'k2');
    const sealedNew = seal(rotated, 'value two', 'ctx');
    assert.equal(sealedKeyId(sealedNew), 'k2');
    assert.equal(open(rotated, sealedOld, 'ctx'), 'value one', 'old values still open after the rotation');
    assert.equal(open(rotated, sealedNew, 'ctx'), 'value two');
    assert.throws(() => open(old, sealedNew, 'ctx'), (e: unknown) => e instanceof SealError && e.reason === 'unknown-key');
  });

  it('never holds the value in clear, and two seals of one value differ', () => {
    const ring = parseKeyring(`k1:${key()}`);
    const a = seal(ring, 'hunter2-password', 'ctx');
    const b = seal(ring, 'hunter2-password', 'ctx');
    assert.notEqual(a, b);
    assert.ok(!a.includes('hunter2') && !a.includes(Buffer.from('hunter2').toString('base64url').slice(0, 8)));
  });

  it('refuses an altered ciphertext, tag or nonce, and a value moved to another context', () => {
    const ring = parseKeyring(`k1:${key()}`);
    const s = seal(ring, 'secret value', 'org-a/name');
    const parts = s.split(':');
    for (const i of [3, 4, 5]) {
      const p = [...parts];
      const b = Buffer.from(p[i]!, 'base64url');
      b[0] = b[0]! ^ 1;
      p[i] = b.toString('base64url');
      assert.throws(() => open(ring, p.join(':'), 'org-a/name'), SealError, `part ${i}`);
    }
    assert.throws(() => open(ring, s, 'org-b/name'), (e: unknown) => e instanceof SealError && e.reason === 'tampered');
    assert.throws(() => open(ring, 'sri-enc:v1:k1:zz', 'x'), (e: unknown) => e instanceof SealError && e.reason === 'malformed');
  });

  it('keeps key bytes out of inspect and JSON', () => {
    const k = key();
    const ring = parseKeyring(`k1:${k}`);
    assert.ok(!inspect(ring).includes(k) && !JSON.stringify({ ring }).includes(k));
    assert.deepEqual(JSON.parse(JSON.stringify(ring)), { primary: 'k1', kids: ['k1'] });
  });

  it('accepts URL-safe base64 and refuses malformed entries with a message naming the entry, never the key', () => {
    assert.equal(parseKeyring(`a_1:${randomBytes(32).toString('base64url')}`).primary, 'a_1');
    const short = randomBytes(16).toString('base64');
    for (const [text, pattern] of [
      [`k1${key()}`, /entry 1 must be kid:base64key/],
      [`k1:${short}`, /entry 1 \(k1\): the key must be 32 bytes \(AES-256\), got 16/],
      [`k1:${key()},k1:${key()}`, /entry 2: key id "k1" appears twice/],
      [`bad id!:${key()}`, /entry 1: key id must be/],
      [`k1:not base64!`, /entry 1 \(k1\): the key is not base64/],
    ] as const) {
      assert.throws(() => parseKeyring(text), (e: unknown) => pattern.test((e as Error).message) && !(e as Error).message.includes(short), text);
    }
  });
});

describe('start-up refusal of bad keys', () => {
  it('the API refuses a malformed or short SECRETS_KEYS or TRANSPORT_KEYS, naming the variable', () => {
    const base = { JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET };
    assert.match(configError(() => loadApiConfig({ ...base, SECRETS_KEYS: `k1:${randomBytes(31).toString('base64')}` })),
      /SECRETS_KEYS entry 1 \(k1\): the key must be 32 bytes/);
    assert.match(configError(() => loadApiConfig({ ...base, TRANSPORT_KEYS: 'just-text' })), /TRANSPORT_KEYS entry 1 must be kid:base64key/);
    const c = loadApiConfig({ ...base, SECRETS_KEYS: `s2:${key()},s1:${key()}` });
    assert.deepEqual(c.secretsKeys?.kids, ['s2', 's1']);
    assert.equal(loadApiConfig(base).secretsKeys, undefined, 'unset: tenant secrets are off, nothing else changes');
  });

  it('the worker refuses a short TRANSPORT_KEYS, and refuses to hold SECRETS_KEYS at all', () => {
    const base = { SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET };
    assert.match(configError(() => loadWorkerConfig({ ...base, TRANSPORT_KEYS: `t1:${randomBytes(8).toString('base64')}` })), /TRANSPORT_KEYS entry 1 \(t1\)/);
    assert.match(configError(() => loadWorkerConfig({ ...base, SECRETS_KEYS: `s1:${key()}` })), /SECRETS_KEYS is set, but a worker must not hold/);
  });

  it('REQUIRE_JOB_SIGNATURE is on by default for workers and takes only true or false', () => {
    assert.equal(loadWorkerConfig({ SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET }).requireJobSignature, true);
    assert.equal(loadWorkerConfig({ SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REQUIRE_JOB_SIGNATURE: 'false' }).requireJobSignature, false);
    assert.match(configError(() => loadWorkerConfig({ SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REQUIRE_JOB_SIGNATURE: 'yes' })), /REQUIRE_JOB_SIGNATURE must be true or false/);
  });
});

describe('sessions and job secrets in transit', () => {
  const ring = parseKeyring(`t1:${key()}`);
  const session = { cookies: [{ name: 'sid', value: 'cookie-value-123', domain: 'x.example', path: '/' }], credentials: { pw: 'pw-value-456' }, connectedAt: 1 };

  it('a sealed session opens under its own key only; a plain JSON session is read as it is', () => {
    const k = 'sri:sessions:org-a:user-1:demo';
    const sealed = sealSession(ring, k, session);
    assert.ok(!sealed.includes('cookie-value-123') && !sealed.includes('pw-value-456'));
    assert.deepEqual(decodeSession(ring, k, sealed), session);
    assert.deepEqual(decodeSession(ring, k, JSON.stringify(session)), session);
    assert.throws(() => decodeSession(ring, 'sri:sessions:org-b:user-1:demo', sealed), (e: unknown) => isSriError(e) && e.code === 'SECRETS_UNREADABLE');
    assert.throws(() => decodeSession(parseKeyring(`t9:${key()}`), k, sealed), (e: unknown) => isSriError(e) && e.code === 'SECRETS_UNREADABLE' && /t9/.test(e.message));
    assert.throws(() => decodeSession(ring, k, '{"cookies":5}'), (e: unknown) => isSriError(e) && e.code === 'SESSION_NOT_FOUND');
  });

  it('a job\'s secrets open only for that job\'s ids', () => {
    const ids = { jobId: 'j1', orgId: 'org-a', userId: 'u1' };
    const sealed = sealJobSecrets(ring, ids, { portalPassword: 'p@ss' });
    assert.deepEqual({ ...openJobSecrets(ring, ids, sealed) }, { portalPassword: 'p@ss' });
    for (const other of [{ ...ids, jobId: 'j2' }, { ...ids, orgId: 'org-b' }, { ...ids, userId: 'u2' }]) {
      assert.throws(() => openJobSecrets(ring, other, sealed), (e: unknown) => isSriError(e) && e.code === 'SECRETS_UNREADABLE');
    }
  });

  it('without TRANSPORT_KEYS both planes derive the same key from SCRIPT_SIGNING_SECRET, and only from it', () => {
    const a = transportKeyring({ scriptSigningSecret: TEST_SIGNING_SECRET });
    const b = transportKeyring({ scriptSigningSecret: TEST_SIGNING_SECRET });
    assert.equal(open(b, seal(a, 'x-value', 'c'), 'c'), 'x-value');
    assert.throws(() => open(derivedKeyring('another-signing-secret-of-32-chars!!', 'sri transport keys v1', 'signing'), seal(a, 'x', 'c'), 'c'), SealError);
    assert.equal(transportKeyring({ scriptSigningSecret: TEST_SIGNING_SECRET, transportKeys: ring }), ring);
  });
});

describe('job envelope signature', () => {
  const env: JobEnvelope = {
    jobId: 'job-1', orgId: 'org-a', userId: 'user-1', providerId: 'demo', flowId: 'flow-1', flowVersion: '1.0.0',
    scriptHash: 'AB'.repeat(32), createdAt: '2026-01-01T00:00:00.000Z', allowedHosts: ['portal.example'],
    providerName: 'demo', timeoutMs: 600_000, maxAttempts: 3, metadata: { period: '2026-01', ruc: ['1790000000001'], nested: { b: 1, a: 2 } },
  };

  it('covers every field, in a fixed order, with the script hash in lower case', () => {
    const sig = signEnvelope(env, TEST_SIGNING_SECRET);
    assert.ok(verifyEnvelope(env, sig, TEST_SIGNING_SECRET));
    assert.ok(verifyEnvelope({ ...env, scriptHash: env.scriptHash.toLowerCase() }, sig, TEST_SIGNING_SECRET));
    assert.ok(envelopeText(env).startsWith('sri-job-envelope-v3\n["job-1","org-a"'));
    assert.ok(!verifyEnvelope({ ...env, allowedHosts: undefined }, sig, TEST_SIGNING_SECRET), 'lifting allowedHosts is caught');
    assert.ok(!verifyEnvelope({ ...env, allowedHosts: ['portal.example', 'evil.example'] }, sig, TEST_SIGNING_SECRET), 'widening allowedHosts is caught');
    for (const field of Object.keys(env) as (keyof JobEnvelope)[]) {
      const changed = { ...env, [field]: field === 'scriptHash' ? 'cd'.repeat(32) : `${String(env[field])}x` };
      assert.ok(!verifyEnvelope(changed, sig, TEST_SIGNING_SECRET), `${field} is covered`);
    }
    assert.ok(!verifyEnvelope({ ...env, createdAt: Date.parse(env.createdAt as string) }, sig, TEST_SIGNING_SECRET), 'the type of createdAt counts');
    for (const field of ['timeoutMs', 'maxAttempts', 'metadata'] as const) {
      assert.ok(!verifyEnvelope({ ...env, [field]: undefined }, sig, TEST_SIGNING_SECRET), `dropping ${field} is caught`);
    }
    assert.ok(!verifyEnvelope(env, sig, 'another-signing-secret-of-32-chars!!'));
    assert.ok(!verifyEnvelope(env, 'zz', TEST_SIGNING_SECRET));
  });

  it('v3 signs metadata as canonical JSON: key order does not matter, any value does; a v2 signature no longer verifies', () => {
    const sig = signEnvelope(env, TEST_SIGNING_SECRET);
    // The same metadata with its keys in another order (as PostgreSQL's jsonb, or another producer, gives them back).
    const reordered = { nested: { a: 2, b: 1 }, ruc: ['1790000000001'], period: '2026-01' };
    assert.ok(verifyEnvelope({ ...env, metadata: reordered }, sig, TEST_SIGNING_SECRET));
    assert.ok(!verifyEnvelope({ ...env, metadata: { ...reordered, period: '2026-02' } }, sig, TEST_SIGNING_SECRET), 'a changed value is caught');
    assert.ok(!verifyEnvelope({ ...env, metadata: { ...reordered, extra: true } }, sig, TEST_SIGNING_SECRET), 'an added key is caught');
    assert.ok(!verifyEnvelope({ ...env, metadata: { ...reordered, ruc: ['1790000000001', 'x'] } }, sig, TEST_SIGNING_SECRET), 'a longer array is caught');
    assert.equal(canonicalJson({ b: [1, { d: null, c: 'é' }], a: 1, 10: true, 9: false }), '{"10":true,"9":false,"a":1,"b":[1,{"c":"é","d":null}]}');
    // What a v2 signer (an API of the previous release) produced for the same job: refused, since it leaves
    // providerName, timeoutMs, maxAttempts and metadata open to whoever can push to Redis.
    const v2 = hmacHex(`sri-job-envelope-v2\n${JSON.stringify([env.jobId, env.orgId, env.userId, env.providerId, env.flowId, env.flowVersion,
      env.scriptHash.toLowerCase(), env.createdAt, env.allowedHosts])}`, TEST_SIGNING_SECRET);
    assert.ok(!verifyEnvelope(env, v2, TEST_SIGNING_SECRET));
  });
});
