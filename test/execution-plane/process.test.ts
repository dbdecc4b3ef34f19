/**
 * The worker as a process (`node --import tsx src/execution-plane/main.ts`, support/worker-harness.ts spawnWorkerOn on
 * the file's services harness): refusing a bad configuration, and draining on SIGTERM.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import type { TestPortal } from './support/portal.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { spawnWorkerOn } from './support/worker-harness.ts';
import { kill9, spawnWorker, waitForHeartbeat, type WorkerProcess } from '../faults/support/processes.ts';

describe('worker process', () => {
  it('refuses to start with DATABASE_URL set: one line on stderr naming it, exit code 1', async () => {
    const w = spawnWorker({ SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, DATABASE_URL: 'postgres://u:p@127.0.0.1/db' }, 'refused-worker');
    assert.equal((await w.exited).code, 1);
    const lines = w.output().trim().split('\n');
    assert.equal(lines.length, 1, w.output());
    assert.match(lines[0]!, /^sri worker: Invalid configuration: DATABASE_URL is set/);
    assert.doesNotMatch(w.output(), /postgres:\/\/u:p/, 'the value is not echoed');
  });

  describe('running', () => {
    let h: ServicesHarness;
    let portal: TestPortal;
    let redis: Redis;
    let worker: WorkerProcess | undefined;

    before(async () => {
      h = await startServicesHarness({ logPrefix: 'sri-worker-proc-' });
      ({ portal, redis } = h);
    });
    after(async () => {
      if (worker) await kill9(worker);
      await h?.stop();
    });

    it('survives a script\'s forgotten rejected promise, and on SIGTERM finishes the running job, takes no new one and exits 0', async () => {
      const org = testOrg('proc');
      const workerId = `proc-worker-${randomUUID().slice(0, 8)}`;
      await setSession(redis, org, 'user-1', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], connectedAt: Date.now() });
      worker = spawnWorkerOn(h, { workerId, env: { WORKER_MAX_JOBS: '1' } });
      const w = worker;
      // Started (Chromium up) before the jobs' own bounds count: a loaded machine can take most of a minute for it.
      await waitForHeartbeat(h.redisUrl, w);
      const status = (jobId: string) => redis.get(keys.jobStatus(jobId));

      // An unawaited failing call must not take the script's process (or the worker) down: the job's log says so.
      const floating = signedJob(org, `export default async function run({ page, payload }) {
  await page.goto(payload.base + '/invoices');
  page.click('#does-not-exist', { timeout: 100 });
  await page.waitForTimeout(1000);
}`, { metadata: { base: portal.url } });
      await push(redis, org, floating);
      await waitFor(async () => (await status(floating.jobId)) === 'done', { timeoutMs: 30_000, what: 'floating job done' }).catch((e: Error) => { throw new Error(`${e.message}; output: ${w.output().slice(-3000)}`); });
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

      assert.equal((await w.exited).code, 0, w.output().slice(-2000));
      assert.equal(await status(slow.jobId), 'done');
      const result = ResultMessage.parse(JSON.parse((await redis.get(keys.jobResult(slow.jobId)))!));
      assert.equal(result.success, true);
      assert.equal(result.workerId, workerId);
      assert.equal(await redis.llen(keys.orgJobs(org)), 1, 'the job pushed during the drain is still queued');
      assert.equal(await status(queued.jobId), null);
      assert.equal(await redis.exists(keys.workerHeartbeat(workerId)), 0, 'heartbeat removed on a clean stop');
      assert.equal((await redis.hgetall(keys.workerStats(workerId)))['successfulJobs'], '3');
      const floatingLog = JSON.stringify(await redis.xrange(keys.jobLogs(floating.jobId), '-', '+'));
      assert.match(floatingLog, /unhandled promise rejection in the script \(a missing await\?\)/);
      assert.doesNotMatch(w.output(), new RegExp(portal.sessionId));
    });

    it('keeps a job of 3× the lease on its live worker exactly once; a SIGKILLed worker\'s job runs again as attempt 2', async () => {
      const org = testOrg('lease');
      await setSession(redis, org, 'user-1', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], connectedAt: Date.now() });
      const env = {
        WORKER_MAX_JOBS: '1', LOG_LEVEL: 'warn',
        // A lease long enough that a busy machine's pauses do not let it lapse on a live worker (renewed at a third).
        WORKER_LEASE_MS: '5000', WORKER_RECOVERY_INTERVAL_MS: '100',
      };
      const status = (jobId: string) => redis.get(keys.jobStatus(jobId));
      const result = async (jobId: string) => {
        const raw = await redis.get(keys.jobResult(jobId));
        return raw ? ResultMessage.parse(JSON.parse(raw)) : undefined;
      };
      const slowHits = () => portal.requests.filter((r) => r.path === '/slow').length;
      const slowJob = (ms: number) => signedJob(org, `export default async function run({ page, payload, helpers, context }) {
  await page.goto(payload.base + '/slow?ms=${ms}');
  helpers.setResult({ attempt: context.attempt });
}`, { metadata: { base: portal.url } });

      // Two live workers; a job of 3× the lease: it keeps its lease and runs once.
      const idA = `lease-a-${randomUUID().slice(0, 6)}`;
      const a = spawnWorkerOn(h, { workerId: idA, env });
      const b = spawnWorkerOn(h, { workerId: `lease-b-${randomUUID().slice(0, 6)}`, env });
      worker = a;
      try {
        // Both up before the jobs: the survivor must be running when the victim is killed.
        await Promise.all([waitForHeartbeat(h.redisUrl, a), waitForHeartbeat(h.redisUrl, b)]);
        const long = slowJob(15_000);
        const hitsBefore = slowHits();
        await push(redis, org, long);
        const r = await waitFor(() => result(long.jobId), { timeoutMs: 180_000, what: `long job result; output: ${a.output().slice(-300)} ${b.output().slice(-300)}` });
        assert.equal(r.status, 'done', JSON.stringify(r.error));
        assert.equal(r.attempt, 1);
        assert.equal(slowHits() - hitsBefore, 1, 'the long job ran exactly once');
        assert.equal(await redis.get(keys.queueLateResults), null, 'no late outcome');

        // SIGKILL the worker running the next job: the survivor takes it back after the lease and runs attempt 2.
        const doomed = slowJob(25_000);
        await push(redis, org, doomed);
        await waitFor(async () => (await status(doomed.jobId)) === 'running', { timeoutMs: 60_000, what: 'doomed job running' });
        const token = (await redis.hget(keys.queueJobLeases, doomed.jobId))!;
        const holder = await redis.hget(keys.lease(token), 'workerId');
        const [victim, survivor] = holder === idA ? [a, b] : [b, a];
        victim.child.kill('SIGKILL');
        await victim.exited;
        worker = survivor;
        const again = await waitFor(async () => (await redis.hget(keys.lease((await redis.hget(keys.queueJobLeases, doomed.jobId)) ?? 'none'), 'attempt')) === '2',
          { timeoutMs: 90_000, what: 'attempt 2 running' }).catch((e: Error) => { throw new Error(`${e.message}; output: ${survivor.output().slice(-3000)}`); });
        assert.ok(again);
        // The take sets the lease; the job's `running` status follows in a second small script at the end of the
        // worker's event-loop turn (docs/queue.md), so it is waited for, not read at once.
        await waitFor(async () => (await status(doomed.jobId)) === 'running', { what: 'attempt 2 shown running' });
        assert.equal(await redis.exists(keys.lease(token)), 0, 'the dead worker\'s lease is gone');
      } finally {
        for (const w of [a, b]) await kill9(w);
      }
    });
  });
});
