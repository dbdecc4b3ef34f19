/**
 * `sri demo` through the bin launcher against an API on real services (redis-server, s3rver, PGlite) and the demo
 * portal. No Chromium: the test takes the demo's job from the queue itself, as a worker would, stores its evidence
 * in S3 and completes it, so the API's results listener records it — what the CLI prints is then checked as plain
 * lines (a pipe), as one JSON document (--json), and on a pseudo-terminal (util-linux `script`) with its spinner.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { s3Uri } from '../../src/shared/s3.ts';
import type { JobMessage, ResultMessage } from '../../src/shared/schemas.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { BIN, ROOT, runSri } from '../support/cli.ts';

const WORKER = 'cli-demo-test-worker';
const ANSI = /\u001b\[/;
const SPINNER_FRAMES = /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/;
const PARSED = { invoices: [{ number: 'INV-1001', amount: '120.50' }] };

describe('sri demo', () => {
  let t: TestApi;
  let portal: DemoPortal;
  let queue: JobQueue;
  /** How the stand-in worker ends the next jobs. */
  let outcome: 'done' | 'failed' = 'done';
  let stopped = false;
  let worker: Promise<void>;

  /** Takes each job the demo queues, stores a log, a screenshot and parsed data, and completes it. */
  async function standInWorker(): Promise<void> {
    while (!stopped) {
      const taken = await queue.take(WORKER);
      if (!taken?.jobId) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const job = JSON.parse(taken.raw) as JobMessage;
      const bucket = t.config.s3ResultsBucket;
      const base = `results/${job.orgId}/${job.userId}/${job.jobId}`;
      await t.blobStore.put(bucket, `${base}/execution.log`, `${new Date().toISOString()} SCRIPT opened the portal\n`, 'text/plain; charset=utf-8');
      await t.blobStore.put(bucket, `${base}/screenshot-0.png`, Buffer.from('not really a png'), 'image/png');
      if (outcome === 'done') await t.blobStore.put(bucket, `${base}/parsed-data.json`, JSON.stringify(PARSED), 'application/json');
      const result: ResultMessage = {
        jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, success: outcome === 'done',
        status: outcome, duration: 1200, attempt: taken.attempt, workerId: WORKER, finishedAt: new Date().toISOString(),
        ...(outcome === 'failed' ? { error: { code: 'SCRIPT_ERROR', message: 'the portal changed' } } : {}),
        files: {
          log: s3Uri(bucket, `${base}/execution.log`), screenshots: [s3Uri(bucket, `${base}/screenshot-0.png`)],
          ...(outcome === 'done' ? { parsedData: s3Uri(bucket, `${base}/parsed-data.json`) } : {}),
        },
      };
      await queue.complete(taken, result);
    }
  }

  before(async () => {
    [t, portal] = await Promise.all([startTestApi(), startDemoPortal({ port: 0 })]);
    queue = await JobQueue.connect(t.redis);
    worker = standInWorker();
  });
  after(async () => {
    stopped = true;
    await worker;
    await portal?.close();
    await t?.stop();
  });

  const args = (...more: string[]) => ['demo', '--api', t.api.url, '--portal', portal.url, '--timeout', '60000', ...more];

  it('prints its steps as plain lines into a pipe: no spinner, no control sequence', async () => {
    outcome = 'done';
    const r = await runSri(args());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.doesNotMatch(r.stdout, ANSI);
    assert.doesNotMatch(r.stdout, SPINNER_FRAMES);
    const lines = r.stdout.split('\n');
    for (const step of ['1. registered ', '2. logged in to the demo portal', '3. connected provider demo', '4. created flow ', '5. activated', '6. queued job ', '7. job ']) {
      assert.ok(lines.some((l) => l.startsWith(step)), `a line "${step}…" in:\n${r.stdout}`);
    }
    const jobId = /6\. queued job (\S+)/.exec(r.stdout)![1]!;
    const waits = lines.filter((l) => l.startsWith(`   job ${jobId}: `));
    assert.ok(waits.length >= 1 && new Set(waits).size === waits.length, `each status once:\n${r.stdout}`);
    assert.equal(waits.at(-1), `   job ${jobId}: done`);
    assert.match(r.stdout, /parsed data:\n[\s\S]*"INV-1001"/);
  });

  it('--json prints one JSON document: job id, status, artifacts with links, parsed data — and nothing else', async () => {
    outcome = 'done';
    const r = await runSri(args('--json'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const doc = JSON.parse(r.stdout) as Record<string, any>;
    assert.match(doc['jobId'], /^[0-9a-f-]{36}$/);
    assert.equal(doc['status'], 'done');
    assert.equal(doc['error'], null);
    assert.deepEqual(doc['data'], PARSED);
    assert.equal(typeof doc['flowId'], 'string');
    assert.equal(typeof doc['org']['id'], 'string');
    const kinds = (doc['artifacts'] as { kind: string; name: string; uri: string; url: string }[]).map((a) => a.kind).sort();
    assert.deepEqual(kinds, ['log', 'parsedData', 'screenshot']);
    for (const a of doc['artifacts']) assert.match(a.url, /^http:\/\/127\.0\.0\.1:\d+\//, 'a presigned link');
    assert.ok(!('token' in doc) && !('portalSession' in doc), 'no credentials in the output');
    assert.doesNotMatch(r.stdout, /demo_session|Bearer/);
  });

  it('--json with a failed job: the document says failed, stderr has `error CODE: …`, exit 1', async () => {
    outcome = 'failed';
    try {
      const r = await runSri(args('--json'));
      assert.equal(r.code, 1, r.stderr);
      const doc = JSON.parse(r.stdout) as Record<string, any>;
      assert.equal(doc['status'], 'failed');
      assert.deepEqual(doc['error'], { code: 'SCRIPT_ERROR', message: 'the portal changed' });
      assert.equal(doc['data'], null);
      assert.equal(r.stderr.trim(), `error SCRIPT_ERROR: job ${doc['jobId']} failed: the portal changed`);
    } finally {
      outcome = 'done';
    }
  });

  /** Runs `sri demo …` on a pseudo-terminal (util-linux `script`); resolves with everything the terminal got. */
  function onTerminal(more: string[]): Promise<{ code: number | null; output: string }> {
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    // `script` gives its terminal no size when it has none itself: 100 columns, as a terminal window would have.
    const command = `stty cols 100 rows 30 && exec ${[process.execPath, BIN, ...args(...more)].map(quote).join(' ')}`;
    const env: Record<string, string | undefined> = { ...process.env, TERM: 'xterm', NODE_NO_WARNINGS: '1' };
    delete env['CI'];
    const child = spawn('script', ['-qefc', command, '/dev/null'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    // A hung terminal session must fail the test, not hold the run.
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    return new Promise((res, rej) => {
      child.once('error', rej);
      child.once('exit', (code) => { clearTimeout(timer); res({ code, output }); });
    });
  }
  const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

  it('on a terminal, shows a spinner while it waits, and erases it', { skip: hasScript ? false : 'util-linux `script` is not installed' }, async () => {
    const r = await onTerminal([]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, SPINNER_FRAMES, 'spinner frames');
    assert.match(r.output, /job [0-9a-f-]{36}: (queued|running|done) \(\d+ s\)/, 'what it waits for, and for how long');
    assert.ok(r.output.includes('\u001b[?25l') && r.output.includes('\u001b[?25h'), 'the cursor is hidden, then shown again');
    assert.match(r.output, /7\. job \S+ done/);
  });

  it('on a terminal with --json, still prints only the JSON document', { skip: hasScript ? false : 'util-linux `script` is not installed' }, async () => {
    const r = await onTerminal(['--json']);
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.output, ANSI);
    assert.doesNotMatch(r.output, SPINNER_FRAMES);
    assert.equal((JSON.parse(r.output.replace(/\r\n/g, '\n')) as { status: string }).status, 'done');
  });
});
