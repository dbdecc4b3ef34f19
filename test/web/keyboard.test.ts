/**
 * The dashboard with the keyboard alone, in Chromium (issue 12: "everything works with the keyboard alone"). A user
 * who never touches the mouse signs up, connects the demo provider, creates the demo flow, activates it, runs it,
 * asks to cancel the job and confirms, opens every admin page, disconnects the provider and logs out: every action here is Tab, Shift+Tab,
 * typing, Enter, Space or Escape — no click, no `fill`. On every page the test also tabs through the whole page and
 * checks that each visible control (links, buttons, fields, one radio per group) is reached, and that the focused
 * control is visibly marked. The provider is connected with a cookie export's JSON and disconnected at the end (an outline or a shadow). English browser, test API without workers (the job waits in
 * the queue, so it can be cancelled); axe-core and CSP checks on every page.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Browser, Locator, Page } from 'playwright-core';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { assertNoProblems, checkAccessibility, launchChromium, openPage, type WatchedPage } from './browser.ts';

const PASSWORD = 'keyboard-only-meadow-42';
const SLOW = { timeout: 60_000 };

/** Presses Tab (Shift+Tab with `back`) until `target` has the focus; fails after `max` presses. */
async function tabTo(page: Page, target: Locator, what: string, opts: { back?: boolean; max?: number } = {}): Promise<void> {
  await target.waitFor(SLOW);
  const max = opts.max ?? 200;
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(opts.back ? 'Shift+Tab' : 'Tab');
    if (await target.evaluate((el) => el === document.activeElement)) return;
  }
  assert.fail(`${what}: not reached with ${opts.back ? 'Shift+Tab' : 'Tab'} in ${max} presses`);
}

/** Moves the focus to `target` with Tab and presses `key` on it. */
async function press(page: Page, target: Locator, what: string, key = 'Enter'): Promise<void> {
  await tabTo(page, target, what);
  await page.keyboard.press(key);
}

/** Moves the focus to the field with Tab and types `text` into it, key by key. */
async function type(page: Page, field: Locator, text: string, what: string): Promise<void> {
  await tabTo(page, field, what);
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.type(text);
}

/**
 * Tabs through the whole page and checks that every visible control was reached and was visibly focused. Radio
 * buttons count once per group (the arrow keys move inside a group, as the platform's radios do natively).
 */
async function everyControlReachable(page: Page, what: string): Promise<void> {
  const total = await page.evaluate(() => {
    const selector = 'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), '
      + 'textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"]), [role=button], [role=link], [role=tab]';
    const radioGroups = new Set<string>();
    let n = 0;
    for (const el of Array.from(document.querySelectorAll<HTMLElement>(selector))) {
      el.removeAttribute('data-kb');
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === 'hidden' || el.closest('[inert], [hidden]')) continue;
      if (el.classList.contains('skip-link')) { el.setAttribute('data-kb', String(n++)); continue; }
      if (el instanceof HTMLInputElement && el.type === 'radio') {
        if (radioGroups.has(el.name)) continue;
        radioGroups.add(el.name);
        el.setAttribute('data-kb-group', el.name);
      }
      el.setAttribute('data-kb', String(n++));
    }
    return n;
  });
  assert.ok(total > 0, `${what}: no control found`);
  const seen = new Set<string>();
  const unmarked = new Set<string>();
  for (let i = 0; i < total * 3 + 30 && seen.size < total; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      if (!el || el === document.body) return null;
      const group = el instanceof HTMLInputElement && el.type === 'radio' ? el.name : null;
      const marked = group !== null ? document.querySelector(`[data-kb-group="${CSS.escape(group)}"]`) : el;
      const id = marked?.getAttribute('data-kb') ?? null;
      const cs = getComputedStyle(el);
      const visible = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0) || cs.boxShadow !== 'none';
      return { id, visible, name: `${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') ?? el.textContent ?? '').trim().slice(0, 40)}"` };
    });
    if (!focused?.id) continue;
    seen.add(focused.id);
    if (!focused.visible) unmarked.add(focused.name);
  }
  const missing = await page.evaluate((ids) => Array.from(document.querySelectorAll<HTMLElement>('[data-kb]'))
    .filter((el) => !ids.includes(el.getAttribute('data-kb') ?? ''))
    .map((el) => `${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') ?? el.textContent ?? (el as HTMLInputElement).name ?? '').trim().slice(0, 40)}"`), [...seen]);
  assert.deepEqual(missing, [], `${what}: controls the Tab key never reaches`);
  assert.deepEqual([...unmarked], [], `${what}: controls with no visible focus mark`);
}

describe('the dashboard with the keyboard alone, in Chromium', () => {
  let t: TestApi;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  const email = `kim-${randomUUID()}@example.com`;
  const heading = (name: string | RegExp) => page.getByRole('heading', { level: 1, name });
  const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });

  async function checkPage(what: string) {
    await checkAccessibility(page, what);
    await everyControlReachable(page, what);
    assertNoProblems(w, what);
  }

  before(async () => {
    await ensureWebBuilt();
    t = await startTestApi({ SCHEDULER_ENABLED: 'false' });
    browser = await launchChromium();
    w = await openPage(browser, { locale: 'en-US', timezoneId: 'America/Guayaquil', baseURL: t.api.url });
    page = w.page;
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await t?.stop();
  });

  it('signs up from the keyboard', async () => {
    await page.goto('/register');
    await heading('Create an account').waitFor(SLOW);
    await checkPage('register');
    await type(page, page.getByLabel('Your name'), 'Kim Keys', 'name');
    await type(page, page.getByLabel('E-mail'), email, 'e-mail');
    await type(page, page.getByLabel('Organisation'), 'Teclado S.A.', 'organisation');
    await type(page, page.getByLabel('Password'), PASSWORD, 'password');
    await page.keyboard.press('Enter');
    await page.getByText(/^Signed in as Kim Keys/).waitFor(SLOW);
  });

  it('skips to the content, then connects the demo provider', async () => {
    // After a page change the focus is on the page's heading; Shift+Tab goes back up to "Skip to content".
    await tabTo(page, page.getByRole('link', { name: 'Skip to content' }), 'skip link', { back: true });
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => !!document.activeElement?.closest('main')), true, 'the skip link moves the focus into the page');
    await press(page, nav('Providers'), 'Providers in the main navigation');
    await heading('Providers').waitFor(SLOW);
    await checkPage('providers');
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'Demo supplier portal' }) });
    await press(page, card.getByRole('button', { name: 'Connect' }), 'Connect on the demo card');
    const form = page.getByRole('region', { name: 'Connect Demo supplier portal' });
    // The JSON a cookie-export browser extension produces (an array of cookies, expiry in epoch seconds).
    const exported = JSON.stringify([
      { name: 'demo_session', value: 'keyboard-cookie', domain: '127.0.0.1', path: '/', httpOnly: true, secure: false,
        expirationDate: Math.floor(Date.now() / 1000) + 86_400 },
      { name: 'demo_locale', value: 'es-EC', domain: '127.0.0.1', path: '/' },
    ]);
    await type(page, form.getByLabel('Session cookies'), exported, 'cookies');
    await form.getByText('2 cookies read.').waitFor(SLOW);
    await press(page, form.getByRole('button', { name: 'Add a credential' }), 'Add a credential');
    await type(page, form.getByLabel('Credential name'), 'portalPassword', 'credential name');
    await type(page, form.getByLabel('Value', { exact: true }), 'demo-password', 'credential value');
    await checkPage('providers, connect form');
    await press(page, form.getByRole('button', { name: 'Connect', exact: true }), 'Connect (submit)');
    await card.getByText(/^Connected until/).waitFor(SLOW);
  });

  it('creates the demo flow from the empty state, activates it and runs it', async () => {
    await press(page, nav('Flows'), 'Flows in the main navigation');
    await page.getByText('No flows yet.', { exact: false }).waitFor(SLOW);
    await checkPage('flows (empty)');
    await press(page, page.getByRole('link', { name: 'Start from the demo template' }), 'demo template');
    await heading('New flow').waitFor(SLOW);
    await page.waitForFunction(() => document.querySelectorAll('ol.steps > li').length === 8, undefined, SLOW);
    await checkPage('flow editor (demo template)');
    await press(page, page.getByRole('button', { name: 'Create flow' }), 'Create flow');
    await heading('Demo portal invoices 1.0.0').waitFor(SLOW);
    await checkPage('flow page');
    await press(page, page.getByRole('button', { name: 'Activate' }), 'Activate');
    await page.getByText('Version 1.0.0 is now the active flow of Demo supplier portal.').waitFor(SLOW);
    await type(page, page.getByLabel('Metadata (JSON, optional)'), '{"period": "2026-11"}', 'metadata');
    await press(page, page.getByRole('button', { name: 'Run now' }), 'Run now');
    await press(page, page.getByRole('link', { name: 'View the job' }), 'View the job');
    await heading(/^Job [0-9a-f]{8}$/).waitFor(SLOW);
  });

  it('asks before cancelling the job, keeps it on Cancel, and cancels it on confirmation', async () => {
    await checkPage('job page, queued');
    await press(page, page.getByRole('button', { name: 'Cancel job' }), 'Cancel job');
    const question = page.getByRole('group', { name: /^Cancel this job\?/ });
    await question.waitFor(SLOW);
    // The confirming button has the focus; Tab moves to "Cancel" (keep the job), and Enter keeps it.
    assert.equal(await page.getByRole('button', { name: 'Yes, cancel the job' }).evaluate((el) => el === document.activeElement), true);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await question.waitFor({ state: 'detached', ...SLOW });
    await press(page, page.getByRole('button', { name: 'Cancel job' }), 'Cancel job, again');
    assert.equal(await page.getByRole('button', { name: 'Yes, cancel the job' }).evaluate((el) => el === document.activeElement), true);
    await page.keyboard.press('Enter');
    await page.getByRole('status').getByText('Cancellation requested.').waitFor(SLOW);
    await page.getByText('cancelled', { exact: true }).first().waitFor(SLOW);
    await checkPage('job page, cancelled');
  });

  it('reaches the jobs list, the documents page, the members page and every admin page, disconnects the provider, and logs out', async () => {
    await press(page, nav('Jobs'), 'Jobs in the main navigation');
    await heading('Jobs').waitFor(SLOW);
    await page.getByRole('row').filter({ hasText: 'Demo supplier portal' }).first().waitFor(SLOW);
    await checkPage('jobs');
    await press(page, nav('Documents'), 'Documents in the main navigation');
    await heading('Documents').waitFor(SLOW);
    await page.getByText('No documents yet.', { exact: false }).waitFor(SLOW);
    await checkPage('documents (empty)');
    await press(page, nav('Members'), 'Members in the main navigation');
    await heading('Members').waitFor(SLOW);
    await checkPage('members');
    await press(page, nav('Admin'), 'Admin in the main navigation');
    const adminNav = page.getByRole('navigation', { name: 'Administration' });
    for (const [link, title] of [['Dead letters', 'Dead letters'], ['Webhooks', 'Webhooks'], ['Secrets', 'Secrets'], ['Quota', 'Quota'], ['Workers', 'Workers']] as const) {
      await press(page, adminNav.getByRole('link', { name: link, exact: true }), `${link} in the admin navigation`);
      await heading(title).waitFor(SLOW);
      await checkPage(`admin: ${title}`);
    }
    await press(page, nav('Providers'), 'Providers in the main navigation');
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'Demo supplier portal' }) });
    await press(page, card.getByRole('button', { name: 'Disconnect' }), 'Disconnect on the demo card');
    await page.getByText('Demo supplier portal disconnected.').waitFor(SLOW);
    await card.getByText('Not connected').waitFor(SLOW);
    await checkPage('providers, disconnected');
    await press(page, page.getByRole('button', { name: 'Log out' }), 'Log out');
    await page.getByText('You have logged out.').waitFor(SLOW);
    await checkPage('login, after logout');
  });
});
