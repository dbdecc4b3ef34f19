/**
 * Redis connections for both planes. Reconnection backs off (50 ms doubling, capped at 2 s) forever: a Redis
 * restart must never take a process down. Blocking consumers need `maxRetriesPerRequest: null` and a connection of
 * their own.
 */
import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

export function createRedis(url: string, opts: RedisOptions & { name?: string } = {}): Redis {
  return new Redis(url, {
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
