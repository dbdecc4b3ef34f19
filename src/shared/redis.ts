/**
 * Redis connections for both planes. Reconnection backs off (50 ms doubling, capped at 2 s) forever: a Redis
 * restart must never take a process down. Blocking consumers need `maxRetriesPerRequest: null` and a connection of
 * their own.
 *
 * With REDIS_CLUSTER_NODES the client is an ioredis Cluster over those startup nodes (REDIS_URL then gives only the
 * scheme, user and password every node shares), and this process switches to the Cluster key names (keys.ts): one
 * hash tag on every key that scripts, MULTIs and pipelines use together. The Cluster is handed out typed as
 * `Redis`: it implements every command the platform sends with the same signatures, `duplicate` included (made to
 * take per-connection options, as Redis's does); what differs — SCAN per master, ACL per node — is behind
 * `isCluster` here (scanKeys) and documented in docs/redis-keys.md "On Redis Cluster".
 */
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import { useClusterKeyNames } from './keys.ts';

export type { Redis };

/** One startup node of REDIS_CLUSTER_NODES. */
export interface ClusterAddress { readonly host: string; readonly port: number }

/** What to connect to: a URL, or a configuration with REDIS_URL and, for a cluster, REDIS_CLUSTER_NODES. */
export type RedisTarget = string | { readonly redisUrl: string; readonly redisClusterNodes?: readonly ClusterAddress[] | undefined };

/** TLS material of this process (startRedisTls in tls-watch.ts); a live object, so reconnects see rotations. */
let processTls: ConnectionOptions | undefined;

/**
 * Registers the client certificate and CA every `rediss://` connection of this process presents from now on; pass
 * undefined to unregister (with `ifCurrent`, only when that object is still the registered one).
 */
export function useRedisTls(tls: ConnectionOptions | undefined, ifCurrent?: ConnectionOptions): void {
  if (ifCurrent === undefined || processTls === ifCurrent) processTls = tls;
}

/**
 * `host:port,host:port,…` (IPv6 as `[addr]:port`) → addresses. Throws an Error naming the bad entry (the config
 * schema turns it into CONFIG_INVALID).
 */
export function parseClusterNodes(text: string): ClusterAddress[] {
  const nodes = text.split(',').map((s) => s.trim()).filter((s) => s !== '').map((entry) => {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(entry);
    const port = Number(m?.[3]);
    if (!m || !(port >= 1 && port <= 65535)) throw new Error(`entry ${JSON.stringify(entry)} is not host:port`);
    return { host: (m[1] ?? m[2])!, port };
  });
  if (!nodes.length) throw new Error('lists no node');
  return nodes;
}

/** Whether `redis` is a Redis Cluster client (ioredis sets `isCluster` on both kinds). */
export function isCluster(redis: Redis): boolean {
  return (redis as unknown as { isCluster?: unknown }).isCluster === true;
}

const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000);

export function createRedis(target: RedisTarget, opts: RedisOptions & { name?: string } = {}): Redis {
  const url = typeof target === 'string' ? target : target.redisUrl;
  const nodes = typeof target === 'string' ? undefined : target.redisClusterNodes;
  if (nodes?.length) return createCluster(url, nodes, opts);
  return new Redis(url, {
    // The same object, not a copy: ioredis reads its fields at every (re)connect (docs/security.md).
    ...(processTls && url.startsWith('rediss://') ? { tls: processTls } : {}),
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy,
    connectionName: opts.name,
    lazyConnect: false,
    ...opts,
  });
}

/**
 * A Cluster over `nodes`: REDIS_URL's user, password and TLS scheme apply to every node (a cluster has no
 * databases but 0). Commands issued while it (re)connects, or while a slot moves, wait and are sent then.
 */
function createCluster(url: string, nodes: readonly ClusterAddress[], opts: RedisOptions & { name?: string }): Redis {
  const u = new URL(url);
  // Connecting and reconnecting are the Cluster's own (per node ioredis reconnects as the Cluster says).
  const { name, lazyConnect = false, retryStrategy: clusterRetry = retryStrategy, ...rest } = opts;
  const redisOptions: RedisOptions = {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    // The same object, not a copy: ioredis reads its fields at every (re)connect (docs/security.md).
    ...(u.protocol === 'rediss:' ? { tls: processTls ?? {} } : {}),
    maxRetriesPerRequest: null,
    connectionName: name,
    ...rest,
  };
  const make = (o: RedisOptions): Redis => {
    const cluster = new Cluster(nodes.map((n): ClusterNode => ({ host: n.host, port: n.port })), {
      redisOptions: o,
      clusterRetryStrategy: clusterRetry,
      enableReadyCheck: true,
      lazyConnect,
      // A MOVED/ASK while slots migrate, or CLUSTERDOWN during a failover: try again for a while, not at once.
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 200,
    });
    // Redis's duplicate(options) takes per-connection options; Cluster's takes startup nodes first. Callers of
    // both kinds (subscribers, blocking readers) pass options, so the copy keeps the nodes and takes those.
    Object.defineProperty(cluster, 'duplicate', {
      value: (over: RedisOptions = {}) => make({ ...o, ...over }),
    });
    return cluster as unknown as Redis;
  };
  useClusterKeyNames(true);
  return make(redisOptions);
}

/**
 * The masters of a cluster client, once it knows them (a client still connecting knows none yet: it waits, as
 * commands sent meanwhile wait).
 */
export async function masters(redis: Redis): Promise<Redis[]> {
  const cluster = redis as unknown as Cluster;
  if (cluster.status !== 'ready') await new Promise<void>((resolve) => { cluster.once('ready', () => resolve()); });
  return cluster.nodes('master');
}

/**
 * Scans keys matching `pattern` without blocking Redis (never KEYS). On a cluster, every master is scanned
 * (SCAN sees only the node it is sent to).
 */
export async function scanKeys(redis: Redis, pattern: string, count = 500): Promise<string[]> {
  const found = new Set<string>();
  const nodes = isCluster(redis) ? await masters(redis) : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      for (const k of batch) found.add(k);
    } while (cursor !== '0');
  }
  return [...found];
}
