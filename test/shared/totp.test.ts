/**
 * TOTP codes (src/shared/totp.ts) against RFC 6238 Appendix B's test vectors — SHA-1, SHA-256 and SHA-512, 8 digits,
 * 30 s — and the seed rules the API applies (base32, normalised; src/shared/totp.ts TotpSeed).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseBase32, TotpSeed, totpCode, totpValid } from '../../src/shared/totp.ts';

/** RFC 4648 base32, written here so the vectors do not depend on the library's own encoder. */
function base32(bytes: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

// RFC 6238 Appendix B: the seeds are the ASCII digits "1234567890" repeated to 20, 32 and 64 bytes.
const SEEDS = {
  SHA1: base32(Buffer.from('12345678901234567890', 'ascii')),
  SHA256: base32(Buffer.from('12345678901234567890123456789012', 'ascii')),
  SHA512: base32(Buffer.from('1234567890123456789012345678901234567890123456789012345678901234', 'ascii')),
} as const;

const VECTORS: Array<[seconds: number, sha1: string, sha256: string, sha512: string]> = [
  [59, '94287082', '46119246', '90693936'],
  [1111111109, '07081804', '68084774', '25091201'],
  [1111111111, '14050471', '67062674', '99943326'],
  [1234567890, '89005924', '91819424', '93441116'],
  [2000000000, '69279037', '90698825', '38618901'],
  [20000000000, '65353130', '77737706', '47863826'],
];

describe('TOTP codes (RFC 6238)', () => {
  it('gives every code of RFC 6238 Appendix B for SHA-1, SHA-256 and SHA-512', () => {
    for (const [seconds, ...expected] of VECTORS) {
      (['SHA1', 'SHA256', 'SHA512'] as const).forEach((algorithm, i) => {
        const code = totpCode({ secret: SEEDS[algorithm], algorithm, digits: 8, period: 30 }, seconds * 1000);
        assert.equal(code, expected[i], `${algorithm} at T=${seconds}`);
      });
    }
  });

  it('defaults to SHA-1, 6 digits and 30 s: the last six digits of the RFC\'s SHA-1 codes', () => {
    for (const [seconds, sha1] of VECTORS) assert.equal(totpCode(SEEDS.SHA1, seconds * 1000), sha1.slice(2));
  });

  it('accepts a code one period either side of now and refuses others', () => {
    const now = 1111111111_000;
    assert.equal(totpValid(SEEDS.SHA1, totpCode(SEEDS.SHA1, now - 30_000), now), true);
    assert.equal(totpValid(SEEDS.SHA1, totpCode(SEEDS.SHA1, now + 30_000), now), true);
    assert.equal(totpValid(SEEDS.SHA1, totpCode(SEEDS.SHA1, now - 90_000), now), false);
    assert.equal(totpValid(SEEDS.SHA1, '000000', now), false);
  });
});

describe('TOTP seeds', () => {
  it('normalises spaces, dashes, lower case and padding, as authenticator apps show seeds', () => {
    assert.equal(normaliseBase32(' gezd gnbv-gy3t qojq gezdgnbvgy3tqojq== '), SEEDS.SHA1);
    assert.equal(TotpSeed.parse('gezd gnbv gy3t qojq gezd gnbv gy3t qojq'), SEEDS.SHA1);
    assert.deepEqual(TotpSeed.parse({ secret: SEEDS.SHA256.toLowerCase(), algorithm: 'SHA256', digits: 8 }), { secret: SEEDS.SHA256, algorithm: 'SHA256', digits: 8 });
  });

  it('refuses what is not a base32 seed: a code, digits 0, 1, 8, 9, other symbols, fewer than 16 characters, an otpauth link', () => {
    for (const bad of ['123456', 'GEZDGNBVGY3TQOJ0GEZD', 'GEZDGNBVGY3TQOJ1', 'GEZDGNBVGY3TQOJ8', 'GEZD!NBVGY3TQOJQ', 'GEZDGNBVGY3TQOJ', '',
      'otpauth://totp/Demo?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ']) {
      assert.equal(TotpSeed.safeParse(bad).success, false, JSON.stringify(bad));
    }
    assert.equal(TotpSeed.safeParse({ secret: SEEDS.SHA1, digits: 9 }).success, false);
    assert.equal(TotpSeed.safeParse({ secret: SEEDS.SHA1, algorithm: 'MD5' }).success, false);
  });
});
