/** Cron expressions in EventBridge Scheduler syntax, parsed into the sets of values each field allows. */
import { ScheduleError, MIN_YEAR, MAX_YEAR } from './model';

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

export const cronError = (message: string) => new ScheduleError(message, 'expression');

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
