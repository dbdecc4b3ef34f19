/**
 * Cron patterns and time zones of schedules (croner): validation at the API's boundary, the next run times, and the
 * one decision the scheduler makes per due time — run it, skip it, or run once for everything missed
 * (docs/schedules.md "Missed runs").
 */
import { Cron } from 'croner';
import { z } from 'zod';
import { SriError } from '../../shared/errors.ts';

export const MISSED_RUN_POLICIES = ['skip', 'runOnce'] as const;
export type MissedRunPolicy = (typeof MISSED_RUN_POLICIES)[number];

/** Five fields (minute … day of week), or six with seconds first; no year field. */
const CRON_MODE = '5-or-6-parts';

function zoneError(timezone: string): string | undefined {
  try {
    // Throws RangeError for a name the runtime's time zone database does not know.
    new Intl.DateTimeFormat('en', { timeZone: timezone });
    return undefined;
  } catch {
    return `"${timezone}" is not an IANA time zone; use a name such as America/Guayaquil, Europe/Madrid or UTC.`;
  }
}

function compile(cron: string, timezone: string): Cron {
  return new Cron(cron, { timezone, paused: true, mode: CRON_MODE });
}

/**
 * The schedule's timing as the API accepts it. Each refinement names the error code it answers with, so the route
 * can say exactly what to fix (SCHEDULE_TIMEZONE_INVALID, SCHEDULE_CRON_INVALID).
 */
export const ScheduleTiming = z.object({ cron: z.string(), timezone: z.string() }).superRefine((v, issue) => {
  const badZone = zoneError(v.timezone);
  if (badZone) {
    issue.addIssue({ code: 'custom', path: ['timezone'], message: badZone, params: { code: 'SCHEDULE_TIMEZONE_INVALID' } });
    return;
  }
  let cron: Cron;
  try {
    cron = compile(v.cron, v.timezone);
  } catch (e) {
    // croner's message says which field is wrong ("Invalid value for minute: 61").
    const why = (e as Error).message.replace(/^CronPattern:\s*/, '');
    issue.addIssue({
      code: 'custom', path: ['cron'], params: { code: 'SCHEDULE_CRON_INVALID' },
      message: `"${v.cron}" is not a cron pattern: ${why}. Use five fields (minute hour day-of-month month day-of-week, e.g. "0 8 * * 1-5") `
        + 'or six with seconds first (e.g. "*/30 * * * * *").',
    });
    return;
  }
  if (cron.nextRun() === null) {
    issue.addIssue({
      code: 'custom', path: ['cron'], params: { code: 'SCHEDULE_CRON_INVALID' },
      message: `"${v.cron}" never comes due (no such date, e.g. 30 February); fix the day and month fields.`,
    });
  }
});

/** Parses `timing` with ScheduleTiming; a problem throws the code its refinement names, with the field in details. */
export function assertTiming(timing: { cron: string; timezone: string }): void {
  const parsed = ScheduleTiming.safeParse(timing);
  if (parsed.success) return;
  const first = parsed.error.issues[0]!;
  const code = (first as { params?: { code?: string } }).params?.code === 'SCHEDULE_TIMEZONE_INVALID' ? 'SCHEDULE_TIMEZONE_INVALID' : 'SCHEDULE_CRON_INVALID';
  throw new SriError(code, first.message, { details: [{ field: first.path.join('.'), message: first.message, in: 'body' }] });
}

/** A schedule's pattern in its zone, compiled once per use. Throws for a pattern that no longer compiles. */
export class CronTiming {
  private readonly cron: Cron;

  constructor(pattern: string, readonly timezone: string) {
    this.cron = compile(pattern, timezone);
  }

  /** The first due time strictly after `after`, or null when the pattern has none. */
  after(after: Date): Date | null {
    return this.cron.nextRun(after);
  }

  /** The first due time at or after `at` (croner counts from whole seconds, strictly after). */
  atOrAfter(at: number): Date | null {
    return this.cron.nextRun(new Date(at - 1));
  }

  /** The next `n` due times after `from`. */
  next(n: number, from = new Date()): Date[] {
    return this.cron.nextRuns(n, from);
  }
}

/**
 * What to do with a schedule whose earliest unhandled due time `cursor` has come (`cursor <= now`):
 * - on time (at most `graceMs` late): run it; the cursor moves to the due time after it;
 * - missed (later than that: the scheduler was not running): `skip` runs none of the missed ones, `runOnce` runs one
 *   run for all of them, carrying the first missed due time; either way the cursor moves to the first due time that
 *   is still on time, which a later call runs like any other.
 */
export function planDue(timing: CronTiming, cursor: Date, now: number, graceMs: number, policy: MissedRunPolicy): { run: Date | null; next: Date | null } {
  if (now - cursor.getTime() <= graceMs) return { run: cursor, next: timing.after(cursor) };
  const next = timing.atOrAfter(now - graceMs);
  return { run: policy === 'runOnce' ? cursor : null, next };
}

/** `at` as ISO 8601 with the offset of `timezone` (`2026-12-07T08:00:00-05:00`): the instant, as read on the schedule's clock. */
export function inZone(at: Date, timezone: string): string {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(at).map((p) => [p.type, p.value]));
  const local = Date.UTC(Number(parts['year']), Number(parts['month']) - 1, Number(parts['day']), Number(parts['hour']), Number(parts['minute']), Number(parts['second']));
  const offsetMin = Math.round((local - Math.floor(at.getTime() / 1000) * 1000) / 60_000);
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${parts['year']}-${parts['month']}-${parts['day']}T${parts['hour']}:${parts['minute']}:${parts['second']}${offset}`;
}
