/**
 * The `demo` provider for tests. Since migration 0005 only `sri up` registers it (for its own portal's port); tests
 * that run flows of `demo` against portals on random loopback ports register it themselves, as it was seeded before:
 * 127.0.0.1 and localhost, any port. `seedDemoProvider` writes the row (before startApi, which publishes the
 * catalogue as it starts); `publishDemoProvider` writes the workers' catalogue entry in Redis, for worker tests
 * without an API — both through the production code paths.
 */
import type { Redis } from 'ioredis';
import type { Database } from '../../src/control-plane/db/index.ts';
import { upsertProvider } from '../../src/control-plane/db/queries/providers.ts';
import { demoProvider } from '../../src/embedded/demo-portal.ts';
import { queueCatalogueEntry } from '../../src/shared/provider-catalogue.ts';

/** The hosts the tests' demo provider allows: every port of 127.0.0.1 and localhost (test portals listen anywhere). */
export const TEST_DEMO_HOSTS: readonly string[] = ['127.0.0.1', 'localhost'];

/** Without the demo provider's session check and login flow (their URLs name `sri up`'s portal port). */
export function testDemoProvider(allowedHosts: readonly string[] = TEST_DEMO_HOSTS) {
  const { id, name, displayName } = demoProvider(0);
  return { id, name, displayName, allowedHosts: [...allowedHosts] };
}

export async function seedDemoProvider(db: Database, allowedHosts?: readonly string[]): Promise<void> {
  await db.asSystem((tx) => upsertProvider(tx, testDemoProvider(allowedHosts)));
}

/** Writes `sri:provider:{name}` as the control plane does (one MULTI), for workers started without an API. */
export async function publishProvider(redis: Redis, provider: { id: string; name: string; displayName: string; allowedHosts: readonly string[] }): Promise<void> {
  const multi = redis.multi();
  queueCatalogueEntry(multi, { ...provider, allowedHosts: [...provider.allowedHosts] });
  await multi.exec();
}

export async function publishDemoProvider(redis: Redis, allowedHosts?: readonly string[]): Promise<void> {
  await publishProvider(redis, testDemoProvider(allowedHosts));
}
