/**
 * A queue transition whose reply is lost — Redis ran it, the connection broke before the answer arrived (a
 * redis-server killed right after its fsync, a network cut) — and that the client library then sends again
 * (ioredis resends unanswered commands after reconnecting). Found by the fault test: a job stayed 'running'
 * forever after the redis-server kill.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import type { JobMessage } from '../../src/shared/schemas.ts';
import { startTestRedis } from '../support/services.ts';
import { testOrg } from '../execution-plane/support/jobs.ts';
import { startCuttingProxy, type CuttingProxy } from './support/cutting-proxy.ts';

const job = (jobId: string, orgId: string): JobMessage => ({
  jobId, orgId, userId: 'u', providerId: 'p', providerName: 'p', flowId: 'f', flowVersion: '1', scriptContent: 'x',
  scriptHash: '0'.repeat(64), signature: '0'.repeat(64), createdAt: 1,
});

describe('a queue transition whose reply is lost and which the client sends again', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let proxy: CuttingProxy;
  let admin: Redis;
  let viaProxy: Redis;
  before(async () => {
    server = await startTestRedis();
    proxy = await startCuttingProxy(server.port);
    admin = createRedis(server.url);
    viaProxy = createRedis(proxy.url);
    viaProxy.on('error', () => {});
  });
  after(async () => {
    viaProxy?.disconnect();
    admin?.disconnect();
    await proxy?.close();
    await server?.stop();
  });

  it('take: the resent take returns the same lease; no second job is taken under the token, none is orphaned', async () => {
    const org = testOrg('lost-reply');
    const worker = await JobQueue.connect(viaProxy);
    const producer = await JobQueue.connect(admin);
    // Loads the script on the server first (EVALSHA → NOSCRIPT → EVAL), and shows the worker's queue the
    // organisation in the ring, so that the take below leases in its first call: the call whose reply is lost.
    await producer.registerOrg(org);
    assert.equal(await worker.take('warm-up'), undefined);
    await producer.enqueue(org, job(`${org}-a`, org));
    await producer.enqueue(org, job(`${org}-b`, org));

    proxy.loseNextReplyTo('evalsha');
    const taken = await worker.take('w1');
    assert.ok(taken);

    const state = async (jobId: string) => {
      const token = await admin.hget(keys.queueJobLeases, jobId);
      return { status: await admin.get(keys.jobStatus(jobId)), token, leasedJob: token ? await admin.hget(keys.lease(token), 'jobId') : null };
    };
    const a = await state(`${org}-a`);
    const b = await state(`${org}-b`);
    // Every leased job must be described by its own lease, or it can never be recovered.
    for (const [id, s] of [[`${org}-a`, a], [`${org}-b`, b]] as const) {
      if (s.status === 'running') assert.equal(s.leasedJob, id, `${id} is running under lease ${s.token}, which describes ${s.leasedJob}: it is lost`);
    }
    assert.equal(taken.jobId, `${org}-a`, 'the oldest job, once');
    assert.equal(b.status, 'queued', 'the second job stays queued');
    assert.equal(await admin.zcard(keys.queueLeases), 1);
  });
});
