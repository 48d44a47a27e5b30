/**
 * Wall-clock time in an IANA time zone, from the platform's Intl data (no bundled tz database).
 *
 * `wallClock(instant, zone)` is the local date and time at an instant; `fromWallClock(...)` is the
 * other way: every instant that shows a given local time (none in a spring-forward gap, two in a
 * fall-back overlap), earliest first.
 */

export interface WallClock {
  year: number;
  /** 1-12 */
  month: number;
  /** 1-31 */
  day: number;
  /** 0-23 */
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when the platform knows this IANA time zone name. */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone.trim() === '') return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The local date and time in `timeZone` at `instantMs` (seconds precision). */
export function wallClock(instantMs: number, timeZone: string): WallClock {
  const parts = formatter(timeZone).formatToParts(new Date(instantMs));
  const get = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((p) => p.type === type)?.value);
  const era = parts.find((p) => p.type === 'era')?.value;
  const year = era === 'BC' || era === 'B' ? 1 - get('year') : get('year');
  return { year, month: get('month'), day: get('day'), hour: get('hour') % 24, minute: get('minute'), second: get('second') };
}

/** The wall clock read as if it were UTC, in ms: `wallAsUtc - offset = instant`. */
export function wallAsUtc(w: WallClock): number {
  const d = new Date(0);
  d.setUTCFullYear(w.year, w.month - 1, w.day);
  d.setUTCHours(w.hour, w.minute, w.second, 0);
  return d.getTime();
}

/** UTC offset of the zone at an instant, in ms (east of Greenwich positive). */
export function zoneOffsetMs(instantMs: number, timeZone: string): number {
  const whole = Math.floor(instantMs / 1000) * 1000;
  return wallAsUtc(wallClock(whole, timeZone)) - whole;
}

const DAY_MS = 86_400_000;

/**
 * Every instant at which the zone's clock shows this local time, earliest first: one normally,
 * none in a spring-forward gap, two in a fall-back overlap. Assumes at most one offset change in
 * the two days around the time, which holds for every real zone.
 */
export function fromWallClock(w: WallClock, timeZone: string): number[] {
  const local = wallAsUtc(w);
  const offsets = new Set([zoneOffsetMs(local - DAY_MS, timeZone), zoneOffsetMs(local, timeZone), zoneOffsetMs(local + DAY_MS, timeZone)]);
  const found = new Set<number>();
  for (const offset of offsets) {
    const instant = local - offset;
    if (wallAsUtc(wallClock(instant, timeZone)) === local) found.add(instant);
  }
  return [...found].sort((a, b) => a - b);
}

/** ISO-like local time with its offset, e.g. `2026-03-08 03:00 (UTC-04:00)`, for messages and the CLI. */
export function formatInZone(instantMs: number, timeZone: string): string {
  const w = wallClock(instantMs, timeZone);
  const offset = zoneOffsetMs(instantMs, timeZone) / 60_000;
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)} ${pad(w.hour)}:${pad(w.minute)} (UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)})`;
}
