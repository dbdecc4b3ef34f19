/**
 * Worker enrolment, the part both planes share (docs/security.md "Worker enrolment"):
 *
 * - An enrolment token is 32 random bytes (base64url) behind the prefix `sri-enrol.`. Redis never holds the token:
 *   only its SHA-256, as the name of the key `sri:enrol:{sha256}` (TTL = the token's lifetime).
 * - That key's value is the worker's Redis credentials (its worker id, ACL user name and password), sealed
 *   (AES-256-GCM, src/shared/sealed.ts) under a key derived (HKDF-SHA256) from the token and bound to the key name:
 *   whoever reads Redis without the token (a backup, a replica, MONITOR, the API's own user) cannot open them.
 * - The worker redeems the token with one `GETDEL` of that key — the only command its bootstrap Redis user
 *   (`sri-enrol`) has. GETDEL is the whole transition (read and consume, atomically), so no script is needed, and the
 *   bootstrap user needs no EVAL: a second redeem, an expired key (Redis removed it at its TTL) and an unknown token
 *   all read nil, and the worker says ENROLMENT_TOKEN_INVALID without telling which.
 * - A worker's Redis ACL rules: the fleet user `sri-worker` of deploy/redis/users.acl and each enrolled worker's own
 *   user (`worker-<id>`, created by the API with ACL SETUSER) have the same commands, keys and channels, except that
 *   an enrolled worker's `sri:worker:*` keys are narrowed to its own id. A test keeps users.acl and these in step.
 */
import { createHash, randomBytes } from 'node:crypto';
import { keys } from './keys.ts';
import { derivedKeyring, open, seal } from './sealed.ts';

export const ENROLMENT_TOKEN_PREFIX = 'sri-enrol.';
/** The Redis user workers redeem tokens as (deploy/redis/users.acl): `GETDEL` on `sri:enrol:*`, nothing else. */
export const ENROL_REDIS_USER = 'sri-enrol';
/** Lifetime of a token unless the operator asks for another (seconds). */
export const DEFAULT_ENROLMENT_TTL_SECONDS = 3600;
export const MAX_ENROLMENT_TTL_SECONDS = 7 * 24 * 3600;

/** Distinct exit code of a worker whose credentials were revoked (sysexits EX_NOPERM), so supervisors can tell. */
export const EXIT_CODE_REVOKED = 77;

/** What an enrolment hands the worker, once. */
export interface WorkerCredentials {
  v: 1;
  workerId: string;
  /** The worker's own Redis ACL user. */
  username: string;
  password: string;
}

export function newEnrolmentToken(): string {
  return ENROLMENT_TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function isEnrolmentToken(text: string): boolean {
  return text.startsWith(ENROLMENT_TOKEN_PREFIX) && /^[A-Za-z0-9_-]{43}$/.test(text.slice(ENROLMENT_TOKEN_PREFIX.length));
}

export const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** The Redis key of a token: `sri:enrol:{sha256 of the token}`. */
export const enrolTokenKey = (token: string) => keys.enrolToken(sha256Hex(token));

/** Redis ACL user name of an enrolled worker. */
export const workerAclUsername = (workerId: string) => `worker-${workerId}`;

const keyringOf = (token: string) => derivedKeyring(token, 'sri-enrolment-v1', 'enrol');

export function sealCredentials(token: string, credentials: WorkerCredentials): string {
  return seal(keyringOf(token), JSON.stringify(credentials), enrolTokenKey(token));
}

/** Throws SealError when `sealed` was not sealed for this token (or was altered). */
export function openCredentials(token: string, sealed: string): WorkerCredentials {
  const c = JSON.parse(open(keyringOf(token), sealed, enrolTokenKey(token))) as Partial<WorkerCredentials>;
  if (c.v !== 1 || typeof c.workerId !== 'string' || typeof c.username !== 'string' || typeof c.password !== 'string') {
    throw new Error('enrolment credentials of an unknown shape');
  }
  return c as WorkerCredentials;
}

/** Commands of a worker's Redis user: what src/shared/queue, src/execution-plane and worker-registry.ts send. */
const WORKER_COMMANDS = [
  '+ping', '+info', '+quit', '+client|setname', '+evalsha', '+eval', '+multi', '+exec', '+get', '+set', '+mget', '+del', '+exists',
  '+expire', '+pexpire', '+incr', '+incrby', '+time', '+hget', '+hmget', '+hset', '+hdel', '+hincrby', '+lrange', '+lindex', '+llen', '+lmove',
  '+rpoplpush', '+lpush', '+rpush', '+lpop', '+blpop', '+sadd', '+srem', '+sismember', '+smembers', '+sunion', '+zadd', '+zrem', '+zscore',
  '+zrangebyscore', '+zrangebylex', '+zremrangebyscore', '+xadd', '+scan', '+publish', '+subscribe',
];

/**
 * Each key pattern also under its Redis Cluster name (`sri:…` → `{sri}:…`, docs/redis-keys.md "On Redis Cluster"),
 * so one set of rules serves both kinds of Redis; a pattern of keys that keep their name on Cluster matches nothing
 * there and costs nothing.
 */
export function withClusterNames(rules: readonly string[]): string[] {
  return rules.flatMap((r) => {
    const m = /^(%[RW]+~|~)sri:(.*)$/.exec(r);
    return m ? [r, `${m[1]}{sri}:${m[2]}`] : [r];
  });
}

/**
 * The ACL rules of a worker's Redis user (after `on` and its password): the fleet user's with no `workerId`, an
 * enrolled worker's own with it — its heartbeat, info and stats keys only, so it cannot write another worker's.
 * Worker ids are `[A-Za-z0-9_.-]`, so they hold no glob character.
 */
export function workerAclRules(workerId?: string): string[] {
  if (workerId !== undefined && !/^[A-Za-z0-9_.-]{1,128}$/.test(workerId)) throw new Error(`worker id ${JSON.stringify(workerId)} is not [A-Za-z0-9_.-]{1,128}`);
  return withClusterNames([
    'resetkeys', 'resetchannels', '-@all', ...WORKER_COMMANDS,
    '~sri:org:*:jobs', '~sri:org:*:ready:*', '~sri:org:*:dlq', '~sri:queue:*', '~sri:lease:*', '~sri:job:*',
    '~sri:dlq:*', workerId === undefined ? '~sri:worker:*' : `~sri:worker:${workerId}:*`, '~sri:workers', '~sri:provider-gate:*',
    '~sri:sessions:*', '%R~sri:orgs', '%R~sri:org:*:quota', '%R~sri:workers:revoked', '%R~sri:provider:*',
    '%R~sri:worker-config', '&sri:control', '&sri:org:*:done', '&sri:worker-config:changed',
  ]);
}

/** REDIS_URL with its user and password replaced by the worker's own (host, port, database, TLS scheme kept). */
export function redisUrlWithCredentials(redisUrl: string, username: string, password: string): string {
  const u = new URL(redisUrl);
  u.username = encodeURIComponent(username);
  u.password = encodeURIComponent(password);
  return u.toString();
}
