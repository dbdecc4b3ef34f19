/** The API's configuration table and its process entry point (config errors, start, SIGTERM). */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { apiSettings, loadApiConfig } from '../../src/control-plane/config.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { startTestRedis, startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor, TEST_JWT_SECRET } from '../support/services.ts';
import { boundToParent } from '../../src/embedded/bound-child.ts';

const JWT_SECRET = TEST_JWT_SECRET;
const MAIN = 'src/control-plane/main.ts';

describe('API configuration', () => {
  it('applies the documented defaults', () => {
    const c = loadApiConfig({ JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET });
    assert.equal(c.port, 3000);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.dataDir, '.data');
    assert.equal(c.jwtExpiresInSeconds, 3600);
    assert.equal(c.sessionTtlSeconds, 604800);
    assert.equal(c.artifactUrlTtlSeconds, 900);
    assert.ok(Object.isFrozen(c));
    for (const env of ['PORT', 'HOST', 'DATABASE_URL', 'DATA_DIR', 'JWT_SECRET', 'JWT_EXPIRES_IN_SECONDS', 'SESSION_TTL_SECONDS', 'ARTIFACT_URL_TTL_SECONDS', 'REDIS_URL', 'SCRIPT_SIGNING_SECRET']) {
      assert.ok(Object.values(apiSettings).some((s) => s.env === env), env);
    }
  });

  it('names every bad variable in one CONFIG_INVALID error', () => {
    try {
      loadApiConfig({ JWT_SECRET: 'short', SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, PORT: 'abc', DATABASE_URL: 'mysql://x' });
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(isSriError(e));
      assert.equal(e.code, 'CONFIG_INVALID');
      for (const name of ['JWT_SECRET', 'PORT', 'DATABASE_URL']) assert.match(e.message, new RegExp(name));
    }
  });
});

describe('API process', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  const dir = tempDir('sri-api-proc-');
  before(async () => { [redis, s3] = await Promise.all([startTestRedis(), startTestS3()]); });
  after(async () => { await Promise.all([redis?.stop(), s3?.close()]); dir.remove(); });

  it('exits 1 with one clear line when the configuration is invalid', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN], { encoding: 'utf8', env: { PATH: process.env['PATH'], SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET } });
    assert.equal(r.status, 1);
    const lines = r.stderr.trim().split('\n').filter((l) => !/Warning|aws|node >=22|upgrade|a\.co|trace-warnings|^$/i.test(l));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^sri api: Invalid configuration: JWT_SECRET is required/);
  });

  it('starts on embedded PGlite under DATA_DIR, answers /ready and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const child = spawn(...boundToParent(process.execPath, ['--import', 'tsx', MAIN]), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'], NODE_NO_WARNINGS: '1', JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
        REDIS_URL: redis.url, S3_ENDPOINT: s3.endpoint, PORT: String(port), DATA_DIR: join(dir.path, 'data'),
        LOG_DIR: join(dir.path, 'logs'), LOG_LEVEL: 'warn',
      },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const ready = await waitFor(async () => {
        if (child.exitCode !== null) throw new Error(`API exited early: ${output}`);
        const r = await fetch(`http://127.0.0.1:${port}/ready`);
        return r.status === 200 ? r.json() : undefined;
      }, { timeoutMs: 30_000, what: 'API ready' });
      assert.deepEqual(ready, { status: 'ready', checks: { postgres: 'ok', redis: 'ok', s3: 'ok' } });
      assert.ok(existsSync(join(dir.path, 'data', 'pglite')), 'PGlite data directory under DATA_DIR');
      child.kill('SIGTERM');
      assert.equal(await exited, 0, output);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
