/**
 * A Redis Cluster of `masters` redis-server children on 127.0.0.1 (no replicas), each with its append-only file
 * and cluster config file under `dir`: what the tests and the queue benchmark run the queue on to show it works on
 * Cluster (docs/redis-keys.md "On Redis Cluster"). Each server is bound to this process (embedded/bound-child.ts),
 * and `stop()` stops every one that started — also when the start itself fails half-way.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { boundToParent } from './bound-child.ts';
import { freePort, portInUse } from './ports.ts';
import { startEmbeddedRedis, type EmbeddedRedis } from './redis-server.ts';

export interface EmbeddedRedisCluster {
  readonly nodes: readonly { host: string; port: number }[];
  /** The nodes as REDIS_CLUSTER_NODES takes them: `127.0.0.1:p1,127.0.0.1:p2,…`. */
  readonly nodesText: string;
  readonly servers: readonly EmbeddedRedis[];
  stop(): Promise<void>;
}

/** The cluster bus listens on port + 10000: both must be free. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p + 10_000 <= 65_535 && !taken.has(p) && !taken.has(p + 10_000) && !(await portInUse(p + 10_000))) {
      taken.add(p);
      taken.add(p + 10_000);
      return p;
    }
  }
  throw new Error('no free port pair (p, p + 10000) for a cluster node');
}

function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(...boundToParent(file, args), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${file} ${args.slice(0, 2).join(' ')} exited ${code ?? signal}: ${out.trim().split('\n').slice(-4).join(' | ')}`));
    });
  });
}

async function clusterOk(port: number): Promise<boolean> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    const info = await c.cluster('INFO');
    return /^cluster_state:ok\r?$/m.test(info) && /^cluster_slots_assigned:16384\r?$/m.test(info);
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

export async function startEmbeddedRedisCluster(opts: { dir: string; masters?: number; extraArgs?: string[]; timeoutMs?: number }): Promise<EmbeddedRedisCluster> {
  const masters = opts.masters ?? 3;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const servers: EmbeddedRedis[] = [];
  const stop = async () => { await Promise.all(servers.map((s) => s.stop())); };
  try {
    const taken = new Set<number>();
    for (let i = 0; i < masters; i++) {
      const dir = join(opts.dir, `node-${i}`);
      const port = await clusterPort(taken);
      servers.push(await startEmbeddedRedis({
        dir, port, extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '5000', ...(opts.extraArgs ?? [])],
      }));
    }
    const nodes = servers.map((s) => ({ host: '127.0.0.1', port: s.port }));
    await run(process.env['REDIS_CLI_BIN'] ?? 'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], timeoutMs);
    const deadline = Date.now() + timeoutMs;
    for (const n of nodes) {
      while (!(await clusterOk(n.port))) {
        if (Date.now() > deadline) throw new Error(`cluster node ${n.host}:${n.port} did not reach cluster_state:ok within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { nodes, nodesText: nodes.map((n) => `${n.host}:${n.port}`).join(','), servers, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
