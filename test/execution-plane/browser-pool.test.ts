/**
 * The worker's BrowserPool on real Chromium: contexts prepared ahead go idle → reserved → running → recycled and are
 * never handed out twice; a browser is retired after WORKER_BROWSER_MAX_CONTEXTS contexts (no restart counted) and
 * closes when its last context does; a killed browser is relaunched and counted; the relaunch backoff doubles; with
 * WORKER_BROWSERS=2 contexts spread over two browsers and a crash of one leaves the other's contexts serving.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BrowserPool, restartBackoffMs, type PreparedContext } from '../../src/execution-plane/browser.ts';
import { EgressProxy } from '../../src/execution-plane/job/egress-proxy.ts';
import { EgressPolicy } from '../../src/execution-plane/job/egress-policy.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { waitFor } from '../support/services.ts';

const logger = createLogger({ name: 'browser-pool-test', level: 'silent', stdout: false });

describe('BrowserPool', () => {
  let egress: EgressProxy;
  before(async () => {
    egress = new EgressProxy(logger, { platformServices: [] });
    await egress.start();
  });
  after(async () => { await egress.close(); });

  it('waits the relaunch of a browser that keeps dying young longer each time, up to a cap', () => {
    assert.equal(restartBackoffMs(0), 0);
    assert.equal(restartBackoffMs(1), 5000);
    assert.equal(restartBackoffMs(2), 10_000);
    assert.equal(restartBackoffMs(3), 20_000);
    assert.equal(restartBackoffMs(50), 300_000);
  });

  it('hands each prepared context to one job only, idle → reserved → running → recycled', async () => {
    const pool = new BrowserPool({ launchTimeoutMs: 60_000, logger, prepareLease: () => egress.prepareLease(), warmContexts: 1 });
    try {
      pool.refill();
      const seen = new Set<PreparedContext>();
      for (let i = 0; i < 3; i++) {
        const c = await pool.reserve();
        assert.ok(!seen.has(c), 'a context is never handed out twice');
        seen.add(c);
        assert.equal(c.state, 'reserved');
        const lease = c.arm(new EgressPolicy(['127.0.0.1']), () => {}, {});
        assert.equal((await c.context.cookies()).length, 0, 'a fresh context: no cookie of anybody');
        await c.context.addCookies([{ name: `job${i}`, value: 'x', url: 'http://127.0.0.1/' }]);
        c.to('running');
        assert.throws(() => c.to('reserved'), /cannot go from running to reserved/);
        await c.recycle();
        lease.release();
        assert.equal(c.state, 'recycled');
      }
    } finally {
      await pool.close();
    }
  });

  it('retires a browser after its maximum of contexts without counting a restart, and closes it after its last context', async () => {
    let restarts = 0;
    const pool = new BrowserPool({ launchTimeoutMs: 60_000, logger, maxContextsPerBrowser: 2, onRestart: () => { restarts++; } });
    try {
      const a = await pool.newContext({});
      const b = await pool.newContext({});
      assert.equal(a.browser, b.browser);
      const c = await pool.newContext({});
      assert.notEqual(c.browser, a.browser, 'the third context opens in a new browser');
      assert.ok(a.browser.isConnected(), 'the retired browser stays while its contexts are open');
      await a.context.close();
      await b.context.close();
      await waitFor(() => !a.browser.isConnected(), { timeoutMs: 20_000, what: 'the retired browser closed' });
      assert.equal(restarts, 0);
      await c.context.close();
    } finally {
      await pool.close();
    }
  });

  it('relaunches a browser that crashed and counts the restart', async () => {
    let restarts = 0;
    const pool = new BrowserPool({ launchTimeoutMs: 60_000, logger, onRestart: () => { restarts++; } });
    try {
      const first = await pool.get();
      const cdp = await first.newBrowserCDPSession();
      // Crashes the browser process itself, as an out-of-memory kill would.
      await cdp.send('Browser.crash').catch(() => {});
      await waitFor(() => !first.isConnected(), { timeoutMs: 20_000, what: 'the browser gone' });
      const second = await waitFor(async () => (pool.isUp() ? pool.get() : undefined), { timeoutMs: 30_000, what: 'a relaunched browser' });
      assert.notEqual(second, first);
      assert.equal(restarts, 1);
      const { context } = await pool.newContext({});
      await context.close();
    } finally {
      await pool.close();
    }
  });
  it('spreads contexts asked at once over the browsers: one being opened counts as load', async () => {
    const pool = new BrowserPool({ launchTimeoutMs: 60_000, logger, browsers: 2 });
    try {
      await pool.get();
      // One context open (a warm one, say), then two jobs arriving together: neither of their contexts is open when
      // the other is placed, and the emptier browser must not take both.
      const first = await pool.newContext({});
      const [a, b] = await Promise.all([pool.newContext({}), pool.newContext({})]);
      assert.notEqual(a.browser, b.browser, 'two contexts asked at once go to two browsers');
      const [c, d] = await Promise.all([pool.newContext({}), pool.newContext({})]);
      assert.notEqual(c.browser, d.browser, 'and the next two as well');
      await Promise.all([first, a, b, c, d].map((x) => x.context.close()));
    } finally {
      await pool.close();
    }
  });

  it('gives two jobs reserving at once warm contexts of two browsers, round after round', async () => {
    const pool = new BrowserPool({ launchTimeoutMs: 60_000, logger, browsers: 2, prepareLease: () => egress.prepareLease(), warmContexts: 2 });
    try {
      await pool.get();
      pool.refill();
      for (let round = 0; round < 4; round++) {
        // Whether the warm contexts are ready or still opening, the two jobs run in two browsers.
        const [a, b] = await Promise.all([pool.reserve(), pool.reserve()]);
        assert.notEqual(a.browser, b.browser, `round ${round}: two jobs at once are in two browsers`);
        await Promise.all([a.recycle(), b.recycle()]);
      }
    } finally {
      await pool.close();
    }
  });

  it('spreads contexts over WORKER_BROWSERS browsers; a crash of one leaves the other serving, and only it is relaunched', async () => {
    let restarts = 0;
    const pool = new BrowserPool({ launchTimeoutMs: 60_000, logger, browsers: 2, onRestart: () => { restarts++; } });
    try {
      await pool.get();
      assert.equal(pool.browsersUp(), 2, 'both browsers launched at start');
      const a = await pool.newContext({});
      const b = await pool.newContext({});
      assert.notEqual(a.browser, b.browser, 'the second context goes to the other, less loaded browser');
      const pageB = await b.context.newPage();
      await pageB.setContent('<p id="x">still here</p>');
      const pageA = await a.context.newPage();
      // Crashes one browser's process, as an out-of-memory kill would.
      const cdp = await a.browser.newBrowserCDPSession();
      await cdp.send('Browser.crash').catch(() => {});
      await waitFor(() => !a.browser.isConnected(), { timeoutMs: 20_000, what: 'the crashed browser gone' });
      await assert.rejects(pageA.evaluate(() => 1), 'the crashed browser\'s page answers no more');
      assert.ok(b.browser.isConnected(), 'the other browser is untouched');
      assert.equal(await pageB.locator('#x').textContent(), 'still here', 'the other browser\'s job goes on');
      const c = await pool.newContext({});
      const pageC = await c.context.newPage();
      assert.equal(await pageC.evaluate(() => 1 + 1), 2, 'a new context is served');
      await waitFor(() => pool.browsersUp() === 2, { timeoutMs: 60_000, what: 'the crashed browser relaunched' });
      assert.equal(restarts, 1, 'one restart: only the crashed browser');
      await b.context.close();
      await c.context.close();
    } finally {
      await pool.close();
    }
  });
});
