/**
 * The worker's CPU and memory for its heartbeat: from its cgroup when it runs in a container (cgroup v2:
 * cpu.stat, cpu.max, memory.current, memory.max; v1: cpuacct.usage, cpu.cfs_quota_us, memory.usage_in_bytes,
 * memory.limit_in_bytes), otherwise from the process and the machine. In a container the cgroup is what the
 * orchestrator limits and kills on, and it counts Chromium too; the process alone does not.
 *
 * `ResourceSampler` reads in the background on a timer and caches the last reading for `RESOURCE_CACHE_TTL_MS`:
 * the heartbeat takes `current()` (synchronous, never waits), which is undefined when the cache is stale.
 */
import { access, readFile } from 'node:fs/promises';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import type { ResourceUsage } from '../../shared/worker-registry.ts';
import type { Logger } from '../../shared/logger.ts';

/** A reading older than this is not reported (the sampler is stuck or failing). */
export const RESOURCE_CACHE_TTL_MS = 35_000;
/** How often the sampler reads: well inside the cache TTL, so a heartbeat always finds a fresh reading. */
export const RESOURCE_SAMPLE_INTERVAL_MS = 15_000;

export interface ResourcePaths {
  /** Mount point of the cgroup file system. @default /sys/fs/cgroup */
  cgroupRoot?: string;
  /** This process's cgroup membership. @default /proc/self/cgroup */
  procSelfCgroup?: string;
  /** Files whose presence says "in a container" (for cgroup v1, whose root also has usage files). @default /.dockerenv, /run/.containerenv */
  containerMarkers?: readonly string[];
}

/** One raw reading; `percent` needs two, so the sampler computes it. */
export type RawUsage = Omit<ResourceUsage, 'cpu'> & { cpu: Omit<ResourceUsage['cpu'], 'percent'> };

const exists = (p: string) => access(p).then(() => true, () => false);
const readText = async (p: string) => (await readFile(p, 'utf8')).trim();

/** Limits at or above 2^60 bytes are "no limit" (cgroup v1 writes a page-rounded INT64_MAX). */
const UNLIMITED_BYTES = 2 ** 60;

/** `hierarchy-id:controllers:path` lines → controller → path ('' = the v2 unified hierarchy). */
function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === '') out.set('', m[2]!);
    for (const c of m[1]!.split(',')) if (c) out.set(c, m[2]!);
  }
  return out;
}

/** The first directory that holds `file`: the process's own cgroup under the mount, then the mount itself. */
async function findDir(candidates: string[], file: string): Promise<string | undefined> {
  for (const d of candidates) if (await exists(`${d}/${file}`)) return d;
  return undefined;
}

function processAndSystem(): Pick<RawUsage, 'process' | 'system'> {
  const m = process.memoryUsage();
  return {
    process: { rssBytes: m.rss, heapUsedBytes: m.heapUsed },
    system: { cpus: cpus().length, loadAverage1m: loadavg()[0] ?? 0, totalMemoryBytes: totalmem(), freeMemoryBytes: freemem() },
  };
}

async function readV2(dir: string): Promise<Pick<RawUsage, 'cpu' | 'memory'>> {
  const [stat, cpuMax, current, memMax] = await Promise.all([
    readText(`${dir}/cpu.stat`).catch(() => ''), readText(`${dir}/cpu.max`).catch(() => 'max'),
    readText(`${dir}/memory.current`), readText(`${dir}/memory.max`).catch(() => 'max'),
  ]);
  const usageUsec = Number(/^usage_usec (\d+)$/m.exec(stat)?.[1] ?? 0);
  const [quota, period] = cpuMax.split(/\s+/);
  const limitCores = quota && quota !== 'max' && Number(period) > 0 ? Number(quota) / Number(period) : null;
  return {
    cpu: { usageSeconds: usageUsec / 1e6, limitCores },
    memory: { usedBytes: Number(current), limitBytes: memMax === 'max' || Number(memMax) >= UNLIMITED_BYTES ? null : Number(memMax) },
  };
}

async function readV1(memDir: string, cpuacctDir: string | undefined, cpuDir: string | undefined): Promise<Pick<RawUsage, 'cpu' | 'memory'>> {
  const [used, limit, usageNs, quota, period] = await Promise.all([
    readText(`${memDir}/memory.usage_in_bytes`), readText(`${memDir}/memory.limit_in_bytes`).catch(() => ''),
    cpuacctDir ? readText(`${cpuacctDir}/cpuacct.usage`).catch(() => '0') : '0',
    cpuDir ? readText(`${cpuDir}/cpu.cfs_quota_us`).catch(() => '-1') : '-1',
    cpuDir ? readText(`${cpuDir}/cpu.cfs_period_us`).catch(() => '0') : '0',
  ]);
  const limitBytes = limit === '' || Number(limit) >= UNLIMITED_BYTES ? null : Number(limit);
  return {
    cpu: { usageSeconds: Number(usageNs) / 1e9, limitCores: Number(quota) > 0 && Number(period) > 0 ? Number(quota) / Number(period) : null },
    memory: { usedBytes: Number(used), limitBytes },
  };
}

/**
 * One reading. cgroup v2 when the process's cgroup (or the mount, inside a container's cgroup namespace) has
 * memory.current — the root cgroup has none, so a process outside any container falls through; cgroup v1 when
 * the process is in a cgroup other than the root or a container marker exists; else the process and the machine.
 */
export async function readResourceUsage(paths: ResourcePaths = {}, now = Date.now()): Promise<RawUsage> {
  const root = paths.cgroupRoot ?? '/sys/fs/cgroup';
  const own = parseProcCgroup(await readFile(paths.procSelfCgroup ?? '/proc/self/cgroup', 'utf8').catch(() => ''));
  const base = { sampledAt: now, ...processAndSystem() };
  const ownPath = (controller: string) => (own.get(controller) ?? '/').replace(/\/$/, '');

  const v2 = await findDir([...(own.has('') ? [`${root}${ownPath('')}`] : []), root], 'memory.current');
  if (v2) return { source: 'cgroup-v2', ...base, ...(await readV2(v2)) };

  const memPath = ownPath('memory');
  const inContainer = memPath !== '' || (await Promise.all((paths.containerMarkers ?? ['/.dockerenv', '/run/.containerenv']).map(exists))).some(Boolean);
  const memDir = await findDir([`${root}/memory${memPath}`, `${root}/memory`], 'memory.usage_in_bytes');
  if (inContainer && memDir) {
    const under = (controller: string, mounts: string[]) => mounts.flatMap((m) => [`${root}/${m}${ownPath(controller)}`, `${root}/${m}`]);
    const [cpuacctDir, cpuDir] = await Promise.all([
      findDir(under('cpuacct', ['cpuacct', 'cpu,cpuacct', 'cpuacct,cpu']), 'cpuacct.usage'),
      findDir(under('cpu', ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']), 'cpu.cfs_quota_us'),
    ]);
    return { source: 'cgroup-v1', ...base, ...(await readV1(memDir, cpuacctDir, cpuDir)) };
  }

  const cpu = process.cpuUsage();
  return {
    source: 'process', ...base,
    cpu: { usageSeconds: (cpu.user + cpu.system) / 1e6, limitCores: null },
    memory: { usedBytes: base.process.rssBytes, limitBytes: null },
  };
}

export interface ResourceSamplerOptions {
  paths?: ResourcePaths;
  /** @default RESOURCE_SAMPLE_INTERVAL_MS */
  intervalMs?: number;
  /** @default RESOURCE_CACHE_TTL_MS */
  ttlMs?: number;
  logger?: Logger;
  /** The reading itself; replaced in tests to make it slow or failing. @default readResourceUsage */
  read?: (paths: ResourcePaths | undefined, now: number) => Promise<RawUsage>;
  now?: () => number;
}

export class ResourceSampler {
  private last: ResourceUsage | undefined;
  private previous: RawUsage | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private readonly now: () => number;
  private warned = false;

  constructor(private readonly opts: ResourceSamplerOptions = {}) {
    this.now = opts.now ?? Date.now;
  }

  /** Starts reading on a timer; returns the first reading's promise (callers need not wait for it). */
  start(): Promise<void> {
    this.timer ??= setInterval(() => { void this.sample(); }, this.opts.intervalMs ?? RESOURCE_SAMPLE_INTERVAL_MS);
    this.timer.unref();
    return this.sample();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The cached reading when younger than the TTL, else undefined. Never reads, never waits. */
  current(): ResourceUsage | undefined {
    if (!this.last) return undefined;
    return this.now() - this.last.sampledAt <= (this.opts.ttlMs ?? RESOURCE_CACHE_TTL_MS) ? this.last : undefined;
  }

  /** One reading (at most one at a time: a slow file system cannot pile readings up). */
  sample(): Promise<void> {
    this.inFlight ??= (async () => {
      try {
        const raw = await (this.opts.read ?? readResourceUsage)(this.opts.paths, this.now());
        const prev = this.previous;
        const seconds = prev && prev.source === raw.source ? (raw.sampledAt - prev.sampledAt) / 1000 : 0;
        const percent = seconds > 0 ? Math.max(0, ((raw.cpu.usageSeconds - prev!.cpu.usageSeconds) / seconds) * 100) : null;
        this.previous = raw;
        this.last = { ...raw, cpu: { ...raw.cpu, percent: percent === null ? null : Math.round(percent * 10) / 10 } };
      } catch (e) {
        // Once per process: a file system that cannot be read stays so; the heartbeat then carries no reading.
        if (!this.warned) this.opts.logger?.warn({ err: (e as Error).message }, 'reading CPU and memory usage failed');
        this.warned = true;
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }
}
