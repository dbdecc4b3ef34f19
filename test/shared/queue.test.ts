import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue, DLQ_RAW_LIMIT_BYTES, supportsQueue, type Taken } from '../../src/shared/queue/job-queue.ts';
import { commandName, LUA_VERSION, loadScripts } from '../../src/shared/queue/lua-loader.ts';
import type { JobMessage, ResultMessage } from '../../src/shared/schemas.ts';
import { startEmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { startTestRedis, waitFor } from '../support/services.ts';

const job = (orgId: string, over: Partial<JobMessage> = {}): JobMessage => ({
  jobId: `j-${randomUUID().slice(0, 12)}`, orgId, userId: 'u1', providerId: 'p1', providerName: 'demo', flowId: 'f1',
  flowVersion: '1.0.0', scriptContent: 'export default async () => {}', scriptHash: 'a'.repeat(64), signature: 'b'.repeat(64),
  createdAt: 1, ...over,
});

const result = (t: Taken, status: ResultMessage['status'] = 'done'): ResultMessage => ({
  jobId: t.jobId!, orgId: t.orgId, userId: 'u1', providerId: 'p1', success: status === 'done', status, duration: 1,
  attempt: t.attempt, workerId: 'w', finishedAt: new Date().toISOString(), files: { log: '', screenshots: [] },
});

describe('JobQueue on a real Redis', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let q: JobQueue;
  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
    q = await JobQueue.connect(redis, { leaseMs: 600 });
  });
  beforeEach(async () => { await redis.flushall(); });
  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('registers every Lua file under a versioned name and builds keys from keys.ts', () => {
    assert.equal(LUA_VERSION, 3);
    for (const s of loadScripts()) {
      assert.equal(typeof (redis as unknown as Record<string, unknown>)[commandName(s.name)], 'function', s.name);
      assert.doesNotMatch(s.lua, /^--@include/m, `${s.name}: includes resolved`);
      for (const [, name] of s.lua.matchAll(/\bK\.(\w+)/g)) {
        assert.match(s.lua, new RegExp(`^K\\.${name} = `, 'm'), `${s.name}: K.${name} is defined`);
      }
    }
    assert.match(loadScripts().find((s) => s.name === 'takeJob')!.lua, /^K\.orgJobs = function\(a1\) return "sri:org:" \.\. a1 \.\. ":jobs" end$/m);
    assert.equal(commandName('takeJob'), 'sri_v3_takeJob');
  });

  it('accepts the Redis it runs on and names Redis older than 6.2 as too old', async () => {
    await q.assertServerSupported();
    assert.deepEqual(['5.0.14', '6.0.16', '6.2.0', '7.0.15', '7.2.4'].map(supportsQueue), [false, false, true, true, true]);
  });

  it('takes a raw LPUSHed job, leases it and records the first outcome only', async () => {
    const m = job('org-a');
    await redis.lpush(keys.orgJobs('org-a'), JSON.stringify(m));
    await q.discoverOrgs();
    const t = await q.take('w1');
    assert.ok(t);
    assert.equal(t.jobId, m.jobId);
    assert.equal(t.raw, JSON.stringify(m));
    assert.equal(t.attempt, 1);
    assert.equal(await redis.get(keys.jobStatus(m.jobId)), 'running');
    assert.equal(await redis.get(keys.jobLease(m.jobId)), t.token);
    assert.ok(await redis.zscore(keys.queueLeases, t.token));
    assert.equal(await q.take('w1'), undefined, 'nothing else to take');

    const sub = redis.duplicate();
    const heard: string[] = [];
    await sub.subscribe(keys.orgDone('org-a'));
    sub.on('message', (_c, msg) => heard.push(msg));
    assert.equal(await q.complete(t, result(t)), 'recorded');
    assert.equal(await q.complete(t, result(t, 'failed')), 'late', 'a second outcome is refused');
    assert.equal(await redis.get(keys.jobStatus(m.jobId)), 'done');
    assert.equal((await q.stats()).lateResults, 1);
    assert.equal(await redis.zcard(keys.queueLeases), 0);
    assert.equal(await redis.exists(keys.lease(t.token)), 0);
    await waitFor(() => heard.length === 1, { what: 'result published' });
    assert.equal((JSON.parse(heard[0]!) as ResultMessage).status, 'done');
    sub.disconnect();
  });

  it('completes and takes the next job in one step, fairly, counting the job in the worker\'s stats', async () => {
    const a1 = job('org-a');
    const a2 = job('org-a');
    const b1 = job('org-b');
    for (const m of [a1, a2, b1]) await q.enqueue(m.orgId, m);
    const t1 = await q.take('w1');
    assert.ok(t1);
    const r1 = await q.completeAndTake(t1, result(t1), { workerId: 'w1', durationMs: 40, finishedAt: 1 }, 'w1');
    assert.equal(r1.outcome, 'recorded');
    assert.ok(r1.next, 'the next job came with the completion');
    assert.notEqual(r1.next.orgId, t1.orgId, 'the next organisation in the ring, not the same one again');
    assert.equal(await redis.get(keys.jobStatus(t1.jobId!)), 'done');
    assert.equal(await redis.get(keys.jobStatus(r1.next.jobId!)), 'running');
    assert.equal(await redis.get(keys.jobLease(r1.next.jobId!)), r1.next.token);
    assert.deepEqual(await redis.hmget(keys.workerStats('w1'), 'totalJobs', 'successfulJobs', 'averageDuration'), ['1', '1', '40']);
    // A late completion still hands out the next job (the slot is free either way) and counts nothing.
    const late = await q.completeAndTake(t1, result(t1, 'failed'), { workerId: 'w1', durationMs: 1, finishedAt: 2 }, 'w1');
    assert.equal(late.outcome, 'late');
    assert.ok(late.next);
    assert.equal(await redis.hget(keys.workerStats('w1'), 'totalJobs'), '1');
    const last = await q.completeAndTake(late.next, result(late.next), undefined, 'w1');
    assert.equal(last.outcome, 'recorded');
    const end = await q.completeAndTake(r1.next, result(r1.next), undefined, 'w1');
    assert.deepEqual(end, { outcome: 'recorded' }, 'nothing left to take');
    for (const m of [a1, a2, b1]) assert.equal(await redis.get(keys.jobStatus(m.jobId)), 'done');
    assert.equal(await redis.zcard(keys.queueLeases), 0);
  });

  it('does not push a job id twice (a push resent after a lost reply)', async () => {
    const m = job('org-a');
    await q.enqueue('org-a', m);
    await q.enqueue('org-a', m);
    assert.equal(await redis.llen(keys.orgJobs('org-a')), 1);
    const t = await q.take('w1');
    assert.ok(t);
    await q.complete(t, result(t));
    await q.enqueue('org-a', m);
    assert.equal(await redis.llen(keys.orgJobs('org-a')), 0, 'a finished job is not queued again by a stray push');
  });

  it('renews leases so a job of 3× leaseMs is never recovered, and reports lost leases', async () => {
    await q.enqueue('org-a', job('org-a'));
    const t = (await q.take('w1'))!;
    const started = Date.now();
    while (Date.now() - started < 3 * 600) {
      assert.deepEqual(await q.renew('w1', [t.token]), []);
      assert.equal(await q.recoverExpired(), 0, 'a renewed lease is never recovered');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(await q.take('w2'), undefined, 'nobody else got the job');
    assert.equal(await q.complete(t, result(t)), 'recorded');
    assert.deepEqual(await q.renew('w1', [t.token]), [t.token], 'a finished lease is gone');
  });

  it('recovers an expired lease to the front of its queue as attempt + 1 and refuses the late completion', async () => {
    const first = job('org-a');
    const second = job('org-a');
    await q.enqueue('org-a', first);
    await q.enqueue('org-a', second);
    const t = (await q.take('dead-worker'))!;
    assert.equal(t.jobId, first.jobId);
    assert.equal(await q.recoverExpired(Date.now() - 10_000), 0, 'not expired yet');
    assert.equal(await q.recoverExpired(t.leaseDeadline + 1), 1);
    assert.equal(await redis.get(keys.jobStatus(first.jobId)), 'queued');
    assert.deepEqual(await q.renew('dead-worker', [t.token]), [t.token]);
    const again = (await q.take('w2'))!;
    assert.equal(again.jobId, first.jobId, 'back at the front, before the second job');
    assert.equal(again.attempt, 2);
    assert.equal(again.recovered, true);
    assert.equal(t.recovered, false);
    assert.equal(again.raw, t.raw, 'message untouched');
    assert.equal(await q.complete(t, result(t)), 'late', 'the presumed-dead worker is refused');
    assert.equal(await q.complete(again, result(again)), 'recorded');
    assert.equal((await q.stats()).lateResults, 1);
    assert.equal(await redis.hlen(keys.queueLeasedByOrg), 0);
  });

  it('retries with a due time, promotes it to the front, then completes', async () => {
    const m = job('org-a');
    await q.enqueue('org-a', m);
    await q.enqueue('org-a', job('org-a'));
    const t = (await q.take('w1'))!;
    const due = Date.now() + 60_000;
    assert.equal(await q.retry(t, JSON.stringify({ ...m, attempt: 2 }), due, { code: 'BROWSER_ERROR', message: 'x' }), 'recorded');
    assert.equal(await redis.get(keys.jobStatus(m.jobId)), 'retrying');
    assert.equal(await q.promoteDue(), 0, 'not due yet');
    assert.equal(await q.promoteDue(due), 1);
    assert.equal(await redis.get(keys.jobStatus(m.jobId)), 'queued');
    const again = (await q.take('w1'))!;
    assert.equal(again.jobId, m.jobId);
    assert.equal(again.attempt, 2);
    assert.equal(await q.retry(t, 'x', due, { code: 'X', message: 'x' }), 'late', 'the old token cannot retry again');
    assert.equal(await q.complete(again, result(again)), 'recorded');
  });

  it('releases a job untouched to the front of its queue', async () => {
    const m = job('org-a');
    await q.enqueue('org-a', m);
    await q.enqueue('org-a', job('org-a'));
    const t = (await q.take('w1'))!;
    await q.release(t);
    assert.equal(await redis.get(keys.jobStatus(m.jobId)), 'queued');
    const again = (await q.take('w1'))!;
    assert.equal(again.jobId, m.jobId);
    assert.equal(again.attempt, 1, 'a release is not an attempt');
    assert.equal(again.raw, t.raw);
  });

  it('buries and dead-letters with reason, truncated raw and time; requeues and purges', async () => {
    await redis.lpush(keys.orgJobs('org-a'), 'not json {');
    await q.registerOrg('org-a');
    const t = (await q.take('w1'))!;
    assert.equal(t.jobId, undefined);
    const id = await q.bury(t, 'not valid JSON');
    assert.notEqual(id, 'late');
    const e = (await q.dlqGet(id))!;
    assert.deepEqual({ orgId: e.orgId, reason: e.reason, raw: e.raw, truncated: e.truncated }, { orgId: 'org-a', reason: 'not valid JSON', raw: 'not json {', truncated: false });
    assert.ok(Math.abs(e.at - Date.now()) < 60_000);
    assert.equal(await redis.zcard(keys.queueLeases), 0);

    const big = 'x'.repeat(DLQ_RAW_LIMIT_BYTES + 10);
    const id2 = await q.deadLetter('org-b', big, 'oversized', 'job-big');
    const e2 = (await q.dlqGet(id2))!;
    assert.equal(e2.truncated, true);
    assert.equal(e2.raw.length, DLQ_RAW_LIMIT_BYTES);
    assert.equal(e2.jobId, 'job-big');
    assert.equal(await redis.get(keys.jobStatus('job-big')), 'dead');
    assert.deepEqual((await q.dlqList()).map((x) => x.id), [id2, id]);
    assert.deepEqual((await q.dlqList('org-a')).map((x) => x.id), [id]);
    assert.equal((await q.stats()).dead, 2);
    assert.equal(await q.dlqRequeue(id2), false, 'a truncated message is not requeued');
    const good = job('org-b');
    const id3 = await q.deadLetter('org-b', JSON.stringify(good), 'exhausted', good.jobId);
    assert.equal(await q.dlqRequeue(id3), true);
    assert.equal(await redis.get(keys.jobStatus(good.jobId)), 'queued');
    assert.equal((await q.take('w'))!.jobId, good.jobId);
    assert.equal(await q.dlqPurge('org-b'), 1);
    assert.equal(await q.dlqPurge(), 1);
    assert.deepEqual(await q.dlqList(), []);
  });

  it('takes high-priority jobs of an organisation before its normal ones', async () => {
    const normal = [job('org-a'), job('org-a'), job('org-a')];
    const high = job('org-a', { priority: 'high' });
    for (const m of normal) await q.enqueue('org-a', m);
    await q.enqueue('org-a', high);
    const order: string[] = [];
    for (let t = await q.take('w'); t; t = await q.take('w')) order.push(t.jobId!);
    assert.deepEqual(order, [high.jobId, ...normal.map((m) => m.jobId)]);
  });

  it('serves organisations round-robin: one job of B waits at most one take behind 10,000 of A', async () => {
    const a = Array.from({ length: 10_000 }, (_, i) => JSON.stringify(job('org-a', { jobId: `a-${i}` })));
    for (let i = 0; i < a.length; i += 1000) await redis.lpush(keys.orgJobs('org-a'), ...a.slice(i, i + 1000));
    await q.registerOrg('org-a');
    // Two "workers" with two slots each have already taken a few of A's jobs.
    for (let i = 0; i < 3; i++) assert.ok(await q.take(`w${i % 2}`));
    const b = job('org-b');
    await q.enqueue('org-b', b);
    const workers = 2;
    const slots = 2;
    let takes = 0;
    for (;;) {
      const t = (await q.take(`w${takes % workers}`))!;
      takes++;
      if (t.orgId === 'org-b') break;
      assert.ok(takes <= workers * slots, `B not taken within ${workers * slots} takes`);
    }
    assert.ok(takes <= 2, `B's job was taken at take ${takes}`);
    // And A keeps being served afterwards, in its own order.
    assert.equal((await q.take('w0'))!.orgId, 'org-a');
  });

  it('skips an organisation over its maxConcurrent quota without dropping its jobs; others unaffected', async () => {
    await q.setQuota('org-a', { maxConcurrent: 1 });
    assert.deepEqual(await q.getQuota('org-a'), { maxConcurrent: 1, perMinute: null });
    for (let i = 0; i < 3; i++) await q.enqueue('org-a', job('org-a'));
    await q.enqueue('org-b', job('org-b'));
    const t1 = (await q.take('w'))!;
    const t2 = (await q.take('w'))!;
    assert.deepEqual([t1.orgId, t2.orgId].sort(), ['org-a', 'org-b']);
    assert.equal(await q.take('w'), undefined, 'org-a is at its limit, org-b is empty');
    assert.equal((await q.stats()).queued['org-a'], 2, 'the waiting jobs are still queued');
    await q.complete(t1.orgId === 'org-a' ? t1 : t2, result(t1.orgId === 'org-a' ? t1 : t2));
    assert.equal((await q.take('w'))!.orgId, 'org-a', 'a free slot lets the next one through');
    await q.setQuota('org-a', { maxConcurrent: null });
    assert.equal((await q.take('w'))!.orgId, 'org-a', 'the change applies at the next take');
  });

  it('skips an organisation over its perMinute quota; other organisations unaffected', async () => {
    await q.setQuota('org-a', { perMinute: 2 });
    for (let i = 0; i < 4; i++) await q.enqueue('org-a', job('org-a'));
    for (let i = 0; i < 2; i++) await q.enqueue('org-b', job('org-b'));
    const orgs: string[] = [];
    for (let t = await q.take('w'); t; t = await q.take('w')) orgs.push(t.orgId);
    // Unless the clock minute turned during the loop, org-a got exactly 2.
    assert.ok(orgs.filter((o) => o === 'org-a').length >= 2);
    assert.equal(orgs.filter((o) => o === 'org-b').length, 2);
    if (orgs.length === 4) assert.equal((await q.stats()).queued['org-a'], 2);
  });

  it('cancels a queued job at once and never hands it out; a running one is flagged and announced', async () => {
    const queued = job('org-a');
    const running = job('org-a');
    await q.enqueue('org-a', running);
    await q.enqueue('org-a', queued);
    const sub = redis.duplicate();
    const control: string[] = [];
    const done: string[] = [];
    await sub.subscribe(keys.queueControl, keys.orgDone('org-a'));
    sub.on('message', (c, msg) => (c === keys.queueControl ? control : done).push(msg));
    const t = (await q.take('w'))!;
    assert.equal(t.jobId, running.jobId);
    assert.equal(await q.cancel('org-a', queued.jobId), 'cancelled');
    assert.equal(await redis.get(keys.jobStatus(queued.jobId)), 'cancelled');
    assert.equal(await q.take('w'), undefined, 'the cancelled job is dropped');
    assert.equal(await q.cancel('org-b', running.jobId), 'unknown', 'another organisation cannot cancel it');
    assert.equal(await q.cancel('org-a', running.jobId), 'cancelling');
    assert.equal(await q.isCancelled(running.jobId), true);
    await waitFor(() => control.length === 1 && done.length === 1, { what: 'control and done messages' });
    assert.deepEqual(JSON.parse(control[0]!), { type: 'cancel', jobId: running.jobId });
    const r = JSON.parse(done[0]!) as ResultMessage;
    assert.equal(r.status, 'cancelled');
    assert.equal(r.error?.code, 'CANCELLED');
    assert.deepEqual(r.files, { log: '', screenshots: [] });
    assert.equal(await q.complete(t, result(t, 'cancelled')), 'recorded');
    assert.equal(await q.cancel('org-a', running.jobId), 'final');
    assert.equal(await q.cancel('org-a', 'nope'), 'unknown');
    sub.disconnect();
  });

  it('finishes as cancelled a running job whose worker died after the cancel', async () => {
    const m = job('org-a');
    await q.enqueue('org-a', m);
    const t = (await q.take('w'))!;
    assert.equal(await q.cancel('org-a', m.jobId), 'cancelling');
    assert.equal(await q.recoverExpired(t.leaseDeadline + 1), 1);
    assert.equal(await redis.get(keys.jobStatus(m.jobId)), 'cancelled');
    assert.equal(await q.take('w'), undefined);
  });

  it('queues failed or dead jobs again, and only those', async () => {
    const m = job('org-a');
    await q.enqueue('org-a', m);
    await assert.rejects(q.retryFinished('org-a', m.jobId, m), /JOB_NOT_RETRYABLE|Only failed or dead/);
    const t = (await q.take('w'))!;
    await q.complete(t, result(t, 'failed'));
    await q.retryFinished('org-a', m.jobId, { ...m, attempt: 2 });
    assert.equal(await redis.get(keys.jobStatus(m.jobId)), 'queued');
    const again = (await q.take('w'))!;
    assert.equal(again.attempt, 2);
    assert.equal(await q.complete(again, result(again)), 'recorded');
  });
});

describe('JobQueue across a redis-server kill -9 and restart', () => {
  it('keeps queued and leased jobs (appendfsync always) and works again without re-registering scripts', async () => {
    const first = await startTestRedis();
    let current = first;
    const redis = createRedis(first.url);
    redis.on('error', () => {});
    try {
      const q = await JobQueue.connect(redis, { leaseMs: 60_000 });
      const jobs = [job('org-a'), job('org-a'), job('org-a')];
      for (const m of jobs) await q.enqueue('org-a', m);
      const t = (await q.take('w1'))!;
      await first.kill();
      const again = await startEmbeddedRedis({ dir: first.dir, port: first.port });
      current = { ...again, dir: first.dir, stop: async (g?: number) => { await again.stop(g); await first.stop(g); } };
      await waitFor(async () => (await redis.ping()) === 'PONG', { what: 'reconnected' });
      assert.equal((await redis.script('EXISTS', '0'.repeat(40)) as number[])[0], 0);
      const stats = await q.stats();
      assert.equal(stats.queued['org-a'], 2, 'queued jobs survived');
      assert.equal(stats.leased, 1, 'the lease survived');
      assert.equal(await redis.get(keys.jobStatus(t.jobId!)), 'running');
      assert.equal(await q.complete(t, result(t)), 'recorded', 'the scripts run again (EVALSHA falls back to EVAL)');
      const rest: string[] = [];
      for (let n = await q.take('w2'); n; n = await q.take('w2')) rest.push(n.jobId!);
      assert.deepEqual(rest, [jobs[1]!.jobId, jobs[2]!.jobId]);
    } finally {
      redis.disconnect();
      await current.stop();
    }
  });
});
