/**
 * A page that crashes mid-job and a script that fails, on a real worker (redis-server, s3rver, Chromium):
 * - the renderer of the job's page dies (a navigation to chrome://crash kills it, as an out-of-memory kill would):
 *   the job fails at once with the retryable BROWSER_CRASHED, and the worker's next job runs in a fresh context;
 * - a script that throws: the result lists the page as it was at that moment — failure-screenshot.png and
 *   failure-page.html, with the job's secrets (here a session cookie the page printed) redacted in the HTML.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setSession, signedJob, testOrg } from './support/jobs.ts';
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
