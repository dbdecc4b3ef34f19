/**
 * The provider's maxConcurrentPerAccount (docs/queue.md "One run at a time per portal account") on real services:
 * stored in the providers table (default 1, 1–100), read with the provider, listed by GET /api/providers, and carried by
 * every job message the control plane queues for it, where the queue's take script reads it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { findProvider, upsertProvider } from '../../src/control-plane/db/queries/providers.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobMessage } from '../../src/shared/schemas.ts';
import { JobQueue, type Taken } from '../../src/shared/queue/job-queue.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { testDemoProvider } from '../support/providers.ts';

describe('maxConcurrentPerAccount of a provider', () => {
  let t: TestApi;
  const OPERATOR_TOKEN = `operator-${'x'.repeat(40)}`;
  before(async () => { t = await startTestApi({ OPERATOR_TOKEN }); });
  after(async () => { await t?.stop(); });

  /** The queued message of `jobId` (no worker runs here: it stays in the producer list). */
  const queued = async (orgId: string, jobId: string) => {
    const raw = (await t.redis.lrange(keys.orgJobs(orgId), 0, -1)).map((m) => JobMessage.parse(JSON.parse(m))).find((m) => m.jobId === jobId);
    assert.ok(raw, `job ${jobId} is queued`);
    return raw;
  };

  /** The demo provider's maxConcurrentPerAccount as GET /api/providers lists it. */
  const listed = async (token: string) => {
    const r = await fetch(`${t.api.url}/api/providers`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    const body = await r.json() as { providers: { id: string; maxConcurrentPerAccount: number }[] };
    return body.providers.find((p) => p.id === 'demo')?.maxConcurrentPerAccount;
  };

  it('is 1 by default and goes into every job message; a provider set to 2 queues its next jobs with 2', async () => {
    assert.equal((await t.db.asSystem((tx) => findProvider(tx, 'demo')))?.maxConcurrentPerAccount, 1, 'the default');
    const org = await t.createOrg();
    const first = await t.runJob(org);
    assert.equal((await queued(org.orgId, first)).maxConcurrentPerAccount, 1);
    assert.equal(await listed(org.token), 1, 'GET /api/providers shows it');

    // An upsert without the field keeps the value; with it, sets it.
    await t.db.asSystem((tx) => upsertProvider(tx, { ...testDemoProvider(), maxConcurrentPerAccount: 2 }));
    await t.db.asSystem((tx) => upsertProvider(tx, testDemoProvider()));
    assert.equal((await t.db.asSystem((tx) => findProvider(tx, 'demo')))?.maxConcurrentPerAccount, 2);
    const second = await t.runJob(org);
    assert.equal((await queued(org.orgId, second)).maxConcurrentPerAccount, 2);
    assert.equal(await listed(org.token), 2, 'GET /api/providers shows it');
    await t.db.asSystem((tx) => upsertProvider(tx, { ...testDemoProvider(), maxConcurrentPerAccount: 1 }));
  });

  it('refuses a limit outside 1–100 in the table', async () => {
    for (const bad of [0, 101]) {
      await assert.rejects(t.db.asSystem((tx) => upsertProvider(tx, { ...testDemoProvider(), maxConcurrentPerAccount: bad })), /check constraint|max_concurrent_per_account/i);
    }
    assert.equal((await t.db.asSystem((tx) => findProvider(tx, 'demo')))?.maxConcurrentPerAccount, 1);
  });

  it('is set by the operator through the API (1–100), for the jobs submitted from then on; nobody else may', async () => {
    const org = await t.createOrg();
    const put = (id: string, body: unknown, token: string) => fetch(`${t.api.url}/api/operator/providers/${id}/account-concurrency`, {
      method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body),
    });
    const ok = await put('demo', { maxConcurrentPerAccount: 3 }, OPERATOR_TOKEN);
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.deepEqual(await ok.json(), { providerId: 'demo', maxConcurrentPerAccount: 3 });
    assert.equal(await listed(org.token), 3);
    assert.equal((await queued(org.orgId, await t.runJob(org))).maxConcurrentPerAccount, 3);
    for (const bad of [0, 101, 1.5, '2']) {
      const r = await put('demo', { maxConcurrentPerAccount: bad }, OPERATOR_TOKEN);
      assert.equal(r.status, 400, `refused: ${JSON.stringify(bad)}`);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
    }
    const unknown = await put('no-such-provider', { maxConcurrentPerAccount: 2 }, OPERATOR_TOKEN);
    assert.equal(unknown.status, 404);
    const member = await put('demo', { maxConcurrentPerAccount: 50 }, org.token);
    assert.equal(member.status, 403, 'an organisation\'s user is not the operator');
    assert.equal(await listed(org.token), 3, 'unchanged by the refused requests');
    await put('demo', { maxConcurrentPerAccount: 1 }, OPERATOR_TOKEN);
  });

  it('tells why a queued job waits: its portal account busy with another run, or its provider\'s gate until when', async () => {
    const queue = await JobQueue.connect(t.redis);
    const org = await t.createOrg();
    const detail = async (jobId: string) => {
      const r = await fetch(`${t.api.url}/api/jobs/${jobId}`, { headers: { authorization: `Bearer ${org.token}` } });
      assert.equal(r.status, 200);
      return ((await r.json()) as { job: { status: string; waiting: { reason: string; until?: string } | null } }).job;
    };
    /** Plays a worker: takes jobs (other tests' included, whose leases it leaves) until it holds `jobId`. */
    const take = async (jobId: string): Promise<Taken> => {
      for (let i = 0; i < 100; i++) {
        const tk = await queue.take('waiting-test');
        if (tk?.jobId === jobId) return tk;
        if (!tk) break;
      }
      throw new Error(`job ${jobId} was not taken`);
    };
    const first = await t.runJob(org);
    assert.equal((await detail(first)).waiting, null, 'queued for its turn only');
    const running = await take(first);
    const second = await t.runJob(org);
    // The take parks the second job behind the first: its account (org, user, demo) allows one run at a time.
    for (let tk = await queue.take('waiting-test'); tk; tk = await queue.take('waiting-test')) assert.notEqual(tk.jobId, second, 'not leased');
    assert.ok((await t.redis.zcard(keys.queueParked)) >= 1, 'parked');
    const parked = await detail(second);
    assert.equal(parked.status, 'queued');
    assert.deepEqual(parked.waiting, { reason: 'account' });
    assert.equal((await detail(first)).waiting, null, 'the running job waits for nothing');

    // The provider's gate puts the first back until the maintenance window ends: it says so, and the account is free.
    const until = Date.now() + 3_600_000;
    assert.notEqual(await queue.defer(running, until, 'maintenance'), 'late');
    const deferred = await detail(first);
    assert.equal(deferred.status, 'queued');
    assert.deepEqual(deferred.waiting, { reason: 'maintenance', until: new Date(until).toISOString() });
    assert.equal((await detail(second)).waiting, null, 'its account has room again');
  });
});
