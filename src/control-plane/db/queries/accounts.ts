/** Organisations and users. Registration and login run before the organisation is known (asSystem). */
import type { Tx } from '../types.ts';

export interface UserRow {
  id: string;
  org_id: string;
  email: string;
  name: string;
  /** argon2id PHC string; null for a member invited by link who has not chosen a password yet. */
  password_hash: string | null;
  /** 'admin' for the user who registered the organisation, 'member' otherwise. */
  role: UserRole;
}
export type UserRole = 'admin' | 'member';
export interface OrgRow { id: string; name: string }

export async function insertOrg(tx: Tx, org: OrgRow): Promise<void> {
  await tx.query('INSERT INTO organisations (id, name) VALUES ($1, $2)', [org.id, org.name]);
}

export async function insertUser(tx: Tx, u: UserRow): Promise<void> {
  await tx.query('INSERT INTO users (id, org_id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5, $6)',
    [u.id, u.org_id, u.email, u.name, u.password_hash, u.role]);
}

/** A current user by e-mail (removed members are not users any more: 0009_members.sql). */
export async function findUserByEmail(tx: Tx, email: string): Promise<UserRow | undefined> {
  const rows = await tx.query<UserRow>(
    'SELECT id, org_id, email, name, password_hash, role FROM users WHERE lower(email) = lower($1) AND removed_at IS NULL', [email]);
  return rows[0];
}

/** A current user by id; undefined for a removed member. */
export async function findUser(tx: Tx, id: string): Promise<UserRow | undefined> {
  return (await tx.query<UserRow>('SELECT id, org_id, email, name, password_hash, role FROM users WHERE id = $1 AND removed_at IS NULL', [id]))[0];
}

export async function findOrg(tx: Tx, id: string): Promise<OrgRow | undefined> {
  return (await tx.query<OrgRow>('SELECT id, name FROM organisations WHERE id = $1', [id]))[0];
}
