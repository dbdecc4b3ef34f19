/**
 * The control plane's HTTP API: builds the Fastify app from its parts, and `startApi` wires the backing services
 * (opening what it is not given, and closing only what it opened) plus the results listener.
 */
import type { Socket } from 'node:net';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Redis } from 'ioredis';
import { SriError } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { JobQueue } from '../shared/queue/job-queue.ts';
import { createRedis } from '../shared/redis.ts';
import { BlobStore, createS3Client } from '../shared/s3.ts';
import { createTracing, type Tracing } from '../shared/tracing.ts';
import type { ApiConfig } from './config.ts';
import type { ApiContext } from './context.ts';
import { migrate, openDatabase, type Database } from './db/index.ts';
import { findUser } from './db/queries/accounts.ts';
import { TokenService } from './http/auth.ts';
import { installErrorHandlers } from './http/errors.ts';
import { contractDocument, contractSerializer, contractTransform, contractValidator, documentBase } from './http/openapi.ts';
import { authRoutes } from './http/routes/auth.ts';
import { documentRoutes } from './http/routes/documents.ts';
import { flowRoutes } from './http/routes/flows.ts';
import { healthRoutes } from './http/routes/health.ts';
import { adminRoutes } from './http/routes/admin.ts';
import { jobControlRoutes } from './http/routes/job-control.ts';
import { jobLiveRoutes } from './http/routes/job-live.ts';
import { jobLogRoutes } from './http/routes/job-logs.ts';
import { jobRoutes } from './http/routes/jobs.ts';
import { memberRoutes } from './http/routes/members.ts';
import { moduleRoutes } from './http/routes/modules.ts';
import { operatorRoutes } from './http/routes/operator.ts';
import { workerConfigRoutes } from './http/routes/worker-config.ts';
import { operatorSessionRoutes } from './http/routes/operator-session.ts';
import { opsRoutes } from './http/routes/ops.ts';
import { providerRoutes } from './http/routes/providers.ts';
import { runRoutes } from './http/routes/run.ts';
import { secretRoutes } from './http/routes/secrets.ts';
import { installSecurityHeaders } from './http/security-headers.ts';
import { webhookRoutes } from './http/routes/webhooks.ts';
import { workerRoutes } from './http/routes/workers.ts';
import { sessionRoutes } from './http/routes/session.ts';
import { scheduleRoutes } from './http/routes/schedules.ts';
import { redisRevokedSessions } from './http/session-cookie.ts';
import { redisRemovedUsers } from './auth/removed-users.ts';
import { installWebApp } from './http/web-app.ts';
import { ApiMetrics, installMetrics } from './http/metrics.ts';
import { RunAdmission } from './jobs/admission.ts';
import { publishProviderCatalogue } from './providers/catalogue.ts';
import { Scheduler, scheduledRunSubmitter } from './schedules/scheduler.ts';
import { startResultsListener, type ResultsListener } from './results/listener.ts';
import { WebhookDeliverer } from './webhooks/deliver.ts';
import type { Resolve } from './webhooks/target.ts';

/** Request bodies above this are refused with PAYLOAD_TOO_LARGE. */
export const BODY_LIMIT_BYTES = 1024 * 1024;

export async function buildApp(ctx: ApiContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    trustProxy: false,
  });
  // Each route's zod schemas validate its request, type its handler, encode its answers and make the OpenAPI
  // document (http/openapi.ts).
  app.setValidatorCompiler(contractValidator);
  app.setSerializerCompiler(contractSerializer);
  installErrorHandlers(app);
  installSecurityHeaders(app);
  // Before any route (GET /metrics included): it documents the routes registered after it.
  await app.register(swagger, { openapi: documentBase(), transform: contractTransform, transformObject: contractDocument });
  installMetrics(app, new ApiMetrics({ redis: ctx.redis, queueMaxOrgs: ctx.config.metricsQueueMaxOrgs }), ctx.config.metricsToken);
  // Fastify's JSON parser (it refuses __proto__ / constructor poisoning), except that an empty body is no body:
  // `curl -H 'Content-Type: application/json' -X POST …/activate` must not fail for want of "{}".
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body.toString();
    if (text.trim() === '') return done(null, undefined);
    return jsonParser(req, text, done);
  });

  await app.register(rateLimit, {
    global: false,
    // Counted in Redis, so API replicas share one count per client (in memory each replica had its own allowance).
    // Redis unreachable: requests pass uncounted (logged by ioredis' error listener) rather than all being refused,
    // as the login lockout does.
    redis: ctx.redis, nameSpace: keys.authRateLimitPrefix, skipOnError: true,
    // Thrown, so the one error handler renders it like every other error.
    errorResponseBuilder: (_req, c) => new SriError('RATE_LIMITED', `Too many requests; try again in ${Math.ceil(c.ttl / 1000)} s.`),
  });
  // The UI page needs scripts and styles of its own: it sets its own Content-Security-Policy (security-headers.ts).
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });

  healthRoutes(app, ctx);
  authRoutes(app, ctx);
  providerRoutes(app, ctx);
  flowRoutes(app, ctx);
  runRoutes(app, ctx);
  jobRoutes(app, ctx);
  jobControlRoutes(app, ctx);
  jobLogRoutes(app, ctx);
  jobLiveRoutes(app, ctx);
  adminRoutes(app, ctx);
  webhookRoutes(app, ctx);
  secretRoutes(app, ctx);
  workerRoutes(app, ctx);
  moduleRoutes(app, ctx);
  operatorRoutes(app, ctx);
  workerConfigRoutes(app, ctx);
  opsRoutes(app, ctx);
  operatorSessionRoutes(app, ctx);
  sessionRoutes(app, ctx);
  memberRoutes(app, ctx);
  scheduleRoutes(app, ctx);
  documentRoutes(app, ctx);
  // The dashboard at / (after the API's routes: its catch-all never shadows them); screenshots come from S3 links.
  await installWebApp(app, { imageOrigins: [new URL(ctx.config.s3Endpoint).origin] });
  return app;
}

export interface ApiDeps {
  db?: Database;
  redis?: Redis;
  blobStore?: BlobStore;
  logger?: Logger;
  /** Used, not shut down, by the API. @default spans of service `sri-api` to OTEL_EXPORTER_OTLP_ENDPOINT, flushed on close */
  tracing?: Tracing;
  /** Resolves webhook host names at each delivery attempt (tests: names that point where they say). @default the system resolver */
  webhookResolve?: Resolve;
}

export interface ApiHandle {
  url: string;
  app: FastifyInstance;
  listener: ResultsListener;
  close(): Promise<void>;
}

export async function startApi(config: ApiConfig, deps: ApiDeps = {}): Promise<ApiHandle> {
  const logger = deps.logger ?? createLogger({ name: 'api', level: config.logLevel, logDir: config.logDir });
  const owned: (() => Promise<void> | void)[] = [];
  const closeOwned = async () => {
    for (const close of owned.reverse()) await Promise.resolve(close()).catch((err: unknown) => logger.warn({ err }, 'error while closing'));
  };
  try {
    let tracing = deps.tracing;
    if (!tracing) {
      const created = createTracing({ serviceName: 'sri-api', otlpEndpoint: config.otlpEndpoint });
      tracing = created;
      // First in, so closed last: the spans of the requests and results handled while closing are exported too.
      owned.push(() => created.shutdown());
    }
    let db = deps.db;
    if (!db) {
      db = await openDatabase(config.databaseUrl ? { databaseUrl: config.databaseUrl } : { dataDir: join(config.dataDir, 'pglite') });
      const opened = db;
      owned.push(() => opened.close());
      const applied = await migrate(db);
      if (applied.length) logger.info({ applied }, 'migrations applied');
    }
    let redis = deps.redis;
    if (!redis) {
      // Requests must fail fast while Redis is down rather than queue forever (the shared default for workers).
      const created = createRedis(config, { name: 'sri-api', maxRetriesPerRequest: 2, commandTimeout: 5000 });
      // Without a listener an 'error' event would crash the process; ioredis reconnects with backoff on its own.
      created.on('error', (err: Error) => logger.warn({ err: err.message }, 'Redis connection error; reconnecting'));
      redis = created;
      owned.push(() => { created.disconnect(); });
    }
    let blobStore = deps.blobStore;
    if (!blobStore) {
      const created = new BlobStore(createS3Client(config));
      blobStore = created;
      owned.push(() => created.client.destroy());
    }
    const queue = await JobQueue.connect(redis);
    // Workers take a job's hosts from the catalogue in Redis (docs/security.md "Egress"): published before the API
    // serves, so no job it enqueues meets a stale or missing entry.
    const catalogue = await publishProviderCatalogue(db, redis, config.scriptSigningSecret);
    logger.info({ providers: catalogue.published, ...(catalogue.removed.length ? { removed: catalogue.removed } : {}) }, 'provider catalogue published to Redis');
    // Closed after the listener and the app (owned closes in reverse), so no recorded result is left without its
    // deliveries.
    const webhooks = new WebhookDeliverer({
      db, logger, masterSecret: config.jwtSecret, maxAttempts: config.webhookMaxAttempts, retryBaseMs: config.webhookRetryBaseMs,
      retryMaxMs: config.webhookRetryMaxMs, timeoutMs: config.webhookTimeoutMs, allowPrivate: config.webhookAllowPrivate,
      ...(deps.webhookResolve ? { resolve: deps.webhookResolve } : {}),
    });
    if (config.webhookAllowPrivate) {
      // Said at every start: with it, any admin of any organisation can make the API POST to this machine and its network.
      logger.warn({ setting: 'WEBHOOK_ALLOW_PRIVATE' }, 'WEBHOOK_ALLOW_PRIVATE=true: webhooks may be delivered to loopback and private '
        + 'addresses (this host, its network, the platform\'s own services); link-local and metadata addresses stay refused. '
        + 'Use it only for on-premise receivers, where every organisation\'s admin is trusted that far.');
    }
    owned.push(() => webhooks.close());
    // A token is honoured only while its user exists in its organisation (looked up, cached AUTH_USER_CACHE_MS).
    const tokenDb = db;
    const tokens = new TokenService(config.jwtSecret, config.jwtExpiresInSeconds, {
      cacheMs: config.authUserCacheMs,
      // The dashboard's logged-out sessions (docs/security.md "Browser sessions").
      revoked: redisRevokedSessions(redis),
      // Removed members: refused at once by every API process (docs/security.md "Members").
      removedUsers: redisRemovedUsers(redis),
      lookup: async ({ orgId, userId }) => {
        const user = await tokenDb.withOrg(orgId, (tx) => findUser(tx, userId));
        return user && user.org_id === orgId ? { role: user.role } : undefined;
      },
    });
    const ctx: ApiContext = {
      config, db, redis, queue, blobStore, logger, tokens, tracer: tracing.tracer,
      onJobFinal: webhooks.onJobFinal,
    };
    const subscriber = redis.duplicate({ connectionName: 'sri-api-results', maxRetriesPerRequest: null });
    subscriber.on('error', (err) => logger.warn({ err: err.message }, 'results subscriber connection error'));
    const listener = await startResultsListener({
      db, blobStore, resultsBucket: config.s3ResultsBucket, logger, subscriber, redis, reconcileIntervalMs: config.reconcileIntervalMs,
      onJobFinal: webhooks.onJobFinal, tracer: tracing.tracer,
    });
    owned.push(() => listener.stop());

    const app = await buildApp(ctx);
    // Connections a client opened and has not sent a request on yet (an HTTP client's or a browser's spare
    // connection) are not idle to Node's server.close(), which closes only idle keep-alive ones: each would hold the
    // close until the client dropped it — about 70 s with Node's fetch (seen in test/e2e/handoff.test.ts). They carry
    // nothing, so closing drops them, after the open live streams were ended (preClose hooks, registered earlier).
    const connections = new Set<Socket>();
    app.server.on('connection', (socket: Socket) => {
      connections.add(socket);
      socket.once('close', () => connections.delete(socket));
    });
    app.addHook('preClose', async () => {
      for (const socket of connections) if (socket.bytesRead === 0) socket.destroy();
    });
    owned.push(() => app.close());
    await app.listen({ port: config.port, host: config.host });
    if (config.schedulerEnabled) {
      const scheduler = new Scheduler({
        db, logger, tickMs: config.schedulerTickMs, misfireGraceMs: config.schedulerMisfireGraceMs,
        submit: scheduledRunSubmitter(ctx, new RunAdmission(redis, config)),
      });
      // Pushed last, so stopped first: no run is submitted while the app, listener and connections close.
      owned.push(() => scheduler.stop());
      scheduler.start();
    }
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    let closing: Promise<void> | undefined;
    return { url, app, listener, close: () => (closing ??= closeOwned()) };
  } catch (e) {
    await closeOwned();
    throw e;
  }
}
