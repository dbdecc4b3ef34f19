/**
 * `tsx bench/worker-overhead/chromium-cpu.ts [--jobs N] [--variants a,b]`: CPU seconds per job of one Chromium
 * (its whole process tree, by process type) and of this process, for the issue 14 job shape with one platform
 * ingredient at a time — the egress proxy, the route guard, the WebSocket guard, a context and page prepared ahead
 * (`prepared`) or the context alone (`prepctx`), extra
 * Chromium flags — so the platform's extra CPU per job can be pinned to its causes on a loaded machine.
 */
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { startDemoPortal } from '../../src/embedded/demo-portal.ts';
import { chromiumArgs, resolveChromiumPath } from '../../src/execution-plane/browser.ts';
import { lookAtPage } from '../../src/execution-plane/job/blocker.ts';
import { EgressPolicy } from '../../src/execution-plane/job/egress-policy.ts';
import { EgressProxy } from '../../src/execution-plane/job/egress-proxy.ts';
import { GuardRules, installGuard } from '../../src/execution-plane/job/host-guard.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { CpuMeter, cpuSpent } from './cpu.ts';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '8' }, variants: { type: 'string', default: 'raw,proxy,route,ws,guard,prepared,all' }, args: { type: 'string', default: '' } } });
const N = Number(values.jobs);
const portal = await startDemoPortal({ port: 0 });
const target = `${portal.url}/login`;
const cookie = { name: 'demo_locale', value: 'en', url: portal.url };
const proxy = new EgressProxy(createLogger({ name: 'p', level: 'warn', stdout: false }));
await proxy.start();
const policy = new EgressPolicy(['127.0.0.1', 'localhost']);
const extraArgs = values.args ? values.args.split(' ') : [];

for (const variant of values.variants!.split(',')) {
  const before = new Set(CpuMeter.children(/chrom/i));
  // pwdefault: playwright-core's own flags only (raw Playwright as its users launch it); nospare: the worker's flags
  // with the spare renderer off (Chromium honours only the last --disable-features, so the list is extended).
  const flags = variant.includes('pwdefault') ? [] : variant.includes('nospare')
    ? chromiumArgs().map((a) => a.startsWith('--disable-features=') ? `${a},SpareRendererForSitePerProcess` : a) : chromiumArgs();
  const browser = await chromium.launch({ executablePath: resolveChromiumPath(undefined), args: [...flags, ...extraArgs], headless: true, chromiumSandbox: false });
  const meter = new CpuMeter();
  for (const pid of CpuMeter.children(/chrom/i)) if (!before.has(pid)) meter.label(pid, 'chromium');
  meter.start();
  const ingredients = variant === 'all' ? ['proxy', 'guardfull', 'prepared'] : variant === 'guard' ? ['route', 'ws'] : variant.split('+');
  const has = (x: string) => ingredients.includes(x);
  const open = async () => {
    const lease = has('proxy') ? proxy.prepareLease() : undefined;
    const context = await browser.newContext({ acceptDownloads: true, serviceWorkers: 'block', ...(lease ? { proxy: lease.proxy } : {}) });
    const rules = new GuardRules();
    if (has('route')) await context.route(() => true, (r) => r.fallback());
    if (has('ws')) await context.routeWebSocket(() => true, (ws) => ws.connectToServer());
    if (has('guardfull')) await installGuard(context, rules);
    // prepctx: the context is prepared ahead, its page opened when the job takes it.
    const page = has('prepctx') ? undefined : await context.newPage();
    return { context, page, lease, rules };
  };
  const ahead = has('prepared') || has('prepctx');
  let next = ahead ? await open() : undefined;
  let t = performance.now();
  let s0 = meter.snapshot();
  for (let i = -1; i < N; i++) {
    if (i === 0) { s0 = meter.snapshot(); t = performance.now(); }
    const job = next ?? await open();
    if (ahead) next = await open();
    const lease = job.lease?.arm(policy, () => {});
    if (has('guardfull')) job.rules.set(policy, () => {});
    await job.context.addCookies([cookie]);
    const page = job.page ?? await job.context.newPage();
    await page.goto(target);
    if (has('look')) await lookAtPage(page, {});
    await page.screenshot();
    await job.context.close();
    lease?.release();
  }
  const ms = performance.now() - t;
  const counts = meter.processCounts();
  await new Promise((r) => setTimeout(r, 500));
  const { total, parts } = cpuSpent(s0, meter.snapshot());
  meter.stop();
  await browser.close();
  if (next) await next.context.close().catch(() => {});
  process.stdout.write(`${variant.padEnd(10)} ${(ms / N).toFixed(0).padStart(5)} ms/job, CPU ${(total / N * 1000).toFixed(0)} ms/job: ${[...parts].filter(([, v]) => v > 0.001).map(([k, v]) => `${k} ${(v / N * 1000).toFixed(0)}`).join(', ')}\n           processes seen: ${[...counts].map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
}
await proxy.close();
await portal.close();
