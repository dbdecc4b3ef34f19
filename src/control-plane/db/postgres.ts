/** The external backend: a node-postgres pool on DATABASE_URL; one pooled client per transaction. */
import pg from 'pg';
import type { Database, Tx } from './types.ts';

export async function openPostgres(databaseUrl: string, opts: { max?: number } = {}): Promise<Database> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: opts.max ?? 10, connectionTimeoutMillis: 10_000 });
  // An idle client losing its server must not crash the process; the next checkout reconnects.
  pool.on('error', () => {});

  const run = async <T>(orgId: string | undefined, fn: (tx: Tx) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    const tx: Tx = {
      query: async <R>(sql: string, params: readonly unknown[] = []) => (await client.query(sql, [...params])).rows as R[],
      exec: async (sql: string) => { await client.query(sql); },
    };
    let broken = false;
    try {
      await client.query('BEGIN');
      if (orgId !== undefined) {
        await client.query('SET LOCAL ROLE sri_app');
        await client.query("SELECT set_config('app.org_id', $1, true)", [orgId]);
      }
      const out = await fn(tx);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw e;
    } finally {
      client.release(broken);
    }
  };

  await run(undefined, async (tx) => { await tx.query('SELECT 1'); });
  return {
    kind: 'postgres',
    withOrg: (orgId, fn) => run(orgId, fn),
    asSystem: (fn) => run(undefined, fn),
    ping: async () => { await pool.query('SELECT 1'); },
    close: () => pool.end(),
  };
}
