/**
 * Integrity and authority of a module bundle (docs/modules.md "Signature"):
 * - `SHA256SUMS`: one line per file, `<sha256 hex>  <name>\n`, sorted by name, covering manifest.json and every
 *   file the manifest lists — nothing more, nothing less;
 * - `signature.json`: `{ "v": 1, "alg": "hmac-sha256", "keyId": "k1", "sig": "<hex>" }` over
 *   `sri-module-v1\n{name}@{version}\n` followed by the SHA256SUMS text. The name and version are signed so a bundle
 *   cannot be copied under another name or version; the domain tag keeps this signature apart from script and job
 *   envelope signatures made with related keys.
 * `alg` is a discriminant so a publisher's Ed25519 key (`"alg": "ed25519"`, `sig` base64url of 64 bytes, `keyId` the
 * publisher key's id) fits later without a new format: today no Ed25519 key is configured, so such a signature is
 * refused as unverifiable — never accepted unchecked.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { hexEqual } from '../signing.ts';
import { derivedKeyring, type Keyring } from '../sealed.ts';
import { moduleFiles, ModuleManifest } from './manifest.ts';

export const MODULE_SIGNATURE_TAG = 'sri-module-v1';

const KeyId = z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be a key id of 1-32 characters A-Z a-z 0-9 _ -');

export const ModuleSignature = z.discriminatedUnion('alg', [
  z.object({ v: z.literal(1), alg: z.literal('hmac-sha256'), keyId: KeyId, sig: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters') }).strict(),
  z.object({ v: z.literal(1), alg: z.literal('ed25519'), keyId: KeyId, sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'must be base64url of 64 bytes') }).strict(),
]);
export type ModuleSignature = z.infer<typeof ModuleSignature>;

/**
 * The key ring modules are signed with: MODULE_SIGNING_KEYS when set (the first key signs, every key verifies, so
 * keys rotate as sealed.ts's do), else one key derived from SCRIPT_SIGNING_SECRET, which both planes hold already.
 */
export function moduleSigningKeyring(config: { readonly moduleSigningKeys?: Keyring | undefined; readonly scriptSigningSecret: string }): Keyring {
  return config.moduleSigningKeys ?? derivedKeyring(config.scriptSigningSecret, 'sri module signing v1', 'signing');
}

const sha256 = (body: Buffer | string) => createHash('sha256').update(body).digest('hex');

/** The SHA256SUMS text of `files` (name → bytes). */
export function checksumsText(files: ReadonlyMap<string, Buffer>): string {
  return [...files.keys()].sort().map((name) => `${sha256(files.get(name)!)}  ${name}\n`).join('');
}

/** Reads SHA256SUMS; undefined when it is not exactly the format checksumsText writes. */
export function parseChecksums(text: string): Map<string, string> | undefined {
  if (!text.endsWith('\n')) return undefined;
  const out = new Map<string, string>();
  for (const line of text.slice(0, -1).split('\n')) {
    const m = /^([0-9a-f]{64}) {2}([A-Za-z0-9_.-]{1,100})$/.exec(line);
    if (!m || out.has(m[2]!)) return undefined;
    out.set(m[2]!, m[1]!);
  }
  return out;
}

export function signedText(name: string, version: string, checksums: string): string {
  return `${MODULE_SIGNATURE_TAG}\n${name}@${version}\n${checksums}`;
}

const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text, 'utf8').digest('hex');

/** Signs the bundle's checksums with the key ring's first key. */
export function signModule(keyring: Keyring, name: string, version: string, checksums: string): ModuleSignature {
  const keyId = keyring.primary;
  return { v: 1, alg: 'hmac-sha256', keyId, sig: hmac(keyring.key(keyId)!, signedText(name, version, checksums)) };
}

/** A bundle as publish makes it: every object to store under `modules/{name}/{version}/`. */
export interface SignedBundle {
  readonly manifest: ModuleManifest;
  /** File name → bytes: the manifest's files, manifest.json, SHA256SUMS and signature.json. */
  readonly objects: ReadonlyMap<string, Buffer>;
}

/** Builds the signed bundle of `manifest` and its `files` (name → bytes; exactly the files the manifest lists). */
export function buildSignedBundle(keyring: Keyring, manifest: ModuleManifest, files: ReadonlyMap<string, Buffer>): SignedBundle {
  const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
  const covered = new Map<string, Buffer>([['manifest.json', manifestBytes]]);
  for (const f of moduleFiles(manifest)) {
    const body = files.get(f);
    if (!body) throw new Error(`file ${f} of the manifest is missing`);
    covered.set(f, body);
  }
  const sums = checksumsText(covered);
  const signature = signModule(keyring, manifest.name, manifest.version, sums);
  const objects = new Map(covered);
  objects.set('SHA256SUMS', Buffer.from(sums, 'utf8'));
  objects.set('signature.json', Buffer.from(`${JSON.stringify(signature)}\n`, 'utf8'));
  return { manifest, objects };
}

/** Why a bundle was refused; `reason` is stable, `message` says what to do. */
export type BundleVerdict =
  | { ok: true; manifest: ModuleManifest; files: Map<string, string> }
  | { ok: false; reason: 'malformed' | 'checksum' | 'signature' | 'unknown-key' | 'unsupported-alg'; message: string };

/**
 * Verifies a downloaded bundle: the signature over SHA256SUMS first (authority), then every file against its sum
 * (integrity), then the manifest — which must name the `name` and `version` it was fetched as. `read` gives a
 * file's bytes, or undefined when it is missing.
 */
export async function verifyBundle(
  keyring: Keyring, name: string, version: string, read: (file: string) => Promise<Buffer | undefined>,
): Promise<BundleVerdict> {
  const [sumsBody, sigBody] = await Promise.all([read('SHA256SUMS'), read('signature.json')]);
  if (!sumsBody || !sigBody) return { ok: false, reason: 'malformed', message: `the bundle has no ${!sumsBody ? 'SHA256SUMS' : 'signature.json'}` };
  let sigJson: unknown;
  try {
    sigJson = JSON.parse(sigBody.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed', message: 'signature.json is not JSON' };
  }
  const alg = (sigJson as { alg?: unknown } | null)?.alg;
  if (alg !== 'hmac-sha256' && alg !== 'ed25519') {
    return { ok: false, reason: 'unsupported-alg', message: `signature.json names the algorithm ${JSON.stringify(alg)?.slice(0, 40)}; this platform verifies hmac-sha256 (and ed25519 once a publisher key is configured)` };
  }
  const sig = ModuleSignature.safeParse(sigJson);
  if (!sig.success) return { ok: false, reason: 'malformed', message: `signature.json is not a module signature: ${sig.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}` };
  if (sig.data.alg === 'ed25519') {
    return { ok: false, reason: 'unsupported-alg', message: `signature.json is an ed25519 signature of publisher key "${sig.data.keyId}", and no ed25519 publisher key is configured` };
  }
  const key = keyring.key(sig.data.keyId);
  if (!key) return { ok: false, reason: 'unknown-key', message: `signed with key id "${sig.data.keyId}", which is not in the module signing key ring (${keyring.kids.join(', ')})` };
  const sumsText = sumsBody.toString('utf8');
  if (!hexEqual(hmac(key, signedText(name, version, sumsText)), sig.data.sig)) {
    return { ok: false, reason: 'signature', message: `the signature of ${name}@${version} does not match its checksums: the bundle was altered, or signed for another name or version` };
  }
  const sums = parseChecksums(sumsText);
  if (!sums || !sums.has('manifest.json')) return { ok: false, reason: 'malformed', message: 'SHA256SUMS is not one "<sha256>  <file>" line per file with manifest.json among them' };
  const bodies = new Map<string, Buffer>();
  for (const [file, expected] of sums) {
    const body = await read(file);
    if (!body) return { ok: false, reason: 'checksum', message: `${file} is listed in SHA256SUMS but missing from the bundle` };
    if (!timingSafeEqual(Buffer.from(sha256(body), 'hex'), Buffer.from(expected, 'hex'))) {
      return { ok: false, reason: 'checksum', message: `${file} does not match its checksum: the file was altered after it was signed` };
    }
    bodies.set(file, body);
  }
  let manifestJson: unknown;
  try {
    manifestJson = JSON.parse(bodies.get('manifest.json')!.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed', message: 'manifest.json is not JSON' };
  }
  const manifest = ModuleManifest.safeParse(manifestJson);
  if (!manifest.success) return { ok: false, reason: 'malformed', message: `manifest.json: ${manifest.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}` };
  if (manifest.data.name !== name || manifest.data.version !== version) {
    return { ok: false, reason: 'malformed', message: `manifest.json names ${manifest.data.name}@${manifest.data.version}, not ${name}@${version}` };
  }
  const listed = moduleFiles(manifest.data);
  const extra = [...sums.keys()].filter((f) => f !== 'manifest.json' && !listed.includes(f));
  const missing = listed.filter((f) => !sums.has(f));
  if (extra.length || missing.length) {
    return { ok: false, reason: 'checksum', message: `SHA256SUMS and the manifest disagree (${[...missing.map((f) => `${f} not summed`), ...extra.map((f) => `${f} not in the manifest`)].join(', ')})` };
  }
  return { ok: true, manifest: manifest.data, files: new Map(listed.map((f) => [f, bodies.get(f)!.toString('utf8')])) };
}

/**
 * The one script text a bundle runs as: its files in load order (the entry last), each after a comment naming it.
 * Scripts run as classic scripts in one scope (script/module-rewrite.ts), so the helpers files declare what the
 * entry uses, as `<script>` tags of one page do.
 */
export function bundleScriptText(manifest: ModuleManifest, files: ReadonlyMap<string, string>): string {
  return moduleFiles(manifest).map((f) => `// ── ${manifest.name}@${manifest.version}/${f}\n${files.get(f)!}\n`).join('');
}

/** The lowercase hex SHA-256 of text, for logs. */
export const textSha256 = (text: string): string => sha256(Buffer.from(text, 'utf8'));
