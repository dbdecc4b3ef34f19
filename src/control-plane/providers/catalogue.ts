/**
 * Publishes the provider catalogue of PostgreSQL to Redis (`sri:provider:{providerName}`, src/shared/provider-catalogue.ts),
 * where workers — which never reach the database — take a job's hosts from it: a job without allowedHosts reaches
 * its provider's hosts, a job with them at most those (docs/security.md "Egress"). The API publishes at every start
 * (after its migrations); whoever changes the providers table calls registerProvider, which publishes at once.
 * Entries of providers no longer in the table are deleted, so a removed provider (migration 0005 removes `demo` where
 * `sri up` does not run it) leaves no hosts behind for workers to grant. A provider's session check and login flow
 * go with its entry, the login flow compiled and signed here (session-health.ts; docs/sessions.md).
 */
import type { Redis } from 'ioredis';
import { keys } from '../../shared/keys.ts';
import { queueCatalogueEntry } from '../../shared/provider-catalogue.ts';
import { scanKeys } from '../../shared/redis.ts';
import type { Database } from '../db/index.ts';
import { listProviders, upsertProvider, type Provider } from '../db/queries/providers.ts';
import { providerSessionHealth } from './session-health.ts';

export interface PublishedCatalogue {
  /** Names of the providers written. */
  readonly published: readonly string[];
  /** Names of the entries deleted because their provider is gone. */
  readonly removed: readonly string[];
}

/**
 * @param scriptSigningSecret signs providers' login flows (SCRIPT_SIGNING_SECRET); without it a provider that has
 * one cannot be published (the call throws).
 */
export async function publishProviderCatalogue(db: Database, redis: Redis, scriptSigningSecret?: string): Promise<PublishedCatalogue> {
  const providers = await db.asSystem(listProviders);
  // Compiled and checked first: a provider whose login flow does not compile is never half published.
  // The entry carries the checked session check and the compiled, signed login flow, not the stored steps.
  const entries = providers.map(({ sessionCheck: _check, loginSteps: _steps, ...p }) => ({ ...p, ...providerSessionHealth({ ...p, sessionCheck: _check, loginSteps: _steps }, scriptSigningSecret) }));
  // One MULTI per entry: each replaces one key (one hash slot, also on Redis Cluster).
  await Promise.all(entries.map(async (p) => {
    const multi = redis.multi();
    queueCatalogueEntry(multi, p);
    const replies = await multi.exec();
    const failed = replies?.find(([err]) => err);
    if (!replies || failed) throw new Error(`publishing provider ${p.name} to Redis failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
  }));
  const names = new Set(providers.map((p) => p.name));
  const prefix = keys.provider('');
  const stale = (await scanKeys(redis, keys.providerPattern)).filter((k) => !names.has(k.slice(prefix.length)));
  if (stale.length) await redis.del(...stale);
  return { published: [...names], removed: stale.map((k) => k.slice(prefix.length)) };
}

/** Adds or replaces a provider in PostgreSQL, then publishes the catalogue (the change reaches workers at once). */
export async function registerProvider(db: Database, redis: Redis, provider: Provider, scriptSigningSecret?: string): Promise<PublishedCatalogue> {
  // Checked before the row is written, so a provider that could not be published never reaches the table.
  providerSessionHealth(provider, scriptSigningSecret);
  await db.asSystem((tx) => upsertProvider(tx, provider));
  return publishProviderCatalogue(db, redis, scriptSigningSecret);
}
