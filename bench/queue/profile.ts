/**
 * `npm run bench:queue -- --profile`: where the time goes. For each queue, what one job costs the Redis server
 * (CPU, commands, script time) and the client (CPU), measured over the consume phase from INFO commandstats,
 * INFO cpu and process.cpuUsage; for our queue also take and complete apart (all takes first, then all
 * completions), so the cost of each Lua transition shows on its own.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { JobQueue, type Taken } from '../../src/shared/queue/job-queue.ts';
import { fmt, type CaseResult } from './measure.ts';
import { emptyJob, emptyResult } from './ours.ts';

interface Snapshot { at: number; serverCpuUs: number; clientCpuUs: number; calls: Map<string, { calls: number; usec: number }> }

export async function snapshot(redis: Redis): Promise<Snapshot> {
  const [stats, cpu] = await Promise.all([redis.info('commandstats'), redis.info('cpu')]);
  const calls = new Map<string, { calls: number; usec: number }>();
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) calls.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  const num = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  const c = process.cpuUsage();
  return { at: performance.now(), serverCpuUs: (num('used_cpu_user') + num('used_cpu_sys')) * 1e6, clientCpuUs: c.user + c.system, calls };
}

/** One line: per job, server CPU, client CPU, commands (inside scripts included), script calls and their time. */
export function describeDelta(label: string, a: Snapshot, b: Snapshot, jobs: number): string {
  let commands = 0;
  let scriptCalls = 0;
  let scriptUs = 0;
  const top: Array<[string, number]> = [];
  for (const [name, v] of b.calls) {
    const before = a.calls.get(name) ?? { calls: 0, usec: 0 };
    const d = v.calls - before.calls;
    if (d <= 0 || name === 'info') continue;
    if (name === 'evalsha' || name === 'eval') {
      scriptCalls += d;
      scriptUs += v.usec - before.usec;
    } else {
      commands += d;
      top.push([name, d]);
    }
  }
  top.sort((x, y) => y[1] - x[1]);
  const perJob = (n: number) => (n / jobs).toFixed(1);
  return `${label.padEnd(22)} ${fmt(jobs / ((b.at - a.at) / 1000)).padStart(7)} jobs/s | per job: server CPU ${perJob(b.serverCpuUs - a.serverCpuUs)} µs, ` +
    `client CPU ${perJob(b.clientCpuUs - a.clientCpuUs)} µs, ${perJob(scriptCalls)} script calls (${scriptCalls ? (scriptUs / scriptCalls).toFixed(1) : '0'} µs each), ` +
    `${perJob(commands)} commands [${top.slice(0, 8).map(([n, d]) => `${n} ${perJob(d)}`).join(', ')}]`;
}

export interface ConsumeHooks { beforeConsume(): Promise<void>; afterConsume(): Promise<void> }

/** Hooks that print the consume phase's costs of one case. */
export function profileHooks(redisUrl: string, label: string, jobs: number): ConsumeHooks & { close(): void } {
  const probe = new Redis(redisUrl);
  let a: Snapshot | undefined;
  return {
    beforeConsume: async () => { a = await snapshot(probe); },
    afterConsume: async () => { console.log(describeDelta(label, a!, await snapshot(probe), jobs)); },
    close: () => probe.disconnect(),
  };
}

/** Our queue with takes and completions in separate phases. */
export async function profileOursSplit(redisUrl: string, jobs: number, concurrency: number): Promise<CaseResult> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const probe = new Redis(redisUrl);
  try {
    const q = await JobQueue.connect(redis);
    for (let i = 0; i < jobs; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, jobs - i) }, () => q.enqueue('bench-org-0', emptyJob('bench-org-0'))));
    }
    const workerId = `bench-${randomUUID().slice(0, 8)}`;
    const taken: Taken[] = [];
    const s0 = await snapshot(probe);
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let t = await q.take(workerId); t; t = await q.take(workerId)) taken.push(t);
    }));
    const s1 = await snapshot(probe);
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let t = taken[next++]; t; t = taken[next++]) await q.complete(t, emptyResult(t.jobId ?? '', t.orgId, workerId, t.attempt));
    }));
    const s2 = await snapshot(probe);
    console.log(describeDelta(`ours take c=${concurrency}`, s0, s1, taken.length));
    console.log(describeDelta(`ours complete c=${concurrency}`, s1, s2, taken.length));
    return { jobs, enqueueMs: 0, consumeMs: s2.at - s0.at };
  } finally {
    redis.disconnect();
    probe.disconnect();
  }
}
