/**
 * The only way to obtain a VerifiedScript is `verifyJobScript`, which checks hash then signature; script runners
 * accept nothing else. So "no code is compiled that has not passed both checks" (issue 2, invariant 1) is held by
 * the type system, not by call order.
 */
import { SriError } from '../../shared/errors.ts';
import { verifyScript } from '../../shared/signing.ts';

const brand: unique symbol = Symbol('VerifiedScript');

export interface VerifiedScript {
  readonly [brand]: true;
  readonly text: string;
  readonly scriptHash: string;
}

export function verifyJobScript(text: string, scriptHash: string, signature: string, secret: string): VerifiedScript {
  const verdict = verifyScript(text, scriptHash, signature, secret);
  if (verdict === 'hash-mismatch') throw new SriError('SCRIPT_INTEGRITY', 'Script integrity compromised');
  if (verdict === 'signature-mismatch') throw new SriError('SCRIPT_UNAUTHORIZED', 'Unauthorized script');
  return Object.freeze({ [brand]: true as const, text, scriptHash: scriptHash.toLowerCase() });
}
