/**
 * Blocker classification on a real worker (docs/scripts.md "Blockers"): jobs navigate to each kind of the demo
 * portal's blocker pages, and the published result names the blocker (kind, URL without query, short evidence), the
 * job's log says it, the worker's metrics count it by provider and kind. A CAPTCHA goes the existing hand-off path
 * (no solver configured: nobody answers within WORKER_HANDOFF_MAX_MS, HANDOFF_TIMEOUT); a page reached by a click
 * is classified too; a job that meets no blocker has none. An attempt that met one and is retried publishes its
 * `retrying` result with the blocker (the control plane's job.blocked for it).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { keys } from '../../src/shared/keys.ts';
import { ResultMessage, TERMINAL_STATUSES, type BlockerKind, type JobMessage } from '../../src/shared/schemas.ts';
import { waitFor } from '../support/services.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

const GOTO = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.url + '?token=not-in-the-result');
  helpers.log('after the navigation');
}`;

const CLICK = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/blockers');
  await page.click('#denied');
  await page.waitForURL('**/blockers/denied');
  helpers.log('landed');
}`;

// Attempt 1 meets the rate-limit page, then a navigation the egress policy refuses (NAVIGATION_ERROR, retried);
// attempt 2 reaches a clean page and finishes.
const RETRIED = `export default async function run({ page, payload, helpers, context }) {
  if (context.attempt === 1) {
    await page.goto(payload.base + '/blockers/rate-limit');
    await page.goto('http://not-allowed.invalid/');
  }
  await page.goto(payload.base + '/api/health');
  helpers.log('attempt ' + context.attempt + ' landed');
}`;

describe('blocker classification on a real worker', () => {
  let h: WorkerHarness;
  let portal: DemoPortal;

  before(async () => {
    portal = await startDemoPortal({ port: 0 });
    // Generous page timeouts: on a loaded machine a navigation that times out is retried, and counted again.
    h = await startWorkerHarness({ WORKER_HANDOFF_MAX_MS: '1000', EXECUTION_TIMEOUT: '120000', PLAYWRIGHT_TIMEOUT: '60000' });
  });
  after(async () => {
    await h?.stop();
    await portal?.close();
  });

  /** Pushes the job and waits for its final result (a hand-off's waiting_for_user announcement is not one). */
  async function finalResult(org: string, job: JobMessage): Promise<ResultMessage> {
    await push(h.redis, org, job);
    return waitFor(async () => {
      const raw = await h.redis.get(keys.jobResult(job.jobId));
      const m = raw ? ResultMessage.parse(JSON.parse(raw)) : undefined;
      return m && (TERMINAL_STATUSES as readonly string[]).includes(m.status) ? m : undefined;
    }, { timeoutMs: 120_000, what: `the final result of ${job.jobId}` });
  }

  const CASES: ReadonlyArray<readonly [string, BlockerKind, RegExp, string]> = [
    ['login-wall', 'login-wall', /^HTTP status 401$/, 'done'],
    ['recaptcha', 'captcha', /^recaptcha widget/, 'failed'],
    ['hcaptcha', 'captcha', /^hcaptcha widget/, 'failed'],
    ['turnstile', 'captcha', /^turnstile widget/, 'failed'],
    ['image-captcha', 'captcha', /^image widget/, 'failed'],
    ['rate-limit', 'rate-limit', /^HTTP status 429$/, 'done'],
    ['denied', 'access-denied', /Access denied.*403/, 'done'],
    ['maintenance', 'maintenance', /maintenance.*503/i, 'done'],
  ];

  for (const [page, kind, evidence, status] of CASES) {
    it(`names /blockers/${page} a ${kind} in the result and the log`, async () => {
      const org = testOrg(`blk-${page}`);
      await setSession(h.redis, org, 'user-1', h.session());
      const r = await finalResult(org, signedJob(org, GOTO, { metadata: { url: `${portal.url}/blockers/${page}` } }));
      assert.equal(r.status, status, JSON.stringify(r.error));
      assert.ok(r.blocker, 'the result names a blocker');
      assert.equal(r.blocker.kind, kind);
      assert.equal(r.blocker.url, `${portal.url}/blockers/${page}`, 'no query in the URL');
      assert.match(r.blocker.evidence, evidence);
      const log = (await h.object(r.files.log)).toString();
      assert.match(log, new RegExp(`blocker: ${kind} at ${portal.url.replace(/[.]/g, '\\.')}/blockers/${page} `));
      assert.ok(!/blocker: .*not-in-the-result/.test(log), 'the blocker line carries no query');
      if (kind === 'captcha') {
        // The existing CAPTCHA path took it: no solver, so a hand-off nobody answered.
        assert.equal(r.error?.code, 'HANDOFF_TIMEOUT');
        assert.match(log, /captcha: a \w+ CAPTCHA is on/);
      }
    });
  }

  it('classifies a page the job reached by a click, and a job that met none has no blocker', async () => {
    const org = testOrg('blk-click');
    await setSession(h.redis, org, 'user-1', h.session());
    const r = await finalResult(org, signedJob(org, CLICK, { metadata: { base: portal.url } }));
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal(r.blocker?.kind, 'access-denied');
    const clean = await finalResult(org, signedJob(org, GOTO, { metadata: { url: `${portal.url}/api/health` } }));
    assert.equal(clean.status, 'done');
    assert.equal(clean.blocker, undefined);
  });

  it('publishes a retried attempt\'s blocker with its retrying result, before the job\'s final result', async () => {
    const org = testOrg('blk-retry');
    await setSession(h.redis, org, 'user-1', h.session());
    const job = signedJob(org, RETRIED, { metadata: { base: portal.url }, maxAttempts: 3 });
    const r = await finalResult(org, job);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal(r.attempt, 2);
    assert.equal(r.blocker, undefined, 'the second attempt met no blocker');
    const retried = h.services.retried.filter((m) => m.jobId === job.jobId);
    assert.equal(retried.length, 1, JSON.stringify(retried));
    const first = retried[0]!;
    assert.equal(first.status, 'retrying');
    assert.equal(first.success, false);
    assert.equal(first.attempt, 1);
    assert.equal(first.error?.code, 'NAVIGATION_ERROR');
    assert.equal(first.blocker?.kind, 'rate-limit');
    assert.equal(first.blocker?.url, `${portal.url}/blockers/rate-limit`);
    assert.match(first.blocker?.evidence ?? '', /^HTTP status 429$/);
    // The harness's `results` never takes a retrying result for the job's result. The final result is stored and
    // published in one step, but the harness's subscriber hears it a moment after the read above found it stored.
    const heard = await waitFor(() => h.services.results.get(job.jobId), { timeoutMs: 30_000, what: 'the final result heard by the subscriber' });
    assert.equal(heard.status, 'done');
  });

  it('counts blockers per provider and kind in the worker\'s metrics', async () => {
    assert.ok(h.worker.httpUrl);
    const text = await (await fetch(`${h.worker.httpUrl}/metrics`)).text();
    const count = (kind: string) => {
      const line = text.split('\n').find((l) => l.startsWith('sri_job_blockers_total{') && l.includes('provider="demo"') && l.includes(`kind="${kind}"`));
      return line ? Number(line.split(' ').at(-1)) : 0;
    };
    // Once per attempt and kind: at least the jobs above (an attempt retried after a slow navigation counts again).
    const shown = text.split('\n').filter((l) => l.includes('blockers')).join('\n');
    assert.ok(count('captcha') >= 4, shown);
    assert.ok(count('login-wall') >= 1, shown);
    assert.ok(count('rate-limit') >= 1, shown);
    assert.ok(count('maintenance') >= 1, shown);
    assert.ok(count('access-denied') >= 2, shown);
    assert.equal(count('other'), 0);
  });
});
