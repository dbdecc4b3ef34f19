/** Jobs of the caller's organisation, their status and their evidence (presigned, time-limited links). */
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { keys } from '../../../shared/keys.ts';
import { JobStatus, type ArtifactKind } from '../../../shared/schemas.ts';
import { parseS3Uri } from '../../../shared/s3.ts';
import type { ApiContext } from '../../context.ts';
import { listJobs, type JobFilter, type JobRow } from '../../db/queries/jobs.ts';
import { recordedStatus } from '../../jobs/dispatch.ts';
import { isFinalStatus, loadJob } from '../../jobs/load.ts';
import { jobWaiting } from '../../jobs/waiting.ts';
import { findProvider } from '../../db/queries/providers.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { IdParams, JobDetail, JobList, JobStatusAnswer, JobsQuery, type Artifact, type Job } from '../schemas.ts';

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function jobJson(j: JobRow): z.infer<typeof Job> {
  return {
    id: j.id, status: recordedStatus(j.status), providerId: j.provider_id, flowId: j.flow_id, flowVersion: j.flow_version,
    attempt: j.attempt, priority: j.priority, maxAttempts: j.max_attempts, createdAt: new Date(j.created_at).toISOString(), finishedAt: iso(j.finished_at), duration: j.duration_ms,
    error: j.error_code ? { code: j.error_code, message: j.error_message ?? '' } : null, workerId: j.worker_id, userId: j.user_id,
    schedule: j.schedule_id === null || j.due_at === null ? null : { id: j.schedule_id, dueAt: new Date(j.due_at).toISOString() },
  };
}

type Named = { kind: ArtifactKind; uri: string; bytes?: number; sha256?: string; contentType?: string };

/**
 * Artifacts named by the job's result: its `artifacts` list (every file, with size and SHA-256 of the stored bytes),
 * else — results of workers that send no list — the URIs of `files`. Result messages come from Redis, where anyone
 * with access can publish, so only objects in the results bucket under this organisation's prefix get a link.
 */
export async function artifactsOf(ctx: ApiContext, j: JobRow): Promise<z.infer<typeof Artifact>[]> {
  let named: Named[];
  if (j.artifacts) {
    named = j.artifacts.map(({ kind, uri, bytes, sha256, contentType }) => ({ kind, uri, bytes, sha256, contentType }));
  } else if (j.files) {
    named = [
      ...(j.files.log ? [{ kind: 'log' as const, uri: j.files.log }] : []),
      ...(j.files.screenshots ?? []).map((uri) => ({ kind: 'screenshot' as const, uri })),
      ...(j.files.download ? [{ kind: 'download' as const, uri: j.files.download }] : []),
      ...(j.files.parsedData ? [{ kind: 'parsedData' as const, uri: j.files.parsedData }] : []),
    ];
  } else {
    return [];
  }
  const out = [];
  for (const a of named) {
    const loc = parseS3Uri(a.uri);
    if (!loc || loc.bucket !== ctx.config.s3ResultsBucket || !loc.key.startsWith(`results/${j.org_id}/`) || loc.key.includes('..')) continue;
    const url = await ctx.blobStore.presignGet(loc.bucket, loc.key, ctx.config.artifactUrlTtlSeconds);
    out.push({
      kind: a.kind, name: basename(loc.key), uri: a.uri, url,
      ...(a.bytes !== undefined ? { bytes: a.bytes, sha256: a.sha256, contentType: a.contentType } : {}),
    });
  }
  return out;
}


export function jobRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = ctx.tokens.hook();

  r.route({
    ...endpoint('GET', '/api/jobs', {
      operationId: 'listJobs', tag: 'jobs', access: 'user', querystring: JobsQuery, summary: 'The organisation\'s jobs, newest first, paged; optionally only those of some statuses, a provider, or created between two instants.',
      responses: { 200: json('One page of jobs, and how many there are in all.', JobList) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { page, pageSize, status, providerId, from, to } = req.query;
      const filter: JobFilter = {
        ...(status === undefined ? {} : { statuses: [status].flat() }),
        ...(providerId === undefined ? {} : { providerId }),
        ...(from === undefined ? {} : { from: new Date(from) }),
        ...(to === undefined ? {} : { to: new Date(to) }),
      };
      const { jobs, total } = await ctx.db.withOrg(orgId, (tx) => listJobs(tx, page, pageSize, filter));
      return { jobs: jobs.map((j) => ({ ...jobJson(j), userName: j.user_name })), page, pageSize, total };
    },
  });

  r.route({
    ...endpoint('GET', '/api/jobs/:id', {
      operationId: 'getJob', tag: 'jobs', access: 'user', params: IdParams, summary: 'One job with its parsed data and artifact links.',
      responses: { 200: json('The job, its result and its evidence files with presigned links.', z.object({ job: JobDetail })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const job = await loadJob(ctx, orgId, req.params.id);
      // Until it is final the worker's status key is fresher (a job whose hand-off was answered runs again at once) —
      // for statuses on the way only: a final one counts once its result is recorded here, with its data and files.
      const live = isFinalStatus(job.status) ? undefined : JobStatus.safeParse(await ctx.redis.get(keys.jobStatus(job.id)).catch(() => null));
      const status = live?.success && !isFinalStatus(live.data) ? { status: live.data } : {};
      const waiting = (status.status ?? job.status) === 'queued' ? await waitingOf(ctx, orgId, job) : null;
      return { job: { ...jobJson(job), ...status, waiting, result: job.result ?? null, artifacts: await artifactsOf(ctx, job), blocker: job.blocker ?? null } };
    },
  });

  r.route({
    ...endpoint('GET', '/api/jobs/:id/status', {
      operationId: 'getJobStatus', tag: 'jobs', access: 'user', params: IdParams, summary: 'The job\'s status (live from Redis while it runs).',
      responses: { 200: json('The job\'s status.', JobStatusAnswer) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { id } = req.params;
      const job = await loadJob(ctx, orgId, id);
      let status = recordedStatus(job.status);
      if (!isFinalStatus(status)) {
        // The results listener records final states; until then the worker's status key is the fresher source.
        const live = JobStatus.safeParse(await ctx.redis.get(keys.jobStatus(id)).catch(() => null));
        if (live.success) status = live.data;
      }
      return { jobId: job.id, status };
    },
  });
}

/** Why a queued job waits (jobs/waiting.ts); null when it only waits for its turn, or when Redis cannot say. */
async function waitingOf(ctx: ApiContext, orgId: string, job: JobRow) {
  try {
    const provider = await ctx.db.withOrg(orgId, (tx) => findProvider(tx, job.provider_id));
    return (await jobWaiting(ctx.redis, {
      id: job.id, orgId, userId: job.user_id, providerName: provider?.name, maxConcurrentPerAccount: provider?.maxConcurrentPerAccount,
    })) ?? null;
  } catch (e) {
    ctx.logger.debug({ jobId: job.id, err: (e as Error).message }, 'could not tell why the queued job waits');
    return null;
  }
}
