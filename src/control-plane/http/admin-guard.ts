/**
 * The admin guard of the /api/admin/* endpoints. The role is read from the database on every request rather than
 * carried in the token, so a demotion takes effect at once and no token minted before roles existed lacks it.
 */
import type { FastifyRequest } from 'fastify';
import { SriError } from '../../shared/errors.ts';
import type { ApiContext } from '../context.ts';
import { findUser } from '../db/queries/accounts.ts';
import { authOf } from './auth.ts';

/** preHandlers for admin-only routes: a valid token, then role 'admin' in the caller's organisation (else FORBIDDEN). */
export function adminOnly(ctx: ApiContext) {
  const requireAdmin = async (req: FastifyRequest) => {
    const { orgId, userId } = authOf(req);
    const user = await ctx.db.withOrg(orgId, (tx) => findUser(tx, userId));
    if (!user) throw new SriError('TOKEN_INVALID');
    if (user.role !== 'admin') {
      throw new SriError('FORBIDDEN', `${req.method} ${req.routeOptions.url ?? req.url} is for administrators of your organisation `
        + `and your role is ${user.role}; ask your organisation's admin (the user who registered it).`);
    }
  };
  return [ctx.tokens.hook(), requireAdmin];
}
