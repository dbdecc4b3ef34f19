/**
 * What stands between a job and the page it wanted (`helpers.detectBlocker()`, docs/scripts.md "Helper SDK"): a first
 * version of the issue's blocker detection, meant to be extended (per-provider rules, the provider's logged-out
 * check). It looks at the page once — the main document's HTTP status, its title and the start of its text, a
 * visible password field — plus the CAPTCHA signatures inspectPage already knows (captcha.ts), and names the first
 * kind that matches, in this order:
 * - `captcha`: a reCAPTCHA, hCaptcha, Turnstile or image CAPTCHA widget;
 * - `rate-limit`: status 429, or a "too many requests" / "rate limit" text;
 * - `maintenance`: a maintenance / "temporarily unavailable" text (a 503 alone is a portal failure, not a blocker);
 * - `access-denied`: status 403, or an "access denied" / "forbidden" text;
 * - `login-wall`: status 401, or a visible password field on the page.
 * The rules read the page's text, so they only see what the portal shows; `evidence` says which rule matched.
 */
import type { Page } from 'playwright-core';
import { inspectPage } from './captcha.ts';

export type BlockerKind = 'captcha' | 'rate-limit' | 'maintenance' | 'access-denied' | 'login-wall';

export interface Blocker {
  readonly kind: BlockerKind;
  readonly url: string;
  /** Which rule matched: the status, the phrase found, or the widget seen. */
  readonly evidence: string;
}

/** What the page shows, as one evaluate returns it. */
export interface PageSignals {
  /** The main document's HTTP status (Navigation Timing `responseStatus`); 0 when unknown. */
  readonly status: number;
  readonly title: string;
  /** The first TEXT_SAMPLE_CHARS of the body's visible text. */
  readonly text: string;
  readonly passwordField: boolean;
}

const TEXT_SAMPLE_CHARS = 4000;

/** Phrases by kind, English and Spanish (the platform's portals); tested against title and text. */
const PHRASES: ReadonlyArray<readonly [Exclude<BlockerKind, 'captcha' | 'login-wall'>, RegExp]> = [
  ['rate-limit', /too many requests|rate[- ]limit(?:ed)?|slow down|demasiadas (?:solicitudes|peticiones)|l[ií]mite de (?:solicitudes|peticiones)/i],
  ['maintenance', /under maintenance|scheduled maintenance|down for maintenance|temporarily unavailable|be back soon|en mantenimiento|mantenimiento programado|temporalmente (?:no disponible|fuera de servicio)/i],
  ['access-denied', /access denied|access is denied|forbidden|you (?:do not|don't) have permission|not authori[sz]ed to (?:access|view)|acceso denegado|no tiene permiso|no est[aá] autorizado/i],
];

/**
 * Runs in the page. Source text, not a function of this file: the TypeScript loader decorates functions here with
 * helpers (`__name`) the page does not have (see helpers.ts EXTRACT_IN_PAGE). Our own constant, never script input.
 */
const SIGNALS_IN_PAGE = new Function(`return () => {
  const nav = performance.getEntriesByType('navigation')[0];
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el); return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  return {
    status: nav && typeof nav.responseStatus === 'number' ? nav.responseStatus : 0,
    title: document.title || '',
    text: ((document.body && document.body.innerText) || '').slice(0, ${TEXT_SAMPLE_CHARS}),
    passwordField: [...document.querySelectorAll('input[type=password]')].some(visible),
  };
}`)() as () => PageSignals;

/** The blocker the signals show, without the CAPTCHA check (pure: the rules, for tests and later extension). */
export function classifySignals(url: string, s: PageSignals): Blocker | null {
  const hit = (kind: BlockerKind, evidence: string): Blocker => ({ kind, url, evidence });
  if (s.status === 429) return hit('rate-limit', 'HTTP status 429');
  const words = `${s.title}\n${s.text}`;
  for (const [kind, re] of PHRASES) {
    const m = re.exec(words);
    if (m) return hit(kind, `page text: "${m[0]}"${s.status ? ` (HTTP status ${s.status})` : ''}`);
  }
  if (s.status === 403) return hit('access-denied', 'HTTP status 403');
  if (s.status === 401) return hit('login-wall', 'HTTP status 401');
  if (s.passwordField) return hit('login-wall', 'a visible password field');
  return null;
}

/** The page's blocker, or null when nothing seems to stand in the way. */
export async function detectBlocker(page: Page): Promise<Blocker | null> {
  const url = page.url();
  const seen = await inspectPage(page);
  if (seen.captcha) return { kind: 'captcha', url, evidence: `${seen.captcha.kind} widget (${seen.captcha.evidence})` };
  const signals = await page.evaluate(SIGNALS_IN_PAGE).catch(() => null);
  return signals ? classifySignals(url, signals) : null;
}
