/**
 * `sri logs` through the bin launcher against an API on real services (redis-server, s3rver, PGlite); the test
 * writes the job's live log with the worker's own batcher and Redis sink.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ExecutionLogReader } from '../../src/cli/logs.ts';
import { recordResultMessage } from '../../src/control-plane/results/listener.ts';
import { ExecutionLog } from '../../src/execution-plane/job/execution-log.ts';
import { Redactor } from '../../src/execution-plane/job/redactor.ts';
import { startApi } from '../../src/control-plane/server.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { createJobLogBatcher, type LiveLogSettings } from '../../src/execution-plane/logs/redis-sink.ts';
import type { LogBatcher } from '../../src/execution-plane/logs/batcher.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { s3Uri } from '../../src/shared/s3.ts';
import { startTestApi, type TestApi, type TestOrg } from '../support/api.ts';
import { waitFor } from '../support/services.ts';
import { startSri, type CliProcess } from '../support/cli.ts';

const LIVE: LiveLogSettings = {
  logBatchMaxLines: 500, logBatchMaxBytes: 64 * 1024, logFlushIntervalMs: 10, logMaxPendingBatches: 8,
  logStreamMaxBatches: 1000, logTtlSeconds: 600,
};
const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARN|ERROR|DEBUG) (script|console|worker) .*$/;

type Cli = CliProcess;

describe('sri logs', () => {
  let t: TestApi;
  let a: TestOrg;
  const children: Cli[] = [];

  /** Starts `node bin/sri.js …` (the launcher `npx sri` uses) and collects its output. */
  const sri = (args: string[], env: Record<string, string> = {}): Cli => {
    const cli = startSri(args, { SRI_TOKEN: '', ...env });
    children.push(cli);
    return cli;
  };

  const writeBatch = async (b: LogBatcher, ...messages: string[]) => {
    const before = b.stats().written;
    for (const m of messages) b.log('info', 'script', m);
    b.flush();
    await waitFor(() => b.stats().written >= before + messages.length, { what: 'batch written to Redis' });
  };

  /**
   * Whether an API is following a live log for a client: its shared reader (one Redis connection per API process,
   * `sri-api-logs`) is blocked in XREAD, which it is only while it has a stream to watch. Each test here has at most
   * one live response open at a time.
   */
  const following = async () => (await t.redis.call('CLIENT', 'LIST') as string).split('\n')
    .some((l) => / name=sri-api-logs /.test(l) && / flags=b /.test(l));

  before(async () => {
    t = await startTestApi();
    a = await t.createOrg();
  });
  after(async () => {
    for (const c of children) {
      if (c.child.exitCode === null && c.child.signalCode === null) {
        c.child.kill('SIGTERM');
        await c.exited;
      }
    }
    await t?.stop();
  });

  it('`sri logs --follow` prints lines as the job writes them, `ISO-time LEVEL stream message`, and exits 0 at the end', async () => {
    const jobId = await t.runJob(a);
    await t.redis.set(keys.jobStatus(jobId), 'running');
    const cli = sri(['logs', jobId, '--follow', '--api', t.api.url, '--token', a.token]);
    // Connected: the API reads the job's stream for it. Every line below is written after that.
    await waitFor(following, { timeoutMs: 30_000, what: `the CLI to connect (stderr: ${cli.stderr()})` });
    const batcher = createJobLogBatcher(t.redis, LIVE, jobId);
    await writeBatch(batcher, 'opening the portal', 'logged in');
    await waitFor(() => cli.stdout().includes('logged in'), { timeoutMs: 30_000, what: `the CLI to print the first lines (stderr: ${cli.stderr()})` });
    assert.equal(cli.child.exitCode, null, 'still following');
    batcher.log('warn', 'console', 'a warning from the page');
    await writeBatch(batcher, 'done');
    await batcher.close();
    assert.equal(await cli.exited, 0, cli.stderr());

    const lines = cli.stdout().trimEnd().split('\n');
    for (const l of lines) assert.match(l, LINE);
    assert.deepEqual(lines.map((l) => l.split(' ').slice(1).join(' ')), [
      'INFO script opening the portal', 'INFO script logged in', 'WARN console a warning from the page', 'INFO script done',
    ]);
    assert.equal(cli.stderr(), '');
  });

  it('`sri logs --follow` reconnects to an API that restarts and resumes where it was, without repeating a line', async () => {
    const port = await freePort();
    const config = { ...t.config, port };
    const apiDeps = () => ({ db: t.db, redis: t.redis, blobStore: t.blobStore, logger: createLogger({ name: 'api-restart', level: 'silent' }) });
    let api = await startApi(config, apiDeps());
    try {
      const jobId = await t.runJob(a);
      const cli = sri(['logs', jobId, '-f', '--api', api.url, '--token', a.token]);
      await waitFor(following, { timeoutMs: 30_000, what: `the CLI to connect (stderr: ${cli.stderr()})` });
      const batcher = createJobLogBatcher(t.redis, LIVE, jobId);
      await writeBatch(batcher, 'before the restart');
      await waitFor(() => cli.stdout().includes('before the restart'), { what: 'the first line' });
      await api.close();
      await writeBatch(batcher, 'while the API is down');
      api = await startApi(config, apiDeps());
      await waitFor(following, { timeoutMs: 30_000, what: `the CLI to reconnect (stderr: ${cli.stderr()})` });
      await writeBatch(batcher, 'after the restart');
      await batcher.close();
      assert.equal(await cli.exited, 0, cli.stderr());
      assert.deepEqual(cli.stdout().trimEnd().split('\n').map((l) => l.split(' ').slice(3).join(' ')),
        ['before the restart', 'while the API is down', 'after the restart']);
    } finally {
      await api.close();
    }
  });

  it('`sri logs` prints a finished job\'s execution.log, and so does --follow once its live log has expired', async () => {
    const jobId = await t.runJob(a);
    const key = `results/${a.orgId}/${a.userId}/${jobId}/execution.log`;
    const stored = '2026-01-05T10:00:00.000Z INFO  [script] stored line\n2026-01-05T10:00:01.000Z INFO  [worker] done\n';
    await t.blobStore.put(t.config.s3ResultsBucket, key, stored, 'text/plain; charset=utf-8');
    await t.redis.set(keys.jobStatus(jobId), 'done');
    const deps = { db: t.db, blobStore: t.blobStore, resultsBucket: t.config.s3ResultsBucket, logger: createLogger({ name: 't', level: 'silent' }) };
    await recordResultMessage(deps, a.orgId, {
      jobId, orgId: a.orgId, userId: a.userId, providerId: 'demo', success: true, status: 'done', duration: 5, attempt: 1,
      workerId: 'cli-test', finishedAt: new Date().toISOString(), files: { log: s3Uri(t.config.s3ResultsBucket, key), screenshots: [] },
    });
    for (const args of [['logs', jobId], ['logs', jobId, '--follow']]) {
      // The token from the environment this time.
      const cli = sri([...args, '--api', t.api.url], { SRI_TOKEN: a.token });
      assert.equal(await cli.exited, 0, cli.stderr());
      assert.equal(cli.stdout(), stored, args.join(' '));
    }
  });

  /** Records a finished job whose execution.log in S3 is `text`. */
  const finishedJob = async (text: string): Promise<string> => {
    const jobId = await t.runJob(a);
    const key = `results/${a.orgId}/${a.userId}/${jobId}/execution.log`;
    await t.blobStore.put(t.config.s3ResultsBucket, key, text, 'text/plain; charset=utf-8');
    await t.redis.set(keys.jobStatus(jobId), 'done');
    const deps = { db: t.db, blobStore: t.blobStore, resultsBucket: t.config.s3ResultsBucket, logger: createLogger({ name: 't', level: 'silent' }) };
    await recordResultMessage(deps, a.orgId, {
      jobId, orgId: a.orgId, userId: a.userId, providerId: 'demo', success: true, status: 'done', duration: 5, attempt: 1,
      workerId: 'cli-test', finishedAt: new Date().toISOString(), files: { log: s3Uri(t.config.s3ResultsBucket, key), screenshots: [] },
    });
    return jobId;
  };

  /** An execution.log as a worker writes it: the worker's, the script's and the page console's lines, one of them on three lines. */
  const workerLog = () => {
    const exec = new ExecutionLog(new Redactor());
    exec.info('job started');
    exec.add('script', 'opening the portal');
    exec.console('warning', 'a warning from the page');
    exec.error('extract failed:\n  no row\n  matched');
    return exec.text();
  };
  const EXPECTED = [
    { level: 'info', stream: 'worker', message: 'job started' },
    { level: 'info', stream: 'script', message: 'opening the portal' },
    { level: 'warn', stream: 'console', message: 'a warning from the page' },
    { level: 'error', stream: 'worker', message: 'extract failed:\n  no row\n  matched' },
  ];

  it('reads execution.log back into the live log\'s lines, however its text is cut into chunks', () => {
    const text = workerLog();
    const whole = new ExecutionLogReader();
    const lines = [...whole.feed(text), ...whole.end()];
    assert.deepEqual(lines.map(({ ts: _ts, ...l }) => l), EXPECTED);
    for (const l of lines) assert.ok(typeof l.ts === 'number' && Math.abs(l.ts - Date.now()) < 60_000, 'the line\'s time');
    const bytewise = new ExecutionLogReader();
    assert.deepEqual([...[...text].flatMap((c) => bytewise.feed(c)), ...bytewise.end()], lines);
    // A line of another shape is kept whole, as a worker's info line.
    const odd = new ExecutionLogReader();
    assert.deepEqual([...odd.feed('no time here\n2026-01-05T10:00:00.000Z INFO  [script] stored'), ...odd.end()], [
      { ts: null, level: 'info', stream: 'worker', message: 'no time here' },
      { ts: Date.parse('2026-01-05T10:00:00.000Z'), level: 'info', stream: 'worker', message: '[script] stored' },
    ]);
  });

  it('`sri logs --json` prints execution.log as JSON lines {ts, level, stream, message}, with --follow too once the live log is gone', async () => {
    const jobId = await finishedJob(workerLog());
    for (const args of [['logs', jobId, '--json'], ['logs', jobId, '--follow', '--json']]) {
      const cli = sri([...args, '--api', t.api.url, '--token', a.token]);
      assert.equal(await cli.exited, 0, cli.stderr());
      const lines = cli.stdout().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.deepEqual(lines.map(({ ts: _ts, ...l }) => l), EXPECTED, args.join(' '));
      for (const l of lines) assert.deepEqual(Object.keys(l), ['ts', 'level', 'stream', 'message']);
    }
  });

  it('`sri logs --follow --json` prints each live line as one JSON object, as the job writes it', async () => {
    const jobId = await t.runJob(a);
    await t.redis.set(keys.jobStatus(jobId), 'running');
    const cli = sri(['logs', jobId, '--follow', '--json', '--api', t.api.url, '--token', a.token]);
    await waitFor(following, { timeoutMs: 30_000, what: `the CLI to connect (stderr: ${cli.stderr()})` });
    const batcher = createJobLogBatcher(t.redis, LIVE, jobId);
    const before = Date.now();
    await writeBatch(batcher, 'opening the portal', 'a "quoted" line\twith a tab');
    batcher.log('warn', 'console', 'a warning from the page');
    await writeBatch(batcher, 'done');
    await batcher.close();
    assert.equal(await cli.exited, 0, cli.stderr());
    assert.equal(cli.stderr(), '');
    const lines = cli.stdout().trimEnd().split('\n').map((l) => JSON.parse(l) as { ts: number; level: string; stream: string; message: string });
    assert.deepEqual(lines.map(({ ts: _ts, ...l }) => l), [
      { level: 'info', stream: 'script', message: 'opening the portal' },
      { level: 'info', stream: 'script', message: 'a "quoted" line\twith a tab' },
      { level: 'warn', stream: 'console', message: 'a warning from the page' },
      { level: 'info', stream: 'script', message: 'done' },
    ]);
    for (const l of lines) assert.ok(l.ts >= before - 1000 && l.ts <= Date.now(), 'epoch ms');
  });

  it('reports errors as one line `error CODE: message` and exits 1', async () => {
    const jobId = await t.runJob(a);
    const cases: [string[], RegExp][] = [
      [['logs', randomUUID(), '--api', t.api.url, '--token', a.token], /^error NOT_FOUND: No job \S+ in your organisation\.$/],
      [['logs', jobId, '--api', t.api.url, '--token', a.token], /^error LOG_NOT_READY: Job \S+ is queued; .*--follow\.$/],
      [['logs', jobId, '--follow', '--api', t.api.url, '--token', 'forged'], /^error TOKEN_INVALID: /],
      [['logs', jobId, '--api', t.api.url], /^error UNAUTHENTICATED: give an API token with --token or SRI_TOKEN/],
      [['logs', jobId, '--follow', '--api', `http://127.0.0.1:${await freePort()}`, '--token', a.token], /^error SERVICE_UNAVAILABLE: cannot reach the API at /],
    ];
    for (const [args, expected] of cases) {
      const cli = sri(args);
      assert.equal(await cli.exited, 1, args.join(' '));
      assert.match(cli.stderr().trim(), expected);
      assert.doesNotMatch(cli.stderr(), /\n\s+at /, 'no stack trace');
      assert.equal(cli.stdout(), '');
    }
  });
});
