/**
 * The guard of the platform operator's endpoints (/api/operator/*: worker enrolment and revocation, system updates).
 * Workers serve every organisation, so no organisation's admin may reach them: the operator holds OPERATOR_TOKEN, a
 * setting of the API alone (workers refuse to start with it), compared in constant time. Unset, the endpoints answer
 * OPERATOR_ONLY to everyone. An organisation's API token is no operator token.
 *
 * Two doors, one identity: "Authorization: Bearer <OPERATOR_TOKEN>" (the CLI), or the operator's dashboard session
 * cookie (../auth/operator-session.ts) — with its CSRF token on a state-changing request, as user sessions. An
 * organisation user's session cookie is never read here: it reaches no operator endpoint.
 */
import type { FastifyRequest } from 'fastify';
import { SriError } from '../../shared/errors.ts';
import { OperatorSessions, operatorIdentity } from '../auth/operator-session.ts';
import type { ApiContext } from '../context.ts';
import { CSRF_HEADER, OPERATOR_SESSION_COOKIE, isSafeMethod, readCookie } from './session-cookie.ts';

export interface OperatorAuth {
  /** `operator:<12 hex>` (auth/operator-session.ts): what the audit records. */
  identity: string;
  via: 'bearer' | 'cookie';
}

declare module 'fastify' {
  interface FastifyRequest {
    operator?: OperatorAuth;
  }
}

const sessions = new WeakMap<ApiContext, OperatorSessions>();
/** The API's one OperatorSessions (stateless but for its keys: one per context, shared by the guard and the routes). */
export function operatorSessionsOf(ctx: ApiContext): OperatorSessions {
  let s = sessions.get(ctx);
  if (!s) {
    s = new OperatorSessions(ctx.config.jwtSecret, ctx.config.operatorToken, ctx.config.operatorSessionSeconds, ctx.tokens.revokedSessions);
    sessions.set(ctx, s);
  }
  return s;
}

export function operatorOnly(ctx: ApiContext) {
  const operator = operatorSessionsOf(ctx);
  return async (req: FastifyRequest) => {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      // One answer for no token, a wrong one and an API without OPERATOR_TOKEN: callers learn nothing about the setting.
      if (!m || !operator.matches(m[1]!)) throw new SriError('OPERATOR_ONLY');
      req.operator = { identity: operatorIdentity(m[1]!), via: 'bearer' };
      return;
    }
    const cookie = readCookie(req.headers.cookie, OPERATOR_SESSION_COOKIE);
    if (!cookie) throw new SriError('OPERATOR_ONLY');
    const claims = await operator.verify(cookie);
    if (!isSafeMethod(req.method)) {
      const presented = req.headers[CSRF_HEADER];
      if (!operator.csrf.verify(claims.jti, typeof presented === 'string' ? presented : undefined)) throw new SriError('CSRF_TOKEN_INVALID');
    }
    req.operator = { identity: claims.identity, via: 'cookie' };
  };
}

/** The operator of a guarded route. */
export function operatorOf(req: FastifyRequest): OperatorAuth {
  if (!req.operator) throw new SriError('OPERATOR_ONLY');
  return req.operator;
}
