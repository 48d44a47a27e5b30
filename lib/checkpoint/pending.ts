import { CHECKPOINT_LIFECYCLE, REGION_IN_CHECKPOINT, SUBTASK_IN_CHECKPOINT, type CheckpointPhase } from './lifecycle';
import { R_COMPLETED, R_FAILED, R_UNDECIDED, S_ACKED, S_FINISHED, type CheckpointPlan } from './plan';
import type { CheckpointTopology } from './topology';
import type { CheckpointFailure, ManifestRegion, RegionFailure, SnapshotHandle, SubtaskId, SubtaskSnapshot } from './types';

export type AckResult =
  /** Recorded; the region still waits for others. */
  | 'accepted'
  /** Recorded, and it was the region's last one: the region completed N. */
  | 'region-completed'
  /** The subtask had already acknowledged N: nothing recorded. */
  | 'duplicate'
  /** Not expected (region failed, subtask not asked or finished, N failed as a whole): nothing recorded. */
  | 'rejected';

const EMPTY: readonly never[] = Object.freeze([]);

/**
 * One checkpoint in flight: who acknowledged, which regions are decided. Bookkeeping only — what a
 * decline or a failure means (the handle, the limits) is decided by the coordinator and the failure
 * manager. Every per-subtask operation is O(1); per-region ones are O(region size).
 */
export class PendingCheckpoint {
  readonly deadline: number;
  private readonly status: Uint8Array;
  private readonly state: (readonly SnapshotHandle[] | undefined)[];
  private readonly remaining: Int32Array;
  private readonly regionStatus: Uint8Array;
  private readonly acked: Int32Array;
  /** Failed regions, in the order they failed. */
  readonly failedRegions: number[] = [];
  readonly regionFailures = new Map<number, RegionFailure>();
  undecided: number;
  completedRegions: number;
  bytesWritten = 0;
  /** Bytes of the snapshots put into the manifest (see `manifestEntry`). */
  bytesKept = 0;
  /** Set when N failed as a whole. */
  failure: CheckpointFailure | undefined;
  /** When N was finalized (completed) or failed as a whole. */
  endTime: number | undefined;
  phase: CheckpointPhase = 'pending';
  /** Set once the failure manager has looked at it as the oldest pending checkpoint. */
  headChecked = false;
  /** The attempt each subtask ran at the trigger (-1: unknown); only that attempt's acknowledgement counts. */
  readonly attempts: Int32Array;

  constructor(
    readonly id: number,
    readonly triggerTime: number,
    timeoutMs: number,
    readonly plan: CheckpointPlan,
    private readonly topology: CheckpointTopology,
    attempts?: Int32Array,
  ) {
    this.attempts = attempts ? attempts.slice() : new Int32Array(topology.subtaskCount).fill(-1);
    this.deadline = triggerTime + timeoutMs;
    this.status = plan.subtaskStatus.slice();
    this.state = new Array(topology.subtaskCount);
    this.remaining = plan.regionRemaining.slice();
    this.regionStatus = plan.regionStatus.slice();
    this.acked = new Int32Array(topology.regionCount);
    this.undecided = plan.undecided;
    this.completedRegions = topology.regionCount - plan.participating;
  }

  get failedCount(): number {
    return this.failedRegions.length;
  }

  /** Failed as a whole. */
  get aborted(): boolean {
    return this.phase === 'failed';
  }

  /** Every region completed or failed. */
  get decided(): boolean {
    return this.undecided === 0;
  }

  regionState(region: number): number {
    return this.regionStatus[region]!;
  }

  subtaskState(subtask: number): number {
    return this.status[subtask]!;
  }

  /** The snapshot a subtask acknowledged for N, if any. */
  snapshotOf(subtask: number): readonly SnapshotHandle[] | undefined {
    return this.state[subtask];
  }

  acknowledge(subtask: number, state: readonly SnapshotHandle[]): AckResult {
    const st = this.status[subtask]!;
    if (!SUBTASK_IN_CHECKPOINT.canCode(st, S_ACKED)) return st === S_ACKED && !this.aborted ? 'duplicate' : 'rejected';
    const r = this.topology.regionOf[subtask]!;
    if (this.regionStatus[r] !== R_UNDECIDED || this.aborted) return 'rejected';
    this.status[subtask] = S_ACKED;
    this.state[subtask] = state;
    for (let i = 0; i < state.length; i++) this.bytesWritten += state[i]!.bytes;
    this.acked[r]!++;
    return --this.remaining[r]! === 0 ? this.complete(r) : 'accepted';
  }

  /** A waiting subtask finished: stop waiting for it. Returns whether that completed its region. */
  finish(subtask: number): boolean {
    if (!SUBTASK_IN_CHECKPOINT.canCode(this.status[subtask]!, S_FINISHED) || this.aborted) return false;
    this.status[subtask] = S_FINISHED;
    const r = this.topology.regionOf[subtask]!;
    if (this.regionStatus[r] !== R_UNDECIDED) return false;
    return --this.remaining[r]! === 0 && this.complete(r) === 'region-completed';
  }

  private complete(r: number): 'region-completed' {
    this.regionStatus[r] = REGION_IN_CHECKPOINT.checkCode(this.regionStatus[r]!, R_COMPLETED);
    this.undecided--;
    this.completedRegions++;
    return 'region-completed';
  }

  /**
   * Fails a region (undecided, or completed but not finalized). Returns the keys it acknowledged
   * for N (to discard), or undefined when it had already failed.
   */
  failRegion(region: number, failure: RegionFailure): string[] | undefined {
    const st = this.regionStatus[region]!;
    if (!REGION_IN_CHECKPOINT.canCode(st, R_FAILED)) return undefined; // already failed
    if (st === R_UNDECIDED) this.undecided--;
    else this.completedRegions--;
    this.regionStatus[region] = R_FAILED;
    this.regionFailures.set(region, failure);
    this.failedRegions.push(region);
    return this.keysOf(region);
  }

  /** N is finalized with a manifest. */
  finalize(now: number): void {
    this.phase = CHECKPOINT_LIFECYCLE.check(this.phase, 'completed');
    this.endTime = now;
  }

  /** Fails N as a whole. Returns the keys of regions not already failed (to discard). */
  abort(failure: CheckpointFailure, now: number): string[] {
    this.phase = CHECKPOINT_LIFECYCLE.check(this.phase, 'failed');
    this.failure = failure;
    this.endTime = now;
    const keys: string[] = [];
    for (let r = 0; r < this.topology.regionCount; r++) {
      if (this.regionStatus[r] !== R_FAILED && this.acked[r]! > 0) this.collectKeys(r, keys);
    }
    return keys;
  }

  private keysOf(region: number): string[] {
    const keys: string[] = [];
    if (this.acked[region]! > 0) this.collectKeys(region, keys);
    return keys;
  }

  private collectKeys(region: number, into: string[]): void {
    for (const i of this.topology.regionMembers[region]!) {
      const s = this.state[i];
      if (s !== undefined) for (const h of s) into.push(h.key);
    }
  }

  /**
   * The manifest entry of a completed region: every acknowledged snapshot, and the finished
   * subtasks. Adds the region's bytes to `bytesKept`.
   */
  manifestEntry(region: number): ManifestRegion {
    const t = this.topology;
    const members = t.regionMembers[region]!;
    const subtasks: SubtaskSnapshot[] = [];
    let finished: SubtaskId[] | undefined;
    for (let k = 0; k < members.length; k++) {
      const i = members[k]!;
      if (this.status[i] === S_ACKED) {
        const state = this.state[i]!;
        subtasks.push({ subtask: t.subtasks[i]!, state });
        for (let h = 0; h < state.length; h++) this.bytesKept += state[h]!.bytes;
      } else (finished ??= []).push(t.subtasks[i]!);
    }
    return { regionId: t.regionIds[region]!, restoreFrom: this.id, subtasks, finished: finished ?? EMPTY };
  }

  /** Subtasks of a region that acknowledged N (the region's own id array when all of them did). */
  ackedSubtasks(region: number): readonly SubtaskId[] {
    const members = this.topology.regionMembers[region]!;
    if (this.acked[region] === members.length) return this.topology.regionSubtasks[region]!;
    const out: SubtaskId[] = [];
    for (const i of members) if (this.status[i] === S_ACKED) out.push(this.topology.subtasks[i]!);
    return out;
  }
}
