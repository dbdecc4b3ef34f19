/**
 * Secrets of the embedded stack. The environment wins; otherwise they are generated once (crypto random) and kept
 * in DATA_DIR/secrets.json, readable by the owner alone, so that restarts keep tokens, script signatures and stored
 * tenant secrets (SECRETS_KEYS) valid. A file written before SECRETS_KEYS existed gets it added; the secrets
 * already in it are kept. TRANSPORT_KEYS is not generated: unset, both planes derive it from SCRIPT_SIGNING_SECRET,
 * so any worker that joins the stack with the signing secret (`sri worker`, or a test's own process) reads the
 * sessions the API seals.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SriError } from '../shared/errors.ts';
import { generateKeyringText, parseKeyring } from '../shared/sealed.ts';
import { MIN_SIGNING_SECRET_LENGTH } from '../shared/signing.ts';

export const SECRETS_FILE = 'secrets.json';

const Keys = z.string().refine((t) => {
  try {
    parseKeyring(t);
    return true;
  } catch {
    return false;
  }
}, 'is not a keyring (kid:base64key of 32 bytes)');
const StoredSecrets = z.object({
  scriptSigningSecret: z.string().min(MIN_SIGNING_SECRET_LENGTH),
  jwtSecret: z.string().min(32),
  /** Added by a later release: absent from older files, generated then. */
  secretsKeys: Keys.optional(),
});
export type StackSecrets = z.infer<typeof StoredSecrets>;

type Name = 'scriptSigningSecret' | 'jwtSecret' | 'secretsKeys';
const NAMES: readonly Name[] = ['scriptSigningSecret', 'jwtSecret', 'secretsKeys'];

export interface ResolvedSecrets extends Required<StackSecrets> {
  /** Where each came from, for the start-up summary (never the values). */
  readonly source: Record<Name, 'env' | 'file'>;
  readonly file: string;
}

const generators: Record<Name, () => string> = {
  scriptSigningSecret: () => randomBytes(32).toString('hex'),
  jwtSecret: () => randomBytes(32).toString('hex'),
  secretsKeys: () => generateKeyringText('s1'),
};

export function resolveSecrets(dataDir: string, fromEnv: Partial<Record<Name, string>>): ResolvedSecrets {
  const file = join(dataDir, SECRETS_FILE);
  let stored: StackSecrets | undefined;
  if (existsSync(file)) {
    const parsed = StoredSecrets.safeParse(safeJson(readFileSync(file, 'utf8')));
    if (!parsed.success) {
      throw new SriError('CONFIG_INVALID', `${file} is not valid; delete it to generate new secrets (existing tokens and flow signatures stop verifying).`);
    }
    stored = parsed.data;
  }
  const missing = NAMES.filter((n) => !fromEnv[n] && !stored?.[n]);
  if (missing.length) {
    const next = { ...(stored ?? {}) } as Record<Name, string>;
    for (const n of missing) next[n] = generators[n]();
    mkdirSync(dataDir, { recursive: true });
    // Written whole to a new file, then renamed over the old one: a crash never leaves half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    // The mode given to writeFileSync is masked by the umask; make sure.
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
    stored = next;
  }
  const pick = (n: Name) => (fromEnv[n] || stored![n])!;
  return {
    scriptSigningSecret: pick('scriptSigningSecret'),
    jwtSecret: pick('jwtSecret'),
    secretsKeys: pick('secretsKeys'),
    source: Object.fromEntries(NAMES.map((n) => [n, fromEnv[n] ? 'env' : 'file'])) as Record<Name, 'env' | 'file'>,
    file,
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The secrets `sri up` stored, or undefined when it never ran with this DATA_DIR. `sri api` and `sri worker` use
 * them as defaults so that they can join a stack started with `sri up`.
 */
export function readStoredSecrets(dataDir: string): StackSecrets | undefined {
  const file = join(dataDir, SECRETS_FILE);
  if (!existsSync(file)) return undefined;
  const parsed = StoredSecrets.safeParse(safeJson(readFileSync(file, 'utf8')));
  return parsed.success ? parsed.data : undefined;
}
