/**
 * The two kinds of Redis the queue runs on, for tests parametrised over both: one redis-server, or a Redis Cluster
 * of three masters (src/embedded/redis-cluster.ts: `redis-cli --cluster create`, cluster_state:ok). Each start
 * switches this process to that kind's key names (keys.ts), so the tests of one kind run after each other, never
 * interleaved (node:test runs the describes of a file in order).
 */
import { startEmbeddedRedisCluster, type EmbeddedRedisCluster } from '../../src/embedded/redis-cluster.ts';
import { useClusterKeyNames } from '../../src/shared/keys.ts';
import { createRedis, isCluster, masters, parseClusterNodes, type ClusterAddress, type Redis } from '../../src/shared/redis.ts';
import { startTestRedis, tempDir } from './services.ts';

export type RedisKind = 'single node' | 'cluster';
export const REDIS_KINDS: readonly RedisKind[] = ['single node', 'cluster'];

export interface TestRedisTarget {
  readonly kind: RedisKind;
  /** REDIS_URL (a cluster's: the first node; REDIS_CLUSTER_NODES names them all). */
  readonly url: string;
  /** REDIS_CLUSTER_NODES as text, for child processes; undefined on one node. */
  readonly clusterNodesText?: string;
  /** `{ redisUrl, redisClusterNodes }`, what createRedis takes (as a parsed config). */
  readonly target: { redisUrl: string; redisClusterNodes?: readonly ClusterAddress[] };
  /** Environment of a child process using this Redis. */
  readonly env: Record<string, string>;
  client(opts?: Parameters<typeof createRedis>[1]): Redis;
  /** FLUSHALL on every master. */
  flush(): Promise<void>;
  /** Every redis-server this target started, stopped (by PID); key names back to single-node. */
  stop(): Promise<void>;
}

/** FLUSHALL on one node, or on every master of a cluster. */
export async function flushAll(redis: Redis): Promise<void> {
  if (!isCluster(redis)) {
    await redis.flushall();
    return;
  }
  await Promise.all((await masters(redis)).map((n) => n.flushall()));
}

export async function startTestRedisTarget(kind: RedisKind): Promise<TestRedisTarget> {
  if (kind === 'single node') {
    const server = await startTestRedis();
    useClusterKeyNames(false);
    const target = { redisUrl: server.url };
    return {
      kind, url: server.url, target, env: { REDIS_URL: server.url },
      client: (opts) => createRedis(target, opts),
      flush: async () => {
        const c = createRedis(server.url);
        try { await c.flushall(); } finally { c.disconnect(); }
      },
      stop: () => server.stop(),
    };
  }
  const dir = tempDir('sri-redis-cluster-');
  let cluster: EmbeddedRedisCluster;
  try {
    cluster = await startEmbeddedRedisCluster({ dir: dir.path });
  } catch (e) {
    dir.remove();
    throw e;
  }
  const url = `redis://${cluster.nodes[0]!.host}:${cluster.nodes[0]!.port}`;
  const target = { redisUrl: url, redisClusterNodes: parseClusterNodes(cluster.nodesText) };
  useClusterKeyNames(true);
  return {
    kind, url, clusterNodesText: cluster.nodesText, target, env: { REDIS_URL: url, REDIS_CLUSTER_NODES: cluster.nodesText },
    client: (opts) => createRedis(target, opts),
    flush: async () => {
      const c = createRedis(target);
      try { await flushAll(c); } finally { c.disconnect(); }
    },
    stop: async () => {
      try {
        await cluster.stop();
      } finally {
        dir.remove();
        useClusterKeyNames(false);
      }
    },
  };
}
