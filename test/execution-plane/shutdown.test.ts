/**
 * A worker stopping while its job waits on a service that does not answer (real redis-server, s3rver, Chromium):
 * - Redis stalls (SIGSTOP) under a running job: the job, aborted at the end of the grace period, cannot be released
 *   (its Redis call never returns), so the stop ends — bounded, not hanging — with WORKER_SHUTDOWN_TIMEOUT in its
 *   result and the worker's log; once Redis answers again the job is not lost: another worker runs it to done;
 * - S3 stalls (a proxy in front of s3rver that holds every byte) under the job's evidence upload: the stop aborts
 *   the upload (its AbortSignal fires: the request's connection is closed by the worker) and ends without error
 *   long before the upload's own 60 s bound; the job is not reported done without its evidence but goes back to its
 *   queue untouched, and a worker with a working S3 then runs it to done with its evidence.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { keys } from '../../src/shared/keys.ts';
import { waitFor } from '../support/services.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { startWorkerOn, testSession, type TestWorker } from './support/worker-harness.ts';

/** Short leases renewed often, and a fast sweep: a job whose worker is gone is taken back within seconds. */
const FAST_LEASES = { WORKER_LEASE_MS: '3000', WORKER_RECOVERY_INTERVAL_MS: '100' };

/**
 * A TCP proxy in front of `target`: forwards both ways until `stall()`; from then on it holds whatever the clients
 * send (a request never reaches the server, so it never gets an answer). Counts requests held and held connections
 * the client closed (what an aborted request does).
 */
async function stallingProxy(targetPort: number): Promise<{ url: string; stall(): void; held: () => string[]; closedByClient: () => number; close(): Promise<void> }> {
  let stalled = false;
  const held: string[] = [];
  let closedByClient = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let holding = false;
    client.on('data', (chunk: Buffer) => {
      if (stalled || holding) {
        if (!holding) held.push(chunk.toString('latin1').split('\r\n')[0] ?? '');
        holding = true;
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => { if (!holding) client.write(chunk); });
    client.on('close', () => {
      if (holding) closedByClient++;
      upstream.destroy();
      sockets.delete(client);
    });
    upstream.on('close', () => { if (!holding) client.destroy(); sockets.delete(upstream); });
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stall: () => { stalled = true; },
    held: () => [...held],
    closedByClient: () => closedByClient,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

describe('a worker stopping while its job waits on a stalled service', () => {
  let h: ServicesHarness;
  const workers: TestWorker[] = [];
  before(async () => { h = await startServicesHarness(); });
  after(async () => {
    for (const w of workers) await w.worker.stop({ graceMs: 1000 });
    await h?.stop();
  });

  it('ends with WORKER_SHUTDOWN_TIMEOUT when the aborted job cannot settle (Redis stalled), and the job is not lost', async () => {
    const org = testOrg('stop-timeout');
    await setSession(h.redis, org, 'user-1', testSession(h.portal));
    const first = await startWorkerOn(h, { env: FAST_LEASES, name: 'stalled-redis-worker' });
    workers.push(first);
    const job = signedJob(org, `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/slow?ms=6000', { timeout: 60000 });
  helpers.setResult({ finished: true });
}`, { metadata: { base: h.portal.url }, maxAttempts: 3, timeoutMs: 60_000 });
    await push(h.redis, org, job);
    await waitFor(async () => (await h.redis.get(keys.jobStatus(job.jobId))) === 'running', { timeoutMs: 60_000, what: 'the job running' });
    const redisPid = h.redisServer.pid;
    process.kill(redisPid, 'SIGSTOP');
    let stopped: Awaited<ReturnType<TestWorker['worker']['stop']>>;
    const started = Date.now();
    try {
      // The job's release back to its queue is a Redis call that never returns while Redis is stopped.
      stopped = await first.worker.stop({ graceMs: 300 });
    } finally {
      process.kill(redisPid, 'SIGCONT');
    }
    const tookMs = Date.now() - started;
    assert.equal(stopped.unsettled, 1, JSON.stringify(stopped));
    assert.equal(stopped.error?.code, 'WORKER_SHUTDOWN_TIMEOUT', JSON.stringify(stopped));
    assert.match(stopped.error.message, /leases expire and other workers run them again/);
    // Grace (0.3 s) + the aborted jobs' 10 s to settle + closing (each Redis call bounded at 2 s): bounded, not hung.
    assert.ok(tookMs < 40_000, `the stop ended in ${tookMs} ms`);
    assert.equal(first.worker.state(), 'stopped');
    // In its error log ({name}-error.log; the combined log has it too), with the code and the count. The logger's
    // file streams write asynchronously (pino.destination sync: false): the line is waited for, not read at once.
    const unsettledLines = () => {
      let text = '';
      try { text = readFileSync(join(h.logDir, 'stalled-redis-worker-error.log'), 'utf8'); } catch { /* not written yet */ }
      return text.split('\n').filter((l) => l.includes('worker stopped with jobs unsettled')).map((l) => JSON.parse(l) as Record<string, unknown>);
    };
    await waitFor(() => (unsettledLines().length > 0 ? true : undefined), { timeoutMs: 30_000, what: 'the worker\'s error log line' });
    const logged = unsettledLines();
    assert.equal(logged.length, 1, 'the worker logged why it stopped with an error');
    for (const l of logged) assert.deepEqual([l['code'], l['unsettled'], l['workerId']], ['WORKER_SHUTDOWN_TIMEOUT', 1, first.worker.workerId]);
    assert.equal(h.results.get(job.jobId), undefined, 'no outcome was published for the job');
    // Not lost: once Redis answers, the job is back in its queue (its release reached Redis late) or its lease
    // expires; either way another worker runs it.
    const second = await startWorkerOn(h, { env: FAST_LEASES, name: 'second-worker' });
    workers.push(second);
    const r = await waitFor(() => h.results.get(job.jobId), { timeoutMs: 90_000, what: 'the job run by the second worker' });
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal(r.workerId, second.worker.workerId);
    assert.deepEqual(JSON.parse((await h.object(r.files.parsedData)).toString()), { finished: true });
    // The next test's jobs are for its own workers.
    assert.deepEqual(await second.worker.stop({ graceMs: 5000 }), { unsettled: 0 });
  });

  it('aborts an evidence upload in flight when stopping (S3 stalled); the job goes back to its queue, not done without its evidence', async () => {
    const org = testOrg('stop-upload');
    await setSession(h.redis, org, 'user-1', testSession(h.portal));
    const proxy = await stallingProxy(Number(new URL(h.s3Endpoint).port));
    try {
      const first = await startWorkerOn({ ...h, s3Endpoint: proxy.url }, { env: FAST_LEASES, name: 'stalled-s3-worker' });
      workers.push(first);
      // From here no S3 request through the proxy gets an answer: the job runs, then its upload hangs.
      proxy.stall();
      const job = signedJob(org, NORMAL_SCRIPT, { metadata: { base: h.portal.url }, maxAttempts: 3 });
      await push(h.redis, org, job);
      await waitFor(() => proxy.held().some((l) => l.startsWith('PUT ') && l.includes(job.jobId)), { timeoutMs: 60_000, what: 'the job\'s evidence upload in flight' });
      const started = Date.now();
      const stopped = await first.worker.stop({ graceMs: 300 });
      const tookMs = Date.now() - started;
      assert.deepEqual(stopped, { unsettled: 0 }, 'every job settled: the upload was aborted, not waited for');
      // Far below the upload's own bound (S3_CALL_TIMEOUT_MS, 60 s): the abort, not a timeout, ended it.
      assert.ok(tookMs < 30_000, `the stop ended in ${tookMs} ms`);
      assert.ok(proxy.closedByClient() >= 1, 'the worker closed the stalled upload\'s connection (its AbortSignal fired)');
      assert.equal(h.results.get(job.jobId), undefined, 'not reported done (nor failed) without its evidence');
      assert.equal(await h.redis.get(keys.jobStatus(job.jobId)), 'queued');
      assert.deepEqual(await h.redis.lrange(keys.orgReadyNormal(org), 0, -1), [JSON.stringify(job)], 'back in its queue, byte for byte');
      assert.equal(await h.redis.hexists(keys.queueAttempts, job.jobId), 0, 'a release is not an attempt');
      // A worker whose S3 answers runs it to done, evidence and all.
      const second = await startWorkerOn(h, { env: FAST_LEASES, name: 'working-s3-worker' });
      workers.push(second);
      const r = await waitFor(() => h.results.get(job.jobId), { timeoutMs: 60_000, what: 'the job run by the second worker' });
      assert.equal(r.status, 'done', JSON.stringify(r.error));
      assert.deepEqual(JSON.parse((await h.object(r.files.parsedData)).toString()), { rows: 2 });
      assert.ok((await h.object(r.files.log)).length > 0, 'its execution.log is stored');
    } finally {
      await proxy.close();
    }
  });
});
