/**
 * What crosses Redis encrypted under TRANSPORT_KEYS (src/shared/sealed.ts), written by the control plane and read
 * by workers:
 * - a provider session written through the API (`POST /api/providers/{id}/connect`), bound to its Redis key, so it
 *   cannot be copied under another organisation's or user's key. A plain JSON session (written by hand with
 *   `redis-cli SET`, as in the README's manual test) is still read as it is;
 * - the tenant secrets a job's flow references, sealed into the job message's `secrets` field, bound to the job's
 *   id, organisation and user.
 */
import { SriError } from './errors.ts';
import { describeZodError, Session, type Session as SessionT } from './schemas.ts';
import { derivedKeyring, isSealed, open, seal, SealError, type Keyring } from './sealed.ts';

/** TRANSPORT_KEYS, or — when unset — one key derived from SCRIPT_SIGNING_SECRET, which both planes hold already. */
export function transportKeyring(config: { readonly transportKeys?: Keyring | undefined; readonly scriptSigningSecret: string }): Keyring {
  return config.transportKeys ?? derivedKeyring(config.scriptSigningSecret, 'sri transport keys v1', 'signing');
}

const sessionContext = (redisKey: string) => `session\n${redisKey}`;
const jobContext = (job: JobIds) => `job-secrets\n${JSON.stringify([job.jobId, job.orgId, job.userId])}`;

export interface JobIds { readonly jobId: string; readonly orgId: string; readonly userId: string }

export function sealSession(keyring: Keyring, redisKey: string, session: SessionT): string {
  return seal(keyring, JSON.stringify(session), sessionContext(redisKey));
}

function unreadable(what: string, e: unknown, fix: string): SriError {
  const why = e instanceof SealError ? e.message : 'it could not be decrypted';
  return new SriError('SECRETS_UNREADABLE', `${what} could not be decrypted (${why}). ${fix}`);
}

/**
 * The session stored at `redisKey`: sealed (API) or plain JSON (by hand). Throws SESSION_NOT_FOUND when it is not
 * a valid session, SECRETS_UNREADABLE when it is sealed under a key this process does not hold.
 */
export function decodeSession(keyring: Keyring, redisKey: string, raw: string): SessionT {
  let text = raw;
  if (isSealed(raw)) {
    try {
      text = open(keyring, raw, sessionContext(redisKey));
    } catch (e) {
      throw unreadable('The stored session', e, 'Give the API and the workers the same TRANSPORT_KEYS, then connect the provider again.');
    }
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new SriError('SESSION_NOT_FOUND', 'Session not found: the stored session is not valid JSON; connect the provider again.');
  }
  const r = Session.safeParse(data);
  if (!r.success) throw new SriError('SESSION_NOT_FOUND', `Session not found: the stored session is not valid (${describeZodError(r.error)}); connect the provider again.`);
  return r.data;
}

export function sealJobSecrets(keyring: Keyring, job: JobIds, secrets: Readonly<Record<string, string>>): string {
  return seal(keyring, JSON.stringify(secrets), jobContext(job));
}

/** The name → value map of a job's `secrets` field; SECRETS_UNREADABLE when it does not open for this job. */
export function openJobSecrets(keyring: Keyring, job: JobIds, sealed: string): Record<string, string> {
  let text: string;
  try {
    text = open(keyring, sealed, jobContext(job));
  } catch (e) {
    throw unreadable('The job\'s secrets', e, 'Give the API and the workers the same TRANSPORT_KEYS; a job\'s secrets open only for its own ids.');
  }
  const data = JSON.parse(text) as unknown;
  if (typeof data !== 'object' || data === null || Array.isArray(data) || !Object.values(data).every((v) => typeof v === 'string')) {
    throw new SriError('SECRETS_UNREADABLE', 'The job\'s secrets are not a map of names to strings.');
  }
  return Object.assign(Object.create(null) as Record<string, string>, data);
}
