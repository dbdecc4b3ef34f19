/**
 * The ops worker's queue (src/shared/ops/queue.ts, ./lua) on a real Redis: one update at a time (OPS_BUSY), one task
 * running at a time, a dead worker's task reported interrupted and never taken again, a late outcome refused.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isSriError } from '../../src/shared/errors.ts';
import { keys } from '../../src/shared/keys.ts';
import { OpsQueue } from '../../src/shared/ops/queue.ts';
import type { OpsResultMessage, OpsTaskMessage } from '../../src/shared/ops/schemas.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { startTestRedis } from '../support/services.ts';

const by = { identity: 'operator:0123456789ab' };
const update = (targetVersion = '2'): OpsTaskMessage => ({ taskId: randomUUID(), kind: 'system.update', params: { targetVersion, runMigrations: false }, requestedBy: by, requestedAt: new Date().toISOString() });
const check = (): OpsTaskMessage => ({ taskId: randomUUID(), kind: 'system.check', params: {}, requestedBy: by, requestedAt: new Date().toISOString() });
const result = (t: OpsTaskMessage, status: 'done' | 'failed'): OpsResultMessage => ({ taskId: t.taskId, kind: t.kind, status, workerId: 'ops-a', finishedAt: new Date().toISOString(), steps: [] });

describe('ops queue (sri:ops:*)', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let q: OpsQueue;
  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
    q = OpsQueue.connect(redis);
  });
  beforeEach(async () => { await redis.flushall(); });
  after(async () => { redis.disconnect(); await server.stop(); });

  it('refuses a second update with OPS_BUSY until the first has its outcome; checks are never refused', async () => {
    const first = update();
    await q.enqueue(first);
    await assert.rejects(q.enqueue(update('3')), (e) => isSriError(e) && e.code === 'OPS_BUSY' && e.message.includes(first.taskId));
    await q.enqueue(check());
    const take = await q.take('ops-a', 30_000);
    assert.equal(take.kind, 'task');
    await assert.rejects(q.enqueue(update('3')), /still queued or running/, 'running (or rolling back) still counts');
    assert.equal(await q.complete(take.kind === 'task' ? take.token : '', result(first, 'failed')), true);
    await q.enqueue(update('3'));
  });

  it('runs one task at a time, oldest first: a second waits while one is leased', async () => {
    const a = check();
    const b = check();
    await q.enqueue(a);
    await q.enqueue(b);
    const first = await q.take('ops-a', 30_000);
    assert.equal(first.kind, 'task');
    assert.equal(first.kind === 'task' && JSON.parse(first.raw).taskId, a.taskId);
    assert.deepEqual(await q.take('ops-b', 30_000), { kind: 'busy', workerId: 'ops-a' });
    assert.equal(await q.status(a.taskId), 'running');
    assert.equal(await q.status(b.taskId), 'queued');
    await q.complete(first.kind === 'task' ? first.token : '', result(a, 'done'));
    const second = await q.take('ops-b', 30_000);
    assert.equal(second.kind === 'task' && JSON.parse(second.raw).taskId, b.taskId);
  });

  it('reports the task of an expired lease interrupted, never runs it again, and refuses the dead worker\'s late outcome', async () => {
    const t = update();
    await q.enqueue(t);
    const take = await q.take('ops-a', 1000, 1_000);
    assert.equal(take.kind, 'task');
    const token = take.kind === 'task' ? take.token : '';
    assert.equal(await q.recoverLease('ops-b', 1_500), undefined, 'not expired yet');
    assert.equal(await q.recoverLease('ops-b', 2_001), t.taskId);
    assert.equal(await q.status(t.taskId), 'interrupted');
    assert.deepEqual(await q.take('ops-b', 30_000), { kind: 'nothing' });
    assert.equal(await q.renew(token, 30_000), false, 'the dead worker learns it lost the lease');
    assert.equal(await q.complete(token, result(t, 'done')), false, 'a late outcome changes nothing');
    const pending = await q.pendingResults();
    assert.equal(pending.length, 1);
    assert.equal(pending[0]!.result?.status, 'interrupted');
    assert.equal(pending[0]!.result?.error?.code, 'OPS_INTERRUPTED');
    assert.equal(await redis.exists(keys.opsActiveUpdate), 0, 'a new update may start');
    await q.acknowledge(t.taskId);
    assert.deepEqual(await q.pendingResults(), []);
  });

  it('recovers at once the lease its own worker id held before a restart', async () => {
    const t = update();
    await q.enqueue(t);
    await q.take('ops-a', 60_000);
    assert.equal(await q.recoverLease('ops-b'), undefined, 'another worker waits for the deadline');
    assert.equal(await q.recoverLease('ops-a'), t.taskId);
  });

  it('announces each outcome on sri:ops:done', async () => {
    const sub = redis.duplicate();
    const got = new Promise<string>((resolve) => sub.on('message', (_c: string, m: string) => resolve(m)));
    await sub.subscribe(keys.opsDone);
    try {
      const t = check();
      await q.enqueue(t);
      const take = await q.take('ops-a', 30_000);
      await q.complete(take.kind === 'task' ? take.token : '', result(t, 'done'));
      assert.deepEqual(JSON.parse(await got), { taskId: t.taskId, status: 'done' });
    } finally {
      sub.disconnect();
    }
  });
});
