/**
 * Queue depth for the metrics endpoints, on a real redis-server: the read-only Lua call counts every organisation's
 * waiting jobs (producer list + ready lists), reads the front job's createdAt of the deepest ones only, and the
 * gauges export them bounded and cached.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { parseCreatedAt, readQueueDepths, registerQueueDepthGauges } from '../../src/shared/metrics/queue-depth.ts';
import { createMetricsRegistry } from '../../src/shared/metrics/registry.ts';
import { startTestRedis, waitFor } from '../support/services.ts';

describe('queue depth metrics on a real Redis', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let queue: JobQueue;
  const t0 = Date.parse('2026-01-05T10:00:00.000Z');

  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
    queue = await JobQueue.connect(redis);
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  /** A producer's raw push (the oldest is pushed first, so it is at the front), organisation registered in the ring. */
  async function pushJobs(orgId: string, createdAts: (string | number)[], list = keys.orgJobs(orgId)): Promise<void> {
    for (const createdAt of createdAts) {
      // Messages of any size: the script searches for createdAt after a large scriptContent without decoding JSON.
      await redis.lpush(list, JSON.stringify({ jobId: randomUUID(), orgId, scriptContent: 'x'.repeat(50_000), createdAt }));
    }
    await queue.registerOrg(orgId);
  }

  it('parses createdAt as ISO text or epoch ms', () => {
    assert.equal(parseCreatedAt('2026-01-05T10:00:00.000Z'), t0);
    assert.equal(parseCreatedAt(String(t0)), t0);
    assert.equal(parseCreatedAt(''), undefined);
    assert.equal(parseCreatedAt('yesterday'), undefined);
  });

  it('counts every organisation, reports the deepest ones with the createdAt of their oldest front job', async () => {
    await redis.flushdb();
    await pushJobs('deep', [new Date(t0 - 60_000).toISOString(), new Date(t0).toISOString(), new Date(t0).toISOString()]);
    // A job released or recovered sits at the front of a ready list; it is older than the producer list's front.
    await redis.rpush(keys.orgReadyNormal('deep'), JSON.stringify({ jobId: 'old', orgId: 'deep', createdAt: t0 - 120_000 }));
    await pushJobs('middle', [t0 - 30_000, t0]);
    await pushJobs('shallow', [new Date(t0 - 10_000).toISOString()], keys.orgReadyHigh('shallow'));
    await queue.registerOrg('empty');

    const d = await readQueueDepths(redis, 2);
    assert.equal(d.organisations, 4);
    assert.equal(d.organisationsWaiting, 3);
    assert.equal(d.waiting, 7);
    assert.deepEqual(d.orgs, [
      { orgId: 'deep', waiting: 4, oldestCreatedAt: t0 - 120_000 },
      { orgId: 'middle', waiting: 2, oldestCreatedAt: t0 - 30_000 },
    ], 'the cap keeps the two deepest');

    assert.deepEqual((await readQueueDepths(redis, 0)).orgs, [], 'maxOrgs 0: totals only');
    const all = await readQueueDepths(redis, 100);
    assert.deepEqual(all.orgs.map((o) => [o.orgId, o.oldestCreatedAt]), [['deep', t0 - 120_000], ['middle', t0 - 30_000], ['shallow', t0 - 10_000]]);
  });

  it('leaves the age out for a message without a readable createdAt', async () => {
    await redis.flushdb();
    await redis.lpush(keys.orgJobs('odd'), 'not json at all', JSON.stringify({ jobId: 'x', createdAt: 'someday' }));
    await queue.registerOrg('odd');
    assert.deepEqual((await readQueueDepths(redis, 10)).orgs, [{ orgId: 'odd', waiting: 2 }]);
  });

  it('exports the gauges on scrape, bounded by maxOrgs, from one cached read', async () => {
    await redis.flushdb();
    await pushJobs('a', [t0 - 5000, t0]);
    await pushJobs('b', [t0]);
    let now = t0 + 10_000;
    const registry = createMetricsRegistry();
    registerQueueDepthGauges(registry, { redis, maxOrgs: 1, cacheMs: 5000, now: () => now });
    const text = await registry.metrics();
    assert.match(text, /^sri_queue_length\{org="a"\} 2$/m);
    assert.doesNotMatch(text, /sri_queue_length\{org="b"\}/, 'b is beyond the cap');
    assert.match(text, /^sri_queue_oldest_job_age_seconds\{org="a"\} 15$/m);
    assert.match(text, /^sri_queue_waiting_jobs 3$/m);
    assert.match(text, /^sri_queue_organisations\{with_jobs="any"\} 2$/m);
    assert.match(text, /^sri_queue_organisations\{with_jobs="yes"\} 2$/m);
    assert.match(text, /^sri_queue_metrics_up 1$/m);

    // Within the cache time a scrape does not read Redis again; after it, it does.
    await pushJobs('b', [t0, t0]);
    now += 1000;
    assert.match(await registry.metrics(), /^sri_queue_waiting_jobs 3$/m);
    now += 5000;
    const later = await registry.metrics();
    assert.match(later, /^sri_queue_waiting_jobs 5$/m);
    assert.match(later, /^sri_queue_length\{org="b"\} 3$/m, 'b is now the deepest');
    assert.match(later, /^sri_queue_oldest_job_age_seconds\{org="b"\} 16$/m);
  });

  it('reports sri_queue_metrics_up 0 and no stale per-organisation series when Redis does not answer in time, or is away', async () => {
    await redis.flushdb();
    await pushJobs('a', [t0]);
    const registry = createMetricsRegistry();
    registerQueueDepthGauges(registry, { redis, maxOrgs: 10, timeoutMs: 300, cacheMs: 0 });
    assert.match(await registry.metrics(), /^sri_queue_length\{org="a"\} 1$/m);
    // A Redis that holds every client's commands (as a long script or a failover would): the scrape goes on without it.
    const admin = createRedis(server.url);
    try {
      await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
      const started = Date.now();
      const text = await registry.metrics();
      assert.ok(Date.now() - started < 1200, 'the scrape did not wait for Redis');
      assert.match(text, /^sri_queue_metrics_up 0$/m);
      assert.doesNotMatch(text, /^sri_queue_length\{/m);
      assert.match(text, /^sri_queue_waiting_jobs 0$/m, 'a total without a reading is 0 (alert on sri_queue_metrics_up)');
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => {});
      admin.disconnect();
    }
    await waitFor(async () => /^sri_queue_metrics_up 1$/m.test(await registry.metrics()), { what: 'readings again after the pause' });

    // A client that is not connected is not asked at all (it would queue the calls and replay them later).
    const away = createRedis(server.url, { lazyConnect: true });
    try {
      const r2 = createMetricsRegistry();
      registerQueueDepthGauges(r2, { redis: away, maxOrgs: 10 });
      assert.match(await r2.metrics(), /^sri_queue_metrics_up 0$/m);
      assert.equal(away.status, 'wait', 'no command was sent');
    } finally {
      away.disconnect();
    }
  });
});
