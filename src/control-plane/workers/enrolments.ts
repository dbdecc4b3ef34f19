/**
 * Worker enrolment and revocation, the control plane's side (docs/security.md "Worker enrolment"). Workers serve
 * every organisation, so this is the platform operator's (OPERATOR_TOKEN), not an organisation admin's.
 *
 * - create: a worker id, its own Redis ACL user `worker-<id>` with a random password (ACL SETUSER, the rules of
 *   src/shared/enrolment.ts), the record in `sri:enrolments`, and the one-time token's key `sri:enrol:{sha256}`
 *   (the sealed credentials, TTL = the token's lifetime) — one MULTI, so a refused ACL SETUSER leaves nothing behind.
 *   The token is returned once and kept nowhere; the password is kept nowhere but sealed in that key (Redis keeps
 *   only its SHA-256 in the ACL, as does the record, so the user can be put back).
 * - revoke: `sri:workers:revoked` (what a worker without ACL reads at its heartbeat), and for an enrolled worker, in
 *   the same MULTI: the unused token deleted, its user disabled, its connections killed (CLIENT KILL USER) and the
 *   user deleted. Its reconnects then fail with WRONGPASS and it exits (src/execution-plane/revocation.ts).
 * - reconcile: Redis keeps ACL users in memory; ACL SAVE writes them to the ACL file when Redis has one, but a Redis
 *   restarted without it (or with a freshly rendered file) has lost them. Every API puts them back from the records
 *   at start, on every reconnect to Redis and every RECONCILE_INTERVAL_MS — and deletes those of revoked workers and
 *   of tokens that expired without a worker ever connecting, so no live password outlives its enrolment.
 */
import { randomBytes } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';
import {
  newEnrolmentToken, sealCredentials, sha256Hex, workerAclRules, workerAclUsername,
} from '../../shared/enrolment.ts';
import { SriError } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/logger.ts';

export interface EnrolmentRecord {
  workerId: string;
  name: string | null;
  /** The worker's Redis ACL user. */
  username: string;
  /** SHA-256 of its password, as ACL SETUSER `#<hash>` takes it: enough to put the user back, not to log in. */
  passwordSha256: string;
  /** Names the token's key `sri:enrol:{tokenSha256}`. */
  tokenSha256: string;
  createdAt: number;
  expiresAt: number;
  revokedAt?: number;
}

/**
 * pending: the token waits to be redeemed. redeemed: the token was used, the worker has not started yet.
 * enrolled: the worker started with its credentials (its stats hash exists). expired: the token is gone and no
 * worker ever started with it, past its expiry (its Redis user is deleted). revoked.
 */
export type EnrolmentStatus = 'pending' | 'redeemed' | 'enrolled' | 'expired' | 'revoked';

export interface EnrolmentView {
  workerId: string;
  name: string | null;
  redisUser: string;
  status: EnrolmentStatus;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
}

export interface RevokeOutcome {
  workerId: string;
  revokedAt: string;
  /** True when the worker had its own Redis user (now deleted); false: only marked, the worker stops by itself. */
  enforced: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString();

function parseRecord(raw: string): EnrolmentRecord | undefined {
  try {
    const r = JSON.parse(raw) as EnrolmentRecord;
    return typeof r.workerId === 'string' && typeof r.username === 'string' && typeof r.passwordSha256 === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

export class WorkerEnrolments {
  private aclFileWarned = false;

  constructor(private readonly redis: Redis, private readonly logger: Logger, private readonly now: () => number = Date.now) {}

  async create(opts: { ttlSeconds: number; name?: string }): Promise<{ token: string; enrolment: EnrolmentView }> {
    const workerId = `${opts.name ?? 'worker'}-${randomBytes(5).toString('hex')}`;
    const username = workerAclUsername(workerId);
    const password = randomBytes(32).toString('hex');
    const token = newEnrolmentToken();
    const now = this.now();
    const record: EnrolmentRecord = {
      workerId, name: opts.name ?? null, username, passwordSha256: sha256Hex(password), tokenSha256: sha256Hex(token),
      createdAt: now, expiresAt: now + opts.ttlSeconds * 1000,
    };
    await this.exec(this.redis.multi()
      .call('ACL', 'SETUSER', username, 'reset', 'on', `#${record.passwordSha256}`, ...workerAclRules(workerId))
      .hset(keys.enrolments, workerId, JSON.stringify(record))
      .set(keys.enrolToken(record.tokenSha256), sealCredentials(token, { v: 1, workerId, username, password }), 'PX', opts.ttlSeconds * 1000));
    await this.save();
    this.logger.info({ workerId, redisUser: username, expiresAt: iso(record.expiresAt) }, 'worker enrolment created');
    return { token, enrolment: this.view(record, 'pending') };
  }

  async list(): Promise<EnrolmentView[]> {
    const records = await this.records();
    const states = await this.statuses(records);
    return records.map((r, i) => this.view(r, states[i]!));
  }

  async revoke(workerId: string): Promise<RevokeOutcome> {
    const raw = await this.redis.hget(keys.enrolments, workerId);
    const record = raw ? parseRecord(raw) : undefined;
    if (!record) {
      // A worker without enrolment (the fleet user, `sri up`): known from the registry or its stats.
      const [inRegistry, hasStats] = await Promise.all([this.redis.zscore(keys.workers, workerId), this.redis.exists(keys.workerStats(workerId))]);
      if (inRegistry === null && !hasStats) throw new SriError('WORKER_NOT_FOUND', `No worker and no enrolment ${workerId}; list enrolments with GET /api/operator/worker-enrolments and workers with sri workers.`);
    }
    const revokedAt = record?.revokedAt ?? this.now();
    const m = this.redis.multi().hset(keys.workersRevoked, workerId, String(revokedAt));
    if (record) {
      // `off` first (creating the user if Redis lost it, so CLIENT KILL USER knows it), then kill, then delete:
      // no window in which a killed connection logs in again.
      m.hset(keys.enrolments, workerId, JSON.stringify({ ...record, revokedAt }))
        .del(keys.enrolToken(record.tokenSha256))
        .call('ACL', 'SETUSER', record.username, 'off')
        .call('CLIENT', 'KILL', 'USER', record.username)
        .call('ACL', 'DELUSER', record.username);
    }
    await this.exec(m);
    if (record) await this.save();
    this.logger.warn({ workerId, enforced: Boolean(record) }, 'worker revoked');
    return { workerId, revokedAt: iso(revokedAt), enforced: Boolean(record) };
  }

  /**
   * Puts back the Redis users of pending, redeemed and enrolled workers that Redis lost, and deletes those of revoked
   * and expired ones. Returns how many users it changed.
   */
  async reconcile(): Promise<number> {
    const records = await this.records();
    if (!records.length) return 0;
    const states = await this.statuses(records);
    const users = new Set(await this.redis.call('ACL', 'USERS') as string[]);
    let changed = 0;
    for (const [i, r] of records.entries()) {
      const live = states[i] === 'pending' || states[i] === 'redeemed' || states[i] === 'enrolled';
      if (live && !users.has(r.username)) {
        await this.redis.call('ACL', 'SETUSER', r.username, 'reset', 'on', `#${r.passwordSha256}`, ...workerAclRules(r.workerId));
        changed++;
      } else if (!live && users.has(r.username)) {
        await this.redis.call('ACL', 'DELUSER', r.username);
        changed++;
      }
    }
    if (changed) {
      this.logger.warn({ changed }, 'enrolled workers\' Redis users reconciled (Redis had lost some, or some enrolments ended)');
      await this.save();
    }
    return changed;
  }

  private async records(): Promise<EnrolmentRecord[]> {
    const all = await this.redis.hgetall(keys.enrolments);
    return Object.values(all).map(parseRecord).filter((r): r is EnrolmentRecord => r !== undefined).sort((a, b) => b.createdAt - a.createdAt);
  }

  private async statuses(records: EnrolmentRecord[]): Promise<EnrolmentStatus[]> {
    if (!records.length) return [];
    const p = this.redis.pipeline();
    for (const r of records) p.exists(keys.enrolToken(r.tokenSha256)).exists(keys.workerStats(r.workerId));
    const replies = ((await p.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return Number(v) === 1;
    });
    const now = this.now();
    return records.map((r, i): EnrolmentStatus => {
      if (r.revokedAt !== undefined) return 'revoked';
      if (replies[2 * i]) return 'pending';
      if (replies[2 * i + 1]) return 'enrolled';
      return now >= r.expiresAt ? 'expired' : 'redeemed';
    });
  }

  private view(r: EnrolmentRecord, status: EnrolmentStatus): EnrolmentView {
    return {
      workerId: r.workerId, name: r.name, redisUser: r.username, status, createdAt: iso(r.createdAt), expiresAt: iso(r.expiresAt),
      revokedAt: r.revokedAt === undefined ? null : iso(r.revokedAt),
    };
  }

  /** MULTI → replies; a command the API's Redis user may not run (ACL, CLIENT KILL) → WORKER_ACL_UNAVAILABLE. */
  private async exec(m: ChainableCommander): Promise<void> {
    const asAclError = (e: unknown) => {
      const all = [e, ...(((e as { previousErrors?: unknown[] }).previousErrors) ?? [])] as Error[];
      return all.some((x) => /^NOPERM/.test(x?.message ?? '')) ? new SriError('WORKER_ACL_UNAVAILABLE', undefined, { cause: e }) : e;
    };
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await m.exec();
    } catch (e) {
      throw asAclError(e);
    }
    for (const [err] of replies ?? []) if (err) throw asAclError(err);
  }

  /**
   * ACL SAVE: with an ACL file (deploy/redis/users.acl) the enrolled users survive a Redis restart. Redis without one
   * (`sri up`, a config-file ACL) refuses it; reconcile() then puts the users back after a restart.
   */
  private async save(): Promise<void> {
    try {
      await this.redis.call('ACL', 'SAVE');
    } catch (e) {
      const msg = (e as Error).message;
      if (/not configured to use an ACL file/i.test(msg)) {
        if (!this.aclFileWarned) this.logger.info('Redis has no ACL file: enrolled workers\' users live in memory and are put back by the API after a Redis restart');
        this.aclFileWarned = true;
        return;
      }
      this.logger.warn({ err: msg.slice(0, 200) }, 'ACL SAVE failed: enrolled workers\' users are put back by the API after a Redis restart');
    }
  }
}
