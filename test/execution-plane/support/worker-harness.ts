/**
 * A worker on real services for a test file: redis-server, s3rver, the test portal and Chromium, with helpers to
 * push a hand-signed job and wait for its published result, read evidence from S3 and check that the worker still
 * serves a normal job. The `demo` provider is in the catalogue (test/support/providers.ts). Everything started here
 * is stopped by `stop()`.
 */
import assert from 'node:assert/strict';
import { createRedis, type Redis } from '../../../src/shared/redis.ts';
import { keys } from '../../../src/shared/keys.ts';
import { BlobStore, createS3Client, parseS3Uri } from '../../../src/shared/s3.ts';
import { createLogger } from '../../../src/shared/logger.ts';
import { ResultMessage, type JobMessage } from '../../../src/shared/schemas.ts';
import { startWorker, type WorkerHandle } from '../../../src/execution-plane/worker.ts';
import type { WorkerConfig } from '../../../src/execution-plane/config.ts';
import { startTestRedis, startTestS3, tempDir, waitFor } from '../../support/services.ts';
import { startTestPortal, type TestPortal } from './portal.ts';
import { NORMAL_SCRIPT, push, signedJob, testWorkerConfig } from './jobs.ts';
import { publishDemoProvider } from '../../support/providers.ts';

export interface WorkerHarness {
  readonly redis: Redis;
  readonly redisUrl: string;
  readonly portal: TestPortal;
  readonly store: BlobStore;
  readonly worker: WorkerHandle;
  readonly config: WorkerConfig;
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
  const [redisServer, s3, portal] = await Promise.all([startTestRedis(), startTestS3(), startTestPortal()]);
  const logs = tempDir('sri-worker-logs-');
  const redis = createRedis(redisServer.url);
  const sub = createRedis(redisServer.url);
  const results = new Map<string, ResultMessage>();
  sub.on('pmessage', (_p: string, _ch: string, m: string) => {
    const r = ResultMessage.parse(JSON.parse(m));
    results.set(r.jobId, r);
  });
  await sub.psubscribe(keys.orgDonePattern);
  // The catalogue entry the control plane would publish for `demo`: hand-pushed jobs without allowedHosts reach its
  // hosts (127.0.0.1 and localhost), as they would under `sri up`; without it they would reach nothing.
  await publishDemoProvider(redis);
  const store = new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
  const config = testWorkerConfig({ redisUrl: redisServer.url, s3Endpoint: s3.endpoint, logDir: logs.path, extra: extraEnv });
  const logger = createLogger({ name: 'worker', level: 'info', logDir: logs.path, stdout: false });
  let worker: WorkerHandle;
  try {
    worker = await startWorker(config, { logger, orgRefreshMs: 100 });
  } catch (e) {
    sub.disconnect();
    redis.disconnect();
    store.client.destroy();
    await Promise.all([redisServer.stop(), s3.close(), portal.close()]);
    logs.remove();
    throw e;
  }

  const run = async (orgId: string, message: JobMessage, timeoutMs = 30_000) => {
    await push(redis, orgId, message);
    return waitFor(() => results.get(message.jobId), { timeoutMs, what: `result of ${message.jobId}` });
  };
  const object = async (uri: string | undefined) => {
    const loc = parseS3Uri(uri ?? '');
    assert.ok(loc, `an s3 uri: ${uri}`);
    const body = await store.get(loc.bucket, loc.key);
    assert.ok(body, `object ${uri} exists`);
    return body;
  };
  return {
    redis, redisUrl: redisServer.url, portal, store, worker, config, run, object,
    session: () => ({ cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], credentials: { password: portal.password }, connectedAt: Date.now() }),
    async normalJobSucceeds(orgId) {
      assert.ok(['ready', 'busy'].includes(worker.state()), `the worker is up (state ${worker.state()})`);
      const r = await run(orgId, signedJob(orgId, NORMAL_SCRIPT, { metadata: { base: portal.url } }));
      assert.equal(r.status, 'done', JSON.stringify(r.error));
      assert.deepEqual(JSON.parse((await object(r.files.parsedData)).toString()), { rows: 2 });
    },
    async stop() {
      await worker.stop({ graceMs: 5000 });
      sub.disconnect();
      redis.disconnect();
      store.client.destroy();
      await Promise.all([redisServer.stop(), s3.close(), portal.close()]);
      logs.remove();
    },
  };
}
