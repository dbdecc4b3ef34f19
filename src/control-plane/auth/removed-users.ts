/**
 * Members removed from their organisation, as every API process must learn at once (docs/security.md "Members").
 * The database says so too (users.removed_at), but an API process trusts its last look-up of a token's user for
 * AUTH_USER_CACHE_MS; this mark in Redis, checked whenever that cached look-up is used, closes the gap. It lives as
 * long as a token can (JWT_EXPIRES_IN_SECONDS): after that every token of the member has expired anyway, and the
 * database answers.
 */
import type { Redis } from 'ioredis';
import { keys } from '../../shared/keys.ts';

export interface RemovedUsers {
  isRemoved(userId: string): Promise<boolean>;
  /** Marks the user removed for `ttlSeconds` (the longest a token of theirs can live). */
  markRemoved(userId: string, ttlSeconds: number): Promise<void>;
}

export function redisRemovedUsers(redis: Redis): RemovedUsers {
  return {
    async isRemoved(userId) {
      return (await redis.exists(keys.authRemovedUser(userId))) === 1;
    },
    async markRemoved(userId, ttlSeconds) {
      await redis.set(keys.authRemovedUser(userId), String(Date.now()), 'EX', Math.max(1, ttlSeconds));
    },
  };
}
