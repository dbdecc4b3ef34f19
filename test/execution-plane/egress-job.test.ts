/**
 * The egress proxy as a job sees it, on a real worker (redis-server, s3rver, Chromium): every job's context goes
 * through it, what it refused is named in execution.log and in the result's `egress` field, and a job over
 * WORKER_EGRESS_MAX_BYTES fails at once, without a retry. Deny by default: a job reaches its allowedHosts — at most
 * its provider's hosts from the catalogue — else its provider's, else nothing (EGRESS_POLICY_MISSING). The worker
 * runs with REQUIRE_JOB_SIGNATURE=false, as `sri up`'s do for hand-pushed jobs: that is where a job's own list is
 * narrowed to its provider's (with the setting on, the control plane's signed list stands).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keys } from '../../src/shared/keys.ts';
import { resolveJobHosts } from '../../src/execution-plane/job/egress-hosts.ts';
import { publishProvider } from '../support/providers.ts';
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
    [h, target] = await Promise.all([startWorkerHarness({ WORKER_EGRESS_MAX_BYTES: String(BUDGET), REQUIRE_JOB_SIGNATURE: 'false' }), startEgressTarget()]);
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

  it('goes through the proxy without allowedHosts too, on its provider\'s hosts from the catalogue: loopback is reached, the metadata address is not', async () => {
    const org = testOrg('egress-open');
    await setSession(h.redis, org, 'user-1', h.session());
    const base = `http://127.0.0.1:${target.port}`;
    // The harness published `demo` with 127.0.0.1 and localhost (test/support/providers.ts).
    const r = await h.run(org, signedJob(org, PROBE_SCRIPT, { metadata: { base, other: `http://localhost:${target.port}/x` } }));
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(JSON.parse((await h.object(r.files.parsedData)).toString()).viaFetch, 'status 200');
    assert.ok(r.egress?.blocked.some((b) => b.host === '169.254.169.254' && b.reason === 'not-allowed'), JSON.stringify(r.egress));
    const log = (await h.object(r.files.log)).toString();
    assert.match(log, /allowed hosts: 127\.0\.0\.1, localhost \(provider demo's, from the catalogue\)/);
    assert.match(log, /blocked \d+ request\(s\) to hosts outside allowedHosts: .*169\.254\.169\.254/);
  });

  it('refuses every request of a job without allowedHosts whose provider is not in the catalogue, and fails it with EGRESS_POLICY_MISSING', async () => {
    const org = testOrg('egress-none');
    // A provider the control plane never published: no `sri:provider:unlisted`.
    await setSession(h.redis, org, 'user-1', h.session(), 'unlisted');
    await setSession(h.redis, org, 'user-1', h.session());
    assert.equal(await h.redis.exists(keys.provider('unlisted')), 0);
    const before = target.hosts.length;
    // A signed script that goes for a public-looking name and a loopback server, and swallows the refusals.
    const script = `export default async function run({ page, payload, helpers }) {
  const outcomes = [];
  for (const url of ['http://example.com/', payload.base + '/html']) {
    outcomes.push(await page.goto(url).then((r) => 'status ' + (r && r.status()), (e) => 'error'));
  }
  helpers.setResult({ outcomes });
}`;
    const r = await h.run(org, signedJob(org, script, { providerId: 'unlisted', providerName: 'unlisted', maxAttempts: 3, metadata: { base: `http://127.0.0.1:${target.port}` } }));
    assert.equal(r.status, 'failed', JSON.stringify(r));
    assert.equal(r.attempt, 1, 'not retried');
    assert.equal(r.error?.code, 'EGRESS_POLICY_MISSING');
    assert.match(r.error?.message ?? '', /names no allowedHosts and provider unlisted is not in the provider catalogue/);
    assert.match(r.error?.message ?? '', /Name allowedHosts in the job, or register provider unlisted/);
    assert.deepEqual(new Set(r.egress?.blocked.map((b) => `${b.host} ${b.reason}`)), new Set(['example.com not-allowed', '127.0.0.1 not-allowed']), JSON.stringify(r.egress));
    assert.equal(target.hosts.length, before, 'nothing reached the loopback server');
    const log = (await h.object(r.files.log)).toString();
    assert.match(log, /allowed hosts: none — the job names no allowedHosts and provider unlisted is not in the provider catalogue; every request is refused/);
    await h.normalJobSucceeds(org);
  });

  it('narrows a job\'s allowedHosts wider than its provider\'s to the provider\'s hosts', async () => {
    const org = testOrg('egress-narrow');
    const provider = `narrow-${org.slice(-8)}`;
    // The provider allows the target's port on 127.0.0.1 only; the job names all of 127.0.0.1 and localhost.
    await publishProvider(h.redis, { id: provider, name: provider, displayName: 'Narrow', allowedHosts: [`127.0.0.1:${target.port}`] });
    await setSession(h.redis, org, 'user-1', h.session(), provider);
    const script = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/html');
  const viaFetch = await page.evaluate((urls) => Promise.all(urls.map((u) => fetch(u).then((r) => 'status ' + r.status, () => 'error'))), payload.others);
  helpers.setResult({ viaFetch });
}`;
    const base = `http://127.0.0.1:${target.port}`;
    const others = [`http://localhost:${target.port}/x`, `${h.portal.url}/`];
    const before = target.hosts.length;
    const r = await h.run(org, signedJob(org, script, { providerId: provider, providerName: provider, allowedHosts: ['127.0.0.1', 'localhost'], metadata: { base, others } }));
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(JSON.parse((await h.object(r.files.parsedData)).toString()).viaFetch, ['error', 'error'], 'localhost and another port of 127.0.0.1 are refused');
    assert.ok(!target.hosts.slice(before).some((host) => host.startsWith('localhost')), 'localhost never reached the target');
    assert.deepEqual(new Set(r.egress?.blocked.map((b) => `${b.host} ${b.reason}`)), new Set(['localhost not-allowed', '127.0.0.1 not-allowed']), JSON.stringify(r.egress));
    const log = (await h.object(r.files.log)).toString();
    assert.match(log, new RegExp(`allowed hosts: 127\\.0\\.0\\.1, localhost \\(the job's\\), within provider ${provider}'s 127\\.0\\.0\\.1:${target.port}: a host must be in both`));
  });

  it('lets the signed list stand where REQUIRE_JOB_SIGNATURE is on, and takes the provider\'s where the job names none', async () => {
    const provider = 'narrow-signed';
    await publishProvider(h.redis, { id: provider, name: provider, displayName: 'Narrow', allowedHosts: ['portal.example:443'] });
    const job = { providerName: provider, allowedHosts: ['portal.example', 'other.example'] };
    assert.deepEqual(await resolveJobHosts(job, h.redis, true), { source: 'signed', allowedHosts: job.allowedHosts });
    assert.deepEqual(await resolveJobHosts(job, h.redis, false), { source: 'narrowed', allowedHosts: job.allowedHosts, provider: ['portal.example:443'] });
    assert.deepEqual(await resolveJobHosts({ providerName: provider }, h.redis, true), { source: 'provider', allowedHosts: ['portal.example:443'] });
    assert.deepEqual(await resolveJobHosts({ providerName: 'unlisted' }, h.redis, true), { source: 'missing' });
    // An entry the worker cannot read grants nothing.
    await h.redis.hset(keys.provider('broken'), 'allowedHosts', '["not a host/"]');
    assert.deepEqual(await resolveJobHosts({ providerName: 'broken' }, h.redis, false), { source: 'missing', problem: 'its allowedHosts field is not a list of host entries' });
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
