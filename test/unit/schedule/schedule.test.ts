import { describe, expect, it } from 'vitest';
import {
  approximateIntervalSeconds,
  describeSchedule,
  fireTimes,
  nextFireTime,
  parseSchedule,
  parseScheduleExpression,
  ScheduleError,
  toSchedulerExpression,
  type CheckpointSchedule,
} from '../../../lib/schedule';
import { fromWallClock, wallClock, zoneOffsetMs } from '../../../lib/schedule/time-zone';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
const cron = (expression: string, timeZone = 'UTC'): CheckpointSchedule => parseSchedule({ kind: 'cron', expression, timeZone }, at('2026-01-01T00:00:00Z'));

function scheduleError(fn: () => unknown): ScheduleError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScheduleError);
    return err as ScheduleError;
  }
  throw new Error('expected a ScheduleError');
}

describe('time zones (Intl)', () => {
  it('reads the wall clock and offset of a non-UTC zone', () => {
    expect(wallClock(at('2026-01-15T12:00:00Z'), 'Asia/Kolkata')).toEqual({ year: 2026, month: 1, day: 15, hour: 17, minute: 30, second: 0 });
    expect(zoneOffsetMs(at('2026-01-15T12:00:00Z'), 'Europe/Berlin')).toBe(3_600_000);
    expect(zoneOffsetMs(at('2026-07-15T12:00:00Z'), 'Europe/Berlin')).toBe(7_200_000);
  });

  it('finds no instant in a spring-forward gap and two in a fall-back overlap', () => {
    expect(fromWallClock({ year: 2026, month: 3, day: 8, hour: 2, minute: 30, second: 0 }, 'America/New_York')).toEqual([]);
    expect(fromWallClock({ year: 2026, month: 11, day: 1, hour: 1, minute: 30, second: 0 }, 'America/New_York').map(iso)).toEqual([
      '2026-11-01T05:30:00.000Z',
      '2026-11-01T06:30:00.000Z',
    ]);
  });
});

describe('validation', () => {
  it('normalizes a cron schedule and defaults the time zone to UTC', () => {
    expect(parseSchedule({ kind: 'cron', expression: '0 * * * ? *' })).toEqual({ kind: 'cron', expression: 'cron(0 * * * ? *)', timeZone: 'UTC' });
    expect(parseSchedule({ kind: 'cron', expression: 'cron(0  9 ? * mon-fri *)', timeZone: 'Europe/Berlin' })).toEqual({
      kind: 'cron',
      expression: 'cron(0 9 ? * MON-FRI *)',
      timeZone: 'Europe/Berlin',
    });
    expect(parseSchedule({ kind: 'rate', seconds: 300 })).toEqual({ kind: 'rate', seconds: 300 });
  });

  it.each([
    [{ kind: 'cron', expression: '0 * * * *' }, 'expression', /6 fields .* got 5/],
    [{ kind: 'cron', expression: '61 * * * ? *' }, 'expression', /minutes field: 61 is out of range 0-59/],
    [{ kind: 'cron', expression: '0 24 * * ? *' }, 'expression', /hours field: 24 is out of range 0-23/],
    [{ kind: 'cron', expression: '0 * * * * *' }, 'expression', /one of day-of-month and day-of-week must be '\?'/],
    [{ kind: 'cron', expression: '0 * L * ? *' }, 'expression', /L, W or #/],
    [{ kind: 'cron', expression: '0 ? * * ? *' }, 'expression', /'\?' is only allowed in the day/],
    [{ kind: 'cron', expression: '*/0 * * * ? *' }, 'expression', /step '0'/],
    [{ kind: 'cron', expression: '30-10 * * * ? *' }, 'expression', /goes backwards/],
    [{ kind: 'cron', expression: '0 0 1 1 ? 2020' }, 'expression', /never fires/],
    [{ kind: 'cron', expression: 'rate(5 minutes)' }, 'expression', /not a cron/],
    [{ kind: 'cron', expression: '0 * * * ? *', timeZone: 'Mars/Olympus' }, 'timeZone', /IANA time zone/],
    [{ kind: 'rate', seconds: 0 }, 'seconds', /at least 1/],
    [{ kind: 'rate', seconds: 1.5 }, 'seconds', /whole number/],
    [{ kind: 'rate', seconds: 60, timeZone: 'UTC' }, 'timeZone', /a rate schedule has no 'timeZone'/],
    [{ kind: 'weekly' }, 'kind', /'rate' or 'cron'/],
    [42, 'kind', /a schedule is/],
  ])('refuses %j, naming the field', (input, field, message) => {
    const err = scheduleError(() => parseSchedule(input, at('2026-01-01T00:00:00Z')));
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
  });

  it('reads rate and cron expressions', () => {
    expect(parseScheduleExpression('rate(5 minutes)')).toEqual({ kind: 'rate', seconds: 300 });
    expect(parseScheduleExpression('rate(1 hour)')).toEqual({ kind: 'rate', seconds: 3600 });
    expect(parseScheduleExpression('rate(30 seconds)')).toEqual({ kind: 'rate', seconds: 30 });
    expect(parseScheduleExpression('cron(0 * * * ? *)', 'Asia/Kolkata')).toEqual({ kind: 'cron', expression: 'cron(0 * * * ? *)', timeZone: 'Asia/Kolkata' });
    expect(scheduleError(() => parseScheduleExpression('rate(1 hours)')).message).toMatch(/singular/);
    expect(scheduleError(() => parseScheduleExpression('rate(5 weeks)')).message).toMatch(/seconds, minutes, hours or days/);
    expect(scheduleError(() => parseScheduleExpression('every hour')).message).toMatch(/neither rate/);
  });
});

describe('EventBridge Scheduler expressions', () => {
  it('writes rate and cron expressions', () => {
    expect(toSchedulerExpression({ kind: 'rate', seconds: 300 })).toBe('rate(5 minutes)');
    expect(toSchedulerExpression({ kind: 'rate', seconds: 60 })).toBe('rate(1 minute)');
    expect(toSchedulerExpression({ kind: 'rate', seconds: 3600 })).toBe('rate(1 hour)');
    expect(toSchedulerExpression({ kind: 'rate', seconds: 7200 })).toBe('rate(2 hours)');
    expect(toSchedulerExpression({ kind: 'rate', seconds: 172_800 })).toBe('rate(2 days)');
    expect(toSchedulerExpression(cron('0 * * * ? *'))).toBe('cron(0 * * * ? *)');
  });

  it('refuses a rate that is not whole minutes', () => {
    const err = scheduleError(() => toSchedulerExpression({ kind: 'rate', seconds: 90 }));
    expect(err.field).toBe('seconds');
    expect(err.message).toMatch(/whole minutes; 90 seconds/);
  });

  it('describes schedules for people', () => {
    expect(describeSchedule({ kind: 'rate', seconds: 300 })).toBe('every 5 minutes');
    expect(describeSchedule({ kind: 'rate', seconds: 3600 })).toBe('every hour');
    expect(describeSchedule(cron('0 * * * ? *', 'Europe/Berlin'))).toBe('cron(0 * * * ? *) in Europe/Berlin');
    expect(describeSchedule(null)).toBe('off');
    expect(approximateIntervalSeconds(cron('0 * * * ? *'), at('2026-01-01T10:17:00Z'))).toBe(3600);
  });
});

describe('nextFireTime', () => {
  it('fires on the hour, strictly after the given time', () => {
    const hourly = cron('0 * * * ? *');
    expect(iso(nextFireTime(hourly, at('2026-01-01T10:17:23Z')))).toBe('2026-01-01T11:00:00.000Z');
    expect(iso(nextFireTime(hourly, at('2026-01-01T11:00:00Z')))).toBe('2026-01-01T12:00:00.000Z');
    expect(iso(nextFireTime(hourly, at('2026-12-31T23:59:59Z')))).toBe('2027-01-01T00:00:00.000Z');
  });

  it('aligns rates to the epoch (rate(1 hour) on the UTC hour)', () => {
    expect(iso(nextFireTime({ kind: 'rate', seconds: 300 }, at('2026-01-01T10:17:23Z')))).toBe('2026-01-01T10:20:00.000Z');
    expect(iso(nextFireTime({ kind: 'rate', seconds: 3600 }, at('2026-01-01T10:17:23Z')))).toBe('2026-01-01T11:00:00.000Z');
    expect(iso(nextFireTime({ kind: 'rate', seconds: 7 }, 0))).toBe(iso(7000));
  });

  it('handles steps, lists, ranges and weekdays', () => {
    expect(fireTimes(cron('*/15 * * * ? *'), at('2026-01-01T10:17:00Z'), 3).map(iso)).toEqual([
      '2026-01-01T10:30:00.000Z',
      '2026-01-01T10:45:00.000Z',
      '2026-01-01T11:00:00.000Z',
    ]);
    expect(fireTimes(cron('5/20 8,12 * * ? *'), at('2026-01-01T08:30:00Z'), 4).map(iso)).toEqual([
      '2026-01-01T08:45:00.000Z',
      '2026-01-01T12:05:00.000Z',
      '2026-01-01T12:25:00.000Z',
      '2026-01-01T12:45:00.000Z',
    ]);
    // 2026-01-02 is a Friday: the next weekday 09:00 after Friday 10:00 is Monday the 5th.
    expect(iso(nextFireTime(cron('0 9 ? * MON-FRI *'), at('2026-01-02T10:00:00Z')))).toBe('2026-01-05T09:00:00.000Z');
    expect(iso(nextFireTime(cron('0 12 29 2 ? *'), at('2026-01-01T00:00:00Z')))).toBe('2028-02-29T12:00:00.000Z');
    expect(iso(nextFireTime(cron('0 0 1 JAN ? 2030-2031'), at('2026-01-01T00:00:00Z')))).toBe('2030-01-01T00:00:00.000Z');
    expect(nextFireTime(cron('0 0 1 1 ? 2030'), at('2030-06-01T00:00:00Z'))).toBeUndefined();
  });

  it('reads the fields on the wall clock of the time zone', () => {
    // India is UTC+05:30: the top of each local hour is half past in UTC.
    expect(fireTimes(cron('0 * * * ? *', 'Asia/Kolkata'), at('2026-01-01T10:17:00Z'), 2).map(iso)).toEqual([
      '2026-01-01T10:30:00.000Z',
      '2026-01-01T11:30:00.000Z',
    ]);
    const nineInBerlin = cron('0 9 * * ? *', 'Europe/Berlin');
    expect(iso(nextFireTime(nineInBerlin, at('2026-01-10T00:00:00Z')))).toBe('2026-01-10T08:00:00.000Z');
    expect(iso(nextFireTime(nineInBerlin, at('2026-07-10T00:00:00Z')))).toBe('2026-07-10T07:00:00.000Z');
  });

  it('skips a local time that does not exist when clocks go forward', () => {
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    const twoThirty = cron('30 2 * * ? *', 'America/New_York');
    expect(iso(nextFireTime(twoThirty, at('2026-03-07T08:00:00Z')))).toBe('2026-03-09T06:30:00.000Z');
    const hourly = cron('0 * * * ? *', 'America/New_York');
    expect(fireTimes(hourly, at('2026-03-08T05:30:00Z'), 3).map(iso)).toEqual([
      '2026-03-08T06:00:00.000Z', // 01:00 EST
      '2026-03-08T07:00:00.000Z', // 03:00 EDT (02:00 does not exist)
      '2026-03-08T08:00:00.000Z', // 04:00 EDT
    ]);
  });

  it('fires a repeated local time once when clocks go back', () => {
    // New York, 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:xx happens twice.
    const hourly = cron('0 * * * ? *', 'America/New_York');
    expect(fireTimes(hourly, at('2026-11-01T04:30:00Z'), 3).map(iso)).toEqual([
      '2026-11-01T05:00:00.000Z', // 01:00 EDT
      '2026-11-01T07:00:00.000Z', // 02:00 EST (the second 01:00 does not fire)
      '2026-11-01T08:00:00.000Z',
    ]);
    const daily = cron('30 1 * * ? *', 'America/New_York');
    expect(fireTimes(daily, at('2026-10-31T12:00:00Z'), 3).map(iso)).toEqual([
      '2026-11-01T05:30:00.000Z',
      '2026-11-02T06:30:00.000Z',
      '2026-11-03T06:30:00.000Z',
    ]);
  });
});
