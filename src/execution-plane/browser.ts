/**
 * The worker's browsers (BrowserPool): WORKER_BROWSERS warm Chromium processes (BrowserHost, one each; @default 1),
 * launched at start, the job slots' contexts spread over them (the least loaded first). Each is relaunched when it
 * disconnects (crash, OOM kill) — a crash fails only the jobs running in it, the others go on — at once, or after an exponential backoff when it keeps dying young — so the worker stays ready
 * (/readyz) and the next job does not pay the launch. Every relaunch after a crash is a restart (`onRestart`, the
 * sri_browser_restarts_total metric and its restart-loop alert); a browser retired after its maximum of contexts or
 * its maximum age (memory creep) is replaced without counting one, and closes after its last job.
 * Jobs never share a context (ARCHITECTURE.md invariant 3): each reserves a PreparedContext, opened ahead for its slot
 * and never handed out twice (idle → reserved → running → recycled).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import type { Logger } from '../shared/logger.ts';
import { SriError } from '../shared/errors.ts';
import type { PreparedLease } from './job/egress-proxy.ts';
import type { EgressPolicy } from './job/egress-policy.ts';
import { GuardRules, installGuard } from './job/host-guard.ts';
import type { OnBlocked } from './job/egress-proxy.ts';

const SYSTEM_CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'];

/** CHROMIUM_PATH, else the system's chromium binary (the wrapper script is slower to start), else Playwright's own. */
export function resolveChromiumPath(configured: string | undefined, exists: (p: string) => boolean = existsSync): string | undefined {
  if (configured) return configured;
  return SYSTEM_CHROMIUM.find((p) => exists(p));
}

/**
 * The features playwright-core (1.65) disables in every Chromium it launches (its chromiumSwitches.ts). Chromium
 * honours only the LAST `--disable-features` on its command line, and ours comes after Playwright's: it must repeat
 * them, or they would be switched back on. test/execution-plane/chromium-args.test.ts checks this list against the
 * installed playwright-core, so an upgrade that adds one fails there instead of silently losing it.
 */
export const PLAYWRIGHT_DISABLED_FEATURES: readonly string[] = [
  'AvoidUnnecessaryBeforeUnloadCheckSync', 'DestroyProfileOnBrowserClose', 'HttpsUpgrades', 'HttpsFirstBalancedModeAutoEnable',
  'LensOverlay', 'MediaRouter', 'PaintHolding', 'ThirdPartyStoragePartitioning', 'AvoidCorsURLLoaderRestartOnRedirect',
  'TcpPortRandomizationWin', 'OptimizationHints', 'NetworkTimeServiceQuerying', 'AimEnabled', 'PreconnectToSearch',
  'msForceBrowserSignIn', 'msEdgeUpdateLaunchServicesPreferredVersion',
];

/**
 * Features the worker's browser does without (docs/benchmarks.md "Worker overhead against raw Playwright"):
 * - AutofillServerCommunication: Chromium sends the signatures of the forms it sees to content-autofill.googleapis.com
 *   (the route guard and the proxy refused them, four a job on the demo portal's login page): nothing of a portal's
 *   forms is sent anywhere now.
 * - SpareRendererForSitePerProcess: after a navigation Chromium starts a spare renderer for the next one, bound to
 *   that browser context; a context serves one job and is closed with it, so the spare was started and thrown away
 *   for nearly every job: 2.9 renderer processes a job with it, 2.0 without, and 5–7 % less Chromium CPU a job
 *   (chromium-cpu.ts `raw,nospare`, three pairs). A popup or a cross-site navigation starts its renderer when it
 *   needs it. The adversarial suite (window.open in a loop) passes without it, also at load 13.
 * - WebUIOmniboxPopup, WebUIOmniboxAimPopup: Chromium 156 opens its address bar's drop-down (chrome://omnibox-popup
 *   .top-chrome/ and its `omnibox_popup_aim.html`) as WebUI pages for every window, and Playwright opens a window for
 *   every context's first page: a second renderer process a job that a headless job never shows. Without them a
 *   job's page is its context's only renderer (test/execution-plane/chromium-args.test.ts). Playwright disables
 *   `AimEnabled`, which does not stop these. Unknown feature names are ignored, so an older Chromium is unaffected.
 */
export const WORKER_DISABLED_FEATURES: readonly string[] = [
  'AutofillServerCommunication', 'SpareRendererForSitePerProcess', 'WebUIOmniboxPopup', 'WebUIOmniboxAimPopup',
];

/**
 * Flags for a headless worker browser: no background traffic, no QUIC (so routing sees every request), and no
 * WebRTC over UDP — STUN/TURN packets would go around the egress proxy (TURN over TCP still goes through it); the
 * disabled features are Playwright's and the worker's, in one switch (the last one wins).
 */
export function chromiumArgs(): string[] {
  return ['--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--disable-dev-shm-usage', '--webrtc-ip-handling-policy=disable_non_proxied_udp',
    `--disable-features=${[...PLAYWRIGHT_DISABLED_FEATURES, ...WORKER_DISABLED_FEATURES].join(',')}`];
}

/**
 * A browser that disconnects within this long of its launch died young: its relaunch waits, longer with each young
 * death in a row (exponential backoff: RESTART_BACKOFF_BASE_MS × 2^(n-1), at most RESTART_BACKOFF_MAX_MS), so a
 * browser that cannot stay up does not restart in a tight loop. A browser that lived longer resets the count.
 */
const RESTART_PAUSE_WITHIN_MS = 30_000;
const RESTART_BACKOFF_BASE_MS = 5000;
const RESTART_BACKOFF_MAX_MS = 5 * 60_000;

/** The pause before relaunching after `youngDeaths` deaths in a row of browsers that died young (0: at once). */
export function restartBackoffMs(youngDeaths: number): number {
  return youngDeaths <= 0 ? 0 : Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_BASE_MS * 2 ** Math.min(youngDeaths - 1, 20));
}

const runningAsRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * A context's life: prepared ahead (`idle`), handed to one job (`reserved`), its script running (`running`), closed
 * with its job (`recycled`). No state leads back: a context serves one job, ever (ARCHITECTURE.md invariant 3).
 */
export type ContextState = 'idle' | 'reserved' | 'running' | 'recycled';

/**
 * A fresh context behind an egress lease that reaches nothing until the job arms it. Nothing has run in it: it has
 * no page, cookie, storage, cache or service worker (they are blocked) of anybody. Its page is opened when a job
 * reserves it (BrowserPool.reserve), not ahead: a page opened ahead starts a renderer, and Chromium a spare one
 * bound to this context that its job never uses — +400 ms of Chromium CPU a job, measured in docs/benchmarks.md.
 */
export class PreparedContext {
  private current: ContextState = 'idle';
  private opened: Page | undefined;

  constructor(
    readonly browser: Browser, readonly context: BrowserContext,
    private readonly lease: PreparedLease, private readonly guard: GuardRules,
  ) {}

  /** The job's page, opened by `openPage` when the context was reserved. */
  get page(): Page {
    if (!this.opened) throw new Error('the context\'s page is opened when a job reserves it');
    return this.opened;
  }

  /** Opens the job's page; it also proves the browser alive (a dead one's round trip fails). */
  async openPage(): Promise<Page> {
    this.opened ??= await this.context.newPage();
    return this.opened;
  }

  /**
   * Gives the context its job's egress policy, in both lines of defence at once: the route guard and the proxy
   * lease (until then both refuse everything). The returned lease is the job's to release.
   */
  arm(policy: EgressPolicy, onBlocked: OnBlocked, opts: Parameters<PreparedLease['arm']>[2]): ReturnType<PreparedLease['arm']> {
    this.guard.set(policy, onBlocked);
    return this.lease.arm(policy, onBlocked, opts);
  }

  get state(): ContextState {
    return this.current;
  }

  /** Moves forward only: idle → reserved → running → recycled (recycled from any state). */
  to(next: ContextState): void {
    const order: ContextState[] = ['idle', 'reserved', 'running', 'recycled'];
    if (order.indexOf(next) <= order.indexOf(this.current)) throw new Error(`context cannot go from ${this.current} to ${next}`);
    this.current = next;
  }

  /** True while it can still be given to a job. */
  usable(): boolean {
    return this.current === 'idle' && this.browser.isConnected() && this.opened?.isClosed() !== true;
  }

  /** Closes the context; a lease never armed is released here (an armed one is its job's to release). */
  async recycle(): Promise<void> {
    const armedBefore = this.current !== 'idle';
    this.current = 'recycled';
    if (!armedBefore) this.lease.release();
    await this.context.close().catch(() => {});
  }
}

/** What every job's context is opened with: downloads kept as evidence, service workers blocked. */
const JOB_CONTEXT_OPTIONS = { acceptDownloads: true, serviceWorkers: 'block' } as const;

/** What a job may add to its context's options: a video of its pages (job/recording.ts). */
export type JobContextExtras = Pick<BrowserContextOptions, 'recordVideo'>;

/** The settings of a BrowserPool; those of one browser apply to each of its browsers. */
export interface BrowserPoolOptions {
  chromiumPath?: string; launchTimeoutMs: number; logger: Logger;
  /** Called for every launch after the first of a browser, unless it replaces a retired one. */
  onRestart?: () => void;
  /** Egress credentials for a context prepared before its job (EgressProxy.prepareLease); without it, no `reserve`. */
  prepareLease?: () => PreparedLease;
  /**
   * Contexts kept prepared ahead (one per job slot): a job takes one instead of waiting for a context and its
   * page to open. 0: each job opens its own when it starts. @default 0
   */
  warmContexts?: number;
  /**
   * A browser gives no new context after this many (long-running Chromium creeps in memory): the next context
   * opens in a new browser, and the old one closes when its last context does. @default unlimited
   */
  maxContextsPerBrowser?: number;
  /** Likewise after this long since its launch. @default unlimited */
  maxBrowserAgeMs?: number;
  /**
   * Browsers (Chromium processes) the pool keeps (WORKER_BROWSERS): new contexts go to the one with the fewest open,
   * so job slots spread over them; each is retired, relaunched and backed off on its own, and a crash of one fails
   * only the jobs running in it. @default 1
   */
  browsers?: number;
}

/**
 * One of the pool's browsers: launched on demand, relaunched when it disconnects (after a backoff when it keeps
 * dying young), retired after its maximum of contexts or age — all on its own, whatever its siblings do.
 */
class BrowserHost {
  private browser: Browser | undefined;
  private launching: Promise<Browser> | undefined;
  private closed = false;
  private launches = 0;
  private youngDeaths = 0;
  /** Until then, after a crash, the pool prefers its other browsers (the relaunch waits out the backoff). */
  private backoffUntil = 0;
  /** The current browser's contexts opened so far and its launch time: what retirement counts. */
  private contextsOpened = 0;
  private launchedAt = 0;
  /** Contexts still open per browser, so a retired browser is closed when its last job ends. */
  private readonly openContexts = new Map<Browser, number>();
  /** Contexts asked of this host and not yet open (counted in `load` from the moment they are asked). */
  private opening = 0;
  private readonly retired = new Set<Browser>();
  /** The browser takes no new context; it closes once its open ones have (now, when it has none). */
  private retiredLast = false;

  constructor(private readonly opts: BrowserPoolOptions, private readonly logger: Logger) {}

  /** True while a launched browser is connected. */
  isUp(): boolean {
    return !this.closed && this.browser?.isConnected() === true;
  }

  /** Not waiting out a crash backoff: the pool may open contexts here. */
  available(): boolean {
    return !this.closed && Date.now() >= this.backoffUntil;
  }

  /**
   * Contexts open in the current browser plus those being opened (the pool's measure of load). Counting the ones on
   * their way matters: two jobs that open contexts at once (no warm one ready yet) would otherwise both see the same
   * loads and land in the same browser, and a crash of it would fail both.
   */
  load(): number {
    return (this.browser ? this.openContexts.get(this.browser) ?? 0 : 0) + this.opening;
  }

  get retryAt(): number {
    return this.backoffUntil;
  }

  /** The launched browser new contexts open in, if any. */
  current(): Browser | undefined {
    return this.browser;
  }

  /** The connected browser, launching (once, however many callers wait) when there is none. */
  async get(): Promise<Browser> {
    if (this.closed) throw new SriError('WORKER_SHUTDOWN', 'The worker is stopping; no browser is available.');
    if (this.browser?.isConnected() && this.dueForRetirement()) this.retire(this.browser);
    if (this.browser?.isConnected()) return this.browser;
    this.launching ??= this.launch().finally(() => { this.launching = undefined; });
    return this.launching;
  }

  /**
   * A new context in this host's browser. A browser that died can still look connected for a moment (its
   * 'disconnected' event not yet delivered): when opening the context fails that way, the browser is dropped and
   * one relaunch is tried.
   */
  async newContext(options: Parameters<Browser['newContext']>[0]): Promise<{ browser: Browser; context: BrowserContext }> {
    this.opening++;
    try {
      return await this.openContext(options);
    } finally {
      this.opening--;
    }
  }

  private async openContext(options: Parameters<Browser['newContext']>[0]): Promise<{ browser: Browser; context: BrowserContext }> {
    for (let attempt = 0; ; attempt++) {
      const browser = await this.get();
      try {
        const context = await browser.newContext(options);
        if (browser === this.browser) this.contextsOpened++;
        this.openContexts.set(browser, (this.openContexts.get(browser) ?? 0) + 1);
        context.once('close', () => {
          const left = (this.openContexts.get(browser) ?? 1) - 1;
          this.openContexts.set(browser, left);
          if (left <= 0 && this.retired.has(browser)) void browser.close().catch(() => {});
        });
        return { browser, context };
      } catch (e) {
        const dead = !browser.isConnected() || /closed|disconnected|crash/i.test((e as Error).message);
        if (!dead || attempt >= 1) throw e;
        this.logger.warn({ err: (e as Error).message.split('\n')[0] }, 'browser is gone; relaunching');
        if (this.browser === browser) this.browser = undefined;
        await browser.close().catch(() => {});
      }
    }
  }

  private dueForRetirement(): boolean {
    const { maxContextsPerBrowser: maxContexts, maxBrowserAgeMs: maxAge } = this.opts;
    return (maxContexts !== undefined && this.contextsOpened >= maxContexts)
      || (maxAge !== undefined && Date.now() - this.launchedAt >= maxAge);
  }

  private retire(browser: Browser): void {
    this.retiredLast = true;
    this.logger.info({ contexts: this.contextsOpened, ageMs: Date.now() - this.launchedAt }, 'browser retired; the next context opens in a new one');
    this.retired.add(browser);
    if (this.browser === browser) this.browser = undefined;
    if ((this.openContexts.get(browser) ?? 0) <= 0) void browser.close().catch(() => {});
  }

  private async launch(): Promise<Browser> {
    const executablePath = resolveChromiumPath(this.opts.chromiumPath);
    const started = Date.now();
    let browser: Browser;
    try {
      browser = await chromium.launch({
        executablePath,
        headless: true,
        args: chromiumArgs(),
        // Chromium's own sandbox cannot start as root; as any other user it stays on.
        chromiumSandbox: !runningAsRoot(),
        timeout: this.opts.launchTimeoutMs,
        handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false,
      });
    } catch (e) {
      throw new SriError('BROWSER_ERROR', `Chromium did not start (${executablePath ?? 'Playwright\'s own browser'}): ${(e as Error).message.split('\n')[0]}. Set CHROMIUM_PATH or install chromium.`, { cause: e });
    }
    this.logger.info({ executablePath: executablePath ?? 'playwright', version: browser.version(), duration: Date.now() - started }, 'browser launched');
    const launchedAt = Date.now();
    // A launch that replaces a retired browser is no restart: only those after a crash count (the restart-loop alert).
    const replacesRetired = this.launches > 0 && this.retiredLast;
    this.retiredLast = false;
    if (this.launches++ > 0 && !replacesRetired) this.opts.onRestart?.();
    browser.on('disconnected', () => {
      this.openContexts.delete(browser);
      if (this.retired.delete(browser)) return;
      if (this.browser === browser) this.browser = undefined;
      if (this.closed) return;
      // A browser that dies soon after its launch is relaunched after a pause that doubles with each such death.
      this.youngDeaths = Date.now() - launchedAt < RESTART_PAUSE_WITHIN_MS ? this.youngDeaths + 1 : 0;
      const pauseMs = restartBackoffMs(this.youngDeaths);
      this.backoffUntil = Date.now() + pauseMs;
      this.logger.warn({ pauseMs, youngDeaths: this.youngDeaths }, 'browser disconnected; relaunching');
      const relaunch = () => {
        if (this.closed || this.browser) return;
        this.get().catch((e: unknown) => this.logger.error({ err: (e as Error).message }, 'relaunching the browser failed; the next job tries again'));
      };
      if (pauseMs) setTimeout(relaunch, pauseMs).unref();
      else relaunch();
    });
    if (this.closed) {
      await browser.close().catch(() => {});
      throw new SriError('WORKER_SHUTDOWN');
    }
    this.browser = browser;
    this.launchedAt = launchedAt;
    this.contextsOpened = 0;
    return browser;
  }

  async close(): Promise<void> {
    this.closed = true;
    const b = this.browser ?? (await this.launching?.catch(() => undefined));
    this.browser = undefined;
    await Promise.all([b, ...this.retired].map((x) => x?.close().catch(() => {})));
    this.retired.clear();
  }
}

export class BrowserPool {
  private closed = false;
  private readonly hosts: BrowserHost[];
  private readonly warm: PreparedContext[] = [];
  private preparing: Promise<void> | undefined;
  /** Where the search for the least loaded browser starts, so equal loads take turns. */
  private nextHost = 0;
  /** Contexts handed to jobs and not yet closed, per browser: what spreads jobs (not warm contexts) over browsers. */
  private readonly busy = new Map<Browser, number>();

  constructor(private readonly opts: BrowserPoolOptions) {
    const n = Math.max(1, opts.browsers ?? 1);
    this.hosts = Array.from({ length: n }, (_, i) => new BrowserHost(opts, n > 1 ? opts.logger.child({ browser: i }) : opts.logger));
  }

  /** True while at least one of its browsers is launched and connected. */
  isUp(): boolean {
    return !this.closed && this.hosts.some((h) => h.isUp());
  }

  /** How many of its browsers are launched and connected. */
  browsersUp(): number {
    return this.closed ? 0 : this.hosts.filter((h) => h.isUp()).length;
  }

  /** Every browser launched (once, however many callers wait); resolves with the first one's. */
  async get(): Promise<Browser> {
    if (this.closed) throw new SriError('WORKER_SHUTDOWN', 'The worker is stopping; no browser is available.');
    const up = this.hosts.filter((h) => h.available());
    const [first] = await Promise.all((up.length ? up : this.hosts).map((h) => h.get()));
    return first!;
  }

  /**
   * The browser a new context goes to: of those not waiting out a crash backoff, the one with the fewest contexts
   * open or being opened; among equals the one with the fewest given to jobs (a warm context is no job), then
   * turns; when every one is backing off, the first to be done with it.
   */
  private pick(): BrowserHost {
    const n = this.hosts.length;
    const busyIn = (h: BrowserHost) => { const b = h.current(); return b ? this.busy.get(b) ?? 0 : 0; };
    let best: BrowserHost | undefined;
    for (let i = 0; i < n; i++) {
      const h = this.hosts[(this.nextHost + i) % n]!;
      if (h.available() && (!best || h.load() < best.load() || (h.load() === best.load() && busyIn(h) < busyIn(best)))) best = h;
    }
    best ??= this.hosts.reduce((a, b) => (b.retryAt < a.retryAt ? b : a));
    this.nextHost = (this.hosts.indexOf(best) + 1) % n;
    return best;
  }

  /** A new context in the least loaded browser (BrowserHost.newContext). */
  async newContext(options: Parameters<Browser['newContext']>[0]): Promise<{ browser: Browser; context: BrowserContext }> {
    if (this.closed) throw new SriError('WORKER_SHUTDOWN', 'The worker is stopping; no browser is available.');
    return this.pick().newContext(options);
  }

  /**
   * A context for one job, `reserved`: a prepared one when one waits (and another is prepared in its place), else
   * one opened now. The caller arms its lease with the job's policy and recycles it when the job ends.
   */
  async reserve(extras?: JobContextExtras): Promise<PreparedContext> {
    if (extras) {
      // Options fixed at context creation (a video): a context of its own, opened now and prepared like the warm ones.
      const own = await this.withPage(await this.prepare(extras));
      own.to('reserved');
      this.countBusy(own);
      return own;
    }
    let prepared: PreparedContext | undefined;
    while ((prepared = this.takeWarm()) !== undefined && !(await this.alive(prepared))) void prepared.recycle();
    if (!prepared) {
      prepared = await this.prepare();
      this.countBusy(prepared);
      await this.withPage(prepared);
    }
    prepared.to('reserved');
    this.refill();
    return prepared;
  }

  /** Opens the page of a context opened for the job now; a context whose page cannot open is closed. */
  private async withPage(prepared: PreparedContext): Promise<PreparedContext> {
    try {
      await prepared.openPage();
      return prepared;
    } catch (e) {
      void prepared.recycle();
      throw e;
    }
  }

  /**
   * The warm context to give a job: the one in the browser with the fewest contexts already given to jobs (the
   * oldest among equals), so running jobs spread over the browsers and a crash of one fails as few as it can. It
   * counts as the job's at once (a second job reserving meanwhile sees it), and stops counting when it closes.
   */
  private takeWarm(): PreparedContext | undefined {
    let best = -1;
    this.warm.forEach((w, i) => {
      if (best < 0 || (this.busy.get(w.browser) ?? 0) < (this.busy.get(this.warm[best]!.browser) ?? 0)) best = i;
    });
    const taken = best < 0 ? undefined : this.warm.splice(best, 1)[0];
    if (taken) this.countBusy(taken);
    return taken;
  }

  /** Counts a context given to a job in its browser's `busy`, until it closes. */
  private countBusy(prepared: PreparedContext): void {
    const b = prepared.browser;
    this.busy.set(b, (this.busy.get(b) ?? 0) + 1);
    prepared.context.once('close', () => {
      const left = (this.busy.get(b) ?? 1) - 1;
      if (left > 0) this.busy.set(b, left);
      else this.busy.delete(b);
    });
  }

  /**
   * Opens the job's page in a prepared context. A browser that died can still look connected for a moment (its
   * 'disconnected' event not yet delivered): the page's round trip tells, before a job is given a context of a
   * dead browser.
   */
  private async alive(prepared: PreparedContext): Promise<boolean> {
    if (!prepared.usable()) return false;
    try {
      await prepared.openPage();
      return prepared.usable();
    } catch {
      return false;
    }
  }

  /** Starts preparing contexts until `warmContexts` wait; one at a time, off the caller's path. */
  refill(): void {
    const want = this.opts.warmContexts ?? 0;
    if (this.closed || this.preparing || this.warm.length >= want) return;
    this.preparing = (async () => {
      try {
        while (!this.closed && this.warm.length < want) {
          const p = await this.prepare();
          if (this.closed) await p.recycle();
          else this.warm.push(p);
        }
      } catch (e) {
        // The next reserve opens its context itself (and relaunches the browser if it must).
        this.opts.logger.warn({ err: (e as Error).message.split('\n')[0] }, 'preparing a warm context failed');
      } finally {
        this.preparing = undefined;
      }
    })();
  }

  private async prepare(extras: JobContextExtras = {}): Promise<PreparedContext> {
    if (!this.opts.prepareLease) throw new Error('this BrowserPool has no egress proxy: it opens no job context');
    const lease = this.opts.prepareLease();
    try {
      const { browser, context } = await this.newContext({ ...extras, ...JOB_CONTEXT_OPTIONS, proxy: lease.proxy });
      try {
        // The host guard before the page: every request the context ever makes goes through it.
        const guard = new GuardRules();
        await installGuard(context, guard);
        return new PreparedContext(browser, context, lease, guard);
      } catch (e) {
        await context.close().catch(() => {});
        throw e;
      }
    } catch (e) {
      lease.release();
      throw e;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.preparing;
    await Promise.all(this.warm.splice(0).map((p) => p.recycle()));
    await Promise.all(this.hosts.map((h) => h.close()));
  }
}
