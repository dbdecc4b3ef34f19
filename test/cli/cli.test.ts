import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../../src/embedded/ports.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { runSri, startSri } from '../support/cli.ts';



describe('sri CLI', () => {
  const dir = tempDir('sri-cli-');
  let port: number;
  let server: Server;
  before(async () => {
    port = await freePort();
    server = await new Promise<Server>((r) => { const s = createServer(); s.listen(port, '127.0.0.1', () => r(s)); });
  });
  after(() => { server?.close(); dir.remove(); });

  it('lists its commands through the bin launcher', async () => {
    const r = await runSri(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['up', 'api', 'worker', 'migrate', 'demo']) assert.match(r.stdout, new RegExp(`\\n  ${cmd}\\b`));
  });

  it('reports a taken port as one line "error PORT_IN_USE: …" on stderr, exit 1, no stack trace', async () => {
    const r = await runSri(['up'], { EMBEDDED_S3_PORT: String(port), EMBEDDED_REDIS_PORT: '0', PORT: '0', DEMO_PORT: '0', DATA_DIR: dir.path });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), `error PORT_IN_USE: port ${port} is in use; set EMBEDDED_S3_PORT to another port, or S3_ENDPOINT to use an existing S3`);
  });

  it('reports an unreachable API in `sri demo` as SERVICE_UNAVAILABLE with what to do', async () => {
    const closed = await freePort();
    const r = await runSri(['demo', '--api', `http://127.0.0.1:${closed}`, '--portal', `http://127.0.0.1:${closed}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), /^error SERVICE_UNAVAILABLE: cannot reach the API at http:\/\/127\.0\.0\.1:\d+ .*start it with npm start$/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('reports an invalid setting as CONFIG_INVALID naming the variable', async () => {
    const r = await runSri(['up'], { EMBEDDED_S3_PORT: 'ninety', DATA_DIR: dir.path });
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), /^error CONFIG_INVALID: .*EMBEDDED_S3_PORT/);
  });

  it('`sri migrate` applies the migrations to PGlite under DATA_DIR once', async () => {
    const env = { DATA_DIR: join(dir.path, 'migrate') };
    const first = await runSri(['migrate'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^applied \d+ migration\(s\):\n  0001_schema/);
    const second = await runSri(['migrate'], env);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim(), 'database is up to date');
  });

  it('`sri up` prints where everything is, and SIGTERM stops every child it started and exits 0', async () => {
    const env = {
      DATA_DIR: join(dir.path, 'up'), LOG_DIR: join(dir.path, 'up-logs'), LOG_LEVEL: 'warn',
      EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', WORKERS: '1',
    };
    const up = startSri(['up'], env);
    const { child, exited } = up;
    try {
      await waitFor(() => up.stdout().includes('Ctrl-C stops everything.'), { timeoutMs: 60_000, what: `sri up to start (stderr: ${up.stderr()})` });
      const stdout = up.stdout();
      for (const label of ['API ', 'Demo portal', 'Redis', 'S3', 'Database', 'Workers', 'Data dir', 'Log dir', 'Secrets']) {
        assert.match(stdout, new RegExp(`\\n  ${label}`), label);
      }
      assert.match(stdout, /npm run sri -- demo --api http:\/\/127\.0\.0\.1:\d+ --portal http:\/\/127\.0\.0\.1:\d+/);
      const pids = [...new Set([...stdout.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1])))];
      assert.equal(pids.length, 2, 'redis-server and the worker');
      const api = /API listening at (\S+)/.exec(stdout)![1]!;
      assert.equal((await fetch(`${api}/health`)).status, 200);

      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
      assert.deepEqual(pids.filter(alive), [], 'every child stopped');
      assert.match(up.stdout(), /\[sri\] stopped/);
    } finally {
      // SIGTERM, not SIGKILL, even when an assertion failed: a killed `sri up` could not stop its children.
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(t);
      }
    }
  });
});
