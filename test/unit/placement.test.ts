import { describe, expect, it } from 'vitest';
import { jobRegistry } from '../../examples/jobs';
import { buildExecutionGraph } from '../../lib/graph/execution-graph';
import { JobSpecError } from '../../lib/graph/job-graph';
import { resolveSettings } from '../../lib/jobs/job-service';
import { checkSubtasksPerUnit, jobLayout, pipelineSlices, pipelines } from '../../lib/graph/placement';
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

  it('keeps a pipeline slice (subtask i of every task linked by pointwise edges) in one unit and packs whole slices while they fit', () => {
    const graph = graphOf('recommendation-join', { parallelism: 4, chainSink: false });
    const slices = pipelineSlices(graph);
    // The join's pipelines: its two sources alone, the join with its sink (a pointwise edge).
    expect(pipelines(graph).map((p) => p.map((t) => t.id))).toEqual([['events'], ['features'], ['join', 's3-sink']]);
    expect(slices).toEqual([0, 1, 2, 3].map((i) => [`events#${i}`]).concat([0, 1, 2, 3].map((i) => [`features#${i}`]), [0, 1, 2, 3].map((i) => [`join#${i}`, `s3-sink#${i}`])));
    const units = placeSubtasks(graph, 'q', 'j', 5);
    // Whole slices while they fit (a join slice of two does not fit beside four single slices).
    expect(units.map((u) => u.subtasks)).toEqual([
      ['events#0', 'events#1', 'events#2', 'events#3', 'features#0'],
      ['features#1', 'features#2', 'features#3', 'join#0', 's3-sink#0'],
      ['join#1', 's3-sink#1', 'join#2', 's3-sink#2'],
      ['join#3', 's3-sink#3'],
    ]);
    expect(units.map((u) => u.unitId)).toEqual(['unit-0', 'unit-1', 'unit-2', 'unit-3']);
    // Sources only: no input queue.
    expect(units.map((u) => u.inputQueue !== undefined)).toEqual([false, true, true, true]);
    // Every subtask is placed exactly once.
    expect(units.flatMap((u) => u.subtasks).sort()).toEqual(graph.subtasks.map((s) => s.id).sort());
  });

  it('places the ends of an all-to-all edge in different units: unit pairs grow with producer units x consumer units', () => {
    // The seed's join at P=4000 in units of 100: sources in 80 units, joins in 40.
    const graph = graphOf('recommendation-join', { parallelism: 4000 });
    const units = placeSubtasks(graph, 'q', 'j', 100);
    const taskOf = (id: string) => id.slice(0, id.lastIndexOf('#'));
    const producers = units.filter((u) => u.subtasks.some((s) => taskOf(s) !== 'join')).length;
    const consumers = units.filter((u) => u.inputQueue !== undefined).length;
    expect(units).toHaveLength(120);
    expect([producers, consumers]).toEqual([80, 40]);
    expect(units.filter((u) => u.inputQueue !== undefined && u.subtasks.some((s) => taskOf(s) !== 'join'))).toHaveLength(0);
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
