/** A checkpoint schedule from what a user sent (an object, or an expression and a time zone), checked. */
import { isValidTimeZone } from './time-zone';
import { ScheduleError, type CheckpointSchedule, type CronSchedule, MAX_RATE_SECONDS } from './model';
import { cronError, parseCron } from './cron';
import { nextFireTime } from './next-fire';

export function checkRateSeconds(seconds: unknown): number {
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1) {
    throw new ScheduleError(`rate seconds must be a whole number of at least 1, got ${JSON.stringify(seconds)}`, 'seconds');
  }
  if (seconds > MAX_RATE_SECONDS) throw new ScheduleError(`rate seconds must be at most ${MAX_RATE_SECONDS} (366 days), got ${seconds}`, 'seconds');
  return seconds;
}

function checkTimeZone(timeZone: unknown): string {
  if (timeZone === undefined) return 'UTC';
  if (typeof timeZone !== 'string' || !isValidTimeZone(timeZone)) {
    throw new ScheduleError(`timeZone must be an IANA time zone name such as 'UTC' or 'Europe/Berlin', got ${JSON.stringify(timeZone)}`, 'timeZone');
  }
  return timeZone;
}

/**
 * Checks a schedule given as data (an API body, a stored setting) and returns it normalized:
 * `cron(...)` around the fields, upper case, time zone defaulted to UTC. Throws a ScheduleError
 * naming the field. `now` is used to refuse a cron that never fires again.
 */
export function parseSchedule(input: unknown, now: number = Date.now()): CheckpointSchedule {
  if (typeof input === 'string') return parseScheduleExpression(input, undefined, now);
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ScheduleError(`a schedule is { kind: 'rate', seconds } or { kind: 'cron', expression, timeZone }, got ${JSON.stringify(input)}`, 'kind');
  }
  const o = input as Record<string, unknown>;
  if (o.kind === 'rate') {
    for (const key of Object.keys(o)) if (key !== 'kind' && key !== 'seconds') throw new ScheduleError(`a rate schedule has no '${key}'`, key);
    return { kind: 'rate', seconds: checkRateSeconds(o.seconds) };
  }
  if (o.kind === 'cron') {
    for (const key of Object.keys(o)) {
      if (key !== 'kind' && key !== 'expression' && key !== 'timeZone') throw new ScheduleError(`a cron schedule has no '${key}'`, key);
    }
    if (typeof o.expression !== 'string') throw new ScheduleError(`cron expression must be a string, got ${JSON.stringify(o.expression)}`, 'expression');
    const timeZone = checkTimeZone(o.timeZone);
    const parsed = parseCron(o.expression);
    const schedule: CronSchedule = { kind: 'cron', expression: `cron(${parsed.fields})`, timeZone };
    if (nextFireTime(schedule, now) === undefined) throw cronError(`cron(${parsed.fields}) never fires after ${new Date(now).toISOString()}`);
    return schedule;
  }
  throw new ScheduleError(`schedule kind must be 'rate' or 'cron', got ${JSON.stringify(o.kind)}`, 'kind');
}

/**
 * A schedule from an expression: `rate(5 minutes)` (units: seconds, minutes, hours, days; seconds
 * are a local extension) or `cron(0 * * * ? *)` read in `timeZone` (default UTC).
 */
export function parseScheduleExpression(expression: string, timeZone?: string, now: number = Date.now()): CheckpointSchedule {
  const text = typeof expression === 'string' ? expression.trim() : '';
  const rate = /^rate\(\s*(\d+)\s+([a-z]+)\s*\)$/i.exec(text);
  if (rate) {
    const value = Number(rate[1]);
    const unit = rate[2]!.toLowerCase();
    const factor = { second: 1, seconds: 1, minute: 60, minutes: 60, hour: 3600, hours: 3600, day: 86_400, days: 86_400 }[unit];
    if (factor === undefined) throw new ScheduleError(`rate unit must be seconds, minutes, hours or days, got '${rate[2]}'`, 'expression');
    if ((value === 1) !== /^(second|minute|hour|day)$/.test(unit)) {
      throw new ScheduleError(`'${text}': use the singular unit for 1 and the plural otherwise (rate(1 hour), rate(5 minutes))`, 'expression');
    }
    if (timeZone !== undefined) checkTimeZone(timeZone);
    return { kind: 'rate', seconds: checkRateSeconds(value * factor) };
  }
  if (/^rate\(/i.test(text)) throw new ScheduleError(`'${text}' is not a valid rate expression; e.g. rate(5 minutes)`, 'expression');
  if (/^cron\(/i.test(text)) return parseSchedule({ kind: 'cron', expression: text, ...(timeZone !== undefined ? { timeZone } : {}) }, now);
  throw new ScheduleError(`'${text}' is neither rate(...) nor cron(...); e.g. rate(5 minutes) or cron(0 * * * ? *)`, 'expression');
}
