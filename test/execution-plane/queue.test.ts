import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { startTestRedis } from '../support/services.ts';
import { testOrg } from './support/jobs.ts';

describe('the worker\'s use of the queue on a real Redis', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let queue: JobQueue;
  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
    queue = await JobQueue.connect(redis);
  });
  beforeEach(async () => { await redis.flushall(); });
  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('sets no status for a message that is not JSON or names another organisation, but still leases it', async () => {
    const org = testOrg('q');
    await redis.lpush(keys.orgJobs(org), 'not json {', JSON.stringify({ jobId: 'job-x', orgId: 'someone-else' }));
    await queue.discoverOrgs();
    const first = (await queue.take('w'))!;
    assert.equal(first.raw, 'not json {');
    assert.equal(first.jobId, undefined);
    const second = (await queue.take('w'))!;
    assert.equal(second.jobId, undefined, 'a message of another organisation is not treated as a job of this queue');
    assert.equal(await redis.get(keys.jobStatus('job-x')), null);
    assert.equal(await redis.zcard(keys.queueLeases), 2, 'both are leased, so the worker can dead-letter them');
  });

  it('worker stats keep counters and the average duration consistent', async () => {
    await queue.initWorkerStats('w3', 1000);
    await queue.recordWorkerJob('w3', true, 100, 2000);
    await queue.recordWorkerJob('w3', false, 301, 3000);
    const s = await redis.hgetall(keys.workerStats('w3'));
    assert.deepEqual({ ...s, totalDuration: undefined }, {
      workerId: 'w3', startedAt: '1000', totalJobs: '2', successfulJobs: '1', failedJobs: '1', averageDuration: '200', lastJobAt: '3000', totalDuration: undefined,
    });
  });

  it('discovers organisations from sri:orgs and from queue keys and serves them round-robin', async () => {
    const [a, b, c] = ['rr-a', 'rr-b', 'rr-c'].map((n) => testOrg(n)) as [string, string, string];
    await redis.sadd(keys.orgs, a);
    const job = (org: string, id: string) => JSON.stringify({ jobId: id, orgId: org });
    await redis.lpush(keys.orgJobs(a), job(a, 'a1'), job(a, 'a2'), job(a, 'a3'));
    await redis.lpush(keys.orgJobs(b), job(b, 'b1'));
    await redis.lpush(keys.orgJobs(c), job(c, 'c1'), job(c, 'c2'));
    assert.equal(await queue.discoverOrgs(), 3);
    assert.equal(await queue.discoverOrgs(), 0, 'registering is idempotent');
    const order: string[] = [];
    for (let t = await queue.take('w4'); t; t = await queue.take('w4')) order.push(t.jobId!);
    // One job per organisation per turn, each organisation's own jobs oldest first.
    assert.deepEqual(order.slice(0, 3).map((id) => id[0]).sort(), ['a', 'b', 'c']);
    assert.deepEqual(order.filter((id) => id.startsWith('a')), ['a1', 'a2', 'a3']);
    assert.deepEqual(order.filter((id) => id.startsWith('c')), ['c1', 'c2']);
    assert.deepEqual(order.slice(3, 5).map((id) => id[0]).sort(), ['a', 'c']);
  });
});
