/** What every benchmark case measures and how it is reported. */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';

/**
 * Jobs per enqueue round trip, the same for every case (LPUSH pipeline, BullMQ addBulk, our enqueue calls in
 * flight together): the benchmark compares taking and completing, not producers' batching.
 */
export const ENQUEUE_BATCH = 500;

export interface CaseResult {
  readonly jobs: number;
  /** Wall time to enqueue every job (before any is consumed). */
  readonly enqueueMs: number;
  /** Wall time from the first take to the last completion. */
  readonly consumeMs: number;
}

/** End to end: every job enqueued, taken and completed, per second of total wall time. */
export const endToEnd = (r: CaseResult) => r.jobs / ((r.enqueueMs + r.consumeMs) / 1000);
export const consumeRate = (r: CaseResult) => r.jobs / (r.consumeMs / 1000);
export const enqueueRate = (r: CaseResult) => r.jobs / (r.enqueueMs / 1000);

export interface Machine {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly node: string;
  readonly redis: string;
  readonly bullmq: string;
  readonly date: string;
}

export function describeMachine(): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel;
  } catch {
    // not Linux: os.cpus() already named it
  }
  let redis = 'unknown';
  try {
    redis = /v=(\S+)/.exec(execFileSync(process.env['REDIS_SERVER_BIN'] ?? 'redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? redis;
  } catch {
    // reported as unknown
  }
  const bullmq = (JSON.parse(readFileSync(new URL('../../node_modules/bullmq/package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return {
    nproc: cpus().length, cpuModel, memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10, node: process.version,
    redis, bullmq, date: new Date().toISOString(),
  };
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
