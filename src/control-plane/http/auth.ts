/**
 * Passwords (argon2id, strength estimated with zxcvbn) and API tokens (JWT, HS256 only: the verifier pins the
 * algorithm, so a token signed with "none" or with an asymmetric algorithm is refused). A valid token is not
 * enough: its user must still exist in its organisation (looked up per request, cached for AUTH_USER_CACHE_MS).
 *
 * A removed member's tokens are refused at once, whatever the cache holds: a mark in Redis (auth/removed-users.ts) is
 * checked whenever the cached look-up is used.
 *
 * A token arrives either as "Authorization: Bearer" (API callers) or in the dashboard's HttpOnly session cookie
 * (session-cookie.ts): a cookie-borne token must also not be logged out (Redis denylist of token ids), and a
 * state-changing request it authenticates must carry the session's CSRF token. The bearer header wins when both come.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import { adjacencyGraphs, dictionary } from '@zxcvbn-ts/language-common';
import type { FastifyRequest } from 'fastify';
import { SriError } from '../../shared/errors.ts';
import { hashArgon2, verifyArgon2 } from '../auth/argon2.ts';
import type { RemovedUsers } from '../auth/removed-users.ts';
import { CSRF_HEADER, CsrfTokens, SESSION_COOKIE, isSafeMethod, readCookie, type RevokedSessions } from './session-cookie.ts';

export interface Auth {
  userId: string;
  orgId: string;
  /** The user's role as last looked up (present once the token hook has checked the user). */
  role?: string;
  /** How the token came: the Authorization header, or the dashboard's session cookie. Set by the token hook. */
  via?: 'bearer' | 'cookie';
}

/** A verified token's claims. */
export interface TokenClaims {
  auth: Auth;
  /** The token's id; tokens signed before ids existed have none (a session cookie always has one). */
  jti?: string;
  /** Expiry, epoch seconds. */
  exp: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth?: Auth;
  }
}

const ISSUER = 'sri-control-plane';

/** Shortest password accepted. */
export const MIN_PASSWORD_LENGTH = 12;
/**
 * Lowest zxcvbn score accepted (0-4): 3 is "safely unguessable" — about 10^8 guesses or more — so common passwords,
 * keyboard and repeated patterns, dates and dictionary words with a few digits are refused.
 */
export const MIN_PASSWORD_SCORE = 3;

// The dictionaries ship with the package (no network); built once, on first use.
let estimator: ZxcvbnFactory | undefined;

/**
 * Throws WEAK_PASSWORD for a password shorter than MIN_PASSWORD_LENGTH or that zxcvbn scores below
 * MIN_PASSWORD_SCORE; `userInputs` (e-mail, names) count as known words, so "ana@acme.example" + digits is weak.
 */
export function checkPasswordStrength(password: string, userInputs: readonly string[] = []): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new SriError('WEAK_PASSWORD');
  estimator ??= new ZxcvbnFactory({ dictionary, graphs: adjacencyGraphs });
  const inputs = userInputs.flatMap((i) => [i, ...i.split(/[@\s._-]+/)]).filter((i) => i.length >= 3);
  if (estimator.check(password, inputs).score < MIN_PASSWORD_SCORE) throw new SriError('WEAK_PASSWORD');
}

export function hashPassword(password: string): Promise<string> {
  return hashArgon2(password);
}

let dummyHash: Promise<string> | undefined;
/**
 * The hash an unknown e-mail's password is checked against: made with the same argon2 parameters as real ones, so
 * an unknown e-mail costs what a known one costs. Made at start (warmDummyHash), so that not even the first unknown
 * e-mail pays a hash on top.
 */
export function warmDummyHash(): Promise<string> {
  dummyHash ??= hashPassword(`dummy-${Math.random()}-password`);
  return dummyHash;
}

/** Verifies a password; with no hash (unknown e-mail) it still spends the time of one verification. */
export async function verifyPassword(hash: string | undefined, password: string): Promise<boolean> {
  if (hash === undefined) {
    await verifyArgon2(await warmDummyHash(), password).catch(() => false);
    return false;
  }
  return verifyArgon2(hash, password).catch(() => false);
}

/** What the token hook needs to know of a token's user: undefined when the user is gone from the organisation. */
export type PrincipalLookup = (auth: Auth) => Promise<{ role: string } | undefined>;

export interface TokenServiceOptions {
  /** Checks the user of every verified token; without it a valid token is enough (tests that only sign tokens). */
  lookup?: PrincipalLookup;
  /** How long one look-up is trusted (ms). @default 5000 */
  cacheMs?: number;
  /** Logged-out sessions; without it a session cookie is honoured until its token expires. */
  revoked?: RevokedSessions;
  /** Members removed from their organisation; without it a removal takes up to `cacheMs` to reach a cached look-up. */
  removedUsers?: RemovedUsers;
}

/** Look-ups kept at most; beyond it the oldest are dropped (a flood of tokens cannot grow the API's memory). */
const MAX_CACHED_PRINCIPALS = 10_000;

export class TokenService {
  private readonly key: Uint8Array;
  private readonly principals = new Map<string, { until: number; role: string | undefined }>();
  /** CSRF tokens of browser sessions, derived from the same secret. */
  readonly csrf: CsrfTokens;

  constructor(secret: string, readonly expiresInSeconds: number, private readonly opts: TokenServiceOptions = {}) {
    this.key = new TextEncoder().encode(secret);
    this.csrf = new CsrfTokens(secret);
  }

  /** The denylist of logged-out sessions, when the service has one. */
  get revokedSessions(): RevokedSessions | undefined {
    return this.opts.revoked;
  }

  /**
   * The token's user as it is now: TOKEN_INVALID when the user no longer exists, was removed from the organisation
   * or is no longer in the token's organisation. Answers (also "gone") are kept for `cacheMs`; a cached "present" is
   * used only after the removed-members mark in Redis (`removedUsers`) says the user was not removed since.
   */
  async checkPrincipal(auth: Auth): Promise<Auth> {
    const lookup = this.opts.lookup;
    if (!lookup) return auth;
    const cacheMs = this.opts.cacheMs ?? 5000;
    const id = `${auth.orgId}\n${auth.userId}`;
    const now = Date.now();
    let known = this.principals.get(id);
    // Redis unreachable: the mark cannot be read, so the database is asked instead (it knows removals too) rather
    // than every request failing while only Redis is down.
    if (known && known.until > now && known.role !== undefined && await this.opts.removedUsers?.isRemoved(auth.userId).catch(() => true)) {
      known = undefined;
      this.principals.delete(id);
    }
    if (!known || known.until <= now) {
      const found = await lookup(auth);
      known = { until: now + cacheMs, role: found?.role };
      if (cacheMs > 0) {
        this.principals.delete(id);
        this.principals.set(id, known);
        while (this.principals.size > MAX_CACHED_PRINCIPALS) this.principals.delete(this.principals.keys().next().value!);
      }
    }
    if (known.role === undefined) throw new SriError('TOKEN_INVALID', 'The token\'s user no longer exists or no longer belongs to its organisation; log in again with POST /api/auth/login.');
    return { ...auth, role: known.role };
  }

  /** Forgets this process's cached look-up of a user (their role changed, or they were removed). */
  forgetPrincipal(orgId: string, userId: string): void {
    this.principals.delete(`${orgId}\n${userId}`);
  }

  /**
   * Refuses every token of a removed member from now on, in every API process: marks them in Redis for as long as
   * a token can live, and drops this process's cached look-up.
   */
  async revokeUser(orgId: string, userId: string): Promise<void> {
    await this.opts.removedUsers?.markRemoved(userId, this.expiresInSeconds);
    this.forgetPrincipal(orgId, userId);
  }

  async sign(auth: Auth): Promise<string> {
    return (await this.signWithId(auth)).token;
  }

  /** A token with its id (`jti`, what a logout revokes) and expiry (epoch seconds). */
  async signWithId(auth: Auth): Promise<{ token: string; jti: string; exp: number }> {
    const jti = randomUUID();
    const exp = Math.floor(Date.now() / 1000) + this.expiresInSeconds;
    const token = await new SignJWT({ org: auth.orgId })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(auth.userId)
      .setIssuer(ISSUER)
      .setJti(jti)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(this.key);
    return { token, jti, exp };
  }

  async verify(token: string): Promise<Auth> {
    return (await this.verifyClaims(token)).auth;
  }

  async verifyClaims(token: string): Promise<TokenClaims> {
    try {
      // Pinned: HS256 only (not "none", not another HMAC size, not an asymmetric algorithm fed our secret as a
      // public key), our issuer, typ JWT; exp, iat and sub required, and no token older than the configured
      // lifetime even if its exp says otherwise.
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'], issuer: ISSUER, typ: 'JWT', requiredClaims: ['exp', 'iat', 'sub'], maxTokenAge: this.expiresInSeconds,
      });
      if (typeof payload.sub !== 'string' || typeof payload['org'] !== 'string' || typeof payload.exp !== 'number') throw new Error('claims missing');
      return {
        auth: { userId: payload.sub, orgId: payload['org'] }, exp: payload.exp,
        ...(typeof payload.jti === 'string' ? { jti: payload.jti } : {}),
      };
    } catch {
      throw new SriError('TOKEN_INVALID');
    }
  }

  /**
   * The claims of the dashboard's session cookie: TOKEN_INVALID when it does not verify, has no id or was logged
   * out. No CSRF check here (the hook makes it, for the methods that need it).
   */
  async verifySessionCookie(token: string): Promise<TokenClaims & { jti: string }> {
    const claims = await this.verifyClaims(token);
    if (!claims.jti) throw new SriError('TOKEN_INVALID');
    // Redis unreachable: refused (SERVICE_UNAVAILABLE through the error handler) rather than honouring a session
    // that may have been logged out.
    if (await this.opts.revoked?.isRevoked(claims.jti)) {
      throw new SriError('TOKEN_INVALID', 'This session was logged out; log in again.');
    }
    return { ...claims, jti: claims.jti };
  }

  /**
   * preHandler: requires "Authorization: Bearer <token>" or the dashboard's session cookie (with the `x-csrf-token`
   * header on a state-changing request), and sets request.auth.
   */
  hook() {
    return async (req: FastifyRequest) => {
      const header = req.headers.authorization;
      if (header !== undefined) {
        const m = /^Bearer\s+(\S+)$/i.exec(header);
        if (!m) throw new SriError('UNAUTHENTICATED');
        req.auth = { ...await this.checkPrincipal(await this.verify(m[1]!)), via: 'bearer' };
        return;
      }
      const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
      if (!cookie) throw new SriError('UNAUTHENTICATED');
      const claims = await this.verifySessionCookie(cookie);
      if (!isSafeMethod(req.method)) {
        const presented = req.headers[CSRF_HEADER];
        if (!this.csrf.verify(claims.jti, typeof presented === 'string' ? presented : undefined)) throw new SriError('CSRF_TOKEN_INVALID');
      }
      req.auth = { ...await this.checkPrincipal(claims.auth), via: 'cookie' };
    };
  }
}

/** The caller of an authenticated route. */
export function authOf(req: FastifyRequest): Auth {
  if (!req.auth) throw new SriError('UNAUTHENTICATED');
  return req.auth;
}
