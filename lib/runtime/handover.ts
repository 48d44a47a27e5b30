/**
 * Hand-over: a task unit that must end (a Lambda invocation nearing its 15-minute limit) passes its
 * live state to the next invocation of the SAME attempt, instead of failing and being restored
 * from a checkpoint.
 *
 * The unit stops at a safe point (control messages no longer read, every subtask quiesced: no
 * barrier alignment in progress, input drained and deleted, output flushed), writes this document
 * to S3 and records a pointer in its unit record. The successor claims it (a conditional write on
 * the unit's generation, so a duplicated invocation cannot run it twice) and continues.
 *
 * Keeping the attempt is what keeps channels ordered: the successor writes into the same SQS
 * message group with the next sequence numbers, and consumers cannot tell the difference. A new
 * attempt would open a new message group that FIFO may deliver before the old one is drained.
 */
import type { InflightLogState } from './inflight-log';
import type { Json } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import type { KeyedStateSnapshot } from './keyed-state';

export const HANDOVER_FORMAT = 'sluice.handover/v1';

/** A process that handed over exits with this code (EX_TEMPFAIL); its launcher starts the successor. */
export const HANDED_OVER_EXIT_CODE = 75;

/** One input channel as the consumer left it. */
export interface ChannelHandover {
  key: string;
  minAttempt: number;
  attempt: number;
  /** Per producer attempt (message group): the next message sequence number to deliver (null: start not known yet). */
  order: { attempt: number; next: number | null }[];
  /** Messages that came before a gap in their group (already deleted from the queue). */
  early: { body: string; receiveCount?: number }[];
  /** Per lineage: the next record position. */
  positions: [lineage: number, next: number][];
  counters: ChannelCounters;
  watermark: number;
  ended: boolean;
  /**
   * A replay still waited for (see replay.ts): its request, the next message of its group and the
   * ones that came early. The live messages held for it were left in flight: they come again.
   */
  replay?: { consumerAttempt: number; request: number; next: number; early: string[] };
}

/** Per input channel: what the consumer discarded, missed and re-read, in records. */
export interface ChannelCounters {
  /** Records below the channel position (already processed): dropped. */
  duplicateRecords: number;
  /** Records the position jumped over (never seen: lost upstream or by this consumer's restart). */
  missingRecords: number;
  /** Records processed from messages received before (ApproximateReceiveCount > 1). */
  replayedRecords: number;
}

/** One record writer (one output edge) as the producer left it. */
export interface WriterHandover {
  edgeId: string;
  /** Next sequence number per consumer channel. */
  sequence: number[];
  dropped: number[];
  roundRobin: number;
  /** Lineage of the record numbering, and the next record position per consumer channel. */
  lineage?: number;
  position?: number[];
  /** The writer's in-flight log (kept under single-point recovery: see replay.ts). */
  log?: InflightLogState;
  /** The last watermark emitted, and whether end of input went out. */
  lastWatermark?: number;
  ended?: boolean;
}

export interface SubtaskHandover {
  subtask: string;
  /** running: continue; ended: a sink waiting for `commitFinal`; finished: nothing left to do. */
  status: 'running' | 'ended' | 'finished';
  lastCheckpoint: number;
  watermark: number;
  source?: Json;
  keyed?: KeyedStateSnapshot;
  union?: Record<string, Json[]>;
  /** Staged sink transactions waiting for "checkpoint complete" (includes the hand-over's own). */
  sinkPending: { checkpointId: number; staged: Json }[];
  /** An ended sink's last transaction, to commit on `commitFinal`. */
  finalStaged?: Json;
  /** Checkpoints triggered at this source and not yet taken. */
  triggers: number[];
  writers: WriterHandover[];
  channels: ChannelHandover[];
  counters: { recordsIn: number; recordsOut: number; duplicates: number; fenced: number } & Partial<InputCounters>;
}

/** Input gate totals over all channels, besides `duplicates` (messages) and `fenced`. */
export interface InputCounters extends ChannelCounters {
  /** Deletes or visibility changes whose receipt had expired (the message came again). */
  expiredReceipts: number;
  /** Messages that arrived before an earlier one of their group and waited for it. */
  reordered: number;
}

export interface UnitHandover {
  format: typeof HANDOVER_FORMAT;
  jobId: string;
  unitId: string;
  attempt: number;
  /** The generation that continues from this document. */
  generation: number;
  at: number;
  subtasks: SubtaskHandover[];
  /** AWS requests of the attempt's invocations so far, by service (the unit reports the attempt's total). */
  requests: Record<string, number>;
}

export const handoverKey = (jobId: string, unitId: string, attempt: number, generation: number): string =>
  `handover/${jobId}/${unitId}/${attempt}/${generation}.json`;

export async function writeHandover(blobs: BlobStore, doc: UnitHandover): Promise<string> {
  const key = handoverKey(doc.jobId, doc.unitId, doc.attempt, doc.generation);
  await blobs.put(key, JSON.stringify(doc));
  return key;
}

export async function readHandover(blobs: BlobStore, key: string, expect: { jobId: string; unitId: string; attempt: number; generation: number }): Promise<UnitHandover> {
  const body = await blobs.get(key);
  if (body === undefined) throw new Error(`hand-over state ${key} is missing from ${blobs.location}`);
  const doc = JSON.parse(new TextDecoder().decode(body)) as UnitHandover;
  if (doc.format !== HANDOVER_FORMAT) throw new Error(`hand-over state ${key}: unknown format '${String(doc.format)}'`);
  for (const field of ['jobId', 'unitId', 'attempt', 'generation'] as const) {
    if (doc[field] !== expect[field]) throw new Error(`hand-over state ${key} is for ${field} ${String(doc[field])}, expected ${String(expect[field])}`);
  }
  return doc;
}
