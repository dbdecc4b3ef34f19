import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import {
  DEMO_INVOICES, DEMO_PASSWORD, DEMO_TOTP_SEED, invoicePdf, parseCookies, startDemoPortal, type DemoPortal,
} from '../../src/embedded/demo-portal.ts';
import { totpCode } from '../../src/shared/totp.ts';
import { loginToDemoPortal } from '../../src/cli/demo.ts';
import { tempDir } from '../support/services.ts';

const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));

async function postLogin(url: string, username: string, password: string) {
  return fetch(`${url}/login`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }).toString(),
  });
}

describe('demo portal', () => {
  let portal: DemoPortal;
  before(async () => { portal = await startDemoPortal({ port: 0 }); });
  after(async () => { await portal?.close(); });

  it('answers /api/health', async () => {
    const res = await fetch(`${portal.url}/api/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  it('serves a login form with #username, #password and #submit', async () => {
    const html = await (await fetch(`${portal.url}/login`)).text();
    for (const id of ['username', 'password', 'submit']) assert.match(html, new RegExp(`id="${id}"`));
    assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1)/, 'no external assets');
  });

  it('refuses a wrong password and sets no session cookie', async () => {
    const res = await postLogin(portal.url, 'demo', 'wrong');
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), '/login?error=1');
    assert.deepEqual(res.headers.getSetCookie(), []);
  });

  it('logs in with demo/demo-password, setting an HttpOnly demo_session cookie and redirecting to /invoices', async () => {
    const res = await postLogin(portal.url, 'demo', DEMO_PASSWORD);
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), '/invoices');
    const [cookie] = res.headers.getSetCookie();
    assert.match(cookie ?? '', /^demo_session=[0-9a-f]{48}; .*HttpOnly/);
  });

  it('sends /invoices to /login without a valid session cookie', async () => {
    for (const headers of [{}, { cookie: 'demo_session=forged' }] as Array<Record<string, string>>) {
      const res = await fetch(`${portal.url}/invoices`, { redirect: 'manual', headers });
      assert.equal(res.status, 302);
      assert.equal(res.headers.get('location'), '/login');
    }
    const pdf = await fetch(`${portal.url}/invoices/INV-1001.pdf`, { redirect: 'manual' });
    assert.equal(pdf.status, 302);
  });

  it('shows the invoice table and the demo_locale cookie to a logged-in user', async () => {
    const session = await loginToDemoPortal(portal.url);
    const res = await fetch(`${portal.url}/invoices`, { headers: { cookie: `demo_session=${session}; demo_locale=es-EC` } });
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /<table id="invoices">/);
    assert.match(html, /<p id="locale">es-EC<\/p>/);
    assert.match(html, /<p id="greeting">Bienvenido<\/p>/);
    for (const inv of DEMO_INVOICES) {
      assert.ok(html.includes(`<td class="number">${inv.number}</td>`));
      assert.ok(html.includes(`<a class="pdf" href="/invoices/${inv.number}.pdf">`));
    }
    const noLocale = await (await fetch(`${portal.url}/invoices`, { headers: { cookie: `demo_session=${session}` } })).text();
    assert.doesNotMatch(noLocale, /id="locale"/);
    assert.match(noLocale, /<p id="greeting">Welcome<\/p>/);
  });

  it('escapes the locale cookie (no markup injection through a cookie)', async () => {
    const session = await loginToDemoPortal(portal.url);
    const html = await (await fetch(`${portal.url}/invoices`, {
      headers: { cookie: `demo_session=${session}; demo_locale=${encodeURIComponent('<script>x</script>')}` },
    })).text();
    assert.ok(html.includes('&lt;script&gt;x&lt;/script&gt;'));
  });

  it('downloads an invoice as an attachment whose bytes are a PDF', async () => {
    const session = await loginToDemoPortal(portal.url);
    const res = await fetch(`${portal.url}/invoices/INV-1002.pdf`, { headers: { cookie: `demo_session=${session}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/pdf');
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="INV-1002.pdf"');
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-');
    assert.match(bytes.subarray(-6).toString('latin1'), /%%EOF\n$/);
    const missing = await fetch(`${portal.url}/invoices/INV-9999.pdf`, { headers: { cookie: `demo_session=${session}` } });
    assert.equal(missing.status, 404);
  });

  it('expires every session on demand (POST /__admin/expire-sessions) and keeps a request log', async () => {
    const login = await postLogin(portal.url, 'demo', DEMO_PASSWORD);
    const token = parseCookies(login.headers.getSetCookie()[0]!.split(';')[0])['demo_session']!;
    const invoices = () => fetch(`${portal.url}/invoices?probe=1`, { redirect: 'manual', headers: { cookie: `demo_session=${token}` } });
    assert.equal((await invoices()).status, 200);
    const expired = await fetch(`${portal.url}/__admin/expire-sessions`, { method: 'POST' });
    assert.ok(((await expired.json()) as { expired: number }).expired >= 1);
    const after = await invoices();
    assert.equal(after.status, 302);
    assert.equal(after.headers.get('location'), '/login');
    const log = ((await (await fetch(`${portal.url}/__admin/requests`)).json()) as { requests: { method: string; url: string; loggedIn: boolean; at: number }[] }).requests;
    const probes = log.filter((r) => r.url === '/invoices?probe=1');
    assert.deepEqual(probes.map((r) => r.loggedIn), [true, false], 'logged in before the expiry, not after');
    assert.ok(!log.some((r) => r.url.startsWith('/__admin/')), 'the admin routes are not logged');
    assert.deepEqual(portal.requests().filter((r) => r.url === '/invoices?probe=1').length, 2);
  });

  it('signs in with a second factor at /login?mfa=1: the password leads to /2fa, a good code starts the session', async () => {
    const pw = await fetch(`${portal.url}/login?mfa=1`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: 'demo', password: DEMO_PASSWORD }).toString(),
    });
    assert.equal(pw.status, 302);
    assert.equal(pw.headers.get('location'), '/2fa');
    const pendingCookie = pw.headers.getSetCookie()[0]!.split(';')[0]!;
    assert.match(pendingCookie, /^demo_pending=/);
    assert.ok(!pw.headers.getSetCookie().some((c) => c.startsWith('demo_session=')), 'no session before the code');
    const wrong = await fetch(`${portal.url}/2fa`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: pendingCookie },
      body: new URLSearchParams({ code: '000000' }).toString(),
    });
    assert.equal(wrong.status, 401);
    const good = await fetch(`${portal.url}/2fa`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: pendingCookie },
      body: new URLSearchParams({ code: totpCode(DEMO_TOTP_SEED, Date.now()) }).toString(),
    });
    assert.equal(good.status, 302);
    assert.equal(good.headers.get('location'), '/invoices');
    const session = good.headers.getSetCookie().find((c) => c.startsWith('demo_session='))!.split(';')[0]!;
    assert.equal((await fetch(`${portal.url}/invoices`, { redirect: 'manual', headers: { cookie: session } })).status, 200);
    const wrongPw = await fetch(`${portal.url}/login?mfa=1`, {
      method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: 'demo', password: 'nope' }).toString(),
    });
    assert.equal(wrongPw.headers.get('location'), '/login?mfa=1&error=1');
  });

  it('writes a PDF whose cross-reference offsets point at its objects', () => {
    const pdf = invoicePdf(DEMO_INVOICES[0]!).toString('latin1');
    const startxref = Number(/startxref\n(\d+)\n/.exec(pdf)![1]);
    assert.ok(pdf.startsWith('xref', startxref));
    const offsets = [...pdf.slice(startxref).matchAll(/^(\d{10}) 00000 n $/gm)].map((m) => Number(m[1]));
    assert.equal(offsets.length, 5);
    offsets.forEach((o, i) => assert.ok(pdf.startsWith(`${i + 1} 0 obj`, o), `object ${i + 1} at ${o}`));
  });

  it('parses cookie headers', () => {
    assert.deepEqual(parseCookies('a=1; b=x%20y; a=2; junk'), { a: '1', b: 'x y' });
    assert.deepEqual(parseCookies(undefined), {});
  });

  it('works in Chromium as the demo flow drives it: cookie by domain, form login, table, PDF download', { skip: !CHROMIUM && 'no chromium' }, async () => {
    const dir = tempDir('sri-portal-');
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM!,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
      });
      const context = await browser.newContext({ acceptDownloads: true });
      // The shape `sri demo` connects: domain + path, as the worker loads session cookies.
      await context.addCookies([{ name: 'demo_locale', value: 'es-EC', domain: '127.0.0.1', path: '/' }]);
      const page = await context.newPage();
      await page.goto(`${portal.url}/login`);
      await page.fill('#username', 'demo');
      await page.fill('#password', DEMO_PASSWORD);
      await page.click('#submit');
      await page.waitForSelector('table#invoices');
      assert.equal(await page.textContent('#locale'), 'es-EC');
      assert.equal(await page.textContent('#greeting'), 'Bienvenido');
      assert.equal(await page.locator('table#invoices tbody tr').count(), DEMO_INVOICES.length);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('a.pdf')]);
      assert.equal(download.suggestedFilename(), 'INV-1001.pdf');
      const saved = join(dir.path, download.suggestedFilename());
      await download.saveAs(saved);
      assert.equal(readFileSync(saved).subarray(0, 4).toString('latin1'), '%PDF');
      await context.close();
    } finally {
      await browser?.close();
      dir.remove();
    }
  });
});
