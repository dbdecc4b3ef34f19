/**
 * The dashboard as a person uses it, in Chromium, against the whole platform as `sri up` runs it (embedded Redis and
 * S3, PGlite, the API serving the built app, a worker, the demo portal; random ports, a temporary DATA_DIR). One
 * user's journey, in Spanish from an Ecuadorian browser: sign up, connect the demo provider by pasting cookies,
 * write a flow with every step type in the editor, activate it, run it, follow the job to its evidence; then the
 * jobs list, a session that ends while typing, logout. Every page is checked with axe-core and for CSP violations.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type Browser, type Locator, type Page } from 'playwright-core';
import { loginToDemoPortal } from '../../src/cli/demo.ts';
import { startStack, type StackHandle } from '../../src/embedded/stack.ts';
import { tempDir } from '../support/services.ts';
import { assertNoProblems, checkAccessibility, cleanEnv, launchChromium, openPage, type WatchedPage } from './browser.ts';
import { seedStackDatabase } from '../support/database.ts';

const EMAIL = `ana-${Date.now()}@example.com`;
const PASSWORD = 'caballo-correcto-bateria-42';
const SLOW = { timeout: 60_000 };

describe('the dashboard, in Chromium, against the whole stack', () => {
  const dir = tempDir('sri-web-');
  let stack: StackHandle;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  let jobUrl = '';

  const heading = (name: string | RegExp) => page.getByRole('heading', { level: 1, name });
  const see = (text: string | RegExp, within: Page | Locator = page) => within.getByText(text).first().waitFor(SLOW);

  async function checkPage(what: string) {
    await checkAccessibility(page, what);
    assertNoProblems(w, what);
  }

  /** Adds a step of `type` (its Spanish name) at the end of the editor's list; returns it, by its number. */
  async function addStep(type: string): Promise<Locator> {
    const n = await page.getByRole('group', { name: /^Paso \d+:/ }).count();
    await page.getByLabel('Tipo del paso nuevo').selectOption({ label: type });
    await page.getByRole('button', { name: 'Agregar un paso' }).click();
    const step = page.getByRole('group', { name: `Paso ${n + 1}: ${type}` });
    await step.waitFor();
    return step;
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
    browser = await launchChromium();
    w = await openPage(browser, { locale: 'es-EC', timezoneId: 'America/Guayaquil', baseURL: stack.apiUrl });
    page = w.page;
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stack?.stop({ graceMs: 5000 });
    dir.remove();
  });

  it('sends a visitor to log in, in the browser\'s language (Spanish for es-EC), and signs them up', async () => {
    await page.goto('/jobs');
    await page.waitForURL(/\/login\?next=%2Fjobs/);
    await heading('Iniciar sesión').waitFor();
    assert.equal(await page.locator('html').getAttribute('lang'), 'es');
    await checkPage('login');

    await page.getByRole('link', { name: 'Cree una' }).click();
    await heading('Crear una cuenta').waitFor();
    await page.getByLabel('Su nombre').fill('Ana Pérez');
    await page.getByLabel('Correo electrónico').fill(EMAIL);
    await page.getByLabel('Organización').fill('Importadora Andina');
    await page.getByLabel('Contraseña').fill(PASSWORD);
    await checkPage('register');
    await page.getByRole('button', { name: 'Crear cuenta' }).click();
    // Back where they were going.
    await page.waitForURL(/\/jobs$/, SLOW);
    await heading('Trabajos').waitFor();
    await see('Aún no hay trabajos. Conecte un proveedor');
    await see('Sesión de Ana Pérez (Importadora Andina)');
    await checkPage('jobs, empty');
  });

  it('keeps the session in an HttpOnly cookie the page cannot read', async () => {
    const cookies = await w.context.cookies();
    const session = cookies.find((c) => c.name === 'sri_session');
    assert.ok(session, 'session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    const visible = await page.evaluate(() => document.cookie);
    assert.ok(!visible.includes('sri_session'), `document.cookie: ${visible}`);
    assert.match(visible, /sri_csrf=/);
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert.ok(!stored.includes(session.value), 'no token in web storage');
  });

  it('switches the language, and keeps the choice after a reload', async () => {
    await page.getByLabel('Idioma').selectOption('en');
    await heading('Jobs').waitFor();
    await page.reload();
    await heading('Jobs').waitFor();
    assert.equal(await page.locator('html').getAttribute('lang'), 'en');
    await page.getByLabel('Language').selectOption('es');
    await heading('Trabajos').waitFor();
  });

  it('connects the demo provider by pasting its cookies, with the portal password as a credential never shown back', async () => {
    const portalCookie = await loginToDemoPortal(stack.portalUrl);
    await page.getByRole('navigation').getByRole('link', { name: 'Proveedores' }).click();
    await heading('Proveedores').waitFor();
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'Demo supplier portal' }) });
    await see('No conectado', card);
    await card.getByRole('button', { name: 'Conectar' }).click();
    const form = page.getByRole('region', { name: 'Conectar Demo supplier portal' });
    await form.getByLabel('Cookies de la sesión').fill(`demo_session=${portalCookie}; demo_locale=es-EC`);
    await see('2 cookies leídas.', form);
    await form.getByRole('button', { name: 'Agregar una credencial' }).click();
    await form.getByLabel('Nombre de la credencial').fill('portalPassword');
    const value = form.getByLabel('Valor');
    assert.equal(await value.getAttribute('type'), 'password');
    await value.fill('demo-password');
    await checkPage('providers, connect form');
    await form.getByRole('button', { name: 'Conectar', exact: true }).click();
    await see(/^Demo supplier portal conectado hasta el/);
    await see(/Conectado hasta el/, card);
    const html = await page.content();
    assert.ok(!html.includes('demo-password') && !html.includes(portalCookie), 'nothing secret stays in the page');
    await checkPage('providers, connected');
  });

  it('writes a flow with every step type: flags a host the provider does not allow, shows the API\'s refusal at its step', async () => {
    const portal = stack.portalUrl;
    await page.getByRole('navigation').getByRole('link', { name: 'Flujos' }).click();
    await heading('Flujos').waitFor();
    await see('Aún no hay flujos.');
    await page.getByRole('link', { name: 'Nuevo flujo' }).first().click();
    await heading('Nuevo flujo').waitFor();
    await page.getByLabel('Proveedor').selectOption({ label: 'Demo supplier portal' });
    await page.getByLabel('Nombre', { exact: true }).fill('Facturas');
    await page.getByLabel('Versión').fill('1.0.0');

    const nav = await addStep('navegar');
    await nav.getByLabel('URL').fill('http://portal.example.com/login');
    await see(/El host portal\.example\.com no es uno de los que permite el proveedor/, nav);
    await nav.getByLabel('URL').fill(`${portal}/login`);
    await nav.getByText(/no es uno de los que permite/).waitFor({ state: 'detached' });

    const user = await addStep('rellenar');
    await user.getByLabel('Selector CSS').fill('#username');
    await user.getByLabel('Valor', { exact: true }).fill('demo');
    const pass = await addStep('rellenar');
    await pass.getByLabel('Selector CSS').fill('#password');
    await pass.getByLabel('un secreto').check();
    await pass.getByLabel('Nombre del secreto').fill('portalPassword');
    // A fill step can also type a TOTP code of the connection; switching back keeps the secret's name.
    await pass.getByLabel('un código TOTP').check();
    await pass.getByLabel('Nombre de la semilla TOTP (de la conexión)').fill('portal');
    await pass.getByLabel('un secreto').check();
    assert.equal(await pass.getByLabel('Nombre del secreto').inputValue(), 'portalPassword');
    const click = await addStep('hacer clic');
    await click.getByLabel('Selector CSS').fill('#submit');
    const wait = await addStep('esperar');
    await wait.getByLabel('Selector CSS').fill('table#invoices');
    // A download step added too early, moved down with the keyboard after the screenshot.
    const download = await addStep('descargar');
    await download.getByLabel('Selector CSS').fill('a.pdf');
    const shot = await addStep('captura de pantalla');
    await shot.getByLabel('Página completa').check();
    await page.getByRole('button', { name: 'Bajar el paso 6' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('group', { name: 'Paso 6: captura de pantalla' }).waitFor();
    await page.getByRole('group', { name: 'Paso 7: descargar' }).waitFor();
    // A step added by mistake, removed.
    await addStep('hacer clic');
    await page.getByRole('button', { name: 'Quitar el paso 8' }).click();
    await page.getByRole('group', { name: /^Paso 8:/ }).waitFor({ state: 'detached' });

    const extract = await addStep('extraer');
    await extract.getByLabel('Nombre del resultado').fill('invoices');
    await extract.getByLabel('Selector de filas').fill('table#invoices tbody tr');
    const fields: Array<[string, string, string]> = [['number', 'td.number', ''], ['date', 'td.date', ''], ['amount', 'td.amount', ''], ['1pdf', 'a.pdf', 'href']];
    for (const [i, [name, selector, attribute]] of fields.entries()) {
      if (i > 0) await extract.getByRole('button', { name: 'Agregar un campo' }).click();
      await extract.getByLabel('Nombre del campo').nth(i).fill(name);
      await extract.getByLabel('Selector dentro de la fila').nth(i).fill(selector);
      if (attribute) await extract.getByLabel('Atributo (opcional)').nth(i).fill(attribute);
    }
    await checkPage('flow editor');

    // "1pdf" is not a field name: the API refuses the flow and says so at step 8.
    await page.getByRole('button', { name: 'Crear flujo' }).click();
    const step8 = page.getByRole('group', { name: 'Paso 8: extraer' });
    await see(/fields\.1pdf: must start with a letter/, step8);
    await see('El flujo no se guardó: hay que corregir el paso 8 (vea su mensaje).');
    await extract.getByLabel('Nombre del campo').nth(3).fill('pdf');
    await page.getByRole('button', { name: 'Crear flujo' }).click();

    await heading('Facturas 1.0.0').waitFor(SLOW);
    const hash = await page.locator('code.hash').first().textContent();
    assert.match(hash ?? '', /^[0-9a-f]{64}$/);
    await see('export default async function run');
    await checkPage('flow page');
  });

  it('activates the flow and runs it now with metadata', async () => {
    await page.getByRole('button', { name: 'Activar' }).click();
    await see('La versión 1.0.0 es ahora el flujo activo de Demo supplier portal.');
    await page.getByLabel('Metadatos (JSON, opcional)').fill('{"period": "2026-01"}');
    await page.getByRole('button', { name: 'Ejecutar ahora' }).click();
    await page.getByRole('link', { name: 'Ver el trabajo' }).click();
    await heading(/^Trabajo [0-9a-f]{8}$/).waitFor();
    jobUrl = page.url();
    await checkPage('job page, queued or running');
  });

  it('follows the job to done: its log by level, its screenshot, its files with hashes, its parsed data with a CSV export', async () => {
    await page.getByText('terminado', { exact: true }).first().waitFor({ timeout: 180_000 });
    const log = page.getByRole('region', { name: 'Registro' });
    await log.getByRole('row').nth(1).waitFor(SLOW);
    assert.ok(await log.getByRole('cell', { name: 'INFO' }).count() > 0, 'log lines show their level');

    const shot = page.getByRole('img', { name: 'Captura screenshot-0.png' });
    await shot.waitFor();
    await page.waitForFunction(() => {
      const img = document.querySelector('img[alt="Captura screenshot-0.png"]') as HTMLImageElement | null;
      return !!img && img.complete && img.naturalWidth > 0;
    }, undefined, SLOW);

    const files = page.getByRole('region', { name: 'Archivos' });
    const pdfRow = files.getByRole('row').filter({ hasText: 'INV-1001.pdf' });
    await pdfRow.waitFor();
    assert.match(await pdfRow.textContent() ?? '', /application\/pdf/);
    assert.match(await pdfRow.locator('code.hash').textContent() ?? '', /^[0-9a-f]{64}$/);

    const data = page.getByRole('region', { name: /^invoices/ });
    await see('INV-1001', data);
    // Amounts in the user's locale (es-EC: 1.250,00), the portal's own text in the CSV.
    await see('1.250,00', data);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Exportar invoices como CSV' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'invoices.csv');
    const [header, ...lines] = readFileSync((await download.path())!, 'utf8').split('\r\n').filter(Boolean);
    const columns = header!.split(',');
    assert.deepEqual([...columns].sort(), ['amount', 'date', 'number', 'pdf']);
    const rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i], v])));
    assert.deepEqual(rows[0], { number: 'INV-1001', date: '2026-01-15', amount: '1250.00', pdf: '/invoices/INV-1001.pdf' });
    assert.equal(rows.length, 3);
    await checkPage('job page, done');
  });

  it('lists the job with its status, provider, flow version, user and attempt', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Trabajos' }).click();
    await heading('Trabajos').waitFor();
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: /^Abrir el trabajo/ }) });
    await row.waitFor();
    const cells = await row.getByRole('cell').allTextContents();
    assert.equal(cells[1], 'terminado');
    assert.equal(cells[2], 'Demo supplier portal');
    assert.equal(cells[3], '1.0.0');
    assert.equal(cells[4], 'Ana Pérez', 'the user who ran it');
    assert.match(cells[5] ?? '', /^\d{1,2}\s[a-z]{3}\s\d{4},\s\d{1,2}:\d\d\s[ap]\.\sm\.$/, 'created, in es-EC');
    assert.equal(cells[8], '1', 'attempt');
    await see('1 trabajo');
    await checkPage('jobs list');
  });

  it('works at phone width without sideways scrolling of the page', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/jobs', '/providers', '/flows', jobUrl]) {
      await page.goto(path);
      await page.getByRole('heading', { level: 1 }).waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 1, `${path}: the page is ${overflow}px wider than the phone`);
    }
    await checkPage('phone');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('is usable from the keyboard: the first Tab reaches "skip to content", which moves to the page', async () => {
    // A fresh load: focus starts at the top of the document (client-side navigations move it to the new page's heading).
    await page.goto('/flows');
    await heading('Flujos').waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Saltar al contenido');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
  });

  it('sends the user to log in when the session ends while they type, and brings them back with what they typed', async () => {
    await page.goto('/flows/new');
    await heading('Nuevo flujo').waitFor();
    await page.getByLabel('Proveedor').selectOption({ label: 'Demo supplier portal' });
    await page.getByLabel('Nombre', { exact: true }).fill('Borrador de retenciones');
    const nav = await addStep('navegar');
    await nav.getByLabel('URL').fill(`${stack.portalUrl}/withholdings`);
    // The session ends under them (expiry, logout in another tab, removal from the organisation).
    await w.context.clearCookies();
    await page.getByRole('button', { name: 'Crear flujo' }).click();
    await page.waitForURL(/\/login\?next=%2Fflows%2Fnew&expired=1/, SLOW);
    await see('Su sesión terminó. Inicie sesión de nuevo: lo que estaba escribiendo se conserva.');
    await page.getByLabel('Correo electrónico').fill(EMAIL);
    await page.getByLabel('Contraseña').fill(PASSWORD);
    await page.getByRole('button', { name: 'Iniciar sesión' }).click();
    await heading('Nuevo flujo').waitFor(SLOW);
    assert.equal(await page.getByLabel('Nombre', { exact: true }).inputValue(), 'Borrador de retenciones');
    assert.equal(await page.getByLabel('Proveedor').inputValue(), 'demo');
    assert.equal(await page.getByRole('group', { name: 'Paso 1: navegar' }).getByLabel('URL').inputValue(), `${stack.portalUrl}/withholdings`);
  });

  it('logs out: the login page says so, and the old session cookie no longer opens anything', async () => {
    const before = (await w.context.cookies()).find((c) => c.name === 'sri_session');
    assert.ok(before);
    await page.getByRole('button', { name: 'Cerrar sesión' }).click();
    await see('Ha cerrado la sesión.');
    await heading('Iniciar sesión').waitFor();
    assert.equal((await w.context.cookies()).find((c) => c.name === 'sri_session'), undefined);
    const replay = await fetch(`${stack.apiUrl}/api/session`, { headers: { cookie: `sri_session=${before.value}` } });
    assert.equal(replay.status, 401);
    await page.goto('/providers');
    await page.waitForURL(/\/login\?next=%2Fproviders/);
    assertNoProblems(w, 'after logout');
  });
});
