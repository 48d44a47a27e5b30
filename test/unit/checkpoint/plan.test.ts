import { describe, expect, it } from 'vitest';
import { CheckpointPlanner, CheckpointTopology, TopologyError } from '../../../lib/checkpoint';
import { R_COMPLETED, R_UNDECIDED, S_FINISHED, S_IDLE, S_WAITING } from '../../../lib/checkpoint/plan';
import { regions } from './helpers';

describe('CheckpointTopology', () => {
  it('indexes subtasks and regions', () => {
    const t = new CheckpointTopology(regions([2, 1]).regions);
    expect(t.subtaskCount).toBe(3);
    expect(t.regionCount).toBe(2);
    expect(t.indexOf('t0#1')).toBe(1);
    expect(t.indexOf('nope')).toBe(-1);
    expect(t.regionOfSubtask('t1#0')).toBe(1);
    expect(t.regionIndex('r1')).toBe(1);
    expect([...t.regionMembers[0]!]).toEqual([0, 1]);
  });

  it('rejects duplicate regions, empty regions and subtasks in two regions', () => {
    expect(() => new CheckpointTopology([{ id: 'a', subtasks: ['x'] }, { id: 'a', subtasks: ['y'] }])).toThrow(TopologyError);
    expect(() => new CheckpointTopology([{ id: 'a', subtasks: [] }])).toThrow(/no subtasks/);
    expect(() => new CheckpointTopology([{ id: 'a', subtasks: ['x', 'x'] }])).toThrow(/more than one region/);
  });
});

describe('CheckpointPlanner', () => {
  it('triggers the sources of every region and waits for every running subtask', () => {
    const { regions: rs, sources } = regions([2, 3]);
    const t = new CheckpointTopology(rs);
    const p = new CheckpointPlanner(t, sources).plan();
    expect(p.triggers).toEqual(['t0#0', 't1#0']);
    expect([...p.regionRemaining]).toEqual([2, 3]);
    expect([...p.subtaskStatus]).toEqual(Array(5).fill(S_WAITING));
    expect(p.participating).toBe(2);
    expect(p.undecided).toBe(2);
    expect(p.initialFailures).toEqual([]);
  });

  it('leaves out finished subtasks, completes fully finished regions, and fails regions that are down or have no running source', () => {
    const { regions: rs, sources } = regions([2, 1, 2, 2]);
    const t = new CheckpointTopology(rs);
    const planner = new CheckpointPlanner(t, sources, ['t0#1', 't1#0']);
    planner.markDown(t.indexOf('t2#1'));
    planner.markFinished(t.indexOf('t3#0'));
    const p = planner.plan();
    expect(p.triggers).toEqual(['t0#0']);
    expect([...p.regionRemaining]).toEqual([1, 0, 0, 0]);
    expect([...p.regionStatus]).toEqual([R_UNDECIDED, R_COMPLETED, R_UNDECIDED, R_UNDECIDED]);
    expect(p.subtaskStatus[t.indexOf('t0#1')]).toBe(S_FINISHED);
    expect(p.subtaskStatus[t.indexOf('t2#0')]).toBe(S_IDLE);
    expect(p.initialFailures.map((f) => [f.region, f.failure.reason])).toEqual([
      [2, 'unavailable'],
      [3, 'no-live-source'],
    ]);
    expect(p.participating).toBe(3);
    expect(p.undecided).toBe(3);
  });

  it('reuses the plan until liveness changes', () => {
    const { regions: rs, sources } = regions([1, 1]);
    const t = new CheckpointTopology(rs);
    const planner = new CheckpointPlanner(t, sources);
    const a = planner.plan();
    expect(planner.plan()).toBe(a);
    expect(planner.markDown(0)).toBe(true);
    expect(planner.markDown(0)).toBe(false);
    expect(planner.regionDown(0)).toBe(true);
    const b = planner.plan();
    expect(b).not.toBe(a);
    expect(b.triggers).toEqual(['t1#0']);
    expect(planner.markUp(0)).toBe(true);
    expect(planner.markUp(0)).toBe(false);
    expect(planner.plan().triggers).toEqual(['t0#0', 't1#0']);
    planner.setSources(['t1#0']);
    expect(planner.plan().initialFailures.map((f) => f.failure.reason)).toEqual(['no-live-source']);
  });
});
