/**
 * A waiting job's live view (docs/dashboard.md "Hand-off", src/shared/handoff.ts): while a job's status is
 * `waiting_for_user`, members of its organisation
 *   - watch its page: GET /api/jobs/{id}/live, Server-Sent Events of the worker's screencast frames;
 *   - drive it: POST /api/jobs/{id}/live/input, one click, text, key press or scroll per request;
 *   - answer it: POST /api/jobs/{id}/handoff {answer: done | giveUp}.
 * Input and answers go on the job's input list (RPUSH), which its worker reads in order; the API never talks to the
 * worker. Another organisation's job answers 404 like a job that does not exist (the row is read under the caller's
 * RLS); a job that is not waiting answers 409 HANDOFF_NOT_WAITING. Live views count against the same per-user and
 * per-organisation caps as live logs (LOGS_MAX_STREAMS_PER_USER, LOGS_MAX_STREAMS_PER_ORG), in a count of their own.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { HandoffAnswer, HandoffInput, HandoffState, INPUT_MAXLEN, LIVE_KEYS_TTL_SECONDS, type InputListEntry } from '../../../shared/handoff.ts';
import { keys } from '../../../shared/keys.ts';
import { JobStatus } from '../../../shared/schemas.ts';
import { formatSseComment } from '../../../shared/sse.ts';
import type { ApiContext } from '../../context.ts';
import { findJob } from '../../db/queries/jobs.ts';
import { isFinalStatus, loadJob } from '../../jobs/load.ts';
import { writeLiveView } from '../../logs/live-view.ts';
import { SharedLogReader } from '../../logs/shared-log-reader.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { IdParams } from '../schemas.ts';

const EventStream = z.custom<Readable>((v) => v instanceof Readable).meta({
  type: 'string', description: 'Server-Sent Events: `event: handoff` (data: the hand-off, as GET /api/jobs/{id}/handoff answers), `event: frame` (data `{data, viewportWidth, viewportHeight, at}`: a JPEG as base64, the page viewport it shows in CSS pixels, epoch ms), then `event: end` (data `{status}`) when the hand-off is over; `: heartbeat` comments.',
});
const HandoffAnswerBody = z.object({ answer: HandoffAnswer.describe('`done`: the script goes on; `giveUp`: the job fails with HANDOFF_ABANDONED.') });
const Accepted = z.object({ jobId: z.string(), accepted: z.literal(true) });
const HandoffView = HandoffState.omit({ orgId: true, workerId: true }).meta({ id: 'Handoff', description: 'A job\'s hand-off to a person while it waits (status waiting_for_user).' });
export const LiveInputBody = HandoffInput.meta({ id: 'LiveInput', description: 'One input event for the waiting job\'s page; x and y in the page\'s CSS pixels (the viewport the hand-off names).' });

const CLOSE_STREAMS_TIMEOUT_MS = 2000;

export function jobLiveRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = ctx.tokens.hook();
  // Its own blocking reader (one per API process), woken by frames as the log reader is by lines.
  const reader = new SharedLogReader(ctx.redis, { logger: ctx.logger });
  const streamsOf = { user: new Map<string, number>(), org: new Map<string, number>() };
  const count = (map: Map<string, number>, id: string, by: 1 | -1) => {
    const n = (map.get(id) ?? 0) + by;
    if (n > 0) map.set(id, n);
    else map.delete(id);
  };
  const open = new Map<AbortController, Promise<void>>();
  app.addHook('preClose', async () => {
    const streams = [...open];
    for (const [c] of streams) c.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(streams.map(([, done]) => done)), new Promise<void>((res) => { timer = setTimeout(res, CLOSE_STREAMS_TIMEOUT_MS); })]);
    clearTimeout(timer);
  });
  app.addHook('onClose', async () => { await reader.close(); });

  const statusOf = async (orgId: string, id: string): Promise<string | undefined> => {
    const live = JobStatus.safeParse(await ctx.redis.get(keys.jobStatus(id)).catch(() => null));
    if (live.success) return live.data;
    return (await ctx.db.withOrg(orgId, (tx) => findJob(tx, id)))?.status;
  };

  /** The job's hand-off (the job is the caller's: loadJob, under RLS), or HANDOFF_NOT_WAITING. */
  const waitingHandoff = async (orgId: string, id: string): Promise<HandoffState> => {
    const job = await loadJob(ctx, orgId, id);
    const raw = isFinalStatus(job.status) ? null : await ctx.redis.get(keys.jobHandoff(id));
    const state = raw === null ? undefined : HandoffState.safeParse(safeJson(raw));
    if (!state?.success || state.data.jobId !== id || state.data.orgId !== orgId) {
      throw new SriError('HANDOFF_NOT_WAITING', `Job ${id} is ${isFinalStatus(job.status) ? job.status : (await statusOf(orgId, id)) ?? job.status}, not waiting for a person; its live view takes no input.`);
    }
    return state.data;
  };

  const push = async (id: string, entry: InputListEntry) => {
    const key = keys.jobLiveInput(id);
    if ((await ctx.redis.llen(key)) >= INPUT_MAXLEN) {
      throw new SriError('RATE_LIMITED', `Job ${id}'s worker has ${INPUT_MAXLEN} input events still to replay; wait a moment, then send more.`);
    }
    await ctx.redis.multi().rpush(key, JSON.stringify(entry)).expire(key, LIVE_KEYS_TTL_SECONDS).exec();
  };

  r.route({
    ...endpoint('GET', '/api/jobs/:id/handoff', {
      operationId: 'getJobHandoff', tag: 'jobs', access: 'user', params: IdParams,
      summary: 'The job\'s hand-off while it waits for a person (status waiting_for_user): why, since and until when, and its page\'s viewport.',
      responses: { 200: json('The hand-off.', z.object({ handoff: HandoffView })) },
      errors: ['NOT_FOUND', 'HANDOFF_NOT_WAITING'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { orgId: _o, workerId: _w, ...view } = await waitingHandoff(orgId, req.params.id);
      return { handoff: view };
    },
  });

  r.route({
    ...endpoint('GET', '/api/jobs/:id/live', {
      operationId: 'getJobLiveView', tag: 'jobs', access: 'user', params: IdParams,
      summary: 'The waiting job\'s page, live: Server-Sent Events of its screencast (a few JPEG frames a second, only when the page changes).',
      description: 'Only while the job waits for a person (status waiting_for_user); otherwise 409 HANDOFF_NOT_WAITING, answered as JSON before anything is streamed. '
        + 'The stream ends with an `end` event once the hand-off is over.',
      responses: { 200: { description: 'The live view.', content: { 'text/event-stream': { schema: EventStream } } } },
      errors: ['NOT_FOUND', 'HANDOFF_NOT_WAITING', 'TOO_MANY_STREAMS'],
    }),
    preValidation,
    exposeHeadRoute: false,
    handler: async (req, reply) => {
      const { orgId, userId } = authOf(req);
      const id = req.params.id;
      await waitingHandoff(orgId, id);
      const { logsMaxStreamsPerUser: perUser, logsMaxStreamsPerOrg: perOrg } = ctx.config;
      if ((streamsOf.user.get(userId) ?? 0) >= perUser || (streamsOf.org.get(orgId) ?? 0) >= perOrg) {
        throw new SriError('TOO_MANY_STREAMS', `Too many live views open for you (${perUser}, LOGS_MAX_STREAMS_PER_USER) or your organisation (${perOrg}, LOGS_MAX_STREAMS_PER_ORG) on this API instance; close one and try again.`);
      }
      count(streamsOf.user, userId, 1);
      count(streamsOf.org, orgId, 1);
      const abort = new AbortController();
      let finished!: () => void;
      open.set(abort, new Promise<void>((res) => { finished = res; }));
      reply.hijack();
      const res = reply.raw;
      res.on('error', () => {});
      res.on('close', () => abort.abort());
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no' });
      res.write(formatSseComment(`live view of job ${id}`));
      try {
        await writeLiveView({
          redis: ctx.redis, reader, jobId: id, jobStatus: () => statusOf(orgId, id),
          heartbeatIntervalMs: ctx.config.logsHeartbeatIntervalMs, out: res, signal: abort.signal,
        });
      } catch (err) {
        req.log.warn({ err, jobId: id }, 'live view stream failed');
      } finally {
        if (!res.writableEnded) res.end();
        count(streamsOf.user, userId, -1);
        count(streamsOf.org, orgId, -1);
        open.delete(abort);
        finished();
      }
      return reply;
    },
  });

  r.route({
    ...endpoint('POST', '/api/jobs/:id/live/input', {
      operationId: 'sendJobLiveInput', tag: 'jobs', access: 'user', params: IdParams, body: LiveInputBody,
      summary: 'One click, text, key press or scroll into the waiting job\'s page; its worker replays them in order, under the job\'s egress policy.',
      responses: { 202: json('Queued for the job\'s worker.', Accepted) },
      errors: ['NOT_FOUND', 'HANDOFF_NOT_WAITING', 'RATE_LIMITED'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId } = authOf(req);
      const id = req.params.id;
      await waitingHandoff(orgId, id);
      await push(id, req.body);
      return reply.status(202).send({ jobId: id, accepted: true as const });
    },
  });

  r.route({
    ...endpoint('POST', '/api/jobs/:id/handoff', {
      operationId: 'answerJobHandoff', tag: 'jobs', access: 'user', params: IdParams, body: HandoffAnswerBody,
      summary: 'Answer the job\'s hand-off: done (the script goes on) or giveUp (the job fails with HANDOFF_ABANDONED).',
      responses: { 202: json('Queued for the job\'s worker, after the input sent before it.', Accepted) },
      errors: ['NOT_FOUND', 'HANDOFF_NOT_WAITING', 'RATE_LIMITED'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId } = authOf(req);
      const id = req.params.id;
      await waitingHandoff(orgId, id);
      await push(id, { type: 'answer', answer: req.body.answer });
      req.log.info({ jobId: id, answer: req.body.answer }, 'hand-off answered');
      return reply.status(202).send({ jobId: id, accepted: true as const });
    },
  });
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
