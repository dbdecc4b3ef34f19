/**
 * Secrets of the embedded stack. The environment wins; otherwise they are generated once (crypto random) and kept
 * in DATA_DIR/secrets.json, readable by the owner alone, so that restarts keep tokens and script signatures valid.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SriError } from '../shared/errors.ts';
import { MIN_SIGNING_SECRET_LENGTH } from '../shared/signing.ts';

export const SECRETS_FILE = 'secrets.json';

const StoredSecrets = z.object({
  scriptSigningSecret: z.string().min(MIN_SIGNING_SECRET_LENGTH),
  jwtSecret: z.string().min(32),
});
export type StackSecrets = z.infer<typeof StoredSecrets>;

export interface ResolvedSecrets extends StackSecrets {
  /** Where each came from, for the start-up summary (never the values). */
  readonly source: { scriptSigningSecret: 'env' | 'file'; jwtSecret: 'env' | 'file' };
  readonly file: string;
}

const generate = () => randomBytes(32).toString('hex');

export function resolveSecrets(dataDir: string, fromEnv: { scriptSigningSecret?: string; jwtSecret?: string }): ResolvedSecrets {
  const file = join(dataDir, SECRETS_FILE);
  let stored: StackSecrets | undefined;
  if (existsSync(file)) {
    const parsed = StoredSecrets.safeParse(safeJson(readFileSync(file, 'utf8')));
    if (!parsed.success) {
      throw new SriError('CONFIG_INVALID', `${file} is not valid; delete it to generate new secrets (existing tokens and flow signatures stop verifying).`);
    }
    stored = parsed.data;
  }
  const needFile = !fromEnv.scriptSigningSecret || !fromEnv.jwtSecret;
  if (needFile && !stored) {
    stored = { scriptSigningSecret: generate(), jwtSecret: generate() };
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    // The mode given to writeFileSync is masked by the umask; make sure.
    chmodSync(file, 0o600);
  }
  return {
    scriptSigningSecret: fromEnv.scriptSigningSecret ?? stored!.scriptSigningSecret,
    jwtSecret: fromEnv.jwtSecret ?? stored!.jwtSecret,
    source: {
      scriptSigningSecret: fromEnv.scriptSigningSecret ? 'env' : 'file',
      jwtSecret: fromEnv.jwtSecret ? 'env' : 'file',
    },
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
