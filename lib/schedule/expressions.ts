/** A schedule as EventBridge Scheduler takes it, and as people read it. */
import { formatInZone } from './time-zone';
import { ScheduleError, type CheckpointSchedule } from './model';
import { fireTimes } from './next-fire';
import { cronFields, parseCron } from './cron';
import { checkRateSeconds } from './parse';

/** The EventBridge Scheduler expression: `rate(5 minutes)`, `rate(1 hour)`, `cron(0 * * * ? *)`. */
export function toSchedulerExpression(schedule: CheckpointSchedule): string {
  if (schedule.kind === 'cron') return `cron(${parseCron(schedule.expression).fields})`;
  const seconds = checkRateSeconds(schedule.seconds);
  if (seconds % 60 !== 0) {
    throw new ScheduleError(`EventBridge Scheduler rates are whole minutes; ${seconds} seconds is not (use ${Math.max(1, Math.round(seconds / 60)) * 60})`, 'seconds');
  }
  const [value, unit] = seconds % 86_400 === 0 ? [seconds / 86_400, 'day'] : seconds % 3600 === 0 ? [seconds / 3600, 'hour'] : [seconds / 60, 'minute'];
  return `rate(${value} ${unit}${value === 1 ? '' : 's'})`;
}

/** The time zone EventBridge Scheduler evaluates the schedule in. */
export function schedulerTimeZone(schedule: CheckpointSchedule): string {
  return schedule.kind === 'cron' ? schedule.timeZone : 'UTC';
}

/** e.g. `every 5 minutes`, `cron(0 * * * ? *) in Europe/Berlin`. */
export function describeSchedule(schedule: CheckpointSchedule | null | undefined): string {
  if (!schedule) return 'off';
  if (schedule.kind === 'cron') return `${schedule.expression} in ${schedule.timeZone}`;
  const s = schedule.seconds;
  const [value, unit] = s % 86_400 === 0 ? [s / 86_400, 'day'] : s % 3600 === 0 ? [s / 3600, 'hour'] : s % 60 === 0 ? [s / 60, 'minute'] : [s, 'second'];
  return value === 1 ? `every ${unit}` : `every ${value} ${unit}s`;
}

/** A fire time as the schedule's zone shows it, e.g. `2026-03-08 03:00 (UTC-04:00)`. */
export function formatFireTime(schedule: CheckpointSchedule, instantMs: number): string {
  return formatInZone(instantMs, schedulerTimeZone(schedule));
}

/**
 * Seconds between checkpoints, for readers that only know `intervalSeconds`: the rate, or for a
 * cron the gap between its next two fire times after `now` (0 when it has fewer than two left).
 */
export function approximateIntervalSeconds(schedule: CheckpointSchedule | null | undefined, now: number = Date.now()): number {
  if (!schedule) return 0;
  if (schedule.kind === 'rate') return schedule.seconds;
  const [a, b] = fireTimes(schedule, now, 2);
  return a !== undefined && b !== undefined ? Math.round((b - a) / 1000) : 0;
}

export function sameSchedule(a: CheckpointSchedule | null | undefined, b: CheckpointSchedule | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  if (a.kind === 'rate' && b.kind === 'rate') return a.seconds === b.seconds;
  if (a.kind === 'cron' && b.kind === 'cron') return cronFields(a.expression) === cronFields(b.expression) && a.timeZone === b.timeZone;
  return false;
}
