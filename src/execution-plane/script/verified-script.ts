/**
 * The only way to obtain a VerifiedScript is `verifyJobScript`, which checks hash then signature; script runners
 * accept nothing else. So "no code is compiled that has not passed both checks" (issue 2, invariant 1) is held by
 * the type system, not by call order.
 */
import { SriError } from '../../shared/errors.ts';
import type { ModuleManifest } from '../../shared/modules/manifest.ts';
import { bundleScriptText, textSha256, verifyBundle } from '../../shared/modules/signature.ts';
import type { Keyring } from '../../shared/sealed.ts';
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

/**
 * A module bundle's one script text (modules/signature.ts bundleScriptText), made only once the bundle's signature
 * and every file's checksum verified — the module path's counterpart of verifyJobScript. A refusal throws
 * MODULE_SIGNATURE_INVALID (authority) or MODULE_INTEGRITY (checksums, completeness, manifest).
 */
export async function verifyModuleBundle(
  keyring: Keyring, name: string, version: string, read: (file: string) => Promise<Buffer | undefined>,
): Promise<{ script: VerifiedScript; manifest: ModuleManifest }> {
  const verdict = await verifyBundle(keyring, name, version, read);
  if (!verdict.ok) {
    const code = verdict.reason === 'checksum' || verdict.reason === 'malformed' ? 'MODULE_INTEGRITY' : 'MODULE_SIGNATURE_INVALID';
    throw new SriError(code, `Module ${name}@${version} refused: ${verdict.message}`);
  }
  const text = bundleScriptText(verdict.manifest, verdict.files);
  return { script: Object.freeze({ [brand]: true as const, text, scriptHash: textSha256(text) }), manifest: verdict.manifest };
}
