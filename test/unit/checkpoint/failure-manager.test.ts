import { describe, expect, it } from 'vitest';
import { CheckpointPlanner, CheckpointTopology, PendingCheckpoint, RegionFailureManager, type FailurePolicy } from '../../../lib/checkpoint';
import { regions, snap } from './helpers';

function setup(n: number, policy: Partial<FailurePolicy> = {}) {
  const { regions: rs, sources } = regions(Array(n).fill(1));
  const t = new CheckpointTopology(rs);
  const planner = new CheckpointPlanner(t, sources);
  const fm = new RegionFailureManager(n, { handle: 'regional', maxFailedRegionRatio: 0.5, maxConsecutiveRegionFailures: 3, ...policy });
  let id = 0;
  const next = () => new PendingCheckpoint(++id, 0, 10, planner.plan(), t);
  const fail = (p: PendingCheckpoint, r: number) => {
    p.failRegion(r, { reason: 'declined', message: `r${r} declined`, subtask: `t${r}#0` });
    return fm.judge(p, [r], t.regionIds, true);
  };
  return { t, fm, next, fail };
}

describe('RegionFailureManager', () => {
  it('computes the most failed regions allowed, robust to floating point', () => {
    const { fm } = setup(1, { maxFailedRegionRatio: 0.29 });
    expect(fm.maxFailedRegions(100)).toBe(29);
    expect(setup(1, { maxFailedRegionRatio: 0.5 }).fm.maxFailedRegions(5)).toBe(2);
    expect(setup(1, { handle: 'global' }).fm.maxFailedRegions(100)).toBe(0);
  });

  it('global handle: the first region failure fails the checkpoint with its reason', () => {
    const { next, fail } = setup(3, { handle: 'global' });
    expect(fail(next(), 1)).toEqual({ reason: 'declined', message: 'region r1: r1 declined', regionId: 'r1', subtask: 't1#0' });
  });

  it('regional handle: fails as a whole only past the ratio', () => {
    const { next, fail } = setup(4);
    const p = next();
    expect(fail(p, 0)).toBeUndefined();
    expect(fail(p, 1)).toBeUndefined();
    expect(fail(p, 2)).toMatchObject({ reason: 'too-many-failed-regions', regionId: 'r2' });
  });

  it('counts consecutive failures at finalize and trips on the limit', () => {
    const { t, fm, next, fail } = setup(3, { maxFailedRegionRatio: 1 });
    for (let i = 0; i < 2; i++) {
      const p = next();
      expect(fail(p, 0)).toBeUndefined();
      p.acknowledge(1, snap('t1#0', p.id));
      p.acknowledge(2, snap('t2#0', p.id));
      fm.applyFinalized(p);
    }
    expect(fm.consecutiveFailures(0)).toBe(2);
    const p3 = next();
    // Not the oldest pending checkpoint: the consecutive limit is not judged yet.
    p3.failRegion(0, { reason: 'timeout', message: 'x' });
    expect(fm.judge(p3, [0], t.regionIds, false)).toBeUndefined();
    expect(fm.judge(p3, p3.failedRegions, t.regionIds, true)).toMatchObject({ reason: 'too-many-consecutive-failures', regionId: 'r0' });
  });

  it('resets on a completed checkpoint, and keeps the count for a region that completed its part of a failed one', () => {
    const { t, fm, next, fail } = setup(2, { maxFailedRegionRatio: 1 });
    const a = next();
    fail(a, 0);
    a.acknowledge(1, snap('t1#0', 1));
    fm.applyFinalized(a);
    const b = next();
    b.acknowledge(0, snap('t0#0', 2));
    fail(b, 1);
    b.abort({ reason: 'too-many-failed-regions', message: 'x' }, 1);
    fm.applyFinalized(b);
    expect([fm.consecutiveFailures(0), fm.consecutiveFailures(1)]).toEqual([1, 1]);
    const c = next();
    c.acknowledge(0, snap('t0#0', 3));
    c.acknowledge(1, snap('t1#0', 3));
    fm.applyFinalized(c);
    expect([fm.consecutiveFailures(0), fm.consecutiveFailures(1)]).toEqual([0, 0]);
    expect(t.regionCount).toBe(2);
  });
});
