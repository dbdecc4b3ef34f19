/**
 * The provider catalogue as workers see it (ARCHITECTURE.md "Redis keys"): `sri:provider:{providerName}`, a hash
 * the control plane writes from PostgreSQL at start and on every change (src/control-plane/providers/catalogue.ts),
 * and workers only read (their Redis user: `%R~sri:provider:*`). A worker takes a job's hosts from here when the job
 * names no `allowedHosts`, and narrows the job's own list to these hosts when it does (docs/security.md "Egress").
 *
 * Fields: `id`, `name`, `displayName`, `allowedHosts` (JSON array of allowedHosts entries, src/shared/host-match.ts),
 * `pacing` (JSON, src/shared/provider-pacing.ts: spacing, requests per minute, maintenance windows, breaker),
 * `publishedAt` (epoch ms). An entry is replaced as a whole (DEL + HSET in one MULTI), so a reader never sees half of
 * an old and half of a new one.
 */
import { z } from 'zod';
import type { ChainableCommander, Redis } from 'ioredis';
import { keys } from './keys.ts';
import { ProviderPacing } from './provider-pacing.ts';
import { Hostname, Id, ProviderName } from './schemas.ts';

export const CatalogueProvider = z.object({
  id: Id,
  name: ProviderName,
  displayName: z.string().max(200),
  allowedHosts: z.array(Hostname).max(100),
  pacing: ProviderPacing.optional(),
});
export type CatalogueProvider = z.infer<typeof CatalogueProvider>;

/** Queues the replacement of `provider`'s entry on `multi` (validated first: a bad row is never published). */
export function queueCatalogueEntry(multi: ChainableCommander, provider: CatalogueProvider, now = Date.now()): void {
  const p = CatalogueProvider.parse(provider);
  const key = keys.provider(p.name);
  multi.del(key).hset(key, {
    id: p.id, name: p.name, displayName: p.displayName, allowedHosts: JSON.stringify(p.allowedHosts),
    pacing: JSON.stringify(p.pacing ?? {}), publishedAt: String(now),
  });
}

/** What a worker finds for a provider: its hosts, no entry, or an entry it cannot use (and why). */
export type CatalogueHosts =
  | { readonly found: true; readonly allowedHosts: readonly string[] }
  | { readonly found: false; readonly problem?: string };

/** The provider's allowedHosts from the catalogue (one HGET). Redis errors are thrown. */
export async function readCatalogueHosts(redis: Redis, providerName: string): Promise<CatalogueHosts> {
  const raw = await redis.hget(keys.provider(providerName), 'allowedHosts');
  if (raw === null) return { found: false };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { found: false, problem: 'its allowedHosts field is not JSON' };
  }
  const parsed = CatalogueProvider.shape.allowedHosts.safeParse(value);
  return parsed.success ? { found: true, allowedHosts: parsed.data } : { found: false, problem: 'its allowedHosts field is not a list of host entries' };
}

/** What a worker finds of a provider's pacing: none (no entry, or an entry from before pacing), or an entry it cannot use. */
export type CataloguePacing =
  | { readonly found: true; readonly pacing: ProviderPacing }
  | { readonly found: false; readonly problem?: string };

/** The provider's pacing from the catalogue (one HGET); an entry without the field paces nothing. Redis errors are thrown. */
export async function readCataloguePacing(redis: Redis, providerName: string): Promise<CataloguePacing> {
  const raw = await redis.hget(keys.provider(providerName), 'pacing');
  if (raw === null) return { found: true, pacing: {} };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { found: false, problem: 'its pacing field is not JSON' };
  }
  const parsed = ProviderPacing.safeParse(value);
  return parsed.success ? { found: true, pacing: parsed.data } : { found: false, problem: 'its pacing field is not a pacing of docs/providers.md' };
}
