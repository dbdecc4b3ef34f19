/**
 * The embedded backend: PGlite (PostgreSQL in WASM) under DATA_DIR/pglite, or in memory.
 * PGlite is one connection shared by every caller, so transactions are serialised by a mutex: two interleaved
 * transactions on one connection would share SET LOCAL ROLE and app.org_id.
 */
import { mkdirSync } from 'node:fs';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { Database, Tx } from './types.ts';

class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => { release = r; });
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

function wrap(tx: Transaction): Tx {
  return {
    query: async <T>(sql: string, params: readonly unknown[] = []) => (await tx.query<T>(sql, [...params])).rows,
    exec: async (sql: string) => { await tx.exec(sql); },
  };
}

/**
 * `template`: a data directory as PGlite's `dumpDataDir` writes it, to start an in-memory database from instead of
 * running initdb (seconds of CPU each time); the tests start from a migrated one (test/support/database.ts).
 */
export async function openPglite(dataDir?: string, template?: Blob): Promise<Database> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const pg = await PGlite.create({ ...(dataDir ? { dataDir } : {}), ...(template ? { loadDataDir: template } : {}) });
  const mutex = new Mutex();
  let closed = false;

  const run = <T>(orgId: string | undefined, fn: (tx: Tx) => Promise<T>) => mutex.run(() => pg.transaction(async (tx) => {
    if (orgId !== undefined) {
      await tx.query('SET LOCAL ROLE sri_app');
      await tx.query("SELECT set_config('app.org_id', $1, true)", [orgId]);
    }
    return fn(wrap(tx));
  }));

  return {
    kind: 'pglite',
    withOrg: (orgId, fn) => run(orgId, fn),
    asSystem: (fn) => run(undefined, fn),
    ping: async () => { await mutex.run(() => pg.query('SELECT 1')); },
    close: async () => {
      if (closed) return;
      closed = true;
      await mutex.run(() => pg.close());
    },
  };
}
