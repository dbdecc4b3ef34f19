/**
 * The Redis a benchmark case runs on: the one redis-server main.ts starts, or (`--redis cluster`) a Redis Cluster of
 * three masters on loopback ports (src/embedded/redis-cluster.ts), each node with the same append-only settings.
 * Our queue connects through createRedis as the platform does (REDIS_CLUSTER_NODES: Cluster client, Cluster key
 * names); BullMQ and the raw list through ioredis' Cluster, BullMQ with a hash-tagged prefix as its documentation
 * requires on Cluster.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { useClusterKeyNames } from '../../src/shared/keys.ts';
import { createRedis, masters, type ClusterAddress } from '../../src/shared/redis.ts';

export interface BenchRedis {
  readonly kind: 'single' | 'cluster';
  readonly url: string;
  readonly clusterNodes?: readonly ClusterAddress[];
}

/** A plain ioredis client (Redis or Cluster) for the baselines. */
export function rawClient(b: BenchRedis, opts: RedisOptions = {}): Redis {
  if (b.kind === 'single') return new Redis(b.url, opts);
  return new Cluster(b.clusterNodes!.map((n) => ({ ...n })), { redisOptions: opts }) as unknown as Redis;
}

/** Our queue's client, made as the platform makes it (and the process's key names set to match). */
export function queueClient(b: BenchRedis, opts: RedisOptions = {}): Redis {
  if (b.kind === 'single') {
    useClusterKeyNames(false);
    return new Redis(b.url, opts);
  }
  return createRedis({ redisUrl: b.url, redisClusterNodes: b.clusterNodes }, opts);
}

/** FLUSHALL on the server, or on every master. */
export async function flushBench(b: BenchRedis): Promise<void> {
  const c = rawClient(b);
  try {
    if (b.kind === 'single') await c.flushall();
    else await Promise.all((await masters(c)).map((n) => n.flushall()));
  } finally {
    c.disconnect();
  }
}
