/**
 * `sluice logs`: the local runtime's log files of one job (.sluice/logs/<jobId>/: one file per
 * task unit, `control.log` for the control plane), pretty-printed. A Powertools JSON line becomes
 * `time level unit#attempt.invocation message extras`; an EMF metrics line is hidden unless
 * asked for; anything else (a crash's stack trace, a line printed by user code) passes through
 * as it is. All files are merged by time; `--follow` prints lines as they are appended.
 */
import { existsSync, readdirSync, readFileSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, type LogsRequest } from './parse';

export interface LogLineOptions {
  /** Print EMF metric lines (as `METRIC name=value ...`); default: hidden. */
  metrics?: boolean;
  /** The file's name without `.log`, shown when a line names no unit. */
  source?: string;
}

/** `12:00:01.234` (UTC) from an ISO timestamp; the raw value when it is not one. */
function clock(timestamp: unknown): string {
  if (typeof timestamp !== 'string') return '--:--:--.---';
  const t = Date.parse(timestamp);
  return Number.isFinite(t) ? new Date(t).toISOString().slice(11, 23) : timestamp;
}

/** Attributes worth a glance on a line, in this order, as `name=value`. */
const SHOWN = ['checkpointId', 'subtask', 'regionId', 'status', 'reason', 'recoveryMs', 'detectionMs', 'durationMs'] as const;

/** Who wrote a line: a unit as `unit#attempt` (`.invocation` after a hand-over), or `control`. */
function who(line: Record<string, unknown>, source: string | undefined): string {
  const unit = typeof line.unitId === 'string' ? line.unitId : undefined;
  if (line.plane === 'control' || (!unit && source === 'control')) return 'control';
  if (!unit) return source ?? '-';
  const attempt = line.attempt !== undefined ? `#${line.attempt}` : '';
  const invocation = typeof line.invocation === 'number' && line.invocation > 0 ? `.${line.invocation}` : '';
  return `${unit}${attempt}${invocation}`;
}

/**
 * One line of a log file as printed, or undefined for a line not shown (an EMF line without
 * `metrics`, an empty line).
 */
export function formatLogLine(raw: string, options: LogLineOptions = {}): string | undefined {
  if (raw.trim() === '') return undefined;
  let line: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return raw;
    line = parsed as Record<string, unknown>;
  } catch {
    return raw;
  }
  const aws = line._aws as { Timestamp?: number; CloudWatchMetrics?: { Dimensions?: string[][]; Metrics?: { Name: string }[] }[] } | undefined;
  if (aws?.CloudWatchMetrics) {
    if (!options.metrics) return undefined;
    const spec = aws.CloudWatchMetrics[0];
    const dims = (spec?.Dimensions?.[0] ?? []).map((d) => `${d}=${String(line[d])}`);
    const values = (spec?.Metrics ?? []).map((m) => `${m.Name}=${JSON.stringify(line[m.Name])}`);
    const time = typeof aws.Timestamp === 'number' ? new Date(aws.Timestamp).toISOString() : undefined;
    return `${clock(time)} METRIC ${dims.join(' ')}  ${values.join(' ')}`;
  }
  if (typeof line.message !== 'string' && typeof line.level !== 'string') return raw;
  const writer = who(line, options.source);
  const extras: string[] = [];
  if (writer === 'control' && typeof line.unitId === 'string') extras.push(`unit=${line.unitId}${line.attempt !== undefined ? `#${line.attempt}` : ''}`);
  for (const key of SHOWN) if (line[key] !== undefined && line[key] !== null) extras.push(`${key}=${typeof line[key] === 'string' ? line[key] : JSON.stringify(line[key])}`);
  const error = line.error as { message?: unknown; stack?: unknown } | undefined;
  if (error && typeof error === 'object' && typeof error.message === 'string') extras.push(`error=${error.message}`);
  const level = String(line.level ?? 'INFO').padEnd(5);
  return `${clock(line.timestamp)} ${level} ${writer.padEnd(20)} ${String(line.message ?? '')}${extras.length > 0 ? `  ${extras.join(' ')}` : ''}`;
}

/** The time of a line for merging (ms), or undefined for a line without one. */
function timeOf(raw: string): number | undefined {
  try {
    const line = JSON.parse(raw) as { timestamp?: unknown; _aws?: { Timestamp?: unknown } };
    if (typeof line?.timestamp === 'string') return Date.parse(line.timestamp);
    if (typeof line?._aws?.Timestamp === 'number') return line._aws.Timestamp;
  } catch {
    // not JSON: it goes with the line before it
  }
  return undefined;
}

/** The log files to read: the job's directory, all `*.log` files or the one unit's. */
export function jobLogFiles(dir: string, request: Pick<LogsRequest, 'jobId' | 'unit'>): string[] {
  const jobDir = join(dir, request.jobId);
  if (!existsSync(jobDir) || !statSync(jobDir).isDirectory()) {
    throw new CliError(`no logs for job '${request.jobId}' under ${dir} (the local runtime writes them: npm run demo, npm run dev; a deployed job logs to CloudWatch Logs)`);
  }
  const files = readdirSync(jobDir)
    .filter((f) => f.endsWith('.log'))
    .sort();
  if (request.unit === undefined) return files.map((f) => join(jobDir, f));
  const wanted = `${request.unit}.log`;
  if (!files.includes(wanted)) {
    throw new CliError(`job '${request.jobId}' has no log of '${request.unit}'; there are: ${files.map((f) => f.slice(0, -4)).join(', ') || 'none yet'}`);
  }
  return [join(jobDir, wanted)];
}

const sourceOf = (file: string) => file.slice(file.lastIndexOf('/') + 1).replace(/\.log$/, '');

/**
 * Every line of the files, merged by time (stable: lines of one file keep their order, and a line
 * without a time stays right after the line before it), formatted.
 */
export function mergedLogLines(files: readonly string[], options: LogLineOptions = {}): string[] {
  const entries: { time: number; file: number; seq: number; text: string }[] = [];
  files.forEach((file, f) => {
    let last = 0;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((raw, seq) => {
        const t = timeOf(raw);
        if (t !== undefined && Number.isFinite(t)) last = t;
        const text = formatLogLine(raw, { ...options, source: sourceOf(file) });
        if (text !== undefined) entries.push({ time: last, file: f, seq, text });
      });
  });
  entries.sort((a, b) => a.time - b.time || a.file - b.file || a.seq - b.seq);
  return entries.map((e) => e.text);
}

export interface FollowIo {
  write(line: string): void;
  /** Resolves after `ms`, or early when the signal aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  signal: AbortSignal;
}

/**
 * Prints what exists (merged by time), then every line appended to the files (and to files that
 * appear: a unit started later) until the signal aborts. Files are polled; a partial last line
 * waits for its newline.
 */
export async function followLogs(dir: string, request: LogsRequest, io: FollowIo, pollMs = 500): Promise<void> {
  const options = { metrics: request.metrics };
  const files = jobLogFiles(dir, request);
  for (const line of mergedLogLines(files, options)) io.write(line);
  const offsets = new Map(files.map((f) => [f, statSync(f).size]));
  // Bytes after a file's last newline: a line still being written (maybe a split UTF-8 character).
  const partial = new Map<string, Buffer>();
  while (!io.signal.aborted) {
    await io.sleep(pollMs, io.signal);
    if (io.signal.aborted) break;
    const current = request.unit === undefined ? jobLogFiles(dir, request) : files;
    for (const file of current) {
      const size = statSync(file).size;
      const from = offsets.get(file) ?? 0;
      if (size <= from) continue;
      const buffer = Buffer.alloc(size - from);
      const fd = openSync(file, 'r');
      try {
        readSync(fd, buffer, 0, buffer.length, from);
      } finally {
        closeSync(fd);
      }
      offsets.set(file, size);
      const bytes = Buffer.concat([partial.get(file) ?? Buffer.alloc(0), buffer]);
      const end = bytes.lastIndexOf(0x0a);
      partial.set(file, bytes.subarray(end + 1));
      if (end < 0) continue;
      for (const raw of bytes.subarray(0, end).toString('utf8').split('\n')) {
        const out = formatLogLine(raw, { ...options, source: sourceOf(file) });
        if (out !== undefined) io.write(out);
      }
    }
  }
}
