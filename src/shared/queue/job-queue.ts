/**
 * The reliable job queue both planes share (docs/queue.md). Producers keep `LPUSH sri:org:{orgId}:jobs <json>`;
 * everything after the push is one Lua transition per step (./lua/*.lua), registered once per connection by the
 * platform's one loader (src/shared/lua/scripts.ts) under versioned names (`sri_queue_v6_takeJob`). Reads that
 * change nothing (lists, stats) are plain commands.
 *
 * Every key a script touches is passed in its KEYS, built here from keys.ts, so the queue runs on Redis Cluster
 * (where all of them carry the deployment's hash tag and live in one slot) exactly as on one Redis. Where a script
 * would have to discover a key at run time, this side reads first and the script checks again:
 * - the take is given the organisations of the ring it is likely to reach (all of them while the ring is short)
 *   and answers RingMiss, with the ring's next ones, when it reaches another: the call is repeated with those;
 * - the job a take pops is known only then, so its status becomes 'running' in a second script (startJob), sent
 *   on the same connection with the queue's next call or at the end of the event loop's turn, whichever is first;
 * - recovery, promotion, cancel and dead-letter requeue read the lease, retry, token or entry first and pass its
 *   keys; the script answers Stale when it changed meanwhile, and the step is read and tried again.
 * Script replies are numeric codes (./codes.ts), translated in one place.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SriError } from '../errors.ts';
import { clusterKeyNamesInUse, JOB_RESULT_TTL_SECONDS, keys, orgIdFromKey } from '../keys.ts';
import { registerScripts, type LuaCall, type ScriptArea } from '../lua/scripts.ts';
import { isCluster, scanKeys } from '../redis.ts';
import { isTransientRedisError, retryTransient, type RetryOptions } from '../retry.ts';
import type { JobMessage, ResultMessage } from '../schemas.ts';
import {
  assertRequeued, luaPrelude, QueueCode, replyCode, toCancelOutcome, toCompleteOutcome, toRequeued,
  type CancelOutcome, type CompleteOutcome,
} from './codes.ts';

export type { CancelOutcome, CompleteOutcome } from './codes.ts';

/** The queue's scripts. Bump `version` when any script's behaviour changes; an older release keeps its own names. */
export const QUEUE_SCRIPTS: ScriptArea = Object.freeze({ area: 'queue', version: 6, dir: new URL('./lua/', import.meta.url), prelude: luaPrelude });

export interface QueueOptions {
  /** How long a take stays leased without renewal; workers renew every leaseMs / 3. @default 30000 */
  leaseMs: number;
  /** Larger messages are dead-lettered unread. @default 1048576 (1 MiB) */
  maxJobBytes: number;
  /** How long result messages (and the cancel flag) stay in Redis. @default 7 days */
  resultTtlSeconds: number;
  /**
   * How long `enqueue` keeps trying while Redis times out or reconnects, before the caller hears of it: a slow
   * Redis on a busy machine is not a reason to refuse a run. @default 30000
   */
  enqueueDeadlineMs: number;
  /**
   * Told when the 'running' status of a taken job could not be written (Redis failed between the take and
   * startJob): the job runs, leased, and its status reads 'queued' until its outcome. @default none
   */
  onStartError?: (err: Error, taken: Taken) => void;
}

export const DEFAULT_QUEUE_OPTIONS: QueueOptions = Object.freeze({
  leaseMs: 30_000, maxJobBytes: 1024 * 1024, resultTtlSeconds: JOB_RESULT_TTL_SECONDS, enqueueDeadlineMs: 30_000,
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

/** Counts a completion in the worker's stats hash (sri:worker:{workerId}:stats) in the same step. */
export interface CountedAs { workerId: string; durationMs: number; finishedAt: number }

export interface DlqEntry { id: string; orgId: string; jobId?: string; reason: string; raw: string; truncated: boolean; at: number }

export interface Quota { maxConcurrent: number | null; perMinute: number | null }

/**
 * `queued`: per organisation, jobs waiting to be taken — producer and ready lists, and jobs parked while their portal
 * account is full (`parked` counts those alone, all organisations).
 */
export interface QueueStats { lateResults: number; queued: Record<string, number>; leased: number; delayed: number; dead: number; parked: number }

/**
 * Message on sri:control; workers subscribe. `cancel`: stop the job if it runs here. `quota`: an organisation's quota
 * changed (JobQueue.setQuota); read it again before the next take (JobQueue.forgetQuota).
 */
export type ControlMessage = { type: 'cancel'; jobId: string } | { type: 'quota'; orgId: string };

/** Raw messages kept in a dead-letter entry are cut to this many bytes (the entry says so). */
export const DLQ_RAW_LIMIT_BYTES = 64 * 1024;
/** Messages one take moves from the producer list into the ready lists (also bounded to 4 MiB in the script). */
const REFILL_BATCH = 32;
/** Leases recovered / retries promoted per round of a sweep: keeps each round short; the sweep loops. */
const SWEEP_BATCH = 100;
/**
 * Organisations whose keys one take carries (four each), and how many a RingMiss reply names. A ring of at most
 * this many organisations with work is passed whole, so its takes never miss.
 */
export const TAKE_RING_WINDOW = 32;
/** RingMiss answers one take may get before it reports nothing to take (the worker polls again). */
const TAKE_RING_RETRIES = 8;
/**
 * How long a queue trusts the quotas it read (sri:org:{orgId}:quota) before it reads them again. The take needs
 * them as arguments (workers may only read quotas, and a script's keys need write access); a change through
 * setQuota is announced on sri:control and applies at the next take, one made with redis-cli within this time.
 */
export const QUOTA_CACHE_MS = 2000;
/** Tries of a step whose read went stale (cancel, requeue, purge) before it gives up with SERVICE_UNAVAILABLE. */
const STALE_RETRIES = 10;

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

type Reply = ReturnType<typeof replyCode>;

// ── keys of each transition (the order is each script's KEYS, documented in its header) ────────────────────────

const leaseKeys = (token: string) => [keys.lease(token), keys.leaseMessage(token), keys.queueLeases, keys.queueLeasedByOrg, keys.queueJobLeases];
const ringKeys = () => [keys.queueRing, keys.queueRingMembers];
const takeFixedKeys = (token: string) => [
  ...ringKeys(), keys.queueLeases, keys.queueLeasedByOrg, keys.queueJobLeases, keys.queueAttempts, keys.queueCancelled, keys.queueRate,
  keys.lease(token), keys.leaseMessage(token), keys.queueParked, keys.queueParkedJobs,
];
/** The take's fixed keys other than those a completion has too (completeAndTakeJob-19.lua KEYS[11..19]). */
const takeOwnKeys = (token: string) => [
  ...ringKeys(), keys.queueAttempts, keys.queueCancelled, keys.queueRate, keys.lease(token), keys.leaseMessage(token),
  keys.queueParked, keys.queueParkedJobs,
];
const orgTakeKeys = (orgIds: readonly string[]) => orgIds.flatMap((o) => [keys.orgJobs(o), keys.orgReadyHigh(o), keys.orgReadyNormal(o)]);
const dlqKeys = (orgId: string) => [keys.dlqEntries, keys.dlqIndex, keys.dlqSeq, keys.orgDlq(orgId), keys.dlqOrgs];

export class JobQueue {
  /** The ring as the last take saw it, in serving order: the organisations the next take passes. */
  private ring: string[] = [];
  /** Jobs taken whose startJob is not sent yet (see `start`), by take token. */
  private readonly pendingStarts = new Map<string, Taken>();
  /** Quotas read, by organisation: maxConcurrent and perMinute as stored ('' = none), and when they were read. */
  private readonly quotas = new Map<string, { maxConcurrent: string; perMinute: string; readAt: number }>();

  private constructor(readonly redis: Redis, readonly opts: QueueOptions, private readonly lua: Readonly<Record<string, LuaCall>>) {}

  /** Registers the scripts on `redis` (used, not closed, by the queue). */
  static async connect(redis: Redis, opts: Partial<QueueOptions> = {}): Promise<JobQueue> {
    const o = { ...DEFAULT_QUEUE_OPTIONS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
    if (!(o.leaseMs >= 30)) throw new Error(`leaseMs must be at least 30 ms, got ${o.leaseMs}`);
    if (isCluster(redis) && !clusterKeyNamesInUse()) {
      // Without the hash tag the keys of one script spread over slots and every script fails with CROSSSLOT.
      throw new Error('JobQueue on a Redis Cluster needs the cluster key names: create the client with createRedis and REDIS_CLUSTER_NODES (or call useClusterKeyNames(true))');
    }
    return new JobQueue(redis, Object.freeze(o), registerScripts(redis, QUEUE_SCRIPTS));
  }

  /** Throws REDIS_TOO_OLD when the server cannot run the scripts (they need Redis 6.2+ for LMOVE). */
  async assertServerSupported(): Promise<void> {
    const version = /^redis_version:(\S+)/m.exec(await this.redis.info('server'))?.[1];
    if (!version) return; // a proxy or managed service that hides it: the scripts will tell
    if (!supportsQueue(version)) {
      throw new SriError('REDIS_TOO_OLD', `Redis ${version} at REDIS_URL is too old: the queue needs Redis 6.2 or newer (LMOVE). Upgrade it or point REDIS_URL at a newer server.`);
    }
  }

  private script(name: string): LuaCall {
    const fn = this.lua[name];
    if (!fn) throw new Error(`queue script ${name} is not loaded`);
    return fn;
  }

  /**
   * Runs one script about the leases `about` names (none: about no lease). A startJob still waiting for one of them
   * (see `start`) goes first, so it runs before this call — unless `ending`: this call ends the lease, the job
   * ended within the event loop's turn it was taken in, and the call gives it its next status at once (nobody could
   * have seen the one between), so the startJob is not sent at all.
   */
  private async call(name: string, scriptKeys: readonly string[], args: readonly (string | number)[] = [],
    about?: { tokens: readonly string[]; ending: boolean }): Promise<Reply> {
    const fn = this.script(name);
    if (about && this.pendingStarts.size) {
      for (const token of about.tokens) {
        const t = this.pendingStarts.get(token);
        if (!t) continue;
        this.pendingStarts.delete(token);
        // Sent even when this call ends the lease: a job id pushed again after it finished still reads its old
        // terminal status until startJob runs, and the completion would then be refused as late (no result, seen
        // with JOB_REPLAYED). The start goes first on the same connection, so it is ordered before this call.
        this.sendStart(t);
      }
    }
    return replyCode(await fn(scriptKeys, args));
  }

  private sendStart(t: Taken): void {
    this.script('startJob')([keys.jobStatus(t.jobId!), keys.queueJobLeases], [t.jobId!, t.token]).catch((e: unknown) => this.startFailed(e, t));
  }

  /** Runs `step` until it is not Stale; a read that keeps going stale is a Redis too busy to answer: retryable. */
  private async untilFresh(what: string, step: () => Promise<Reply>): Promise<Reply> {
    for (let i = 0; i < STALE_RETRIES; i++) {
      const r = await step();
      if (r.code !== QueueCode.Stale) return r;
    }
    throw new SriError('SERVICE_UNAVAILABLE', `The queue's ${what} kept changing while it was read (${STALE_RETRIES} tries); try again.`);
  }

  // ── producers ───────────────────────────────────────────────────────────────────────────────────────────────

  /** LPUSH like any producer, status 'queued', organisation registered — one step. */
  async enqueue(orgId: string, message: JobMessage, opts: { deadlineMs?: number; onRetry?: RetryOptions['onRetry'] } = {}): Promise<void> {
    // Safe to try again after a timeout whose command did run: the script refuses a job id that has a status.
    const raw = JSON.stringify(message);
    const scriptKeys = [keys.jobStatus(message.jobId), keys.orgJobs(orgId), keys.orgs, ...ringKeys()];
    await retryTransient(() => this.call('enqueueJob', scriptKeys, [orgId, raw]), {
      isRetryable: isTransientRedisError, deadlineMs: opts.deadlineMs ?? this.opts.enqueueDeadlineMs, onRetry: opts.onRetry,
    });
  }

  async registerOrg(orgId: string): Promise<void> {
    await this.call('registerOrgs', [keys.orgs, ...ringKeys()], [orgId]);
  }

  /** Adds organisations found by a worker's discovery to the ring (not to sri:orgs). Returns how many were new. */
  async registerDiscovered(orgIds: string[]): Promise<number> {
    if (!orgIds.length) return 0;
    return Number((await this.call('joinRing', ringKeys(), orgIds)).rest[0]);
  }

  /**
   * Puts in the ring the organisations a client pushed to directly (`LPUSH` without the queue): those of sri:orgs
   * and of the producer lists a SCAN finds (never KEYS; every master of a cluster), which are not in the ring and
   * have messages waiting. Returns how many joined.
   */
  async discoverOrgs(): Promise<number> {
    const [members, known, queueKeys] = await Promise.all([
      this.redis.smembers(keys.queueRingMembers), this.redis.smembers(keys.orgs), scanKeys(this.redis, keys.orgJobsPattern),
    ]);
    const inRing = new Set(members);
    const candidates = new Set(known.filter((o) => !inRing.has(o)));
    for (const k of queueKeys) {
      const o = orgIdFromKey(k);
      if (o !== undefined && !inRing.has(o)) candidates.add(o);
    }
    const list = [...candidates];
    const lengths = await Promise.all(list.map((o) => this.redis.llen(keys.orgJobs(o))));
    return this.registerDiscovered(list.filter((_, i) => lengths[i]! > 0));
  }

  // ── worker ──────────────────────────────────────────────────────────────────────────────────────────────────

  private async takeCall(token: string, workerId: string): Promise<Reply> {
    const orgs = this.ring.slice(0, TAKE_RING_WINDOW);
    const orgArgs = this.orgArgs(orgs) ?? await this.readQuotas(orgs);
    return this.call('takeJob', [...takeFixedKeys(token), ...orgTakeKeys(orgs)], [...this.takeArgs(token, workerId), ...orgArgs]);
  }

  /** Per organisation its id, maxConcurrent and perMinute ('' = none); undefined when a quota must be read first. */
  private orgArgs(orgs: readonly string[]): string[] | undefined {
    const now = Date.now();
    const out: string[] = [];
    for (const o of orgs) {
      const q = this.quotas.get(o);
      if (!q || now - q.readAt >= QUOTA_CACHE_MS) return undefined;
      out.push(o, q.maxConcurrent, q.perMinute);
    }
    return out;
  }

  /** Reads the quotas of `orgs` not read for QUOTA_CACHE_MS (one round trip), then orgArgs. */
  private async readQuotas(orgs: readonly string[]): Promise<string[]> {
    const now = Date.now();
    const stale = orgs.filter((o) => !(now - (this.quotas.get(o)?.readAt ?? -Infinity) < QUOTA_CACHE_MS));
    const read = await Promise.all(stale.map((o) => this.redis.hmget(keys.orgQuota(o), 'maxConcurrent', 'perMinute')));
    stale.forEach((o, i) => this.quotas.set(o, { maxConcurrent: read[i]?.[0] ?? '', perMinute: read[i]?.[1] ?? '', readAt: now }));
    return orgs.flatMap((o) => {
      const q = this.quotas.get(o)!;
      return [o, q.maxConcurrent, q.perMinute];
    });
  }

  /** The organisation's quota changed (a `quota` message on sri:control): the next take reads it again. */
  forgetQuota(orgId: string): void {
    this.quotas.delete(orgId);
  }

  private takeArgs(token: string, workerId: string): (string | number)[] {
    return [token, workerId, this.opts.leaseMs, this.opts.maxJobBytes, REFILL_BATCH, TAKE_RING_WINDOW];
  }

  /** A take's reply as a Taken (after RingMiss answers, the take again with the organisations they name). */
  private async taken(token: string, workerId: string, first: Reply): Promise<Taken | undefined> {
    let r = first;
    for (let misses = 0; ; misses++) {
      if (r.code === QueueCode.Ok) return this.start(this.served(token, r.rest));
      if (r.code === QueueCode.Nothing) return undefined;
      if (r.code !== QueueCode.RingMiss) throw new Error(`queue script takeJob answered ${QueueCode[r.code]}`);
      this.ring = r.rest.slice(1).map(String);
      // Only when the ring turns faster than a reply comes back (far more organisations with work than
      // TAKE_RING_WINDOW, and many takers): the worker takes nothing this time and polls again.
      if (misses >= TAKE_RING_RETRIES) return undefined;
      r = await this.takeCall(token, workerId);
    }
  }

  /** The ring as this take left it: the served organisation goes behind the others (as the script rotated it). */
  private served(token: string, rest: unknown[]): Taken {
    const [orgId, raw, jobId, attempt, deadline, recovered] = rest as [string, string, string, number, number, number];
    const at = this.ring.indexOf(orgId);
    if (at >= 0) this.ring = [...this.ring.slice(at + 1), ...this.ring.slice(0, at + 1)];
    return { token, orgId, raw, ...(jobId ? { jobId } : {}), attempt: Number(attempt), leaseDeadline: Number(deadline), recovered: Number(recovered) === 1 };
  }

  /**
   * Marks a job just taken 'running' (startJob) without waiting for it: sent at the end of the current turn of
   * Node's event loop (process.nextTick), or before this queue's next call about the job if that comes first —
   * always before it. A call that ends the job's lease within that turn (a job that ended at once: the benchmark's
   * empty jobs) drops it, as the job's next status is written at once. Waiting for it, or sending it before the
   * take's caller has had its turn, would cost each job a round trip or an extra fsync of the append-only file.
   * Its failure leaves the status 'queued' (the lease is what counts) and is reported to onStartError.
   */
  private start(t: Taken): Taken {
    if (!t.jobId) return t;
    this.pendingStarts.set(t.token, t);
    if (this.pendingStarts.size === 1) {
      process.nextTick(() => {
        for (const p of this.pendingStarts.values()) this.sendStart(p);
        this.pendingStarts.clear();
      });
    }
    return t;
  }

  private startFailed(e: unknown, t: Taken): void {
    this.opts.onStartError?.(e instanceof Error ? e : new Error(String(e)), t);
  }

  /** The next job, fair across organisations, high priority first, within quotas; leased to `workerId`. */
  async take(workerId: string): Promise<Taken | undefined> {
    const token = randomUUID();
    return this.taken(token, workerId, await this.takeCall(token, workerId));
  }

  /** Renews every given lease of `workerId`; returns the tokens whose lease is gone (stop those jobs). */
  async renew(workerId: string, tokens: string[]): Promise<string[]> {
    if (!tokens.length) return [];
    const r = await this.call('renewLeases', [keys.queueLeases, ...tokens.map((t) => keys.lease(t))], [workerId, this.opts.leaseMs, ...tokens],
      { tokens, ending: false });
    return r.rest.map(String);
  }

  /**
   * Records the terminal outcome `result.status`; 'late' when the job already had one or the lease was lost.
   * With `counted`, the worker's stats hash counts the job in the same step (only when it is recorded).
   */
  async complete(t: Taken, result: ResultMessage, counted?: CountedAs): Promise<CompleteOutcome> {
    const [scriptKeys, args] = this.completeParts(t, result, counted);
    return toCompleteOutcome((await this.call('completeJob', scriptKeys, args, { tokens: [t.token], ending: true })).code);
  }

  /**
   * `complete` and then `take(nextWorkerId)` in one atomic step and one round trip: how a worker's slot moves
   * from a finished job to its next one.
   */
  async completeAndTake(t: Taken, result: ResultMessage, counted: CountedAs | undefined, nextWorkerId: string): Promise<{ outcome: CompleteOutcome; next?: Taken }> {
    const token = randomUUID();
    const [completeKeys, completeArgs] = this.completeParts(t, result, counted);
    const orgs = this.ring.slice(0, TAKE_RING_WINDOW);
    const orgArgs = this.orgArgs(orgs) ?? await this.readQuotas(orgs);
    const r = await this.call('completeAndTakeJob', [...completeKeys, ...takeOwnKeys(token), ...orgTakeKeys(orgs)],
      [...completeArgs, ...this.takeArgs(token, nextWorkerId), ...orgArgs], { tokens: [t.token], ending: true });
    const outcome = toCompleteOutcome(r.code);
    const next = await this.taken(token, nextWorkerId, replyCode(r.rest[0]));
    return next ? { outcome, next } : { outcome };
  }

  private completeParts(t: Taken, result: ResultMessage, counted: CountedAs | undefined): [string[], (string | number)[]] {
    const jobId = t.jobId ?? '';
    return [
      // Without counting, a key the call has anyway stands in for the stats hash (an enrolled worker may touch its own only).
      [...leaseKeys(t.token), keys.queueLateResults, keys.jobStatus(jobId), keys.jobResult(jobId), keys.jobCancel(jobId),
        counted ? keys.workerStats(counted.workerId) : keys.queueLateResults],
      [t.token, jobId, result.status, JSON.stringify(result), this.opts.resultTtlSeconds, keys.orgDone(t.orgId),
        counted ? '1' : '0', Math.round(counted?.durationMs ?? 0), counted?.finishedAt ?? 0],
    ];
  }

  /**
   * Ends the lease and schedules `nextRaw` (the next attempt's message) for `dueAtMs`; status 'retrying'. With
   * `announce` (the attempt's `retrying` result, sent for an attempt that met a blocker) it is published on the
   * organisation's result channel in the same step — only when the retry is recorded; it is not stored.
   */
  async retry(t: Taken, nextRaw: string, dueAtMs: number, error: { code: string; message: string }, announce?: ResultMessage): Promise<CompleteOutcome> {
    const jobId = t.jobId ?? '';
    const r = await this.call('retryJob',
      [...leaseKeys(t.token), keys.queueLateResults, keys.jobStatus(jobId), keys.queueDelayed, keys.queueDelayedJobs],
      [t.token, jobId, nextRaw, Math.round(dueAtMs), JSON.stringify(error), announce ? JSON.stringify(announce) : '', keys.orgDone(t.orgId)],
      { tokens: [t.token], ending: true });
    return toCompleteOutcome(r.code);
  }

  /**
   * Puts a job its provider's gate refused back to wait until `dueAtMs` (deferJob): the lease and the slot end, the
   * message stays as it is (no attempt counted, nothing failed), status 'queued'; promoteDeferred returns it to
   * the front of its queue. `why` is kept for operators (spacing, rate, maintenance, breaker).
   */
  async defer(t: Taken, dueAtMs: number, why: string): Promise<CompleteOutcome> {
    const jobId = t.jobId ?? '';
    const r = await this.call('deferJob',
      [...leaseKeys(t.token), keys.queueLateResults, keys.jobStatus(jobId), keys.queueDeferred, keys.queueDeferredJobs, keys.queueAttempts],
      [t.token, jobId, Math.round(dueAtMs), why, t.recovered ? t.attempt : ''], { tokens: [t.token], ending: true });
    return toCompleteOutcome(r.code);
  }

  /**
   * A hand-off (src/shared/handoff.ts): the leased job's status becomes 'waiting_for_user' (`waiting`) or 'running'
   * again, and `announce` is published on its organisation's result channel in the same step — only while `t` still
   * holds the lease (markWaiting-2.lua). The lease itself is untouched: the worker keeps renewing it while the job waits.
   */
  async markWaiting(t: Taken, waiting: boolean, announce?: ResultMessage): Promise<'ok' | 'late'> {
    const jobId = t.jobId ?? '';
    const r = await this.call('markWaiting', [keys.jobStatus(jobId), keys.queueJobLeases],
      [jobId, t.token, waiting ? 'waiting_for_user' : 'running', keys.orgDone(t.orgId), announce ? JSON.stringify(announce) : ''],
      { tokens: [t.token], ending: false });
    return r.code === QueueCode.Ok ? 'ok' : 'late';
  }

  /** Hands the job back untouched to the FRONT of its organisation's queue (same attempt). */
  async release(t: Taken): Promise<void> {
    const jobId = t.jobId ?? '';
    const r = await this.call('releaseJob',
      [...leaseKeys(t.token), keys.jobStatus(jobId), keys.orgReadyHigh(t.orgId), keys.orgReadyNormal(t.orgId), ...ringKeys()],
      [t.token, t.orgId, jobId], { tokens: [t.token], ending: true });
    if (r.code === QueueCode.Stale) throw new Error(`lease ${t.token} is not job ${jobId || '(none)'} of ${t.orgId}: not released`);
  }

  /**
   * Moves a leased message to the dead-letter list: status 'dead' and `result` published when given (a job id
   * of this organisation could be read). 'late' when the lease was already gone (the message is queued again).
   */
  async bury(t: Taken, reason: string, result?: ResultMessage): Promise<string | 'late'> {
    const { raw, truncated } = truncateRaw(t.raw);
    const jobId = result?.jobId ?? '';
    const r = await this.call('buryJob',
      [...leaseKeys(t.token), keys.queueLateResults, ...dlqKeys(t.orgId), keys.jobStatus(jobId), keys.jobResult(jobId)],
      [t.token, t.orgId, reason, raw, truncated ? '1' : '0', Date.now(), jobId, result ? JSON.stringify(result) : '',
        this.opts.resultTtlSeconds, keys.orgDone(t.orgId)], { tokens: [t.token], ending: true });
    return r.code === QueueCode.Late ? 'late' : String(r.rest[0]);
  }

  /** Dead-letters a message nobody leases (control plane, tools); with a job id: status 'dead' + error event. */
  async deadLetter(orgId: string, raw: string, reason: string, jobId?: string): Promise<string> {
    const cut = truncateRaw(raw);
    const result: ResultMessage | undefined = jobId === undefined ? undefined : {
      jobId, orgId, userId: '', providerId: '', success: false, status: 'dead', duration: 0, attempt: 1, workerId: '',
      finishedAt: new Date().toISOString(), error: { code: 'INVALID_JOB', message: reason }, files: { log: '', screenshots: [] },
    };
    const r = await this.call('deadLetterJob', [...dlqKeys(orgId), keys.jobStatus(jobId ?? ''), keys.jobResult(jobId ?? '')],
      [orgId, jobId ?? '', reason, cut.raw, cut.truncated ? '1' : '0', Date.now(), result ? JSON.stringify(result) : '',
        this.opts.resultTtlSeconds, keys.orgDone(orgId)]);
    return String(r.rest[0]);
  }

  /** Members of `zset` due at `nowMs` (Redis time when undefined), and that time. */
  private async due(zset: string, nowMs: number | undefined): Promise<{ now: number; members: string[] }> {
    const r = await this.call('readDue', [zset], [nowMs ?? '', SWEEP_BATCH]);
    return { now: Number(r.rest[0]), members: r.rest.slice(1).map(String) };
  }

  /** Due retries back to the FRONT of their queue. Returns how many moved. */
  async promoteDue(nowMs?: number): Promise<number> {
    let total = 0;
    for (;;) {
      const { now, members } = await this.due(keys.queueDelayed, nowMs);
      if (!members.length) return total;
      const entries = await this.redis.hmget(keys.queueDelayedJobs, ...members);
      const codes = await Promise.all(members.map(async (token, i) => {
        const d = parseDelayed(entries[i] ?? null);
        return (await this.call('promoteRetry', [
          keys.queueDelayed, keys.queueDelayedJobs, keys.leaseMessage(token), keys.jobStatus(d.j), keys.jobCancel(d.j),
          keys.orgReadyHigh(d.o), keys.orgReadyNormal(d.o), ...ringKeys(),
        ], [token, d.o, d.j, now])).code;
      }));
      total += codes.filter((c) => c === QueueCode.Ok).length;
      // Stale ones were handled by another worker meanwhile; a round that moved nothing ends the sweep.
      if (members.length < SWEEP_BATCH || codes.every((c) => c === QueueCode.Stale)) return total;
    }
  }

  /** Deferred jobs whose time has come back to the FRONT of their queue, attempt unchanged. Returns how many moved. */
  async promoteDeferred(nowMs?: number): Promise<number> {
    let total = 0;
    for (;;) {
      const { now, members } = await this.due(keys.queueDeferred, nowMs);
      if (!members.length) return total;
      const entries = await this.redis.hmget(keys.queueDeferredJobs, ...members);
      const codes = await Promise.all(members.map(async (token, i) => {
        const d = parseDelayed(entries[i] ?? null);
        return (await this.call('promoteDeferred', [
          keys.queueDeferred, keys.queueDeferredJobs, keys.leaseMessage(token), keys.jobStatus(d.j), keys.jobCancel(d.j),
          keys.orgReadyHigh(d.o), keys.orgReadyNormal(d.o), ...ringKeys(), keys.queueCancelled,
        ], [token, d.o, d.j, now])).code;
      }));
      total += codes.filter((c) => c === QueueCode.Ok).length;
      if (members.length < SWEEP_BATCH || codes.every((c) => c === QueueCode.Stale)) return total;
    }
  }

  /** Expired leases: their jobs back to the FRONT of their queue as attempt + 1. Returns how many. */
  async recoverExpired(nowMs?: number): Promise<number> {
    let total = 0;
    for (;;) {
      const { now, members } = await this.due(keys.queueLeases, nowMs);
      if (!members.length) return total;
      const finishedAt = new Date().toISOString();
      const codes = await Promise.all(members.map(async (token) => {
        const [orgId, jobId] = await this.redis.hmget(keys.lease(token), 'orgId', 'jobId');
        const o = orgId ?? '';
        const j = orgId === null ? '' : jobId ?? '';
        return (await this.call('recoverLease', [
          keys.queueLeases, keys.lease(token), keys.leaseMessage(token), keys.queueLeasedByOrg, keys.queueJobLeases, keys.queueAttempts,
          keys.jobStatus(j), keys.jobCancel(j), keys.jobResult(j), keys.orgReadyHigh(o), keys.orgReadyNormal(o), ...ringKeys(),
        ], [token, o, j, now, finishedAt, this.opts.resultTtlSeconds, keys.orgDone(o)])).code;
      }));
      total += codes.filter((c) => c === QueueCode.Ok).length;
      if (members.length < SWEEP_BATCH || codes.every((c) => c === QueueCode.Stale)) return total;
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

  /** The take token currently leasing `jobId`, if any (sri:queue:job-leases). */
  async leaseOf(jobId: string): Promise<string | undefined> {
    return (await this.redis.hget(keys.queueJobLeases, jobId)) ?? undefined;
  }

  // ── control ─────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * 'cancelled': it was queued or waiting for a retry; result published, it never runs. 'cancelling': it is
   * running; its worker is told on sri:control and closes its browser context. 'final': it already finished.
   * 'unknown': no status (or leased by another organisation).
   */
  async cancel(orgId: string, jobId: string): Promise<CancelOutcome> {
    const r = await this.untilFresh('lease of the job', async () => {
      const token = (await this.leaseOf(jobId)) ?? '';
      return this.call('cancelJob', [
        keys.jobStatus(jobId), keys.queueJobLeases, keys.lease(token), keys.jobCancel(jobId), keys.jobResult(jobId), keys.queueAttempts, keys.queueCancelled,
      ], [orgId, jobId, token, new Date().toISOString(), this.opts.resultTtlSeconds, keys.queueControl, keys.orgDone(orgId)]);
    });
    return toCancelOutcome(r.code);
  }

  /** Queues a failed or dead job again; `message.attempt` should be the next attempt. Throws JOB_NOT_RETRYABLE. */
  async retryFinished(orgId: string, jobId: string, message: JobMessage): Promise<void> {
    const r = await this.call('requeueJob', [
      keys.jobStatus(jobId), keys.queueJobLeases, keys.orgJobs(orgId), keys.queueAttempts, keys.jobCancel(jobId), keys.queueCancelled, ...ringKeys(),
    ], [orgId, jobId, JSON.stringify(message)]);
    assertRequeued(r.code, jobId, r.rest[0]);
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
    const r = await this.untilFresh('dead-letter entry', async () => {
      const entry = await this.dlqGet(entryId);
      if (!entry) return { code: QueueCode.Missing, rest: [] };
      const jobId = entry.jobId ?? '';
      return this.call('requeueDeadLetter', [
        keys.dlqEntries, keys.dlqIndex, keys.orgDlq(entry.orgId), keys.orgJobs(entry.orgId), keys.jobStatus(jobId), keys.queueAttempts,
        keys.jobCancel(jobId), keys.queueCancelled, ...ringKeys(),
      ], [entryId, entry.orgId, jobId]);
    });
    return toRequeued(r.code);
  }

  async dlqPurge(orgId?: string): Promise<number> {
    if (orgId !== undefined) {
      return Number((await this.call('purgeDeadLetters', [keys.dlqEntries, keys.dlqIndex, keys.dlqOrgs, keys.orgDlq(orgId)], ['org', orgId])).rest[0]);
    }
    const r = await this.untilFresh('list of organisations with dead letters', async () => {
      // Organisations of sri:orgs and the ring too: lists of entries written before sri:dlq:orgs existed.
      const orgs = await this.redis.sunion(keys.dlqOrgs, keys.orgs, keys.queueRingMembers);
      return this.call('purgeDeadLetters', [keys.dlqEntries, keys.dlqIndex, keys.dlqOrgs, ...orgs.map((o) => keys.orgDlq(o))], ['all', ...orgs]);
    });
    return Number(r.rest[0]);
  }

  /**
   * `null` removes a limit, `undefined` leaves it as it is. Announced on sri:control in the same step, so every
   * worker's next take applies it.
   */
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
    const changed: ControlMessage = { type: 'quota', orgId };
    m.publish(keys.queueControl, JSON.stringify(changed));
    await m.exec();
    this.forgetQuota(orgId);
  }

  async getQuota(orgId: string): Promise<Quota> {
    const [mc, pm] = await this.redis.hmget(keys.orgQuota(orgId), 'maxConcurrent', 'perMinute');
    return { maxConcurrent: mc === null || mc === undefined ? null : Number(mc), perMinute: pm === null || pm === undefined ? null : Number(pm) };
  }

  async stats(): Promise<QueueStats> {
    // The ring holds the organisations with work; sri:orgs those whose jobs a client may have pushed directly.
    const orgs = await this.redis.sunion(keys.queueRingMembers, keys.orgs);
    const m = this.redis.multi().get(keys.queueLateResults).zcard(keys.queueLeases).zcard(keys.queueDelayed).zcard(keys.dlqIndex)
      .zcard(keys.queueParked);
    // An organisation's parked jobs: the members `<orgId>/…` ('0' follows '/'; ids never contain '/').
    for (const o of orgs) m.llen(keys.orgJobs(o)).llen(keys.orgReadyHigh(o)).llen(keys.orgReadyNormal(o)).zlexcount(keys.queueParked, `[${o}/`, `(${o}0`);
    const res = ((await m.exec()) ?? []).map(([err, v]) => { if (err) throw err; return v; });
    const queued: Record<string, number> = {};
    orgs.forEach((o, i) => {
      const n = [0, 1, 2, 3].reduce((sum, k) => sum + Number(res[5 + 4 * i + k]), 0);
      if (n > 0) queued[o] = n;
    });
    return { lateResults: Number(res[0] ?? 0), queued, leased: Number(res[1]), delayed: Number(res[2]), dead: Number(res[3]), parked: Number(res[4]) };
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
    await this.call('recordJob', [keys.workerStats(workerId)], [success ? '1' : '0', Math.round(durationMs), finishedAt]);
  }
}

/** A waiting retry's organisation and job (`{"o","j","e"}`); empty ids when the entry is gone (promoteRetry drops it). */
function parseDelayed(json: string | null): { o: string; j: string } {
  if (json === null) return { o: '', j: '' };
  try {
    const d = JSON.parse(json) as { o?: unknown; j?: unknown };
    return { o: typeof d.o === 'string' ? d.o : '', j: typeof d.j === 'string' ? d.j : '' };
  } catch {
    return { o: '', j: '' };
  }
}

function parseEntry(json: string): DlqEntry {
  const e = JSON.parse(json) as DlqEntry;
  return { id: e.id, orgId: e.orgId, ...(e.jobId ? { jobId: e.jobId } : {}), reason: e.reason, raw: e.raw, truncated: e.truncated === true, at: Number(e.at) };
}
