/**
 * The flow page's schedule editor (docs/dashboard.md, docs/schedules.md) in Chromium, in Spanish from an Ecuadorian
 * browser, against a test API (redis-server, s3rver, PGlite; its scheduler off: nothing runs): create a schedule and
 * see its next five run times on its clock, a pattern the API refuses, pause and resume, edit, delete. The page is
 * checked with axe-core and for CSP violations.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Browser, Locator, Page } from 'playwright-core';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { assertNoProblems, checkAccessibility, launchChromium, openPage, type WatchedPage } from './browser.ts';

const PASSWORD = 'caballo-correcto-bateria-42';
const SLOW = { timeout: 60_000 };

describe('the schedule editor on the flow page, in Chromium', () => {
  let t: TestApi;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  let token = '';
  let flowId = '';
  const email = `sara-${randomUUID()}@example.com`;

  const see = (text: string | RegExp, within: Page | Locator = page) => within.getByText(text).first().waitFor(SLOW);
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(t.api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    const json = await r.json() as any;
    assert.ok(r.ok, `${method} ${path} → ${r.status} ${JSON.stringify(json)}`);
    return json;
  };

  before(async () => {
    await ensureWebBuilt();
    t = await startTestApi({ SCHEDULER_ENABLED: 'false' });
    const reg = await api('POST', '/api/auth/register', { email, password: PASSWORD, name: 'Sara', orgName: `Org ${randomUUID()}` });
    token = reg.token;
    await api('POST', '/api/providers/demo/connect', { cookies: [] });
    flowId = (await api('POST', '/api/flows', { providerId: 'demo', version: '1.0.0', name: 'Facturas', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }] })).flow.id;
    await api('POST', `/api/flows/${flowId}/activate`, {});
    browser = await launchChromium();
    w = await openPage(browser, { locale: 'es-EC', timezoneId: 'America/Guayaquil', baseURL: t.api.url });
    page = w.page;
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await t?.stop();
  });

  it('creates a schedule in the browser\'s time zone and shows its next five run times; pauses, resumes, edits and deletes it', async () => {
    await page.goto(`/login?next=${encodeURIComponent(`/flows/${flowId}`)}`);
    await page.getByLabel('Correo electrónico').fill(email);
    await page.getByLabel('Contraseña').fill(PASSWORD);
    await page.getByRole('button', { name: 'Iniciar sesión' }).click();
    await page.getByRole('heading', { level: 1, name: 'Facturas 1.0.0' }).waitFor(SLOW);
    const section = page.getByRole('region', { name: 'Programaciones' });
    await see('Aún no hay programaciones que ejecuten este flujo.', section);
    assert.equal(await section.getByLabel('Zona horaria').inputValue(), 'America/Guayaquil', 'the browser\'s zone by default');

    // A pattern the API refuses: its code in Spanish, and the field it names.
    await section.getByLabel('Patrón cron').fill('61 * * * *');
    await section.getByRole('button', { name: 'Crear programación' }).click();
    await see('Este patrón cron no es válido o nunca se cumple', section);
    await see(/^cron: .*minute/, section);

    await section.getByLabel('Patrón cron').fill('0 8 * * 1-5');
    await section.getByLabel('Después de una interrupción').selectOption('runOnce');
    await section.getByRole('button', { name: 'Crear programación' }).click();
    await see('Programación creada.', section);
    assert.equal(await section.getByLabel('Patrón cron').inputValue(), '', 'the form is empty again');
    const item = section.getByRole('listitem').filter({ has: page.getByRole('heading', { name: '0 8 * * 1-5 · America/Guayaquil' }) });
    await see('activa · ejecutar una vez por las perdidas · esta versión (1.0.0)', item);
    const runs = item.getByRole('list').getByRole('listitem');
    await page.getByRole('heading', { name: 'Próximas ejecuciones (America/Guayaquil)' }).waitFor(SLOW);
    assert.equal(await runs.count(), 5);
    // Weekdays at 08:00 on the schedule's clock, written as es-EC writes it ("lunes, 7 de diciembre de 2026, 8:00:00 a. m.").
    for (const text of await runs.allTextContents()) assert.match(text, /^(lunes|martes|miércoles|jueves|viernes), .* 8:00:00\s*a\.\s*m\.$/, text);
    await checkAccessibility(page, 'flow page with a schedule');

    await item.getByRole('button', { name: 'Pausar la programación 0 8 * * 1-5' }).click();
    await see('Programación en pausa.', section);
    await see(/^en pausa ·/, item);
    assert.equal(await item.getByRole('list').count(), 0, 'a paused schedule shows no next runs');
    await item.getByRole('button', { name: 'Reanudar la programación 0 8 * * 1-5' }).click();
    await see('Programación reanudada.', section);

    await item.getByRole('button', { name: 'Editar la programación 0 8 * * 1-5' }).click();
    const form = section.getByRole('form', { name: 'Editar la programación 0 8 * * 1-5' });
    await form.getByLabel('Patrón cron').fill('30 9 * * *');
    await form.getByLabel('Zona horaria').fill('Europe/Madrid');
    await form.getByRole('button', { name: 'Guardar' }).click();
    await see('Programación guardada.', section);
    const edited = section.getByRole('listitem').filter({ has: page.getByRole('heading', { name: '30 9 * * * · Europe/Madrid' }) });
    for (const text of await edited.getByRole('list').getByRole('listitem').allTextContents()) assert.match(text, / 9:30:00\s*a\.\s*m\.$/, text);
    const [stored] = (await api('GET', '/api/schedules')).schedules;
    assert.deepEqual([stored.cron, stored.timezone, stored.missedRunPolicy, stored.flowId], ['30 9 * * *', 'Europe/Madrid', 'runOnce', flowId]);

    await edited.getByRole('button', { name: 'Eliminar la programación 30 9 * * *' }).click();
    await see('Programación eliminada.', section);
    await see('Aún no hay programaciones que ejecuten este flujo.', section);
    assert.deepEqual((await api('GET', '/api/schedules')).schedules, []);
    await checkAccessibility(page, 'flow page after deleting the schedule');
    assertNoProblems(w, 'flow page');
  });
});
