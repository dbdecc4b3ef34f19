/**
 * The workers' live configuration (docs/configuration.md "Live configuration"): limits an operator changes without
 * restarting workers. One Redis key (keys.workerConfig) holds one versioned JSON document, written whole by the
 * API (PUT /api/operator/worker-config, `sri config set`) with a version check, announced on
 * keys.workerConfigChanged; every worker reads it at start, on the announcement and every few seconds.
 *
 * Every setting here is one a worker honours (src/execution-plane/live-config.ts), and every one is optional: an
 * absent setting means the worker's environment value (WORKER_MAX_JOBS, WORKER_MAX_ATTEMPTS, WORKER_RETRY_BASE_MS,
 * WORKER_RETRY_MAX_MS) or, for the breaker, the provider's pacing in the catalogue. WORKER_MAX_JOBS stays the hard
 * ceiling: a live maxJobs above it is held at it by each worker (a worker's ceiling is its own environment's, which
 * the API does not know, so the write is not refused for it).
 *
 * Shared by both planes: the API validates with it before writing, the worker validates what it reads (a document
 * written by hand with redis-cli may be anything; the worker then keeps its last good configuration).
 */
import { z } from 'zod';
import { BLOCKER_KINDS, ProviderName, type BlockerKind } from './schemas.ts';

/** Most jobs one worker may be told to run at once; each worker's WORKER_MAX_JOBS caps it further. */
export const LIVE_MAX_JOBS_LIMIT = 1000;

export const LiveRetry = z.object({
  maxAttempts: z.number().int().min(1).max(100).optional()
    .describe('Attempts of a job whose message sets no maxAttempts (then dead-lettered). Absent: WORKER_MAX_ATTEMPTS.'),
  backoffBaseMs: z.number().int().min(0).max(3_600_000).optional()
    .describe('Backoff base of transient failures: attempt n waits a random time in [0, min(backoffMaxMs, base × 2^(n-1))]. Absent: WORKER_RETRY_BASE_MS.'),
  backoffMaxMs: z.number().int().min(0).max(24 * 3_600_000).optional()
    .describe('Backoff cap of transient failures. Absent: WORKER_RETRY_MAX_MS.'),
}).strict();
export type LiveRetry = z.infer<typeof LiveRetry>;

export const LiveBreaker = z.object({
  failureThreshold: z.number().int().min(1).max(1000).optional()
    .describe('Consecutive infrastructure failures (network errors, 5xx pages) that open a provider\'s circuit breaker, for providers whose pacing has a breaker. Absent: the pacing\'s own.'),
  blockerKinds: z.array(z.enum(BLOCKER_KINDS)).max(BLOCKER_KINDS.length)
    .refine((k) => new Set(k).size === k.length, 'each kind at most once').optional()
    .describe('Blocker kinds that count as the portal\'s failure in the provider\'s circuit breaker: a job attempt that met one (the result\'s `blocker`) counts as a failure even when it ended done, so failureThreshold blocked attempts in a row open the breaker and the provider\'s jobs wait its cool-down. Absent: blockers do not count.'),
}).strict();
export type LiveBreaker = z.infer<typeof LiveBreaker>;

export const LiveFeatures = z.object({
  blockerWatch: z.boolean().optional()
    .describe('Classify each page after every main-frame navigation and at a failure (blocker detection: the result\'s `blocker`, the job.blocked webhook, sri_job_blockers_total). false: only a script\'s helpers.detectBlocker() classifies. Absent: true.'),
  failureCapture: z.boolean().optional()
    .describe('A screenshot and the page\'s HTML (redacted) at the moment a script fails. Absent: true.'),
  recordings: z.boolean().optional()
    .describe('Honour a job\'s `record` (Playwright trace and video of the page). false: no recording is made, and the job\'s log says so. Absent: true.'),
}).strict();
export type LiveFeatures = z.infer<typeof LiveFeatures>;

/** Every feature flag resolved: the provider's, else the global one, else on. */
export type WorkerFeatures = Required<LiveFeatures>;

export const LiveGlobal = z.object({
  maxJobs: z.number().int().min(0).max(LIVE_MAX_JOBS_LIMIT).optional()
    .describe('Jobs one worker runs at once, at most its WORKER_MAX_JOBS (the hard ceiling). 0: workers take no new job (running ones finish). Absent: WORKER_MAX_JOBS.'),
  retry: LiveRetry.optional(),
  breaker: LiveBreaker.optional(),
  features: LiveFeatures.optional().describe('Feature flags of the worker\'s job runtime; each absent flag is on.'),
}).strict();

export const LiveProviderOverride = z.object({
  retry: LiveRetry.optional(),
  breaker: LiveBreaker.optional(),
  features: LiveFeatures.optional(),
}).strict();

/** Checks a retry block alone and merged over its global block: base ≤ cap. */
function checkBackoff(retry: LiveRetry | undefined, over: LiveRetry | undefined, path: (string | number)[], ctx: z.RefinementCtx): void {
  const base = retry?.backoffBaseMs ?? over?.backoffBaseMs;
  const cap = retry?.backoffMaxMs ?? over?.backoffMaxMs;
  if (base !== undefined && cap !== undefined && base > cap) {
    const field = retry?.backoffBaseMs !== undefined ? 'backoffBaseMs' : 'backoffMaxMs';
    ctx.addIssue({ code: 'custom', path: [...path, 'retry', field], message: `backoffBaseMs (${base}) must not be above backoffMaxMs (${cap})${over && path.length ? ' (the global value counts where the provider sets none)' : ''}` });
  }
}

export const LiveConfig = z.object({
  global: LiveGlobal.default({}),
  providers: z.record(ProviderName, LiveProviderOverride).default({})
    .refine((p) => Object.keys(p).length <= 500, 'at most 500 providers')
    .describe('Overrides by provider name (the job message\'s providerName); a provider\'s setting wins over the global one.'),
}).strict().superRefine((c, ctx) => {
  checkBackoff(c.global.retry, undefined, ['global'], ctx);
  for (const [name, p] of Object.entries(c.providers)) checkBackoff(p.retry, c.global.retry, ['providers', name], ctx);
}).meta({ id: 'WorkerLiveConfig', description: 'The workers\' live configuration; every setting optional (absent: the worker\'s environment, or the provider\'s pacing).' });
export type LiveConfig = z.infer<typeof LiveConfig>;

/** The document stored in keys.workerConfig. */
export const LiveConfigDocument = z.object({
  version: z.number().int().min(1),
  config: LiveConfig,
  updatedAt: z.string(),
  updatedBy: z.string(),
}).strict();
export type LiveConfigDocument = z.infer<typeof LiveConfigDocument>;

/** Largest document accepted (bytes): the API's write and the worker's read refuse more. */
export const LIVE_CONFIG_MAX_BYTES = 256 * 1024;

/** The configuration when the key does not exist: nothing set, version 0. */
export const EMPTY_LIVE_CONFIG: LiveConfig = Object.freeze({ global: {}, providers: {} });

export type ReadLiveConfig =
  | { readonly state: 'absent' }
  | { readonly state: 'valid'; readonly document: LiveConfigDocument }
  | { readonly state: 'invalid'; readonly version: number; readonly problem: string };

/** The stored text as a document, or why it is not one (first problem, with its field). Never throws. */
export function parseLiveConfigDocument(raw: string | null): ReadLiveConfig {
  if (raw === null) return { state: 'absent' };
  if (Buffer.byteLength(raw, 'utf8') > LIVE_CONFIG_MAX_BYTES) return { state: 'invalid', version: 0, problem: `larger than ${LIVE_CONFIG_MAX_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { state: 'invalid', version: 0, problem: 'not JSON' };
  }
  const version = typeof (json as { version?: unknown } | null)?.version === 'number' ? (json as { version: number }).version : 0;
  const parsed = LiveConfigDocument.safeParse(json);
  if (parsed.success) return { state: 'valid', document: parsed.data };
  return { state: 'invalid', version, problem: describeIssue(parsed.error.issues[0]) };
}

/** `config.global.maxJobs: Too big: expected number to be <=1000`. */
export function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'invalid';
  return `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`;
}

/** What a worker's environment gives when the live document sets nothing. */
export interface LiveDefaults {
  readonly maxJobs: number;
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

/** The worker's jobs-at-once: the live value held at the environment's ceiling. */
export function effectiveMaxJobs(config: LiveConfig, env: LiveDefaults): number {
  return Math.min(config.global.maxJobs ?? env.maxJobs, env.maxJobs);
}

/** A provider's own overrides, if the document has them (an inherited property such as `constructor` is none). */
function overrideOf(config: LiveConfig, providerName: string): z.infer<typeof LiveProviderOverride> | undefined {
  return Object.hasOwn(config.providers, providerName) ? config.providers[providerName] : undefined;
}

/** The retry policy of a provider's jobs: the provider's setting, else the global one, else the environment's. */
export function effectiveRetry(config: LiveConfig, providerName: string, env: LiveDefaults): RetryPolicy {
  const p = overrideOf(config, providerName)?.retry;
  const g = config.global.retry;
  const maxAttempts = p?.maxAttempts ?? g?.maxAttempts ?? env.maxAttempts;
  const backoffBaseMs = p?.backoffBaseMs ?? g?.backoffBaseMs ?? env.backoffBaseMs;
  const backoffMaxMs = p?.backoffMaxMs ?? g?.backoffMaxMs ?? env.backoffMaxMs;
  // The environment's pair is not checked against the live one (base from one, cap from the other): the cap wins.
  return { maxAttempts, backoffBaseMs: Math.min(backoffBaseMs, backoffMaxMs), backoffMaxMs };
}

/** The feature flags of a provider's jobs: the provider's flag, else the global one, else on. */
export function effectiveFeatures(config: LiveConfig, providerName: string): WorkerFeatures {
  const p = overrideOf(config, providerName)?.features;
  const g = config.global.features;
  return {
    blockerWatch: p?.blockerWatch ?? g?.blockerWatch ?? true,
    failureCapture: p?.failureCapture ?? g?.failureCapture ?? true,
    recordings: p?.recordings ?? g?.recordings ?? true,
  };
}

/** The blocker kinds the live document counts as breaker failures for a provider (the provider's list, else the global one). */
export function breakerBlockerKindsFor(config: LiveConfig, providerName: string): readonly BlockerKind[] {
  const p = overrideOf(config, providerName)?.breaker;
  return p?.blockerKinds ?? config.global.breaker?.blockerKinds ?? [];
}

/** The breaker threshold the live document sets for a provider, if any. */
export function breakerThresholdFor(config: LiveConfig, providerName: string): number | undefined {
  const p = overrideOf(config, providerName)?.breaker;
  return p?.failureThreshold ?? config.global.breaker?.failureThreshold;
}

/** The message on keys.workerConfigChanged after a write: the new version. */
export interface LiveConfigChanged { readonly version: number }
