/**
 * A SERVER span per request of the routes that start a trace (POST /api/run), as route-level hooks
 * (docs/observability.md "Traces"). The span continues the caller's trace when the request carries a valid
 * `traceparent` header, else starts one. From its onRequest hook on, the request's logger (and so Fastify's
 * `request completed` line and every line the handler logs) carries the span's `traceId` and `spanId`.
 */
import type { FastifyReply, FastifyRequest, onErrorAsyncHookHandler, onRequestAsyncHookHandler, onResponseAsyncHookHandler } from 'fastify';
import { contextFromTraceparent, SpanKind, SpanStatusCode, traceFields, type Span, type Tracer } from '../../shared/tracing.ts';
import { toSriError } from './errors.ts';

const spans = new WeakMap<FastifyRequest, Span>();

/** The request's span (routes with `tracedRoute` hooks only). */
export function spanOf(req: FastifyRequest): Span | undefined {
  return spans.get(req);
}

/** Hooks to spread into a route's options: `app.post(path, { ...tracedRoute(ctx.tracer), preHandler }, handler)`. */
export function tracedRoute(tracer: Tracer): { onRequest: onRequestAsyncHookHandler; onError: onErrorAsyncHookHandler; onResponse: onResponseAsyncHookHandler } {
  return {
    onRequest: async (req: FastifyRequest, reply: FastifyReply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      const header = req.headers['traceparent'];
      const span = tracer.startSpan(`${req.method} ${route}`, {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': req.method, 'http.route': route },
      }, contextFromTraceparent(typeof header === 'string' ? header.trim().toLowerCase() : undefined));
      spans.set(req, span);
      // Both: Fastify logs `request completed` with reply.log, the handler with req.log.
      const log = req.log.child(traceFields(span));
      req.log = log;
      reply.log = log;
    },
    // Runs before the error handler renders the error: the span gets the code the client will see.
    onError: async (req: FastifyRequest, _reply: FastifyReply, err: Error) => {
      const span = spans.get(req);
      const code = toSriError(err)?.code ?? 'INTERNAL';
      if (span) span.setAttributes({ 'error.code': code, 'error.type': code });
    },
    onResponse: async (req: FastifyRequest, reply: FastifyReply) => {
      const span = spans.get(req);
      if (!span) return;
      spans.delete(req);
      span.setAttribute('http.response.status_code', reply.statusCode);
      // As OpenTelemetry's HTTP conventions say for servers: a 4xx is the client's mistake, not a failed span.
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${reply.statusCode}` });
      span.end();
    },
  };
}
