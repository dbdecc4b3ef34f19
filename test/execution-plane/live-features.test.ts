/**
 * The live configuration's feature flags (docs/configuration.md "Live configuration"), on a real worker (worker-harness:
 * redis-server, s3rver, the test portal, Chromium): switched off for the demo provider, a failing job that met a
 * blocker page gets no automatic blocker, no failure capture and no recording though it asked for one; switched on
 * again (the next version of the document, no restart), the same job gets all three. The document is written as the
 * API writes it (one key, then the announcement); the API's write path and its validation are in live-config.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import type { LiveConfig } from '../../src/shared/live-config.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { setSession, signedJob, testOrg } from './support/jobs.ts';
import { applyLiveConfig } from './support/live-config.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

// A job that lands on a rate-limit page and then fails: what the flags govern all apply to it.
const FAILING = `export default async function run({ page, payload }) {
  await page.goto(payload.base + '/blockers/rate-limit');
  throw new Error('no invoices on this page');
}`;

describe('live feature flags on a running worker', () => {
  let h: WorkerHarness;
  // The demo portal serves the blocker pages (/blockers/*); the demo provider's hosts allow it.
  let portal: DemoPortal;
  let version = 0;

  before(async () => {
    portal = await startDemoPortal({ port: 0 });
    h = await startWorkerHarness({ EXECUTION_TIMEOUT: '120000', PLAYWRIGHT_TIMEOUT: '60000' });
  });
  after(async () => {
    await h?.stop();
    await portal?.close();
  });

  const apply = (config: LiveConfig) => applyLiveConfig(h.redis, h.worker.httpUrl!, ++version, config);
  const kinds = (r: ResultMessage) => (r.artifacts ?? []).map((a) => a.kind).sort();

  it('with blockerWatch, failureCapture and recordings off for the provider: no blocker, no capture, no recording, and the log says why', async () => {
    await apply({ global: {}, providers: { demo: { features: { blockerWatch: false, failureCapture: false, recordings: false } } } });
    const org = testOrg('flags-off');
    await setSession(h.redis, org, 'user-1', h.session());
    const r = await h.run(org, signedJob(org, FAILING, { metadata: { base: portal.url }, maxAttempts: 1, record: 'onFailure' }), 120_000);
    assert.equal(r.status, 'failed', JSON.stringify(r.error));
    assert.equal(r.error?.code, 'SCRIPT_ERROR');
    assert.equal(r.blocker, undefined, 'no blocker: nothing classified the page');
    assert.deepEqual(kinds(r).filter((k) => k === 'failure' || k === 'trace' || k === 'video'), [], JSON.stringify(r.artifacts));
    const log = (await h.object(r.files.log)).toString('utf8');
    assert.match(log, /blocker detection after navigations is off \(live configuration features\.blockerWatch\)/);
    assert.match(log, /recordings are switched off by the live configuration \(features\.recordings\)/);
  });

  it('switched on again without a restart (a global off, the provider on): the same job is classified, captured and recorded', async () => {
    await apply({ global: { features: { recordings: false } }, providers: { demo: { features: { recordings: true } } } });
    const org = testOrg('flags-on');
    await setSession(h.redis, org, 'user-1', h.session());
    const r = await h.run(org, signedJob(org, FAILING, { metadata: { base: portal.url }, maxAttempts: 1, record: 'onFailure' }), 120_000);
    assert.equal(r.status, 'failed', JSON.stringify(r.error));
    assert.equal(r.blocker?.kind, 'rate-limit', JSON.stringify(r.blocker));
    const k = kinds(r);
    assert.ok(k.includes('failure'), `failure capture listed: ${k.join(', ')}`);
    assert.ok(k.includes('trace'), `trace listed: ${k.join(', ')}`);
  });
});
