/**
 * The helper SDK every script and module gets (docs/scripts.md "Helper SDK"): blocker rules (pure), and on a real
 * worker with Chromium: waits with deadlines, the result builder (committed at the end, also when the script fails)
 * and detectBlocker on real pages.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classifySignals, type PageSignals } from '../../src/execution-plane/job/blocker.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';
import { setSession, signedJob, testOrg } from './support/jobs.ts';

const page = (over: Partial<PageSignals>): PageSignals => ({ status: 200, title: '', text: '', passwordField: false, ...over });
const kind = (over: Partial<PageSignals>) => classifySignals('https://portal.example/x', page(over))?.kind ?? null;

describe('blocker rules', () => {
  it('names rate limits, maintenance, access denied and login walls by status and text', () => {
    assert.equal(kind({ status: 429 }), 'rate-limit');
    assert.equal(kind({ title: 'Too Many Requests' }), 'rate-limit');
    assert.equal(kind({ text: 'Has realizado demasiadas solicitudes, intenta más tarde' }), 'rate-limit');
    assert.equal(kind({ status: 503, text: 'The site is under maintenance. We will be back soon.' }), 'maintenance');
    assert.equal(kind({ text: 'Sistema en mantenimiento programado' }), 'maintenance');
    assert.equal(kind({ status: 403 }), 'access-denied');
    assert.equal(kind({ title: 'Acceso denegado' }), 'access-denied');
    assert.equal(kind({ status: 401 }), 'login-wall');
    assert.equal(kind({ passwordField: true }), 'login-wall');
  });

  it('finds nothing on an ordinary page, a 404 or a bare 503', () => {
    assert.equal(kind({ title: 'Invoices', text: 'F-001 10.50' }), null);
    assert.equal(kind({ status: 404, text: 'not found' }), null);
    assert.equal(kind({ status: 503, text: 'Service Unavailable' }), null, 'a 5xx is a portal failure (PORTAL_UNAVAILABLE), not a blocker');
  });

  it('says which rule matched', () => {
    const b = classifySignals('https://portal.example/x', page({ status: 429, text: 'Too many requests' }));
    assert.deepEqual(b, { kind: 'rate-limit', url: 'https://portal.example/x', evidence: 'HTTP status 429' });
    assert.match(classifySignals('u', page({ text: 'ACCESS DENIED' }))!.evidence, /page text: "ACCESS DENIED"/);
  });
});

describe('helper SDK in a sandboxed script', { timeout: 120_000 }, () => {
  let h: WorkerHarness;
  const org = testOrg('sdk');
  before(async () => {
    h = await startWorkerHarness();
    await setSession(h.redis, org, 'user-1', h.session());
  });
  after(async () => { await h?.stop(); });

  it('waits with deadlines, builds the result (kept when the script fails) and detects blockers', async () => {
    const script = `export default async function run({ page, payload, helpers }) {
  const r = helpers.result();
  await helpers.sleep(20);
  r.set('slept', true);
  let n = 0;
  r.set('waited', await helpers.waitUntil(() => (++n >= 3 ? n : 0), { intervalMs: 10 }));
  try { await helpers.waitUntil(() => false, { timeoutMs: 100, intervalMs: 10, message: 'the never condition' }); } catch (e) { r.set('waitError', e.name + ': ' + e.message); }
  const d = helpers.deadline(0);
  r.set('expired', d.expired());
  try { d.check('listing'); } catch (e) { r.set('checkError', e.message); }
  try { await d.race(new Promise(() => {}), 'racing'); } catch (e) { r.set('raceError', e.message); }
  await page.goto(payload.base + '/invoices');
  r.set('onInvoices', await helpers.detectBlocker());
  await page.evaluate(() => { document.title = 'Too Many Requests'; });
  const limited = await helpers.detectBlocker();
  r.set('limited', limited.kind + ' / ' + limited.evidence);
  await page.goto(payload.base + '/login');
  r.set('onLogin', (await helpers.detectBlocker()).kind);
  r.push('items', 1).push('items', 2).warn('careful');
  r.commit();
  r.set('late', true);
  throw new Error('boom after the result');
}
`;
    const r = await h.run(org, signedJob(org, script, { metadata: { base: h.portal.url } }));
    assert.equal(r.status, 'failed');
    assert.equal(r.error?.code, 'SCRIPT_ERROR');
    assert.deepEqual(JSON.parse((await h.object(r.files.parsedData)).toString()), {
      slept: true, waited: 3,
      waitError: 'TimeoutError: helpers.waitUntil: the never condition not met within 100 ms',
      expired: true, checkError: 'listing: 0 ms deadline passed', raceError: 'racing: 0 ms deadline passed',
      onInvoices: null, limited: 'rate-limit / page text: "Too Many Requests" (HTTP status 200)', onLogin: 'login-wall',
      items: [1, 2], warnings: ['careful'], late: true,
    });
    assert.match((await h.object(r.files.log)).toString(), /blocker: login-wall at http:\/\/127\.0\.0\.1:\d+\/login \(a visible password field\)/);
  });
});
