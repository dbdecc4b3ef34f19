/**
 * A page that crashes mid-job and a script that fails, on a real worker (redis-server, s3rver, Chromium):
 * - the renderer of the job's page dies (a navigation to chrome://crash kills it, as an out-of-memory kill would):
 *   the job fails at once with the retryable BROWSER_CRASHED, and the worker's next job runs in a fresh context;
 * - a script that throws: the result lists the page as it was at that moment — failure-screenshot.png and
 *   failure-page.html, with the job's secrets (here a session cookie the page printed) redacted in the HTML;
 * - WORKER_BROWSERS=2: the two job slots run in two browsers; killing one browser's process fails only the job in
 *   it (BROWSER_CRASHED, retryable), the other job finishes, and the worker goes on serving.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { keys } from '../../src/shared/keys.ts';
import { waitFor } from '../support/services.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

describe('browser crashes and failure captures', () => {
  let h: WorkerHarness;
  before(async () => { h = await startWorkerHarness(); });
  after(async () => { await h?.stop(); });

  it('fails a job whose page crashes with the retryable BROWSER_CRASHED, and runs the next job in a fresh context', async () => {
    const org = testOrg('crash');
    await setSession(h.redis, org, 'user-1', h.session());
    const crashing = signedJob(org, `export default async function run({ page, payload }) {
  await page.goto(payload.base + '/invoices');
  await page.goto('chrome://crash').catch(() => {});
  // Never answers from a crashed page: the job must end on the crash, not on its deadline.
  await page.waitForSelector('#never-there', { timeout: 60000 });
}
`, { metadata: { base: h.portal.url }, maxAttempts: 1, timeoutMs: 60_000 });
    const r = await h.run(org, crashing, 45_000);
    assert.equal(r.status, 'dead', JSON.stringify(r));
    assert.equal(r.error?.code, 'BROWSER_CRASHED', JSON.stringify(r.error));
    const log = (await h.object(r.files.log)).toString('utf8');
    assert.match(log, /the page crashed/);
    await h.normalJobSucceeds(org);
  });

  it('keeps a screenshot and the redacted HTML of the page at the moment a script fails, listed in the result', async () => {
    const org = testOrg('capture');
    const session = h.session();
    await setSession(h.redis, org, 'user-1', session);
    const failing = signedJob(org, `export default async function run({ page, payload }) {
  await page.goto(payload.base + '/invoices');
  await page.evaluate(() => { const p = document.createElement('p'); p.id = 'printed'; p.textContent = 'cookie: ' + document.cookie; document.body.append(p); });
  throw new Error('the flow found no invoice total');
}
`, { metadata: { base: h.portal.url }, maxAttempts: 1 });
    const r = await h.run(org, failing);
    assert.equal(r.status, 'failed', JSON.stringify(r.error));
    assert.equal(r.error?.code, 'SCRIPT_ERROR');
    const failure = (r.artifacts ?? []).filter((a) => a.kind === 'failure');
    assert.deepEqual(failure.map((a) => a.name).sort(), ['failure-page.html', 'failure-screenshot.png']);
    for (const a of failure) assert.ok(a.uri.includes(`/${r.jobId}/`), `${a.uri} is under the job's results prefix`);
    const png = await h.object(failure.find((a) => a.name === 'failure-screenshot.png')!.uri);
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    const html = (await h.object(failure.find((a) => a.name === 'failure-page.html')!.uri)).toString('utf8');
    assert.match(html, /id="invoices"/, 'the page the script was on');
    assert.match(html, /id="printed"/, 'as it was when the script failed');
    const sid = session.cookies[0]!.value;
    assert.ok(!html.includes(sid), 'the session cookie the page printed is redacted');
  });
});

/** Chromium main processes this test process started (the worker runs in it): their parent is us. */
function ourBrowserPids(): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return ppid === process.pid && /chrom/i.test(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
    } catch {
      return false;
    }
  }).map(Number);
}

describe('a worker with WORKER_BROWSERS=2', () => {
  let h: WorkerHarness;
  before(async () => { h = await startWorkerHarness({ WORKER_BROWSERS: '2', WORKER_MAX_JOBS: '2' }); });
  after(async () => { await h?.stop(); });

  // The two jobs arrive together, while the warm contexts may still be opening: the pool counts a context from the
  // moment it is asked and prefers the browser with fewer jobs, so the two jobs run in two browsers. (Before, both
  // could land in one browser — seen: the one opening for the second job went where the first job's warm context was —
  // and the kill below then failed both jobs or neither, depending on which process it hit.)
  it('fails only the job of the browser whose process was killed (BROWSER_CRASHED); the other job and the worker go on', async () => {
    const org = testOrg('two-browsers');
    await setSession(h.redis, org, 'user-1', h.session());
    await waitFor(() => ourBrowserPids().length === 2, { timeoutMs: 60_000, what: 'two browsers launched' });
    // Long enough that both jobs run at once on a loaded machine; the job's own limits are far above it.
    const slow = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/slow?ms=15000', { timeout: 120000 });
  helpers.setResult({ finished: true });
}`;
    const jobs = [1, 2].map(() => signedJob(org, slow, { metadata: { base: h.portal.url }, maxAttempts: 1, timeoutMs: 150_000, maxConcurrentPerAccount: 2 }));
    const slowBefore = h.portal.requests.filter((r) => r.path === '/slow').length;
    for (const j of jobs) await push(h.redis, org, j);
    const statuses = () => Promise.all(jobs.map((j) => h.redis.get(keys.jobStatus(j.jobId))));
    await waitFor(async () => (await statuses()).every((s) => s === 'running'), { timeoutMs: 60_000, what: 'both jobs running' });
    // Both scripts are in their browsers (a job leased but still preparing would just take the surviving browser).
    await waitFor(() => h.portal.requests.filter((r) => r.path === '/slow').length >= slowBefore + 2, { timeoutMs: 60_000, what: 'both pages loading' });
    const [victim] = ourBrowserPids();
    assert.ok(victim, 'a browser process to kill');
    process.kill(victim, 'SIGKILL');
    const results = await Promise.all(jobs.map((j) => waitFor(() => h.services.results.get(j.jobId), { timeoutMs: 120_000, what: `result of ${j.jobId}` })));
    const summary = JSON.stringify(results.map((r) => ({ status: r.status, error: r.error })));
    const crashed = results.filter((r) => r.error?.code === 'BROWSER_CRASHED');
    const done = results.filter((r) => r.status === 'done');
    assert.equal(crashed.length, 1, `one job failed with BROWSER_CRASHED: ${summary}`);
    assert.equal(crashed[0]!.status, 'dead', 'retryable, out of attempts here (maxAttempts 1)');
    assert.equal(done.length, 1, `the other browser's job finished: ${summary}`);
    await h.normalJobSucceeds(org);
  });
});
