/**
 * The platform on a real Redis Cluster (three masters on loopback ports, `redis-cli --cluster create`, see
 * src/embedded/redis-cluster.ts), end to end, with REDIS_CLUSTER_NODES as an operator would set it: the API (its own
 * Cluster client, from its configuration), a worker (its own too), s3rver, PGlite, Chromium and a local portal.
 * One run goes POST /api/run → the queue on the cluster → the worker → S3 → the result recorded in PostgreSQL; and
 * a producer's plain LPUSH to the Cluster name of the contract key runs as well. Every server started is stopped.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { isCluster, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client, parseS3Uri } from '../../src/shared/s3.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { startTestPortal, type TestPortal } from '../execution-plane/support/portal.ts';
import { NORMAL_SCRIPT, setSession, signedJob, testWorkerConfig } from '../execution-plane/support/jobs.ts';
import { startTestRedisTarget, type TestRedisTarget } from '../support/redis-targets.ts';
import { startTestS3, tempDir, TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { openTestDatabase } from '../support/database.ts';

describe('the platform on Redis Cluster (REDIS_CLUSTER_NODES)', () => {
  let cluster: TestRedisTarget | undefined;
  let s3: Awaited<ReturnType<typeof startTestS3>> | undefined;
  let portal: TestPortal | undefined;
  let db: Database | undefined;
  let redis: Redis | undefined;
  let sub: Redis | undefined;
  let blobStore: BlobStore | undefined;
  let api: ApiHandle | undefined;
  let worker: WorkerHandle | undefined;
  const logs = tempDir('sri-e2e-cluster-');
  const results = new Map<string, ResultMessage>();

  before(async () => {
    [cluster, s3, portal, db] = await Promise.all([startTestRedisTarget('cluster'), startTestS3(), startTestPortal(), openTestDatabase()]);
    await migrate(db);
    // Only `sri up` registers demo (migration 0005); this test runs its flow against its own portal.
    await seedDemoProvider(db);
    redis = cluster.client();
    sub = cluster.client();
    sub.on('pmessage', (_p: string, _c: string, m: string) => {
      const r = ResultMessage.parse(JSON.parse(m));
      results.set(r.jobId, r);
    });
    await sub.psubscribe(keys.orgDonePattern);
    blobStore = new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
    const env = { REDIS_URL: cluster.url, REDIS_CLUSTER_NODES: cluster.clusterNodesText! };
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, S3_ENDPOINT: s3.endpoint, PORT: '0',
      AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent', ...env,
    });
    assert.equal(config.redisClusterNodes?.length, 3, 'the API configuration names the three nodes');
    const logger = createLogger({ name: 'cluster-e2e', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
    // No Redis handed in: the API connects from its configuration, as in production.
    api = await startApi(config, { db, blobStore, logger });
    const workerConfig = testWorkerConfig({ redisUrl: cluster.url, s3Endpoint: s3.endpoint, logDir: logs.path, extra: { REDIS_CLUSTER_NODES: cluster.clusterNodesText! } });
    worker = await startWorker(workerConfig, { logger: createLogger({ name: 'worker', level: 'info', logDir: logs.path, stdout: false }), orgRefreshMs: 100 });
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await api?.close();
    sub?.disconnect();
    redis?.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([cluster?.stop(), s3?.close(), portal?.close()]);
    logs.remove();
  });

  it('runs a job from POST /api/run through the queue on the cluster to its evidence in S3 and its result in PostgreSQL', async () => {
    assert.ok(redis && isCluster(redis) && api && portal && blobStore);
    const reg = await fetch(`${api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `cluster-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Ana', orgName: `Cluster ${randomUUID()}` }),
    }).then((r) => r.json()) as { token: string; user: { id: string }; org: { id: string } };
    const http = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(api!.url + path, {
        method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: `Bearer ${reg.token}` },
      });
      return { status: r.status, body: await r.json() as any };
    };
    assert.equal((await http('POST', '/api/providers/demo/connect', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }] })).status, 200);
    const flow = await http('POST', '/api/flows', {
      providerId: 'demo', version: '1.0.0', name: 'On the cluster', steps: [
        { type: 'navigate', url: `${portal.url}/invoices` },
        { type: 'extract', name: 'invoices', selector: '#invoices tbody tr', fields: { number: 'td.number' } },
      ],
    });
    assert.equal(flow.status, 201, JSON.stringify(flow.body));
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, {})).status, 200);
    const run = await http('POST', '/api/run', { providerId: 'demo' });
    assert.equal(run.status, 202, JSON.stringify(run.body));
    const jobId = run.body.jobId as string;
    const job = await waitFor(async () => {
      const r = await http('GET', `/api/jobs/${jobId}`);
      return ['done', 'failed', 'dead'].includes(r.body?.job?.status) ? r.body.job : undefined;
    }, { timeoutMs: 90_000, what: `job ${jobId} to finish` });
    assert.equal(job.status, 'done', JSON.stringify(job));

    // The queue's keys are the Cluster ones; nothing was written under the single-node names.
    assert.equal(await redis.get(keys.jobStatus(jobId)), 'done');
    assert.equal(keys.jobStatus(jobId), `{sri}:job:${jobId}:status`);
    assert.equal(await redis.exists(`sri:job:${jobId}:status`), 0);
    // The evidence is in S3, under the job's prefix.
    const result = await waitFor(() => results.get(jobId), { what: 'the published result' });
    const log = parseS3Uri(result.files.log);
    assert.ok(log && log.key.endsWith(`/${jobId}/execution.log`), result.files.log);
    assert.ok((await blobStore.get(log.bucket, log.key))?.length, 'execution.log stored');
  });

  it('runs a job a producer pushed with a plain LPUSH to {sri}:org:<orgId>:jobs', async () => {
    assert.ok(redis && portal);
    const orgId = `t-cluster-${randomUUID().slice(0, 8)}`;
    await setSession(redis, orgId, 'user-1', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], credentials: { password: portal.password }, connectedAt: Date.now() });
    const message = signedJob(orgId, NORMAL_SCRIPT, { metadata: { base: portal.url } });
    // What a producer types: redis-cli -c LPUSH '{sri}:org:<orgId>:jobs' '<json>'
    await redis.lpush(`{sri}:org:${orgId}:jobs`, JSON.stringify(message));
    const r = await waitFor(() => results.get(message.jobId), { timeoutMs: 60_000, what: 'the pushed job\'s result' });
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal(await redis.get(keys.jobStatus(message.jobId)), 'done');
  });
});
