/**
 * What a subtask writes at a checkpoint, and how it tells the coordinator:
 *   snapshot  s3://<bucket>/checkpoints/<jobId>/<N>/<subtaskId>.a<attempt>.json
 *   union     s3://<bucket>/checkpoints/<jobId>/<N>/union/<taskId>/<index>.a<attempt>.json  (only when the
 *             subtask has union list state: see union-state.ts)
 *   ack       DynamoDB pk JOB#<jobId>#ACK#<N, zero-padded>#<shard>, sk <subtaskId>#a<attempt>
 *             (state handles, or a decline; the record carries the attempt). Every subtask acks N
 *             within its alignment's few seconds, so the acks of a large job are spread over
 *             `ackShards` partitions by subtask (lib/ports/metadata-keys.ts).
 *   ack batch (a task unit's acks, `AckBatching`) the same pk, shard by the unit, sk
 *             <unitId>#a<attempt>#<writer token>#<seq>, attribute `packed`: the records of every
 *             subtask of the unit that acked (or declined) N within one linger, as JSON, deflated,
 *             base64 (`count` says how many). One write of a few KB for a unit's ~100 subtasks
 *             instead of 100 writes: DynamoDB bills each write at least one unit (docs/scale.md).
 *             Packed because every poll of a pending checkpoint reads every batch, billed by size:
 *             the records' names and snapshot keys repeat, and deflate takes them to about an eighth
 *             (batches written as a plain `acks` list are still read). Each record still carries
 *             its subtask and attempt, and the token keeps the batches of two invocations of one
 *             attempt (a hand-over) apart.
 * `attempt` is the task unit's attempt: a restarted unit never rewrites another attempt's snapshot
 * or acknowledgement, and the coordinator counts only the attempt a checkpoint was triggered for.
 * The manifest records which snapshot key each subtask restores from (restore never derives it).
 * The coordinator (local driver or Step Functions poll step) reads the acks of N with one query per shard.
 * The acknowledged handles are the snapshot first, then the union object if there is one; the
 * manifest keeps them all, so retention and discarding cover the union objects too.
 */
import type { Json } from '../api/functions';
import type { SnapshotHandle } from '../checkpoint/types';
import type { BlobStore } from '../ports/blob-store';
import type { MetadataStore } from '../ports/metadata-store';
import { ACK_TTL_SECONDS, TTL_ATTRIBUTE, ackPk, expiresAt, shardOf } from '../ports/metadata-keys';
import type { ChannelPositions } from './input-gate';
import type { KeyedStateSnapshot } from './keyed-state';
import type { WriterPositions } from './record-writer';
import type { ReadBase } from './handover';
import {
  DEFAULT_UNION_RESTORE_CONCURRENCY,
  UnionStateError,
  decodeUnionPart,
  mergeUnionParts,
  restoreUnionState,
  unionHandleIn,
  writeUnionSnapshot,
  writerSuffix,
  type UnionRestoreResult,
  type UnionStateBackend,
} from './union-state';
import { mapWithConcurrency, type PoolStats } from '../util/concurrency';
import { randomUUID } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';

export interface SubtaskSnapshot {
  checkpointId: number;
  subtask: string;
  /** Event time the subtask had reached. */
  watermark: number;
  /** Recorded processing time (single-exact inner tasks: operator-chain.ts `processingTime`). */
  processingTime?: number;
  /** Source read positions (sources only). */
  source?: Json;
  keyed?: KeyedStateSnapshot;
  /** Sink transactions staged up to and including this checkpoint and not yet committed. */
  sinkPending?: { checkpointId: number; staged: Json }[];
  /**
   * True when the subtask wrote a union state object for this checkpoint (it had at least one
   * union state name, even an empty one); its key is among the acknowledged handles.
   */
  union?: boolean;
  /** Record numbering of each output edge (a restored source continues it: see messages.ts). */
  writers?: WriterPositions[];
  /** Record positions per input channel (a restored consumer recognizes a replay by them). */
  channels?: ChannelPositions[];
  /** Single-exact: how many determinants the subtask had recorded at the barrier (its restart goes on from there). */
  determinants?: number;
  /**
   * A source with in-flight logs: its offsets and writer numbering at earlier checkpoints its log
   * still covered (and the last completed ones), to read again what a consumer restored from one of
   * them asks for (source-reread.ts). This checkpoint's own are `source` and `writers`.
   */
  readBases?: ReadBase[];
}

/** Where one subtask's union object of a task is, for a restore. */
export interface UnionObjectRef {
  /** The checkpoint it was written at (under regional checkpoints: its region's restore point). */
  checkpointId: number;
  key: string;
}

/** The union of one task, read for a restore. */
export interface TaskUnionRead extends UnionRestoreResult {
  taskId: string;
  parallelism: number;
  /** Subtask indexes that contributed no object (their region restores nothing, or they wrote none). */
  absent: number[];
}

export interface AckRecord {
  subtask: string;
  checkpointId: number;
  state: SnapshotHandle[];
  declined?: string;
  at: number;
  /** The attempt of the subtask's task unit that wrote it (absent in records written before attempts: 0). */
  attempt?: number;
}

/** Sort key of an acknowledgement in its checkpoint's partition (`ackPk`). */
export const ackSk = (subtask: string, attempt: number) => `${subtask}#a${attempt}`;
export const snapshotKey = (jobId: string, checkpointId: number, subtask: string, attempt: number, incarnation = 0) =>
  `checkpoints/${jobId}/${checkpointId}/${subtask}${writerSuffix({ attempt, incarnation })}.json`;
const SNAPSHOT_KEY = /^checkpoints\/.+\/\d+\/[^/]+\.json$/;

/**
 * The subtask snapshot among a subtask's acknowledged handles (the manifest names it; a union
 * object, under `union/`, may follow it).
 */
export function snapshotHandleOf(handles: readonly SnapshotHandle[]): SnapshotHandle | undefined {
  return handles.find((h) => SNAPSHOT_KEY.test(h.key) && !h.key.includes('/union/')) ?? handles[0];
}

/** A batch's records as its item's `packed` attribute (see the header). */
export const packAcks = (acks: readonly AckRecord[]): string => deflateRawSync(JSON.stringify(acks)).toString('base64');

/** The records of a batch's `packed` attribute; an item that does not decode is named. */
export function unpackAcks(pk: string, sk: string, packed: string): AckRecord[] {
  try {
    const records = JSON.parse(inflateRawSync(Buffer.from(packed, 'base64')).toString('utf8')) as unknown;
    if (!Array.isArray(records)) throw new Error('not a list of acknowledgements');
    return records as AckRecord[];
  } catch (e) {
    throw new Error(`acknowledgement batch ${pk} / ${sk} cannot be read: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A task unit's acknowledgements written together (see the header). */
export interface AckBatching {
  /** The unit that writes them (its batches of N go to one partition, by this id). */
  unitId: string;
  /** How long the first acknowledgement of N waits for the unit's others before the batch is written (default ACK_LINGER_MS). */
  lingerMs?: number;
}

/** How long a batch of acknowledgements waits for more (a unit's subtasks take a checkpoint within moments of each other). */
export const ACK_LINGER_MS = 200;
/** Largest batch item written (JSON bytes of its records): well under DynamoDB's 400 KB. */
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * Collects a unit's acknowledgements of each checkpoint for `lingerMs` after the first, then
 * writes them as one item (more when they would exceed MAX_BATCH_BYTES). Each caller's promise
 * settles when the item holding its record is written (or failed), as a single write would.
 */
class AckBatcher {
  private readonly open = new Map<number, { resolve: () => void; reject: (e: unknown) => void; record: AckRecord; bytes: number }[]>();
  private readonly token = randomUUID().slice(0, 8);
  private seq = 0;

  constructor(
    private readonly options: AckBatching & { attempt: number },
    private readonly write: (checkpointId: number, unitId: string, sk: string, records: AckRecord[]) => Promise<void>,
  ) {}

  add(record: AckRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      let batch = this.open.get(record.checkpointId);
      if (!batch) {
        batch = [];
        this.open.set(record.checkpointId, batch);
        setTimeout(() => void this.flush(record.checkpointId), this.options.lingerMs ?? ACK_LINGER_MS);
      }
      batch.push({ resolve, reject, record, bytes: Buffer.byteLength(JSON.stringify(record)) });
    });
  }

  private async flush(checkpointId: number): Promise<void> {
    const batch = this.open.get(checkpointId) ?? [];
    this.open.delete(checkpointId);
    const chunks: (typeof batch)[] = [];
    let bytes = Infinity;
    for (const entry of batch) {
      if (bytes + entry.bytes > MAX_BATCH_BYTES) chunks.push([]), (bytes = 0);
      chunks.at(-1)!.push(entry);
      bytes += entry.bytes;
    }
    await Promise.all(
      chunks.map(async (chunk) => {
        const sk = `${this.options.unitId}#a${this.options.attempt}#${this.token}#${this.seq++}`;
        try {
          await this.write(checkpointId, this.options.unitId, sk, chunk.map((e) => e.record));
          for (const e of chunk) e.resolve();
        } catch (error) {
          for (const e of chunk) e.reject(error);
        }
      }),
    );
  }
}

export class CheckpointIO {
  private readonly batcher: AckBatcher | undefined;

  constructor(
    private readonly jobId: string,
    private readonly blobs: BlobStore,
    private readonly metadata: MetadataStore,
    /** The attempt of the task unit that writes through this (0 for readers). */
    readonly attempt = 0,
    /** Partitions the acknowledgements of one checkpoint are spread over (`ackShardCount` of the job's subtasks). */
    private readonly ackShards = 1,
    /**
     * A subtask restarted inside its unit (n-th restart): its snapshots get keys of their own, so
     * it never overwrites one its dead incarnation wrote (and the coordinator may hold) for the
     * same checkpoint; its acknowledgements still carry the unit's attempt, which the coordinator counts.
     */
    readonly incarnation = 0,
    /**
     * A task unit's: its subtasks' acknowledgements are written in batches (see the header); an
     * AckBatcher is shared by the incarnations of its subtasks. Without it: one item per acknowledgement.
     */
    batching?: AckBatching | AckBatcher,
  ) {
    this.batcher =
      batching === undefined || batching instanceof AckBatcher
        ? batching
        : new AckBatcher({ ...batching, attempt }, (checkpointId, unitId, sk, acks) => this.putBatch(checkpointId, unitId, sk, acks));
  }

  /** The same, for the n-th incarnation of a subtask restarted inside its unit. */
  forIncarnation(incarnation: number): CheckpointIO {
    return new CheckpointIO(this.jobId, this.blobs, this.metadata, this.attempt, this.ackShards, incarnation, this.batcher);
  }

  /** Serializes the snapshot before its first await: it may hold the subtask's live keyed state (state-capture.ts). */
  async writeSnapshot(snapshot: SubtaskSnapshot): Promise<SnapshotHandle> {
    const key = snapshotKey(this.jobId, snapshot.checkpointId, snapshot.subtask, this.attempt, this.incarnation);
    const body = JSON.stringify(snapshot);
    await this.blobs.put(key, body);
    return { key, bytes: Buffer.byteLength(body) };
  }

  /** Key of the union object of subtask `subtaskIndex` of task `taskId` at checkpoint N among its acknowledged handles, if it wrote one. */
  unionKeyIn(handles: readonly SnapshotHandle[], checkpointId: number, taskId: string, subtaskIndex: number): string | undefined {
    return unionHandleIn(handles, { jobId: this.jobId, checkpointId, operatorId: taskId }, subtaskIndex)?.key;
  }

  /** Writes one subtask's union list states for checkpoint N (the task id names the operator). */
  async writeUnion(
    target: { checkpointId: number; taskId: string; subtaskIndex: number; parallelism: number },
    backend: UnionStateBackend,
  ): Promise<SnapshotHandle> {
    const { checkpointId, taskId, subtaskIndex, parallelism } = target;
    const writer = { attempt: this.attempt, incarnation: this.incarnation };
    return writeUnionSnapshot(this.blobs, { jobId: this.jobId, checkpointId, operatorId: taskId, subtaskIndex, parallelism, writer }, backend);
  }

  /**
   * Reads the union of task `taskId` for a restore: `refs[j]` is subtask j's object (from the
   * checkpoint its region restores from), or undefined when j contributes nothing. At most
   * `concurrency` reads are in flight (default 32). When every subtask has an object this is
   * `restoreUnionState` over the keys; otherwise the objects there are read the same way (bounded,
   * decoded as they arrive, each checked to be subtask j's of this task, checkpoint and parallelism)
   * and the union is of those, in subtask order.
   */
  async readUnion(taskId: string, parallelism: number, refs: readonly (UnionObjectRef | undefined)[], options: { concurrency?: number } = {}): Promise<TaskUnionRead> {
    const concurrency = options.concurrency ?? DEFAULT_UNION_RESTORE_CONCURRENCY;
    if (refs.length !== parallelism) throw new UnionStateError(`union state of task '${taskId}': ${refs.length} object references for parallelism ${parallelism}`);
    const absent = refs.flatMap((r, j) => (r ? [] : [j]));
    if (absent.length === 0) {
      const result = await restoreUnionState(this.blobs, refs.map((r) => r!.key), { concurrency });
      return { ...result, taskId, parallelism, absent };
    }

    const started = performance.now();
    const present = refs.flatMap((r, j) => (r ? [{ ...r, subtask: j }] : []));
    const pool: PoolStats = { maxInFlight: 0 };
    let bytes = 0;
    const parts = await mapWithConcurrency(
      present,
      concurrency,
      async (ref) => {
        const body = await this.blobs.get(ref.key);
        if (!body) throw new UnionStateError(`union state object ${this.blobs.location}/${ref.key} is missing (operator '${taskId}', subtask ${ref.subtask}, checkpoint ${ref.checkpointId})`, ref.key);
        bytes += body.length;
        const part = decodeUnionPart(ref.key, body);
        if (part.subtask !== ref.subtask || part.operatorId !== taskId || part.checkpointId !== ref.checkpointId || part.parallelism !== parallelism) {
          throw new UnionStateError(
            `union state object ${ref.key} holds operator '${part.operatorId}', subtask ${part.subtask} of ${part.parallelism}, checkpoint ${part.checkpointId}; expected '${taskId}', subtask ${ref.subtask} of ${parallelism}, checkpoint ${ref.checkpointId}`,
            ref.key,
          );
        }
        return { key: ref.key, bytes: body.length, part };
      },
      pool,
    );
    const states = mergeUnionParts(parts.map((p) => p.part));
    return {
      taskId,
      parallelism,
      absent,
      states,
      parts: parts.map((p) => ({ key: p.key, subtask: p.part.subtask, bytes: p.bytes, counts: p.part.counts })),
      stats: { objects: parts.length, bytes, ms: performance.now() - started, concurrency, maxInFlight: pool.maxInFlight },
    };
  }

  async readSnapshot(key: string): Promise<SubtaskSnapshot> {
    const body = await this.blobs.get(key);
    if (!body) throw new Error(`snapshot ${key} is missing from ${this.blobs.location}`);
    return JSON.parse(Buffer.from(body).toString('utf8')) as SubtaskSnapshot;
  }

  async acknowledge(checkpointId: number, subtask: string, state: SnapshotHandle[]): Promise<void> {
    await this.putAck({ subtask, checkpointId, state, at: Date.now(), attempt: this.attempt });
  }

  async decline(checkpointId: number, subtask: string, reason: string): Promise<void> {
    await this.putAck({ subtask, checkpointId, state: [], declined: reason, at: Date.now(), attempt: this.attempt });
  }

  /**
   * Every acknowledgement of N: one query of each of N's partitions, batches unpacked. A subtask
   * that acknowledged N twice in one attempt (an incarnation restarted inside its unit, each
   * write in a batch of its own) counts with its latest record, as when its item was overwritten.
   */
  async acks(checkpointId: number): Promise<AckRecord[]> {
    const shards = Array.from({ length: this.ackShards }, (_, s) => s);
    const items = (await mapWithConcurrency(shards, 16, (s) => this.metadata.query(ackPk(this.jobId, checkpointId, s)))).flat();
    const latest = new Map<string, AckRecord>();
    for (const i of items) {
      const { [TTL_ATTRIBUTE]: _ttl, ...item } = i.item;
      const records = typeof item.packed === 'string' ? unpackAcks(i.pk, i.sk, item.packed) : Array.isArray(item.acks) ? (item.acks as unknown as AckRecord[]) : [item as unknown as AckRecord];
      for (const record of records) {
        const key = ackSk(record.subtask, record.attempt ?? 0);
        const known = latest.get(key);
        if (!known || record.at >= known.at) latest.set(key, record);
      }
    }
    return [...latest.values()];
  }

  private async putAck(record: AckRecord): Promise<void> {
    if (this.batcher) return this.batcher.add(record);
    const item = { ...record, [TTL_ATTRIBUTE]: expiresAt(record.at, ACK_TTL_SECONDS) };
    const shard = shardOf(record.subtask, this.ackShards);
    await this.metadata.put(ackPk(this.jobId, record.checkpointId, shard), ackSk(record.subtask, this.attempt), item as unknown as Record<string, never>);
  }

  private async putBatch(checkpointId: number, unitId: string, sk: string, acks: AckRecord[]): Promise<void> {
    const at = Math.max(...acks.map((a) => a.at));
    const shard = shardOf(unitId, this.ackShards);
    const item = { packed: packAcks(acks), count: acks.length, at, [TTL_ATTRIBUTE]: expiresAt(at, ACK_TTL_SECONDS) };
    await this.metadata.put(ackPk(this.jobId, checkpointId, shard), sk, item as unknown as Record<string, never>);
  }
}
