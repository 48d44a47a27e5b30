import { describe, expect, it } from 'vitest';
import {
  FailoverPlanError,
  inputSubPartitions,
  planFailover,
  producerAttemptFence,
  producerNotices,
  type RestoreManifest,
} from '../../../lib/recovery/failover-planner';
import { demoGraph, ingestGraph, joinGraph, onePerUnit, packed } from './helpers';

const sp = (edgeId: string, consumer: number) => ({ edgeId, consumer });

describe('planFailover on the demo shape (source -> hash -> aggregate)', () => {
  const graph = demoGraph(3);
  const units = onePerUnit(graph);
  const attempts = new Map([['agg-1', 2]]);
  // The demo shape: tasks src (src+parse) and agg (agg+out), one hash edge e0; one region.
  it('has the shape the tests assume', () => {
    expect(graph.tasks.map((t) => t.id)).toEqual(['src', 'agg']);
    expect(graph.edges.map((e) => [e.id, e.from, e.to, e.kind])).toEqual([['e0', 'src', 'agg', 'hash']]);
    expect(graph.regions).toHaveLength(1);
  });

  it('single: only the failed unit restarts; its input sub-partition goes unavailable; every source unit is told', () => {
    const plan = planFailover({ graph, units, attempts, failedUnit: 'agg-1', strategy: 'single' });
    expect(plan.failedSubtasks).toEqual(['agg#1']);
    expect(plan.restarts).toEqual([{ unitId: 'agg-1', subtasks: ['agg#1'], previousAttempt: 2, attempt: 3, restore: [{ subtask: 'agg#1', from: 'fresh' }] }]);
    expect(plan.unavailable).toEqual([sp('e0', 1)]);
    expect(plan.notify).toEqual(['src-0', 'src-1', 'src-2'].map((unitId) => ({ unitId, subPartitions: [sp('e0', 1)] })));
    expect(plan.fence).toEqual([]);
    expect(plan.regions).toEqual([]);
  });

  it('single-buffered: the same restart, nothing marked, nobody told', () => {
    const plan = planFailover({ graph, units, attempts, failedUnit: 'agg-1', strategy: 'single-buffered' });
    expect(plan.restarts.map((r) => [r.unitId, r.attempt])).toEqual([['agg-1', 3]]);
    expect(plan.unavailable).toEqual([]);
    expect(plan.notify).toEqual([]);
  });

  it('single on a source: no input, so nothing becomes unavailable', () => {
    const plan = planFailover({ graph, units, attempts: {}, failedUnit: 'src-2', strategy: 'single' });
    expect(plan.restarts.map((r) => [r.unitId, r.attempt])).toEqual([['src-2', 1]]);
    expect(plan.unavailable).toEqual([]);
    expect(plan.notify).toEqual([]);
  });

  it('single restores the failed subtask from its own latest checkpoint', () => {
    const manifest: RestoreManifest = {
      checkpointId: 9,
      regions: [{ regionId: 'r0', restoreFrom: 8, subtasks: [{ subtask: 'agg#1', state: [{ key: 'snap/8/agg-1', bytes: 42 }] }], finished: [] }],
    };
    const plan = planFailover({ graph, units, attempts, failedUnit: 'agg-1', strategy: 'single', manifest });
    expect(plan.restarts[0]!.restore).toEqual([{ subtask: 'agg#1', from: 'checkpoint', checkpointId: 8, state: [{ key: 'snap/8/agg-1', bytes: 42 }] }]);
  });

  it('region: the one all-to-all region restarts from the region\'s checkpoint, failed unit first; every queue fenced', () => {
    const manifest: RestoreManifest = {
      checkpointId: 5,
      regions: [
        {
          regionId: 'r0',
          restoreFrom: 4,
          subtasks: graph.subtasks.map((s) => ({ subtask: s.id, state: [{ key: `snap/4/${s.id}`, bytes: 10 }] })),
          finished: [],
        },
      ],
    };
    const plan = planFailover({ graph, units, attempts, failedUnit: 'agg-1', strategy: 'region', manifest });
    expect(plan.restarts.map((r) => r.unitId)).toEqual(['agg-1', 'src-0', 'src-1', 'src-2', 'agg-0', 'agg-2']);
    expect(plan.restarts.find((r) => r.unitId === 'agg-1')!.attempt).toBe(3);
    expect(plan.restarts.find((r) => r.unitId === 'src-0')!.attempt).toBe(1);
    expect(plan.restarts.flatMap((r) => r.restore).every((p) => p.from === 'checkpoint' && p.checkpointId === 4)).toBe(true);
    expect(plan.regions).toEqual([{ regionId: 'r0', restoreFrom: 4 }]);
    expect(plan.fence).toEqual([sp('e0', 0), sp('e0', 1), sp('e0', 2)]);
    expect(plan.unavailable).toEqual([]);
    expect(plan.notify).toEqual([]);
  });

  it('full without a checkpoint: everything restarts fresh', () => {
    const plan = planFailover({ graph, units, attempts, failedUnit: 'src-0', strategy: 'full' });
    expect(plan.restarts).toHaveLength(6);
    expect(plan.restarts[0]!.unitId).toBe('src-0');
    expect(plan.restarts.flatMap((r) => r.restore).every((p) => p.from === 'fresh')).toBe(true);
    expect(plan.regions).toEqual([{ regionId: 'r0', restoreFrom: null }]);
  });
});

describe('planFailover on the ingest shape (forward only: one region per pipeline)', () => {
  const graph = ingestGraph(4);
  const units = onePerUnit(graph);

  it('region: only the failed pipeline restarts, from that region\'s own checkpoint', () => {
    expect(graph.regions).toHaveLength(4);
    const region2 = graph.regions.find((r) => r.subtasks.includes('src#2'))!;
    const manifest: RestoreManifest = {
      checkpointId: 7,
      regions: graph.regions.map((r) => ({
        regionId: r.id,
        restoreFrom: r.id === region2.id ? 6 : 7, // this region failed checkpoint 7 and falls back to 6
        subtasks: r.subtasks.map((s) => ({ subtask: s, state: [] })),
        finished: [],
      })),
    };
    const plan = planFailover({ graph, units, attempts: {}, failedUnit: 'parse-2', strategy: 'region', manifest });
    expect(plan.restarts.map((r) => r.unitId)).toEqual(['parse-2', 'src-2']);
    expect(plan.restarts.flatMap((r) => r.restore).map((p) => [p.subtask, p.from === 'checkpoint' && p.checkpointId])).toEqual([
      ['parse#2', 6],
      ['src#2', 6],
    ]);
    expect(plan.regions).toEqual([{ regionId: region2.id, restoreFrom: 6 }]);
    expect(plan.fence).toEqual([sp('e0', 2)]);
  });

  it('single on the middle task: one sub-partition, one producer unit', () => {
    const plan = planFailover({ graph, units, attempts: {}, failedUnit: 'parse-2', strategy: 'single' });
    expect(plan.unavailable).toEqual([sp('e0', 2)]);
    expect(plan.notify).toEqual([{ unitId: 'src-2', subPartitions: [sp('e0', 2)] }]);
  });

  it('full: every pipeline restarts, each region from its own entry; finished units stay down', () => {
    const manifest: RestoreManifest = {
      checkpointId: 3,
      regions: graph.regions.map((r, i) => ({
        regionId: r.id,
        restoreFrom: 3,
        subtasks: i === 0 ? [] : r.subtasks.map((s) => ({ subtask: s, state: [] })),
        finished: i === 0 ? [...r.subtasks] : [],
      })),
    };
    const failed = units.find((u) => u.subtasks.includes(graph.regions[1]!.subtasks[0]!))!;
    const plan = planFailover({ graph, units, attempts: {}, failedUnit: failed.unitId, strategy: 'full', manifest });
    const finishedUnits = units.filter((u) => graph.regions[0]!.subtasks.includes(u.subtasks[0]!)).map((u) => u.unitId);
    expect(plan.restarts).toHaveLength(units.length - finishedUnits.length);
    expect(plan.restarts.some((r) => finishedUnits.includes(r.unitId))).toBe(false);
    expect(plan.fence).toHaveLength(3);
  });
});

describe('planFailover on the join shape (two sources hashed into one join)', () => {
  const graph = joinGraph(4);
  const units = onePerUnit(graph);

  it('single: both input sub-partitions go unavailable; one notice per producer unit', () => {
    const plan = planFailover({ graph, units, attempts: { 'join-3': 0 }, failedUnit: 'join-3', strategy: 'single' });
    expect(plan.unavailable).toEqual([sp('e0', 3), sp('e1', 3)]);
    expect(plan.notify).toHaveLength(8);
    expect(plan.notify.filter((n) => n.unitId.startsWith('a-')).every((n) => n.subPartitions.length === 1 && n.subPartitions[0]!.edgeId === 'e0')).toBe(true);
    expect(plan.notify.filter((n) => n.unitId.startsWith('b-')).every((n) => n.subPartitions[0]!.edgeId === 'e1')).toBe(true);
  });

  it('with packed units: a unit hosting producers on both edges gets one notice for both sub-partitions', () => {
    const units4 = packed(graph, 4); // u0 = a#0..3, u1 = b#0..3, u2 = join#0..3
    const mixed = [{ unitId: 'ab', subtasks: ['a#0', 'a#1', 'a#2', 'a#3', 'b#0', 'b#1', 'b#2', 'b#3'], controlQueue: 'q' }, units4[2]!];
    const plan = planFailover({ graph, units: mixed, attempts: {}, failedUnit: units4[2]!.unitId, strategy: 'single' });
    expect(plan.notify).toEqual([{ unitId: 'ab', subPartitions: [0, 1, 2, 3].flatMap((j) => [sp('e0', j), sp('e1', j)]) }]);
    // The failed unit hosts all four join subtasks: all eight sub-partitions.
    expect(plan.unavailable).toHaveLength(8);
  });

  it('region: everything is one region', () => {
    const plan = planFailover({ graph, units, attempts: {}, failedUnit: 'join-0', strategy: 'region' });
    expect(plan.restarts).toHaveLength(units.length);
    expect(plan.fence).toHaveLength(8);
  });
});

describe('planFailover with units that span regions', () => {
  it('region: closes over units, then their regions, until nothing changes', () => {
    const graph = ingestGraph(4); // regions: pipeline 0..3
    // u0 hosts pipeline 0 and src of pipeline 1; u1 hosts parse of pipeline 1 and pipeline 2; u2 hosts pipeline 3.
    const units = [
      { unitId: 'u0', subtasks: ['src#0', 'parse#0', 'src#1'], controlQueue: 'q0' },
      { unitId: 'u1', subtasks: ['parse#1', 'src#2', 'parse#2'], controlQueue: 'q1' },
      { unitId: 'u2', subtasks: ['src#3', 'parse#3'], controlQueue: 'q2' },
    ];
    const plan = planFailover({ graph, units, attempts: { u0: 1, u1: 1, u2: 1 }, failedUnit: 'u0', strategy: 'region' });
    expect(plan.restarts.map((r) => [r.unitId, r.attempt])).toEqual([
      ['u0', 2],
      ['u1', 2],
    ]);
    expect(plan.regions).toHaveLength(3);
  });
});

describe('planner helpers', () => {
  const graph = joinGraph(3);
  const units = onePerUnit(graph);

  it('inputSubPartitions lists (input edge, index) per subtask', () => {
    expect(inputSubPartitions(graph, ['join#2', 'a#0'])).toEqual([sp('e0', 2), sp('e1', 2)]);
  });

  it('producerNotices excludes given units', () => {
    expect(producerNotices(graph, units, [sp('e0', 1)], new Set(['a-1'])).map((n) => n.unitId)).toEqual(['a-0', 'a-2']);
  });

  it('producerAttemptFence gives the attempt of the unit hosting each producer', () => {
    const fence = producerAttemptFence(graph, units, new Map([['a-1', 4], ['b-0', 2]]));
    expect(fence('e0', 1)).toBe(4);
    expect(fence('e0', 0)).toBe(0);
    expect(fence('e1', 0)).toBe(2);
    expect(fence('e9', 0)).toBe(0);
  });

  it('names an unknown unit, subtask or strategy', () => {
    expect(() => planFailover({ graph, units, attempts: {}, failedUnit: 'nope', strategy: 'single' })).toThrow(FailoverPlanError);
    expect(() => planFailover({ graph, units: [{ unitId: 'x', subtasks: ['join#9'], controlQueue: 'q' }], attempts: {}, failedUnit: 'x', strategy: 'single' })).toThrow(/no subtask 'join#9'/);
    expect(() => planFailover({ graph, units, attempts: {}, failedUnit: 'a-0', strategy: 'bogus' as never })).toThrow(/unknown failover strategy/);
  });

  it('plans a 4000-way join failure quickly', () => {
    const big = joinGraph(4000);
    const bigUnits = onePerUnit(big);
    const started = performance.now();
    const single = planFailover({ graph: big, units: bigUnits, attempts: {}, failedUnit: 'join-1234', strategy: 'single' });
    const full = planFailover({ graph: big, units: bigUnits, attempts: {}, failedUnit: 'join-1234', strategy: 'full' });
    expect(single.notify).toHaveLength(8000);
    expect(full.restarts).toHaveLength(12_000);
    expect(full.fence).toHaveLength(8000);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
