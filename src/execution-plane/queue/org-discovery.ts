import type { Redis } from 'ioredis';
import { keys, orgIdFromKey } from '../../shared/keys.ts';
import { scanKeys } from '../../shared/redis.ts';
import { Id } from '../../shared/schemas.ts';

/**
 * Organisations to poll: those the control plane registered (SMEMBERS sri:orgs) plus those whose queue a client
 * pushed to directly (SCAN sri:org:*:jobs — never KEYS, which blocks Redis). Ids that could not be a valid
 * organisation id are skipped: they would only build odd keys.
 */
export async function discoverOrgs(redis: Redis): Promise<string[]> {
  const [members, queueKeys] = await Promise.all([redis.smembers(keys.orgs), scanKeys(redis, keys.orgJobsPattern)]);
  const found = new Set<string>(members);
  for (const k of queueKeys) {
    const orgId = orgIdFromKey(k);
    if (orgId !== undefined) found.add(orgId);
  }
  return [...found].filter((o) => Id.safeParse(o).success).sort();
}
