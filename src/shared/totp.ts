/**
 * TOTP seeds of a portal connection (docs/security.md "TOTP seeds") and the codes they give (RFC 6238, computed by
 * the maintained `otpauth` library, never by hand). The API checks and normalises seeds as they are connected; the
 * worker computes the current code for `helpers.fillTotp` outside the script; the demo portal checks the codes its
 * second-factor page receives.
 */
import { Secret, TOTP } from 'otpauth';
import { z } from 'zod';

/**
 * Base32 (RFC 4648) as authenticator apps show it: spaces, dashes, lower case and `=` padding are accepted and
 * dropped. At least 16 characters (80 bits, the shortest seed portals hand out), at most 256.
 */
export function normaliseBase32(raw: string): string {
  return raw.replace(/[\s-]+/g, '').replace(/=+$/, '').toUpperCase();
}

const BASE32 = /^[A-Z2-7]{16,256}$/;
export const SEED_RULE = 'must be the base32 seed the portal showed (letters A-Z and digits 2-7, 16 to 256 of them; spaces, dashes and = padding are ignored)';

/** A seed as stored and sent: base32, normalised. */
const Base32Seed = z.string().max(400).transform(normaliseBase32).refine((s) => BASE32.test(s), SEED_RULE);

export const TOTP_ALGORITHMS = ['SHA1', 'SHA256', 'SHA512'] as const;

/**
 * One TOTP seed: the base32 text alone (SHA-1, 6 digits, 30 s — what nearly every portal uses), or the seed with
 * the parameters its portal's otpauth:// link names.
 */
export const TotpSeed = z.union([
  Base32Seed,
  z.strictObject({
    secret: Base32Seed,
    /** @default 'SHA1' */
    algorithm: z.enum(TOTP_ALGORITHMS).optional(),
    /** @default 6 */
    digits: z.number().int().min(6).max(8).optional(),
    /** Seconds per code. @default 30 */
    period: z.number().int().min(10).max(300).optional(),
  }),
]);
export type TotpSeed = z.output<typeof TotpSeed>;

/** Names a flow's `fill {totp}` step and `helpers.fillTotp` use (the same characters as secret names). */
export const TOTP_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Seeds one connection may hold. */
export const MAX_TOTP_SEEDS = 20;

export interface TotpParams { secret: string; algorithm: (typeof TOTP_ALGORITHMS)[number]; digits: number; period: number }

export function totpParams(seed: TotpSeed): TotpParams {
  return typeof seed === 'string'
    ? { secret: seed, algorithm: 'SHA1', digits: 6, period: 30 }
    : { secret: seed.secret, algorithm: seed.algorithm ?? 'SHA1', digits: seed.digits ?? 6, period: seed.period ?? 30 };
}

/** The seed's base32 text (what the redactor must never let through). */
export const totpSecretOf = (seed: TotpSeed): string => (typeof seed === 'string' ? seed : seed.secret);

/** The code of `seed` at `timestampMs` (RFC 6238). */
export function totpCode(seed: TotpSeed, timestampMs: number): string {
  const p = totpParams(seed);
  return TOTP.generate({ secret: Secret.fromBase32(p.secret), algorithm: p.algorithm, digits: p.digits, period: p.period, timestamp: timestampMs });
}

/**
 * Whether `code` is the seed's code at `timestampMs` or within `window` periods of it (a portal's usual tolerance
 * for clock drift and a code typed just before it turned).
 */
export function totpValid(seed: TotpSeed, code: string, timestampMs: number, window = 1): boolean {
  const p = totpParams(seed);
  return TOTP.validate({ token: code, secret: Secret.fromBase32(p.secret), algorithm: p.algorithm, digits: p.digits, period: p.period, timestamp: timestampMs, window }) !== null;
}
