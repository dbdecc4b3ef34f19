/**
 * OpenTelemetry traces of one process (docs/observability.md "Traces"). Each process — the API, a worker — makes
 * one `Tracing` at start with its service name and hands it to what it starts; nothing is registered globally, so
 * an API and a worker in one process (the tests, `sri up`'s in-process API) keep their own service names and
 * exporters. Contexts are passed explicitly (no context manager): a span's parent is always named where it starts.
 *
 * Spans are always recorded, with real ids, so a job's trace id exists (in its messages and logs) whether or not
 * anything is exported; without OTEL_EXPORTER_OTLP_ENDPOINT and without injected exporters the provider has no
 * span processor and a finished span is simply dropped — a few small objects per job.
 *
 * Between the planes the context travels as a W3C `traceparent` string in the job and result messages
 * (src/shared/schemas.ts). It is observability data only: not covered by the job envelope signature, and a
 * malformed or missing one only starts a new trace.
 */
import {
  ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, isSpanContextValid, trace,
  type Attributes, type Context, type Span, type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, SimpleSpanProcessor, type SpanExporter, type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

export { SpanKind, SpanStatusCode, ROOT_CONTEXT };
export type { Attributes, Context, Span, Tracer };

/** A W3C trace context header value, version 00: `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`. */
export const TRACEPARENT_PATTERN = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The service version in every span's resource (package.json's). */
const SERVICE_VERSION = '0.1.0';
/** Longest an export may take before the batch is given up (a collector that hangs must not hold a shutdown). */
const EXPORT_TIMEOUT_MS = 10_000;

export interface TracingOptions {
  /** `service.name` of every span: `sri-api`, `sri-worker`. */
  readonly serviceName: string;
  /**
   * OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL. When set, finished spans are batched and POSTed as
   * OTLP/HTTP JSON to `{endpoint}/v1/traces`. @default unset: nothing is exported
   */
  readonly otlpEndpoint?: string;
  /** More exporters, each behind a SimpleSpanProcessor (spans exported as they end): tests' InMemorySpanExporter. */
  readonly exporters?: readonly SpanExporter[];
  /** More resource attributes, e.g. `service.instance.id`. */
  readonly resource?: Attributes;
}

export interface Tracing {
  readonly tracer: Tracer;
  /** True when spans go anywhere (an OTLP endpoint or an injected exporter). */
  readonly exporting: boolean;
  /** Exports what is buffered. Never rejects. */
  forceFlush(): Promise<void>;
  /** Exports what is buffered, then stops the exporters. Idempotent; never rejects. */
  shutdown(): Promise<void>;
}

/** `{endpoint}/v1/traces`, keeping a path prefix the endpoint may have (`http://collector:4318/otlp`). */
export function otlpTracesUrl(endpoint: string): string {
  return new URL('v1/traces', endpoint.endsWith('/') ? endpoint : `${endpoint}/`).href;
}

export function createTracing(opts: TracingOptions): Tracing {
  const processors: SpanProcessor[] = [];
  if (opts.otlpEndpoint) {
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: otlpTracesUrl(opts.otlpEndpoint), timeoutMillis: EXPORT_TIMEOUT_MS })));
  }
  for (const exporter of opts.exporters ?? []) processors.push(new SimpleSpanProcessor(exporter));
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName, [ATTR_SERVICE_VERSION]: SERVICE_VERSION, ...opts.resource }),
    // Explicit, so the SDK's own OTEL_TRACES_SAMPLER reading does not apply: every trace is recorded, also under a
    // remote parent that says "not sampled" — a caller of the API or a producer cannot switch our spans off.
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler(), remoteParentNotSampled: new AlwaysOnSampler() }),
    spanProcessors: processors,
  });
  let stopped: Promise<void> | undefined;
  return {
    tracer: provider.getTracer('sri', SERVICE_VERSION),
    exporting: processors.length > 0,
    forceFlush: () => provider.forceFlush().catch(() => {}),
    shutdown: () => (stopped ??= provider.shutdown().catch(() => {})),
  };
}

const propagator = new W3CTraceContextPropagator();

/** The `traceparent` of `span` (of the span in `ctx`), or undefined when it has no valid context. */
export function traceparentOf(spanOrContext: Span | Context): string | undefined {
  const ctx = 'spanContext' in spanOrContext ? trace.setSpan(ROOT_CONTEXT, spanOrContext) : spanOrContext;
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, defaultTextMapSetter);
  return carrier['traceparent'];
}

/** The context a `traceparent` names, to start children of the remote span in; ROOT_CONTEXT for none or a bad one. */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  if (traceparent === undefined || !TRACEPARENT_PATTERN.test(traceparent)) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
}

/** `{ traceId, spanId }` of `span` for log lines; empty when the span has no valid context. */
export function traceFields(span: Span): { traceId?: string; spanId?: string } {
  const sc = span.spanContext();
  return isSpanContextValid(sc) ? { traceId: sc.traceId, spanId: sc.spanId } : {};
}

/** `{ traceId }` of a `traceparent` for log lines; empty for none or a malformed one. */
export function traceIdOf(traceparent: string | undefined): { traceId?: string } {
  return traceparent !== undefined && TRACEPARENT_PATTERN.test(traceparent) ? { traceId: traceparent.slice(3, 35) } : {};
}

/** Marks `span` failed with the error's stable code (`error.code`, and semconv `error.type`). */
export function setSpanError(span: Span, code: string, message?: string): void {
  span.setAttributes({ 'error.code': code, 'error.type': code });
  span.setStatus({ code: SpanStatusCode.ERROR, ...(message === undefined ? {} : { message: message.slice(0, 500) }) });
}

/** Starts a child of `parent` (a span, or a context), named `name`. */
export function startChildSpan(tracer: Tracer, name: string, parent: Span | Context, opts: { kind?: SpanKind; attributes?: Attributes; startTime?: number } = {}): Span {
  const ctx = 'spanContext' in parent ? trace.setSpan(ROOT_CONTEXT, parent) : parent;
  return tracer.startSpan(name, {
    ...(opts.kind === undefined ? {} : { kind: opts.kind }),
    ...(opts.attributes === undefined ? {} : { attributes: opts.attributes }),
    ...(opts.startTime === undefined ? {} : { startTime: opts.startTime }),
  }, ctx);
}
