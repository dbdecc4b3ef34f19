/**
 * The worker end to end on real services: redis-server, s3rver, Chromium and a local test portal. Jobs are
 * hand-signed and pushed with a raw LPUSH — no control plane involved.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { BlobStore, createS3Client, parseS3Uri } from '../../src/shared/s3.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { ResultMessage, type JobMessage } from '../../src/shared/schemas.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import type { WorkerConfig } from '../../src/execution-plane/config.ts';
import { startTestRedis, startTestS3, tempDir, waitFor } from '../support/services.ts';
import { startTestPortal, type TestPortal } from './support/portal.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg, testWorkerConfig } from './support/jobs.ts';

describe('worker on real Redis, S3 and Chromium', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  let portal: TestPortal;
  let redis: Redis;
  let sub: Redis;
  let store: BlobStore;
  let worker: WorkerHandle;
  let config: WorkerConfig;
  const logs = tempDir('sri-worker-logs-');
  const results = new Map<string, ResultMessage>();

  before(async () => {
    [redisServer, s3, portal] = await Promise.all([startTestRedis(), startTestS3(), startTestPortal()]);
    redis = createRedis(redisServer.url);
    sub = createRedis(redisServer.url);
    sub.on('pmessage', (_p: string, _ch: string, m: string) => {
      const r = ResultMessage.parse(JSON.parse(m));
      results.set(r.jobId, r);
    });
    await sub.psubscribe(keys.orgDonePattern);
    store = new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
    config = testWorkerConfig({ redisUrl: redisServer.url, s3Endpoint: s3.endpoint, logDir: logs.path });
    const logger = createLogger({ name: 'worker', level: 'info', logDir: logs.path, stdout: false });
    worker = await startWorker(config, { logger, orgRefreshMs: 100 });
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    sub?.disconnect();
    redis?.disconnect();
    store?.client.destroy();
    await Promise.all([redisServer?.stop(), s3?.close(), portal?.close()]);
    logs.remove();
  });

  const session = () => ({
    cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }],
    credentials: { password: portal.password },
    connectedAt: Date.now(),
  });

  /** Pushes a job (message or raw text) and waits for its published result. */
  async function run(orgId: string, message: JobMessage): Promise<ResultMessage> {
    await push(redis, orgId, message);
    return waitFor(() => results.get(message.jobId), { timeoutMs: 30_000, what: `result of ${message.jobId}` });
  }

  async function object(uri: string | undefined): Promise<Buffer> {
    const loc = parseS3Uri(uri ?? '');
    assert.ok(loc, `an s3 uri: ${uri}`);
    const body = await store.get(loc.bucket, loc.key);
    assert.ok(body, `object ${uri} exists`);
    return body;
  }

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
    assert.equal(await redis.hlen(keys.workerActive(worker.workerId)), 0, 'the take is released');
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
    const dlqBefore = await redis.llen(keys.dlq);
    await push(redis, org, '{"jobId": "broken", this is not json');
    const invalid = { ...signedJob(org, NORMAL_SCRIPT), scriptHash: 'xyz' };
    const r = await run(org, invalid);
    assert.equal(r.status, 'failed');
    assert.equal(r.error?.code, 'INVALID_JOB');
    assert.match(r.error!.message, /scriptHash/);
    assert.equal(await redis.get(keys.jobStatus(invalid.jobId)), 'failed');
    const records = (await redis.lrange(keys.dlq, 0, await redis.llen(keys.dlq) - dlqBefore - 1))
      .map((x) => JSON.parse(x) as { reason: string; raw: string; orgId: string; at: string })
      .filter((x) => x.orgId === org);
    assert.equal(records.length, 2);
    const notJson = records.find((x) => x.raw.startsWith('{"jobId": "broken"'));
    assert.ok(notJson);
    assert.match(notJson.reason, /not valid JSON/);
    assert.ok(!Number.isNaN(Date.parse(notJson.at)));
    assert.ok(records.some((x) => /scriptHash/.test(x.reason) && JSON.parse(x.raw).jobId === invalid.jobId));
    assert.equal(await redis.get(keys.jobStatus('broken')), null);
    await normalJobSucceeds(org);
  });

  it('gives every job a fresh browser context: cookies of one job are not visible to the next', async () => {
    const org = testOrg('fresh');
    await setSession(redis, org, 'user-1', session());
    const setter = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/set-cookie?name=leak&value=from-job-one');
  helpers.setResult({ cookies: (await page.context().cookies()).map((c) => c.name) });
}`;
    const r1 = await run(org, signedJob(org, setter, { metadata: { base: portal.url } }));
    assert.equal(r1.status, 'done', JSON.stringify(r1.error));
    assert.deepEqual(JSON.parse((await object(r1.files.parsedData)).toString()).cookies.sort(), ['leak', 'sid']);
    const reader = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/cookies');
  helpers.setResult({ seen: await page.textContent('body'), names: (await page.context().cookies()).map((c) => c.name) });
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
  const cookies = await page.context().cookies();
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
    await waitFor(() => readFileSync(join(logs.path, 'worker-combined.log'), 'utf8').includes(r.jobId), { what: 'worker log line' });
    const workerLog = readFileSync(join(logs.path, 'worker-combined.log'), 'utf8');
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

  it('stops a job that outlives its timeoutMs with EXECUTION_TIMEOUT', async () => {
    const org = testOrg('timeout');
    await setSession(redis, org, 'user-1', session());
    const script = `export default async function run({ page, payload, helpers }) {
  helpers.log('before the slow page');
  await page.goto(payload.base + '/slow?ms=8000');
  helpers.log('after the slow page');
}`;
    const started = Date.now();
    const r = await run(org, signedJob(org, script, { metadata: { base: portal.url }, timeoutMs: 1000 }));
    assert.equal(r.status, 'failed');
    assert.equal(r.error?.code, 'EXECUTION_TIMEOUT');
    assert.ok(Date.now() - started < 6000, 'stopped near the limit');
    const log = (await object(r.files.log)).toString();
    assert.match(log, /before the slow page/);
    assert.doesNotMatch(log, /after the slow page/);
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
    const slow = `export default async function run({ page, payload }) { await page.goto(payload.base + '/slow?ms=1500'); }`;
    const jobs = [1, 2, 3].map(() => signedJob(org, slow, { metadata: { base: portal.url } }));
    for (const j of jobs) await push(redis, org, j);
    const statuses = () => Promise.all(jobs.map((j) => redis.get(keys.jobStatus(j.jobId))));
    await waitFor(async () => (await statuses()).filter((s) => s === 'running').length === 2, { what: 'two jobs running at once' });
    assert.equal(worker.state(), 'busy');
    assert.equal((await statuses()).filter((s) => s === 'running').length, 2, 'never a third');
    await waitFor(async () => (await statuses()).every((s) => s === 'done'), { timeoutMs: 20_000, what: 'all three done' });
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
    const bad = testWorkerConfig({ redisUrl: redisServer.url, s3Endpoint: s3.endpoint, logDir: logs.path, extra: { CHROMIUM_PATH: '/nonexistent/chromium' } });
    const logger = createLogger({ name: 'worker-bad', level: 'silent', stdout: false });
    await assert.rejects(startWorker(bad, { logger }), (e: unknown) => isSriError(e) && e.code === 'BROWSER_ERROR' && /CHROMIUM_PATH/.test(e.message));
    assert.equal(await redis.exists(keys.workerHeartbeat(bad.workerId)), 0);
  });

  // Last: it stops the shared worker.
  it('on stop, waits for running jobs up to the grace period, then fails them with WORKER_SHUTDOWN', async () => {
    const org = testOrg('grace');
    await setSession(redis, org, 'user-1', session());
    const slow = signedJob(org, `export default async function run({ page, payload }) { await page.goto(payload.base + '/slow?ms=10000'); }`, { metadata: { base: portal.url } });
    await push(redis, org, slow);
    await waitFor(async () => (await redis.get(keys.jobStatus(slow.jobId))) === 'running', { what: 'slow job running' });
    const stopping = worker.stop({ graceMs: 300 });
    assert.equal(worker.state(), 'draining');
    await stopping;
    assert.equal(worker.state(), 'stopped');
    const r = await waitFor(() => results.get(slow.jobId), { what: 'result of the aborted job' });
    assert.equal(r.status, 'failed');
    assert.equal(r.error?.code, 'WORKER_SHUTDOWN');
    assert.equal(await redis.hlen(keys.workerActive(worker.workerId)), 0);
    assert.equal(await redis.exists(keys.workerHeartbeat(worker.workerId)), 0);
  });
});
