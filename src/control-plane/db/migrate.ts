/**
 * The one migration loader: applies migrations/NNNN_name.sql in order, each in its own transaction, and records
 * the applied ones in schema_migrations. An advisory lock keeps two API processes from migrating at once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Database } from './types.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));
const MIGRATION_FILE = /^(\d{4})_[a-z0-9_-]+\.sql$/;
// Arbitrary constant naming "the SRI migration lock" for pg_advisory_xact_lock.
const MIGRATION_LOCK_ID = 727_001;

export function listMigrations(dir = MIGRATIONS_DIR): string[] {
  return readdirSync(dir).filter((f) => MIGRATION_FILE.test(f)).sort();
}

/** Applies the pending migrations; returns the names applied now (empty when up to date). */
export async function migrate(db: Database, dir = MIGRATIONS_DIR): Promise<string[]> {
  await db.asSystem(async (tx) => {
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
  });
  const applied: string[] = [];
  for (const file of listMigrations(dir)) {
    const name = file.replace(/\.sql$/, '');
    const done = await db.asSystem(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]);
      const seen = await tx.query('SELECT 1 FROM schema_migrations WHERE name = $1', [name]);
      if (seen.length > 0) return false;
      await tx.exec(readFileSync(join(dir, file), 'utf8'));
      await tx.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
      return true;
    });
    if (done) applied.push(name);
  }
  return applied;
}
