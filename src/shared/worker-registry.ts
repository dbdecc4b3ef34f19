/**
 * The worker registry: what every worker says about itself at each heartbeat, and how the control plane and the
 * CLI list workers from it (GET /api/workers, `sri workers`). docs/observability.md describes it.
 *
 * Per heartbeat, one MULTI (atomic, one round trip):
 *   - `sri:worker:{id}:heartbeat` = epoch ms, TTL 30 s — the contract of ARCHITECTURE.md, unchanged;
 *   - `sri:worker:{id}:info` hash (TTL 24 h): state, host, pid, start, heartbeat interval, jobs, resource usage;
 *   - `sri:workers` sorted set: worker id → epoch ms of that heartbeat; entries older than 24 h are dropped.
 * A worker that stops cleanly removes all three; one that dies stays listed, as `lost`, until its entry ages out.
 * Which jobs a worker holds is read from the queue's leases, not from what it said: a lost worker's jobs show until
 * the queue recovers them (recoverExpired).
 */
import type { Redis } from 'ioredis';
import { keys } from './keys.ts';

/** How long a worker's info hash and registry entry outlive its last heartbeat. */
export const WORKER_REGISTRY_RETENTION_MS = 24 * 3600 * 1000;
/** A worker is lost once this many of its heartbeat intervals pass without one (or its heartbeat key expired). */
export const LOST_AFTER_MISSED_BEATS = 3;
/** The interval assumed for a worker whose info hash is gone (WORKER_HEARTBEAT_INTERVAL_MS's default). */
const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
/** Workers and leases one listing reads at most. */
const LIST_MAX_WORKERS = 1000;
const LIST_MAX_LEASES = 10_000;

/** The states a worker reports (its lifecycle, src/execution-plane/worker.ts), plus `lost` decided by readers. */
export type ReportedWorkerState = 'starting' | 'ready' | 'busy' | 'reconnecting' | 'draining' | 'stopped';
export type RegistryWorkerState = ReportedWorkerState | 'lost';

/** CPU and memory of the worker (src/execution-plane/observability/resources.ts), as the heartbeat carries it. */
export interface ResourceUsage {
  /** Where the numbers come from: the container's cgroup (v2 or v1), or the process and the machine. */
  source: 'cgroup-v2' | 'cgroup-v1' | 'process';
  /** Epoch ms of the reading. */
  sampledAt: number;
  cpu: {
    /** CPU time used (the cgroup's, or this process's), seconds since it started. */
    usageSeconds: number;
    /** CPU used between the last two readings, in % of one core (200 = two full cores); null on the first reading. */
    percent: number | null;
    /** The cgroup's CPU limit in cores (cpu.max / cfs quota); null when unlimited or not in a cgroup. */
    limitCores: number | null;
  };
  memory: {
    /** The cgroup's memory use (memory.current / usage_in_bytes), or this process's resident set. */
    usedBytes: number;
    /** The cgroup's memory limit; null when unlimited or not in a cgroup. */
    limitBytes: number | null;
  };
  process: { rssBytes: number; heapUsedBytes: number };
  system: { cpus: number; loadAverage1m: number; totalMemoryBytes: number; freeMemoryBytes: number };
}

/** What a worker writes into its info hash at each heartbeat. */
export interface WorkerSelfReport {
  workerId: string;
  state: ReportedWorkerState;
  host: string;
  pid: number;
  startedAt: number;
  heartbeatIntervalMs: number;
  maxJobs: number;
  jobsInFlight: number;
  /** Base URL of the worker's /metrics, /healthz, /readyz; undefined when WORKER_HTTP_PORT=off. */
  httpUrl?: string;
  /** Undefined when no fresh reading is cached (the heartbeat never waits for one). */
  resources?: ResourceUsage;
  /** How the worker isolates scripts (`sandbox-bwrap`, or the weaker `sandbox-process`): WORKER_SANDBOX as it came out. */
  sandbox?: string;
}

/** One MULTI: heartbeat key (epoch ms, `heartbeatTtlSeconds`), info hash (replaced whole), registry entry. */
export async function writeHeartbeat(redis: Redis, report: WorkerSelfReport, heartbeatTtlSeconds: number, now = Date.now()): Promise<void> {
  const info: Record<string, string> = {
    workerId: report.workerId, state: report.state, host: report.host, pid: String(report.pid),
    startedAt: String(report.startedAt), heartbeatIntervalMs: String(report.heartbeatIntervalMs), lastHeartbeat: String(now),
    maxJobs: String(report.maxJobs), jobsInFlight: String(report.jobsInFlight),
    ...(report.httpUrl ? { httpUrl: report.httpUrl } : {}),
    ...(report.resources ? { resources: JSON.stringify(report.resources) } : {}),
    ...(report.sandbox ? { sandbox: report.sandbox } : {}),
  };
  const infoKey = keys.workerInfo(report.workerId);
  const res = await redis.multi()
    .set(keys.workerHeartbeat(report.workerId), String(now), 'EX', heartbeatTtlSeconds)
    .del(infoKey)
    .hset(infoKey, info)
    .pexpire(infoKey, WORKER_REGISTRY_RETENTION_MS)
    .zadd(keys.workers, now, report.workerId)
    .zremrangebyscore(keys.workers, '-inf', now - WORKER_REGISTRY_RETENTION_MS)
    .exec();
  const failed = res?.find(([err]) => err);
  if (failed?.[0]) throw failed[0];
}

/** Whether the worker was revoked (POST /api/operator/workers/{id}/revoke): its field in `sri:workers:revoked`. */
export async function isWorkerRevoked(redis: Redis, workerId: string): Promise<boolean> {
  return (await redis.hget(keys.workersRevoked, workerId)) !== null;
}

/** A cleanly stopped worker leaves the registry at once (heartbeat, info, entry). */
export async function removeWorker(redis: Redis, workerId: string): Promise<void> {
  await redis.multi().del(keys.workerHeartbeat(workerId)).del(keys.workerInfo(workerId)).zrem(keys.workers, workerId).exec();
}

export interface LeasedJob { jobId: string | null; orgId: string; attempt: number; takenAt: string | null }

export interface WorkerStatsView {
  startedAt: string | null;
  totalJobs: number;
  successfulJobs: number;
  failedJobs: number;
  averageDurationMs: number;
  lastJobAt: string | null;
}

export interface WorkerListing {
  workerId: string;
  /** The reported state, or `lost` when the heartbeat lapsed. */
  state: RegistryWorkerState;
  /** What the worker last said (a lost worker's last words). */
  reportedState: ReportedWorkerState | null;
  host: string | null;
  pid: number | null;
  startedAt: string | null;
  lastHeartbeat: string | null;
  heartbeatAgeMs: number | null;
  heartbeatIntervalMs: number;
  maxJobs: number | null;
  /** Jobs the queue has leased to the worker now (a lost worker's until they are recovered). */
  jobsInFlight: number;
  jobs: LeasedJob[];
  resources: ResourceUsage | null;
  /** `sri:worker:{id}:stats`; null when the worker has none (it never started, or the hash was removed). */
  stats: WorkerStatsView | null;
  httpUrl: string | null;
  /** How the worker isolates scripts (`sandbox-bwrap`, `sandbox-process`); null before its first heartbeat. */
  sandbox: string | null;
}

export interface WorkerList {
  workers: WorkerListing[];
  counts: Record<RegistryWorkerState, number>;
  /** Jobs leased to workers that are not in the registry (it was cleared, or they are older than the registry). */
  unattributedLeases: number;
}

const iso = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) || ms <= 0 ? null : new Date(ms).toISOString());
const num = (v: string | null | undefined) => (v === null || v === undefined || v === '' ? undefined : Number(v));
const REPORTED: readonly string[] = ['starting', 'ready', 'busy', 'reconnecting', 'draining', 'stopped'];

function parseResources(raw: string | undefined): ResourceUsage | null {
  if (!raw) return null;
  try {
    return JSON.parse(raw) as ResourceUsage;
  } catch {
    return null;
  }
}

/** The jobs the queue has leased, by worker id (a bounded read of the lease index and each lease's fields). */
async function leasesByWorker(redis: Redis): Promise<Map<string, LeasedJob[]>> {
  const tokens = await redis.zrange(keys.queueLeases, '0', String(LIST_MAX_LEASES - 1));
  const out = new Map<string, LeasedJob[]>();
  if (!tokens.length) return out;
  const p = redis.pipeline();
  // Only these fields: the leased message itself can be large, and is not ours to show.
  for (const t of tokens) p.hmget(keys.lease(t), 'workerId', 'orgId', 'jobId', 'attempt', 'takenAt');
  for (const [err, v] of (await p.exec()) ?? []) {
    if (err) throw err;
    const [workerId, orgId, jobId, attempt, takenAt] = v as (string | null)[];
    if (!workerId || !orgId) continue;
    const list = out.get(workerId) ?? [];
    list.push({ jobId: jobId || null, orgId, attempt: Number(attempt) || 1, takenAt: iso(num(takenAt)) });
    out.set(workerId, list);
  }
  return out;
}

/** Every worker of the registry (most recent heartbeat first), with its state decided at `now`. */
export async function listWorkers(redis: Redis, now = Date.now()): Promise<WorkerList> {
  const entries = await redis.zrevrange(keys.workers, 0, LIST_MAX_WORKERS - 1, 'WITHSCORES');
  const ids: string[] = [];
  const scores: number[] = [];
  for (let i = 0; i < entries.length; i += 2) {
    ids.push(entries[i]!);
    scores.push(Number(entries[i + 1]));
  }
  const p = redis.pipeline();
  for (const id of ids) p.hgetall(keys.workerInfo(id)).hgetall(keys.workerStats(id)).get(keys.workerHeartbeat(id));
  const replies = ((await p.exec()) ?? []).map(([err, v]) => {
    if (err) throw err;
    return v;
  });
  const leases = await leasesByWorker(redis);

  const counts = Object.fromEntries([...REPORTED, 'lost'].map((s) => [s, 0])) as Record<RegistryWorkerState, number>;
  const workers = ids.map((workerId, i): WorkerListing => {
    const info = replies[3 * i] as Record<string, string>;
    const stats = replies[3 * i + 1] as Record<string, string>;
    const beatKey = replies[3 * i + 2] as string | null;
    const lastBeat = num(beatKey) ?? num(info['lastHeartbeat']) ?? scores[i]!;
    const interval = num(info['heartbeatIntervalMs']) ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    const reported = REPORTED.includes(info['state'] ?? '') ? info['state'] as ReportedWorkerState : null;
    const lost = beatKey === null || now - lastBeat > LOST_AFTER_MISSED_BEATS * interval;
    const state: RegistryWorkerState = lost ? 'lost' : reported ?? 'ready';
    counts[state]++;
    const jobs = leases.get(workerId) ?? [];
    leases.delete(workerId);
    return {
      workerId, state, reportedState: reported,
      host: info['host'] ?? null, pid: num(info['pid']) ?? null, startedAt: iso(num(info['startedAt']) ?? num(stats['startedAt'])),
      lastHeartbeat: iso(lastBeat), heartbeatAgeMs: Math.max(0, now - lastBeat), heartbeatIntervalMs: interval,
      maxJobs: num(info['maxJobs']) ?? null, jobsInFlight: jobs.length, jobs,
      resources: parseResources(info['resources']),
      stats: Object.keys(stats).length === 0 ? null : {
        startedAt: iso(num(stats['startedAt'])), totalJobs: num(stats['totalJobs']) ?? 0, successfulJobs: num(stats['successfulJobs']) ?? 0,
        failedJobs: num(stats['failedJobs']) ?? 0, averageDurationMs: num(stats['averageDuration']) ?? 0, lastJobAt: iso(num(stats['lastJobAt'])),
      },
      httpUrl: info['httpUrl'] ?? null,
      sandbox: info['sandbox'] ?? null,
    };
  });
  const unattributedLeases = [...leases.values()].reduce((n, l) => n + l.length, 0);
  return { workers, counts, unattributedLeases };
}
