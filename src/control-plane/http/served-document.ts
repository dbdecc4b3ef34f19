/**
 * The OpenAPI document exactly as the API serves it at /docs/json, without PostgreSQL, Redis or S3: the whole app is
 * built (server.ts buildApp, every route) on services that are never reached, asked for /docs/json in process, and
 * closed. `npm run generate:api` (scripts/generate-api-types.ts) and the contract tests (test/contract) use it.
 */
import { randomBytes } from 'node:crypto';
import type { OpenAPIV3 } from 'openapi-types';
import { SriError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logger.ts';
import { JobQueue } from '../../shared/queue/job-queue.ts';
import { createRedis } from '../../shared/redis.ts';
import { BlobStore, createS3Client } from '../../shared/s3.ts';
import { createTracing } from '../../shared/tracing.ts';
import { loadApiConfig } from '../config.ts';
import type { ApiContext } from '../context.ts';
import type { Database } from '../db/index.ts';
import { buildApp } from '../server.ts';
import { TokenService } from './auth.ts';

/** Nothing listens on port 1 of the loopback: a connection, should anything try one, is refused at once. */
const UNREACHABLE = '127.0.0.1:1';

const offline = (): Promise<never> => Promise.reject(new SriError('SERVICE_UNAVAILABLE', 'This app was built only for its OpenAPI document.'));
const offlineDb: Database = { kind: 'pglite', withOrg: offline, asSystem: offline, ping: offline, close: async () => {} };

export async function servedDocument(): Promise<OpenAPIV3.Document> {
  const secret = randomBytes(32).toString('hex');
  const config = loadApiConfig({
    JWT_SECRET: secret, SCRIPT_SIGNING_SECRET: secret, REDIS_URL: `redis://${UNREACHABLE}`, S3_ENDPOINT: `http://${UNREACHABLE}`, PORT: '0', LOG_LEVEL: 'silent',
  });
  const logger = createLogger({ name: 'openapi', level: 'silent' });
  // Never connected: lazy, no offline queue and no reconnection, so the hooks that touch Redis when the app is ready
  // (worker enrolments' reconciliation) fail at once, quietly.
  const redis = createRedis(config, { name: 'sri-openapi', lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  const blobStore = new BlobStore(createS3Client(config));
  const tracing = createTracing({ serviceName: 'sri-api' });
  const ctx: ApiContext = {
    config, db: offlineDb, redis, queue: await JobQueue.connect(redis), blobStore, logger,
    tokens: new TokenService(config.jwtSecret, config.jwtExpiresInSeconds), tracer: tracing.tracer,
  };
  const app = await buildApp(ctx);
  try {
    const res = await app.inject({ method: 'GET', url: '/docs/json' });
    if (res.statusCode !== 200) throw new Error(`GET /docs/json answered ${res.statusCode}: ${res.body.slice(0, 500)}`);
    return res.json<OpenAPIV3.Document>();
  } finally {
    await app.close();
    redis.disconnect();
    blobStore.client.destroy();
    await tracing.shutdown();
  }
}
