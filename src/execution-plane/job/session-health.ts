/**
 * Session health (docs/sessions.md): before a flow's steps the worker checks that the connection's portal session
 * is still logged in, by the provider's session check from the catalogue; logged out, it runs the provider's login
 * flow in the job's own context and saves the fresh cookies back to the connection; when it cannot, the job ends
 * SESSION_EXPIRED (not retried). After a job that finished, cookies the portal renewed are saved back too, so a
 * daily schedule keeps its session alive.
 *
 * What must hold:
 *   - The login flow is a script like any other: compiled and signed by the control plane, run only after its hash,
 *     signature and header (its own provider's) verify (security invariant 1), through the job's script runner.
 *   - Cookies are written only to the job's own session key, sealed when the stored session was sealed, keeping the
 *     key's TTL, and only over the value the job read (replaceSession-1.lua): a session connected again meanwhile wins.
 *   - No cookie value or credential reaches the log: the check logs what it saw (logged in/out), never values.
 */
import type { BrowserContext, Page } from 'playwright-core';
import type { Redis } from 'ioredis';
import { isSriError, SriError } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import { registerScripts, type ScriptArea } from '../../shared/lua/scripts.ts';
import { loginScriptHeader, readCatalogueSession, type SessionCheck } from '../../shared/provider-catalogue.ts';
import type { Cookie, JobMessage, Session } from '../../shared/schemas.ts';
import { isSealed, type Keyring } from '../../shared/sealed.ts';
import { sealSession } from '../../shared/transport-secrets.ts';
import { verifyJobScript, type VerifiedScript } from '../script/verified-script.ts';
import type { ExecutionLog } from './execution-log.ts';

/** The worker's session scripts. Bump `version` when one changes behaviour. */
export const SESSION_SCRIPTS: ScriptArea = Object.freeze({ area: 'session', version: 1, dir: new URL('./lua/', import.meta.url) });

const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
/** Cookies a session holds at most (the Session schema's bound). */
const MAX_COOKIES = 500;

/** The provider's session health as the worker will apply it: its check, and its verified login flow if any. */
export interface SessionHealth {
  readonly check: SessionCheck;
  readonly login?: VerifiedScript;
}

/**
 * The provider's session check and verified login flow from the catalogue; undefined when it declares no check.
 * A login flow that does not verify, or was compiled for another provider, fails the job (SCRIPT_INTEGRITY,
 * SCRIPT_UNAUTHORIZED), as a flow's script would.
 */
export async function loadSessionHealth(redis: Redis, providerName: string, signingSecret: string, exec: ExecutionLog): Promise<SessionHealth | undefined> {
  const entry = await readCatalogueSession(redis, providerName);
  if (!entry.ok) {
    exec.warn(`provider ${providerName}'s session check in the catalogue is not usable (${entry.problem}); the session is not checked`);
    return undefined;
  }
  if (!entry.check) return undefined;
  if (!entry.login) return { check: entry.check };
  const login = verifyJobScript(entry.login.script, entry.login.scriptHash, entry.login.signature, signingSecret);
  if (!login.text.startsWith(`${loginScriptHeader(providerName)}\n`)) {
    throw new SriError('SCRIPT_UNAUTHORIZED', `Unauthorized script: the login flow in provider ${providerName}'s catalogue entry was compiled for another provider`);
  }
  return { check: entry.check, login };
}

/**
 * Names a script passes to fillSecret and fillTotp (one step a line, indented by its nesting — a fill inside an
 * ifExists counts too — names plain characters: compile.ts).
 */
export function namesFilledBy(script: string): { secrets: string[]; totp: string[] } {
  const of = (helper: string) => [...new Set([...script.matchAll(new RegExp(`^ +await helpers\\.${helper}\\(".*", "([A-Za-z0-9_.-]{1,64})"\\);$`, 'gm'))].map((m) => m[1]!))];
  return { secrets: of('fillSecret'), totp: of('fillTotp') };
}

/**
 * Whether the check applies to this session: it holds cookies (a saved login state that may have expired), or the
 * provider's login flow can sign in with what the connection holds (every credential and TOTP seed it fills). A
 * connection with neither is one whose flow needs no login state, or signs in by itself.
 */
export function sessionToCheck(health: SessionHealth, session: Session): boolean {
  if (session.cookies.length > 0) return true;
  if (!health.login) return false;
  const needs = namesFilledBy(health.login.text);
  return needs.secrets.every((n) => Object.hasOwn(session.credentials ?? {}, n)) && needs.totp.every((n) => Object.hasOwn(session.totp ?? {}, n));
}

/**
 * Whether `url` is the provider's logged-out address (the check's `loggedOutUrl`). One rule for the session check here
 * and for the login-wall blocker the worker classifies after each navigation (blocker.ts).
 */
export function isLoggedOutUrl(check: SessionCheck, url: string): boolean {
  return check.loggedOutUrl !== undefined && new RegExp(check.loggedOutUrl).test(url);
}

/** Opens the check's page and tells whether the portal shows it logged in. Navigation failures are NAVIGATION_ERROR (retried). */
export async function loggedIn(page: Page, check: SessionCheck): Promise<{ loggedIn: boolean; why: string }> {
  const timeout = check.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  try {
    await page.goto(check.url, { timeout });
  } catch (e) {
    if (isSriError(e)) throw e;
    throw new SriError('NAVIGATION_ERROR', `The session check could not open its page: ${firstLine(e)}`);
  }
  if (isLoggedOutUrl(check, page.url())) return { loggedIn: false, why: 'the page went to a logged-out address' };
  if (check.loggedOutSelector !== undefined && await page.locator(check.loggedOutSelector).count() > 0) return { loggedIn: false, why: 'the page shows the logged-out marker' };
  if (check.loggedInSelector !== undefined) {
    try {
      await page.locator(check.loggedInSelector).first().waitFor({ state: 'attached', timeout });
    } catch (e) {
      if (isSriError(e) || !/Timeout/i.test(firstLine(e))) throw e;
      // A timed-out wait is not yet an absent marker: on a starved machine the wait's own polling in the page can
      // outlast the timeout while the marker is there (seen in the fault test at load 60: a logged-in job ended
      // SESSION_EXPIRED). The page has loaded, so one look at the DOM as it is now decides.
      if (await page.locator(check.loggedInSelector).count() > 0) return { loggedIn: true, why: 'the page shows a logged-in session' };
      return { loggedIn: false, why: 'the page lacks the logged-in marker' };
    }
  }
  return { loggedIn: true, why: 'the page shows a logged-in session' };
}

export interface EnsureSessionOptions {
  readonly page: Page;
  readonly health: SessionHealth;
  readonly providerName: string;
  readonly exec: ExecutionLog;
  /** Runs the verified login script in the job's page, sandboxed and bounded like the flow's script. */
  readonly runLogin: (login: VerifiedScript) => Promise<void>;
  /** Saves the context's cookies back to the connection (after a login). */
  readonly save: () => Promise<void>;
}

/**
 * Checks the session and, logged out, signs in with the login flow. Resolves when the session is logged in (and,
 * after a login, saved); throws SESSION_EXPIRED when it is not and cannot be, or the job's own error (cancelled,
 * shut down, browser gone) when the login was interrupted.
 */
export async function ensureSession(o: EnsureSessionOptions): Promise<'logged-in' | 'renewed'> {
  const first = await loggedIn(o.page, o.health.check);
  if (first.loggedIn) {
    o.exec.info(`session check: logged in (${first.why})`);
    return 'logged-in';
  }
  if (!o.health.login) {
    o.exec.warn(`session check: logged out (${first.why}); provider ${o.providerName} has no login flow`);
    throw new SriError('SESSION_EXPIRED', `The portal session of provider ${o.providerName} has expired (${first.why}) and the provider has no login flow: connect the provider again with a fresh session.`);
  }
  o.exec.info(`session check: logged out (${first.why}); running provider ${o.providerName}'s login flow`);
  try {
    await o.runLogin(o.health.login);
  } catch (e) {
    // The job's own end (cancelled, worker stopping, job timeout, browser gone) stays what it is.
    if (isSriError(e) && ['CANCELLED', 'WORKER_SHUTDOWN', 'EXECUTION_TIMEOUT', 'BROWSER_ERROR', 'SCRIPT_RESOURCE_LIMIT', 'SCRIPT_CPU_LIMIT'].includes(e.code)) throw e;
    o.exec.warn(`login flow failed: ${firstLine(e)}`);
    throw new SriError('SESSION_EXPIRED', `The portal session of provider ${o.providerName} has expired and its login flow failed (${firstLine(e)}): check the connection's credentials and TOTP seed, or connect the provider again.`);
  }
  const second = await loggedIn(o.page, o.health.check);
  if (!second.loggedIn) {
    o.exec.warn(`session check after the login flow: still logged out (${second.why})`);
    throw new SriError('SESSION_EXPIRED', `The portal session of provider ${o.providerName} has expired and its login flow did not sign in (${second.why}): check the connection's credentials and TOTP seed, or connect the provider again.`);
  }
  o.exec.info('session check after the login flow: logged in; the session was renewed');
  await o.save();
  return 'renewed';
}

type ContextCookie = Awaited<ReturnType<BrowserContext['cookies']>>[number];

/** The context's cookies as a session stores them (session cookies without `expires`). */
export function sessionCookiesOf(cookies: readonly ContextCookie[]): Cookie[] {
  return cookies.slice(0, MAX_COOKIES).map((c) => ({
    name: c.name, value: c.value, domain: c.domain, path: c.path,
    ...(c.expires > 0 ? { expires: c.expires } : {}),
    httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite,
  }));
}

/** A comparable form of a cookie list: what the portal would see (order and expiry of a renewed cookie aside). */
function cookieSet(cookies: readonly Cookie[]): string {
  return JSON.stringify(cookies.map((c) => [c.domain ?? c.url ?? '', c.path ?? '/', c.name, c.value, c.expires ?? -1]).sort());
}

/**
 * The connection's session in Redis, as the job read it: saving writes the job's cookies over it (sealed when it
 * was sealed), only while the key still holds what the job read or last wrote.
 */
export class StoredSession {
  private raw: string;
  private cookies: readonly Cookie[];
  private readonly key: string;
  private readonly call: ReturnType<typeof registerScripts>[string];
  /** Until when the connection lasts after this job's last save (its lifetime started again), if it saved. */
  renewedUntil: Date | undefined;

  constructor(private readonly redis: Redis, private readonly keyring: Keyring, job: JobMessage, raw: string, private readonly session: Session) {
    this.key = keys.session(job.orgId, job.userId, job.providerName);
    this.raw = raw;
    this.cookies = session.cookies;
    this.call = registerScripts(redis, SESSION_SCRIPTS)['replaceSession']!;
  }

  /** The connection's cookies as stored (or as this job last saved them). */
  get current(): readonly Cookie[] {
    return this.cookies;
  }

  /** Whether `cookies` differ from the stored ones. */
  changed(cookies: readonly Cookie[]): boolean {
    return cookieSet(cookies) !== cookieSet(this.cookies);
  }

  /**
   * Writes `cookies` as the connection's (credentials, TOTP seeds and connectedAt kept). 'unchanged' when they are
   * the stored ones, 'replaced', or 'superseded' when the key no longer held what the job read (connected again,
   * disconnected, expired): then nothing is written.
   */
  async save(cookies: readonly Cookie[]): Promise<'unchanged' | 'replaced' | 'superseded'> {
    if (!this.changed(cookies)) return 'unchanged';
    const next: Session = { ...this.session, cookies: [...cookies] };
    const value = isSealed(this.raw) ? sealSession(this.keyring, this.key, next) : JSON.stringify(next);
    const ttl = this.session.ttlSeconds;
    const savedAt = Date.now();
    const replaced = Number(await this.call([this.key], ttl ? [this.raw, value, String(ttl)] : [this.raw, value])) === 1;
    if (!replaced) return 'superseded';
    if (ttl) this.renewedUntil = new Date(savedAt + ttl * 1000);
    this.raw = value;
    this.cookies = next.cookies;
    return 'replaced';
  }
}

function firstLine(e: unknown): string {
  const m = (e as { message?: unknown } | null)?.message;
  return (typeof m === 'string' ? m : String(e)).split('\n')[0]!.slice(0, 500);
}

/** A cookie's identity: name, domain (a leading dot or a url's host alike) and path. */
function cookieId(c: Cookie): string {
  let domain = (c.domain ?? '').replace(/^\./, '').toLowerCase();
  if (!domain && c.url) { try { domain = new URL(c.url).hostname.toLowerCase(); } catch { /* kept empty */ } }
  return JSON.stringify([c.name, domain, c.path ?? '/']);
}

/**
 * The stored cookies with the values and expiry the context holds for them now: only cookies the connection already
 * had. Cookies a job's pages set that the connection never held stay in that job's context (invariant 3, docs/sessions.md).
 */
export function refreshedOnly(stored: readonly Cookie[], now: readonly Cookie[]): Cookie[] {
  const current = new Map(now.map((c) => [cookieId(c), c]));
  return stored.map((c) => current.get(cookieId(c)) ?? c);
}

/**
 * Saves cookies to the connection when they changed, saying so in the log (never their values). `mode`: 'replace'
 * (after the provider's login flow signed in: the context's cookies are the new session) or 'refresh' (at a job's
 * end: the connection's own cookies with the values and expiry the portal renewed, nothing the job's pages added). A
 * failure to write is logged, not the job's: its result stands, and the next job checks the session again.
 */
export async function saveRefreshedCookies(stored: StoredSession, cookies: readonly ContextCookie[], exec: ExecutionLog, mode: 'replace' | 'refresh' = 'refresh'): Promise<void> {
  const list = mode === 'replace' ? sessionCookiesOf(cookies) : refreshedOnly(stored.current, sessionCookiesOf(cookies));
  try {
    const outcome = await stored.save(list);
    if (outcome === 'replaced') exec.info(`session: ${list.length} cookie(s) saved back to the connection`);
    else if (outcome === 'superseded') exec.warn('session: the connection changed during the job (connected again, or removed); its cookies were not overwritten');
  } catch (e) {
    exec.warn(`session: the renewed cookies could not be saved to the connection (${firstLine(e)})`);
  }
}
