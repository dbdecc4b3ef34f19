/**
 * The provider catalogue outside `sri up` (docs/security.md "Egress"), on real services (redis-server, s3rver,
 * PGlite): a fresh API has no `demo` provider — the one whose hosts are the loopback addresses of the worker hosts —
 * and publishes its catalogue to Redis (`sri:provider:{providerName}`) as it starts, where workers take a job's hosts
 * from. Migration 0005 removes `demo` where nothing uses it and keeps it where something does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadApiConfig, type ApiConfig } from '../../src/control-plane/config.ts';
import { MIGRATIONS_DIR, listMigrations, migrate, openDatabase, type Database } from '../../src/control-plane/db/index.ts';
import { listProviders } from '../../src/control-plane/db/queries/providers.ts';
import { registerProvider } from '../../src/control-plane/providers/catalogue.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { loginScriptHeader, readCatalogueHosts, readCatalogueSession } from '../../src/shared/provider-catalogue.ts';
import { verifyScript } from '../../src/shared/signing.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { startTestRedis, startTestS3, tempDir, TEST_JWT_SECRET, TEST_SIGNING_SECRET } from '../support/services.ts';
import { openTestDatabase } from '../support/database.ts';

const logger = createLogger({ name: 'api-catalogue', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

describe('provider catalogue of a deployment without the embedded stack', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3Server: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  let redis: Redis;
  let blobStore: BlobStore;
  let config: ApiConfig;
  let api: ApiHandle | undefined;

  before(async () => {
    [redisServer, s3Server, db] = await Promise.all([startTestRedis(), startTestS3(), openTestDatabase()]);
    await migrate(db);
    redis = createRedis(redisServer.url);
    config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
      PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent',
    });
    blobStore = new BlobStore(createS3Client(config));
    // Left over in Redis from before: a provider that is gone, and a stale entry of one that is not.
    await redis.hset(keys.provider('gone'), { id: 'gone', name: 'gone', allowedHosts: '["127.0.0.1"]' });
    await redis.hset(keys.provider('sri'), { id: 'sri', name: 'sri', allowedHosts: '["evil.example"]', stale: '1' });
    api = await startApi(config, { db, redis, blobStore, logger });
  });
  after(async () => {
    await api?.close();
    redis?.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([redisServer?.stop(), s3Server?.close()]);
  });

  const http = async (method: string, path: string, token?: string, body?: unknown) => {
    const r = await fetch(api!.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    return { status: r.status, body: await r.json() as any };
  };

  it('has no demo provider in a fresh API: not listed, not connectable, no flow for it, not in the workers\' catalogue', async () => {
    const reg = await http('POST', '/api/auth/register', undefined, { email: `cat-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'C', orgName: 'Cat' });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const token = reg.body.token as string;
    const ids = (await http('GET', '/api/providers', token)).body.providers.map((p: { id: string }) => p.id);
    assert.ok(!ids.includes('demo'), `providers: ${ids.join(', ')}`);
    assert.deepEqual(ids, ['cargill', 'sri']);
    const connect = await http('POST', '/api/providers/demo/connect', token, { cookies: [] });
    assert.equal(connect.body.error?.code, 'PROVIDER_NOT_FOUND');
    const flow = await http('POST', '/api/flows', token, { providerId: 'demo', version: '1.0.0', name: 'Loopback', steps: [{ type: 'navigate', url: 'http://127.0.0.1:6379/' }] });
    assert.equal(flow.body.error?.code, 'PROVIDER_NOT_FOUND', JSON.stringify(flow.body));
    assert.equal(await redis.exists(keys.provider('demo')), 0, 'no sri:provider:demo for workers to grant');
  });

  it('publishes the catalogue as it starts: every provider\'s hosts, stale entries replaced, removed providers deleted', async () => {
    const rows = await db.asSystem(listProviders);
    for (const p of rows) {
      assert.deepEqual(await readCatalogueHosts(redis, p.name), { found: true, allowedHosts: p.allowedHosts }, p.name);
      const entry = await redis.hgetall(keys.provider(p.name));
      assert.deepEqual({ id: entry['id'], name: entry['name'], displayName: entry['displayName'] }, { id: p.id, name: p.name, displayName: p.displayName });
      assert.equal(entry['stale'], undefined, 'the entry was replaced as a whole');
    }
    assert.deepEqual(await readCatalogueHosts(redis, 'sri'), { found: true, allowedHosts: ['srienlinea.sri.gob.ec', '*.sri.gob.ec'] });
    assert.equal(await redis.exists(keys.provider('gone')), 0, 'the entry of a provider no longer in PostgreSQL is gone');
  });

  it('publishes a provider registered later at once', async () => {
    const published = await registerProvider(db, redis, { id: 'acme', name: 'acme', displayName: 'Acme portal', allowedHosts: ['portal.acme.example:443'] });
    assert.ok(published.published.includes('acme'));
    assert.deepEqual(await readCatalogueHosts(redis, 'acme'), { found: true, allowedHosts: ['portal.acme.example:443'] });
    await registerProvider(db, redis, { id: 'acme', name: 'acme', displayName: 'Acme portal', allowedHosts: ['*.acme.example'] });
    assert.deepEqual(await readCatalogueHosts(redis, 'acme'), { found: true, allowedHosts: ['*.acme.example'] });
  });

  it('publishes a provider\'s session check and its login flow compiled, hashed and signed under its own header (docs/sessions.md)', async () => {
    const sessionCheck = { url: 'https://portal.acme.example/home', loggedOutUrl: '/login', loggedInSelector: '#account' };
    const loginSteps = [
      { type: 'navigate', url: 'https://portal.acme.example/login' },
      { type: 'fill', selector: '#user', secretRef: 'user' },
      { type: 'fill', selector: '#otp', totp: 'acme' },
      { type: 'click', selector: '#go' },
    ];
    await registerProvider(db, redis, { id: 'acme2', name: 'acme2', displayName: 'Acme 2', allowedHosts: ['portal.acme.example'], sessionCheck, loginSteps }, TEST_SIGNING_SECRET);
    const entry = await readCatalogueSession(redis, 'acme2');
    assert.ok(entry.ok && entry.check && entry.login, JSON.stringify(entry));
    assert.deepEqual(entry.check, sessionCheck);
    assert.ok(entry.login.script.startsWith(`${loginScriptHeader('acme2')}\n`));
    assert.match(entry.login.script, /helpers\.fillSecret\("#user", "user"\)/);
    assert.equal(verifyScript(entry.login.script, entry.login.scriptHash, entry.login.signature, TEST_SIGNING_SECRET), 'ok');
    // Published again at the next start (the API signs with its SCRIPT_SIGNING_SECRET): the same text.
    assert.equal((await redis.hget(keys.provider('acme2'), 'loginScript')), entry.login.script);

    const refused = async (extra: Record<string, unknown>, why: RegExp) => {
      await assert.rejects(registerProvider(db, redis, { id: 'acme3', name: 'acme3', displayName: 'Acme 3', allowedHosts: ['portal.acme.example'], ...extra }, TEST_SIGNING_SECRET),
        (e: unknown) => (e as { code?: string }).code === 'FLOW_INVALID' && why.test((e as Error).message));
      assert.equal(await redis.exists(keys.provider('acme3')), 0, 'nothing published');
    };
    await refused({ sessionCheck: { url: 'https://evil.example/' , loggedInSelector: '#x' } }, /allowedHosts/);
    await refused({ sessionCheck: { url: 'https://portal.acme.example/' } }, /at least one of/);
    await refused({ loginSteps }, /needs a sessionCheck/);
    await refused({ sessionCheck, loginSteps: [{ type: 'download', selector: 'a' }] }, /login flow may use only/);
    assert.equal((await db.asSystem(listProviders)).some((p) => p.id === 'acme3'), false, 'nor stored');
  });
});

describe('migration 0005 (demo only where sri up runs it)', () => {
  // By SQL, not listProviders: its columns come with later migrations (0010's session check).
  const providerIds = async (db: Database) => (await db.asSystem((tx) => tx.query<{ id: string }>('SELECT id FROM providers ORDER BY id'))).map((p) => p.id);

  /** A database with the migrations before 0005 applied, and `prepare` run on it; then the rest. */
  async function migratedAcross0005(prepare: (db: Database) => Promise<void>): Promise<string[]> {
    const dir = tempDir('sri-mig5-');
    const db = await openDatabase({});
    try {
      mkdirSync(join(dir.path, 'm'));
      const before = listMigrations().filter((f) => f < '0005');
      for (const f of before) cpSync(join(MIGRATIONS_DIR, f), join(dir.path, 'm', f));
      await migrate(db, join(dir.path, 'm'));
      assert.ok((await providerIds(db)).includes('demo'), '0001 seeded demo');
      await prepare(db);
      assert.ok((await migrate(db)).includes('0005_demo_provider_embedded_only'));
      return await providerIds(db);
    } finally {
      await db.close();
      dir.remove();
    }
  }

  it('removes demo where nothing uses it', async () => {
    assert.deepEqual(await migratedAcross0005(async () => {}), ['cargill', 'sri']);
  });

  it('keeps demo where a connection (or a flow, or a job) uses it', async () => {
    const ids = await migratedAcross0005(async (db) => {
      await db.asSystem(async (tx) => {
        await tx.query("INSERT INTO organisations (id, name) VALUES ('o1', 'One')");
        await tx.query("INSERT INTO users (id, org_id, email, name, password_hash) VALUES ('u1', 'o1', 'u1@x', 'U1', 'h')");
        await tx.query("INSERT INTO provider_connections (org_id, user_id, provider_id, connected_at, expires_at) VALUES ('o1', 'u1', 'demo', now(), now())");
      });
    });
    assert.deepEqual(ids, ['cargill', 'demo', 'sri']);
  });
});
