/**
 * OpenTelemetry traces from end to end (docs/observability.md "Traces"), on real services (PGlite, redis-server,
 * s3rver, Chromium, a local portal) with the API and a worker in this process:
 * - with an InMemorySpanExporter in each plane, one POST /api/run makes one trace — POST /api/run → enqueue →
 *   job.take and job (on the worker, under the context the job message carried) → verify, session, run, upload,
 *   publish → result.record (back in the control plane, under the context the result message carried) — and the
 *   trace id is in the job's row, in the API's and the worker's log lines of the job, and in its execution.log and
 *   live log;
 * - with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local HTTP server, both planes POST their spans to /v1/traces
 *   as OTLP/HTTP JSON, flushed when they stop;
 * - and, without services, the spans of a failing attempt (JobTrace): ERROR and error.code on the phase and the job.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { findJob } from '../../src/control-plane/db/queries/jobs.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { JobTrace } from '../../src/execution-plane/job/job-trace.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { parseLogEntry } from '../../src/shared/job-logs.ts';
import { keys } from '../../src/shared/keys.ts';
import type { Logger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import type { JobMessage } from '../../src/shared/schemas.ts';
import { createTracing, type Tracing } from '../../src/shared/tracing.ts';
import { startTestPortal, type TestPortal } from '../execution-plane/support/portal.ts';
import { testWorkerConfig } from '../execution-plane/support/jobs.ts';
import { startTestRedis, startTestS3, tempDir, TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { openTestDatabase } from '../support/database.ts';

type LogLine = Record<string, unknown> & { msg?: string };

/** A pino logger whose JSON lines land in `lines`. */
function capturingLogger(lines: LogLine[]): Logger {
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return pino({ level: 'info' }, stream);
}

const WORKER_PHASES = ['verify', 'session', 'run', 'upload', 'publish'];

describe('traces: one trace from POST /api/run to the recorded result', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  let portal: TestPortal;
  let db: Database;
  let redis: Redis;
  let blobStore: BlobStore;
  const logs = tempDir('sri-e2e-tracing-');
  // Started by each test, stopped by it (and here, if it failed half-way).
  let api: ApiHandle | undefined;
  let worker: WorkerHandle | undefined;

  before(async () => {
    [redisServer, s3, portal, db] = await Promise.all([startTestRedis(), startTestS3(), startTestPortal(), openTestDatabase()]);
    await migrate(db);
    // Only `sri up` registers demo (migration 0005); these tests run its flows against their own portals.
    await seedDemoProvider(db);
    redis = createRedis(redisServer.url);
    blobStore = new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await api?.close();
    redis?.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([redisServer?.stop(), s3?.close(), portal?.close()]);
    logs.remove();
  });

  /** The API and a worker on the shared services; `env` goes to both configurations. */
  async function startPlanes(opts: { env?: Record<string, string>; apiLogger: Logger; workerLogger: Logger; apiTracing?: Tracing; workerTracing?: Tracing }) {
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3.endpoint,
      PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'info', ...opts.env,
    });
    api = await startApi(config, { db, redis, blobStore, logger: opts.apiLogger, ...(opts.apiTracing ? { tracing: opts.apiTracing } : {}) });
    worker = await startWorker(testWorkerConfig({ redisUrl: redisServer.url, s3Endpoint: s3.endpoint, logDir: logs.path, extra: opts.env }), {
      logger: opts.workerLogger, orgRefreshMs: 100, ...(opts.workerTracing ? { tracing: opts.workerTracing } : {}),
    });
    return api.url;
  }

  async function stopPlanes() {
    await worker?.stop({ graceMs: 5000 });
    worker = undefined;
    await api?.close();
    api = undefined;
  }

  /** A new organisation with the portal connected and an active flow; POST /api/run; the finished job. */
  async function runFlow(apiUrl: string, runHeaders: Record<string, string> = {}): Promise<{ jobId: string; orgId: string; userId: string; token: string }> {
    const reg = await fetch(`${apiUrl}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `trace-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Ana', orgName: `Trace ${randomUUID()}` }),
    }).then((r) => r.json()) as { token: string; user: { id: string }; org: { id: string } };
    const http = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const r = await fetch(apiUrl + path, {
        method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: `Bearer ${reg.token}`, ...headers },
      });
      return { status: r.status, body: await r.json() as any };
    };
    assert.equal((await http('POST', '/api/providers/demo/connect', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }] })).status, 200);
    const flow = await http('POST', '/api/flows', {
      providerId: 'demo', version: '1.0.0', name: 'Traced', steps: [
        { type: 'navigate', url: `${portal.url}/invoices` },
        { type: 'extract', name: 'invoices', selector: '#invoices tbody tr', fields: { number: 'td.number' } },
      ],
    });
    assert.equal(flow.status, 201, JSON.stringify(flow.body));
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, {})).status, 200);
    const run = await http('POST', '/api/run', { providerId: 'demo' }, runHeaders);
    assert.equal(run.status, 202, JSON.stringify(run.body));
    const jobId = run.body.jobId as string;
    const job = await waitFor(async () => {
      const r = await http('GET', `/api/jobs/${jobId}`);
      return ['done', 'failed', 'dead'].includes(r.body?.job?.status) ? r.body.job : undefined;
    }, { timeoutMs: 60_000, what: `job ${jobId} to finish` });
    assert.equal(job.status, 'done', JSON.stringify(job));
    return { jobId, orgId: reg.org.id, userId: reg.user.id, token: reg.token };
  }

  it('links POST /api/run, enqueue, the worker\'s take and phases and result.record in one trace; the logs carry its id', async () => {
    const apiSpans = new InMemorySpanExporter();
    const workerSpans = new InMemorySpanExporter();
    const apiTracing = createTracing({ serviceName: 'sri-api', exporters: [apiSpans] });
    const workerTracing = createTracing({ serviceName: 'sri-worker', exporters: [workerSpans] });
    const apiLines: LogLine[] = [];
    const workerLines: LogLine[] = [];
    try {
      const url = await startPlanes({ apiLogger: capturingLogger(apiLines), workerLogger: capturingLogger(workerLines), apiTracing, workerTracing });
      const { jobId, orgId, userId } = await runFlow(url);

      const ofJob = (spans: ReadableSpan[]) => spans.filter((s) => s.attributes['sri.job.id'] === jobId || WORKER_PHASES.includes(s.name));
      // The result may be recorded (pub/sub) a moment after GET /api/jobs/{id} saw it (the reconciler, a read).
      const record = await waitFor(() => apiSpans.getFinishedSpans().find((s) => s.name === 'result.record' && s.attributes['sri.job.id'] === jobId
        && s.attributes['sri.result.outcome'] === 'recorded'), { what: 'the result.record span' });
      const jobSpan = await waitFor(() => workerSpans.getFinishedSpans().find((s) => s.name === 'job' && s.attributes['sri.job.id'] === jobId),
        { what: 'the worker\'s job span' });
      const byName = (spans: ReadableSpan[], name: string) => {
        const found = spans.filter((s) => s.name === name);
        assert.equal(found.length, 1, `one ${name} span: ${spans.map((s) => s.name).join(', ')}`);
        return found[0]!;
      };
      const api = ofJob(apiSpans.getFinishedSpans());
      const work = ofJob(workerSpans.getFinishedSpans());
      const request = byName(api, 'POST /api/run');
      const enqueue = byName(api, 'enqueue');
      const take = byName(work, 'job.take');
      const traceId = request.spanContext().traceId;

      assert.match(traceId, /^[0-9a-f]{32}$/);
      for (const s of [...api, ...work]) assert.equal(s.spanContext().traceId, traceId, `${s.name} is in the trace`);
      assert.equal(request.parentSpanContext, undefined, 'POST /api/run starts the trace');
      assert.equal(request.resource.attributes['service.name'], 'sri-api');
      assert.equal(request.attributes['http.route'], '/api/run');
      assert.equal(request.attributes['http.response.status_code'], 202);
      assert.equal(enqueue.parentSpanContext?.spanId, request.spanContext().spanId, 'enqueue is a child of POST /api/run');
      // The worker continues from the context the job message carried: the enqueue span.
      assert.equal(take.parentSpanContext?.spanId, enqueue.spanContext().spanId, 'job.take under enqueue');
      assert.equal(jobSpan.parentSpanContext?.spanId, enqueue.spanContext().spanId, 'job under enqueue');
      assert.equal(jobSpan.resource.attributes['service.name'], 'sri-worker');
      assert.equal(jobSpan.attributes['sri.job.status'], 'done');
      assert.equal(jobSpan.status.code, 1, 'job span OK');
      const phases = WORKER_PHASES.map((name) => byName(work, name));
      for (const p of phases) {
        assert.equal(p.parentSpanContext?.spanId, jobSpan.spanContext().spanId, `${p.name} is a child of job`);
        assert.notEqual(p.status.code, 2, `${p.name} did not fail`);
      }
      for (let i = 1; i < phases.length; i++) {
        assert.ok(phases[i]!.startTime[0] * 1e9 + phases[i]!.startTime[1] >= phases[i - 1]!.startTime[0] * 1e9 + phases[i - 1]!.startTime[1],
          `${phases[i]!.name} starts after ${phases[i - 1]!.name}`);
      }
      // The result message carried the publish span's context back to the control plane.
      assert.equal(record.parentSpanContext?.spanId, byName(work, 'publish').spanContext().spanId, 'result.record under publish');

      // The trace id travels with the job: its row, and every log line of the job on both planes.
      assert.equal((await db.withOrg(orgId, (tx) => findJob(tx, jobId)))?.trace_id, traceId);
      const queued = apiLines.find((l) => l.msg === 'job queued' && l['jobId'] === jobId);
      assert.equal(queued?.['traceId'], traceId, 'the API\'s "job queued" line');
      const reqId = queued?.['reqId'];
      const completed = apiLines.find((l) => l.msg === 'request completed' && l['reqId'] === reqId);
      assert.equal(completed?.['traceId'], traceId, 'the request log line of POST /api/run');
      // Pub/sub may deliver the result after a read of the job recorded it already.
      const resultLine = await waitFor(() => apiLines.find((l) => l.msg === 'job result' && l['jobId'] === jobId), { what: 'the listener\'s "job result" line' });
      assert.equal(resultLine['traceId'], traceId, 'the listener\'s "job result" line');
      const jobLines = workerLines.filter((l) => l['jobId'] === jobId);
      assert.ok(jobLines.some((l) => l.msg === 'job started') && jobLines.some((l) => l.msg === 'job done'), JSON.stringify(jobLines));
      for (const l of jobLines) {
        assert.equal(l['traceId'], traceId, `worker line "${l.msg}"`);
        assert.equal(l['spanId'], jobSpan.spanContext().spanId);
      }
      // execution.log (S3) and the live log (Redis) name the trace in their first line.
      const execLog = (await blobStore.get('sri-results', `results/${orgId}/${userId}/${jobId}/execution.log`))!.toString('utf8');
      assert.match(execLog.split('\n')[0]!, new RegExp(`, trace ${traceId}$`));
      const [first] = await redis.xrange(keys.jobLogs(jobId), '-', '+', 'COUNT', 1);
      const entry = first && parseLogEntry(first[0], first[1]);
      assert.ok(entry && 'lines' in entry);
      assert.match(entry.lines[0]!.message, new RegExp(`, trace ${traceId}$`));
    } finally {
      await stopPlanes();
      await Promise.all([apiTracing.shutdown(), workerTracing.shutdown()]);
    }
  });

  it('exports both planes\' spans as OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, flushed when they stop; continues a caller\'s trace', async () => {
    const received: { method: string; path: string; contentType: string; body: string }[] = [];
    const collector: Server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => { body += d; });
      req.on('end', () => {
        received.push({ method: req.method ?? '', path: req.url ?? '', contentType: req.headers['content-type'] ?? '', body });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const silent = pino({ level: 'silent' });
    try {
      const url = await startPlanes({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, apiLogger: silent, workerLogger: silent });
      const workerId = worker!.workerId;
      // The caller's own trace, even one it did not sample: POST /api/run continues it, and records it all the same.
      const callerTraceId = randomUUID().replace(/-/g, '');
      const { jobId, orgId } = await runFlow(url, { traceparent: `00-${callerTraceId}-${randomUUID().replace(/-/g, '').slice(0, 16)}-00` });
      const traceId = (await db.withOrg(orgId, (tx) => findJob(tx, jobId)))!.trace_id!;
      assert.equal(traceId, callerTraceId, 'the job joined the caller\'s trace');
      // Stopping flushes the batches (the batch processor would wait up to 5 s otherwise). The worker's job span
      // ends just after the result is published: stopping waits for it.
      await stopPlanes();

      assert.ok(received.length > 0, 'the collector got requests');
      for (const r of received) {
        assert.equal(`${r.method} ${r.path}`, 'POST /v1/traces');
        assert.match(r.contentType, /^application\/json/);
      }
      const spans: { service: string; instance?: string; name: string; traceId: string }[] = [];
      for (const r of received) {
        const body = JSON.parse(r.body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: { name: string; traceId: string }[] }[] }[] };
        for (const rs of body.resourceSpans) {
          const attr = (key: string) => rs.resource.attributes.find((a) => a.key === key)?.value.stringValue;
          const service = attr('service.name') ?? '';
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ service, instance: attr('service.instance.id'), name: s.name, traceId: s.traceId });
        }
      }
      const inTrace = spans.filter((s) => s.traceId === traceId);
      const names = (service: string) => new Set(inTrace.filter((s) => s.service === service).map((s) => s.name));
      for (const n of ['POST /api/run', 'enqueue', 'result.record']) assert.ok(names('sri-api').has(n), `sri-api exported ${n}: ${[...names('sri-api')].join(', ')}`);
      for (const n of ['job.take', 'job', ...WORKER_PHASES]) assert.ok(names('sri-worker').has(n), `sri-worker exported ${n}: ${[...names('sri-worker')].join(', ')}`);
      assert.ok(inTrace.filter((s) => s.service === 'sri-worker').every((s) => s.instance === workerId), 'the worker\'s spans name it (service.instance.id)');
    } finally {
      await stopPlanes();
      await new Promise<void>((resolve) => collector.close(() => resolve()));
    }
  });
});

describe('the spans of a job attempt that fails (JobTrace)', () => {
  const taken = (leaseMs: number) => ({ token: 't', orgId: 'org-1', raw: '{}', jobId: 'job-1', attempt: 2, leaseDeadline: Date.now() + leaseMs - 50 });
  const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const message = { jobId: 'job-1', orgId: 'org-1', providerId: 'demo', flowId: 'flow-1', flowVersion: '1.0.0', traceparent: parent } as JobMessage;

  it('marks the failed phase and the job ERROR with error.code, under the message\'s parent, and names publish in the result', async () => {
    const memory = new InMemorySpanExporter();
    const tracing = createTracing({ serviceName: 'sri-worker', exporters: [memory] });
    const trace = new JobTrace(tracing.tracer, taken(30_000), { workerId: 'w-1', leaseMs: 30_000 });
    trace.begin(message);
    trace.enter('verify');
    trace.enter('session');
    trace.enter('run');
    trace.fail('SCRIPT_ERROR', 'page.click: Timeout 5000ms exceeded');
    trace.enter('upload');
    trace.enter('publish');
    const { traceparent } = trace.resultFields();
    trace.end({ status: 'failed', durationMs: 1234, errorCode: 'SCRIPT_ERROR' });
    // Not shutdown(): it empties the in-memory exporter.
    await tracing.forceFlush();

    const spans = new Map(memory.getFinishedSpans().map((s) => [s.name, s]));
    assert.deepEqual([...spans.keys()].sort(), ['job', 'job.take', 'publish', 'run', 'session', 'upload', 'verify']);
    const job = spans.get('job')!;
    assert.equal(job.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(job.parentSpanContext?.spanId, 'b7ad6b7169203331');
    assert.equal(spans.get('job.take')!.parentSpanContext?.spanId, 'b7ad6b7169203331');
    assert.deepEqual([job.status.code, job.attributes['error.code'], job.attributes['sri.job.status'], job.attributes['sri.job.attempt']], [2, 'SCRIPT_ERROR', 'failed', 2]);
    assert.deepEqual([spans.get('run')!.status.code, spans.get('run')!.attributes['error.code']], [2, 'SCRIPT_ERROR']);
    for (const ok of ['verify', 'session', 'upload', 'publish']) assert.notEqual(spans.get(ok)!.status.code, 2, `${ok} did not fail`);
    assert.equal(traceparent, `00-0af7651916cd43dd8448eb211c80319c-${spans.get('publish')!.spanContext().spanId}-01`);
  });

  it('starts a trace of its own for a message without a traceparent, and ends UNREPORTED when reporting failed', async () => {
    const memory = new InMemorySpanExporter();
    const tracing = createTracing({ serviceName: 'sri-worker', exporters: [memory] });
    const trace = new JobTrace(tracing.tracer, taken(30_000), { workerId: 'w-1', leaseMs: 30_000 });
    trace.begin({ ...message, traceparent: undefined });
    trace.enter('publish');
    trace.abort(new Error('Connection is closed.'));
    await tracing.forceFlush();
    const job = memory.getFinishedSpans().find((s) => s.name === 'job')!;
    assert.equal(job.parentSpanContext, undefined);
    assert.deepEqual([job.status.code, job.attributes['error.code'], job.attributes['sri.job.status']], [2, 'UNREPORTED', 'unreported']);
  });
});
