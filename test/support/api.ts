/**
 * The control plane on real services for tests that need an API and a job: redis-server, s3rver and an in-memory
 * PGlite, an organisation registered through the API with a connected provider and an active flow, and a client
 * for the event streams of GET /api/jobs/{id}/logs. `stop()` stops everything it started.
 */
import { randomUUID } from 'node:crypto';
import assert from 'node:assert/strict';
import { loadApiConfig, type ApiConfig } from '../../src/control-plane/config.ts';
import { migrate, openDatabase, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { SseParser, type SseEvent } from '../../src/shared/sse.ts';
import { startTestRedis, startTestS3, TEST_JWT_SECRET, TEST_SIGNING_SECRET } from './services.ts';
import { seedDemoProvider } from './providers.ts';
import { openTestDatabase } from './database.ts';

export { TEST_JWT_SECRET };

export interface TestOrg { token: string; userId: string; orgId: string }

export interface TestApi {
  api: ApiHandle;
  config: ApiConfig;
  db: Database;
  redis: Redis;
  blobStore: BlobStore;
  redisUrl: string;
  /** Registers a user and organisation, connects the demo provider and activates a flow for it. */
  createOrg(): Promise<TestOrg>;
  /** POST /api/run for the demo provider: a queued job (no worker takes it). */
  runJob(org: TestOrg): Promise<string>;
  stop(): Promise<void>;
}

/**
 * `opts.databaseUrl`: a PostgreSQL server's database (test/support/postgres.ts) instead of an in-memory PGlite.
 * `opts.apiOwnsRedis`: the API opens its own Redis connection with its production settings (command timeout,
 * retries) instead of sharing the test's.
 */
export async function startTestApi(env: Record<string, string> = {}, opts: { databaseUrl?: string; apiOwnsRedis?: boolean } = {}): Promise<TestApi> {
  const [redisServer, s3Server, db] = await Promise.all([
    startTestRedis(), startTestS3(), opts.databaseUrl ? openDatabase({ databaseUrl: opts.databaseUrl }) : openTestDatabase(),
  ]);
  await migrate(db);
  // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
  await seedDemoProvider(db);
  const redis = createRedis(redisServer.url);
  const config = loadApiConfig({
    JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
    PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', RUN_RATE_LIMIT_PER_USER: '100000', RUN_RATE_LIMIT_PER_ORG: '100000', LOG_LEVEL: 'silent', ...env,
  });
  const blobStore = new BlobStore(createS3Client(config));
  const logger = createLogger({ name: 'api-test', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const api = await startApi(config, { db, blobStore, logger, ...(opts.apiOwnsRedis ? {} : { redis }) });

  const post = async (path: string, token: string | undefined, body: unknown) => {
    const r = await fetch(api.url + path, {
      method: 'POST', body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    const json = await r.json() as any;
    assert.ok(r.ok, `POST ${path} → ${r.status} ${JSON.stringify(json)}`);
    return json;
  };

  return {
    api, config, db, redis, blobStore, redisUrl: redisServer.url,
    async createOrg() {
      const reg = await post('/api/auth/register', undefined, {
        email: `logs-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'User', orgName: `Org ${randomUUID()}`,
      });
      const org = { token: reg.token as string, userId: reg.user.id as string, orgId: reg.org.id as string };
      await post('/api/providers/demo/connect', org.token, { cookies: [] });
      const flow = await post('/api/flows', org.token, {
        providerId: 'demo', version: '1.0.0', name: 'Logs', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }],
      });
      await post(`/api/flows/${flow.flow.id}/activate`, org.token, {});
      return org;
    },
    async runJob(org) {
      return (await post('/api/run', org.token, { providerId: 'demo' })).jobId as string;
    },
    async stop() {
      await api.close();
      redis.disconnect();
      blobStore.client.destroy();
      await db.close();
      await Promise.all([redisServer.stop(), s3Server.close()]);
    },
  };
}

export interface LogStreamClient {
  status: number;
  contentType: string;
  events: SseEvent[];
  /** Every byte received, decoded (comments included). */
  raw(): string;
  /** Resolves when the server ends the response (or the client aborts). */
  closed: Promise<void>;
  abort(): void;
  /** The body of a response that is not an event stream. */
  text: Promise<string>;
}

/** Opens GET /api/jobs/{id}/logs and keeps reading it in the background. */
export async function openLogs(baseUrl: string, jobId: string, token: string, headers: Record<string, string> = {}, query = ''): Promise<LogStreamClient> {
  const ctrl = new AbortController();
  const res = await fetch(`${baseUrl}/api/jobs/${jobId}/logs${query}`, {
    headers: { accept: 'text/event-stream', authorization: `Bearer ${token}`, ...headers }, signal: ctrl.signal,
  });
  const contentType = res.headers.get('content-type') ?? '';
  const events: SseEvent[] = [];
  let raw = '';
  if (!contentType.startsWith('text/event-stream')) {
    const text = res.text();
    return { status: res.status, contentType, events, raw: () => raw, closed: text.then(() => undefined), abort: () => ctrl.abort(), text };
  }
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const closed = (async () => {
    try {
      for await (const chunk of res.body!) {
        const text = decoder.decode(chunk, { stream: true });
        raw += text;
        events.push(...parser.feed(text));
      }
    } catch (e) {
      if (!ctrl.signal.aborted) throw e;
    }
  })();
  return { status: res.status, contentType, events, raw: () => raw, closed, abort: () => ctrl.abort(), text: Promise.resolve('') };
}
