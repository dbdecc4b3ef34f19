/**
 * A job's log (GET /api/jobs/{id}/logs): live from its Redis log stream as Server-Sent Events while it runs
 * (src/control-plane/logs/live-log.ts), and its stored execution.log from S3 as text/plain once it has finished.
 * Another organisation's job ids answer 404 like ids that do not exist (the row is read under the caller's RLS).
 *
 * Which one a request gets:
 *   - job not finished, `follow` not false → SSE, whatever the Accept header (the stream may not exist yet: the
 *     response waits for the job's first lines);
 *   - job finished, its stream still in Redis, `Accept: text/event-stream`, `follow` not false → SSE of what the
 *     stream holds, then `end`;
 *   - otherwise → execution.log from S3 (LOG_NOT_READY while the job has none yet, LOG_NOT_FOUND when it never will).
 *
 * Live responses share one blocking Redis reader per API process (logs/shared-log-reader.ts), and each API process
 * serves at most LOGS_MAX_STREAMS_PER_USER of them per user and LOGS_MAX_STREAMS_PER_ORG per organisation at once
 * (429 TOO_MANY_STREAMS, before anything is streamed).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { keys } from '../../../shared/keys.ts';
import { JobStatus } from '../../../shared/schemas.ts';
import { parseS3Uri } from '../../../shared/s3.ts';
import { formatSseComment } from '../../../shared/sse.ts';
import type { ApiContext } from '../../context.ts';
import { findJob, type JobRow } from '../../db/queries/jobs.ts';
import { writeLiveLog } from '../../logs/live-log.ts';
import { SharedLogReader } from '../../logs/shared-log-reader.ts';
import { isFinalStatus, loadJob } from '../../jobs/load.ts';
import { authOf } from '../auth.ts';
import { endpoint, type ContractTypeProvider } from '../openapi.ts';
import { IdParams, LogsHeaders, LogsQuery } from '../schemas.ts';

const acceptsEventStream = (accept: string | undefined) => /\btext\/event-stream\b/i.test(accept ?? '');

/**
 * A text answer, streamed by the handler (the stored log from S3, or the events it writes itself): a string in the
 * document (zod copies `type` from the metadata over the `{}` of a custom schema).
 */
const TextAnswer = (description: string) => z.custom<string | Readable>((v) => typeof v === 'string' || v instanceof Readable).meta({ type: 'string', description });

/** How long closing the API waits for open log streams to finish their last write. */
const CLOSE_STREAMS_TIMEOUT_MS = 2000;

export function jobLogRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const auth = ctx.tokens.hook();
  // One blocking connection for every live response of this process, opened at the first one.
  const reader = new SharedLogReader(ctx.redis, { logger: ctx.logger });
  /** Live responses open now, per user and per organisation (this process only). */
  const streamsOf = { user: new Map<string, number>(), org: new Map<string, number>() };
  const countStream = (map: Map<string, number>, id: string, by: 1 | -1) => {
    const n = (map.get(id) ?? 0) + by;
    if (n > 0) map.set(id, n);
    else map.delete(id);
  };
  /** Throws TOO_MANY_STREAMS when the caller or their organisation has its share of live responses open already. */
  const assertStreamRoom = (orgId: string, userId: string) => {
    const { logsMaxStreamsPerUser: perUser, logsMaxStreamsPerOrg: perOrg } = ctx.config;
    const who = (streamsOf.user.get(userId) ?? 0) >= perUser ? `you have ${perUser} (LOGS_MAX_STREAMS_PER_USER)`
      : (streamsOf.org.get(orgId) ?? 0) >= perOrg ? `your organisation has ${perOrg} (LOGS_MAX_STREAMS_PER_ORG)` : undefined;
    if (who) {
      throw new SriError('TOO_MANY_STREAMS', `Too many live log streams: ${who} open on this API instance. Close one (a browser tab, `
        + 'an sri logs --follow) or wait until a followed job ends, then try again; the stored log (follow=false) is not limited.');
    }
  };
  // Open live responses: closing the API ends them (clients reconnect with Last-Event-ID, to another instance),
  // since the HTTP server cannot close while they are open.
  const open = new Map<AbortController, Promise<void>>();
  app.addHook('preClose', async () => {
    const streams = [...open];
    for (const [c] of streams) c.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(streams.map(([, done]) => done)),
      new Promise<void>((r) => { timer = setTimeout(r, CLOSE_STREAMS_TIMEOUT_MS); }),
    ]);
    clearTimeout(timer);
  });
  app.addHook('onClose', async () => { await reader.close(); });


  /** Final statuses are PostgreSQL's; until then the worker's status key is the fresher source. */
  const statusOf = async (orgId: string, id: string, recorded?: string): Promise<string | undefined> => {
    if (recorded !== undefined && isFinalStatus(recorded)) return recorded;
    const live = JobStatus.safeParse(await ctx.redis.get(keys.jobStatus(id)).catch(() => null));
    if (live.success) return live.data;
    return recorded ?? (await ctx.db.withOrg(orgId, (tx) => findJob(tx, id)))?.status;
  };

  /**
   * Where the job's execution.log is: the URI its result named when that is in the results bucket under this
   * organisation's prefix (result messages come from Redis, where anyone with access can publish), else the
   * layout's own key (ARCHITECTURE.md "S3 layout").
   */
  const logLocation = (j: JobRow): { bucket: string; key: string } => {
    const named = j.files?.log ? parseS3Uri(j.files.log) : undefined;
    if (named && named.bucket === ctx.config.s3ResultsBucket && named.key.startsWith(`results/${j.org_id}/`) && !named.key.includes('..')) return named;
    return { bucket: ctx.config.s3ResultsBucket, key: `results/${j.org_id}/${j.user_id}/${j.id}/execution.log` };
  };

  const streamLive = async (req: FastifyRequest, reply: FastifyReply, job: JobRow, fromId: string, finishedStatus: string | undefined) => {
    const { orgId, userId } = authOf(req);
    assertStreamRoom(orgId, userId);
    const abort = new AbortController();
    let finished!: () => void;
    open.set(abort, new Promise<void>((r) => { finished = r; }));
    reply.hijack();
    const res = reply.raw;
    res.on('error', () => { /* the client went away; 'close' aborts */ });
    res.on('close', () => abort.abort());
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // Reverse proxies (nginx) must pass each event on at once instead of buffering the response.
      'x-accel-buffering': 'no',
    });
    // Sends the headers now, so the client knows the job exists before its first line.
    res.write(formatSseComment(`log of job ${job.id}`));
    const started = Date.now();
    // Counted in the same synchronous run as the check above (no await between), so concurrent requests cannot both
    // take the last place; the finally block gives it back.
    countStream(streamsOf.user, userId, 1);
    countStream(streamsOf.org, orgId, 1);
    try {
      const outcome = await writeLiveLog({
        redis: ctx.redis, reader, jobId: job.id, fromId, finishedStatus,
        jobStatus: () => statusOf(job.org_id, job.id),
        heartbeatIntervalMs: ctx.config.logsHeartbeatIntervalMs, out: res, signal: abort.signal,
      });
      req.log.debug({ jobId: job.id, outcome, ms: Date.now() - started }, 'live log stream closed');
    } catch (err) {
      // Headers are gone: the client sees the stream close and reconnects with its Last-Event-ID.
      req.log.warn({ err, jobId: job.id }, 'live log stream failed');
    } finally {
      if (!res.writableEnded) res.end();
      countStream(streamsOf.user, userId, -1);
      countStream(streamsOf.org, orgId, -1);
      open.delete(abort);
      finished();
    }
  };

  app.withTypeProvider<ContractTypeProvider>().route({
    ...endpoint('GET', '/api/jobs/:id/logs', {
      operationId: 'getJobLog', tag: 'jobs', access: 'user', params: IdParams, querystring: LogsQuery, headers: LogsHeaders,
      summary: 'The job\'s log: live Server-Sent Events while it runs, its stored execution.log once it has finished.',
      description: 'While the job runs: Server-Sent Events (`text/event-stream`) from its live log — `line` events '
        + '(data `{ts, level, stream, message}`; the last line of each batch carries the Redis stream entry id as its event id: send it '
        + 'back as Last-Event-ID to resume), then one `end` event (data `{written, droppedLines, droppedBatches}`, or `{status: "dead"}`), '
        + 'and the stream closes; a `: heartbeat` comment keeps it open. Once it has finished (or with follow=false): its execution.log '
        + 'as `text/plain` — or, while its live log is still in Redis and the client sends `Accept: text/event-stream`, the same events. '
        + 'Errors are JSON (ErrorBody), answered before anything is streamed.',
      responses: {
        200: {
          description: 'The log: events while the job runs (or when asked for with Accept: text/event-stream), else execution.log.',
          content: {
            'text/event-stream': { schema: TextAnswer('Server-Sent Events: `event: line` / `event: end`, `id:` and `data:` (JSON) fields, `: heartbeat` comments.') },
            'text/plain': { schema: TextAnswer('The job\'s execution.log: one line per log entry.') },
          },
        },
      },
      errors: ['NOT_FOUND', 'LOG_NOT_READY', 'LOG_NOT_FOUND', 'TOO_MANY_STREAMS'],
    }),
    preValidation: auth,
    // A HEAD of a live stream would hold the connection open without ever sending a byte.
    exposeHeadRoute: false,
    handler: async (req, reply) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      const { follow } = req.query;
      const headers = req.headers;
      const job = await loadJob(ctx, orgId, id);
      const status = (await statusOf(orgId, id, job.status)) ?? job.status;
      const finished = isFinalStatus(status);

      // Read even when the answer does not depend on it: an unreachable Redis answers 503 now, not a silent stream.
      const liveLog = follow && (await ctx.redis.exists(keys.jobLogs(id))) === 1;
      if (follow && (!finished || (liveLog && acceptsEventStream(headers.accept)))) {
        await streamLive(req, reply, job, headers['last-event-id'] ?? '0', finished ? status : undefined);
        return reply;
      }

      const loc = logLocation(job);
      const log = await ctx.blobStore.open(loc.bucket, loc.key);
      if (!log) {
        if (!finished) {
          throw new SriError('LOG_NOT_READY', `Job ${id} is ${status}; its execution.log is stored when it finishes. `
            + `Follow it live: GET /api/jobs/${id}/logs without follow=false, or sri logs ${id} --follow.`);
        }
        const live = (await ctx.redis.exists(keys.jobLogs(id)).catch(() => 0)) === 1;
        throw new SriError('LOG_NOT_FOUND', live
          ? `Job ${id} (${status}) has no stored execution.log, but its live log is still in Redis: ask with Accept: text/event-stream.`
          : `Job ${id} (${status}) has no execution.log: it never ran, or uploading its evidence failed; GET /api/jobs/${id} shows its error.`);
      }
      reply.type('text/plain; charset=utf-8').header('cache-control', 'private, no-cache');
      if (log.contentLength !== undefined) reply.header('content-length', log.contentLength);
      return reply.send(log.body);
    },
  });
}
