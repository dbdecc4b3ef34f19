/**
 * The worker's Prometheus metrics (served on WORKER_HTTP_PORT /metrics). Counters and the duration histogram are
 * fed as jobs finish; gauges read the worker's state when scraped, through `WorkerMetricsSources`. Every series
 * carries `worker_id`. docs/observability.md lists them with their labels.
 */
import type { Redis } from 'ioredis';
import { Counter, Gauge, Histogram } from 'prom-client';
import { BLOCKER_KINDS, type BlockerKind } from '../../shared/schemas.ts';
import { BoundedLabel, createMetricsRegistry, type Registry } from '../../shared/metrics/registry.ts';
import { registerQueueDepthGauges } from '../../shared/metrics/queue-depth.ts';
import type { LogStreamEnd } from '../../shared/job-logs.ts';
import type { ResourceUsage } from '../../shared/worker-registry.ts';
import type { EventLoopStatus } from './event-loop.ts';
import type { RedisLinkState } from './redis-supervisor.ts';
import type { BreakerState, GateObserver } from '../../shared/provider-gate/gate.ts';

/** Distinct provider / flow label values per process before further ones are exported as `other`. */
const MAX_PROVIDER_LABELS = 100;
const MAX_FLOW_LABELS = 500;
/** Jobs take seconds to minutes (EXECUTION_TIMEOUT is 300 s by default). */
const DURATION_BUCKETS_SECONDS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];

export const WORKER_LIFECYCLE_STATES = ['starting', 'ready', 'busy', 'reconnecting', 'draining', 'stopped'] as const;
const REDIS_STATES: readonly RedisLinkState[] = ['connected', 'reconnecting'];

/** What the gauges read at scrape time. */
export interface WorkerMetricsSources {
  state(): string;
  jobsInFlight(): number;
  maxJobs(): number;
  redisState(): RedisLinkState;
  redisOutageMs(): number;
  redisReconnects(): number;
  /** Epoch ms of the last heartbeat Redis acknowledged; undefined before the first. */
  lastHeartbeatAt(): number | undefined;
  browserUp(): boolean;
  resources(): ResourceUsage | undefined;
  /** The event-loop watch behind /healthz. */
  eventLoop(): EventLoopStatus;
}

export interface JobLabels { providerId?: string; flowId?: string }

export class WorkerMetrics {
  readonly registry: Registry;
  private readonly providers = new BoundedLabel(MAX_PROVIDER_LABELS);
  private readonly flows = new BoundedLabel(MAX_FLOW_LABELS);
  private readonly jobDuration: Histogram<'provider' | 'flow' | 'outcome'>;
  private readonly jobResults: Counter<'outcome' | 'error_code'>;
  private readonly logLinesDropped: Counter;
  private readonly logBatchesDropped: Counter;
  private readonly browserRestarts: Counter;
  private readonly heartbeatFailures: Counter;
  private readonly gateDeferrals: Counter<'provider' | 'reason'>;
  private readonly breakerState: Gauge<'provider' | 'state'>;
  private readonly breakerTransitions: Counter<'provider' | 'to'>;
  private readonly blockers: Counter<'provider' | 'kind'>;

  constructor(opts: { workerId: string; sources: WorkerMetricsSources; redis?: Redis; queueMaxOrgs?: number; now?: () => number }) {
    const s = opts.sources;
    const now = opts.now ?? Date.now;
    const registry = createMetricsRegistry({ worker_id: opts.workerId });
    this.registry = registry;
    const registers = [registry];

    this.jobDuration = new Histogram({
      name: 'sri_job_duration_seconds', help: 'Duration of a job attempt on this worker, from take to outcome, by provider, flow and outcome.',
      labelNames: ['provider', 'flow', 'outcome'], buckets: DURATION_BUCKETS_SECONDS, registers,
    });
    this.jobResults = new Counter({
      name: 'sri_job_results_total',
      help: 'Job attempts finished on this worker, by outcome (done, failed, cancelled, dead, retrying, released, late, unreported) and error code (none on success).',
      labelNames: ['outcome', 'error_code'], registers,
    });
    this.logLinesDropped = new Counter({ name: 'sri_job_log_lines_dropped_total', help: 'Live-log lines not streamed to Redis because it fell behind (they are still in execution.log).', registers });
    this.logBatchesDropped = new Counter({ name: 'sri_job_log_batches_dropped_total', help: 'Live-log batches not streamed to Redis because it fell behind.', registers });
    this.browserRestarts = new Counter({ name: 'sri_browser_restarts_total', help: 'Chromium launches after the first one (the browser crashed, was killed or disconnected).', registers });
    this.heartbeatFailures = new Counter({ name: 'sri_worker_heartbeat_failures_total', help: 'Heartbeats that Redis did not acknowledge.', registers });
    this.gateDeferrals = new Counter({
      name: 'sri_provider_gate_deferrals_total', help: 'Jobs this worker took and put back to wait, by their provider\'s gate, by provider and reason (spacing, rate, maintenance, breaker); no attempt was counted.',
      labelNames: ['provider', 'reason'], registers,
    });
    this.breakerState = new Gauge({
      name: 'sri_provider_breaker_state', help: 'A provider\'s circuit breaker as this worker last saw it: 1 for its state (closed, open, half_open), 0 for the others.',
      labelNames: ['provider', 'state'], registers,
    });
    this.blockers = new Counter({
      name: 'sri_job_blockers_total', help: 'Job attempts on this worker that met a blocker (login wall, CAPTCHA, rate limit, maintenance, access denied), by provider and kind; an attempt counts once per kind.',
      labelNames: ['provider', 'kind'], registers,
    });
    this.breakerTransitions = new Counter({
      name: 'sri_provider_breaker_transitions_total', help: 'Changes of a provider\'s circuit breaker this worker made, by provider and new state.', labelNames: ['provider', 'to'], registers,
    });

    new Gauge({ name: 'sri_jobs_in_flight', help: 'Jobs this worker is running now.', registers, collect() { this.set(s.jobsInFlight()); } });
    new Gauge({ name: 'sri_worker_max_jobs', help: 'Jobs this worker runs at once at most (WORKER_MAX_JOBS).', registers, collect() { this.set(s.maxJobs()); } });
    new Gauge({
      name: 'sri_worker_state', help: 'The worker\'s lifecycle state: 1 for the current one, 0 for the others.', labelNames: ['state'], registers,
      collect() { const cur = s.state(); for (const st of WORKER_LIFECYCLE_STATES) this.set({ state: st }, st === cur ? 1 : 0); },
    });
    new Gauge({
      name: 'sri_worker_redis_state', help: 'The worker\'s Redis connection: 1 for the current state (connected, reconnecting), 0 for the other.', labelNames: ['state'], registers,
      collect() { const cur = s.redisState(); for (const st of REDIS_STATES) this.set({ state: st }, st === cur ? 1 : 0); },
    });
    new Gauge({ name: 'sri_worker_redis_outage_seconds', help: 'How long the current Redis outage has lasted (0 when connected).', registers, collect() { this.set(s.redisOutageMs() / 1000); } });
    new Counter({
      name: 'sri_worker_redis_reconnects_total', help: 'Reconnect attempts to Redis (with backoff) since the worker started.', registers,
      collect() { this.reset(); this.inc(s.redisReconnects()); },
    });
    new Gauge({
      name: 'sri_worker_heartbeat_age_seconds', help: 'Time since the last heartbeat Redis acknowledged (the key expires at 30 s).', registers,
      collect() { const at = s.lastHeartbeatAt(); if (at === undefined) this.reset(); else this.set(Math.max(0, (now() - at) / 1000)); },
    });
    new Gauge({ name: 'sri_browser_up', help: '1 while the worker\'s Chromium is connected.', registers, collect() { this.set(s.browserUp() ? 1 : 0); } });

    // The watch /healthz reads: a scrape that got through after a block still shows it.
    new Gauge({
      name: 'sri_worker_event_loop_delay_max_seconds', help: 'Worst lateness of the worker\'s event loop within the last WORKER_EVENT_LOOP_WINDOW_MS.', registers,
      collect() { this.set(s.eventLoop().maxDelayMs / 1000); },
    });
    new Gauge({
      name: 'sri_worker_event_loop_stuck', help: '1 while /healthz fails because the event loop was blocked longer than WORKER_MAX_EVENT_LOOP_DELAY_MS within the window.', registers,
      collect() { this.set(s.eventLoop().stuck ? 1 : 0); },
    });
    new Counter({
      name: 'sri_worker_event_loop_blocks_total', help: 'Times the worker\'s event loop was blocked longer than WORKER_MAX_EVENT_LOOP_DELAY_MS.', registers,
      collect() { this.reset(); this.inc(s.eventLoop().blocks); },
    });

    // Resource usage as the heartbeat carries it (cached reading, never read on scrape).
    const resource = (name: string, help: string, pick: (r: ResourceUsage) => number | null) => new Gauge({
      name, help, registers,
      collect() { const r = s.resources(); const v = r ? pick(r) : null; if (v === null) this.reset(); else this.set(v); },
    });
    resource('sri_worker_cpu_percent', 'CPU used by the worker\'s cgroup (or process), % of one core, between the last two readings.', (r) => r.cpu.percent);
    resource('sri_worker_cpu_limit_cores', 'CPU limit of the worker\'s cgroup in cores (absent when unlimited).', (r) => r.cpu.limitCores);
    resource('sri_worker_memory_bytes', 'Memory used by the worker\'s cgroup (Chromium included), or the worker process\'s resident set outside a container.', (r) => r.memory.usedBytes);
    resource('sri_worker_memory_limit_bytes', 'Memory limit of the worker\'s cgroup (absent when unlimited).', (r) => r.memory.limitBytes);

    if (opts.redis) registerQueueDepthGauges(registry, { redis: opts.redis, maxOrgs: opts.queueMaxOrgs ?? 0 });
  }

  /** One job attempt finished (or could not be reported: outcome `unreported`). */
  jobFinished(labels: JobLabels, outcome: string, durationMs: number, errorCode?: string): void {
    this.jobDuration.observe({ provider: this.providers.value(labels.providerId), flow: this.flows.value(labels.flowId), outcome }, durationMs / 1000);
    this.jobResults.inc({ outcome, error_code: errorCode ?? 'none' });
  }

  /** What the provider gate tells (src/shared/provider-gate/gate.ts): deferrals and breaker states. */
  gateObserver(): GateObserver {
    const states: readonly BreakerState[] = ['closed', 'open', 'half_open'];
    return {
      deferred: (provider, why) => this.gateDeferrals.inc({ provider: this.providers.value(provider), reason: why }),
      breakerState: (provider, state) => {
        const p = this.providers.value(provider);
        for (const st of states) this.breakerState.set({ provider: p, state: st }, st === state ? 1 : 0);
      },
      breakerTransition: (provider, _from, to) => this.breakerTransitions.inc({ provider: this.providers.value(provider), to }),
    };
  }

  /** A job attempt met a blocker of `kind` (job/blocker-watch.ts): once per attempt and kind. */
  blockerSeen(provider: string, kind: BlockerKind): void {
    // The kind is one of BLOCKER_KINDS (the label stays bounded); anything else is counted as `other`.
    this.blockers.inc({ provider: this.providers.value(provider), kind: (BLOCKER_KINDS as readonly string[]).includes(kind) ? kind : 'other' });
  }

  /** The live log of a job attempt was closed (src/execution-plane/job/pipeline.ts). */
  liveLogClosed(end: LogStreamEnd): void {
    if (end.droppedLines) this.logLinesDropped.inc(end.droppedLines);
    if (end.droppedBatches) this.logBatchesDropped.inc(end.droppedBatches);
  }

  browserRestarted(): void {
    this.browserRestarts.inc();
  }

  heartbeatFailed(): void {
    this.heartbeatFailures.inc();
  }
}
