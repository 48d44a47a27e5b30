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
