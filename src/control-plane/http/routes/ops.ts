/**
 * The platform operator's system endpoints (OPERATOR_TOKEN or the operator's dashboard session, ../operator-guard.ts; docs/operations.md): start a
 * system update or check, list the audit of ops tasks, read one, follow its live log over SSE. The API holds no
 * container engine socket and runs no shell command: it enqueues on `sri:ops:jobs` (src/shared/ops/queue.ts) and
 * records what the ops worker reports (../../ops/recorder.ts).
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { keys } from '../../../shared/keys.ts';
import { OpsQueue } from '../../../shared/ops/queue.ts';
import {
  isFinalOpsStatus, OpsError, OpsOutcomeDetails, OpsStatus, OpsStepRecord, OpsTaskKind, RequestedBy, SystemUpdateParams,
  type OpsTaskMessage,
} from '../../../shared/ops/schemas.ts';
import { formatSseComment } from '../../../shared/sse.ts';
import type { ApiContext } from '../../context.ts';
import { deleteOpsTask, findOpsTask, insertOpsTask, listOpsTasks, type OpsTaskRow } from '../../db/queries/ops-tasks.ts';
import { writeLiveLog } from '../../logs/live-log.ts';
import { SharedLogReader } from '../../logs/shared-log-reader.ts';
import { OpsRecorder } from '../../ops/recorder.ts';
import { operatorOf, operatorOnly } from '../operator-guard.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { LogsHeaders } from '../schemas.ts';

export const OpsTask = z.object({
  id: z.uuid(),
  kind: OpsTaskKind,
  params: z.record(z.string(), z.unknown()),
  status: OpsStatus,
  requestedBy: RequestedBy,
  requestedAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  workerId: z.string().nullable(),
  steps: z.array(OpsStepRecord),
  details: OpsOutcomeDetails.nullable(),
  error: OpsError.nullable(),
}).meta({ id: 'OpsTask', description: 'One ops task and its audit: who asked, when, every step (what ran, exit code, duration, output tail), the outcome.' });

const TaskIdParams = z.object({ id: z.uuid() });
const TasksQuery = z.object({ limit: z.coerce.number().int().min(1).max(200).default(50) });
const TextAnswer = (description: string) => z.custom<string | Readable>((v) => typeof v === 'string' || v instanceof Readable).meta({ type: 'string', description });

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

/** Who asked: the operator as the guard identified them (the same identity by bearer token or dashboard session). */
function requestedBy(req: FastifyRequest): z.infer<typeof RequestedBy> {
  const ua = req.headers['user-agent'];
  return {
    identity: operatorOf(req).identity,
    address: req.ip,
    ...(ua ? { userAgent: ua.slice(0, 300) } : {}),
  };
}

export function opsRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = operatorOnly(ctx);
  const queue = OpsQueue.connect(ctx.redis);
  const recorder = new OpsRecorder(ctx.db, ctx.redis, queue, ctx.logger);
  const reader = new SharedLogReader(ctx.redis, { logger: ctx.logger });
  // Not awaited: the API serves while Redis is away; the subscription comes when Redis does.
  app.addHook('onReady', async () => { recorder.start().catch((err: unknown) => ctx.logger.warn({ err }, 'ops results subscription failed')); });
  const open = new Set<AbortController>();
  app.addHook('preClose', async () => { for (const c of open) c.abort(); });
  app.addHook('onClose', async () => { await recorder.close(); await reader.close(); });

  /** Drains waiting results first (a read is never staler than Redis); a Redis hiccup leaves the rows as they are. */
  const fresh = async () => { await recorder.drain().catch((err: unknown) => ctx.logger.warn({ err }, 'recording ops results failed')); };

  const view = async (row: OpsTaskRow): Promise<z.infer<typeof OpsTask>> => {
    let status = row.status;
    if (!isFinalOpsStatus(status)) {
      const live = await queue.status(row.id).catch(() => undefined);
      // The ops worker sets a final status a moment before its result is recorded here (sri:ops:results, drained by
      // the recorder): a final status is reported only with its recorded outcome; until then the task is running.
      if (live) status = isFinalOpsStatus(live) ? 'running' : live;
    }
    return {
      id: row.id, kind: row.kind, params: row.params, status, requestedBy: row.requested_by, requestedAt: iso(row.requested_at)!,
      startedAt: iso(row.started_at), finishedAt: iso(row.finished_at), workerId: row.worker_id, steps: row.steps ?? [],
      details: row.details ?? null, error: row.error ?? null,
    };
  };

  const enqueue = async (req: FastifyRequest, kind: OpsTaskMessage['kind'], params: OpsTaskMessage['params']) => {
    const task = { taskId: randomUUID(), kind, params, requestedBy: requestedBy(req), requestedAt: new Date().toISOString() } as OpsTaskMessage;
    await ctx.db.asSystem((tx) => insertOpsTask(tx, { id: task.taskId, kind, params, requestedBy: task.requestedBy, requestedAt: task.requestedAt }));
    try {
      await queue.enqueue(task);
    } catch (e) {
      await ctx.db.asSystem((tx) => deleteOpsTask(tx, task.taskId)).catch(() => undefined);
      throw e;
    }
    req.log.info({ taskId: task.taskId, kind, requestedBy: task.requestedBy.identity }, 'ops task enqueued');
    return view((await ctx.db.asSystem((tx) => findOpsTask(tx, task.taskId)))!);
  };

  r.route({
    ...endpoint('POST', '/api/operator/system/update', {
      operationId: 'startSystemUpdate', tag: 'operator', access: 'operator', body: SystemUpdateParams,
      summary: 'Start a system update (pull, up, health, migrations, rollback on failure) on the ops worker (operator only).',
      description: 'Enqueued on sri:ops:jobs; the ops worker runs it. One update at a time: refused with OPS_BUSY while one is queued or running (its rollback included). Follow it with GET /api/operator/system/tasks/{id}/logs.',
      responses: { 202: json('The task, queued.', z.object({ task: OpsTask })) },
      errors: ['OPS_BUSY'],
    }),
    preValidation,
    handler: async (req, reply) => reply.status(202).send({ task: await enqueue(req, 'system.update', req.body) }),
  });

  r.route({
    ...endpoint('POST', '/api/operator/system/check', {
      operationId: 'startSystemCheck', tag: 'operator', access: 'operator',
      summary: 'Ask the ops worker which version runs and which newer one the registry offers; changes nothing (operator only).',
      responses: { 202: json('The task, queued.', z.object({ task: OpsTask })) },
    }),
    preValidation,
    handler: async (req, reply) => reply.status(202).send({ task: await enqueue(req, 'system.check', {}) }),
  });

  r.route({
    ...endpoint('GET', '/api/operator/system/tasks', {
      operationId: 'listSystemTasks', tag: 'operator', access: 'operator', querystring: TasksQuery,
      summary: 'The audit of the ops tasks, newest first (operator only).',
      responses: { 200: json('The tasks.', z.object({ tasks: z.array(OpsTask) })) },
    }),
    preValidation,
    handler: async (req) => {
      await fresh();
      const rows = await ctx.db.asSystem((tx) => listOpsTasks(tx, req.query.limit));
      return { tasks: await Promise.all(rows.map(view)) };
    },
  });

  const loadTask = async (id: string) => {
    await fresh();
    const row = await ctx.db.asSystem((tx) => findOpsTask(tx, id));
    if (!row) throw new SriError('OPS_TASK_NOT_FOUND');
    return view(row);
  };

  r.route({
    ...endpoint('GET', '/api/operator/system/tasks/:id', {
      operationId: 'getSystemTask', tag: 'operator', access: 'operator', params: TaskIdParams,
      summary: 'One ops task with its audit: steps, exit codes, durations, outcome (operator only).',
      responses: { 200: json('The task.', z.object({ task: OpsTask })) },
      errors: ['OPS_TASK_NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => ({ task: await loadTask(req.params.id) }),
  });

  r.route({
    ...endpoint('GET', '/api/operator/system/tasks/:id/logs', {
      operationId: 'getSystemTaskLog', tag: 'operator', access: 'operator', params: TaskIdParams, headers: LogsHeaders,
      summary: 'The ops task\'s live log as Server-Sent Events, like a job\'s (operator only).',
      description: '`line` events (data `{ts, level, stream, message}`, secrets redacted by the ops worker; the last line of each batch carries the '
        + 'stream entry id: send it back as Last-Event-ID to resume), then one `end` event, and the stream closes; `: heartbeat` comments keep it open. '
        + 'A finished task\'s log is answered the same way while Redis keeps it (7 days).',
      responses: {
        200: { description: 'The events.', content: { 'text/event-stream': { schema: TextAnswer('Server-Sent Events: `event: line` / `event: end`.') } } },
      },
      errors: ['OPS_TASK_NOT_FOUND'],
    }),
    preValidation,
    exposeHeadRoute: false,
    handler: async (req, reply) => {
      const task = await loadTask(req.params.id);
      const abort = new AbortController();
      open.add(abort);
      reply.hijack();
      const res = reply.raw;
      res.on('error', () => { /* the client went away; 'close' aborts */ });
      res.on('close', () => abort.abort());
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' });
      res.write(formatSseComment(`log of ops task ${task.id}`));
      try {
        await writeLiveLog({
          redis: ctx.redis, reader, jobId: task.id, streamKey: keys.opsTaskLogs(task.id), fromId: req.headers['last-event-id'] ?? '0',
          finishedStatus: isFinalOpsStatus(task.status) ? task.status : undefined, isFinal: isFinalOpsStatus,
          jobStatus: async () => (await loadTask(task.id)).status,
          heartbeatIntervalMs: ctx.config.logsHeartbeatIntervalMs, out: res, signal: abort.signal,
        });
      } catch (err) {
        req.log.warn({ err, taskId: task.id }, 'ops live log stream failed');
      } finally {
        if (!res.writableEnded) res.end();
        open.delete(abort);
      }
      return reply;
    },
  });
}
