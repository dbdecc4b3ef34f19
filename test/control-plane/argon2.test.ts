/**
 * Passwords hashed with node:crypto's Argon2 (src/control-plane/auth/argon2.ts) in place of the `argon2` npm package:
 * hashes the package stored verify unchanged — through the module and through a real login — and what is written
 * now has the package's defaults and format.
 *
 * The FIXTURES were made by argon2@0.45.1 (the version this project used) on Node 20:
 *   const a = require('argon2'); await a.hash(password, options)
 * with the options in each row. The package is no longer installed: these strings are what sits in users.password_hash.
 * The reverse direction was checked by hand when switching (argon2@0.45.1's verify() accepts hashArgon2's output).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { DEFAULT_ARGON2, decodeArgon2, hashArgon2, verifyArgon2 } from '../../src/control-plane/auth/argon2.ts';
import { hashPassword, verifyPassword } from '../../src/control-plane/http/auth.ts';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { insertOrg, insertUser } from '../../src/control-plane/db/queries/accounts.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { startTestRedis, TEST_JWT_SECRET, TEST_SIGNING_SECRET } from '../support/services.ts';
import { openTestDatabase } from '../support/database.ts';

const FIXTURES: ReadonlyArray<{ options: string; password: string; phc: string }> = [
  { options: '{ type: argon2id } (the platform\'s only call)', password: 'correct horse battery 1',
    phc: '$argon2id$v=19$m=65536,p=4,t=3$zNgm3yNQ/0kXfdOxh9z0iw$1pRj0SG4YdY4Lwp1o44+ofKkNp566t5kC3ljVNYjQF4' },
  { options: '{ type: argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 }', password: 'Pässwörd-ünïcode-42',
    phc: '$argon2id$v=19$m=19456,p=1,t=2$9xd1Vp5AlXjxXhqUO4V2cg$aFq5+eQLQVB/hUyNAP1CaaLPAleGVi0Ge0A68MUbnE4' },
  { options: '{ type: argon2i }', password: 'argon2i-password-7',
    phc: '$argon2i$v=19$m=65536,p=4,t=3$pL9SipEZwqFVsCuPUQqxwQ$tbXf4YQF+rQPOEbX4MoHqGjhX+X22KsbEuqd+xzqfVw' },
  { options: '{ type: argon2d, hashLength: 64, memoryCost: 8192, timeCost: 4, parallelism: 2 }', password: 'argon2d-password-8',
    phc: '$argon2d$v=19$m=8192,p=2,t=4$OnNIwfQoZLYSbIFiFg+Y8w$AL0gkA9ZoLZeiJFaSefpau9i5rp3prT0XVS2I7GKrZ/J2avIvy+Fcll8rykkvpHG1Q/QmV2pe5L31Uzhmz9kDQ' },
  { options: '{ associatedData: Buffer.from(\'sri-ad\'), memoryCost: 4096, timeCost: 2, parallelism: 1 }', password: 'with-associated-data-9',
    phc: '$argon2id$v=19$m=4096,p=1,t=2,data=c3JpLWFk$7XTSxCidZ5+O5Hq3EkbTMw$629SGaAR6sGomWyGdQqYR1O+otPhrQz1kSfdeD1rCRs' },
];

describe('argon2 with node:crypto', () => {
  for (const f of FIXTURES) {
    it(`verifies a hash the argon2 package made with ${f.options}, and refuses any other password`, async () => {
      assert.equal(await verifyArgon2(f.phc, f.password), true);
      assert.equal(await verifyArgon2(f.phc, `${f.password}x`), false);
      assert.equal(await verifyArgon2(f.phc, f.password.slice(0, -1)), false);
    });
  }

  it('refuses a fixture whose salt, tag or associated data changed by one character', async () => {
    const f = FIXTURES[4]!;
    const [, alg, v, params, salt, tag] = f.phc.split('$') as [string, string, string, string, string, string];
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    for (const changed of [
      ['', alg, v, params, flip(salt), tag], ['', alg, v, params, salt, flip(tag)],
      ['', alg, v, params.replace('data=c3JpLWFk', 'data=c3JpLWFl'), salt, tag], ['', alg, v, params.replace(',data=c3JpLWFk', ''), salt, tag],
      ['', 'argon2i', v, params, salt, tag],
    ]) assert.equal(await verifyArgon2(changed.join('$'), f.password), false, changed.join('$'));
  });

  it('writes the argon2 package\'s defaults (argon2id, m=65536, t=3, p=4, 16-byte salt, 32-byte tag) in its PHC format', async () => {
    const phc = await hashArgon2('a new password 123');
    assert.match(phc, /^\$argon2id\$v=19\$m=65536,t=3,p=4\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    const d = decodeArgon2(phc)!;
    assert.deepEqual([d.algorithm, d.memoryKib, d.passes, d.parallelism, d.salt.length, d.tag.length],
      [DEFAULT_ARGON2.algorithm, DEFAULT_ARGON2.memoryKib, DEFAULT_ARGON2.passes, DEFAULT_ARGON2.parallelism, DEFAULT_ARGON2.saltBytes, DEFAULT_ARGON2.tagBytes]);
    assert.equal(await verifyArgon2(phc, 'a new password 123'), true);
    assert.equal(await verifyArgon2(phc, 'a new password 124'), false);
    assert.notEqual(await hashArgon2('a new password 123'), phc, 'a fresh salt each time');
  });

  it('treats strings that are not an Argon2 hash it can check as non-matching, without throwing or allocating', async () => {
    const [, , , , salt, tag] = FIXTURES[0]!.phc.split('$') as string[];
    for (const bad of [
      '', 'plain-text-password', '$2b$10$abcdefghijklmnopqrstuu5Jj8QFDHAA8J3nE6Y9Y7Ygy0n7y5a9S', // bcrypt
      `$argon2id$v=16$m=65536,t=3,p=4$${salt}$${tag}`, // Argon2 1.0: node:crypto computes 1.3 only
      `$argon2id$m=65536,t=3,p=4$${salt}$${tag}`, // no version
      `$argon2x$v=19$m=65536,t=3,p=4$${salt}$${tag}`,
      `$argon2id$v=19$m=4294967295,t=3,p=4$${salt}$${tag}`, // 4 TiB of memory from a corrupt row
      `$argon2id$v=19$m=65536,t=100000,p=4$${salt}$${tag}`,
      `$argon2id$v=19$m=65536,t=3$${salt}$${tag}`, // p missing
      `$argon2id$v=19$m=65536,t=3,p=4,t=3$${salt}$${tag}`, // repeated
      `$argon2id$v=19$m=65536,t=3,p=4,k=1$${salt}$${tag}`, // a keyed hash: the key is not in the string
      `$argon2id$v=19$m=65536,t=3,p=4$${salt}==$${tag}`, `$argon2id$v=19$m=65536,t=3,p=4$sa!t$${tag}`,
      `$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$${tag}`, // 4-byte salt
      `$argon2id$v=19$m=65536,t=3,p=4$${salt}$${tag}$extra`,
    ]) {
      assert.equal(decodeArgon2(bad), undefined, bad);
      assert.equal(await verifyArgon2(bad, FIXTURES[0]!.password), false, bad);
    }
  });

  it('verifyPassword (what login calls) accepts a stored package hash and a new one, and spends a verification on an unknown user', async () => {
    assert.equal(await verifyPassword(FIXTURES[0]!.phc, FIXTURES[0]!.password), true);
    assert.equal(await verifyPassword(FIXTURES[0]!.phc, 'wrong password 1'), false);
    assert.equal(await verifyPassword(await hashPassword('fresh password 9'), 'fresh password 9'), true);
    assert.equal(await verifyPassword(undefined, FIXTURES[0]!.password), false);
  });
});

describe('login with a password hash stored by the argon2 package', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let db: Database;
  let api: ApiHandle;

  before(async () => {
    [redisServer, db] = await Promise.all([startTestRedis(), openTestDatabase()]);
    await migrate(db);
    redis = createRedis(redisServer.url);
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, PORT: '0', LOG_LEVEL: 'silent',
    });
    api = await startApi(config, { db, redis });
  });
  after(async () => {
    await api?.close();
    redis?.disconnect();
    await db?.close();
    await redisServer?.stop();
  });

  it('logs in a user whose users.password_hash the argon2 package wrote, and refuses a wrong password', async () => {
    const org = { id: randomUUID(), name: 'Legacy' };
    const email = `legacy-${randomUUID()}@example.com`;
    const f = FIXTURES[0]!;
    await db.asSystem(async (tx) => {
      await insertOrg(tx, org);
      await insertUser(tx, { id: randomUUID(), org_id: org.id, email, name: 'Legacy', password_hash: f.phc, role: 'admin' });
    });
    const login = (password: string) => fetch(`${api.url}/api/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }),
    });
    const ok = await login(f.password);
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.ok(((await ok.json()) as { token?: string }).token);
    const wrong = await login('not the password 1');
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'INVALID_CREDENTIALS');
  });
});
