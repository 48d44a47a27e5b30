/**
 * What a subtask writes at a checkpoint, and how it tells the coordinator:
 *   snapshot  s3://<bucket>/checkpoints/<jobId>/<N>/<subtaskId>.json
 *   ack       DynamoDB pk JOB#<jobId>, sk ACK#<N, zero-padded>#<subtaskId>  (state handles, or a decline)
 * The coordinator (local driver or Step Functions poll step) reads the acks of N with one query.
 */
import type { Json } from '../api/functions';
import type { SnapshotHandle } from '../checkpoint/types';
import type { BlobStore } from '../ports/blob-store';
import type { MetadataStore } from '../ports/metadata-store';
import type { KeyedStateSnapshot } from './keyed-state';

export interface SubtaskSnapshot {
  checkpointId: number;
  subtask: string;
  /** Event time the subtask had reached. */
  watermark: number;
  /** Source read positions (sources only). */
  source?: Json;
  keyed?: KeyedStateSnapshot;
  /** Sink transactions staged up to and including this checkpoint and not yet committed. */
  sinkPending?: { checkpointId: number; staged: Json }[];
}

export interface AckRecord {
  subtask: string;
  checkpointId: number;
  state: SnapshotHandle[];
  declined?: string;
  at: number;
}

const pad = (id: number) => String(id).padStart(12, '0');
export const ackPrefix = (checkpointId: number) => `ACK#${pad(checkpointId)}#`;
export const snapshotKey = (jobId: string, checkpointId: number, subtask: string) => `checkpoints/${jobId}/${checkpointId}/${subtask}.json`;

export class CheckpointIO {
  constructor(
    private readonly jobId: string,
    private readonly blobs: BlobStore,
    private readonly metadata: MetadataStore,
  ) {}

  async writeSnapshot(snapshot: SubtaskSnapshot): Promise<SnapshotHandle> {
    const key = snapshotKey(this.jobId, snapshot.checkpointId, snapshot.subtask);
    const body = JSON.stringify(snapshot);
    await this.blobs.put(key, body);
    return { key, bytes: Buffer.byteLength(body) };
  }

  async readSnapshot(key: string): Promise<SubtaskSnapshot> {
    const body = await this.blobs.get(key);
    if (!body) throw new Error(`snapshot ${key} is missing from ${this.blobs.location}`);
    return JSON.parse(Buffer.from(body).toString('utf8')) as SubtaskSnapshot;
  }

  async acknowledge(checkpointId: number, subtask: string, state: SnapshotHandle[]): Promise<void> {
    const record: AckRecord = { subtask, checkpointId, state, at: Date.now() };
    await this.metadata.put(`JOB#${this.jobId}`, ackPrefix(checkpointId) + subtask, record as unknown as Record<string, never>);
  }

  async decline(checkpointId: number, subtask: string, reason: string): Promise<void> {
    const record: AckRecord = { subtask, checkpointId, state: [], declined: reason, at: Date.now() };
    await this.metadata.put(`JOB#${this.jobId}`, ackPrefix(checkpointId) + subtask, record as unknown as Record<string, never>);
  }

  async acks(checkpointId: number): Promise<AckRecord[]> {
    const items = await this.metadata.query(`JOB#${this.jobId}`, ackPrefix(checkpointId));
    return items.map((i) => i.item as unknown as AckRecord);
  }
}
