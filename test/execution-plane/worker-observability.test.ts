/**
 * A worker's metrics, probes and registry entry on real services: redis-server, s3rver, Chromium and the test
 * portal, with hand-signed jobs pushed with LPUSH. The worker's HTTP server listens on a free port.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { listWorkers } from '../../src/shared/worker-registry.ts';
import type { WorkerHandle } from '../../src/execution-plane/worker.ts';
import type { WorkerConfig } from '../../src/execution-plane/config.ts';
import { waitFor } from '../support/services.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { startWorkerOn } from './support/worker-harness.ts';
import { metricValue, scrape } from '../support/metrics.ts';
import type { TestPortal } from './support/portal.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg } from './support/jobs.ts';

/** Chromium processes this test process started (the worker runs in it): their parent is us. */
function ourChromiumPids(): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  return out.split('\n').filter((l) => /chrom/i.test(l)).map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe('worker metrics, probes and registry entry on real Redis, S3 and Chromium', () => {
  let h: ServicesHarness;
  let portal: TestPortal;
  let redis: Redis;
  let worker: WorkerHandle;
  let config: WorkerConfig;
  let base: string;
  let results: Map<string, ResultMessage>;

  before(async () => {
    h = await startServicesHarness({ logPrefix: 'sri-worker-obs-' });
    ({ portal, redis, results } = h);
    ({ worker, config } = await startWorkerOn(h, {
      // One line per live-log batch and one batch in flight: a script that logs in a loop outruns Redis for sure.
      env: { WORKER_HEARTBEAT_INTERVAL_MS: '300', WORKER_LOG_BATCH_MAX_LINES: '1', WORKER_LOG_MAX_PENDING_BATCHES: '1', WORKER_MAX_JOBS: '1' },
    }));
    assert.ok(worker.httpUrl, 'the worker serves HTTP');
    base = worker.httpUrl;
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await h?.stop();
  });

  const session = () => ({ cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], connectedAt: Date.now() });

  async function run(org: string, script: string, overrides: Parameters<typeof signedJob>[2] = {}): Promise<ResultMessage> {
    await setSession(redis, org, 'user-1', session());
    const job = signedJob(org, script, { metadata: { base: portal.url }, ...overrides });
    await push(redis, org, job);
    return waitFor(() => results.get(job.jobId), { timeoutMs: 30_000, what: `result of ${job.jobId}` });
  }

  it('answers /healthz and /readyz, and 404 elsewhere', async () => {
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    const h = await health.json() as { status: string; eventLoop: { stuck: boolean; limitMs: number } };
    assert.equal(h.status, 'ok');
    assert.equal(h.eventLoop.stuck, false);
    assert.equal(h.eventLoop.limitMs, config.maxEventLoopDelayMs);
    const ready = await fetch(`${base}/readyz`);
    assert.deepEqual([ready.status, await ready.json()], [200, { status: 'ready', checks: { redis: 'ok', browser: 'ok', worker: 'ok' } }]);
    const missing = await fetch(`${base}/nope`);
    assert.equal(missing.status, 404);
  });

  it('counts job durations by provider and flow, results by outcome and error code, and dropped live-log lines', async () => {
    const org = testOrg('metrics');
    const done = await run(org, NORMAL_SCRIPT, { providerId: 'demo', flowId: 'flow-ok' });
    assert.equal(done.status, 'done', JSON.stringify(done.error));
    const failed = await run(org, `export default async function run() { throw new Error('portal changed'); }`, { flowId: 'flow-bad' });
    assert.equal(failed.error?.code, 'SCRIPT_ERROR');
    const chatty = await run(org, `export default async function run({ helpers }) {
  for (let i = 0; i < 300; i++) helpers.log('line ' + i);
}`, { flowId: 'flow-chatty' });
    assert.equal(chatty.status, 'done');
    assert.ok(chatty.logs && chatty.logs.droppedLines > 0, `lines were dropped: ${JSON.stringify(chatty.logs)}`);

    const m = await scrape(`${base}/metrics`);
    const w = { worker_id: worker.workerId };
    assert.equal(metricValue(m, 'sri_job_duration_seconds_count', { ...w, provider: 'demo', flow: 'flow-ok', outcome: 'done' }), 1);
    assert.equal(metricValue(m, 'sri_job_duration_seconds_count', { provider: 'demo', flow: 'flow-bad', outcome: 'failed' }), 1);
    assert.ok(metricValue(m, 'sri_job_duration_seconds_sum', { flow: 'flow-ok' })! > 0);
    assert.equal(metricValue(m, 'sri_job_results_total', { outcome: 'done', error_code: 'none' }), 2);
    assert.equal(metricValue(m, 'sri_job_results_total', { outcome: 'failed', error_code: 'SCRIPT_ERROR' }), 1);
    const dropped = [done, failed, chatty].reduce((n, r) => n + (r.logs?.droppedLines ?? 0), 0);
    assert.equal(metricValue(m, 'sri_job_log_lines_dropped_total'), dropped, 'the sum of the results\' logs.droppedLines');
    assert.equal(metricValue(m, 'sri_job_log_batches_dropped_total'), [done, failed, chatty].reduce((n, r) => n + (r.logs?.droppedBatches ?? 0), 0));
    assert.equal(metricValue(m, 'sri_jobs_in_flight'), 0);
    assert.equal(metricValue(m, 'sri_worker_max_jobs'), 1);
    assert.equal(metricValue(m, 'sri_worker_state', { state: 'ready' }), 1);
    assert.equal(metricValue(m, 'sri_worker_state', { state: 'busy' }), 0);
    assert.equal(metricValue(m, 'sri_worker_redis_state', { state: 'connected' }), 1);
    assert.equal(metricValue(m, 'sri_worker_redis_outage_seconds'), 0);
    assert.equal(metricValue(m, 'sri_browser_up'), 1);
    assert.ok(metricValue(m, 'sri_worker_heartbeat_age_seconds')! < 5);
    assert.ok(metricValue(m, 'sri_worker_memory_bytes')! > 0);
    assert.equal(metricValue(m, 'sri_queue_metrics_up'), 1);
    assert.ok(metricValue(m, 'nodejs_eventloop_lag_seconds', w) !== undefined, 'process metrics carry the worker id');
  });

  it('shows a running job in flight and the worker busy, in metrics and in its registry entry', async () => {
    const org = testOrg('busy');
    await setSession(redis, org, 'user-1', session());
    const job = signedJob(org, `export default async function run({ page }) { await page.waitForTimeout(2500); }`);
    await push(redis, org, job);
    await waitFor(async () => metricValue(await scrape(`${base}/metrics`), 'sri_jobs_in_flight') === 1, { timeoutMs: 20_000, what: 'job in flight' });
    assert.equal(metricValue(await scrape(`${base}/metrics`), 'sri_worker_state', { state: 'busy' }), 1);
    const entry = await waitFor(async () => (await listWorkers(redis)).workers.find((x) => x.workerId === worker.workerId && x.reportedState === 'busy'),
      { what: 'registry says busy' });
    assert.equal(entry.state, 'busy');
    assert.equal(entry.jobsInFlight, 1);
    assert.equal(entry.jobs[0]!.jobId, job.jobId);
    assert.equal(entry.maxJobs, 1);
    assert.equal(entry.httpUrl, base);
    assert.equal(entry.pid, process.pid);
    assert.ok(entry.resources, 'the heartbeat carries resource usage');
    assert.ok(['cgroup-v2', 'cgroup-v1', 'process'].includes(entry.resources.source));
    assert.ok(entry.resources.memory.usedBytes > 0);
    assert.ok(entry.stats && entry.stats.totalJobs >= 3);
    await waitFor(() => results.get(job.jobId), { timeoutMs: 30_000, what: 'the job to finish' });
  });

  it('restarts a killed Chromium by itself, counts the restart, and is not ready until it is back', async () => {
    const pids = ourChromiumPids();
    assert.ok(pids.length >= 1, 'Chromium runs under this process');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    const notReady = await waitFor(async () => {
      const r = await fetch(`${base}/readyz`);
      return r.status === 503 ? await r.json() as { checks: Record<string, string> } : undefined;
    }, { what: '/readyz 503 without a browser' });
    assert.match(notReady.checks['browser']!, /^fail/);
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { timeoutMs: 30_000, what: 'browser relaunched' });
    const m = await scrape(`${base}/metrics`);
    assert.equal(metricValue(m, 'sri_browser_restarts_total'), 1);
    assert.equal(metricValue(m, 'sri_browser_up'), 1);
    // The relaunched browser runs jobs.
    assert.equal((await run(testOrg('after-restart'), NORMAL_SCRIPT)).status, 'done');
  });

  it('is not ready while draining, and leaves the registry when stopped', async () => {
    const org = testOrg('drain');
    await setSession(redis, org, 'user-1', session());
    const job = signedJob(org, `export default async function run({ page }) { await page.waitForTimeout(2000); }`);
    await push(redis, org, job);
    await waitFor(async () => (await redis.get(keys.jobStatus(job.jobId))) === 'running', { timeoutMs: 20_000, what: 'job running' });
    const stopped = worker.stop({ graceMs: 20_000 });
    const r = await waitFor(async () => {
      const res = await fetch(`${base}/readyz`);
      return res.status === 503 ? await res.json() as { checks: Record<string, string> } : undefined;
    }, { what: '/readyz 503 while draining' });
    assert.equal(r.checks['worker'], 'fail: draining');
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'alive while draining');
    const entry = await waitFor(async () => (await listWorkers(redis)).workers.find((x) => x.workerId === worker.workerId && x.state === 'draining'),
      { what: 'registry says draining' });
    assert.equal(entry.jobsInFlight, 1);
    await stopped;
    assert.equal(results.get(job.jobId)?.status, 'done', 'the running job finished during the drain');
    assert.deepEqual((await listWorkers(redis)).workers.filter((x) => x.workerId === worker.workerId), [], 'a clean stop leaves the registry');
    assert.equal(await redis.exists(keys.workerInfo(worker.workerId)), 0);
    await assert.rejects(fetch(`${base}/healthz`), 'the HTTP server is closed');
  });
});
