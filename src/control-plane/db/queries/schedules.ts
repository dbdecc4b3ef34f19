/**
 * Schedules (migrations/0008_schedules.sql). The API's queries run inside withOrg (row-level security); the
 * scheduler's scan runs asSystem across organisations and each claim inside withOrg of the schedule's organisation.
 * Every change of a row raises `revision`, and the scheduler's writes are compare-and-set on it.
 */
import type { Tx } from '../types.ts';

export interface ScheduleRow {
  id: string;
  org_id: string;
  user_id: string;
  provider_id: string;
  flow_id: string | null;
  cron: string;
  timezone: string;
  metadata: Record<string, unknown> | null;
  enabled: boolean;
  missed_run_policy: 'skip' | 'runOnce';
  next_due_at: Date | null;
  pending_due_at: Date | null;
  pending_claimed_at: Date | null;
  revision: number;
  last_job_id: string | null;
  last_due_at: Date | null;
  last_error_code: string | null;
  last_error_message: string | null;
  last_error_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `id, org_id, user_id, provider_id, flow_id, cron, timezone, metadata, enabled, missed_run_policy, next_due_at,
  pending_due_at, pending_claimed_at, revision, last_job_id, last_due_at, last_error_code, last_error_message, last_error_at,
  created_at, updated_at`;

export async function insertSchedule(tx: Tx, s: {
  id: string; orgId: string; userId: string; providerId: string; flowId: string | null; cron: string; timezone: string;
  metadata: Record<string, unknown> | null; enabled: boolean; missedRunPolicy: string; nextDueAt: Date | null;
}): Promise<ScheduleRow> {
  return (await tx.query<ScheduleRow>(`INSERT INTO schedules
      (id, org_id, user_id, provider_id, flow_id, cron, timezone, metadata, enabled, missed_run_policy, next_due_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11) RETURNING ${COLUMNS}`,
  [s.id, s.orgId, s.userId, s.providerId, s.flowId, s.cron, s.timezone, s.metadata === null ? null : JSON.stringify(s.metadata),
    s.enabled, s.missedRunPolicy, s.nextDueAt])).at(0)!;
}

export async function countSchedules(tx: Tx): Promise<number> {
  return (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM schedules'))[0]?.n ?? 0;
}

export async function listSchedules(tx: Tx): Promise<ScheduleRow[]> {
  return tx.query<ScheduleRow>(`SELECT ${COLUMNS} FROM schedules ORDER BY created_at, id`);
}

export async function findSchedule(tx: Tx, id: string): Promise<ScheduleRow | undefined> {
  return (await tx.query<ScheduleRow>(`SELECT ${COLUMNS} FROM schedules WHERE id = $1`, [id]))[0];
}

/**
 * Writes the schedule's settings (already checked). `nextDueAt` moves the cursor (a new timing, a resume); undefined
 * leaves it where the scheduler has it — not where this transaction read it, which a claim may have moved since.
 * Pausing drops a claim its process left unfinished, so resuming never starts a run for a due time from before the
 * pause (a submit already under way still finishes: its job is made, the schedule just does not record it).
 */
export async function updateSchedule(tx: Tx, id: string, u: {
  cron: string; timezone: string; metadata: Record<string, unknown> | null; enabled: boolean; missedRunPolicy: string; nextDueAt: Date | null | undefined;
}): Promise<ScheduleRow | undefined> {
  return (await tx.query<ScheduleRow>(`UPDATE schedules SET cron = $2, timezone = $3, metadata = $4::jsonb, enabled = $5,
      missed_run_policy = $6, next_due_at = CASE WHEN $8::boolean THEN $7::timestamptz ELSE next_due_at END,
      pending_due_at = CASE WHEN $5 THEN pending_due_at END, pending_claimed_at = CASE WHEN $5 THEN pending_claimed_at END,
      revision = revision + 1, updated_at = now()
    WHERE id = $1 RETURNING ${COLUMNS}`,
  [id, u.cron, u.timezone, u.metadata === null ? null : JSON.stringify(u.metadata), u.enabled, u.missedRunPolicy, u.nextDueAt ?? null,
    u.nextDueAt !== undefined]))[0];
}

export async function deleteSchedule(tx: Tx, id: string): Promise<boolean> {
  return (await tx.query('DELETE FROM schedules WHERE id = $1 RETURNING id', [id])).length > 0;
}

export interface ScheduleRunRow {
  id: string;
  due_at: Date;
  status: string;
  created_at: Date;
  finished_at: Date | null;
  error_code: string | null;
}

/** The jobs a schedule made, latest due time first. */
export async function listScheduleRuns(tx: Tx, scheduleId: string, limit: number): Promise<ScheduleRunRow[]> {
  return tx.query<ScheduleRunRow>(`SELECT id, due_at, status, created_at, finished_at, error_code FROM jobs
    WHERE schedule_id = $1 ORDER BY due_at DESC LIMIT $2`, [scheduleId, limit]);
}

// ── The scheduler ─────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Schedules with work for the scheduler at `now` (asSystem): enabled, due and not claimed, or holding a claim made
 * before `staleBefore` (its process died before finishing it). Oldest due first, at most `limit`.
 */
export async function listDueSchedules(tx: Tx, now: Date, staleBefore: Date, limit: number): Promise<ScheduleRow[]> {
  // Two questions, each answered by its partial index (schedules_due_idx, schedules_claimed_idx), rather than one OR
  // that would read the whole table every tick.
  return tx.query<ScheduleRow>(`(SELECT ${COLUMNS} FROM schedules
      WHERE enabled AND next_due_at <= $1 AND pending_due_at IS NULL ORDER BY next_due_at LIMIT $3)
    UNION ALL
    (SELECT ${COLUMNS} FROM schedules
      WHERE pending_due_at IS NOT NULL AND pending_claimed_at < $2 AND enabled ORDER BY pending_claimed_at LIMIT $3)`, [now, staleBefore, limit]);
}

/**
 * Moves the cursor to `nextDueAt` and claims `runDueAt` (or nothing) — only if the row is still at `revision`
 * and enabled. Undefined when another process (or an edit) changed it first.
 */
export async function claimDue(tx: Tx, id: string, revision: number, c: { nextDueAt: Date | null; runDueAt: Date | null; now: Date }): Promise<ScheduleRow | undefined> {
  return (await tx.query<ScheduleRow>(`UPDATE schedules SET next_due_at = $3, pending_due_at = $4,
      pending_claimed_at = CASE WHEN $4::timestamptz IS NULL THEN NULL ELSE $5::timestamptz END, revision = revision + 1
    WHERE id = $1 AND revision = $2 AND enabled RETURNING ${COLUMNS}`, [id, revision, c.nextDueAt, c.runDueAt, c.now]))[0];
}

/** Takes over a stale claim (compare-and-set on `revision`). */
export async function retakeClaim(tx: Tx, id: string, revision: number, now: Date): Promise<ScheduleRow | undefined> {
  return (await tx.query<ScheduleRow>(`UPDATE schedules SET pending_claimed_at = $3, revision = revision + 1
    WHERE id = $1 AND revision = $2 AND pending_due_at IS NOT NULL RETURNING ${COLUMNS}`, [id, revision, now]))[0];
}

/** The claim of `dueAt` is done: its job, or the error that refused it. Nothing when the claim is no longer held. */
export async function finishClaim(tx: Tx, id: string, dueAt: Date, outcome: { jobId: string } | { code: string; message: string }): Promise<ScheduleRow | undefined> {
  const ok = 'jobId' in outcome;
  return (await tx.query<ScheduleRow>(`UPDATE schedules SET pending_due_at = NULL, pending_claimed_at = NULL, revision = revision + 1,
      last_due_at = $2, last_job_id = COALESCE($3, last_job_id),
      last_error_code = CASE WHEN $3::text IS NULL THEN $4 ELSE NULL END,
      last_error_message = CASE WHEN $3::text IS NULL THEN $5 ELSE NULL END,
      last_error_at = CASE WHEN $3::text IS NULL THEN now() ELSE NULL END
    WHERE id = $1 AND pending_due_at = $2 RETURNING ${COLUMNS}`,
  [id, dueAt, ok ? outcome.jobId : null, ok ? null : outcome.code, ok ? null : outcome.message]))[0];
}

/** A row the scheduler cannot use (its pattern no longer compiles): it stops coming due, with the reason recorded. */
export async function parkSchedule(tx: Tx, id: string, revision: number, code: string, message: string): Promise<void> {
  await tx.query(`UPDATE schedules SET next_due_at = NULL, pending_due_at = NULL, pending_claimed_at = NULL, revision = revision + 1,
      last_error_code = $3, last_error_message = $4, last_error_at = now()
    WHERE id = $1 AND revision = $2`, [id, revision, code, message]);
}
