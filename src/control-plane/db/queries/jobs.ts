/**
 * Jobs: created by POST /api/run, completed by the results listener, cancelled and retried by their routes.
 * A final status (done, failed, cancelled, dead) is never overwritten by a result; only an explicit retry or a
 * dead-letter requeue puts a job back to queued.
 */
import type { JobMessage, RecordMode, ResultArtifact, ResultBlocker, ResultFiles } from '../../../shared/schemas.ts';

type JobPriority = NonNullable<JobMessage['priority']>;
import type { Tx } from '../types.ts';

export const FINAL_STATUSES = ['done', 'failed', 'cancelled', 'dead'] as const;

export interface JobRow {
  id: string;
  org_id: string;
  user_id: string;
  provider_id: string;
  flow_id: string;
  flow_version: string;
  status: string;
  attempt: number;
  idempotency_key: string | null;
  request_hash: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  worker_id: string | null;
  error_code: string | null;
  error_message: string | null;
  result: unknown;
  files: ResultFiles | null;
  /** Every evidence file with size and SHA-256 (0006_result_artifacts.sql); null for results without the list. */
  artifacts: ResultArtifact[] | null;
  /**
   * The last blocker an attempt of this run met (0018_job_blocker.sql): a later attempt without one keeps it (a job
   * retried past a rate limit still shows it); null when none, and again after a requested retry or requeue.
   */
  blocker: ResultBlocker | null;
  metadata: Record<string, unknown> | null;
  trace_id: string | null;
  priority: JobPriority;
  max_attempts: number | null;
  /** The schedule and due time the job was made for (0008_schedules.sql); null for a run started by hand. */
  schedule_id: string | null;
  due_at: Date | null;
  /** The run's recording override (0017_record_mode.sql); null: the flow's setting applies. */
  record: RecordMode | null;
}

const COLUMNS = `id, org_id, user_id, provider_id, flow_id, flow_version, status, attempt, idempotency_key, request_hash,
  created_at, started_at, finished_at, duration_ms, worker_id, error_code, error_message, result, files, artifacts, blocker, metadata, trace_id,
  priority, max_attempts, schedule_id, due_at, record`;
const FINAL_SQL = `('done', 'failed', 'cancelled', 'dead')`;

export async function insertJob(tx: Tx, j: {
  id: string; orgId: string; userId: string; providerId: string; flowId: string; flowVersion: string;
  idempotencyKey?: string; requestHash?: string; metadata?: unknown; traceId: string;
  priority?: JobPriority; maxAttempts?: number; schedule?: { id: string; dueAt: Date } | undefined; record?: RecordMode | undefined;
}): Promise<JobRow> {
  return (await tx.query<JobRow>(`INSERT INTO jobs
      (id, org_id, user_id, provider_id, flow_id, flow_version, status, attempt, idempotency_key, request_hash, metadata, trace_id,
       priority, max_attempts, schedule_id, due_at, record)
    VALUES ($1, $2, $3, $4, $5, $6, 'queued', 1, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15) RETURNING ${COLUMNS}`,
  [j.id, j.orgId, j.userId, j.providerId, j.flowId, j.flowVersion, j.idempotencyKey ?? null, j.requestHash ?? null,
    j.metadata === undefined ? null : JSON.stringify(j.metadata), j.traceId, j.priority ?? 'normal', j.maxAttempts ?? null,
    j.schedule?.id ?? null, j.schedule?.dueAt ?? null, j.record ?? null]))[0]!;
}

export async function findJobByIdempotencyKey(tx: Tx, key: string): Promise<JobRow | undefined> {
  return (await tx.query<JobRow>(`SELECT ${COLUMNS} FROM jobs WHERE idempotency_key = $1`, [key]))[0];
}

export async function findJob(tx: Tx, id: string): Promise<JobRow | undefined> {
  return (await tx.query<JobRow>(`SELECT ${COLUMNS} FROM jobs WHERE id = $1`, [id]))[0];
}

/** What GET /api/jobs may narrow the list to; absent fields do not filter. */
export interface JobFilter {
  statuses?: readonly string[];
  providerId?: string;
  /** created_at at or after (inclusive). */
  from?: Date;
  /** created_at before (exclusive). */
  to?: Date;
}

/**
 * One page of jobs, newest first, with the name of the user who ran each, and how many match in all. Paged by
 * offset over the index jobs_org_created_id_idx (0007), which serves both the order and the organisation's rows
 * (row-level security adds `org_id = …`); docs/benchmarks.md has the figures for 10,000 jobs.
 */
export async function listJobs(tx: Tx, page: number, pageSize: number, filter: JobFilter = {}): Promise<{ jobs: (JobRow & { user_name: string | null })[]; total: number }> {
  const where: string[] = [];
  const params: unknown[] = [];
  const bind = (v: unknown) => `$${params.push(v)}`;
  if (filter.statuses?.length) where.push(`j.status = ANY(${bind(filter.statuses)}::text[])`);
  if (filter.providerId !== undefined) where.push(`j.provider_id = ${bind(filter.providerId)}`);
  if (filter.from) where.push(`j.created_at >= ${bind(filter.from.toISOString())}::timestamptz`);
  if (filter.to) where.push(`j.created_at < ${bind(filter.to.toISOString())}::timestamptz`);
  const whereSql = where.length ? `WHERE ${where.join(' AND ')}` : '';
  const total = (await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs j ${whereSql}`, params))[0]?.n ?? 0;
  const cols = COLUMNS.split(',').map((c) => `j.${c.trim()}`).join(', ');
  const jobs = await tx.query<JobRow & { user_name: string | null }>(`SELECT ${cols}, u.name AS user_name
    FROM (SELECT id FROM jobs j ${whereSql} ORDER BY j.created_at DESC, j.id DESC LIMIT ${bind(pageSize)} OFFSET ${bind((page - 1) * pageSize)}) p
    JOIN jobs j ON j.id = p.id LEFT JOIN users u ON u.id = j.user_id
    ORDER BY j.created_at DESC, j.id DESC`, params);
  return { jobs, total };
}

export async function failJob(tx: Tx, id: string, code: string, message: string): Promise<void> {
  await tx.query(`UPDATE jobs SET status = 'failed', error_code = $2, error_message = $3, finished_at = now()
    WHERE id = $1 AND status NOT IN ${FINAL_SQL}`, [id, code, message]);
}

/**
 * Records a result. A job already in a final status is left as it is. A `retrying` (not final) message of an
 * earlier attempt than the recorded one is ignored, so progress never goes backwards; a final message is recorded
 * whatever its attempt (outcomes the queue itself produces — a cancel before the job ran — may not know it), and
 * the recorded attempt never decreases. Stale final results of a previous attempt are the reader's concern
 * (syncJobFromRedis checks the status key). `blocker` replaces the recorded one only when the result names one (the
 * last blocker seen stays). Returns false when nothing changed.
 */
export async function recordResult(tx: Tx, r: {
  id: string; status: string; attempt: number; workerId: string; durationMs: number; finishedAt: string | null;
  errorCode: string | null; errorMessage: string | null; files: ResultFiles; result: unknown; artifacts?: ResultArtifact[];
  blocker?: ResultBlocker;
}): Promise<boolean> {
  const rows = await tx.query(`UPDATE jobs SET status = $2, attempt = GREATEST(attempt, $3), worker_id = $4, duration_ms = $5,
      finished_at = $6::timestamptz, error_code = $7, error_message = $8, files = $9::jsonb, result = $10::jsonb, artifacts = $11::jsonb, blocker = COALESCE($12::jsonb, blocker)
    WHERE id = $1 AND status NOT IN ${FINAL_SQL} AND ($2 IN ${FINAL_SQL} OR attempt <= $3) RETURNING id`,
  [r.id, r.status, r.attempt, r.workerId, Math.round(r.durationMs), r.finishedAt, r.errorCode, r.errorMessage,
    JSON.stringify(r.files), r.result === undefined || r.result === null ? null : JSON.stringify(r.result),
    r.artifacts === undefined ? null : JSON.stringify(r.artifacts), r.blocker === undefined ? null : JSON.stringify(r.blocker)]);
  return rows.length > 0;
}

/** Records that the queue removed the job before it ran (or no longer knows it). False when it was already final. */
export async function cancelJob(tx: Tx, id: string, errorCode: string, errorMessage: string): Promise<boolean> {
  const rows = await tx.query(`UPDATE jobs SET status = 'cancelled', finished_at = now(), error_code = $2, error_message = $3
    WHERE id = $1 AND status NOT IN ${FINAL_SQL} RETURNING id`, [id, errorCode, errorMessage]);
  return rows.length > 0;
}

/**
 * Puts a failed or dead job back to queued with `attempt`, forgetting the outcome of the previous attempt (its
 * evidence stays in S3). Undefined when the job is not failed or dead — also when a concurrent retry won.
 */
export async function requeueFinishedJob(tx: Tx, id: string, attempt: number): Promise<JobRow | undefined> {
  return (await tx.query<JobRow>(`UPDATE jobs SET status = 'queued', attempt = $2, started_at = NULL, finished_at = NULL,
      duration_ms = NULL, worker_id = NULL, error_code = NULL, error_message = NULL, result = NULL, files = NULL, artifacts = NULL, blocker = NULL
    WHERE id = $1 AND status IN ('failed', 'dead') RETURNING ${COLUMNS}`, [id, attempt]))[0];
}

/**
 * A dead letter of this job went back to the queue: the record leaves its final status and takes the attempt of
 * the requeued message (results of that attempt or later are recorded). False when the job is not failed or dead.
 */
export async function markJobRequeued(tx: Tx, id: string, attempt: number): Promise<boolean> {
  const rows = await tx.query(`UPDATE jobs SET status = 'queued', attempt = $2, started_at = NULL, finished_at = NULL, duration_ms = NULL,
      worker_id = NULL, error_code = NULL, error_message = NULL, result = NULL, files = NULL, artifacts = NULL, blocker = NULL
    WHERE id = $1 AND status IN ('failed', 'dead') RETURNING id`, [id, attempt]);
  return rows.length > 0;
}

/** A non-final status seen in Redis (e.g. running) while no result exists yet. */
export async function recordProgress(tx: Tx, id: string, status: string): Promise<void> {
  await tx.query(`UPDATE jobs SET status = $2, started_at = COALESCE(started_at, now())
    WHERE id = $1 AND status NOT IN ${FINAL_SQL} AND status <> $2`, [id, status]);
}

/**
 * The job waits for a person (a hand-off announced by its worker): status `waiting_for_user`, unless it is final or
 * the announcement is of an earlier attempt than the one recorded. False when nothing changed.
 */
export async function recordWaiting(tx: Tx, id: string, attempt: number): Promise<boolean> {
  const rows = await tx.query(`UPDATE jobs SET status = 'waiting_for_user', attempt = GREATEST(attempt, $2), started_at = COALESCE(started_at, now())
    WHERE id = $1 AND status NOT IN ${FINAL_SQL} AND attempt <= $2 RETURNING id`, [id, attempt]);
  return rows.length > 0;
}

/** Where the reconciler stopped in one organisation's unfinished jobs: `at` is `created_at::text` (µs kept). */
export interface UnfinishedCursor { orgId: string; at: string; id: string }

export interface UnfinishedJob { id: string; org_id: string; at: string; rn: number }

/**
 * Up to `limit` jobs not yet final, taken fairly (for the reconciler; runs asSystem): round-robin across
 * organisations — every organisation's first job, then every organisation's second, … — so one organisation with
 * thousands of unfinished jobs takes its share and no more. Within an organisation the order starts after its
 * cursor (`cursors`) and wraps around to its oldest, so successive calls walk through all its jobs. Organisations
 * tie in id order starting after `orgAfter` (wrapping), which rotates them when there are more than `limit`.
 * `rn` is the job's place in its organisation's turn (1 = its first).
 */
export async function listUnfinishedJobs(tx: Tx, limit: number, cursors: readonly UnfinishedCursor[] = [], orgAfter = ''): Promise<UnfinishedJob[]> {
  return tx.query<UnfinishedJob>(`WITH cursors AS (
      SELECT * FROM unnest($2::text[], $3::text[], $4::text[]) AS c(org_id, at, id)
    ), ranked AS (
      SELECT j.id, j.org_id, j.created_at::text AS at,
        row_number() OVER (PARTITION BY j.org_id
          ORDER BY (c.at IS NOT NULL AND (j.created_at, j.id) <= (c.at::timestamptz, c.id)), j.created_at, j.id)::int AS rn
      FROM jobs j LEFT JOIN cursors c ON c.org_id = j.org_id
      WHERE j.status NOT IN ${FINAL_SQL}
    )
    SELECT id, org_id, at, rn FROM ranked ORDER BY rn, (org_id <= $5), org_id LIMIT $1`,
  [limit, cursors.map((c) => c.orgId), cursors.map((c) => c.at), cursors.map((c) => c.id), orgAfter]);
}
