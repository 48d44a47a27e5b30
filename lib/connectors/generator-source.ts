/**
 * A deterministic, replayable generator source. The input is split into partitions; partition p
 * is read by subtask p % parallelism, and its offset is the number of records read from it. The
 * record at (partition, offset) is always the same, so a rewind to checkpointed offsets replays
 * exactly the same input.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Json, RuntimeContext, SourceBatch, SourceFunction } from '../api/functions';

/** Longest wait of a rate-limited poll with nothing due (an interrupt ends it sooner). */
const MAX_IDLE_WAIT_MS = 1000;

export interface GeneratorOptions<O extends Json> {
  partitions: number;
  /**
   * Records per partition (a whole number, or one per partition); with neither this nor `records`
   * the source is unbounded. A fraction is refused (a partition cannot hold half a record).
   */
  recordsPerPartition?: number | ((partition: number) => number);
  /** Records in all partitions together, split as evenly as they go (see evenShare). */
  records?: number;
  /** Records per second for this subtask; undefined or 0 for as fast as possible. */
  ratePerSecond?: number;
  generate(partition: number, offset: number): O;
  /** Event time of a record; per partition it must not decrease (it drives the watermark). */
  eventTime?(record: O, partition: number, offset: number): number;
}

export class GeneratorSource<O extends Json> implements SourceFunction<O> {
  private assigned: number[] = [];
  private offsets = new Map<number, number>();
  private lastEventTime = new Map<number, number>();
  private cursor = 0;
  /**
   * Records left in the current run of partition `cursor`. Runs have a fixed length whatever the
   * poll budget, so the order of the records is a function of the offsets alone: a source restored
   * from a checkpoint emits the same records in the same order (its consumers dedupe by position).
   */
  private runLeft = 0;
  private startedAt = 0;
  private emitted = 0;
  /** Opened to read again (a replay regenerated): no pacing. */
  private rereading = false;

  constructor(private readonly options: GeneratorOptions<O>) {
    if (!Number.isInteger(options.partitions) || options.partitions < 1) {
      throw new Error(`GeneratorSource: partitions must be a whole number, at least 1, got ${options.partitions}`);
    }
    const { records, recordsPerPartition: perPartition } = options;
    if (records !== undefined && perPartition !== undefined) throw new Error('GeneratorSource: give records (in all partitions) or recordsPerPartition, not both');
    if (records !== undefined) checkCount('records', records);
    if (typeof perPartition === 'number') checkCount('recordsPerPartition', perPartition);
  }

  async open(ctx: RuntimeContext): Promise<void> {
    this.assigned = [];
    for (let p = ctx.subtaskIndex; p < this.options.partitions; p += ctx.parallelism) this.assigned.push(p);
    // A per-partition function is checked for the partitions this subtask reads, before any is read.
    if (typeof this.options.recordsPerPartition === 'function') for (const p of this.assigned) checkCount(`recordsPerPartition(${p})`, this.limit(p));
    for (const p of this.assigned) if (!this.offsets.has(p)) this.offsets.set(p, 0);
    this.startedAt = Date.now();
    this.emitted = 0;
    this.rereading = ctx.rereading === true;
  }

  /** Ends a rate-limited wait at once (see SourceFunction.interrupt). */
  interrupt(): void {
    this.waking?.abort();
  }

  private waking: AbortController | undefined;

  async poll(max: number): Promise<SourceBatch<O>> {
    const rate = this.rereading ? undefined : this.options.ratePerSecond;
    let budget = max;
    if (rate) {
      const allowed = Math.floor(((Date.now() - this.startedAt) / 1000) * rate) - this.emitted;
      if (allowed <= 0) {
        // Until the next record is due, at most a second; a checkpoint, cancel or hand-over ends
        // the wait (`interrupt`). A 100 ms cap woke the P=4000 join's 8,000 idle sources 80,000
        // times a second (its one process idled at 0.95 vCPU, 0.77 without; docs/scale.md).
        const due = Math.ceil(((this.emitted + 1) / rate) * 1000 - (Date.now() - this.startedAt));
        const waking = (this.waking = new AbortController());
        await sleep(Math.max(1, Math.min(MAX_IDLE_WAIT_MS, due)), undefined, { signal: waking.signal }).catch(() => undefined);
        this.waking = undefined;
        return { records: [], watermark: this.watermark(), done: false };
      }
      budget = Math.min(budget, allowed);
    }
    const open = this.assigned.filter((p) => !this.exhausted(p));
    const records: O[] = [];
    // Round-robin over open partitions in small runs, so their event times advance together.
    const run = 64;
    while (records.length < budget && open.length > 0) {
      this.cursor = this.cursor % open.length;
      const p = open[this.cursor]!;
      if (this.runLeft <= 0) this.runLeft = run;
      let offset = this.offsets.get(p)!;
      const end = Math.min(offset + this.runLeft, this.limit(p), offset + budget - records.length);
      this.runLeft -= end - offset;
      const { generate, eventTime } = this.options;
      const from = offset;
      for (; offset < end; offset++) records.push(generate(p, offset));
      // Event time does not decrease within a partition: the run's last record carries its newest.
      if (eventTime && offset > from) this.lastEventTime.set(p, eventTime(records[records.length - 1]!, p, offset - 1));
      this.offsets.set(p, offset);
      if (this.exhausted(p)) {
        open.splice(this.cursor, 1);
        this.runLeft = 0;
      } else if (this.runLeft === 0) this.cursor++;
    }
    this.emitted += records.length;
    return { records, watermark: this.watermark(), done: open.length === 0 };
  }

  /** Event time every open partition has reached; finished partitions do not hold it back. */
  private watermark(): number | undefined {
    if (!this.options.eventTime) return undefined;
    let min = Infinity;
    for (const p of this.assigned) {
      if (this.exhausted(p)) continue;
      const t = this.lastEventTime.get(p);
      if (t === undefined) return undefined;
      if (t < min) min = t;
    }
    return min === Infinity ? undefined : min;
  }

  private limit(partition: number): number {
    const { records, recordsPerPartition: l } = this.options;
    if (records !== undefined) return evenShare(records, this.options.partitions, partition);
    return l === undefined ? Infinity : typeof l === 'number' ? l : l(partition);
  }

  private exhausted(partition: number): boolean {
    return this.offsets.get(partition)! >= this.limit(partition);
  }

  snapshotOffsets(): Json {
    return { offsets: [...this.offsets.entries()], lastEventTime: [...this.lastEventTime.entries()], cursor: this.cursor, runLeft: this.runLeft };
  }

  restoreOffsets(snapshot: Json): void {
    const s = snapshot as { offsets: [number, number][]; lastEventTime: [number, number][]; cursor: number; runLeft?: number };
    this.offsets = new Map(s.offsets);
    this.lastEventTime = new Map(s.lastEventTime);
    this.cursor = s.cursor;
    this.runLeft = s.runLeft ?? 0;
  }
}

/** Partition p's share of `total` records split over `partitions`: the first `total % partitions` take one more. */
export function evenShare(total: number, partitions: number, p: number): number {
  return Math.floor(total / partitions) + (p < total % partitions ? 1 : 0);
}

function checkCount(what: string, value: number): void {
  if (Number.isInteger(value) && value >= 0) return;
  const hint = Number.isFinite(value) && value > 0 ? ' (a partition holds whole records; pass `records` to split a total over the partitions exactly)' : '';
  throw new Error(`GeneratorSource: ${what} must be a whole number of records, 0 or more, got ${value}${hint}`);
}
