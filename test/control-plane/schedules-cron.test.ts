/** The scheduler's decisions and the shown run times (src/control-plane/schedules/cron.ts), without services. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isSriError } from '../../src/shared/errors.ts';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { TEST_JWT_SECRET, TEST_SIGNING_SECRET } from '../support/services.ts';
import { assertTiming, CronTiming, inZone, planDue } from '../../src/control-plane/schedules/cron.ts';

const at = (iso: string) => new Date(iso);
const ms = (iso: string) => Date.parse(iso);

describe('planDue', () => {
  const every2s = new CronTiming('*/2 * * * * *', 'UTC');

  it('runs a due time found within the grace, and moves to the one after it', () => {
    const plan = planDue(every2s, at('2026-12-06T17:00:02Z'), ms('2026-12-06T17:00:02.900Z'), 1000, 'skip');
    assert.deepEqual(plan, { run: at('2026-12-06T17:00:02Z'), next: at('2026-12-06T17:00:04Z') });
  });

  it('skip: runs none of the missed due times and moves to the first one still on time', () => {
    // Found at :11.5 with a 1 s grace: :02 … :10 are missed; :12 is the first on time (not yet due).
    const plan = planDue(every2s, at('2026-12-06T17:00:02Z'), ms('2026-12-06T17:00:11.500Z'), 1000, 'skip');
    assert.deepEqual(plan, { run: null, next: at('2026-12-06T17:00:12Z') });
    // Found at :10.5: :10 is within the grace, so it is next (and runs on time at the next step).
    assert.deepEqual(planDue(every2s, at('2026-12-06T17:00:02Z'), ms('2026-12-06T17:00:10.500Z'), 1000, 'skip'),
      { run: null, next: at('2026-12-06T17:00:10Z') });
  });

  it('runOnce: one run, carrying the first missed due time, for all of them', () => {
    const plan = planDue(every2s, at('2026-12-06T17:00:02Z'), ms('2026-12-06T17:00:11.500Z'), 1000, 'runOnce');
    assert.deepEqual(plan, { run: at('2026-12-06T17:00:02Z'), next: at('2026-12-06T17:00:12Z') });
  });

  it('counts days in the schedule\'s zone: 08:00 in Guayaquil is 13:00 UTC', () => {
    const daily = new CronTiming('0 8 * * *', 'America/Guayaquil');
    assert.deepEqual(daily.after(at('2026-12-06T13:00:00Z')), at('2026-12-07T13:00:00Z'));
    // A month of downtime: runOnce makes one run and goes on from the next day.
    assert.deepEqual(planDue(daily, at('2026-11-01T13:00:00Z'), ms('2026-12-06T14:00:00Z'), 60_000, 'runOnce'),
      { run: at('2026-11-01T13:00:00Z'), next: at('2026-12-07T13:00:00Z') });
  });
});

describe('inZone', () => {
  it('writes the instant with the offset of the zone on that day', () => {
    assert.equal(inZone(at('2026-12-07T13:00:00Z'), 'America/Guayaquil'), '2026-12-07T08:00:00-05:00');
    assert.equal(inZone(at('2026-07-01T07:30:00Z'), 'Europe/Madrid'), '2026-07-01T09:30:00+02:00');
    assert.equal(inZone(at('2026-01-01T08:30:00Z'), 'Europe/Madrid'), '2026-01-01T09:30:00+01:00');
    assert.equal(inZone(at('2026-01-01T00:00:00Z'), 'Asia/Kolkata'), '2026-01-01T05:30:00+05:30');
    assert.equal(inZone(at('2026-01-01T00:00:00Z'), 'UTC'), '2026-01-01T00:00:00+00:00');
    for (const [iso, zone] of [['2026-03-29T00:59:59Z', 'Europe/Madrid'], ['2026-11-01T06:30:00Z', 'America/New_York']] as const) {
      assert.equal(Date.parse(inZone(at(iso), zone)), Date.parse(iso), `${iso} in ${zone} is the same instant`);
    }
  });
});

describe('assertTiming', () => {
  it('accepts five or six fields and IANA zones, and says what to fix otherwise', () => {
    assertTiming({ cron: '0 8 * * 1-5', timezone: 'America/Guayaquil' });
    assertTiming({ cron: '*/30 * * * * *', timezone: 'UTC' });
    for (const [timing, code] of [
      [{ cron: '0 8 * *', timezone: 'UTC' }, 'SCHEDULE_CRON_INVALID'],
      [{ cron: '0 0 30 2 *', timezone: 'UTC' }, 'SCHEDULE_CRON_INVALID'],
      [{ cron: '0 8 * * *', timezone: 'America/Atlantis' }, 'SCHEDULE_TIMEZONE_INVALID'],
    ] as const) {
      assert.throws(() => assertTiming(timing), (e: unknown) => isSriError(e) && e.code === code && e.status === 400, JSON.stringify(timing));
    }
  });
});

describe('scheduler settings', () => {
  const base = { JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET };

  it('defaults to a scheduler ticking every second with a minute of grace', () => {
    const c = loadApiConfig(base);
    assert.deepEqual([c.schedulerEnabled, c.schedulerTickMs, c.schedulerMisfireGraceMs], [true, 1000, 60_000]);
    assert.equal(loadApiConfig({ ...base, SCHEDULER_ENABLED: 'false' }).schedulerEnabled, false);
  });

  it('refuses a grace shorter than a tick, and bad values, naming the variable', () => {
    for (const [env, name] of [
      [{ SCHEDULER_TICK_MS: '5000', SCHEDULER_MISFIRE_GRACE_MS: '1000' }, /SCHEDULER_MISFIRE_GRACE_MS \(1000\) must be at least SCHEDULER_TICK_MS \(5000\)/],
      [{ SCHEDULER_TICK_MS: '10' }, /SCHEDULER_TICK_MS/],
      [{ SCHEDULER_ENABLED: 'yes' }, /SCHEDULER_ENABLED must be true or false/],
    ] as const) {
      assert.throws(() => loadApiConfig({ ...base, ...env }), (e: unknown) => isSriError(e) && e.code === 'CONFIG_INVALID' && name.test(e.message), JSON.stringify(env));
    }
    // Without a scheduler in this process the pair does not matter.
    assert.equal(loadApiConfig({ ...base, SCHEDULER_ENABLED: 'false', SCHEDULER_TICK_MS: '5000', SCHEDULER_MISFIRE_GRACE_MS: '0' }).schedulerEnabled, false);
  });
});
