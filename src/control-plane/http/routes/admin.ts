/**
 * Admin endpoints of an organisation: its dead letters and its queue quotas. Everything is scoped to the caller's
 * organisation — an entry of another organisation answers 404 like one that does not exist, and a purge removes
 * only the caller's entries. Only the organisation's admins may call them (FORBIDDEN otherwise).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import type { DlqEntry } from '../../../shared/queue/job-queue.ts';
import type { ApiContext } from '../../context.ts';
import { markJobRequeued } from '../../db/queries/jobs.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { DeadLetter, DeadLetterSummary, DlqEntryParams, DlqQuery, Quota, QuotaBody } from '../schemas.ts';

/** Characters of the raw payload shown per entry in the list (the whole, possibly truncated, payload is in GET one). */
const PREVIEW_CHARS = 200;

/** The attempt a dead-lettered message carries (1 when it says none or is not a job). */
function attemptOf(raw: string): number {
  try {
    const a = (JSON.parse(raw) as { attempt?: unknown }).attempt;
    return typeof a === 'number' && Number.isInteger(a) && a >= 1 ? a : 1;
  } catch {
    return 1;
  }
}

const dlqFields = (e: DlqEntry) => ({
  id: e.id, orgId: e.orgId, jobId: e.jobId ?? null, reason: e.reason, at: new Date(e.at).toISOString(),
  truncated: e.truncated, rawBytes: Buffer.byteLength(e.raw),
});
/** A dead letter in the list: the start of its payload. */
export const dlqSummaryJson = (e: DlqEntry): z.infer<typeof DeadLetterSummary> => ({ ...dlqFields(e), preview: e.raw.slice(0, PREVIEW_CHARS) });
/** One dead letter: its payload (truncated when it was huge). */
export const dlqEntryJson = (e: DlqEntry): z.infer<typeof DeadLetter> => ({ ...dlqFields(e), raw: e.raw });

export function adminRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = adminOnly(ctx);

  /** The entry when it belongs to the caller's organisation. */
  const ownEntry = async (orgId: string, entryId: string): Promise<DlqEntry> => {
    const entry = await ctx.queue.dlqGet(entryId);
    if (!entry || entry.orgId !== orgId) throw new SriError('NOT_FOUND', `No dead-letter entry ${entryId} in your organisation.`);
    return entry;
  };

  r.route({
    ...endpoint('GET', '/api/admin/dlq', {
      operationId: 'listDeadLetters', tag: 'admin', access: 'admin', querystring: DlqQuery,
      summary: 'The organisation\'s dead letters, newest first, paged (admins only).',
      responses: {
        200: json('One page of dead letters.', z.object({
          entries: z.array(DeadLetterSummary), offset: z.number().int(), limit: z.number().int(), hasMore: z.boolean(),
        })),
      },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { offset, limit } = req.query;
      // One more than asked tells whether another page exists without counting the whole list.
      const found = await ctx.queue.dlqList(orgId, offset, limit + 1);
      return { entries: found.slice(0, limit).map(dlqSummaryJson), offset, limit, hasMore: found.length > limit };
    },
  });

  r.route({
    ...endpoint('GET', '/api/admin/dlq/:entryId', {
      operationId: 'getDeadLetter', tag: 'admin', access: 'admin', params: DlqEntryParams,
      summary: 'One dead letter with its raw payload (truncated when huge) (admins only).',
      responses: { 200: json('The dead letter.', z.object({ entry: DeadLetter })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { entry: dlqEntryJson(await ownEntry(orgId, req.params.entryId)) };
    },
  });

  r.route({
    ...endpoint('POST', '/api/admin/dlq/:entryId/requeue', {
      operationId: 'requeueDeadLetter', tag: 'admin', access: 'admin', params: DlqEntryParams,
      summary: 'Push a dead letter back to its organisation\'s queue and remove it from the list (admins only).',
      responses: {
        202: json('Requeued; the job record (when it names one) leaves `dead`.', z.object({
          id: z.string(), jobId: z.string().nullable(), requeued: z.literal(true),
          jobRecordRequeued: z.boolean().describe('Whether a job record of your organisation was put back to queued.'),
        })),
      },
      errors: ['NOT_FOUND', 'DLQ_ENTRY_TRUNCATED'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId } = authOf(req);
      const { entryId } = req.params;
      const entry = await ownEntry(orgId, entryId);
      if (entry.truncated) throw new SriError('DLQ_ENTRY_TRUNCATED', `Dead-letter entry ${entryId} holds only the start of its message (it was too large); it cannot be requeued.`);
      if (!(await ctx.queue.dlqRequeue(entryId))) throw new SriError('NOT_FOUND', `Dead-letter entry ${entryId} is gone (requeued or purged meanwhile).`);
      // The job runs again, so its record leaves `dead` (a final status a result would never overwrite), at the
      // attempt its message carries: the queue numbers the next run from there.
      const job = entry.jobId ? await ctx.db.withOrg(orgId, (tx) => markJobRequeued(tx, entry.jobId!, attemptOf(entry.raw))) : false;
      req.log.info({ entryId, orgId, jobId: entry.jobId }, 'dead letter requeued');
      return reply.status(202).send({ id: entryId, jobId: entry.jobId ?? null, requeued: true, jobRecordRequeued: job });
    },
  });

  r.route({
    ...endpoint('DELETE', '/api/admin/dlq', {
      operationId: 'purgeDeadLetters', tag: 'admin', access: 'admin', summary: 'Delete every dead letter of the organisation (admins only).',
      responses: { 200: json('How many were deleted.', z.object({ purged: z.number().int() })) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const purged = await ctx.queue.dlqPurge(orgId);
      req.log.info({ orgId, purged }, 'dead letters purged');
      return { purged };
    },
  });

  r.route({
    ...endpoint('GET', '/api/admin/quota', {
      operationId: 'getQuota', tag: 'admin', access: 'admin', summary: 'The organisation\'s queue quotas; null = no limit (admins only).',
      responses: { 200: json('The quotas.', Quota) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { orgId, ...(await ctx.queue.getQuota(orgId)) };
    },
  });

  r.route({
    ...endpoint('PUT', '/api/admin/quota', {
      operationId: 'setQuota', tag: 'admin', access: 'admin', body: QuotaBody,
      summary: 'Set the organisation\'s quotas: maxConcurrent (jobs running at once), perMinute (jobs started per minute); '
        + 'a number sets it, null removes it, an absent field stays. Workers pick it up without restart (admins only).',
      responses: { 200: json('The quotas now.', Quota) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const body = req.body;
      await ctx.queue.setQuota(orgId, body);
      req.log.info({ orgId, quota: body }, 'quota set');
      return { orgId, ...(await ctx.queue.getQuota(orgId)) };
    },
  });
}
