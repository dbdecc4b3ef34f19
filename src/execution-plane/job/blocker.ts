/**
 * What stands between a job and the page it wanted (docs/scripts.md "Blockers"; issue 14). One look at the page —
 * one evaluate, which also runs captcha.ts's widget detection so the CAPTCHA path needs no second one — gives the
 * main document's HTTP status, its title and the start of its text, a visible password field and the provider's
 * logged-out marker; the rules below name the first kind that matches, in this order:
 * - `captcha`: a reCAPTCHA, hCaptcha, Turnstile or image CAPTCHA widget (captcha.ts, by DOM signature);
 * - `rate-limit`: status 429, or a "too many requests" / "demasiadas solicitudes" text;
 * - `maintenance`: a maintenance / "temporarily unavailable" text, with any status (a 503 alone is a portal failure,
 *   which gate-step.ts explains, not a blocker);
 * - `access-denied`: status 403, or an "access denied" / "acceso denegado" text;
 * - `login-wall`: status 401, the provider's logged-out address or marker (its session check in the catalogue, the
 *   same rule session-health.ts applies), or — only when a script asks, helpers.detectBlocker() — a visible password
 *   field. The worker's own look after each navigation leaves the password field out: a flow that signs in itself
 *   would meet a "login wall" on every run.
 * Texts are looked for in the title, and in the body only on a short page (blocker pages are short; a long page of
 * data that mentions "forbidden" is not one). `evidence` says which rule matched: a status, our own phrase as found,
 * a selector — never cookie or secret values, and it is redacted with the job's secrets all the same.
 */
import type { Page } from 'playwright-core';
import type { BlockerKind } from '../../shared/schemas.ts';
import type { SessionCheck } from '../../shared/provider-catalogue.ts';
import { DETECT_IN_PAGE_SOURCE, type DetectedCaptcha, type PageChallenges } from './captcha.ts';
import { isLoggedOutUrl } from './session-health.ts';

export type { BlockerKind } from '../../shared/schemas.ts';

export interface Blocker {
  readonly kind: BlockerKind;
  readonly url: string;
  /** Which rule matched: the status, the phrase found, or the widget or marker seen. */
  readonly evidence: string;
}

/** What the page shows, as one evaluate returns it. */
export interface PageSignals {
  /** The main document's HTTP status (Navigation Timing `responseStatus`); 0 when unknown. */
  readonly status: number;
  readonly title: string;
  /** The first TEXT_SAMPLE_CHARS of the body's visible text. */
  readonly text: string;
  /** Length of the body's whole visible text. @default the sample's */
  readonly textLength?: number;
  readonly passwordField: boolean;
  /** The provider's `loggedOutSelector` is on the page; null when it is not CSS the page can query. */
  readonly loggedOutMarker?: boolean | null;
}

/** How to classify: the provider's logged-out check, and whether a visible password field is a login wall. */
export interface ClassifyOptions {
  readonly loggedOut?: SessionCheck | undefined;
  /** @default true (helpers.detectBlocker); the worker's own look after each navigation passes false. */
  readonly passwordFieldIsLoginWall?: boolean;
}

const TEXT_SAMPLE_CHARS = 4000;
/** Body text longer than this is a page of content, not a blocker page: only its title is read for phrases. */
const SHORT_PAGE_CHARS = 3000;
/** Longest evidence kept (characters). */
const MAX_EVIDENCE_CHARS = 200;

/** Phrases by kind, English and Spanish (the platform's portals); tested against title and text. */
const PHRASES: ReadonlyArray<readonly [Exclude<BlockerKind, 'captcha' | 'login-wall'>, RegExp]> = [
  ['rate-limit', /too many requests|rate[- ]limit(?:ed)?|slow down|demasiadas (?:solicitudes|peticiones)|l[ií]mite de (?:solicitudes|peticiones)/i],
  ['maintenance', /under maintenance|scheduled maintenance|down for maintenance|temporarily unavailable|be back soon|en mantenimiento|mantenimiento programado|temporalmente (?:no disponible|fuera de servicio)/i],
  ['access-denied', /access denied|access is denied|forbidden|you (?:do not|don't) have permission|not authori[sz]ed to (?:access|view)|acceso denegado|no tiene permiso|no est[aá] autorizado/i],
];

/**
 * Runs in the page (source text, as captcha.ts DETECT_IN_PAGE_SOURCE: the TypeScript loader decorates functions of
 * this file with helpers the page does not have). Our own constants; `loggedOutSelector` is the provider's catalogue
 * entry, queried as CSS (a Playwright-only selector gives null and is asked through Playwright instead).
 */
const SIGNALS_IN_PAGE_SOURCE = `(loggedOutSelector) => {
  const nav = performance.getEntriesByType('navigation')[0];
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el); return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const text = (document.body && document.body.innerText) || '';
  let loggedOutMarker = false;
  if (loggedOutSelector) { try { loggedOutMarker = document.querySelector(loggedOutSelector) !== null; } catch { loggedOutMarker = null; } }
  return {
    status: nav && typeof nav.responseStatus === 'number' ? nav.responseStatus : 0,
    title: document.title || '',
    text: text.slice(0, ${TEXT_SAMPLE_CHARS}),
    textLength: text.length,
    passwordField: [...document.querySelectorAll('input[type=password]')].some(visible),
    loggedOutMarker,
  };
}`;

const SIGNALS_IN_PAGE = new Function(`return ${SIGNALS_IN_PAGE_SOURCE}`)() as (loggedOutSelector: string | null) => PageSignals;

/** The one evaluate of a look: captcha.ts's challenges and this file's signals together. */
const LOOK_IN_PAGE = new Function(`return (loggedOutSelector) => ({ challenges: (${DETECT_IN_PAGE_SOURCE})(), signals: (${SIGNALS_IN_PAGE_SOURCE})(loggedOutSelector) })`)() as
  (loggedOutSelector: string | null) => { challenges: { captcha: Omit<DetectedCaptcha, 'url'> | null; otpForm: boolean }; signals: PageSignals };

/** The URL a blocker names: no query or fragment (they may carry tokens), at most 500 characters. */
export function blockerUrl(url: string): string {
  try {
    const u = new URL(url);
    return (u.protocol === 'http:' || u.protocol === 'https:' ? `${u.origin}${u.pathname}` : u.protocol).slice(0, 500);
  } catch {
    return '';
  }
}

/** The blocker the signals show, without the CAPTCHA check (pure: the rules, for tests and later extension). */
export function classifySignals(url: string, s: PageSignals, opts: ClassifyOptions = {}): Blocker | null {
  const hit = (kind: BlockerKind, evidence: string): Blocker => ({ kind, url: blockerUrl(url), evidence: evidence.slice(0, MAX_EVIDENCE_CHARS) });
  if (s.status === 429) return hit('rate-limit', 'HTTP status 429');
  const short = (s.textLength ?? s.text.length) <= SHORT_PAGE_CHARS;
  const words = short ? `${s.title}\n${s.text}` : s.title;
  for (const [kind, re] of PHRASES) {
    const m = re.exec(words);
    if (m) return hit(kind, `page text: "${m[0]}"${s.status ? ` (HTTP status ${s.status})` : ''}`);
  }
  if (s.status === 403) return hit('access-denied', 'HTTP status 403');
  if (s.status === 401) return hit('login-wall', 'HTTP status 401');
  const check = opts.loggedOut;
  if (check && isLoggedOutUrl(check, url)) return hit('login-wall', 'the provider\'s logged-out address (session check loggedOutUrl)');
  if (check?.loggedOutSelector !== undefined && s.loggedOutMarker === true) return hit('login-wall', 'the provider\'s logged-out marker (session check loggedOutSelector)');
  if (s.passwordField && opts.passwordFieldIsLoginWall !== false) return hit('login-wall', 'a visible password field');
  return null;
}

/** What one look at a page found: its challenges (captcha.ts's shape) and the blocker they and its signals show. */
export interface PageLook {
  readonly challenges: PageChallenges;
  readonly blocker: Blocker | null;
}

/** Bounds a look: a page busy in its own script answers no evaluate, and must not hold the job. */
export interface LookOptions extends ClassifyOptions {
  /** The main document's status as the worker saw its response (better than Navigation Timing, which may lack it). */
  readonly status?: number;
  /** Longest the evaluate may take; then the look finds nothing. @default 2000 */
  readonly timeoutMs?: number;
}

/**
 * Looks at the page once and classifies it. Never throws: a page that navigates away, is closed or does not answer
 * within the bound gives `null`.
 */
export async function lookAtPage(page: Page, opts: LookOptions = {}): Promise<PageLook | null> {
  const url = page.url();
  const selector = opts.loggedOut?.loggedOutSelector ?? null;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), opts.timeoutMs ?? 2000); });
  try {
    const found = await Promise.race([page.evaluate(LOOK_IN_PAGE, selector).catch(() => null), bound]);
    if (!found) return null;
    let signals = opts.status ? { ...found.signals, status: opts.status } : found.signals;
    // A loggedOutSelector the page's CSS cannot read (a Playwright text= or role= selector): asked as the session
    // check asks it, bounded the same way.
    if (selector !== null && signals.loggedOutMarker === null) {
      const n = await Promise.race([page.locator(selector).count().catch(() => 0), bound.then(() => 0)]);
      signals = { ...signals, loggedOutMarker: n > 0 };
    }
    const captcha = found.challenges.captcha ? { ...found.challenges.captcha, url } : null;
    const blocker = captcha
      ? { kind: 'captcha' as const, url: blockerUrl(url), evidence: `${captcha.kind} widget (${captcha.evidence})`.slice(0, MAX_EVIDENCE_CHARS) }
      : classifySignals(url, signals, opts);
    return { challenges: { captcha, otpForm: found.challenges.otpForm }, blocker };
  } finally {
    clearTimeout(timer);
  }
}

/** The page's blocker, or null when nothing seems to stand in the way (helpers.detectBlocker). */
export async function detectBlocker(page: Page, opts: LookOptions = {}): Promise<Blocker | null> {
  return (await lookAtPage(page, opts))?.blocker ?? null;
}

/** For tests: the signals of the page alone. */
export async function pageSignals(page: Page, loggedOutSelector: string | null = null): Promise<PageSignals> {
  return page.evaluate(SIGNALS_IN_PAGE, loggedOutSelector);
}
