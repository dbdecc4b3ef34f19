/**
 * The dashboard's browser session (docs/security.md "Browser sessions"). The session is the same JWT an API caller
 * gets as a bearer token, but kept where no script of the page can read it: an HttpOnly, SameSite=Strict cookie,
 * Secure when the request came over HTTPS (or SESSION_COOKIE_SECURE says so), scoped to /api.
 *
 * A cookie is sent by the browser on its own, so every state-changing request it authenticates must also prove
 * that the page made it (CSRF): the `x-csrf-token` header must carry the session's CSRF token — an HMAC of the
 * session's token id, so it is bound to this one session and cannot be planted from a sibling origin the way a
 * bare random double-submit cookie can. The dashboard reads it from the readable `sri_csrf` cookie (or from
 * GET /api/session). A logout puts the token id on a denylist in Redis until the token's own expiry.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { keys } from '../../shared/keys.ts';

/** The HttpOnly cookie carrying the session's JWT. */
export const SESSION_COOKIE = 'sri_session';
/** The readable cookie carrying the session's CSRF token (the page copies it into `x-csrf-token`). */
export const CSRF_COOKIE = 'sri_csrf';
/**
 * The platform operator's dashboard session (../auth/operator-session.ts): cookies of their own, so that neither kind
 * of session is ever read as the other, and signing in as one never overwrites the other's CSRF token.
 */
export const OPERATOR_SESSION_COOKIE = 'sri_operator_session';
export const OPERATOR_CSRF_COOKIE = 'sri_operator_csrf';
/** The header a cookie-authenticated state-changing request must carry. */
export const CSRF_HEADER = 'x-csrf-token';

/** Methods that change nothing: they need no CSRF token (and must change nothing, which every route keeps). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
export const isSafeMethod = (method: string) => SAFE_METHODS.has(method.toUpperCase());

/** The value of one cookie of a `Cookie` header; undefined when absent. Malformed percent-escapes are kept raw. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return undefined;
}

export type CookieSecure = 'auto' | 'true' | 'false';

export interface CookieOptions {
  /** `auto`: Secure when the request came over HTTPS as Fastify sees it. @default 'auto' */
  secure?: CookieSecure;
}

export function serialiseCookie(name: string, value: string, attrs: { path: string; maxAgeSeconds: number; httpOnly: boolean; secure: boolean }): string {
  return [
    `${name}=${encodeURIComponent(value)}`, `Path=${attrs.path}`, `Max-Age=${Math.max(0, Math.floor(attrs.maxAgeSeconds))}`,
    'SameSite=Strict', ...(attrs.httpOnly ? ['HttpOnly'] : []), ...(attrs.secure ? ['Secure'] : []),
  ].join('; ');
}

export const secureFor = (req: FastifyRequest, opt: CookieSecure | undefined) => (opt === 'true' ? true : opt === 'false' ? false : req.protocol === 'https');

/**
 * Sets the session cookie (HttpOnly, Path=/api: only API requests carry it) and the CSRF cookie (readable, Path=/:
 * every page of the dashboard can read it), both for the token's remaining lifetime.
 */
export function setSessionCookies(req: FastifyRequest, reply: FastifyReply, token: string, csrfToken: string, maxAgeSeconds: number, opts: CookieOptions = {}): void {
  const secure = secureFor(req, opts.secure);
  reply.header('set-cookie', [
    serialiseCookie(SESSION_COOKIE, token, { path: '/api', maxAgeSeconds, httpOnly: true, secure }),
    serialiseCookie(CSRF_COOKIE, csrfToken, { path: '/', maxAgeSeconds, httpOnly: false, secure }),
  ]);
}

/** Expires both cookies (logout, or a session the API no longer honours). */
export function clearSessionCookies(req: FastifyRequest, reply: FastifyReply, opts: CookieOptions = {}): void {
  const secure = secureFor(req, opts.secure);
  reply.header('set-cookie', [
    serialiseCookie(SESSION_COOKIE, '', { path: '/api', maxAgeSeconds: 0, httpOnly: true, secure }),
    serialiseCookie(CSRF_COOKIE, '', { path: '/', maxAgeSeconds: 0, httpOnly: false, secure }),
  ]);
}

/** Derives the CSRF tokens of sessions from the API's JWT secret (under a label of its own: not the JWT key). */
export class CsrfTokens {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = createHmac('sha256', secret).update('sri-csrf-v1').digest();
  }

  /** The CSRF token of the session whose token id is `jti`. */
  tokenFor(jti: string): string {
    return createHmac('sha256', this.key).update(jti).digest('base64url');
  }

  /** Whether `presented` is the CSRF token of session `jti` (constant time). */
  verify(jti: string, presented: string | undefined): boolean {
    if (!presented) return false;
    const want = Buffer.from(this.tokenFor(jti));
    const got = Buffer.from(presented);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/** Token ids of ended sessions, in Redis until the token would have expired anyway (shared by every API process). */
export interface RevokedSessions {
  isRevoked(jti: string): Promise<boolean>;
  /** Refuses the token from now on; `untilEpochSeconds` is its `exp` (the key expires with it). */
  revoke(jti: string, untilEpochSeconds: number): Promise<void>;
}

export function redisRevokedSessions(redis: Redis): RevokedSessions {
  return {
    async isRevoked(jti) {
      return (await redis.exists(keys.authRevokedSession(jti))) === 1;
    },
    async revoke(jti, untilEpochSeconds) {
      const ttl = Math.max(1, untilEpochSeconds - Math.floor(Date.now() / 1000));
      await redis.set(keys.authRevokedSession(jti), '1', 'EX', ttl);
    },
  };
}
