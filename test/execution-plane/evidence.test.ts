/**
 * Evidence is kept as the portal served it; redaction is for what the platform writes (docs/security.md "Evidence
 * and redaction"). On a real worker (redis-server, s3rver, Chromium) and a portal of this file: session cookies
 * that look like JSON (`true`) or like page data (a locale) do not touch the result or the parsed data; a downloaded
 * invoice holding the portal user name is stored byte for byte, its SHA-256 in the result; a secret filled into a
 * text field is masked in screenshots; a file the page makes itself (blob:) counts against the job's byte budget;
 * and large downloads are streamed to S3, not held in the worker's memory (a worker process of its own, measured).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { inflateSync } from 'node:zlib';
import { keys } from '../../src/shared/keys.ts';
import type { Redis } from '../../src/shared/redis.ts';
import { parseS3Uri, type BlobStore } from '../../src/shared/s3.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

/** The portal user name: a tax id, as on the SRI portal, also printed in every invoice of the buyer. */
const USERNAME = `17${randomBytes(5).readUIntBE(0, 5).toString().padStart(11, '0').slice(0, 11)}`;
const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const SID = `sid-${randomBytes(12).toString('hex')}`;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** An electronic invoice as a portal serves it: the buyer's tax id (the user name) inside. */
const INVOICE_XML = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>
<factura id="comprobante" version="1.1.0"><infoFactura><fechaEmision>15/01/2026</fechaEmision>
<razonSocialComprador>COMPRADOR S.A.</razonSocialComprador><identificacionComprador>${USERNAME}</identificacionComprador>
<importeTotal>1250.00</importeTotal></infoFactura></factura>
`, 'utf8');

function cookiesOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** Bytes of /big/{n}: deterministic, so the test can hash what was served without keeping it. */
function bigChunk(n: number, i: number): Buffer {
  return Buffer.alloc(128 * 1024, createHash('sha256').update(`${n}:${i}`).digest('hex'));
}

interface Portal { url: string; host: string; served: Map<string, string>; close(): Promise<void> }

async function startPortal(): Promise<Portal> {
  const served = new Map<string, string>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const html = (body: string, headers: Record<string, string> = {}) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(`<!doctype html><html><head><title>Portal</title></head><body>${body}</body></html>`);
    };
    switch (url.pathname) {
      case '/locale':
        // Real portals print the language they serve in; its cookie is session metadata, not a secret.
        return html(`<p id="locale">${cookiesOf(req)['demo_locale'] ?? ''}</p><p id="user">${USERNAME}</p><p id="hello">Hola ${USERNAME}</p>`);
      case '/invoices':
        return html(`<h1>Facturas</h1><a id="xml" href="/factura-001.xml">XML</a>`);
      case '/factura-001.xml':
        served.set('factura-001.xml', sha256(INVOICE_XML));
        res.writeHead(200, { 'content-type': 'application/xml', 'content-disposition': 'attachment; filename="factura-001.xml"' });
        return res.end(INVOICE_XML);
      case '/login':
        // A user name field that is not type=password: what fillSecret types there would show in a screenshot.
        return html(`<h1 id="title" style="background:#00ff00;margin:0;height:40px">Ingreso</h1>
          <input id="username" type="text" style="position:absolute;left:40px;top:80px;width:400px;height:60px;font-size:40px;border:0;background:#fff;color:#000">`);
      case '/blob':
        // The page makes a file of ?bytes bytes itself and downloads it: no byte of it crosses the egress proxy.
        return html(`<a id="make" href="#" onclick="event.preventDefault(); const a = document.createElement('a');
          a.href = window.URL.createObjectURL(new Blob([new Uint8Array(${Number(url.searchParams.get('bytes'))}).fill(65)]));
          a.download = 'made.bin'; document.body.appendChild(a); a.click();">make</a>`);
      case '/bigs':
        return html([0, 1, 2, 3].map((n) => `<a id="big${n}" href="/big/${n}?mb=${Number(url.searchParams.get('mb'))}">big ${n}</a>`).join(''));
      default: {
        const m = /^\/big\/(\d+)$/.exec(url.pathname);
        if (!m) {
          res.writeHead(404).end();
          return;
        }
        const n = Number(m[1]);
        const chunks = Number(url.searchParams.get('mb')) * 8; // 128 KiB each
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename="big-${n}.bin"`, 'content-length': String(chunks * 128 * 1024) });
        const hash = createHash('sha256');
        let i = 0;
        const pump = () => {
          while (i < chunks && !res.destroyed) {
            const c = bigChunk(n, i++);
            hash.update(c);
            if (!res.write(c)) { res.once('drain', pump); return; }
          }
          if (!res.destroyed) {
            served.set(`big-${n}.bin`, hash.digest('hex'));
            res.end();
          }
        };
        pump();
      }
    }
  });
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, host: `127.0.0.1:${(server.address() as AddressInfo).port}`, served,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** RGBA pixels of a PNG (8-bit RGB or RGBA, not interlaced — what Chromium writes), decoded with node:zlib. */
function decodePng(png: Buffer): { width: number; height: number; pixel(x: number, y: number): [number, number, number] } {
  assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG');
  let at = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (at < png.length) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, '8 bits per channel');
      assert.equal(data[12], 0, 'not interlaced');
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      assert.ok(channels, `colour type ${data[9]}`);
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[y * stride + x - channels]! : 0;
      const b = y > 0 ? out[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? out[(y - 1) * stride + x - channels]! : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      const predictor = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter]!;
      out[y * stride + x] = (line[x]! + predictor) & 0xff;
    }
  }
  return {
    width, height,
    pixel: (x, y) => {
      const i = y * stride + x * channels;
      return [out[i]!, out[i + 1]!, out[i + 2]!];
    },
  };
}

describe('evidence as served, redaction for what the platform writes (real worker)', () => {
  let h: WorkerHarness;
  let portal: Portal;
  const BUDGET = 4 * 1024 * 1024;

  before(async () => {
    portal = await startPortal();
    h = await startWorkerHarness({ WORKER_EGRESS_MAX_BYTES: String(BUDGET) });
  });
  after(async () => {
    await h?.stop();
    await portal?.close();
  });

  const session = (extra: { name: string; value: string; httpOnly?: boolean }[] = []) => ({
    cookies: [{ name: 'sid', value: SID, url: portal.url, httpOnly: true }, ...extra.map((c) => ({ ...c, url: portal.url }))],
    credentials: { username: USERNAME, password: PASSWORD }, connectedAt: Date.now(),
  });
  const script = (body: string) => `export default async function run({ page, payload, helpers }) {\n${body}\n}`;
  const opts = () => ({ metadata: { base: portal.url }, allowedHosts: [portal.host] });

  it('runs a job whose session has a cookie "true" to done on its first attempt', async () => {
    const org = testOrg('cookie-true');
    await setSession(h.redis, org, 'user-1', session([{ name: 'remember', value: 'true' }, { name: 'theme', value: 'null' }]));
    const r = await h.run(org, signedJob(org, script(`await page.goto(payload.base + '/invoices'); helpers.setResult({ ok: true, none: null, rows: 1 });`),
      opts()), 60_000);
    assert.equal(r.status, 'done', JSON.stringify(r));
    assert.equal(r.success, true);
    assert.equal(r.attempt, 1);
    assert.deepEqual(JSON.parse((await h.object(r.files.parsedData)).toString()), { ok: true, none: null, rows: 1 });
    // The stored result is the published one, valid JSON of the result schema.
    assert.equal(ResultMessage.parse(JSON.parse((await h.redis.get(keys.jobResult(r.jobId)))!)).status, 'done');
  });

  it('keeps the locale the page shows (cookie es-EC) in parsed data; replaces only values that are a secret', async () => {
    const org = testOrg('locale');
    await setSession(h.redis, org, 'user-1', session([{ name: 'demo_locale', value: 'es-EC' }]));
    const r = await h.run(org, signedJob(org, script(`
      await page.goto(payload.base + '/locale');
      const sid = (await page.cookies()).find((c) => c.name === 'sid').value;
      helpers.setResult({ locale: await page.textContent('#locale'), user: await page.textContent('#user'), hello: await page.textContent('#hello'), sid, [sid]: 'key' });
      helpers.log('the page shows ' + await page.textContent('#user'));`), opts()), 60_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    const parsed = JSON.parse((await h.object(r.files.parsedData)).toString()) as Record<string, unknown>;
    assert.equal(parsed['locale'], 'es-EC');
    // A value that is a credential, or an HttpOnly session cookie (no page can read one), is replaced — as a value
    // and as a key; text around a secret is the portal's data and stays (docs/security.md says so).
    assert.equal(parsed['user'], '[redacted]');
    assert.equal(parsed['sid'], '[redacted]');
    assert.equal(parsed['[redacted]'], 'key');
    assert.equal(parsed['hello'], `Hola ${USERNAME}`);
    // The platform's own text stays redacted as before.
    const log = (await h.object(r.files.log)).toString();
    assert.match(log, /the page shows \[redacted\]/);
    assert.ok(!log.includes(USERNAME) && !log.includes(SID));
  });

  it('stores a downloaded invoice holding the portal user name byte for byte, its sha256 in the result', async () => {
    const org = testOrg('xml');
    await setSession(h.redis, org, 'user-1', session());
    const r = await h.run(org, signedJob(org, script(`
      await page.goto(payload.base + '/invoices');
      helpers.setResult({ file: await helpers.download(() => page.click('#xml')) });`), opts()), 60_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    const stored = await h.object(r.files.download);
    assert.ok(stored.includes(Buffer.from(`<identificacionComprador>${USERNAME}<`)), 'the buyer\'s tax id is in the stored invoice');
    assert.equal(sha256(stored), portal.served.get('factura-001.xml'), 'stored bytes = served bytes');
    const artifact = r.artifacts?.find((a) => a.kind === 'download');
    assert.ok(artifact, JSON.stringify(r.artifacts));
    assert.deepEqual({ ...artifact, sha256: undefined }, {
      name: 'factura-001.xml', kind: 'download', uri: r.files.download, bytes: INVOICE_XML.length, sha256: undefined, contentType: 'application/xml',
    });
    assert.equal(artifact.sha256, sha256(INVOICE_XML));
    // Every evidence file is listed with the hash of its stored bytes.
    assert.deepEqual(r.artifacts!.map((a) => a.kind).sort(), ['download', 'log', 'parsedData']);
    for (const a of r.artifacts!) assert.equal(sha256(await h.object(a.uri)), a.sha256, a.name);
    assert.doesNotMatch((await h.object(r.files.log)).toString(), /secret values in this text file were replaced/);
  });

  it('masks a field that received a secret (type=text) in every screenshot: the field is a #FF00FF box', async () => {
    const org = testOrg('mask');
    await setSession(h.redis, org, 'user-1', session());
    const r = await h.run(org, signedJob(org, script(`
      await page.setViewportSize({ width: 600, height: 300 });
      await page.goto(payload.base + '/login');
      await helpers.fillSecret('#username', 'username');
      await helpers.screenshot();
      helpers.setResult({ box: await page.locator('#username').boundingBox(), typed: (await page.inputValue('#username')).length });`),
    opts()), 60_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    const parsed = JSON.parse((await h.object(r.files.parsedData)).toString()) as { box: { x: number; y: number; width: number; height: number }; typed: number };
    assert.equal(parsed.typed, USERNAME.length, 'the secret was typed into the field');
    const png = await h.object(r.files.screenshots[0]);
    const img = decodePng(png);
    assert.equal(img.width, 600);
    // Every pixel of the field's box is the mask's colour: no glyph of the secret is left.
    let notMask = 0;
    for (let y = Math.ceil(parsed.box.y) + 1; y < Math.floor(parsed.box.y + parsed.box.height) - 1; y++) {
      for (let x = Math.ceil(parsed.box.x) + 1; x < Math.floor(parsed.box.x + parsed.box.width) - 1; x++) {
        const [red, green, blue] = img.pixel(x, y);
        if (red !== 0xff || green !== 0x00 || blue !== 0xff) notMask++;
      }
    }
    assert.equal(notMask, 0, 'pixels of the secret field that are not the mask colour');
    // The rest of the page is as the portal drew it (the heading is green, not masked).
    assert.deepEqual(img.pixel(20, 20), [0x00, 0xff, 0x00]);
    assert.match((await h.object(r.files.log)).toString(), /screenshot screenshot-0\.png \(\d+ bytes, 1 secret field\(s\) masked\)/);
    assert.deepEqual(r.artifacts?.find((a) => a.kind === 'screenshot')?.sha256, sha256(png));
  });

  it('counts a file the page makes (blob:) against the job\'s byte budget: over it, SCRIPT_RESOURCE_LIMIT naming WORKER_EGRESS_MAX_BYTES', async () => {
    const org = testOrg('blob');
    await setSession(h.redis, org, 'user-1', session());
    const small = 512 * 1024;
    const ok = await h.run(org, signedJob(org, script(`
      await page.goto(payload.base + '/blob?bytes=${small}');
      helpers.setResult({ file: await helpers.download(() => page.click('#make')) });`), opts()), 60_000);
    assert.equal(ok.status, 'done', JSON.stringify(ok.error));
    assert.equal((await h.object(ok.files.download)).length, small);
    assert.ok(ok.egress!.bytes >= small, `egress.bytes ${ok.egress?.bytes} counts the ${small} bytes the page made`);

    const r = await h.run(org, signedJob(org, script(`
      await page.goto(payload.base + '/blob?bytes=${BUDGET + 1024 * 1024}');
      try { await helpers.download(() => page.click('#make')); } catch (e) { helpers.log('caught: ' + e.message); }
      helpers.setResult({ survived: true });`), opts()), 60_000);
    assert.equal(r.status, 'failed', JSON.stringify(r));
    assert.equal(r.error?.code, 'SCRIPT_RESOURCE_LIMIT');
    assert.match(r.error!.message, /egress-bytes.*WORKER_EGRESS_MAX_BYTES/);
    assert.equal(r.egress?.limitExceeded, 'egress-bytes');
    assert.equal(r.files.download, undefined, 'the file was not kept');
    assert.equal(r.attempt, 1, 'not retried');
    await setSession(h.redis, org, 'user-1', h.session());
    await h.normalJobSucceeds(org);
  });
});

/** Peak resident memory of a process (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'VmHWM in /proc/<pid>/status');
  return Number(m[1]) * 1024;
}

describe('large downloads are streamed to S3, not held in the worker (a worker process of its own)', () => {
  let h: ServicesHarness<Portal>;
  let portal: Portal;
  let redis: Redis;
  let store: BlobStore;
  let results: Map<string, ResultMessage>;
  let child: ChildProcess | undefined;
  let exited: Promise<unknown> | undefined;
  let output = '';

  before(async () => {
    h = await startServicesHarness({ portal: startPortal, logPrefix: 'sri-evidence-proc-' });
    ({ portal, redis, store, results } = h);
    child = spawn(process.execPath, ['--import', 'tsx', 'src/execution-plane/main.ts'], {
      env: {
        PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', NODE_NO_WARNINGS: '1',
        REDIS_URL: h.redisUrl, S3_ENDPOINT: h.s3Endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
        WORKER_ID: `mem-worker-${randomUUID().slice(0, 8)}`, WORKER_POLL_INTERVAL: '50', WORKER_MAX_JOBS: '1', WORKER_HTTP_PORT: '0',
        LOG_DIR: h.logDir, LOG_LEVEL: 'warn', EXECUTION_TIMEOUT: '240000', PLAYWRIGHT_TIMEOUT: '120000',
        WORKER_EGRESS_MAX_BYTES: String(1024 ** 3), WORKER_MAX_DOWNLOAD_BYTES: String(100 * 1024 * 1024),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-5000); });
    child.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-5000); });
    const c = child;
    exited = new Promise((resolve) => c.once('exit', resolve));
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await h?.stop();
  });

  async function run(org: string, body: string, timeoutMs: number): Promise<ResultMessage> {
    const job = signedJob(org, `export default async function run({ page, payload, helpers }) {\n${body}\n}`, { metadata: { base: portal.url }, allowedHosts: [portal.host] });
    await push(redis, org, job);
    return waitFor(() => results.get(job.jobId), { timeoutMs, what: `the result of ${job.jobId}; worker output: ${output}` });
  }

  it('four 50 MiB downloads grow the worker\'s peak memory by less than half their sum, and are stored byte for byte', async (t) => {
    const org = testOrg('mem');
    await setSession(redis, org, 'user-1', { cookies: [{ name: 'sid', value: SID, url: portal.url }], connectedAt: Date.now() });
    // Warm up: the browser, the sandbox and one 20 MiB download have run before the peak is read, so the heap and
    // buffers a download needs at all (the same for any size) are in the baseline; what grows after is per byte.
    const warm = await run(org, `await page.goto(payload.base + '/bigs?mb=20'); await helpers.download(() => page.click('#big0'));`, 120_000);
    assert.equal(warm.status, 'done', JSON.stringify(warm.error));
    const before = peakRss(child!.pid!);
    const mb = 50;
    const r = await run(org, `
      await page.goto(payload.base + '/bigs?mb=${mb}');
      for (let n = 0; n < 4; n++) await helpers.download(() => page.click('#big' + n));`, 300_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    const growth = peakRss(child!.pid!) - before;
    const total = 4 * mb * 1024 * 1024;
    t.diagnostic(`worker peak RSS ${Math.round(before / 2 ** 20)} MiB before, +${Math.round(growth / 2 ** 20)} MiB for ${total / 2 ** 20} MiB of downloads`);
    assert.ok(growth < total / 2, `the worker's peak RSS grew by ${Math.round(growth / 2 ** 20)} MiB for ${total / 2 ** 20} MiB of downloads`);
    const downloads = r.artifacts!.filter((a) => a.kind === 'download');
    assert.deepEqual(downloads.map((a) => [a.name, a.bytes]), [0, 1, 2, 3].map((n) => [`big-${n}.bin`, mb * 1024 * 1024]));
    for (const a of downloads) {
      assert.equal(a.sha256, portal.served.get(a.name), `${a.name}: the result's sha256 is the served bytes'`);
      const loc = parseS3Uri(a.uri)!;
      const hash = createHash('sha256');
      for await (const c of (await store.open(loc.bucket, loc.key))!.body) hash.update(c as Buffer);
      assert.equal(hash.digest('hex'), a.sha256, `${a.name}: the stored object is the served bytes`);
    }
  });
});
