/**
 * Schedules (docs/schedules.md) on real services — redis-server, s3rver, PGlite in memory: the API (create, read
 * with next run times, list, update, pause, resume, delete, runs), its validation errors, and the scheduler's
 * missed-run policy after downtime, its refused runs (also a removed member's) and rows it cannot use. Two API processes on one PostgreSQL
 * are in schedules-replicas.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { insertUser } from '../../src/control-plane/db/queries/accounts.ts';
import { TokenService } from '../../src/control-plane/http/auth.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { keys } from '../../src/shared/keys.ts';
import { startTestApi, TEST_JWT_SECRET, type TestApi, type TestOrg } from '../support/api.ts';
import { TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';

interface Res { status: number; body: any }

describe('schedules', () => {
  let t: TestApi;
  let org: TestOrg;
  let flowId: string;

  const call = async (method: string, path: string, token: string | undefined, body?: unknown): Promise<Res> => {
    const r = await fetch(t.api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  const ok = async (method: string, path: string, body?: unknown, token = org.token): Promise<any> => {
    const r = await call(method, path, token, body);
    assert.ok(r.status >= 200 && r.status < 300, `${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  before(async () => {
    // This API serves, but runs no scheduler: the scheduler tests below start one when they want it.
    t = await startTestApi({ SCHEDULER_ENABLED: 'false' });
    org = await t.createOrg();
    flowId = (await ok('GET', '/api/flows')).flows[0].id;
  });
  after(async () => { await t?.stop(); });

  describe('API', () => {
    it('creates a schedule and shows its next five run times in its time zone', async () => {
      const before = Date.now();
      const { schedule } = await ok('POST', '/api/schedules', {
        providerId: 'demo', cron: '0 8 * * 1-5', timezone: 'America/Guayaquil', metadata: { period: 'daily' }, missedRunPolicy: 'runOnce',
      });
      assert.equal(schedule.providerId, 'demo');
      assert.equal(schedule.flowId, null);
      assert.equal(schedule.userId, org.userId);
      assert.deepEqual([schedule.enabled, schedule.missedRunPolicy, schedule.metadata], [true, 'runOnce', { period: 'daily' }]);
      assert.equal(schedule.nextRuns.length, 5);
      const expected = new Cron('0 8 * * 1-5', { timezone: 'America/Guayaquil' }).nextRuns(5, new Date(before));
      for (const [i, at] of (schedule.nextRuns as string[]).entries()) {
        // 08:00 on the schedule's clock (Guayaquil is UTC-5 all year), a weekday, the same instants croner finds.
        assert.match(at, /^\d{4}-\d{2}-\d{2}T08:00:00-05:00$/);
        assert.equal(new Date(at).getTime(), expected[i]!.getTime());
        assert.ok(![0, 6].includes(new Date(at).getUTCDay()));
      }
      const read = await ok('GET', `/api/schedules/${schedule.id}`);
      assert.deepEqual({ ...read.schedule, nextRuns: [] }, { ...schedule, nextRuns: [] });
      assert.ok((await ok('GET', '/api/schedules')).schedules.some((s: { id: string }) => s.id === schedule.id));
    });

    it('pins a flow by flowId, with seconds in the pattern', async () => {
      const { schedule } = await ok('POST', '/api/schedules', { flowId, cron: '*/15 * * * * *', timezone: 'UTC', enabled: false });
      assert.deepEqual([schedule.flowId, schedule.providerId, schedule.enabled, schedule.missedRunPolicy], [flowId, 'demo', false, 'skip']);
      assert.deepEqual(schedule.nextRuns, [], 'a paused schedule shows no next run');
      const resumed = (await ok('POST', `/api/schedules/${schedule.id}/resume`)).schedule;
      assert.equal(resumed.enabled, true);
      assert.equal(resumed.nextRuns.length, 5);
      for (const at of resumed.nextRuns as string[]) assert.match(at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:(00|15|30|45)\+00:00$/);
    });

    it('updates, pauses, resumes and deletes a schedule', async () => {
      const { schedule } = await ok('POST', '/api/schedules', { providerId: 'demo', cron: '0 6 1 * *', timezone: 'UTC', metadata: { a: 1 } });
      const patched = (await ok('PATCH', `/api/schedules/${schedule.id}`, { cron: '30 7 * * *', timezone: 'Europe/Madrid', metadata: null, missedRunPolicy: 'runOnce' })).schedule;
      assert.deepEqual([patched.cron, patched.timezone, patched.metadata, patched.missedRunPolicy], ['30 7 * * *', 'Europe/Madrid', null, 'runOnce']);
      for (const at of patched.nextRuns as string[]) assert.match(at, /T07:30:00\+0[12]:00$/);
      // A claim a dead process left behind is dropped by the pause: resuming will not run that old due time.
      await t.db.withOrg(org.orgId, (tx) => tx.query("UPDATE schedules SET pending_due_at = now() - interval '1 day', pending_claimed_at = now() - interval '1 day' WHERE id = $1", [schedule.id]));
      const paused = (await ok('POST', `/api/schedules/${schedule.id}/pause`)).schedule;
      assert.deepEqual([paused.enabled, paused.nextRuns], [false, []]);
      const [claim] = await t.db.withOrg(org.orgId, (tx) => tx.query<{ pending_due_at: Date | null }>('SELECT pending_due_at FROM schedules WHERE id = $1', [schedule.id]));
      assert.equal(claim!.pending_due_at, null);
      assert.equal((await ok('POST', `/api/schedules/${schedule.id}/pause`)).schedule.enabled, false, 'pausing twice is harmless');
      assert.equal((await ok('PATCH', `/api/schedules/${schedule.id}`, { enabled: true })).schedule.enabled, true, 'PATCH enabled resumes');
      assert.equal((await ok('PATCH', `/api/schedules/${schedule.id}`, { enabled: false })).schedule.enabled, false, 'PATCH enabled pauses');
      assert.equal((await ok('POST', `/api/schedules/${schedule.id}/resume`)).schedule.enabled, true);
      assert.deepEqual((await ok('GET', `/api/schedules/${schedule.id}/runs`)).runs, []);
      assert.equal((await call('DELETE', `/api/schedules/${schedule.id}`, org.token)).status, 204);
      for (const [method, path] of [['GET', ''], ['PATCH', ''], ['DELETE', ''], ['POST', '/pause'], ['GET', '/runs']] as const) {
        const r = await call(method, `/api/schedules/${schedule.id}${path}`, org.token, method === 'PATCH' ? { enabled: true } : undefined);
        assert.deepEqual([r.status, r.body.error.code], [404, 'NOT_FOUND'], `${method} ${path} after delete`);
      }
    });

    it('refuses a bad cron pattern or time zone with a code and a message that says what to fix', async () => {
      const cases: [Record<string, unknown>, string, RegExp][] = [
        [{ cron: '61 * * * *', timezone: 'UTC' }, 'SCHEDULE_CRON_INVALID', /minute.*five fields/],
        [{ cron: 'every day', timezone: 'UTC' }, 'SCHEDULE_CRON_INVALID', /not a cron pattern.*six with seconds first/],
        [{ cron: '0 0 8 * * * 2030', timezone: 'UTC' }, 'SCHEDULE_CRON_INVALID', /7 parts/],
        [{ cron: '0 0 30 2 *', timezone: 'UTC' }, 'SCHEDULE_CRON_INVALID', /never comes due/],
        [{ cron: '0 8 * * *', timezone: 'Mars/Olympus_Mons' }, 'SCHEDULE_TIMEZONE_INVALID', /not an IANA time zone.*America\/Guayaquil/],
        [{ cron: '0 8 * * *', timezone: 'GMT-5' }, 'SCHEDULE_TIMEZONE_INVALID', /IANA/],
      ];
      for (const [timing, code, message] of cases) {
        const r = await call('POST', '/api/schedules', org.token, { providerId: 'demo', ...timing });
        assert.deepEqual([r.status, r.body.error.code], [400, code], JSON.stringify(timing));
        assert.match(r.body.error.message, message);
        assert.equal(r.body.error.details[0].field, code === 'SCHEDULE_CRON_INVALID' ? 'cron' : 'timezone');
      }
      const { schedule } = await ok('POST', '/api/schedules', { providerId: 'demo', cron: '0 8 * * *', timezone: 'UTC' });
      const bad = await call('PATCH', `/api/schedules/${schedule.id}`, org.token, { cron: '0 25 * * *' });
      assert.deepEqual([bad.status, bad.body.error.code], [400, 'SCHEDULE_CRON_INVALID']);
      assert.match(bad.body.error.message, /hour/);
      assert.equal((await ok('GET', `/api/schedules/${schedule.id}`)).schedule.cron, '0 8 * * *', 'nothing changed');
      const badZone = await call('PATCH', `/api/schedules/${schedule.id}`, org.token, { timezone: 'Nowhere/Town' });
      assert.deepEqual([badZone.status, badZone.body.error.code], [400, 'SCHEDULE_TIMEZONE_INVALID']);
    });

    it('refuses bodies that name both or neither of flowId and providerId, unknown flows and providers, and unknown fields', async () => {
      for (const body of [
        { flowId, providerId: 'demo', cron: '0 8 * * *', timezone: 'UTC' },
        { cron: '0 8 * * *', timezone: 'UTC' },
        { providerId: 'demo', cron: '0 8 * * *' },
        { providerId: 'demo', cron: '0 8 * * *', timezone: 'UTC', missedRunPolicy: 'catchUp' },
        { providerId: 'demo', cron: '0 8 * * *', timezone: 'UTC', orgId: 'x' },
      ]) {
        const r = await call('POST', '/api/schedules', org.token, body);
        assert.deepEqual([r.status, r.body.error.code], [400, 'VALIDATION_FAILED'], JSON.stringify(body));
      }
      const noFlow = await call('POST', '/api/schedules', org.token, { flowId: randomUUID(), cron: '0 8 * * *', timezone: 'UTC' });
      assert.deepEqual([noFlow.status, noFlow.body.error.code], [404, 'NOT_FOUND']);
      const noProvider = await call('POST', '/api/schedules', org.token, { providerId: 'nope', cron: '0 8 * * *', timezone: 'UTC' });
      assert.deepEqual([noProvider.status, noProvider.body.error.code], [404, 'PROVIDER_NOT_FOUND']);
      const unauth = await call('POST', '/api/schedules', undefined, { providerId: 'demo', cron: '0 8 * * *', timezone: 'UTC' });
      assert.equal(unauth.status, 401);
    });

    it('lets only its creator or an admin change a schedule; every member reads it', async () => {
      const { schedule } = await ok('POST', '/api/schedules', { providerId: 'demo', cron: '0 8 * * *', timezone: 'UTC' });
      const memberId = randomUUID();
      await t.db.withOrg(org.orgId, (tx) => insertUser(tx, {
        id: memberId, org_id: org.orgId, email: `member-${randomUUID()}@example.com`, name: 'Member', password_hash: 'x', role: 'member',
      }));
      const member = await new TokenService(TEST_JWT_SECRET, 3600).sign({ userId: memberId, orgId: org.orgId });
      assert.equal((await ok('GET', `/api/schedules/${schedule.id}`, undefined, member)).schedule.id, schedule.id);
      for (const [method, path, body] of [['PATCH', '', { enabled: false }], ['POST', '/pause', undefined], ['DELETE', '', undefined]] as const) {
        const r = await call(method, `/api/schedules/${schedule.id}${path}`, member, body);
        assert.deepEqual([r.status, r.body.error.code], [403, 'FORBIDDEN'], `${method} ${path}`);
      }
      // The member's own schedule is theirs to change.
      const own = (await ok('POST', '/api/schedules', { providerId: 'demo', cron: '0 9 * * *', timezone: 'UTC' }, member)).schedule;
      assert.equal((await call('DELETE', `/api/schedules/${own.id}`, member)).status, 204);
      assert.equal((await ok('GET', `/api/schedules/${schedule.id}`)).schedule.enabled, true);
    });
  });

  describe('scheduler', () => {
    const GRACE_MS = 1000;
    const EVERY_2S = '*/2 * * * * *';
    let scheduler: ApiHandle | undefined;

    /** A second API on the same database and Redis whose scheduler runs (the first one's does not). */
    async function startScheduler(): Promise<ApiHandle> {
      const config = loadApiConfig({
        JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: t.redisUrl, S3_ENDPOINT: t.config.s3Endpoint,
        PORT: '0', RUN_RATE_LIMIT_PER_USER: '100000', RUN_RATE_LIMIT_PER_ORG: '100000', LOG_LEVEL: 'silent',
        SCHEDULER_TICK_MS: '100', SCHEDULER_MISFIRE_GRACE_MS: String(GRACE_MS),
      });
      const logger = createLogger({ name: 'api-scheduler-test', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
      return startApi(config, { db: t.db, redis: t.redis, blobStore: t.blobStore, logger });
    }
    after(async () => { await scheduler?.close(); });

    const runsOf = async (id: string): Promise<{ jobId: string; dueAt: string; status: string }[]> =>
      (await ok('GET', `/api/schedules/${id}/runs?limit=500`)).runs;

    it('after downtime runs none of the missed due times (skip) or one run for all of them (runOnce), then every due time once', async () => {
      const created = Date.now();
      const skip = (await ok('POST', '/api/schedules', { providerId: 'demo', cron: EVERY_2S, timezone: 'UTC', missedRunPolicy: 'skip' })).schedule;
      const once = (await ok('POST', '/api/schedules', { flowId, cron: EVERY_2S, timezone: 'UTC', missedRunPolicy: 'runOnce' })).schedule;
      // Refused at every due time: the creator has no session for this provider.
      const refused = (await ok('POST', '/api/schedules', { providerId: 'sri', cron: EVERY_2S, timezone: 'UTC' })).schedule;
      // A row the scheduler cannot use (written behind the API's back): parked with its error, never a crash.
      const broken = (await ok('POST', '/api/schedules', { providerId: 'demo', cron: EVERY_2S, timezone: 'UTC' })).schedule;
      await t.db.withOrg(org.orgId, (tx) => tx.query("UPDATE schedules SET cron = 'not a pattern' WHERE id = $1", [broken.id]));
      const badZone = (await ok('POST', '/api/schedules', { providerId: 'demo', cron: EVERY_2S, timezone: 'UTC' })).schedule;
      await t.db.withOrg(org.orgId, (tx) => tx.query("UPDATE schedules SET timezone = 'Nowhere/Town' WHERE id = $1", [badZone.id]));
      // A member's schedule, then the member is removed (soft, as DELETE /api/members/{id} does): its runs are refused.
      const memberId = randomUUID();
      await t.db.withOrg(org.orgId, (tx) => insertUser(tx, {
        id: memberId, org_id: org.orgId, email: `leaver-${randomUUID()}@example.com`, name: 'Leaver', password_hash: 'x', role: 'member',
      }));
      const leaver = await new TokenService(TEST_JWT_SECRET, 3600).sign({ userId: memberId, orgId: org.orgId });
      const orphan = (await ok('POST', '/api/schedules', { providerId: 'demo', cron: EVERY_2S, timezone: 'UTC' }, leaver)).schedule;
      await t.db.withOrg(org.orgId, (tx) => tx.query('UPDATE users SET removed_at = now() WHERE id = $1', [memberId]));

      // No scheduler runs while due times pass: the first three of each are missed by more than the grace.
      const cursors = await t.db.withOrg(org.orgId, (tx) => tx.query<{ id: string; next_due_at: Date }>(
        'SELECT id, next_due_at FROM schedules WHERE id = ANY($1)', [[skip.id, once.id]]));
      const firstDue = (id: string) => new Date(cursors.find((c) => c.id === id)!.next_due_at).getTime();
      assert.ok(firstDue(once.id) > created);
      const thirdDue = Math.max(firstDue(skip.id), firstDue(once.id)) + 4000;
      await waitFor(() => Date.now() > thirdDue + GRACE_MS + 200, { what: 'three due times missed', timeoutMs: 60_000 });
      assert.deepEqual(await runsOf(skip.id), []);
      const started = Date.now();
      scheduler = await startScheduler();

      // Both go on with the due times after the downtime.
      await waitFor(async () => (await runsOf(skip.id)).filter((r) => Date.parse(r.dueAt) >= started).length >= 2
        && (await runsOf(once.id)).filter((r) => Date.parse(r.dueAt) >= started).length >= 2, { what: 'runs after the downtime', timeoutMs: 60_000 });
      await scheduler.close();
      scheduler = undefined;

      const skipRuns = await runsOf(skip.id);
      const onceRuns = await runsOf(once.id);
      const missedBefore = started - GRACE_MS;
      assert.deepEqual(skipRuns.filter((r) => Date.parse(r.dueAt) < missedBefore), [], 'skip: no run for a missed due time');
      const catchUp = onceRuns.filter((r) => Date.parse(r.dueAt) < missedBefore);
      assert.equal(catchUp.length, 1, `runOnce: one run for all the missed due times: ${JSON.stringify(onceRuns)}`);
      assert.equal(Date.parse(catchUp[0]!.dueAt), firstDue(once.id), 'it carries the first missed due time');
      for (const [name, runs] of [['skip', skipRuns], ['runOnce', onceRuns.filter((r) => r !== catchUp[0])]] as const) {
        // After the downtime: every due time once, none left out, in order.
        const due = runs.map((r) => Date.parse(r.dueAt)).sort((x, y) => x - y);
        for (let i = 1; i < due.length; i++) assert.equal(due[i]! - due[i - 1]!, 2000, `${name}: consecutive due times ${JSON.stringify(runs)}`);
      }
      // Each run is a job of the organisation, queued through POST /api/run's use case, with the schedule's id and due time.
      const jobs = await t.db.withOrg(org.orgId, (tx) => tx.query<{ id: string; schedule_id: string; due_at: Date; flow_id: string; idempotency_key: string }>(
        'SELECT id, schedule_id, due_at, flow_id, idempotency_key FROM jobs WHERE schedule_id = ANY($1)', [[skip.id, once.id]]));
      assert.equal(jobs.length, skipRuns.length + onceRuns.length);
      for (const j of jobs) {
        assert.equal(j.idempotency_key, `schedule:${j.schedule_id}:${new Date(j.due_at).toISOString()}`);
        if (j.schedule_id === once.id) assert.equal(j.flow_id, flowId);
      }
      const queued = (await t.redis.lrange(keys.orgJobs(org.orgId), 0, -1))
        .map((m) => JSON.parse(m) as { jobId: string; orgId: string; userId: string; scheduleId?: string; dueAt?: string });
      for (const j of jobs) {
        const msg = queued.filter((m) => m.jobId === j.id);
        assert.equal(msg.length, 1, `job ${j.id} queued once`);
        assert.deepEqual([msg[0]!.orgId, msg[0]!.userId, msg[0]!.scheduleId, msg[0]!.dueAt], [org.orgId, org.userId, j.schedule_id, new Date(j.due_at).toISOString()]);
      }
      const job = await ok('GET', `/api/jobs/${skipRuns[0]!.jobId}`);
      assert.equal(job.job.status, 'queued');
      assert.deepEqual(job.job.schedule, { id: skip.id, dueAt: skipRuns[0]!.dueAt });
      await t.runJob(org);
      assert.ok((await ok('GET', '/api/jobs?pageSize=100')).jobs.some((j: { schedule: unknown }) => j.schedule === null), 'a run by hand has none');

      const r = (await ok('GET', `/api/schedules/${refused.id}`)).schedule;
      assert.equal(r.lastError?.code, 'PROVIDER_NOT_CONNECTED', JSON.stringify(r));
      assert.deepEqual(await runsOf(refused.id), []);
      const b = (await ok('GET', `/api/schedules/${broken.id}`)).schedule;
      assert.equal(b.lastError?.code, 'SCHEDULE_CRON_INVALID', JSON.stringify(b));
      assert.match(b.lastError.message, /PATCH \/api\/schedules\//);
      assert.deepEqual(b.nextRuns, []);
      const z = (await ok('GET', `/api/schedules/${badZone.id}`)).schedule;
      assert.equal(z.lastError?.code, 'SCHEDULE_CRON_INVALID', JSON.stringify(z));
      assert.match(z.lastError.message, /Nowhere\/Town/);
      const o = (await ok('GET', `/api/schedules/${orphan.id}`)).schedule;
      assert.equal(o.lastError?.code, 'FORBIDDEN', JSON.stringify(o));
      assert.match(o.lastError.message, /no longer a member/);
      assert.deepEqual(await runsOf(orphan.id), []);
      // Still serving (the bad rows crashed nothing), and the broken schedule is mended by a PATCH.
      const mended = (await ok('PATCH', `/api/schedules/${broken.id}`, { cron: '0 8 * * *' })).schedule;
      assert.equal(mended.nextRuns.length, 5);
      for (const s of [skip, once, refused, broken, orphan]) await ok('POST', `/api/schedules/${s.id}/pause`);
    });

    it('takes over a claim a dead process left, and makes one job for its due time even when that process had made it', async () => {
      // Due at 08:00 every 1 January: nothing comes due by itself during the test.
      const { schedule } = await ok('POST', '/api/schedules', { providerId: 'demo', cron: '0 8 1 1 *', timezone: 'UTC' });
      const dueAt = new Date(Math.floor((Date.now() - 120_000) / 1000) * 1000);
      // A claim made two minutes ago (the takeover delay is 60 s) by a process that never finished it.
      const leaveClaim = () => t.db.withOrg(org.orgId, (tx) => tx.query(
        "UPDATE schedules SET pending_due_at = $2, pending_claimed_at = now() - interval '2 minutes', revision = revision + 1 WHERE id = $1", [schedule.id, dueAt]));
      const claimCleared = () => waitFor(async () => {
        const [row] = await t.db.withOrg(org.orgId, (tx) => tx.query<{ pending_due_at: Date | null }>('SELECT pending_due_at FROM schedules WHERE id = $1', [schedule.id]));
        return row!.pending_due_at === null;
      }, { what: 'the claim taken over and finished', timeoutMs: 60_000 });
      await leaveClaim();
      scheduler = await startScheduler();
      await claimCleared();
      const first = await runsOf(schedule.id);
      assert.deepEqual(first.map((r) => r.dueAt), [dueAt.toISOString()]);
      // The same claim again, as if its first process had been slow rather than dead: the job it made is the run.
      await leaveClaim();
      await claimCleared();
      await scheduler.close();
      scheduler = undefined;
      assert.deepEqual(await runsOf(schedule.id), first, 'still one job for the due time');
      const s = (await ok('GET', `/api/schedules/${schedule.id}`)).schedule;
      assert.deepEqual([s.lastRun, s.lastError], [{ dueAt: dueAt.toISOString(), jobId: first[0]!.jobId }, null]);
      await ok('DELETE', `/api/schedules/${schedule.id}`);
    });
  });
});
