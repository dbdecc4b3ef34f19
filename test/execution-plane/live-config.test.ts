/**
 * The workers' live configuration (docs/configuration.md "Live configuration"), end to end on real services: a real
 * worker (worker-harness: redis-server, s3rver, the test portal, Chromium) and the real API on the same Redis,
 * written through PUT /api/operator/worker-config and `sri config set`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { keys } from '../../src/shared/keys.ts';
import { queueCatalogueEntry } from '../../src/shared/provider-catalogue.ts';
import { readProviderHealth } from '../../src/shared/provider-gate/gate.ts';
import type { ProviderPacing } from '../../src/shared/provider-pacing.ts';
import { createLogger } from '../../src/shared/logger.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { metricValue, scrape } from '../support/metrics.ts';
import { publishDemoProvider, seedDemoProvider, testDemoProvider } from '../support/providers.ts';
import { runSri } from '../support/cli.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';
import { openTestDatabase } from '../support/database.ts';

const OPERATOR_TOKEN = `op-${randomBytes(24).toString('hex')}`;
// Fails on the portal's 500 page (PORTAL_UNAVAILABLE: an infrastructure failure for the breaker), done on its good one.
// It waits for either page's content, then fails at once on the error page (a SCRIPT_ERROR on a 5xx page, as a wait
// for #ok timing out there would be, without waiting out that timeout at each of the case's four failures).
const GOTO_SCRIPT = `export default async function run({ page, payload }) {
  await page.goto(payload.url);
  await page.locator('#ok, h1').first().waitFor({ timeout: 30000 });
  if (await page.locator('#ok').count() === 0) throw new Error('no #ok: the portal answered its error page');
}`;
const HOLD_SCRIPT = `export default async function run({ page, payload }) { await page.goto(payload.base + '/hold', { timeout: 120000 }); }`;

describe('live worker configuration: written through the operator API, applied by a running worker', () => {
  let h: WorkerHarness;
  let db: Database;
  let api: ApiHandle;

  const call = async (method: string, body?: unknown, token = OPERATOR_TOKEN) => {
    const r = await fetch(`${api.url}/api/operator/worker-config`, {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() as any };
  };
  const metrics = async () => scrape(`${h.worker.httpUrl}/metrics`);
  const workerVersion = async () => metricValue(await metrics(), 'sri_worker_config_version');
  const cli = (args: string[]) => runSri(['config', ...args, '--api', api.url], { OPERATOR_TOKEN, PORT: '' });

  before(async () => {
    // WORKER_MAX_JOBS 3 is the ceiling; a heartbeat every 500 ms makes the registry's maxJobs quick to observe.
    h = await startWorkerHarness({ WORKER_MAX_JOBS: '3', WORKER_HEARTBEAT_INTERVAL_MS: '500' });
    db = await openTestDatabase();
    await migrate(db);
    await seedDemoProvider(db);
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: h.redisUrl, S3_ENDPOINT: h.config.s3Endpoint,
      PORT: '0', OPERATOR_TOKEN, LOG_LEVEL: 'silent',
    });
    api = await startApi(config, { db, blobStore: h.store, redis: h.redis, logger: createLogger({ name: 'api-test', level: 'silent' }) });
    // The API publishes its catalogue at start; the harness's demo entry (its portal's hosts) is put back.
    await publishDemoProvider(h.redis);
  });

  after(async () => {
    h?.portal.releaseHolds();
    await api?.close();
    await db?.close();
    await h?.stop();
  });

  it('starts at version 0 (the environment\'s values) and shows it in the worker\'s metrics', async () => {
    const r = await call('GET');
    assert.equal(r.status, 200);
    assert.equal(r.body.version, 0);
    assert.deepEqual(r.body.config, { global: {}, providers: {} });
    assert.equal(await workerVersion(), 0);
    assert.equal(metricValue(await metrics(), 'sri_worker_max_jobs'), 3);
    assert.equal((await call('GET', undefined, 'not-the-token')).body.error.code, 'OPERATOR_ONLY');
  });

  it('refuses a bad value at write time with VALIDATION_FAILED naming the field, and changes nothing', async () => {
    const bad: [unknown, string][] = [
      [{ global: { maxJobs: -1 } }, 'config.global.maxJobs'],
      [{ global: { maxJobs: 'lots' } }, 'config.global.maxJobs'],
      [{ global: { retry: { backoffBaseMs: 5000, backoffMaxMs: 1000 } } }, 'config.global.retry.backoffBaseMs'],
      [{ providers: { demo: { retry: { maxAttempts: 0 } } } }, 'config.providers.demo.retry.maxAttempts'],
      [{ global: { concurrency: 2 } }, 'config.global'],
      [{ providers: { 'Not A Name': {} } }, 'config.providers'],
      [{ providers: { demo: { breaker: { failureThreshold: 0 } } } }, 'config.providers.demo.breaker.failureThreshold'],
      [{ global: { breaker: { failureThreshold: 1.5 } } }, 'config.global.breaker.failureThreshold'],
      // Good values beside a bad one: the document is refused whole, none of it is applied.
      [{ global: { maxJobs: 1, breaker: { failureThreshold: 2 } }, providers: { demo: { breaker: { failureThreshold: 2000 } } } }, 'config.providers.demo.breaker.failureThreshold'],
    ];
    for (const [config, field] of bad) {
      const r = await call('PUT', { version: 0, config });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
      assert.ok(r.body.error.message.includes(field), `${r.body.error.message} names ${field}`);
      assert.ok(r.body.error.details.some((d: { field: string }) => d.field.startsWith(field)), JSON.stringify(r.body.error.details));
    }
    assert.equal(await h.redis.exists(keys.workerConfig), 0, 'nothing written');
    assert.equal(await h.redis.llen(keys.workerConfigHistory), 0, 'nothing audited');
    assert.equal((await call('GET')).body.version, 0);
    assert.equal(await workerVersion(), 0, 'the worker still runs version 0');
    assert.equal(metricValue(await metrics(), 'sri_worker_max_jobs'), 3, 'the good maxJobs beside a bad value was not applied');
  });

  it('lowers maxJobs on a running worker within seconds: it runs one job at a time; raised with sri config set, it takes more at once', async () => {
    const put = await call('PUT', { version: 0, config: { global: { maxJobs: 1 } } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.version, 1);
    assert.equal(put.body.history[0].version, 1);
    assert.deepEqual(put.body.history[0].changed, ['global.maxJobs']);
    assert.match(put.body.history[0].by, /^operator:[0-9a-f]{12}$/);
    await waitFor(async () => (await workerVersion()) === 1, { timeoutMs: 15_000, what: 'the worker applies version 1' });
    assert.equal(metricValue(await metrics(), 'sri_worker_max_jobs'), 1);

    const org = testOrg('live');
    await setSession(h.redis, org, 'user-1', h.session());
    const jobs = [1, 2, 3].map(() => signedJob(org, HOLD_SCRIPT, { metadata: { base: h.portal.url }, timeoutMs: 150_000, maxConcurrentPerAccount: 3 }));
    const running = async () => (await Promise.all(jobs.map((j) => h.redis.get(keys.jobStatus(j.jobId))))).filter((s) => s === 'running').length;
    let most = 0;
    const monitor = setInterval(() => { void running().then((n) => { most = Math.max(most, n); }, () => {}); }, 50);
    try {
      for (const j of jobs) await push(h.redis, org, j);
      const holds = () => h.portal.requests.filter((r) => r.path === '/hold').length;
      await waitFor(() => holds() === 1, { timeoutMs: 60_000, what: 'the first job waits in its page' });
      // Window for a second take: the worker's registry entry says maxJobs 1 in three heartbeats after that (its poll
      // loop, every 50 ms here, had dozens of chances to take another job meanwhile).
      const info = keys.workerInfo(h.config.workerId);
      const beats: string[] = [];
      await waitFor(async () => {
        const i = await h.redis.hgetall(info);
        if (i['maxJobs'] === '1' && i['jobsInFlight'] === '1' && i['lastHeartbeat'] !== beats.at(-1)) beats.push(i['lastHeartbeat'] ?? String(beats.length));
        return beats.length >= 3;
      }, { timeoutMs: 30_000, what: 'three heartbeats with one job in flight' });
      assert.equal(holds(), 1, 'one job at a time');
      assert.equal(await running(), 1);

      // Raised through the CLI: the two waiting jobs start together while the first one still waits.
      const set = await cli(['set', 'global.maxJobs=3']);
      assert.equal(set.code, 0, set.stderr);
      assert.match(set.stdout, /version 2/);
      await waitFor(() => holds() === 3, { timeoutMs: 60_000, what: 'the other two jobs start at once' });
      assert.equal(await running(), 3);
    } finally {
      clearInterval(monitor);
    }
    assert.ok(most >= 3, `three ran at once after the raise (most seen ${most})`);
    h.portal.releaseHolds();
    const results = await Promise.all(jobs.map((j) => waitFor(async () => {
      const s = await h.redis.get(keys.jobStatus(j.jobId));
      return s === 'done' || s === 'failed' || s === 'dead' ? s : undefined;
    }, { timeoutMs: 60_000, what: `job ${j.jobId} finished` })));
    assert.deepEqual(results, ['done', 'done', 'done']);
    const got = await cli(['get', '--json']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(JSON.parse(got.stdout).config.global.maxJobs, 3);
  });

  it('refuses a stale version with 409 WORKER_CONFIG_CONFLICT and writes nothing', async () => {
    const before = await h.redis.get(keys.workerConfig);
    const r = await call('PUT', { version: 1, config: { global: { maxJobs: 2 } } });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'WORKER_CONFIG_CONFLICT');
    assert.equal(r.body.error.details.currentVersion, 2);
    assert.equal(await h.redis.get(keys.workerConfig), before, 'the document is unchanged');
    assert.equal(await workerVersion(), 2);
  });

  it('applies its provider\'s retry policy to a job that fails after the change: one attempt, then dead', async () => {
    const put = await call('PUT', { version: 2, config: { global: { maxJobs: 3 }, providers: { demo: { retry: { maxAttempts: 1 } } } } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await waitFor(async () => (await workerVersion()) === 3, { timeoutMs: 15_000, what: 'the worker applies version 3' });
    const org = testOrg('retry');
    await setSession(h.redis, org, 'user-1', h.session());
    // EXECUTION_TIMEOUT is retryable: with the environment's WORKER_MAX_ATTEMPTS (3) this job would be retried.
    const job = signedJob(org, HOLD_SCRIPT, { metadata: { base: h.portal.url }, timeoutMs: 2000 });
    const r: ResultMessage = await h.run(org, job, 60_000);
    assert.equal(r.error?.code, 'EXECUTION_TIMEOUT');
    assert.equal(r.status, 'dead', 'no attempt left');
    assert.equal(r.attempt, 1);
  });

  it('ignores a document written by hand that does not validate: the worker keeps its last good configuration and counts it', async () => {
    const rejectedBefore = metricValue(await metrics(), 'sri_worker_config_rejected_total') ?? 0;
    await h.redis.set(keys.workerConfig, JSON.stringify({ version: 9, config: { global: { maxJobs: 'many' } }, updatedAt: 'now', updatedBy: 'hand' }));
    await h.redis.publish(keys.workerConfigChanged, JSON.stringify({ version: 9 }));
    await waitFor(async () => (metricValue(await metrics(), 'sri_worker_config_rejected_total') ?? 0) > rejectedBefore, { timeoutMs: 15_000, what: 'the worker refuses it' });
    assert.equal(await workerVersion(), 3, 'still version 3');
    assert.equal(metricValue(await metrics(), 'sri_worker_max_jobs'), 3);
    const org = testOrg('after-bad');
    await setSession(h.redis, org, 'user-1', h.session());
    await h.normalJobSucceeds(org);
    // The API says why, and a PUT with the stored version replaces it.
    const got = await call('GET');
    assert.equal(got.body.version, 9);
    assert.match(got.body.problem, /config\.global\.maxJobs/);
    assert.equal((await call('PUT', { version: 9, config: { global: { maxJobs: 2 } } })).status, 200);
    await waitFor(async () => (await workerVersion()) === 10, { timeoutMs: 15_000, what: 'the worker applies version 10' });
  });

  it('converges without the announcement: a document changed with no message is read at the next poll', async () => {
    const doc = { version: 11, config: { global: { maxJobs: 1 }, providers: {} }, updatedAt: new Date().toISOString(), updatedBy: 'test' };
    await h.redis.set(keys.workerConfig, JSON.stringify(doc));
    await waitFor(async () => (await workerVersion()) === 11, { timeoutMs: 20_000, what: 'the worker polls version 11' });
    assert.equal(metricValue(await metrics(), 'sri_worker_max_jobs'), 1);
  });

  it('opens a provider\'s breaker at the live threshold set with sri config set: two failures open it where the catalogue\'s five would not', async () => {
    let down = true;
    const flaky = createServer((_req, res) => {
      res.writeHead(down ? 500 : 200, { 'content-type': 'text/html' });
      res.end(down ? '<h1>Service unavailable</h1>' : '<p id="ok">portal up</p>');
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    const flakyUrl = `http://127.0.0.1:${(flaky.address() as AddressInfo).port}/`;
    // The catalogue's breaker: five consecutive infrastructure failures, a long cool-down (nothing half-opens here).
    const pacing: ProviderPacing = { breaker: { failureThreshold: 5, coolDownMs: 600_000 } };
    const multi = h.redis.multi();
    queueCatalogueEntry(multi, { ...testDemoProvider(), pacing });
    await multi.exec();
    const org = testOrg('breaker');
    await setSession(h.redis, org, 'user-1', h.session());
    const job = () => signedJob(org, GOTO_SCRIPT, { metadata: { url: flakyUrl }, maxAttempts: 1 });
    const fails = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await h.run(org, job(), 60_000);
        assert.equal(r.error?.code, 'PORTAL_UNAVAILABLE', JSON.stringify(r.error));
      }
    };
    try {
      // The catalogue's threshold: two failures leave the breaker closed; a success resets the count.
      await fails(2);
      // The worker tells the breaker after it publishes the result: wait for the count, not for the result.
      const before = await waitFor(async () => { const b = (await readProviderHealth(h.redis, 'demo', pacing)).breaker; return b.consecutiveFailures === 2 ? b : undefined; },
        { timeoutMs: 15_000, what: 'two failures counted' });
      assert.equal(before.state, 'closed', 'two failures stay under the catalogue\'s five');
      down = false;
      assert.equal((await h.run(org, job(), 60_000)).status, 'done');
      await waitFor(async () => (await readProviderHealth(h.redis, 'demo', pacing)).breaker.consecutiveFailures === 0, { timeoutMs: 15_000, what: 'the success resets the count' });

      // Lowered to two through the CLI (PUT /api/operator/worker-config): the running worker picks it up within seconds.
      const set = await cli(['set', 'providers.demo.breaker.failureThreshold=2']);
      assert.equal(set.code, 0, set.stderr);
      const version = (await call('GET')).body.version as number;
      assert.equal((await call('GET')).body.config.providers.demo.breaker.failureThreshold, 2);
      await waitFor(async () => (await workerVersion()) === version, { timeoutMs: 15_000, what: `the worker applies version ${version}` });

      down = true;
      await fails(2);
      const open = await waitFor(async () => { const b = (await readProviderHealth(h.redis, 'demo', pacing)).breaker; return b.consecutiveFailures === 2 ? b : undefined; },
        { timeoutMs: 15_000, what: 'two failures counted' });
      assert.equal(open.state, 'open', 'two failures opened it');
      assert.ok(metricValue(await metrics(), 'sri_provider_breaker_transitions_total', { provider: 'demo', to: 'open' })! >= 1);

      // The breaker acts: a new job of the provider is held (deferred, still queued), not run, though the portal is up.
      down = false;
      const held = job();
      await push(h.redis, org, held);
      const deferred = await waitFor(async () => Object.values(await h.redis.hgetall(keys.queueDeferredJobs))
        .map((v) => JSON.parse(v) as { j: string; w: string }).find((d) => d.j === held.jobId), { timeoutMs: 30_000, what: 'the job held by the open breaker' });
      assert.match(deferred.w, /breaker/);
      assert.equal(await h.redis.get(keys.jobStatus(held.jobId)), 'queued');
      assert.equal(h.services.results.get(held.jobId), undefined, 'it did not run');
    } finally {
      const reset = h.redis.multi();
      queueCatalogueEntry(reset, testDemoProvider());
      await reset.exec();
      flaky.closeAllConnections();
      await new Promise<void>((r) => flaky.close(() => r()));
    }
  });
});
