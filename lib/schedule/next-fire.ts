/** When a schedule fires next: the rate's epoch-aligned steps, or the cron's wall-clock search. */
import { fromWallClock, wallClock } from './time-zone';
import { type CheckpointSchedule, MIN_YEAR, MAX_YEAR } from './model';
import { parseCron, type ParsedCron } from './cron';

const daysInMonth = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();
/** EventBridge weekday: 1 = Sunday ... 7 = Saturday. */
const weekday = (year: number, month: number, day: number) => new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 1;

function dayMatches(c: ParsedCron, year: number, month: number, day: number): boolean {
  if (c.daysOfMonth !== null) return c.daysOfMonth.has(day);
  return c.daysOfWeek!.has(weekday(year, month, day));
}

function nextCronTime(c: ParsedCron, timeZone: string, afterMs: number): number | undefined {
  const start = wallClock(afterMs, timeZone);
  // Wall times well before the start's cannot be later instants (DST moves clocks by hours at most).
  const skipBefore = start.hour * 60 + start.minute - 180;
  let year = start.year;
  let month = start.month;
  let day = start.day;
  let first = true;
  const nextMonth = () => {
    day = 1;
    month++;
    if (month > 12) {
      month = 1;
      year++;
    }
    first = false;
  };
  while (year <= MAX_YEAR) {
    if (year < MIN_YEAR || !c.years.has(year)) {
      let y = Math.max(year + 1, MIN_YEAR);
      while (y <= MAX_YEAR && !c.years.has(y)) y++;
      year = y;
      month = 1;
      day = 1;
      first = false;
      continue;
    }
    if (!c.months.has(month) || day > daysInMonth(year, month)) {
      nextMonth();
      continue;
    }
    if (dayMatches(c, year, month, day)) {
      for (const hour of c.hours) {
        for (const minute of c.minutes) {
          if (first && hour * 60 + minute < skipBefore) continue;
          // Only the first occurrence of a repeated local time fires; a missing one is skipped.
          const instant = fromWallClock({ year, month, day, hour, minute, second: 0 }, timeZone)[0];
          if (instant !== undefined && instant > afterMs) return instant;
        }
      }
    }
    day++;
    first = false;
  }
  return undefined;
}

/**
 * The first fire time strictly after `afterMs`, or undefined when there is none (a cron whose
 * years are all past). The schedule must be valid (see parseSchedule).
 */
export function nextFireTime(schedule: CheckpointSchedule, afterMs: number): number | undefined {
  if (schedule.kind === 'rate') {
    const period = schedule.seconds * 1000;
    return (Math.floor(afterMs / period) + 1) * period;
  }
  return nextCronTime(parseCron(schedule.expression), schedule.timeZone, afterMs);
}

/** The next `count` fire times after `afterMs` (fewer when the schedule runs out). */
export function fireTimes(schedule: CheckpointSchedule, afterMs: number, count: number): number[] {
  const out: number[] = [];
  let t = afterMs;
  while (out.length < count) {
    const next = nextFireTime(schedule, t);
    if (next === undefined) break;
    out.push(next);
    t = next;
  }
  return out;
}
