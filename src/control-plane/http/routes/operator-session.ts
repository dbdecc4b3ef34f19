/**
 * The platform operator's dashboard session (../../auth/operator-session.ts; docs/dashboard.md "System page"): sign in
 * with OPERATOR_TOKEN into an HttpOnly cookie, read the session (and its CSRF token), sign out. The CLI keeps using
 * "Authorization: Bearer <OPERATOR_TOKEN>" on the operator endpoints; this only opens the dashboard's door to them.
 *
 * Wrong tokens are limited like wrong passwords: the per-client rate limit of the login routes, and the per-account
 * lockout (auth/lockout.ts) on one account, the operator's — AUTH_LOCKOUT_MAX_FAILURES wrong tokens lock the sign-in,
 * the right token included, for AUTH_LOCKOUT_MS. The bearer token of the CLI is not locked with it (it is not a
 * guessing door: a wrong bearer token is refused as ever, and the rate limit of the API applies).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { LoginLockout } from '../../auth/lockout.ts';
import { OPERATOR_LOCKOUT_ACCOUNT } from '../../auth/operator-session.ts';
import type { ApiContext } from '../../context.ts';
import { endpoint, json, noContent } from '../openapi.ts';
import { operatorOf, operatorOnly, operatorSessionsOf } from '../operator-guard.ts';
import {
  CSRF_HEADER, OPERATOR_CSRF_COOKIE, OPERATOR_SESSION_COOKIE, readCookie, secureFor, serialiseCookie,
} from '../session-cookie.ts';
import { AUTH_BODY_LIMIT_BYTES } from './auth.ts';

const OperatorSignIn = z.object({
  token: z.string().min(1).max(1024).describe('OPERATOR_TOKEN, as the API is configured with it.'),
}).meta({ id: 'OperatorSignIn' });

export const OperatorSessionBody = z.object({
  operator: z.object({ identity: z.string().describe('`operator:<12 hex of SHA-256(OPERATOR_TOKEN)>`, what the audit of ops tasks records.') }),
  via: z.enum(['bearer', 'cookie']),
  csrfToken: z.string().optional().describe('Send it as x-csrf-token on every POST and DELETE the operator\'s session cookie authenticates (also in the sri_operator_csrf cookie). Absent for the bearer token.'),
  expiresAt: z.iso.datetime().optional().describe('When the session ends (sign in again then). Absent for the bearer token.'),
}).meta({ id: 'OperatorSession' });

/** The session cookie (HttpOnly, only to /api/operator) and its readable CSRF cookie, both for `maxAgeSeconds`. */
const cookies = (session: string, csrf: string, maxAgeSeconds: number, secure: boolean) => [
  serialiseCookie(OPERATOR_SESSION_COOKIE, session, { path: '/api/operator', maxAgeSeconds, httpOnly: true, secure }),
  serialiseCookie(OPERATOR_CSRF_COOKIE, csrf, { path: '/', maxAgeSeconds, httpOnly: false, secure }),
];

export function operatorSessionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const sessions = operatorSessionsOf(ctx);
  const rateLimit = { max: ctx.config.authRateLimitMax, timeWindow: ctx.config.authRateLimitWindowMs };
  const lockout = new LoginLockout(ctx.redis, {
    maxFailures: ctx.config.authLockoutMaxFailures, windowMs: ctx.config.authLockoutWindowMs, lockMs: ctx.config.authLockoutMs,
  });
  const secure = (req: Parameters<typeof secureFor>[0]) => secureFor(req, ctx.config.sessionCookieSecure);

  app.route({
    ...endpoint('POST', '/api/operator/session', {
      operationId: 'createOperatorSession', tag: 'operator', access: 'public', body: OperatorSignIn,
      summary: 'Sign the platform operator in to the dashboard: exchanges OPERATOR_TOKEN for an HttpOnly session cookie (sri_operator_session, sent only to /api/operator) and the readable CSRF cookie (sri_operator_csrf).',
      description: 'The token is compared in constant time and never kept; the session lasts OPERATOR_SESSION_SECONDS and ends when OPERATOR_TOKEN changes. '
        + 'Wrong tokens count towards the login lockout of one account, the operator\'s: after AUTH_LOCKOUT_MAX_FAILURES of them every sign-in is refused with ACCOUNT_LOCKED for AUTH_LOCKOUT_MS.',
      responses: { 200: json('Signed in; the cookies are set.', OperatorSessionBody.required({ csrfToken: true, expiresAt: true })) },
      errors: ['INVALID_CREDENTIALS', 'ACCOUNT_LOCKED', 'RATE_LIMITED'],
    }),
    config: { rateLimit },
    bodyLimit: AUTH_BODY_LIMIT_BYTES,
    handler: async (req, reply) => {
      const { token } = OperatorSignIn.parse(req.body);
      // Redis unreachable: checked without the lockout (said in the log) rather than refused, as a user's login.
      const lockoutDown = (err: unknown) => {
        req.log.warn({ err: (err as Error).message }, 'operator sign-in lockout unavailable (Redis); checked without it');
        return undefined;
      };
      const lockedMs = await lockout.lockedForMs(OPERATOR_LOCKOUT_ACCOUNT).catch(lockoutDown);
      if (lockedMs) {
        const seconds = Math.max(1, Math.ceil(lockedMs / 1000));
        reply.header('retry-after', String(seconds));
        throw new SriError('ACCOUNT_LOCKED', `Too many wrong operator tokens; the operator sign-in is locked, even for the right token. Try again in ${seconds} s (the CLI's bearer token still works).`);
      }
      if (!sessions.matches(token)) {
        const failed = await lockout.recordFailure(OPERATOR_LOCKOUT_ACCOUNT).catch(lockoutDown);
        req.log.warn({ ip: req.ip, failures: failed?.failures, lockedForMs: failed?.lockedForMs }, 'operator sign-in with a wrong token');
        throw new SriError('INVALID_CREDENTIALS', 'The operator token is wrong: use the API\'s OPERATOR_TOKEN.');
      }
      await lockout.recordSuccess(OPERATOR_LOCKOUT_ACCOUNT).catch(lockoutDown);
      const s = await sessions.sign();
      const csrfToken = sessions.csrf.tokenFor(s.jti);
      reply.header('set-cookie', cookies(s.token, csrfToken, s.exp - Math.floor(Date.now() / 1000), secure(req)));
      req.log.info({ operator: s.identity, ip: req.ip }, 'operator signed in to the dashboard');
      return { operator: { identity: s.identity }, via: 'cookie' as const, csrfToken, expiresAt: new Date(s.exp * 1000).toISOString() };
    },
  });

  app.route({
    ...endpoint('GET', '/api/operator/session', {
      operationId: 'getOperatorSession', tag: 'operator', access: 'operator',
      summary: 'The signed-in operator; with the session cookie, also its CSRF token and expiry (operator only).',
      responses: { 200: json('The session.', OperatorSessionBody) },
    }),
    preValidation: operatorOnly(ctx),
    handler: async (req) => {
      const op = operatorOf(req);
      const cookie = op.via === 'cookie' ? readCookie(req.headers.cookie, OPERATOR_SESSION_COOKIE) : undefined;
      const claims = cookie ? await sessions.verify(cookie) : undefined;
      return {
        operator: { identity: op.identity }, via: op.via,
        ...(claims ? { csrfToken: sessions.csrf.tokenFor(claims.jti), expiresAt: new Date(claims.exp * 1000).toISOString() } : {}),
      };
    },
  });

  app.route({
    ...endpoint('DELETE', '/api/operator/session', {
      operationId: 'deleteOperatorSession', tag: 'operator', access: 'public',
      summary: 'Sign the operator out of the dashboard: the session is refused from now on (by every API process) and both cookies are cleared. Without a live session it only clears them.',
      responses: { 204: noContent('Signed out: both cookies are cleared.') },
      errors: ['CSRF_TOKEN_INVALID'],
    }),
    handler: async (req, reply) => {
      const cookie = readCookie(req.headers.cookie, OPERATOR_SESSION_COOKIE);
      const claims = cookie ? await sessions.verifyIgnoringDenylist(cookie) : undefined;
      if (claims) {
        // A live session ends only by its own page: another site cannot sign the operator out.
        const presented = req.headers[CSRF_HEADER];
        if (!sessions.csrf.verify(claims.jti, typeof presented === 'string' ? presented : undefined)) throw new SriError('CSRF_TOKEN_INVALID');
        await sessions.revoke(claims);
        req.log.info({ operator: claims.identity, ip: req.ip }, 'operator signed out of the dashboard');
      }
      reply.header('set-cookie', cookies('', '', 0, secure(req)));
      return reply.status(204).send();
    },
  });
}
