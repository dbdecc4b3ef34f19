/**
 * `npm run bench:queue [-- --jobs N] [-- --rounds R] [-- --long [--long-minutes M]]`
 *
 * Empty-job throughput (enqueue → take → complete, no browser) of our JobQueue, BullMQ and a raw LPUSH/RPOP list,
 * each at concurrency 1 and 50, on one redis-server this script starts (random port, temporary directory,
 * append-only file on as in `sri up`) and stops. Prints jobs/s and the ratios ours/BullMQ and ours/raw.
 * `--long` runs only the long-lease case instead: one job held for 10 minutes with renewals must run once.
 * `--profile` adds, per case, what one job costs the Redis server and the client, and our take and complete apart.
 * Other flags: `--concurrency 1,50`, `--orgs N` (our jobs spread over N organisations), `--only ours,bullmq,raw`,
 * `--appendfsync everysec` (the embedded default is always), `--redis single,cluster` (default single): `cluster`
 * runs every case again on a Redis Cluster of three masters this script starts on loopback ports and stops
 * (ours through REDIS_CLUSTER_NODES' Cluster client and key names, BullMQ with a `{bench}` prefix). `--profile`
 * reads one server's INFO, so it profiles the single-node cases only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { startEmbeddedRedisCluster, type EmbeddedRedisCluster } from '../../src/embedded/redis-cluster.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { runBullmq, runRaw } from './baselines.ts';
import { runLongLease } from './long.ts';
import { consumeRate, describeMachine, endToEnd, enqueueRate, fmt, type CaseResult } from './measure.ts';
import { runOurs } from './ours.ts';
import { profileHooks, profileOursSplit, type ConsumeHooks } from './profile.ts';
import { flushBench, type BenchRedis } from './target.ts';

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
    redis: { type: 'string', default: 'single' },
  },
});

type Runner = (b: BenchRedis, jobs: number, concurrency: number, hooks?: ConsumeHooks) => Promise<CaseResult>;

async function main(): Promise<void> {
  const jobs = Number(values.jobs);
  const orgs = Number(values.orgs);
  const levels = values.concurrency.split(',').map(Number);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds takes a positive integer');
  if (!Number.isInteger(jobs) || jobs < 1 || !Number.isInteger(orgs) || orgs < 1 || levels.some((c) => !Number.isInteger(c) || c < 1)) {
    throw new Error('--jobs, --orgs and --concurrency take positive integers (--concurrency 1,50)');
  }
  const kinds = values.redis.split(',') as BenchRedis['kind'][];
  if (!kinds.length || kinds.some((k) => k !== 'single' && k !== 'cluster')) throw new Error('--redis takes single, cluster or single,cluster');
  const dir = mkdtempSync(join(tmpdir(), 'sri-bench-redis-'));
  if (!['always', 'everysec', 'no'].includes(values.appendfsync)) throw new Error('--appendfsync takes always, everysec or no');
  // The embedded default is appendfsync always; the flag shows what that durability costs.
  const server = await startEmbeddedRedis({ dir, port: await freePort(), extraArgs: ['--appendfsync', values.appendfsync] });
  let cluster: EmbeddedRedisCluster | undefined;
  const machine = describeMachine();
  console.log(`machine: ${machine.nproc} CPU (${machine.cpuModel}), ${machine.memoryGiB} GiB, node ${machine.node}, redis ${machine.redis}, bullmq ${machine.bullmq}, ${machine.date}`);
  console.log(`redis-server pid ${server.pid} at ${server.url} (appendonly yes, appendfsync ${values.appendfsync}${values.appendfsync === 'always' ? ', the embedded default' : ''}; dir ${dir})`);
  try {
    if (values.long) {
      await runLongLease(server.url, Number(values['long-minutes']) * 60_000);
      return;
    }
    const targets: BenchRedis[] = [];
    if (kinds.includes('single')) targets.push({ kind: 'single', url: server.url });
    if (kinds.includes('cluster')) {
      cluster = await startEmbeddedRedisCluster({ dir: join(dir, 'cluster'), extraArgs: ['--appendfsync', values.appendfsync] });
      console.log(`redis cluster of ${cluster.nodes.length} masters at ${cluster.nodesText} (pids ${cluster.servers.map((x) => x.pid).join(', ')}; same append-only settings)`);
      targets.push({ kind: 'cluster', url: `redis://${cluster.nodesText.split(',')[0]}`, clusterNodes: cluster.nodes });
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
    console.log(`${'case'.padEnd(30)}${'end to end/s'.padStart(14)}${'consume/s'.padStart(12)}${'enqueue/s'.padStart(12)}`);
    const label = (name: string, t: BenchRedis, c: number | string) => `${name}${t.kind === 'cluster' ? ' cluster' : ''} c=${c}`;
    for (let round = 1; round <= rounds; round++) {
      for (const t of targets) {
        for (const c of levels) {
          for (const [name, run] of cases) {
            if (values.only && !values.only.split(',').includes(name)) continue;
            await flushBench(t);
            const hooks = values.profile && t.kind === 'single' ? profileHooks(server.url, `${name} c=${c}`, jobs) : undefined;
            const r = await run(t, jobs, c, hooks).finally(() => hooks?.close());
            runs.set(`${name}@${t.kind}@${c}`, [...(runs.get(`${name}@${t.kind}@${c}`) ?? []), r]);
            console.log(`${`${label(name, t, c)} (round ${round})`.padEnd(30)}${fmt(endToEnd(r)).padStart(14)}${fmt(consumeRate(r)).padStart(12)}${fmt(enqueueRate(r)).padStart(12)}`);
          }
        }
      }
    }
    const median = (rs: CaseResult[]) => [...rs].sort((a, b) => endToEnd(a) - endToEnd(b))[Math.floor((rs.length - 1) / 2)]!;
    const results = new Map([...runs].map(([k, rs]) => [k, median(rs)] as const));
    if (rounds > 1) {
      console.log(`\nmedian of ${rounds} rounds (by end to end):`);
      for (const [k, r] of results) {
        const [name, kind, c] = k.split('@');
        console.log(`${label(name!, { kind: kind as BenchRedis['kind'], url: '' }, c!).padEnd(30)}${fmt(endToEnd(r)).padStart(14)}${fmt(consumeRate(r)).padStart(12)}${fmt(enqueueRate(r)).padStart(12)}`);
      }
    }
    if (values.profile && kinds.includes('single')) {
      for (const c of levels) {
        await flushBench({ kind: 'single', url: server.url });
        await profileOursSplit(server.url, jobs, c);
      }
    }
    console.log('');
    for (const t of targets) {
      for (const c of levels) {
        const ours = results.get(`ours@${t.kind}@${c}`);
        const bull = results.get(`bullmq@${t.kind}@${c}`);
        const raw = results.get(`raw@${t.kind}@${c}`);
        if (!ours) continue;
        const ratio = (a: CaseResult, b: CaseResult | undefined) => (b ? (endToEnd(a) / endToEnd(b)).toFixed(2) : 'n/a');
        const consumeRatio = (a: CaseResult, b: CaseResult | undefined) => (b ? (consumeRate(a) / consumeRate(b)).toFixed(2) : 'n/a');
        console.log(`${t.kind === 'cluster' ? 'cluster ' : ''}c=${c}: ours/BullMQ ${ratio(ours, bull)}, ours/raw ${ratio(ours, raw)} (end to end); consume alone ours/BullMQ ${consumeRatio(ours, bull)}`);
      }
    }
  } finally {
    await cluster?.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
