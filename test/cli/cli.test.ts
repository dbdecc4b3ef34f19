import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../../src/embedded/ports.ts';
import { cliVersion } from '../../src/cli/options.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { ROOT, runSri, startSri } from '../support/cli.ts';

const ANSI = /\u001b\[/;

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
    for (const cmd of ['up', 'api', 'worker', 'migrate', 'demo', 'demo-sri']) assert.match(r.stdout, new RegExp(`\\n  ${cmd}\\b`));
  });

  it('`sri --version` and `-V` print package.json\'s version and exit 0', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await runSri([flag]);
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, `${version}\n`, ''], flag);
    }
    assert.equal(cliVersion(join(ROOT, 'dist', 'src', 'cli')), version, 'a build finds it past dist/package.json');
  });

  it('exits 2 on usage errors — unknown option or command, missing argument, no command — with commander\'s one line and a hint', async () => {
    const cases: [string[], RegExp][] = [
      [['demo', '--no-such-option'], /^error: unknown option '--no-such-option'$/m],
      [['no-such-command'], /^error: unknown command 'no-such-command'$/m],
      [['logs'], /^error: missing required argument 'jobId'$/m],
      [['cancel', 'job-1'], /^error: required option '--org <orgId>' not specified$/m],
      [['logs', 'job-1', 'extra'], /^error: too many arguments for 'logs'/m],
      [['dlq'], /^Usage: sri dlq /m],
      [[], /^Usage: sri /m],
    ];
    for (const [args, stderr] of cases) {
      const r = await runSri(args, { SRI_TOKEN: '' });
      assert.equal(r.code, 2, `sri ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, stderr, `sri ${args.join(' ')}`);
      assert.equal(r.stdout, '', `sri ${args.join(' ')} prints nothing on stdout`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('refuses a numeric option that is not a whole number in range, naming the option, exit 2, before doing anything', async () => {
    const closed = await freePort();
    const cases: [string[], RegExp][] = [
      [['demo', '--timeout', 'abc'], /^error: option '--timeout <ms>' argument 'abc' is invalid\. Give a whole number from 1 to 86400000\.$/m],
      [['demo-sri', '--type', 'bogus'], /^error: option '--type <name>' argument 'bogus' is invalid\. Allowed choices are factura, liquidacionCompra, notaCredito, notaDebito, retencion\.$/m],
      [['demo-sri', '--month', '13'], /'--month <n>' argument '13' is invalid/],
      [['demo', '--timeout', '1e3'], /'--timeout <ms>' argument '1e3' is invalid/],
      [['demo', '--timeout', '0'], /'--timeout <ms>' argument '0' is invalid/],
      [['demo', '--timeout', ' 5'], /'--timeout <ms>' argument ' 5' is invalid/],
      [['dlq', 'list', '--limit', '5000'], /'--limit <n>' argument '5000' is invalid\. Give a whole number from 1 to 1000\./],
      [['enrol', 'create', '--ttl', '-5'], /'--ttl <seconds>' argument '-5' is invalid/],
      [['quota', 'set', 'org-1', '--per-minute', 'lots'], /'--per-minute <n>' argument 'lots' is invalid\. Give a whole number from 0 to 1000000, or none\./],
    ];
    for (const [args, stderr] of cases) {
      // Nothing answers on these addresses: a command that ran would fail with exit 1 instead.
      const r = await runSri([...args], { REDIS_URL: `redis://127.0.0.1:${closed}`, OPERATOR_TOKEN: 'x', PORT: String(closed) });
      assert.equal(r.code, 2, `sri ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, stderr, `sri ${args.join(' ')}`);
      assert.doesNotMatch(r.stderr, /^error [A-Z_]+:/m, 'not a runtime failure');
    }
  });

  it('exits 0 for help it was asked for', async () => {
    for (const args of [['--help'], ['help', 'demo'], ['demo', '--help']]) {
      const r = await runSri(args);
      assert.equal(r.code, 0, `sri ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: sri /);
      assert.doesNotMatch(r.stdout, ANSI, 'no colour in piped help');
    }
    const demo = await runSri(['demo', '--help']);
    for (const option of ['--json', '--timeout <ms>']) assert.ok(demo.stdout.includes(option), option);
    const logs = await runSri(['logs', '--help']);
    assert.ok(logs.stdout.includes('--json'));
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
