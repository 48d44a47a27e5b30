/**
 * Completion markers of hourly output partitions: `<prefix>/dt=YYYY-MM-DD/hour=HH/_SUCCESS` (an
 * empty object) once every subtask of the sink operator has committed output past the end of the
 * hour, i.e. under regional checkpoints, once every region has committed past it.
 *
 * Bookkeeping lives under `sinks/<jobId>/<operatorId>/`, never under the output prefix:
 *
 *   progress/<subtask>/<watermark>.json   the watermark of the subtask's last committed transaction,
 *                                         rounded down to the hour, in the key, so ONE listing gives
 *                                         every subtask's progress (reading P bodies at each of P
 *                                         subtasks' commits would be P x P GETs). A subtask writes
 *                                         its new key, then deletes its older ones; a reader takes
 *                                         the largest per subtask.
 *   hours/dt=YYYY-MM-DD/hour=HH           an hour partition holding at least one committed file and
 *                                         (as far as the writer knows) no marker yet. Removed once its
 *                                         marker is written.
 *
 * After each commit a sink subtask: indexes the hours it committed files into, then records its
 * progress, then (only when an indexed hour ends at or before its own watermark) lists every
 * subtask's progress, takes the minimum (a subtask with no progress counts as nothing committed),
 * and writes the marker of every indexed hour that ends at or before that minimum.
 *
 * Why no marker is missed: hour indexes are written before the progress that covers them, and
 * every progress write is followed by a check. The subtask whose progress write came last sees
 * every other progress and every index (S3 is strongly consistent for read-after-write and list).
 * Safe when several subtasks do it at once: a marker is the same empty object whoever writes it,
 * and deleting an index twice is harmless.
 *
 * Late data: a file committed into an hour after its marker was written (records behind the
 * watermark) does not remove the marker.
 */
import type { BlobInfo, BlobStore } from '../ports/blob-store';

export const SUCCESS_MARKER = '_SUCCESS';
export const HOUR_MS = 3_600_000;

const PARTITION = /^dt=(\d{4})-(\d{2})-(\d{2})\/hour=(\d{2})$/;
const PARTITION_OF_FILE = /(dt=\d{4}-\d{2}-\d{2}\/hour=\d{2})\/[^/]+$/;

/** Start (ms) of an hour partition `dt=YYYY-MM-DD/hour=HH`, or undefined when it is not one. */
export function hourPartitionStart(partition: string): number | undefined {
  const m = PARTITION.exec(partition);
  if (!m) return undefined;
  const [, y, mo, d, h] = m.map(Number) as [number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h);
}

/** End (exclusive, ms) of an hour partition: its start + 1 h. */
export function hourPartitionEnd(partition: string): number | undefined {
  const start = hourPartitionStart(partition);
  return start === undefined ? undefined : start + HOUR_MS;
}

/** The hour partition of an output file key (`…/dt=…/hour=HH/<file>`), or undefined. */
export function partitionOfFile(key: string): string | undefined {
  return PARTITION_OF_FILE.exec(key)?.[1];
}

export const sinkStatePrefix = (jobId: string, operatorId: string) => `sinks/${jobId}/${operatorId}/`;
export const progressPrefix = (jobId: string, operatorId: string) => `${sinkStatePrefix(jobId, operatorId)}progress/`;
export const progressKey = (jobId: string, operatorId: string, subtask: number, watermark: number) =>
  `${progressPrefix(jobId, operatorId)}${subtask}/${watermark}.json`;
export const pendingHoursPrefix = (jobId: string, operatorId: string) => `${sinkStatePrefix(jobId, operatorId)}hours/`;
export const markerKey = (outputPrefix: string, partition: string) => `${outputPrefix}/${partition}/${SUCCESS_MARKER}`;

const PROGRESS_KEY = /^(\d+)\/(-?\d+)\.json$/;

/** `{ subtask, watermark }` of a key under the progress prefix, or undefined for anything else. */
export function parseProgressKey(prefix: string, key: string): { subtask: number; watermark: number } | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const m = PROGRESS_KEY.exec(key.slice(prefix.length));
  if (!m) return undefined;
  const watermark = Number(m[2]);
  return Number.isSafeInteger(watermark) ? { subtask: Number(m[1]), watermark } : undefined;
}

/**
 * The committed watermark of each subtask 0..parallelism-1 (the largest it recorded), undefined
 * for a subtask that has recorded none. With `stopBelow`: the listing stops after the first page
 * that shows a subtask whose watermark is below it (the minimum is then below it too, so no hour
 * ending at or after it is due), and the rest stay undefined. At P=5000 a full listing is 5 pages
 * at every sink subtask's commit (the ingest job's P=5000 checkpoint: ~20k of its 40k S3
 * requests); while some subtask is behind, one usually does.
 */
export async function committedWatermarks(blobs: BlobStore, jobId: string, operatorId: string, parallelism: number, stopBelow?: number): Promise<(number | undefined)[]> {
  const prefix = progressPrefix(jobId, operatorId);
  const out = new Array<number | undefined>(parallelism).fill(undefined);
  const take = (key: string): { subtask: number; watermark: number } | undefined => {
    const p = parseProgressKey(prefix, key);
    if (!p || p.subtask >= parallelism) return undefined;
    if (out[p.subtask] === undefined || p.watermark > out[p.subtask]!) out[p.subtask] = p.watermark;
    return p;
  };
  const behind = (page: readonly BlobInfo[]): boolean => {
    // A subtask's keys are next to each other, and its newer one (written before its older is
    // deleted) may be on the next page: the last key's subtask is not judged on this page.
    const last = page.length > 0 ? parseProgressKey(prefix, page.at(-1)!.key)?.subtask : undefined;
    const seen = new Set<number>();
    for (const { key } of page) {
      const p = take(key);
      if (p && p.subtask !== last) seen.add(p.subtask);
    }
    if (stopBelow === undefined) return false;
    for (const subtask of seen) if (out[subtask]! < stopBelow) return true;
    return false;
  };
  let paged = false;
  const listed = await blobs.list(prefix, { until: (page) => ((paged = true), behind(page)) });
  // A store that does not page (a wrapper that drops the options) gave everything at once.
  if (!paged) for (const { key } of listed) take(key);
  return out;
}

/**
 * A watermark rounded down to its hour's start: the same hour boundaries lie at or below it. One
 * beyond the safe integers (an initial watermark at the bottom of the range) stays as it is.
 */
export function toHour(watermark: number): number {
  const hour = Math.floor(watermark / HOUR_MS) * HOUR_MS;
  return Number.isSafeInteger(hour) ? hour : watermark;
}

/** The minimum over every subtask; undefined when some subtask has committed nothing yet. */
export function minimumCommitted(watermarks: readonly (number | undefined)[]): number | undefined {
  let min = Infinity;
  for (const w of watermarks) {
    if (w === undefined) return undefined;
    if (w < min) min = w;
  }
  return watermarks.length === 0 ? undefined : min;
}

export interface PartitionMarkerScope {
  jobId: string;
  /** The sink operator. */
  operatorId: string;
  subtaskIndex: number;
  /** Subtasks of the sink operator: all of them must have committed past an hour. */
  parallelism: number;
  /** Output prefix, no trailing slash: markers go to `<outputPrefix>/<partition>/_SUCCESS`. */
  outputPrefix: string;
}

export interface MarkerOutcome {
  /** This subtask's committed watermark after the call, to the hour (undefined: none recorded yet). */
  committed: number | undefined;
  /** Minimum committed watermark over every subtask, when it was computed. */
  minimum?: number;
  /** Partitions whose marker this call wrote. */
  marked: string[];
}

/** The marker bookkeeping of one sink subtask. */
export class PartitionMarkers {
  /** This subtask's recorded watermark and its progress keys, loaded from S3 at first use. */
  private recorded: { watermark: number | undefined; keys: string[] } | undefined;
  /** Hours this instance has indexed (so each is written once per instance). */
  private readonly indexed = new Set<string>();
  /** Markers this instance wrote. */
  written = 0;
  /** The progress at which this instance last listed the pending hours (see `committed`). */
  private lookedAt: number | undefined;

  constructor(
    private readonly blobs: BlobStore,
    private readonly scope: PartitionMarkerScope,
  ) {
    if (!Number.isInteger(scope.parallelism) || scope.parallelism < 1) throw new Error(`partition markers: parallelism must be a positive integer, got ${scope.parallelism}`);
    if (scope.outputPrefix.endsWith('/')) throw new Error(`partition markers: output prefix '${scope.outputPrefix}' must not end with '/'`);
  }

  /**
   * Call after a transaction is committed, with the hour partitions it committed files into and
   * the watermark it was prepared with (undefined: unknown, e.g. staged by an older version;
   * progress is then not recorded). Idempotent: repeating a call writes nothing new.
   */
  async committed(partitions: readonly string[], watermark: number | undefined): Promise<MarkerOutcome> {
    const { blobs, scope } = this;
    const { jobId, operatorId, subtaskIndex } = scope;

    // 1. Index the hours that hold committed files: before the progress that covers them.
    const fresh = [...new Set(partitions)].filter((p) => !this.indexed.has(p));
    for (const p of fresh) if (hourPartitionStart(p) === undefined) throw new Error(`partition markers: '${p}' is not an hour partition (dt=YYYY-MM-DD/hour=HH)`);
    await Promise.all(fresh.map((p) => blobs.put(pendingHoursPrefix(jobId, operatorId) + p, '')));
    for (const p of fresh) this.indexed.add(p);

    // 2. Record this subtask's progress (never backwards), to the hour: whether an hour is due
    // depends only on which hour boundaries the watermarks have passed, so a watermark that moves
    // within its hour changes nothing a marker decides. Recording every move cost each sink subtask
    // a PUT, a DELETE and a LIST per checkpoint (at P=1000, 3,000 S3 calls right after each one).
    const recorded = await this.loadRecorded();
    if (watermark !== undefined) watermark = toHour(watermark);
    if (watermark !== undefined && (recorded.watermark === undefined || watermark > recorded.watermark)) {
      const key = progressKey(jobId, operatorId, subtaskIndex, watermark);
      const body = JSON.stringify({ subtask: subtaskIndex, watermark, at: new Date().toISOString() });
      await blobs.put(key, body);
      const older = recorded.keys.filter((k) => k !== key);
      if (older.length > 0) await blobs.delete(older); // after the put: a reader always sees one
      this.recorded = { watermark, keys: [key] };
    }
    const committed = this.recorded!.watermark;
    if (committed === undefined) return { committed, marked: [] };
    // Nothing new since this instance last looked (no hour indexed, no progress): no hour can have
    // become due through this subtask. An hour becomes due when the slowest subtask moves, and that
    // subtask looks then; each subtask writes its fact (index, progress) before it lists, so of two
    // racing subtasks one sees both. Saves a listing per idle sink subtask and checkpoint (the join
    // at P=4000 with no records made 4,000 LISTs a checkpoint, docs/scale.md).
    if (fresh.length === 0 && this.lookedAt === committed) return { committed, marked: [] };
    this.lookedAt = committed;

    // 3. Hours with data that might be due: no marker is possible past this subtask's own progress.
    const hoursPrefix = pendingHoursPrefix(jobId, operatorId);
    const pending = (await blobs.list(hoursPrefix))
      .map((b) => b.key.slice(hoursPrefix.length))
      .filter((p) => (hourPartitionEnd(p) ?? Infinity) <= committed);
    if (pending.length === 0) return { committed, marked: [] };

    // 4. The minimum over every subtask of the operator (no further than a subtask behind every pending hour).
    const earliest = Math.min(...pending.map((p) => hourPartitionEnd(p)!));
    const minimum = minimumCommitted(await committedWatermarks(blobs, jobId, operatorId, scope.parallelism, earliest));
    if (minimum === undefined) return { committed, marked: [] };
    const due = pending.filter((p) => hourPartitionEnd(p)! <= minimum);

    // 5. Markers for due hours that have none yet; then drop their index.
    const marked: string[] = [];
    await Promise.all(
      due.map(async (p) => {
        const key = markerKey(scope.outputPrefix, p);
        if (!(await blobs.head(key))) {
          await blobs.put(key, '');
          marked.push(p);
        }
      }),
    );
    if (due.length > 0) await blobs.delete(due.map((p) => hoursPrefix + p));
    this.written += marked.length;
    return { committed, minimum, marked: marked.sort() };
  }

  private async loadRecorded(): Promise<{ watermark: number | undefined; keys: string[] }> {
    if (this.recorded) return this.recorded;
    const { jobId, operatorId, subtaskIndex } = this.scope;
    const prefix = progressPrefix(jobId, operatorId);
    const keys: string[] = [];
    let watermark: number | undefined;
    for (const { key } of await this.blobs.list(`${prefix}${subtaskIndex}/`)) {
      const p = parseProgressKey(prefix, key);
      if (!p || p.subtask !== subtaskIndex) continue;
      keys.push(key);
      if (watermark === undefined || p.watermark > watermark) watermark = p.watermark;
    }
    return (this.recorded = { watermark, keys });
  }
}
