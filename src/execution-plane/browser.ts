/**
 * One warm Chromium per worker, launched at start and relaunched on the next job if it disconnects (crash, OOM
 * kill). Jobs never share a context: each gets `newContext()` and closes it (ARCHITECTURE.md invariant 3).
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

/** Flags for a headless worker browser: no background traffic, no QUIC (so routing sees every request). */
export function chromiumArgs(): string[] {
  return ['--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'];
}

const runningAsRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

export class BrowserPool {
  private browser: Browser | undefined;
  private launching: Promise<Browser> | undefined;
  private closed = false;

  constructor(private readonly opts: { chromiumPath?: string; launchTimeoutMs: number; logger: Logger }) {}

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
    browser.on('disconnected', () => {
      if (this.browser === browser) this.browser = undefined;
      if (!this.closed) this.opts.logger.warn('browser disconnected; it will be relaunched for the next job');
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
