/** Opens the control plane's database: a PostgreSQL server when a URL is given, else embedded PGlite. */
import { openPglite } from './pglite.ts';
import { openPostgres } from './postgres.ts';
import type { Database } from './types.ts';

export type { Database, Tx, Row } from './types.ts';
export { isUniqueViolation } from './types.ts';
export { migrate, listMigrations, MIGRATIONS_DIR } from './migrate.ts';

export interface OpenDatabaseOptions {
  /** postgres:// URL; when set, PGlite is not used. */
  databaseUrl?: string;
  /** PGlite data directory; undefined = in memory. */
  dataDir?: string;
  /** In memory only: start from this PGlite data directory dump (PGlite's dumpDataDir) instead of an empty database. */
  pgliteTemplate?: Blob;
}

export function openDatabase(opts: OpenDatabaseOptions = {}): Promise<Database> {
  if (opts.dataDir && opts.pgliteTemplate) throw new Error('openDatabase: pgliteTemplate is for an in-memory database, not with dataDir');
  return opts.databaseUrl ? openPostgres(opts.databaseUrl) : openPglite(opts.dataDir, opts.pgliteTemplate);
}
