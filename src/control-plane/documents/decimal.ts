/**
 * Exact sums of the decimal strings the SRI's XML writes ("12.50", "0.105"): scaled BigInts, never floats, so a
 * column of an export adds up to the cent the documents say.
 */
const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/** `a + b`, both decimal strings; the result keeps the larger number of fraction digits (at least 2). */
export function addDecimals(a: string, b: string): string {
  const pa = DECIMAL.exec(a);
  const pb = DECIMAL.exec(b);
  if (!pa || !pb) throw new Error(`not a decimal: ${pa ? b : a}`);
  const scale = Math.max(2, pa[3]?.length ?? 0, pb[3]?.length ?? 0);
  const scaled = (m: RegExpExecArray) => {
    const v = BigInt((m[2] ?? '0') + (m[3] ?? '').padEnd(scale, '0'));
    return m[1] === '-' ? -v : v;
  };
  const sum = scaled(pa) + scaled(pb);
  const neg = sum < 0n;
  const digits = (neg ? -sum : sum).toString().padStart(scale + 1, '0');
  return `${neg ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

export const isDecimal = (s: string): boolean => DECIMAL.test(s);
