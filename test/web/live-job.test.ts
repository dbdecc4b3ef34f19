/**
 * A long job as a person watches it, in Chromium, against the whole platform as `sri up` runs it (embedded Redis and
 * S3, PGlite, the API serving the built app, a worker, the demo portal; random ports, a temporary DATA_DIR), in
 * Spanish from an Ecuadorian browser. The job's flow opens the demo portal's /ticker page, which writes a console
 * line every second, and then waits for minutes: the user opens the job while it runs, sees new lines arrive over
 * Server-Sent Events with their levels and streams, and cancels it. Then, on a job of the demo flow that finished,
 * they open a screenshot from the gallery and download the invoice PDF. axe-core checks the job page while live.
 *
 * The account, the connection and the flows are set up through the API: dashboard.test.ts writes them in the UI.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { demoFlowSteps, loginToDemoPortal } from '../../src/cli/demo.ts';
import { DEMO_LOCALE_COOKIE, DEMO_PASSWORD, DEMO_SESSION_COOKIE } from '../../src/embedded/demo-portal.ts';
import { startStack, type StackHandle } from '../../src/embedded/stack.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { assertNoProblems, checkAccessibility, cleanEnv, launchChromium, openPage, type WatchedPage } from './browser.ts';
import { seedStackDatabase } from '../support/database.ts';

const EMAIL = `lucia-${Date.now()}@example.com`;
const PASSWORD = 'caballo-correcto-bateria-42';
// A loaded machine (other suites on two cores) starts Chromium and the worker's browser slowly: bounds are generous,
// and every wait ends as soon as its condition holds.
const SLOW = { timeout: 120_000 };

describe('a long job watched live in the dashboard, cancelled, and a finished job\'s evidence opened', () => {
  const dir = tempDir('sri-web-live-');
  let stack: StackHandle;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  let token = '';
  let tickerFlowId = '';
  let doneJobId = '';

  const heading = (name: string | RegExp) => page.getByRole('heading', { level: 1, name });
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
  async function checkPage(what: string) {
    await checkAccessibility(page, what);
    assertNoProblems(w, what);
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
    const reg = await call<{ token: string }>('POST', '/api/auth/register', { email: EMAIL, password: PASSWORD, name: 'Lucía Andrade', orgName: 'Ferretería Quiteña' });
    token = reg.token;
    const host = new URL(stack.portalUrl).hostname;
    await call('POST', '/api/providers/demo/connect', {
      cookies: [
        { name: DEMO_SESSION_COOKIE, value: await loginToDemoPortal(stack.portalUrl), domain: host, path: '/', httpOnly: true, sameSite: 'Lax' },
        { name: DEMO_LOCALE_COOKIE, value: 'es-EC', domain: host, path: '/' },
      ],
      credentials: { portalPassword: DEMO_PASSWORD },
    });
    // The demo flow, run to done: the job whose screenshot and PDF the last test opens.
    const demo = await call<{ flow: { id: string } }>('POST', '/api/flows', { providerId: 'demo', version: '1.0.0', name: 'Facturas', steps: demoFlowSteps(stack.portalUrl) });
    await call('POST', `/api/flows/${demo.flow.id}/activate`);
    doneJobId = (await call<{ jobId: string }>('POST', '/api/run', { providerId: 'demo' })).jobId;
    await waitFor(async () => (await call<{ job: { status: string } }>('GET', `/api/jobs/${doneJobId}`)).job.status === 'done',
      { what: 'the demo job done', timeoutMs: 180_000 });
    // The long flow: the ticker page, then a wait far longer than the test (the worker's own limit is 300 s).
    const ticker = await call<{ flow: { id: string } }>('POST', '/api/flows', {
      providerId: 'demo', version: '2.0.0', name: 'Espera larga',
      steps: [{ type: 'navigate', url: `${stack.portalUrl}/ticker` }, { type: 'waitFor', timeoutMs: 280_000 }],
    });
    tickerFlowId = ticker.flow.id;
    await call('POST', `/api/flows/${tickerFlowId}/activate`);

    browser = await launchChromium();
    w = await openPage(browser, { locale: 'es-EC', timezoneId: 'America/Guayaquil', baseURL: stack.apiUrl });
    page = w.page;
    await page.goto('/login');
    await heading('Iniciar sesión').waitFor(SLOW);
    await page.getByLabel('Correo electrónico').fill(EMAIL);
    await page.getByLabel('Contraseña').fill(PASSWORD);
    await page.getByRole('button', { name: 'Iniciar sesión' }).click();
    await heading('Trabajos').waitFor(SLOW);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stack?.stop({ graceMs: 5000 });
    dir.remove();
  });

  /** The first tick from `n` on that the ticker logs as plain "tick N" (every fifth is a warning: "tick N: still working"). */
  const plainTick = (n: number) => (n % 5 === 0 ? n + 1 : n);
  /** The highest "tick N" the log shows now (0 before the first). */
  const lastTick = async () => {
    const messages = await page.getByRole('region', { name: /^Registro/ }).getByRole('cell', { name: /^tick \d+/ }).allTextContents();
    return Math.max(0, ...messages.map((m) => Number(/^tick (\d+)/.exec(m)?.[1] ?? 0)));
  };

  it('runs the long flow from its page, and shows its log live: new lines arrive while the page is open, levels and streams apart', async () => {
    const logResponses: string[] = [];
    page.on('response', (r) => { if (r.url().includes('/logs')) logResponses.push(`${r.status()} ${new Date().toISOString()}`); });
    page.on('requestfailed', (r) => { if (r.url().includes('/logs')) logResponses.push(`failed ${r.failure()?.errorText} ${new Date().toISOString()}`); });
    /** A line that does not come: what the page had and what the API's stream holds, to tell where lines stop. */
    const stalled = async (e: Error): Promise<never> => {
      const rows = await page.getByRole('row').allTextContents().catch(() => []);
      const jobId = page.url().split('/').pop() ?? '';
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(), 3000);
      let sse = '';
      try {
        const r = await fetch(`${stack.apiUrl}/api/jobs/${jobId}/logs`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: stop.signal });
        const reader = r.body!.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          sse += Buffer.from(value).toString();
        }
      } catch {
        // aborted after 3 s: what came is enough
      } finally {
        clearTimeout(timer);
      }
      const ticks = [...sse.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
      throw new Error(`${e.message}\nthe page's log responses: ${logResponses.join(', ')}\nits last rows: ${rows.slice(-3).join(' | ')}\n`
        + `problems: ${w.problems.join('; ')}\nthe API's stream now: last tick ${Math.max(0, ...ticks)}`);
    };
    await page.goto(`/flows/${tickerFlowId}`);
    await heading(/^Espera larga 2\.0\.0/).waitFor(SLOW);
    await page.getByRole('button', { name: 'Ejecutar ahora' }).click();
    await page.getByRole('link', { name: 'Ver el trabajo' }).click();
    await heading(/^Trabajo [0-9a-f]{8}$/).waitFor(SLOW);
    await page.getByText('en curso', { exact: true }).first().waitFor(SLOW);

    // Live: the log's heading says so, and lines keep coming over SSE after this page opened.
    const log = page.getByRole('region', { name: 'Registro en vivo' });
    await log.getByRole('cell', { name: /^tick \d+$/ }).first().waitFor(SLOW);
    const seen = await lastTick();
    assert.ok(seen > 0);
    const later = `tick ${plainTick(seen + 3)}`;
    assert.equal(await log.getByRole('cell', { name: later, exact: true }).count(), 0, `${later} is not logged yet`);
    const laterRow = log.getByRole('row').filter({ has: page.getByRole('cell', { name: later, exact: true }) });
    await laterRow.waitFor(SLOW).catch(stalled);
    // The page's console lines, and the worker's own, each with its level and stream as words in their own columns.
    assert.deepEqual((await laterRow.getByRole('cell').allTextContents()).slice(1), ['INFO', 'console', later]);
    const warn = log.getByRole('row').filter({ has: page.getByRole('cell', { name: /^tick \d+: still working$/ }) }).first();
    await warn.waitFor(SLOW);
    assert.deepEqual((await warn.getByRole('cell').allTextContents()).slice(1, 3), ['WARN', 'console']);
    const workerLine = log.getByRole('row').filter({ has: page.getByRole('cell', { name: /^script verified: sha256 / }) });
    assert.deepEqual((await workerLine.getByRole('cell').allTextContents()).slice(1, 3), ['INFO', 'worker']);

    // Following: as lines keep coming (more than the log's box holds), the newest is the one in view.
    await log.getByRole('cell', { name: `tick ${plainTick(seen + 8)}`, exact: true }).waitFor(SLOW).catch(stalled);
    const newest = log.getByRole('row').last();
    const [box, cell] = [await log.boundingBox(), await newest.boundingBox()];
    assert.ok(box && cell && cell.y >= box.y && cell.y + cell.height <= box.y + box.height + 1,
      `the newest line is in view (log ${JSON.stringify(box)}, line ${JSON.stringify(cell)})`);
    await checkPage('job page, live log');
  });

  it('asks before cancelling, then cancels the running job, and shows it cancelled in Spanish with what to do', async () => {
    // A change of mind leaves the job running: the question goes away and the Cancel button comes back.
    await page.getByRole('button', { name: 'Cancelar el trabajo' }).click();
    const question = page.getByRole('group', { name: /^¿Cancelar este trabajo\?/ });
    await question.waitFor(SLOW);
    await checkPage('job page, cancel confirmation');
    await question.getByRole('button', { name: 'Cancelar', exact: true }).click();
    await question.waitFor({ state: 'detached', ...SLOW });
    await page.getByRole('button', { name: 'Cancelar el trabajo' }).click();
    await page.getByRole('button', { name: 'Sí, cancelar el trabajo' }).click();
    await page.getByRole('status').getByText('Cancelación solicitada.').waitFor(SLOW);
    await page.getByText('cancelado', { exact: true }).first().waitFor(SLOW);
    await page.getByText('El trabajo fue cancelado. Ejecute el flujo de nuevo si aún lo necesita.').waitFor(SLOW);
    await page.getByRole('button', { name: 'Cancelar el trabajo' }).waitFor({ state: 'detached', ...SLOW });
    // The log is no longer live: the stored execution.log, complete.
    await page.getByText('El registro está completo.').waitFor(SLOW);
    await page.getByRole('region', { name: 'Registro', exact: true }).getByRole('cell', { name: /^tick \d+$/ }).first().waitFor(SLOW);
    await checkPage('job page, cancelled');
  });

  it('opens a screenshot of a finished job from its gallery, and downloads its invoice PDF with the hash the page shows', async () => {
    await page.goto(`/jobs/${doneJobId}`);
    await page.getByText('terminado', { exact: true }).first().waitFor(SLOW);
    // Opened from the gallery with the keyboard: full size in a dialog, closed with Escape back to the thumbnail.
    const thumb = page.getByRole('link', { name: 'Captura screenshot-0.png' });
    await thumb.focus();
    await page.keyboard.press('Enter');
    const viewer = page.getByRole('dialog', { name: 'screenshot-0.png' });
    await viewer.waitFor(SLOW);
    await viewer.getByRole('img', { name: 'Captura screenshot-0.png' }).waitFor(SLOW);
    await page.waitForFunction(() => {
      const img = document.querySelector('dialog img') as HTMLImageElement | null;
      return !!img && img.complete && img.naturalWidth > 0;
    }, undefined, SLOW);
    assert.ok(await viewer.getByRole('link', { name: 'Descargar screenshot-0.png' }).isVisible());
    await checkPage('job page, screenshot open');
    await page.keyboard.press('Escape');
    await viewer.waitFor({ state: 'detached', ...SLOW });
    assert.equal(await page.evaluate(() => document.activeElement?.querySelector('img')?.getAttribute('alt')), 'Captura screenshot-0.png',
      'focus is back on the thumbnail');

    const files = page.getByRole('region', { name: 'Archivos' });
    const pdfRow = files.getByRole('row').filter({ hasText: 'INV-1001.pdf' });
    const shownHash = await pdfRow.locator('code.hash').textContent();
    const [download] = await Promise.all([page.waitForEvent('download', SLOW), pdfRow.getByRole('link', { name: 'INV-1001.pdf' }).click()]);
    const bytes = readFileSync((await download.path())!);
    assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-');
    assert.equal(createHash('sha256').update(bytes).digest('hex'), shownHash);
    assertNoProblems(w, 'job page, evidence');
  });
});
