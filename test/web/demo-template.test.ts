/**
 * The flows page's empty state in Chromium (docs/dashboard.md): with no flow yet it offers the demo template, which
 * opens the editor filled with the demo portal's flow (the steps `sri demo` runs), ready to save. English browser,
 * test API (redis-server, s3rver, PGlite); axe-core and CSP checks on both pages.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { assertNoProblems, checkAccessibility, launchChromium, openPage, type WatchedPage } from './browser.ts';

const PASSWORD = 'correct-horse-battery-42';
const SLOW = { timeout: 60_000 };

describe('the demo template from the flows page\'s empty state, in Chromium', () => {
  let t: TestApi;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  const email = `tina-${randomUUID()}@example.com`;

  before(async () => {
    await ensureWebBuilt();
    t = await startTestApi({ SCHEDULER_ENABLED: 'false' });
    const r = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD, name: 'Tina', orgName: `Org ${randomUUID()}` }),
    });
    assert.equal(r.status, 201, await r.text());
    browser = await launchChromium();
    w = await openPage(browser, { locale: 'en-US', timezoneId: 'America/Guayaquil', baseURL: t.api.url });
    page = w.page;
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await t?.stop();
  });

  it('offers the demo template when there is no flow, and saves the flow it fills in', async () => {
    await page.goto(`/login?next=${encodeURIComponent('/flows')}`);
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('No flows yet. Create one to tell the platform what to do on a portal.').waitFor(SLOW);
    await checkAccessibility(page, 'flows (empty)');

    await page.getByRole('link', { name: 'Start from the demo template' }).click();
    await page.getByRole('heading', { level: 1, name: 'New flow' }).waitFor(SLOW);
    const name = page.getByLabel('Name', { exact: true });
    await page.waitForFunction(() => document.querySelectorAll('ol.steps > li').length === 8, undefined, SLOW);
    assert.equal(await name.inputValue(), 'Demo portal invoices');
    assert.equal(await page.getByLabel('Provider').inputValue(), 'demo');
    assert.match(await page.locator('ol.steps > li').first().locator('input').first().inputValue(), /^http:\/\/[^/]+\/login$/);
    await checkAccessibility(page, 'editor (demo template)');

    await page.getByRole('button', { name: 'Create flow' }).click();
    await page.getByRole('heading', { level: 1, name: 'Demo portal invoices 1.0.0' }).waitFor(SLOW);
    assertNoProblems(w, 'flows and editor');
  });
});
