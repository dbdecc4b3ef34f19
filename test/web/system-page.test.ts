/**
 * The platform operator's System page in Chromium, driving a real update on a real container engine: podman, a local
 * registry, docker-compose and `sri ops-worker` (test/support/podman-ops.ts, the stack of test/ops-worker/podman.test.ts)
 * behind the API serving the built dashboard. A service is published as versions 1 and 2; 1 runs.
 *
 * The operator signs in with OPERATOR_TOKEN (a wrong one first) and the page holds no token — only the readable CSRF
 * cookie; they see the system page and sign-out only. They check for updates (1 running, 2 offered), update to 2
 * with the migrations, confirm, try a second update meanwhile and read the API's OPS_BUSY message, and watch the
 * task's live log over SSE to its end; the page then says 2 runs, and the containers do run 2. axe-core checks each page. They sign out, and the system page asks them to sign in again.
 *
 * Without podman the suite is skipped, naming the missing package (as the ops worker's own test).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';
import { PodmanOpsStack, podmanSkip } from '../support/podman-ops.ts';
import { waitFor } from '../support/services.ts';
import { assertNoProblems, checkAccessibility, launchChromium, openPage, type WatchedPage } from './browser.ts';

const OPERATOR_TOKEN = randomBytes(24).toString('hex');
// Podman on a loaded 2-core machine: an update (pull, up, health checks every 2 s, migrations) takes tens of seconds.
const UPDATE = { timeout: 240_000 };
/** Bound of each setup hook and each test (ms): generous, every wait inside ends as soon as its condition holds. */
const SETUP_MS = 600_000;
const BOUND = { timeout: SETUP_MS };

describe('the System page: an operator updates the platform on podman from the dashboard', { skip: podmanSkip(), timeout: 30 * 60_000 }, () => {
  let stack: PodmanOpsStack;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;

  const bearer = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(stack.api.url + path, {
      method, headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() as any };
  };
  async function checkPage(what: string) {
    await checkAccessibility(page, what);
    assertNoProblems(w, what);
  }

  // Hooks of their own, each with its own bound: building the app and the images are each minutes on a loaded machine.
  // The API serves dist/web: built here when it is missing or older than src/web (as `sri up` does).
  before(async () => { await ensureWebBuilt(); }, { timeout: SETUP_MS });
  before(async () => {
    stack = new PodmanOpsStack({ operatorToken: OPERATOR_TOKEN, versions: ['1', '2'], broken: [], logName: 'api-system-page' });
    await stack.start();
  }, { timeout: SETUP_MS });
  before(async () => {
    browser = await launchChromium();
    w = await openPage(browser, { locale: 'en-US', timezoneId: 'America/Guayaquil', baseURL: stack.api.url });
    page = w.page;
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  }, { timeout: 120_000 });

  it('signs the operator in with OPERATOR_TOKEN, keeping no token where a script can read it, and shows only the system page', BOUND, async () => {
    await page.goto('/operator/system');
    await page.waitForURL(/\/operator\/login$/);
    await page.getByRole('heading', { level: 1, name: 'Platform operator sign-in' }).waitFor();
    await checkPage('operator sign-in');
    const field = page.getByLabel('Operator token');
    await field.fill(`${OPERATOR_TOKEN}-wrong`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('This operator token is wrong').waitFor();
    await field.fill(OPERATOR_TOKEN);
    await field.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'System' }).waitFor();
    assert.match(page.url(), /\/operator\/system$/);

    const cookies = await w.context.cookies();
    const session = cookies.find((c) => c.name === 'sri_operator_session');
    assert.ok(session?.httpOnly && session.sameSite === 'Strict' && session.path === '/api/operator', JSON.stringify(session));
    const readable = await page.evaluate(() => ({
      cookie: document.cookie,
      storage: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
    }));
    assert.ok(!readable.cookie.includes('sri_operator_session') && !readable.cookie.includes(OPERATOR_TOKEN), readable.cookie);
    assert.ok(readable.cookie.includes('sri_operator_csrf='));
    assert.ok(!readable.storage.includes(OPERATOR_TOKEN));
    const links = await page.getByRole('navigation').getByRole('link').allTextContents();
    assert.deepEqual(links, ['System']);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await checkPage('system page, nothing run yet');
  });

  it('checks for updates: version 1 runs, the registry offers 2', BOUND, async () => {
    await page.getByRole('button', { name: 'Check for updates' }).click();
    // The check's task opens with its live log, which ends when the ops worker has finished.
    await page.getByRole('heading', { level: 2, name: 'Task: Check for updates' }).waitFor();
    assert.match(page.url(), /\?task=[0-9a-f-]{36}$/);
    await page.getByText('End of the log: the task has finished.').waitFor(UPDATE);
    const version = page.getByRole('region', { name: 'Version' });
    await waitFor(async () => ((await page.getByTestId('running-version').textContent()) === '1' ? true : undefined), { timeoutMs: 60_000, what: 'the running version shown' });
    await version.getByText('update available').waitFor();
    assert.match(await version.textContent() ?? '', /Newest version offered by the registry\s*2/);
    await page.getByRole('button', { name: 'Update to version 2' }).waitFor();
  });

  it('updates to version 2 with the migrations after a confirmation, and follows the task\'s live log to its end', BOUND, async () => {
    await page.getByLabel('Run the database migrations after the update').check();
    await page.getByRole('button', { name: 'Update to version 2' }).click();
    const confirm = page.getByRole('group', { name: /version 2 and run the database migrations\?/ });
    await confirm.waitFor();
    // The confirming button has the focus: Enter confirms from the keyboard.
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 2, name: 'Task: Update' }).waitFor();
    const log = page.getByRole('log');
    assert.equal(await log.getAttribute('aria-live'), 'polite');
    await log.getByText(/step pull/).first().waitFor(UPDATE);
    await checkPage('system page, an update running with its live log');

    // A second update meanwhile: the API refuses it with OPS_BUSY, and the page shows the API's message.
    await page.getByRole('button', { name: 'Update to version 2' }).click();
    await page.getByRole('group', { name: /version 2 and run the database migrations\?/ }).getByRole('button', { name: 'Update to version 2' }).click();
    const alert = page.getByRole('region', { name: 'Update' }).getByRole('alert');
    await alert.waitFor();
    const busy = await bearer('POST', '/api/operator/system/update', { targetVersion: '2' });
    assert.equal(busy.status, 409);
    assert.equal(busy.body.error.code, 'OPS_BUSY');
    assert.ok((await alert.textContent())?.includes(busy.body.error.message), `the page shows the API's message: ${await alert.textContent()}`);

    await page.getByText('End of the log: the task has finished.').waitFor(UPDATE);
    assert.ok((await log.textContent())?.includes('every service is healthy'));

    await waitFor(async () => ((await page.getByTestId('running-version').textContent()) === '2' ? true : undefined), { timeoutMs: 60_000, what: 'version 2 shown as running' });
    const steps = page.getByRole('table', { name: 'Steps' });
    for (const step of ['record', 'pull', 'up', 'health', 'migrate']) await steps.getByRole('rowheader', { name: step, exact: true }).waitFor();
    const row = page.getByRole('region', { name: 'Tasks' }).getByRole('row').filter({ hasText: 'Update to 2' }).first();
    await row.getByText('Done').waitFor();
    assert.match(await row.textContent() ?? '', /operator:[0-9a-f]{12}/);
    assert.match(await row.textContent() ?? '', /updated from 1 to 2/);
    assert.deepEqual(stack.runningImages(), [`${stack.registry}/sri/platform:2`], 'the containers run version 2');
    await checkPage('system page, the update done');
  });

  it('signs out: the session ends, and the system page asks to sign in again', BOUND, async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/operator\/login\?signedOut=1$/);
    await page.getByText('You have signed out.').waitFor();
    assert.ok(!(await w.context.cookies()).some((c) => c.name === 'sri_operator_session' && c.value !== ''));
    await page.goto('/operator/system');
    await page.waitForURL(/\/operator\/login$/);
    // An organisation page is no operator's either: it asks for an organisation login.
    await page.goto('/jobs');
    await page.waitForURL(/\/login\?next=/);
    assertNoProblems(w, 'after sign-out');
  });
});
