import { R_COMPLETED } from './plan';
import type { PendingCheckpoint } from './pending';
import type { CheckpointFailure, FailureHandle } from './types';

export interface FailurePolicy {
  handle: FailureHandle;
  maxFailedRegionRatio: number;
  maxConsecutiveRegionFailures: number;
}

/**
 * Decides what a region failure means for checkpoint N (the handle and the two limits) and keeps
 * each region's count of consecutive failed checkpoints.
 *
 * Counters move when a checkpoint is finalized, oldest first: a region that failed N counts one
 * more; a region that completed N, when N completed, goes back to 0; a region that completed its
 * part of a checkpoint that failed as a whole keeps its count (its restore point did not move).
 * The consecutive limit therefore can only be judged for the oldest pending checkpoint, whose
 * predecessors are all counted; the ratio limit can be judged at any time. The counters are
 * persisted with the history entries (`countersAfter`) and restored (`restore`) by every new
 * coordinator, so the limit holds across processes.
 */
export class RegionFailureManager {
  private readonly consecutive: Int32Array;

  constructor(
    regionCount: number,
    private readonly policy: FailurePolicy,
  ) {
    this.consecutive = new Int32Array(regionCount);
  }

  /** Consecutive failed checkpoints of a region, as of the last finalized checkpoint. */
  consecutiveFailures(region: number): number {
    return this.consecutive[region]!;
  }

  /** Sets a region's count, read back from the catalog (before any checkpoint is finalized). */
  restore(region: number, count: number): void {
    if (!(region >= 0 && region < this.consecutive.length)) throw new RangeError(`region index ${region} out of range`);
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`consecutive failure count must be a whole number >= 0, got ${count}`);
    this.consecutive[region] = count;
  }

  /**
   * The non-zero counts by region id once these finalized checkpoints (in id order, not yet
   * applied) are counted too. The counters themselves do not move.
   */
  countersAfter(finalized: readonly PendingCheckpoint[], regionIds: readonly string[]): Record<string, number> {
    const counts = finalized.length === 0 ? this.consecutive : this.consecutive.slice();
    for (const p of finalized) applyTo(counts, p);
    const out: Record<string, number> = {};
    for (let r = 0; r < counts.length; r++) if (counts[r]! > 0) out[regionIds[r]!] = counts[r]!;
    return out;
  }

  /** Most regions that may fail N without failing it as a whole (global handle: 0). */
  maxFailedRegions(participating: number): number {
    if (this.policy.handle === 'global') return 0;
    // `failed > ratio * participating`, robust to 0.29 * 100 = 28.999999999999996.
    return Math.floor(this.policy.maxFailedRegionRatio * participating + 1e-9);
  }

  /**
   * Regions of `p` have just failed (already recorded in `p`). Returns the whole-checkpoint failure
   * this causes, if any. `isHead`: `p` is the oldest pending checkpoint, so the consecutive limit
   * can be judged (pass every failed region of `p` when it has just become the oldest).
   */
  judge(p: PendingCheckpoint, failed: readonly number[], regionIds: readonly string[], isHead: boolean): CheckpointFailure | undefined {
    if (failed.length === 0) return undefined;
    if (this.policy.handle === 'global') {
      const r = failed[0]!;
      const cause = p.regionFailures.get(r)!;
      return {
        reason: cause.reason,
        message: `region ${regionIds[r]}: ${cause.message}`,
        regionId: regionIds[r]!,
        ...(cause.subtask !== undefined ? { subtask: cause.subtask } : {}),
      };
    }
    const maxFailed = this.maxFailedRegions(p.plan.participating);
    if (p.failedCount > maxFailed) {
      const r = failed[failed.length - 1]!;
      return {
        reason: 'too-many-failed-regions',
        message: `${p.failedCount} of ${p.plan.participating} regions failed checkpoint ${p.id}, more than maxFailedRegionRatio ${this.policy.maxFailedRegionRatio} allows (${maxFailed}); last: region ${regionIds[r]}: ${p.regionFailures.get(r)!.message}`,
        regionId: regionIds[r]!,
      };
    }
    if (!isHead) return undefined;
    for (const r of failed) {
      const f = this.checkConsecutive(r, regionIds[r]!);
      if (f) return f;
    }
    return undefined;
  }

  private checkConsecutive(region: number, regionId: string): CheckpointFailure | undefined {
    const count = this.consecutive[region]! + 1;
    if (count < this.policy.maxConsecutiveRegionFailures) return undefined;
    return {
      reason: 'too-many-consecutive-failures',
      message: `region ${regionId} failed ${count} checkpoints in a row (limit maxConsecutiveRegionFailures ${this.policy.maxConsecutiveRegionFailures})`,
      regionId,
    };
  }

  /** Moves the counters for a finalized checkpoint (call in checkpoint id order). */
  applyFinalized(p: PendingCheckpoint): void {
    applyTo(this.consecutive, p);
  }
}

function applyTo(counts: Int32Array, p: PendingCheckpoint): void {
  for (const r of p.failedRegions) counts[r]!++;
  if (p.aborted) return;
  for (let r = 0; r < counts.length; r++) {
    if (p.regionState(r) === R_COMPLETED) counts[r] = 0;
  }
}
