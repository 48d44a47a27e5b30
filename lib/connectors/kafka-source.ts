/**
 * Kafka source (Amazon MSK or any Kafka 3.5-4.2), on @platformatic/kafka (pure JavaScript, no
 * native build; maintained). Partitions are the splits: partition P of the topic is read by subtask
 * P % parallelism, assigned here, not by a consumer group (no rebalances: Sluice's checkpoints own
 * the positions). The checkpoint keeps, per partition, the offset of the last record emitted; a
 * restore fetches from the next one, so it replays exactly from there.
 *
 * - After a checkpoint completes, its offsets are committed to the consumer group `groupId`, for
 *   lag monitoring only (kafka-consumer-groups, CloudWatch's MSK lag metrics); recovery never reads
 *   them.
 * - Reads are READ_COMMITTED (records of aborted transactions and control records are skipped).
 * - New partitions are picked up every `discoveryIntervalMs`.
 * - Watermarks per partition, with idleness (split-reader.ts); event time defaults to the record's
 *   timestamp.
 * - `bounded: true`: reads up to the end offsets (last stable offsets) each partition had at the
 *   job's first start, then ends; those offsets are in the checkpoint.
 * - MSK: `tls: {}` for TLS listeners; `sasl` for SASL/SCRAM, or IAM through OAUTHBEARER with a token
 *   from aws-msk-iam-sasl-signer-js (see the README's job section).
 */
import type { ConnectionOptions } from '@platformatic/kafka';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Json, RuntimeContext, SourceBatch, SourceFunction } from '../api/functions';
import { readProgress, splitOwner, SplitReader, writeProgress, type SplitProgress, type SplitRecord } from './split-reader';

export interface KafkaRecordMeta {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  /** The record's timestamp (ms since the epoch). */
  timestamp: number;
  headers: [Buffer | null, Buffer | null][];
}

export interface KafkaConnection {
  /** host:port of one or more brokers. */
  brokers: string[];
  clientId?: string;
  /** TLS (MSK's TLS listeners: `{}` uses the system's CAs). */
  tls?: ConnectionOptions['tls'];
  /** SASL: PLAIN, SCRAM-SHA-256/512, or OAUTHBEARER (MSK IAM, with a token provider). */
  sasl?: ConnectionOptions['sasl'];
}

export interface KafkaSourceOptions<O> extends KafkaConnection {
  topic: string;
  /** Consumer group the completed checkpoints' offsets are committed to (lag monitoring only). */
  groupId: string;
  deserialize(value: Buffer | null, meta: KafkaRecordMeta): O;
  /** Event time of a record (default: its timestamp). */
  eventTime?(record: O, meta: KafkaRecordMeta): number;
  /** Where a partition with no checkpointed offset starts (default 'earliest'). */
  start?: 'earliest' | 'latest';
  bounded?: boolean;
  maxOutOfOrdernessMs?: number;
  idleTimeoutMs?: number;
  /** Longest a fetch waits for data at the broker (default 200 ms: a checkpoint trigger waits at most this). */
  maxWaitMs?: number;
  /** Bytes per partition per fetch (default 1 MiB). */
  partitionMaxBytes?: number;
  discoveryIntervalMs?: number;
  /** Records per second this subtask emits at most (a backfill that must not swamp the job; default unlimited). */
  ratePerSecond?: number;
}

export class KafkaSourceError extends Error {
  override name = 'KafkaSourceError';
}

const IS_CONTROL = 0x20;
const OFFSET_OUT_OF_RANGE = 1;
const splitId = (topic: string, partition: number) => `${topic}-${partition}`;
const partitionOf = (id: string) => Number(id.slice(id.lastIndexOf('-') + 1));

type Consumer = import('@platformatic/kafka').Consumer;
type Admin = import('@platformatic/kafka').Admin;

export class KafkaSource<O extends Json> implements SourceFunction<O> {
  private consumer!: Consumer;
  private admin!: Admin;
  private ctx!: RuntimeContext;
  private readonly reader: SplitReader<O>;
  /** Offset a partition starts at when it has no position (resolved at the first start, checkpointed). */
  private startOffsets = new Map<string, string>();
  /** Bounded: the end offset of each partition at the first start (checkpointed). */
  private stopOffsets = new Map<string, string>();
  private partitions: number[] = [];
  private lastDiscovery = 0;
  private readonly pendingCommits = new Map<number, SplitProgress[]>();
  private readonly pace: { since: number; emitted: number } = { since: 0, emitted: 0 };

  constructor(private readonly options: KafkaSourceOptions<O>) {
    if (!options.brokers?.length) throw new KafkaSourceError(`KafkaSource '${options.topic}': give at least one broker (host:port)`);
    this.reader = new SplitReader<O>({
      ...(options.maxOutOfOrdernessMs !== undefined ? { maxOutOfOrdernessMs: options.maxOutOfOrdernessMs } : {}),
      ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    });
  }

  private connection(): ConnectionOptions & { clientId: string; bootstrapBrokers: string[] } {
    const { brokers, tls, sasl } = this.options;
    return {
      clientId: this.options.clientId ?? `sluice-${this.ctx.jobId}-${this.ctx.operatorId}-${this.ctx.subtaskIndex}`,
      bootstrapBrokers: brokers,
      ...(tls ? { tls } : {}),
      ...(sasl ? { sasl } : {}),
    };
  }

  async open(ctx: RuntimeContext): Promise<void> {
    this.ctx = ctx;
    const { Consumer, Admin } = await import('@platformatic/kafka');
    this.consumer = new Consumer({ ...this.connection(), groupId: this.options.groupId, maxWaitTime: this.options.maxWaitMs ?? 200, minBytes: 1, isolationLevel: 1 as never, retries: 3 });
    this.admin = new Admin({ ...this.connection(), retries: 3 });
    await this.discover();
  }

  restoreOffsets(offsets: Json): void {
    const s = offsets as { partitions: Json; start: [string, string][]; stop: [string, string][]; cursor?: Json };
    this.startOffsets = new Map(s.start);
    this.stopOffsets = new Map(s.stop);
    const restored = new Map(readProgress(s.partitions).map((p) => [p.id, p]));
    this.reader.reset();
    for (const partition of this.partitions) this.add(partition, restored.get(splitId(this.options.topic, partition)));
    this.reader.restoreCursor(s.cursor);
  }

  snapshotOffsets(checkpointId?: number): Json {
    const progress = this.reader.progress();
    if (checkpointId !== undefined) this.pendingCommits.set(checkpointId, progress);
    return { partitions: writeProgress(progress), start: [...this.startOffsets], stop: [...this.stopOffsets], cursor: this.reader.cursorState() };
  }

  /** Checkpoint N completed: its offsets go to the consumer group, for lag monitoring. */
  async checkpointComplete(checkpointId: number): Promise<void> {
    const progress = this.pendingCommits.get(checkpointId);
    for (const id of [...this.pendingCommits.keys()]) if (id <= checkpointId) this.pendingCommits.delete(id);
    const partitionOffsets = (progress ?? []).filter((p) => p.position !== null).map((p) => ({ partition: partitionOf(p.id), offset: BigInt(p.position!) + 1n }));
    if (partitionOffsets.length === 0) return;
    await this.admin.alterConsumerGroupOffsets({ groupId: this.options.groupId, topics: [{ name: this.options.topic, partitionOffsets }] });
  }

  async close(): Promise<void> {
    await Promise.all([this.consumer?.close(true).catch(() => undefined), this.admin?.close().catch(() => undefined)]);
  }

  async poll(max: number): Promise<SourceBatch<O>> {
    if (Date.now() - this.lastDiscovery >= (this.options.discoveryIntervalMs ?? 30_000)) await this.discover();
    const hungry = this.reader.hungry();
    if (hungry.length > 0) await this.fetch(hungry);
    const records = this.reader.take(this.budget(max));
    this.pace.emitted += records.length;
    const done = this.options.bounded === true && this.reader.ids().every((id) => this.reader.drained(id));
    if (records.length === 0 && !done && (hungry.length === 0 || this.options.ratePerSecond)) await sleep(this.options.ratePerSecond ? 20 : (this.options.maxWaitMs ?? 200));
    const watermark = this.reader.watermark();
    return { records, ...(watermark !== undefined ? { watermark } : {}), done };
  }

  /** What `ratePerSecond` allows now (at least one record once its time has come). */
  private budget(max: number): number {
    const rate = this.options.ratePerSecond;
    if (!rate) return max;
    this.pace.since ||= Date.now();
    return Math.max(0, Math.min(max, Math.floor(((Date.now() - this.pace.since) / 1000) * rate) - this.pace.emitted));
  }

  /** Reads the topic's partitions; resolves start (and bounded stop) offsets of new ones once. */
  private async discover(): Promise<void> {
    this.lastDiscovery = Date.now();
    const { topic } = this.options;
    let metadata;
    try {
      metadata = await this.consumer.metadata({ topics: [topic], forceUpdate: true, autocreateTopics: false });
    } catch (error) {
      throw new KafkaSourceError(`Kafka topic '${topic}' could not be read from ${this.options.brokers.join(',')}: ${(error as Error).message}`);
    }
    const info = metadata.topics.get(topic);
    if (!info) throw new KafkaSourceError(`Kafka topic '${topic}' does not exist on ${this.options.brokers.join(',')}`);
    const mine = info.partitions.map((_, p) => p).filter((p) => splitOwner(splitId(topic, p), this.ctx.parallelism) === this.ctx.subtaskIndex);
    const fresh = mine.filter((p) => !this.partitions.includes(p));
    if (fresh.length === 0) return;
    const unresolved = fresh.filter((p) => !this.startOffsets.has(splitId(topic, p)));
    if (unresolved.length > 0) {
      // A partition created after the first start begins at its beginning; the others where `start` says.
      const latest = await this.consumer.listOffsets({ topics: [topic], partitions: { [topic]: unresolved }, timestamp: -1n });
      const earliest = await this.consumer.listOffsets({ topics: [topic], partitions: { [topic]: unresolved }, timestamp: -2n });
      const first = this.partitions.length === 0;
      for (const p of unresolved) {
        const id = splitId(topic, p);
        const end = latest.get(topic)![p]!;
        this.startOffsets.set(id, String(first && this.options.start === 'latest' ? end : earliest.get(topic)![p]!));
        if (this.options.bounded && first) this.stopOffsets.set(id, String(end));
      }
    }
    for (const p of fresh) this.add(p, undefined);
    this.partitions = [...this.partitions, ...fresh].sort((a, b) => a - b);
  }

  private add(partition: number, progress: SplitProgress | undefined): void {
    const id = splitId(this.options.topic, partition);
    const p = progress ?? { id, position: null, ended: false, maxEventTime: Number.MIN_SAFE_INTEGER };
    this.reader.add(p);
    // Bounded: a partition that came after the first start, or is empty up to its stop, has nothing to read.
    const stop = this.stopOffsets.get(id);
    if (this.options.bounded && (stop === undefined || BigInt(this.nextOffset(id)) >= BigInt(stop))) this.reader.end(id);
  }

  private nextOffset(id: string): string {
    const position = this.reader.get(id)!.position;
    return position === null ? this.startOffsets.get(id)! : String(BigInt(position) + 1n);
  }

  private async fetch(splits: SplitProgress[]): Promise<void> {
    const { topic } = this.options;
    const metadata = await this.consumer.metadata({ topics: [topic] });
    const info = metadata.topics.get(topic)!;
    const byLeader = new Map<number, number[]>();
    for (const s of splits) {
      const p = partitionOf(s.id);
      const leader = info.partitions[p]!.leader;
      byLeader.set(leader, [...(byLeader.get(leader) ?? []), p]);
    }
    await Promise.all(
      [...byLeader].map(async ([node, partitions]) => {
        const requested = new Map(partitions.map((p) => [p, BigInt(this.nextOffset(splitId(topic, p)))]));
        const response = await this.consumer.fetch({
          node,
          topics: [
            {
              topicId: info.id,
              partitions: partitions.map((p) => ({ partition: p, fetchOffset: requested.get(p)!, currentLeaderEpoch: -1, lastFetchedEpoch: -1, partitionMaxBytes: this.options.partitionMaxBytes ?? 1 << 20 })),
            },
          ],
        });
        for (const t of response.responses) {
          for (const part of t.partitions) {
            const id = splitId(topic, part.partitionIndex);
            const from = requested.get(part.partitionIndex);
            if (from === undefined) continue; // a partition of an older fetch session
            if (part.errorCode === OFFSET_OUT_OF_RANGE) {
              throw new KafkaSourceError(`Kafka ${id}: offset ${from} is out of range (log starts at ${part.logStartOffset}): retention deleted records this job's position still needs`);
            }
            if (part.errorCode !== 0) {
              this.consumer.clearMetadata(); // leadership moved, say: ask again next time
              continue;
            }
            this.take(id, from, part.records ?? []);
          }
        }
      }),
    );
  }

  /** Keeps the records at or after `from` (and before the stop offset), skipping control records. */
  private take(id: string, from: bigint, batches: import('@platformatic/kafka').RecordsBatch[]): void {
    const stop = this.options.bounded ? BigInt(this.stopOffsets.get(id) ?? '0') : undefined;
    const records: SplitRecord<O>[] = [];
    let reached = false;
    for (const batch of batches) {
      if (batch.attributes & IS_CONTROL) continue;
      for (const r of batch.records) {
        const offset = batch.firstOffset + BigInt(r.offsetDelta);
        if (offset < from) continue;
        if (stop !== undefined && offset >= stop) {
          reached = true;
          break;
        }
        const meta: KafkaRecordMeta = { topic: this.options.topic, partition: partitionOf(id), offset: String(offset), key: r.key, timestamp: Number(batch.firstTimestamp + r.timestampDelta), headers: r.headers };
        const value = this.options.deserialize(r.value, meta);
        records.push({ value, position: meta.offset, eventTime: this.options.eventTime ? this.options.eventTime(value, meta) : meta.timestamp });
      }
      if (reached) break;
    }
    this.reader.fetched(id, records);
    // Only control records (transaction markers) came: they are consumed, the next fetch starts after them.
    if (records.length === 0 && batches.length > 0 && !reached) this.reader.advance(id, String(lastBatchEnd(batches)));
    // Bounded: done once the stop offset is reached.
    if (stop !== undefined && (reached || BigInt(this.nextOffsetAfter(id, records)) >= stop)) this.reader.end(id);
  }

  /** The next offset to read once the records just fetched are emitted. */
  private nextOffsetAfter(id: string, records: SplitRecord<O>[]): string {
    return records.length > 0 ? String(BigInt(records[records.length - 1]!.position) + 1n) : this.nextOffset(id);
  }
}

const lastBatchEnd = (batches: import('@platformatic/kafka').RecordsBatch[]) => {
  const b = batches[batches.length - 1]!;
  return b.firstOffset + BigInt(b.lastOffsetDelta);
};
