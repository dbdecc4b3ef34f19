/**
 * CAPTCHAs on a job's page (issue 13, docs/scripts.md "CAPTCHAs"): recognised by their DOM signatures, then either
 * solved by a CAPTCHA-solving service the operator configured (CAPTCHA_SOLVER) or handed to a person through the
 * dashboard's live view (job/handoff.ts) — the hand-off is the default and the fallback when the service fails.
 *
 * The solver speaks the 2captcha HTTP API (`in.php` / `res.php`), which 2captcha and the services compatible with it
 * accept: the worker sends the widget's site key and the page's URL (or, for an image CAPTCHA, the image), polls for
 * the answer, and injects it where the widget would have put it. The request is the worker's own (not the page's),
 * to the one address the operator configured; the API key and the answer never reach the job's log, only that a
 * CAPTCHA was solved and in how long.
 *
 * Written here rather than taken from a package: the 2captcha clients on npm wrap the same two endpoints with
 * callbacks or a bundled HTTP client, and none injects into a Playwright page; this is two `fetch` calls and a poll.
 */
import type { Page } from 'playwright-core';
import { z } from 'zod';
import { SriError } from '../../shared/errors.ts';

export type CaptchaKind = 'recaptcha' | 'hcaptcha' | 'turnstile' | 'image';

/** A CAPTCHA found on a page: its kind, the widget's site key (image: the image and answer field's selectors). */
export interface DetectedCaptcha {
  readonly kind: CaptchaKind;
  readonly url: string;
  readonly siteKey?: string;
  /** image CAPTCHAs: selectors of the image and of the field its answer goes into. */
  readonly imageSelector?: string;
  readonly answerSelector?: string;
  /** What matched, for the log and the result's `blocker.evidence` (a selector, never page text). */
  readonly evidence: string;
}

/**
 * Runs in the page. Written as source text and turned into a function here, because the TypeScript loader decorates
 * functions in this file with helpers (`__name`) that do not exist in the page (as EXTRACT_IN_PAGE in helpers.ts).
 * Our own constant, never script input. Exported as text: blocker.ts runs it in the same evaluate as its own look.
 */
export const DETECT_IN_PAGE_SOURCE = `() => {
  const otp = document.querySelector('input[autocomplete="one-time-code" i]');
  const otpForm = !!otp && otp.getClientRects().length > 0 && getComputedStyle(otp).visibility !== 'hidden';
  const captcha = (() => {
  const attr = (sel, name) => document.querySelector(sel)?.getAttribute(name) ?? undefined;
  const frameKey = (pattern, param) => {
    for (const f of Array.from(document.querySelectorAll('iframe'))) {
      const src = f.getAttribute('src') ?? '';
      if (!pattern.test(src)) continue;
      let key;
      try {
        const u = new URL(src, location.href);
        key = u.searchParams.get(param) ?? new URLSearchParams(u.hash.slice(1)).get(param) ?? undefined;
      } catch {}
      return { key, src: pattern.source };
    }
    return null;
  };
  const visible = (el) => !!el && el.getClientRects().length > 0;
  const widget = (sel) => document.querySelector(sel + '[data-sitekey]');
  if (widget('.h-captcha')) return { kind: 'hcaptcha', siteKey: attr('.h-captcha[data-sitekey]', 'data-sitekey'), evidence: '.h-captcha[data-sitekey]' };
  const hf = frameKey(/hcaptcha\\.com/, 'sitekey');
  if (hf) return { kind: 'hcaptcha', siteKey: hf.key, evidence: 'iframe[src~=' + hf.src + ']' };
  if (widget('.cf-turnstile')) return { kind: 'turnstile', siteKey: attr('.cf-turnstile[data-sitekey]', 'data-sitekey'), evidence: '.cf-turnstile[data-sitekey]' };
  const tf = frameKey(/challenges\\.cloudflare\\.com/, 'sitekey');
  if (tf) return { kind: 'turnstile', siteKey: tf.key, evidence: 'iframe[src~=' + tf.src + ']' };
  if (widget('.g-recaptcha')) return { kind: 'recaptcha', siteKey: attr('.g-recaptcha[data-sitekey]', 'data-sitekey'), evidence: '.g-recaptcha[data-sitekey]' };
  const rf = frameKey(/(google\\.com|recaptcha\\.net)\\/recaptcha/, 'k');
  if (rf) return { kind: 'recaptcha', siteKey: rf.key, evidence: 'iframe[src~=' + rf.src + ']' };
  const img = document.querySelector('img[src*="captcha" i], img[alt*="captcha" i], img[id*="captcha" i], img[class*="captcha" i]');
  if (visible(img)) {
    const input = document.querySelector('input[name*="captcha" i]:not([type=hidden]), input[id*="captcha" i]:not([type=hidden])');
    const sel = (el) => (el?.id ? '#' + CSS.escape(el.id) : el?.getAttribute('name') ? el.tagName.toLowerCase() + '[name="' + el.getAttribute('name') + '"]' : undefined);
    return { kind: 'image', imageSelector: sel(img), answerSelector: sel(input), evidence: 'img[captcha]' };
  }
  return null;
  })();
  return { captcha, otpForm };
}`;
const DETECT_IN_PAGE = new Function(`return ${DETECT_IN_PAGE_SOURCE}`)() as () => { captcha: Omit<DetectedCaptcha, 'url'> | null; otpForm: boolean };

/** What one look at a page found: a CAPTCHA widget, and whether it shows a one-time-code field. */
export interface PageChallenges {
  readonly captcha: DetectedCaptcha | null;
  /**
   * A visible field the page marks as a one-time code (`autocomplete="one-time-code"`, the HTML standard's token for
   * SMS and authenticator codes): handed to a person when the connection holds no TOTP seed (helpers.ts).
   */
  readonly otpForm: boolean;
}

/**
 * Looks at the page's main frame once (one round trip, after every navigation of a script): a CAPTCHA widget (the
 * widgets' own iframes matched by their address) and a one-time-code field. Nothing, also for a page that is
 * navigating away.
 */
export async function inspectPage(page: Page): Promise<PageChallenges> {
  const found = await page.evaluate(DETECT_IN_PAGE).catch(() => null);
  return { captcha: found?.captcha ? { ...found.captcha, url: page.url() } : null, otpForm: found?.otpForm ?? false };
}

/** The page's CAPTCHA widget, or null. */
export async function detectCaptcha(page: Page): Promise<DetectedCaptcha | null> {
  return (await inspectPage(page)).captcha;
}

// ── The solver ──

export interface CaptchaSolver {
  /** Solves `captcha` (for an image CAPTCHA, `image` holds its PNG) and resolves with the answer or token. */
  solve(captcha: DetectedCaptcha, image: Buffer | undefined, signal: AbortSignal): Promise<string>;
}

export interface TwoCaptchaOptions {
  /** The service's address, e.g. https://2captcha.com (no trailing path). */
  readonly url: string;
  readonly apiKey: string;
  /** Between polls of res.php (the service asks for 5 s). */
  readonly pollMs?: number;
  /** Before the first poll (the service asks for 15–20 s for token CAPTCHAs). */
  readonly firstPollMs?: number;
  /** Longest one solve may take before CAPTCHA_UNSOLVED. */
  readonly timeoutMs?: number;
}

const Answer = z.object({ status: z.union([z.literal(0), z.literal(1)]), request: z.string().max(100_000) });

const METHOD: Record<Exclude<CaptchaKind, 'image'>, { method: string; keyParam: string }> = {
  recaptcha: { method: 'userrecaptcha', keyParam: 'googlekey' },
  hcaptcha: { method: 'hcaptcha', keyParam: 'sitekey' },
  turnstile: { method: 'turnstile', keyParam: 'sitekey' },
};

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve, reject) => {
  if (signal.aborted) { reject(signal.reason); return; }
  const onAbort = () => { clearTimeout(t); reject(signal.reason); };
  const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
  signal.addEventListener('abort', onAbort, { once: true });
});

/** The 2captcha HTTP API: POST in.php (the task), then GET res.php until the answer is ready. */
export class TwoCaptchaSolver implements CaptchaSolver {
  private readonly base: string;
  constructor(private readonly opts: TwoCaptchaOptions) {
    this.base = opts.url.replace(/\/+$/, '');
  }

  async solve(captcha: DetectedCaptcha, image: Buffer | undefined, signal: AbortSignal): Promise<string> {
    const limitMs = this.opts.timeoutMs ?? 180_000;
    const timeout = AbortSignal.timeout(limitMs);
    const both = AbortSignal.any([signal, timeout]);
    try {
      const task = new URLSearchParams({ key: this.opts.apiKey, json: '1', pageurl: captcha.url });
      if (captcha.kind === 'image') {
        if (!image) throw new SriError('CAPTCHA_UNSOLVED', 'the image CAPTCHA\'s picture could not be taken from the page');
        task.set('method', 'base64');
        task.set('body', image.toString('base64'));
      } else {
        if (!captcha.siteKey) throw new SriError('CAPTCHA_UNSOLVED', `the ${captcha.kind} widget shows no site key`);
        task.set('method', METHOD[captcha.kind].method);
        task.set(METHOD[captcha.kind].keyParam, captcha.siteKey);
      }
      const id = await this.call(`${this.base}/in.php`, { method: 'POST', body: task, signal: both }, 'in.php');
      if (id === undefined) throw new SriError('CAPTCHA_UNSOLVED', 'the CAPTCHA solver accepted no task');
      await sleep(this.opts.firstPollMs ?? (captcha.kind === 'image' ? 5_000 : 15_000), both);
      for (;;) {
        const q = new URLSearchParams({ key: this.opts.apiKey, action: 'get', id, json: '1' });
        const answer = await this.call(`${this.base}/res.php?${q}`, { signal: both }, 'res.php', true);
        if (answer !== undefined) return answer;
        await sleep(this.opts.pollMs ?? 5_000, both);
      }
    } catch (e) {
      if (timeout.aborted && !signal.aborted) throw new SriError('CAPTCHA_UNSOLVED', `the CAPTCHA solver gave no answer within ${limitMs} ms`);
      throw e;
    }
  }

  /** One request; resolves with `request` of a status-1 answer, undefined for "not ready" (polls only). */
  private async call(url: string, init: RequestInit, what: string, poll = false): Promise<string | undefined> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, redirect: 'error' });
    } catch (e) {
      if (init.signal?.aborted) throw e;
      throw new SriError('CAPTCHA_UNSOLVED', `the CAPTCHA solver could not be reached (${what}): ${(e as Error).message}`);
    }
    const text = (await res.text()).slice(0, 100_000);
    let parsed: z.infer<typeof Answer>;
    try {
      parsed = Answer.parse(JSON.parse(text));
    } catch {
      throw new SriError('CAPTCHA_UNSOLVED', `the CAPTCHA solver's ${what} answered HTTP ${res.status} with something that is not its JSON`);
    }
    if (parsed.status === 1) return parsed.request;
    if (poll && parsed.request === 'CAPCHA_NOT_READY') return undefined;
    // The service's error codes (ERROR_WRONG_USER_KEY, ERROR_ZERO_BALANCE, ERROR_CAPTCHA_UNSOLVABLE, …) are safe to show.
    throw new SriError('CAPTCHA_UNSOLVED', `the CAPTCHA solver refused (${what}): ${parsed.request.slice(0, 80).replace(/[^A-Z0-9_ ]/gi, '')}`);
  }
}

// ── Configuration (CAPTCHA_SOLVER, CAPTCHA_SOLVER_URL, CAPTCHA_SOLVER_KEY, CAPTCHA_SOLVER_TIMEOUT_MS) ──

export interface CaptchaSolverSettings {
  readonly captchaSolver: 'none' | '2captcha';
  readonly captchaSolverUrl: string;
  readonly captchaSolverKey?: string | undefined;
  readonly captchaSolverTimeoutMs: number;
  readonly captchaSolverPollMs: number;
}

const solvers = new WeakMap<CaptchaSolverSettings, CaptchaSolver | undefined>();

/** The configured solver (one per configuration), or undefined (CAPTCHA_SOLVER=none: every CAPTCHA goes to a person). */
export function captchaSolverFor(s: CaptchaSolverSettings): CaptchaSolver | undefined {
  if (solvers.has(s)) return solvers.get(s);
  let solver: CaptchaSolver | undefined;
  if (s.captchaSolver === '2captcha') {
    if (!s.captchaSolverKey) throw new SriError('CONFIG_INVALID', 'CAPTCHA_SOLVER=2captcha needs CAPTCHA_SOLVER_KEY (the service\'s API key)');
    solver = new TwoCaptchaSolver({
      url: s.captchaSolverUrl, apiKey: s.captchaSolverKey, timeoutMs: s.captchaSolverTimeoutMs,
      pollMs: s.captchaSolverPollMs, firstPollMs: s.captchaSolverPollMs * 3,
    });
  }
  solvers.set(s, solver);
  return solver;
}

// ── Putting the answer where the widget would ──

/** Runs in the page (source text, as DETECT_IN_PAGE): the answer into the widget's response fields, then its callback. */
const INJECT_IN_PAGE = new Function(`return ({ kind, token }) => {
  const widgetSel = kind === 'recaptcha' ? '.g-recaptcha' : kind === 'hcaptcha' ? '.h-captcha' : '.cf-turnstile';
  const names = kind === 'recaptcha' ? ['g-recaptcha-response'] : kind === 'hcaptcha' ? ['h-captcha-response', 'g-recaptcha-response'] : ['cf-turnstile-response'];
  const widget = document.querySelector(widgetSel) ?? document.querySelector('form') ?? document.body;
  for (const name of names) {
    let fields = Array.from(document.querySelectorAll('[name="' + name + '"]'));
    if (fields.length === 0) {
      const el = document.createElement(kind === 'turnstile' ? 'input' : 'textarea');
      el.name = name;
      if (kind === 'turnstile') el.type = 'hidden'; else el.style.display = 'none';
      widget.appendChild(el);
      fields = [el];
    }
    for (const f of fields) f.value = token;
  }
  const callback = widget.getAttribute ? widget.getAttribute('data-callback') : null;
  const fn = callback ? window[callback] : undefined;
  if (typeof fn === 'function') fn(token);
}`)() as (args: { kind: CaptchaKind; token: string }) => void;

/**
 * Writes `answer` where the widget writes its own (the response fields the page's form posts: reCAPTCHA's
 * `g-recaptcha-response`, hCaptcha's `h-captcha-response` too, Turnstile's `cf-turnstile-response`; created inside the
 * widget when the page has none yet) and calls the widget's `data-callback` when it names one. For an image CAPTCHA,
 * types the answer into its field.
 */
export async function injectCaptchaAnswer(page: Page, captcha: DetectedCaptcha, answer: string): Promise<void> {
  if (captcha.kind === 'image') {
    if (!captcha.answerSelector) throw new SriError('CAPTCHA_UNSOLVED', 'the image CAPTCHA has no answer field the worker can find');
    await page.fill(captcha.answerSelector, answer);
    return;
  }
  await page.evaluate(INJECT_IN_PAGE, { kind: captcha.kind, token: answer });
}

/** What happened to a CAPTCHA on the page. */
export type CaptchaOutcome =
  | { readonly outcome: 'none' }
  | { readonly outcome: 'solved'; readonly captcha: DetectedCaptcha; readonly ms: number }
  | { readonly outcome: 'handed-off'; readonly captcha: DetectedCaptcha; readonly solverError?: string };

export interface CaptchaDeps {
  readonly solver: CaptchaSolver | undefined;
  readonly log: (message: string) => void;
  /** The hand-off (job/handoff.ts requestHandoff, bound to the job): resolves when the person presses Done. */
  readonly handoff: (reason: string) => Promise<void>;
  readonly signal: AbortSignal;
}

/**
 * If the page shows a CAPTCHA: the solver's answer when one is configured and answers, else a hand-off to a person.
 * Resolves once the page is past it (or there was none); rejects with the hand-off's HANDOFF_ABANDONED/TIMEOUT.
 * `seen`: what inspectPage already found on the page, so it is not looked at twice.
 */
export async function getPastCaptcha(page: Page, deps: CaptchaDeps, seen?: DetectedCaptcha | null): Promise<CaptchaOutcome> {
  const captcha = seen === undefined ? await detectCaptcha(page) : seen;
  if (!captcha) return { outcome: 'none' };
  const where = new URL(captcha.url);
  deps.log(`a ${captcha.kind} CAPTCHA is on ${where.origin}${where.pathname} (${captcha.evidence})`);
  let solverError: string | undefined;
  if (deps.solver) {
    const started = Date.now();
    try {
      const image = captcha.kind === 'image' && captcha.imageSelector
        ? await page.locator(captcha.imageSelector).first().screenshot({ timeout: 10_000 }) : undefined;
      const answer = await deps.solver.solve(captcha, image, deps.signal);
      await injectCaptchaAnswer(page, captcha, answer);
      const ms = Date.now() - started;
      deps.log(`the CAPTCHA solver answered in ${(ms / 1000).toFixed(1)} s`);
      return { outcome: 'solved', captcha, ms };
    } catch (e) {
      if (deps.signal.aborted) throw e;
      solverError = e instanceof Error ? e.message : String(e);
      deps.log(`${solverError}; handing the page to a person instead`);
    }
  }
  await deps.handoff(`A ${captcha.kind === 'image' ? 'picture' : captcha.kind} CAPTCHA needs a person: solve it in the live view, then press Done.`);
  return solverError === undefined ? { outcome: 'handed-off', captcha } : { outcome: 'handed-off', captcha, solverError };
}
