/**
 * The egress proxy as a job sees it, on a real worker (redis-server, s3rver, Chromium): every job's context goes
 * through it, what it refused is named in execution.log and in the result's `egress` field, and a job over
 * WORKER_EGRESS_MAX_BYTES fails at once, without a retry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setSession, signedJob, testOrg } from './support/jobs.ts';
import { startEgressTarget, type EgressTarget } from './support/egress.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

const BUDGET = 1024 * 1024;

const PROBE_SCRIPT = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/html');
  const viaFetch = await page.evaluate((u) => fetch(u).then((r) => 'status ' + r.status, () => 'error'), payload.other);
  const meta = await page.goto(payload.base + '/redirect?to=' + encodeURIComponent('http://169.254.169.254/latest/meta-data/'))
    .then((r) => 'status ' + (r && r.status()), () => 'error');
  helpers.setResult({ viaFetch, meta });
}`;

describe('egress of a job on a real worker', () => {
  let h: WorkerHarness;
  let target: EgressTarget;

  before(async () => {
    [h, target] = await Promise.all([startWorkerHarness({ WORKER_EGRESS_MAX_BYTES: String(BUDGET) }), startEgressTarget()]);
  });
  after(async () => {
    await Promise.all([h?.stop(), target?.close()]);
  });

  it('names what it refused in execution.log and in the result, with allowedHosts', async () => {
    const org = testOrg('egress-named');
    await setSession(h.redis, org, 'user-1', h.session());
    const base = `http://127.0.0.1:${target.port}`;
    const r = await h.run(org, signedJob(org, PROBE_SCRIPT, { metadata: { base, other: `http://localhost:${target.port}/x` }, allowedHosts: ['127.0.0.1'] }));
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.ok(!target.hosts.some((host) => host.startsWith('localhost') || host.startsWith('169.254')));
    const blocked = new Map(r.egress?.blocked.map((b) => [`${b.host} ${b.reason}`, b.count]));
    assert.ok(blocked.get('localhost not-allowed'), JSON.stringify(r.egress));
    assert.ok(blocked.get('169.254.169.254 not-allowed'), JSON.stringify(r.egress));
    assert.equal(r.egress?.blockedTotal, [...blocked.values()].reduce((a, b) => a + b, 0));
    assert.ok((r.egress?.bytes ?? 0) > 0);
    assert.equal(r.egress?.limitExceeded, undefined);
    const log = (await h.object(r.files.log)).toString();
    assert.match(log, /blocked \d+ request\(s\) to hosts outside allowedHosts: .*localhost \(1\)/);
  });

  it('goes through the proxy without allowedHosts too: loopback is reached, the metadata address is not', async () => {
    const org = testOrg('egress-open');
    await setSession(h.redis, org, 'user-1', h.session());
    const base = `http://127.0.0.1:${target.port}`;
    const r = await h.run(org, signedJob(org, PROBE_SCRIPT, { metadata: { base, other: `http://localhost:${target.port}/x` } }));
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(JSON.parse((await h.object(r.files.parsedData)).toString()).viaFetch, 'status 200');
    assert.ok(r.egress?.blocked.some((b) => b.host === '169.254.169.254' && b.reason === 'link-local'), JSON.stringify(r.egress));
    const log = (await h.object(r.files.log)).toString();
    assert.match(log, /blocked \d+ connection\(s\) to addresses the job may not reach: 169\.254\.169\.254 → link-local/);
  });

  it('fails a job over WORKER_EGRESS_MAX_BYTES at once, not retried, even when the script swallows the cut', async () => {
    const org = testOrg('egress-budget');
    await setSession(h.redis, org, 'user-1', h.session());
    const script = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/html');
  const got = await page.evaluate((u) => fetch(u).then((r) => r.arrayBuffer()).then((b) => b.byteLength, (e) => 'error ' + e.message), payload.base + '/big?mb=20');
  helpers.log('download: ' + got);
}`;
    const started = Date.now();
    const r = await h.run(org, signedJob(org, script, { metadata: { base: `http://127.0.0.1:${target.port}` }, allowedHosts: ['127.0.0.1'], maxAttempts: 3 }));
    assert.equal(r.status, 'failed');
    assert.equal(r.attempt, 1);
    assert.equal(r.error?.code, 'SCRIPT_RESOURCE_LIMIT');
    assert.match(r.error?.message ?? '', /egress-bytes.*WORKER_EGRESS_MAX_BYTES \(1048576 bytes\)/);
    assert.equal(r.egress?.limitExceeded, 'egress-bytes');
    assert.ok((r.egress?.bytes ?? 0) > BUDGET && (r.egress?.bytes ?? 0) < 4 * BUDGET, String(r.egress?.bytes));
    assert.ok(Date.now() - started < 20_000, 'failed fast');
    const log = (await h.object(r.files.log)).toString();
    assert.match(log, /egress budget spent/);
    await h.normalJobSucceeds(org);
  });
});
