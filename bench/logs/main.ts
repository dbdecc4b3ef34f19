/**
 * `npm run bench:logs [-- --lines N] [-- --redis-lines N] [-- --slow-seconds S]`
 *
 * Lines per second through the live-log batcher (src/execution-plane/logs/batcher.ts) with the worker's default
 * settings (500 lines / 64 KiB per batch, 250 ms interval, 8 pending batches):
 *   1. into the in-memory sink (the batcher's own cost: the producer yields to the event loop every 2,000 lines,
 *      as a job's code does between awaits, so the sink gets to run);
 *   2. into Redis (one XADD + EXPIRE pipeline per batch) on a redis-server this script starts and stops: the rate
 *      the Redis sink sustains (the producer waits whenever 4 batches are pending, so nothing is dropped), and an
 *      unpaced producer's rate with its drop rate;
 *   3. into a deliberately slow sink (sleeps 10 ms per batch, so it takes at most ~50,000 lines/s): producers
 *      paced at fixed rates, with the share of lines dropped. The bar: more than 10,000 lines/s with under 1 %
 *      dropped. Rates above the sink's capacity show the drops being counted.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setImmediate as yieldNow, setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { LogBatcher, MemoryLogSink, type LogSink } from '../../src/execution-plane/logs/batcher.ts';
import { RedisLogSink } from '../../src/execution-plane/logs/redis-sink.ts';
import { startEmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { freePort } from '../../src/embedded/ports.ts';

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '2000000' },
    'redis-lines': { type: 'string', default: '300000' },
    'slow-seconds': { type: 'string', default: '3' },
  },
});

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const pct = (part: number, whole: number) => `${(whole ? (100 * part) / whole : 0).toFixed(2)} %`;

/** Realistic message lengths (40–120 characters); the caller's message strings are not the batcher's cost. */
const MESSAGES = [
  'navigate https://portal.example/invoices?page=2 → 200 in 184 ms',
  'click a.pdf',
  'console: [info] table rendered with 50 rows (invoice list, supplier 0992345678001)',
  'screenshot-3.png saved (1280×720, 148 KiB)',
  'fill #password with the secret portalPassword',
  'waitFor tr.invoice-row: visible after 92 ms',
  'download factura-001-002-000004711.pdf (88 KiB)',
  'extract invoices: 50 rows × 6 fields',
];

function machine() {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try { cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel; } catch { /* not Linux */ }
  let redis = 'unknown';
  try { redis = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? redis; } catch { /* unknown */ }
  return `${cpus().length} CPU (${cpuModel}), ${Math.round(totalmem() / 2 ** 30 * 10) / 10} GiB, node ${process.version}, redis ${redis}, ${new Date().toISOString()}`;
}

interface Run { lines: number; seconds: number; written: number; droppedLines: number; droppedBatches: number }

/** Appends `total` lines as fast as possible, yielding every `chunk` lines; `waitWhilePending` paces on the sink. */
async function blast(b: LogBatcher, total: number, chunk: number, waitWhilePending?: number): Promise<Run> {
  const started = process.hrtime.bigint();
  let i = 0;
  while (i < total) {
    const end = Math.min(total, i + chunk);
    for (; i < end; i++) b.append({ ts: Date.now(), level: 'info', stream: 'script', message: MESSAGES[i & 7]! });
    if (waitWhilePending !== undefined) while (b.pendingBatches >= waitWhilePending) await yieldNow();
    else await yieldNow();
  }
  const s = await b.close({ timeoutMs: 60_000 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { lines: total, seconds, ...s };
}

/**
 * Appends at `rate` lines/s for `seconds` on a 1 ms tick. After an event-loop stall (a loaded machine) it catches up
 * by at most 10 ms worth of lines, as a job stalled with its event loop would not have logged meanwhile either;
 * the rate reported is the one achieved.
 */
async function paced(b: LogBatcher, rate: number, seconds: number): Promise<Run> {
  const started = Date.now();
  const until = started + seconds * 1000;
  const burst = Math.max(1, Math.round(rate / 100));
  let appended = 0;
  let credit = 0;
  let last = started;
  while (Date.now() < until) {
    const now = Date.now();
    credit = Math.min(credit + ((now - last) / 1000) * rate, burst);
    last = now;
    for (; credit >= 1; credit--) b.append({ ts: now, level: 'info', stream: 'console', message: MESSAGES[appended++ & 7]! });
    await sleep(1);
  }
  const s = await b.close({ timeoutMs: 60_000 });
  return { lines: appended, seconds: (Date.now() - started) / 1000, ...s };
}

function report(name: string, r: Run): void {
  const offered = r.lines / r.seconds;
  console.log(`${name.padEnd(62)}${fmt(offered).padStart(12)} lines/s   dropped ${pct(r.droppedLines, r.lines).padStart(8)} (${fmt(r.droppedLines)} lines in ${fmt(r.droppedBatches)} batches)`);
}

async function main(): Promise<void> {
  const lines = Number(values.lines);
  const redisLines = Number(values['redis-lines']);
  const slowSeconds = Number(values['slow-seconds']);
  console.log(`machine: ${machine()}`);
  console.log('batcher settings: the worker defaults (500 lines / 64 KiB per batch, 250 ms interval, 8 pending batches)\n');

  // 1. In-memory sink, best of three: one that only counts (the batcher's own cost), one that keeps every line
  //    (adds the garbage collector's cost of millions of live objects).
  for (const keep of [false, true]) {
    let best: Run | undefined;
    for (let k = 0; k < 3; k++) {
      const sink = new MemoryLogSink({ keep });
      const r = await blast(new LogBatcher({ jobId: 'bench', sink }), lines, 2000);
      if (sink.count !== r.written) throw new Error('memory sink lost lines');
      if (!best || r.seconds < best.seconds) best = r;
    }
    report(`memory sink, ${keep ? 'keeping' : 'counting'} lines (${fmt(lines)}, best of 3)`, best!);
  }

  // 2. Redis.
  const dir = mkdtempSync(join(tmpdir(), 'sri-bench-logs-'));
  const server = await startEmbeddedRedis({ dir, port: await freePort() });
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  try {
    const sink = new RedisLogSink(redis, { maxBatches: 1000, ttlSeconds: 600 });
    // The embedded default (`sri up`) runs redis-server with appendfsync always: one fsync per batch.
    for (const fsync of ['always', 'everysec']) {
      await redis.config('SET', 'appendfsync', fsync);
      report(`redis (appendfsync ${fsync}), producer waits on sink (${fmt(redisLines)})`, await blast(new LogBatcher({ jobId: `bench-redis-paced-${fsync}`, sink }), redisLines, 500, 4));
      report(`redis (appendfsync ${fsync}), unpaced producer (${fmt(redisLines)})`, await blast(new LogBatcher({ jobId: `bench-redis-unpaced-${fsync}`, sink }), redisLines, 2000));
    }
  } finally {
    redis.disconnect();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  // 3. A sink that sleeps 10 ms per batch: it takes at most ~500 lines / 10 ms ≈ 50,000 lines/s (less when
  //    timers run late on a loaded machine).
  const slowSink: LogSink = { write: () => sleep(10) };
  console.log('');
  for (const rate of [10_000, 20_000, 40_000, 200_000]) {
    report(`slow sink (10 ms per batch), paced ${fmt(rate)}/s, ${slowSeconds} s`, await paced(new LogBatcher({ jobId: 'bench-slow', sink: slowSink }), rate, slowSeconds));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
