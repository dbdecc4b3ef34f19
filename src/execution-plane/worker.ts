/**
 * The worker: takes leased jobs from the shared queue (fair across organisations inside the take script), up to
 * WORKER_MAX_JOBS at once; renews its leases every WORKER_LEASE_MS / 3; on its own timer promotes due retries and
 * takes back expired leases of dead workers; follows cancels on sri:control; heartbeat, stats.
 * It talks only to Redis and S3 (and the job's allowed hosts through Chromium).
 *
 * Shape: `startWorker` builds the worker's services (WorkerServices: what it owns and closes, what it was given and
 * leaves open), then a `Worker` runs them through one lifecycle, `'starting' → 'ready' → 'draining' → 'stopped'`
 * (WorkerLifecycle; the state it reports adds `busy` and `reconnecting` while ready). Every way out — stop, a
 * revocation, Redis gone for too long, a failed start — goes through one routine, `shutdown`: take no new job, let
 * running ones finish for the grace period (none when Redis is gone), abort the rest (each is released back to its
 * queue untouched, or its lease expires), wait ABORT_SETTLE_MS for them, then close everything; jobs still unsettled
 * then make the shutdown's result a WORKER_SHUTDOWN_TIMEOUT error.
 * Observed through ./observability/: metrics, /healthz and /readyz, the registry entry its heartbeat keeps; when
 * Redis goes away it is `reconnecting` until it returns, or gives up after WORKER_REDIS_MAX_OUTAGE_MS (`fatal`).
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { createRedis } from '../shared/redis.ts';
import { keys } from '../shared/keys.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { BlobStore, createS3Client } from '../shared/s3.ts';
import { SriError } from '../shared/errors.ts';
import { createTracing, type Tracing } from '../shared/tracing.ts';
import { BrowserPool } from './browser.ts';
import type { WorkerConfig } from './config.ts';
import { Heartbeat } from './heartbeat.ts';
import { EgressProxy, serviceOf } from './job/egress-proxy.ts';
import { boundWait } from './job/deadline.ts';
import { processJob, type PipelineDeps } from './job/pipeline.ts';
import { jobTimeoutMs, LEASE_LOST } from './job/attempt.ts';
import { JobQueue, type ControlMessage, type Taken } from '../shared/queue/job-queue.ts';
import { ProviderGate } from '../shared/provider-gate/gate.ts';
import type { ScriptRunner } from './script/runner.ts';
import { SandboxRunner } from './script/sandbox/sandbox-runner.ts';
import { WorkerObservability } from './observability/worker-observability.ts';
import type { ResourcePaths } from './observability/resources.ts';
import { resolveWorkerIdentity } from './enrolment.ts';
import { isAuthRefusal, RevocationWatch } from './revocation.ts';
import { parseSriDocument } from '../sri/parse.ts';
import { LiveConfigWatcher, liveDefaultsOf } from './live-config.ts';

export type WorkerState = 'starting' | 'ready' | 'busy' | 'reconnecting' | 'draining' | 'stopped';
/** The worker's own lifecycle; `ready` is reported as `busy` or `reconnecting` when it is (WorkerState). */
export type WorkerLifecycle = 'starting' | 'ready' | 'draining' | 'stopped';

/** How a shutdown ended: `error` (WORKER_SHUTDOWN_TIMEOUT) when jobs were still unsettled after their abort. */
export interface ShutdownResult {
  readonly unsettled: number;
  readonly error?: SriError;
}

export interface WorkerHandle {
  readonly workerId: string;
  /** Base URL of the worker's /metrics, /healthz and /readyz; undefined with WORKER_HTTP_PORT=off. */
  readonly httpUrl: string | undefined;
  /**
   * Settles when the worker gave up by itself — Redis unreachable for longer than WORKER_REDIS_MAX_OUTAGE_MS —
   * with the reason; it has then stopped (running jobs abandoned: their leases expire and other workers run
   * them again). The process should exit non-zero so its supervisor restarts it. Never rejects.
   * Also settles, with WORKER_REVOKED, when the worker was revoked (src/execution-plane/revocation.ts): the process
   * should exit with EXIT_CODE_REVOKED.
   */
  readonly fatal: Promise<SriError>;
  state(): WorkerState;
  /**
   * Takes no new job, waits for the running ones up to `graceMs` (@default 60000), then aborts and releases the rest
   * and closes everything. Never rejects; its result says whether jobs were left unsettled (WORKER_SHUTDOWN_TIMEOUT).
   */
  stop(opts?: { graceMs?: number }): Promise<ShutdownResult>;
}

export interface WorkerDeps {
  /** @default a pino logger named 'worker' writing to LOG_DIR */
  logger?: Logger;
  /** Used, not closed, by the worker. @default a connection to REDIS_URL, closed on stop */
  redis?: Redis;
  /** Used, not closed, by the worker. @default a client of S3_ENDPOINT, destroyed on stop */
  blobStore?: BlobStore;
  /** @default SandboxRunner: a process per job as WORKER_SANDBOX says (checked before anything else starts) */
  runner?: ScriptRunner;
  /** How often organisations with a producer list are added to the ring (SMEMBERS + SCAN). @default 5000 */
  orgRefreshMs?: number;
  /** Where the resource sampler reads cgroup files. @default /sys/fs/cgroup, /proc/self/cgroup */
  resourcePaths?: ResourcePaths;
  /**
   * Used, not shut down, by the worker. @default spans of service `sri-worker` (instance: WORKER_ID) to
   * OTEL_EXPORTER_OTLP_ENDPOINT, flushed when the worker stops
   */
  tracing?: Tracing;
}

export const DEFAULT_STOP_GRACE_MS = 60_000;
/** After the grace period, running jobs are aborted; this is how long their failure reports may still take. */
const ABORT_SETTLE_MS = 10_000;

/** A sleep that `wake()` ends early: the poll loop's idle wait, interrupted by stop and by a freed job slot. */
class Waker {
  private wakeUp: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  wake(): void {
    this.wakeUp?.();
  }
}

/** Settles after `ms` (unref'd: it keeps no process alive); resolves `'timeout'`. */
const after = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());

/**
 * What the worker works with, made before it starts: given ones (deps) are used and left open, the others are
 * owned and closed by `close`.
 */
class WorkerServices {
  readonly logger: Logger;
  readonly redis: Redis;
  /** Its own connection: a subscribed connection can run no other command. */
  readonly control: Redis;
  readonly blobStore: BlobStore;
  readonly egress: EgressProxy;
  readonly browsers: BrowserPool;
  readonly tracing: Tracing;

  constructor(readonly config: WorkerConfig, readonly runner: ScriptRunner, baseLogger: Logger, private readonly deps: WorkerDeps,
    onBrowserRestart: () => void) {
    const workerId = config.workerId;
    this.logger = baseLogger.child({ workerId });
    this.redis = deps.redis ?? createRedis(config, { name: `sri-worker-${workerId}` });
    this.blobStore = deps.blobStore ?? new BlobStore(createS3Client(config));
    // The platform's own services are never a job's destination, whatever its allowedHosts (docs/security.md "Egress").
    this.egress = new EgressProxy(this.logger, {
      // Every node of a Redis Cluster is one of them (the startup nodes; they name the others in the same network).
      platformServices: [serviceOf(config.redisUrl), ...(config.redisClusterNodes ?? []), serviceOf(config.s3Endpoint),
        typeof config.httpPort === 'number' && config.httpPort > 0 ? { host: config.httpHost, port: config.httpPort } : undefined]
        .filter((x): x is { host: string; port: number } => x !== undefined),
    });
    this.browsers = new BrowserPool({
      chromiumPath: config.chromiumPath, launchTimeoutMs: 60_000, logger: this.logger, onRestart: onBrowserRestart,
      // One context waiting per job slot, prepared while the slot's current job runs (issue 14).
      prepareLease: () => this.egress.prepareLease(), warmContexts: config.maxJobs,
      maxContextsPerBrowser: config.browserMaxContexts, maxBrowserAgeMs: config.browserMaxAgeMs, browsers: config.browsers,
    });
    this.tracing = deps.tracing ?? createTracing({
      serviceName: 'sri-worker', otlpEndpoint: config.otlpEndpoint, resource: { 'service.instance.id': workerId },
    });
    this.control = this.redis.duplicate({ connectionName: `sri-worker-${workerId}-control` });
    // ioredis reconnects on its own (and resubscribes); without a listener it would print every error.
    this.control.on('error', (e: Error) => this.logger.debug({ err: e.message }, 'control channel connection error'));
  }

  /** The script runner was given (deps.runner): the worker neither prepares nor closes it. */
  get runnerGiven(): boolean {
    return this.deps.runner !== undefined;
  }

  private closing: Promise<void> | undefined;

  /** Closes what the worker owns, once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.control.disconnect();
      if (!this.deps.runner) this.runner.close?.();
      await this.browsers.close();
      await this.egress.close();
      if (!this.deps.redis) {
        if (this.redis.status === 'ready') await boundWait(this.redis.quit(), 2000, 'closing Redis').catch(() => {});
        this.redis.disconnect();
      }
      if (!this.deps.blobStore) this.blobStore.client.destroy();
      // Last: the spans of the jobs that settled while stopping are exported too (bounded by the exporter's timeout).
      if (!this.deps.tracing) await this.tracing.shutdown();
    })();
    return this.closing;
  }
}

/** One running job: its lease, its abort, and the promise that settles once its outcome is reported. */
interface RunningJob {
  readonly taken: Taken;
  readonly done: Promise<void>;
  readonly abort: AbortController;
}

class Worker implements WorkerHandle {
  readonly workerId: string;
  readonly fatal: Promise<SriError>;
  private lifecycle: WorkerLifecycle = 'starting';
  private redisDown = false;
  private readonly running = new Map<string, RunningJob>();
  private readonly waker = new Waker();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly startedAt = Date.now();
  private readonly logger: Logger;
  private readonly revocation: RevocationWatch;
  private readonly observability: WorkerObservability;
  private readonly heartbeat: Heartbeat;
  /** Live configuration (live-config.ts): maxJobs, retries, breaker threshold from sri:worker-config, within WORKER_MAX_JOBS. */
  private readonly live: LiveConfigWatcher;
  private queue: JobQueue | undefined;
  private pipelineDeps: PipelineDeps | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private shuttingDown: Promise<ShutdownResult> | undefined;
  private giveUp: (e: SriError) => void = () => {};
  /** Until the worker is up, an outage over the limit or a revocation fails the start instead. */
  private startFailed: (e: SriError) => void = () => {};
  private readonly failedDuringStart: Promise<never>;

  constructor(private readonly s: WorkerServices, private readonly identitySource: string, private readonly orgRefreshMs: number,
    resourcePaths: ResourcePaths | undefined) {
    const { config, redis, logger } = s;
    this.workerId = config.workerId;
    this.logger = logger;
    this.fatal = new Promise<SriError>((resolve) => { this.giveUp = resolve; });
    this.failedDuringStart = new Promise<never>((_, reject) => { this.startFailed = reject; });
    this.failedDuringStart.catch(() => {});
    this.revocation = new RevocationWatch({
      confirmMs: config.revokedAfterMs, logger,
      onRevoked: (reason) => {
        logger.fatal({ reason }, 'worker revoked');
        this.fail(new SriError('WORKER_REVOKED', `The worker ${this.workerId} was revoked: ${reason}. It takes no more jobs and exits; its running jobs run again on other workers once their leases expire.`));
      },
    });
    this.revocation.watch(redis);
    this.revocation.watch(s.control);
    this.observability = new WorkerObservability({
      config, redis, logger, resourcePaths, maxJobs: () => this.live.maxJobs(),
      state: () => this.state(), jobsInFlight: () => this.running.size, browserUp: () => s.browsers.isUp(),
      lastHeartbeatAt: () => this.heartbeat.lastAcknowledgedAt(),
      onRedisChange: (link) => {
        this.redisDown = link === 'reconnecting';
        if (!this.redisDown) void this.heartbeat.beat();
      },
      onRedisOutageLimit: (outageMs) => {
        logger.fatal({ outageMs, maxOutageMs: config.redisMaxOutageMs }, 'Redis unreachable for too long; worker giving up');
        this.fail(new SriError('WORKER_REDIS_LOST',
          `Redis was unreachable for ${Math.round(outageMs / 1000)} s, longer than WORKER_REDIS_MAX_OUTAGE_MS (${config.redisMaxOutageMs} ms); the worker exits so that its supervisor restarts it.`));
      },
    });
    this.live = new LiveConfigWatcher({
      redis, subscriber: s.control, logger, defaults: liveDefaultsOf(config), registry: this.observability.metrics.registry, onChange: () => this.waker.wake(),
    });
    this.heartbeat = new Heartbeat({
      redis, workerId: this.workerId, intervalMs: config.heartbeatIntervalMs, logger,
      onFailure: () => this.observability.metrics.heartbeatFailed(),
      onRevoked: () => this.revocation.markedRevoked(),
      report: () => ({
        workerId: this.workerId, state: this.state(), host: hostname(), pid: process.pid, startedAt: this.startedAt,
        heartbeatIntervalMs: config.heartbeatIntervalMs, maxJobs: this.live.maxJobs(), jobsInFlight: this.running.size,
        httpUrl: this.observability.httpUrl, resources: this.observability.resources.current(), sandbox: s.runner.name,
      }),
    });
  }

  /** Counted in the worker's metrics (the browser pool's onRestart). */
  browserRestarted(): void {
    this.observability.metrics.browserRestarted();
  }

  get httpUrl(): string | undefined {
    return this.observability.httpUrl;
  }

  state(): WorkerState {
    if (this.lifecycle !== 'ready') return this.lifecycle;
    // `reconnecting` keeps running: jobs go on, and the loop's commands wait for Redis to return.
    return this.redisDown ? 'reconnecting' : this.running.size > 0 ? 'busy' : 'ready';
  }

  private isRunning(): boolean {
    return this.lifecycle === 'ready';
  }

  /** Connects, checks Redis and Chromium, then takes jobs. A failure closes what was opened and throws. */
  async start(): Promise<void> {
    const { config, redis, control, browsers, egress, runner, logger } = this.s;
    try {
      // First: probes answer (healthz ok, readyz not yet) while the worker waits for Redis and Chromium.
      await this.observability.start();
      const queue = await JobQueue.connect(redis, {
        leaseMs: config.leaseMs, maxJobBytes: config.maxJobBytes,
        // The job runs (its lease is what counts); only its status reads 'queued' until its outcome.
        onStartError: (err, t) => logger.warn({ orgId: t.orgId, jobId: t.jobId, err: err.message }, 'could not mark the job running'),
      });
      this.queue = queue;
      // ioredis retries forever: a worker started before Redis waits for it (up to WORKER_REDIS_MAX_OUTAGE_MS), and says so.
      const waiting = setTimeout(() => logger.warn({ redis: config.redisUrl.replace(/\/\/[^@/]*@/, '//***@') }, 'waiting for Redis'), 3000);
      try {
        await Promise.race([redis.ping(), this.failedDuringStart]);
      } finally {
        clearTimeout(waiting);
      }
      await queue.assertServerSupported();
      await queue.initWorkerStats(this.workerId, Date.now());
      await control.subscribe(keys.queueControl);
      await this.live.start();
      await this.heartbeat.start();
      await egress.start();
      await Promise.race([browsers.get(), this.failedDuringStart]);
      // The first job's context and sandbox are ready before it is taken; each job starts its successor's.
      browsers.refill();
      if (!this.s.runnerGiven) runner.prepare?.(config.maxJobs);
    } catch (e) {
      // No job runs yet; the heartbeat (if one was written) is removed before Redis is closed (bounded: 2 s).
      await this.shutdown({ graceMs: 0, redisUsable: true });
      // An enrolled worker whose own credentials are refused at start was revoked (or its user is gone): exit 77, not 1.
      if (this.identitySource !== 'configured' && e instanceof Error && isAuthRefusal(e)) {
        logger.fatal({ err: e.message.slice(0, 120) }, 'worker revoked');
        throw new SriError('WORKER_REVOKED', `Redis refused the enrolled worker ${this.workerId}'s credentials at start (${e.message.slice(0, 80)}): it was revoked.`);
      }
      throw e;
    }
    process.on('unhandledRejection', this.onUnhandled);
    this.pipelineDeps = this.makePipelineDeps(this.queue);
    control.on('message', (_channel: string, message: string) => this.onControl(message));
    this.lifecycle = 'ready';
    // The registry shows the worker ready now, not at the next tick.
    void this.heartbeat.beat();
    this.every(Math.max(10, Math.floor(config.leaseMs / 3)), () => this.renewLeases());
    this.every(config.recoveryIntervalMs, () => this.sweep());
    logger.info({ maxJobs: this.live.maxJobs(), maxJobsCeiling: config.maxJobs, workerConfigVersion: this.live.version(), pollIntervalMs: config.pollIntervalMs, leaseMs: config.leaseMs }, 'worker ready');
    this.loopDone = this.pollLoop();
  }

  private makePipelineDeps(queue: JobQueue): PipelineDeps {
    const { config, redis, blobStore, browsers, egress, logger, runner, tracing } = this.s;
    const metrics = this.observability.metrics;
    return {
      config, redis, queue, blobStore, browsers, egress, logger, tracer: tracing.tracer, runner,
      // A finishing job still counts in `running`, so a full worker's slot takes its own successor and no more.
      takeNextFor: () => (this.isRunning() && this.running.size <= this.live.maxJobs() ? this.workerId : undefined),
      retryPolicy: (job) => this.live.retryFor(job.providerName),
      features: (job) => this.live.featuresFor(job.providerName),
      onLiveLogClosed: (end) => metrics.liveLogClosed(end),
      onBlocker: (provider, kind) => metrics.blockerSeen(provider, kind),
      // Pacing, maintenance windows and circuit breakers of providers (docs/providers.md); a probe holds the others
      // back for as long as the job may run, plus a lease.
      gate: {
        gate: ProviderGate.connect(redis, metrics.gateObserver()), queue, redis, logger,
        probeMs: (job) => jobTimeoutMs(job, config) + config.leaseMs,
        adjustPacing: (providerName, pacing) => this.live.pacingFor(providerName, pacing),
        breakerBlockerKinds: (providerName) => this.live.breakerBlockerKinds(providerName),
      },
      // The XML evidence of `sri` jobs is read into parsed data, which the control plane keeps as documents.
      evidenceParser: { parse: parseSriDocument },
    };
  }

  // Scripts run in processes of their own (script/sandbox/); a promise of the worker's own that nobody awaited (a
  // Playwright call of a job that has ended, say) must still not take the worker and its other jobs down.
  private readonly onUnhandled = (reason: unknown) => {
    // Only the error's name: its message is not tied to a job, so no job's redactor can clean it of secrets.
    this.logger.warn({ errName: (reason as Error | undefined)?.name ?? typeof reason }, 'unhandled promise rejection ignored');
  };

  /** A cancel reaches the job's worker through sri:control within one message; the renewal's check is the backup. */
  private onControl(message: string): void {
    let m: ControlMessage;
    try {
      m = JSON.parse(message) as ControlMessage;
    } catch {
      return;
    }
    if (m.type === 'quota') {
      if (typeof m.orgId === 'string') this.queue?.forgetQuota(m.orgId);
      return;
    }
    if (m.type !== 'cancel') return;
    for (const r of this.running.values()) {
      if (r.taken.jobId === m.jobId) r.abort.abort(new SriError('CANCELLED'));
    }
  }

  private async renewLeases(): Promise<void> {
    const list = [...this.running.values()];
    if (!list.length || !this.queue) return;
    try {
      const gone = new Set(await this.queue.renew(this.workerId, list.map((r) => r.taken.token)));
      const cancelled = await this.queue.cancelledAmong(list.flatMap((r) => (r.taken.jobId ? [r.taken.jobId] : [])));
      for (const r of list) {
        if (gone.has(r.taken.token)) {
          this.logger.warn({ orgId: r.taken.orgId, jobId: r.taken.jobId }, 'lease lost (another worker may run the job); stopping it');
          r.abort.abort(new SriError('WORKER_SHUTDOWN', 'The job\'s lease was lost; another worker runs it.', { details: LEASE_LOST }));
        } else if (r.taken.jobId && cancelled.has(r.taken.jobId)) {
          r.abort.abort(new SriError('CANCELLED'));
        }
      }
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, 'renewing leases failed; retrying at the next tick');
    }
  }

  private async sweep(): Promise<void> {
    if (!this.queue) return;
    try {
      const recovered = await this.queue.recoverExpired();
      const promoted = await this.queue.promoteDue() + await this.queue.promoteDeferred();
      if (recovered) this.logger.warn({ recovered }, 'took back jobs of expired leases (dead or cut-off workers)');
      if (recovered || promoted) this.waker.wake();
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, 'recovering leases / promoting retries failed; retrying');
    }
  }

  /** Runs `fn` every `ms`, never overlapping itself. */
  private every(ms: number, fn: () => Promise<void>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      void fn().finally(() => { busy = false; });
    }, ms);
    this.timers.push(t);
  }

  private launch(taken: Taken, queue: JobQueue, pipelineDeps: PipelineDeps): void {
    const abort = new AbortController();
    const labels = jobLabels(taken.raw);
    const takenAt = Date.now();
    const metrics = this.observability.metrics;
    const done = processJob(taken, pipelineDeps, abort.signal)
      .then(async (outcome) => {
        // A deferred job did not run (its provider's gate counted it): it is no attempt.
        if (outcome.status !== 'deferred') metrics.jobFinished(labels, outcome.status, outcome.durationMs, outcome.errorCode);
        // The slot's next job came with the completion (one round trip); stopped meanwhile: hand it back.
        if (!outcome.next) return;
        if (this.isRunning()) this.launch(outcome.next, queue, pipelineDeps);
        else await queue.release(outcome.next);
      })
      .catch((e: unknown) => {
        // Reached only when Redis or S3 fail while reporting; the lease then expires and the job runs again.
        this.logger.error({ orgId: taken.orgId, err: (e as Error).message }, 'job could not be completed');
        metrics.jobFinished(labels, 'unreported', Date.now() - takenAt);
      })
      .finally(() => {
        this.running.delete(taken.token);
        this.waker.wake();
      });
    this.running.set(taken.token, { taken, done, abort });
  }

  private async pollLoop(): Promise<void> {
    const { config } = this.s;
    const queue = this.queue!;
    const pipelineDeps = this.pipelineDeps!;
    let lastRefresh = 0;
    while (this.isRunning()) {
      try {
        if (Date.now() - lastRefresh >= this.orgRefreshMs) {
          await queue.discoverOrgs();
          lastRefresh = Date.now();
        }
        if (this.running.size >= this.live.maxJobs()) {
          await this.waker.sleep(config.pollIntervalMs);
          continue;
        }
        const taken = await queue.take(this.workerId);
        // Stopped while the take was on its way: hand the job straight back.
        if (taken && !this.isRunning()) await queue.release(taken);
        else if (taken) this.launch(taken, queue, pipelineDeps);
        else await this.waker.sleep(config.pollIntervalMs);
      } catch (e) {
        this.logger.error({ err: (e as Error).message }, 'polling failed; retrying');
        await this.waker.sleep(config.pollIntervalMs);
      }
    }
  }

  stop(opts: { graceMs?: number } = {}): Promise<ShutdownResult> {
    return this.shutdown({ graceMs: opts.graceMs ?? DEFAULT_STOP_GRACE_MS, redisUsable: true });
  }

  /**
   * Gives up by itself (revoked, Redis gone for too long): while starting, the start fails with `e`; once running,
   * the worker shuts down without waiting on Redis — running jobs are aborted, their leases expire and other workers
   * run them again (attempt + 1) — then `fatal` settles for the process to exit non-zero.
   */
  private fail(e: SriError): void {
    if (this.lifecycle === 'starting') {
      this.startFailed(e);
      return;
    }
    void this.shutdown({ graceMs: 0, redisUsable: false }).finally(() => this.giveUp(e));
  }

  /**
   * The one way the worker ends, whatever ends it (stop, a failed start, a revocation, Redis lost):
   * 1. `draining`: no new job is taken; the poll loop ends at its next check.
   * 2. With Redis usable, running jobs may finish for `graceMs` (their leases are still renewed meanwhile).
   * 3. The jobs still running are aborted (WORKER_SHUTDOWN: each is released back to its queue untouched).
   * 4. Without Redis, connections are closed first, so the jobs' reports fail at once instead of waiting on it.
   * 5. The aborted jobs may settle for ABORT_SETTLE_MS; jobs still unsettled make the result WORKER_SHUTDOWN_TIMEOUT.
   * 6. Timers, revocation watch, heartbeat (the registry entry removed), probes, then owned services are closed.
   */
  private shutdown(opts: { graceMs: number; redisUsable: boolean }): Promise<ShutdownResult> {
    this.shuttingDown ??= (async () => {
      const { graceMs, redisUsable } = opts;
      const wasStarting = this.lifecycle === 'starting';
      this.lifecycle = 'draining';
      this.waker.wake();
      if (!wasStarting) this.logger.info({ running: this.running.size, graceMs }, 'worker draining');
      const allDone = () => Promise.all([...this.running.values()].map((r) => r.done));
      if (redisUsable && !wasStarting) {
        void this.heartbeat.beat();
        // The loop ends at its next check; bounded, in case it waits on a Redis that is gone.
        await Promise.race([this.loopDone, after(Math.max(graceMs, 1000))]);
        const first = await Promise.race([allDone().then(() => 'done' as const), after(graceMs)]);
        if (first === 'timeout' && this.running.size) this.logger.warn({ running: this.running.size }, 'grace period over; releasing running jobs back to their queues');
      }
      for (const r of this.running.values()) r.abort.abort(new SriError('WORKER_SHUTDOWN'));
      // Disconnecting fails the commands that wait on Redis, so the jobs' reports settle at once.
      if (!redisUsable) await this.closeAll(false);
      await Promise.race([allDone(), after(ABORT_SETTLE_MS)]);
      const unsettled = this.running.size;
      // Leases are renewed until every job has settled: a draining worker must not lose its jobs to others.
      await this.closeAll(redisUsable);
      this.lifecycle = 'stopped';
      if (unsettled) {
        const error = new SriError('WORKER_SHUTDOWN_TIMEOUT', `${unsettled} job(s) had not settled ${ABORT_SETTLE_MS} ms after they were aborted; their leases expire and other workers run them again.`);
        this.logger.error({ unsettled, code: error.code }, 'worker stopped with jobs unsettled');
        return { unsettled, error };
      }
      if (!wasStarting) this.logger.info('worker stopped');
      return { unsettled: 0 };
    })();
    return this.shuttingDown;
  }

  private closingAll: Promise<void> | undefined;

  /**
   * Timers, watches, heartbeat (leaving the registry), probes, then the owned services; once. Without a usable
   * Redis the heartbeat is stopped last, when its removal fails at once on the closed connection.
   */
  private closeAll(redisUsable: boolean): Promise<void> {
    this.closingAll ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      this.live.stop();
      this.revocation.stop();
      process.off('unhandledRejection', this.onUnhandled);
      if (redisUsable) await this.heartbeat.stop();
      // Before closing Redis: the supervisor must not take our own disconnect for an outage.
      await this.observability.stop();
      await this.s.close();
      if (!redisUsable) await this.heartbeat.stop();
    })();
    return this.closingAll;
  }
}

export async function startWorker(configured: WorkerConfig, deps: WorkerDeps = {}): Promise<WorkerHandle> {
  const baseLogger = deps.logger ?? createLogger({ name: 'worker', level: configured.logLevel, logDir: configured.logDir });
  // First: a worker that cannot isolate scripts as configured must not connect to anything (SANDBOX_UNAVAILABLE) —
  // nor spend its enrolment token. The sandbox settings are the same before and after the enrolment.
  const runner = deps.runner ?? SandboxRunner.create({
    mode: configured.sandbox, cpuSeconds: configured.scriptCpuSeconds, memoryMb: configured.scriptMemoryMb,
    maxCalls: configured.scriptMaxCalls, actionTimeoutMs: configured.playwrightTimeoutMs,
  }, baseLogger.child({ workerId: configured.workerId }));
  // Then an enrolment token or credentials file decides the worker's id and Redis user (src/execution-plane/enrolment.ts).
  const identity = deps.redis ? { config: configured, source: 'configured' as const } : await resolveWorkerIdentity(configured, baseLogger);
  // The pool counts restarts in the worker's metrics, and the worker is made after its services.
  const made: { worker?: Worker } = {};
  const services = new WorkerServices(identity.config, runner, baseLogger, deps, () => made.worker?.browserRestarted());
  const worker = new Worker(services, identity.source, deps.orgRefreshMs ?? 5000, deps.resourcePaths);
  made.worker = worker;
  await worker.start();
  return worker;
}

/** The provider and flow of a leased message, for metric labels (unknown when it is not a readable job). */
function jobLabels(raw: string): { providerId?: string; flowId?: string } {
  try {
    const m = JSON.parse(raw) as { providerId?: unknown; flowId?: unknown };
    return {
      ...(typeof m.providerId === 'string' ? { providerId: m.providerId } : {}),
      ...(typeof m.flowId === 'string' ? { flowId: m.flowId } : {}),
    };
  } catch {
    return {};
  }
}
