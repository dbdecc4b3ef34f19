/**
 * The dashboard's browser session (docs/security.md "Browser sessions"): log in with e-mail and password into an
 * HttpOnly session cookie instead of a token the page would hold, read the session (and its CSRF token), log out.
 * API callers keep using POST /api/auth/login and "Authorization: Bearer"; the same token works both ways.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { LoginLockout } from '../../auth/lockout.ts';
import { passwordLogin } from '../../auth/password-login.ts';
import type { ApiContext } from '../../context.ts';
import { findOrg, findUser, type OrgRow, type UserRow } from '../../db/queries/accounts.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, noContent } from '../openapi.ts';
import { LoginBody } from '../schemas.ts';
import { CSRF_HEADER, SESSION_COOKIE, clearSessionCookies, readCookie, setSessionCookies } from '../session-cookie.ts';
import { AUTH_BODY_LIMIT_BYTES } from './auth.ts';

const userJson = (u: UserRow) => ({ id: u.id, email: u.email, name: u.name, orgId: u.org_id, role: u.role });
const orgJson = (o: OrgRow) => ({ id: o.id, name: o.name });

/** The signed-in user and organisation, and — for the session cookie — its CSRF token and expiry. */
export const SessionBody = z.object({
  user: z.object({ id: z.string(), email: z.string(), name: z.string(), orgId: z.string(), role: z.enum(['admin', 'member']) }),
  org: z.object({ id: z.string(), name: z.string() }),
  csrfToken: z.string().optional().describe('Send it as x-csrf-token on every POST, PUT, PATCH and DELETE the session cookie authenticates (also in the sri_csrf cookie). Absent for bearer tokens.'),
  expiresAt: z.iso.datetime().optional().describe('When the session cookie\'s token expires (log in again then). Absent for bearer tokens.'),
}).meta({ id: 'Session' });

export function sessionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const rateLimit = { max: ctx.config.authRateLimitMax, timeWindow: ctx.config.authRateLimitWindowMs };
  const lockout = new LoginLockout(ctx.redis, {
    maxFailures: ctx.config.authLockoutMaxFailures, windowMs: ctx.config.authLockoutWindowMs, lockMs: ctx.config.authLockoutMs,
  });
  const cookieOpts = { secure: ctx.config.sessionCookieSecure };

  app.route({
    ...endpoint('POST', '/api/session', {
      operationId: 'createSession', tag: 'session', access: 'public', body: LoginBody,
      summary: 'Log in from the dashboard: sets the HttpOnly session cookie (sri_session) and the readable CSRF cookie (sri_csrf); returns the user, never a token.',
      responses: { 200: json('Logged in; the cookies are set.', SessionBody.required({ csrfToken: true, expiresAt: true })) },
      errors: ['INVALID_CREDENTIALS', 'ACCOUNT_LOCKED', 'RATE_LIMITED'],
    }),
    config: { rateLimit },
    bodyLimit: AUTH_BODY_LIMIT_BYTES,
    handler: async (req, reply) => {
      const body = LoginBody.parse(req.body);
      const { user, org } = await passwordLogin(ctx, lockout, reply, { email: body.email, password: body.password, ip: req.ip, log: req.log });
      // A user always has its organisation (a foreign key); refused like a wrong password rather than half logged in.
      if (!org) throw new SriError('INVALID_CREDENTIALS');
      const { token, jti, exp } = await ctx.tokens.signWithId({ userId: user.id, orgId: user.org_id });
      const csrfToken = ctx.tokens.csrf.tokenFor(jti);
      setSessionCookies(req, reply, token, csrfToken, exp - Math.floor(Date.now() / 1000), cookieOpts);
      return { user: userJson(user), org: orgJson(org), csrfToken, expiresAt: new Date(exp * 1000).toISOString() };
    },
  });

  app.route({
    ...endpoint('GET', '/api/session', {
      operationId: 'getSession', tag: 'session', access: 'user',
      summary: 'The signed-in user and organisation; with the session cookie, also its CSRF token and expiry.',
      responses: { 200: json('The session.', SessionBody) },
    }),
    preValidation: ctx.tokens.hook(),
    handler: async (req) => {
      const auth = authOf(req);
      const found = await ctx.db.withOrg(auth.orgId, async (tx) => ({ user: await findUser(tx, auth.userId), org: await findOrg(tx, auth.orgId) }));
      if (!found.user || !found.org) throw new SriError('TOKEN_INVALID');
      let session: { csrfToken: string; expiresAt: string } | Record<string, never> = {};
      const cookie = auth.via === 'cookie' ? readCookie(req.headers.cookie, SESSION_COOKIE) : undefined;
      if (cookie) {
        const claims = await ctx.tokens.verifySessionCookie(cookie);
        session = { csrfToken: ctx.tokens.csrf.tokenFor(claims.jti), expiresAt: new Date(claims.exp * 1000).toISOString() };
      }
      return { user: userJson(found.user), org: orgJson(found.org), ...session };
    },
  });

  app.route({
    ...endpoint('DELETE', '/api/session', {
      operationId: 'deleteSession', tag: 'session', access: 'public',
      summary: 'Log out of the dashboard: the session\'s token is refused from now on (by every API process) and both cookies are cleared. Without a live session it only clears them.',
      responses: { 204: noContent('Logged out: both cookies are cleared.') },
      errors: ['CSRF_TOKEN_INVALID'],
    }),
    handler: async (req, reply) => {
      const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
      const claims = cookie ? await ctx.tokens.verifyClaims(cookie).catch(() => undefined) : undefined;
      if (claims?.jti) {
        // A live session ends only by its own page: another site cannot log the user out (or learn whether they were in).
        const presented = req.headers[CSRF_HEADER];
        if (!ctx.tokens.csrf.verify(claims.jti, typeof presented === 'string' ? presented : undefined)) throw new SriError('CSRF_TOKEN_INVALID');
        const revoked = ctx.tokens.revokedSessions;
        if (revoked) await revoked.revoke(claims.jti, claims.exp);
      }
      clearSessionCookies(req, reply, cookieOpts);
      return reply.status(204).send();
    },
  });
}
