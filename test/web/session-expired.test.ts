/**
 * The providers page shows a connection that needs attention (docs/sessions.md), in Chromium, in Spanish from an
 * Ecuadorian browser and in English, against a test API (redis-server, s3rver, PGlite): a job of the connection ends
 * SESSION_EXPIRED (its result published on the organisation's results channel, as a worker publishes it), the results
 * listener marks the connection expired, and the page says so on the provider's card and at its top; connecting
 * again clears it. The page is checked with axe-core and for CSP violations.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Browser, Locator, Page } from 'playwright-core';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';
import { keys } from '../../src/shared/keys.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { waitFor } from '../support/services.ts';
import { assertNoProblems, checkAccessibility, launchChromium, openPage, type WatchedPage } from './browser.ts';

const PASSWORD = 'caballo-correcto-bateria-42';
const SLOW = { timeout: 60_000 };

describe('a connection whose portal session expired, on the providers page', () => {
  let t: TestApi;
  let browser: Browser;
  let token = '';
  let orgId = '';
  let userId = '';
  const email = `rosa-${randomUUID()}@example.com`;

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(t.api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    const json = await r.json() as any;
    assert.ok(r.ok, `${method} ${path} → ${r.status} ${JSON.stringify(json)}`);
    return json;
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

  before(async () => {
    await ensureWebBuilt();
    t = await startTestApi({ SCHEDULER_ENABLED: 'false' });
    const reg = await api('POST', '/api/auth/register', { email, password: PASSWORD, name: 'Rosa', orgName: `Org ${randomUUID()}` });
    token = reg.token;
    orgId = reg.org.id;
    userId = reg.user.id;
    await api('POST', '/api/providers/demo/connect', { cookies: [{ name: 'demo_session', value: 'stale', domain: '127.0.0.1', path: '/' }] });
    const flow = await api('POST', '/api/flows', { providerId: 'demo', version: '1.0.0', name: 'Facturas', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/invoices' }] });
    await api('POST', `/api/flows/${flow.flow.id}/activate`, {});
    // A job of the connection that ended SESSION_EXPIRED, its result as a worker publishes it.
    const jobId = (await api('POST', '/api/run', { providerId: 'demo' })).jobId as string;
    const result: ResultMessage = {
      jobId, orgId, userId, providerId: 'demo', success: false, status: 'failed', duration: 1200, attempt: 1, workerId: 'w-test',
      finishedAt: new Date().toISOString(), error: { code: 'SESSION_EXPIRED', message: 'The portal session of provider demo has expired' },
      files: { log: '', screenshots: [] },
    };
    await t.redis.publish(keys.orgDone(orgId), JSON.stringify(result));
    await waitFor(async () => (await api('GET', '/api/providers/connected')).connections[0]?.status === 'expired', { what: 'the connection marked expired' });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await t?.stop();
  });

  const card = (page: Page, name: string): Locator => page.getByRole('listitem').filter({ has: page.getByRole('heading', { name }) });

  it('says in Spanish that the connection needs attention, on its card and at the top of the page', async () => {
    const { w, page } = await signIn('es-EC');
    const demo = card(page, 'Demo supplier portal');
    await demo.getByText(/^Requiere atención: el .* el portal había cerrado esta sesión/).waitFor(SLOW);
    await page.getByText('Una conexión requiere atención: Demo supplier portal.', { exact: false }).waitFor(SLOW);
    assert.equal(await demo.getByRole('button', { name: 'Conectar de nuevo' }).count(), 1, 'the way out is on the card');
    await checkAccessibility(page, 'providers page with an expired connection');
    assertNoProblems(w, 'providers page');
    await w.context.close();
  });

  it('says it in English too, and connecting again clears it', async () => {
    const { w, page } = await signIn('en-US');
    const demo = card(page, 'Demo supplier portal');
    await demo.getByText(/^Needs attention: on .* the portal had logged this session out/).waitFor(SLOW);
    await page.getByText('A connection needs attention: Demo supplier portal.', { exact: false }).waitFor(SLOW);
    await api('POST', '/api/providers/demo/connect', { cookies: [{ name: 'demo_session', value: 'fresh', domain: '127.0.0.1', path: '/' }] });
    await page.reload();
    await demo.getByText(/^Connected until/).waitFor(SLOW);
    assert.equal(await page.getByText(/needs attention/i).count(), 0);
    assertNoProblems(w, 'providers page after connecting again');
    await w.context.close();
  });
});
