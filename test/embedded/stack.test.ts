import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { isForbiddenForWorker, startStack } from '../../src/embedded/stack.ts';
import { readStoredSecrets, resolveSecrets } from '../../src/embedded/secrets.ts';
import { loadEmbeddedConfig } from '../../src/embedded/config.ts';
import { freePort, portInUse } from '../../src/embedded/ports.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { tempDir } from '../support/services.ts';

function occupy(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

describe('embedded stack start-up checks', () => {
  const dir = tempDir('sri-stack-');
  let port: number;
  let server: Server;
  before(async () => { port = await freePort(); server = await occupy(port); });
  after(() => { server?.close(); dir.remove(); });

  const cases: Array<[variable: string, mentions: string | undefined]> = [
    ['EMBEDDED_REDIS_PORT', 'REDIS_URL'],
    ['EMBEDDED_S3_PORT', 'S3_ENDPOINT'],
    ['PORT', undefined],
    ['DEMO_PORT', undefined],
  ];
  for (const [variable, alternative] of cases) {
    it(`fails with PORT_IN_USE naming ${variable} when its port is taken, before starting anything`, async () => {
      const env = { EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', DATA_DIR: join(dir.path, variable), [variable]: String(port) };
      await assert.rejects(startStack({ env }), (e: unknown) => {
        assert.ok(isSriError(e));
        assert.equal(e.code, 'PORT_IN_USE');
        assert.match(e.message, new RegExp(`^port ${port} is in use; set ${variable} to another port`));
        if (alternative) assert.match(e.message, new RegExp(`or ${alternative} to use an existing`));
        return true;
      });
    });
  }

  it('does not check the embedded ports of services swapped for external ones', async () => {
    // S3_ENDPOINT set: port EMBEDDED_S3_PORT is not wanted, so the next check (PORT) is the one that fails.
    const env = { EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: String(port), S3_ENDPOINT: 'http://127.0.0.1:1', PORT: String(port), DEMO_PORT: '0', DATA_DIR: dir.path };
    await assert.rejects(startStack({ env }), /set PORT to another port/);
  });

  it('fails with DEPENDENCY_MISSING and the install line when redis-server is not on PATH', async () => {
    const env = { EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', DATA_DIR: dir.path, PATH: join(dir.path, 'empty-bin') };
    await assert.rejects(startStack({ env }), (e: unknown) => {
      assert.ok(isSriError(e));
      assert.equal(e.code, 'DEPENDENCY_MISSING');
      assert.match(e.message, /redis-server is not installed/);
      assert.match(e.message, /apt-get install -y redis-server|brew install redis/);
      assert.match(e.message, /REDIS_URL/);
      return true;
    });
  });

  it('rejects a bad setting with CONFIG_INVALID naming the variable', () => {
    assert.throws(() => loadEmbeddedConfig({ EMBEDDED_S3_PORT: 'ninety' }), /EMBEDDED_S3_PORT/);
    assert.throws(() => loadEmbeddedConfig({ SCRIPT_SIGNING_SECRET: 'short' }), /SCRIPT_SIGNING_SECRET must be at least 32/);
  });

  it('uses the documented defaults', () => {
    const c = loadEmbeddedConfig({});
    assert.equal(c.embeddedRedisPort, 6379);
    assert.equal(c.embeddedS3Port, 9000);
    assert.equal(c.port, 3000);
    assert.equal(c.demoPort, 3100);
    assert.equal(c.dataDir, '.data');
    assert.equal(c.workers, 1);
    assert.equal(c.redisUrl, undefined, 'unset REDIS_URL means embedded Redis');
    assert.equal(c.s3Endpoint, undefined);
    assert.equal(c.databaseUrl, undefined);
  });

  it('keeps database and API settings away from workers', () => {
    for (const name of ['DATABASE_URL', 'POSTGRES_PASSWORD', 'PGPASSWORD', 'API_URL', 'API_KEY', 'JWT_SECRET']) assert.ok(isForbiddenForWorker(name), name);
    for (const name of ['REDIS_URL', 'S3_ENDPOINT', 'SCRIPT_SIGNING_SECRET', 'PATH', 'WORKER_ID']) assert.ok(!isForbiddenForWorker(name), name);
  });
});

describe('embedded stack secrets', () => {
  const dir = tempDir('sri-secrets-');
  after(() => dir.remove());

  it('generates the secrets once into DATA_DIR/secrets.json (mode 0600) and reuses them', () => {
    const first = resolveSecrets(dir.path, {});
    const file = join(dir.path, 'secrets.json');
    assert.equal(first.file, file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(first.scriptSigningSecret, /^[0-9a-f]{64}$/);
    assert.match(first.jwtSecret, /^[0-9a-f]{64}$/);
    assert.notEqual(first.scriptSigningSecret, first.jwtSecret);
    assert.match(first.secretsKeys, /^s1:[A-Za-z0-9+/]{43}=$/, 'a keyring of one 32-byte key for tenant secrets');
    assert.deepEqual(first.source, { scriptSigningSecret: 'file', jwtSecret: 'file', secretsKeys: 'file' });
    const before = readFileSync(file, 'utf8');

    const second = resolveSecrets(dir.path, {});
    assert.equal(second.scriptSigningSecret, first.scriptSigningSecret);
    assert.equal(second.jwtSecret, first.jwtSecret);
    assert.equal(readFileSync(file, 'utf8'), before, 'the file is not rewritten');
    assert.deepEqual(readStoredSecrets(dir.path), { scriptSigningSecret: first.scriptSigningSecret, jwtSecret: first.jwtSecret, secretsKeys: first.secretsKeys });
  });

  it('prefers the environment and writes no file when every secret comes from it', () => {
    const other = tempDir('sri-secrets-env-');
    try {
      const env = { scriptSigningSecret: 's'.repeat(40), jwtSecret: 'j'.repeat(40), secretsKeys: `k1:${Buffer.alloc(32, 7).toString('base64')}` };
      const r = resolveSecrets(other.path, env);
      assert.equal(r.scriptSigningSecret, env.scriptSigningSecret);
      assert.equal(r.jwtSecret, env.jwtSecret);
      assert.equal(r.secretsKeys, env.secretsKeys);
      assert.deepEqual(r.source, { scriptSigningSecret: 'env', jwtSecret: 'env', secretsKeys: 'env' });
      assert.equal(readStoredSecrets(other.path), undefined);
    } finally {
      other.remove();
    }
  });

  it('mixes: an environment signing secret with the stored JWT secret', () => {
    const stored = resolveSecrets(dir.path, {});
    const r = resolveSecrets(dir.path, { scriptSigningSecret: 'e'.repeat(40) });
    assert.equal(r.scriptSigningSecret, 'e'.repeat(40));
    assert.equal(r.jwtSecret, stored.jwtSecret);
  });

  it('adds SECRETS_KEYS to a secrets file written before it existed, keeping the secrets already there', () => {
    const other = tempDir('sri-secrets-old-');
    try {
      const old = { scriptSigningSecret: 'o'.repeat(64), jwtSecret: 'p'.repeat(64) };
      writeFileSync(join(other.path, 'secrets.json'), JSON.stringify(old), { mode: 0o600 });
      const r = resolveSecrets(other.path, {});
      assert.equal(r.scriptSigningSecret, old.scriptSigningSecret);
      assert.equal(r.jwtSecret, old.jwtSecret);
      assert.match(r.secretsKeys, /^s1:/);
      assert.deepEqual(readStoredSecrets(other.path), { ...old, secretsKeys: r.secretsKeys });
      assert.equal(statSync(join(other.path, 'secrets.json')).mode & 0o777, 0o600);
    } finally {
      other.remove();
    }
  });

  it('keeps SECRETS_KEYS away from workers', () => {
    assert.ok(isForbiddenForWorker('SECRETS_KEYS'));
    assert.ok(!isForbiddenForWorker('TRANSPORT_KEYS'));
  });

  it('refuses a malformed SECRETS_KEYS or TRANSPORT_KEYS before starting anything, naming the variable', () => {
    for (const [name, value] of [['SECRETS_KEYS', 'k1:short'], ['TRANSPORT_KEYS', 'no-colon']] as const) {
      assert.throws(() => loadEmbeddedConfig({ [name]: value }), (e: unknown) => isSriError(e) && e.code === 'CONFIG_INVALID' && e.message.includes(`${name} entry 1`));
    }
  });

  it('refuses a corrupt secrets file with CONFIG_INVALID instead of silently replacing it', () => {
    const other = tempDir('sri-secrets-bad-');
    try {
      writeFileSync(join(other.path, 'secrets.json'), '{"scriptSigningSecret":"short"}');
      assert.throws(() => resolveSecrets(other.path, {}), (e: unknown) => isSriError(e) && e.code === 'CONFIG_INVALID');
    } finally {
      other.remove();
    }
  });
});

describe('embedded stack start failures', () => {
  const dir = tempDir('sri-stack-fail-');
  after(() => dir.remove());

  it('fails with the worker\'s own CONFIG_INVALID when a worker refuses to start, and stops what it had started', async () => {
    const [redisPort, s3Port, apiPort, demoPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const workerLines: string[] = [];
    const env = {
      PATH: process.env['PATH'], HOME: process.env['HOME'], DATA_DIR: join(dir.path, 'data'), LOG_DIR: join(dir.path, 'logs'), LOG_LEVEL: 'warn',
      EMBEDDED_REDIS_PORT: String(redisPort), EMBEDDED_S3_PORT: String(s3Port), PORT: String(apiPort), DEMO_PORT: String(demoPort),
      WORKERS: '1', WORKER_MAX_JOBS: '0',
    };
    await assert.rejects(startStack({ env, onWorkerOutput: (_id, l) => workerLines.push(l) }), (e: unknown) => {
      assert.ok(isSriError(e), String(e));
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.match(e.message, /^worker embedded-worker-1: Invalid configuration: .*WORKER_MAX_JOBS/);
      return true;
    });
    // Redis, S3 and the API were up before the worker failed; none of them may be left listening.
    for (const port of [redisPort, s3Port, apiPort, demoPort]) assert.equal(await portInUse(port), false, `port ${port} released`);
  });
});
