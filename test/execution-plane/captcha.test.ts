/**
 * CAPTCHAs on a job's page (src/execution-plane/job/captcha.ts) in real Chromium: each widget recognised by its DOM
 * signature; a local server that speaks the 2captcha HTTP API (in.php / res.php, "not ready" before the answer)
 * solves them, the answer lands where the widget would put it and the portal page accepts the form; a refusing,
 * unreachable or silent service falls back to the hand-off. Nothing secret (the API key, the token) reaches the log.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { detectCaptcha, getPastCaptcha, TwoCaptchaSolver, type CaptchaDeps } from '../../src/execution-plane/job/captcha.ts';
import { launchChromium } from '../web/browser.ts';

const API_KEY = 'test-api-key-0123456789abcdef';
const TOKEN = 'solved-token-3f9a';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const body = async (req: IncomingMessage) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
};

/** The portal: pages with each widget; POST /submit accepts the form when its response field holds TOKEN. */
const PAGES: Record<string, string> = {
  '/plain': '<h1>Invoices</h1><p>No CAPTCHA here.</p>',
  '/recaptcha': `<form method="post" action="/submit"><div class="g-recaptcha" data-sitekey="site-key-rc" data-callback="onSolved"></div>
    <button id="go">Send</button></form><p id="cb"></p>
    <script>window.onSolved = (t) => { document.getElementById('cb').textContent = 'callback ' + t.length; };</script>`,
  '/hcaptcha': '<form method="post" action="/submit"><iframe src="https://newassets.hcaptcha.com/captcha/v1/x/static/hcaptcha.html#frame=checkbox&sitekey=ignored" title="hCaptcha"></iframe><iframe src="https://hcaptcha.com/checkbox?sitekey=site-key-hc" title="hCaptcha 2"></iframe><button id="go">Send</button></form>',
  '/turnstile': '<form method="post" action="/submit"><div class="cf-turnstile" data-sitekey="site-key-ts"></div><button id="go">Send</button></form>',
  '/image': `<form method="post" action="/submit"><img id="captcha-img" alt="captcha" width="120" height="40"
    src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='120' height='40'%3E%3Ctext x='10' y='28' font-size='24'%3EX7K2%3C/text%3E%3C/svg%3E">
    <input id="captcha-answer" name="captcha"><button id="go">Send</button></form>`,
};

describe('CAPTCHAs: detection, a 2captcha-compatible solver, the hand-off fallback', () => {
  let browser: Browser;
  let portal: Server;
  let portalUrl = '';
  let solverServer: Server;
  let solverUrl = '';
  const tasks: Array<Record<string, string>> = [];
  const polls: string[] = [];
  let behaviour: 'ok' | 'never-ready' = 'ok';

  before(async () => {
    portal = createServer(async (req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method === 'POST' && path === '/submit') {
        const form = new URLSearchParams(await body(req));
        const ok = [form.get('g-recaptcha-response'), form.get('h-captcha-response'), form.get('cf-turnstile-response'), form.get('captcha')]
          .some((v) => v === TOKEN || v === 'X7K2');
        res.writeHead(ok ? 200 : 403, { 'content-type': 'text/html' }).end(ok ? '<p id="ok">Accepted</p>' : '<p id="no">Refused</p>');
        return;
      }
      const page = PAGES[path];
      res.writeHead(page ? 200 : 404, { 'content-type': 'text/html' }).end(`<!doctype html><html><body>${page ?? 'no'}</body></html>`);
    });
    portalUrl = await listen(portal);
    // The 2captcha API: in.php takes a task (form body), res.php answers CAPCHA_NOT_READY once, then the answer.
    solverServer = createServer(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const json = (o: object) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(o));
      if (url.pathname === '/in.php' && req.method === 'POST') {
        const task = Object.fromEntries(new URLSearchParams(await body(req)));
        if (task['key'] !== API_KEY) return json({ status: 0, request: 'ERROR_WRONG_USER_KEY' });
        tasks.push(task);
        return json({ status: 1, request: String(tasks.length) });
      }
      if (url.pathname === '/res.php') {
        if (url.searchParams.get('key') !== API_KEY) return json({ status: 0, request: 'ERROR_WRONG_USER_KEY' });
        const id = url.searchParams.get('id') ?? '';
        polls.push(id);
        const task = tasks[Number(id) - 1];
        if (!task) return json({ status: 0, request: 'ERROR_WRONG_CAPTCHA_ID' });
        if (behaviour === 'never-ready' || polls.filter((p) => p === id).length < 2) return json({ status: 0, request: 'CAPCHA_NOT_READY' });
        return json({ status: 1, request: task['method'] === 'base64' ? 'X7K2' : TOKEN });
      }
      res.writeHead(404).end();
    });
    solverUrl = await listen(solverServer);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    portal?.close();
    solverServer?.close();
  });

  async function open(path: string): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(portalUrl + path);
    return page;
  }

  function deps(solver: TwoCaptchaSolver | undefined) {
    const logged: string[] = [];
    const handoffs: string[] = [];
    const d: CaptchaDeps = {
      solver, log: (m) => logged.push(m), signal: new AbortController().signal,
      handoff: async (reason) => { handoffs.push(reason); },
    };
    return { d, logged, handoffs };
  }

  const solver = (over: Partial<ConstructorParameters<typeof TwoCaptchaSolver>[0]> = {}) =>
    new TwoCaptchaSolver({ url: solverUrl, apiKey: API_KEY, firstPollMs: 10, pollMs: 20, timeoutMs: 30_000, ...over });

  it('recognises reCAPTCHA, hCaptcha (by its iframe), Turnstile and an image CAPTCHA, and nothing on a plain page', async () => {
    const seen: Record<string, unknown> = {};
    for (const path of ['/plain', '/recaptcha', '/hcaptcha', '/turnstile', '/image']) {
      const page = await open(path);
      const c = await detectCaptcha(page);
      seen[path] = c && { kind: c.kind, siteKey: c.siteKey, answerSelector: c.answerSelector };
      await page.close();
    }
    assert.deepEqual(seen, {
      '/plain': null,
      '/recaptcha': { kind: 'recaptcha', siteKey: 'site-key-rc', answerSelector: undefined },
      '/hcaptcha': { kind: 'hcaptcha', siteKey: 'ignored', answerSelector: undefined },
      '/turnstile': { kind: 'turnstile', siteKey: 'site-key-ts', answerSelector: undefined },
      '/image': { kind: 'image', siteKey: undefined, answerSelector: '#captcha-answer' },
    });
  });

  it('solves a reCAPTCHA through the service: site key and page sent, answer polled, token in the form and the callback called', async () => {
    const page = await open('/recaptcha');
    const { d, logged, handoffs } = deps(solver());
    const outcome = await getPastCaptcha(page, d);
    assert.equal(outcome.outcome, 'solved');
    assert.deepEqual(handoffs, []);
    const task = tasks.at(-1)!;
    assert.equal(task['method'], 'userrecaptcha');
    assert.equal(task['googlekey'], 'site-key-rc');
    assert.equal(task['pageurl'], `${portalUrl}/recaptcha`);
    assert.ok(polls.filter((p) => p === String(tasks.length)).length >= 2, 'the answer was polled until ready');
    assert.equal(await page.textContent('#cb'), `callback ${TOKEN.length}`);
    await page.click('#go');
    await page.waitForSelector('#ok');
    const log = logged.join('\n');
    assert.match(log, /a recaptcha CAPTCHA is on/);
    assert.match(log, /the CAPTCHA solver answered in/);
    assert.ok(!log.includes(API_KEY) && !log.includes(TOKEN), 'neither the API key nor the token is logged');
    await page.close();
  });

  it('solves Turnstile and hCaptcha with their own methods, and an image CAPTCHA from its picture', async () => {
    for (const [path, method, key] of [['/turnstile', 'turnstile', 'sitekey'], ['/hcaptcha', 'hcaptcha', 'sitekey']] as const) {
      const page = await open(path);
      assert.equal((await getPastCaptcha(page, deps(solver()).d)).outcome, 'solved', path);
      assert.equal(tasks.at(-1)![key] !== undefined && tasks.at(-1)!['method'], method);
      await page.click('#go');
      await page.waitForSelector('#ok');
      await page.close();
    }
    const page = await open('/image');
    assert.equal((await getPastCaptcha(page, deps(solver()).d)).outcome, 'solved');
    const task = tasks.at(-1)!;
    assert.equal(task['method'], 'base64');
    assert.equal(Buffer.from(task['body'] ?? '', 'base64').subarray(1, 4).toString(), 'PNG', 'the picture is sent as a PNG');
    assert.equal(await page.inputValue('#captcha-answer'), 'X7K2');
    await page.click('#go');
    await page.waitForSelector('#ok');
    await page.close();
  });

  it('hands the page to a person when the service refuses, cannot be reached or gives no answer in time, and when none is configured', async () => {
    const cases: Array<[string, TwoCaptchaSolver | undefined, RegExp | undefined]> = [
      ['refused', solver({ apiKey: 'wrong-key-000000000000' }), /refused \(in\.php\): ERROR_WRONG_USER_KEY/],
      ['unreachable', solver({ url: 'http://127.0.0.1:9' }), /could not be reached/],
      ['silent', solver({ timeoutMs: 500 }), /no answer within 500 ms/],
      ['none configured', undefined, undefined],
    ];
    for (const [what, s, expected] of cases) {
      behaviour = what === 'silent' ? 'never-ready' : 'ok';
      const page = await open('/recaptcha');
      const { d, logged, handoffs } = deps(s);
      const outcome = await getPastCaptcha(page, d);
      assert.equal(outcome.outcome, 'handed-off', what);
      assert.equal(handoffs.length, 1, `${what}: one hand-off`);
      assert.match(handoffs[0]!, /recaptcha CAPTCHA needs a person/);
      if (expected) assert.match(logged.join('\n'), expected, what);
      assert.ok(!logged.join('\n').includes('wrong-key') && !logged.join('\n').includes(API_KEY), `${what}: no key in the log`);
      await page.close();
    }
    behaviour = 'ok';
  });

  it('does nothing on a page without a CAPTCHA', async () => {
    const page = await open('/plain');
    const { d, logged, handoffs } = deps(solver());
    assert.deepEqual(await getPastCaptcha(page, d), { outcome: 'none' });
    assert.deepEqual([logged, handoffs], [[], []]);
    await page.close();
  });
});
