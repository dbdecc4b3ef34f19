/**
 * An organisation's members as its admins manage them (routes/members.ts): list, invite, change role, remove, and
 * the acceptance of an invitation (before the organisation is known: asSystem). Removed members keep their row
 * (removed_at) and are left out of everything here.
 */
import type { Tx } from '../types.ts';
import type { UserRole } from './accounts.ts';

export interface MemberRow {
  id: string;
  email: string;
  name: string;
  role: UserRole;
  created_at: Date;
  /** True while the member has no password yet (invited by link, not accepted). */
  invited: boolean;
  /** Expiry of the member's newest unaccepted invitation, if any. */
  invitation_expires_at: Date | null;
}

const MEMBER_SQL = `SELECT u.id, u.email, u.name, u.role, u.created_at, u.password_hash IS NULL AS invited,
    (SELECT max(i.expires_at) FROM member_invitations i WHERE i.user_id = u.id AND i.accepted_at IS NULL) AS invitation_expires_at
  FROM users u WHERE u.removed_at IS NULL`;

export async function listMembers(tx: Tx): Promise<MemberRow[]> {
  return tx.query<MemberRow>(`${MEMBER_SQL} ORDER BY u.created_at, u.id`);
}

export async function findMember(tx: Tx, id: string): Promise<MemberRow | undefined> {
  return (await tx.query<MemberRow>(`${MEMBER_SQL} AND u.id = $1`, [id]))[0];
}

/**
 * Serialises the member changes of one organisation (the caller's): two admins demoting or removing each other at
 * once cannot both pass the "one admin is left" check.
 */
export async function lockOrgMembers(tx: Tx, orgId: string): Promise<void> {
  await tx.query('SELECT id FROM organisations WHERE id = $1 FOR UPDATE', [orgId]);
}

export async function countAdmins(tx: Tx): Promise<number> {
  return (await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM users WHERE role = 'admin' AND removed_at IS NULL"))[0]?.n ?? 0;
}

export async function setMemberRole(tx: Tx, id: string, role: UserRole): Promise<void> {
  await tx.query('UPDATE users SET role = $2 WHERE id = $1 AND removed_at IS NULL', [id, role]);
}

/**
 * Removes a member: the row stays, marked, without a password; their invitations and the records of their portal
 * connections go. Returns the names of the providers they had connected (their sessions in Redis go too).
 */
export async function removeMember(tx: Tx, id: string): Promise<string[]> {
  await tx.query('UPDATE users SET removed_at = now(), password_hash = NULL WHERE id = $1 AND removed_at IS NULL', [id]);
  await tx.query('DELETE FROM member_invitations WHERE user_id = $1', [id]);
  const providers = await tx.query<{ name: string }>(`DELETE FROM provider_connections c USING providers p
    WHERE c.user_id = $1 AND p.id = c.provider_id RETURNING p.name`, [id]);
  return providers.map((p) => p.name);
}

export async function insertInvitation(tx: Tx, inv: { id: string; orgId: string; userId: string; tokenSha256: string; createdBy: string; expiresAt: Date }): Promise<void> {
  // A new link replaces the member's earlier ones that were not used.
  await tx.query('DELETE FROM member_invitations WHERE user_id = $1 AND accepted_at IS NULL', [inv.userId]);
  await tx.query(`INSERT INTO member_invitations (id, org_id, user_id, token_sha256, created_by, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6::timestamptz)`, [inv.id, inv.orgId, inv.userId, inv.tokenSha256, inv.createdBy, inv.expiresAt.toISOString()]);
}

export interface OpenInvitation { id: string; org_id: string; user_id: string; email: string; name: string }

/**
 * The unaccepted, unexpired invitation of a current member that still has no password, locked until the
 * transaction ends (one acceptance wins). Runs asSystem: the token is all the caller has.
 */
export async function takeInvitation(tx: Tx, tokenSha256: string): Promise<OpenInvitation | undefined> {
  return (await tx.query<OpenInvitation>(`SELECT i.id, i.org_id, i.user_id, u.email, u.name
    FROM member_invitations i JOIN users u ON u.id = i.user_id
    WHERE i.token_sha256 = $1 AND i.accepted_at IS NULL AND i.expires_at > now() AND u.removed_at IS NULL AND u.password_hash IS NULL
    FOR UPDATE OF i, u`, [tokenSha256]))[0];
}

export async function acceptInvitation(tx: Tx, inv: OpenInvitation, passwordHash: string): Promise<void> {
  await tx.query('UPDATE users SET password_hash = $2 WHERE id = $1', [inv.user_id, passwordHash]);
  await tx.query('UPDATE member_invitations SET accepted_at = now() WHERE id = $1', [inv.id]);
}
