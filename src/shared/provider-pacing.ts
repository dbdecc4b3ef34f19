/**
 * A provider's pacing (docs/providers.md): how fast and when the platform may use a portal, whatever organisation
 * runs the job. Stored with the provider in PostgreSQL (`providers.pacing`), published to the workers in the
 * catalogue entry `sri:provider:{providerName}` (field `pacing`, JSON), and applied by each worker's provider gate
 * (src/execution-plane/job/provider-gate.ts) before a job opens its browser.
 *
 * - `minSpacingMs` + `jitterMs`: two jobs of the provider start at least `minSpacingMs` apart, plus a random
 *   0…`jitterMs` drawn at each start (a portal sees no machine-regular rhythm).
 * - `requestsPerMinute`: the browser requests of all the provider's jobs, every organisation together, counted per
 *   clock minute in Redis; no job starts while the current minute's count has reached it.
 * - `maintenanceWindows`: times of the provider's own clock when no job starts (a job due then waits until the
 *   window ends; a job already running is not stopped).
 * - `breaker`: after `failureThreshold` consecutive infrastructure failures (network errors, 5xx pages) no job
 *   starts for `coolDownMs`; then one job tries (half-open) and its success closes the breaker.
 * Every field is optional: an empty object (the default) paces nothing.
 */
import { z } from 'zod';

/** `HH:MM` or `HH:MM:SS`, 00:00 to 24:00. */
const TIME = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$|^24:00(?::00)?$/;

/** Whether `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

export const MaintenanceWindow = z.object({
  days: z.array(z.enum(WEEKDAYS)).min(1).max(7).optional()
    .describe('Days of the week (of the provider\'s clock) on which the window starts; absent: every day.'),
  start: z.string().regex(TIME, 'HH:MM or HH:MM:SS').describe('Start on the provider\'s clock, `HH:MM` or `HH:MM:SS`.'),
  end: z.string().regex(TIME, 'HH:MM or HH:MM:SS')
    .describe('End on the provider\'s clock; an end at or before the start means the next day (00:00–06:00 is six hours, 22:00–02:00 crosses midnight).'),
  timezone: z.string().refine(isTimeZone, 'an IANA time zone such as America/Guayaquil').describe('IANA time zone of the portal, e.g. America/Guayaquil.'),
}).strict();
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

export const BreakerSettings = z.object({
  failureThreshold: z.number().int().min(1).max(1000).describe('Consecutive infrastructure failures that open the breaker.'),
  coolDownMs: z.number().int().min(100).max(24 * 3_600_000).describe('How long an open breaker holds new jobs before one job tries (half-open).'),
}).strict();
export type BreakerSettings = z.infer<typeof BreakerSettings>;

export const ProviderPacing = z.object({
  minSpacingMs: z.number().int().min(0).max(24 * 3_600_000).optional().describe('Least time between the starts of two jobs of the provider.'),
  jitterMs: z.number().int().min(0).max(3_600_000).optional().describe('A random 0…jitterMs added to the spacing at each start.'),
  requestsPerMinute: z.number().int().min(1).max(1_000_000).optional()
    .describe('Browser requests per clock minute, all organisations together; no job starts while the minute\'s count has reached it.'),
  maintenanceWindows: z.array(MaintenanceWindow).max(50).optional().describe('Times when no job of the provider starts.'),
  breaker: BreakerSettings.optional().describe('The circuit breaker; absent: off.'),
}).strict();
export type ProviderPacing = z.infer<typeof ProviderPacing>;

/** Minutes (with fraction) since local midnight, and the weekday, of `at` on `zone`'s clock. */
function localClock(at: number, zone: string): { weekday: number; minutes: number } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone, hourCycle: 'h23', weekday: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(at));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '0';
  const weekday = WEEKDAYS.indexOf(get('weekday').toLowerCase().slice(0, 3) as (typeof WEEKDAYS)[number]);
  const seconds = Number(get('hour')) * 3600 + Number(get('minute')) * 60 + Number(get('second')) + (at % 1000) / 1000;
  return { weekday, minutes: seconds / 60 };
}

function minutesOf(hhmm: string): number {
  const [h = 0, m = 0, s = 0] = hhmm.split(':').map(Number);
  return h * 60 + m + s / 60;
}

/** When the window that contains `at` ends (epoch ms), or undefined when `at` is outside it. */
function windowEnd(w: MaintenanceWindow, at: number): number | undefined {
  const { weekday, minutes } = localClock(at, w.timezone);
  const on = (day: number) => w.days === undefined || w.days.includes(WEEKDAYS[(day + 7) % 7]!);
  const start = minutesOf(w.start);
  const end = minutesOf(w.end);
  let left: number | undefined;
  if (start < end) {
    if (on(weekday) && minutes >= start && minutes < end) left = end - minutes;
  } else if (on(weekday) && minutes >= start) {
    left = 1440 - minutes + end; // started today, ends tomorrow
  } else if (on(weekday - 1) && minutes < end) {
    left = end - minutes; // started yesterday
  }
  // Wall-clock minutes: a daylight-saving change inside the window moves its end by the change (an hour at most).
  return left === undefined ? undefined : at + Math.ceil(left * 60_000);
}

/**
 * When the maintenance that `at` falls in is over (epoch ms): the end of every window containing it, followed
 * through windows that begin where another ends; undefined when `at` is in none.
 */
export function maintenanceEndsAt(windows: readonly MaintenanceWindow[] | undefined, at: number): number | undefined {
  if (!windows?.length) return undefined;
  let t = at;
  for (let i = 0; i < 16; i++) {
    const ends = windows.map((w) => windowEnd(w, t)).filter((e): e is number => e !== undefined);
    if (!ends.length) return t === at ? undefined : t;
    t = Math.max(...ends);
  }
  return t;
}
