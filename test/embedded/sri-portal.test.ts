import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { detectCaptcha, injectCaptchaAnswer } from '../../src/execution-plane/job/captcha.ts';
import { startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import {
  inMaintenanceWindow, SRI_CAPTCHA_TOKEN, SRI_DEMO_CEDULA, SRI_DEMO_PASSWORD, SRI_DEMO_RUC, SRI_PATHS,
} from '../../src/embedded/sri-portal/index.ts';
import { soapRequest } from '../../src/embedded/sri-portal/files.ts';
import { authorisationXml, sriDataset, sriDocumentsFor, SRI_BUSY_MONTH, SRI_DEFAULT_YEAR } from '../../src/sri/generate.ts';
import { parseSriDocument } from '../../src/sri/parse.ts';

const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));

const form = (o: Record<string, string>) => ({
  method: 'POST', redirect: 'manual' as const,
  headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(o).toString(),
});

describe('SRI imitation (demo portal /sri)', () => {
  let portal: DemoPortal;
  /** The imitation's clock, moved by the session and maintenance tests. */
  let clock = Date.UTC(2026, 2, 10, 15, 0, 0);

  const login = async (usuario: string = SRI_DEMO_RUC, password = SRI_DEMO_PASSWORD, extra: Record<string, string> = {}) =>
    fetch(`${portal.url}${SRI_PATHS.login}`, form({ usuario, password, ciAdicional: '', ...extra }));
  const session = async (): Promise<string> => {
    const res = await login();
    assert.equal(res.status, 303);
    const cookie = res.headers.getSetCookie()[0] ?? '';
    return cookie.split(';')[0]!;
  };
  const get = (path: string, cookie?: string) =>
    fetch(`${portal.url}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  const search = (cookie: string, o: Record<string, string>) =>
    fetch(`${portal.url}${SRI_PATHS.recibidos}`, { ...form(o), headers: { ...form(o).headers, cookie } });
  const keysOf = (html: string) => [...html.matchAll(/data-clave="(\d{49})"/g)].map((m) => m[1]!);
  const admin = (path: string, body?: unknown) => fetch(`${portal.url}/__admin/sri/${path}`, body === undefined
    ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  before(async () => { portal = await startDemoPortal({ port: 0, sri: { now: () => clock } }); });
  after(async () => { await portal?.close(); });
  beforeEach(async () => {
    clock = Date.UTC(2026, 2, 10, 15, 0, 0);
    await admin('reset');
  });

  it('serves the login form with user, additional CI and password fields, in Spanish, without external assets', async () => {
    const html = await (await get(SRI_PATHS.login)).text();
    for (const id of ['usuario', 'ciAdicional', 'password', 'kc-login']) assert.match(html, new RegExp(`id="${id}"`));
    assert.match(html, /<html lang="es">/);
    assert.match(html, /Ingresar/);
    assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1)/);
  });

  it('logs in with the RUC or the cédula (with an additional CI), and refuses a wrong password or a malformed CI', async () => {
    assert.equal((await login()).status, 303);
    assert.equal((await login(SRI_DEMO_CEDULA, SRI_DEMO_PASSWORD, { ciAdicional: '1712345678' })).status, 303);
    const wrong = await login(SRI_DEMO_RUC, 'nope');
    assert.equal(wrong.status, 200);
    assert.deepEqual(wrong.headers.getSetCookie(), []);
    assert.match(await wrong.text(), /id="login-error">Usuario o contraseña incorrectos/);
    const badCi = await login(SRI_DEMO_RUC, SRI_DEMO_PASSWORD, { ciAdicional: '12ab' });
    assert.match(await badCi.text(), /C\.I\. adicional no es válida/);
  });

  it('asks for a CAPTCHA after three failed logins, with the demo widget signature, and accepts its token', async () => {
    for (let i = 0; i < 3; i++) await login(SRI_DEMO_RUC, 'wrong');
    const page = await (await get(SRI_PATHS.login)).text();
    assert.match(page, /class="g-recaptcha" id="captcha" data-sitekey="demo-site-key"/);
    const refused = await login();
    assert.equal(refused.status, 200, 'the right password alone is not enough now');
    assert.match(await refused.text(), /captcha/i);
    assert.equal((await login(SRI_DEMO_RUC, SRI_DEMO_PASSWORD, { 'g-recaptcha-response': SRI_CAPTCHA_TOKEN })).status, 303);
    assert.doesNotMatch(await (await get(SRI_PATHS.login)).text(), /g-recaptcha/, 'a good login clears the count');
  });

  it('keeps a session alive while it is used and ends it after 25 idle minutes', async () => {
    const cookie = await session();
    for (let i = 0; i < 3; i++) {
      clock += 20 * 60_000;
      assert.equal((await get(SRI_PATHS.recibidos, cookie)).status, 200, 'a sliding session');
    }
    clock += 26 * 60_000;
    const res = await get(SRI_PATHS.recibidos, cookie);
    assert.equal(res.status, 302);
    assert.match(res.headers.get('location') ?? '', /\/sri\/auth\/login\?redirect=/);
  });

  it('lists a month of facturas in pages of 20, each row with its XML and PDF, and the report lists every key', async () => {
    const cookie = await session();
    const res = await search(cookie, { ano: String(SRI_DEFAULT_YEAR), mes: String(SRI_BUSY_MONTH), dia: '0', cmbTipoComprobante: '1' });
    assert.equal(res.status, 303);
    const expected = sriDocumentsFor(sriDataset(), { year: SRI_DEFAULT_YEAR, month: SRI_BUSY_MONTH, tipo: 'factura' }).map((d) => d.claveAcceso);
    assert.ok(expected.length > 40, 'three pages');
    const seen: string[] = [];
    for (let p = 1; p <= 3; p++) {
      const html = await (await get(`${SRI_PATHS.recibidos}?pagina=${p}`, cookie)).text();
      const keys = keysOf(html);
      assert.equal(keys.length, p < 3 ? 20 : expected.length - 40);
      assert.equal(/id="siguiente"/.test(html), p < 3, `page ${p}: a next link except on the last page`);
      assert.equal((html.match(/class="xml"/g) ?? []).length, keys.length);
      assert.equal((html.match(/class="pdf"/g) ?? []).length, keys.length);
      seen.push(...keys);
    }
    assert.deepEqual(seen, expected);
    const report = await get(SRI_PATHS.reporte, cookie);
    assert.equal(report.status, 200);
    assert.match(report.headers.get('content-type') ?? '', /^text\/plain/);
    const lines = (await report.text()).trim().split('\r\n');
    const col = lines[0]!.split('\t').indexOf('CLAVE_ACCESO');
    assert.deepEqual(lines.slice(1).map((l) => l.split('\t')[col]), expected);
  });

  it('filters by day and says so when nothing matches', async () => {
    const cookie = await session();
    const all = sriDataset();
    const one = sriDocumentsFor(all, { year: SRI_DEFAULT_YEAR, month: SRI_BUSY_MONTH, tipo: 'factura' })[0]!;
    const day = Number(one.fechaEmision.slice(8));
    await search(cookie, { ano: String(SRI_DEFAULT_YEAR), mes: String(SRI_BUSY_MONTH), dia: String(day), cmbTipoComprobante: '1' });
    const keys = keysOf(await (await get(`${SRI_PATHS.recibidos}?pagina=1`, cookie)).text());
    assert.deepEqual(keys, sriDocumentsFor(all, { year: SRI_DEFAULT_YEAR, month: SRI_BUSY_MONTH, day, tipo: 'factura' }).map((d) => d.claveAcceso));
    await search(cookie, { ano: String(SRI_DEFAULT_YEAR - 3), mes: '1', dia: '0', cmbTipoComprobante: '1' });
    assert.match(await (await get(`${SRI_PATHS.recibidos}?pagina=1`, cookie)).text(), /id="sin-resultados">No existen datos/);
  });

  it('guards the search with an invisible CAPTCHA when switched on, passed by the widget token', async () => {
    assert.equal((await admin('settings', { searchCaptcha: true })).status, 200);
    const cookie = await session();
    const page = await (await get(SRI_PATHS.recibidos, cookie)).text();
    assert.match(page, /class="g-recaptcha" id="captcha" data-sitekey="demo-site-key" data-size="invisible"/);
    const q = { ano: String(SRI_DEFAULT_YEAR), mes: String(SRI_BUSY_MONTH), dia: '0', cmbTipoComprobante: '1' };
    const refused = await search(cookie, q);
    assert.equal(refused.status, 200);
    assert.match(await refused.text(), /id="consulta-error">Captcha incorrecta/);
    assert.equal((await search(cookie, { ...q, 'g-recaptcha-response': SRI_CAPTCHA_TOKEN })).status, 303);
    assert.equal(portal.sri.stats().captchaRefusals, 1);
  });

  it('downloads the authorised XML (the <autorizacion> the parser reads) and a PDF RIDE', async () => {
    const cookie = await session();
    const doc = sriDataset()[0]!;
    const xml = await get(`${SRI_PATHS.descarga}?tipo=xml&clave=${doc.claveAcceso}`, cookie);
    assert.equal(xml.status, 200);
    assert.match(xml.headers.get('content-disposition') ?? '', new RegExp(`filename="${doc.claveAcceso}.xml"`));
    const text = await xml.text();
    assert.equal(text, authorisationXml(doc));
    const parsed = parseSriDocument(text, `${doc.claveAcceso}.xml`);
    assert.equal(parsed.claveAcceso, doc.claveAcceso);
    assert.equal(parsed.estado, 'AUTORIZADO');
    assert.deepEqual(parsed.problemas, []);
    const pdf = Buffer.from(await (await get(`${SRI_PATHS.descarga}?tipo=pdf&clave=${doc.claveAcceso}`, cookie)).arrayBuffer());
    assert.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-');
    assert.match(pdf.toString('latin1'), /%%EOF\n$/);
    assert.equal((await get(`${SRI_PATHS.descarga}?tipo=xml&clave=${doc.claveAcceso}`)).status, 302, 'downloads need a session');
  });

  it('answers autorizacionComprobante over SOAP without a session: the document in CDATA, none for an unknown key', async () => {
    const doc = sriDataset()[5]!;
    const call = (body: string) => fetch(`${portal.url}${SRI_PATHS.autorizacion}`, {
      method: 'POST', headers: { 'content-type': 'text/xml; charset=utf-8' }, body,
    });
    const res = await call(soapRequest(doc.claveAcceso));
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /<numeroComprobantes>1<\/numeroComprobantes>/);
    assert.match(text, /<comprobante><!\[CDATA\[<\?xml/);
    for (const tag of ['estado', 'numeroAutorizacion', 'fechaAutorizacion', 'ambiente']) assert.match(text, new RegExp(`<${tag}>`));
    const parsed = parseSriDocument(text, 'soap.xml');
    assert.equal(parsed.claveAcceso, doc.claveAcceso);
    assert.equal(parsed.fechaAutorizacion, doc.fechaAutorizacion);
    const unknown = await (await call(soapRequest('1'.repeat(49)))).text();
    assert.match(unknown, /<numeroComprobantes>0<\/numeroComprobantes><autorizaciones><\/autorizaciones>/);
    assert.equal((await call('<nope/>')).status, 500);
    const wsdl = await (await fetch(`${portal.url}${SRI_PATHS.autorizacion}?wsdl`)).text();
    assert.match(wsdl, /<operation name="autorizacionComprobante">/);
  });

  it('answers every page with the maintenance page (503) while in maintenance, on demand or in its nightly window', async () => {
    await admin('settings', { maintenance: 'on' });
    const res = await get(SRI_PATHS.login);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /id="mantenimiento"/);
    assert.equal((await fetch(`${portal.url}/__admin/sri/settings`)).status, 200, 'the switches stay reachable');
    await admin('settings', { maintenance: 'window', maintenanceWindow: { from: '23:30', to: '01:00' } });
    clock = Date.UTC(2026, 2, 10, 5, 0, 0); // 00:00 in Ecuador
    assert.equal((await get(SRI_PATHS.login)).status, 503);
    clock = Date.UTC(2026, 2, 10, 6, 30, 0); // 01:30
    assert.equal((await get(SRI_PATHS.login)).status, 200);
    assert.equal(inMaintenanceWindow(Date.UTC(2026, 0, 1, 4, 45), { from: '23:30', to: '01:00' }), true);
    assert.equal(inMaintenanceWindow(Date.UTC(2026, 0, 1, 12, 0), { from: '02:00', to: '03:00' }), false);
  });

  it('rate-limits a client with 429 and Retry-After, until its window passes', async () => {
    await admin('settings', { rateLimit: { requests: 3, windowMs: 10_000 } });
    for (let i = 0; i < 3; i++) assert.equal((await get(SRI_PATHS.login)).status, 200);
    const limited = await get(SRI_PATHS.login);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '10');
    assert.match(await limited.text(), /demasiadas solicitudes/i);
    clock += 10_000;
    assert.equal((await get(SRI_PATHS.login)).status, 200);
  });

  it('refuses admin settings that do not validate', async () => {
    const res = await admin('settings', { sessionIdleMs: 'soon' });
    assert.equal(res.status, 400);
    assert.equal((await admin('settings', { unknown: true })).status, 400);
    assert.equal(portal.sri.settings().sessionIdleMs, 25 * 60_000);
  });

  it('works in Chromium as a flow drives it: form login, the worker\'s CAPTCHA detection and token on the search, every page, an XML download, the SOAP service through the page', { skip: !CHROMIUM && 'no chromium' }, async () => {
    await admin('settings', { searchCaptcha: true });
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM!,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
      });
      const context = await browser.newContext({ acceptDownloads: true });
      const page = await context.newPage();
      await page.goto(`${portal.url}${SRI_PATHS.recibidos}`);
      assert.match(page.url(), /\/sri\/auth\/login\?redirect=/);
      await page.fill('#usuario', SRI_DEMO_RUC);
      await page.fill('#password', SRI_DEMO_PASSWORD);
      await page.click('#kc-login');
      await page.waitForSelector('#frmPrincipal');
      const captcha = await detectCaptcha(page);
      assert.equal(captcha?.kind, 'recaptcha');
      assert.equal(captcha?.siteKey, 'demo-site-key');
      await page.selectOption('#ano', String(SRI_DEFAULT_YEAR));
      await page.selectOption('#mes', String(SRI_BUSY_MONTH));
      await page.selectOption('#cmbTipoComprobante', { label: 'Factura' });
      await injectCaptchaAnswer(page, captcha!, SRI_CAPTCHA_TOKEN);
      await page.click('#btnRecaptcha');
      await page.waitForSelector('#tablaCompRecibidos');
      const keys: string[] = [];
      for (;;) {
        keys.push(...await page.locator('tr.comprobante').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-clave') ?? '')));
        if (await page.locator('#siguiente').count() === 0) break;
        await page.click('#siguiente');
        await page.waitForURL(new RegExp(`pagina=${keys.length / 20 + 1}$`));
      }
      const expected = sriDocumentsFor(sriDataset(), { year: SRI_DEFAULT_YEAR, month: SRI_BUSY_MONTH, tipo: 'factura' });
      assert.deepEqual(keys, expected.map((d) => d.claveAcceso));
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('tr.comprobante a.xml').first().click()]);
      assert.equal(download.suggestedFilename(), `${expected[40]!.claveAcceso}.xml`, 'the last page\'s first row');
      const soap = await page.evaluate(async ({ url, body }) => {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/xml; charset=utf-8' }, body });
        return res.text();
      }, { url: SRI_PATHS.autorizacion, body: soapRequest(expected[0]!.claveAcceso) });
      assert.equal(parseSriDocument(soap, 'soap.xml').claveAcceso, expected[0]!.claveAcceso);
      await context.close();
    } finally {
      await browser?.close();
    }
  });
});
