/**
 * The worker as a process (`node --import tsx src/execution-plane/main.ts`): refusing a bad configuration, and
 * draining on SIGTERM.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { startTestRedis, startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { startTestPortal, type TestPortal } from './support/portal.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg } from './support/jobs.ts';

const MAIN = 'src/execution-plane/main.ts';

function spawnWorker(env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', NODE_NO_WARNINGS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

describe('worker process', () => {
  it('refuses to start with DATABASE_URL set: one line on stderr naming it, exit code 1', async () => {
    const w = spawnWorker({ SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, DATABASE_URL: 'postgres://u:p@127.0.0.1/db' });
    assert.equal(await w.exited, 1);
    const lines = w.output().trim().split('\n');
    assert.equal(lines.length, 1, w.output());
    assert.match(lines[0]!, /^sri worker: Invalid configuration: DATABASE_URL is set/);
    assert.doesNotMatch(w.output(), /postgres:\/\/u:p/, 'the value is not echoed');
  });

  describe('running', () => {
    let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
    let s3: Awaited<ReturnType<typeof startTestS3>>;
    let portal: TestPortal;
    let redis: Redis;
    let worker: ReturnType<typeof spawnWorker> | undefined;
    const logs = tempDir('sri-worker-proc-');

    before(async () => {
      [redisServer, s3, portal] = await Promise.all([startTestRedis(), startTestS3(), startTestPortal()]);
      redis = createRedis(redisServer.url);
    });
    after(async () => {
      if (worker && worker.child.exitCode === null) {
        worker.child.kill('SIGKILL');
        await worker.exited;
      }
      redis?.disconnect();
      await Promise.all([redisServer?.stop(), s3?.close(), portal?.close()]);
      logs.remove();
    });

    it('survives a script\'s forgotten rejected promise, and on SIGTERM finishes the running job, takes no new one and exits 0', async () => {
      const org = testOrg('proc');
      const workerId = `proc-worker-${randomUUID().slice(0, 8)}`;
      await setSession(redis, org, 'user-1', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], connectedAt: Date.now() });
      worker = spawnWorker({
        REDIS_URL: redisServer.url, S3_ENDPOINT: s3.endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
        WORKER_ID: workerId, WORKER_POLL_INTERVAL: '50', WORKER_MAX_JOBS: '1', LOG_DIR: logs.path, LOG_LEVEL: 'info',
      });
      const w = worker;
      const status = (jobId: string) => redis.get(keys.jobStatus(jobId));

      // A node:vm script shares the worker's process: an unawaited failing call must not take it down.
      const floating = signedJob(org, `export default async function run({ page, payload }) {
  await page.goto(payload.base + '/invoices');
  page.click('#does-not-exist', { timeout: 100 });
}`, { metadata: { base: portal.url } });
      await push(redis, org, floating);
      await waitFor(async () => (await status(floating.jobId)) === 'done', { timeoutMs: 30_000, what: `floating job done; output: ${w.output().slice(-500)}` });
      const next = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url } });
      await push(redis, org, next);
      await waitFor(async () => (await status(next.jobId)) === 'done', { timeoutMs: 15_000, what: 'job after the floating one' });

      const slow = signedJob(org, `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/slow?ms=2500');
  helpers.setResult({ text: await page.textContent('#slow') });
}`, { metadata: { base: portal.url } });
      await push(redis, org, slow);
      await waitFor(async () => (await status(slow.jobId)) === 'running', { what: 'slow job running' });
      const queued = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url } });
      await push(redis, org, queued);
      w.child.kill('SIGTERM');

      assert.equal(await w.exited, 0, w.output().slice(-2000));
      assert.equal(await status(slow.jobId), 'done');
      const result = ResultMessage.parse(JSON.parse((await redis.get(keys.jobResult(slow.jobId)))!));
      assert.equal(result.success, true);
      assert.equal(result.workerId, workerId);
      assert.equal(await redis.llen(keys.orgJobs(org)), 1, 'the job pushed during the drain is still queued');
      assert.equal(await status(queued.jobId), null);
      assert.equal(await redis.exists(keys.workerHeartbeat(workerId)), 0, 'heartbeat removed on a clean stop');
      assert.equal((await redis.hgetall(keys.workerStats(workerId)))['successfulJobs'], '3');
      assert.match(w.output(), /unhandled promise rejection/);
      assert.doesNotMatch(w.output(), new RegExp(portal.sessionId));
    });
  });
});
