/**
 * Placement: which task unit hosts which subtasks, and the queues a job needs. A pure function of
 * the execution graph, the job id, the queue prefix and how many subtasks a unit hosts, so it is
 * never stored: every process that has the graph computes the same layout (the job item stays the
 * same size at any parallelism, and nobody reads a list of units to find its own).
 *
 * The job says how many subtasks a unit hosts at most (`subtasksPerUnit`, default 1: one unit per
 * subtask, numbered task by task, as small jobs always ran). With more, subtasks are placed
 * pipeline slice by pipeline slice: slice i holds subtask i of every task of a pipeline (tasks
 * linked by pointwise edges, in the graph's order), so a source, the tasks its pointwise edges feed
 * and their sinks share a unit. A unit takes whole slices while they fit; a slice larger than the
 * unit is split over units in order.
 *
 * Pipelines are placed one after another, not interleaved: the two ends of an all-to-all edge are
 * in different units. Why: every producer unit of an all-to-all edge sends to every consumer unit
 * (a checkpoint's barriers at least), so the envelopes grow with producer units x consumer units.
 * Slices across the whole graph (Flink's slot sharing) made every unit both: the recommendation
 * join at P=4000 in 122 units had ~15k unit pairs, ~27k barrier envelopes per checkpoint; with
 * its sources in 80 units and its joins in 40 it has 3,200 pairs (docs/scale.md). What slot
 * sharing gains, a channel inside a unit, is worth 1/units of an all-to-all edge.
 *
 * Queues: unit n has the control queue `c<n>` and, when any subtask of it reads an edge, the input
 * queue `u<n>` that every producer unit writes its multiplexed channels into (one message per pair
 * of units carries every channel between them: lib/runtime/channel-mux.ts). So queues, messages,
 * barriers and polls grow with units, not with subtasks; a sub-partition (edge, consumer subtask)
 * stays the unit of availability, fencing and sequence numbers inside those messages.
 *
 * With one subtask per unit the unit id is `<task>-<index>` (what it always was); a unit of several
 * subtasks is `unit-<n>`.
 */
import { controlQueue, unitInputQueue, type ExecutionGraph, type Region } from './execution-graph';
import { JobSpecError } from './job-graph';

export interface UnitPlan {
  unitId: string;
  subtasks: string[];
}

export interface PlacedUnit extends UnitPlan {
  controlQueue: string;
  /** The queue every channel into the unit's subtasks is multiplexed over; absent when none of them reads an edge (sources only). */
  inputQueue?: string;
}

export interface JobLayout {
  /** Task units in placement order, each with its queues. */
  units: PlacedUnit[];
  regions: Region[];
  /** Every queue of the job: the units' input queues, then their control queues. */
  queues: string[];
}

/** Most subtasks one unit may host (a Lambda of 10 GB runs about this many small subtasks). */
export const MAX_SUBTASKS_PER_UNIT = 1000;

/** Checks `subtasksPerUnit` (undefined: the default, 1); the error names the setting. */
export function checkSubtasksPerUnit(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_SUBTASKS_PER_UNIT) {
    throw new JobSpecError(`subtasksPerUnit must be a whole number from 1 to ${MAX_SUBTASKS_PER_UNIT}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** The graph's pipelines: its tasks grouped by pointwise edges, each in the graph's task order, ordered by their first task. */
export function pipelines(graph: ExecutionGraph): ExecutionGraph['tasks'][] {
  const root = new Map(graph.tasks.map((t) => [t.id, t.id]));
  const find = (id: string): string => {
    let r = id;
    while (root.get(r) !== r) r = root.get(r)!;
    return r;
  };
  for (const e of graph.edges) if (e.pointwise) root.set(find(e.from), find(e.to));
  const byRoot = new Map<string, ExecutionGraph['tasks']>();
  for (const t of graph.tasks) {
    const r = find(t.id);
    const list = byRoot.get(r);
    if (list) list.push(t);
    else byRoot.set(r, [t]);
  }
  return [...byRoot.values()];
}

/** Pipeline slices: per pipeline (`pipelines`), slice i is subtask i of each of its tasks that has one. */
export function pipelineSlices(graph: ExecutionGraph): string[][] {
  const slices: string[][] = [];
  for (const tasks of pipelines(graph)) {
    const width = Math.max(0, ...tasks.map((t) => t.parallelism));
    for (let i = 0; i < width; i++) slices.push(tasks.filter((t) => i < t.parallelism).map((t) => `${t.id}#${i}`));
  }
  return slices;
}

/** Which subtasks each unit hosts: whole slices while they fit, a larger slice split in order. */
export function placeSubtasks(graph: ExecutionGraph, subtasksPerUnit = 1): UnitPlan[] {
  checkSubtasksPerUnit(subtasksPerUnit);
  const groups: string[][] = [];
  let current: string[] = [];
  const close = () => {
    if (current.length > 0) groups.push(current);
    current = [];
  };
  // One subtask per unit: task by task, as units were always numbered.
  const slices = subtasksPerUnit === 1 ? [graph.subtasks.map((s) => s.id)] : pipelineSlices(graph);
  for (const slice of slices) {
    if (current.length + slice.length > subtasksPerUnit) close();
    for (const id of slice) {
      if (current.length === subtasksPerUnit) close();
      current.push(id);
    }
  }
  close();
  return groups.map((subtasks, n) => {
    const single = subtasks.length === 1 ? subtasks[0]! : undefined;
    return { unitId: single ? single.replace(/#(\d+)$/, '-$1') : `unit-${n}`, subtasks };
  });
}

/** The units (with their queues), regions and queues of a job. */
export function jobLayout(graph: ExecutionGraph, options: { jobId: string; queuePrefix: string; subtasksPerUnit?: number }): JobLayout {
  const { jobId, queuePrefix } = options;
  const readers = new Set(graph.tasks.filter((t) => t.inputs.length > 0).map((t) => t.id));
  const units: PlacedUnit[] = placeSubtasks(graph, options.subtasksPerUnit ?? 1).map((u, n) => {
    const reads = u.subtasks.some((id) => readers.has(id.slice(0, id.lastIndexOf('#'))));
    return { ...u, controlQueue: controlQueue(queuePrefix, jobId, n), ...(reads ? { inputQueue: unitInputQueue(queuePrefix, jobId, n) } : {}) };
  });
  const queues = [...units.flatMap((u) => (u.inputQueue ? [u.inputQueue] : [])), ...units.map((u) => u.controlQueue)];
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
