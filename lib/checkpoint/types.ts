/**
 * Plain input, output and record types of the checkpoint coordination core.
 *
 * The core is pure: no AWS, no timers. Time comes in as `now` (ms since the epoch) on every call,
 * and everything the caller must do comes back as a list of effects, in the order they must be done.
 */

/** `"<task vertex id>#<index>"`, e.g. `"parse#3"`. */
export type SubtaskId = string;

/** A checkpoint region: subtasks joined by pointwise edges. Computed by the job graph. */
export interface CheckpointRegion {
  id: string;
  subtasks: readonly SubtaskId[];
}

/** What the coordinator needs to know about the job's shape. */
export interface CheckpointTopologyInput {
  regions: readonly CheckpointRegion[];
  /** Subtasks that receive the trigger: they snapshot their offsets and inject barrier N. */
  sources: readonly SubtaskId[];
  /** Subtasks whose bounded input has already ended; they are not waited for. */
  finished?: Iterable<SubtaskId>;
}

/** One object of a subtask's snapshot (an S3 key of its state and its size). */
export interface SnapshotHandle {
  key: string;
  bytes: number;
}

export type FailureHandle = 'global' | 'regional';

export interface CheckpointConfig {
  jobId: string;
  /** global: any failure fails checkpoint N as a whole. regional: it fails only the region concerned. */
  handle: FailureHandle;
  /** N times out when `now >= triggerTime + timeoutMs`. */
  timeoutMs: number;
  /** Checkpoints pending at once (default 1). */
  maxConcurrent?: number;
  /** A trigger while `maxConcurrent` checkpoints are pending is queued or refused (default 'queue'). */
  whenBusy?: 'queue' | 'refuse';
  /** Most triggers waiting in the queue; more are refused (default 1). */
  maxQueued?: number;
  /** Regional handle: N fails as a whole when more than this fraction of its regions fail (default 0.5). */
  maxFailedRegionRatio?: number;
  /**
   * Regional handle: N fails as a whole when a region that failed N has now failed this many
   * checkpoints in a row, N included (default 3).
   */
  maxConsecutiveRegionFailures?: number;
  /** Completed checkpoints (manifests) kept; the latest is always one of them (default 2). */
  retained?: number;
  /** History entries kept in memory by the stats tracker (default 100). */
  historySize?: number;
}

export type ResolvedCheckpointConfig = Required<CheckpointConfig>;

/** Why a region failed checkpoint N. */
export type RegionFailureReason =
  /** A subtask declined N. */
  | 'declined'
  /** A subtask of the region failed while N was not finalized. */
  | 'task-failed'
  /** N timed out before every subtask of the region acknowledged it. */
  | 'timeout'
  /** A subtask of the region was down (failed, not yet recovered) when N was triggered. */
  | 'unavailable'
  /** The region has running subtasks but none of its sources is running, so no barrier can enter it. */
  | 'no-live-source';

/** Why checkpoint N failed as a whole. Under the global handle, it is the first region failure's reason. */
export type CheckpointFailureReason =
  | RegionFailureReason
  | 'too-many-failed-regions'
  | 'too-many-consecutive-failures'
  /** The job finished, failed or was cancelled while N was pending (`jobEnded`). */
  | 'job-ended';

export interface RegionFailure {
  reason: RegionFailureReason;
  message: string;
  subtask?: SubtaskId;
}

export interface CheckpointFailure {
  reason: CheckpointFailureReason;
  message: string;
  regionId?: string;
  subtask?: SubtaskId;
}

// ---------------------------------------------------------------------------------------------
// Manifest: what recovery reads.

export interface SubtaskSnapshot {
  subtask: SubtaskId;
  state: readonly SnapshotHandle[];
}

export interface ManifestRegion {
  regionId: string;
  /** The checkpoint every subtask of the region restores from; null when it never completed one. */
  restoreFrom: number | null;
  /** The snapshot of every subtask that was running at `restoreFrom`. */
  subtasks: readonly SubtaskSnapshot[];
  /** Subtasks that had finished at `restoreFrom`: not restarted on restore, no state. */
  finished: readonly SubtaskId[];
}

export const MANIFEST_FORMAT = 'sluice.checkpoint-manifest/v1';

export interface CheckpointManifest {
  format: typeof MANIFEST_FORMAT;
  jobId: string;
  checkpointId: number;
  handle: FailureHandle;
  triggerTime: number;
  completedTime: number;
  /** Every region of the job, in topology order. */
  regions: readonly ManifestRegion[];
}

// ---------------------------------------------------------------------------------------------
// Stats.

export interface RegionFailureRecord {
  regionId: string;
  reason: RegionFailureReason;
  message: string;
  subtask?: SubtaskId;
  /** The checkpoint the region falls back to (its restore point before N); null for none. */
  fallback: number | null;
}

export interface CheckpointHistoryEntry {
  checkpointId: number;
  handle: FailureHandle;
  triggerTime: number;
  endTime: number;
  durationMs: number;
  outcome: { status: 'completed' } | { status: 'failed'; reason: CheckpointFailureReason; message: string };
  regions: {
    /** Regions of the job. */
    total: number;
    /** Regions that had running subtasks at the trigger (the base of the failed-region ratio). */
    participating: number;
    /** Regions whose subtasks all acknowledged N (or had finished). Kept only if N completed. */
    completed: number;
    /** Regions that failed N; listed in `failedRegions`. */
    failed: number;
  };
  /** Per failed region: reason and the checkpoint it falls back to. Regions not listed completed N
   *  (when N completed) or were left undecided when N failed as a whole. */
  failedRegions: RegionFailureRecord[];
  /** Bytes of every snapshot acknowledged for N, including ones discarded later. */
  bytesWritten: number;
  /** Bytes of the snapshots of N referenced by its manifest (0 when N failed as a whole). */
  bytesKept: number;
  /**
   * Each region's consecutive failed checkpoints (non-zero ones only) once N is counted, with the
   * checkpoints counted in the same step: older ones and, with `maxConcurrent > 1`, later ones
   * that had already failed as a whole. A new coordinator restores the counters from the newest
   * entry that has them. Absent when N failed as a whole while an older checkpoint was still in
   * flight (N is counted after it; the next entry that has counters includes N), and in entries
   * written before counters were persisted.
   */
  consecutiveFailures?: Record<string, number>;
}

export interface CheckpointCounters {
  triggered: number;
  completed: number;
  failed: number;
  /** Triggers refused (busy with `whenBusy: 'refuse'`, or the queue was full). */
  refused: number;
  /** Triggers that waited in the queue. */
  queued: number;
  /** Region checkpoints that completed in a checkpoint that completed. */
  regionCompleted: number;
  /** Region checkpoints that failed (whatever became of N). */
  regionFailed: number;
  /** Regions that fell back to an earlier checkpoint in a checkpoint that completed. */
  regionFallbacks: number;
  /** Whole-checkpoint failures by reason. */
  failureReasons: Partial<Record<CheckpointFailureReason, number>>;
}

// ---------------------------------------------------------------------------------------------
// Effects: what the caller must do, in this order.

export type CheckpointEffect =
  /** Send "trigger N" to these sources (they snapshot offsets and inject barrier N). */
  | {
      type: 'triggerSources';
      checkpointId: number;
      triggerTime: number;
      /** Call `tick(now)` at or after this time for the timeout to pass. */
      deadline: number;
      subtasks: readonly SubtaskId[];
    }
  /** The trigger waits until a pending checkpoint finalizes. */
  | { type: 'triggerQueued'; queued: number }
  /** The trigger was refused (sources-finished: no running region has a source left to start a barrier). */
  | { type: 'triggerRefused'; reason: 'busy' | 'queue-full' | 'sources-finished'; pending: readonly number[] }
  /** Tell these subtasks to stop working on N (regionId null: the whole checkpoint). Advisory. */
  | {
      type: 'abortCheckpoint';
      checkpointId: number;
      regionId: string | null;
      subtasks: readonly SubtaskId[];
      reason: CheckpointFailureReason;
    }
  /**
   * Delete these snapshot objects: they were written for N by a region that failed N, or for a
   * checkpoint that failed as a whole (regionId null), or arrived after N was decided. No manifest
   * references them.
   */
  | { type: 'discardSnapshots'; checkpointId: number; regionId: string | null; keys: string[] }
  /**
   * N is decided. When completed, persist the manifest (and the history entry) BEFORE doing any
   * effect that follows it: the notifies after it make sinks commit.
   */
  | {
      type: 'checkpointFinalized';
      checkpointId: number;
      outcome: 'completed';
      manifest: CheckpointManifest;
      history: CheckpointHistoryEntry;
      /** Ids of the completed checkpoints retained after this one was added, oldest first. */
      retained: readonly number[];
    }
  | { type: 'checkpointFinalized'; checkpointId: number; outcome: 'failed'; failure: CheckpointFailure; history: CheckpointHistoryEntry }
  /**
   * These completed checkpoints are no longer retained: delete their manifests, and these snapshot
   * keys, which no retained manifest references any more.
   */
  | { type: 'retireCheckpoints'; checkpointIds: number[]; keys: string[] }
  /** N is complete for this region: its subtasks (those that snapshotted N) may commit N. */
  | { type: 'notifyComplete'; checkpointId: number; regionId: string; subtasks: readonly SubtaskId[] };

export type CheckpointEffectType = CheckpointEffect['type'];
