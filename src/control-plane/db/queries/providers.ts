/**
 * The provider catalogue (global, seeded by migration; the embedded stack adds its demo provider) and the users'
 * provider connections. Whoever changes the catalogue publishes it to Redis afterwards (providers/catalogue.ts).
 */
import { ProviderPacing } from '../../../shared/provider-pacing.ts';
import type { Tx } from '../types.ts';

export interface Provider {
  id: string; name: string; displayName: string; allowedHosts: string[];
  /** How fast and when the platform uses the portal (docs/providers.md). Absent in an upsert: the row keeps its pacing (a new row: '{}', nothing paced). */
  pacing?: ProviderPacing;
  /** How workers tell a logged-out page (docs/sessions.md); checked (SessionCheck) when the catalogue is published. */
  sessionCheck?: unknown;
  /** The login flow's steps; compiled, hashed and signed when the catalogue is published. Absent in an upsert: none. */
  loginSteps?: unknown[] | undefined;
  /**
   * How many jobs of one portal account (organisation, user, this provider) may run at once, 1–100 (docs/queue.md
   * "One run at a time per portal account"). Absent in an upsert: the row keeps its value (a new row: 1).
   */
  maxConcurrentPerAccount?: number;
}

interface ProviderRow {
  id: string; name: string; display_name: string; allowed_hosts: string[]; pacing: unknown; max_concurrent_per_account: number;
  session_check: unknown; login_steps: unknown[] | null;
}
const COLUMNS = 'id, name, display_name, allowed_hosts, pacing, max_concurrent_per_account, session_check, login_steps';
// A row an older release or a hand-made UPDATE left unreadable paces nothing rather than hiding the provider.
const pacingOf = (raw: unknown): ProviderPacing => {
  const p = ProviderPacing.safeParse(raw ?? {});
  return p.success ? p.data : {};
};
const toProvider = (r: ProviderRow): StoredProvider => ({
  id: r.id, name: r.name, displayName: r.display_name, allowedHosts: r.allowed_hosts, pacing: pacingOf(r.pacing),
  maxConcurrentPerAccount: Number(r.max_concurrent_per_account),
  ...(r.session_check !== null && r.session_check !== undefined ? { sessionCheck: r.session_check } : {}),
  ...(r.login_steps !== null && r.login_steps !== undefined ? { loginSteps: r.login_steps } : {}),
});

/** A provider as read from the table: every setting has its value (defaults included). */
export type StoredProvider = Provider & { maxConcurrentPerAccount: number };

export async function listProviders(tx: Tx): Promise<StoredProvider[]> {
  return (await tx.query<ProviderRow>(`SELECT ${COLUMNS} FROM providers ORDER BY id`)).map(toProvider);
}

export async function findProvider(tx: Tx, id: string): Promise<StoredProvider | undefined> {
  const r = (await tx.query<ProviderRow>(`SELECT ${COLUMNS} FROM providers WHERE id = $1`, [id]))[0];
  return r && toProvider(r);
}

/**
 * Adds `p`, or replaces its name, display name, allowed hosts, session check and login flow (absent: none), and its
 * pacing and maxConcurrentPerAccount when `p` has them (run as the migrating role: sri_app may only read).
 */
export async function upsertProvider(tx: Tx, p: Provider): Promise<void> {
  await tx.query(`INSERT INTO providers (id, name, display_name, allowed_hosts, pacing, max_concurrent_per_account, session_check, login_steps)
    VALUES ($1, $2, $3, $4::jsonb, COALESCE($6::jsonb, '{}'::jsonb), COALESCE($5::integer, 1), $7::jsonb, $8::jsonb)
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, display_name = EXCLUDED.display_name, allowed_hosts = EXCLUDED.allowed_hosts, pacing = COALESCE($6::jsonb, providers.pacing),
      max_concurrent_per_account = COALESCE($5::integer, providers.max_concurrent_per_account),
      session_check = EXCLUDED.session_check, login_steps = EXCLUDED.login_steps`,
  [p.id, p.name, p.displayName, JSON.stringify(p.allowedHosts), p.maxConcurrentPerAccount ?? null, p.pacing === undefined ? null : JSON.stringify(ProviderPacing.parse(p.pacing)),
    p.sessionCheck === undefined ? null : JSON.stringify(p.sessionCheck), p.loginSteps === undefined ? null : JSON.stringify(p.loginSteps)]);
}

/** Replaces the provider's pacing; false when there is no such provider (migrating role, like upsertProvider). */
export async function setProviderPacing(tx: Tx, id: string, pacing: ProviderPacing): Promise<boolean> {
  const rows = await tx.query<{ id: string }>('UPDATE providers SET pacing = $2::jsonb WHERE id = $1 RETURNING id', [id, JSON.stringify(ProviderPacing.parse(pacing))]);
  return rows.length === 1;
}

/** Sets how many jobs of one portal account may run at once (docs/queue.md); false for an unknown provider. */
export async function setProviderAccountConcurrency(tx: Tx, id: string, maxConcurrentPerAccount: number): Promise<boolean> {
  const rows = await tx.query<{ id: string }>('UPDATE providers SET max_concurrent_per_account = $2 WHERE id = $1 RETURNING id', [id, maxConcurrentPerAccount]);
  return rows.length === 1;
}

export interface Connection {
  providerId: string; providerName: string; connectedAt: Date; expiresAt: Date;
  /** When a job found the portal logged out and could not sign in again (SESSION_EXPIRED); null while it works. */
  expiredAt: Date | null;
}

export async function upsertConnection(tx: Tx, c: { orgId: string; userId: string; providerId: string; connectedAt: Date; expiresAt: Date }): Promise<void> {
  await tx.query(`INSERT INTO provider_connections (org_id, user_id, provider_id, connected_at, expires_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (org_id, user_id, provider_id) DO UPDATE SET connected_at = EXCLUDED.connected_at, expires_at = EXCLUDED.expires_at, expired_at = NULL`,
  [c.orgId, c.userId, c.providerId, c.connectedAt.toISOString(), c.expiresAt.toISOString()]);
}

export async function deleteConnection(tx: Tx, userId: string, providerId: string): Promise<void> {
  await tx.query('DELETE FROM provider_connections WHERE user_id = $1 AND provider_id = $2', [userId, providerId]);
}

export async function listConnections(tx: Tx, userId: string): Promise<Connection[]> {
  const rows = await tx.query<{ provider_id: string; name: string; connected_at: Date; expires_at: Date; expired_at: Date | null }>(
    `SELECT c.provider_id, p.name, c.connected_at, c.expires_at, c.expired_at
       FROM provider_connections c JOIN providers p ON p.id = c.provider_id
      WHERE c.user_id = $1 AND c.expires_at > now() ORDER BY c.provider_id`, [userId]);
  return rows.map((r) => ({ providerId: r.provider_id, providerName: r.name, connectedAt: r.connected_at, expiresAt: r.expires_at, expiredAt: r.expired_at }));
}

/**
 * Marks the connection expired (a job of it ended SESSION_EXPIRED) or working again (`expired` false: a job of it
 * ended done). Returns whether the row changed (the results listener logs the change once, not per job).
 */
/**
 * Moves a connection's expiry to `expiresAt` when a job saved renewed cookies to its session and started its lifetime
 * again (docs/sessions.md); never earlier than it is. True when a row changed.
 */
export async function renewConnection(tx: Tx, c: { userId: string; providerId: string; expiresAt: Date }): Promise<boolean> {
  const rows = await tx.query('UPDATE provider_connections SET expires_at = $3 WHERE user_id = $1 AND provider_id = $2 AND expires_at < $3 RETURNING 1',
    [c.userId, c.providerId, c.expiresAt]);
  return rows.length > 0;
}

export async function markConnectionExpired(tx: Tx, c: { userId: string; providerId: string; expired: boolean }): Promise<boolean> {
  const rows = c.expired
    ? await tx.query('UPDATE provider_connections SET expired_at = now() WHERE user_id = $1 AND provider_id = $2 AND expired_at IS NULL RETURNING 1', [c.userId, c.providerId])
    : await tx.query('UPDATE provider_connections SET expired_at = NULL WHERE user_id = $1 AND provider_id = $2 AND expired_at IS NOT NULL RETURNING 1', [c.userId, c.providerId]);
  return rows.length > 0;
}
