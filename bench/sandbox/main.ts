/**
 * `npm run bench:sandbox [-- --calls N] [-- --starts N]`
 *
 * What the script sandbox (src/execution-plane/script/sandbox/) costs, against a baseline measured in the same run
 * on the same Chromium page:
 *   1. page calls: N × `page.title()` + `page.textContent('#x')` from a sandboxed script (one message round trip to
 *      the worker each) against the same calls made directly on Playwright's Page in the worker;
 *   2. script start: an empty script run N times in each sandbox kind (bwrap, process) — the per-job price of a
 *      process of its own — against a fresh browser context with one page, what every job pays anyway.
 */
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { chromiumArgs, resolveChromiumPath } from '../../src/execution-plane/browser.ts';
import { ExecutionLog } from '../../src/execution-plane/job/execution-log.ts';
import { createHelpers, JobArtifacts } from '../../src/execution-plane/job/helpers.ts';
import { Redactor } from '../../src/execution-plane/job/redactor.ts';
import { SandboxRunner } from '../../src/execution-plane/script/sandbox/sandbox-runner.ts';
import { verifyJobScript } from '../../src/execution-plane/script/verified-script.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { signScript } from '../../src/shared/signing.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '2000' }, starts: { type: 'string', default: '30' } } });
const calls = Number(values.calls);
const starts = Number(values.starts);
const SECRET = 'bench-signing-secret-of-at-least-32-characters';
const logger = createLogger({ name: 'bench', level: 'error', stdout: false });
const limits = { cpuSeconds: 60, memoryMb: 256, maxCalls: 10 * calls + 100, actionTimeoutMs: 30_000 };

const browser = await chromium.launch({ executablePath: resolveChromiumPath(undefined), args: chromiumArgs(), headless: true });
const HTML = 'data:text/html,<title>bench</title><p id="x">hello</p>';

async function sandboxed(runner: SandboxRunner, body: string): Promise<number> {
  const src = `export default async function run({ page, payload, helpers }) {\n${body}\n}`;
  const { scriptHash, signature } = signScript(src, SECRET);
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(HTML);
  const helpers = createHelpers({ page, credentials: {}, exec: new ExecutionLog(new Redactor()), artifacts: new JobArtifacts(), timeoutMs: 30_000, limits: { maxScreenshots: 1, maxDownloads: 1, maxDownloadBytes: 1 },
    store: { put: () => Promise.reject(new Error('the bench keeps no downloads')) }, charge: () => true, redact: (t) => t });
  const t = performance.now();
  await runner.run(verifyJobScript(src, scriptHash, signature, SECRET), { page, payload: { calls }, helpers, context: { jobId: 'b', orgId: 'o', userId: 'u', providerId: 'p', flowId: 'f', flowVersion: '1', attempt: 1 } },
    { timeoutMs: 600_000, signal: new AbortController().signal, filename: 'bench.js' });
  const ms = performance.now() - t;
  await context.close();
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`sandbox bench — ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${new Date().toISOString()}`);
const bwrap = SandboxRunner.create({ ...limits, mode: 'bwrap' }, logger);
const proc = SandboxRunner.create({ ...limits, mode: 'process' }, logger);

// 1. page calls
const context = await browser.newContext();
const page = await context.newPage();
await page.goto(HTML);
let t = performance.now();
for (let i = 0; i < calls; i++) { await page.title(); await page.textContent('#x'); }
const direct = performance.now() - t;
await context.close();
const viaSandbox = await sandboxed(bwrap, 'for (let i = 0; i < payload.calls; i++) { await page.title(); await page.textContent("#x"); }');
console.log(`page calls (${2 * calls}): direct ${(direct / (2 * calls) * 1000).toFixed(0)} µs/call, sandboxed ${(viaSandbox / (2 * calls) * 1000).toFixed(0)} µs/call (includes one script start) → ratio sandboxed/direct ${(viaSandbox / direct).toFixed(2)}`);

// 2. script start
const contextTimes: number[] = [];
for (let i = 0; i < starts; i++) {
  t = performance.now();
  const c = await browser.newContext();
  await c.newPage();
  contextTimes.push(performance.now() - t);
  await c.close();
}
const bwrapTimes: number[] = [];
const procTimes: number[] = [];
for (let i = 0; i < starts; i++) {
  bwrapTimes.push(await sandboxed(bwrap, 'helpers.setResult({ ok: 1 });'));
  procTimes.push(await sandboxed(proc, 'helpers.setResult({ ok: 1 });'));
}
const base = median(contextTimes);
console.log(`script start (median of ${starts}): browser context + page ${base.toFixed(0)} ms (baseline); empty script in bwrap ${median(bwrapTimes).toFixed(0)} ms (ratio ${(median(bwrapTimes) / base).toFixed(2)}), in process mode ${median(procTimes).toFixed(0)} ms (ratio ${(median(procTimes) / base).toFixed(2)})`);
await browser.close();
