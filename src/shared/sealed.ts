/**
 * Authenticated encryption (AES-256-GCM) of small secrets under a keyring, with the key id kept in the sealed text
 * so keys can rotate: the first key of a keyring seals, every key of it opens.
 *
 * Keyring text (SECRETS_KEYS, TRANSPORT_KEYS): `kid2:base64key,kid1:base64key` — ids of 1-32 characters
 * A-Z a-z 0-9 _ -, keys of exactly 32 bytes in standard or URL-safe base64. Sealed text:
 * `sri-enc:v1:<kid>:<iv>:<tag>:<ciphertext>` (base64url). The caller's `context` is the additional authenticated
 * data: a sealed value only opens under the context it was sealed for (the Redis key of a session, the ids of a job),
 * so it cannot be copied to another user, organisation or job.
 *
 * Who holds which keyring (docs/security.md): SECRETS_KEYS only the control plane (tenant secrets at rest in
 * PostgreSQL); TRANSPORT_KEYS both planes (what crosses Redis: sessions written by the API, secrets of a job).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';

export const SEALED_PREFIX = 'sri-enc:v1:';
export const KEY_BYTES = 32;
const KID = /^[A-Za-z0-9_-]{1,32}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Why a sealed value did not open. Never carries key material or plaintext. */
export class SealError extends Error {
  constructor(readonly reason: 'malformed' | 'unknown-key' | 'tampered', message: string) {
    super(message);
    this.name = 'SealError';
  }
}

/**
 * Keys by id; the first seals. Key bytes are kept in a private field and never printed (inspect, JSON), so a
 * configuration object holding a keyring can be logged without leaking it.
 */
export class Keyring {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly primary: string;

  constructor(entries: ReadonlyArray<readonly [string, Buffer]>) {
    if (entries.length === 0) throw new Error('a keyring needs at least one key');
    this.#keys = new Map(entries.map(([kid, key]) => [kid, Buffer.from(key)]));
    this.primary = entries[0]![0];
  }

  get kids(): string[] {
    return [...this.#keys.keys()];
  }

  key(kid: string): Buffer | undefined {
    return this.#keys.get(kid);
  }

  toJSON(): { primary: string; kids: string[] } {
    return { primary: this.primary, kids: this.kids };
  }

  [inspect.custom](): string {
    return `Keyring(${this.kids.join(', ')})`;
  }
}

/**
 * Parses `kid:base64key,…`. Throws an Error whose message names the faulty entry (by position and id, never the
 * key) — the configuration loader prefixes it with the variable's name.
 */
export function parseKeyring(text: string): Keyring {
  const parts = text.split(',').map((p) => p.trim());
  const entries: [string, Buffer][] = [];
  parts.forEach((part, i) => {
    const where = `entry ${i + 1}`;
    const colon = part.indexOf(':');
    if (colon < 0) throw new Error(`${where} must be kid:base64key (e.g. k1:$(openssl rand -base64 32)), got no ":"`);
    const kid = part.slice(0, colon);
    const b64 = part.slice(colon + 1);
    if (!KID.test(kid)) throw new Error(`${where}: key id must be 1-32 characters of A-Z a-z 0-9 _ -`);
    if (entries.some(([k]) => k === kid)) throw new Error(`${where}: key id "${kid}" appears twice`);
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(b64)) throw new Error(`${where} (${kid}): the key is not base64`);
    const key = Buffer.from(b64.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length !== KEY_BYTES) {
      throw new Error(`${where} (${kid}): the key must be ${KEY_BYTES} bytes (AES-256), got ${key.length}; make one with: openssl rand -base64 32`);
    }
    entries.push([kid, key]);
  });
  return new Keyring(entries);
}

/** A keyring text with one new random key: what `sri up` stores when the environment gives none. */
export function generateKeyringText(kid = 'k1'): string {
  return `${kid}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

/**
 * One key derived (HKDF-SHA256) from `secret` for `purpose`, under the key id `kid`: the fallback when a keyring
 * variable is unset but both sides already share a secret (docs/security.md says what that costs).
 */
export function derivedKeyring(secret: string, purpose: string, kid = 'derived'): Keyring {
  return new Keyring([[kid, Buffer.from(hkdfSync('sha256', secret, 'sri-keyring', purpose, KEY_BYTES))]]);
}

export function isSealed(text: string): boolean {
  return text.startsWith(SEALED_PREFIX);
}

const aadOf = (kid: string, context: string) => Buffer.from(`${SEALED_PREFIX}${kid}\n${context}`, 'utf8');

/** Encrypts `plaintext` under the keyring's first key, bound to `context`. */
export function seal(keyring: Keyring, plaintext: string, context: string): string {
  const kid = keyring.primary;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyring.key(kid)!, iv);
  cipher.setAAD(aadOf(kid, context));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${SEALED_PREFIX}${kid}:${iv.toString('base64url')}:${cipher.getAuthTag().toString('base64url')}:${ct.toString('base64url')}`;
}

/** The key id a sealed text names, or undefined when it is not sealed text. */
export function sealedKeyId(sealed: string): string | undefined {
  if (!isSealed(sealed)) return undefined;
  return sealed.slice(SEALED_PREFIX.length).split(':')[0];
}

/** Decrypts a sealed text; throws SealError when it is malformed, sealed under an unknown key, altered or moved. */
export function open(keyring: Keyring, sealed: string, context: string): string {
  if (!isSealed(sealed)) throw new SealError('malformed', 'not sealed text');
  const [kid, iv, tag, ct, extra] = sealed.slice(SEALED_PREFIX.length).split(':');
  if (!kid || !iv || !tag || ct === undefined || extra !== undefined) throw new SealError('malformed', 'sealed text has the wrong number of parts');
  const key = keyring.key(kid);
  if (!key) throw new SealError('unknown-key', `sealed under key id "${kid.slice(0, 32)}", which is not in the keyring (${keyring.kids.join(', ')})`);
  const ivBytes = Buffer.from(iv, 'base64url');
  const tagBytes = Buffer.from(tag, 'base64url');
  if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES) throw new SealError('malformed', 'sealed text has a bad nonce or tag');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, ivBytes);
    decipher.setAAD(aadOf(kid, context));
    decipher.setAuthTag(tagBytes);
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new SealError('tampered', `sealed text under key id "${kid}" does not authenticate: it was altered, or sealed for another context`);
  }
}
