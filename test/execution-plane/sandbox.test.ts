/**
 * The script sandbox on its own (src/execution-plane/script/sandbox/): a real child process per script, real
 * Chromium pages, no Redis or S3. What a script gets (the page API of docs/scripts.md, through the facade), what it
 * does not get, and how the worker refuses or degrades when bubblewrap is missing. The hostile cases on a whole
 * worker are in adversarial.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { chromiumArgs, resolveChromiumPath } from '../../src/execution-plane/browser.ts';
import { ExecutionLog } from '../../src/execution-plane/job/execution-log.ts';
import { createHelpers, JobArtifacts, type EvidenceStore } from '../../src/execution-plane/job/helpers.ts';
import { Redactor } from '../../src/execution-plane/job/redactor.ts';
import { SandboxRunner, type SandboxOptions } from '../../src/execution-plane/script/sandbox/sandbox-runner.ts';
import { childBundle } from '../../src/execution-plane/script/sandbox/process.ts';
import { verifyJobScript } from '../../src/execution-plane/script/verified-script.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { signScript } from '../../src/shared/signing.ts';
import { TEST_SIGNING_SECRET } from '../support/services.ts';

const OPTS: SandboxOptions = { mode: 'bwrap', cpuSeconds: 5, memoryMb: 128, maxCalls: 5000, actionTimeoutMs: 5000 };

/** Downloads as the helpers store them (the pipeline's store streams them to S3; here they are kept by URI). */
const stored = new Map<string, Buffer>();
const memoryStore: EvidenceStore = {
  async put(name, body) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    const uri = `mem://${stored.size}/${name}`;
    stored.set(uri, Buffer.concat(chunks));
    return uri;
  },
};

function captureLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = createLogger({ name: 'sandbox-test', level: 'info', stdout: false });
  const wrap = { ...logger, info: (o: object, msg: string) => lines.push({ level: 30, msg }), warn: (o: object, msg: string) => lines.push({ level: 40, msg }) };
  return { logger: wrap as unknown as typeof logger, lines };
}

describe('script sandbox', () => {
  let browser: Browser;
  let server: Server;
  let base: string;
  const runner = SandboxRunner.create(OPTS, captureLogger().logger);

  before(async () => {
    browser = await chromium.launch({ executablePath: resolveChromiumPath(undefined), args: chromiumArgs(), headless: true });
    server = createServer((req, res) => {
      if (req.url === '/file') {
        res.writeHead(200, { 'content-type': 'text/csv', 'content-disposition': 'attachment; filename="report.csv"' }).end('a,b\n1,2\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>Portal</title>
        <label for="q">Search</label><input id="q"><button id="go" onclick="document.querySelector('#out').textContent = document.querySelector('#q').value">Go</button>
        <p id="out"></p><ul><li class="i">one</li><li class="i">two</li><li class="i">three</li></ul>
        <select id="s"><option value="a">A</option><option value="b">B</option></select>
        <button id="ask" onclick="document.querySelector('#out').textContent = prompt('name?')">Ask</button>
        <a id="dl" href="/file">csv</a><a id="pop" href="/" target="_blank">new</a>
        <iframe id="f" srcdoc="<p id=inner>framed</p>"></iframe>`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function runScript(body: string, opts: { runner?: SandboxRunner; timeoutMs?: number } = {}) {
    const src = `export default async function run({ page, payload, helpers, context }) {\n${body}\n}`;
    const { scriptHash, signature } = signScript(src, TEST_SIGNING_SECRET);
    const context: BrowserContext = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const exec = new ExecutionLog(new Redactor());
    const artifacts = new JobArtifacts();
    const helpers = createHelpers({ page, credentials: { pin: '4321' }, exec, artifacts, timeoutMs: 5000, limits: { maxScreenshots: 10, maxDownloads: 5, maxDownloadBytes: 1e6 },
      store: memoryStore, charge: () => true, redact: (t) => t });
    try {
      await (opts.runner ?? runner).run(verifyJobScript(src, scriptHash, signature, TEST_SIGNING_SECRET),
        { page, payload: { base }, helpers, context: { jobId: 'job-1', orgId: 'org-1', userId: 'u', providerId: 'p', flowId: 'f', flowVersion: '1.0.0', attempt: 1 } },
        { timeoutMs: opts.timeoutMs ?? 20_000, signal: new AbortController().signal, filename: 'test-flow.js' });
      return { data: artifacts.parsedData ?? {}, artifacts, log: exec.text() };
    } finally {
      await context.close();
    }
  }

  it('gives the script exactly page, payload, helpers and context, and nothing of a host', async () => {
    const { data } = await runScript(`helpers.setResult({ keys: Object.keys(arguments[0]).sort(), job: context.jobId, base: payload.base === ${JSON.stringify('')} ? 'x' : typeof payload.base,
      globals: [typeof process, typeof require, typeof fetch, typeof setTimeout, typeof console, typeof Buffer, typeof WebAssembly.compile] });`);
    assert.deepEqual(data['keys'], ['context', 'helpers', 'page', 'payload']);
    assert.equal(data['job'], 'job-1');
    assert.deepEqual(data['globals'], ['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'function']);
  });

  it('serves the page API: navigation, locators, getBy*, frames, evaluate, $eval, keyboard, selectOption, cookies', async () => {
    const { data, log } = await runScript(`
      const resp = await page.goto(payload.base + '/');
      await page.getByLabel('Search').fill('hello');
      await page.locator('#go').click();
      await page.keyboard.press('Tab');
      const items = await page.locator('li.i').all();
      const chosen = await page.selectOption('#s', 'b');
      const frames = await page.frames();
      helpers.setResult({
        status: resp.status(), ok: resp.ok(), url: page.url() === payload.base + '/', title: await page.title(),
        out: await page.textContent('#out'), count: await page.locator('li.i').count(), texts: await page.locator('li.i').allTextContents(),
        second: await items[1].textContent(), nth: await page.locator('li.i').nth(2).innerText(), filtered: await page.locator('li.i').filter({ hasText: /tw/ }).count(),
        role: await page.getByRole('button', { name: 'Go' }).count(), chosen, inFrame: await page.frameLocator('#f').locator('#inner').textContent(),
        frames: frames.length, evaluated: await page.evaluate((n) => n * 2, 21), expression: await page.evaluate('1 + 1'),
        onElement: await page.locator('#out').evaluate((el, suffix) => el.textContent + suffix, '!'),
        cookies: Array.isArray(await page.cookies()), visible: await page.isVisible('#go'),
        all: await page.$$eval('li.i', (els, sep) => els.map((e) => e.textContent).join(sep), '+'), one: await page.$eval('#out', (el) => el.id),
      });
      for (let i = 0; i < 1000; i++) helpers.log('line ' + i);`);
    assert.deepEqual(data, {
      status: 200, ok: true, url: true, title: 'Portal', out: 'hello', count: 3, texts: ['one', 'two', 'three'], second: 'two', nth: 'three',
      filtered: 1, role: 1, chosen: ['b'], inFrame: 'framed', frames: 2, evaluated: 42, expression: 2, onElement: 'hello!', cookies: true, visible: true,
      all: 'one+two+three', one: 'out',
    });
    assert.match(log, /line 999/, 'a loop of 1,000 helpers.log lines is served, not taken for a flood');
  });

  it('serves dialogs, popups and downloads through events and helpers', async () => {
    const { data, artifacts } = await runScript(`
      await page.goto(payload.base + '/');
      page.on('dialog', (d) => { helpers.log('dialog ' + d.type() + ': ' + d.message()); d.accept('Ada'); });
      await page.click('#ask');
      const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#pop')]);
      await popup.waitForLoadState();
      const saved = await helpers.download(() => page.click('#dl'));
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl')]);
      helpers.setResult({ answer: await page.textContent('#out'), popupTitle: await popup.title(), saved, suggested: download.suggestedFilename(), second: await download.save() });
      await popup.close();`);
    assert.equal(data['answer'], 'Ada');
    assert.equal(data['popupTitle'], 'Portal');
    assert.deepEqual(data['saved'], { name: 'report.csv', size: 8 });
    assert.equal(data['suggested'], 'report.csv');
    assert.deepEqual(data['second'], { name: 'report-1.csv', size: 8 });
    assert.deepEqual(artifacts.downloads.map((d) => stored.get(d.uri)?.toString()), ['a,b\n1,2\n', 'a,b\n1,2\n']);
  });

  it('fills a secret without the value entering the script', async () => {
    const { data } = await runScript(`await page.goto(payload.base + '/'); await helpers.fillSecret('#q', 'pin'); helpers.setResult({ len: (await page.inputValue('#q')).length });`);
    assert.deepEqual(data, { len: 4 });
  });

  it('passes the script\'s own error through, names a bad script SCRIPT_INVALID, and stops a script that never settles', async () => {
    await assert.rejects(runScript('throw new Error("portal changed")'), /portal changed/);
    await assert.rejects(runScript('const x = ;'), (e: unknown) => isSriError(e) && e.code === 'SCRIPT_INVALID' && /does not compile/.test(e.message));
    await assert.rejects(runScript('await new Promise(() => {});', { timeoutMs: 1500 }), (e: unknown) => isSriError(e) && e.code === 'EXECUTION_TIMEOUT');
  });

  it('kills the child when the job is aborted (cancel, shutdown) and reports the abort reason', async () => {
    const src = 'export default async function run({ page }) { await new Promise(() => {}); }';
    const { scriptHash, signature } = signScript(src, TEST_SIGNING_SECRET);
    const context = await browser.newContext();
    const page = await context.newPage();
    const abort = new AbortController();
    const helpers = createHelpers({ page, credentials: {}, exec: new ExecutionLog(new Redactor()), artifacts: new JobArtifacts(), timeoutMs: 1000, limits: { maxScreenshots: 1, maxDownloads: 1, maxDownloadBytes: 1 },
      store: memoryStore, charge: () => true, redact: (t) => t });
    const running = runner.run(verifyJobScript(src, scriptHash, signature, TEST_SIGNING_SECRET),
      { page, payload: {}, helpers, context: { jobId: 'j', orgId: 'o', userId: 'u', providerId: 'p', flowId: 'f', flowVersion: '1', attempt: 1 } },
      { timeoutMs: 60_000, signal: abort.signal, filename: 'x.js' });
    abort.abort();
    await assert.rejects(running, (e: unknown) => isSriError(e) && e.code === 'WORKER_SHUTDOWN');
    await context.close();
  });

  it('passes the child on the command line within Linux\'s 128 KiB limit of one argument, importing only node: builtins', () => {
    const code = childBundle();
    assert.ok(Buffer.byteLength(code) < 100 * 1024, `${Buffer.byteLength(code)} bytes`);
    assert.deepEqual([...code.matchAll(/from\s+["']([^"']+)["']/g)].map((m) => m[1]).filter((x) => !x!.startsWith('node:')), []);
  });

  it('refuses to start without bubblewrap in bwrap mode (SANDBOX_UNAVAILABLE), and says so when auto falls back', () => {
    assert.throws(() => SandboxRunner.create({ ...OPTS, bwrapPath: '/nonexistent/bwrap' }, captureLogger().logger),
      (e: unknown) => isSriError(e) && e.code === 'SANDBOX_UNAVAILABLE' && /bubblewrap/.test(e.message));
    const { logger, lines } = captureLogger();
    const degraded = SandboxRunner.create({ ...OPTS, mode: 'auto', bwrapPath: '/nonexistent/bwrap' }, logger);
    assert.equal(degraded.kind, 'process');
    assert.ok(lines.some((l) => l.level === 40 && /DEGRADED/.test(l.msg)), JSON.stringify(lines));
    const { logger: l2, lines: lines2 } = captureLogger();
    assert.equal(SandboxRunner.create({ ...OPTS, mode: 'auto' }, l2).kind, 'bwrap');
    assert.ok(lines2.some((l) => l.level === 30 && /bubblewrap namespaces/.test(l.msg)));
  });

  it('in process mode (no namespaces) still runs scripts and keeps them from files and processes', async () => {
    const processRunner = SandboxRunner.create({ ...OPTS, mode: 'process' }, captureLogger().logger);
    const { data } = await runScript(`await page.goto(payload.base + '/'); helpers.setResult({ title: await page.title() });`, { runner: processRunner });
    assert.deepEqual(data, { title: 'Portal' });
    await assert.rejects(runScript(`page.goto.constructor.constructor('return process')().binding('fs')`, { runner: processRunner }), /Code generation from strings disallowed/);
  });
});
