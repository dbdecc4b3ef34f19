/**
 * `npm run bench:queue [-- --jobs N] [-- --rounds R] [-- --long [--long-minutes M]]`
 *
 * Empty-job throughput (enqueue → take → complete, no browser) of our JobQueue, BullMQ and a raw LPUSH/RPOP list,
 * each at concurrency 1 and 50, on one redis-server this script starts (random port, temporary directory,
 * append-only file on as in `sri up`) and stops. Prints jobs/s and the ratios ours/BullMQ and ours/raw.
 * `--long` runs only the long-lease case instead: one job held for 10 minutes with renewals must run once.
 * `--profile` adds, per case, what one job costs the Redis server and the client, and our take and complete apart.
 * Other flags: `--concurrency 1,50`, `--orgs N` (our jobs spread over N organisations), `--only ours,bullmq,raw`,
 * `--appendfsync everysec` (the embedded default is always).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { startEmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { runBullmq, runRaw } from './baselines.ts';
import { runLongLease } from './long.ts';
import { consumeRate, describeMachine, endToEnd, enqueueRate, fmt, type CaseResult } from './measure.ts';
import { runOurs } from './ours.ts';
import { profileHooks, profileOursSplit, type ConsumeHooks } from './profile.ts';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,50' },
    orgs: { type: 'string', default: '1' },
    only: { type: 'string' },
    long: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    appendfsync: { type: 'string', default: 'always' },
    'long-minutes': { type: 'string', default: '10' },
  },
});

type Runner = (redisUrl: string, jobs: number, concurrency: number, hooks?: ConsumeHooks) => Promise<CaseResult>;

async function main(): Promise<void> {
  const jobs = Number(values.jobs);
  const orgs = Number(values.orgs);
  const levels = values.concurrency.split(',').map(Number);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds takes a positive integer');
  if (!Number.isInteger(jobs) || jobs < 1 || !Number.isInteger(orgs) || orgs < 1 || levels.some((c) => !Number.isInteger(c) || c < 1)) {
    throw new Error('--jobs, --orgs and --concurrency take positive integers (--concurrency 1,50)');
  }
  const dir = mkdtempSync(join(tmpdir(), 'sri-bench-redis-'));
  if (!['always', 'everysec', 'no'].includes(values.appendfsync)) throw new Error('--appendfsync takes always, everysec or no');
  // The embedded default is appendfsync always; the flag shows what that durability costs.
  const server = await startEmbeddedRedis({ dir, port: await freePort(), extraArgs: ['--appendfsync', values.appendfsync] });
  const machine = describeMachine();
  console.log(`machine: ${machine.nproc} CPU (${machine.cpuModel}), ${machine.memoryGiB} GiB, node ${machine.node}, redis ${machine.redis}, bullmq ${machine.bullmq}, ${machine.date}`);
  console.log(`redis-server pid ${server.pid} at ${server.url} (appendonly yes, appendfsync ${values.appendfsync}${values.appendfsync === 'always' ? ', the embedded default' : ''}; dir ${dir})`);
  try {
    if (values.long) {
      await runLongLease(server.url, Number(values['long-minutes']) * 60_000);
      return;
    }
    const cases: Array<[string, Runner]> = [
      ['ours', (url, n, c, h) => runOurs(url, n, c, orgs, h)],
      ['bullmq', runBullmq],
      ['raw', runRaw],
    ];
    // Each round runs every case once, in the same order; the cases of a round share the machine's load of that
    // moment, and the reported figure of a case is its median round (the machine is shared: ±30 % between runs).
    const runs = new Map<string, CaseResult[]>();
    console.log(`\n${jobs} empty jobs per case${orgs > 1 ? `, ours over ${orgs} organisations` : ''}, ${rounds} round(s); end to end = jobs / (enqueue + consume time)\n`);
    console.log(`${'case'.padEnd(22)}${'end to end/s'.padStart(14)}${'consume/s'.padStart(12)}${'enqueue/s'.padStart(12)}`);
    for (let round = 1; round <= rounds; round++) {
      for (const c of levels) {
        for (const [name, run] of cases) {
          if (values.only && !values.only.split(',').includes(name)) continue;
          const flush = new Redis(server.url);
          await flush.flushall();
          flush.disconnect();
          const hooks = values.profile ? profileHooks(server.url, `${name} c=${c}`, jobs) : undefined;
          const r = await run(server.url, jobs, c, hooks).finally(() => hooks?.close());
          runs.set(`${name}@${c}`, [...(runs.get(`${name}@${c}`) ?? []), r]);
          console.log(`${`${name} c=${c} (round ${round})`.padEnd(22)}${fmt(endToEnd(r)).padStart(14)}${fmt(consumeRate(r)).padStart(12)}${fmt(enqueueRate(r)).padStart(12)}`);
        }
      }
    }
    const median = (rs: CaseResult[]) => [...rs].sort((a, b) => endToEnd(a) - endToEnd(b))[Math.floor((rs.length - 1) / 2)]!;
    const results = new Map([...runs].map(([k, rs]) => [k, median(rs)] as const));
    if (rounds > 1) {
      console.log(`\nmedian of ${rounds} rounds (by end to end):`);
      for (const [k, r] of results) {
        const [name, c] = k.split('@');
        console.log(`${`${name} c=${c}`.padEnd(22)}${fmt(endToEnd(r)).padStart(14)}${fmt(consumeRate(r)).padStart(12)}${fmt(enqueueRate(r)).padStart(12)}`);
      }
    }
    if (values.profile) {
      for (const c of levels) {
        const flush = new Redis(server.url);
        await flush.flushall();
        flush.disconnect();
        await profileOursSplit(server.url, jobs, c);
      }
    }
    console.log('');
    for (const c of levels) {
      const ours = results.get(`ours@${c}`);
      const bull = results.get(`bullmq@${c}`);
      const raw = results.get(`raw@${c}`);
      if (!ours) continue;
      const ratio = (a: CaseResult, b: CaseResult | undefined) => (b ? (endToEnd(a) / endToEnd(b)).toFixed(2) : 'n/a');
      const consumeRatio = (a: CaseResult, b: CaseResult | undefined) => (b ? (consumeRate(a) / consumeRate(b)).toFixed(2) : 'n/a');
      console.log(`c=${c}: ours/BullMQ ${ratio(ours, bull)}, ours/raw ${ratio(ours, raw)} (end to end); consume alone ours/BullMQ ${consumeRatio(ours, bull)}`);
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
