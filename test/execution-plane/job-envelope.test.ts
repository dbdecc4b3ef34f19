/**
 * The job envelope on a real worker (redis-server, s3rver, Chromium, a local portal): with REQUIRE_JOB_SIGNATURE
 * (the default) a job without a valid envelope signature, with any envelope field changed, replayed under another
 * organisation's ids, or whose id already finished is refused — dead-lettered with a stable code, nothing run,
 * nothing written under its ids — while retries of a job that has not finished still run. With the setting off,
 * hand-signed jobs run as in the README's manual test. Sessions sealed as the API seals them are read, and plain
 * ones written by hand still are.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import type { Redis } from '../../src/shared/redis.ts';
import type { BlobStore } from '../../src/shared/s3.ts';
import type { ResultMessage, JobMessage } from '../../src/shared/schemas.ts';
import { parseKeyring } from '../../src/shared/sealed.ts';
import { signEnvelope, signScript } from '../../src/shared/signing.ts';
import { sealSession, transportKeyring } from '../../src/shared/transport-secrets.ts';
import type { WorkerConfig } from '../../src/execution-plane/config.ts';
import type { WorkerHandle } from '../../src/execution-plane/worker.ts';
import { TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { startWorkerOn } from './support/worker-harness.ts';
import type { TestPortal } from './support/portal.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg } from './support/jobs.ts';

/** A script that leaves a trace at the portal, so a refused job can be shown to have run nothing. */
const TRACE_SCRIPT = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/cookies');
  helpers.setResult({ seen: await page.textContent('body') });
}
`;

describe('job envelope and replay checks on a real worker', () => {
  let h: ServicesHarness;
  let portal: TestPortal;
  let redis: Redis;
  let queue: JobQueue;
  let store: BlobStore;
  let results: Map<string, ResultMessage>;

  before(async () => {
    h = await startServicesHarness({ logPrefix: 'sri-envelope-logs-' });
    ({ portal, redis, store, results } = h);
    queue = await JobQueue.connect(redis);
  });

  after(async () => {
    await h?.stop();
  });

  const session = () => ({ cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], connectedAt: Date.now() });

  const startTestWorker = (extra: Record<string, string> = {}): Promise<{ worker: WorkerHandle; config: WorkerConfig }> =>
    startWorkerOn(h, { env: { WORKER_RETRY_BASE_MS: '50', WORKER_RETRY_MAX_MS: '100', WORKER_RECOVERY_INTERVAL_MS: '100', ...extra }, logLevel: 'warn' });


  /** Pushes `message` to `queueOrg` and waits for the result published for its job id. */
  async function run(queueOrg: string, message: JobMessage): Promise<ResultMessage> {
    results.delete(message.jobId);
    await push(redis, queueOrg, message);
    return waitFor(() => results.get(message.jobId), { timeoutMs: 30_000, what: `result of ${message.jobId}` });
  }

  /** A refused job: dead-lettered with `code`, no page requested, nothing under its ids in S3 or the live log. */
  async function assertRefused(queueOrg: string, message: JobMessage, code: string, pattern: RegExp, what = ''): Promise<void> {
    const requestsBefore = portal.requests.length;
    const liveLogBefore = await redis.xlen(keys.jobLogs(message.jobId));
    const r = await run(queueOrg, message);
    assert.equal(r.status, 'dead', `${what} ${JSON.stringify(r)}`);
    assert.equal(r.error?.code, code);
    assert.match(r.error!.message, pattern);
    assert.deepEqual(r.files, { log: '', screenshots: [] });
    assert.equal(portal.requests.length, requestsBefore, 'the script did not run');
    assert.deepEqual(await store.list('sri-results', `results/${message.orgId}/${message.userId}/${message.jobId}/`), []);
    assert.equal(await redis.xlen(keys.jobLogs(message.jobId)), liveLogBefore, 'nothing written to the job\'s live log');
    const dlq = await queue.dlqList(queueOrg);
    assert.ok(dlq.some((e) => e.jobId === message.jobId && e.reason.startsWith(`${code}: `)), JSON.stringify(dlq.map((e) => e.reason)));
  }

  async function normalJobSucceeds(orgId: string): Promise<void> {
    const r = await run(orgId, signedJob(orgId, NORMAL_SCRIPT, { metadata: { base: portal.url } }));
    assert.equal(r.status, 'done', JSON.stringify(r.error));
  }

  describe('REQUIRE_JOB_SIGNATURE=true (the default)', () => {
    let worker: WorkerHandle;
    let config: WorkerConfig;
    before(async () => { ({ worker, config } = await startTestWorker()); });
    after(async () => { await worker?.stop({ graceMs: 5000 }); });

    it('is on by default', () => {
      assert.equal(config.requireJobSignature, true);
    });

    it('refuses a hand-signed job without an envelope signature (JOB_SIGNATURE_INVALID) and serves the next job', async () => {
      const org = testOrg('unsigned');
      await setSession(redis, org, 'user-1', session());
      const job = signedJob(org, TRACE_SCRIPT, { metadata: { base: portal.url }, envelopeSignature: undefined });
      await assertRefused(org, job, 'JOB_SIGNATURE_INVALID', /signature missing/);
      await normalJobSucceeds(org);
    });

    it('refuses a job whose envelope has any one field changed after signing', async () => {
      const org = testOrg('tampered');
      await setSession(redis, org, 'user-1', session());
      await setSession(redis, org, 'user-2', session());
      await setSession(redis, org, 'user-1', session(), 'other');
      // Another script, validly signed on its own (hash and signature), is swapped in under the first one's envelope.
      const other = 'export default async function run({ helpers }) { helpers.setResult({ swapped: true }); }\n';
      const swapped = { scriptContent: other, ...signScript(other, TEST_SIGNING_SECRET) };
      const changes: Record<string, Partial<JobMessage>> = {
        jobId: { jobId: `x-${randomBytes(4).toString('hex')}` },
        userId: { userId: 'user-2' },
        providerId: { providerId: 'other', providerName: 'other' },
        flowId: { flowId: 'flow-2' },
        flowVersion: { flowVersion: '9.9.9' },
        scriptHash: swapped,
        createdAt: { createdAt: new Date(Date.now() - 3_600_000).toISOString() },
        allowedHosts: { allowedHosts: ['evil.example'] },
        // Signed since envelope v3: which session is loaded, how long and how often it may run, and its input.
        providerName: { providerName: 'other-portal' },
        timeoutMs: { timeoutMs: 24 * 3600 * 1000 },
        maxAttempts: { maxAttempts: 100 },
        metadata: { metadata: { base: portal.url, ruc: 'someone-else' } },
      };
      for (const [field, change] of Object.entries(changes)) {
        const job = { ...signedJob(org, TRACE_SCRIPT, { metadata: { base: portal.url } }), ...change };
        await assertRefused(org, job, 'JOB_SIGNATURE_INVALID', /signature invalid/, `${field} changed:`);
      }
      // The egress restriction cannot be lifted or widened by whoever pushes the message.
      const restricted = signedJob(org, TRACE_SCRIPT, { metadata: { base: portal.url }, allowedHosts: [`127.0.0.1:${portal.port}`] });
      const { allowedHosts: _lifted, ...lifted } = restricted;
      await assertRefused(org, lifted, 'JOB_SIGNATURE_INVALID', /signature invalid/, 'allowedHosts removed:');
      const another = signedJob(org, TRACE_SCRIPT, { metadata: { base: portal.url }, allowedHosts: [`127.0.0.1:${portal.port}`] });
      await assertRefused(org, { ...another, allowedHosts: [...another.allowedHosts!, 'evil.example'] }, 'JOB_SIGNATURE_INVALID', /signature invalid/, 'allowedHosts widened:');
      await normalJobSucceeds(org);
    });

    it('refuses a signed job replayed under another organisation\'s ids, whose session it would have used', async () => {
      const [orgA, orgB] = [testOrg('replay-a'), testOrg('replay-b')];
      await setSession(redis, orgA, 'user-1', session());
      await setSession(redis, orgB, 'user-b', session());
      await setSession(redis, orgB, 'user-1', session());
      const original = signedJob(orgA, TRACE_SCRIPT, { metadata: { base: portal.url } });
      assert.equal((await run(orgA, original)).status, 'done');
      // The same signed script and envelope signature, pushed to B's queue with B's ids (the orgId must match the
      // queue, or it is not even read as B's job).
      const replay = { ...original, orgId: orgB, userId: 'user-b', jobId: `${original.jobId}-b` };
      await assertRefused(orgB, replay, 'JOB_SIGNATURE_INVALID', /signature invalid/);
      const sameIds = { ...original, orgId: orgB };
      await assertRefused(orgB, sameIds, 'JOB_SIGNATURE_INVALID', /signature invalid/);
      await normalJobSucceeds(orgB);
    });

    it('refuses a finished job id pushed again (JOB_REPLAYED), also with a higher attempt, and leaves its evidence alone', async () => {
      const org = testOrg('finished');
      await setSession(redis, org, 'user-1', session());
      const job = signedJob(org, TRACE_SCRIPT, { metadata: { base: portal.url } });
      const first = await run(org, job);
      assert.equal(first.status, 'done', JSON.stringify(first.error));
      assert.equal(await redis.get(keys.jobFinished(job.jobId)), 'done');
      const evidence = await store.list('sri-results', `results/${org}/user-1/${job.jobId}/`);
      const logBefore = (await store.get('sri-results', `results/${org}/user-1/${job.jobId}/execution.log`))!.toString();
      const requestsBefore = portal.requests.length;
      for (const replay of [job, { ...job, attempt: 2 }, { ...job, attempt: 3 }]) {
        const r = await run(org, replay);
        assert.equal(r.status, 'dead');
        assert.equal(r.error?.code, 'JOB_REPLAYED');
        assert.match(r.error!.message, /already finished \(done\)/);
      }
      // More attempts than it was signed for is not a replay but an altered envelope (maxAttempts is signed, v3).
      const more = await run(org, { ...job, attempt: 50, maxAttempts: 100 });
      assert.equal(more.status, 'dead');
      assert.equal(more.error?.code, 'JOB_SIGNATURE_INVALID');
      assert.equal(portal.requests.length, requestsBefore, 'no replay ran');
      assert.deepEqual(await store.list('sri-results', `results/${org}/user-1/${job.jobId}/`), evidence);
      assert.equal((await store.get('sri-results', `results/${org}/user-1/${job.jobId}/execution.log`))!.toString(), logBefore, 'its execution.log is untouched');
      // A failed job is spent too; the way to run it again is POST /api/jobs/{id}/retry, which removes the mark.
      const failing = signedJob(org, 'export default async function run() { throw new Error("no"); }\n');
      assert.equal((await run(org, failing)).status, 'failed');
      assert.equal((await run(org, { ...failing, attempt: 2 })).error?.code, 'JOB_REPLAYED');
      await redis.del(keys.jobFinished(failing.jobId));
      const again = await run(org, { ...failing, attempt: 2 });
      assert.equal(again.status, 'failed');
      assert.equal(again.error?.code, 'SCRIPT_ERROR', 'runs again once the mark is gone');
    });

    it('runs the retries of a job that has not finished: attempt 2 after a transient failure, and a pushed attempt > 1', async () => {
      const org = testOrg('retries');
      await setSession(redis, org, 'user-1', session());
      // Attempt 1 fails to load a page (transient, retried by the worker with attempt + 1); attempt 2 succeeds.
      const flaky = `export default async function run({ page, payload, helpers, context }) {
  if (context.attempt === 1) await page.goto('http://127.0.0.1:1/unreachable');
  await page.goto(payload.base + '/invoices');
  helpers.setResult({ attempt: context.attempt });
}
`;
      const job = signedJob(org, flaky, { metadata: { base: portal.url }, maxAttempts: 3 });
      await push(redis, org, job);
      const r = await waitFor(() => (results.get(job.jobId)?.status === 'done' ? results.get(job.jobId) : undefined), { timeoutMs: 30_000, what: 'attempt 2 done' });
      assert.equal(r.attempt, 2);
      // A message pushed with attempt 3 (as a recovered or retried job is) that has not finished runs.
      const pushed = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url }, attempt: 3, maxAttempts: 3 });
      const p = await run(org, pushed);
      assert.equal(p.status, 'done', JSON.stringify(p.error));
      assert.equal(p.attempt, 3);
    });

    it('reads a session sealed as the API seals it, and refuses one sealed under a key it does not hold (SECRETS_UNREADABLE)', async () => {
      const org = testOrg('sealed');
      const key = keys.session(org, 'user-1', 'demo');
      await redis.set(key, sealSession(transportKeyring(config), key, session()), 'EX', 600);
      const ok = await run(org, signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url } }));
      assert.equal(ok.status, 'done', JSON.stringify(ok.error));
      const foreign = parseKeyring(`t9:${randomBytes(32).toString('base64')}`);
      await redis.set(key, sealSession(foreign, key, session()), 'EX', 600);
      const bad = await run(org, signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url } }));
      assert.equal(bad.status, 'failed');
      assert.equal(bad.error?.code, 'SECRETS_UNREADABLE');
      assert.match(bad.error!.message, /t9/);
      // A sealed session moved under another user's key does not open either.
      await redis.set(keys.session(org, 'user-2', 'demo'), sealSession(transportKeyring(config), key, session()), 'EX', 600);
      const moved = await run(org, signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url }, userId: 'user-2' }));
      assert.equal(moved.error?.code, 'SECRETS_UNREADABLE');
    });
  });

  describe('REQUIRE_JOB_SIGNATURE=false (the embedded demo stack)', () => {
    let worker: WorkerHandle;
    before(async () => { ({ worker } = await startTestWorker({ REQUIRE_JOB_SIGNATURE: 'false' })); });
    after(async () => { await worker?.stop({ graceMs: 5000 }); });

    it('runs a job signed by hand as in the README (script only, plain session), and the same job id pushed again', async () => {
      const org = testOrg('manual');
      await setSession(redis, org, 'manual-user', session());
      const job = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url }, userId: 'manual-user', envelopeSignature: undefined });
      const r = await run(org, job);
      assert.equal(r.status, 'done', JSON.stringify(r.error));
      const again = await run(org, { ...job, scriptContent: `${NORMAL_SCRIPT}// changed\n` });
      assert.equal(again.error?.code, 'SCRIPT_INTEGRITY', 'the README\'s "change one character and push again" still runs the checks');
    });

    it('still refuses an envelope signature that is present but wrong', async () => {
      const org = testOrg('manual-bad');
      await setSession(redis, org, 'user-1', session());
      const job = signedJob(org, TRACE_SCRIPT, { metadata: { base: portal.url } });
      job.envelopeSignature = signEnvelope({ ...job, orgId: 'someone-else' }, TEST_SIGNING_SECRET);
      await assertRefused(org, job, 'JOB_SIGNATURE_INVALID', /signature invalid/);
    });
  });
});
