/**
 * Exact decimal arithmetic for the parser's checks: amounts stay the strings the XML holds, and sums are done on
 * integers scaled by 10^SCALE (BigInt), so no check is ever off by a floating-point rounding.
 */

/** Enough for the SRI's widest amounts (cantidad and precioUnitario carry up to 6 decimals). */
const SCALE = 6;
const ONE = 10n ** BigInt(SCALE);
/** One cent, the tolerance of every total check. */
export const CENT = ONE / 100n;

/** "12.5" → 12500000n; null for anything that is not a plain decimal number. */
export function toScaled(s: string | undefined): bigint | null {
  if (s === undefined) return null;
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s.trim());
  if (!m) return null;
  const frac = (m[3] ?? '').padEnd(SCALE, '0');
  // Digits beyond SCALE are cut, not rounded: the SRI's schemas allow at most 6.
  const v = BigInt(m[2]!) * ONE + BigInt(frac.slice(0, SCALE) || '0');
  return m[1] === '-' ? -v : v;
}

/** Multiplies two scaled values, rounding half away from zero back to the scale. */
export function mulScaled(a: bigint, b: bigint): bigint {
  const p = a * b;
  const half = ONE / 2n;
  return p >= 0n ? (p + half) / ONE : -((-p + half) / ONE);
}

/** Rounds a scaled value to two decimals (half away from zero), still scaled. */
export function roundCents(v: bigint): bigint {
  const unit = ONE / 100n;
  const half = unit / 2n;
  return v >= 0n ? ((v + half) / unit) * unit : -((-v + half) / unit) * unit;
}

/** Scaled value → "123.45" (two decimals; more only when needed). */
export function formatScaled(v: bigint, decimals = 2): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const int = a / ONE;
  let frac = (a % ONE).toString().padStart(SCALE, '0');
  while (frac.length > decimals && frac.endsWith('0')) frac = frac.slice(0, -1);
  return `${neg ? '-' : ''}${int}.${frac}`;
}

export function abs(v: bigint): bigint {
  return v < 0n ? -v : v;
}
