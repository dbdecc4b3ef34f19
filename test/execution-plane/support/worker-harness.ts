/**
 * A worker on the services of a test file (services-harness.ts): `startWorkerOn` starts one (or several, one per
 * call) with the file's settings, in the test's process; `spawnWorkerOn` one as a process of its own (main.ts); `startWorkerHarness` is both in one, with helpers to push a hand-signed job and
 * wait for its published result, read evidence from S3 and check that the worker still serves a normal job.
 * Everything started here is stopped by `stop()`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Redis } from '../../../src/shared/redis.ts';
import type { BlobStore } from '../../../src/shared/s3.ts';
import { createLogger } from '../../../src/shared/logger.ts';
import type { ResultMessage, JobMessage } from '../../../src/shared/schemas.ts';
import { startWorker, type WorkerDeps, type WorkerHandle } from '../../../src/execution-plane/worker.ts';
import type { WorkerConfig } from '../../../src/execution-plane/config.ts';
import type { TestPortal } from './portal.ts';
import { NORMAL_SCRIPT, signedJob, testWorkerConfig } from './jobs.ts';
import { startServicesHarness, type ServicesHarness } from './services-harness.ts';
import { TEST_SIGNING_SECRET } from '../../support/services.ts';
import { spawnWorker, type WorkerProcess } from '../../faults/support/processes.ts';

/** A worker on the test's services: its handle and configuration. */
export interface TestWorker {
  readonly worker: WorkerHandle;
  readonly config: WorkerConfig;
}

/**
 * Starts a worker on `services`: testWorkerConfig with `env` on top, logging to the services' log directory, new
 * organisations seen within 100 ms. The caller stops it (`worker.stop`), before the services.
 */
export async function startWorkerOn(services: Pick<ServicesHarness<{ close(): Promise<unknown> }>, 'redisUrl' | 's3Endpoint' | 'logDir'>,
  opts: { env?: Record<string, string>; deps?: WorkerDeps; logLevel?: string; name?: string } = {}): Promise<TestWorker> {
  const config = testWorkerConfig({ redisUrl: services.redisUrl, s3Endpoint: services.s3Endpoint, logDir: services.logDir, extra: opts.env ?? {} });
  const logger = createLogger({ name: opts.name ?? 'worker', level: opts.logLevel ?? 'info', logDir: services.logDir, stdout: false });
  return { worker: await startWorker(config, { logger, orgRefreshMs: 100, ...opts.deps }), config };
}

/**
 * A worker process (`node --import tsx src/execution-plane/main.ts`) on `services`: their Redis, S3 and log
 * directory, the test signing secret, a 50 ms poll, `env` on top (REDIS_URL too, to point it elsewhere). The caller
 * stops it by its PID (stopWorker, kill9 in test/faults/support/processes.ts).
 */
export function spawnWorkerOn(services: Pick<ServicesHarness<{ close(): Promise<unknown> }>, 'redisUrl' | 's3Endpoint' | 'logDir'>,
  opts: { env?: Record<string, string>; workerId?: string } = {}): WorkerProcess {
  return spawnWorker({
    REDIS_URL: services.redisUrl, S3_ENDPOINT: services.s3Endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
    LOG_DIR: services.logDir, LOG_LEVEL: 'info', WORKER_POLL_INTERVAL: '50', ...opts.env,
  }, opts.workerId ?? `proc-worker-${randomUUID().slice(0, 8)}`);
}

export interface WorkerHarness {
  readonly redis: Redis;
  readonly redisUrl: string;
  readonly portal: TestPortal;
  readonly store: BlobStore;
  readonly worker: WorkerHandle;
  readonly config: WorkerConfig;
  readonly services: ServicesHarness;
  /** The session a job of the portal needs (cookie and password). */
  session(): { cookies: { name: string; value: string; url: string }[]; credentials: Record<string, string>; connectedAt: number };
  /** Pushes a job and waits for its published result. */
  run(orgId: string, message: JobMessage, timeoutMs?: number): Promise<ResultMessage>;
  /** An evidence object named by an s3:// URI. */
  object(uri: string | undefined): Promise<Buffer>;
  /** The worker is still up and runs a normal job of `orgId` to done. */
  normalJobSucceeds(orgId: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startWorkerHarness(extraEnv: Record<string, string> = {}): Promise<WorkerHarness> {
  const services = await startServicesHarness();
  const { portal } = services;
  let started: TestWorker;
  try {
    started = await startWorkerOn(services, { env: extraEnv });
  } catch (e) {
    await services.stop();
    throw e;
  }
  const { worker, config } = started;
  return {
    redis: services.redis, redisUrl: services.redisUrl, portal, store: services.store, worker, config, services,
    run: (orgId, message, timeoutMs) => services.run(orgId, message, timeoutMs),
    object: (uri) => services.object(uri),
    session: () => testSession(portal),
    async normalJobSucceeds(orgId) {
      await normalJobSucceeds(services, worker, orgId);
    },
    async stop() {
      await worker.stop({ graceMs: 5000 });
      await services.stop();
    },
  };
}

/** The session a job of the test portal needs (its cookie and password). */
export function testSession(portal: TestPortal) {
  return { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], credentials: { password: portal.password }, connectedAt: Date.now() };
}

/** The worker is still up and runs a normal job of `orgId` (whose session is set) to done. */
export async function normalJobSucceeds(services: ServicesHarness, worker: WorkerHandle, orgId: string): Promise<void> {
  assert.ok(['ready', 'busy'].includes(worker.state()), `the worker is up (state ${worker.state()})`);
  const r = await services.run(orgId, signedJob(orgId, NORMAL_SCRIPT, { metadata: { base: services.portal.url } }));
  assert.equal(r.status, 'done', JSON.stringify(r.error));
  assert.deepEqual(JSON.parse((await services.object(r.files.parsedData)).toString()), { rows: 2 });
}
