/**
 * The providers page shows a provider's pacing and its circuit breaker (docs/providers.md), in Chromium, in Spanish
 * from an Ecuadorian browser and in English, against a test API (redis-server, s3rver, PGlite): the demo provider is
 * given a pacing (spacing, requests per minute, a maintenance window in force, a breaker), two of its jobs fail on the
 * portal as the workers' gate scripts record it, and the card says the breaker is open and until when; after a
 * success it says closed. The page is checked with axe-core and for CSP violations.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Browser, Locator, Page } from 'playwright-core';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';
import { registerProvider } from '../../src/control-plane/providers/catalogue.ts';
import type { ProviderPacing } from '../../src/shared/provider-pacing.ts';
import { ProviderGate } from '../../src/shared/provider-gate/gate.ts';
import { JobQueue, type Taken } from '../../src/shared/queue/job-queue.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { testDemoProvider } from '../support/providers.ts';
import { assertNoProblems, checkAccessibility, launchChromium, openPage, type WatchedPage } from './browser.ts';

const PASSWORD = 'caballo-correcto-bateria-42';
const SLOW = { timeout: 60_000 };

describe('a provider\'s pacing and circuit breaker on the providers page', () => {
  let t: TestApi;
  let browser: Browser;
  let gate: ProviderGate;
  let token: string;
  const email = `lucia-${randomUUID()}@example.com`;
  const now = Date.now();
  const utc = (at: number) => new Date(at).toISOString().slice(11, 16);
  const pacing: ProviderPacing = {
    minSpacingMs: 5000, jitterMs: 1000, requestsPerMinute: 60,
    // Covers now for ten minutes either side, whenever the test runs.
    maintenanceWindows: [{ start: utc(now - 600_000), end: utc(now + 600_000), timezone: 'UTC' }],
    breaker: { failureThreshold: 2, coolDownMs: 3_600_000 },
  };

  async function signIn(locale: 'es-EC' | 'en-US'): Promise<{ w: WatchedPage; page: Page }> {
    const w = await openPage(browser, { locale, timezoneId: 'America/Guayaquil', baseURL: t.api.url });
    const page = w.page;
    await page.goto('/login?next=%2Fproviders');
    const es = locale === 'es-EC';
    await page.getByLabel(es ? 'Correo electrónico' : 'E-mail').fill(email);
    await page.getByLabel(es ? 'Contraseña' : 'Password').fill(PASSWORD);
    await page.getByRole('button', { name: es ? 'Iniciar sesión' : 'Log in' }).click();
    await page.getByRole('heading', { name: es ? 'Proveedores' : 'Providers', level: 1 }).waitFor(SLOW);
    return { w, page };
  }
  const card = (page: Page, name: string): Locator => page.getByRole('listitem').filter({ has: page.getByRole('heading', { name }) });

  before(async () => {
    await ensureWebBuilt();
    t = await startTestApi({ SCHEDULER_ENABLED: 'false' });
    const r = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD, name: 'Lucía', orgName: `Org ${randomUUID()}` }),
    });
    assert.equal(r.status, 201, await r.clone().text());
    token = ((await r.json()) as { token: string }).token;
    await registerProvider(t.db, t.redis, { ...testDemoProvider(), pacing });
    gate = ProviderGate.connect(t.redis);
    // Two jobs of the provider failed on the portal (what each worker's gate step records after a job).
    await gate.record('demo', 'job-1', 'failure', pacing);
    await gate.record('demo', 'job-2', 'failure', pacing);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await t?.stop();
  });

  it('says in Spanish how the provider is paced, that it is under maintenance and that its breaker is open', async () => {
    const { w, page } = await signIn('es-EC');
    const demo = card(page, 'Demo supplier portal');
    await demo.getByText(/^Abierto tras 2 fallos seguidos del portal: los trabajos nuevos esperan, sin gastar intentos, hasta el /).waitFor(SLOW);
    await demo.getByText(/^Al menos 5 s entre el inicio de dos trabajos/).waitFor(SLOW);
    await demo.getByText('Como máximo 60 solicitudes por minuto, entre todas las organizaciones').waitFor(SLOW);
    await demo.getByText(/^Mantenimiento todos los días de .* \(UTC\): los trabajos esperan a que termine$/).waitFor(SLOW);
    await demo.getByText(/^En mantenimiento hasta el /).waitFor(SLOW);
    await checkAccessibility(page, 'providers page with an open breaker');
    assertNoProblems(w, 'providers page');
    await w.context.close();
  });

  it('says it in English too, and shows the breaker closed once a job succeeded', async () => {
    const { w, page } = await signIn('en-US');
    const demo = card(page, 'Demo supplier portal');
    await demo.getByText(/^Open after 2 failures of the portal in a row: new jobs wait, without using up attempts, until /).waitFor(SLOW);
    await gate.record('demo', 'job-3', 'success', pacing);
    await page.reload();
    await demo.getByText('Closed: jobs start (0 failures of the portal in a row)').waitFor(SLOW);
    assert.equal(await demo.getByText(/^Open after/).count(), 0);
    assertNoProblems(w, 'providers page after the breaker closed');
    await w.context.close();
  });

  it('says on a queued job\'s page why it waits: another run of its portal account, or the portal\'s maintenance window', async () => {
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${t.api.url}${path}`, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, ...(body ? { body: JSON.stringify(body) } : {}) });
      assert.ok(res.ok, `${method} ${path} → ${res.status}`);
      return res.json() as Promise<any>;
    };
    await api('POST', '/api/providers/demo/connect', { cookies: [] });
    const flow = await api('POST', '/api/flows', { providerId: 'demo', version: '1.0.0', name: 'Facturas', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }] });
    await api('POST', `/api/flows/${flow.flow.id}/activate`, {});
    const first = (await api('POST', '/api/run', { providerId: 'demo' })).jobId as string;
    const second = (await api('POST', '/api/run', { providerId: 'demo' })).jobId as string;
    // A worker takes the first; its take parks the second behind it (one run at a time per portal account).
    const queue = await JobQueue.connect(t.redis);
    let running: Taken | undefined;
    for (let tk = await queue.take('web-test'); tk; tk = await queue.take('web-test')) if (tk.jobId === first) running = tk;
    assert.ok(running, 'the first job was taken');

    const { w, page } = await signIn('es-EC');
    await page.goto(`/jobs/${second}`);
    await page.getByText(/esperando a que termine otra ejecución de esta cuenta del portal/).waitFor(SLOW);
    // The gate puts the first back until the maintenance window ends; its page says until when.
    await queue.defer(running, Date.now() + 600_000, 'maintenance');
    await page.goto(`/jobs/${first}`);
    await page.getByText(/esperando a que termine la ventana de mantenimiento del portal \(/).waitFor(SLOW);
    await checkAccessibility(page, 'a queued job waiting for maintenance');
    assertNoProblems(w, 'job page of a waiting job');
    await w.context.close();
  });
});
