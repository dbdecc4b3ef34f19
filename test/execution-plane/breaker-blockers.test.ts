/**
 * Blockers as the circuit breaker's failures (docs/configuration.md "Live configuration", `breaker.blockerKinds`), on
 * a real worker (worker-harness: redis-server, s3rver, Chromium) and the demo portal's rate-limit page: without the
 * setting a job that met a rate-limit page and ended done counts as the portal's success; with
 * `providers.demo.breaker.blockerKinds = ["rate-limit"]` (written while the worker runs) two such jobs in a row open
 * the provider's breaker, and the next job of the provider waits, deferred, with no attempt spent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { keys } from '../../src/shared/keys.ts';
import type { LiveConfig } from '../../src/shared/live-config.ts';
import { readProviderHealth } from '../../src/shared/provider-gate/gate.ts';
import type { ProviderPacing } from '../../src/shared/provider-pacing.ts';
import { queueCatalogueEntry } from '../../src/shared/provider-catalogue.ts';
import { testDemoProvider } from '../support/providers.ts';
import { waitFor } from '../support/services.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { applyLiveConfig } from './support/live-config.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

const RATE_LIMITED = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/blockers/rate-limit');
  helpers.log('on the rate-limit page');
}`;

describe('blocker kinds counted by the circuit breaker', () => {
  let h: WorkerHarness;
  let portal: DemoPortal;
  let version = 0;
  // Long enough that the deferred job is still waiting when the test looks (the test never waits it out).
  const pacing: ProviderPacing = { breaker: { failureThreshold: 2, coolDownMs: 600_000 } };
  const org = testOrg('breaker-blockers');

  before(async () => {
    portal = await startDemoPortal({ port: 0 });
    h = await startWorkerHarness({ EXECUTION_TIMEOUT: '120000', PLAYWRIGHT_TIMEOUT: '60000' });
    const multi = h.redis.multi();
    queueCatalogueEntry(multi, { ...testDemoProvider(), pacing });
    await multi.exec();
    await setSession(h.redis, org, 'user-1', h.session());
  });
  after(async () => {
    await h?.stop();
    await portal?.close();
  });

  const apply = (config: LiveConfig) => applyLiveConfig(h.redis, h.worker.httpUrl!, ++version, config);
  const rateLimited = () => signedJob(org, RATE_LIMITED, { metadata: { base: portal.url }, maxAttempts: 1 });

  it('does not count a blocker the configuration does not name: the job is the portal\'s success', async () => {
    const r = await h.run(org, rateLimited(), 120_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal(r.blocker?.kind, 'rate-limit');
    const health = await readProviderHealth(h.redis, 'demo', pacing);
    assert.equal(health.breaker.state, 'closed');
    assert.equal(health.breaker.consecutiveFailures, 0);
  });

  it('with blockerKinds ["rate-limit"] set live, two rate-limited jobs in a row open the breaker and the next job waits, deferred', async () => {
    await apply({ global: {}, providers: { demo: { breaker: { blockerKinds: ['rate-limit'] } } } });
    for (let i = 0; i < 2; i++) {
      const r = await h.run(org, rateLimited(), 120_000);
      assert.equal(r.status, 'done', 'the job itself ended as it did');
      assert.equal(r.blocker?.kind, 'rate-limit');
    }
    const open = await readProviderHealth(h.redis, 'demo', pacing);
    assert.equal(open.breaker.state, 'open');
    assert.equal(open.breaker.consecutiveFailures, 2);
    const next = rateLimited();
    await push(h.redis, org, next);
    await waitFor(async () => (await h.redis.zscore(keys.queueDeferred, next.jobId)) !== null || (await h.redis.zcard(keys.queueDeferred)) > 0,
      { timeoutMs: 60_000, what: 'the next job deferred by the open breaker' });
    assert.equal(await h.redis.get(keys.jobStatus(next.jobId)), 'queued', 'waiting, not failed');
  });
});
