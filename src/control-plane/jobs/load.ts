/** Reading one job for the API: the row as recorded, brought up to date from Redis when a result is waiting. */
import { SriError } from '../../shared/errors.ts';
import { TERMINAL_STATUSES } from '../../shared/schemas.ts';
import type { ApiContext } from '../context.ts';
import { findJob, type JobRow } from '../db/queries/jobs.ts';
import { syncJobFromRedis } from '../results/listener.ts';

export const isFinalStatus = (status: string): boolean => (TERMINAL_STATUSES as readonly string[]).includes(status);

/**
 * The job as recorded (NOT_FOUND outside the caller's organisation: RLS). When it is not final yet but a worker
 * already left its result in Redis (the listener has not caught up, or missed the message), that result is
 * recorded first.
 */
export async function loadJob(ctx: ApiContext, orgId: string, id: string): Promise<JobRow> {
  let job = await ctx.db.withOrg(orgId, (tx) => findJob(tx, id));
  if (!job) throw new SriError('NOT_FOUND', `No job ${id} in your organisation.`);
  if (!isFinalStatus(job.status)) {
    const deps = {
      db: ctx.db, blobStore: ctx.blobStore, resultsBucket: ctx.config.s3ResultsBucket, logger: ctx.logger, tracer: ctx.tracer,
      ...(ctx.onJobFinal ? { onJobFinal: ctx.onJobFinal } : {}),
    };
    const synced = await syncJobFromRedis(deps, ctx.redis, orgId, id).catch(() => 'no-result' as const);
    if (synced === 'recorded') job = (await ctx.db.withOrg(orgId, (tx) => findJob(tx, id))) ?? job;
  }
  return job;
}
