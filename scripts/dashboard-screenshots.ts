/**
 * `npm run docs:screenshots`: the screenshots of docs/dashboard.md, taken from the real thing. Starts the whole
 * stack as `sri up` does (temporary DATA_DIR, random ports), signs a user up through the API, connects the demo
 * provider, creates, activates and runs the demo flow, waits for the job, gives the admin pages something to show (a
 * webhook, a secret, a quota, a dead letter), then logs in through the dashboard in Chromium (es-EC,
 * America/Guayaquil) and saves each main page at 1280×800 and at phone size (390×844) as
 * docs/screenshots/dashboard-<page>-<desktop|phone>.png. Stops everything it started, also on failure.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { chromium, type Page } from 'playwright-core';
import { demoFlowSteps, loginToDemoPortal } from '../src/cli/demo.ts';
import { startStack } from '../src/embedded/stack.ts';
import { JobQueue } from '../src/shared/queue/job-queue.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'docs', 'screenshots');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } } as const;

async function api<T>(base: string, method: string, path: string, token: string | undefined, body?: unknown): Promise<T> {
  const r = await fetch(base + path, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path} → ${r.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sri-screens-'));
  const env: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(env)) if (/^(REDIS_URL|S3_|DATABASE_URL|JWT_|PORT|DEMO_PORT|DATA_DIR|LOG_DIR|WORKERS)$/.test(k)) delete env[k];
  const stack = await startStack({
    env: { ...env, DATA_DIR: join(dir, 'data'), LOG_DIR: join(dir, 'logs'), LOG_LEVEL: 'warn', EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', WORKERS: '1', WORKER_HTTP_PORT: 'off' },
    onWorkerOutput: () => {},
    onProgress: (l) => console.log(`[stack] ${l}`),
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  try {
    const base = stack.apiUrl;
    const email = `ana-${Date.now()}@example.com`;
    const password = 'caballo-correcto-bateria-42';
    const reg = await api<{ token: string; org: { id: string } }>(base, 'POST', '/api/auth/register', undefined, { email, password, name: 'Ana Pérez', orgName: 'Importadora Andina' });
    const portalHost = new URL(stack.portalUrl).hostname;
    const cookie = await loginToDemoPortal(stack.portalUrl);
    await api(base, 'POST', '/api/providers/demo/connect', reg.token, {
      cookies: [{ name: 'demo_session', value: cookie, domain: portalHost, path: '/' }, { name: 'demo_locale', value: 'es-EC', domain: portalHost, path: '/' }],
      credentials: { portalPassword: 'demo-password' },
    });
    const flow = await api<{ flow: { id: string } }>(base, 'POST', '/api/flows', reg.token, { providerId: 'demo', version: '1.0.0', name: 'Facturas', steps: demoFlowSteps(stack.portalUrl) });
    await api(base, 'POST', `/api/flows/${flow.flow.id}/activate`, reg.token);
    // A colleague, invited by link (pending), for the members page.
    await api(base, 'POST', '/api/members', reg.token, { email: `bea-${Date.now()}@example.com`, name: 'Bea Ruiz', role: 'member' });
    const run = await api<{ jobId: string }>(base, 'POST', '/api/run', reg.token, { providerId: 'demo', metadata: { period: '2026-01' } });
    const deadline = Date.now() + 180_000;
    for (;;) {
      const s = await api<{ status: string }>(base, 'GET', `/api/jobs/${run.jobId}/status`, reg.token);
      if (['done', 'failed', 'dead', 'cancelled'].includes(s.status)) break;
      if (Date.now() > deadline) throw new Error(`job ${run.jobId} still ${s.status} after 180 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // The admin pages, not empty: a webhook, a secret, a quota, and a dead letter (put there as the queue does when a
    // message cannot be run; there is no API to make one).
    await api(base, 'POST', '/api/webhooks', reg.token, { url: 'https://hooks.example.com/sri', events: ['job.done', 'job.failed'] });
    await api(base, 'PUT', '/api/secrets/portalPassword', reg.token, { value: 'demo-password' });
    await api(base, 'PUT', '/api/admin/quota', reg.token, { maxConcurrent: 3, perMinute: 30 });
    const redis = new Redis(stack.redisUrl, { lazyConnect: true });
    try {
      await redis.connect();
      await (await JobQueue.connect(redis)).deadLetter(reg.org.id, '{"not":"a job"}', 'malformed message: not a job');
    } finally {
      redis.disconnect();
    }

    mkdirSync(OUT, { recursive: true });
    const context = await browser.newContext({ baseURL: base, locale: 'es-EC', timezoneId: 'America/Guayaquil', viewport: SIZES.desktop });
    const page = await context.newPage();
    const shoot = async (name: string, path: string, ready: (p: Page) => Promise<unknown>) => {
      for (const [size, viewport] of Object.entries(SIZES)) {
        await page.setViewportSize(viewport);
        await page.goto(path);
        await ready(page);
        const file = join(OUT, `dashboard-${name}-${size}.png`);
        await page.screenshot({ path: file, fullPage: size === 'phone' ? false : true });
        console.log(`saved ${file}`);
      }
    };
    await shoot('login', '/login', (p) => p.getByRole('heading', { level: 1 }).waitFor());
    await page.goto('/login');
    await page.getByLabel('Correo electrónico').fill(email);
    await page.getByLabel('Contraseña').fill(password);
    await page.getByRole('button', { name: 'Iniciar sesión' }).click();
    await page.waitForURL(/\/jobs$/);
    await shoot('jobs', '/jobs', (p) => p.getByRole('table').waitFor());
    await shoot('job', `/jobs/${run.jobId}`, async (p) => {
      await p.getByRole('img').first().waitFor();
      await p.waitForFunction(() => [...document.images].every((i) => i.complete));
    });
    await shoot('providers', '/providers', (p) => p.getByText(/Conectado hasta/).first().waitFor());
    await shoot('flows', '/flows', (p) => p.getByRole('table').first().waitFor());
    await shoot('flow-editor', `/flows/new?from=${flow.flow.id}`, (p) => p.getByRole('group', { name: /^Paso 9:/ }).waitFor());
    await shoot('members', '/members', (p) => p.getByText('Bea Ruiz').first().waitFor());
    await shoot('workers', '/admin/workers', (p) => p.getByRole('table').waitFor());
    await shoot('dead-letters', '/admin/dead-letters', (p) => p.getByText('malformed message: not a job').first().waitFor());
    await shoot('webhooks', '/admin/webhooks', (p) => p.getByText('https://hooks.example.com/sri').first().waitFor());
    await shoot('secrets', '/admin/secrets', (p) => p.getByRole('cell', { name: 'portalPassword', exact: true }).waitFor());
    await shoot('quota', '/admin/quota', async (p) => {
      const field = p.getByLabel('Trabajos en ejecución a la vez');
      await field.waitFor();
      await p.waitForFunction(() => (document.querySelector('input[type="number"]') as HTMLInputElement | null)?.value === '3');
    });
    await context.close();
  } finally {
    await browser.close().catch(() => {});
    await stack.stop({ graceMs: 5000 });
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
