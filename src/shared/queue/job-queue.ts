/**
 * The reliable job queue both planes share (docs/queue.md). Producers keep `LPUSH sri:org:{orgId}:jobs <json>`;
 * everything after the push is one Lua transition per step (./lua/*.lua), registered once per connection under
 * versioned names (`sri_v3_<name>`). Reads that change nothing (lists, stats) are plain commands.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SriError } from '../errors.ts';
import { JOB_RESULT_TTL_SECONDS, keys } from '../keys.ts';
import { scanKeys } from '../redis.ts';
import type { JobMessage, ResultMessage } from '../schemas.ts';
import { registerScripts, type LuaCall } from './lua-loader.ts';

export interface QueueOptions {
  /** How long a take stays leased without renewal; workers renew every leaseMs / 3. @default 30000 */
  leaseMs: number;
  /** Larger messages are dead-lettered unread. @default 1048576 (1 MiB) */
  maxJobBytes: number;
  /** How long result messages (and the cancel flag, the attempt counter) stay in Redis. @default 7 days */
  resultTtlSeconds: number;
}

export const DEFAULT_QUEUE_OPTIONS: QueueOptions = Object.freeze({
  leaseMs: 30_000, maxJobBytes: 1024 * 1024, resultTtlSeconds: JOB_RESULT_TTL_SECONDS,
});

/** A job leased to one worker; `token` names the lease. */
export interface Taken {
  token: string;
  orgId: string;
  raw: string;
  /** Present when the message has a valid jobId of the queue's organisation (status and lease index are set). */
  jobId?: string;
  /** The attempt this run is: max(message.attempt ?? 1, the attempt recorded when a lease was recovered). */
  attempt: number;
  leaseDeadline: number;
  /** True when `attempt` was raised by the recovery of an expired lease (the previous attempt lost its worker). */
  recovered?: boolean;
}

export type CompleteOutcome = 'recorded' | 'late';
/** Counts a completion in the worker's stats hash (sri:worker:{workerId}:stats) in the same step. */
export interface CountedAs { workerId: string; durationMs: number; finishedAt: number }
export type CancelOutcome = 'cancelled' | 'cancelling' | 'final' | 'unknown';

export interface DlqEntry { id: string; orgId: string; jobId?: string; reason: string; raw: string; truncated: boolean; at: number }

export interface Quota { maxConcurrent: number | null; perMinute: number | null }

export interface QueueStats { lateResults: number; queued: Record<string, number>; leased: number; delayed: number; dead: number }

/** Message on sri:control; workers subscribe. */
export interface ControlMessage { type: 'cancel'; jobId: string }

/** Raw messages kept in a dead-letter entry are cut to this many bytes (the entry says so). */
export const DLQ_RAW_LIMIT_BYTES = 64 * 1024;
/** Messages one take moves from the producer list into the ready lists (also bounded to 4 MiB in the script). */
const REFILL_BATCH = 32;
/** Leases recovered / retries promoted per script call: keeps each call short; the caller loops. */
const SWEEP_BATCH = 100;

/** Whether a Redis server version can run the queue's scripts (6.2+: LMOVE). */
export function supportsQueue(redisVersion: string): boolean {
  const [major = 0, minor = 0] = redisVersion.split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 2);
}

export function truncateRaw(raw: string): { raw: string; truncated: boolean } {
  if (raw.length * 3 <= DLQ_RAW_LIMIT_BYTES) return { raw, truncated: false };
  const buf = Buffer.from(raw, 'utf8');
  if (buf.length <= DLQ_RAW_LIMIT_BYTES) return { raw, truncated: false };
  return { raw: buf.subarray(0, DLQ_RAW_LIMIT_BYTES).toString('utf8'), truncated: true };
}

export class JobQueue {
  private constructor(readonly redis: Redis, readonly opts: QueueOptions, private readonly lua: Record<string, LuaCall>) {}

  /** Registers the scripts on `redis` (used, not closed, by the queue). */
  static async connect(redis: Redis, opts: Partial<QueueOptions> = {}): Promise<JobQueue> {
    const o = { ...DEFAULT_QUEUE_OPTIONS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
    if (!(o.leaseMs >= 30)) throw new Error(`leaseMs must be at least 30 ms, got ${o.leaseMs}`);
    return new JobQueue(redis, Object.freeze(o), registerScripts(redis));
  }

  /** Throws REDIS_TOO_OLD when the server cannot run the scripts (they need Redis 6.2+ for LMOVE). */
  async assertServerSupported(): Promise<void> {
    const version = /^redis_version:(\S+)/m.exec(await this.redis.info('server'))?.[1];
    if (!version) return; // a proxy or managed service that hides it: the scripts will tell
    if (!supportsQueue(version)) {
      throw new SriError('REDIS_TOO_OLD', `Redis ${version} at REDIS_URL is too old: the queue needs Redis 6.2 or newer (LMOVE). Upgrade it or point REDIS_URL at a newer server.`);
    }
  }

  private call(name: string, ...args: (string | number)[]): Promise<unknown> {
    const fn = this.lua[name];
    if (!fn) throw new Error(`queue script ${name} is not loaded`);
    return fn(...args);
  }

  // ── producers ───────────────────────────────────────────────────────────────────────────────────────────────

  /** LPUSH like any producer, status 'queued', organisation registered — one step. */
  async enqueue(orgId: string, message: JobMessage): Promise<void> {
    await this.call('enqueueJob', orgId, message.jobId, JSON.stringify(message));
  }

  async registerOrg(orgId: string): Promise<void> {
    await this.call('registerOrgs', '1', orgId);
  }

  /** Adds organisations found by a worker's SCAN to the ring (not to sri:orgs). Returns how many were new. */
  async registerDiscovered(orgIds: string[]): Promise<number> {
    if (!orgIds.length) return 0;
    return Number(await this.call('registerOrgs', '0', ...orgIds));
  }

  /** Organisations with a producer list (SCAN, never KEYS) plus sri:orgs, added to the ring. */
  async discoverOrgs(): Promise<number> {
    const [members, queueKeys] = await Promise.all([this.redis.smembers(keys.orgs), scanKeys(this.redis, keys.orgJobsPattern)]);
    const found = new Set(members);
    for (const k of queueKeys) {
      const m = /^sri:org:([^:]+):jobs$/.exec(k);
      if (m) found.add(m[1]!);
    }
    return this.registerDiscovered([...found]);
  }

  // ── worker ──────────────────────────────────────────────────────────────────────────────────────────────────

  /** The next job, fair across organisations, high priority first, within quotas; leased to `workerId`. */
  async take(workerId: string): Promise<Taken | undefined> {
    const token = randomUUID();
    return toTaken(token, await this.call('takeJob', token, workerId, this.opts.leaseMs, this.opts.maxJobBytes, REFILL_BATCH));
  }

  /** Renews every given lease of `workerId`; returns the tokens whose lease is gone (stop those jobs). */
  async renew(workerId: string, tokens: string[]): Promise<string[]> {
    if (!tokens.length) return [];
    return (await this.call('renewLeases', workerId, this.opts.leaseMs, ...tokens)) as string[];
  }

  /**
   * Records the terminal outcome `result.status`; 'late' when the job already had one or the lease was lost.
   * With `counted`, the worker's stats hash counts the job in the same step (only when it is recorded).
   */
  async complete(t: Taken, result: ResultMessage, counted?: CountedAs): Promise<CompleteOutcome> {
    return (await this.call('completeJob', ...this.completeArgs(t, result, counted))) as CompleteOutcome;
  }

  /**
   * `complete` and then `take(nextWorkerId)` in one atomic step and one round trip: how a worker's slot moves
   * from a finished job to its next one.
   */
  async completeAndTake(t: Taken, result: ResultMessage, counted: CountedAs | undefined, nextWorkerId: string): Promise<{ outcome: CompleteOutcome; next?: Taken }> {
    const token = randomUUID();
    const [outcome, next] = (await this.call('completeAndTakeJob', ...this.completeArgs(t, result, counted),
      token, nextWorkerId, this.opts.leaseMs, this.opts.maxJobBytes, REFILL_BATCH)) as [CompleteOutcome, unknown];
    const taken = toTaken(token, next);
    return taken ? { outcome, next: taken } : { outcome };
  }

  private completeArgs(t: Taken, result: ResultMessage, counted: CountedAs | undefined): (string | number)[] {
    return [t.token, result.status, JSON.stringify(result), this.opts.resultTtlSeconds,
      counted?.workerId ?? '', Math.round(counted?.durationMs ?? 0), counted?.finishedAt ?? 0];
  }

  /** Ends the lease and schedules `nextRaw` (the next attempt's message) for `dueAtMs`; status 'retrying'. */
  async retry(t: Taken, nextRaw: string, dueAtMs: number, error: { code: string; message: string }): Promise<CompleteOutcome> {
    return (await this.call('retryJob', t.token, nextRaw, Math.round(dueAtMs), JSON.stringify(error))) as CompleteOutcome;
  }

  /** Hands the job back untouched to the FRONT of its organisation's queue (same attempt). */
  async release(t: Taken): Promise<void> {
    await this.call('releaseJob', t.token);
  }

  /**
   * Moves a leased message to the dead-letter list: status 'dead' and `result` published when given (a job id
   * of this organisation could be read). 'late' when the lease was already gone (the message is queued again).
   */
  async bury(t: Taken, reason: string, result?: ResultMessage): Promise<string | 'late'> {
    const { raw, truncated } = truncateRaw(t.raw);
    return (await this.call('buryJob', t.token, reason, raw, truncated ? '1' : '0', result?.jobId ?? '',
      result ? JSON.stringify(result) : '', this.opts.resultTtlSeconds, Date.now())) as string;
  }

  /** Dead-letters a message nobody leases (control plane, tools); with a job id: status 'dead' + error event. */
  async deadLetter(orgId: string, raw: string, reason: string, jobId?: string): Promise<string> {
    const cut = truncateRaw(raw);
    const result: ResultMessage | undefined = jobId === undefined ? undefined : {
      jobId, orgId, userId: '', providerId: '', success: false, status: 'dead', duration: 0, attempt: 1, workerId: '',
      finishedAt: new Date().toISOString(), error: { code: 'INVALID_JOB', message: reason }, files: { log: '', screenshots: [] },
    };
    return (await this.call('deadLetterJob', orgId, jobId ?? '', reason, cut.raw, cut.truncated ? '1' : '0',
      result ? JSON.stringify(result) : '', this.opts.resultTtlSeconds, Date.now())) as string;
  }

  /** Due retries back to the FRONT of their queue. Returns how many moved. */
  async promoteDue(nowMs?: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = Number(await this.call('promoteDue', nowMs ?? '', SWEEP_BATCH));
      total += n;
      if (n < SWEEP_BATCH) return total;
    }
  }

  /** Expired leases: their jobs back to the FRONT of their queue as attempt + 1. Returns how many. */
  async recoverExpired(nowMs?: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = Number(await this.call('recoverExpired', nowMs ?? '', SWEEP_BATCH, new Date().toISOString(), this.opts.resultTtlSeconds));
      total += n;
      if (n < SWEEP_BATCH) return total;
    }
  }

  async isCancelled(jobId: string): Promise<boolean> {
    return (await this.redis.exists(keys.jobCancel(jobId))) === 1;
  }

  /** The subset of `jobIds` that were cancelled (one round trip). */
  async cancelledAmong(jobIds: string[]): Promise<Set<string>> {
    if (!jobIds.length) return new Set();
    const flags = await this.redis.mget(jobIds.map((id) => keys.jobCancel(id)));
    return new Set(jobIds.filter((_, i) => flags[i] !== null));
  }

  // ── control ─────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * 'cancelled': it was queued or waiting for a retry; result published, it never runs. 'cancelling': it is
   * running; its worker is told on sri:control and closes its browser context. 'final': it already finished.
   * 'unknown': no status (or leased by another organisation).
   */
  async cancel(orgId: string, jobId: string): Promise<CancelOutcome> {
    return (await this.call('cancelJob', orgId, jobId, new Date().toISOString(), this.opts.resultTtlSeconds)) as CancelOutcome;
  }

  /** Queues a failed or dead job again; `message.attempt` should be the next attempt. Throws JOB_NOT_RETRYABLE. */
  async retryFinished(orgId: string, jobId: string, message: JobMessage): Promise<void> {
    const r = (await this.call('requeueJob', orgId, jobId, JSON.stringify(message))) as string;
    if (r !== 'OK') {
      throw new SriError('JOB_NOT_RETRYABLE', `Only failed or dead jobs can be retried; job ${jobId} is ${r || 'unknown to Redis'}.`);
    }
  }

  /** Newest first. */
  async dlqList(orgId?: string, offset = 0, limit = 50): Promise<DlqEntry[]> {
    const ids = orgId === undefined
      ? await this.redis.zrevrange(keys.dlqIndex, offset, offset + limit - 1)
      : await this.redis.lrange(keys.orgDlq(orgId), offset, offset + limit - 1);
    if (!ids.length) return [];
    const rows = await this.redis.hmget(keys.dlqEntries, ...ids);
    return rows.filter((r): r is string => r !== null).map(parseEntry);
  }

  async dlqGet(entryId: string): Promise<DlqEntry | undefined> {
    const r = await this.redis.hget(keys.dlqEntries, entryId);
    return r === null ? undefined : parseEntry(r);
  }

  /** Pushes the entry's message back to its organisation's queue; false when missing or truncated. */
  async dlqRequeue(entryId: string): Promise<boolean> {
    return Number(await this.call('requeueDeadLetter', entryId)) === 1;
  }

  async dlqPurge(orgId?: string): Promise<number> {
    return Number(await this.call('purgeDeadLetters', orgId ?? ''));
  }

  /** `null` removes a limit, `undefined` leaves it as it is. The take script reads it on every take. */
  async setQuota(orgId: string, q: { maxConcurrent?: number | null; perMinute?: number | null }): Promise<void> {
    const m = this.redis.multi();
    for (const field of ['maxConcurrent', 'perMinute'] as const) {
      const v = q[field];
      if (v === null) m.hdel(keys.orgQuota(orgId), field);
      else if (v !== undefined) {
        if (!Number.isInteger(v) || v < 0) throw new SriError('VALIDATION_FAILED', `${field} must be a whole number ≥ 0 or null`);
        m.hset(keys.orgQuota(orgId), field, v);
      }
    }
    await m.exec();
  }

  async getQuota(orgId: string): Promise<Quota> {
    const [mc, pm] = await this.redis.hmget(keys.orgQuota(orgId), 'maxConcurrent', 'perMinute');
    return { maxConcurrent: mc === null || mc === undefined ? null : Number(mc), perMinute: pm === null || pm === undefined ? null : Number(pm) };
  }

  async stats(): Promise<QueueStats> {
    const orgs = await this.redis.smembers(keys.queueRingMembers);
    const m = this.redis.multi().get(keys.queueLateResults).zcard(keys.queueLeases).zcard(keys.queueDelayed).zcard(keys.dlqIndex);
    for (const o of orgs) m.llen(keys.orgJobs(o)).llen(keys.orgReadyHigh(o)).llen(keys.orgReadyNormal(o));
    const res = ((await m.exec()) ?? []).map(([err, v]) => { if (err) throw err; return v; });
    const queued: Record<string, number> = {};
    orgs.forEach((o, i) => {
      const n = Number(res[4 + 3 * i]) + Number(res[5 + 3 * i]) + Number(res[6 + 3 * i]);
      if (n > 0) queued[o] = n;
    });
    return { lateResults: Number(res[0] ?? 0), queued, leased: Number(res[1]), delayed: Number(res[2]), dead: Number(res[3]) };
  }

  // ── worker stats (sri:worker:{id}:stats) ────────────────────────────────────────────────────────────────────

  /** Resets the worker's stats hash at start (counters are per process). */
  async initWorkerStats(workerId: string, startedAt: number): Promise<void> {
    await this.redis.multi()
      .del(keys.workerStats(workerId))
      .hset(keys.workerStats(workerId), { workerId, startedAt, totalJobs: 0, successfulJobs: 0, failedJobs: 0, averageDuration: 0, totalDuration: 0 })
      .exec();
  }

  /** Counts one finished job in the worker's stats hash. */
  async recordWorkerJob(workerId: string, success: boolean, durationMs: number, finishedAt: number): Promise<void> {
    await this.call('recordJob', keys.workerStats(workerId), success ? '1' : '0', Math.round(durationMs), finishedAt);
  }
}

/** A take script's reply as a Taken (undefined for "nothing takeable"). */
function toTaken(token: string, r: unknown): Taken | undefined {
  if (!Array.isArray(r)) return undefined;
  const [orgId, raw, jobId, attempt, deadline, recovered] = r as [string, string, string, number, number, number];
  return { token, orgId, raw, ...(jobId ? { jobId } : {}), attempt: Number(attempt), leaseDeadline: Number(deadline), recovered: Number(recovered) === 1 };
}

function parseEntry(json: string): DlqEntry {
  const e = JSON.parse(json) as DlqEntry;
  return { id: e.id, orgId: e.orgId, ...(e.jobId ? { jobId: e.jobId } : {}), reason: e.reason, raw: e.raw, truncated: e.truncated === true, at: Number(e.at) };
}
