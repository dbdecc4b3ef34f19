/**
 * The platform operator's dashboard session (docs/dashboard.md "System page", docs/security.md "Browser sessions").
 * The CLI keeps sending "Authorization: Bearer <OPERATOR_TOKEN>"; the dashboard exchanges the token once
 * (POST /api/operator/session) for a short-lived HttpOnly cookie, so no script of the page ever holds it.
 *
 * What must hold:
 * - Neither kind of session is ever taken for the other. The operator's session is a JWT signed with a key of its
 *   own (derived from JWT_SECRET under a label, as the CSRF key is), with an issuer of its own, in a cookie of its
 *   own: an organisation user's token does not verify here, and an operator's does not verify as a user's.
 * - It ends with the token that opened it: it carries a fingerprint of OPERATOR_TOKEN, so rotating the token ends
 *   every session; a sign-out puts its id on the same Redis denylist user sessions use.
 * - The audit names the operator the same way whichever door they came through: `operator:<12 hex of SHA-256>`.
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { SriError } from '../../shared/errors.ts';
import { CsrfTokens, type RevokedSessions } from '../http/session-cookie.ts';

const ISSUER = 'sri-control-plane/operator';
const SUBJECT = 'operator';

/**
 * The lockout's "account" of the operator sign-in (auth/lockout.ts counts failures per account). Not an e-mail (it
 * has no "@"), so no user's account shares its count.
 */
export const OPERATOR_LOCKOUT_ACCOUNT = 'platform-operator';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** `operator:<first 12 hex of SHA-256(token)>`: tells tokens apart in the audit without keeping one. */
export const operatorIdentity = (token: string) => `operator:${sha256(token).toString('hex').slice(0, 12)}`;

export interface OperatorSessionClaims {
  jti: string;
  /** Expiry, epoch seconds. */
  exp: number;
  identity: string;
}

export class OperatorSessions {
  private readonly key: Uint8Array;
  private readonly expected: Buffer | undefined;
  private readonly identity: string | undefined;
  /** CSRF tokens of operator sessions: a key of their own, so a user session's CSRF token never fits one. */
  readonly csrf: CsrfTokens;

  constructor(jwtSecret: string, operatorToken: string | undefined, readonly ttlSeconds: number, private readonly revoked?: RevokedSessions) {
    this.key = createHmac('sha256', jwtSecret).update('sri-operator-session-v1').digest();
    this.csrf = new CsrfTokens(`operator-csrf-v1:${jwtSecret}`);
    this.expected = operatorToken === undefined ? undefined : sha256(operatorToken);
    this.identity = operatorToken === undefined ? undefined : operatorIdentity(operatorToken);
  }

  /**
   * Whether `presented` is OPERATOR_TOKEN. Digests of equal length, so the comparison takes the same time whatever
   * the token's length; false for everything while the API has no OPERATOR_TOKEN.
   */
  matches(presented: string): boolean {
    return this.expected !== undefined && timingSafeEqual(sha256(presented), this.expected);
  }

  /** A new session (call only after `matches`). */
  async sign(): Promise<{ token: string } & OperatorSessionClaims> {
    if (!this.identity) throw new SriError('OPERATOR_ONLY');
    const jti = randomUUID();
    const exp = Math.floor(Date.now() / 1000) + this.ttlSeconds;
    const token = await new SignJWT({ op: this.identity })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(SUBJECT).setIssuer(ISSUER).setJti(jti).setIssuedAt().setExpirationTime(exp)
      .sign(this.key);
    return { token, jti, exp, identity: this.identity };
  }

  /**
   * The claims of a live session cookie; OPERATOR_ONLY when it does not verify (another key, issuer or subject: a
   * user's session), is older than the lifetime, was opened with another OPERATOR_TOKEN, or was signed out. Redis
   * unreachable: its error goes on (SERVICE_UNAVAILABLE) rather than honouring a session that may have ended.
   */
  async verify(cookie: string): Promise<OperatorSessionClaims> {
    const claims = await this.verifyIgnoringDenylist(cookie);
    if (!claims) throw new SriError('OPERATOR_ONLY');
    if (await this.revoked?.isRevoked(claims.jti)) throw new SriError('OPERATOR_ONLY');
    return claims;
  }

  /** The claims when the cookie verifies (the denylist aside); undefined otherwise. */
  async verifyIgnoringDenylist(cookie: string): Promise<OperatorSessionClaims | undefined> {
    if (!this.identity) return undefined;
    try {
      const { payload } = await jwtVerify(cookie, this.key, {
        algorithms: ['HS256'], issuer: ISSUER, subject: SUBJECT, typ: 'JWT', requiredClaims: ['exp', 'iat', 'jti'], maxTokenAge: this.ttlSeconds,
      });
      if (payload['op'] !== this.identity || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return undefined;
      return { jti: payload.jti, exp: payload.exp, identity: this.identity };
    } catch {
      return undefined;
    }
  }

  /** Ends a session for every API process (until its own expiry, when it would be refused anyway). */
  async revoke(claims: OperatorSessionClaims): Promise<void> {
    await this.revoked?.revoke(claims.jti, claims.exp);
  }
}
