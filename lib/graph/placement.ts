/**
 * Placement: which task unit hosts which subtasks, and the queues a job needs. A pure function of
 * the execution graph, the job id, the queue prefix and how many subtasks a unit hosts, so it is
 * never stored: every process that has the graph computes the same layout (the job item stays the
 * same size at any parallelism, and nobody reads a list of units to find its own).
 *
 * Units are task-homogeneous: unit k of task T hosts T's subtasks [k·n, (k+1)·n), n subtasks per
 * unit (the last unit of a task may host fewer). With n = 1 this is one unit per subtask, named
 * `<task>-<index>`; with n > 1 a unit is named `<task>-<first>` after its first subtask index.
 * Keeping a unit to one task keeps the unit pairs an edge connects to producers' units × consumers'
 * units (for recommendation-join at P=4000, n=100: 40 × 40 per edge) rather than every unit with
 * every other, which is what multiplexing channels per unit pair (issue 12, item 1) will count
 * messages, barriers and polls by. Subtask i of a pointwise edge's producer and consumer sit in
 * units with the same index range, so a pipeline stays within one pair of units.
 */
import { controlQueue, subPartitionQueue, type ExecutionGraph, type Region } from './execution-graph';

export interface UnitPlan {
  unitId: string;
  subtasks: string[];
}

export interface PlacedUnit extends UnitPlan {
  controlQueue: string;
}

export interface JobLayout {
  /** Task units in placement order (task by task, by index), each with its control queue. */
  units: PlacedUnit[];
  regions: Region[];
  /** Every queue of the job: one per sub-partition, then one control queue per unit. */
  queues: string[];
}

/** Most subtasks one unit may host (a Lambda or Fargate unit long-polls each input queue itself). */
export const MAX_SUBTASKS_PER_UNIT = 1000;

export class PlacementError extends Error {
  override name = 'PlacementError';
}

export function checkSubtasksPerUnit(n: number): void {
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_SUBTASKS_PER_UNIT)) {
    throw new PlacementError(`subtasksPerUnit must be a whole number from 1 to ${MAX_SUBTASKS_PER_UNIT}, got ${n}`);
  }
}

/** Which subtasks each unit hosts: `subtasksPerUnit` consecutive subtasks of one task per unit. */
export function placeSubtasks(graph: ExecutionGraph, subtasksPerUnit = 1): UnitPlan[] {
  checkSubtasksPerUnit(subtasksPerUnit);
  const units: UnitPlan[] = [];
  for (const task of graph.tasks) {
    for (let first = 0; first < task.parallelism; first += subtasksPerUnit) {
      const last = Math.min(task.parallelism, first + subtasksPerUnit);
      units.push({ unitId: `${task.id}-${first}`, subtasks: Array.from({ length: last - first }, (_, i) => `${task.id}#${first + i}`) });
    }
  }
  return units;
}

/** The units (with their control queues), regions and queues of a job. */
export function jobLayout(graph: ExecutionGraph, options: { jobId: string; queuePrefix: string; subtasksPerUnit?: number }): JobLayout {
  const { jobId, queuePrefix } = options;
  const units = placeSubtasks(graph, options.subtasksPerUnit ?? 1).map((u, n) => ({ ...u, controlQueue: controlQueue(queuePrefix, jobId, n) }));
  const parallelism = new Map(graph.tasks.map((t) => [t.id, t.parallelism]));
  const queues = [
    ...graph.edges.flatMap((e) => Array.from({ length: parallelism.get(e.to)! }, (_, j) => subPartitionQueue(queuePrefix, jobId, e.id, j))),
    ...units.map((u) => u.controlQueue),
  ];
  return { units, regions: graph.regions, queues };
}

/** Unit id → unit, and subtask id → its unit, for lookups over a layout. */
export class LayoutIndex {
  private readonly byId = new Map<string, PlacedUnit>();
  private readonly bySubtask = new Map<string, PlacedUnit>();

  constructor(readonly layout: Pick<JobLayout, 'units'>) {
    for (const u of layout.units) {
      this.byId.set(u.unitId, u);
      for (const s of u.subtasks) this.bySubtask.set(s, u);
    }
  }

  unit(unitId: string): PlacedUnit | undefined {
    return this.byId.get(unitId);
  }

  unitOf(subtask: string): PlacedUnit | undefined {
    return this.bySubtask.get(subtask);
  }
}
