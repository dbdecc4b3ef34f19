/**
 * `sri secrets rekey`: the last step of a SECRETS_KEYS rotation (docs/security.md "Tenant secrets"). With the new key
 * first in SECRETS_KEYS and the old ones after it, it seals every organisation's secrets again under the first key,
 * after which the old keys can leave SECRETS_KEYS. It talks to the database only (DATABASE_URL, else PGlite under
 * DATA_DIR/pglite), as the migrating role, like `sri migrate`; values are decrypted in this process, never printed.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { SriError } from '../shared/errors.ts';
import { parseKeyring } from '../shared/sealed.ts';
import type { CliIo } from './queue-ops.ts';

type Env = Record<string, string | undefined>;

export function addSecretsCommand(program: Command, env: Env, io: CliIo = { out: (t) => console.log(t) }): void {
  const secrets = program.command('secrets').description('operator commands on the organisations\' stored secrets');
  secrets.command('rekey')
    .description('seal every stored secret again under the first key of SECRETS_KEYS (after adding a new key first)')
    .action(async () => {
      const text = env['SECRETS_KEYS'];
      if (!text) throw new SriError('CONFIG_INVALID', 'Invalid configuration: SECRETS_KEYS is required (the new key first, then the old ones). See docs/configuration.md.');
      let keys;
      try {
        keys = parseKeyring(text);
      } catch (e) {
        throw new SriError('CONFIG_INVALID', `Invalid configuration: SECRETS_KEYS ${(e as Error).message}. See docs/configuration.md.`);
      }
      const { openDatabase, migrate } = await import('../control-plane/db/index.ts');
      const { resealAll } = await import('../control-plane/secrets/vault.ts');
      const databaseUrl = env['DATABASE_URL'] || undefined;
      const db = await openDatabase(databaseUrl ? { databaseUrl } : { dataDir: join(env['DATA_DIR'] || '.data', 'pglite') });
      try {
        await migrate(db);
        const n = await db.asSystem((tx) => resealAll(tx, keys));
        io.out(JSON.stringify({ resealed: n, keyId: keys.primary }));
      } finally {
        await db.close();
      }
    });
}
