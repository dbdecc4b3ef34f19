/**
 * Checking an e-mail and password, with the per-account lockout (lockout.ts): the one check behind both doors to an
 * account, the API's token login (routes/auth.ts) and the dashboard's session login (routes/session.ts) — lockout
 * first, an unknown e-mail costing what a known one costs, failures counted whoever they name.
 */
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { SriError } from '../../shared/errors.ts';
import type { ApiContext } from '../context.ts';
import { findOrg, findUserByEmail, type OrgRow, type UserRow } from '../db/queries/accounts.ts';
import { verifyPassword } from '../http/auth.ts';
import type { LoginLockout } from './lockout.ts';

export interface PasswordLoginRequest {
  email: string;
  password: string;
  ip: string;
  log: FastifyBaseLogger;
}

/** The user and organisation of a right e-mail and password; INVALID_CREDENTIALS or ACCOUNT_LOCKED otherwise. */
export async function passwordLogin(ctx: ApiContext, lockout: LoginLockout, reply: FastifyReply, req: PasswordLoginRequest): Promise<{ user: UserRow; org: OrgRow | undefined }> {
  // Redis unreachable: the login is checked without the lockout (said in the log) rather than refused for everyone.
  const lockoutDown = (err: unknown) => {
    req.log.warn({ err: (err as Error).message }, 'login lockout unavailable (Redis); login checked without it');
    return undefined;
  };
  const locked = (ms: number) => {
    const seconds = Math.max(1, Math.ceil(ms / 1000));
    reply.header('retry-after', String(seconds));
    return new SriError('ACCOUNT_LOCKED', `Too many failed logins for this account; it is locked, even for the right password. Try again in ${seconds} s.`);
  };
  const lockedMs = await lockout.lockedForMs(req.email).catch(lockoutDown);
  if (lockedMs) throw locked(lockedMs);
  const user = await ctx.db.asSystem((tx) => findUserByEmail(tx, req.email));
  if (!(await verifyPassword(user?.password_hash ?? undefined, req.password)) || !user) {
    const failed = await lockout.recordFailure(req.email).catch(lockoutDown);
    if (failed?.lockedForMs) {
      req.log.warn({ email: req.email.trim().toLowerCase(), ip: req.ip, failures: failed.failures, lockedForMs: failed.lockedForMs }, 'account locked after failed logins');
    }
    throw new SriError('INVALID_CREDENTIALS');
  }
  await lockout.recordSuccess(req.email).catch(lockoutDown);
  const org = await ctx.db.withOrg(user.org_id, (tx) => findOrg(tx, user.org_id));
  return { user, org };
}
