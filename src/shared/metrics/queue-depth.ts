/**
 * Queue depth for the metrics endpoints of both planes: one read-only Lua call (./lua/readQueueDepths-0.lua) that
 * counts every organisation's waiting jobs and reads the creation time of the front job of the deepest ones.
 * `QueueDepthGauges` exports them on scrape, cached for a few seconds so several scrapers (or a scraper plus a
 * dashboard) cost one Redis call, and bounded: at most `maxOrgs` organisations get series of their own.
 */
import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { keys } from '../keys.ts';
import { registerScripts, type ScriptArea } from '../lua/scripts.ts';

/** The metrics' scripts (src/shared/lua/scripts.ts). Bump `version` when one changes behaviour. */
export const METRICS_SCRIPTS: ScriptArea = Object.freeze({ area: 'metrics', version: 2, dir: new URL('./lua/', import.meta.url) });

export interface OrgQueueDepth {
  orgId: string;
  /** Jobs waiting: the producer list plus both ready lists. */
  waiting: number;
  /** Epoch ms of the oldest `createdAt` among the fronts of the three lists; undefined when none could be read. */
  oldestCreatedAt?: number;
}

export interface QueueDepths {
  /** Organisations in the ring (all looked at). */
  organisations: number;
  /** Organisations with at least one waiting job. */
  organisationsWaiting: number;
  /** Waiting jobs of every organisation. */
  waiting: number;
  /** The deepest queues, deepest first, at most the `maxOrgs` asked for. */
  orgs: OrgQueueDepth[];
}

/** `createdAt` as the message carries it (ISO string or epoch ms) → epoch ms, or undefined. */
export function parseCreatedAt(raw: string): number | undefined {
  if (raw === '') return undefined;
  const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Date.parse(raw);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/**
 * Reads the depth of every organisation's queue: the organisations of the ring and of sri:orgs (one SUNION), then
 * one script call over their lists (EVALSHA, EVAL after a Redis restart).
 */
export async function readQueueDepths(redis: Redis, maxOrgs: number): Promise<QueueDepths> {
  const orgs = await redis.sunion(keys.queueRingMembers, keys.orgs);
  if (!orgs.length) return { organisations: 0, organisationsWaiting: 0, waiting: 0, orgs: [] };
  const read = registerScripts(redis, METRICS_SCRIPTS)['readQueueDepths']!;
  const reply = await read(orgs.flatMap((o) => [keys.orgJobs(o), keys.orgReadyHigh(o), keys.orgReadyNormal(o)]), [maxOrgs, ...orgs]) as
    [number, number, number, ...[string, number, string, string, string][]];
  const [organisations, organisationsWaiting, waiting, ...rows] = reply;
  return {
    organisations: Number(organisations), organisationsWaiting: Number(organisationsWaiting), waiting: Number(waiting),
    orgs: rows.map(([orgId, n, ...fronts]) => {
      const times = fronts.map(parseCreatedAt).filter((t): t is number => t !== undefined);
      return { orgId, waiting: Number(n), ...(times.length ? { oldestCreatedAt: Math.min(...times) } : {}) };
    }),
  };
}

export interface QueueDepthGaugesOptions {
  redis: Redis;
  /** Organisations exported one by one (the deepest queues); 0 exports only the totals. */
  maxOrgs: number;
  /** A scrape within this long of the last read reuses it. @default 5000 */
  cacheMs?: number;
  /** Longest one read may take before the scrape goes on without it. @default 2000 */
  timeoutMs?: number;
  now?: () => number;
}

/**
 * Registers the queue gauges on `registry`; they are read from Redis when scraped:
 * `sri_queue_length{org}`, `sri_queue_oldest_job_age_seconds{org}` (the `maxOrgs` deepest queues),
 * `sri_queue_waiting_jobs` and `sri_queue_organisations{with_jobs}` (every organisation), and
 * `sri_queue_metrics_up` (0 when the last read failed; the other gauges are then left empty, not stale).
 */
export function registerQueueDepthGauges(registry: Registry, opts: QueueDepthGaugesOptions): void {
  const now = opts.now ?? Date.now;
  const cacheMs = opts.cacheMs ?? 5000;
  const timeoutMs = opts.timeoutMs ?? 2000;
  let cached: { at: number; depths: QueueDepths | undefined } | undefined;
  let reading: Promise<QueueDepths | undefined> | undefined;

  /** One read at a time, whoever scrapes; undefined when Redis did not answer in time. */
  const depths = async (): Promise<QueueDepths | undefined> => {
    if (cached && now() - cached.at < cacheMs) return cached.depths;
    // A client that is reconnecting would queue the call and replay a pile of them later: no reading now.
    if (opts.redis.status !== 'ready') return undefined;
    reading ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const d = await Promise.race([
          readQueueDepths(opts.redis, opts.maxOrgs),
          new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs); }),
        ]);
        cached = { at: now(), depths: d };
        return d;
      } catch {
        cached = { at: now(), depths: undefined };
        return undefined;
      } finally {
        clearTimeout(timer);
        reading = undefined;
      }
    })();
    return reading;
  };

  // Each gauge reads in its own collect (prom-client collects all metrics of a scrape at once); `depths` makes
  // that one Redis call per scrape.
  new Gauge({
    name: 'sri_queue_length', labelNames: ['org'], registers: [registry],
    help: 'Jobs waiting in an organisation\'s queue (producer list + ready lists); only the METRICS_QUEUE_MAX_ORGS deepest queues.',
    async collect() {
      const d = await depths();
      this.reset();
      for (const o of d?.orgs ?? []) this.set({ org: o.orgId }, o.waiting);
    },
  });
  new Gauge({
    name: 'sri_queue_oldest_job_age_seconds', labelNames: ['org'], registers: [registry],
    help: 'Age of the oldest job at the front of an organisation\'s queue, from its createdAt; only the METRICS_QUEUE_MAX_ORGS deepest queues.',
    async collect() {
      const d = await depths();
      this.reset();
      const t = now();
      for (const o of d?.orgs ?? []) {
        if (o.oldestCreatedAt !== undefined) this.set({ org: o.orgId }, Math.max(0, (t - o.oldestCreatedAt) / 1000));
      }
    },
  });
  new Gauge({
    name: 'sri_queue_waiting_jobs', help: 'Jobs waiting in every organisation\'s queue.', registers: [registry],
    async collect() {
      const d = await depths();
      this.reset();
      if (d) this.set(d.waiting);
    },
  });
  new Gauge({
    name: 'sri_queue_organisations', labelNames: ['with_jobs'], registers: [registry],
    help: 'Organisations in the queue\'s ring (with_jobs="any") and those with waiting jobs (with_jobs="yes").',
    async collect() {
      const d = await depths();
      this.reset();
      if (!d) return;
      this.set({ with_jobs: 'any' }, d.organisations);
      this.set({ with_jobs: 'yes' }, d.organisationsWaiting);
    },
  });
  new Gauge({
    name: 'sri_queue_metrics_up', help: '1 when the last read of the queue depths from Redis succeeded, else 0.', registers: [registry],
    async collect() {
      this.set((await depths()) ? 1 : 0);
    },
  });
}
