/**
 * The demo portal: a small local website imitating a supplier portal (login form → session cookie → invoice table →
 * PDF download), so that `sri demo`, the README walkthrough and the tests run without the internet.
 *
 * It is deliberately plain HTML with no external assets: the worker's browser may reach only the job's allowed
 * hosts, and the demo provider allows this portal's port on 127.0.0.1/localhost alone (demoProvider).
 */
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { AddressInfo } from 'node:net';
import { totpValid } from '../shared/totp.ts';
import { registerSriPortal, type SriPortalControl, type SriPortalOptions } from './sri-portal/index.ts';
import { onePagePdf } from './one-page-pdf.ts';
import { registerDemoBlockers } from './demo-blockers.ts';

export const DEMO_USERNAME = 'demo';
export const DEMO_PASSWORD = 'demo-password';
export const DEMO_SESSION_COOKIE = 'demo_session';
export const DEMO_LOCALE_COOKIE = 'demo_locale';
/** Holds a login whose password was right while it waits for its second factor (`/login?mfa=1` → /2fa). */
export const DEMO_PENDING_COOKIE = 'demo_pending';
/**
 * The seed of the demo portal's second factor (/2fa): RFC 6238's own test key ("12345678901234567890" in base32),
 * SHA-1, 6 digits, 30 s. Public on purpose — connect the demo provider with `{"totp": {"demo": DEMO_TOTP_SEED}}`, or
 * add it to any authenticator app, to try `fill {totp}`. Never use a published seed for a real account.
 */
export const DEMO_TOTP_SEED = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

/**
 * The `demo` provider as `sri up` registers it (src/embedded/stack.ts): only there, and only for the port its demo
 * portal listens on, so its flows reach that portal and no other loopback port of the machine. No other deployment
 * has it (migration 0005).
 */
export function demoProvider(port: number): {
  id: string; name: string; displayName: string; allowedHosts: string[]; sessionCheck: DemoSessionCheck; loginSteps: DemoLoginStep[];
} {
  const base = `http://127.0.0.1:${port}`;
  return {
    id: 'demo', name: 'demo', displayName: 'Demo supplier portal', allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`],
    sessionCheck: demoSessionCheck(base), loginSteps: demoLoginSteps(base),
  };
}

interface DemoSessionCheck { url: string; loggedOutUrl: string; loggedInSelector: string }
type DemoLoginStep = Record<string, string> & { type: string };

/** Logged out on the demo portal: /invoices sends the visitor to /login (docs/sessions.md). */
export function demoSessionCheck(base: string): DemoSessionCheck {
  return { url: `${base}/invoices`, loggedOutUrl: '/login(?:[?#]|$)', loggedInSelector: '#invoices' };
}

/**
 * The demo portal's login flow: user name and password from the connection's credentials `portalUser` and
 * `portalPassword`, then the second factor from its TOTP seed `demo` (DEMO_TOTP_SEED).
 */
export function demoLoginSteps(base: string): DemoLoginStep[] {
  return [
    { type: 'navigate', url: `${base}/login?mfa=1` },
    { type: 'fill', selector: '#username', secretRef: 'portalUser' },
    { type: 'fill', selector: '#password', secretRef: 'portalPassword' },
    { type: 'click', selector: '#submit' },
    { type: 'waitFor', selector: '#code' },
    { type: 'fill', selector: '#code', totp: 'demo' },
    { type: 'click', selector: '#verify' },
    { type: 'waitFor', selector: '#invoices' },
  ];
}

export interface DemoInvoice {
  readonly number: string;
  readonly date: string;
  readonly amount: string;
}

/** The rows the invoice table shows; tests compare parsed data against these. */
export const DEMO_INVOICES: readonly DemoInvoice[] = Object.freeze([
  { number: 'INV-1001', date: '2026-01-15', amount: '1250.00' },
  { number: 'INV-1002', date: '2026-02-15', amount: '980.50' },
  { number: 'INV-1003', date: '2026-03-15', amount: '1432.75' },
]);

/** One request the portal served, as its request log keeps it (no cookie or form value). */
export interface DemoRequest {
  /** Epoch ms when the request arrived. */
  readonly at: number;
  readonly method: string;
  /** Path and query. */
  readonly url: string;
  /** Whether it came with a live session cookie. */
  readonly loggedIn: boolean;
}

/** Requests the log keeps (the oldest go first). */
export const DEMO_REQUEST_LOG_SIZE = 2000;

export interface DemoPortal {
  readonly url: string;
  readonly port: number;
  /** The requests served so far, oldest first (also at GET /__admin/requests). */
  requests(): readonly DemoRequest[];
  /** Logs every session out, as a portal's own expiry would (also POST /__admin/expire-sessions); returns how many. */
  expireSessions(): number;
  /** The SRI imitation under /sri (src/embedded/sri-portal, docs/sri.md): its switches, stats and documents. */
  readonly sri: SriPortalControl;
  close(): Promise<void>;
}

export interface DemoPortalOptions {
  /** 0 picks a free port. */
  port: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** The SRI imitation's initial settings and clock. */
  sri?: SriPortalOptions;
}

export async function startDemoPortal(opts: DemoPortalOptions): Promise<DemoPortal> {
  const host = opts.host ?? '127.0.0.1';
  // Session tokens live in memory: a restarted portal logs everyone out, as a real portal's expiry would.
  const sessions = new Set<string>();
  // Logins whose password was right, waiting for their second factor (/login?mfa=1 → /2fa).
  const pending = new Set<string>();
  const requestLog: DemoRequest[] = [];
  const app = Fastify({ logger: false });

  // Browsers post the login form as application/x-www-form-urlencoded; fastify parses only JSON by default.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  const loggedIn = (req: FastifyRequest) => {
    const token = parseCookies(req.headers.cookie)[DEMO_SESSION_COOKIE];
    return token !== undefined && sessions.has(token);
  };
  const html = (reply: FastifyReply, status: number, title: string, body: string) =>
    reply.code(status).type('text/html; charset=utf-8').send(page(title, body));
  const startSession = () => {
    const token = randomBytes(24).toString('hex');
    sessions.add(token);
    return `${DEMO_SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax`;
  };
  const expireSessions = () => {
    const n = sessions.size;
    sessions.clear();
    pending.clear();
    return n;
  };

  // The request log (tests: what a job's browser asked, when, and whether it was logged in); the admin routes
  // themselves are not in it.
  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/__admin/')) return;
    requestLog.push({ at: Date.now(), method: req.method, url: req.url, loggedIn: loggedIn(req) });
    if (requestLog.length > DEMO_REQUEST_LOG_SIZE) requestLog.splice(0, requestLog.length - DEMO_REQUEST_LOG_SIZE);
  });
  app.get('/__admin/requests', async () => ({ requests: requestLog }));
  app.post('/__admin/expire-sessions', async () => ({ expired: expireSessions() }));

  // A session that expires while a flow runs: this page ends the visitor's session and sends them to the login page
  // (the demo provider's logged-out address). With `?once=<id>` only the first visit with that id ends it; later
  // ones go on to /invoices (a flow retried after signing in again gets past it). Ids kept: the last 1000.
  const endedOnce = new Set<string>();
  app.get('/blockers/session-ends', async (req, reply) => {
    const once = (req.query as Record<string, string | undefined>)['once'];
    if (once !== undefined && endedOnce.has(once)) return reply.redirect('/invoices');
    if (once !== undefined) {
      endedOnce.add(once);
      if (endedOnce.size > 1000) endedOnce.delete(endedOnce.values().next().value!);
    }
    const token = parseCookies(req.headers.cookie)[DEMO_SESSION_COOKIE];
    if (token !== undefined) sessions.delete(token);
    return reply.redirect('/login?redirect=%2Finvoices');
  });

  app.get('/api/health', async () => ({ status: 'ok' }));
  app.get('/', async (req, reply) => reply.redirect(loggedIn(req) ? '/invoices' : '/login'));

  // `?mfa=1`: the login with a second factor — the right password leads to /2fa, and the session starts only
  // with a good code there (the demo provider's login flow, demoLoginSteps).
  const mfaOf = (req: FastifyRequest) => (req.query as Record<string, string | undefined>)['mfa'] === '1';
  app.get('/login', async (req, reply) => {
    const failed = (req.query as Record<string, string | undefined>)['error'] !== undefined;
    return html(reply, 200, 'Sign in', loginForm(failed, mfaOf(req)));
  });

  app.post('/login', async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const mfa = mfaOf(req);
    if (body['username'] !== DEMO_USERNAME || body['password'] !== DEMO_PASSWORD) {
      return reply.redirect(mfa ? '/login?mfa=1&error=1' : '/login?error=1');
    }
    if (mfa) {
      const token = randomBytes(24).toString('hex');
      pending.add(token);
      reply.header('set-cookie', `${DEMO_PENDING_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax`);
      return reply.redirect('/2fa');
    }
    reply.header('set-cookie', startSession());
    return reply.redirect('/invoices');
  });

  // The second factor: a six-digit code of DEMO_TOTP_SEED, one period of clock drift either way, as portals allow.
  // A wrong code is refused with 401 and the form again. With a login waiting for it (/login?mfa=1), a good code
  // starts the session and leads to /invoices; without one the page only says the code was accepted.
  app.get('/2fa', async (_req, reply) => html(reply, 200, 'Second factor', totpForm(false)));
  app.post('/2fa', async (req, reply) => {
    const code = (req.body as Record<string, unknown> | undefined)?.['code'];
    if (typeof code !== 'string' || !/^\d{6}$/.test(code) || !totpValid(DEMO_TOTP_SEED, code, Date.now(), 1)) {
      return html(reply, 401, 'Second factor', totpForm(true));
    }
    const waiting = parseCookies(req.headers.cookie)[DEMO_PENDING_COOKIE];
    if (waiting !== undefined && pending.delete(waiting)) {
      reply.header('set-cookie', [startSession(), `${DEMO_PENDING_COOKIE}=; Path=/; HttpOnly; Max-Age=0`]);
      return reply.redirect('/invoices');
    }
    return html(reply, 200, 'Second factor accepted', '<p id="totp-ok">Your code was accepted.</p>');
  });

  // A slow page for long jobs (the dashboard's live-log test): public, it writes a console line every second for ten
  // minutes — a warning every fifth — so a job that waits on it keeps logging while someone watches it.
  app.get('/ticker', async (_req, reply) => html(reply, 200, 'Ticker', TICKER_BODY));
  // A CAPTCHA on demand (hand-off tests, docs/dashboard.md "Hand-off"): a challenge only a person answers through the
  // live view — type "human" and press Enter. With ?widget=recaptcha the page also carries reCAPTCHA's DOM signature
  // (.g-recaptcha with a site key), for a worker's CAPTCHA detection; without it, nothing detects it.
  app.get('/captcha', async (req, reply) => {
    const widget = (req.query as Record<string, string | undefined>)['widget'] === 'recaptcha';
    return html(reply, 200, 'Security check', captchaForm(false, widget));
  });
  // The same check in a window of its own (the live view follows windows a page opens during a hand-off): the button
  // opens /captcha in a popup; once the popup says "You are a person" this page says so (#popup-ok) and closes it.
  app.get('/captcha-popup', async (_req, reply) => html(reply, 200, 'Security check in a window', CAPTCHA_POPUP_BODY));
  app.post('/captcha', async (req, reply) => {
    const answer = (req.body as Record<string, unknown> | undefined)?.['answer'];
    // Or the token a CAPTCHA-solving service gives for its widget (the test's 2captcha-compatible server gives this one).
    const token = (req.body as Record<string, unknown> | undefined)?.['g-recaptcha-response'];
    const solved = token === DEMO_CAPTCHA_TOKEN;
    if (!solved && (typeof answer !== 'string' || answer.trim().toLowerCase() !== DEMO_CAPTCHA_ANSWER)) return html(reply, 401, 'Security check', captchaForm(true));
    return html(reply, 200, 'Security check passed', '<p id="captcha-ok">You are a person.</p>');
  });

  // Blocker pages on demand (login wall, CAPTCHAs, rate limit, maintenance, access denied): demo-blockers.ts.
  registerDemoBlockers(app, html);

  app.post('/logout', async (req, reply) => {
    const token = parseCookies(req.headers.cookie)[DEMO_SESSION_COOKIE];
    if (token) sessions.delete(token);
    reply.header('set-cookie', `${DEMO_SESSION_COOKIE}=; Path=/; HttpOnly; Max-Age=0`);
    return reply.redirect('/login');
  });

  app.get('/invoices', async (req, reply) => {
    if (!loggedIn(req)) return reply.redirect('/login');
    const cookies = parseCookies(req.headers.cookie);
    // A sliding session, as many portals keep one: each visit renews the session cookie's expiry (a day from now).
    reply.header('set-cookie', `${DEMO_SESSION_COOKIE}=${cookies[DEMO_SESSION_COOKIE]}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${DEMO_SESSION_RENEW_SECONDS}`);
    return html(reply, 200, 'Invoices', invoiceTable(cookies[DEMO_LOCALE_COOKIE]));
  });

  app.get('/invoices/:file', async (req, reply) => {
    if (!loggedIn(req)) return reply.redirect('/login');
    const file = (req.params as { file: string }).file;
    const invoice = DEMO_INVOICES.find((i) => `${i.number}.pdf` === file);
    if (!invoice) return html(reply, 404, 'Not found', '<p>No such invoice.</p>');
    return reply.code(200)
      .header('content-type', 'application/pdf')
      .header('content-disposition', `attachment; filename="${invoice.number}.pdf"`)
      .send(invoicePdf(invoice));
  });

  const sri = registerSriPortal(app, opts.sri);

  await app.listen({ port: opts.port, host });
  const port = (app.server.address() as AddressInfo).port;
  return { url: `http://${host}:${port}`, port, requests: () => [...requestLog], expireSessions, sri, close: () => app.close() };
}

/** Cookie header → name/value map (first occurrence wins, as browsers send the most specific first). */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name && !(name in out)) out[name] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return out;
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} · Demo supplier portal</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}h1{font-size:1.4rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .8rem;text-align:left}
form{display:grid;gap:.5rem;max-width:18rem}.error{color:#b00}
</style></head>
<body><header><strong>Demo supplier portal</strong></header><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
}

function loginForm(failed: boolean, mfa = false): string {
  return `${failed ? '<p class="error" id="login-error">Wrong user name or password.</p>' : ''}
<form method="post" action="${mfa ? '/login?mfa=1' : '/login'}" id="login">
<label>User name <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="submit" type="submit">Sign in</button>
</form>`;
}

/** What the demo CAPTCHA (/captcha) accepts. */
export const DEMO_CAPTCHA_ANSWER = 'human';
/** The invoices page renews the session cookie for this long at each visit (a sliding session). */
export const DEMO_SESSION_RENEW_SECONDS = 86_400;
/** The demo reCAPTCHA's site key (/captcha?widget=recaptcha), and the token its POST accepts in place of the answer. */
export const DEMO_CAPTCHA_SITE_KEY = 'demo-site-key';
export const DEMO_CAPTCHA_TOKEN = 'demo-captcha-token';

/**
 * The demo CAPTCHA: the widget fills the top of the viewport, the answer field the band from 45 % to 85 % of its
 * height and a link to another site (off any job's allowed hosts) the band from 88 % to 98 %, whatever its size, so a
 * test knows where to click (inline styles: the portal sets no CSP).
 */
function captchaForm(failed: boolean, recaptchaSignature = false): string {
  return `${failed ? '<p class="error" id="captcha-error">That is not the answer.</p>' : ''}
<form method="post" action="/captcha" id="captcha-form">
<div${recaptchaSignature ? ` class="g-recaptcha" data-sitekey="${DEMO_CAPTCHA_SITE_KEY}"` : ''} id="captcha" style="position:fixed;left:0;top:0;width:100%;height:40vh;background:#eef;display:grid;place-items:center">
<p>Type the word <strong>${DEMO_CAPTCHA_ANSWER}</strong> below and press Enter.</p></div>
<a id="captcha-help" href="https://captcha-help.example.com/" style="position:fixed;left:0;top:88vh;width:100%;height:10vh;display:grid;place-items:center">Help with this check (another site)</a>
<button id="captcha-submit" type="submit" style="position:fixed;right:0;top:0">Verify</button>
<input id="captcha-answer" name="answer" autocomplete="off" aria-label="Answer" style="position:fixed;left:0;top:45vh;width:100%;height:40vh;font-size:3rem;box-sizing:border-box">
</form>`;
}

function totpForm(failed: boolean): string {
  return `${failed ? '<p class="error" id="totp-error">Wrong or expired code.</p>' : ''}
<form method="post" action="/2fa" id="totp">
<label>Code from your authenticator app <input id="code" name="code" inputmode="numeric" autocomplete="one-time-code"></label>
<button id="verify" type="submit">Verify</button>
</form>`;
}

/** The ticker page: console.log "tick N" each second, console.warn every fifth; stops after TICKER_SECONDS. */
export const TICKER_SECONDS = 600;
const CAPTCHA_POPUP_BODY = `<button id="open-check" type="button" style="position:fixed;left:0;top:0;width:100%;height:40vh;font-size:2rem">Open the security check</button>
<p id="popup-status" style="position:fixed;left:0;top:50vh">The check opens in a new window.</p>
<script>
document.getElementById('open-check').addEventListener('click', () => {
  const w = window.open('/captcha', 'security-check', 'popup');
  const timer = setInterval(() => {
    try {
      if (!w || w.closed) return clearInterval(timer);
      if (w.document.getElementById('captcha-ok')) {
        clearInterval(timer);
        const ok = document.createElement('p');
        ok.id = 'popup-ok';
        ok.textContent = 'The check in the window was passed.';
        document.body.append(ok);
        w.close();
      }
    } catch { /* the window is between pages */ }
  }, 200);
});
</script>`;

const TICKER_BODY = `<p>Ticks: <output id="ticks">0</output></p>
<script>
let n = 0;
const timer = setInterval(() => {
  n += 1;
  document.getElementById('ticks').textContent = String(n);
  if (n % 5 === 0) console.warn('tick ' + n + ': still working');
  else console.log('tick ' + n);
  if (n >= ${TICKER_SECONDS}) clearInterval(timer);
}, 1000);
</script>`;

/**
 * The greeting follows the demo_locale cookie, as real portals localise their pages. It lets a test see that the
 * cookie arrived from the page's language alone (the log redacts cookie values; parsed data keeps the locale the
 * page prints — session metadata, not a secret).
 */
export function greetingFor(locale: string | undefined): string {
  const language = locale?.split(/[-_]/)[0]?.toLowerCase();
  return language === 'es' ? 'Bienvenido' : language === 'fr' ? 'Bienvenue' : 'Welcome';
}

function invoiceTable(locale: string | undefined): string {
  const rows = DEMO_INVOICES.map((i) => `<tr>
<td class="number">${escapeHtml(i.number)}</td><td class="date">${escapeHtml(i.date)}</td><td class="amount">${escapeHtml(i.amount)}</td>
<td><a class="pdf" href="/invoices/${encodeURIComponent(i.number)}.pdf">PDF</a></td></tr>`).join('\n');
  return `<p id="greeting">${greetingFor(locale)}</p>
${locale === undefined ? '' : `<p id="locale">${escapeHtml(locale)}</p>`}
<table id="invoices"><thead><tr><th>Number</th><th>Date</th><th>Amount</th><th>File</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<form method="post" action="/logout"><button id="logout" type="submit">Sign out</button></form>`;
}

/**
 * The invoice as a one-page PDF (onePagePdf).
 */
export function invoicePdf(invoice: DemoInvoice): Buffer {
  const text = `Invoice ${invoice.number}  ${invoice.date}  USD ${invoice.amount}`.replace(/[()\\]/g, '');
  const content = `BT /F1 14 Tf 72 720 Td (${text}) Tj ET`;
  return onePagePdf(content, { width: 612, height: 792 });
}
