import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { QueueCommands, LUA_VERSION } from '../../src/execution-plane/queue/commands.ts';
import { discoverOrgs } from '../../src/execution-plane/queue/org-discovery.ts';
import { RoundRobin, takeNextFair } from '../../src/execution-plane/queue/round-robin.ts';
import { startTestRedis } from '../support/services.ts';
import { testOrg } from './support/jobs.ts';

describe('queue scripts on a real Redis', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let queue: QueueCommands;
  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
    queue = new QueueCommands(redis);
  });
  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('registers each script under a versioned name', () => {
    assert.equal(LUA_VERSION, 1);
    assert.equal(typeof (redis as unknown as Record<string, unknown>)['sri_v1_takeJob'], 'function');
    assert.equal(typeof (redis as unknown as Record<string, unknown>)['sri_v1_completeJob'], 'function');
  });

  it('dead-letters and fails a job in one MULTI, also before the scripts were ever loaded on this server', async () => {
    const org = testOrg();
    await redis.hset(keys.workerActive('w0'), 'tok-0', 'raw');
    await queue.deadLetterAndFail({ reason: 'bad', raw: 'raw', orgId: org }, {
      jobId: 'job-d', orgId: org, workerId: 'w0', token: 'tok-0', status: 'failed', resultJson: '{"jobId":"job-d"}',
    });
    assert.deepEqual(JSON.parse((await redis.lindex(keys.dlq, 0))!), { reason: 'bad', raw: 'raw', orgId: org });
    assert.equal(await redis.get(keys.jobStatus('job-d')), 'failed');
    assert.equal(await redis.get(keys.jobResult('job-d')), '{"jobId":"job-d"}');
    assert.equal(await redis.hlen(keys.workerActive('w0')), 0);
  });

  it('takeJob pops the oldest job, holds it under the take token and marks it running', async () => {
    const org = testOrg();
    await redis.lpush(keys.orgJobs(org), JSON.stringify({ jobId: 'job-1', orgId: org }), JSON.stringify({ jobId: 'job-2', orgId: org }));
    const raw = await queue.take(org, 'w1', 'tok-1');
    assert.deepEqual(JSON.parse(raw!), { jobId: 'job-1', orgId: org });
    assert.equal(await redis.hget(keys.workerActive('w1'), 'tok-1'), raw);
    assert.equal(await redis.get(keys.jobStatus('job-1')), 'running');
    assert.equal(await redis.llen(keys.orgJobs(org)), 1);
  });

  it('takeJob hands out garbage untouched and never sets a status for another organisation', async () => {
    const org = testOrg();
    await redis.lpush(keys.orgJobs(org), 'not json {', JSON.stringify({ jobId: 'job-x', orgId: 'someone-else' }));
    assert.equal(await queue.take(org, 'w1', 'tok-a'), 'not json {');
    assert.ok(await queue.take(org, 'w1', 'tok-b'));
    assert.equal(await redis.get(keys.jobStatus('job-x')), null);
    assert.equal(await queue.take(org, 'w1', 'tok-c'), undefined);
  });

  it('completeJob sets the status, stores the result with a TTL, publishes it and releases the take', async () => {
    const org = testOrg();
    const sub = createRedis(server.url);
    const got: string[] = [];
    sub.on('message', (_ch: string, m: string) => got.push(m));
    await sub.subscribe(keys.orgDone(org));
    await redis.hset(keys.workerActive('w2'), 'tok', 'raw');
    const n = await queue.complete({ jobId: 'job-c', orgId: org, workerId: 'w2', token: 'tok', status: 'done', resultJson: '{"jobId":"job-c"}' });
    assert.equal(n, 1);
    assert.equal(await redis.get(keys.jobStatus('job-c')), 'done');
    assert.equal(await redis.get(keys.jobResult('job-c')), '{"jobId":"job-c"}');
    assert.ok((await redis.ttl(keys.jobResult('job-c'))) > 0);
    assert.equal(await redis.hexists(keys.workerActive('w2'), 'tok'), 0);
    sub.disconnect();
    assert.deepEqual(got, ['{"jobId":"job-c"}']);
  });

  it('recordJob keeps counters and the average duration consistent', async () => {
    await queue.initStats('w3', 1000);
    await queue.recordJob('w3', true, 100, 2000);
    await queue.recordJob('w3', false, 301, 3000);
    const s = await redis.hgetall(keys.workerStats('w3'));
    assert.deepEqual({ ...s, totalDuration: undefined }, {
      workerId: 'w3', startedAt: '1000', totalJobs: '2', successfulJobs: '1', failedJobs: '1', averageDuration: '200', lastJobAt: '3000', totalDuration: undefined,
    });
  });

  it('polls real queues round-robin, discovering organisations from sri:orgs and from queue keys', async () => {
    const [a, b, c] = ['rr-a', 'rr-b', 'rr-c'].map((n) => `${n}-${Date.now()}`) as [string, string, string];
    await redis.sadd(keys.orgs, a);
    const job = (org: string, id: string) => JSON.stringify({ jobId: id, orgId: org });
    await redis.lpush(keys.orgJobs(a), job(a, 'a1'), job(a, 'a2'), job(a, 'a3'));
    await redis.lpush(keys.orgJobs(b), job(b, 'b1'));
    await redis.lpush(keys.orgJobs(c), job(c, 'c1'), job(c, 'c2'));
    const orgs = await discoverOrgs(redis);
    for (const o of [a, b, c]) assert.ok(orgs.includes(o), `${o} discovered`);
    const rr = new RoundRobin();
    rr.setItems(orgs.filter((o) => [a, b, c].includes(o)));
    const order: string[] = [];
    for (let i = 0; ; i++) {
      const next = await takeNextFair(rr, async (org) => queue.take(org, 'w4', `t${i}-${org}`));
      if (!next) break;
      order.push((JSON.parse(next.job) as { jobId: string }).jobId);
    }
    assert.deepEqual(order, ['a1', 'b1', 'c1', 'a2', 'c2', 'a3']);
  });
});
