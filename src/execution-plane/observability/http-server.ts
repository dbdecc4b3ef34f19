/**
 * The worker's own small HTTP server (node:http) for Prometheus and probes — the worker has no other HTTP surface:
 *   GET /metrics  Prometheus text format (WorkerMetrics' registry)
 *   GET /healthz  200 while the process runs and its event loop is not stuck; 503 otherwise (liveness)
 *   GET /readyz   200 while Redis answers, Chromium is up and the worker takes jobs; 503 with the failing checks
 *                 otherwise (reconnecting, draining, starting, browser down) (readiness)
 * Bound to WORKER_HTTP_HOST (127.0.0.1 by default). A port that is taken does not stop the worker: it says so and
 * listens on a free port instead, which its registry entry (`httpUrl`) shows.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../../shared/logger.ts';
import { METRICS_CONTENT_TYPE, type Registry } from '../../shared/metrics/registry.ts';
import type { EventLoopStatus } from './event-loop.ts';

/** Longest the readiness check waits for Redis to answer PING. */
const READY_PING_TIMEOUT_MS = 1000;

export interface WorkerProbes {
  eventLoop(): EventLoopStatus;
  /** The worker's lifecycle state; only `ready` and `busy` are ready. */
  state(): string;
  redisState(): string;
  pingRedis(): Promise<unknown>;
  browserUp(): boolean;
}

export interface WorkerHttpServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

async function check(fn: () => Promise<unknown>, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([fn(), new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs); })]);
    return 'ok';
  } catch (e) {
    return `fail: ${(e as Error).message.slice(0, 120)}`;
  } finally {
    clearTimeout(timer);
  }
}

export async function readiness(p: WorkerProbes): Promise<{ ready: boolean; checks: Record<string, string> }> {
  const state = p.state();
  const redisState = p.redisState();
  const checks: Record<string, string> = {
    // A reconnecting client queues commands instead of failing them: ask only a connected one.
    redis: redisState === 'connected' ? await check(() => p.pingRedis(), READY_PING_TIMEOUT_MS) : `fail: ${redisState}`,
    browser: p.browserUp() ? 'ok' : 'fail: Chromium is not running',
    worker: state === 'ready' || state === 'busy' ? 'ok' : `fail: ${state}`,
  };
  return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => { server.off('listening', onListening); reject(e); };
    const onListening = () => { server.off('error', onError); resolve(); };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

export async function startWorkerHttpServer(opts: {
  port: number; host: string; registry: Registry; probes: WorkerProbes; logger: Logger;
}): Promise<WorkerHttpServer> {
  const { registry, probes, logger } = opts;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: { code: 'ROUTE_NOT_FOUND', message: 'Only GET.' } });
    if (path === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
      return res.end(text);
    }
    if (path === '/healthz') {
      const eventLoop = probes.eventLoop();
      const checks = { eventLoop: eventLoop.stuck ? `stuck: blocked ${eventLoop.maxDelayMs} ms within the last ${eventLoop.windowMs} ms (limit ${eventLoop.limitMs} ms)` : 'ok' };
      return send(res, eventLoop.stuck ? 503 : 200, { status: eventLoop.stuck ? 'unhealthy' : 'ok', checks, eventLoop });
    }
    if (path === '/readyz') {
      const { ready, checks } = await readiness(probes);
      return send(res, ready ? 200 : 503, { status: ready ? 'ready' : 'unavailable', checks });
    }
    return send(res, 404, { error: { code: 'ROUTE_NOT_FOUND', message: 'The worker serves /metrics, /healthz and /readyz.' } });
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      logger.warn({ err: (e as Error).message, url: req.url }, 'worker HTTP request failed');
      if (!res.headersSent) send(res, 500, { error: { code: 'INTERNAL', message: 'The request failed; see the worker log.' } });
      else res.destroy();
    });
  });
  // Probes and scrapes are short; an idle connection must not keep the worker from exiting.
  server.keepAliveTimeout = 5000;
  try {
    await listen(server, opts.port, opts.host);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || opts.port === 0) throw e;
    logger.warn({ port: opts.port, host: opts.host }, `port ${opts.port} is in use (WORKER_HTTP_PORT); serving /metrics, /healthz and /readyz on a free port instead`);
    await listen(server, 0, opts.host);
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  logger.info({ url }, 'worker metrics and probes listening');
  return {
    url, port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
