/**
 * Tenant secrets through the API on real services (PGlite, redis-server, s3rver): stored encrypted with their key
 * id, never readable back, admins only for writes, scoped by row-level security, audited without values; sessions
 * written through the API are sealed in Redis; the job message carries the flow's secrets sealed for the job and a
 * signed envelope. No worker runs here (test/e2e/secrets.test.ts runs the whole chain).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Secret } from 'otpauth';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadApiConfig, type ApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { insertUser } from '../../src/control-plane/db/queries/accounts.ts';
import { compileSteps, secretRefsOfScript } from '../../src/control-plane/flows/compile.ts';
import { TokenService } from '../../src/control-plane/http/auth.ts';
import { resealAll } from '../../src/control-plane/secrets/vault.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { JobMessage } from '../../src/shared/schemas.ts';
import { parseKeyring, sealedKeyId } from '../../src/shared/sealed.ts';
import { verifyEnvelope } from '../../src/shared/signing.ts';
import { decodeSession, openJobSecrets, transportKeyring } from '../../src/shared/transport-secrets.ts';
import { startTestRedis, startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor, TEST_JWT_SECRET } from '../support/services.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { openTestDatabase } from '../support/database.ts';

const JWT_SECRET = TEST_JWT_SECRET;
const KEY_S1 = `s1:${randomBytes(32).toString('base64')}`;
const KEY_S2 = `s2:${randomBytes(32).toString('base64')}`;

interface Org { token: string; userId: string; orgId: string }

describe('tenant secrets through the API', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3Server: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  let redis: Redis;
  let blobStore: BlobStore;
  let api: ApiHandle;
  let config: ApiConfig;
  const logs = tempDir('sri-secrets-api-logs-');
  const a = {} as Org;
  const b = {} as Org;
  let memberToken = '';
  const VALUE = `Pw-${randomBytes(12).toString('hex')}/ñ`;
  const COOKIE = `cookie-${randomBytes(12).toString('hex')}`;
  const TOTP_SEED = new Secret({ size: 20 }).base32;
  /** Not base32 (0, 1, 8 and 9 are not in its alphabet), and unique, so the log check below finds no other copy. */
  const BAD_SEED = `SEED0189${randomBytes(8).toString('hex')}`;

  const env = (extra: Record<string, string> = {}) => ({
    JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
    PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'info', SECRETS_KEYS: KEY_S1, ...extra,
  });
  const start = async (extra: Record<string, string> = {}) => {
    config = loadApiConfig(env(extra));
    const logger = createLogger({ name: 'api', level: 'info', logDir: logs.path, stdout: false });
    return startApi(config, { db, redis, blobStore, logger });
  };

  async function http(method: string, path: string, token?: string, body?: unknown) {
    const r = await fetch(api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    const text = await r.text();
    return { status: r.status, text, body: text ? JSON.parse(text) as any : undefined };
  }

  before(async () => {
    [redisServer, s3Server, db] = await Promise.all([startTestRedis(), startTestS3(), openTestDatabase()]);
    await migrate(db);
    // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
    await seedDemoProvider(db);
    redis = createRedis(redisServer.url);
    blobStore = new BlobStore(createS3Client(loadApiConfig(env())));
    api = await start();
    for (const [o, name] of [[a, 'A'], [b, 'B']] as const) {
      const r = await http('POST', '/api/auth/register', undefined, { email: `sec-${randomUUID()}@example.com`, password: 'correct-horse-42', name, orgName: name });
      assert.equal(r.status, 201, r.text);
      Object.assign(o, { token: r.body.token, userId: r.body.user.id, orgId: r.body.org.id });
    }
    const memberId = randomUUID();
    await db.withOrg(a.orgId, (tx) => insertUser(tx, {
      id: memberId, org_id: a.orgId, email: `member-${randomUUID()}@example.com`, name: 'Member', password_hash: 'x', role: 'member',
    }));
    memberToken = await new TokenService(JWT_SECRET, 3600).sign({ userId: memberId, orgId: a.orgId });
  });

  after(async () => {
    await api?.close();
    redis?.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([redisServer?.stop(), s3Server?.close()]);
    logs.remove();
  });

  it('stores a secret encrypted with its key id, lists names and times only, and never returns the value', async () => {
    const put = await http('PUT', '/api/secrets/portalPassword', a.token, { value: VALUE });
    assert.equal(put.status, 201, put.text);
    assert.equal(put.body.secret.name, 'portalPassword');
    assert.equal(put.body.secret.keyId, 's1');
    const again = await http('PUT', '/api/secrets/portalPassword', a.token, { value: `${VALUE}-2` });
    assert.equal(again.status, 200, 'replacing answers 200');
    await http('PUT', '/api/secrets/portalPassword', a.token, { value: VALUE });
    const list = await http('GET', '/api/secrets', a.token);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.secrets.map((s: any) => Object.keys(s).sort()), [['createdAt', 'keyId', 'name', 'updatedAt']]);
    for (const r of [put, again, list]) assert.ok(!r.text.includes(VALUE) && !r.text.includes('sri-enc'), 'no value, sealed or clear, in any answer');
    // Nothing can GET one secret.
    assert.equal((await http('GET', '/api/secrets/portalPassword', a.token)).status, 404);

    const rows = await db.asSystem((tx) => tx.query<{ value_enc: string; key_id: string }>('SELECT value_enc, key_id FROM secrets WHERE org_id = $1', [a.orgId]));
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.key_id, 's1');
    assert.equal(sealedKeyId(rows[0]!.value_enc), 's1');
    assert.ok(!rows[0]!.value_enc.includes(VALUE) && !rows[0]!.value_enc.includes(Buffer.from(VALUE).toString('base64').slice(0, 10)));
    // The table refuses clear text whatever the code does.
    await assert.rejects(db.asSystem((tx) => tx.query("INSERT INTO secrets (org_id, name, value_enc, key_id) VALUES ($1, 'plain', 'hunter2', 's1')", [a.orgId])), /check/i);
  });

  it('lets only admins write, delete and read the audit; members may list names', async () => {
    for (const [method, path, body] of [['PUT', '/api/secrets/x1', { value: 'v-1234' }], ['DELETE', '/api/secrets/portalPassword', undefined], ['GET', '/api/secrets/audit', undefined]] as const) {
      const r = await http(method, path, memberToken, body);
      assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
      assert.equal(r.body.error.code, 'FORBIDDEN');
    }
    assert.deepEqual((await http('GET', '/api/secrets', memberToken)).body.secrets.map((s: any) => s.name), ['portalPassword']);
    assert.equal((await http('PUT', '/api/secrets/x1', undefined, { value: 'v-1234' })).status, 401);
  });

  it('validates names and values, and refuses an oversized body with PAYLOAD_TOO_LARGE', async () => {
    for (const [path, body] of [['/api/secrets/bad%20name', { value: 'abcd' }], ['/api/secrets/ok', { value: '' }], ['/api/secrets/ok', { value: 'x'.repeat(16 * 1024 + 1) }],
      ['/api/secrets/ok', { value: 'abcd', extra: 1 }], ['/api/secrets/ok', { value: 5 }]] as const) {
      const r = await http('PUT', path, a.token, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body).slice(0, 60)}: ${r.text.slice(0, 200)}`);
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
    }
    const big = await http('PUT', '/api/secrets/ok', a.token, { value: 'x'.repeat(200 * 1024) });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'PAYLOAD_TOO_LARGE');
  });

  it('keeps organisations apart: another organisation sees, replaces and deletes nothing of A\'s, and RLS hides the rows even without a WHERE', async () => {
    assert.deepEqual((await http('GET', '/api/secrets', b.token)).body.secrets, []);
    const del = await http('DELETE', '/api/secrets/portalPassword', b.token);
    assert.equal(del.status, 404);
    assert.equal(del.body.error.code, 'NOT_FOUND');
    assert.equal((await http('PUT', '/api/secrets/portalPassword', b.token, { value: 'b-value-123' })).status, 201, 'B gets its own secret of that name');
    // A query with no organisation filter at all, as the API's role: only the rows of the organisation in scope.
    const seenByB = await db.withOrg(b.orgId, (tx) => tx.query<{ org_id: string }>('SELECT org_id FROM secrets'));
    assert.deepEqual(seenByB.map((r) => r.org_id), [b.orgId]);
    const auditSeenByB = await db.withOrg(b.orgId, (tx) => tx.query<{ org_id: string }>('SELECT org_id FROM secret_audit'));
    assert.ok(auditSeenByB.length > 0 && auditSeenByB.every((r) => r.org_id === b.orgId));
    // Writing a row for another organisation is refused by the policy's WITH CHECK.
    await assert.rejects(db.withOrg(b.orgId, (tx) => tx.query("INSERT INTO secrets (org_id, name, value_enc, key_id) VALUES ($1, 'x', 'sri-enc:v1:s1:a:b:c', 's1')", [a.orgId])), /row-level security/);
    const aRows = await db.asSystem((tx) => tx.query<{ org_id: string }>('SELECT org_id FROM secrets WHERE name = $1 ORDER BY org_id', ['portalPassword']));
    assert.equal(aRows.length, 2, 'A\'s secret is still there next to B\'s');
  });

  it('keeps the audit append-only for the API\'s role', async () => {
    await assert.rejects(db.withOrg(a.orgId, (tx) => tx.query('UPDATE secret_audit SET secret_name = $1', ['x'])), /permission denied/);
    await assert.rejects(db.withOrg(a.orgId, (tx) => tx.query('DELETE FROM secret_audit')), /permission denied/);
  });

  it('seals a session written through the API in Redis, bound to its key', async () => {
    const r = await http('POST', '/api/providers/demo/connect', a.token, {
      cookies: [{ name: 'sid', value: COOKIE, domain: '127.0.0.1', path: '/' }], credentials: { other: 'credential-value-99' },
      totp: { portal: TOTP_SEED.toLowerCase() },
    });
    assert.equal(r.status, 200, r.text);
    const refused = await http('POST', '/api/providers/demo/connect', a.token, { cookies: [], totp: { portal: BAD_SEED } });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'TOTP_SEED_INVALID');
    assert.ok(!refused.text.includes(BAD_SEED));
    const key = keys.session(a.orgId, a.userId, 'demo');
    const raw = (await redis.get(key))!;
    assert.match(raw, /^sri-enc:v1:signing:/, 'sealed under the transport key (derived: TRANSPORT_KEYS is unset here)');
    assert.ok(!raw.includes(COOKIE) && !raw.includes('credential-value-99') && !raw.includes(TOTP_SEED) && !raw.includes(TOTP_SEED.toLowerCase()));
    const session = decodeSession(transportKeyring(config), key, raw);
    assert.equal(session.cookies[0]!.value, COOKIE);
    assert.deepEqual(session.totp, { portal: TOTP_SEED }, 'the seed is kept normalised (upper case), sealed with the session');
    assert.throws(() => decodeSession(transportKeyring(config), keys.session(b.orgId, b.userId, 'demo'), raw), /SECRETS_UNREADABLE|could not be decrypted/);
  });

  it('puts the flow\'s secrets, sealed for the job, and a signed envelope into the job message; audits the names sent', async () => {
    const flow = await http('POST', '/api/flows', a.token, {
      providerId: 'demo', version: '1.0.0', name: 'Login', steps: [
        { type: 'navigate', url: 'http://127.0.0.1:3100/login' },
        { type: 'fill', selector: '#password', secretRef: 'portalPassword' },
        { type: 'fill', selector: '#other', secretRef: 'other' },
        { type: 'fill', selector: '#note', value: 'helpers.fillSecret("#x", "notASecret")' },
      ],
    });
    assert.equal(flow.status, 201, flow.text);
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, a.token, {})).status, 200);
    const run = await http('POST', '/api/run', a.token, { providerId: 'demo' });
    assert.equal(run.status, 202, run.text);
    const jobId = run.body.jobId as string;
    const raw = (await redis.lrange(keys.orgJobs(a.orgId), 0, -1)).find((m) => m.includes(jobId))!;
    assert.ok(!raw.includes(VALUE), 'the value is not in the message in clear');
    const msg = JobMessage.parse(JSON.parse(raw));
    assert.ok(msg.envelopeSignature && verifyEnvelope(msg, msg.envelopeSignature, TEST_SIGNING_SECRET));
    // "other" is not a secret of the organisation: it stays with the session's credentials; the value in a plain
    // fill step is not a secret reference.
    assert.deepEqual({ ...openJobSecrets(transportKeyring(config), msg, msg.secrets!) }, { portalPassword: VALUE });
    const audit = await http('GET', `/api/secrets/audit?jobId=${jobId}`, a.token);
    assert.equal(audit.status, 200, audit.text);
    assert.deepEqual(audit.body.events.map((e: any) => [e.name, e.action, e.jobId, e.userId]), [['portalPassword', 'sent_to_job', jobId, a.userId]]);
    const all = await http('GET', '/api/secrets/audit?name=portalPassword', a.token);
    assert.deepEqual(all.body.events.map((e: any) => e.action), ['sent_to_job', 'updated', 'updated', 'created']);
    assert.ok(!audit.text.includes(VALUE) && !all.text.includes(VALUE));
  });

  it('rotates keys: with a new key first, old rows still open, are re-sealed when used, and new writes use the new key', async () => {
    await api.close();
    api = await start({ SECRETS_KEYS: `${KEY_S2},${KEY_S1}` });
    assert.equal((await http('GET', '/api/secrets', a.token)).body.secrets[0].keyId, 's1');
    const run = await http('POST', '/api/run', a.token, { providerId: 'demo' });
    assert.equal(run.status, 202, run.text);
    const raw = (await redis.lrange(keys.orgJobs(a.orgId), 0, -1)).find((m) => m.includes(run.body.jobId))!;
    const msg = JobMessage.parse(JSON.parse(raw));
    assert.equal(openJobSecrets(transportKeyring(config), msg, msg.secrets!)['portalPassword'], VALUE);
    assert.equal((await http('GET', '/api/secrets', a.token)).body.secrets[0].keyId, 's2', 're-sealed under the first key when read');
    // B's row (never used) is re-sealed by the rotation sweep (`sri secrets rekey`).
    assert.equal(await db.asSystem((tx) => resealAll(tx, parseKeyring(`${KEY_S2},${KEY_S1}`))), 1);
    assert.equal((await http('GET', '/api/secrets', b.token)).body.secrets[0].keyId, 's2');
    assert.equal((await http('PUT', '/api/secrets/rotated', a.token, { value: 'rotated-1234' })).body.secret.keyId, 's2', 'new writes use the first key');
    // Without the old key now: everything still opens.
    await api.close();
    api = await start({ SECRETS_KEYS: KEY_S2 });
    assert.equal((await http('POST', '/api/run', a.token, { providerId: 'demo' })).status, 202);
  });

  it('answers SECRETS_NOT_CONFIGURED without SECRETS_KEYS, and refuses to run a flow whose secrets it cannot open', async () => {
    await api.close();
    api = await start({ SECRETS_KEYS: '' });
    const put = await http('PUT', '/api/secrets/another', a.token, { value: 'abcd-1234' });
    assert.equal(put.status, 503, put.text);
    assert.equal(put.body.error.code, 'SECRETS_NOT_CONFIGURED');
    const run = await http('POST', '/api/run', a.token, { providerId: 'demo' });
    assert.equal(run.status, 503, run.text);
    assert.equal(run.body.error.code, 'SECRETS_NOT_CONFIGURED');
    await api.close();
    api = await start({ SECRETS_KEYS: `s9:${randomBytes(32).toString('base64')}` });
    const unreadable = await http('POST', '/api/run', a.token, { providerId: 'demo' });
    assert.equal(unreadable.status, 500, unreadable.text);
    assert.equal(unreadable.body.error.code, 'SECRETS_UNREADABLE');
    assert.match(unreadable.body.error.message, /"portalPassword" cannot be decrypted.*s2.*not in the keyring/);
    await api.close();
    api = await start({ SECRETS_KEYS: KEY_S2 });
  });

  it('deletes a secret (audited), after which runs leave the name to the session', async () => {
    const del = await http('DELETE', '/api/secrets/portalPassword', a.token);
    assert.deepEqual(del.body, { name: 'portalPassword', deleted: true });
    assert.equal((await http('DELETE', '/api/secrets/portalPassword', a.token)).status, 404);
    const run = await http('POST', '/api/run', a.token, { providerId: 'demo' });
    const raw = (await redis.lrange(keys.orgJobs(a.orgId), 0, -1)).find((m) => m.includes(run.body.jobId))!;
    assert.equal(JobMessage.parse(JSON.parse(raw)).secrets, undefined);
    const events = (await http('GET', '/api/secrets/audit?name=portalPassword', a.token)).body.events;
    assert.equal(events[0].action, 'deleted');
  });

  it('never writes a secret or cookie value to the API\'s log', async () => {
    await waitFor(() => readFileSync(join(logs.path, 'api-combined.log'), 'utf8').includes('secret deleted'), { what: 'the log line' });
    const log = readFileSync(join(logs.path, 'api-combined.log'), 'utf8');
    assert.match(log, /"secretName":"portalPassword"/);
    for (const v of [VALUE, COOKIE, 'credential-value-99', TOTP_SEED, TOTP_SEED.toLowerCase(), BAD_SEED, KEY_S1.slice(3), KEY_S2.slice(3)]) assert.ok(!log.includes(v), `${v.slice(0, 6)}… not in the log`);
  });
});

describe('the secret names a compiled flow fills', () => {
  it('are read back from the signed script, and no selector or value can add one', () => {
    const provider = { id: 'demo', allowedHosts: ['127.0.0.1'] };
    const { script } = compileSteps([
      { type: 'navigate', url: 'http://127.0.0.1/login' },
      { type: 'fill', selector: 'x", "evil");\n  await helpers.fillSecret("#y", "stolen', secretRef: 'portalPassword' },
      { type: 'fill', selector: '#a\u2028b', value: 'await helpers.fillSecret("#z", "alsoStolen");' },
      { type: 'fill', selector: '#u', secretRef: 'user.name-2' },
      { type: 'fill', selector: '#p2', secretRef: 'portalPassword' },
    ], provider);
    assert.deepEqual(secretRefsOfScript(script), ['portalPassword', 'user.name-2']);
    assert.deepEqual(secretRefsOfScript('export default async function run() {}\n'), []);
  });
});
