/**
 * Per-account login lockout (docs/security.md "API hardening"): failed logins of one account are counted in Redis,
 * whatever the client; at AUTH_LOCKOUT_MAX_FAILURES within AUTH_LOCKOUT_WINDOW_MS every login of that account is
 * refused with ACCOUNT_LOCKED (429, Retry-After) for AUTH_LOCKOUT_MS, the right password included.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { accountOf } from '../../src/control-plane/auth/lockout.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { keys } from '../../src/shared/keys.ts';
import type { Logger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { startTestRedis, TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { openTestDatabase } from '../support/database.ts';

const PASSWORD = 'correct-horse-42';
/**
 * Long enough that the lock cannot run out while a loaded machine is still hashing the failed passwords (argon2
 * takes a core for a while); the cool-down is then shortened in Redis instead of waited for.
 */
const LOCK_MS = 60_000;

describe('login lockout per account', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let db: Database;
  let api: ApiHandle;
  let logged = '';

  const login = async (email: string, password: string) => {
    const r = await fetch(`${api.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
    return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() as any };
  };
  const register = async () => {
    const email = `lock-${randomUUID()}@example.com`;
    const r = await fetch(`${api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD, name: 'L', orgName: 'L' }),
    });
    assert.equal(r.status, 201);
    return email;
  };

  before(async () => {
    [redisServer, db] = await Promise.all([startTestRedis(), openTestDatabase()]);
    await migrate(db);
    redis = createRedis(redisServer.url);
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, PORT: '0', LOG_LEVEL: 'info',
      AUTH_RATE_LIMIT_MAX: '1000', AUTH_LOCKOUT_MAX_FAILURES: '3', AUTH_LOCKOUT_WINDOW_MS: '60000', AUTH_LOCKOUT_MS: String(LOCK_MS),
    });
    const sink = new Writable({ write(chunk, _enc, cb) { logged += chunk.toString(); cb(); } });
    api = await startApi(config, { db, redis, logger: pino({ level: 'info' }, sink) as unknown as Logger });
  });
  after(async () => {
    await api?.close();
    redis?.disconnect();
    await db?.close();
    await redisServer?.stop();
  });

  it('locks an account after 3 failed logins: the right password is refused with ACCOUNT_LOCKED, 429 and Retry-After', async () => {
    const email = await register();
    for (let i = 0; i < 3; i++) assert.equal((await login(email, `wrong-${i}-password`)).body.error.code, 'INVALID_CREDENTIALS');
    const locked = await login(email, PASSWORD);
    assert.equal(locked.status, 429);
    assert.equal(locked.body.error.code, 'ACCOUNT_LOCKED');
    assert.ok(Number(locked.retryAfter) >= 1 && Number(locked.retryAfter) <= LOCK_MS / 1000, `Retry-After ${locked.retryAfter}`);
    // Another account, same client: not affected.
    const other = await register();
    assert.equal((await login(other, PASSWORD)).status, 200);
    // Case and spaces do not make another account.
    assert.equal((await login(`  ${email.toUpperCase()} `, PASSWORD)).body.error.code, 'ACCOUNT_LOCKED');
    // After the cool-down the right password works again: the lock is a key with a TTL, run out here at once.
    assert.ok(await redis.pttl(keys.authLocked(accountOf(email))) > 0, 'the lock expires by itself');
    await redis.pexpire(keys.authLocked(accountOf(email)), 1);
    await waitFor(async () => (await redis.exists(keys.authLocked(accountOf(email)))) === 0, { timeoutMs: 30_000, what: 'the lock expired' });
    assert.equal((await login(email, PASSWORD)).status, 200);
  });

  it('a successful login starts the count again', async () => {
    const email = await register();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2; i++) assert.equal((await login(email, 'wrong-password-1')).status, 401);
      assert.equal((await login(email, PASSWORD)).status, 200, `round ${round}`);
    }
  });

  it('locks an unknown e-mail the same way (no account enumeration), and keeps e-mails and passwords out of key names and logs', async () => {
    const ghost = `ghost-${randomUUID()}@example.com`;
    const secret = `guess-${randomUUID()}`;
    for (let i = 0; i < 3; i++) assert.equal((await login(ghost, secret)).body.error.code, 'INVALID_CREDENTIALS');
    assert.equal((await login(ghost, secret)).body.error.code, 'ACCOUNT_LOCKED');
    assert.equal(await redis.exists(keys.authLocked(accountOf(ghost))), 1);
    const names = await redis.keys('sri:auth:*');
    assert.ok(names.length > 0 && names.every((k) => !k.includes('@')), names.join(', '));
    assert.match(logged, /account locked after failed logins/);
    assert.ok(!logged.includes(secret) && !logged.includes(PASSWORD), 'no password in the log');
  });
});
