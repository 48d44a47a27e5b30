/**
 * What the stream sources (Kinesis shards, Kafka partitions) share: a subtask reads a set of
 * *splits*, each an ordered log with positions. This keeps, per split, the records fetched and not
 * yet emitted, the position of the last record emitted (what a checkpoint keeps: a restore
 * re-reads from just after it, so records fetched but not emitted are fetched again), whether the
 * split has ended, and its event-time progress for the watermark.
 *
 * Emission order: round-robin over the splits in id order, in runs of at most `run` records a
 * split, so no split starves another and their event times advance together. Per split the order
 * is the log's and a restore replays it exactly; how splits interleave depends on what each fetch
 * returned, which a replay does not repeat when more data had arrived by then: the exactly-once
 * strategies (`region`, `full`) restore the consumers together with the source, so they do not
 * depend on it; under `single` a restored source's consumer counts what differs.
 *
 * Watermark: per split the largest event time emitted, less the allowed out-of-orderness, less 1
 * (as Flink's bounded out-of-orderness: an element at exactly that time may still come); the
 * subtask's is the least over its splits, leaving out ended splits and splits idle (nothing
 * fetched) for `idleTimeoutMs`, so one quiet shard or partition does not hold the job back. With
 * every split idle or ended, no watermark is given (the last one stands).
 */
import type { Json } from '../api/functions';

export interface SplitRecord<O> {
  value: O;
  /** Position of this record in its split (a sequence number, an offset), as a string. */
  position: string;
  eventTime: number;
}

export interface SplitProgress {
  id: string;
  /** Position of the last record emitted; null when none was yet. */
  position: string | null;
  /** The split has ended: read to its end (a closed shard) or to the bound of a bounded read. */
  ended: boolean;
  /** Largest event time emitted (MIN_SAFE_INTEGER: none). */
  maxEventTime: number;
}

interface Split<O> extends SplitProgress {
  buffer: SplitRecord<O>[];
  /** Wall-clock time of the last fetch that returned records (or of the split's start). */
  lastData: number;
}

export interface SplitReaderOptions {
  /** Records one split emits before the next split's turn (default 500). */
  run?: number;
  maxOutOfOrdernessMs?: number;
  /** A split that fetched nothing for this long stops holding the watermark back (default 60 s; 0: never). */
  idleTimeoutMs?: number;
  now?: () => number;
}

export class SplitReader<O> {
  private readonly splits = new Map<string, Split<O>>();
  private order: string[] = [];
  private cursor = 0;
  private runLeft = 0;
  private readonly run: number;
  private readonly now: () => number;

  constructor(private readonly options: SplitReaderOptions = {}) {
    this.run = options.run ?? 500;
    this.now = options.now ?? Date.now;
  }

  /** Adds a split (from its restored progress, or fresh). */
  add(progress: SplitProgress): void {
    if (this.splits.has(progress.id)) return;
    this.splits.set(progress.id, { ...progress, buffer: [], lastData: this.now() });
    this.order = [...this.splits.keys()].sort(compareIds);
  }

  /** Forgets every split (a restore adds them again). */
  reset(): void {
    this.splits.clear();
    this.order = [];
    this.cursor = 0;
    this.runLeft = 0;
  }

  has(id: string): boolean {
    return this.splits.has(id);
  }

  get(id: string): SplitProgress | undefined {
    return this.splits.get(id);
  }

  /** Splits that still read and have nothing buffered: the ones to fetch for. */
  hungry(): SplitProgress[] {
    return this.order.map((id) => this.splits.get(id)!).filter((s) => !s.ended && s.buffer.length === 0);
  }

  /** Records fetched for a split (in order, after its last position). */
  fetched(id: string, records: SplitRecord<O>[]): void {
    const split = this.splits.get(id)!;
    if (records.length === 0) return;
    split.buffer.push(...records);
    split.lastData = this.now();
  }

  /**
   * Positions past records that carry no data (Kafka's transaction markers), once everything before
   * them is emitted: a restore does not read them again.
   */
  advance(id: string, position: string): void {
    const split = this.splits.get(id)!;
    if (split.buffer.length === 0) split.position = position;
  }

  /** The split has nothing more to read (after what is buffered). */
  end(id: string): void {
    this.splits.get(id)!.ended = true;
  }

  /** Splits that ended and have emitted everything they fetched. */
  drained(id: string): boolean {
    const s = this.splits.get(id)!;
    return s.ended && s.buffer.length === 0;
  }

  /** Up to `max` records, round-robin over the splits in runs. */
  take(max: number): O[] {
    const out: O[] = [];
    let visited = 0;
    while (out.length < max && this.order.length > 0 && visited <= this.order.length) {
      this.cursor %= this.order.length;
      const split = this.splits.get(this.order[this.cursor]!)!;
      if (this.runLeft <= 0) this.runLeft = this.run;
      const n = Math.min(this.runLeft, max - out.length, split.buffer.length);
      if (n > 0) {
        const taken = split.buffer.splice(0, n);
        for (const r of taken) {
          out.push(r.value);
          if (r.eventTime > split.maxEventTime) split.maxEventTime = r.eventTime;
        }
        split.position = taken[taken.length - 1]!.position;
        this.runLeft -= n;
        visited = 0;
      }
      if (this.runLeft === 0 || split.buffer.length === 0) {
        this.cursor++;
        this.runLeft = 0;
        visited++;
      }
    }
    return out;
  }

  watermark(): number | undefined {
    const now = this.now();
    const idle = this.options.idleTimeoutMs ?? 60_000;
    let min: number | undefined;
    for (const s of this.splits.values()) {
      if (s.ended && s.buffer.length === 0) continue;
      if (idle > 0 && s.buffer.length === 0 && now - s.lastData >= idle) continue;
      if (s.maxEventTime === Number.MIN_SAFE_INTEGER) return undefined; // a split that has emitted nothing yet holds it
      const w = s.maxEventTime - (this.options.maxOutOfOrdernessMs ?? 0) - 1;
      if (min === undefined || w < min) min = w;
    }
    return min;
  }

  progress(): SplitProgress[] {
    return this.order.map((id) => {
      const { position, ended, maxEventTime } = this.splits.get(id)!;
      // Ended with records still buffered is not ended for a restore: they are read again.
      return { id, position, ended: ended && this.splits.get(id)!.buffer.length === 0, maxEventTime };
    });
  }

  /** Cursor state, so a restore continues the round-robin where the checkpoint was. */
  cursorState(): Json {
    return [this.cursor, this.runLeft];
  }

  restoreCursor(state: Json | undefined): void {
    if (!Array.isArray(state)) return;
    this.cursor = Number(state[0]) || 0;
    this.runLeft = Number(state[1]) || 0;
  }

  ids(): string[] {
    return [...this.order];
  }
}

/** Orders ids by their digits when both end in a number (shardId-000000000012, topic-3), else as text. */
export function compareIds(a: string, b: string): number {
  const x = /(\d+)$/.exec(a);
  const y = /(\d+)$/.exec(b);
  if (x && y && a.slice(0, x.index) === b.slice(0, y.index)) return Number(x[1]) - Number(y[1]);
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The subtask that reads a split: by the number its id ends with (even spread), else by a hash of the id. */
export function splitOwner(id: string, parallelism: number): number {
  const digits = /(\d+)$/.exec(id);
  if (digits) return Number(BigInt(digits[1]!) % BigInt(parallelism));
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return h % parallelism;
}

export const readProgress = (json: Json | undefined): SplitProgress[] =>
  Array.isArray(json) ? (json as [string, string | null, boolean, number][]).map(([id, position, ended, maxEventTime]) => ({ id, position, ended, maxEventTime })) : [];

export const writeProgress = (progress: SplitProgress[]): Json => progress.map((p) => [p.id, p.position, p.ended, p.maxEventTime]);
