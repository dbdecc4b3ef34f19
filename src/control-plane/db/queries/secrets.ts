/** An organisation's secrets and their audit (migrations/0004_secrets.sql). Run inside withOrg: RLS scopes. */
import type { Tx } from '../types.ts';

export interface SecretRow {
  org_id: string;
  name: string;
  value_enc: string;
  key_id: string;
  created_at: Date;
  updated_at: Date;
}

/** What the API shows of a secret: never the value, sealed or not. */
export interface SecretInfo { name: string; key_id: string; created_at: Date; updated_at: Date }

export type SecretAction = 'created' | 'updated' | 'deleted' | 'sent_to_job';

export interface SecretAuditRow {
  id: string;
  secret_name: string;
  action: SecretAction;
  job_id: string | null;
  user_id: string | null;
  at: Date;
}

/** Inserts or replaces; `created` is true when the name was new. */
export async function upsertSecret(tx: Tx, s: { orgId: string; name: string; valueEnc: string; keyId: string; userId: string | null }): Promise<{ info: SecretInfo; created: boolean }> {
  const rows = await tx.query<SecretInfo & { created: boolean }>(
    `INSERT INTO secrets (org_id, name, value_enc, key_id, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $5)
     ON CONFLICT (org_id, name) DO UPDATE SET value_enc = EXCLUDED.value_enc, key_id = EXCLUDED.key_id,
       updated_by = EXCLUDED.updated_by, updated_at = now()
     RETURNING name, key_id, created_at, updated_at, (xmax = 0) AS created`,
    [s.orgId, s.name, s.valueEnc, s.keyId, s.userId]);
  const { created, ...info } = rows[0]!;
  return { info, created };
}

export async function listSecrets(tx: Tx): Promise<SecretInfo[]> {
  return tx.query<SecretInfo>('SELECT name, key_id, created_at, updated_at FROM secrets ORDER BY name');
}

export async function countSecrets(tx: Tx): Promise<number> {
  return Number((await tx.query<{ n: number | string }>('SELECT count(*) AS n FROM secrets'))[0]?.n ?? 0);
}

/** The sealed rows of the given names (those that exist). */
export async function findSecrets(tx: Tx, names: readonly string[]): Promise<SecretRow[]> {
  if (!names.length) return [];
  return tx.query<SecretRow>('SELECT org_id, name, value_enc, key_id, created_at, updated_at FROM secrets WHERE name = ANY ($1::text[]) ORDER BY name', [names]);
}

export async function deleteSecret(tx: Tx, name: string): Promise<boolean> {
  return (await tx.query('DELETE FROM secrets WHERE name = $1 RETURNING name', [name])).length > 0;
}

/** Replaces the sealed value of one row (re-encryption under the current key); false when it changed meanwhile. */
export async function resealSecret(tx: Tx, r: { orgId: string; name: string; oldEnc: string; valueEnc: string; keyId: string }): Promise<boolean> {
  return (await tx.query('UPDATE secrets SET value_enc = $4, key_id = $5 WHERE org_id = $1 AND name = $2 AND value_enc = $3 RETURNING name',
    [r.orgId, r.name, r.oldEnc, r.valueEnc, r.keyId])).length > 0;
}

export async function insertSecretAudit(tx: Tx, rows: ReadonlyArray<{ id: string; orgId: string; name: string; action: SecretAction; jobId?: string; userId?: string }>): Promise<void> {
  for (const r of rows) {
    await tx.query('INSERT INTO secret_audit (id, org_id, secret_name, action, job_id, user_id) VALUES ($1, $2, $3, $4, $5, $6)',
      [r.id, r.orgId, r.name, r.action, r.jobId ?? null, r.userId ?? null]);
  }
}

export async function listSecretAudit(tx: Tx, f: { name?: string; jobId?: string; limit: number }): Promise<SecretAuditRow[]> {
  return tx.query<SecretAuditRow>(
    `SELECT id, secret_name, action, job_id, user_id, at FROM secret_audit
     WHERE ($1::text IS NULL OR secret_name = $1) AND ($2::text IS NULL OR job_id = $2)
     ORDER BY at DESC, id DESC LIMIT $3`, [f.name ?? null, f.jobId ?? null, f.limit]);
}

/** Names of secrets whose value is sealed under another key than `keyId` (system-wide; for a rotation). */
export async function secretsNotUnder(tx: Tx, keyId: string, limit: number): Promise<SecretRow[]> {
  return tx.query<SecretRow>('SELECT org_id, name, value_enc, key_id, created_at, updated_at FROM secrets WHERE key_id <> $1 ORDER BY org_id, name LIMIT $2', [keyId, limit]);
}
