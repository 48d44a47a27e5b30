import { REGION_IN_CHECKPOINT, SUBTASK_IN_CHECKPOINT } from './lifecycle';
import type { CheckpointTopology } from './topology';
import type { RegionFailure, SubtaskId } from './types';

/** Per-subtask status inside one checkpoint, as codes of SUBTASK_IN_CHECKPOINT (lifecycle.ts). */
export const S_IDLE = SUBTASK_IN_CHECKPOINT.code('idle');
export const S_WAITING = SUBTASK_IN_CHECKPOINT.code('waiting');
export const S_ACKED = SUBTASK_IN_CHECKPOINT.code('acked');
export const S_FINISHED = SUBTASK_IN_CHECKPOINT.code('finished');

/** Per-region status inside one checkpoint, as codes of REGION_IN_CHECKPOINT. */
export const R_UNDECIDED = REGION_IN_CHECKPOINT.code('undecided');
export const R_COMPLETED = REGION_IN_CHECKPOINT.code('completed');
export const R_FAILED = REGION_IN_CHECKPOINT.code('failed');

/**
 * What checkpoint N looks like at its trigger: whom to trigger, whom to wait for in each region,
 * which regions fail at once. Immutable; shared by every checkpoint until liveness changes.
 */
export interface CheckpointPlan {
  /** Template of the per-subtask status (copied into each pending checkpoint). */
  readonly subtaskStatus: Uint8Array;
  /** Template of the number of subtasks each region waits for. */
  readonly regionRemaining: Int32Array;
  /** Template of the region status: COMPLETED for regions whose subtasks have all finished. */
  readonly regionStatus: Uint8Array;
  /** Regions that cannot take part and fail N at its trigger (they are UNDECIDED in the template). */
  readonly initialFailures: readonly { region: number; failure: RegionFailure }[];
  /** Sources of the regions that take part. */
  readonly triggers: readonly SubtaskId[];
  /** Regions with at least one running subtask: the base of the failed-region ratio. */
  readonly participating: number;
  /** Regions not decided at the trigger (including the initial failures). */
  readonly undecided: number;
}

/**
 * Liveness of the subtasks (finished, down) and the sources, and the plan derived from them.
 * The plan is rebuilt (O(subtasks)) only after a change; otherwise every trigger reuses it.
 */
export class CheckpointPlanner {
  private readonly finished: Uint8Array;
  private readonly down: Uint8Array;
  private readonly source: Uint8Array;
  private readonly downCount: Int32Array;
  private cached: CheckpointPlan | undefined;

  constructor(
    readonly topology: CheckpointTopology,
    sources: readonly SubtaskId[],
    finished: Iterable<SubtaskId> = [],
  ) {
    this.finished = new Uint8Array(topology.subtaskCount);
    this.down = new Uint8Array(topology.subtaskCount);
    this.source = new Uint8Array(topology.subtaskCount);
    this.downCount = new Int32Array(topology.regionCount);
    this.setSources(sources);
    for (const i of topology.indexesOf(finished, 'finished subtask')) this.finished[i] = 1;
  }

  setSources(sources: readonly SubtaskId[]): void {
    const idx = this.topology.indexesOf(sources, 'source');
    this.source.fill(0);
    for (const i of idx) this.source[i] = 1;
    this.cached = undefined;
  }

  isFinished(subtask: number): boolean {
    return this.finished[subtask] === 1;
  }

  isDown(subtask: number): boolean {
    return this.down[subtask] === 1;
  }

  /** Whether a region has a subtask that is down. */
  regionDown(region: number): boolean {
    return this.downCount[region]! > 0;
  }

  /** Returns false when it was already finished. */
  markFinished(subtask: number): boolean {
    if (this.finished[subtask] === 1) return false;
    this.finished[subtask] = 1;
    this.cached = undefined;
    return true;
  }

  /** It runs again (restarted from a checkpoint it had not finished at). Returns false when it was not finished. */
  markRunning(subtask: number): boolean {
    if (this.finished[subtask] !== 1) return false;
    this.finished[subtask] = 0;
    this.cached = undefined;
    return true;
  }

  /** Returns false when it was already down. */
  markDown(subtask: number): boolean {
    if (this.down[subtask] === 1) return false;
    this.down[subtask] = 1;
    this.downCount[this.topology.regionOf[subtask]!]!++;
    this.cached = undefined;
    return true;
  }

  /** Returns false when it was not down. */
  markUp(subtask: number): boolean {
    if (this.down[subtask] !== 1) return false;
    this.down[subtask] = 0;
    this.downCount[this.topology.regionOf[subtask]!]!--;
    this.cached = undefined;
    return true;
  }

  plan(): CheckpointPlan {
    return (this.cached ??= this.build());
  }

  private build(): CheckpointPlan {
    const t = this.topology;
    const subtaskStatus = new Uint8Array(t.subtaskCount);
    const regionRemaining = new Int32Array(t.regionCount);
    const regionStatus = new Uint8Array(t.regionCount);
    const initialFailures: { region: number; failure: RegionFailure }[] = [];
    const triggers: SubtaskId[] = [];
    let participating = 0;
    let undecided = 0;
    for (let r = 0; r < t.regionCount; r++) {
      const members = t.regionMembers[r]!;
      let live = 0;
      let liveSources = 0;
      let downSubtask = -1;
      for (const i of members) {
        if (this.finished[i] === 1) {
          subtaskStatus[i] = S_FINISHED;
          continue;
        }
        live++;
        if (this.source[i] === 1) liveSources++;
        if (this.down[i] === 1 && downSubtask < 0) downSubtask = i;
      }
      if (live === 0) {
        regionStatus[r] = R_COMPLETED;
        continue;
      }
      participating++;
      undecided++;
      if (downSubtask >= 0 || liveSources === 0) {
        // Fails at the trigger: nobody in it is asked.
        for (const i of members) if (subtaskStatus[i] !== S_FINISHED) subtaskStatus[i] = S_IDLE;
        initialFailures.push({
          region: r,
          failure:
            downSubtask >= 0
              ? { reason: 'unavailable', message: `subtask ${t.subtasks[downSubtask]} is down`, subtask: t.subtasks[downSubtask]! }
              : { reason: 'no-live-source', message: `no running source in region ${t.regionIds[r]}` },
        });
        continue;
      }
      for (const i of members) {
        if (this.finished[i] === 1) continue;
        subtaskStatus[i] = S_WAITING;
        if (this.source[i] === 1) triggers.push(t.subtasks[i]!);
      }
      regionRemaining[r] = live;
    }
    return { subtaskStatus, regionRemaining, regionStatus, initialFailures, triggers, participating, undecided };
  }
}
