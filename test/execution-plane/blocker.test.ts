/**
 * The worker's blocker classification (src/execution-plane/job/blocker.ts, blocker-watch.ts) in real Chromium against
 * the demo portal's blocker pages (src/embedded/demo-blockers.ts): each kind recognised by its status, text or DOM
 * signature, in English and Spanish; the provider's logged-out address makes a login wall; ordinary pages are not
 * blockers; a navigation the script did not make itself (a click) is classified too, and a page busy in its own
 * script does not hold the look beyond its bound.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startDemoPortal, demoSessionCheck, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { lookAtPage, type LookOptions } from '../../src/execution-plane/job/blocker.ts';
import { BlockerWatch } from '../../src/execution-plane/job/blocker-watch.ts';
import { ExecutionLog } from '../../src/execution-plane/job/execution-log.ts';
import { Redactor } from '../../src/execution-plane/job/redactor.ts';
import type { BlockerKind, ResultBlocker } from '../../src/shared/schemas.ts';
import { launchChromium } from '../web/browser.ts';
import { waitFor } from '../support/services.ts';

describe('blocker classification on the demo portal\'s blocker pages (real Chromium)', () => {
  let browser: Browser;
  let portal: DemoPortal;
  let context: BrowserContext;
  let page: Page;

  before(async () => {
    [browser, portal] = await Promise.all([launchChromium(), startDemoPortal({ port: 0 })]);
    context = await browser.newContext();
    page = await context.newPage();
  });
  after(async () => {
    await context?.close().catch(() => {});
    await Promise.all([browser?.close(), portal?.close()]);
  });

  const classify = async (path: string, opts: LookOptions = {}) => {
    const response = await page.goto(portal.url + path);
    const look = await lookAtPage(page, { loggedOut: demoSessionCheck(portal.url), passwordFieldIsLoginWall: false, timeoutMs: 10_000, status: response?.status() ?? 0, ...opts });
    return look?.blocker ?? null;
  };

  const CASES: ReadonlyArray<readonly [string, BlockerKind, RegExp]> = [
    ['/blockers/login-wall', 'login-wall', /HTTP status 401/],
    ['/blockers/login-wall?lang=es', 'login-wall', /HTTP status 401/],
    ['/blockers/login-redirect', 'login-wall', /logged-out address/],
    ['/blockers/recaptcha', 'captcha', /^recaptcha widget \(\.g-recaptcha\[data-sitekey\]\)$/],
    ['/blockers/hcaptcha', 'captcha', /^hcaptcha widget/],
    ['/blockers/turnstile', 'captcha', /^turnstile widget/],
    ['/blockers/image-captcha', 'captcha', /^image widget \(img\[captcha\]\)$/],
    ['/blockers/rate-limit', 'rate-limit', /^HTTP status 429$/],
    ['/blockers/rate-limit?lang=es', 'rate-limit', /^HTTP status 429$/],
    ['/blockers/maintenance', 'maintenance', /page text: "(?:under maintenance|Under maintenance)" \(HTTP status 503\)/],
    ['/blockers/maintenance?lang=es', 'maintenance', /page text: "en mantenimiento" \(HTTP status 503\)/i],
    ['/blockers/denied', 'access-denied', /page text: "Access denied" \(HTTP status 403\)/],
    ['/blockers/denied?lang=es', 'access-denied', /page text: "Acceso denegado" \(HTTP status 403\)/],
  ];
  for (const [path, kind, evidence] of CASES) {
    it(`names ${path} a ${kind}`, async () => {
      const b = await classify(path);
      assert.ok(b, `${path}: a blocker`);
      assert.equal(b.kind, kind);
      assert.match(b.evidence, evidence);
      assert.ok(!b.url.includes('?'), 'the URL carries no query');
      assert.ok(b.evidence.length <= 200);
    });
  }

  it('reads the status from Navigation Timing when the worker saw no response', async () => {
    const b = await classify('/blockers/rate-limit', { status: 0 });
    assert.equal(b?.kind, 'rate-limit');
  });

  it('finds no blocker on the login page of a flow that signs in itself, nor on an ordinary page', async () => {
    // /login is the demo provider's logged-out address: a login wall by the provider's check, not by its password field.
    assert.equal(await classify('/login', { loggedOut: undefined }), null);
    assert.equal(await classify('/api/health'), null);
    await page.setContent(`<title>Report</title><main>${'<p>Invoice 0001 forbidden characters were removed from this long report.</p>'.repeat(60)}</main>`);
    assert.equal((await lookAtPage(page, { timeoutMs: 10_000 }))?.blocker ?? null, null, 'a long page that mentions "forbidden" is content, not a blocker');
  });

  it('classifies a navigation the script did not make itself, once, and keeps the last blocker', async () => {
    const kept: ResultBlocker[] = [];
    const kinds: BlockerKind[] = [];
    const lines: string[] = [];
    const exec = new ExecutionLog(new Redactor([]), (l) => lines.push(l.message));
    const ctx = await browser.newContext();
    try {
      const p = await ctx.newPage();
      const watch = new BlockerWatch({ exec, redact: (t) => t, loggedOut: demoSessionCheck(portal.url), keep: (b) => kept.push(b), onBlocker: (k) => kinds.push(k) });
      watch.watch(p);
      await p.goto(`${portal.url}/api/health`);
      await p.setContent(`<a id="go" href="${portal.url}/blockers/denied">go</a>`);
      await p.click('#go');
      await waitFor(() => kept.length >= 1, { what: 'the click\'s navigation classified' });
      assert.equal(kept[0]!.kind, 'access-denied');
      assert.equal(kept[0]!.url, `${portal.url}/blockers/denied`);
      // The look a caller asks for after the same navigation is the one already taken (no second evaluate).
      const again = await watch.look(p);
      assert.equal(again?.blocker?.kind, 'access-denied');
      assert.equal(kept.length, 1, 'one look a navigation');
      assert.deepEqual(kinds, ['access-denied']);
      assert.ok(lines.some((l) => l.includes(`blocker: access-denied at ${portal.url}/blockers/denied`)), lines.join('\n'));
    } finally {
      await ctx.close();
    }
  });

  it('does not let a page busy in its own script hold the look beyond its bound', async () => {
    const ctx = await browser.newContext();
    try {
      const p = await ctx.newPage();
      await p.goto(`${portal.url}/blockers/denied`);
      // The page's main thread is busy for 20 s: no evaluate is answered meanwhile.
      void p.evaluate(() => { const end = Date.now() + 20_000; while (Date.now() < end) { /* busy */ } }).catch(() => {});
      const started = Date.now();
      const look = await lookAtPage(p, { timeoutMs: 500 });
      assert.equal(look, null);
      assert.ok(Date.now() - started < 10_000, `the look gave up after its bound (${Date.now() - started} ms)`);
    } finally {
      await ctx.close();
    }
  });
});
