/**
 * Kinesis Data Streams source. Shards are the splits: shard `shardId-…N` is read by subtask
 * N % parallelism. The checkpoint keeps, per shard, the sequence number of the last record emitted;
 * a restore asks for the records AFTER_SEQUENCE_NUMBER it, so it replays exactly from there.
 *
 * - Resharding: the shard list is read again every `discoveryIntervalMs`; a new shard (a split's or
 *   merge's child) is read only once every parent has been read to its end. A parent read by the
 *   same subtask counts at once; one read by another subtask counts once that subtask's checkpoint
 *   holding it finished has completed (it leaves a marker in S3 then), so no restore can make the
 *   parent's tail come after its child's records.
 * - Read rate: GetRecords at most `callsPerSecond` (default and AWS maximum 5) per shard, up to
 *   10,000 records a call; throttling backs off and retries; an expired iterator (5 minutes) is
 *   renewed from the last position. A missing stream fails the subtask with a message naming it.
 * - Watermarks per shard, with idleness (see split-reader.ts).
 * - `bounded: true`: read what the stream held when the job first started (records that arrived
 *   by then, in every shard, children included), then end. The start time is in the checkpoint, so a
 *   restore stops at the same place.
 *
 * Enhanced fan-out (SubscribeToShard) is not used: shared throughput, polled.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Json, RuntimeContext, SourceBatch, SourceFunction } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import {
  ExpiredIteratorError,
  KINESIS_LIMITS,
  StreamNotFoundError,
  ThroughputExceededError,
  type KinesisStreams,
  type ShardInfo,
  type ShardStart,
  type StreamRecord,
} from '../ports/kinesis';
import { readProgress, splitOwner, SplitReader, writeProgress, type SplitRecord } from './split-reader';

export interface KinesisRecordMeta {
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  /** When Kinesis accepted the record (ms since the epoch). */
  arrivalTime: number;
}

export interface KinesisSourceOptions<O> {
  stream: string;
  /** Turns a record's bytes into the job's record (a JSON value). */
  deserialize(data: Uint8Array, meta: KinesisRecordMeta): O;
  /** Event time of a record (default: its arrival time). */
  eventTime?(record: O, meta: KinesisRecordMeta): number;
  /** Where a shard with no checkpointed position starts (default 'trim-horizon'). */
  start?: 'trim-horizon' | 'latest' | { timestamp: number };
  /** Read what the stream held at the job's first start, then end. */
  bounded?: boolean;
  maxOutOfOrdernessMs?: number;
  /** A shard with nothing new for this long stops holding the watermark back (default 60 s). */
  idleTimeoutMs?: number;
  /** GetRecords calls per second per shard (1-5, default 5). */
  callsPerSecond?: number;
  /** Records per GetRecords call (1-10,000, default 10,000). */
  recordsPerCall?: number;
  /** How often the shard list is read again for new shards (default 10 s). */
  discoveryIntervalMs?: number;
  /** The Kinesis port (default: the AWS client on the configured endpoint). */
  streams?: () => KinesisStreams;
  /** Wall clock for shard idleness (tests move it; default Date.now). */
  now?: () => number;
}

export class KinesisSourceError extends Error {
  override name = 'KinesisSourceError';
}

interface ShardState {
  info: ShardInfo;
  iterator?: string;
  /** Earliest wall-clock time of the next GetRecords. */
  nextCall: number;
  backoffMs: number;
}

export class KinesisSource<O extends Json> implements SourceFunction<O> {
  private streams!: KinesisStreams;
  private blobs!: BlobStore;
  private ctx!: RuntimeContext;
  private readonly reader: SplitReader<O>;
  private readonly shards = new Map<string, ShardState>();
  /** Every shard of the stream the last listing showed, by id (to know parents). */
  private known = new Map<string, ShardInfo>();
  /** Parents read to their end by other subtasks (their completed checkpoints' markers). */
  private readonly remoteEnded = new Set<string>();
  private readonly markerChecked = new Map<string, number>();
  /** Shards of this subtask waiting for their parents. */
  private waiting = new Map<string, ShardInfo>();
  private lastDiscovery = 0;
  /** First start's time: 'latest' starts there, `bounded` stops there. */
  private startedAt: number | undefined;
  private restored: Json | undefined;
  /** Per checkpoint id: the shards ended as of its snapshot (markers written when it completes). */
  private readonly endedAt = new Map<number, string[]>();
  private readonly marked = new Set<string>();
  private readonly gapMs: number;
  private readonly limit: number;

  constructor(private readonly options: KinesisSourceOptions<O>) {
    const calls = options.callsPerSecond ?? KINESIS_LIMITS.getRecordsCallsPerSecond;
    if (!(calls > 0 && calls <= KINESIS_LIMITS.getRecordsCallsPerSecond)) throw new KinesisSourceError(`KinesisSource '${options.stream}': callsPerSecond must be above 0 and at most ${KINESIS_LIMITS.getRecordsCallsPerSecond} (the GetRecords limit per shard), got ${calls}`);
    this.limit = options.recordsPerCall ?? KINESIS_LIMITS.getRecordsMaxRecords;
    if (!Number.isInteger(this.limit) || this.limit < 1 || this.limit > KINESIS_LIMITS.getRecordsMaxRecords) throw new KinesisSourceError(`KinesisSource '${options.stream}': recordsPerCall must be a whole number from 1 to ${KINESIS_LIMITS.getRecordsMaxRecords}, got ${this.limit}`);
    this.gapMs = Math.ceil(1000 / calls);
    this.reader = new SplitReader<O>({
      ...(options.maxOutOfOrdernessMs !== undefined ? { maxOutOfOrdernessMs: options.maxOutOfOrdernessMs } : {}),
      ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
  }

  async open(ctx: RuntimeContext): Promise<void> {
    this.ctx = ctx;
    this.blobs = ctx.blobs;
    this.streams = this.options.streams ? this.options.streams() : await defaultStreams();
    this.startedAt ??= Date.now();
    await this.discover(true);
  }

  restoreOffsets(offsets: Json): void {
    const s = offsets as { shards: Json; startedAt: number; cursor?: Json };
    this.startedAt = s.startedAt;
    this.restored = s.shards;
    // Called after open: every shard starts again from its restored position (or waits again).
    this.reader.reset();
    this.shards.clear();
    this.waiting.clear();
    this.classify([...this.known.values()]);
    this.reader.restoreCursor(s.cursor);
  }

  snapshotOffsets(checkpointId?: number): Json {
    const progress = this.reader.progress();
    if (checkpointId !== undefined) this.endedAt.set(checkpointId, progress.filter((p) => p.ended).map((p) => p.id));
    return { shards: writeProgress(progress), startedAt: this.startedAt ?? Date.now(), cursor: this.reader.cursorState() };
  }

  /** The shards this subtask had ended as of checkpoint N are durable now: tell the other subtasks. */
  async checkpointComplete(checkpointId: number): Promise<void> {
    const ended = this.endedAt.get(checkpointId) ?? [];
    for (const id of [...this.endedAt.keys()]) if (id <= checkpointId) this.endedAt.delete(id);
    await Promise.all(
      ended
        .filter((id) => !this.marked.has(id))
        .map(async (id) => {
          await this.blobs.put(this.markerKey(id), JSON.stringify({ shard: id, checkpointId, subtask: this.ctx.subtaskIndex }));
          this.marked.add(id);
        }),
    );
  }

  async poll(max: number): Promise<SourceBatch<O>> {
    if (Date.now() - this.lastDiscovery >= (this.options.discoveryIntervalMs ?? 10_000)) await this.discover(false);
    await this.releaseChildren();
    const now = Date.now();
    const due = this.reader.hungry().filter((s) => this.shards.get(s.id)!.nextCall <= now);
    await Promise.all(due.map((s) => this.fetch(s.id)));
    const records = this.reader.take(max);
    const done = this.options.bounded === true && this.waiting.size === 0 && this.reader.ids().every((id) => this.reader.drained(id));
    if (records.length === 0 && !done) {
      // Nothing to emit: wait for the next shard's turn (at most a GetRecords gap) instead of spinning.
      const next = Math.min(...this.reader.hungry().map((s) => this.shards.get(s.id)!.nextCall), now + this.gapMs);
      await sleep(Math.max(10, Math.min(this.gapMs, next - now)));
    }
    const watermark = this.reader.watermark();
    return { records, ...(watermark !== undefined ? { watermark } : {}), done };
  }

  private markerKey(shardId: string): string {
    return `sources/${this.ctx.jobId}/${this.ctx.operatorId}/kinesis-${this.options.stream}/ended/${shardId}`;
  }

  /** Reads the shard list; takes this subtask's shards whose parents have all ended, the others wait. */
  private async discover(first: boolean): Promise<void> {
    this.lastDiscovery = Date.now();
    let listed: ShardInfo[];
    try {
      listed = await this.streams.listShards(this.options.stream);
    } catch (error) {
      if (error instanceof StreamNotFoundError) throw new KinesisSourceError(`Kinesis stream '${this.options.stream}' does not exist (${this.streams.location}): ${error.message}`);
      throw error;
    }
    this.known = new Map(listed.map((s) => [s.shardId, s]));
    this.classify(listed);
    if (first) await this.releaseChildren();
  }

  /** This subtask's shards not seen before: restored ones read on from their position, new ones wait for their parents. */
  private classify(listed: ShardInfo[]): void {
    const restored = new Map(readProgress(this.restored).map((p) => [p.id, p]));
    for (const shard of listed) {
      if (splitOwner(shard.shardId, this.ctx.parallelism) !== this.ctx.subtaskIndex) continue;
      if (this.reader.has(shard.shardId) || this.waiting.has(shard.shardId)) continue;
      const progress = restored.get(shard.shardId);
      if (progress) this.take(shard, progress);
      else this.waiting.set(shard.shardId, shard);
    }
  }

  /** Moves waiting shards whose parents have ended into the reader. */
  private async releaseChildren(): Promise<void> {
    for (const [id, shard] of this.waiting) {
      const parents = [shard.parentShardId, shard.adjacentParentShardId].filter((p): p is string => p !== undefined && this.known.has(p));
      let ready = true;
      for (const parent of parents) if (!(await this.parentEnded(parent))) ready = false;
      if (!ready) continue;
      this.waiting.delete(id);
      this.take(shard, { id, position: null, ended: false, maxEventTime: Number.MIN_SAFE_INTEGER });
    }
  }

  private async parentEnded(parent: string): Promise<boolean> {
    if (splitOwner(parent, this.ctx.parallelism) === this.ctx.subtaskIndex) {
      // Ours: ended once read to its end and everything emitted (or ended by the bound).
      return this.reader.has(parent) && this.reader.drained(parent);
    }
    if (this.remoteEnded.has(parent)) return true;
    // Another subtask's: its marker, looked for at most once a second per parent.
    const now = Date.now();
    if (now - (this.markerChecked.get(parent) ?? 0) < 1000) return false;
    this.markerChecked.set(parent, now);
    const marker = await this.blobs.get(this.markerKey(parent));
    if (marker) this.remoteEnded.add(parent);
    return marker !== undefined;
  }

  private take(shard: ShardInfo, progress: { id: string; position: string | null; ended: boolean; maxEventTime: number }): void {
    this.shards.set(shard.shardId, { info: shard, nextCall: 0, backoffMs: 0 });
    this.reader.add(progress);
  }

  private startOf(shardId: string): ShardStart {
    const position = this.reader.get(shardId)!.position;
    if (position !== null) return { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: position };
    const start = this.options.start ?? 'trim-horizon';
    const info = this.shards.get(shardId)!.info;
    // A child shard holds only records written after its parents closed: from its beginning.
    if (start === 'trim-horizon' || info.parentShardId !== undefined) return { type: 'TRIM_HORIZON' };
    // 'latest' as of the first start (checkpointed), so a restore before any record starts at the same place.
    return { type: 'AT_TIMESTAMP', timestamp: start === 'latest' ? this.startedAt! : start.timestamp };
  }

  private async fetch(shardId: string): Promise<void> {
    const state = this.shards.get(shardId)!;
    state.nextCall = Date.now() + this.gapMs + state.backoffMs;
    try {
      state.iterator ??= await this.streams.getShardIterator(this.options.stream, shardId, this.startOf(shardId));
      const result = await this.streams.getRecords(state.iterator, this.limit);
      state.backoffMs = 0;
      const records: SplitRecord<O>[] = [];
      let reachedBound = false;
      for (const r of result.records) {
        if (this.options.bounded && r.arrivalTime > this.startedAt!) {
          reachedBound = true;
          break;
        }
        records.push(this.toRecord(shardId, r));
      }
      this.reader.fetched(shardId, records);
      if (result.nextIterator === undefined) {
        delete state.iterator;
        this.reader.end(shardId); // a closed shard read to its end
      } else state.iterator = result.nextIterator;
      // Bounded: the shard is done once a record past the start time came, or it was caught up after it.
      const caughtUp = result.records.length === 0 && result.millisBehindLatest === 0 && state.nextCall - this.gapMs > this.startedAt!;
      if (this.options.bounded && (reachedBound || caughtUp)) {
        delete state.iterator;
        this.reader.end(shardId);
      }
    } catch (error) {
      if (error instanceof ThroughputExceededError) {
        state.backoffMs = Math.min(5_000, Math.max(200, state.backoffMs * 2));
        state.nextCall = Date.now() + state.backoffMs;
        return;
      }
      if (error instanceof ExpiredIteratorError) {
        delete state.iterator; // renewed from the last emitted position at the next call
        return;
      }
      if (error instanceof StreamNotFoundError) throw new KinesisSourceError(`Kinesis stream '${this.options.stream}' or its shard ${shardId} does not exist (${this.streams.location}): ${error.message}`);
      throw error;
    }
  }

  private toRecord(shardId: string, r: StreamRecord): SplitRecord<O> {
    const meta: KinesisRecordMeta = { shardId, sequenceNumber: r.sequenceNumber, partitionKey: r.partitionKey, arrivalTime: r.arrivalTime };
    const value = this.options.deserialize(r.data, meta);
    return { value, position: r.sequenceNumber, eventTime: this.options.eventTime ? this.options.eventTime(value, meta) : r.arrivalTime };
  }
}

async function defaultStreams(): Promise<KinesisStreams> {
  const { AwsKinesisStreams } = await import('../aws/kinesis-streams');
  return new AwsKinesisStreams();
}
