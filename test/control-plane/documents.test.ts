/**
 * The documents table and its API (issue 16 "One record per access key, and exports", docs/documents.md), on real
 * services (redis-server, s3rver, PGlite): the results listener upserts the SRI documents of a job's parsed data —
 * one row per access key, a later job's fetch counted as seen again, invalid objects left out with a logged reason —
 * and GET /api/documents filters, pages and totals them, GET /api/documents/{claveAcceso} links the XML evidence,
 * GET /api/documents/export writes the ledger (CSV). Another organisation sees none of it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { upsertDocument } from '../../src/control-plane/db/queries/documents.ts';
import { recordResultMessage } from '../../src/control-plane/results/listener.ts';
import { s3Uri } from '../../src/shared/s3.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { SRI_DOCUMENTS_KEY } from '../../src/shared/sri-document.ts';
import { startTestApi, type TestApi, type TestOrg } from '../support/api.ts';
import { waitFor } from '../support/services.ts';
import { makeDocument, publishDocuments } from '../support/sri-documents.ts';
import ExcelJS from 'exceljs';

const RUC_A = '1790011111001';
const RUC_B = '0990022222001';

// Four documents of November 2026 and one of December, two issuers, three VAT rates and a withholding.
const NOV_1 = makeDocument({ fecha: '2026-11-03', ruc: RUC_A, razonSocial: 'Ferretería El Martillo S.A.', secuencial: 101,
  iva: [['4', '15', '100.00', '15.00'], ['0', '0', '20.00', '0.00']], sinImpuestos: '120.00', total: '135.00' });
const NOV_2 = makeDocument({ fecha: '2026-11-15', ruc: RUC_B, razonSocial: 'Servicios Costa Cía. Ltda.', nombreComercial: 'COSTANET', secuencial: 7,
  serie: '002-010', iva: [['5', '5', '40.00', '2.00']], sinImpuestos: '40.00', total: '42.00' });
const NOV_3 = makeDocument({ tipo: 'notaCredito', fecha: '2026-11-20', ruc: RUC_A, razonSocial: 'Ferretería El Martillo S.A.', secuencial: 5,
  iva: [['4', '15', '10.00', '1.50']], sinImpuestos: '10.00', total: '11.50' });
const NOV_4 = makeDocument({ tipo: 'retencion', fecha: '2026-11-30', ruc: RUC_B, razonSocial: '=HYPERLINK("http://evil.example","clic")',
  secuencial: 9, retenciones: [['100.00', '1.75'], ['15.00', '4.50']] });
const DEC_1 = makeDocument({ fecha: '2026-12-01', ruc: RUC_A, razonSocial: 'Ferretería El Martillo S.A.', secuencial: 102,
  iva: [['2', '12', '0.10', '0.01'], ['4', '15', '0.20', '0.03']], sinImpuestos: '0.30', total: '0.34' });

describe('SRI documents: one record per access key, the list, the XML link and the export', () => {
  let t: TestApi;
  let a: TestOrg;
  let b: TestOrg;
  let firstJob = '';
  let xmls = new Map<string, Buffer>();

  const get = async (org: TestOrg, path: string) => {
    const r = await fetch(`${t.api.url}${path}`, { headers: { authorization: `Bearer ${org.token}` } });
    // Decoded keeping a byte-order mark (fetch's text() drops it).
    const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(await r.arrayBuffer());
    let body: any;
    try { body = JSON.parse(text); } catch { body = undefined; }
    return { status: r.status, body, text, headers: r.headers };
  };
  const list = async (query: string, org = a) => (await get(org, `/api/documents?${query}`)).body;
  const claves = (body: { documents: { claveAcceso: string }[] }) => body.documents.map((d) => d.claveAcceso);
  const jobDone = (org: TestOrg, jobId: string) => waitFor(async () => (await get(org, `/api/jobs/${jobId}`)).body?.job?.status === 'done' || undefined,
    { what: `job ${jobId} recorded as done` });
  const publish = async (org: TestOrg, docs: unknown[], extra: Record<string, unknown> = {}) => {
    const jobId = await t.runJob(org);
    const sent = await publishDocuments({ redis: t.redis, blobStore: t.blobStore, bucket: t.config.s3ResultsBucket }, org, jobId, docs, extra);
    await jobDone(org, jobId);
    return { jobId, sent };
  };

  before(async () => {
    t = await startTestApi({ SCHEDULER_ENABLED: 'false' });
    a = await t.createOrg();
    b = await t.createOrg();
    const first = await publish(a, [NOV_1, NOV_2, NOV_3]);
    firstJob = first.jobId;
    xmls = first.sent;
  });
  after(async () => { await t?.stop(); });

  it('records each document of a finished job\'s parsed data once, with the job that fetched it and its XML evidence', async () => {
    const body = await list('pageSize=100');
    assert.equal(body.total, 3);
    assert.deepEqual(claves(body), [NOV_3.claveAcceso, NOV_2.claveAcceso, NOV_1.claveAcceso], 'newest issue date first');
    const nov2 = body.documents.find((d: { claveAcceso: string }) => d.claveAcceso === NOV_2.claveAcceso);
    assert.deepEqual({ ...nov2, firstSeenAt: undefined, lastSeenAt: undefined }, {
      claveAcceso: NOV_2.claveAcceso, claveAccesoValida: true, type: 'factura', version: '1.1.0', ambiente: '1', estado: 'AUTORIZADO',
      numeroAutorizacion: NOV_2.claveAcceso, fechaAutorizacion: '2026-11-15T15:00:00.000Z',
      issuer: { ruc: RUC_B, razonSocial: 'Servicios Costa Cía. Ltda.', nombreComercial: 'COSTANET' },
      receptor: { tipoIdentificacion: '04', identificacion: '1790012345001', razonSocial: 'IMPORTADORA ANDINA S.A.' },
      serie: '002-010', secuencial: '000000007', fechaEmision: '2026-11-15', moneda: 'DOLAR',
      subtotal: '40.00', descuento: '0.00', iva: '2.00', importeTotal: '42.00', retenido: '0', problems: 0,
      firstJobId: firstJob, lastJobId: firstJob, seenAgain: 0, firstSeenAt: undefined, lastSeenAt: undefined,
    });
    const detail = await get(a, `/api/documents/${NOV_1.claveAcceso}`);
    assert.equal(detail.status, 200);
    assert.deepEqual(detail.body.document.document, NOV_1, 'the parser\'s whole object, as it arrived');
    assert.equal(detail.body.document.xml.name, `${NOV_1.claveAcceso}.xml`);
    const xml = await fetch(detail.body.document.xml.url);
    assert.equal(xml.status, 200);
    assert.deepEqual(Buffer.from(await xml.arrayBuffer()), xmls.get(NOV_1.claveAcceso), 'the link serves the evidence byte for byte');
    assert.match(xml.headers.get('content-disposition') ?? '', /attachment/);
  });

  it('recognises a document fetched again by a later job: no second row, counted as seen again', async () => {
    const { jobId } = await publish(a, [NOV_2, NOV_3, NOV_4]);
    const body = await list('pageSize=100');
    assert.equal(body.total, 4);
    const byKey = new Map(body.documents.map((d: { claveAcceso: string }) => [d.claveAcceso, d]));
    for (const k of [NOV_2.claveAcceso, NOV_3.claveAcceso]) {
      assert.deepEqual([(byKey.get(k) as any).seenAgain, (byKey.get(k) as any).firstJobId, (byKey.get(k) as any).lastJobId], [1, firstJob, jobId], k);
    }
    assert.equal((byKey.get(NOV_1.claveAcceso) as any).seenAgain, 0);
    assert.deepEqual([(byKey.get(NOV_4.claveAcceso) as any).seenAgain, (byKey.get(NOV_4.claveAcceso) as any).firstJobId], [0, jobId]);
    // The same job recorded again (a retried job whose result is kept twice) does not count twice.
    const again = await t.db.withOrg(a.orgId, (tx) => upsertDocument(tx, a.orgId, jobId, NOV_2, null));
    assert.equal(again, 'same-job');
    assert.equal((await get(a, `/api/documents/${NOV_2.claveAcceso}`)).body.document.seenAgain, 1);
  });

  it('leaves out objects that break the parser output contract or that the database refuses, with the reason logged, and keeps the rest', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } }));
    const jobId = await t.runJob(a);
    const good = makeDocument({ fecha: '2026-10-01', ruc: RUC_A, razonSocial: 'Octubre S.A.', secuencial: 1, sinImpuestos: '1.00', total: '1.00' });
    const bad = [
      { ...good, claveAcceso: '123' },
      { ...good, claveAcceso: good.claveAcceso.replace(/^\d/, '9'), totales: { ...good.totales, importeTotal: 1.5 } },
      'not an object', null,
      // A well-formed date the contract lets through but PostgreSQL has no year 0 for: refused by the database, alone.
      makeDocument({ fecha: '0000-10-02', ruc: RUC_A, razonSocial: 'Año cero S.A.', secuencial: 2, sinImpuestos: '1.00', total: '1.00' }),
      good,
    ];
    const prefix = `results/${a.orgId}/${a.userId}/${jobId}/`;
    await t.blobStore.put(t.config.s3ResultsBucket, `${prefix}parsed-data.json`, Buffer.from(JSON.stringify({ [SRI_DOCUMENTS_KEY]: bad, rows: 3 })), 'application/json');
    const msg: ResultMessage = {
      jobId, orgId: a.orgId, userId: a.userId, providerId: 'demo', success: true, status: 'done', duration: 1, attempt: 1, workerId: 'w',
      finishedAt: new Date().toISOString(), files: { log: s3Uri(t.config.s3ResultsBucket, `${prefix}execution.log`), screenshots: [], parsedData: s3Uri(t.config.s3ResultsBucket, `${prefix}parsed-data.json`) },
    };
    const outcome = await recordResultMessage({ db: t.db, blobStore: t.blobStore, resultsBucket: t.config.s3ResultsBucket, logger }, a.orgId, msg);
    assert.equal(outcome, 'recorded', 'the result itself is recorded');
    assert.equal((await get(a, `/api/documents/${good.claveAcceso}`)).status, 200);
    assert.equal((await get(a, `/api/documents/${good.claveAcceso}`)).body.document.xml, null, 'no evidence listed: no link');
    const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.msg?.startsWith('SRI document in parsed data left out'));
    assert.deepEqual(warnings.map((w) => w.index), [0, 1, 2, 3]);
    assert.match(warnings[0].reason, /claveAcceso/);
    assert.match(warnings[1].reason, /totales\.importeTotal/);
    assert.ok(lines.some((l) => /SRI document not recorded: the database refused it/.test(l)), lines.join(''));
    assert.ok(lines.some((l) => /"rejected":5/.test(l) && /"inserted":1/.test(l)), lines.join(''));
    // Out of the way of the filters below.
    await t.db.withOrg(a.orgId, (tx) => tx.query('DELETE FROM documents WHERE clave_acceso = $1', [good.claveAcceso]));
  });

  it('shows another organisation none of them, whatever it asks', async () => {
    assert.deepEqual((await list('pageSize=100', b)), {
      documents: [], page: 1, pageSize: 100, total: 0,
      totals: { count: 0, subtotal: '0', descuento: '0', iva: '0', importeTotal: '0', retenido: '0' },
    });
    const r = await get(b, `/api/documents/${NOV_1.claveAcceso}`);
    assert.deepEqual([r.status, r.body.error.code], [404, 'NOT_FOUND']);
    const csv = await get(b, '/api/documents/export?format=csv');
    assert.equal(csv.status, 200);
    assert.equal(csv.text.replace(/^\uFEFF/, '').trim().split('\r\n').length, 1, 'the headers only');
    assert.equal((await t.db.withOrg(b.orgId, (tx) => tx.query('SELECT * FROM documents'))).length, 0);
    // B's own copy of a document A has is B's own row: the same access key in two organisations is two records.
    const { jobId } = await publish(b, [NOV_1]);
    const mine = await get(b, `/api/documents/${NOV_1.claveAcceso}`);
    assert.deepEqual([mine.body.document.firstJobId, mine.body.document.seenAgain], [jobId, 0]);
    assert.equal((await get(a, `/api/documents/${NOV_1.claveAcceso}`)).body.document.firstJobId, firstJob);
  });

  it('filters by period (year and month, or from/to), type, issuer and text, and totals the whole filtered set', async () => {
    await publish(a, [DEC_1]);
    const nov = await list('year=2026&month=11');
    assert.deepEqual(claves(nov).sort(), [NOV_1, NOV_2, NOV_3, NOV_4].map((d) => d.claveAcceso).sort());
    assert.deepEqual(nov.totals, { count: 4, subtotal: '170.00', descuento: '0.00', iva: '18.50', importeTotal: '188.50', retenido: '6.25' });
    assert.equal((await list('year=2026')).total, 5);
    assert.deepEqual(claves(await list('from=2026-11-15&to=2026-11-30')).sort(), [NOV_2, NOV_3, NOV_4].map((d) => d.claveAcceso).sort());
    assert.deepEqual(claves(await list('from=2026-11-30')).sort(), [NOV_4, DEC_1].map((d) => d.claveAcceso).sort());
    assert.deepEqual(claves(await list('type=notaCredito')), [NOV_3.claveAcceso]);
    assert.deepEqual(claves(await list(`issuerRuc=${RUC_A}&year=2026&month=11`)), [NOV_3.claveAcceso, NOV_1.claveAcceso]);
    assert.deepEqual(claves(await list('q=costanet')), [NOV_2.claveAcceso], 'trade name, any case');
    assert.deepEqual(claves(await list('q=martillo&type=factura')), [DEC_1.claveAcceso, NOV_1.claveAcceso]);
    assert.deepEqual(claves(await list(`q=${encodeURIComponent('002-010-000000007')}`)), [NOV_2.claveAcceso], 'serie-secuencial');
    assert.deepEqual(claves(await list(`q=${NOV_3.claveAcceso.slice(0, 10)}`)), [NOV_3.claveAcceso], 'part of the access key');
    assert.equal((await list(`q=${encodeURIComponent('%')}`)).total, 0, 'LIKE wildcards in the text match themselves');
    const dec = await list('year=2026&month=12');
    assert.deepEqual(dec.totals, { count: 1, subtotal: '0.30', descuento: '0.00', iva: '0.04', importeTotal: '0.34', retenido: '0' }, 'exact decimals, no float rounding');
  });

  it('pages within the filter: total and totals count every page', async () => {
    const p1 = await list('pageSize=2&page=1');
    const p2 = await list('pageSize=2&page=2');
    const p3 = await list('pageSize=2&page=3');
    assert.deepEqual([p1.total, p1.documents.length, p2.documents.length, p3.documents.length], [5, 2, 2, 1]);
    assert.deepEqual([...claves(p1), ...claves(p2), ...claves(p3)], [DEC_1, NOV_4, NOV_3, NOV_2, NOV_1].map((d) => d.claveAcceso));
    assert.deepEqual(p1.totals, p3.totals);
    assert.deepEqual((await list('pageSize=2&page=9')).documents, []);
  });

  it('refuses malformed filters with VALIDATION_FAILED naming the field', async () => {
    for (const [query, field] of [['month=11', 'month'], ['year=2026&from=2026-01-01', 'year'], ['from=2026-02-01&to=2026-01-01', 'to'],
      ['issuerRuc=123', 'issuerRuc'], ['type=boleta', 'type'], ['from=2026-13-01', 'from'], ['pageSize=1000', 'pageSize']] as const) {
      const r = await get(a, `/api/documents?${query}`);
      assert.equal(r.status, 400, query);
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
      assert.ok(r.body.error.details.some((d: { field: string }) => d.field === field), `${query}: ${JSON.stringify(r.body.error.details)}`);
    }
    assert.equal((await get(a, '/api/documents/export?format=pdf')).status, 400);
  });

  it('exports the filtered set as a CSV ledger with Spanish headers, a column per VAT rate, exact sums, and no formula a spreadsheet would run', async () => {
    const r = await get(a, '/api/documents/export?format=csv&year=2026&month=11');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/csv; charset=utf-8/);
    assert.equal(r.headers.get('content-disposition'), 'attachment; filename="comprobantes-2026-11.csv"');
    assert.ok(r.text.startsWith('\uFEFF'), 'a byte-order mark, so spreadsheets read UTF-8');
    const parse = (line: string) => [...line.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!.replace(/""/g, '"'));
    const [head, ...rows] = r.text.slice(1).trimEnd().split('\r\n').map(parse);
    assert.deepEqual(head, ['Fecha de emisión', 'Tipo de comprobante', 'Serie-Secuencial', 'RUC emisor', 'Razón social emisor', 'Clave de acceso',
      'Número de autorización', 'Subtotal 0 %', 'Subtotal 5 %', 'Subtotal 15 %', 'Descuento', 'IVA', 'Total', 'Retenciones']);
    assert.deepEqual(rows.map((row) => row.slice(0, 5)), [
      ['2026-11-03', 'Factura', '001-001-000000101', RUC_A, 'Ferretería El Martillo S.A.'],
      ['2026-11-15', 'Factura', '002-010-000000007', RUC_B, 'Servicios Costa Cía. Ltda.'],
      ['2026-11-20', 'Nota de crédito', '001-001-000000005', RUC_A, 'Ferretería El Martillo S.A.'],
      ['2026-11-30', 'Comprobante de retención', '001-001-000000009', RUC_B, '\'=HYPERLINK("http://evil.example","clic")'],
    ]);
    assert.deepEqual(rows[0]!.slice(7), ['20.00', '0.00', '100.00', '0.00', '15.00', '135.00', '0']);
    assert.deepEqual(rows[3]!.slice(7), ['0.00', '0.00', '0.00', '0.00', '0', '0.00', '6.25']);
    const sum = (col: number) => rows.reduce((s, row) => s + Math.round(Number(row[col]) * 100), 0) / 100;
    const nov = await list('year=2026&month=11');
    assert.deepEqual([sum(7) + sum(8) + sum(9), sum(11), sum(12), sum(13)],
      [Number(nov.totals.subtotal), Number(nov.totals.iva), Number(nov.totals.importeTotal), Number(nov.totals.retenido)], 'the CSV adds up to the list\'s totals');
    // December has a 12 % line: its column appears when the set has one.
    const dec = await get(a, '/api/documents/export?year=2026&month=12');
    assert.match(dec.text, /"Subtotal 0 %","Subtotal 12 %","Subtotal 15 %"/);
    assert.equal(dec.headers.get('content-disposition'), 'attachment; filename="comprobantes-2026-12.csv"');
  });

  it('prefixes every text cell a spreadsheet would run as a formula', async () => {
    const names = ['+cmd|calc', '-2+3', '@SUM(A1:A2)', '\tTAB', 'Normal S.A.'];
    await publish(a, names.map((razonSocial, i) => makeDocument({ fecha: '2025-01-0' + (i + 1), ruc: RUC_A, razonSocial, secuencial: 500 + i, sinImpuestos: '1.00', total: '-1.00' })));
    const r = await get(a, '/api/documents/export?year=2025');
    const [head, ...cells] = r.text.slice(1).trimEnd().split('\r\n').map((l) => [...l.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!));
    assert.deepEqual(cells.map((c) => c[4]), ['\'+cmd|calc', '\'-2+3', '\'@SUM(A1:A2)', '\'\tTAB', 'Normal S.A.']);
    const total = head!.indexOf('Total');
    assert.ok(cells.every((c) => c[total] === '-1.00'), `a negative amount stays a number: ${JSON.stringify(cells)}`);
  });

  it('exports format=xlsx: the same columns and rows as the CSV, amounts as numbers, formulas kept as text, a totals row', async () => {
    const res = await fetch(`${t.api.url}/api/documents/export?format=xlsx&year=2025`, { headers: { authorization: `Bearer ${a.token}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /spreadsheetml/);
    const book = new ExcelJS.Workbook();
    await book.xlsx.load(await res.arrayBuffer());
    const sheet = book.getWorksheet('Comprobantes')!;
    const values = (n: number) => (sheet.getRow(n).values as unknown[]).slice(1);
    const csv = (await get(a, '/api/documents/export?year=2025')).text.slice(1).trimEnd().split('\r\n')
      .map((l) => [...l.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!));
    assert.deepEqual(values(1), csv[0], 'the same headers');
    assert.equal(sheet.rowCount, csv.length + 1, 'every row, and a totals row');
    const total = csv[0]!.indexOf('Total');
    const razon = csv[0]!.indexOf('Razón social emisor');
    const names = csv.slice(1).map((_, i) => values(i + 2)[razon]);
    assert.ok(names.includes('+cmd|calc') && names.includes('@SUM(A1:A2)'), `text as written: ${JSON.stringify(names)}`);
    for (let r = 2; r <= csv.length; r++) {
      const cell = sheet.getRow(r).getCell(total + 1);
      assert.equal(typeof cell.value, 'number', 'an amount is a number');
      assert.equal(cell.formula, undefined);
      assert.equal(cell.numFmt, '#,##0.00');
    }
    const sum = csv.slice(1).reduce((acc, row) => acc + Math.round(Number(row[total]) * 100), 0);
    assert.equal(Math.round(Number(values(csv.length + 1)[total]) * 100), sum, 'the totals row');
  });
});
