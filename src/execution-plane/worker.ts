/**
 * The worker: takes leased jobs from the shared queue (fair across organisations inside the take script), up to
 * WORKER_MAX_JOBS at once; renews its leases every WORKER_LEASE_MS / 3; on its own timer promotes due retries and
 * takes back expired leases of dead workers; follows cancels on sri:control; heartbeat, stats; on stop takes no
 * new job, waits the grace period, then releases what still runs back to the queue untouched.
 * It talks only to Redis and S3 (and the job's allowed hosts through Chromium).
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

export type WorkerState = 'starting' | 'ready' | 'busy' | 'reconnecting' | 'draining' | 'stopped';

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
  /** Takes no new job, waits for the running ones up to `graceMs` (@default 60000), then closes everything. */
  stop(opts?: { graceMs?: number }): Promise<void>;
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
  const config = identity.config;
  const workerId = config.workerId;
  const logger = baseLogger.child({ workerId });
  const redis = deps.redis ?? createRedis(config, { name: `sri-worker-${workerId}` });
  const blobStore = deps.blobStore ?? new BlobStore(createS3Client(config));
  // The platform's own services are never a job's destination, whatever its allowedHosts (docs/security.md "Egress").
  const egress: EgressProxy = new EgressProxy(logger, {
    // Every node of a Redis Cluster is one of them (the startup nodes; they name the others in the same network).
    platformServices: [serviceOf(config.redisUrl), ...(config.redisClusterNodes ?? []), serviceOf(config.s3Endpoint),
      typeof config.httpPort === 'number' && config.httpPort > 0 ? { host: config.httpHost, port: config.httpPort } : undefined]
      .filter((x): x is { host: string; port: number } => x !== undefined),
  });
  const browsers = new BrowserPool({
    chromiumPath: config.chromiumPath, launchTimeoutMs: 60_000, logger, onRestart: () => observability.metrics.browserRestarted(),
    // One context waiting per job slot, prepared while the slot's current job runs (issue 14).
    prepareLease: () => egress.prepareLease(), warmContexts: config.maxJobs,
    maxContextsPerBrowser: config.browserMaxContexts, maxBrowserAgeMs: config.browserMaxAgeMs,
  });
  const tracing = deps.tracing ?? createTracing({
    serviceName: 'sri-worker', otlpEndpoint: config.otlpEndpoint, resource: { 'service.instance.id': workerId },
  });
  const orgRefreshMs = deps.orgRefreshMs ?? 5000;

  let state: WorkerState = 'starting';
  const running = new Map<string, { taken: Taken; done: Promise<void>; abort: AbortController }>();
  const waker = new Waker();
  let lastRefresh = 0;
  // Its own connection: a subscribed connection can run no other command.
  const control = redis.duplicate({ connectionName: `sri-worker-${workerId}-control` });
  const timers: NodeJS.Timeout[] = [];
  // ioredis reconnects on its own (and resubscribes); without a listener it would print every error.
  control.on('error', (e: Error) => logger.debug({ err: e.message }, 'control channel connection error'));
  const revocation = new RevocationWatch({
    confirmMs: config.revokedAfterMs, logger,
    onRevoked: (reason) => {
      const e = new SriError('WORKER_REVOKED', `The worker ${workerId} was revoked: ${reason}. It takes no more jobs and exits; its running jobs run again on other workers once their leases expire.`);
      logger.fatal({ reason }, 'worker revoked');
      if (started) void abandon(e);
      else startFailed(e);
    },
  });
  revocation.watch(redis);
  revocation.watch(control);

  const closeOwned = async () => {
    control.disconnect();
    if (!deps.runner) runner.close?.();
    await browsers.close();
    await egress.close();
    if (!deps.redis) {
      if (redis.status === 'ready') await boundWait(redis.quit(), 2000, 'closing Redis').catch(() => {});
      redis.disconnect();
    }
    if (!deps.blobStore) blobStore.client.destroy();
    // Last: the spans of the jobs that settled while stopping are exported too (bounded by the exporter's timeout).
    if (!deps.tracing) await tracing.shutdown();
  };

  // Scripts run in processes of their own (script/sandbox/); a promise of the worker's own that nobody awaited (a
  // Playwright call of a job that has ended, say) must still not take the worker and its other jobs down.
  const onUnhandled = (reason: unknown) => {
    // Only the error's name: its message is not tied to a job, so no job's redactor can clean it of secrets.
    logger.warn({ errName: (reason as Error | undefined)?.name ?? typeof reason }, 'unhandled promise rejection ignored');
  };

  const startedAt = Date.now();
  let redisDown = false;
  // `reconnecting` keeps running: jobs go on, and the loop's commands wait for Redis to return.
  const isRunning = () => state === 'ready' || state === 'busy' || state === 'reconnecting';
  const updateState = () => { if (isRunning()) state = redisDown ? 'reconnecting' : running.size > 0 ? 'busy' : 'ready'; };
  let giveUp: (e: SriError) => void = () => {};
  const fatal = new Promise<SriError>((resolve) => { giveUp = resolve; });
  const observability: WorkerObservability = new WorkerObservability({
    config, redis, logger, resourcePaths: deps.resourcePaths,
    state: () => state, jobsInFlight: () => running.size, browserUp: () => browsers.isUp(),
    lastHeartbeatAt: () => heartbeat.lastAcknowledgedAt(),
    onRedisChange: (link) => {
      redisDown = link === 'reconnecting';
      updateState();
      if (!redisDown) void heartbeat.beat();
    },
    onRedisOutageLimit: (outageMs) => {
      const e = new SriError('WORKER_REDIS_LOST',
        `Redis was unreachable for ${Math.round(outageMs / 1000)} s, longer than WORKER_REDIS_MAX_OUTAGE_MS (${config.redisMaxOutageMs} ms); the worker exits so that its supervisor restarts it.`);
      logger.fatal({ outageMs, maxOutageMs: config.redisMaxOutageMs }, 'Redis unreachable for too long; worker giving up');
      if (started) void abandon(e);
      else startFailed(e);
    },
  });
  const heartbeat: Heartbeat = new Heartbeat({
    redis, workerId, intervalMs: config.heartbeatIntervalMs, logger, onFailure: () => observability.metrics.heartbeatFailed(),
    onRevoked: () => revocation.markedRevoked(),
    report: () => ({
      workerId, state, host: hostname(), pid: process.pid, startedAt, heartbeatIntervalMs: config.heartbeatIntervalMs,
      maxJobs: config.maxJobs, jobsInFlight: running.size, httpUrl: observability.httpUrl, resources: observability.resources.current(),
      sandbox: runner.name,
    }),
  });
  // Until the worker is up, an outage over the limit fails the start instead.
  let started = false;
  let startFailed: (e: SriError) => void = () => {};
  const outageDuringStart = new Promise<never>((_, reject) => { startFailed = reject; });
  outageDuringStart.catch(() => {});
  let queue: JobQueue;
  try {
    // First: probes answer (healthz ok, readyz not yet) while the worker waits for Redis and Chromium.
    await observability.start();
    queue = await JobQueue.connect(redis, {
      leaseMs: config.leaseMs, maxJobBytes: config.maxJobBytes,
      // The job runs (its lease is what counts); only its status reads 'queued' until its outcome.
      onStartError: (err, t) => logger.warn({ orgId: t.orgId, jobId: t.jobId, err: err.message }, 'could not mark the job running'),
    });
    // ioredis retries forever: a worker started before Redis waits for it (up to WORKER_REDIS_MAX_OUTAGE_MS), and says so.
    const waiting = setTimeout(() => logger.warn({ redis: config.redisUrl.replace(/\/\/[^@/]*@/, '//***@') }, 'waiting for Redis'), 3000);
    try {
      await Promise.race([redis.ping(), outageDuringStart]);
    } finally {
      clearTimeout(waiting);
    }
    await queue.assertServerSupported();
    await queue.initWorkerStats(workerId, Date.now());
    await control.subscribe(keys.queueControl);
    await heartbeat.start();
    await egress.start();
    await Promise.race([browsers.get(), outageDuringStart]);
    // The first job's context and sandbox are ready before it is taken; each job starts its successor's.
    browsers.refill();
    if (!deps.runner) runner.prepare?.(config.maxJobs);
  } catch (e) {
    revocation.stop();
    await heartbeat.stop();
    // Before closing Redis: the supervisor must not take our own disconnect for an outage.
    await observability.stop();
    await closeOwned();
    // An enrolled worker whose own credentials are refused at start was revoked (or its user is gone): exit 77, not 1.
    if (identity.source !== 'configured' && e instanceof Error && isAuthRefusal(e)) {
      logger.fatal({ err: e.message.slice(0, 120) }, 'worker revoked');
      throw new SriError('WORKER_REVOKED', `Redis refused the enrolled worker ${workerId}'s credentials at start (${e.message.slice(0, 80)}): it was revoked.`);
    }
    throw e;
  }
  started = true;
  process.on('unhandledRejection', onUnhandled);

  const pipelineDeps: PipelineDeps = {
    config, redis, queue, blobStore, browsers, egress, logger, tracer: tracing.tracer, runner,
    // A finishing job still counts in `running`, so a full worker's slot takes its own successor and no more.
    takeNextFor: () => (isRunning() && running.size <= config.maxJobs ? workerId : undefined),
    onLiveLogClosed: (end) => observability.metrics.liveLogClosed(end),
    // Pacing, maintenance windows and circuit breakers of providers (docs/providers.md); a probe holds the others
    // back for as long as the job may run, plus a lease.
    gate: {
      gate: ProviderGate.connect(redis, observability.metrics.gateObserver()), queue, redis, logger,
      probeMs: (job) => jobTimeoutMs(job, config) + config.leaseMs,
    },
    // The XML evidence of `sri` jobs is read into parsed data, which the control plane keeps as documents.
    evidenceParser: { parse: parseSriDocument },
  };

  // A cancel reaches the job's worker through sri:control within one message; the renewal's check is the backup.
  control.on('message', (_channel: string, message: string) => {
    let m: ControlMessage;
    try {
      m = JSON.parse(message) as ControlMessage;
    } catch {
      return;
    }
    if (m.type === 'quota') {
      if (typeof m.orgId === 'string') queue?.forgetQuota(m.orgId);
      return;
    }
    if (m.type !== 'cancel') return;
    for (const r of running.values()) {
      if (r.taken.jobId === m.jobId) r.abort.abort(new SriError('CANCELLED'));
    }
  });

  const renewLeases = async () => {
    const list = [...running.values()];
    if (!list.length) return;
    try {
      const gone = new Set(await queue.renew(workerId, list.map((r) => r.taken.token)));
      const cancelled = await queue.cancelledAmong(list.flatMap((r) => (r.taken.jobId ? [r.taken.jobId] : [])));
      for (const r of list) {
        if (gone.has(r.taken.token)) {
          logger.warn({ orgId: r.taken.orgId, jobId: r.taken.jobId }, 'lease lost (another worker may run the job); stopping it');
          r.abort.abort(new SriError('WORKER_SHUTDOWN', 'The job\'s lease was lost; another worker runs it.', { details: LEASE_LOST }));
        } else if (r.taken.jobId && cancelled.has(r.taken.jobId)) {
          r.abort.abort(new SriError('CANCELLED'));
        }
      }
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'renewing leases failed; retrying at the next tick');
    }
  };

  const sweep = async () => {
    try {
      const recovered = await queue.recoverExpired();
      const promoted = await queue.promoteDue() + await queue.promoteDeferred();
      if (recovered) logger.warn({ recovered }, 'took back jobs of expired leases (dead or cut-off workers)');
      if (recovered || promoted) waker.wake();
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'recovering leases / promoting retries failed; retrying');
    }
  };

  /** Runs `fn` every `ms`, never overlapping itself. */
  const every = (ms: number, fn: () => Promise<void>) => {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      void fn().finally(() => { busy = false; });
    }, ms);
    timers.push(t);
  };

  const launch = (taken: Taken) => {
    const abort = new AbortController();
    const labels = jobLabels(taken.raw);
    const takenAt = Date.now();
    const done = processJob(taken, pipelineDeps, abort.signal)
      .then(async (outcome) => {
        // A deferred job did not run (its provider's gate counted it): it is no attempt.
        if (outcome.status !== 'deferred') observability.metrics.jobFinished(labels, outcome.status, outcome.durationMs, outcome.errorCode);
        // The slot's next job came with the completion (one round trip); stopped meanwhile: hand it back.
        if (!outcome.next) return;
        if (isRunning()) launch(outcome.next);
        else await queue.release(outcome.next);
      })
      .catch((e: unknown) => {
        // Reached only when Redis or S3 fail while reporting; the lease then expires and the job runs again.
        logger.error({ orgId: taken.orgId, err: (e as Error).message }, 'job could not be completed');
        observability.metrics.jobFinished(labels, 'unreported', Date.now() - takenAt);
      })
      .finally(() => {
        running.delete(taken.token);
        updateState();
        waker.wake();
      });
    running.set(taken.token, { taken, done, abort });
    updateState();
  };

  const pollLoop = async () => {
    while (isRunning()) {
      try {
        if (Date.now() - lastRefresh >= orgRefreshMs) {
          await queue.discoverOrgs();
          lastRefresh = Date.now();
        }
        if (running.size >= config.maxJobs) {
          await waker.sleep(config.pollIntervalMs);
          continue;
        }
        const taken = await queue.take(workerId);
        // Stopped while the take was on its way: hand the job straight back.
        if (taken && !isRunning()) await queue.release(taken);
        else if (taken) launch(taken);
        else await waker.sleep(config.pollIntervalMs);
      } catch (e) {
        logger.error({ err: (e as Error).message }, 'polling failed; retrying');
        await waker.sleep(config.pollIntervalMs);
      }
    }
  };

  state = 'ready';
  updateState();
  // The registry shows the worker ready now, not at the next tick.
  void heartbeat.beat();
  every(Math.max(10, Math.floor(config.leaseMs / 3)), renewLeases);
  every(config.recoveryIntervalMs, sweep);
  logger.info({ maxJobs: config.maxJobs, pollIntervalMs: config.pollIntervalMs, leaseMs: config.leaseMs }, 'worker ready');
  const loopDone = pollLoop();

  let stopping: Promise<void> | undefined;
  const stop = (opts: { graceMs?: number } = {}) => {
    stopping ??= (async () => {
      const graceMs = opts.graceMs ?? DEFAULT_STOP_GRACE_MS;
      state = 'draining';
      logger.info({ running: running.size, graceMs }, 'worker draining');
      void heartbeat.beat();
      waker.wake();
      // The loop ends at its next check; bounded, in case it waits on a Redis that is gone.
      await Promise.race([loopDone, new Promise((r) => setTimeout(r, Math.max(graceMs, 1000)).unref())]);
      const allDone = () => Promise.all([...running.values()].map((r) => r.done));
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), graceMs); });
      const first = await Promise.race([allDone().then(() => 'done' as const), graceOver]);
      clearTimeout(timer);
      if (first === 'timeout' && running.size) {
        logger.warn({ running: running.size }, 'grace period over; releasing running jobs back to their queues');
        for (const r of running.values()) r.abort.abort(new SriError('WORKER_SHUTDOWN'));
        await Promise.race([allDone(), new Promise((r) => setTimeout(r, ABORT_SETTLE_MS).unref())]);
      }
      // Leases are renewed until every job has settled: a draining worker must not lose its jobs to others.
      for (const t of timers) clearInterval(t);
      revocation.stop();
      await heartbeat.stop();
      process.off('unhandledRejection', onUnhandled);
      await observability.stop();
      await closeOwned();
      state = 'stopped';
      logger.info('worker stopped');
    })();
    return stopping;
  };

  /**
   * Gives up without Redis: running jobs are aborted and nothing waits on Redis (their leases expire and other
   * workers run them again, attempt + 1), then `fatal` settles for the process to exit non-zero.
   */
  const abandon = (e: SriError) => {
    stopping ??= (async () => {
      state = 'draining';
      waker.wake();
      for (const t of timers) clearInterval(t);
      revocation.stop();
      for (const r of running.values()) r.abort.abort(new SriError('WORKER_SHUTDOWN', e.message));
      process.off('unhandledRejection', onUnhandled);
      await observability.stop();
      // Disconnecting fails the commands that wait on Redis, so the jobs' reports settle at once.
      await closeOwned();
      await heartbeat.stop();
      await Promise.race([Promise.all([...running.values()].map((r) => r.done)), new Promise((r) => setTimeout(r, ABORT_SETTLE_MS).unref())]);
      state = 'stopped';
    })();
    void stopping.finally(() => giveUp(e));
    return stopping;
  };

  return { workerId, httpUrl: observability.httpUrl, fatal, state: () => state, stop };
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
