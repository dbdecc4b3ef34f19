/**
 * One warm Chromium per worker, launched at start and relaunched at once when it disconnects (crash, OOM kill), so
 * the worker stays ready (/readyz) and the next job does not pay the launch; a relaunch that fails is tried again
 * by the next job. Every launch after the first is a restart (`onRestart`, the sri_browser_restarts_total metric).
 * Jobs never share a context: each gets `newContext()` and closes it (ARCHITECTURE.md invariant 3).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import type { Logger } from '../shared/logger.ts';
import { SriError } from '../shared/errors.ts';

const SYSTEM_CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'];

/** CHROMIUM_PATH, else the system's chromium binary (the wrapper script is slower to start), else Playwright's own. */
export function resolveChromiumPath(configured: string | undefined, exists: (p: string) => boolean = existsSync): string | undefined {
  if (configured) return configured;
  return SYSTEM_CHROMIUM.find((p) => exists(p));
}

/**
 * Flags for a headless worker browser: no background traffic, no QUIC (so routing sees every request), and no
 * WebRTC over UDP — STUN/TURN packets would go around the egress proxy (TURN over TCP still goes through it).
 */
export function chromiumArgs(): string[] {
  return ['--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--disable-dev-shm-usage', '--webrtc-ip-handling-policy=disable_non_proxied_udp'];
}

/** A browser that disconnects within this long of its launch is relaunched only after RESTART_PAUSE_MS. */
const RESTART_PAUSE_WITHIN_MS = 30_000;
const RESTART_PAUSE_MS = 5000;

const runningAsRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

export class BrowserPool {
  private browser: Browser | undefined;
  private launching: Promise<Browser> | undefined;
  private closed = false;
  private launches = 0;

  constructor(private readonly opts: {
    chromiumPath?: string; launchTimeoutMs: number; logger: Logger;
    /** Called for every launch after the first. */
    onRestart?: () => void;
  }) {}

  /** True while a launched browser is connected. */
  isUp(): boolean {
    return !this.closed && this.browser?.isConnected() === true;
  }

  /** The connected browser, launching (once, however many callers wait) when there is none. */
  async get(): Promise<Browser> {
    if (this.closed) throw new SriError('WORKER_SHUTDOWN', 'The worker is stopping; no browser is available.');
    if (this.browser?.isConnected()) return this.browser;
    this.launching ??= this.launch().finally(() => { this.launching = undefined; });
    return this.launching;
  }

  /**
   * A new context in the warm browser. A browser that died can still look connected for a moment (its
   * 'disconnected' event not yet delivered): when opening the context fails that way, the browser is dropped and
   * one relaunch is tried.
   */
  async newContext(options: Parameters<Browser['newContext']>[0]): Promise<{ browser: Browser; context: BrowserContext }> {
    for (let attempt = 0; ; attempt++) {
      const browser = await this.get();
      try {
        return { browser, context: await browser.newContext(options) };
      } catch (e) {
        const dead = !browser.isConnected() || /closed|disconnected|crash/i.test((e as Error).message);
        if (!dead || attempt >= 1) throw e;
        this.opts.logger.warn({ err: (e as Error).message.split('\n')[0] }, 'browser is gone; relaunching');
        if (this.browser === browser) this.browser = undefined;
        await browser.close().catch(() => {});
      }
    }
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
    this.opts.logger.info({ executablePath: executablePath ?? 'playwright', version: browser.version(), duration: Date.now() - started }, 'browser launched');
    const launchedAt = Date.now();
    if (this.launches++ > 0) this.opts.onRestart?.();
    browser.on('disconnected', () => {
      if (this.browser === browser) this.browser = undefined;
      if (this.closed) return;
      // A browser that dies soon after its launch is relaunched after a pause, not in a tight loop.
      const pauseMs = Date.now() - launchedAt < RESTART_PAUSE_WITHIN_MS ? RESTART_PAUSE_MS : 0;
      this.opts.logger.warn({ pauseMs }, 'browser disconnected; relaunching');
      const relaunch = () => {
        if (this.closed || this.browser) return;
        this.get().catch((e: unknown) => this.opts.logger.error({ err: (e as Error).message }, 'relaunching the browser failed; the next job tries again'));
      };
      if (pauseMs) setTimeout(relaunch, pauseMs).unref();
      else relaunch();
    });
    if (this.closed) {
      await browser.close().catch(() => {});
      throw new SriError('WORKER_SHUTDOWN');
    }
    this.browser = browser;
    return browser;
  }

  async close(): Promise<void> {
    this.closed = true;
    const b = this.browser ?? (await this.launching?.catch(() => undefined));
    this.browser = undefined;
    await b?.close().catch(() => {});
  }
}
