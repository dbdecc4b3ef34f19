/**
 * Redis connections for both planes. Reconnection backs off (50 ms doubling, capped at 2 s) forever: a Redis
 * restart must never take a process down. Blocking consumers need `maxRetriesPerRequest: null` and a connection of
 * their own.
 */
import type { ConnectionOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

/** TLS material of this process (startRedisTls in tls-watch.ts); a live object, so reconnects see rotations. */
let processTls: ConnectionOptions | undefined;

/**
 * Registers the client certificate and CA every `rediss://` connection of this process presents from now on; pass
 * undefined to unregister (with `ifCurrent`, only when that object is still the registered one).
 */
export function useRedisTls(tls: ConnectionOptions | undefined, ifCurrent?: ConnectionOptions): void {
  if (ifCurrent === undefined || processTls === ifCurrent) processTls = tls;
}

export function createRedis(url: string, opts: RedisOptions & { name?: string } = {}): Redis {
  return new Redis(url, {
    // The same object, not a copy: ioredis reads its fields at every (re)connect (docs/security.md).
    ...(processTls && url.startsWith('rediss://') ? { tls: processTls } : {}),
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    connectionName: opts.name,
    lazyConnect: false,
    ...opts,
  });
}

/** Scans keys matching `pattern` without blocking Redis (never KEYS). */
export async function scanKeys(redis: Redis, pattern: string, count = 500): Promise<string[]> {
  const found = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', count);
    cursor = next;
    for (const k of batch) found.add(k);
  } while (cursor !== '0');
  return [...found];
}
