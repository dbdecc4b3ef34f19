/**
 * `sri workers`: the worker registry straight from Redis (REDIS_URL), like the queue's operator commands — every
 * worker with its state (ready, busy, reconnecting, draining, lost), last heartbeat, jobs in flight, CPU, memory
 * and counters. A table, or `--json` for everything (job ids of every organisation: whoever reaches Redis is an
 * operator of all of them). `--lost` lists only lost workers; `--exit-code` exits 2 when any is lost (for scripts).
 */
import type { Command } from 'commander';
import { listWorkers, type WorkerListing } from '../shared/worker-registry.ts';
import { table, withRedis, type CliIo } from './queue-ops.ts';

type Env = Record<string, string | undefined>;

const MiB = 1024 * 1024;

function ago(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return 'now';
  if (ms < 120_000) return `${Math.round(ms / 1000)}s ago`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)}m ago`;
  return `${Math.round(ms / 3_600_000)}h ago`;
}

function memory(w: WorkerListing): string {
  const m = w.resources?.memory;
  if (!m) return '-';
  return m.limitBytes ? `${Math.round(m.usedBytes / MiB)}/${Math.round(m.limitBytes / MiB)} MiB` : `${Math.round(m.usedBytes / MiB)} MiB`;
}

function cpu(w: WorkerListing): string {
  const c = w.resources?.cpu;
  if (!c || c.percent === null) return '-';
  return `${c.percent}%${c.limitCores ? ` of ${c.limitCores}` : ''}`;
}

export function workersTable(workers: readonly WorkerListing[]): string {
  return table(['WORKER', 'STATE', 'HEARTBEAT', 'JOBS', 'CPU', 'MEMORY', 'DONE/FAILED', 'SANDBOX', 'HOST', 'METRICS'], workers.map((w) => [
    w.workerId, w.state, ago(w.heartbeatAgeMs), `${w.jobsInFlight}/${w.maxJobs ?? '?'}`, cpu(w), memory(w),
    w.stats ? `${w.stats.successfulJobs}/${w.stats.failedJobs}` : '-', (w.sandbox ?? '-').replace(/^sandbox-/, ''),
    w.host ? `${w.host} (pid ${w.pid ?? '?'})` : '-', w.httpUrl ?? '-',
  ]));
}

export function addWorkersCommand(program: Command, env: Env, io: CliIo = { out: (t) => console.log(t) }): void {
  program.command('workers')
    .description('list workers: state (ready, busy, reconnecting, draining, lost), heartbeat, jobs, CPU, memory; talks to REDIS_URL')
    .option('--json', 'print JSON (every field, job ids included) instead of a table')
    .option('--lost', 'only workers whose heartbeat lapsed')
    .option('--exit-code', 'exit 2 when a listed worker is lost')
    .action(async (opts: { json?: boolean; lost?: boolean; exitCode?: boolean }) => {
      const list = await withRedis(env, (redis) => listWorkers(redis));
      const workers = opts.lost ? list.workers.filter((w) => w.state === 'lost') : list.workers;
      if (opts.json) io.out(JSON.stringify({ workers, counts: list.counts, unattributedLeases: list.unattributedLeases }, null, 2));
      else if (workers.length === 0) io.out(opts.lost ? 'no lost workers' : 'no workers (none has sent a heartbeat in the last 24 h)');
      else {
        io.out(workersTable(workers));
        const lostWithJobs = workers.filter((w) => w.state === 'lost' && w.jobsInFlight > 0);
        if (lostWithJobs.length) {
          io.out(`\n${lostWithJobs.map((w) => w.workerId).join(', ')}: lost with leased jobs; the queue runs them again once their leases expire (any live worker recovers them).`);
        }
      }
      if (opts.exitCode && workers.some((w) => w.state === 'lost')) process.exitCode = 2;
    });
}
