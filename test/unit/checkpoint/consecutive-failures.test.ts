/**
 * The consecutive-failure counters leave the coordinator in the history entries and come back
 * through `CoordinatorOptions.consecutiveFailures`, so `maxConsecutiveRegionFailures` holds for a
 * coordinator rebuilt from the catalog (Step Functions steps, controller restarts).
 */
import { describe, expect, it } from 'vitest';
import { CheckpointCoordinator, type CheckpointConfig, type CheckpointEffect, type CheckpointHistoryEntry } from '../../../lib/checkpoint';
import { ackAll, coordinator, ofType, regions } from './helpers';

const entries = (effects: readonly CheckpointEffect[]): CheckpointHistoryEntry[] => ofType(effects, 'checkpointFinalized').map((f) => f.history);

function restored(sizes: readonly number[], consecutiveFailures: Record<string, number>, config: Partial<CheckpointConfig> = {}): CheckpointCoordinator {
  return new CheckpointCoordinator({
    config: { jobId: 'job', handle: 'regional', timeoutMs: 1000, ...config },
    topology: regions(sizes),
    consecutiveFailures,
  });
}

/** Live counters of every region, as the non-zero map a history entry holds. */
function live(c: CheckpointCoordinator): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of c.topology.regionIds) if (c.consecutiveFailures(id) > 0) out[id] = c.consecutiveFailures(id);
  return out;
}

describe('consecutive-failure counters: restore', () => {
  it('a coordinator restored with counters fails the next checkpoint as a whole when the region fails again and reaches the limit', () => {
    const c = restored([1, 1, 1], { r0: 2, r1: 1 }, { maxConsecutiveRegionFailures: 3 });
    expect(live(c)).toEqual({ r0: 2, r1: 1 });
    c.trigger(0);
    const effects = c.decline('t0#0', 1, 'disk full', 5);
    const [f] = ofType(effects, 'checkpointFinalized');
    expect(f).toMatchObject({ checkpointId: 1, outcome: 'failed', failure: { reason: 'too-many-consecutive-failures', regionId: 'r0' } });
    if (f?.outcome === 'failed') expect(f.failure.message).toMatch(/failed 3 checkpoints in a row/);
    expect(f!.history.consecutiveFailures).toEqual({ r0: 3, r1: 1 });
    expect(live(c)).toEqual({ r0: 3, r1: 1 });
  });

  it('below the limit the region only falls back, and a fresh coordinator (no counters) does not trip', () => {
    const c = restored([1, 1, 1], { r0: 1 }, { maxConsecutiveRegionFailures: 3 });
    c.trigger(0);
    c.decline('t0#0', 1, 'disk full', 1);
    const [f] = ofType(ackAll(c, 1, 2, ['r1', 'r2']), 'checkpointFinalized');
    expect(f).toMatchObject({ outcome: 'completed', history: { consecutiveFailures: { r0: 2 } } });
    // The same failure without restored counters: the limit is not reached.
    const fresh = coordinator([1, 1, 1], { maxConsecutiveRegionFailures: 2 });
    fresh.trigger(0);
    fresh.decline('t0#0', 1, 'disk full', 1);
    expect(ofType(ackAll(fresh, 1, 2, ['r1', 'r2']), 'checkpointFinalized')[0]).toMatchObject({ outcome: 'completed' });
  });

  it('judges the limit at the trigger too (a region down at the trigger)', () => {
    const c = restored([1, 1, 1], { r2: 1 }, { maxConsecutiveRegionFailures: 2 });
    c.taskFailed('t2#0', 0);
    const effects = c.trigger(1);
    expect(ofType(effects, 'triggerSources')).toEqual([]);
    expect(ofType(effects, 'checkpointFinalized')[0]).toMatchObject({
      outcome: 'failed',
      failure: { reason: 'too-many-consecutive-failures', regionId: 'r2' },
      history: { consecutiveFailures: { r2: 2 } },
    });
  });

  it('ignores regions the topology does not have and refuses counts that are not whole numbers >= 0', () => {
    expect(live(restored([1, 1], { r1: 2, gone: 7 }))).toEqual({ r1: 2 });
    expect(() => restored([1], { r0: -1 })).toThrow(/whole number/);
    expect(() => restored([1], { r0: 1.5 })).toThrow(/whole number/);
  });
});

describe('consecutive-failure counters: history entries', () => {
  it('a completed checkpoint records a failed region incremented and completed regions reset', () => {
    const c = coordinator([1, 1, 1], { maxFailedRegionRatio: 1, maxConsecutiveRegionFailures: 10 });
    const history: CheckpointHistoryEntry[] = [];
    const run = (id: number, declining: string[]) => {
      history.push(...entries(c.trigger(id * 10)));
      for (const r of declining) history.push(...entries(c.decline(`t${r.slice(1)}#0`, id, 'no', id * 10 + 1)));
      history.push(...entries(ackAll(c, id, id * 10 + 2, ['r0', 'r1', 'r2'].filter((r) => !declining.includes(r)))));
    };
    run(1, ['r0']);
    run(2, ['r0', 'r1']);
    run(3, ['r1']);
    run(4, []);
    expect(history.map((h) => [h.checkpointId, h.outcome.status, h.consecutiveFailures])).toEqual([
      [1, 'completed', { r0: 1 }],
      [2, 'completed', { r0: 2, r1: 1 }],
      [3, 'completed', { r1: 2 }],
      [4, 'completed', {}],
    ]);
    expect(live(c)).toEqual({});
  });

  it('a checkpoint failed as a whole counts its failed regions and keeps the count of regions that completed their part', () => {
    // 3 regions, ratio 0.5: the second failed region fails N as a whole.
    const c = restored([1, 1, 1], { r0: 1, r1: 1 }, { maxConsecutiveRegionFailures: 10 });
    c.trigger(0);
    c.acknowledge('t0#0', 1, [], 1); // r0 completes its part: its count stays
    c.decline('t1#0', 1, 'no', 2);
    const [f] = ofType(c.decline('t2#0', 1, 'no', 3), 'checkpointFinalized');
    expect(f).toMatchObject({ outcome: 'failed', failure: { reason: 'too-many-failed-regions' } });
    expect(f!.history.consecutiveFailures).toEqual({ r0: 1, r1: 2, r2: 1 });
    expect(live(c)).toEqual(f!.history.consecutiveFailures);
    // Global handle: the first failure fails N as a whole, and counts for its region.
    const g = restored([1, 1], { r0: 3 }, { handle: 'global', maxConsecutiveRegionFailures: 10 });
    g.trigger(0);
    g.acknowledge('t0#0', 1, [], 1);
    expect(entries(g.decline('t1#0', 1, 'no', 2))[0]!.consecutiveFailures).toEqual({ r0: 3, r1: 1 });
  });

  it('a timeout of several checkpoints at once: each entry counts every checkpoint before it', () => {
    const c = coordinator([1, 1], { maxConcurrent: 2, timeoutMs: 100, maxConsecutiveRegionFailures: 10 });
    c.trigger(0);
    c.trigger(0);
    const h = entries(c.tick(100));
    expect(h.map((x) => [x.checkpointId, x.outcome, x.consecutiveFailures])).toEqual([
      [1, expect.objectContaining({ reason: 'too-many-failed-regions' }), { r0: 1, r1: 1 }],
      [2, expect.objectContaining({ reason: 'too-many-failed-regions' }), { r0: 2, r1: 2 }],
    ]);
    expect(live(c)).toEqual({ r0: 2, r1: 2 });
  });

  it('a checkpoint failed as a whole behind one still in flight has no counters; the older one\'s entry counts both', () => {
    const c = restored([1, 1], { r0: 1, r1: 1 }, { handle: 'global', maxConcurrent: 2, maxConsecutiveRegionFailures: 10 });
    c.trigger(0);
    c.trigger(1);
    const [second] = entries(c.decline('t1#0', 2, 'no', 2));
    expect(second).toMatchObject({ checkpointId: 2, outcome: { status: 'failed' } });
    expect(second).not.toHaveProperty('consecutiveFailures');
    expect(live(c)).toEqual({ r0: 1, r1: 1 }); // 2 is not counted before 1
    const [first] = entries(ackAll(c, 1, 3));
    // 1 completed (both reset), then 2 counted right after it (r1 failed).
    expect(first).toMatchObject({ checkpointId: 1, outcome: { status: 'completed' }, consecutiveFailures: { r1: 1 } });
    expect(live(c)).toEqual({ r1: 1 });
    // A coordinator rebuilt from the newest entry with counters starts where this one is.
    const rebuilt = restored([1, 1], first!.consecutiveFailures!, { handle: 'global' });
    expect(live(rebuilt)).toEqual(live(c));
  });
});
