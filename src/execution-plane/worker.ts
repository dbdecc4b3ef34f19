/**
 * The worker: fair polling over organisation queues, up to WORKER_MAX_JOBS jobs at once, heartbeat, stats, and a
 * drain on stop. It talks only to Redis and S3 (and the job's allowed hosts through Chromium).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createRedis } from '../shared/redis.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { BlobStore, createS3Client } from '../shared/s3.ts';
import { SriError } from '../shared/errors.ts';
import { BrowserPool } from './browser.ts';
import type { WorkerConfig } from './config.ts';
import { Heartbeat } from './heartbeat.ts';
import { EgressProxy } from './job/egress-proxy.ts';
import { boundWait } from './job/deadline.ts';
import { processJob, type PipelineDeps, type TakenJob } from './job/pipeline.ts';
import { QueueCommands } from './queue/commands.ts';
import { discoverOrgs } from './queue/org-discovery.ts';
import { RoundRobin, takeNextFair } from './queue/round-robin.ts';
import type { ScriptRunner } from './script/runner.ts';
import { VmScriptRunner } from './script/vm-runner.ts';

export type WorkerState = 'starting' | 'ready' | 'busy' | 'draining' | 'stopped';

export interface WorkerHandle {
  readonly workerId: string;
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
  /** @default VmScriptRunner (node:vm) */
  runner?: ScriptRunner;
  /** How often the organisation list is refreshed (SMEMBERS + SCAN). @default 5000 */
  orgRefreshMs?: number;
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

export async function startWorker(config: WorkerConfig, deps: WorkerDeps = {}): Promise<WorkerHandle> {
  const workerId = config.workerId;
  const logger = (deps.logger ?? createLogger({ name: 'worker', level: config.logLevel, logDir: config.logDir })).child({ workerId });
  const redis = deps.redis ?? createRedis(config.redisUrl, { name: `sri-worker-${workerId}` });
  const blobStore = deps.blobStore ?? new BlobStore(createS3Client(config));
  const browsers = new BrowserPool({ chromiumPath: config.chromiumPath, launchTimeoutMs: 60_000, logger });
  const egress = new EgressProxy(logger);
  const orgRefreshMs = deps.orgRefreshMs ?? 5000;

  let state: WorkerState = 'starting';
  const running = new Map<string, { done: Promise<void>; abort: AbortController }>();
  const waker = new Waker();
  const rr = new RoundRobin();
  let lastRefresh = 0;

  const closeOwned = async () => {
    await browsers.close();
    await egress.close();
    if (!deps.redis) {
      if (redis.status === 'ready') await boundWait(redis.quit(), 2000, 'closing Redis').catch(() => {});
      redis.disconnect();
    }
    if (!deps.blobStore) blobStore.client.destroy();
  };

  // node:vm scripts share this process: a promise a script forgot to await must not take the worker down.
  const onUnhandled = (reason: unknown) => {
    // Only the error's name: its message is not tied to a job, so no job's redactor can clean it of secrets.
    logger.warn({ errName: (reason as Error | undefined)?.name ?? typeof reason }, 'unhandled promise rejection (a job script left a promise unawaited?) ignored');
  };

  const heartbeat = new Heartbeat(redis, workerId, config.heartbeatIntervalMs, logger);
  let queue: QueueCommands;
  try {
    queue = new QueueCommands(redis);
    // ioredis retries forever: a worker started before Redis waits for it, and says so.
    const waiting = setTimeout(() => logger.warn({ redis: config.redisUrl.replace(/\/\/[^@/]*@/, '//***@') }, 'waiting for Redis'), 3000);
    try {
      await redis.ping();
    } finally {
      clearTimeout(waiting);
    }
    await queue.initStats(workerId, Date.now());
    await heartbeat.start();
    await egress.start();
    await browsers.get();
  } catch (e) {
    await heartbeat.stop();
    await closeOwned();
    throw e;
  }
  process.on('unhandledRejection', onUnhandled);

  const pipelineDeps: PipelineDeps = {
    config, redis, queue, blobStore, browsers, egress, logger, runner: deps.runner ?? new VmScriptRunner(),
  };

  const isRunning = () => state === 'ready' || state === 'busy';
  const updateState = () => { if (isRunning()) state = running.size > 0 ? 'busy' : 'ready'; };

  const launch = (taken: TakenJob) => {
    const abort = new AbortController();
    const done = processJob(taken, pipelineDeps, abort.signal)
      .then(() => undefined)
      .catch((e: unknown) => {
        // Reached only when Redis or S3 fail while reporting; the job stays in the active hash for recovery.
        logger.error({ orgId: taken.orgId, err: (e as Error).message }, 'job could not be completed');
      })
      .finally(() => {
        running.delete(taken.token);
        updateState();
        waker.wake();
      });
    running.set(taken.token, { done, abort });
    updateState();
  };

  const pollLoop = async () => {
    while (isRunning()) {
      try {
        if (Date.now() - lastRefresh >= orgRefreshMs || rr.size === 0 && Date.now() - lastRefresh >= config.pollIntervalMs) {
          rr.setItems(await discoverOrgs(redis));
          lastRefresh = Date.now();
        }
        if (running.size >= config.maxJobs) {
          await waker.sleep(config.pollIntervalMs);
          continue;
        }
        const taken = await takeNextFair(rr, async (orgId) => {
          if (!isRunning()) return undefined;
          const token = randomUUID();
          const raw = await queue.take(orgId, workerId, token);
          return raw === undefined ? undefined : { orgId, raw, token };
        });
        if (taken) launch(taken.job);
        else await waker.sleep(config.pollIntervalMs);
      } catch (e) {
        logger.error({ err: (e as Error).message }, 'polling failed; retrying');
        await waker.sleep(config.pollIntervalMs);
      }
    }
  };

  state = 'ready';
  logger.info({ maxJobs: config.maxJobs, pollIntervalMs: config.pollIntervalMs }, 'worker ready');
  const loopDone = pollLoop();

  let stopping: Promise<void> | undefined;
  const stop = (opts: { graceMs?: number } = {}) => {
    stopping ??= (async () => {
      const graceMs = opts.graceMs ?? DEFAULT_STOP_GRACE_MS;
      state = 'draining';
      logger.info({ running: running.size, graceMs }, 'worker draining');
      waker.wake();
      // The loop ends at its next check; bounded, in case it waits on a Redis that is gone.
      await Promise.race([loopDone, new Promise((r) => setTimeout(r, Math.max(graceMs, 1000)).unref())]);
      const allDone = () => Promise.all([...running.values()].map((r) => r.done));
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), graceMs); });
      const first = await Promise.race([allDone().then(() => 'done' as const), graceOver]);
      clearTimeout(timer);
      if (first === 'timeout' && running.size) {
        logger.warn({ running: running.size }, 'grace period over; aborting running jobs');
        for (const r of running.values()) r.abort.abort(new SriError('WORKER_SHUTDOWN'));
        await Promise.race([allDone(), new Promise((r) => setTimeout(r, ABORT_SETTLE_MS).unref())]);
      }
      await heartbeat.stop();
      process.off('unhandledRejection', onUnhandled);
      await closeOwned();
      state = 'stopped';
      logger.info('worker stopped');
    })();
    return stopping;
  };

  return { workerId, state: () => state, stop };
}
