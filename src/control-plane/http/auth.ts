/**
 * Passwords (argon2id) and API tokens (JWT, HS256 only: the verifier pins the algorithm, so a token signed with
 * "none" or with an asymmetric algorithm is refused).
 */
import argon2 from 'argon2';
import { SignJWT, jwtVerify } from 'jose';
import type { FastifyRequest } from 'fastify';
import { SriError } from '../../shared/errors.ts';

export interface Auth { userId: string; orgId: string }

declare module 'fastify' {
  interface FastifyRequest {
    auth?: Auth;
  }
}

const ISSUER = 'sri-control-plane';

export function checkPasswordStrength(password: string): void {
  if (password.length < 10 || !/[A-Za-z]/.test(password) || !/[0-9]/.test(password)) throw new SriError('WEAK_PASSWORD');
}

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id });
}

let dummyHash: Promise<string> | undefined;
/** Verifies a password; with no hash (unknown e-mail) it still spends the time of one verification. */
export async function verifyPassword(hash: string | undefined, password: string): Promise<boolean> {
  if (hash === undefined) {
    dummyHash ??= hashPassword('dummy-password-0');
    await argon2.verify(await dummyHash, password).catch(() => false);
    return false;
  }
  return argon2.verify(hash, password).catch(() => false);
}

export class TokenService {
  private readonly key: Uint8Array;

  constructor(secret: string, private readonly expiresInSeconds: number) {
    this.key = new TextEncoder().encode(secret);
  }

  sign(auth: Auth): Promise<string> {
    return new SignJWT({ org: auth.orgId })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(auth.userId)
      .setIssuer(ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + this.expiresInSeconds)
      .sign(this.key);
  }

  async verify(token: string): Promise<Auth> {
    try {
      // Pinned: HS256 only (not "none", not another HMAC size, not an asymmetric algorithm fed our secret as a
      // public key), our issuer, typ JWT; exp, iat and sub required, and no token older than the configured
      // lifetime even if its exp says otherwise.
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'], issuer: ISSUER, typ: 'JWT', requiredClaims: ['exp', 'iat', 'sub'], maxTokenAge: this.expiresInSeconds,
      });
      if (typeof payload.sub !== 'string' || typeof payload['org'] !== 'string') throw new Error('claims missing');
      return { userId: payload.sub, orgId: payload['org'] };
    } catch {
      throw new SriError('TOKEN_INVALID');
    }
  }

  /** preHandler: requires "Authorization: Bearer <token>" and sets request.auth. */
  hook() {
    return async (req: FastifyRequest) => {
      const header = req.headers.authorization;
      const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
      if (!m) throw new SriError('UNAUTHENTICATED');
      req.auth = await this.verify(m[1]!);
    };
  }
}

/** The caller of an authenticated route. */
export function authOf(req: FastifyRequest): Auth {
  if (!req.auth) throw new SriError('UNAUTHENTICATED');
  return req.auth;
}
