/**
 * One run at a time per portal account, end to end (docs/queue.md): two real worker processes with free slots, the
 * demo portal, and jobs of one account (organisation, user, provider) pushed together. Whether they overlapped is
 * read from the portal's own request log: each job asks for a start mark, holds its page a while, then asks for an
 * end mark; the portal's timestamps of those requests must never interleave for one account. A worker killed with
 * SIGKILL while it holds the account frees it when its lease is recovered, and the account still never runs twice
 * at once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { keys } from '../../src/shared/keys.ts';
import type { JobMessage } from '../../src/shared/schemas.ts';
import { startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { kill9, spawnWorker, stopWorker, waitForHeartbeat, type WorkerProcess } from '../faults/support/processes.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';

/**
 * Asks the portal for a start mark, keeps the account busy (`payload.holdMs`; `payload.firstHoldMs` on attempt 1
 * when given), then asks for an end mark.
 */
const MARKED = `export default async function run({ page, payload, context }) {
  await page.goto(payload.base + '/login?run=' + context.jobId + '&attempt=' + context.attempt + '&mark=start');
  await page.waitForTimeout(context.attempt === 1 && payload.firstHoldMs ? payload.firstHoldMs : payload.holdMs);
  await page.goto(payload.base + '/login?run=' + context.jobId + '&attempt=' + context.attempt + '&mark=end');
}`;

interface Interval { jobId: string; attempt: number; start: number; end?: number }

describe('one run at a time per portal account, two worker processes on the demo portal', () => {
  // The services harness (redis-server, s3rver, the demo portal, the demo provider in the catalogue); the workers are
  // processes of their own, since one of them is killed with SIGKILL.
  let s: ServicesHarness<DemoPortal>;
  const workers: WorkerProcess[] = [];

  const spawn = async (name: string) => {
    const w = spawnWorker({
      REDIS_URL: s.redisUrl, S3_ENDPOINT: s.s3Endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
      // Free slots on both workers: only the queue keeps the account's jobs apart.
      WORKER_POLL_INTERVAL: '50', WORKER_MAX_JOBS: '2', LOG_DIR: s.logDir, LOG_LEVEL: 'warn',
      PLAYWRIGHT_TIMEOUT: '30000', EXECUTION_TIMEOUT: '120000',
      // A lease a busy machine's pauses cannot let lapse on a live worker (renewed at a third), recovered quickly.
      WORKER_LEASE_MS: '5000', WORKER_RECOVERY_INTERVAL_MS: '200',
    }, `${name}-${randomUUID().slice(0, 6)}`);
    workers.push(w);
    await waitForHeartbeat(s.redisUrl, w);
    return w;
  };

  before(async () => {
    s = await startServicesHarness({ portal: () => startDemoPortal({ port: 0 }), logPrefix: 'sri-account-serial-' });
  });
  after(async () => {
    await Promise.all(workers.map((w) => kill9(w)));
    await s?.stop();
  });

  /** The marks of `jobIds` in the portal's request log, per job and attempt, in the portal's time. */
  function intervals(jobIds: readonly string[]): Interval[] {
    const out = new Map<string, Interval>();
    for (const r of s.portal.requests()) {
      const u = new URL(r.url, s.portal.url);
      const jobId = u.searchParams.get('run');
      if (!jobId || !jobIds.includes(jobId)) continue;
      const attempt = Number(u.searchParams.get('attempt'));
      const key = `${jobId}@${attempt}`;
      const i = out.get(key) ?? { jobId, attempt, start: Infinity };
      if (u.searchParams.get('mark') === 'start') i.start = Math.min(i.start, r.at);
      if (u.searchParams.get('mark') === 'end') i.end = Math.max(i.end ?? 0, r.at);
      out.set(key, i);
    }
    return [...out.values()].sort((a, b) => a.start - b.start);
  }

  /** No two runs of one account interleave: each starts after the previous one's last request. */
  function assertSerial(runs: readonly Interval[], what: string): void {
    for (let i = 1; i < runs.length; i++) {
      const prev = runs[i - 1]!;
      const last = prev.end ?? prev.start;
      assert.ok(runs[i]!.start >= last,
        `${what}: ${runs[i]!.jobId}@${runs[i]!.attempt} started at ${runs[i]!.start}, before ${prev.jobId}@${prev.attempt} ended at ${last} (${JSON.stringify(runs)})`);
    }
  }

  const status = (jobId: string) => s.redis.get(keys.jobStatus(jobId));
  const allDone = async (jobs: readonly JobMessage[]) => {
    let seen: (string | null)[] = [];
    await waitFor(async () => (seen = await Promise.all(jobs.map((j) => status(j.jobId)))).every((s) => s === 'done'), {
      timeoutMs: 240_000, what: 'every job done',
    }).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(seen)}; ${workers.map((w) => w.output().slice(-600)).join('\n')}`, { cause: e });
    });
  };

  it('never overlaps two jobs of one account on two workers; another account\'s job runs too', async () => {
    await Promise.all([spawn('serial-a'), spawn('serial-b')]);
    const org = testOrg('serial');
    const session = { cookies: [{ name: 'demo_session', value: 'unused', url: s.portal.url }], connectedAt: Date.now() };
    await setSession(s.redis, org, 'user-1', session);
    await setSession(s.redis, org, 'user-2', session);
    // The first holds its account longer, so the look below falls within it.
    const mine = [6000, 2000, 2000].map((holdMs) => signedJob(org, MARKED, { metadata: { base: s.portal.url, holdMs } }));
    const other = signedJob(org, MARKED, { userId: 'user-2', metadata: { base: s.portal.url, holdMs: 2000 } });
    for (const j of [...mine, other]) await push(s.redis, org, j);

    // While the first job of the account runs, the others hold no lease and read 'queued' (checked only while its
    // end mark is not in the log yet: then it surely still ran when they were read).
    await waitFor(() => intervals([mine[0]!.jobId]).length === 1, { timeoutMs: 120_000, what: 'the first job started on the portal' });
    const leases = await Promise.all(mine.slice(1).map((j) => s.redis.hget(keys.queueJobLeases, j.jobId)));
    const statuses = await Promise.all(mine.slice(1).map((j) => status(j.jobId)));
    if (intervals([mine[0]!.jobId])[0]!.end === undefined) {
      assert.deepEqual(leases, [null, null], 'the account\'s other jobs take no worker slot');
      // pushed with a plain LPUSH, as producers do: no status until a worker starts them
      assert.ok(statuses.every((s) => s === null || s === 'queued'), `they wait, neither failed nor running: ${JSON.stringify(statuses)}`);
    }

    await allDone([...mine, other]);
    const runs = intervals(mine.map((j) => j.jobId));
    assert.equal(runs.length, 3, JSON.stringify(runs));
    assert.ok(runs.every((r) => r.end !== undefined), JSON.stringify(runs));
    assertSerial(runs, 'one account');
    assert.deepEqual(runs.map((r) => r.jobId), mine.map((j) => j.jobId), 'in the order they were pushed');
    assert.equal(intervals([other.jobId]).length, 1);
    assert.deepEqual(await s.redis.hgetall(keys.queueLeasedByOrg), {}, 'no hold left');
  });

  it('frees the account of a worker killed with SIGKILL when its lease is recovered, and still never overlaps', async () => {
    const org = testOrg('serial-kill');
    await setSession(s.redis, org, 'user-1', { cookies: [{ name: 'demo_session', value: 'unused', url: s.portal.url }], connectedAt: Date.now() });
    const first = signedJob(org, MARKED, { metadata: { base: s.portal.url, firstHoldMs: 120_000, holdMs: 1000 } });
    const second = signedJob(org, MARKED, { metadata: { base: s.portal.url, holdMs: 1000 } });
    await push(s.redis, org, first);
    await push(s.redis, org, second);
    await waitFor(() => intervals([first.jobId]).length === 1, { timeoutMs: 120_000, what: 'the first job started on the portal' });
    const token = (await s.redis.hget(keys.queueJobLeases, first.jobId))!;
    const holderId = await s.redis.hget(keys.lease(token), 'workerId');
    const holder = workers.find((w) => w.workerId === holderId)!;
    assert.ok(holder, `the first job's worker (${holderId}) is one of ours`);
    assert.equal(await s.redis.hget(keys.queueJobLeases, second.jobId), null, 'the second waits');
    await kill9(holder);
    const killedAt = Date.now();
    // A replacement, so two workers stay up.
    await spawn('serial-c');

    // The second job runs once the dead worker's lease is recovered; the first then runs again as attempt 2 after it.
    await allDone([second, first]);
    const runs = intervals([first.jobId, second.jobId]);
    const killed = runs.find((r) => r.jobId === first.jobId && r.attempt === 1)!;
    assert.equal(killed.end, undefined, 'the killed attempt never finished');
    assert.equal(runs.length, 3, `attempt 1 of the first, the second, attempt 2 of the first: ${JSON.stringify(runs)}`);
    assert.ok(runs.filter((r) => r !== killed).every((r) => r.end !== undefined), JSON.stringify(runs));
    // The killed attempt's last request is its start mark; nothing of the account started before the kill.
    assertSerial(runs.map((r) => (r === killed ? { ...r, end: killedAt } : r)), 'after the kill');
    assert.deepEqual(await s.redis.hgetall(keys.queueLeasedByOrg), {}, 'no hold left');
    await Promise.all(workers.map((w) => stopWorker(w)));
  });
});
