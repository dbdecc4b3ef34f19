/**
 * The services every worker test runs on, started once per test file: redis-server, s3rver, a portal (the test
 * portal unless the file brings its own), a Redis client, a subscriber collecting every published result, the S3
 * client to read evidence, and a log directory. The `demo` provider is in the catalogue (test/support/providers.ts).
 * Redis can be killed and restarted on the same port (`killRedis`, `restartRedis`).
 * A worker on them: worker-harness.ts. Everything started here is stopped by `stop()`, also when the start fails.
 */
import assert from 'node:assert/strict';
import { createRedis, type Redis } from '../../../src/shared/redis.ts';
import { keys } from '../../../src/shared/keys.ts';
import { BlobStore, createS3Client, parseS3Uri } from '../../../src/shared/s3.ts';
import { ResultMessage, type JobMessage } from '../../../src/shared/schemas.ts';
import { startEmbeddedRedis } from '../../../src/embedded/redis-server.ts';
import { startTestRedis, startTestS3, tempDir, waitFor } from '../../support/services.ts';
import { startTestPortal, type TestPortal } from './portal.ts';
import { push } from './jobs.ts';
import { publishDemoProvider } from '../../support/providers.ts';

export interface ServicesHarness<P extends { close(): Promise<unknown> } = TestPortal> {
  readonly redisUrl: string;
  readonly s3Endpoint: string;
  /** A client of the test's Redis (commands; not subscribed). */
  readonly redis: Redis;
  readonly store: BlobStore;
  readonly portal: P;
  /**
   * Every result published on sri:org:*:done so far, by job id — the last one of each job, but never a `retrying`
   * result (a retried attempt that met a blocker announces one): those are in `retried`, in the order heard.
   */
  readonly results: Map<string, ResultMessage>;
  readonly retried: ResultMessage[];
  /** Where the workers of the file write their logs. */
  readonly logDir: string;
  /** Pushes a job and waits for its published result. @default timeoutMs 60000 (a loaded 2-core machine) */
  run(orgId: string, message: JobMessage, timeoutMs?: number): Promise<ResultMessage>;
  /** An evidence object named by an s3:// URI (asserted to exist). */
  object(uri: string | undefined): Promise<Buffer>;
  /** The test's redis-server; a test that restarts it puts the new one here, for `stop` to stop. */
  redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  /** SIGKILLs the redis-server (a crash, an OOM kill); the clients here reconnect once `restartRedis` is done. */
  killRedis(): Promise<void>;
  /** Starts redis-server again on the same port and directory (it replays its append-only file). */
  restartRedis(): Promise<void>;
  stop(): Promise<void>;
}

export async function startServicesHarness<P extends { close(): Promise<unknown> } = TestPortal>(
  opts: { portal?: () => Promise<P>; logPrefix?: string } = {},
): Promise<ServicesHarness<P>> {
  const startPortal = opts.portal ?? (startTestPortal as unknown as () => Promise<P>);
  const started = await Promise.allSettled([startTestRedis(), startTestS3(), startPortal()]);
  const [r0, r1, r2] = started;
  if (r0.status === 'rejected' || r1.status === 'rejected' || r2.status === 'rejected') {
    await Promise.all([
      r0.status === 'fulfilled' ? r0.value.stop() : undefined,
      r1.status === 'fulfilled' ? r1.value.close() : undefined,
      r2.status === 'fulfilled' ? r2.value.close() : undefined,
    ]);
    throw [r0, r1, r2].find((r) => r.status === 'rejected')!.reason;
  }
  const redisServer = r0.value;
  const s3 = r1.value;
  const portal = r2.value;
  const logs = tempDir(opts.logPrefix ?? 'sri-worker-logs-');
  const redis = createRedis(redisServer.url);
  const sub = createRedis(redisServer.url);
  const store = new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
  const results = new Map<string, ResultMessage>();
  const retried: ResultMessage[] = [];
  const current = { redisServer };
  const stop = async () => {
    sub.disconnect();
    redis.disconnect();
    store.client.destroy();
    await Promise.all([current.redisServer.stop(), s3.close(), portal.close()]);
    logs.remove();
  };
  // A test that kills redis-server (killRedis) makes both reconnect until it is back: expected, not worth a line each.
  redis.on('error', () => {});
  sub.on('error', () => {});
  try {
    sub.on('pmessage', (_p: string, _ch: string, m: string) => {
      const r = ResultMessage.parse(JSON.parse(m));
      if (r.status === 'retrying') retried.push(r);
      else results.set(r.jobId, r);
    });
    await sub.psubscribe(keys.orgDonePattern);
    // The catalogue entry the control plane would publish for `demo`: hand-pushed jobs without allowedHosts reach
    // its hosts (127.0.0.1 and localhost), as they would under `sri up`; without it they would reach nothing.
    await publishDemoProvider(redis);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    redisUrl: redisServer.url, s3Endpoint: s3.endpoint, redis, store, portal, results, retried, logDir: logs.path, stop,
    get redisServer() { return current.redisServer; },
    set redisServer(r) { current.redisServer = r; },
    killRedis: () => current.redisServer.kill(),
    async restartRedis() {
      const { dir, port } = current.redisServer;
      const removeDir = current.redisServer.stop;
      // The port can linger for a moment after the kill: the start is retried until the deadline.
      const restarted = await waitFor(async () => startEmbeddedRedis({ dir, port, startTimeoutMs: 15_000 }),
        { timeoutMs: 30_000, intervalMs: 200, what: `redis-server restarting on port ${port}` });
      current.redisServer = { ...restarted, dir, stop: async (g?: number) => { await restarted.stop(g); await removeDir(g); } };
    },
    async run(orgId, message, timeoutMs = 60_000) {
      await push(redis, orgId, message);
      return waitFor(() => results.get(message.jobId), { timeoutMs, what: `result of ${message.jobId}` });
    },
    async object(uri) {
      const loc = parseS3Uri(uri ?? '');
      assert.ok(loc, `an s3 uri: ${uri}`);
      const body = await store.get(loc.bucket, loc.key);
      assert.ok(body, `object ${uri} exists`);
      return body;
    },
  };
}
