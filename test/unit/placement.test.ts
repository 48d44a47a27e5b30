import { describe, expect, it } from 'vitest';
import { jobRegistry } from '../../examples/jobs';
import { buildExecutionGraph } from '../../lib/graph/execution-graph';
import { JobSpecError } from '../../lib/graph/job-graph';
import { resolveSettings } from '../../lib/jobs/job-service';
import { checkSubtasksPerUnit, jobLayout, pipelineSlices } from '../../lib/graph/placement';
import type { ExecutionGraph } from '../../lib/graph/execution-graph';

const placeSubtasks = (graph: ExecutionGraph, queuePrefix: string, jobId: string, subtasksPerUnit?: number) => jobLayout(graph, { jobId, queuePrefix, ...(subtasksPerUnit ? { subtasksPerUnit } : {}) }).units;
const graphOf = (job: string, params: Record<string, number | string | boolean>) => buildExecutionGraph(jobRegistry.build(job, params).graph);

describe('placement of subtasks into task units', () => {
  it('one subtask per unit by default: the unit ids and queues small jobs always had, an input queue for each reading unit', () => {
    const graph = graphOf('demo', { parallelism: 3 });
    const units = placeSubtasks(graph, 'q', 'job-1');
    expect(units.map((u) => u.unitId)).toEqual(['generator-0', 'generator-1', 'generator-2', 'hourly-aggregate-0', 'hourly-aggregate-1', 'hourly-aggregate-2']);
    expect(units.map((u) => u.subtasks)).toEqual(graph.subtasks.map((s) => [s.id]));
    expect(units.map((u) => u.controlQueue)).toEqual([0, 1, 2, 3, 4, 5].map((n) => `q-job-1-c${n}`));
    // The sources read nothing: no input queue.
    expect(units.map((u) => u.inputQueue)).toEqual([undefined, undefined, undefined, 'q-job-1-u3', 'q-job-1-u4', 'q-job-1-u5']);
  });

  it('keeps a pipeline slice (subtask i of every task) in one unit and packs whole slices while they fit', () => {
    const graph = graphOf('recommendation-join', { parallelism: 4, chainSink: false });
    const slices = pipelineSlices(graph);
    expect(slices).toHaveLength(4);
    const width = slices[0]!.length;
    expect(slices.every((s) => s.length === width)).toBe(true);
    const units = placeSubtasks(graph, 'q', 'j', 2 * width + 1);
    // Two slices fit, a third does not: units of two slices, the last of what is left.
    expect(units.map((u) => u.subtasks)).toEqual([[...slices[0]!, ...slices[1]!], [...slices[2]!, ...slices[3]!]]);
    expect(units.map((u) => u.unitId)).toEqual(['unit-0', 'unit-1']);
    expect(units.every((u) => u.inputQueue !== undefined)).toBe(true);
    // Every subtask is placed exactly once.
    expect(units.flatMap((u) => u.subtasks).sort()).toEqual(graph.subtasks.map((s) => s.id).sort());
  });

  it('splits a slice larger than a unit over units in order', () => {
    const graph = graphOf('recommendation-join', { parallelism: 2, chainSink: false });
    const slices = pipelineSlices(graph);
    const units = placeSubtasks(graph, 'q', 'j', 2);
    expect(units.flatMap((u) => u.subtasks)).toEqual(slices.flat());
    expect(units.every((u) => u.subtasks.length <= 2)).toBe(true);
  });

  it('refuses a subtasksPerUnit that is not a whole number from 1 to 1000, naming the setting', () => {
    for (const bad of [0, -1, 1.5, 1001, Number.NaN, '4']) {
      expect(() => checkSubtasksPerUnit(bad)).toThrow(JobSpecError);
      expect(() => checkSubtasksPerUnit(bad)).toThrow(/^subtasksPerUnit must be a whole number from 1 to 1000, got/);
    }
    expect(() => resolveSettings({ job: 'demo', subtasksPerUnit: 0 })).toThrow(/subtasksPerUnit must be/);
    expect(resolveSettings({ job: 'demo', subtasksPerUnit: 8 }).subtasksPerUnit).toBe(8);
    expect(resolveSettings({ job: 'demo' }).subtasksPerUnit).toBeUndefined();
  });
});
