/**
 * The worker's Chromium flags: Chromium honours only the last `--disable-features` switch, and ours comes after
 * Playwright's own, so ours must carry every feature the installed playwright-core disables (else an upgrade would
 * silently switch them back on) — checked against playwright-core's source and on a launched browser's command line.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';
import { chromiumArgs, PLAYWRIGHT_DISABLED_FEATURES, resolveChromiumPath, WORKER_DISABLED_FEATURES } from '../../src/execution-plane/browser.ts';

/** The features of `disabledFeatures = [ … ]` in playwright-core's chromiumSwitches (bundled in lib/). */
function playwrightDisabledFeatures(): string[] {
  const lib = join(dirname(createRequire(import.meta.url).resolve('playwright-core')), 'lib');
  const candidates = ['coreBundle.js', 'server/chromium/chromiumSwitches.js'].map((f) => join(lib, f));
  for (const file of candidates) {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    const m = /disabledFeatures = \[([\s\S]*?)\]\.filter\(Boolean\)/.exec(text) ?? /disabledFeatures = \[([\s\S]*?)\]/.exec(text);
    if (m) return [...m[1]!.replace(/\/\/[^\n]*/g, '').matchAll(/"([A-Za-z0-9_]+)"|'([A-Za-z0-9_]+)'/g)].map((x) => x[1] ?? x[2]!);
  }
  assert.fail(`playwright-core's disabled features were not found in ${readdirSync(lib).join(', ')}`);
}

const disableSwitches = (args: readonly string[]) => args.filter((a) => a.startsWith('--disable-features='));

/** The worker's Chromium as a job gets it (as root without Chromium's own sandbox, which needs a non-root user). */
const launchWorkerChromium = () => chromium.launch({ executablePath: resolveChromiumPath(undefined), args: chromiumArgs(), headless: true,
  chromiumSandbox: !(typeof process.getuid === 'function' && process.getuid() === 0) });

/**
 * This process's descendants (another test file's processes may run beside it) with their command lines, as text:
 * Chromium rewrites a zygote child's title, so its cmdline is one string with spaces, not NUL-separated arguments.
 */
function descendants(): Map<string, { readonly ppid: string; readonly cmdline: string }> {
  const parent = new Map<string, string>();
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      parent.set(p, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!);
    } catch { /* gone */ }
  }
  const mine = (p: string) => {
    for (let q = parent.get(p), hops = 0; q && q !== '0' && hops < 64; q = parent.get(q), hops++) if (q === String(process.pid)) return true;
    return false;
  };
  const out = new Map<string, { ppid: string; cmdline: string }>();
  for (const [p, ppid] of parent) {
    if (!mine(p)) continue;
    try { out.set(p, { ppid, cmdline: readFileSync(`/proc/${p}/cmdline`, 'utf8') }); } catch { /* gone */ }
  }
  return out;
}

describe('worker Chromium flags', () => {
  it('repeat every feature playwright-core disables, plus the worker\'s, in one --disable-features switch', () => {
    const pw = playwrightDisabledFeatures();
    assert.ok(pw.length >= 5, `found ${pw.length} features`);
    const missing = pw.filter((f) => !PLAYWRIGHT_DISABLED_FEATURES.includes(f));
    assert.deepEqual(missing, [], 'playwright-core disables these too: add them to PLAYWRIGHT_DISABLED_FEATURES (browser.ts)');
    const switches = disableSwitches(chromiumArgs());
    assert.equal(switches.length, 1);
    const ours = switches[0]!.slice('--disable-features='.length).split(',');
    for (const f of [...pw, ...WORKER_DISABLED_FEATURES]) assert.ok(ours.includes(f), f);
  });

  it('reach the launched browser: its last --disable-features holds Playwright\'s and the worker\'s', { timeout: 120_000 }, async () => {
    const browser = await launchWorkerChromium();
    try {
      // The browser process: the child of this process (Playwright starts it) whose command line has Playwright's
      // debugging pipe. Not any descendant: a process the browser has just forked (a zygote, before it renames
      // itself or execs) shows the browser's command line for a moment, and was counted as a second browser once.
      const lines = [...descendants().values()].filter((d) => d.ppid === String(process.pid))
        .map((d) => d.cmdline.split('\0')).filter((argv) => argv.includes('--remote-debugging-pipe'));
      assert.equal(lines.length, 1, 'one browser process');
      const last = disableSwitches(lines[0]!).at(-1)!.slice('--disable-features='.length).split(',');
      for (const f of [...playwrightDisabledFeatures(), ...WORKER_DISABLED_FEATURES]) assert.ok(last.includes(f), f);
    } finally {
      await browser.close();
    }
  });

  it('give a job\'s context one target and one renderer process: its page, no browser UI (the omnibox popup\'s WebUI)', { timeout: 120_000 }, async () => {
    const browser = await launchWorkerChromium();
    // Renderers of this file's own browser only: another test file's Chromium may run beside it.
    const renderers = () => new Set([...descendants()].filter(([, d]) => /(^|[\s\0])--type=renderer([\s\0]|$)/.test(d.cmdline)).map(([p]) => p));
    try {
      for (let i = 0; i < 2; i++) {
        const before = renderers();
        const context = await browser.newContext();
        const page = await context.newPage();
        const cdp = await browser.newBrowserCDPSession();
        const { targetInfos } = await cdp.send('Target.getTargets', { filter: [{}] }); // every type: browser UI is left out by default
        await cdp.detach();
        // The page's own renderer is up once newPage returns; a browser-UI page of the window would be listed here.
        const started = [...renderers()].filter((p) => !before.has(p));
        const uiTargets = targetInfos.filter((t) => t.type !== 'page' && t.type !== 'tab' && t.type !== 'browser').map((t) => `${t.type} ${t.url}`);
        assert.deepEqual(uiTargets, [], 'no browser-UI page is opened with the context\'s window');
        assert.equal(started.length, 1, `renderer processes started by a context and its page: ${started.length}`);
        assert.ok(!page.isClosed());
        await context.close();
      }
    } finally {
      await browser.close();
    }
  });
});
