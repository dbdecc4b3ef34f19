/**
 * The API's Prometheus metrics: request latency by method, route (the route's pattern, never the raw URL) and
 * status; the queue depths both planes export; the Node.js process metrics. Served on `GET /metrics`. The queue
 * series are labelled with organisation ids, so they are served only with `Authorization: Bearer <METRICS_TOKEN>`:
 * without METRICS_TOKEN (or without the header) /metrics has the request and process metrics only — the API may
 * face the internet and its tenants. docs/observability.md lists every metric.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { Histogram, Registry as PromRegistry } from 'prom-client';
import { z } from 'zod';
import { SriError } from '../../shared/errors.ts';
import { registerQueueDepthGauges } from '../../shared/metrics/queue-depth.ts';
import { createMetricsRegistry, METRICS_CONTENT_TYPE, type Registry } from '../../shared/metrics/registry.ts';
import { endpoint, type ContractTypeProvider } from './openapi.ts';

/** Requests take milliseconds; log streams (SSE) last as long as their job, and land in the last buckets. */
const HTTP_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];

export class ApiMetrics {
  readonly registry: Registry;
  /** Series that name organisations (queue depths): served only to holders of METRICS_TOKEN. */
  readonly tenantRegistry: Registry = new PromRegistry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;

  constructor(opts: { redis?: Redis; queueMaxOrgs: number }) {
    this.registry = createMetricsRegistry();
    this.httpDuration = new Histogram({
      name: 'sri_http_request_duration_seconds',
      help: 'API requests by method, route pattern (unmatched for unknown URLs) and status code, with their duration.',
      labelNames: ['method', 'route', 'status_code'], buckets: HTTP_BUCKETS_SECONDS, registers: [this.registry],
    });
    if (opts.redis) registerQueueDepthGauges(this.tenantRegistry, { redis: opts.redis, maxOrgs: opts.queueMaxOrgs });
  }
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Times every request (onResponse) and serves GET /metrics. */
export function installMetrics(app: FastifyInstance, metrics: ApiMetrics, token: string | undefined): void {
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpDuration.observe(
      { method: req.method, route: req.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.withTypeProvider<ContractTypeProvider>().route({
    ...endpoint('GET', '/metrics', {
      operationId: 'getMetrics', tag: 'health', access: 'metrics',
      summary: 'Prometheus metrics (text format). With METRICS_TOKEN set, send "Authorization: Bearer <METRICS_TOKEN>".',
      responses: {
        200: {
          description: 'The metrics; the per-organisation queue series only with METRICS_TOKEN (docs/observability.md).',
          content: { 'text/plain': { schema: z.string().describe('Prometheus text exposition format 0.0.4.') } },
        },
      },
    }),
    handler: async (req, reply) => {
      let withTenants = false;
      if (token) {
        const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
        if (!m || !sameToken(m[1]!, token)) {
          throw new SriError('UNAUTHENTICATED', 'GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>" (the token the API was started with).');
        }
        withTenants = true;
      }
      const text = withTenants
        ? await PromRegistry.merge([metrics.registry, metrics.tenantRegistry]).metrics()
        : `${await metrics.registry.metrics()}\n# The per-organisation queue series (sri_queue_*) are served only with METRICS_TOKEN set on the API.\n`;
      return reply.type(METRICS_CONTENT_TYPE).header('cache-control', 'no-store').send(text);
    },
  });
}
