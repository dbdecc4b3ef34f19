/**
 * A job that hands its page to a person, answered in the dashboard by a Playwright-driven user in Chromium, against
 * the whole platform as `sri up` runs it (embedded Redis and S3, PGlite, the API serving the built app, a worker, the
 * demo portal; random ports, a temporary DATA_DIR), in Spanish. The job's flow opens the demo portal's CAPTCHA page
 * and hands off: the user opens the job, sees the live view (frames of the worker's page), clicks into the answer
 * field of the page through it, types the answer and Enter with the keyboard, presses "Listo", and sees the job end
 * done — with the portal's answer page in its parsed data, so the click and keys reached the worker's page. axe-core
 * checks the page while the live view is shown; the app's CSP is not broken by the frames.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startStack, type StackHandle } from '../../src/embedded/stack.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { assertNoProblems, checkAccessibility, cleanEnv, launchChromium, openPage, type WatchedPage } from './browser.ts';
import { seedStackDatabase } from '../support/database.ts';

const EMAIL = `rosa-${Date.now()}@example.com`;
const PASSWORD = 'caballo-correcto-bateria-42';
const SLOW = { timeout: 120_000 };

describe('a hand-off answered in the dashboard\'s live view', () => {
  const dir = tempDir('sri-web-handoff-');
  let stack: StackHandle;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  let token = '';

  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  before(async () => {
    // A migrated PGlite in DATA_DIR (test/support/database.ts): the stack resumes it instead of running initdb.
    await seedStackDatabase(`${dir.path}/data`);
    stack = await startStack({
      env: {
        ...cleanEnv(),
        DATA_DIR: `${dir.path}/data`, LOG_DIR: `${dir.path}/logs`, LOG_LEVEL: 'warn',
        EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', WORKERS: '1', WORKER_HTTP_PORT: 'off',
      },
      onWorkerOutput: () => {},
    });
    const reg = await call<{ token: string }>('POST', '/api/auth/register', { email: EMAIL, password: PASSWORD, name: 'Rosa Cevallos', orgName: 'Distribuidora Andina' });
    token = reg.token;
    await call('POST', '/api/providers/demo/connect', { cookies: [] });
    const flow = await call<{ flow: { id: string } }>('POST', '/api/flows', {
      providerId: 'demo', version: '1.0.0', name: 'Con verificación',
      steps: [
        { type: 'navigate', url: `${stack.portalUrl}/captcha` },
        { type: 'handoff', reason: 'Resuelva la verificación de seguridad', timeoutMs: 600_000 },
        { type: 'waitFor', selector: '#captcha-ok' },
        { type: 'extract', name: 'outcome', selector: 'main', fields: { text: '#captcha-ok' } },
      ],
    });
    await call('POST', `/api/flows/${flow.flow.id}/activate`);

    browser = await launchChromium();
    w = await openPage(browser, { locale: 'es-EC', timezoneId: 'America/Guayaquil', baseURL: stack.apiUrl });
    page = w.page;
    await page.goto('/login');
    await page.getByRole('heading', { level: 1, name: 'Iniciar sesión' }).waitFor(SLOW);
    await page.getByLabel('Correo electrónico').fill(EMAIL);
    await page.getByLabel('Contraseña').fill(PASSWORD);
    await page.getByRole('button', { name: 'Iniciar sesión' }).click();
    await page.getByRole('heading', { level: 1, name: 'Trabajos' }).waitFor(SLOW);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stack?.stop({ graceMs: 5000 });
    dir.remove();
  });

  it('shows the waiting job\'s page live, takes a click and keys into it, and "Listo" lets the job finish done', async () => {
    const { jobId } = await call<{ jobId: string }>('POST', '/api/run', { providerId: 'demo' });
    await waitFor(async () => (await call<{ status: string }>('GET', `/api/jobs/${jobId}/status`)).status === 'waiting_for_user',
      { what: 'the job waiting for a person', timeoutMs: 180_000 });
    await page.goto(`/jobs/${jobId}`);
    await page.getByRole('heading', { level: 2, name: 'Es su turno: el trabajo le está esperando' }).waitFor(SLOW);
    // Exactly the reason (the live log below also has a line that quotes it).
    await page.getByText('Resuelva la verificación de seguridad', { exact: true }).waitFor(SLOW);
    const view = page.getByRole('group', { name: 'Vista en vivo de la página del portal' });
    const frame = view.getByRole('img', { name: 'La página del portal tal como la muestra ahora el navegador del trabajo' });
    await frame.waitFor(SLOW);
    assert.match(await frame.getAttribute('src') ?? '', /^data:image\/jpeg;base64,\/9j\//, 'a JPEG frame from the worker');
    await checkAccessibility(page, 'job page with the live view');

    // The answer field fills 45-85 % of the page's height (demo portal /captcha): a click at 65 %, scaled by the app.
    const box = (await frame.boundingBox())!;
    const before = await frame.getAttribute('src');
    await frame.click({ position: { x: box.width / 2, y: box.height * 0.65 } });
    await page.keyboard.type('human');
    await page.keyboard.press('Enter');
    // The worker's page changed (the typed answer, then the answer page): a new frame replaced the first one.
    await waitFor(async () => (await frame.getAttribute('src').catch(() => before)) !== before, { what: 'a new frame after the input', timeoutMs: 60_000 });
    await page.getByRole('button', { name: 'Listo' }).click();

    await page.getByText('terminado', { exact: true }).first().waitFor(SLOW);
    const job = await call<{ job: { status: string; result: { outcome?: { text: string }[] } } }>('GET', `/api/jobs/${jobId}`);
    assert.equal(job.job.status, 'done');
    assert.deepEqual(job.job.result.outcome, [{ text: 'You are a person.' }], 'the click and keys reached the worker\'s page');
    assert.equal(await page.getByRole('heading', { level: 2, name: 'Es su turno: el trabajo le está esperando' }).count(), 0, 'the live view is gone');
    assertNoProblems(w, 'job page after the hand-off');
  });

  it('lets a person without a mouse point and click into the live view with Shift+arrows and Shift+Enter', async () => {
    const { jobId } = await call<{ jobId: string }>('POST', '/api/run', { providerId: 'demo' });
    await waitFor(async () => (await call<{ status: string }>('GET', `/api/jobs/${jobId}/status`)).status === 'waiting_for_user',
      { what: 'the job waiting for a person', timeoutMs: 180_000 });
    await page.goto(`/jobs/${jobId}`);
    const view = page.getByRole('group', { name: 'Vista en vivo de la página del portal' });
    await view.getByRole('img', { name: 'La página del portal tal como la muestra ahora el navegador del trabajo' }).waitFor(SLOW);
    await view.focus();
    // From the page's centre (640, 360), five steps down: (640, 460), inside the answer field (45-85 % of 720).
    for (let i = 0; i < 5; i++) await page.keyboard.press('Shift+ArrowDown');
    await page.getByText('Puntero en 640, 460 de la página: Mayús+Intro hace clic ahí.').waitFor(SLOW);
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('human');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Listo' }).focus();
    await page.keyboard.press('Enter');
    await page.getByText('terminado', { exact: true }).first().waitFor(SLOW);
    const job = await call<{ job: { status: string; result: { outcome?: { text: string }[] } } }>('GET', `/api/jobs/${jobId}`);
    assert.equal(job.job.status, 'done');
    // The demo CAPTCHA's answer field has no focus of its own: only the click at the pointer put "human" into it.
    assert.deepEqual(job.job.result.outcome, [{ text: 'You are a person.' }], 'the keyboard\'s click reached the answer field');
    assertNoProblems(w, 'job page, keyboard pointer');
  });
});
