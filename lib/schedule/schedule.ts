/**
 * Checkpoint schedules: a fixed rate, or a cron expression in EventBridge Scheduler syntax
 * evaluated on the wall clock of an IANA time zone (e.g. on the hour in Europe/Berlin).
 *
 * The same schedule drives the local scheduler (lib/schedule/local-scheduler.ts) and, in the cloud,
 * an EventBridge Scheduler schedule (`toSchedulerExpression`). The fire times follow EventBridge
 * Scheduler's rules:
 * - cron fields: `minutes hours day-of-month month day-of-week year`; one of the two day fields is
 *   `?`. Each field takes `*`, numbers, lists `a,b`, ranges `a-b` and steps `*\/n`, `a/n`, `a-b/n`;
 *   months JAN-DEC and weekdays SUN-SAT (1 = Sunday) by name too. `L`, `W` and `#` are refused.
 * - daylight saving time: a local time that does not exist (spring forward) is skipped; a local
 *   time that happens twice (fall back) fires once, at its first occurrence.
 * - rate: every `seconds`, aligned to the Unix epoch, so `rate(1 hour)` fires on the UTC hour and
 *   `rate(5 minutes)` at :00, :05, ... (in the cloud the schedule's StartDate is set to the first
 *   aligned time). EventBridge Scheduler takes whole minutes only; the local scheduler also takes
 *   seconds.
 */
import { formatInZone, fromWallClock, isValidTimeZone, wallClock } from './time-zone';

export interface RateSchedule {
  kind: 'rate';
  /** Seconds between fire times (whole, at least 1; whole minutes for EventBridge Scheduler). */
  seconds: number;
}

export interface CronSchedule {
  kind: 'cron';
  /** Six fields in EventBridge Scheduler syntax, with or without `cron(...)` around them. */
  expression: string;
  /** IANA time zone the fields are read in, e.g. `UTC`, `Europe/Berlin`. */
  timeZone: string;
}

export type CheckpointSchedule = RateSchedule | CronSchedule;

/** A schedule input that fails validation. `field` names the offending member (`seconds`, `expression`, `timeZone`, `kind`). */
export class ScheduleError extends Error {
  override name = 'ScheduleError';
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

export const MIN_YEAR = 1970;
export const MAX_YEAR = 2199;
/** Longest rate: one year. */
export const MAX_RATE_SECONDS = 366 * 86_400;

// ---------------------------------------------------------------------------------------------
// Cron parsing.

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  /** Names for values, e.g. JAN = 1. */
  names?: Record<string, number>;
  question?: boolean;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

const FIELDS: readonly FieldSpec[] = [
  { name: 'minutes', min: 0, max: 59 },
  { name: 'hours', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31, question: true },
  { name: 'month', min: 1, max: 12, names: Object.fromEntries(MONTHS.map((m, i) => [m, i + 1])) },
  { name: 'day-of-week', min: 1, max: 7, names: Object.fromEntries(WEEKDAYS.map((d, i) => [d, i + 1])), question: true },
  { name: 'year', min: MIN_YEAR, max: MAX_YEAR },
];

/** A parsed cron expression: allowed values per field; null day field = `?`. */
export interface ParsedCron {
  /** The six fields, normalized (single spaces, upper case). */
  fields: string;
  minutes: readonly number[];
  hours: readonly number[];
  daysOfMonth: ReadonlySet<number> | null;
  months: ReadonlySet<number>;
  daysOfWeek: ReadonlySet<number> | null;
  years: ReadonlySet<number>;
}

const cronError = (message: string) => new ScheduleError(message, 'expression');

function parseValue(text: string, spec: FieldSpec): number {
  const upper = text.toUpperCase();
  const named = spec.names?.[upper];
  if (named !== undefined) return named;
  if (!/^\d+$/.test(text)) {
    if (/[LW#]/i.test(text)) {
      throw cronError(`${spec.name} field: '${text}' uses L, W or #, which Sluice's scheduler does not support; use numbers, ranges, lists or steps`);
    }
    throw cronError(`${spec.name} field: '${text}' is not a number${spec.names ? ` or a name (${Object.keys(spec.names).join(', ')})` : ''}`);
  }
  const value = Number(text);
  if (value < spec.min || value > spec.max) throw cronError(`${spec.name} field: ${value} is out of range ${spec.min}-${spec.max}`);
  return value;
}

/** The values of one field, or null for `?`. */
function parseField(text: string, spec: FieldSpec): Set<number> | null {
  if (text === '?') {
    if (!spec.question) throw cronError(`${spec.name} field: '?' is only allowed in the day-of-month and day-of-week fields`);
    return null;
  }
  const values = new Set<number>();
  for (const element of text.split(',')) {
    if (element === '') throw cronError(`${spec.name} field: empty element in '${text}'`);
    if (element === '?') throw cronError(`${spec.name} field: '?' must stand alone`);
    const [range, stepText, extra] = element.split('/');
    if (extra !== undefined) throw cronError(`${spec.name} field: '${element}' has more than one '/'`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) throw cronError(`${spec.name} field: step '${stepText}' in '${element}' must be a whole number of at least 1`);
      step = Number(stepText);
    }
    let from: number;
    let to: number;
    if (range === '*') {
      from = spec.min;
      to = spec.max;
    } else {
      const bounds = range!.split('-');
      if (bounds.length > 2 || bounds.some((b) => b === '')) throw cronError(`${spec.name} field: '${element}' is not a valid range`);
      from = parseValue(bounds[0]!, spec);
      // `a/n` means from a to the end of the field.
      to = bounds.length === 2 ? parseValue(bounds[1]!, spec) : stepText !== undefined ? spec.max : from;
      if (to < from) throw cronError(`${spec.name} field: range '${element}' goes backwards`);
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

/** Strips `cron(...)` and normalizes spaces; the six fields or an error naming what is wrong. */
export function cronFields(expression: string): string {
  if (typeof expression !== 'string' || expression.trim() === '') throw cronError('cron expression is empty');
  let text = expression.trim();
  const wrapped = /^cron\((.*)\)$/i.exec(text);
  if (wrapped) text = wrapped[1]!.trim();
  else if (/^(cron|rate|at)\(/i.test(text)) throw cronError(`'${expression}' is not a cron(...) expression`);
  const parts = text.split(/\s+/);
  if (parts.length !== 6) {
    throw cronError(
      `cron expression needs 6 fields (minutes hours day-of-month month day-of-week year), got ${parts.length} in '${expression}'; e.g. cron(0 * * * ? *) for every hour`,
    );
  }
  return parts.map((p) => p.toUpperCase()).join(' ');
}

const parsedCache = new Map<string, ParsedCron>();

export function parseCron(expression: string): ParsedCron {
  const fields = cronFields(expression);
  const cached = parsedCache.get(fields);
  if (cached) return cached;
  const parts = fields.split(' ');
  const sets = parts.map((p, i) => parseField(p, FIELDS[i]!));
  const [minutes, hours, dom, months, dow, years] = sets;
  if ((dom === null) === (dow === null)) {
    throw cronError(
      `one of day-of-month and day-of-week must be '?' and the other not (EventBridge Scheduler rule), got '${parts[2]}' and '${parts[4]}'`,
    );
  }
  const parsed: ParsedCron = {
    fields,
    minutes: [...minutes!].sort((a, b) => a - b),
    hours: [...hours!].sort((a, b) => a - b),
    daysOfMonth: dom!,
    months: months!,
    daysOfWeek: dow!,
    years: years!,
  };
  if (parsedCache.size > 500) parsedCache.clear();
  parsedCache.set(fields, parsed);
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Validation.

function checkRateSeconds(seconds: unknown): number {
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

// ---------------------------------------------------------------------------------------------
// Fire times.

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

// ---------------------------------------------------------------------------------------------
// EventBridge Scheduler and display.

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
