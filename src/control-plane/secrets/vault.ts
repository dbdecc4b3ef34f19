/**
 * Tenant secrets at rest and on their way to a job (docs/security.md "Tenant secrets").
 *
 * At rest: each value sealed (AES-256-GCM) under SECRETS_KEYS, bound to its organisation and name; the key id is
 * part of the sealed text (and of the row), so a new key can be put first in SECRETS_KEYS while older rows still
 * open — and each row read under an older key is sealed again under the first one.
 * To a job: at POST /api/run (and retry), the secrets the flow's script fills (`fill {secretRef}`, read back from
 * the signed script by flows/compile.ts secretRefsOfScript) are opened and sealed together under TRANSPORT_KEYS for
 * that job's ids, into the job message. Workers never hold SECRETS_KEYS, and a job carries only the secrets its own
 * flow names. Each name sent is recorded in secret_audit (never a value).
 */
import { randomUUID } from 'node:crypto';
import { SriError } from '../../shared/errors.ts';
import { open, seal, SealError, type Keyring } from '../../shared/sealed.ts';
import { sealJobSecrets, type JobIds } from '../../shared/transport-secrets.ts';
import type { Tx } from '../db/types.ts';
import { findSecrets, insertSecretAudit, resealSecret, secretsNotUnder, type SecretRow } from '../db/queries/secrets.ts';

/** Secrets one organisation may keep. */
export const MAX_SECRETS_PER_ORG = 100;
/** Longest value (UTF-8 characters) of one secret. */
export const MAX_SECRET_CHARS = 16 * 1024;
export const SECRET_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const context = (orgId: string, name: string) => `tenant-secret\n${JSON.stringify([orgId, name])}`;

export function requireKeys(keys: Keyring | undefined): Keyring {
  if (!keys) throw new SriError('SECRETS_NOT_CONFIGURED');
  return keys;
}

export function sealSecret(keys: Keyring, orgId: string, name: string, value: string): { valueEnc: string; keyId: string } {
  return { valueEnc: seal(keys, value, context(orgId, name)), keyId: keys.primary };
}

export function openSecret(keys: Keyring, row: Pick<SecretRow, 'org_id' | 'name' | 'value_enc'>): string {
  try {
    return open(keys, row.value_enc, context(row.org_id, row.name));
  } catch (e) {
    const why = e instanceof SealError ? e.message : 'it does not decrypt';
    throw new SriError('SECRETS_UNREADABLE', `The secret "${row.name}" cannot be decrypted (${why}); put its key back in SECRETS_KEYS, or store the secret again.`);
  }
}

/**
 * The `secrets` field of a job message: the organisation's secrets among `names`, sealed for the job's ids under
 * `transport`, plus one audit row per name — in the caller's transaction, so the audit exists exactly when the job
 * does. Names the organisation has no secret for are left to the session's credentials (the worker looks there
 * next). Undefined when none of the names is a secret of the organisation.
 */
export async function sealSecretsForJob(tx: Tx, a: {
  secretsKeys: Keyring | undefined; transport: Keyring; job: JobIds; names: readonly string[];
}): Promise<{ sealed?: string; names: string[] }> {
  const rows = await findSecrets(tx, a.names);
  if (!rows.length) return { names: [] };
  const keys = requireKeys(a.secretsKeys);
  const values: Record<string, string> = {};
  for (const row of rows) {
    values[row.name] = openSecret(keys, row);
    if (row.key_id !== keys.primary) {
      // Rotation: whatever is read under an older key is sealed again under the first one.
      const next = sealSecret(keys, row.org_id, row.name, values[row.name]!);
      await resealSecret(tx, { orgId: row.org_id, name: row.name, oldEnc: row.value_enc, ...next });
    }
  }
  await insertSecretAudit(tx, rows.map((r) => ({
    id: randomUUID(), orgId: a.job.orgId, name: r.name, action: 'sent_to_job' as const, jobId: a.job.jobId, userId: a.job.userId,
  })));
  return { sealed: sealJobSecrets(a.transport, a.job, values), names: rows.map((r) => r.name) };
}

/**
 * Seals again, under the first key of `keys`, every secret (all organisations) still sealed under another key;
 * run as the system role (`sri secrets rekey`). Returns how many rows were re-sealed.
 */
export async function resealAll(tx: Tx, keys: Keyring, batch = 500): Promise<number> {
  let total = 0;
  for (;;) {
    const rows = await secretsNotUnder(tx, keys.primary, batch);
    for (const row of rows) {
      const next = sealSecret(keys, row.org_id, row.name, openSecret(keys, row));
      if (await resealSecret(tx, { orgId: row.org_id, name: row.name, oldEnc: row.value_enc, ...next })) total++;
    }
    if (rows.length < batch) return total;
  }
}
