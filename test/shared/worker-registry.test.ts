/**
 * The worker registry on a real redis-server: heartbeats write the contract key (epoch ms, TTL 30 s) plus the info
 * hash and the registry entry in one step; listing decides `lost` from the heartbeat and reads jobs in flight from
 * the queue's leases, so a lost worker's job shows until the queue takes it back.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { listWorkers, removeWorker, writeHeartbeat, WORKER_REGISTRY_RETENTION_MS, type WorkerSelfReport } from '../../src/shared/worker-registry.ts';
import { signedJob } from '../execution-plane/support/jobs.ts';
import { startTestRedis } from '../support/services.ts';

describe('worker registry on a real Redis', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let queue: JobQueue;

  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
    queue = await JobQueue.connect(redis, { leaseMs: 60_000 });
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => { await redis.flushdb(); });

  const report = (workerId: string, over: Partial<WorkerSelfReport> = {}): WorkerSelfReport => ({
    workerId, state: 'ready', host: 'host-1', pid: 42, startedAt: 1_000, heartbeatIntervalMs: 1000, maxJobs: 2, jobsInFlight: 0,
    httpUrl: 'http://127.0.0.1:9464',
    resources: {
      source: 'cgroup-v2', sampledAt: 5_000, cpu: { usageSeconds: 12.5, percent: 37.5, limitCores: 2 },
      memory: { usedBytes: 512 * 1024 * 1024, limitBytes: 2 * 1024 * 1024 * 1024 }, process: { rssBytes: 1, heapUsedBytes: 1 },
      system: { cpus: 2, loadAverage1m: 0.5, totalMemoryBytes: 8, freeMemoryBytes: 4 },
    },
    ...over,
  });

  it('keeps the heartbeat key as the contract says (epoch ms, TTL 30 s) and adds the info hash and registry entry', async () => {
    const now = Date.now();
    await writeHeartbeat(redis, report('w-1'), 30, now);
    assert.equal(await redis.get(keys.workerHeartbeat('w-1')), String(now));
    const ttl = await redis.ttl(keys.workerHeartbeat('w-1'));
    assert.ok(ttl > 25 && ttl <= 30, `ttl ${ttl}`);
    const info = await redis.hgetall(keys.workerInfo('w-1'));
    assert.equal(info['state'], 'ready');
    assert.equal(info['lastHeartbeat'], String(now));
    assert.equal(JSON.parse(info['resources']!).source, 'cgroup-v2');
    const infoTtl = await redis.pttl(keys.workerInfo('w-1'));
    assert.ok(infoTtl > WORKER_REGISTRY_RETENTION_MS - 60_000 && infoTtl <= WORKER_REGISTRY_RETENTION_MS);
    assert.equal(await redis.zscore(keys.workers, 'w-1'), String(now));

    // A heartbeat without a fresh reading drops the old one rather than showing it as current.
    await writeHeartbeat(redis, report('w-1', { resources: undefined, state: 'busy' }), 30, now + 1000);
    const again = await redis.hgetall(keys.workerInfo('w-1'));
    assert.equal(again['resources'], undefined);
    assert.equal(again['state'], 'busy');
  });

  it('lists a worker whose heartbeat lapsed (three intervals, or its key expired) as lost, the others as they report', async () => {
    const now = Date.now();
    await writeHeartbeat(redis, report('alive', { state: 'busy' }), 30, now - 500);
    await writeHeartbeat(redis, report('late'), 30, now - 3500);
    await writeHeartbeat(redis, report('expired', { state: 'draining' }), 30, now - 100);
    await redis.del(keys.workerHeartbeat('expired'));
    const list = await listWorkers(redis, now);
    const byId = new Map(list.workers.map((w) => [w.workerId, w]));
    assert.deepEqual(list.workers.map((w) => w.workerId), ['expired', 'alive', 'late'], 'most recent heartbeat first');
    assert.equal(byId.get('alive')!.state, 'busy');
    assert.equal(byId.get('late')!.state, 'lost');
    assert.equal(byId.get('late')!.reportedState, 'ready');
    assert.equal(byId.get('late')!.heartbeatAgeMs, 3500);
    assert.equal(byId.get('expired')!.state, 'lost');
    assert.deepEqual(list.counts, { starting: 0, ready: 0, busy: 1, reconnecting: 0, draining: 0, stopped: 0, lost: 2 });
    const alive = byId.get('alive')!;
    assert.equal(alive.resources?.memory.limitBytes, 2 * 1024 * 1024 * 1024);
    assert.equal(alive.httpUrl, 'http://127.0.0.1:9464');
    assert.equal(alive.lastHeartbeat, new Date(now - 500).toISOString());
  });

  it('reads jobs in flight from the leases, stats from the stats hash, and forgets a worker that stopped cleanly', async () => {
    const now = Date.now();
    await writeHeartbeat(redis, report('w-lease'), 30, now);
    await queue.initWorkerStats('w-lease', 1_000);
    await queue.recordWorkerJob('w-lease', true, 200, now - 10);
    await queue.recordWorkerJob('w-lease', false, 400, now - 5);
    const job = signedJob('org-r', 'export default async function run() {}');
    await queue.enqueue('org-r', job);
    const taken = await queue.take('w-lease');
    assert.equal(taken?.jobId, job.jobId);

    const w = (await listWorkers(redis, now)).workers[0]!;
    assert.equal(w.jobsInFlight, 1);
    assert.equal(w.jobs[0]!.jobId, job.jobId);
    assert.equal(w.jobs[0]!.orgId, 'org-r');
    assert.equal(w.jobs[0]!.attempt, 1);
    assert.deepEqual(w.stats, {
      startedAt: new Date(1_000).toISOString(), totalJobs: 2, successfulJobs: 1, failedJobs: 1, averageDurationMs: 300, lastJobAt: new Date(now - 5).toISOString(),
    });

    await removeWorker(redis, 'w-lease');
    const after = await listWorkers(redis, now);
    assert.deepEqual(after.workers, []);
    assert.equal(after.unattributedLeases, 1, 'its lease is still there until completed or recovered');
    assert.equal(await redis.exists(keys.workerInfo('w-lease'), keys.workerHeartbeat('w-lease')), 0);
  });

  it('drops registry entries older than the retention at the next heartbeat of any worker', async () => {
    const now = Date.now();
    await redis.zadd(keys.workers, now - WORKER_REGISTRY_RETENTION_MS - 1, `ancient-${randomUUID()}`);
    await writeHeartbeat(redis, report('fresh'), 30, now);
    assert.deepEqual(await redis.zrange(keys.workers, '0', '-1'), ['fresh']);
  });
});
