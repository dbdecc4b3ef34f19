/**
 * `sri secrets rekey` on a PGlite data directory: after a new key is put first in SECRETS_KEYS, every stored secret
 * (all organisations) is sealed again under it, so the old key can leave; a bad SECRETS_KEYS is refused by name.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/main.ts';
import { migrate, openDatabase } from '../../src/control-plane/db/index.ts';
import { insertOrg } from '../../src/control-plane/db/queries/accounts.ts';
import { upsertSecret } from '../../src/control-plane/db/queries/secrets.ts';
import { openSecret, sealSecret } from '../../src/control-plane/secrets/vault.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { parseKeyring } from '../../src/shared/sealed.ts';
import { tempDir } from '../support/services.ts';

describe('sri secrets rekey', () => {
  const dir = tempDir('sri-rekey-');
  after(() => dir.remove());
  const OLD = `s1:${randomBytes(32).toString('base64')}`;
  const NEW = `s2:${randomBytes(32).toString('base64')}`;

  const sri = async (env: Record<string, string>, ...args: string[]) => {
    const lines: string[] = [];
    await buildProgram(env, { out: (t) => lines.push(t) }).exitOverride().parseAsync(['node', 'sri', ...args]);
    return lines.join('\n');
  };

  it('seals every organisation\'s secrets again under the first key; they open without the old key afterwards', async () => {
    const db = await openDatabase({ dataDir: join(dir.path, 'pglite') });
    const orgs = [randomUUID(), randomUUID()];
    try {
      await migrate(db);
      await db.asSystem(async (tx) => {
        for (const [i, orgId] of orgs.entries()) {
          await insertOrg(tx, { id: orgId, name: `Org ${i}` });
          await upsertSecret(tx, { orgId, name: 'pw', userId: null, ...sealSecret(parseKeyring(OLD), orgId, 'pw', `value-${i}`) });
        }
      });
    } finally {
      await db.close();
    }
    const out = JSON.parse(await sri({ DATA_DIR: dir.path, SECRETS_KEYS: `${NEW},${OLD}` }, 'secrets', 'rekey'));
    assert.deepEqual(out, { resealed: 2, keyId: 's2' });
    assert.deepEqual(JSON.parse(await sri({ DATA_DIR: dir.path, SECRETS_KEYS: `${NEW},${OLD}` }, 'secrets', 'rekey')), { resealed: 0, keyId: 's2' });
    const after = await openDatabase({ dataDir: join(dir.path, 'pglite') });
    try {
      const rows = await after.asSystem((tx) => tx.query<{ org_id: string; name: string; value_enc: string; key_id: string }>('SELECT org_id, name, value_enc, key_id FROM secrets ORDER BY name, org_id'));
      assert.deepEqual(rows.map((r) => r.key_id), ['s2', 's2']);
      const newOnly = parseKeyring(NEW);
      assert.deepEqual(rows.map((r) => openSecret(newOnly, r)).sort(), ['value-0', 'value-1']);
    } finally {
      await after.close();
    }
  });

  it('refuses a missing or malformed SECRETS_KEYS with CONFIG_INVALID naming it', async () => {
    const envs: Record<string, string>[] = [{ DATA_DIR: join(dir.path, 'none') }, { DATA_DIR: join(dir.path, 'none'), SECRETS_KEYS: 's1:short' }];
    for (const env of envs) {
      await assert.rejects(sri(env, 'secrets', 'rekey'), (e: unknown) => isSriError(e) && e.code === 'CONFIG_INVALID' && /SECRETS_KEYS/.test(e.message));
    }
  });
});
