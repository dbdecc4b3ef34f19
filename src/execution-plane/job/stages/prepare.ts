/**
 * The attempt's first stage: the verified script (inline, from S3, or a module bundle), the portal session and the
 * job's sealed secrets (all added to the attempt's redactor), the hosts its browser may reach, and the provider's
 * session check. Nothing of the browser yet: a failure here is the job's ('prepare' phase).
 */
import type { Redis } from 'ioredis';
import { keys } from '../../../shared/keys.ts';
import { SriError } from '../../../shared/errors.ts';
import { moduleRefScript } from '../../../shared/modules/ref.ts';
import { isNotFound } from '../../../shared/s3.ts';
import type { Keyring } from '../../../shared/sealed.ts';
import type { JobMessage, Session } from '../../../shared/schemas.ts';
import { decodeSession, openJobSecrets, transportKeyring } from '../../../shared/transport-secrets.ts';
import { totpSecretOf } from '../../../shared/totp.ts';
import type { BrowserContext } from 'playwright-core';
import { moduleLoaderOf } from '../../script/module-loader.ts';
import { verifyJobScript, type VerifiedScript } from '../../script/verified-script.ts';
import type { JobAttempt } from '../attempt.ts';
import { boundWait } from '../deadline.ts';
import { describeJobHosts, egressPolicyOf, resolveJobHosts, type JobHosts } from '../egress-hosts.ts';
import type { EgressPolicy } from '../egress-policy.ts';
import { loadSessionHealth, StoredSession, type SessionHealth } from '../session-health.ts';
import { S3_CALL_TIMEOUT_MS } from '../attempt.ts';

/** The job's session health: the provider's check and login flow, the stored session, the cookies at the end. */
export interface JobSessions {
  readonly health: SessionHealth | undefined;
  readonly stored: StoredSession;
  /** The context's cookies when the script ended (unset when the context was already closing). */
  finalCookies?: Awaited<ReturnType<BrowserContext['cookies']>>;
}

/** What the browser stage needs, found and verified before a browser is touched. */
export interface Prepared {
  readonly script: VerifiedScript;
  /** The stored session with the job's secrets merged into its credentials. */
  readonly session: Session;
  readonly sessions: JobSessions;
  readonly hosts: JobHosts;
  readonly policy: EgressPolicy;
}

export async function prepareAttempt(a: JobAttempt): Promise<Prepared> {
  const { job, deps, exec, trace, redactor, secretValues, config } = a;
  const script = await loadVerifiedScript(a, (line) => exec.info(line));
  exec.info(`script verified: sha256 ${script.scriptHash}, signature valid`);
  trace.enter('session');
  const keyring = transportKeyring(config);
  const { stored, raw: storedRaw } = await loadSession(job, deps.redis, keyring);
  redactor.add(stored.cookies.map((c) => c.value));
  redactor.add(Object.values(stored.credentials ?? {}));
  // HttpOnly cookies are the session's tokens: no page can read them, so no data the page shows can be one. The
  // others (a locale, a consent flag) are session metadata the page may well show, and stay in parsed data.
  secretValues.add(stored.cookies.filter((c) => c.httpOnly === true).map((c) => c.value));
  secretValues.add(Object.values(stored.credentials ?? {}));
  // TOTP seeds: the base32 text as stored (normalised by the API); their codes are added as fillTotp makes them.
  const seeds = Object.values(stored.totp ?? {}).map(totpSecretOf);
  redactor.add(seeds);
  secretValues.add(seeds);
  exec.info(`session loaded: ${stored.cookies.length} cookie(s), ${Object.keys(stored.credentials ?? {}).length} credential(s)${seeds.length ? `, ${seeds.length} TOTP seed(s)` : ''}`);
  // The organisation's secrets the flow references (sealed by the control plane for this job): fillSecret looks
  // them up before the session's credentials. Only their names are logged.
  const jobSecrets = job.secrets === undefined ? {} : openJobSecrets(keyring, job, job.secrets);
  redactor.add(Object.values(jobSecrets));
  secretValues.add(Object.values(jobSecrets));
  if (job.secrets !== undefined) exec.info(`job secrets: ${Object.keys(jobSecrets).map((n) => JSON.stringify(n)).join(', ') || 'none'}`);
  const session: Session = { ...stored, credentials: { ...stored.credentials, ...jobSecrets } };

  // Deny by default: the job's allowedHosts, else its provider's from the catalogue, else nothing (egress-hosts.ts).
  const hosts = await resolveJobHosts(job, deps.redis, config.requireJobSignature);
  if (hosts.source === 'missing') exec.warn(describeJobHosts(hosts, job.providerName));
  else exec.info(describeJobHosts(hosts, job.providerName));
  // The provider's session check and login flow (verified like the script), and the session to save cookies to.
  const sessions: JobSessions = {
    health: await loadSessionHealth(deps.redis, job.providerName, config.scriptSigningSecret, exec),
    stored: new StoredSession(deps.redis, keyring, job, storedRaw, stored),
  };
  return { script, session, sessions, hosts, policy: egressPolicyOf(hosts) };
}

/**
 * Inline content, else the object scriptKey names; hash and signature verified either way. A module job: the signed
 * reference, then the bundle it resolves to (module-loader.ts), which runs as a script does.
 */
async function loadVerifiedScript(a: JobAttempt, note: (line: string) => void): Promise<VerifiedScript> {
  const { job, deps, config } = a;
  if (job.module !== undefined) {
    verifyJobScript(moduleRefScript(job.module), job.scriptHash, job.signature, config.scriptSigningSecret);
    const m = await (deps.modules ?? moduleLoaderOf(deps.blobStore, config)).load(job.module, job.orgId);
    note(`module ${job.module}: running ${m.name}@${m.version} (signature and checksums verified)`);
    return m.script;
  }
  let text = job.scriptContent;
  if (text === undefined) {
    const key = job.scriptKey!;
    let body: Buffer | undefined;
    try {
      // Cancelled, not only given up on, over its time or when the worker shuts down (JobAttempt.ioSignal).
      const signal = a.ioSignal();
      body = await boundWait(deps.blobStore.get(config.s3ScriptsBucket, key, { signal }), S3_CALL_TIMEOUT_MS, 'reading the script', signal);
    } catch (e) {
      if (isNotFound(e)) body = undefined;
      else throw new SriError('SERVICE_UNAVAILABLE', `Could not read the script ${key} from S3: ${(e as Error).message}`);
    }
    if (!body) throw new SriError('SCRIPT_NOT_FOUND', `Script ${key} is not in bucket ${config.s3ScriptsBucket}`);
    text = body.toString('utf8');
  }
  return verifyJobScript(text, job.scriptHash, job.signature, config.scriptSigningSecret);
}

/**
 * The session: sealed by the API under TRANSPORT_KEYS, or plain JSON written by hand (transport-secrets.ts), with
 * the value as stored (cookies are saved back only over it: session-health.ts).
 */
async function loadSession(job: JobMessage, redis: Redis, keyring: Keyring): Promise<{ stored: Session; raw: string }> {
  const key = keys.session(job.orgId, job.userId, job.providerName);
  const raw = await redis.get(key);
  if (raw === null) throw new SriError('SESSION_NOT_FOUND', 'Session not found');
  return { stored: decodeSession(keyring, key, raw), raw };
}
