import type { CheckpointCounters, CheckpointFailureReason, CheckpointHistoryEntry, FailureHandle, RegionFailureRecord } from './types';

/** What the coordinator knows about a finalized checkpoint, to make its history entry. */
export interface FinalizedCheckpointInfo {
  checkpointId: number;
  handle: FailureHandle;
  triggerTime: number;
  endTime: number;
  failure: { reason: CheckpointFailureReason; message: string } | undefined;
  regionsTotal: number;
  participating: number;
  completedRegions: number;
  failedRegions: RegionFailureRecord[];
  bytesWritten: number;
  bytesKept: number;
  /** See `CheckpointHistoryEntry.consecutiveFailures`; undefined when not known yet. */
  consecutiveFailures?: Record<string, number> | undefined;
}

export function historyEntry(info: FinalizedCheckpointInfo): CheckpointHistoryEntry {
  const entry: CheckpointHistoryEntry = {
    checkpointId: info.checkpointId,
    handle: info.handle,
    triggerTime: info.triggerTime,
    endTime: info.endTime,
    durationMs: info.endTime - info.triggerTime,
    outcome: info.failure ? { status: 'failed', reason: info.failure.reason, message: info.failure.message } : { status: 'completed' },
    regions: {
      total: info.regionsTotal,
      participating: info.participating,
      completed: info.completedRegions,
      failed: info.failedRegions.length,
    },
    failedRegions: info.failedRegions,
    bytesWritten: info.bytesWritten,
    bytesKept: info.bytesKept,
  };
  if (info.consecutiveFailures !== undefined) entry.consecutiveFailures = info.consecutiveFailures;
  return entry;
}

/** Outcome of one region in a history entry. */
export function regionOutcome(
  entry: CheckpointHistoryEntry,
  regionId: string,
): { status: 'completed' } | { status: 'failed'; record: RegionFailureRecord } | { status: 'not-kept' } {
  const record = entry.failedRegions.find((f) => f.regionId === regionId);
  if (record) return { status: 'failed', record };
  return entry.outcome.status === 'completed' ? { status: 'completed' } : { status: 'not-kept' };
}

/** Counters and a bounded in-memory history of finalized checkpoints. */
export class CheckpointStatsTracker {
  readonly counters: CheckpointCounters = {
    triggered: 0,
    completed: 0,
    failed: 0,
    refused: 0,
    queued: 0,
    regionCompleted: 0,
    regionFailed: 0,
    regionFallbacks: 0,
    failureReasons: {},
  };
  private readonly entries: CheckpointHistoryEntry[] = [];
  private latestCompletedEntry: CheckpointHistoryEntry | undefined;
  private latestFailedEntry: CheckpointHistoryEntry | undefined;

  constructor(readonly historySize: number) {}

  triggered(): void {
    this.counters.triggered++;
  }

  refused(): void {
    this.counters.refused++;
  }

  queued(): void {
    this.counters.queued++;
  }

  record(entry: CheckpointHistoryEntry): void {
    const c = this.counters;
    c.regionFailed += entry.regions.failed;
    if (entry.outcome.status === 'completed') {
      c.completed++;
      c.regionCompleted += entry.regions.completed;
      c.regionFallbacks += entry.regions.failed;
      this.latestCompletedEntry = entry;
    } else {
      c.failed++;
      c.failureReasons[entry.outcome.reason] = (c.failureReasons[entry.outcome.reason] ?? 0) + 1;
      this.latestFailedEntry = entry;
    }
    this.entries.push(entry);
    if (this.entries.length > this.historySize * 2) this.entries.splice(0, this.entries.length - this.historySize);
  }

  /** The last `historySize` entries, in the order they were finalized. */
  history(): readonly CheckpointHistoryEntry[] {
    return this.entries.length > this.historySize ? this.entries.slice(this.entries.length - this.historySize) : this.entries;
  }

  latestCompleted(): CheckpointHistoryEntry | undefined {
    return this.latestCompletedEntry;
  }

  latestFailed(): CheckpointHistoryEntry | undefined {
    return this.latestFailedEntry;
  }
}
