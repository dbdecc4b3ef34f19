/**
 * The provider gate (docs/providers.md): what stands between a taken job and its browser. A worker asks it after the
 * take and before anything of the job runs; "not yet, come back at T" puts the job back with JobQueue.defer (no
 * attempt counted, nothing failed) instead of running it. The decision is shared by every worker and organisation:
 * - maintenance windows: computed here from the provider's pacing in the catalogue (provider-pacing.ts) — no state;
 * - circuit breaker, requests-per-minute ceiling and spacing: one atomic Lua step (./lua/passGate-2.lua) on
 *   `sri:provider-gate:{name}` and the minute's counter, on Redis's clock.
 * After the job, `record` tells the breaker what the job said about the portal (./lua/recordOutcome-1.lua), and
 * `countRequests` adds the browser requests of running jobs to the minute's counter, and `requestsThisMinute` reads
 * it: a running job waits before its next page action while the minute's budget is spent (gate-step.ts).
 *
 * Why a gate after the take rather than a condition inside the take script: the take's Lua would need every
 * provider's pacing, windows (time zones) and breaker in its KEYS and ARGV on every take, and another engineer's
 * per-account holds live there; a separate step keeps the take as it is and costs one round trip per job, which a
 * job that opens a browser does not notice. The deferral is one more transition (deferJob-10.lua).
 *
 * Shared: workers decide with it, the API reads the same state for GET /api/providers/{id}/health.
 */
import type { Redis } from 'ioredis';
import { keys } from '../keys.ts';
import { registerScripts, type LuaCall, type ScriptArea } from '../lua/scripts.ts';
import { maintenanceEndsAt, type ProviderPacing } from '../provider-pacing.ts';

export const GATE_SCRIPTS: ScriptArea = Object.freeze({ area: 'gate', version: 1, dir: new URL('./lua/', import.meta.url) });

export type BreakerState = 'closed' | 'open' | 'half_open';
export type GateWait = 'maintenance' | 'breaker' | 'rate' | 'spacing';
export type GateDecision =
  | { readonly go: true; readonly breaker: BreakerState }
  | { readonly go: false; readonly until: number; readonly why: GateWait; readonly breaker: BreakerState };

/** What a finished job says about its portal (breakerOutcomeOf). */
export type BreakerOutcome = 'failure' | 'success' | 'neutral';

/**
 * Error codes of a job that mean the portal itself is in trouble: its pages do not load (network error, navigation
 * timeout) or it answers 5xx. Exported for docs/providers.md and its test.
 */
export const INFRASTRUCTURE_FAILURES: ReadonlySet<string> = new Set(['NAVIGATION_ERROR', 'PORTAL_UNAVAILABLE']);
/** Codes of a job that reached the portal and got an answer: the portal works (its flow or session may not). */
const PORTAL_ANSWERED: ReadonlySet<string> = new Set(['SCRIPT_ERROR', 'SESSION_EXPIRED', 'SESSION_LOGGED_OUT', 'SCRIPT_RESOURCE_LIMIT']);

/** A job's outcome for its provider's breaker; anything that says nothing of the portal is 'neutral'. */
export function breakerOutcomeOf(status: string, errorCode: string | undefined): BreakerOutcome {
  if (status === 'done') return 'success';
  if (errorCode === undefined) return 'neutral';
  if (INFRASTRUCTURE_FAILURES.has(errorCode)) return 'failure';
  return PORTAL_ANSWERED.has(errorCode) ? 'success' : 'neutral';
}

/** Told of what the gate decides and of breaker transitions (the worker's metrics). */
export interface GateObserver {
  deferred?(providerName: string, why: GateWait): void;
  breakerState?(providerName: string, state: BreakerState, failures: number): void;
  breakerTransition?(providerName: string, from: BreakerState, to: BreakerState): void;
}

const RPM_KEY_TTL_MS = 120_000;
/** How soon a job held back by a half-open breaker's probe asks again (the probe may close it at any time). */
const PROBE_RECHECK_MS = 2000;
const minuteOf = (at: number) => Math.floor(at / 60_000);

export class ProviderGate {
  private constructor(private readonly redis: Redis, private readonly lua: Readonly<Record<string, LuaCall>>, private readonly observer: GateObserver) {}

  /** Registers the gate's scripts on `redis` (used, not closed). */
  static connect(redis: Redis, observer: GateObserver = {}): ProviderGate {
    return new ProviderGate(redis, registerScripts(redis, GATE_SCRIPTS), observer);
  }

  private script(name: string): LuaCall {
    const fn = this.lua[name];
    if (!fn) throw new Error(`gate script ${name} is not loaded`);
    return fn;
  }

  /**
   * May `jobId` of `providerName` start now? `probeMs`: how long this job, as the half-open breaker's probe, holds
   * back the others (its longest run). Writes only when the answer is go (the spacing's next start, the probe).
   */
  async pass(providerName: string, jobId: string, pacing: ProviderPacing, opts: { probeMs: number; now?: number; random?: () => number }): Promise<GateDecision> {
    const now = opts.now ?? Date.now();
    const maintenanceEnd = maintenanceEndsAt(pacing.maintenanceWindows, now);
    if (maintenanceEnd !== undefined) {
      this.observer.deferred?.(providerName, 'maintenance');
      return { go: false, until: maintenanceEnd, why: 'maintenance', breaker: 'closed' };
    }
    const paced = pacing.minSpacingMs !== undefined || pacing.requestsPerMinute !== undefined || pacing.breaker !== undefined;
    if (!paced) return { go: true, breaker: 'closed' };
    const random = opts.random ?? Math.random;
    const spacing = (pacing.minSpacingMs ?? 0) > 0 ? pacing.minSpacingMs! + Math.floor(random() * ((pacing.jitterMs ?? 0) + 1)) : 0;
    const minute = minuteOf(now);
    const reply = await this.script('passGate')(
      [keys.providerGate(providerName), keys.providerGateRpm(providerName, String(minute))],
      [jobId, spacing, pacing.requestsPerMinute ?? '', (minute + 1) * 60_000, pacing.breaker ? '1' : '0', Math.round(opts.probeMs), PROBE_RECHECK_MS],
    ) as [number, number, string, string?];
    if (Number(reply[0]) === 1) {
      const breaker = reply[2] as BreakerState;
      if (breaker === 'half_open') {
        this.observer.breakerState?.(providerName, breaker, 0);
        if (reply[3] === 'open') this.observer.breakerTransition?.(providerName, 'open', 'half_open');
      }
      return { go: true, breaker };
    }
    const why = reply[2] as GateWait;
    this.observer.deferred?.(providerName, why);
    return { go: false, until: Number(reply[1]), why, breaker: (reply[3] ?? 'closed') as BreakerState };
  }

  /** Tells the provider's breaker what a finished job said of the portal; nothing when the provider has no breaker. */
  async record(providerName: string, jobId: string, outcome: BreakerOutcome, pacing: ProviderPacing): Promise<{ before: BreakerState; after: BreakerState; failures: number } | undefined> {
    if (!pacing.breaker) return undefined;
    const [before, after, failures] = await this.script('recordOutcome')(
      [keys.providerGate(providerName)], [jobId, outcome, pacing.breaker.failureThreshold, pacing.breaker.coolDownMs],
    ) as [BreakerState, BreakerState, number, number];
    this.observer.breakerState?.(providerName, after, Number(failures));
    if (before !== after) this.observer.breakerTransition?.(providerName, before, after);
    return { before, after, failures: Number(failures) };
  }

  /** The provider's browser requests counted in the current minute (every worker and organisation). */
  async requestsThisMinute(providerName: string, now = Date.now()): Promise<number> {
    return Number(await this.redis.get(keys.providerGateRpm(providerName, String(minuteOf(now)))) ?? 0);
  }

  /** Adds `n` browser requests of the provider to the current minute's count (all organisations share it). */
  async countRequests(providerName: string, n: number, now = Date.now()): Promise<void> {
    if (n <= 0) return;
    const key = keys.providerGateRpm(providerName, String(minuteOf(now)));
    await this.redis.multi().incrby(key, n).pexpire(key, RPM_KEY_TTL_MS).exec();
  }
}

/** A provider's gate as the API shows it (GET /api/providers/{id}/health). */
export interface ProviderHealth {
  readonly breaker: {
    readonly enabled: boolean;
    /** 'half_open' also when the cool-down is over and no job has tried yet. */
    readonly state: BreakerState;
    readonly consecutiveFailures: number;
    readonly openUntil?: number;
    readonly changedAt?: number;
  };
  readonly maintenance: { readonly active: boolean; readonly endsAt?: number };
  readonly nextStartAt?: number;
  readonly requestsThisMinute: number;
}

/** Reads the provider's gate state (two reads, no write). */
export async function readProviderHealth(redis: Redis, providerName: string, pacing: ProviderPacing, now = Date.now()): Promise<ProviderHealth> {
  const [g, used] = await Promise.all([
    redis.hmget(keys.providerGate(providerName), 'state', 'failures', 'openUntil', 'changedAt', 'nextStartAt'),
    redis.get(keys.providerGateRpm(providerName, String(minuteOf(now)))),
  ]);
  const num = (v: string | null | undefined) => (v === null || v === undefined || v === '' ? undefined : Number(v));
  let state = (g[0] ?? 'closed') as BreakerState;
  const openUntil = num(g[2]);
  if (state === 'open' && openUntil !== undefined && now >= openUntil) state = 'half_open';
  const nextStartAt = num(g[4]);
  const endsAt = maintenanceEndsAt(pacing.maintenanceWindows, now);
  return {
    breaker: {
      enabled: pacing.breaker !== undefined, state, consecutiveFailures: num(g[1]) ?? 0,
      ...(state === 'open' && openUntil !== undefined ? { openUntil } : {}),
      ...(num(g[3]) !== undefined ? { changedAt: num(g[3]) } : {}),
    },
    maintenance: endsAt === undefined ? { active: false } : { active: true, endsAt },
    ...(nextStartAt !== undefined && nextStartAt > now ? { nextStartAt } : {}),
    requestsThisMinute: Number(used ?? 0),
  };
}
