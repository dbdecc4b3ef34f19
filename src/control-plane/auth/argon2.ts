/**
 * Password hashes with Node's own Argon2 (`crypto.argon2`, Node ≥ 24.7), in the PHC string format
 * (`$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>`, base64 without padding) that the `argon2` npm package wrote
 * before: the hashes already stored in `users.password_hash` verify unchanged, and new ones use that package's
 * defaults (argon2id, 64 MiB, 3 passes, 4 lanes, 16-byte salt, 32-byte tag), so nothing needs rehashing and the
 * package could verify what this writes. No native addon is compiled or loaded for it.
 *
 * Node's Argon2 is version 0x13 only (`v=19`), which is the only version the package ever wrote. A stored string that
 * does not parse, or asks for parameters outside the bounds below, verifies as false: the hash column is ours, but a
 * corrupt row must not allocate gigabytes or throw out of a login.
 */
import * as crypto from 'node:crypto';
import { randomBytes, timingSafeEqual, type Argon2Algorithm } from 'node:crypto';

export interface Argon2Params {
  readonly algorithm: Argon2Algorithm;
  /** Memory in KiB. @default 65536 (64 MiB) */
  readonly memoryKib: number;
  /** Passes over the memory. @default 3 */
  readonly passes: number;
  /** Lanes. @default 4 */
  readonly parallelism: number;
  /** Tag (hash) length. @default 32 */
  readonly tagBytes: number;
  /** Salt length. @default 16 */
  readonly saltBytes: number;
}

/** The `argon2` package's defaults (0.45), which every stored hash so far was made with. */
export const DEFAULT_ARGON2: Argon2Params = Object.freeze({
  algorithm: 'argon2id', memoryKib: 65_536, passes: 3, parallelism: 4, tagBytes: 32, saltBytes: 16,
});

/** What a stored hash may ask for: ten times the default's memory at most, and Node's own lower limits. */
const BOUNDS = { memoryKib: [8, 1_048_576], passes: [1, 64], parallelism: [1, 255], tagBytes: [4, 1024], saltBytes: [8, 1024] } as const;

interface Decoded {
  algorithm: Argon2Algorithm;
  memoryKib: number;
  passes: number;
  parallelism: number;
  salt: Buffer;
  tag: Buffer;
  associatedData?: Buffer;
}

const B64 = /^[A-Za-z0-9+/]+$/;
const b64Encode = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
function b64Decode(s: string): Buffer | undefined {
  return B64.test(s) && s.length % 4 !== 1 ? Buffer.from(s, 'base64') : undefined;
}

function within(name: keyof typeof BOUNDS, n: number): boolean {
  const [lo, hi] = BOUNDS[name];
  return Number.isSafeInteger(n) && n >= lo && n <= hi;
}

function available(): typeof crypto.argon2 {
  // A namespace lookup, not a named import: on a Node without it (older than 24.7: a source checkout run with a
  // system Node outside npm's scripts) the module still loads, and the first hash says what to do.
  const argon2 = (crypto as Partial<typeof crypto>).argon2;
  if (typeof argon2 !== 'function') {
    throw new Error(`node:crypto has no argon2 on Node ${process.versions.node}: the platform needs Node 24 (package.json "engines"); `
      + 'run it through npm (npm start, npm test, npm run sri), which puts the project\'s Node 24 (node_modules/.bin/node) first');
  }
  return argon2;
}

function derive(algorithm: Argon2Algorithm, password: string, salt: Buffer, p: { memoryKib: number; passes: number; parallelism: number; tagBytes: number; associatedData?: Buffer }): Promise<Buffer> {
  const argon2 = available();
  return new Promise((resolve, reject) => {
    argon2(algorithm, {
      message: password, nonce: salt, memory: p.memoryKib, passes: p.passes, parallelism: p.parallelism, tagLength: p.tagBytes,
      ...(p.associatedData ? { associatedData: p.associatedData } : {}),
    }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Parses a PHC string as the argon2 package writes it (parameters in any order, optional `data=`); undefined if it is not one. */
export function decodeArgon2(phc: string): Decoded | undefined {
  const parts = phc.split('$');
  // ['', algorithm, 'v=19', params, salt, hash]
  if (parts.length !== 6 || parts[0] !== '') return undefined;
  const [, algorithm, version, params, salt64, tag64] = parts as [string, string, string, string, string, string];
  if (algorithm !== 'argon2id' && algorithm !== 'argon2i' && algorithm !== 'argon2d') return undefined;
  if (version !== 'v=19') return undefined;
  const fields = new Map<string, string>();
  for (const kv of params.split(',')) {
    const eq = kv.indexOf('=');
    if (eq <= 0 || fields.has(kv.slice(0, eq))) return undefined;
    fields.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  const int = (k: string) => (/^[0-9]{1,10}$/.test(fields.get(k) ?? '') ? Number(fields.get(k)) : NaN);
  const memoryKib = int('m');
  const passes = int('t');
  const parallelism = int('p');
  for (const k of fields.keys()) if (k !== 'm' && k !== 't' && k !== 'p' && k !== 'data') return undefined;
  const salt = b64Decode(salt64);
  const tag = b64Decode(tag64);
  const data = fields.has('data') ? b64Decode(fields.get('data')!) : undefined;
  if (!salt || !tag || (fields.has('data') && !data)) return undefined;
  if (!within('memoryKib', memoryKib) || !within('passes', passes) || !within('parallelism', parallelism)
    || !within('tagBytes', tag.length) || !within('saltBytes', salt.length) || memoryKib < 8 * parallelism) return undefined;
  return { algorithm, memoryKib, passes, parallelism, salt, tag, ...(data ? { associatedData: data } : {}) };
}

/** A new PHC string for `password` with `params` (the argon2 package's defaults unless given). */
export async function hashArgon2(password: string, params: Argon2Params = DEFAULT_ARGON2): Promise<string> {
  const salt = randomBytes(params.saltBytes);
  const tag = await derive(params.algorithm, password, salt, { ...params });
  return `$${params.algorithm}$v=19$m=${params.memoryKib},t=${params.passes},p=${params.parallelism}$${b64Encode(salt)}$${b64Encode(tag)}`;
}

/** Whether `password` matches the PHC string `phc`; false for a string that is not a valid Argon2 hash. */
export async function verifyArgon2(phc: string, password: string): Promise<boolean> {
  const d = decodeArgon2(phc);
  if (!d) return false;
  const tag = await derive(d.algorithm, password, d.salt, { ...d, tagBytes: d.tag.length });
  return timingSafeEqual(tag, d.tag);
}
