/**
 * Schedules of the caller's organisation (docs/schedules.md): create, list, read (with the next five run times in
 * the schedule's time zone), update, delete, pause and resume, and the jobs a schedule made. Another organisation's
 * schedule ids answer 404 like ids that do not exist (row-level security scopes every query).
 *
 * Every member reads the organisation's schedules. A schedule runs with its creator's provider session, so only its
 * creator or an admin may change, pause, resume or delete it (FORBIDDEN otherwise). Pausing is POST …/pause or
 * PATCH { enabled: false } — the same change; resuming counts due times from the moment of resuming (a paused
 * schedule misses nothing).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { JobStatus } from '../../../shared/schemas.ts';
import type { ApiContext } from '../../context.ts';
import type { Tx } from '../../db/index.ts';
import { findFlow } from '../../db/queries/flows.ts';
import { findProvider } from '../../db/queries/providers.ts';
import {
  countSchedules, deleteSchedule, findSchedule, insertSchedule, listScheduleRuns, listSchedules, updateSchedule, type ScheduleRow,
} from '../../db/queries/schedules.ts';
import { RunAdmission } from '../../jobs/admission.ts';
import { recordedStatus } from '../../jobs/dispatch.ts';
import { assertTiming, CronTiming, inZone, MISSED_RUN_POLICIES } from '../../schedules/cron.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, noContent, type ContractTypeProvider } from '../openapi.ts';
import { IdParams } from '../schemas.ts';

/** Schedules one organisation may have. */
export const MAX_SCHEDULES_PER_ORG = 100;
/** Next run times shown with a schedule. */
export const NEXT_RUNS_SHOWN = 5;

const Timestamp = z.iso.datetime();
const Cron = z.string().trim().min(1).max(200)
  .describe('Five fields (minute hour day-of-month month day-of-week, e.g. `0 8 * * 1-5`) or six with seconds first (`*/30 * * * * *`).');
const TimeZone = z.string().min(1).max(64).describe('An IANA time zone the pattern is read in, e.g. `America/Guayaquil`.');
const Metadata = z.record(z.string(), z.unknown()).describe('The runs\' metadata (the script\'s `payload`), as in POST /api/run.');
const Policy = z.enum(MISSED_RUN_POLICIES)
  .describe('Due times that passed while no scheduler ran (later than SCHEDULER_MISFIRE_GRACE_MS): `skip` runs none of them, `runOnce` runs once for all of them.');

export const CreateScheduleBody = z.object({
  flowId: z.string().min(1).max(128).optional().describe('Run this flow (pinned, whether active or not). Give flowId or providerId.'),
  providerId: z.string().min(1).max(128).optional().describe('Run the provider\'s active flow at each due time. Give flowId or providerId.'),
  cron: Cron,
  timezone: TimeZone,
  metadata: Metadata.optional(),
  enabled: z.boolean().default(true),
  missedRunPolicy: Policy.default('skip'),
}).strict().refine((b) => (b.flowId === undefined) !== (b.providerId === undefined), {
  message: 'give exactly one of flowId (a pinned flow) and providerId (the provider\'s active flow)', path: ['flowId'],
});

export const UpdateScheduleBody = z.object({
  cron: Cron.optional(),
  timezone: TimeZone.optional(),
  metadata: Metadata.nullable().optional().describe('New metadata; null removes it.'),
  enabled: z.boolean().optional().describe('false pauses the schedule, true resumes it (as POST …/pause and …/resume).'),
  missedRunPolicy: Policy.optional(),
}).strict();

export const RunsQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }).strict();

export const Schedule = z.object({
  id: z.string(),
  flowId: z.string().nullable().describe('The pinned flow; null: the provider\'s active flow at each due time.'),
  providerId: z.string(),
  userId: z.string().describe('The creator, whose provider session the runs use.'),
  cron: z.string(), timezone: z.string(),
  metadata: z.record(z.string(), z.unknown()).nullable(),
  enabled: z.boolean(),
  missedRunPolicy: z.enum(MISSED_RUN_POLICIES),
  nextRuns: z.array(z.string()).describe('The next due times (up to five) as ISO 8601 with the offset of the schedule\'s time zone; empty while paused.'),
  lastRun: z.object({ dueAt: Timestamp, jobId: z.string().nullable() }).nullable().describe('The last due time the scheduler handled, and its job (null when it was refused).'),
  lastError: z.object({ code: z.string(), message: z.string(), at: Timestamp }).nullable().describe('Why the last run was refused (e.g. PROVIDER_NOT_CONNECTED); null after a run that was made.'),
  createdAt: Timestamp, updatedAt: Timestamp,
}).meta({ id: 'Schedule' });

export const ScheduleRun = z.object({
  jobId: z.string(), dueAt: Timestamp, status: JobStatus, createdAt: Timestamp, finishedAt: Timestamp.nullable(),
  errorCode: z.string().nullable(),
}).meta({ id: 'ScheduleRun' });

const iso = (d: Date | string) => new Date(d).toISOString();

export function scheduleJson(s: ScheduleRow, now = new Date()): z.infer<typeof Schedule> {
  let nextRuns: string[] = [];
  if (s.enabled) {
    try {
      nextRuns = new CronTiming(s.cron, s.timezone).next(NEXT_RUNS_SHOWN, now).map((d) => inZone(d, s.timezone));
    } catch {
      // A pattern that no longer compiles shows no run times; the scheduler parks it with lastError.
    }
  }
  return {
    id: s.id, flowId: s.flow_id, providerId: s.provider_id, userId: s.user_id, cron: s.cron, timezone: s.timezone, metadata: s.metadata,
    enabled: s.enabled, missedRunPolicy: s.missed_run_policy, nextRuns,
    lastRun: s.last_due_at === null ? null : { dueAt: iso(s.last_due_at), jobId: s.last_error_code === null ? s.last_job_id : null },
    lastError: s.last_error_code === null ? null : { code: s.last_error_code, message: s.last_error_message ?? '', at: iso(s.last_error_at ?? s.updated_at) },
    createdAt: iso(s.created_at), updatedAt: iso(s.updated_at),
  };
}

const notFound = (id: string) => new SriError('NOT_FOUND', `No schedule ${id} in your organisation.`);

async function found(tx: Tx, id: string): Promise<ScheduleRow> {
  const s = await findSchedule(tx, id);
  if (!s) throw notFound(id);
  return s;
}

/** Runs use the creator's session: only the creator or an admin changes what they run and when. */
function assertMayChange(req: FastifyRequest, s: ScheduleRow): void {
  const { userId, role } = authOf(req);
  if (s.user_id !== userId && role !== 'admin') {
    throw new SriError('FORBIDDEN', 'This schedule runs with its creator\'s provider session: only its creator or an admin of your organisation may change, pause, resume or delete it.');
  }
}

export function scheduleRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = ctx.tokens.hook();
  const admission = new RunAdmission(ctx.redis, ctx.config);
  const One = z.object({ schedule: Schedule });

  /** Writes `changes` over `s`: the timing checked when it changed, the cursor moved when the timing changed or the schedule resumed. */
  async function change(tx: Tx, s: ScheduleRow, changes: z.infer<typeof UpdateScheduleBody>): Promise<ScheduleRow> {
    const cron = changes.cron ?? s.cron;
    const timezone = changes.timezone ?? s.timezone;
    const enabled = changes.enabled ?? s.enabled;
    const retimed = cron !== s.cron || timezone !== s.timezone;
    if (retimed) assertTiming({ cron, timezone });
    if (changes.metadata) admission.checkMetadata(changes.metadata);
    const nextDueAt = retimed || (enabled && !s.enabled) ? new CronTiming(cron, timezone).after(new Date()) : undefined;
    const updated = await updateSchedule(tx, s.id, {
      cron, timezone, enabled, missedRunPolicy: changes.missedRunPolicy ?? s.missed_run_policy,
      metadata: changes.metadata === undefined ? s.metadata : changes.metadata, nextDueAt,
    });
    if (!updated) throw notFound(s.id);
    return updated;
  }

  r.route({
    ...endpoint('POST', '/api/schedules', {
      operationId: 'createSchedule', tag: 'schedules', access: 'user', body: CreateScheduleBody,
      summary: 'Create a schedule: the flow (flowId) or the provider\'s active flow (providerId) runs at every due time of cron in timezone, '
        + 'with the caller\'s provider session, through the same admission as POST /api/run.',
      responses: { 201: json('The schedule, with its next run times.', One) },
      errors: ['SCHEDULE_CRON_INVALID', 'SCHEDULE_TIMEZONE_INVALID', 'METADATA_TOO_LARGE', 'NOT_FOUND', 'PROVIDER_NOT_FOUND'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId, userId } = authOf(req);
      const body = req.body;
      assertTiming(body);
      admission.checkMetadata(body.metadata);
      const row = await ctx.db.withOrg(orgId, async (tx) => {
        if ((await countSchedules(tx)) >= MAX_SCHEDULES_PER_ORG) {
          throw new SriError('VALIDATION_FAILED', `An organisation may have at most ${MAX_SCHEDULES_PER_ORG} schedules; delete one first.`);
        }
        let providerId = body.providerId;
        if (body.flowId !== undefined) {
          const flow = await findFlow(tx, body.flowId);
          if (!flow) throw new SriError('NOT_FOUND', `No flow ${body.flowId} in your organisation.`);
          providerId = flow.provider_id;
        } else if (!(await findProvider(tx, providerId!))) {
          throw new SriError('PROVIDER_NOT_FOUND');
        }
        return insertSchedule(tx, {
          id: randomUUID(), orgId, userId, providerId: providerId!, flowId: body.flowId ?? null, cron: body.cron, timezone: body.timezone,
          metadata: body.metadata ?? null, enabled: body.enabled, missedRunPolicy: body.missedRunPolicy,
          nextDueAt: new CronTiming(body.cron, body.timezone).after(new Date()),
        });
      });
      req.log.info({ orgId, scheduleId: row.id, cron: row.cron, timezone: row.timezone }, 'schedule created');
      return reply.status(201).send({ schedule: scheduleJson(row) });
    },
  });

  r.route({
    ...endpoint('GET', '/api/schedules', {
      operationId: 'listSchedules', tag: 'schedules', access: 'user', summary: 'The organisation\'s schedules, oldest first.',
      responses: { 200: json('The schedules.', z.object({ schedules: z.array(Schedule) })) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const now = new Date();
      return { schedules: (await ctx.db.withOrg(orgId, (tx) => listSchedules(tx))).map((s) => scheduleJson(s, now)) };
    },
  });

  r.route({
    ...endpoint('GET', '/api/schedules/:id', {
      operationId: 'getSchedule', tag: 'schedules', access: 'user', params: IdParams,
      summary: 'One schedule, with its next five run times in its time zone.',
      responses: { 200: json('The schedule.', One) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { schedule: scheduleJson(await ctx.db.withOrg(orgId, (tx) => found(tx, req.params.id))) };
    },
  });

  r.route({
    ...endpoint('PATCH', '/api/schedules/:id', {
      operationId: 'updateSchedule', tag: 'schedules', access: 'user', params: IdParams, body: UpdateScheduleBody,
      summary: 'Change a schedule (its creator or an admin): cron, timezone, metadata, enabled (pause/resume), missedRunPolicy. '
        + 'A new cron or timezone counts due times from now.',
      responses: { 200: json('The schedule as it is now.', One) },
      errors: ['NOT_FOUND', 'FORBIDDEN', 'SCHEDULE_CRON_INVALID', 'SCHEDULE_TIMEZONE_INVALID', 'METADATA_TOO_LARGE'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const row = await ctx.db.withOrg(orgId, async (tx) => {
        const s = await found(tx, req.params.id);
        assertMayChange(req, s);
        return change(tx, s, req.body);
      });
      req.log.info({ orgId, scheduleId: row.id, fields: Object.keys(req.body) }, 'schedule updated');
      return { schedule: scheduleJson(row) };
    },
  });

  for (const [action, enabled] of [['pause', false], ['resume', true]] as const) {
    r.route({
      ...endpoint('POST', `/api/schedules/:id/${action}`, {
        operationId: `${action}Schedule`, tag: 'schedules', access: 'user', params: IdParams,
        summary: enabled
          ? 'Resume a paused schedule (its creator or an admin): due times count from now; what passed while paused is not run.'
          : 'Pause a schedule (its creator or an admin): no run starts until it is resumed. The same as PATCH { enabled: false }.',
        responses: { 200: json('The schedule as it is now.', One) },
        errors: ['NOT_FOUND', 'FORBIDDEN'],
      }),
      preValidation,
      handler: async (req) => {
        const { orgId } = authOf(req);
        const row = await ctx.db.withOrg(orgId, async (tx) => {
          const s = await found(tx, req.params.id);
          assertMayChange(req, s);
          return s.enabled === enabled ? s : change(tx, s, { enabled });
        });
        req.log.info({ orgId, scheduleId: row.id }, `schedule ${action}d`);
        return { schedule: scheduleJson(row) };
      },
    });
  }

  r.route({
    ...endpoint('DELETE', '/api/schedules/:id', {
      operationId: 'deleteSchedule', tag: 'schedules', access: 'user', params: IdParams,
      summary: 'Delete a schedule (its creator or an admin). The jobs it made stay, with its id.',
      responses: { 204: noContent('Deleted.') },
      errors: ['NOT_FOUND', 'FORBIDDEN'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      await ctx.db.withOrg(orgId, async (tx) => {
        assertMayChange(req, await found(tx, id));
        if (!(await deleteSchedule(tx, id))) throw notFound(id);
      });
      req.log.info({ orgId, scheduleId: id }, 'schedule deleted');
      return reply.status(204).send();
    },
  });

  r.route({
    ...endpoint('GET', '/api/schedules/:id/runs', {
      operationId: 'listScheduleRuns', tag: 'schedules', access: 'user', params: IdParams, querystring: RunsQuery,
      summary: 'The jobs a schedule made, latest due time first: one per due time (follow each with GET /api/jobs/{id}).',
      responses: { 200: json('The runs.', z.object({ runs: z.array(ScheduleRun) })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const rows = await ctx.db.withOrg(orgId, async (tx) => {
        await found(tx, req.params.id);
        return listScheduleRuns(tx, req.params.id, req.query.limit);
      });
      return {
        runs: rows.map((j) => ({
          jobId: j.id, dueAt: iso(j.due_at), status: recordedStatus(j.status), createdAt: iso(j.created_at),
          finishedAt: j.finished_at === null ? null : iso(j.finished_at), errorCode: j.error_code,
        })),
      };
    },
  });
}
