/**
 * Everything the worker does to be observed, in one object it creates at start and stops last: Prometheus
 * metrics, the HTTP server for /metrics, /healthz and /readyz, the event-loop watch, the background resource
 * sampler (the heartbeat reads its cache) and the supervisor of the Redis connection (reconnecting → ready, or
 * give up after WORKER_REDIS_MAX_OUTAGE_MS). docs/observability.md describes what each exports.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.ts';
import type { WorkerConfig } from '../config.ts';
import { EventLoopWatch } from './event-loop.ts';
import { startWorkerHttpServer, type WorkerHttpServer } from './http-server.ts';
import { WorkerMetrics } from './metrics.ts';
import { RedisSupervisor, type RedisLinkState } from './redis-supervisor.ts';
import { ResourceSampler, type ResourcePaths } from './resources.ts';

export interface WorkerObservabilityOptions {
  config: WorkerConfig;
  redis: Redis;
  logger: Logger;
  /** The worker's lifecycle state. */
  state(): string;
  jobsInFlight(): number;
  browserUp(): boolean;
  lastHeartbeatAt(): number | undefined;
  /** The Redis connection was lost or regained. */
  onRedisChange(state: RedisLinkState): void;
  /** An outage reached WORKER_REDIS_MAX_OUTAGE_MS. */
  onRedisOutageLimit(outageMs: number): void;
  /** Jobs at once now (the live configuration's, held at WORKER_MAX_JOBS). @default WORKER_MAX_JOBS */
  maxJobs?: () => number;
  /** Where cgroup files are read (tests). */
  resourcePaths?: ResourcePaths;
}

export class WorkerObservability {
  readonly metrics: WorkerMetrics;
  readonly resources: ResourceSampler;
  readonly eventLoop: EventLoopWatch;
  readonly redisLink: RedisSupervisor;
  private server: WorkerHttpServer | undefined;

  constructor(private readonly opts: WorkerObservabilityOptions) {
    const { config, redis, logger } = opts;
    this.resources = new ResourceSampler({ logger, ...(opts.resourcePaths ? { paths: opts.resourcePaths } : {}) });
    this.eventLoop = new EventLoopWatch({
      limitMs: config.maxEventLoopDelayMs, windowMs: config.eventLoopWindowMs,
      // Said once the loop runs again: every job on this worker stalled that long (heartbeats, leases, probes too).
      onBlocked: (delayMs) => logger.warn({ delayMs, limitMs: config.maxEventLoopDelayMs }, `event loop blocked for ${delayMs} ms (WORKER_MAX_EVENT_LOOP_DELAY_MS ${config.maxEventLoopDelayMs}): every job on this worker stalled meanwhile`),
    });
    this.redisLink = new RedisSupervisor(redis, {
      maxOutageMs: config.redisMaxOutageMs, logger, onChange: opts.onRedisChange, onOutageLimit: opts.onRedisOutageLimit,
    });
    this.metrics = new WorkerMetrics({
      workerId: config.workerId, redis, queueMaxOrgs: config.metricsQueueMaxOrgs,
      sources: {
        state: opts.state, jobsInFlight: opts.jobsInFlight, maxJobs: opts.maxJobs ?? (() => config.maxJobs), browserUp: opts.browserUp,
        redisState: () => this.redisLink.state(), redisOutageMs: () => this.redisLink.outageMs(), redisReconnects: () => this.redisLink.reconnects(),
        lastHeartbeatAt: opts.lastHeartbeatAt, resources: () => this.resources.current(), eventLoop: () => this.eventLoop.status(),
      },
    });
  }

  /** Base URL of /metrics, /healthz, /readyz; undefined with WORKER_HTTP_PORT=off (or before start). */
  get httpUrl(): string | undefined {
    return this.server?.url;
  }

  /** Starts the watches and the HTTP server (first, so probes answer while the worker waits for Redis). */
  async start(): Promise<void> {
    this.eventLoop.start();
    void this.resources.start();
    const { config, redis, logger } = this.opts;
    if (config.httpPort === 'off') return;
    this.server = await startWorkerHttpServer({
      port: config.httpPort, host: config.httpHost, registry: this.metrics.registry, logger,
      probes: {
        eventLoop: () => this.eventLoop.status(), state: this.opts.state, redisState: () => this.redisLink.state(),
        pingRedis: () => redis.ping(), browserUp: this.opts.browserUp,
      },
    });
  }

  async stop(): Promise<void> {
    this.redisLink.stop();
    this.resources.stop();
    this.eventLoop.stop();
    await this.server?.close();
    this.server = undefined;
  }
}
