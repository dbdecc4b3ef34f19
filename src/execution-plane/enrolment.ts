/**
 * The worker's identity at start (docs/security.md "Worker enrolment"), in this order:
 *   1. WORKER_CREDENTIALS_FILE, when the file exists: the credentials an earlier enrolment gave (a restarted container
 *      keeps its identity);
 *   2. WORKER_ENROLMENT_TOKEN: redeemed once, as REDIS_URL's user (the bootstrap user `sri-enrol`), with one GETDEL
 *      of `sri:enrol:{sha256(token)}`; the sealed credentials open with the token; written to the file when one is set;
 *   3. otherwise REDIS_URL and WORKER_ID as configured (the fleet user `sri-worker`, or `sri up`'s default user) — also
 *      when WORKER_CREDENTIALS_FILE names a file that does not exist yet.
 * An enrolled worker runs with the id its enrolment assigned and REDIS_URL's host, port and TLS with its own user and
 * password. The token and the password are never logged.
 */
import { accessSync, constants, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { enrolTokenKey, openCredentials, redisUrlWithCredentials, type WorkerCredentials } from '../shared/enrolment.ts';
import { SriError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { createRedis } from '../shared/redis.ts';
import type { WorkerConfig } from './config.ts';
import { isAuthRefusal } from './revocation.ts';

export interface WorkerIdentity {
  config: WorkerConfig;
  /** Where the identity came from; `configured` = no enrolment (revocation is then cooperative only). */
  source: 'configured' | 'enrolment' | 'credentials-file';
}

/**
 * Redeems `token` on `redisUrl` (which must name the bootstrap user): GETDEL, then opens the sealed credentials.
 * ENROLMENT_TOKEN_INVALID when the key is gone (used, expired, never existed — indistinguishable on purpose);
 * CONFIG_INVALID when REDIS_URL's user is refused or may not GETDEL `sri:enrol:*`; WORKER_REDIS_LOST when Redis does
 * not answer within `waitMs` (0 = wait for it).
 */
export async function redeemEnrolment(redisUrl: string, token: string, waitMs: number): Promise<WorkerCredentials> {
  // The bootstrap user may run GETDEL and nothing else: no INFO ready check, no CLIENT SETNAME / SETINFO.
  const conn = createRedis(redisUrl, { enableReadyCheck: false, disableClientInfo: true });
  let refuse: (e: Error) => void = () => {};
  const refused = new Promise<never>((_, reject) => { refuse = reject; });
  refused.catch(() => {});
  conn.on('error', (e: Error) => { if (isAuthRefusal(e)) refuse(e); });
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<never>((_, reject) => {
    if (waitMs === 0) return; // WORKER_REDIS_MAX_OUTAGE_MS=0: wait for Redis as long as it takes
    timer = setTimeout(() => reject(new SriError('WORKER_REDIS_LOST',
      `Redis at REDIS_URL did not answer within ${waitMs} ms (WORKER_REDIS_MAX_OUTAGE_MS) while redeeming the enrolment token; the token is still unused.`)), waitMs);
  });
  gaveUp.catch(() => {});
  let sealed: string | null;
  try {
    sealed = await Promise.race([conn.getdel(enrolTokenKey(token)), refused, gaveUp]);
  } catch (e) {
    if (e instanceof SriError) throw e;
    const msg = (e as Error).message;
    if (isAuthRefusal(e as Error)) {
      throw new SriError('CONFIG_INVALID', `Invalid configuration: Redis refused REDIS_URL's user (${msg.slice(0, 120)}); with WORKER_ENROLMENT_TOKEN, REDIS_URL must name the bootstrap user sri-enrol and its password (docs/security.md "Worker enrolment").`);
    }
    if (/^NOPERM/.test(msg)) {
      throw new SriError('CONFIG_INVALID', `Invalid configuration: REDIS_URL's user may not redeem enrolment tokens (${msg.slice(0, 120)}); with WORKER_ENROLMENT_TOKEN, REDIS_URL must name the bootstrap user sri-enrol (docs/security.md "Worker enrolment").`);
    }
    throw e;
  } finally {
    clearTimeout(timer);
    conn.disconnect();
  }
  if (sealed === null) throw new SriError('ENROLMENT_TOKEN_INVALID');
  try {
    return openCredentials(token, sealed);
  } catch {
    // The key existed and is now consumed, but its value was not sealed for this token: altered in Redis.
    throw new SriError('ENROLMENT_TOKEN_INVALID', 'The enrolment token was redeemed but its credentials did not open (the value in Redis was altered); ask the operator to revoke this enrolment and make a new token.');
  }
}

function readCredentialsFile(path: string): WorkerCredentials | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SriError('CONFIG_INVALID', `Invalid configuration: WORKER_CREDENTIALS_FILE ${path} cannot be read (${(e as NodeJS.ErrnoException).code}).`);
  }
  // The file is the worker's password: refuse one that others may read, rather than go on using a leaked secret.
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new SriError('CONFIG_INVALID', `Invalid configuration: WORKER_CREDENTIALS_FILE ${path} has mode ${mode.toString(8)}; it holds the worker's Redis password, so only its owner may read it (chmod 600).`);
  }
  try {
    const c = JSON.parse(text) as Partial<WorkerCredentials>;
    if (c.v === 1 && typeof c.workerId === 'string' && typeof c.username === 'string' && typeof c.password === 'string') return c as WorkerCredentials;
  } catch { /* reported below */ }
  throw new SriError('CONFIG_INVALID', `Invalid configuration: WORKER_CREDENTIALS_FILE ${path} does not hold worker credentials; remove it and enrol the worker again.`);
}

/** Written once, mode 0600, via a rename so a crash never leaves half a file. */
function writeCredentialsFile(path: string, credentials: WorkerCredentials): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(credentials)}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, path);
}

function enrolledConfig(config: WorkerConfig, c: WorkerCredentials): WorkerConfig {
  return Object.freeze({
    ...config, workerId: c.workerId, redisUrl: redisUrlWithCredentials(config.redisUrl, c.username, c.password), enrolmentToken: undefined,
  });
}

export async function resolveWorkerIdentity(config: WorkerConfig, logger: Logger): Promise<WorkerIdentity> {
  const file = config.credentialsFile;
  if (file) {
    const stored = readCredentialsFile(file);
    if (stored) {
      logger.info({ workerId: stored.workerId, redisUser: stored.username, file }, 'worker credentials read from WORKER_CREDENTIALS_FILE');
      return { config: enrolledConfig(config, stored), source: 'credentials-file' };
    }
  }
  if (config.enrolmentToken) {
    if (file) {
      // Checked before the token is spent: a redeemed token whose credentials cannot be kept would be lost at the next restart.
      try {
        mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
        accessSync(dirname(file), constants.W_OK);
      } catch (e) {
        throw new SriError('CONFIG_INVALID', `Invalid configuration: WORKER_CREDENTIALS_FILE ${file}: its directory is not writable (${(e as NodeJS.ErrnoException).code}); the token was not used.`);
      }
    }
    const credentials = await redeemEnrolment(config.redisUrl, config.enrolmentToken, config.redisMaxOutageMs);
    if (file) {
      try {
        writeCredentialsFile(file, credentials);
      } catch (e) {
        // The token is spent: run with the credentials in memory rather than throw them away.
        logger.error({ file, err: (e as Error).message }, 'could not write WORKER_CREDENTIALS_FILE; the credentials are kept in memory only (a restart needs a new token)');
      }
    }
    if (config.workerId !== credentials.workerId) logger.info({ configuredWorkerId: config.workerId }, 'WORKER_ID is replaced by the id the enrolment assigned');
    logger.info({ workerId: credentials.workerId, redisUser: credentials.username }, 'worker enrolled');
    return { config: enrolledConfig(config, credentials), source: 'enrolment' };
  }
  // No file yet and no token: the worker runs as REDIS_URL says (a deployment that sets the file's path for workers
  // that may or may not get a token, as deploy/k8s/worker.yaml does).
  if (file) logger.info({ file }, 'no WORKER_CREDENTIALS_FILE yet and no WORKER_ENROLMENT_TOKEN: running as REDIS_URL\'s user');
  return { config, source: 'configured' };
}
