/**
 * Chromium for the dashboard's tests (playwright-core, the system's /usr/bin/chromium, headless) and what every page
 * is checked for: axe-core finds no serious or critical violation, the page broke no Content-Security-Policy rule
 * and threw no error. `cleanEnv` is the caller's environment without what would point a stack elsewhere.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export async function launchChromium(): Promise<Browser> {
  // Root cannot use Chromium's own sandbox; the tests run as root in CI containers.
  const noSandbox = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...noSandbox, '--disable-dev-shm-usage'] });
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** CSP violations and uncaught errors seen so far (console "Refused to …" lines, pageerror). */
  problems: string[];
}

export async function openPage(browser: Browser, opts: BrowserContextOptions = {}): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true, ...opts });
  context.setDefaultTimeout(30_000);
  context.setDefaultNavigationTimeout(60_000);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { page, context, problems };
}

interface AxeViolation { id: string; impact: string | null; help: string; nodes: { target: unknown[] }[] }

/**
 * Runs axe-core in the page (through the debugging protocol, which the page's CSP does not govern: the app runs
 * under its real policy) and fails on serious or critical violations.
 */
export async function checkAccessibility(page: Page, what: string): Promise<void> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, o: object): Promise<{ violations: AxeViolation[] }> } }).axe;
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target) }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${what}: axe-core found ${bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(v.nodes.slice(0, 3))}`).join('; ')}`);
}

export function assertNoProblems(w: WatchedPage, what: string): void {
  assert.deepEqual(w.problems, [], `${what}: ${w.problems.join('\n')}`);
}

/** The caller's environment without anything that would point the stack at external services. */
export function cleanEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(REDIS_URL|S3_|DATABASE_URL|POSTGRES_|API_|JWT_|SCRIPT_SIGNING_SECRET|WORKER_ID|PORT|HOST|DEMO_PORT|DATA_DIR|LOG_DIR|WORKERS$|SESSION_COOKIE_SECURE)/.test(k)) delete env[k];
  }
  return env;
}
