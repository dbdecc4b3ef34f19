/**
 * The adversarial suite (issue 4, docs/security.md "Invariants and their tests"): signed scripts that try to
 * break out of the sandbox, past the egress restriction or over the job's limits, on a real worker with
 * redis-server, s3rver and Chromium. Each test expects one specific safe failure, and then checks that the worker
 * is still up and runs a normal job. Signing does not make a script trusted: a flow author, or whoever holds a
 * leaked signing key, writes these.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { keys } from '../../src/shared/keys.ts';
import type { JobMessage, ResultMessage } from '../../src/shared/schemas.ts';
import { setSession, signedJob, testOrg } from './support/jobs.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

interface Recorder { server: Server; port: number; hits: string[]; close(): Promise<void> }

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Recorder> {
  const hits: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => { hits.push(`${req.method} ${req.url}`); handler(req, res); });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => { hits.push(`UPGRADE ${req.url}`); socket.destroy(); });
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server, hits, port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

describe('adversarial suite: hostile signed scripts on a real worker', () => {
  let h: WorkerHarness;
  /** A second host the jobs may reach: serves the hostile pages (redirects, odd downloads, a service worker). */
  let evil: Recorder;
  /** A host no job may reach: every request it gets is a failure of the egress restriction. */
  let forbidden: Recorder;

  before(async () => {
    forbidden = await listen((_req, res) => res.end('secret internal data'));
    evil = await listen((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/to-forbidden') {
        res.writeHead(302, { location: `http://127.0.0.1:${forbidden.port}/via-redirect` }).end();
      } else if (url.pathname === '/to-metadata') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      } else if (url.pathname === '/evil-name') {
        res.writeHead(200, { 'content-type': 'application/pdf', 'content-disposition': 'attachment; filename="../../../../other-org/user-1/job/evil.pdf"' }).end('%PDF-1.4 evil');
      } else if (url.pathname === '/huge') {
        // 2 GiB, generated as it is read and stopped when the reader goes away.
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': 'attachment; filename="huge.bin"', 'content-length': String(2 * 1024 ** 3) });
        const chunk = Buffer.alloc(1024 * 1024, 7);
        let sent = 0;
        const pump = () => {
          while (sent < 2 * 1024 ** 3 && !res.destroyed) {
            sent += chunk.length;
            if (!res.write(chunk)) { res.once('drain', pump); return; }
          }
          if (!res.destroyed) res.end();
        };
        res.on('close', () => { sent = Infinity; });
        pump();
      } else if (url.pathname === '/sw.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end('self.addEventListener("fetch", () => {});');
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>evil</title><a id="evil" href="/evil-name">x</a><a id="huge" href="/huge">y</a>');
      }
    });
    h = await startWorkerHarness({
      WORKER_SCRIPT_CPU_SECONDS: '2', WORKER_SCRIPT_MEMORY_MB: '128', WORKER_SCRIPT_MAX_CALLS: '500',
      WORKER_MAX_SCREENSHOTS: '5', WORKER_MAX_DOWNLOAD_BYTES: String(1024 * 1024), WORKER_MAX_PAGES: '3',
      WORKER_EGRESS_MAX_BYTES: String(8 * 1024 * 1024), WORKER_MAX_ATTEMPTS: '1', EXECUTION_TIMEOUT: '20000',
    });
  });

  after(async () => {
    await h?.stop();
    await Promise.all([evil?.close(), forbidden?.close()]);
  });

  let seq = 0;
  /** Runs `script` as a signed job of a fresh organisation, then checks the worker still serves a normal job. */
  async function attack(script: string, overrides: Partial<JobMessage> = {}): Promise<{ r: ResultMessage; log: string; org: string }> {
    const org = testOrg(`adv${++seq}`);
    await setSession(h.redis, org, 'user-1', h.session());
    const job = signedJob(org, `export default async function run({ page, payload, helpers, context }) {\n${script}\n}`, {
      metadata: { base: h.portal.url, evil: `http://127.0.0.1:${evil.port}`, forbidden: `http://127.0.0.1:${forbidden.port}` },
      allowedHosts: [`127.0.0.1:${h.portal.port}`, `127.0.0.1:${evil.port}`],
      ...overrides,
    });
    // A generous bound: the result comes as soon as the worker has it; a loaded machine only makes it later.
    const r = await h.run(org, job, 180_000);
    const log = r.files.log ? (await h.object(r.files.log)).toString() : '';
    await h.normalJobSucceeds(org);
    return { r, log, org };
  }

  const failsWith = (r: ResultMessage, code: string, message?: RegExp) => {
    assert.equal(r.status, 'failed', JSON.stringify(r));
    assert.equal(r.error?.code, code, JSON.stringify(r.error));
    if (message) assert.match(r.error!.message, message);
  };
  const data = async (r: ResultMessage) => JSON.parse((await h.object(r.files.parsedData)).toString()) as Record<string, unknown>;

  // ── Escaping the script's realm ──────────────────────────────────────────────────────────────────────────────
  it('cannot require modules (read /etc/passwd through fs)', async () => {
    const { r } = await attack(`return require('fs').readFileSync('/etc/passwd', 'utf8');`);
    failsWith(r, 'SCRIPT_ERROR', /require is not defined/);
  });

  it('cannot read process.env', async () => {
    const { r } = await attack(`helpers.setResult({ env: process.env });`);
    failsWith(r, 'SCRIPT_ERROR', /process is not defined/);
  });

  it('cannot load child_process with a dynamic import()', async () => {
    const { r } = await attack(`const cp = await import('child_process'); cp.execSync('id');`);
    failsWith(r, 'SCRIPT_INVALID', /cannot import modules/);
  });

  it('cannot reach process through constructor.constructor of a page facade', async () => {
    const { r } = await attack(`const p = page.goto.constructor.constructor('return process')(); helpers.setResult({ pid: p.pid });`);
    failsWith(r, 'SCRIPT_ERROR', /Code generation from strings disallowed/);
  });

  it('cannot compile code with eval, new Function or the AsyncFunction constructor of its own realm', async () => {
    const { r } = await attack(`
      const out = {};
      for (const [k, f] of Object.entries({ eval: () => eval('1'), fn: () => new Function('return 1')(), async: () => (async () => {}).constructor('return 1') })) {
        try { f(); out[k] = 'ran'; } catch (e) { out[k] = e.name; }
      }
      helpers.setResult(out);`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(await data(r), { eval: 'EvalError', fn: 'EvalError', async: 'EvalError' });
  });

  it('cannot compile WebAssembly', async () => {
    const { r } = await attack(`new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));`);
    failsWith(r, 'SCRIPT_ERROR', /Wasm code generation disallowed|WebAssembly/);
  });

  it('sees no host globals: no process, require, fetch, timers, console or Buffer', async () => {
    const { r } = await attack(`helpers.setResult({ types: ['process', 'require', 'fetch', 'setTimeout', 'setInterval', 'console', 'Buffer', 'module', 'globalThis.process'].map((n) => { try { return typeof eval(n); } catch { return 'blocked'; } }), direct: [typeof process, typeof require, typeof fetch, typeof setTimeout, typeof console, typeof Buffer] });`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual((await data(r))['direct'], ['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined']);
  });

  it('cannot pollute the worker\'s prototypes through the facade or its arguments', async () => {
    const { r } = await attack(`
      Object.getPrototypeOf(page).polluted = 'facade';
      Object.prototype.polluted = 'script';
      try { await page.click('#x', JSON.parse('{"__proto__": {"polluted": "args"}, "timeout": 100}')); } catch (e) { helpers.log('refused: ' + e.message); }
      helpers.setResult(JSON.parse('{"__proto__": {"polluted": "result"}, "ok": 1}'));`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    const host = {} as Record<string, unknown>;
    assert.equal(host['polluted'], undefined, 'the worker\'s Object.prototype is untouched');
    assert.equal((await data(r))['polluted'], undefined);
  });

  it('cannot get the browser context or browser from the page (no page.context(), no newContext)', async () => {
    const { r } = await attack(`const ctx = page.context(); const free = await ctx.browser().newContext(); await (await free.newPage()).goto(payload.forbidden);`);
    failsWith(r, 'SCRIPT_ERROR', /page\.context is not a function/);
    assert.deepEqual(forbidden.hits, []);
  });

  it('cannot call Playwright methods outside the page API (screenshot to a path, setInputFiles, route)', async () => {
    const { r } = await attack(`
      const out = {};
      for (const [k, f] of Object.entries({ shot: () => page.screenshot({ path: '/tmp/x.png' }), files: () => page.setInputFiles('input', '/etc/passwd'), route: () => page.route('**', (r) => r.continue()), expose: () => page.exposeFunction('x', () => 1) })) {
        try { await f(); out[k] = 'ran'; } catch (e) { out[k] = e.name; }
      }
      helpers.setResult(out);`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(await data(r), { shot: 'TypeError', files: 'TypeError', route: 'TypeError', expose: 'TypeError' });
  });

  it('cannot read the worker\'s files through the browser (file:// navigation)', async () => {
    const { r } = await attack(`await page.goto('file:///etc/passwd'); helpers.setResult({ text: await page.textContent('body') });`);
    assert.ok(['failed', 'dead'].includes(r.status), JSON.stringify(r));
    assert.equal(r.files.parsedData, undefined);
    assert.match(r.error!.message, /ERR_BLOCKED_BY_CLIENT|not allowed/);
  });

  // ── Limits ────────────────────────────────────────────────────────────────────────────────────────────────────
  it('stops a synchronous endless loop with SCRIPT_CPU_LIMIT', async () => {
    const { r } = await attack(`for (;;) {}`);
    failsWith(r, 'SCRIPT_CPU_LIMIT');
  });

  it('stops an endless loop after an await with SCRIPT_CPU_LIMIT', async () => {
    const { r } = await attack(`await page.goto(payload.base + '/invoices'); let x = 0; for (;;) { x++; }`);
    failsWith(r, 'SCRIPT_CPU_LIMIT');
  });

  it('stops a heap memory bomb with SCRIPT_MEMORY_LIMIT', async () => {
    const { r } = await attack(`const a = []; for (;;) a.push(new Array(100000).fill(7));`);
    failsWith(r, 'SCRIPT_MEMORY_LIMIT');
  });

  it('stops a buffer memory bomb with SCRIPT_MEMORY_LIMIT', async () => {
    const { r } = await attack(`const a = []; for (;;) a.push(new Uint8Array(64 * 1024 * 1024).fill(1));`);
    failsWith(r, 'SCRIPT_MEMORY_LIMIT');
  });

  it('stops a script that never settles at the job\'s timeout with EXECUTION_TIMEOUT', async () => {
    const { r } = await attack(`await new Promise(() => {});`, { timeoutMs: 2000, maxAttempts: 1 });
    assert.equal(r.error?.code, 'EXECUTION_TIMEOUT', JSON.stringify(r));
  });

  it('stops a flood of page calls with SCRIPT_RESOURCE_LIMIT (calls)', async () => {
    const { r } = await attack(`for (let i = 0; i < 10000; i++) await page.isClosed();`);
    failsWith(r, 'SCRIPT_RESOURCE_LIMIT', /WORKER_SCRIPT_MAX_CALLS/);
    const burst = await attack(`await Promise.all(Array.from({ length: 300 }, () => page.waitForTimeout(2000)));`);
    failsWith(burst.r, 'SCRIPT_RESOURCE_LIMIT', /calls waiting at once/);
  });

  it('stops a message over 16 MiB to the worker with SCRIPT_RESOURCE_LIMIT', async () => {
    // Building and sending 20 MiB takes seconds on a loaded machine: the job's timeout leaves room for it.
    const { r } = await attack(`helpers.log('x'.repeat(20 * 1024 * 1024));`, { timeoutMs: 120_000 });
    failsWith(r, 'SCRIPT_RESOURCE_LIMIT', /message over/);
  });

  it('keeps a flood of huge log lines out of the worker\'s memory: lines cut at 16 KiB, the script\'s log capped at 4 Mi characters', async () => {
    const { r, log } = await attack(`for (let i = 0; i < 300; i++) helpers.log(i + ':' + 'x'.repeat(20 * 1024)); helpers.setResult({ done: true });`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.match(log, /more characters not kept/);
    assert.match(log, /the script logged more than 4194304 characters; further helpers\.log lines are not kept/);
    assert.ok(log.length < 6 * 1024 * 1024, `execution.log is ${log.length} characters`);
  });

  it('stops parsed data over 16 MiB with SCRIPT_RESOURCE_LIMIT', async () => {
    const { r } = await attack(`for (let i = 0; i < 20; i++) helpers.setResult({ ['k' + i]: 'y'.repeat(1024 * 1024) });`);
    failsWith(r, 'SCRIPT_RESOURCE_LIMIT', /parsed data would be \d+ bytes/);
  });

  it('refuses a page result over 16 MiB instead of passing it to the script', async () => {
    const { r } = await attack(`await page.evaluate(() => 'y'.repeat(20 * 1024 * 1024));`);
    failsWith(r, 'SCRIPT_ERROR', /over 16777216 bytes/);
  });

  it('stops 10,000 screenshots at WORKER_MAX_SCREENSHOTS with SCRIPT_RESOURCE_LIMIT, even when the script catches', async () => {
    const { r } = await attack(`for (let i = 0; i < 10000; i++) { try { await helpers.screenshot(); } catch {} }`);
    failsWith(r, 'SCRIPT_RESOURCE_LIMIT', /WORKER_MAX_SCREENSHOTS/);
    assert.equal(r.files.screenshots.length, 5);
  });

  it('keeps a fork bomb through the page (window.open in a loop) to WORKER_MAX_PAGES', async () => {
    const { r, log } = await attack(`
      await page.goto(payload.evil + '/');
      await page.evaluate(() => { for (let i = 0; i < 50; i++) window.open('about:blank'); });
      helpers.setResult({ done: true });`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.match(log, /more than 3 pages at once \(WORKER_MAX_PAGES\)/);
  });

  it('does not keep a 2 GiB download: the job fails on its byte limits, quickly, and the worker goes on', async () => {
    const started = Date.now();
    const { r } = await attack(`await page.goto(payload.evil + '/'); await helpers.download(() => page.click('#huge'));`, { timeoutMs: 30_000 });
    failsWith(r, 'SCRIPT_RESOURCE_LIMIT', /egress-bytes/);
    assert.equal(r.egress?.limitExceeded, 'egress-bytes');
    assert.equal(r.files.download, undefined);
    assert.ok(Date.now() - started < 60_000);
  });

  // ── Egress ────────────────────────────────────────────────────────────────────────────────────────────────────
  it('blocks fetch from the page to a host outside allowedHosts, and names it', async () => {
    const { r, log } = await attack(`
      await page.goto(payload.evil + '/');
      helpers.setResult({ got: await page.evaluate(async (u) => { try { return await (await fetch(u)).text(); } catch (e) { return 'blocked'; } }, payload.forbidden + '/data') });`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal((await data(r))['got'], 'blocked');
    assert.match(log, /blocked \d+ request\(s\).*127\.0\.0\.1/);
    assert.deepEqual(forbidden.hits, []);
  });

  it('blocks a redirect from an allowed host to a disallowed one', async () => {
    // The proxy answers the redirect's target with 403: the page shows that, never the forbidden host's data.
    const { r } = await attack(`await page.goto(payload.evil + '/to-forbidden'); helpers.setResult({ text: await page.textContent('body') });`);
    assert.deepEqual(forbidden.hits, []);
    assert.doesNotMatch(String((await data(r))['text']), /secret internal data/);
    assert.ok(r.egress?.blocked.some((b) => b.host === '127.0.0.1'), JSON.stringify(r.egress));
  });

  it('blocks a redirect to the cloud metadata address 169.254.169.254', async () => {
    const { r } = await attack(`await page.goto(payload.evil + '/to-metadata'); helpers.setResult({ text: await page.textContent('body') });`);
    assert.doesNotMatch(String((await data(r))['text']), /meta-data|ami-id/);
    assert.ok(r.egress?.blocked.some((b) => b.host === '169.254.169.254'), JSON.stringify(r.egress));
  });

  it('blocks evaluate that fetches 169.254.169.254', async () => {
    const { r, log } = await attack(`
      await page.goto(payload.evil + '/');
      helpers.setResult({ got: await page.evaluate(async () => { try { return await (await fetch('http://169.254.169.254/latest/meta-data/')).text(); } catch { return 'blocked'; } }) });`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal((await data(r))['got'], 'blocked');
    assert.match(log, /169\.254\.169\.254/);
  });

  it('blocks a WebSocket to a disallowed host', async () => {
    const { r } = await attack(`
      await page.goto(payload.evil + '/');
      helpers.setResult({ ws: await page.evaluate((u) => new Promise((res) => { const ws = new WebSocket(u); ws.onopen = () => res('open'); ws.onerror = () => res('error'); ws.onclose = () => res('error'); }), payload.forbidden.replace('http', 'ws') + '/socket') });`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal((await data(r))['ws'], 'error');
    assert.deepEqual(forbidden.hits, []);
  });

  it('blocks window.open to a disallowed host', async () => {
    const { r } = await attack(`
      await page.goto(payload.evil + '/');
      const popup = await Promise.all([page.waitForEvent('popup'), page.evaluate((u) => { window.open(u); }, payload.forbidden + '/popup')]);
      helpers.setResult({ opened: true });`);
    assert.ok(['done', 'failed'].includes(r.status));
    assert.deepEqual(forbidden.hits, []);
  });

  it('cannot register a service worker', async () => {
    const { r } = await attack(`
      await page.goto(payload.evil + '/');
      helpers.setResult({ sw: await page.evaluate(async () => { try { await navigator.serviceWorker.register('/sw.js'); } catch {} return (await navigator.serviceWorker.getRegistrations()).length; }) });`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal((await data(r))['sw'], 0);
    assert.ok(!evil.hits.some((x) => x.includes('/sw.js')), 'the service worker script was never fetched');
  });

  it('cannot reach Redis to read another organisation\'s session', async () => {
    const victim = testOrg('victim');
    await setSession(h.redis, victim, 'user-1', { cookies: [{ name: 'sid', value: 'victim-session-value', url: 'http://portal.example' }], connectedAt: Date.now() });
    const redisUrl = new URL(h.redisUrl);
    const { r, log } = await attack(`
      await page.goto(payload.evil + '/');
      const out = await page.evaluate(async (u) => { try { return await (await fetch(u, { method: 'POST', body: 'GET ' + ${JSON.stringify(keys.session(victim, 'user-1', 'demo'))} + '\\r\\n' })).text(); } catch { return 'blocked'; } }, 'http://127.0.0.1:${redisUrl.port}/');
      helpers.setResult({ out });`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal((await data(r))['out'], 'blocked');
    assert.doesNotMatch(log, /victim-session-value/);
  });

  it('cannot reach the platform\'s own S3 and Redis, even with their host in allowedHosts', async () => {
    // The embedded S3 answers anonymous requests and holds every organisation's evidence: a provider allowed on
    // 127.0.0.1 (like the demo provider of `sri up`) must still not reach it, nor Redis, from the page.
    const s3 = new URL(h.config.s3Endpoint);
    const redisPort = new URL(h.redisUrl).port;
    const { r } = await attack(`
      await page.goto(payload.base + '/invoices');
      const get = (u) => page.evaluate(async (url) => { try { return (await fetch(url)).status; } catch { return 'blocked'; } }, u);
      helpers.setResult({ s3: await get('http://127.0.0.1:${s3.port}/${h.config.s3ResultsBucket}?list-type=2'), s3ByName: await get('http://localhost:${s3.port}/'), redis: await get('http://127.0.0.1:${redisPort}/') });`,
    { allowedHosts: ['127.0.0.1', 'localhost'] });
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(await data(r), { s3: 'blocked', s3ByName: 'blocked', redis: 'blocked' });
    assert.ok(r.egress?.blocked.some((b) => b.reason === 'platform'), JSON.stringify(r.egress));
  });

  it('cannot write outside its own result prefix (download named ../../other-org/...)', async () => {
    const { r, org } = await attack(`await page.goto(payload.evil + '/'); helpers.setResult(await helpers.download(() => page.click('#evil')));`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.ok(r.files.download?.includes(`/results/${org}/user-1/${r.jobId}/`), r.files.download);
    assert.match(r.files.download!.slice(r.files.download!.lastIndexOf('/') + 1), /^[\w.-]*evil\.pdf$/);
    const listed = await h.store.list(h.config.s3ResultsBucket, 'results/other-org/');
    assert.deepEqual(listed, []);
  });

  // ── Jobs that are not what the control plane signed ────────────────────────────────────────────────────────
  it('refuses an unsigned job, a tampered script and a job replayed under another organisation', async () => {
    const org = testOrg('forged');
    await setSession(h.redis, org, 'user-1', h.session());
    const script = 'export default async function run({ helpers }) { helpers.setResult({ ran: true }); }';
    const unsigned = signedJob(org, script, {}, 'a-different-secret-of-at-least-32-chars!!');
    failsWith(await h.run(org, unsigned), 'SCRIPT_UNAUTHORIZED');
    const tampered = signedJob(org, script);
    tampered.scriptContent = script.replace('true', 'false');
    failsWith(await h.run(org, tampered), 'SCRIPT_INTEGRITY');
    const victim = testOrg('replay-victim');
    await setSession(h.redis, victim, 'user-1', h.session());
    const original = signedJob(org, script);
    const replayed = { ...original, orgId: victim };
    const refused = await h.run(victim, replayed);
    assert.equal(refused.status, 'dead', JSON.stringify(refused));
    assert.equal(refused.error?.code, 'JOB_SIGNATURE_INVALID');
    await h.normalJobSucceeds(org);
  });
});
