/**
 * One run at a time per portal account (docs/queue.md): jobs that use one session — organisation, user, provider —
 * never hold leases beyond their maxConcurrentPerAccount (1 by default) at once; the next one waits parked (no lease,
 * no worker slot, not failed) and is taken when a lease of its account ends, whichever step ends it. Each case runs on
 * one redis-server and on a Redis Cluster of three masters (test/support/redis-targets.ts).
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue, type Taken } from '../../src/shared/queue/job-queue.ts';
import type { JobMessage, ResultMessage } from '../../src/shared/schemas.ts';
import { REDIS_KINDS, startTestRedisTarget, type TestRedisTarget } from '../support/redis-targets.ts';

const job = (orgId: string, userId: string, over: Partial<JobMessage> = {}): JobMessage => ({
  jobId: `j-${randomUUID().slice(0, 12)}`, orgId, userId, providerId: 'p1', providerName: 'demo', flowId: 'f1',
  flowVersion: '1.0.0', scriptContent: 'export default async () => {}', scriptHash: 'a'.repeat(64), signature: 'b'.repeat(64),
  createdAt: 1, ...over,
});

const result = (t: Taken, status: ResultMessage['status'] = 'done'): ResultMessage => ({
  jobId: t.jobId!, orgId: t.orgId, userId: 'u1', providerId: 'p1', success: status === 'done', status, duration: 1,
  attempt: t.attempt, workerId: 'w', finishedAt: new Date().toISOString(), files: { log: '', screenshots: [] },
});

for (const kind of REDIS_KINDS) describe(`One run at a time per portal account (${kind})`, () => {
  let target: TestRedisTarget;
  let redis: Redis;
  let q: JobQueue;
  before(async () => {
    target = await startTestRedisTarget(kind);
    redis = target.client();
    q = await JobQueue.connect(redis, { leaseMs: 600 });
  });
  beforeEach(async () => { await target.flush(); });
  after(async () => {
    redis?.disconnect();
    await target?.stop();
  });

  /** Every job id the queue hands out until it has nothing to take now (leases kept). */
  async function takeAll(worker = 'w1'): Promise<Taken[]> {
    const out: Taken[] = [];
    for (let t = await q.take(worker); t; t = await q.take(worker)) out.push(t);
    return out;
  }

  async function assertNoHolds(): Promise<void> {
    assert.deepEqual(await redis.hgetall(keys.queueLeasedByOrg), {}, 'no lease and no account hold left');
  }

  it('parks the second job of one account (queued, no lease) and takes it when the first ends', async () => {
    const a1 = job('org-a', 'u1');
    const a2 = job('org-a', 'u1');
    await q.enqueue('org-a', a1);
    await q.enqueue('org-a', a2);
    const taken = await takeAll();
    assert.deepEqual(taken.map((t) => t.jobId), [a1.jobId], 'only the first runs');
    assert.equal(await redis.get(keys.jobStatus(a2.jobId)), 'queued', 'the second is neither failed nor running');
    assert.equal(await q.leaseOf(a2.jobId), undefined, 'it holds no lease (no worker slot)');
    assert.equal(await redis.zcard(keys.queueParked), 1);
    assert.equal(await redis.zcard(keys.queueLeases), 1);
    const stats = await q.stats();
    assert.equal(stats.parked, 1);
    assert.equal(stats.queued['org-a'], 1, 'a parked job counts as queued');
    assert.equal(await redis.hget(keys.queueLeasedByOrg, 'org-a/u1/demo'), '1');
    assert.ok(await redis.sismember(keys.queueRingMembers, 'org-a'), 'its organisation stays in the ring');

    assert.equal(await q.complete(taken[0]!, result(taken[0]!)), 'recorded');
    const t2 = await q.take('w2');
    assert.equal(t2?.jobId, a2.jobId, 'another worker takes it once the first ended');
    assert.equal(t2.raw, JSON.stringify(a2), 'byte for byte as pushed');
    assert.equal(await redis.zcard(keys.queueParked), 0);
    assert.equal(await q.take('w1'), undefined);
    await q.complete(t2, result(t2));
    await assertNoHolds();
  });

  it('runs jobs of other users, other providers and other organisations at once', async () => {
    const jobs = [job('org-a', 'u1'), job('org-a', 'u2'), job('org-a', 'u1', { providerName: 'other' }), job('org-b', 'u1')];
    for (const j of jobs) await q.enqueue(j.orgId, j);
    const taken = await takeAll();
    assert.deepEqual(new Set(taken.map((t) => t.jobId)), new Set(jobs.map((j) => j.jobId)));
    for (const t of taken) await q.complete(t, result(t));
    await assertNoHolds();
  });

  it('allows maxConcurrentPerAccount jobs of one account at once (2), the third waits', async () => {
    const jobs = [1, 2, 3].map(() => job('org-a', 'u1', { maxConcurrentPerAccount: 2 }));
    for (const j of jobs) await q.enqueue('org-a', j);
    const taken = await takeAll();
    assert.deepEqual(taken.map((t) => t.jobId), [jobs[0]!.jobId, jobs[1]!.jobId]);
    const r = await q.completeAndTake(taken[1]!, result(taken[1]!), undefined, 'w1');
    assert.equal(r.next?.jobId, jobs[2]!.jobId, 'the slot that finished takes the parked one in the same step');
    assert.equal(await q.take('w1'), undefined, 'still two at most');
    await q.complete(taken[0]!, result(taken[0]!));
    await q.complete(r.next, result(r.next));
    await assertNoHolds();
  });

  it('keeps the account\'s order, and a parked account does not hold back the organisation\'s other jobs', async () => {
    const a = [1, 2, 3].map(() => job('org-a', 'u1'));
    const other = job('org-a', 'u2');
    const b = job('org-b', 'u1');
    for (const j of [...a, other]) await q.enqueue('org-a', j);
    await q.enqueue('org-b', b);
    const first = await takeAll();
    assert.deepEqual(new Set(first.map((t) => t.jobId)), new Set([a[0]!.jobId, other.jobId, b.jobId]));
    assert.equal(await redis.zcard(keys.queueParked), 2);
    let running = first.find((t) => t.jobId === a[0]!.jobId)!;
    for (const next of [a[1]!, a[2]!]) {
      const r = await q.completeAndTake(running, result(running), undefined, 'w1');
      assert.equal(r.next?.jobId, next.jobId, 'the account\'s jobs run in the order they were pushed');
      assert.equal(await q.take('w2'), undefined);
      running = r.next;
    }
    for (const t of [running, ...first.filter((t) => t.jobId !== a[0]!.jobId)]) await q.complete(t, result(t));
    await assertNoHolds();
  });

  it('takes a parked high-priority job before the organisation\'s normal ones, and a waiting high one before a parked normal one', async () => {
    const a1 = job('org-a', 'u1');
    const a2 = job('org-a', 'u1');
    await q.enqueue('org-a', a1);
    await q.enqueue('org-a', a2);
    const [t1] = await takeAll();
    const high = job('org-a', 'u2', { priority: 'high' });
    await q.enqueue('org-a', high);
    await q.complete(t1!, result(t1!));
    const t2 = await q.take('w1');
    assert.equal(t2?.jobId, high.jobId, 'high priority first');
    const t3 = await q.take('w1');
    assert.equal(t3?.jobId, a2.jobId, 'then the parked one');
    await q.complete(t2, result(t2));
    await q.complete(t3, result(t3));
    await assertNoHolds();
  });

  for (const [how, end] of [
    ['fails', async (t: Taken) => { await q.complete(t, result(t, 'failed')); }],
    ['is cancelled while it runs', async (t: Taken) => {
      assert.equal(await q.cancel(t.orgId, t.jobId!), 'cancelling');
      assert.equal(await q.complete(t, result(t, 'cancelled')), 'recorded');
    }],
    ['is retried later', async (t: Taken) => { await q.retry(t, t.raw, Date.now() + 60_000, { code: 'BROWSER_ERROR', message: 'x' }); }],
    ['is dead-lettered', async (t: Taken) => { await q.bury(t, 'poisoned', result(t, 'dead')); }],
    ['is released at shutdown', async (t: Taken) => { await q.release(t); }],
    ['loses its worker (kill -9: the lease expires and is recovered)', async (t: Taken) => {
      assert.equal(await q.recoverExpired(t.leaseDeadline + 1), 1);
    }],
  ] as const) {
    it(`releases the account when the running job ${how}`, async () => {
      const a1 = job('org-a', 'u1');
      const a2 = job('org-a', 'u1');
      await q.enqueue('org-a', a1);
      await q.enqueue('org-a', a2);
      const [t1, none] = await takeAll();
      assert.equal(t1?.jobId, a1.jobId);
      assert.equal(none, undefined);
      await end(t1!);
      const next = await q.take('w2');
      assert.equal(next?.jobId, a2.jobId, 'the parked job runs');
      assert.equal(await redis.hget(keys.queueLeasedByOrg, 'org-a/u1/demo'), '1', 'held by the new lease only');
      await q.complete(next, result(next));
      // a job that went back to the queue (released, recovered) runs again, after the parked one
      for (const t of await takeAll()) {
        assert.equal(t.jobId, a1.jobId);
        await q.complete(t, result(t));
      }
      await assertNoHolds();
    });
  }

  it('drops a parked job cancelled while it waits; it never runs', async () => {
    const a1 = job('org-a', 'u1');
    const a2 = job('org-a', 'u1');
    await q.enqueue('org-a', a1);
    await q.enqueue('org-a', a2);
    const [t1] = await takeAll();
    assert.equal(await q.cancel('org-a', a2.jobId), 'cancelled');
    assert.equal(await redis.get(keys.jobStatus(a2.jobId)), 'cancelled');
    await q.complete(t1!, result(t1!));
    assert.equal(await q.take('w1'), undefined);
    assert.equal(await redis.zcard(keys.queueParked), 0, 'dropped when its turn came');
    assert.equal(await redis.get(keys.jobStatus(a2.jobId)), 'cancelled');
    await assertNoHolds();
  });

  it('parks at most 32 jobs per take and still reaches the organisation\'s other accounts', async () => {
    const a = Array.from({ length: 80 }, () => job('org-a', 'u1'));
    const other = job('org-a', 'u2');
    for (const j of [...a, other]) await q.enqueue('org-a', j);
    const taken: Taken[] = [];
    for (let i = 0; i < 5 && taken.length < 2; i++) {
      const t = await q.take('w1');
      if (t) taken.push(t);
    }
    assert.deepEqual(taken.map((t) => t.jobId), [a[0]!.jobId, other.jobId]);
    for (const t of taken) await q.complete(t, result(t));
    // the rest of the account, one at a time and in order
    for (let i = 1; i < a.length; i++) {
      const t = await q.take('w1');
      assert.equal(t?.jobId, a[i]!.jobId);
      assert.equal(await q.take('w2'), undefined);
      await q.complete(t, result(t));
    }
    assert.equal(await redis.zcard(keys.queueParked), 0);
    await assertNoHolds();
  });
});
