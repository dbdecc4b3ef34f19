/**
 * The SRI pack end to end on real processes (PGlite, redis-server, s3rver, the API, a worker with Chromium, the demo
 * portal's SRI imitation): the `sri` provider is connected with the imitation's demo login as credentials, the flow
 * of the template "comprobantes recibidos" (src/control-plane/flows/templates/sri-comprobantes-recibidos.ts) logs in,
 * searches March's facturas (55 of them, three pages of 20), keeps each XML under its access key; the worker parses
 * them and the control plane records one document each. A second run adds none (each is seen again), and the CSV
 * export's Total column adds up to the XMLs' importeTotal.
 */
import { runSriDemo } from '../../src/cli/sri-demo.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { SRI_DEMO_PASSWORD, SRI_DEMO_RUC, SRI_PATHS } from '../../src/embedded/sri-portal/index.ts';
import { SRI_BUSY_MONTH, SRI_DEFAULT_YEAR, sriDataset, sriDocumentsFor } from '../../src/sri/generate.ts';
import {
  SRI_PORTAL_PATHS, SRI_SECRETS, SRI_TYPE_CODES, sriComprobantesRecibidosFlow,
} from '../../src/control-plane/flows/templates/sri-comprobantes-recibidos.ts';
import { registerProvider } from '../../src/control-plane/providers/catalogue.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { TEST_SIGNING_SECRET, tempDir, waitFor } from '../support/services.ts';
import { testWorkerConfig } from '../execution-plane/support/jobs.ts';

/** A decimal string as an integer of millionths (exact sums). */
const micros = (s: string): bigint => {
  const m = /^(-?)(\d+)(?:\.(\d{1,6}))?$/.exec(s.trim());
  assert.ok(m, `a decimal amount: ${s}`);
  const v = BigInt(m[2]!) * 1_000_000n + BigInt((m[3] ?? '').padEnd(6, '0'));
  return m[1] ? -v : v;
};

/** A CSV of quoted fields (the export's), as rows of fields. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\n') { row.push(field.replace(/\r$/, '')); rows.push(row); row = []; field = ''; } else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

describe('the SRI pack against the imitation of the portal, end to end', () => {
  let t: TestApi;
  let portal: DemoPortal;
  let worker: WorkerHandle;
  const logs = tempDir('sri-e2e-pack-');
  let token: string;
  let flowId: string;
  const year = SRI_DEFAULT_YEAR;
  const month = SRI_BUSY_MONTH;
  const expected = sriDocumentsFor(sriDataset(), { year, month, tipo: 'factura' });
  const firstRun: { jobId?: string } = {};

  async function http(method: string, path: string, body?: unknown) {
    const r = await fetch(t.api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: `Bearer ${token}` },
    });
    const text = await r.text();
    let json: any;
    try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
    return { status: r.status, text, body: json };
  }

  async function runToEnd(m = month): Promise<any> {
    const r = await http('POST', '/api/run', { providerId: 'sri', metadata: { year, month: m, type: SRI_TYPE_CODES.factura }, maxAttempts: 1 });
    assert.equal(r.status, 202, r.text);
    const jobId = r.body.jobId as string;
    return waitFor(async () => {
      const j = await http('GET', `/api/jobs/${jobId}`);
      return ['done', 'failed', 'dead', 'cancelled'].includes(j.body?.job?.status) ? j.body.job : undefined;
    }, { timeoutMs: 400_000, intervalMs: 500, what: `job ${jobId} to finish` });
  }

  /** Every document of the filter, all pages. */
  async function documents(m = month): Promise<{ total: number; totals: any; documents: any[] }> {
    const all: any[] = [];
    let first: any;
    for (let page = 1; ; page++) {
      const r = await http('GET', `/api/documents?year=${year}&month=${m}&type=factura&page=${page}&pageSize=100`);
      assert.equal(r.status, 200, r.text);
      first ??= r.body;
      all.push(...r.body.documents);
      if (all.length >= r.body.total || r.body.documents.length === 0) break;
    }
    return { total: first.total, totals: first.totals, documents: all };
  }

  before(async () => {
    portal = await startDemoPortal({ port: 0 });
    t = await startTestApi();
    const port = new URL(portal.url).port;
    // As `sri up` registers it: the SRI's own hosts and the imitation's (src/embedded/stack.ts).
    await registerProvider(t.db, t.redis, {
      id: 'sri', name: 'sri', displayName: 'SRI en línea (Ecuador tax authority)',
      allowedHosts: ['srienlinea.sri.gob.ec', '*.sri.gob.ec', `127.0.0.1:${port}`, `localhost:${port}`],
    }, TEST_SIGNING_SECRET);
    const config = testWorkerConfig({ redisUrl: t.redisUrl, s3Endpoint: t.config.s3Endpoint, logDir: logs.path, extra: {
      // 55 XML files and the report: over the default of 50 (docs/sri.md "Run the SRI pack"). A loaded machine:
      // some seventy page round trips get minutes, and each action half a minute.
      WORKER_MAX_DOWNLOADS: '200', EXECUTION_TIMEOUT: '300000', PLAYWRIGHT_TIMEOUT: '30000', WORKER_MAX_JOBS: '1',
    } });
    worker = await startWorker(config, { logger: createLogger({ name: 'worker', level: 'info', logDir: logs.path, stdout: false }) });

    const reg = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `sri-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Contadora', orgName: `Org ${randomUUID().slice(0, 6)}` }),
    }).then((r) => r.json()) as any;
    token = reg.token as string;
    // No cookies yet: the flow logs in with the connection's credentials, and the worker keeps the session it got.
    const c = await http('POST', '/api/providers/sri/connect', {
      cookies: [], credentials: { [SRI_SECRETS.user]: SRI_DEMO_RUC, [SRI_SECRETS.password]: SRI_DEMO_PASSWORD },
    });
    assert.equal(c.status, 200, c.text);
    const flow = await http('POST', '/api/flows', sriComprobantesRecibidosFlow('sri', { base: portal.url }));
    assert.equal(flow.status, 201, flow.text);
    flowId = flow.body.flow.id as string;
    assert.equal((await http('POST', `/api/flows/${flowId}/activate`, {})).status, 200);
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await t?.stop();
    await portal?.close();
    logs.remove();
  });

  it('uses the imitation\'s paths', () => {
    assert.equal(SRI_PORTAL_PATHS.login, SRI_PATHS.login);
    assert.equal(SRI_PORTAL_PATHS.recibidos, SRI_PATHS.recibidos);
    assert.equal(SRI_PORTAL_PATHS.autorizacion, SRI_PATHS.autorizacion);
    assert.equal(expected.length, 55, 'March has 55 facturas: three pages');
  });

  it('logs in, walks the three pages and records exactly the month\'s facturas', async () => {
    const job = await runToEnd();
    firstRun.jobId = job.id;
    assert.equal(job.status, 'done', JSON.stringify(job.error));
    const stats = portal.sri.stats();
    assert.equal(stats.logins, 1, JSON.stringify(stats));
    assert.equal(stats.searches, 1, JSON.stringify(stats));
    assert.equal(stats.resultPages, 3, JSON.stringify(stats));
    assert.equal(stats.xmlDownloads, expected.length, JSON.stringify(stats));
    assert.equal(stats.reports, 1, JSON.stringify(stats));

    const names = (job.artifacts as Array<{ kind: string; name: string }>).filter((a) => a.kind === 'download').map((a) => a.name).sort();
    assert.deepEqual(names, [...expected.map((d) => `${d.claveAcceso}.xml`), `reporte-${year}-${month}-${SRI_TYPE_CODES.factura}.txt`].sort());

    const docs = await documents();
    assert.equal(docs.total, expected.length);
    assert.deepEqual(docs.documents.map((d) => d.claveAcceso).sort(), expected.map((d) => d.claveAcceso).sort());
    assert.ok(docs.documents.every((d) => d.seenAgain === 0), 'each seen once');
    const sum = expected.reduce((s, d) => s + micros(d.importeTotal), 0n);
    assert.equal(micros(docs.totals.importeTotal), sum);
  });

  it('adds nothing on a second run: each document is seen again', async () => {
    // It builds on the first run: without it, this fails (never skips).
    assert.ok(firstRun.jobId, 'the first run finished done');
    const job = await runToEnd();
    assert.equal(job.status, 'done', JSON.stringify(job.error));
    // The connection holds credentials, no cookies: a flow's own login stays in its job's context (docs/sessions.md
    // "Cookies saved back"), so this run signed in again.
    assert.equal(portal.sri.stats().logins, 2);
    assert.equal(portal.sri.stats().xmlDownloads, expected.length * 2);
    const docs = await documents();
    assert.equal(docs.total, expected.length);
    assert.deepEqual(docs.documents.map((d) => d.claveAcceso).sort(), expected.map((d) => d.claveAcceso).sort());
    assert.ok(docs.documents.every((d) => d.seenAgain === 1), JSON.stringify(docs.documents.map((d) => d.seenAgain)));
  });

  it('exports a CSV whose Total column adds up to the XMLs\' importeTotal', async () => {
    assert.ok(firstRun.jobId, 'the first run finished done');
    const r = await http('GET', `/api/documents/export?format=csv&year=${year}&month=${month}&type=factura`);
    assert.equal(r.status, 200, r.text);
    const [header, ...rows] = parseCsv(r.text.replace(/^\uFEFF/, '')).filter((row) => row.some((f) => f !== ''));
    const total = header!.indexOf('Total');
    const clave = header!.indexOf('Clave de acceso');
    assert.ok(total >= 0 && clave >= 0, header!.join(' | '));
    assert.equal(rows.length, expected.length);
    assert.deepEqual(rows.map((row) => row[clave]).sort(), expected.map((d) => d.claveAcceso).sort());
    assert.equal(rows.reduce((s, row) => s + micros(row[total]!), 0n), expected.reduce((s, d) => s + micros(d.importeTotal), 0n));
  });

  it('fetches each XML from the authorisation web service when the flow is built with its URL', async () => {
    // January's facturas, by a second version of the flow that asks the SOAP service for each row's key.
    const january = sriDocumentsFor(sriDataset(), { year, month: 1, tipo: 'factura' });
    assert.ok(january.length > 0);
    const flow = await http('POST', '/api/flows', {
      ...sriComprobantesRecibidosFlow('sri', { base: portal.url, authorisationUrl: `${portal.url}${SRI_PORTAL_PATHS.autorizacion}` }), version: '0.2.0',
    });
    assert.equal(flow.status, 201, flow.text);
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, {})).status, 200);
    const before = portal.sri.stats();
    const job = await runToEnd(1);
    assert.equal(job.status, 'done', JSON.stringify(job.error));
    const stats = portal.sri.stats();
    assert.equal(stats.soapCalls - before.soapCalls, january.length, JSON.stringify(stats));
    assert.equal(stats.xmlDownloads, before.xmlDownloads, 'no XML by its link');
    const docs = await documents(1);
    assert.deepEqual(docs.documents.map((d) => d.claveAcceso).sort(), january.map((d) => d.claveAcceso).sort());
    assert.equal(micros(docs.totals.importeTotal), january.reduce((s, d) => s + micros(d.importeTotal), 0n));
  });

  it('sri demo-sri runs the pack for a month in a new organisation and says what the documents table holds', { timeout: 600_000 }, async () => {
    const lines: string[] = [];
    const january = sriDocumentsFor(sriDataset(), { year, month: 1, tipo: 'factura' });
    const out = await runSriDemo({ apiUrl: t.api.url, portalUrl: portal.url, year, month: 1, type: 'factura', jobTimeoutMs: 400_000, print: (l) => lines.push(l), waiting: () => {} });
    assert.equal(out.job.status, 'done', JSON.stringify(out.job.error));
    assert.equal(out.documents.total, january.length);
    const sum = january.reduce((acc, d) => acc + micros(d.importeTotal), 0n);
    assert.equal(micros(String((out.documents.totals as { importeTotal: string }).importeTotal)), sum);
    assert.match(lines.join('\n'), new RegExp(`6\\. documents of factura for ${year}-01: ${january.length};`));
  });

  it('gets past the search\'s CAPTCHA through a person in the live view, then searches and keeps the documents', { timeout: 600_000 }, async () => {
    portal.sri.configure({ searchCaptcha: true });
    try {
      const refusalsBefore = portal.sri.stats().captchaRefusals;
      const r = await http('POST', '/api/run', { providerId: 'sri', metadata: { year, month: 1, type: SRI_TYPE_CODES.factura }, maxAttempts: 1 });
      assert.equal(r.status, 202, r.text);
      const jobId = r.body.jobId as string;
      // The worker sees the widget after opening the search page and, without a solver, asks a person.
      const handoff = await waitFor(async () => {
        const h = await http('GET', `/api/jobs/${jobId}/handoff`);
        return h.status === 200 ? h.body.handoff : undefined;
      }, { timeoutMs: 300_000, what: 'the job waiting for a person' });
      assert.equal(handoff.source, 'captcha');
      // The answer field has the focus: the person types the answer, and says Done.
      assert.equal((await http('POST', `/api/jobs/${jobId}/live/input`, { type: 'type', text: 'human' })).status, 202);
      assert.equal((await http('POST', `/api/jobs/${jobId}/handoff`, { answer: 'done' })).status, 202);
      const job = await waitFor(async () => {
        const j = await http('GET', `/api/jobs/${jobId}`);
        return ['done', 'failed', 'dead', 'cancelled'].includes(j.body?.job?.status) ? j.body.job : undefined;
      }, { timeoutMs: 300_000, intervalMs: 500, what: `job ${jobId} to finish` });
      assert.equal(job.status, 'done', JSON.stringify(job.error));
      const january = sriDocumentsFor(sriDataset(), { year, month: 1, tipo: 'factura' });
      const xmls = (job.artifacts as { name: string }[]).filter((a) => a.name.endsWith('.xml')).map((a) => a.name).sort();
      assert.deepEqual(xmls, january.map((d) => `${d.claveAcceso}.xml`).sort(), 'every XML of the month, after the CAPTCHA');
      assert.equal(portal.sri.stats().captchaRefusals, refusalsBefore, 'the search went through at once');
    } finally {
      portal.sri.configure({ searchCaptcha: false });
    }
  });
});
