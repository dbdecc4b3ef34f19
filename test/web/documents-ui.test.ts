/**
 * The documents page in Chromium (issue 16, docs/documents.md), against the API on real services (redis-server,
 * s3rver, PGlite) serving the built dashboard; Spanish, from an Ecuadorian browser. An organisation with 25 SRI
 * documents (October and November 2026, invoices and a withholding receipt, two issuers): the list pages and
 * filters by month, type and text with the filters in the URL, shows the totals of the whole filtered set, exports
 * it as a CSV whose sums are those totals, exports it as XLSX, downloads a document's XML, and does the
 * same from the keyboard alone. axe-core and CSP checks on each state.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Browser, Download, Locator, Page } from 'playwright-core';
import { upsertDocument } from '../../src/control-plane/db/queries/documents.ts';
import { ensureWebBuilt } from '../../src/embedded/web-build.ts';
import { s3Uri } from '../../src/shared/s3.ts';
import type { SriDocument } from '../../src/shared/sri-document.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { makeDocument } from '../support/sri-documents.ts';
import { assertNoProblems, checkAccessibility, launchChromium, openPage, type WatchedPage } from './browser.ts';
import ExcelJS from 'exceljs';

const SLOW = { timeout: 60_000 };
const PASSWORD = 'contador-prolijo-2026';

/** Presses Tab until `target` has the focus. */
async function tabTo(page: Page, target: Locator, what: string): Promise<void> {
  await target.waitFor(SLOW);
  for (let i = 0; i < 200; i++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((el) => el === document.activeElement)) return;
  }
  assert.fail(`${what}: not reached with Tab`);
}

/** The cells of a CSV the export wrote (every field quoted), without its byte-order mark. */
function csvRows(text: string): string[][] {
  return text.replace(/^\uFEFF/, '').trimEnd().split('\r\n').map((l) => [...l.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!.replace(/""/g, '"')));
}
const cents = (s: string) => Math.round(Number(s) * 100);

describe('the documents page, in Chromium', () => {
  let t: TestApi;
  let browser: Browser;
  let w: WatchedPage;
  let page: Page;
  const docs: SriDocument[] = [];
  const email = `contadora-${randomUUID()}@example.com`;
  const heading = (name: string) => page.getByRole('heading', { level: 1, name });
  const totals = () => page.getByRole('region', { name: 'Totales de los comprobantes filtrados' });
  const money = (s: string) => new Intl.NumberFormat('es-EC', { minimumFractionDigits: 2, maximumFractionDigits: 6 }).format(s as unknown as number);

  async function checkPage(what: string) {
    await checkAccessibility(page, what);
    assertNoProblems(w, what);
  }
  async function saved(d: Download): Promise<string> {
    const path = await d.path();
    return readFile(path, 'utf8');
  }

  before(async () => {
    await ensureWebBuilt();
    t = await startTestApi({ SCHEDULER_ENABLED: 'false' });
    const reg = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD, name: 'Carmen Contadora', orgName: 'Importadora Andina' }),
    }).then((r) => r.json()) as { user: { id: string }; org: { id: string } };
    const orgId = reg.org.id;
    for (let i = 0; i < 22; i++) {
      docs.push(makeDocument({ fecha: `2026-11-${String(1 + i).padStart(2, '0')}`, ruc: '1790011111001', razonSocial: 'Ferretería El Martillo S.A.',
        secuencial: 100 + i, iva: [['4', '15', `${10 + i}.00`, `${((10 + i) * 0.15).toFixed(2)}`]], sinImpuestos: `${10 + i}.00`,
        total: ((10 + i) * 1.15).toFixed(2) }));
    }
    docs.push(makeDocument({ tipo: 'retencion', fecha: '2026-11-28', ruc: '0990022222001', razonSocial: 'Servicios Costa Cía. Ltda.', secuencial: 9,
      retenciones: [['100.00', '1.75']] }));
    for (const day of ['10', '20']) {
      docs.push(makeDocument({ fecha: `2026-10-${day}`, ruc: '0990022222001', razonSocial: 'Servicios Costa Cía. Ltda.', secuencial: Number(day),
        iva: [['0', '0', '5.00', '0.00']], sinImpuestos: '5.00', total: '5.00' }));
    }
    const bucket = t.config.s3ResultsBucket;
    await t.db.withOrg(orgId, async (tx) => {
      for (const d of docs) {
        const key = `results/${orgId}/${reg.user.id}/job-seed/${d.claveAcceso}.xml`;
        await t.blobStore.put(bucket, key, Buffer.from(`<autorizacion><numeroAutorizacion>${d.claveAcceso}</numeroAutorizacion></autorizacion>`), 'application/xml');
        await upsertDocument(tx, orgId, 'job-seed', d, s3Uri(bucket, key));
      }
    });
    browser = await launchChromium();
    w = await openPage(browser, { locale: 'es-EC', timezoneId: 'America/Guayaquil', baseURL: t.api.url });
    page = w.page;
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await t?.stop();
  });

  it('is reached from the main navigation and shows every document, paged, with the totals of all of them', async () => {
    await page.goto('/login');
    await page.getByLabel('Correo electrónico').fill(email);
    await page.getByLabel('Contraseña').fill(PASSWORD);
    await page.getByRole('button', { name: 'Iniciar sesión' }).click();
    await page.getByRole('navigation', { name: 'Principal' }).getByRole('link', { name: 'Comprobantes', exact: true }).click();
    await heading('Comprobantes').waitFor(SLOW);
    await totals().getByText('25', { exact: true }).waitFor(SLOW);
    await page.getByText('Página 1 de 2').waitFor(SLOW);
    assert.equal(await page.getByRole('region', { name: 'Comprobantes' }).getByRole('row').count(), 21, 'a header and 20 documents');
    await checkPage('documents');
    await page.getByRole('button', { name: 'Siguiente' }).click();
    await page.getByText('Página 2 de 2').waitFor(SLOW);
    // The first page stays on screen until the second arrives.
    await page.waitForFunction(() => document.querySelectorAll('table tbody tr').length === 5, undefined, SLOW);
    assert.match(page.url(), /page=2/);
  });

  it('filters by month, type and text, keeps the filters in the URL, and totals the filtered set', async () => {
    await page.getByLabel('Mes').fill('2026-11');
    await page.waitForURL(/month=2026-11/, SLOW);
    assert.doesNotMatch(page.url(), /page=/, 'a new filter starts at the first page');
    const nov = docs.filter((d) => d.fechaEmision.startsWith('2026-11'));
    const novTotal = (nov.reduce((s, d) => s + cents(d.totales.importeTotal), 0) / 100).toFixed(2);
    await totals().getByText('23', { exact: true }).waitFor(SLOW);
    await totals().getByText(money(novTotal), { exact: true }).waitFor(SLOW);
    await page.getByLabel('Tipo').selectOption({ label: 'Comprobante de retención' });
    await totals().getByText('1', { exact: true }).waitFor(SLOW);
    await totals().getByText(money('1.75'), { exact: true }).waitFor(SLOW);
    await page.getByRole('cell', { name: /Servicios Costa/ }).waitFor(SLOW);
    await checkPage('documents, filtered');
    await page.getByRole('button', { name: 'Quitar filtros' }).click();
    await totals().getByText('25', { exact: true }).waitFor(SLOW);
    await page.getByLabel('Buscar').fill('costa');
    await totals().getByText('3', { exact: true }).waitFor(SLOW);
    await page.getByLabel('Buscar').fill('nadie-así');
    await page.getByText('Ningún comprobante cumple estos filtros.').waitFor(SLOW);
    await checkPage('documents, nothing matches');
    await page.getByRole('link', { name: 'Quitar filtros' }).click();
    await totals().getByText('25', { exact: true }).waitFor(SLOW);
  });

  it('exports the filtered set as a CSV whose sums are the totals shown, and as an XLSX workbook', async () => {
    await page.getByLabel('Mes').fill('2026-11');
    await totals().getByText('23', { exact: true }).waitFor(SLOW);
    const [download] = await Promise.all([page.waitForEvent('download', SLOW), page.getByRole('button', { name: 'Exportar CSV' }).click()]);
    assert.equal(download.suggestedFilename(), 'comprobantes-2026-11.csv');
    const [head, ...rows] = csvRows(await saved(download));
    assert.equal(rows.length, 23);
    const col = (name: string) => head!.indexOf(name);
    assert.ok(col('Total') > 0 && col('IVA') > 0 && col('Subtotal 15 %') > 0, head!.join(','));
    const api = await page.evaluate(async () => (await fetch('/api/documents?year=2026&month=11')).json()) as { totals: { importeTotal: string; iva: string } };
    const sum = (c: number) => rows.reduce((s, r) => s + cents(r[c]!), 0);
    assert.equal(sum(col('Total')), cents(api.totals.importeTotal));
    assert.equal(sum(col('IVA')), cents(api.totals.iva));
    const [xlsx] = await Promise.all([page.waitForEvent('download', SLOW), page.getByRole('button', { name: 'Exportar Excel (XLSX)' }).click()]);
    assert.equal(xlsx.suggestedFilename(), 'comprobantes-2026-11.xlsx');
    const book = new ExcelJS.Workbook();
    await book.xlsx.readFile(await xlsx.path());
    assert.equal(book.getWorksheet('Comprobantes')!.rowCount, 23 + 2, 'the header, 23 documents and the totals');
    await checkPage('documents, exported');
  });

  it('downloads a document\'s XML', async () => {
    const first = docs.filter((d) => d.fechaEmision.startsWith('2026-11')).sort((x, y) => y.fechaEmision.localeCompare(x.fechaEmision))[0]!;
    const number = `${first.serie}-${first.secuencial}`;
    const [download] = await Promise.all([page.waitForEvent('download', SLOW), page.getByRole('button', { name: `Descargar el XML de ${number}` }).click()]);
    assert.equal(download.suggestedFilename(), `${first.claveAcceso}.xml`);
    assert.match(await saved(download), new RegExp(first.claveAcceso));
  });

  it('works from the keyboard: search, then export with Enter', async () => {
    await page.goto('/documents');
    await heading('Comprobantes').waitFor(SLOW);
    await tabTo(page, page.getByLabel('Buscar'), 'the search field');
    await page.keyboard.type('martillo');
    await totals().getByText('22', { exact: true }).waitFor(SLOW);
    await tabTo(page, page.getByRole('button', { name: 'Exportar CSV' }), 'Exportar CSV');
    const [download] = await Promise.all([page.waitForEvent('download', SLOW), page.keyboard.press('Enter')]);
    assert.equal(csvRows(await saved(download)).length, 23, 'the headers and the 22 documents found');
    await checkPage('documents, searched from the keyboard');
  });

  it('fits a phone without sideways scrolling (the table scrolls in its own region)', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto('/documents?month=2026-11');
    await totals().getByText('23', { exact: true }).waitFor(SLOW);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `the page is ${overflow}px wider than the phone`);
    await checkPage('documents at phone width');
  });
});
