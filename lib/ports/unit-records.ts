/**
 * What a task unit writes about itself: its record (attempt, status, heartbeat, counters) and its
 * hand-over, fenced by attempt and owner token. The data plane writes it through this port; the
 * control plane's JobStore implements it over the metadata store and reads the same records.
 */

import { lifecycle } from '../util/lifecycle';

/**
 * The lifecycle of a unit attempt (its record's `status`). Every attempt starts STARTING
 * (`JobStore.startUnitAttempt`), whatever the one before it ended as; the record then moves only
 * as this table says, and a report that restates the status it has is no move. The writes of
 * JobStore are conditional on it, so a report the table does not allow is refused (false), as
 * one from a superseded attempt is.
 */
export const UNIT_LIFECYCLE = lifecycle('task unit', {
  /** Launched and not running yet (process start, restore), or between two invocations of a hand-over. */
  STARTING: ['RUNNING', 'FINISHED', 'FAILED', 'CANCELLED'],
  /** An invocation runs it (the first, or the successor of a hand-over); back to STARTING when it hands over. */
  RUNNING: ['STARTING', 'FINISHED', 'FAILED', 'CANCELLED'],
  /** Every subtask finished: reported by the unit, or recorded by the supervisor for one that died after. */
  FINISHED: [],
  /** The unit reported an error (a failover starts a new attempt). */
  FAILED: [],
  /** The job stopped it (cancel, or the job failed); its later reports are refused. */
  CANCELLED: [],
});

export type UnitStatus = (typeof UNIT_LIFECYCLE.states)[number];

export interface SubtaskStats {
  status: string;
  /** The last checkpoint the subtask took (absent from older units). */
  lastCheckpoint?: number;
  recordsIn: number;
  recordsOut: number;
  dropped: number;
  /** Input messages dropped as redeliveries (a sequence number already delivered). */
  duplicates: number;
  fenced: number;
  /** Input records dropped as already processed (a restored source's replay). Absent from older units. */
  duplicateRecords?: number;
  /** Input records never seen (a channel's record position jumped). */
  missingRecords?: number;
  /** Input records re-read (messages received before: after this subtask's own restart). */
  replayedRecords?: number;
  /** Input records a restarted producer sends again: what this consumer took of its dead attempt after the producer's restore point. */
  regeneratedRecords?: number;
  /** Input records skipped for good that no producer counts (a replay could not give them; a restored source forgot their drop): lost, part of `missingRecords`. */
  unreplayedRecords?: number;
  /** Output records sent again to restarted consumers from the in-flight logs. */
  resentRecords?: number;
  /** Input deletes whose receipt had expired. */
  expiredReceipts?: number;
  /** Input messages that arrived out of order and waited for an earlier one. */
  reordered?: number;
  /** Times the subtask failed and was restarted alone inside its unit (this unit attempt; single-point strategies). */
  restarts?: number;
  /** Restarted alone: input channels whose replay has not come yet (see lib/runtime/replay.ts). */
  replaysAwaited?: number;
  /** Its input ended and it is finishing: the step it is in (lib/runtime/subtask.ts `finish`). */
  ending?: string;
  /**
   * The record counters per input channel (edge/producer), channels with any only, and of those
   * at most a few (runtime/subtask.ts CHANNELS_REPORTED: the ones with the most records counted):
   * the record is one DynamoDB item. The counters above are the totals over every channel.
   */
  channels?: Record<string, { duplicateRecords: number; missingRecords: number; replayedRecords: number; regeneratedRecords?: number; unreplayedRecords?: number }>;
  /** Channels with counts left out of `channels`. */
  channelsOmitted?: number;
  /** Per input edge with any, over all its channels (what a loss check per edge needs: `channels` may list only a few). */
  edges?: Record<string, { missingRecords: number; unreplayedRecords: number; regeneratedRecords: number }>;
}

/**
 * A unit's multiplexed transport (runtime/channel-mux.ts), reported with its record: what a stuck
 * checkpoint at scale needs to tell apart (envelopes not coming, held, or lapsing and coming again).
 */
export interface TransportStats {
  envelopesSent: number;
  partsSent: number;
  envelopesReceived: number;
  partsReceived: number;
  /** Parts for a sub-partition whose subtask had ended or was down: dropped (its producers give them again if needed). */
  partsDropped: number;
  /** Envelope deletes and extensions refused because the receipt had expired (the envelope comes again). */
  expiredReceipts: number;
  /** Envelopes whose receipt expired before all their parts were taken: each is received again, every part a duplicate. */
  envelopesLapsed: number;
  /** Envelopes whose delete call failed (not an expired receipt: an error): each is received again. */
  deleteFailures: number;
  /** Channel messages delivered within the unit (producer and consumer both here), not through SQS. */
  partsLocal: number;
  /** Receives of the unit's input queue that failed (a timeout, throttling) and were tried again. */
  receiveFailures?: number;
  /** Now: envelopes received whose parts are not all taken yet, the bytes the inboxes hold, and the lease receives ask for (s). */
  envelopesHeld?: number;
  bufferedBytes?: number;
  leaseSeconds?: number;
  /**
   * What the unit's input poller does now and since when (ms since the epoch): `receiving`, or what
   * it waits for (`inboxes` full, `deletes` behind, the process's `budget` full, `retrying` after a
   * failed receive), or why it stopped (`failed`, `superseded`, `stopped`). A unit that takes
   * nothing in says here why.
   */
  poller?: { state: PollerState; since: number };
}

export type PollerState = 'receiving' | 'inboxes' | 'deletes' | 'budget' | 'retrying' | 'failed' | 'superseded' | 'stopped';

export interface UnitRecord {
  unitId: string;
  subtasks: string[];
  attempt: number;
  status: UnitStatus;
  startedAt: number;
  heartbeatAt: number;
  stats: { [subtaskId: string]: SubtaskStats };
  /** AWS requests this attempt made, by service. */
  requests: { [service: string]: number };
  /** Its multiplexed transport's counters (packed units), as of its last report. */
  transport?: TransportStats;
  error?: string;
  /** Invocation of this attempt that runs now (0 first; +1 per hand-over). */
  generation?: number;
  /** Token of the invocation that owns the record now; its writes are fenced by it. */
  owner?: string;
  /** The last hand-over: the invocation that continues from it and its state in S3. */
  handover?: UnitHandoverPointer;
  /** When the job stopped the unit (cancel, or the job failed). */
  stoppedAt?: number;
  /**
   * Loss and duplicate counters of the unit's earlier attempts (their last report), summed: a
   * restart starts its counters from 0, and what the dead attempt counted must still show.
   */
  carried?: { [counter: string]: number };
}

export interface UnitHandoverPointer {
  generation: number;
  key: string;
  at: number;
  /** Owner token of the invocation that handed over: the claim is conditional on it. */
  from: string;
}

/** The unit record writes a running unit makes (JobStore implements them). */
export interface UnitRecordStore {
  /** The first invocation of an attempt takes the record; false: another did, or a newer attempt exists. */
  startInvocation(jobId: string, unitId: string, attempt: number, owner: string): Promise<boolean>;
  /** A liveness heartbeat alone (a small item), fenced by attempt; false: a newer attempt exists or the job stopped this one. */
  beat(jobId: string, unitId: string, attempt: number): Promise<boolean>;
  /** A heartbeat or status change, fenced by attempt (and owner); false: the unit no longer owns its record. */
  reportUnit(jobId: string, unitId: string, attempt: number, changes: Partial<UnitRecord>, owner?: string): Promise<boolean>;
  /** Points the record at a hand-over for invocation `generation`; false: superseded. */
  recordHandover(jobId: string, unitId: string, attempt: number, owner: string, generation: number, key: string, report: Partial<UnitRecord>): Promise<boolean>;
}

/**
 * Counters a unit record carries over from one attempt to the next (the job store adds them up);
 * the others are state, restored from the checkpoint with the rest.
 */
export const CARRIED_COUNTERS = ['duplicates', 'fenced', 'replayedRecords', 'expiredReceipts'] as const;
