/** What the rest of the control plane sees of the database: transactions scoped to one organisation. */

export type Row = Record<string, unknown>;

/** One open transaction. Parameters are always bound ($1, $2 …), never concatenated into the SQL text. */
export interface Tx {
  query<T = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs a multi-statement SQL text without parameters (migrations only). */
  exec(sql: string): Promise<void>;
}

export interface Database {
  readonly kind: 'pglite' | 'postgres';
  /**
   * Runs `fn` in one transaction as the role `sri_app` with `app.org_id` set to `orgId`: row-level security admits
   * only that organisation's rows, whatever the query's WHERE clause says.
   */
  withOrg<T>(orgId: string, fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in one transaction as the connecting (owning) role. Only for what precedes knowing the organisation
   * (register, login, the results reconciler's scan) and for migrations.
   */
  asSystem<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** PostgreSQL's unique_violation, the same code from both drivers. */
export function isUniqueViolation(e: unknown, constraint?: string): boolean {
  const err = e as { code?: string; constraint?: string; message?: string };
  if (err?.code !== '23505') return false;
  return constraint === undefined || err.constraint === constraint || (err.message ?? '').includes(constraint);
}
