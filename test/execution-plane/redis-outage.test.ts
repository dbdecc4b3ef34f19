/**
 * A worker process that loses Redis: a real redis-server (append-only file) killed with SIGKILL and started again
 * on the same port (the services harness's killRedis and restartRedis; the worker from spawnWorkerOn). The worker
 * goes `reconnecting` (readyz 503, metrics, log) and back to `ready` when Redis returns; when Redis stays away
 * longer than WORKER_REDIS_MAX_OUTAGE_MS, it exits non-zero with WORKER_REDIS_LOST so that its supervisor restarts it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../../src/embedded/ports.ts';
import { waitFor } from '../support/services.ts';
import { metricValue, scrape } from '../support/metrics.ts';
import { stopWorker, waitForHeartbeat, type WorkerProcess } from '../faults/support/processes.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { spawnWorkerOn } from './support/worker-harness.ts';

const MAX_OUTAGE_MS = 8000;

describe('a worker process losing Redis', () => {
  let h: ServicesHarness;
  let worker: WorkerProcess;
  let base: string;

  before(async () => {
    h = await startServicesHarness({ logPrefix: 'sri-outage-' });
    const httpPort = await freePort();
    base = `http://127.0.0.1:${httpPort}`;
    worker = spawnWorkerOn(h, {
      workerId: `outage-${httpPort}`,
      env: { WORKER_HTTP_PORT: String(httpPort), WORKER_REDIS_MAX_OUTAGE_MS: String(MAX_OUTAGE_MS), WORKER_HEARTBEAT_INTERVAL_MS: '500' },
    });
    await waitForHeartbeat(h.redisUrl, worker);
  });

  after(async () => {
    if (worker) await stopWorker(worker);
    await h?.stop();
  });

  const readyz = async () => {
    const r = await fetch(`${base}/readyz`);
    return { status: r.status, body: await r.json() as { checks: Record<string, string> } };
  };

  it('goes reconnecting while Redis is down, and ready again when it returns, saying so in the log and the metrics', async () => {
    await waitFor(async () => (await readyz()).status === 200, { what: 'ready' });
    await h.killRedis();

    // The first failing probe may see the lost connection before the worker does (a PING without answer): wait for
    // the worker's own state.
    const down = await waitFor(async () => {
      const r = await readyz();
      return r.status === 503 && r.body.checks['worker'] === 'fail: reconnecting' ? r : undefined;
    }, { what: '/readyz 503, worker reconnecting' });
    assert.equal(down.body.checks['redis'], 'fail: reconnecting');
    assert.equal(down.body.checks['worker'], 'fail: reconnecting');
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'alive: a supervisor must not kill it for this');
    const during = await scrape(`${base}/metrics`);
    assert.equal(metricValue(during, 'sri_worker_redis_state', { state: 'reconnecting' }), 1);
    assert.equal(metricValue(during, 'sri_worker_redis_state', { state: 'connected' }), 0);
    assert.equal(metricValue(during, 'sri_worker_state', { state: 'reconnecting' }), 1);
    assert.ok(metricValue(during, 'sri_worker_redis_outage_seconds')! > 0);
    await waitFor(() => /Redis unreachable; worker reconnecting \(with backoff\)/.test(worker.output()), { what: 'the log line' });

    await h.restartRedis();
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 20_000, what: 'ready again' });
    const after = await scrape(`${base}/metrics`);
    assert.equal(metricValue(after, 'sri_worker_redis_state', { state: 'connected' }), 1);
    assert.equal(metricValue(after, 'sri_worker_state', { state: 'ready' }), 1);
    assert.equal(metricValue(after, 'sri_worker_redis_outage_seconds'), 0);
    assert.ok(metricValue(after, 'sri_worker_redis_reconnects_total')! >= 1);
    assert.match(worker.output(), /Redis reachable again; worker ready/);
    assert.equal(worker.child.exitCode, null, 'still running');
  });

  it('exits non-zero with WORKER_REDIS_LOST when Redis stays away longer than WORKER_REDIS_MAX_OUTAGE_MS', async () => {
    await h.killRedis();
    const killedAt = Date.now();
    const exit = await worker.exited;
    const elapsed = Date.now() - killedAt;
    assert.equal(exit.code, 1, worker.output().slice(-2000));
    assert.ok(elapsed >= MAX_OUTAGE_MS - 500, `gave up after ${elapsed} ms, not before the limit`);
    assert.ok(elapsed < MAX_OUTAGE_MS + 15_000, `gave up after ${elapsed} ms`);
    assert.match(worker.output(), /error WORKER_REDIS_LOST: Redis was unreachable for \d+ s, longer than WORKER_REDIS_MAX_OUTAGE_MS \(8000 ms\)/);
    await h.restartRedis();
  });

  it('gives up the same way when Redis is not there when it starts', async () => {
    const nobody = await freePort();
    const w = spawnWorkerOn(h, { workerId: `outage-start-${nobody}`, env: { REDIS_URL: `redis://127.0.0.1:${nobody}`, WORKER_REDIS_MAX_OUTAGE_MS: '1500' } });
    try {
      const exit = await w.exited;
      assert.equal(exit.code, 1, w.output().slice(-2000));
      assert.match(w.output(), /sri worker: Redis was unreachable for \d+ s, longer than WORKER_REDIS_MAX_OUTAGE_MS \(1500 ms\)/);
    } finally {
      await stopWorker(w);
    }
  });
});
