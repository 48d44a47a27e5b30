/**
 * In-memory Kinesis Data Streams for unit tests, as strict as AWS where the connectors can tell:
 * GetRecords at most 5 calls a second per shard and 10,000 records / 10 MiB a call, iterators that
 * expire after 5 minutes, PutRecords limits and per-shard write rates (entries fail one by one),
 * and resharding as AWS does it: a split or merge closes the parents, which keep their records
 * (readable to their end, then no next iterator), and the children start empty.
 */
import type { Clock } from '../ports/clock';
import {
  ExpiredIteratorError,
  KINESIS_LIMITS as L,
  KinesisArgumentError,
  StreamNotFoundError,
  ThroughputExceededError,
  type GetRecordsResult,
  type KinesisStreams,
  type PutRecordsEntry,
  type PutRecordsResult,
  type ShardInfo,
  type ShardStart,
  type StreamRecord,
} from '../ports/kinesis';
import { createHash } from 'node:crypto';

const HASH_SPACE = 1n << 128n;

interface Shard {
  info: ShardInfo;
  start: bigint;
  end: bigint;
  open: boolean;
  records: StreamRecord[];
  /** Times of the last GetRecords calls (within the last second). */
  reads: number[];
  /** Writes within the last second: [time, bytes]. */
  writes: [number, number][];
}

interface Iterator {
  stream: string;
  shardId: string;
  /** Index of the next record in the shard. */
  next: number;
  issuedAt: number;
}

export class MemoryKinesis implements KinesisStreams {
  readonly location = 'memory://kinesis';
  private readonly streams = new Map<string, Shard[]>();
  private readonly iterators = new Map<string, Iterator>();
  private sequence = 49_000_000_000_000_000_000n;
  private iteratorCount = 0;
  /** GetRecords calls refused for throughput, per shard id (tests read it). */
  readonly throttled = new Map<string, number>();

  constructor(private readonly clock: Pick<Clock, 'now'> = { now: () => Date.now() }) {}

  createStream(stream: string, shardCount: number): void {
    if (this.streams.has(stream)) throw new KinesisArgumentError(`stream ${stream} already exists`);
    const step = HASH_SPACE / BigInt(shardCount);
    const shards: Shard[] = [];
    for (let i = 0; i < shardCount; i++) {
      const start = step * BigInt(i);
      const end = i === shardCount - 1 ? HASH_SPACE - 1n : step * BigInt(i + 1) - 1n;
      shards.push(this.shard(shards.length, start, end));
    }
    this.streams.set(stream, shards);
  }

  splitShard(stream: string, shardId: string, newStartingHashKey: bigint): void {
    const shards = this.stream(stream);
    const parent = this.openShard(shards, shardId);
    if (!(newStartingHashKey > parent.start && newStartingHashKey <= parent.end)) throw new KinesisArgumentError(`NewStartingHashKey ${newStartingHashKey} is outside shard ${shardId}`);
    this.close(parent);
    shards.push(this.shard(shards.length, parent.start, newStartingHashKey - 1n, shardId), this.shard(shards.length + 1, newStartingHashKey, parent.end, shardId));
  }

  mergeShards(stream: string, shardId: string, adjacentShardId: string): void {
    const shards = this.stream(stream);
    const a = this.openShard(shards, shardId);
    const b = this.openShard(shards, adjacentShardId);
    if (a.end + 1n !== b.start && b.end + 1n !== a.start) throw new KinesisArgumentError(`shards ${shardId} and ${adjacentShardId} are not adjacent`);
    this.close(a);
    this.close(b);
    shards.push(this.shard(shards.length, a.start < b.start ? a.start : b.start, a.end > b.end ? a.end : b.end, shardId, adjacentShardId));
  }

  async listShards(stream: string): Promise<ShardInfo[]> {
    return this.stream(stream).map((s) => structuredClone(s.info));
  }

  async getShardIterator(stream: string, shardId: string, start: ShardStart): Promise<string> {
    const shard = this.stream(stream).find((s) => s.info.shardId === shardId);
    if (!shard) throw new StreamNotFoundError(`Shard ${shardId} in stream ${stream} does not exist`);
    let next: number;
    switch (start.type) {
      case 'TRIM_HORIZON':
        next = 0;
        break;
      case 'LATEST':
        next = shard.records.length;
        break;
      case 'AT_TIMESTAMP':
        next = shard.records.findIndex((r) => r.arrivalTime >= start.timestamp);
        if (next < 0) next = shard.records.length;
        break;
      default: {
        const seq = BigInt(start.sequenceNumber);
        const at = shard.records.findIndex((r) => BigInt(r.sequenceNumber) >= seq);
        if (at < 0 || BigInt(shard.records[at]!.sequenceNumber) !== seq) throw new KinesisArgumentError(`StartingSequenceNumber ${start.sequenceNumber} used in GetShardIterator on shard ${shardId} is not in the shard`);
        next = start.type === 'AT_SEQUENCE_NUMBER' ? at : at + 1;
      }
    }
    return this.issue({ stream, shardId, next, issuedAt: this.clock.now() });
  }

  async getRecords(iterator: string, limit: number): Promise<GetRecordsResult> {
    if (!Number.isInteger(limit) || limit < 1 || limit > L.getRecordsMaxRecords) throw new KinesisArgumentError(`Limit must be from 1 to ${L.getRecordsMaxRecords}, got ${limit}`);
    const it = this.iterators.get(iterator);
    if (!it) throw new KinesisArgumentError(`Invalid ShardIterator`);
    const now = this.clock.now();
    if (now - it.issuedAt > L.iteratorLifetimeMs) throw new ExpiredIteratorError(`Iterator expired. The iterator was created at time ${new Date(it.issuedAt).toISOString()} while right now it is ${new Date(now).toISOString()} which is further in the future than the tolerated delay of 300000 milliseconds.`);
    const shard = this.stream(it.stream).find((s) => s.info.shardId === it.shardId)!;
    shard.reads = shard.reads.filter((t) => now - t < 1000);
    if (shard.reads.length >= L.getRecordsCallsPerSecond) {
      this.throttled.set(it.shardId, (this.throttled.get(it.shardId) ?? 0) + 1);
      throw new ThroughputExceededError(`Rate exceeded for shard ${it.shardId} in stream ${it.stream}`);
    }
    shard.reads.push(now);
    const records: StreamRecord[] = [];
    let bytes = 0;
    let next = it.next;
    while (next < shard.records.length && records.length < limit) {
      const r = shard.records[next]!;
      if (records.length > 0 && bytes + r.data.length > L.getRecordsMaxBytes) break;
      records.push({ ...r, data: new Uint8Array(r.data) });
      bytes += r.data.length;
      next++;
    }
    const atEnd = !shard.open && next >= shard.records.length;
    const last = shard.records[shard.records.length - 1];
    const millisBehindLatest = records.length === 0 || !last ? 0 : Math.max(0, last.arrivalTime - records[records.length - 1]!.arrivalTime);
    return {
      records,
      nextIterator: atEnd ? undefined : this.issue({ stream: it.stream, shardId: it.shardId, next, issuedAt: now }),
      millisBehindLatest,
    };
  }

  async putRecords(stream: string, entries: PutRecordsEntry[]): Promise<PutRecordsResult> {
    const shards = this.stream(stream);
    if (entries.length === 0 || entries.length > L.putRecordsMaxRecords) throw new KinesisArgumentError(`PutRecords takes 1 to ${L.putRecordsMaxRecords} records, got ${entries.length}`);
    const total = entries.reduce((n, e) => n + e.data.length + Buffer.byteLength(e.partitionKey), 0);
    if (total > L.putRecordsMaxBytes) throw new KinesisArgumentError(`PutRecords request of ${total} bytes is over ${L.putRecordsMaxBytes}`);
    const now = this.clock.now();
    return {
      results: entries.map((e) => {
        const size = e.data.length + Buffer.byteLength(e.partitionKey);
        if (size > L.recordMaxBytes) throw new KinesisArgumentError(`a record of ${size} bytes is over ${L.recordMaxBytes}`);
        const hash = e.explicitHashKey !== undefined ? BigInt(e.explicitHashKey) : BigInt(`0x${createHash('md5').update(e.partitionKey).digest('hex')}`);
        const shard = shards.find((s) => s.open && s.start <= hash && hash <= s.end)!;
        shard.writes = shard.writes.filter(([t]) => now - t < 1000);
        const written = shard.writes.reduce((n, [, b]) => n + b, 0);
        if (shard.writes.length >= L.shardWriteRecordsPerSecond || written + size > L.shardWriteBytesPerSecond) {
          return { errorCode: 'ProvisionedThroughputExceededException', errorMessage: `Rate exceeded for shard ${shard.info.shardId} in stream ${stream}` };
        }
        shard.writes.push([now, size]);
        const sequenceNumber = String(this.sequence++);
        shard.records.push({ sequenceNumber, partitionKey: e.partitionKey, data: new Uint8Array(e.data), arrivalTime: now });
        return { sequenceNumber, shardId: shard.info.shardId };
      }),
    };
  }

  private issue(it: Iterator): string {
    const id = `it-${++this.iteratorCount}`;
    this.iterators.set(id, it);
    return id;
  }

  private stream(name: string): Shard[] {
    const shards = this.streams.get(name);
    if (!shards) throw new StreamNotFoundError(`Stream ${name} under account 000000000000 not found.`);
    return shards;
  }

  private openShard(shards: Shard[], shardId: string): Shard {
    const shard = shards.find((s) => s.info.shardId === shardId);
    if (!shard) throw new StreamNotFoundError(`Shard ${shardId} does not exist`);
    if (!shard.open) throw new KinesisArgumentError(`Shard ${shardId} has already been merged or split`);
    return shard;
  }

  private close(shard: Shard): void {
    shard.open = false;
    // AWS: the ending sequence number of a closed shard (its last record, or where it would have been).
    shard.info.endingSequenceNumber = shard.records[shard.records.length - 1]?.sequenceNumber ?? String(this.sequence++);
  }

  private shard(index: number, start: bigint, end: bigint, parent?: string, adjacentParent?: string): Shard {
    return {
      info: {
        shardId: `shardId-${String(index).padStart(12, '0')}`,
        ...(parent ? { parentShardId: parent } : {}),
        ...(adjacentParent ? { adjacentParentShardId: adjacentParent } : {}),
        hashKeyRange: { start: String(start), end: String(end) },
      },
      start,
      end,
      open: true,
      records: [],
      reads: [],
      writes: [],
    };
  }
}
