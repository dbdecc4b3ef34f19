/**
 * The scheduler inside every API process (docs/schedules.md): every SCHEDULER_TICK_MS it reads the schedules that
 * have come due and makes their runs through the same use case as POST /api/run (jobs/submit.ts), so tenant limits,
 * quotas and admission apply to scheduled runs too.
 *
 * Exactly one run per due time across any number of API processes, without a leader:
 * 1. claim — one UPDATE, compare-and-set on the row's `revision`, moves the schedule's cursor past the due time and
 *    records the claim (`pending_due_at`). Of two processes that read the same row only one claim commits;
 * 2. submit — the run's Idempotency-Key is `schedule:<id>:<due time>` and its job carries (schedule_id, due_at) under
 *    a unique index, so submitting the same due time twice makes one job;
 * 3. finish — the claim is cleared with the job id (or the error that refused the run).
 * A process that dies between 1 and 3 leaves its claim; after TAKEOVER_MS another process submits it again, which (2)
 * makes safe even when the first was only slow.
 *
 * A bad row (a pattern that no longer compiles) is parked with its error recorded; an error of one schedule is
 * logged and never stops the others, the loop or the API.
 */
import { isSriError, SriError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ApiContext } from '../context.ts';
import type { Database, Tx } from '../db/index.ts';
import { findUser } from '../db/queries/accounts.ts';
import { findJobByIdempotencyKey } from '../db/queries/jobs.ts';
import { claimDue, finishClaim, listDueSchedules, parkSchedule, retakeClaim, type ScheduleRow } from '../db/queries/schedules.ts';
import type { RunAdmission } from '../jobs/admission.ts';
import { submitRun } from '../jobs/submit.ts';
import { CronTiming, planDue } from './cron.ts';

/** How old a claim must be before another process takes it over (its own submit retries Redis for less than this). */
export const TAKEOVER_MS = 60_000;
/** Schedules read per tick; more wait for the next tick, oldest due first. */
const BATCH_SIZE = 100;
/** Due times one schedule may go through in one tick (a skip followed by the first on-time run takes two). */
const MAX_STEPS_PER_TICK = 4;

export type SchedulerState = 'idle' | 'running' | 'stopping' | 'stopped';

/** Makes the run of `schedule` for `dueAt`; resolves with its job (a new one, or the one made earlier for this due time). */
export type SubmitScheduled = (schedule: ScheduleRow, dueAt: Date) => Promise<{ jobId: string }>;

export interface SchedulerOptions {
  db: Database;
  logger: Logger;
  submit: SubmitScheduled;
  /** Pause between two ticks (ms). */
  tickMs: number;
  /** How late a due time may be and still run as on time; later ones are missed (the schedule's missed-run policy). */
  misfireGraceMs: number;
  /** @default TAKEOVER_MS */
  takeoverMs?: number;
  /** @default Date.now */
  now?: () => number;
}

const asDate = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));

export class Scheduler {
  private stateNow: SchedulerState = 'idle';
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly takeoverMs: number;

  constructor(private readonly opts: SchedulerOptions) {
    this.log = opts.logger.child({ component: 'scheduler' });
    this.now = opts.now ?? Date.now;
    this.takeoverMs = opts.takeoverMs ?? TAKEOVER_MS;
  }

  get state(): SchedulerState {
    return this.stateNow;
  }

  start(): void {
    if (this.stateNow !== 'idle') return;
    this.stateNow = 'running';
    this.log.info({ tickMs: this.opts.tickMs, misfireGraceMs: this.opts.misfireGraceMs }, 'scheduler started');
    this.arm(0);
  }

  /** Stops ticking and waits for the tick in progress (its submits end within their own deadlines). */
  async stop(): Promise<void> {
    if (this.stateNow === 'stopped') return;
    this.stateNow = 'stopping';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking;
    this.stateNow = 'stopped';
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.ticking = this.tick()
        .catch((err: unknown) => this.log.warn({ err }, 'scheduler tick failed; trying again at the next tick'))
        .finally(() => {
          this.ticking = undefined;
          if (this.stateNow === 'running') this.arm(this.opts.tickMs);
        });
    }, delayMs);
    // The API's server keeps the process alive; a pending tick must not.
    this.timer.unref();
  }

  /** One pass over the schedules that have come due. Public for tests. */
  async tick(): Promise<void> {
    const now = this.now();
    const rows = await this.opts.db.asSystem((tx) => listDueSchedules(tx, new Date(now), new Date(now - this.takeoverMs), BATCH_SIZE));
    for (const row of rows) {
      if (this.stateNow === 'stopping' || this.stateNow === 'stopped') break;
      try {
        await this.handle(row, now);
      } catch (err) {
        this.log.error({ err, scheduleId: row.id, orgId: row.org_id }, 'schedule could not be handled; trying again at the next tick');
      }
    }
  }

  private async handle(row: ScheduleRow, now: number): Promise<void> {
    const withOrg = <T>(fn: (tx: Tx) => Promise<T>): Promise<T> => this.opts.db.withOrg(row.org_id, fn);
    let current: ScheduleRow | undefined = row;
    if (current.pending_due_at !== null) {
      // Listed with a claim only when that claim is stale: its process died (or stalled) before finishing it.
      const taken: ScheduleRow | undefined = await withOrg((tx) => retakeClaim(tx, row.id, row.revision, new Date(now)));
      if (!taken) return;
      this.log.warn({ scheduleId: row.id, orgId: row.org_id, dueAt: asDate(taken.pending_due_at!).toISOString() }, 'taking over a claim another scheduler left unfinished');
      current = await this.runClaim(taken);
    }
    for (let step = 0; step < MAX_STEPS_PER_TICK && current; step++) {
      const s: ScheduleRow = current;
      if (!s.enabled || s.pending_due_at !== null || s.next_due_at === null || asDate(s.next_due_at).getTime() > now) return;
      const cursor = asDate(s.next_due_at);
      let plan: ReturnType<typeof planDue>;
      try {
        plan = planDue(new CronTiming(s.cron, s.timezone), cursor, now, this.opts.misfireGraceMs, s.missed_run_policy);
      } catch (err) {
        // Only a row written behind the API's back gets here (the API checks both): parked, not retried every tick.
        const message = `The schedule's cron "${s.cron}" in time zone ${s.timezone} no longer works (${(err as Error).message}); fix it with PATCH /api/schedules/${s.id}.`;
        this.log.error({ scheduleId: s.id, orgId: s.org_id, err }, 'schedule parked: its pattern or time zone does not work');
        await withOrg((tx) => parkSchedule(tx, s.id, s.revision, 'SCHEDULE_CRON_INVALID', message));
        return;
      }
      const claimed: ScheduleRow | undefined = await withOrg((tx) => claimDue(tx, s.id, s.revision, { nextDueAt: plan.next, runDueAt: plan.run, now: new Date(now) }));
      // Another process claimed this due time first, or the schedule was edited, paused or deleted meanwhile.
      if (!claimed) return;
      if (plan.run === null) {
        this.log.info({ scheduleId: s.id, orgId: s.org_id, from: cursor.toISOString(), until: plan.next?.toISOString() ?? null }, 'missed due times skipped (missedRunPolicy skip)');
        current = claimed;
        continue;
      }
      if (plan.run === cursor && now - cursor.getTime() > this.opts.misfireGraceMs) {
        this.log.info({ scheduleId: s.id, orgId: s.org_id, dueAt: cursor.toISOString(), until: plan.next?.toISOString() ?? null }, 'one run for the missed due times (missedRunPolicy runOnce)');
      }
      current = await this.runClaim(claimed);
    }
  }

  /** Submits the run of the claim `s` holds and clears the claim; the row as it is then (undefined when no longer held). */
  private async runClaim(s: ScheduleRow): Promise<ScheduleRow | undefined> {
    const dueAt = asDate(s.pending_due_at!);
    let outcome: { jobId: string } | { code: string; message: string };
    try {
      outcome = await this.opts.submit(s, dueAt);
      this.log.info({ scheduleId: s.id, orgId: s.org_id, dueAt: dueAt.toISOString(), jobId: outcome.jobId }, 'scheduled run submitted');
    } catch (err) {
      // Anything else (the database unreachable…) leaves the claim for a takeover, when the run is tried again.
      if (!isSriError(err)) throw err;
      // Refused (rate limit, full queue, provider not connected, no active flow…): not tried again; the schedule
      // shows the error and goes on with its next due time.
      outcome = { code: err.code, message: err.message };
      this.log.warn({ scheduleId: s.id, orgId: s.org_id, dueAt: dueAt.toISOString(), code: err.code, err: err.message }, 'scheduled run refused');
    }
    return this.opts.db.withOrg(s.org_id, (tx) => finishClaim(tx, s.id, dueAt, outcome));
  }
}

/** The submit of the API process: POST /api/run's use case as the schedule's creator, idempotent on (schedule, due time). */
export function scheduledRunSubmitter(ctx: ApiContext, admission: RunAdmission): SubmitScheduled {
  const log = ctx.logger.child({ component: 'scheduler' });
  return async (s, dueAt) => {
    const idempotencyKey = `schedule:${s.id}:${dueAt.toISOString()}`;
    // A removed member's schedules stop making runs with the session they left behind.
    if (!(await ctx.db.withOrg(s.org_id, (tx) => findUser(tx, s.user_id)))) {
      throw new SriError('FORBIDDEN', 'The schedule\'s creator is no longer a member of the organisation, so its runs have no session to use; '
        + 'an admin can delete the schedule, and a member create it again.');
    }
    try {
      const submitted = await submitRun(ctx, admission, {
        orgId: s.org_id, userId: s.user_id, providerId: s.provider_id, flowId: s.flow_id ?? undefined, metadata: s.metadata ?? undefined,
        idempotencyKey, schedule: { id: s.id, dueAt },
      }, { log });
      return { jobId: submitted.jobId };
    } catch (err) {
      // The job of this due time exists but was made before the schedule's metadata changed: it is still this due
      // time's run. (A job someone started by hand under this key is not: the run is refused.)
      if (isSriError(err) && err.code === 'IDEMPOTENCY_CONFLICT') {
        const job = await ctx.db.withOrg(s.org_id, (tx) => findJobByIdempotencyKey(tx, idempotencyKey));
        if (job?.schedule_id === s.id) return { jobId: job.id };
      }
      throw err;
    }
  };
}
