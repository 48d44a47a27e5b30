import type { CheckpointRegion, SubtaskId } from './types';

export class TopologyError extends Error {
  override name = 'TopologyError';
}

/**
 * The job's regions and sources, indexed once so that the hot path (one acknowledgement) is a
 * map lookup and array accesses. Immutable: a rescaled job gets a new coordinator.
 */
export class CheckpointTopology {
  /** Every subtask, region by region, in the order given. */
  readonly subtasks: readonly SubtaskId[];
  readonly regionIds: readonly string[];
  /** Subtask ids of each region (the arrays given). */
  readonly regionSubtasks: readonly (readonly SubtaskId[])[];
  /** Subtask indexes of each region. */
  readonly regionMembers: readonly Int32Array[];
  /** Region index of each subtask index. */
  readonly regionOf: Int32Array;
  private readonly subtaskIndex = new Map<SubtaskId, number>();
  private readonly regionIndexById = new Map<string, number>();

  constructor(regions: readonly CheckpointRegion[]) {
    const subtasks: SubtaskId[] = [];
    const regionOf: number[] = [];
    const members: Int32Array[] = [];
    regions.forEach((region, r) => {
      if (typeof region.id !== 'string' || region.id === '') throw new TopologyError(`region ${r} has no id`);
      if (this.regionIndexById.has(region.id)) throw new TopologyError(`region '${region.id}' appears twice`);
      if (region.subtasks.length === 0) throw new TopologyError(`region '${region.id}' has no subtasks`);
      this.regionIndexById.set(region.id, r);
      const m = new Int32Array(region.subtasks.length);
      region.subtasks.forEach((s, i) => {
        if (this.subtaskIndex.has(s)) throw new TopologyError(`subtask '${s}' is in more than one region (or twice in '${region.id}')`);
        this.subtaskIndex.set(s, subtasks.length);
        m[i] = subtasks.length;
        subtasks.push(s);
        regionOf.push(r);
      });
      members.push(m);
    });
    this.subtasks = subtasks;
    this.regionIds = regions.map((r) => r.id);
    this.regionSubtasks = regions.map((r) => r.subtasks);
    this.regionMembers = members;
    this.regionOf = Int32Array.from(regionOf);
  }

  get subtaskCount(): number {
    return this.subtasks.length;
  }

  get regionCount(): number {
    return this.regionIds.length;
  }

  /** Index of a subtask, or -1 when it is not part of the job. */
  indexOf(subtask: SubtaskId): number {
    const i = this.subtaskIndex.get(subtask);
    return i === undefined ? -1 : i;
  }

  /** Index of a region, or -1. */
  regionIndex(regionId: string): number {
    const i = this.regionIndexById.get(regionId);
    return i === undefined ? -1 : i;
  }

  /** Region index of a subtask id, or -1. */
  regionOfSubtask(subtask: SubtaskId): number {
    const i = this.subtaskIndex.get(subtask);
    return i === undefined ? -1 : this.regionOf[i]!;
  }

  /** Subtask indexes for ids, rejecting unknown ones. */
  indexesOf(subtasks: Iterable<SubtaskId>, what: string): number[] {
    const out: number[] = [];
    for (const s of subtasks) {
      const i = this.indexOf(s);
      if (i < 0) throw new TopologyError(`${what} '${s}' is not a subtask of any region`);
      out.push(i);
    }
    return out;
  }
}
