/**
 * The provider gate's parts on a real redis-server (docs/providers.md): maintenance windows on a provider's clock,
 * the pacing schema, the gate's Lua (spacing, requests-per-minute ceiling, circuit breaker with its half-open probe),
 * and the queue's deferral (deferJob / promoteDeferred: no attempt counted, a cancel while deferred drops the job),
 * with every key those scripts touch among the KEYS of their call (MONITOR).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { maintenanceEndsAt, ProviderPacing } from '../../src/shared/provider-pacing.ts';
import { breakerOutcomeOf, ProviderGate, readProviderHealth } from '../../src/shared/provider-gate/gate.ts';
import type { JobMessage } from '../../src/shared/schemas.ts';
import { startTestRedis, waitFor } from '../support/services.ts';

const job = (orgId: string): JobMessage => ({
  jobId: `j-${randomUUID().slice(0, 12)}`, orgId, userId: `u-${randomUUID().slice(0, 8)}`, providerId: 'p1', providerName: 'demo', flowId: 'f1',
  flowVersion: '1.0.0', scriptContent: 'export default async () => {}', scriptHash: 'a'.repeat(64), signature: 'b'.repeat(64), createdAt: 1,
});

describe('maintenance windows on the provider\'s clock', () => {
  const guayaquil = [{ start: '00:00', end: '06:00', timezone: 'America/Guayaquil' }];

  it('gives the end of a window the moment falls in, and nothing outside it', () => {
    // 06:00 UTC is 01:00 in Guayaquil (UTC-5): inside 00:00–06:00, which ends at 11:00 UTC.
    assert.equal(maintenanceEndsAt(guayaquil, Date.parse('2026-01-10T06:00:00Z')), Date.parse('2026-01-10T11:00:00Z'));
    assert.equal(maintenanceEndsAt(guayaquil, Date.parse('2026-01-10T12:00:00Z')), undefined);
    assert.equal(maintenanceEndsAt(guayaquil, Date.parse('2026-01-10T11:00:00Z')), undefined, 'the end itself is outside');
    assert.equal(maintenanceEndsAt(undefined, Date.now()), undefined);
  });

  it('follows windows across midnight and on their days only, and through windows that begin where another ends', () => {
    const fridayNight = [{ days: ['fri' as const], start: '22:00', end: '02:00', timezone: 'UTC' }];
    // 2026-01-10 is a Saturday: 01:00 belongs to Friday's window, 23:00 to none.
    assert.equal(maintenanceEndsAt(fridayNight, Date.parse('2026-01-10T01:00:00Z')), Date.parse('2026-01-10T02:00:00Z'));
    assert.equal(maintenanceEndsAt(fridayNight, Date.parse('2026-01-10T23:00:00Z')), undefined);
    assert.equal(maintenanceEndsAt(fridayNight, Date.parse('2026-01-09T23:30:00Z')), Date.parse('2026-01-10T02:00:00Z'));
    const chained = [{ start: '01:00', end: '02:00', timezone: 'UTC' }, { start: '02:00', end: '03:30:30', timezone: 'UTC' }];
    assert.equal(maintenanceEndsAt(chained, Date.parse('2026-01-10T01:15:00Z')), Date.parse('2026-01-10T03:30:30Z'));
  });

  it('refuses pacing it could not apply: unknown time zones, bad times, unknown fields', () => {
    assert.equal(ProviderPacing.safeParse({ maintenanceWindows: [{ start: '00:00', end: '06:00', timezone: 'Mars/Olympus' }] }).success, false);
    assert.equal(ProviderPacing.safeParse({ maintenanceWindows: [{ start: '25:00', end: '06:00', timezone: 'UTC' }] }).success, false);
    assert.equal(ProviderPacing.safeParse({ minSpacingMs: -1 }).success, false);
    assert.equal(ProviderPacing.safeParse({ spacing: 5 }).success, false);
    assert.equal(ProviderPacing.safeParse({ minSpacingMs: 1000, jitterMs: 200, requestsPerMinute: 60, breaker: { failureThreshold: 3, coolDownMs: 60_000 },
      maintenanceWindows: [{ days: ['mon', 'tue'], start: '00:00', end: '06:00', timezone: 'America/Guayaquil' }] }).success, true);
  });

  it('takes network errors and 5xx pages for the portal\'s failures, and what says nothing of the portal as neutral', () => {
    assert.equal(breakerOutcomeOf('failed', 'NAVIGATION_ERROR'), 'failure');
    assert.equal(breakerOutcomeOf('dead', 'PORTAL_UNAVAILABLE'), 'failure');
    assert.equal(breakerOutcomeOf('done', undefined), 'success');
    assert.equal(breakerOutcomeOf('failed', 'SCRIPT_ERROR'), 'success');
    assert.equal(breakerOutcomeOf('retrying', 'SESSION_LOGGED_OUT'), 'success', 'a login wall mid-flow: the portal answered');
    assert.equal(breakerOutcomeOf('cancelled', 'CANCELLED'), 'neutral');
    assert.equal(breakerOutcomeOf('retrying', 'UPLOAD_FAILED'), 'neutral');
  });
});

describe('the provider gate and the queue\'s deferral on Redis', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let gate: ProviderGate;
  let queue: JobQueue;

  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
    gate = ProviderGate.connect(redis);
    queue = await JobQueue.connect(redis);
  });
  after(async () => {
    redis.disconnect();
    await server.stop();
  });

  it('lets one job start per spacing: the next waits until the last start + minSpacingMs + jitter', async () => {
    const p = `spaced-${randomUUID().slice(0, 6)}`;
    const pacing = { minSpacingMs: 5000, jitterMs: 1000 };
    const first = await gate.pass(p, 'j1', pacing, { probeMs: 1000, random: () => 0.5 });
    assert.deepEqual(first, { go: true, breaker: 'closed' });
    const before = Date.now();
    const second = await gate.pass(p, 'j2', pacing, { probeMs: 1000 });
    assert.equal(second.go, false);
    assert.ok(!second.go && second.why === 'spacing' && second.until >= before + 5000 - 1000 && second.until <= before + 5000 + 1000, JSON.stringify(second));
    // Without a spacing in the catalogue any more, nothing is left to wait for.
    assert.equal((await gate.pass(p, 'j3', {}, { probeMs: 1000 })).go, true);
    assert.equal((await gate.pass(p, 'j3', { requestsPerMinute: 100 }, { probeMs: 1000 })).go, true);
  });

  it('holds new jobs while the minute\'s requests reached requestsPerMinute, until the next minute', async () => {
    const p = `rpm-${randomUUID().slice(0, 6)}`;
    const now = Date.now();
    await gate.countRequests(p, 5, now);
    const d = await gate.pass(p, 'j1', { requestsPerMinute: 5 }, { probeMs: 1000, now });
    assert.ok(!d.go && d.why === 'rate' && d.until === (Math.floor(now / 60_000) + 1) * 60_000, JSON.stringify(d));
    assert.equal((await gate.pass(p, 'j1', { requestsPerMinute: 6 }, { probeMs: 1000, now })).go, true);
    assert.equal((await readProviderHealth(redis, p, {}, now)).requestsThisMinute, 5);
  });

  it('opens the breaker after failureThreshold failures, lets one probe through after the cool-down, closes on its success', async () => {
    const p = `breaker-${randomUUID().slice(0, 6)}`;
    const pacing = { breaker: { failureThreshold: 3, coolDownMs: 300 } };
    await gate.record(p, 'a', 'failure', pacing);
    await gate.record(p, 'b', 'success', pacing);
    await gate.record(p, 'c', 'failure', pacing);
    await gate.record(p, 'd', 'failure', pacing);
    assert.equal((await readProviderHealth(redis, p, pacing)).breaker.state, 'closed', 'a success in between restarts the count');
    const opened = await gate.record(p, 'e', 'failure', pacing);
    assert.deepEqual(opened, { before: 'closed', after: 'open', failures: 3 });
    const held = await gate.pass(p, 'j1', pacing, { probeMs: 60_000 });
    assert.ok(!held.go && held.why === 'breaker', JSON.stringify(held));
    const probe = await waitFor(async () => { const d = await gate.pass(p, 'j1', pacing, { probeMs: 60_000 }); return d.go ? d : undefined; }, { what: 'the cool-down over' });
    assert.equal(probe.breaker, 'half_open');
    const other = await gate.pass(p, 'j2', pacing, { probeMs: 60_000 });
    assert.ok(!other.go && other.why === 'breaker' && other.until <= Date.now() + 2000, `one probe at a time, the others ask again soon: ${JSON.stringify(other)}`);
    // A probe that ends saying nothing of the portal gives its turn to the next job.
    await gate.record(p, 'j1', 'neutral', pacing);
    assert.equal((await gate.pass(p, 'j2', pacing, { probeMs: 60_000 })).go, true);
    // The probe fails: open again at once.
    assert.equal((await gate.record(p, 'j2', 'failure', pacing))?.after, 'open');
    await waitFor(async () => (await gate.pass(p, 'j3', pacing, { probeMs: 60_000 })).go, { what: 'the second cool-down over' });
    assert.deepEqual(await gate.record(p, 'j3', 'success', pacing), { before: 'half_open', after: 'closed', failures: 0 });
    assert.equal((await gate.pass(p, 'j4', pacing, { probeMs: 60_000 })).go, true);
    assert.equal((await gate.pass(p, 'j5', pacing, { probeMs: 60_000 })).go, true, 'closed: everyone goes');
  });

  it('defers a leased job without counting an attempt, promotes it when due, keeps a recovered attempt, and drops it when cancelled meanwhile', async () => {
    const org = `org-${randomUUID().slice(0, 6)}`;
    const j = job(org);
    await queue.enqueue(org, j);
    const t = (await queue.take('w1'))!;
    assert.equal(t.jobId, j.jobId);
    assert.equal(await queue.defer(t, Date.now() + 60_000, 'spacing'), 'recorded');
    assert.equal(await redis.get(keys.jobStatus(j.jobId)), 'queued');
    assert.equal(await redis.zcard(keys.queueLeases), 0, 'the lease ended');
    assert.equal(await queue.take('w1'), undefined, 'nothing to take while it waits');
    assert.equal(await queue.promoteDeferred(), 0, 'not due yet');
    assert.equal(await queue.promoteDeferred(Date.now() + 61_000), 1);
    const again = (await queue.take('w1'))!;
    assert.equal(again.jobId, j.jobId);
    assert.equal(again.attempt, 1);
    assert.equal(again.raw, t.raw, 'the message as pushed');
    assert.equal(await queue.defer(t, Date.now(), 'spacing'), 'late', 'an old lease defers nothing');

    // A job whose lease was recovered runs as attempt 2; deferring it keeps that.
    await queue.complete(again, { jobId: j.jobId, orgId: org, userId: j.userId, providerId: 'p1', success: true, status: 'done', duration: 1, attempt: 1, workerId: 'w1', finishedAt: new Date().toISOString(), files: { log: '', screenshots: [] } });
    const k = job(org);
    await queue.enqueue(org, k);
    await redis.hset(keys.queueAttempts, k.jobId, '2');
    const recovered = (await queue.take('w1'))!;
    assert.deepEqual([recovered.attempt, recovered.recovered], [2, true]);
    await queue.defer(recovered, Date.now() - 1, 'maintenance');
    assert.equal(await queue.promoteDeferred(), 1);
    assert.equal((await queue.take('w1'))!.attempt, 2);

    // Cancelled while deferred: cancelled at once, never taken, nothing left behind.
    const c = job(org);
    await queue.enqueue(org, c);
    const tc = (await queue.take('w1'))!;
    await queue.defer(tc, Date.now() - 1, 'breaker');
    assert.equal(await queue.cancel(org, c.jobId), 'cancelled');
    assert.equal(await queue.promoteDeferred(), 0);
    assert.equal(await redis.sismember(keys.queueCancelled, c.jobId), 0);
    assert.equal(await redis.exists(keys.leaseMessage(tc.token)), 0);
    assert.equal(await redis.get(keys.jobStatus(c.jobId)), 'cancelled');
  });

  it('touches only keys among the KEYS of each call (MONITOR)', async () => {
    const monitor = createRedis(server.url);
    try {
      const lines: string[] = [];
      const m = await monitor.monitor();
      m.on('monitor', (_time: string, args: string[], source: string) => lines.push(JSON.stringify([source, ...args])));
      const p = `mon-${randomUUID().slice(0, 6)}`;
      const pacing = { minSpacingMs: 10, requestsPerMinute: 100, breaker: { failureThreshold: 1, coolDownMs: 100 } };
      await gate.pass(p, 'j1', pacing, { probeMs: 1000 });
      await gate.record(p, 'j1', 'failure', pacing);
      await waitFor(async () => (await gate.pass(p, 'j2', pacing, { probeMs: 1000 })).go, { what: 'half-open' });
      await gate.record(p, 'j2', 'success', pacing);
      const org = `org-${randomUUID().slice(0, 6)}`;
      await queue.enqueue(org, job(org));
      const t = (await queue.take('w1'))!;
      await queue.defer(t, Date.now() - 1, 'spacing');
      assert.equal(await queue.promoteDeferred(), 1);
      await waitFor(async () => { await redis.ping('end-of-run'); return lines.some((l) => l.includes('end-of-run')); }, { what: 'the monitor caught up' });
      m.disconnect();
      let declared: Set<string> | undefined;
      const scripts = new Set<string>();
      for (const line of lines) {
        const [source, cmd, ...args] = JSON.parse(line) as string[];
        if (/^eval(sha)?$/i.test(cmd!)) {
          declared = new Set(args.slice(2, 2 + Number(args[1])));
          scripts.add(args[0]!);
          continue;
        }
        if (!String(source).endsWith('lua')) continue;
        let cmdKeys: string[] = [];
        try {
          cmdKeys = await redis.call('COMMAND', 'GETKEYS', cmd!, ...args) as string[];
        } catch {
          cmdKeys = [];
        }
        for (const k of cmdKeys) assert.ok(declared?.has(k), `${cmd} ${args.slice(0, 3).join(' ')} touches ${k}, not among the KEYS of its script call`);
      }
      assert.ok(scripts.size >= 6, `the scripts ran (${scripts.size})`);
    } finally {
      monitor.disconnect();
    }
  });
});
