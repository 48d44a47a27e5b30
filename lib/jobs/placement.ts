/**
 * Placement: which subtasks each task unit hosts, and the unit's queues.
 *
 * The job says how many subtasks a unit hosts at most (`subtasksPerUnit`, default 1: one unit per
 * subtask, numbered task by task, as small jobs always ran). With more, subtasks are placed pipeline slice by pipeline slice: slice i
 * holds subtask i of every task (tasks in the graph's order), so a source, the tasks its pointwise
 * edges feed and their sinks share a unit, as Flink's slot sharing puts one subtask of each
 * operator into a slot. A unit takes whole slices while they fit; a slice larger than the unit is
 * split over units in order. Units are numbered in that order: unit n has control queue `c<n>` and,
 * when any subtask of it reads an edge, the input queue `u<n>` that every producer unit writes its
 * multiplexed channels into (see lib/runtime/channel-mux.ts).
 *
 * With one subtask per unit the unit id is `<task>-<index>` (what it always was); a unit of several
 * subtasks is `unit-<n>`.
 */
import { JobSpecError } from '../graph/job-graph';
import { controlQueue, unitInputQueue, type ExecutionGraph } from '../graph/execution-graph';
import type { UnitPlacement } from './job-store';

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

/** Pipeline slices: slice i is subtask i of every task that has one, in the graph's task order. */
export function pipelineSlices(graph: ExecutionGraph): string[][] {
  const width = Math.max(0, ...graph.tasks.map((t) => t.parallelism));
  const slices: string[][] = [];
  for (let i = 0; i < width; i++) slices.push(graph.tasks.filter((t) => i < t.parallelism).map((t) => `${t.id}#${i}`));
  return slices;
}

/** The units of a job: whole slices while they fit, a larger slice split in order. */
export function placeSubtasks(graph: ExecutionGraph, queuePrefix: string, jobId: string, subtasksPerUnit = 1): UnitPlacement[] {
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
  const readers = new Set(graph.tasks.filter((t) => t.inputs.length > 0).map((t) => t.id));
  return groups.map((subtasks, n) => {
    const single = subtasks.length === 1 ? subtasks[0]! : undefined;
    const reads = subtasks.some((id) => readers.has(id.slice(0, id.lastIndexOf('#'))));
    return {
      unitId: single ? single.replace(/#(\d+)$/, '-$1') : `unit-${n}`,
      subtasks,
      controlQueue: controlQueue(queuePrefix, jobId, n),
      ...(reads ? { inputQueue: unitInputQueue(queuePrefix, jobId, n) } : {}),
    };
  });
}
