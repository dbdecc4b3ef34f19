/**
 * `npm run bench:worker-overhead [-- --jobs N] [--rounds R] [--raw-flags playwright|worker] [--max-jobs N] [--live-config JSON]`
 *
 * The platform's per-job overhead against raw Playwright, measured in ONE run on the same machine, Chromium and
 * demo portal (issue 14: platform time / raw time ≤ 1.10). The job shape is the issue's: a new browser context, the
 * session's cookies, a page, a navigation to the demo portal and a screenshot.
 *
 *   raw       N × (browser.newContext → addCookies → newPage → goto → screenshot → close) with playwright-core, one
 *             after another, in a browser launched with playwright-core's defaults (`--raw-flags playwright`, the
 *             default: raw Playwright as a user of it launches it, the issue's method) or with the worker's own flags
 *             (`--raw-flags worker`: the worker's Chromium switches then count for neither side);
 *   platform  the same N jobs pushed at once to the queue and run by one embedded worker (WORKER_MAX_JOBS=1, the
 *             sandbox as configured: bubblewrap where it works), from the first push to the last published result.
 *
 * Each round measures raw, then platform, then raw again, and compares the platform with the mean of the two raw
 * runs, so a load change on the (shared) machine during the round weighs on both sides. Every job's spans (verify,
 * session, run, upload, publish: job-trace.ts) are collected in memory, and the execution.log of the last job gives
 * the steps inside `run`: the profile printed at the end says where the platform's time goes.
 *
 * Each run's CPU seconds (cpu.ts: this process, its reaped children and its live descendants — Chromium, redis-server,
 * sandbox children) are printed per job and side, as a ratio and by process kind: unlike elapsed time, they do not
 * move with the load of a shared machine.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { chromium } from 'playwright-core';
import { startDemoPortal } from '../../src/embedded/demo-portal.ts';
import { chromiumArgs, resolveChromiumPath } from '../../src/execution-plane/browser.ts';
import { startWorker } from '../../src/execution-plane/worker.ts';
import { keys } from '../../src/shared/keys.ts';
import { LiveConfig } from '../../src/shared/live-config.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client, parseS3Uri } from '../../src/shared/s3.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { createTracing } from '../../src/shared/tracing.ts';
import { push, setSession, signedJob, testOrg, testWorkerConfig } from '../../test/execution-plane/support/jobs.ts';
import { publishDemoProvider } from '../../test/support/providers.ts';
import { startTestRedis, startTestS3, tempDir } from '../../test/support/services.ts';
import { CpuMeter, cpuSpent, machineBusySeconds, type CpuSnapshot } from './cpu.ts';

const { values } = parseArgs({ options: {
  jobs: { type: 'string', default: '20' }, rounds: { type: 'string', default: '3' }, sandbox: { type: 'string', default: 'auto' },
  'raw-flags': { type: 'string', default: 'playwright' },
  // A live configuration (JSON, as `sri config set` writes it) applied before the runs: what a feature costs, e.g.
  // `--live-config '{"global":{"features":{"blockerWatch":false}}}'`.
  'live-config': { type: 'string' },
  // The worker's job slots: 1 by default (one job at a time, like the raw side); `--max-jobs 2` is the worker's own
  // default (WORKER_MAX_JOBS), what the embedded platform runs with.
  'max-jobs': { type: 'string', default: '1' },
} });
if (values['raw-flags'] !== 'worker' && values['raw-flags'] !== 'playwright') throw new Error('--raw-flags is worker or playwright');
const N = Number(values.jobs);
const ROUNDS = Number(values.rounds);

const SCRIPT = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.url);
  await helpers.screenshot();
}
`;

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown';
  return `${cpus().length} CPU (${cpu}), ${Math.round(totalmem() / 2 ** 30 * 10) / 10} GiB, node ${process.version}, ${new Date().toISOString()}`;
}
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  process.stdout.write(`worker-overhead bench — ${machine()}, load average ${load()}\n`);
  process.stdout.write(`job shape: new context + 1 cookie + page + goto demo portal + screenshot; ${N} jobs per run, ${ROUNDS} round(s); worker slots (WORKER_MAX_JOBS) ${values['max-jobs']}; raw side launched with ${values['raw-flags'] === 'worker' ? 'the worker\'s flags' : 'playwright-core\'s defaults'}\n`);
  const logs = tempDir('sri-bench-overhead-');
  const [redisServer, s3, portal] = await Promise.all([startTestRedis(), startTestS3(), startDemoPortal({ port: 0 })]);
  const target = `${portal.url}/login`;
  const cookie = { name: 'demo_locale', value: 'en', url: portal.url };
  const redis = createRedis(redisServer.url);
  const sub = createRedis(redisServer.url);
  const store = new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
  const results = new Map<string, ResultMessage>();
  let onResult: (() => void) | undefined;
  sub.on('pmessage', (_p: string, _c: string, m: string) => {
    const r = ResultMessage.parse(JSON.parse(m));
    results.set(r.jobId, r);
    onResult?.();
  });
  await sub.psubscribe(keys.orgDonePattern);
  await publishDemoProvider(redis);
  // Written before the worker starts, which reads it then (live-config.ts).
  if (values['live-config']) {
    const config = LiveConfig.parse(JSON.parse(values['live-config']));
    await redis.set(keys.workerConfig, JSON.stringify({ version: 1, config, updatedAt: new Date().toISOString(), updatedBy: 'bench' }));
    process.stdout.write(`live configuration: ${JSON.stringify(config)}\n`);
  }
  const spans = new InMemorySpanExporter();
  const tracing = createTracing({ serviceName: 'sri-worker', exporters: [spans] });
  const config = testWorkerConfig({ redisUrl: redisServer.url, s3Endpoint: s3.endpoint, logDir: logs.path,
    extra: { WORKER_MAX_JOBS: values['max-jobs']!, WORKER_SANDBOX: values.sandbox!, PLAYWRIGHT_TIMEOUT: '30000', EXECUTION_TIMEOUT: '60000', LOG_LEVEL: 'warn' } });
  const worker = await startWorker(config, { logger: createLogger({ name: 'worker', level: 'warn', logDir: logs.path, stdout: false }), orgRefreshMs: 100, tracing });
  const browsersBefore = new Set(CpuMeter.children(/chrom/i));
  const browser = await chromium.launch({ executablePath: resolveChromiumPath(config.chromiumPath), args: values['raw-flags'] === 'worker' ? chromiumArgs() : [], headless: true,
    chromiumSandbox: !(typeof process.getuid === 'function' && process.getuid() === 0) });
  const orgId = testOrg('bench');
  await setSession(redis, orgId, 'user-1', { cookies: [cookie], credentials: {}, connectedAt: Date.now() });

  const meter = new CpuMeter();
  // The raw side's browser: the Chromium child that its launch added (the worker's was launched before).
  for (const pid of CpuMeter.children(/chrom/i)) if (!browsersBefore.has(pid)) meter.label(pid, 'chromium (raw side\'s browser)');
  meter.start();
  /** CPU seconds per side over all rounds, per category. */
  const cpuBySide = { raw: new Map<string, number>(), platform: new Map<string, number>() };
  /** Processes started per side over all rounds, per kind (a renderer started is CPU spent: zygote fork + init). */
  const startedBySide = { raw: new Map<string, number>(), platform: new Map<string, number>() };
  const measured = async <T>(side: 'raw' | 'platform', f: () => Promise<T>): Promise<{ value: T; cpuS: number; machineS: number }> => {
    const seenBefore = new Set(meter.pidsSeen);
    const machineBefore = machineBusySeconds();
    const before: CpuSnapshot = meter.snapshot();
    const value = await f();
    // What a side set going finishes after its last job (the platform prepares the next context and sandbox child,
    // Chromium tears a context down) is that side's work: the end is taken once the tree has gone quiet (under
    // 10 % of a core over 150 ms; at most 3 s), outside the timed part.
    let end = meter.snapshot();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 150));
      const now = meter.snapshot();
      const quiet = cpuSpent(end, now).total < 0.015;
      end = now;
      if (quiet) break;
    }
    const { total, parts } = cpuSpent(before, end);
    const machineS = machineBusySeconds() - machineBefore;
    // The platform side's parts each round: what moves between rounds.
    if (side === 'platform') process.stdout.write(`  platform CPU per job by process: ${[...parts].filter(([, v]) => v / N >= 0.002).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k.replace(/ \(this process[^)]*\)/, '')} ${(v / N * 1000).toFixed(0)}`).join(', ')}\n`);
    for (const [k, v] of parts) cpuBySide[side].set(k, (cpuBySide[side].get(k) ?? 0) + v);
    for (const k of meter.pidsSeen) {
      if (seenBefore.has(k)) continue;
      const kind = k.slice(0, k.lastIndexOf('|'));
      startedBySide[side].set(kind, (startedBySide[side].get(kind) ?? 0) + 1);
    }
    return { value, cpuS: total, machineS };
  };

  const rawRun = async (n: number): Promise<number> => {
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      const context = await browser.newContext({ acceptDownloads: true, serviceWorkers: 'block' });
      await context.addCookies([cookie]);
      const page = await context.newPage();
      await page.goto(target);
      await page.screenshot();
      await context.close();
    }
    return performance.now() - t;
  };
  const platformRun = async (n: number): Promise<{ ms: number; last: ResultMessage }> => {
    const jobs = Array.from({ length: n }, () => signedJob(orgId, SCRIPT, { metadata: { url: target } }));
    const t = performance.now();
    const all = new Promise<void>((resolve) => {
      onResult = () => { if (jobs.every((j) => results.has(j.jobId))) resolve(); };
    });
    for (const j of jobs) await push(redis, orgId, j);
    await all;
    const ms = performance.now() - t;
    onResult = undefined;
    for (const j of jobs) {
      const r = results.get(j.jobId)!;
      if (r.status !== 'done') throw new Error(`job ${j.jobId} ended ${r.status}: ${JSON.stringify(r.error)}`);
    }
    return { ms, last: results.get(jobs.at(-1)!.jobId)! };
  };

  try {
    // Warm-up: the first context, the first sandbox and the portal's first page are not what is compared.
    await rawRun(2);
    await platformRun(2);
    spans.reset();
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    let last: ResultMessage | undefined;
    for (let r = 1; r <= ROUNDS; r++) {
      const loadBefore = load();
      const raw1 = await measured('raw', () => rawRun(N));
      const platform = await measured('platform', () => platformRun(N));
      const raw2 = await measured('raw', () => rawRun(N));
      last = platform.value.last;
      const raw = (raw1.value + raw2.value) / 2;
      const ratio = platform.value.ms / raw;
      ratios.push(ratio);
      const rawCpu = (raw1.cpuS + raw2.cpuS) / 2 / N;
      const platformCpu = platform.cpuS / N;
      cpuRatios.push(platformCpu / rawCpu);
      process.stdout.write(`round ${r}: raw ${(N / raw * 1000).toFixed(2)} jobs/s (${(raw / N).toFixed(0)} ms/job; runs ${(raw1.value / N).toFixed(0)} and ${(raw2.value / N).toFixed(0)}), `
        + `platform ${(N / platform.value.ms * 1000).toFixed(2)} jobs/s (${(platform.value.ms / N).toFixed(0)} ms/job) → platform/raw ${ratio.toFixed(2)}  [load ${loadBefore} → ${load()}]\n`
        + `         CPU per job: raw ${(rawCpu * 1000).toFixed(0)} ms (runs ${(raw1.cpuS / N * 1000).toFixed(0)} and ${(raw2.cpuS / N * 1000).toFixed(0)}), platform ${(platformCpu * 1000).toFixed(0)} ms → platform/raw ${(platformCpu / rawCpu).toFixed(2)}\n`
        + `         machine CPU per job (/proc/stat, kernel threads included; anything else running counts too): raw ${((raw1.machineS + raw2.machineS) / 2 / N * 1000).toFixed(0)} ms, platform ${(platform.machineS / N * 1000).toFixed(0)} ms\n`);
    }
    process.stdout.write(`platform/raw: median ${median(ratios).toFixed(2)}, best ${Math.min(...ratios).toFixed(2)}, worst ${Math.max(...ratios).toFixed(2)}\n`);
    process.stdout.write(`CPU per job platform/raw: median ${median(cpuRatios).toFixed(2)}, best ${Math.min(...cpuRatios).toFixed(2)}, worst ${Math.max(...cpuRatios).toFixed(2)}\n`);
    for (const side of ['raw', 'platform'] as const) {
      const jobs = N * ROUNDS * (side === 'raw' ? 2 : 1);
      const parts = [...cpuBySide[side]].filter(([, v]) => Math.abs(v) >= 0.0005).sort((a, b) => b[1] - a[1]);
      const total = parts.reduce((a, [, v]) => a + v, 0);
      process.stdout.write(`CPU per job, ${side} (${jobs} jobs): ${(total / jobs * 1000).toFixed(0)} ms = ${parts.map(([k, v]) => `${k} ${(v / jobs * 1000).toFixed(0)}`).join(', ')}\n`);
      process.stdout.write(`  processes started per job, ${side}: ${[...startedBySide[side]].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / jobs).toFixed(2)}`).join(', ')}\n`);
    }

    // Profile: the median duration of each span of the job attempts measured above.
    const byName = new Map<string, number[]>();
    for (const s of spans.getFinishedSpans() as ReadableSpan[]) {
      const ms = s.duration[0] * 1000 + s.duration[1] / 1e6;
      byName.set(s.name, [...(byName.get(s.name) ?? []), ms]);
    }
    process.stdout.write(`profile (median per job attempt, ms): ${['job.take', 'job', 'verify', 'session', 'run', 'upload', 'publish']
      .filter((n) => byName.has(n)).map((n) => `${n} ${median(byName.get(n)!).toFixed(0)}`).join(', ')}\n`);
    if (last?.files.log) {
      const loc = parseS3Uri(last.files.log)!;
      const text = (await store.get(loc.bucket, loc.key))?.toString('utf8') ?? '';
      let prev: number | undefined;
      process.stdout.write('last job\'s execution.log (ms since the line before):\n');
      for (const line of text.split('\n').filter(Boolean)) {
        const at = Date.parse(line.slice(0, 24));
        process.stdout.write(`  ${prev === undefined ? '     ' : String(at - prev).padStart(5)}  ${line.slice(25, 150)}\n`);
        prev = at;
      }
    }
  } finally {
    meter.stop();
    await browser.close();
    await worker.stop({ graceMs: 5000 });
    await tracing.shutdown();
    sub.disconnect();
    redis.disconnect();
    store.client.destroy();
    await Promise.all([redisServer.stop(), s3.close(), portal.close()]);
    logs.remove();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
