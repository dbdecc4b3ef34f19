/**
 * Admin endpoints of an organisation: its dead letters and its queue quotas. Everything is scoped to the caller's
 * organisation — an entry of another organisation answers 404 like one that does not exist, and a purge removes
 * only the caller's entries. Only the organisation's admins may call them (FORBIDDEN otherwise).
 */
import type { FastifyInstance } from 'fastify';
import { SriError } from '../../../shared/errors.ts';
import type { DlqEntry } from '../../../shared/queue/job-queue.ts';
import type { ApiContext } from '../../context.ts';
import { markJobRequeued } from '../../db/queries/jobs.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf } from '../auth.ts';
import { doc } from '../openapi.ts';
import { DlqEntryParams, DlqQuery, QuotaBody } from '../schemas.ts';

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

export function dlqEntryJson(e: DlqEntry, withRaw: boolean) {
  return {
    id: e.id, orgId: e.orgId, jobId: e.jobId ?? null, reason: e.reason, at: new Date(e.at).toISOString(),
    truncated: e.truncated, rawBytes: Buffer.byteLength(e.raw),
    ...(withRaw ? { raw: e.raw } : { preview: e.raw.slice(0, PREVIEW_CHARS) }),
  };
}

export function adminRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const preHandler = adminOnly(ctx);

  /** The entry when it belongs to the caller's organisation. */
  const ownEntry = async (orgId: string, entryId: string): Promise<DlqEntry> => {
    const entry = await ctx.queue.dlqGet(entryId);
    if (!entry || entry.orgId !== orgId) throw new SriError('NOT_FOUND', `No dead-letter entry ${entryId} in your organisation.`);
    return entry;
  };

  app.get('/api/admin/dlq', {
    preHandler, schema: doc({ summary: 'The organisation\'s dead letters, newest first, paged (admins only).', tags: ['admin'], query: DlqQuery }),
  }, async (req) => {
    const { orgId } = authOf(req);
    const { offset, limit } = DlqQuery.parse(req.query);
    // One more than asked tells whether another page exists without counting the whole list.
    const found = await ctx.queue.dlqList(orgId, offset, limit + 1);
    return { entries: found.slice(0, limit).map((e) => dlqEntryJson(e, false)), offset, limit, hasMore: found.length > limit };
  });

  app.get('/api/admin/dlq/:entryId', {
    preHandler, schema: doc({ summary: 'One dead letter with its raw payload (truncated when huge) (admins only).', tags: ['admin'], params: DlqEntryParams }),
  }, async (req) => {
    const { orgId } = authOf(req);
    const { entryId } = DlqEntryParams.parse(req.params);
    return { entry: dlqEntryJson(await ownEntry(orgId, entryId), true) };
  });

  app.post('/api/admin/dlq/:entryId/requeue', {
    preHandler,
    schema: doc({ summary: 'Push a dead letter back to its organisation\'s queue and remove it from the list (admins only).', tags: ['admin'], params: DlqEntryParams }),
  }, async (req, reply) => {
    const { orgId } = authOf(req);
    const { entryId } = DlqEntryParams.parse(req.params);
    const entry = await ownEntry(orgId, entryId);
    if (entry.truncated) throw new SriError('DLQ_ENTRY_TRUNCATED', `Dead-letter entry ${entryId} holds only the start of its message (it was too large); it cannot be requeued.`);
    if (!(await ctx.queue.dlqRequeue(entryId))) throw new SriError('NOT_FOUND', `Dead-letter entry ${entryId} is gone (requeued or purged meanwhile).`);
    // The job runs again, so its record leaves `dead` (a final status a result would never overwrite), at the
    // attempt its message carries: the queue numbers the next run from there.
    const job = entry.jobId ? await ctx.db.withOrg(orgId, (tx) => markJobRequeued(tx, entry.jobId!, attemptOf(entry.raw))) : false;
    req.log.info({ entryId, orgId, jobId: entry.jobId }, 'dead letter requeued');
    return reply.status(202).send({ id: entryId, jobId: entry.jobId ?? null, requeued: true, jobRecordRequeued: job });
  });

  app.delete('/api/admin/dlq', {
    preHandler, schema: doc({ summary: 'Delete every dead letter of the organisation (admins only).', tags: ['admin'] }),
  }, async (req) => {
    const { orgId } = authOf(req);
    const purged = await ctx.queue.dlqPurge(orgId);
    req.log.info({ orgId, purged }, 'dead letters purged');
    return { purged };
  });

  app.get('/api/admin/quota', {
    preHandler, schema: doc({ summary: 'The organisation\'s queue quotas; null = no limit (admins only).', tags: ['admin'] }),
  }, async (req) => {
    const { orgId } = authOf(req);
    return { orgId, ...(await ctx.queue.getQuota(orgId)) };
  });

  app.put('/api/admin/quota', {
    preHandler,
    schema: doc({
      summary: 'Set the organisation\'s quotas: maxConcurrent (jobs running at once), perMinute (jobs started per minute); '
        + 'a number sets it, null removes it, an absent field stays. Workers pick it up without restart (admins only).',
      tags: ['admin'], body: QuotaBody,
    }),
  }, async (req) => {
    const { orgId } = authOf(req);
    const body = QuotaBody.parse(req.body ?? {});
    await ctx.queue.setQuota(orgId, body);
    req.log.info({ orgId, quota: body }, 'quota set');
    return { orgId, ...(await ctx.queue.getQuota(orgId)) };
  });
}
