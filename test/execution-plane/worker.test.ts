/**
 * The worker end to end on real services: redis-server, s3rver, Chromium and a local test portal. Jobs are
 * hand-signed and pushed with a raw LPUSH — no control plane involved.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from '../../src/shared/redis.ts';
import { parseLogEntry } from '../../src/shared/job-logs.ts';
import { keys } from '../../src/shared/keys.ts';
import type { BlobStore } from '../../src/shared/s3.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { ResultMessage, type JobMessage } from '../../src/shared/schemas.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { startEmbeddedRedis } from '../../src/embedded/redis-server.ts';
import type { WorkerConfig } from '../../src/execution-plane/config.ts';
import { waitFor } from '../support/services.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { startWorkerOn, testSession } from './support/worker-harness.ts';
import type { TestPortal } from './support/portal.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg, testWorkerConfig } from './support/jobs.ts';

describe('worker on real Redis, S3 and Chromium', () => {
  let h: ServicesHarness;
  let portal: TestPortal;
  let redis: Redis;
  let queue: JobQueue;
  let store: BlobStore;
  let worker: WorkerHandle;
  let config: WorkerConfig;
  let results: Map<string, ResultMessage>;

  before(async () => {
    h = await startServicesHarness();
    ({ portal, redis, store, results } = h);
    queue = await JobQueue.connect(redis);
    // Short leases (renewed every second) and fast retries, so every test also exercises renewal.
    ({ worker, config } = await startWorkerOn(h, {
      env: { WORKER_LEASE_MS: '3000', WORKER_RETRY_BASE_MS: '100', WORKER_RETRY_MAX_MS: '400', WORKER_RECOVERY_INTERVAL_MS: '100' },
    }));
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await h?.stop();
  });

  const session = () => testSession(portal);

  /** Pushes a job and waits for its published result. */
  const run = (orgId: string, message: JobMessage): Promise<ResultMessage> => h.run(orgId, message);

  const object = (uri: string | undefined): Promise<Buffer> => h.object(uri);

  /** The follow-up every failure test runs: the same worker still serves a normal job. */
  async function normalJobSucceeds(orgId: string): Promise<void> {
    const r = await run(orgId, signedJob(orgId, NORMAL_SCRIPT, { metadata: { base: portal.url } }));
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(JSON.parse((await object(r.files.parsedData)).toString()), { rows: 2 });
  }

  it('runs a hand-signed job pushed with LPUSH to done, with log, screenshot, download and parsed data in S3', async () => {
    const org = testOrg('happy');
    await setSession(redis, org, 'user-1', session());
    const script = `export default async function run({ page, payload, helpers, context }) {
  await page.goto(payload.base + '/invoices');
  await page.waitForSelector('#invoices');
  helpers.log('listing invoices of job ' + context.jobId + ' for ' + payload.customer);
  const shot = await helpers.screenshot({ fullPage: true });
  const file = await helpers.download(() => page.click('#pdf'));
  const rows = await helpers.extract('#invoices tbody tr', { number: 'td.number', total: 'td.total', link: { selector: 'a', attribute: 'href' }, id: { attribute: 'data-id' }, missing: 'td.none' });
  helpers.setResult({ invoices: rows });
  helpers.setResult({ file, shot, context });
}
`;
    const job = signedJob(org, script, { metadata: { base: portal.url, customer: 'ACME' } });
    const r = await run(org, job);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal(r.success, true);
    assert.equal(r.workerId, worker.workerId);
    assert.equal(r.attempt, 1);
    assert.equal(await redis.get(keys.jobStatus(job.jobId)), 'done');
    assert.deepEqual(ResultMessage.parse(JSON.parse((await redis.get(keys.jobResult(job.jobId)))!)), r);

    const prefix = `s3://sri-results/results/${org}/user-1/${job.jobId}/`;
    assert.equal(r.files.log, `${prefix}execution.log`);
    assert.deepEqual(r.files.screenshots, [`${prefix}screenshot-0.png`]);
    assert.equal(r.files.download, `${prefix}Factura_2024_001_copia.pdf`);
    assert.equal(r.files.parsedData, `${prefix}parsed-data.json`);

    assert.equal(Buffer.compare(await object(r.files.download), portal.pdf), 0, 'downloaded bytes are the served bytes');
    assert.deepEqual((await object(r.files.screenshots[0])).subarray(1, 4).toString(), 'PNG');
    const data = JSON.parse((await object(r.files.parsedData)).toString()) as Record<string, unknown>;
    assert.deepEqual(data['invoices'], [
      { number: 'F-001', total: '10.50', link: '/invoice.pdf?n=1', id: '1', missing: null },
      { number: 'F-002', total: '99.00', link: '/invoice.pdf?n=2', id: '2', missing: null },
    ]);
    assert.deepEqual(data['file'], { name: 'Factura_2024_001_copia.pdf', size: portal.pdf.length });
    assert.equal(data['shot'], 'screenshot-0.png');
    assert.deepEqual(data['context'], { jobId: job.jobId, orgId: org, userId: 'user-1', providerId: 'demo', flowId: 'flow-1', flowVersion: '1.0.0', attempt: 1 });
    const log = (await object(r.files.log)).toString();
    assert.match(log, new RegExp(`listing invoices of job ${job.jobId} for ACME`));
    assert.match(log, /script verified/);
    assert.match(log, /download Factura_2024_001_copia\.pdf/);

    const stats = await redis.hgetall(keys.workerStats(worker.workerId));
    assert.equal(stats['workerId'], worker.workerId);
    assert.ok(Number(stats['totalJobs']) >= 1 && Number(stats['successfulJobs']) >= 1);
    assert.ok(Number(stats['lastJobAt']) > 0 && Number(stats['startedAt']) > 0);
    const beat = await redis.get(keys.workerHeartbeat(worker.workerId));
    assert.ok(Number(beat) > Date.now() - 60_000);
    const ttl = await redis.ttl(keys.workerHeartbeat(worker.workerId));
    assert.ok(ttl > 0 && ttl <= 30);
    assert.equal(await redis.hexists(keys.queueJobLeases, job.jobId), 0, 'the lease is released');
    assert.equal(await redis.zscore(keys.queueLeases, 'x'), null);
  });

  it('streams the job\'s script, console and worker lines to its Redis log stream while it runs, redacted', async () => {
    const org = testOrg('live-log');
    await setSession(redis, org, 'user-1', session());
    const script = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/invoices');
  helpers.log('step one of ' + payload.customer);
  await page.evaluate(() => console.warn('from the page'));
  await page.goto(payload.base + '/hold');
  helpers.log('step two, password ' + payload.leak);
}`;
    const job = signedJob(org, script, { metadata: { base: portal.url, customer: 'ACME', leak: portal.password } });
    await push(redis, org, job);
    const lines = async () => (await redis.xrange(keys.jobLogs(job.jobId), '-', '+'))
      .flatMap(([id, fields]) => { const e = parseLogEntry(id, fields); return e && 'lines' in e ? e.lines : []; });
    // Live: the first line is readable while the job is still running (it waits in the page for a flag).
    const early = await waitFor(async () => {
      const l = await lines();
      return l.some((x) => x.message === 'step one of ACME') && l.some((x) => x.stream === 'console') ? l : undefined;
    }, { timeoutMs: 20_000, what: 'the first script line and the console line in the stream' });
    assert.equal(await redis.get(keys.jobStatus(job.jobId)), 'running');
    assert.ok(early.some((x) => x.stream === 'worker' && /script verified/.test(x.message)), 'worker steps are streamed');
    const consoleLine = early.find((x) => x.stream === 'console')!;
    assert.deepEqual([consoleLine.level, consoleLine.message], ['warn', 'from the page']);
    // The script waits on /hold until the portal answers it: let it go on.
    await waitFor(() => portal.requests.some((x) => x.path === '/hold') || undefined, { what: 'the script waiting on /hold' });
    portal.releaseHolds();
    const r = await waitFor(() => results.get(job.jobId), { timeoutMs: 30_000, what: 'result' });
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.ok(r.logs && r.logs.written >= 4 && r.logs.droppedLines === 0, JSON.stringify(r.logs));
    const all = await lines();
    const two = all.find((x) => x.message.startsWith('step two'));
    assert.ok(two, 'the last script line arrived');
    assert.doesNotMatch(JSON.stringify(all), new RegExp(portal.password), 'no secret in the stream');
    const ends = (await redis.xrange(keys.jobLogs(job.jobId), '-', '+')).map(([id, f]) => parseLogEntry(id, f)).filter((e) => e && 'end' in e);
    assert.equal(ends.length, 1, 'one end entry per attempt');
    assert.ok((await redis.ttl(keys.jobLogs(job.jobId))) > 0, 'the stream expires');
    const log = (await object(r.files.log)).toString();
    assert.match(log, /CONSOLE:warn from the page/);
  });

  it('fails a tampered script with "Script integrity compromised" and still serves the next job', async () => {
    const org = testOrg('tamper');
    await setSession(redis, org, 'user-1', session());
    const job = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url } });
    job.scriptContent = NORMAL_SCRIPT.replace('count()', 'count() + 1000');
    const r = await run(org, job);
    assert.equal(r.status, 'failed');
    assert.equal(r.success, false);
    assert.deepEqual(r.error, { code: 'SCRIPT_INTEGRITY', message: 'Script integrity compromised' });
    assert.equal(await redis.get(keys.jobStatus(job.jobId)), 'failed');
    assert.match((await object(r.files.log)).toString(), /SCRIPT_INTEGRITY: Script integrity compromised/);
    await normalJobSucceeds(org);
  });

  it('fails a script signed with another key with "Unauthorized script" and still serves the next job', async () => {
    const org = testOrg('wrongkey');
    await setSession(redis, org, 'user-1', session());
    const job = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url } }, 'a-different-signing-secret-of-32-chars-or-more');
    const r = await run(org, job);
    assert.equal(r.status, 'failed');
    assert.deepEqual(r.error, { code: 'SCRIPT_UNAUTHORIZED', message: 'Unauthorized script' });
    assert.equal(await redis.get(keys.jobStatus(job.jobId)), 'failed');
    await normalJobSucceeds(org);
  });

  it('fails a job without a session with "Session not found" and still serves the next job', async () => {
    const org = testOrg('nosession');
    const job = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url } });
    const r = await run(org, job);
    assert.equal(r.status, 'failed');
    assert.deepEqual(r.error, { code: 'SESSION_NOT_FOUND', message: 'Session not found' });
    await setSession(redis, org, 'user-1', session());
    await normalJobSucceeds(org);
  });

  it('dead-letters malformed messages, reports those it can, and still serves the next job', async () => {
    const org = testOrg('malformed');
    await setSession(redis, org, 'user-1', session());
    await push(redis, org, '{"jobId": "broken", this is not json');
    const invalid = { ...signedJob(org, NORMAL_SCRIPT), scriptHash: 'xyz' };
    const r = await run(org, invalid);
    assert.equal(r.status, 'dead');
    assert.equal(r.error?.code, 'INVALID_JOB');
    assert.match(r.error!.message, /scriptHash/);
    assert.equal(await redis.get(keys.jobStatus(invalid.jobId)), 'dead');
    const oversized = signedJob(org, NORMAL_SCRIPT, { metadata: { pad: 'x'.repeat(config.maxJobBytes) } });
    const r2 = await run(org, oversized);
    assert.equal(r2.status, 'dead');
    assert.match(r2.error!.message, /oversized: \d+ bytes, over WORKER_MAX_JOB_BYTES/);
    // Valid for Node, too deep for Redis's Lua cjson (1000 levels): leased without a job id, so it must not run.
    let deep: unknown = 0;
    for (let i = 0; i < 1100; i++) deep = { d: deep };
    const nested = signedJob(org, NORMAL_SCRIPT, { metadata: { deep } });
    const r3 = await run(org, nested);
    assert.equal(r3.status, 'dead');
    assert.match(r3.error!.message, /unreadable by the queue/);
    assert.equal(await redis.get(keys.jobStatus(nested.jobId)), 'dead');
    const records = await queue.dlqList(org);
    assert.equal(records.length, 4);
    const notJson = records.find((x) => x.raw.startsWith('{"jobId": "broken"'));
    assert.ok(notJson);
    assert.match(notJson.reason, /not valid JSON/);
    assert.ok(Math.abs(notJson.at - Date.now()) < 120_000);
    assert.ok(records.some((x) => /scriptHash/.test(x.reason) && x.jobId === invalid.jobId && JSON.parse(x.raw).jobId === invalid.jobId));
    const big = records.find((x) => x.jobId === oversized.jobId);
    assert.ok(big?.truncated, 'the oversized message is kept truncated');
    assert.equal(await redis.get(keys.jobStatus('broken')), null);
    assert.equal(await redis.zcard(keys.queueLeases), 0);
    await normalJobSucceeds(org);
  });

  it('gives every job a fresh browser context: cookies of one job are not visible to the next', async () => {
    const org = testOrg('fresh');
    await setSession(redis, org, 'user-1', session());
    const setter = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/set-cookie?name=leak&value=from-job-one');
  helpers.setResult({ cookies: (await page.cookies()).map((c) => c.name) });
}`;
    const r1 = await run(org, signedJob(org, setter, { metadata: { base: portal.url } }));
    assert.equal(r1.status, 'done', JSON.stringify(r1.error));
    assert.deepEqual(JSON.parse((await object(r1.files.parsedData)).toString()).cookies.sort(), ['leak', 'sid']);
    const reader = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/cookies');
  helpers.setResult({ seen: await page.textContent('body'), names: (await page.cookies()).map((c) => c.name) });
}`;
    const r2 = await run(org, signedJob(org, reader, { metadata: { base: portal.url } }));
    assert.equal(r2.status, 'done', JSON.stringify(r2.error));
    const seen = JSON.parse((await object(r2.files.parsedData)).toString()) as { seen: string; names: string[] };
    assert.deepEqual(seen.names, ['sid']);
    assert.doesNotMatch(seen.seen, /leak/);
  });

  it('never lets a credential or cookie value reach execution.log, the error or the result message', async () => {
    const org = testOrg('secrets');
    await setSession(redis, org, 'user-1', session());
    const script = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/login');
  await helpers.fillSecret('#password', 'password');
  helpers.log('typed ' + await page.inputValue('#password'));
  await page.click('#submit');
  await page.waitForSelector('#invoices');
  const cookies = await page.cookies();
  helpers.setResult({ typed: await page.evaluate(() => document.title), cookie: cookies[0].value });
  throw new Error('giving up with sid ' + cookies[0].value + ' and password ' + await page.evaluate(() => 'x'));
}`;
    // The portal answers the login with the same sid as the stored session; the job fails on purpose.
    const r = await run(org, signedJob(org, script, { metadata: { base: portal.url } }));
    assert.equal(r.status, 'failed');
    assert.equal(r.error?.code, 'SCRIPT_ERROR');
    assert.match(r.error!.message, /giving up with sid \[redacted\]/);
    const log = (await object(r.files.log)).toString();
    assert.match(log, /typed \[redacted\]/);
    assert.match(log, /filled secret "password" into #password/);
    const parsed = (await object(r.files.parsedData)).toString();
    const message = (await redis.get(keys.jobResult(r.jobId)))!;
    for (const text of [log, parsed, message, JSON.stringify(r)]) {
      assert.ok(!text.includes(portal.password), 'no password');
      assert.ok(!text.includes(portal.sessionId), 'no cookie value');
    }
    // The worker's own log files neither.
    await waitFor(() => readFileSync(join(h.logDir, 'worker-combined.log'), 'utf8').includes(r.jobId), { what: 'worker log line' });
    const workerLog = readFileSync(join(h.logDir, 'worker-combined.log'), 'utf8');
    assert.ok(!workerLog.includes(portal.password) && !workerLog.includes(portal.sessionId));
    assert.match(workerLog, /"jobId":"[^"]+","orgId":"[^"]+","userId":"user-1"/);
    await normalJobSucceeds(org);
  });

  it('blocks requests to hosts outside allowedHosts and names them in execution.log', async () => {
    const org = testOrg('hosts');
    await setSession(redis, org, 'user-1', session());
    const before = portal.requests.length;
    const script = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/pixel-page');
  await page.waitForLoadState('load');
  let redirected = 'blocked';
  try { await page.goto(payload.base + '/redirect?to=' + encodeURIComponent('http://localhost:' + payload.port + '/pixel.png?via=redirect')); redirected = page.url() + ' ' + (await page.textContent('body')); } catch (e) { helpers.log('redirect refused'); }
  let fileRead = 'blocked';
  try { await page.goto('file:///etc/hostname'); fileRead = await page.textContent('body'); } catch (e) { helpers.log('file: refused'); }
  helpers.setResult({ fileRead, redirected });
}`;
    const r = await run(org, signedJob(org, script, { metadata: { base: portal.url, port: portal.port }, allowedHosts: ['127.0.0.1'] }));
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    const hits = portal.requests.slice(before);
    assert.ok(hits.some((h) => h.path === '/pixel.png' && h.host.startsWith('127.0.0.1')), 'allowed host reached');
    assert.ok(!hits.some((h) => h.host.startsWith('localhost')), 'blocked host never reached');
    const log = (await object(r.files.log)).toString();
    assert.ok(!hits.some((h) => h.path === '/pixel.png' && h.host.startsWith('localhost')), 'a redirect does not lead out either');
    assert.ok(hits.some((h) => h.path === '/redirect'));
    assert.match(log, /blocked \d+ request\(s\) to hosts outside allowedHosts: .*localhost \(2\)/);
    assert.match(log, /file: refused/);
    const data = JSON.parse((await object(r.files.parsedData)).toString()) as { fileRead: string; redirected: string };
    assert.equal(data.fileRead, 'blocked');
    assert.doesNotMatch(data.redirected, /localhost:\d+\/pixel\.png\?via=redirect $/, 'the redirect target was never loaded');
  });

  it('stops a job that outlives its timeoutMs with EXECUTION_TIMEOUT; out of attempts it is dead-lettered and published', async () => {
    const org = testOrg('timeout');
    await setSession(redis, org, 'user-1', session());
    const script = `export default async function run({ page, payload, helpers, context }) {
  helpers.log('before the slow page, attempt ' + context.attempt);
  await page.goto(payload.base + '/slow?ms=30000');
  helpers.log('after the slow page');
}`;
    const started = Date.now();
    const job = signedJob(org, script, { metadata: { base: portal.url }, timeoutMs: 1000, maxAttempts: 2 });
    const r = await run(org, job);
    assert.equal(r.status, 'dead');
    assert.equal(r.attempt, 2, 'a transient failure was retried once');
    assert.equal(r.error?.code, 'EXECUTION_TIMEOUT');
    // The code above says the job's own limit stopped it (else PLAYWRIGHT_TIMEOUT's NAVIGATION_ERROR, or the page after
    // 30 s); the time only says no attempt lingered — generous, as a busy 2-core machine adds seconds to each.
    assert.ok(Date.now() - started < 40_000, 'stopped near the limit, twice');
    const log = (await object(r.files.log)).toString();
    assert.match(log, /before the slow page, attempt 2/);
    assert.doesNotMatch(log, /after the slow page/);
    // At its limit the job's context is closed first, whichever timer saw the limit (job/deadline.ts withDeadline):
    // no failure capture or blocker look waits on the page still loading (docs/scripts.md). Each used to wait out
    // its bound (3 s + 5 s an attempt) before the attempt ended.
    assert.doesNotMatch(log, /failure captured|the failed page could not be captured/);
    assert.ok(!r.artifacts?.some((x) => x.kind === 'failure'), 'no failure capture of a timed-out page');
    assert.equal(await redis.get(keys.jobStatus(job.jobId)), 'dead');
    const [entry] = await queue.dlqList(org);
    assert.equal(entry?.jobId, job.jobId);
    assert.match(entry!.reason, /^exhausted: 2 of 2 attempts failed; last EXECUTION_TIMEOUT/);
    await normalJobSucceeds(org);
  });

  it('retries a transient failure with backoff and succeeds on the next attempt', async () => {
    const org = testOrg('retry');
    await setSession(redis, org, 'user-1', session());
    const script = `export default async function run({ page, payload, helpers, context }) {
  if (context.attempt === 1) await page.goto('http://127.0.0.1:1/unreachable');
  await page.goto(payload.base + '/invoices');
  helpers.setResult({ attempt: context.attempt });
}`;
    const job = signedJob(org, script, { metadata: { base: portal.url } });
    await push(redis, org, job);
    await waitFor(async () => (await redis.get(keys.jobStatus(job.jobId))) === 'retrying' || results.has(job.jobId), { what: 'retrying' });
    const r = await waitFor(() => results.get(job.jobId), { timeoutMs: 30_000, what: 'result' });
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal(r.attempt, 2);
    assert.deepEqual(JSON.parse((await object(r.files.parsedData)).toString()), { attempt: 2 });
  });

  it('cancels a queued job (never runs) and a running one long before its page would have answered (its browser context closed)', async () => {
    const org = testOrg('cancel');
    await setSession(redis, org, 'user-1', session());
    await queue.setQuota(org, { maxConcurrent: 0 });
    const queued = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url } });
    await queue.enqueue(org, queued);
    assert.equal(await queue.cancel(org, queued.jobId), 'cancelled');
    const rq = await waitFor(() => results.get(queued.jobId), { what: 'cancel result' });
    assert.equal(rq.status, 'cancelled');
    assert.equal(rq.error?.code, 'CANCELLED');
    await queue.setQuota(org, { maxConcurrent: null });

    const slow = signedJob(org, `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/slow?ms=120000', { timeout: 180000 });
  helpers.log('after the slow page');
}`, { metadata: { base: portal.url }, timeoutMs: 180_000 });
    await queue.enqueue(org, slow);
    await waitFor(async () => (await redis.get(keys.jobStatus(slow.jobId))) === 'running', { what: 'slow job running' });
    const asked = Date.now();
    assert.equal(await queue.cancel(org, slow.jobId), 'cancelling');
    const r = await waitFor(() => results.get(slow.jobId), { timeoutMs: 90_000, what: 'result of the cancelled job' });
    // The page answers after 120 s; stopped well before (in about a second on an idle machine: not timed here,
    // a busy machine only makes it later).
    assert.ok(Date.now() - asked < 90_000, `stopped in ${Date.now() - asked} ms`);
    assert.equal(r.status, 'cancelled');
    assert.equal(r.error?.code, 'CANCELLED');
    assert.doesNotMatch((await object(r.files.log)).toString(), /after the slow page/);
    assert.equal(await redis.get(keys.jobStatus(slow.jobId)), 'cancelled');
    await normalJobSucceeds(org);
    assert.equal(await redis.get(keys.jobStatus(queued.jobId)), 'cancelled', 'the queued job never ran');
  });

  it('loses neither queued nor leased jobs when redis-server is killed and restarted, and carries on', async () => {
    const org = testOrg('restart');
    await setSession(redis, org, 'user-1', session());
    await queue.setQuota(org, { maxConcurrent: 1 });
    const slowScript = `export default async function run({ page, payload, helpers, context }) {
  await page.goto(payload.base + '/slow?ms=2500', { timeout: 60000 });
  helpers.setResult({ attempt: context.attempt });
}`;
    const leased = signedJob(org, slowScript, { metadata: { base: portal.url }, timeoutMs: 120_000 });
    const waiting = signedJob(org, slowScript, { metadata: { base: portal.url }, timeoutMs: 120_000 });
    await queue.enqueue(org, leased);
    await queue.enqueue(org, waiting);
    await waitFor(async () => (await redis.get(keys.jobStatus(leased.jobId))) === 'running', { what: 'first job running' });
    const redisServer = h.redisServer;
    await redisServer.kill();
    const restarted = await startEmbeddedRedis({ dir: redisServer.dir, port: redisServer.port });
    const removeDir = redisServer.stop;
    h.redisServer = { ...restarted, dir: redisServer.dir, stop: async (g?: number) => { await restarted.stop(g); await removeDir(g); } };
    // The stored result, in case it was published before the test's subscriber was back.
    const outcome = async (jobId: string) => results.get(jobId)
      ?? (await redis.get(keys.jobResult(jobId)).then((x) => (x ? ResultMessage.parse(JSON.parse(x)) : undefined)));
    const r1 = await waitFor(() => outcome(leased.jobId), { timeoutMs: 120_000, what: 'leased job result' });
    const r2 = await waitFor(() => outcome(waiting.jobId), { timeoutMs: 120_000, what: 'queued job result' });
    assert.equal(r1.status, 'done', JSON.stringify(r1.error));
    assert.equal(r2.status, 'done', JSON.stringify(r2.error));
    assert.equal(r1.attempt, 1, 'the leased job kept its lease: it ran once');
    assert.equal((await queue.stats()).lateResults, 0);
    await queue.setQuota(org, { maxConcurrent: null });
    await normalJobSucceeds(org);
  });

  it('reads the script from S3 when the message carries only scriptKey, and verifies it', async () => {
    const org = testOrg('s3script');
    await setSession(redis, org, 'user-1', session());
    const key = `scripts/demo/${org}/1.0.0.js`;
    await store.put('sri-scripts', key, NORMAL_SCRIPT, 'text/javascript');
    const job = signedJob(org, NORMAL_SCRIPT, { metadata: { base: portal.url }, scriptKey: key });
    delete job.scriptContent;
    const r = await run(org, job);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    const missing = signedJob(org, NORMAL_SCRIPT, { scriptKey: `scripts/demo/${org}/9.9.9.js` });
    delete missing.scriptContent;
    const r2 = await run(org, missing);
    assert.equal(r2.error?.code, 'SCRIPT_NOT_FOUND');
    await store.put('sri-scripts', `scripts/demo/${org}/2.0.0.js`, `${NORMAL_SCRIPT}// changed\n`);
    const changed = signedJob(org, NORMAL_SCRIPT, { scriptKey: `scripts/demo/${org}/2.0.0.js` });
    delete changed.scriptContent;
    assert.equal((await run(org, changed)).error?.message, 'Script integrity compromised');
  });

  it('runs up to WORKER_MAX_JOBS jobs at once and reports busy meanwhile', async () => {
    const org = testOrg('parallel');
    await setSession(redis, org, 'user-1', session());
    // Each job waits on the portal's /hold until the test releases it: two jobs overlap however long starting a
    // browser context takes (a loaded machine), and no page answers on a timer. Navigation and job timeouts are above
    // the worker's (PLAYWRIGHT_TIMEOUT 5 s, EXECUTION_TIMEOUT 20 s here).
    const held = `export default async function run({ page, payload }) { await page.goto(payload.base + '/hold', { timeout: 120000 }); }`;
    // One portal account (user-1 on demo) whose provider allows three runs at once: WORKER_MAX_JOBS is the limit here.
    const jobs = [1, 2, 3].map(() => signedJob(org, held, { metadata: { base: portal.url }, timeoutMs: 150_000, maxConcurrentPerAccount: 3 }));
    const holdsBefore = portal.requests.filter((x) => x.path === '/hold').length;
    const holds = () => portal.requests.filter((x) => x.path === '/hold').length - holdsBefore;
    for (const j of jobs) await push(redis, org, j);
    const statuses = () => Promise.all(jobs.map((j) => redis.get(keys.jobStatus(j.jobId))));
    await waitFor(async () => (await statuses()).filter((s) => s === 'running').length === 2, { what: 'two jobs running at once' });
    // Both are inside their page, held: the worker is full, and stays so while they are held.
    await waitFor(() => holds() === 2, { what: 'two jobs waiting on /hold' });
    assert.equal(worker.state(), 'busy');
    assert.equal((await statuses()).filter((s) => s === 'running').length, 2, 'never a third');
    assert.equal(holds(), 2, 'the third job has not reached its page');
    let seen: Array<string | null> = [];
    // Release what waits, again as the third job reaches its page, until all three are done.
    await waitFor(async () => { portal.releaseHolds(); return (seen = await statuses()).every((s) => s === 'done'); }, { timeoutMs: 180_000, what: 'all three done' })
      .catch((e: unknown) => {
        const outcomes = jobs.map((j) => { const r = results.get(j.jobId); return r ? `${r.status}@${r.attempt} ${r.error?.code ?? ''} ${r.error?.message ?? ''}` : 'no result'; });
        throw new Error(`${(e as Error).message}: statuses ${JSON.stringify(seen)}; results ${JSON.stringify(outcomes)}`, { cause: e });
      });
    assert.equal(holds(), 3, 'the third job ran once a place was free');
    await waitFor(() => worker.state() === 'ready', { what: 'ready again' });
  });

  it('relaunches Chromium when it dies and runs the next job', async () => {
    const org = testOrg('relaunch');
    await setSession(redis, org, 'user-1', session());
    // Our own Chromium: the direct children of this test process whose command is chromium.
    const mine = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === process.pid && /chrom/i.test(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
      } catch {
        return false;
      }
    }).map(Number);
    assert.ok(mine.length >= 1, 'found the worker\'s browser process');
    for (const pid of mine) process.kill(pid, 'SIGKILL');
    await normalJobSucceeds(org);
  });

  it('refuses to start, naming CHROMIUM_PATH, when Chromium cannot be launched', async () => {
    const bad = testWorkerConfig({ redisUrl: h.redisUrl, s3Endpoint: h.s3Endpoint, logDir: h.logDir, extra: { CHROMIUM_PATH: '/nonexistent/chromium' } });
    const logger = createLogger({ name: 'worker-bad', level: 'silent', stdout: false });
    await assert.rejects(startWorker(bad, { logger }), (e: unknown) => isSriError(e) && e.code === 'BROWSER_ERROR' && /CHROMIUM_PATH/.test(e.message));
    assert.equal(await redis.exists(keys.workerHeartbeat(bad.workerId)), 0);
  });

  // Last: it stops the shared worker.
  it('on stop, waits for running jobs up to the grace period, then releases them to their queue untouched', async () => {
    const org = testOrg('grace');
    await setSession(redis, org, 'user-1', session());
    const slow = signedJob(org, `export default async function run({ page, payload }) { await page.goto(payload.base + '/slow?ms=10000'); }`, { metadata: { base: portal.url } });
    await push(redis, org, slow);
    await waitFor(async () => (await redis.get(keys.jobStatus(slow.jobId))) === 'running', { what: 'slow job running' });
    const stopping = worker.stop({ graceMs: 300 });
    assert.equal(worker.state(), 'draining');
    await stopping;
    assert.equal(worker.state(), 'stopped');
    assert.equal(results.get(slow.jobId), undefined, 'no outcome published');
    assert.equal(await redis.get(keys.jobStatus(slow.jobId)), 'queued');
    assert.deepEqual(await redis.lrange(keys.orgReadyNormal(org), 0, -1), [JSON.stringify(slow)], 'back at the front, byte for byte');
    assert.equal(await redis.hexists(keys.queueAttempts, slow.jobId), 0, 'a release is not an attempt');
    assert.equal(await redis.zcard(keys.queueLeases), 0);
    assert.equal(await redis.exists(keys.workerHeartbeat(worker.workerId)), 0);
  });
});
