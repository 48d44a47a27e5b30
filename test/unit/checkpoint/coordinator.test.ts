import { describe, expect, it } from 'vitest';
import { CheckpointCoordinator, CheckpointConfigError, TopologyError, type CheckpointEffect } from '../../../lib/checkpoint';
import { ackAll, coordinator, ofType, regions, snap } from './helpers';

const finalized = (effects: readonly CheckpointEffect[]) => ofType(effects, 'checkpointFinalized');

describe('CheckpointCoordinator — global handle', () => {
  it('completes a checkpoint when every subtask acknowledged, then notifies every region after the manifest', () => {
    const c = coordinator([2, 1], { handle: 'global' });
    const t = c.trigger(0);
    expect(t).toEqual([{ type: 'triggerSources', checkpointId: 1, triggerTime: 0, deadline: 1000, subtasks: ['t0#0', 't1#0'] }]);
    const effects = ackAll(c, 1, 5);
    const types = effects.map((e) => e.type);
    expect(types).toEqual(['checkpointFinalized', 'notifyComplete', 'notifyComplete']);
    const [f] = finalized(effects);
    expect(f!.outcome).toBe('completed');
    if (f!.outcome !== 'completed') return;
    expect(f!.manifest.regions.map((r) => [r.regionId, r.restoreFrom])).toEqual([
      ['r0', 1],
      ['r1', 1],
    ]);
    expect(f!.manifest.regions[0]!.subtasks).toEqual([
      { subtask: 't0#0', state: snap('t0#0', 1) },
      { subtask: 't0#1', state: snap('t0#1', 1) },
    ]);
    expect(f!.history).toMatchObject({ checkpointId: 1, durationMs: 5, outcome: { status: 'completed' }, bytesWritten: 30, bytesKept: 30 });
    expect(ofType(effects, 'notifyComplete').map((n) => [n.regionId, n.subtasks])).toEqual([
      ['r0', ['t0#0', 't0#1']],
      ['r1', ['t1#0']],
    ]);
    expect(c.pendingCheckpoints()).toEqual([]);
    expect(c.nextDeadline()).toBeUndefined();
  });

  it('fails the whole checkpoint on one decline, discards what was written, and discards late acknowledgements', () => {
    const c = coordinator([2, 2], { handle: 'global' });
    c.trigger(0);
    expect(c.acknowledge('t0#0', 1, snap('t0#0', 1), 1)).toEqual([]);
    expect(c.acknowledge('t1#0', 1, snap('t1#0', 1), 1)).toEqual([]);
    const d = c.decline('t1#1', 1, 'disk full', 2);
    // The failed region's snapshots first, then the rest of N.
    expect(d.map((e) => e.type)).toEqual(['discardSnapshots', 'abortCheckpoint', 'discardSnapshots', 'checkpointFinalized']);
    expect(ofType(d, 'discardSnapshots').map((x) => [x.regionId, x.keys])).toEqual([
      ['r1', ['s/1/t1#0']],
      [null, ['s/1/t0#0']],
    ]);
    const [f] = finalized(d);
    expect(f!.outcome).toBe('failed');
    if (f!.outcome === 'failed') {
      expect(f!.failure).toMatchObject({ reason: 'declined', regionId: 'r1', subtask: 't1#1' });
      expect(f!.history.failedRegions).toEqual([expect.objectContaining({ regionId: 'r1', reason: 'declined', fallback: null })]);
    }
    // A late acknowledgement is discarded, never kept.
    expect(c.acknowledge('t0#1', 1, snap('t0#1', 1), 3)).toEqual([
      { type: 'discardSnapshots', checkpointId: 1, regionId: 'r0', keys: ['s/1/t0#1'] },
    ]);
    expect(ofType(ackAll(c, 1, 4), 'notifyComplete')).toEqual([]);
    expect(c.latestManifest()).toBeUndefined();
    // The next checkpoint is not blocked.
    expect(c.trigger(10)[0]).toMatchObject({ type: 'triggerSources', checkpointId: 2 });
    expect(c.stats.counters).toMatchObject({ triggered: 2, failed: 1, completed: 0, failureReasons: { declined: 1 } });
  });

  it('fails the whole checkpoint at the timeout, even when the late acknowledgement arrives without a tick', () => {
    const c = coordinator([1, 1], { handle: 'global', timeoutMs: 100 });
    c.trigger(0);
    c.acknowledge('t0#0', 1, snap('t0#0', 1), 50);
    const late = c.acknowledge('t1#0', 1, snap('t1#0', 1), 100);
    const [f] = finalized(late);
    expect(f).toMatchObject({ outcome: 'failed', failure: { reason: 'timeout' } });
    expect(ofType(late, 'discardSnapshots').flatMap((d) => d.keys).sort()).toEqual(['s/1/t0#0', 's/1/t1#0']);
    expect(ofType(late, 'notifyComplete')).toEqual([]);
  });

  it('a task failure fails the pending checkpoint; a trigger while a task is down fails at once without triggering', () => {
    const c = coordinator([1, 1], { handle: 'global' });
    c.trigger(0);
    c.acknowledge('t0#0', 1, snap('t0#0', 1), 1);
    const e = c.taskFailed('t1#0', 2);
    expect(finalized(e)[0]).toMatchObject({ outcome: 'failed', failure: { reason: 'task-failed', subtask: 't1#0' } });
    const t = c.trigger(3);
    expect(t.map((x) => x.type)).toEqual(['checkpointFinalized']);
    expect(finalized(t)[0]).toMatchObject({ checkpointId: 2, failure: { reason: 'unavailable' } });
    c.taskRecovered('t1#0', 4);
    expect(c.trigger(5)[0]).toMatchObject({ type: 'triggerSources', checkpointId: 3, subtasks: ['t0#0', 't1#0'] });
    expect(ofType(ackAll(c, 3, 6), 'checkpointFinalized')[0]).toMatchObject({ outcome: 'completed' });
  });
});

describe('CheckpointCoordinator — regional handle', () => {
  it('fails only the region concerned; it falls back to its last restore point; notifies only regions that completed', () => {
    const c = coordinator([1, 2, 1]);
    c.trigger(0);
    c.acknowledge('t1#0', 1, snap('t1#0', 1), 1);
    const d = c.decline('t1#1', 1, 'upload failed', 2);
    expect(d).toEqual([
      { type: 'abortCheckpoint', checkpointId: 1, regionId: 'r1', subtasks: ['t1#0', 't1#1'], reason: 'declined' },
      { type: 'discardSnapshots', checkpointId: 1, regionId: 'r1', keys: ['s/1/t1#0'] },
    ]);
    const e1 = ackAll(c, 1, 3, ['r0', 'r2']);
    const f1 = finalized(e1)[0]!;
    expect(f1.outcome).toBe('completed');
    if (f1.outcome !== 'completed') return;
    expect(f1.manifest.regions.map((r) => r.restoreFrom)).toEqual([1, null, 1]);
    expect(f1.history.failedRegions).toEqual([{ regionId: 'r1', reason: 'declined', message: expect.stringContaining('upload failed'), subtask: 't1#1', fallback: null }]);
    expect(ofType(e1, 'notifyComplete').map((n) => n.regionId)).toEqual(['r0', 'r2']);

    c.trigger(10);
    ackAll(c, 2, 11);
    expect(c.restorePoint('r1')).toBe(2);
    c.trigger(20);
    c.decline('t1#0', 3, 'x', 21);
    const e3 = ackAll(c, 3, 22);
    const f3 = finalized(e3)[0]!;
    if (f3.outcome !== 'completed') throw new Error('expected completed');
    expect(f3.manifest.regions.map((r) => r.restoreFrom)).toEqual([3, 2, 3]);
    // The fallback entry is the one of checkpoint 2, snapshots included.
    expect(f3.manifest.regions[1]!.subtasks.map((s) => s.state[0]!.key)).toEqual(['s/2/t1#0', 's/2/t1#1']);
    expect(f3.history.failedRegions[0]!.fallback).toBe(2);
    // Acks of the failed region arriving afterwards (even from the subtask that declined) are discarded.
    expect(ofType(e3, 'discardSnapshots').flatMap((x) => x.keys)).toEqual(['s/3/t1#0', 's/3/t1#1']);
    expect(c.stats.counters).toMatchObject({ completed: 3, regionFallbacks: 2, regionFailed: 2 });
  });

  it('does not notify a region that completed while others are still pending', () => {
    const c = coordinator([1, 1]);
    c.trigger(0);
    expect(c.acknowledge('t0#0', 1, snap('t0#0', 1), 1)).toEqual([]);
    const e = c.acknowledge('t1#0', 1, snap('t1#0', 1), 2);
    expect(e.map((x) => x.type)).toEqual(['checkpointFinalized', 'notifyComplete', 'notifyComplete']);
  });

  it('fails N as a whole when more than maxFailedRegionRatio of regions fail; keeps nothing of N', () => {
    const c = coordinator([1, 1, 1, 1], { maxFailedRegionRatio: 0.5 });
    c.trigger(0);
    c.acknowledge('t3#0', 1, snap('t3#0', 1), 1);
    expect(finalized(c.decline('t0#0', 1, 'a', 1))).toEqual([]);
    expect(finalized(c.decline('t1#0', 1, 'b', 1))).toEqual([]);
    const e = c.decline('t2#0', 1, 'c', 1);
    expect(finalized(e)[0]).toMatchObject({ outcome: 'failed', failure: { reason: 'too-many-failed-regions', regionId: 'r2' } });
    expect(ofType(e, 'discardSnapshots').flatMap((d) => d.keys)).toEqual(['s/1/t3#0']);
    expect(c.latestManifest()).toBeUndefined();
    // Counters advanced for the three failed regions, not for r3 (completed its part, N not kept).
    expect(['r0', 'r1', 'r2', 'r3'].map((r) => c.consecutiveFailures(r))).toEqual([1, 1, 1, 0]);
  });

  it('allows exactly maxFailedRegionRatio of regions to fail', () => {
    const c = coordinator([1, 1, 1, 1], { maxFailedRegionRatio: 0.5 });
    c.trigger(0);
    c.decline('t0#0', 1, 'a', 1);
    c.decline('t1#0', 1, 'b', 1);
    const e = ackAll(c, 1, 2, ['r2', 'r3']);
    expect(finalized(e)[0]).toMatchObject({ outcome: 'completed' });
  });

  it('fails N as a whole when a region fails maxConsecutiveRegionFailures checkpoints in a row', () => {
    const c = coordinator([1, 1, 1], { maxConsecutiveRegionFailures: 3 });
    const run = (id: number, failR0: boolean) => {
      c.trigger(id * 10);
      const out: CheckpointEffect[] = [];
      if (failR0) out.push(...c.decline('t0#0', id, 'no', id * 10 + 1));
      out.push(...ackAll(c, id, id * 10 + 2, failR0 ? ['r1', 'r2'] : undefined));
      return finalized(out)[0]!;
    };
    expect(run(1, true).outcome).toBe('completed');
    expect(run(2, true).outcome).toBe('completed');
    expect(c.consecutiveFailures('r0')).toBe(2);
    expect(run(3, true)).toMatchObject({ outcome: 'failed', failure: { reason: 'too-many-consecutive-failures', regionId: 'r0' } });
    expect(c.consecutiveFailures('r0')).toBe(3);
    // r1 and r2 completed their part of 3, but 3 was not kept: their counters stay where they were.
    expect(c.consecutiveFailures('r1')).toBe(0);
    expect(c.restorePoint('r1')).toBe(2);
    expect(run(4, true).outcome).toBe('failed');
    expect(run(5, false).outcome).toBe('completed');
    expect(c.consecutiveFailures('r0')).toBe(0);
    expect(c.restorePoint('r0')).toBe(5);
  });

  it('times out only the regions that did not complete', () => {
    const c = coordinator([1, 1, 1], { timeoutMs: 100 });
    c.trigger(0);
    c.acknowledge('t0#0', 1, snap('t0#0', 1), 10);
    c.acknowledge('t1#0', 1, snap('t1#0', 1), 10);
    expect(c.nextDeadline()).toBe(100);
    expect(c.tick(99)).toEqual([]);
    const e = c.tick(100);
    const f = finalized(e)[0]!;
    expect(f).toMatchObject({ outcome: 'completed' });
    expect(f.history.failedRegions).toEqual([expect.objectContaining({ regionId: 'r2', reason: 'timeout', message: expect.stringContaining('t2#0') })]);
    expect(ofType(e, 'notifyComplete').map((n) => n.regionId)).toEqual(['r0', 'r1']);
  });

  it('a task failure fails its region even when the region had completed N but N was not finalized', () => {
    const c = coordinator([1, 1]);
    c.trigger(0);
    c.acknowledge('t0#0', 1, snap('t0#0', 1), 1);
    const e = c.taskFailed('t0#0', 2, 'exit 137');
    expect(e).toEqual([
      { type: 'abortCheckpoint', checkpointId: 1, regionId: 'r0', subtasks: ['t0#0'], reason: 'task-failed' },
      { type: 'discardSnapshots', checkpointId: 1, regionId: 'r0', keys: ['s/1/t0#0'] },
    ]);
    const done = c.acknowledge('t1#0', 1, snap('t1#0', 1), 3);
    const f = finalized(done)[0]!;
    if (f.outcome !== 'completed') throw new Error('expected completed');
    expect(f.manifest.regions.map((r) => r.restoreFrom)).toEqual([null, 1]);
    expect(ofType(done, 'notifyComplete').map((n) => n.regionId)).toEqual(['r1']);
    // While down, the region is not triggered and fails at once.
    const t = c.trigger(10);
    expect(ofType(t, 'triggerSources')[0]!.subtasks).toEqual(['t1#0']);
    c.taskRecovered('t0#0', 11);
    const f2 = finalized(c.acknowledge('t1#0', 2, snap('t1#0', 2), 12))[0]!;
    expect(f2.history.failedRegions).toEqual([expect.objectContaining({ regionId: 'r0', reason: 'unavailable', fallback: null })]);
    expect(ofType(c.trigger(20), 'triggerSources')[0]!.subtasks).toEqual(['t0#0', 't1#0']);
  });
});

describe('CheckpointCoordinator — concurrency', () => {
  it('queues a trigger while busy and starts it when the pending one times out', () => {
    const c = coordinator([1], { handle: 'global', timeoutMs: 100 });
    c.trigger(0);
    expect(c.trigger(10)).toEqual([{ type: 'triggerQueued', queued: 1 }]);
    expect(c.trigger(20)).toEqual([{ type: 'triggerRefused', reason: 'queue-full', pending: [1] }]);
    const e = c.tick(100);
    expect(e.map((x) => x.type)).toEqual(['abortCheckpoint', 'checkpointFinalized', 'triggerSources']);
    expect(ofType(e, 'triggerSources')[0]).toMatchObject({ checkpointId: 2, triggerTime: 100, deadline: 200 });
    expect(c.stats.counters).toMatchObject({ triggered: 2, queued: 1, refused: 1 });
  });

  it('refuses a trigger while busy with whenBusy refuse', () => {
    const c = coordinator([1], { whenBusy: 'refuse' });
    c.trigger(0);
    expect(c.trigger(1)).toEqual([{ type: 'triggerRefused', reason: 'busy', pending: [1] }]);
    ackAll(c, 1, 2);
    expect(c.trigger(3)[0]).toMatchObject({ type: 'triggerSources', checkpointId: 2 });
  });

  it('finalizes in id order: a newer checkpoint that is done waits for the older one', () => {
    const c = coordinator([1, 1], { maxConcurrent: 2 });
    c.trigger(0);
    c.trigger(1);
    expect(c.pendingCheckpoints()).toEqual([1, 2]);
    expect(finalized(ackAll(c, 2, 2))).toEqual([]);
    const e = ackAll(c, 1, 3);
    expect(e.map((x) => [x.type, 'checkpointId' in x ? x.checkpointId : undefined])).toEqual([
      ['checkpointFinalized', 1],
      ['notifyComplete', 1],
      ['notifyComplete', 1],
      ['checkpointFinalized', 2],
      ['notifyComplete', 2],
      ['notifyComplete', 2],
    ]);
  });

  it('judges the consecutive limit in id order across concurrent checkpoints', () => {
    const c = coordinator([1, 1, 1], { maxConcurrent: 2, maxConsecutiveRegionFailures: 2 });
    c.trigger(0);
    c.trigger(1);
    // r0 fails 2 first: its count is not known yet (1 is pending), so 2 is not failed yet.
    expect(finalized(c.decline('t0#0', 2, 'x', 2))).toEqual([]);
    c.decline('t0#0', 1, 'x', 3);
    ackAll(c, 2, 4, ['r1', 'r2']);
    const e = ackAll(c, 1, 5, ['r1', 'r2']);
    const fs = finalized(e);
    expect(fs.map((f) => [f.checkpointId, f.outcome])).toEqual([
      [1, 'completed'],
      [2, 'failed'],
    ]);
    expect(fs[1]).toMatchObject({ failure: { reason: 'too-many-consecutive-failures', regionId: 'r0' } });
    expect(ofType(e, 'notifyComplete').every((n) => n.checkpointId === 1)).toBe(true);
  });

  it('does not count a region failure of a later checkpoint when the region completes the earlier one', () => {
    const c = coordinator([1, 1, 1], { maxConcurrent: 2, maxConsecutiveRegionFailures: 2 });
    c.trigger(0);
    c.trigger(1);
    c.decline('t0#0', 2, 'x', 2);
    ackAll(c, 2, 3, ['r1', 'r2']);
    const fs = finalized(ackAll(c, 1, 4));
    expect(fs.map((f) => [f.checkpointId, f.outcome])).toEqual([
      [1, 'completed'],
      [2, 'completed'],
    ]);
    expect(c.restorePoint('r0')).toBe(1);
  });

  it('a checkpoint that fails as a whole frees its slot at once', () => {
    const c = coordinator([1, 1], { handle: 'global', maxConcurrent: 2 });
    c.trigger(0);
    c.trigger(1);
    expect(c.trigger(2)).toEqual([{ type: 'triggerQueued', queued: 1 }]);
    const e = c.decline('t0#0', 2, 'x', 3);
    expect(e.map((x) => x.type)).toEqual(['abortCheckpoint', 'checkpointFinalized', 'triggerSources']);
    expect(c.pendingCheckpoints()).toEqual([1, 3]);
  });
});

describe('CheckpointCoordinator — finished subtasks and edge cases', () => {
  it('does not wait for finished subtasks and records them in the manifest', () => {
    const c = coordinator([3, 1], {}, ['t0#2']);
    c.trigger(0);
    c.acknowledge('t0#0', 1, snap('t0#0', 1), 1);
    c.subtaskFinished('t0#1', 2);
    const e = ackAll(c, 1, 3, ['r1']);
    const f = finalized(e)[0]!;
    if (f.outcome !== 'completed') throw new Error('expected completed');
    expect(f.manifest.regions[0]).toMatchObject({ restoreFrom: 1, subtasks: [{ subtask: 't0#0' }], finished: ['t0#1', 't0#2'] });
    expect(ofType(e, 'notifyComplete').find((n) => n.regionId === 'r0')!.subtasks).toEqual(['t0#0']);
  });

  it('waits for the acknowledgement of a subtask that took the checkpoint and then finished', () => {
    // A source sent barrier 1, then the rest of its input and end of input; its "finished" is read
    // before its acknowledgement. Marking it finished in checkpoint 1 would record no snapshot for
    // it, and a restore from 1 would not rerun it: what it sent after the barrier would be lost.
    const c = coordinator([2]);
    c.trigger(0);
    c.acknowledge('t0#1', 1, snap('t0#1', 1), 1);
    expect(finalized(c.subtaskFinished('t0#0', 2, 1))).toEqual([]);
    const f = finalized(c.acknowledge('t0#0', 1, snap('t0#0', 1), 3))[0]!;
    if (f.outcome !== 'completed') throw new Error('expected completed');
    expect(f.manifest.regions[0]).toMatchObject({ restoreFrom: 1, subtasks: [{ subtask: 't0#0' }, { subtask: 't0#1' }], finished: [] });
  });

  it('waits again for a finished subtask once it restarts, and records its snapshot, not "finished"', () => {
    // Region r0: source t0#0 feeds t0#1. Both finished; a failover restarts the region from an
    // older checkpoint and they run again. Kept finished, the next checkpoint would record them
    // "finished" with no snapshot, and a restore from it would not rerun them: their consumers
    // would wait for input that never comes (chaos seed 22774, a join stuck after end of input).
    const c = coordinator([2, 1]);
    c.taskAttempt('t0#0', 0, 0);
    c.taskAttempt('t0#1', 0, 0);
    c.subtaskFinished('t0#0', 1, 0, 0);
    c.subtaskFinished('t0#1', 1, 0, 0);
    c.taskAttempt('t0#0', 1, 2);
    c.taskAttempt('t0#1', 1, 2);
    expect(ofType(c.trigger(3), 'triggerSources')[0]!.subtasks).toEqual(['t0#0', 't1#0']);
    const f = finalized(ackAll(c, 1, 4))[0]!;
    if (f.outcome !== 'completed') throw new Error('expected completed');
    expect(f.manifest.regions[0]).toMatchObject({ restoreFrom: 1, subtasks: [{ subtask: 't0#0' }, { subtask: 't0#1' }], finished: [] });
  });

  it('counts the end of a restarted attempt, and ignores the end of a dead attempt read late', () => {
    const c = coordinator([2]);
    c.taskAttempt('t0#0', 0, 0);
    c.taskAttempt('t0#1', 0, 0);
    // The new attempt's end is read before its restart was heard of: the restart comes first.
    c.subtaskFinished('t0#1', 1, 0, 0);
    c.subtaskFinished('t0#1', 2, 0, 1);
    // Attempt 0's end of the source, read after attempt 1 is known to run: not finished.
    c.taskAttempt('t0#0', 1, 3);
    c.subtaskFinished('t0#0', 4, 0, 0);
    const t = c.trigger(5);
    expect(ofType(t, 'triggerSources')[0]!.subtasks).toEqual(['t0#0']);
    const f = finalized(c.acknowledge('t0#0', 1, snap('t0#0', 1), 6, 1))[0]!;
    if (f.outcome !== 'completed') throw new Error('expected completed');
    expect(f.manifest.regions[0]).toMatchObject({ subtasks: [{ subtask: 't0#0' }], finished: ['t0#1'] });
  });

  it('completes a fully finished region at the trigger without notifying it', () => {
    const c = coordinator([1, 1], {}, ['t0#0']);
    const t = c.trigger(0);
    expect(ofType(t, 'triggerSources')[0]!.subtasks).toEqual(['t1#0']);
    const e = ackAll(c, 1, 1, ['r1']);
    const f = finalized(e)[0]!;
    if (f.outcome !== 'completed') throw new Error('expected completed');
    expect(f.manifest.regions[0]).toEqual({ regionId: 'r0', restoreFrom: 1, subtasks: [], finished: ['t0#0'] });
    expect(ofType(e, 'notifyComplete').map((n) => n.regionId)).toEqual(['r1']);
  });

  it('fails a region whose sources all finished while others run, until the sources are changed', () => {
    const c = coordinator([2, 1]);
    c.subtaskFinished('t0#0', 0);
    c.trigger(1);
    const f = finalized(ackAll(c, 1, 2, ['r1']))[0]!;
    expect(f.history.failedRegions).toEqual([expect.objectContaining({ regionId: 'r0', reason: 'no-live-source' })]);
    c.setSources(['t0#1', 't1#0'], 3);
    expect(ofType(c.trigger(4), 'triggerSources')[0]!.subtasks).toEqual(['t0#1', 't1#0']);
  });

  it('refuses a trigger, without using an id, once every running region has no source left (end of input, the rest draining)', () => {
    const c = coordinator([2]);
    c.subtaskFinished('t0#0', 0);
    const e = c.trigger(1);
    expect(e).toEqual([{ type: 'triggerRefused', reason: 'sources-finished', pending: [] }]);
    expect(c.pendingCheckpoints()).toEqual([]);
    // Not counted as a failure against the region; once the rest has finished a checkpoint completes at once, as id 1.
    expect(c.consecutiveFailures('r0')).toBe(0);
    c.subtaskFinished('t0#1', 2);
    const f = finalized(c.trigger(3))[0]!;
    expect([f.checkpointId, f.outcome]).toEqual([1, 'completed']);
  });

  it('completes a checkpoint at once when every subtask has finished', () => {
    const c = coordinator([1], {}, ['t0#0']);
    const e = c.trigger(0);
    expect(e.map((x) => x.type)).toEqual(['checkpointFinalized']);
  });

  it('ignores a duplicate acknowledgement with the same keys and discards only new keys of a different one', () => {
    const c = coordinator([2]);
    c.trigger(0);
    c.acknowledge('t0#0', 1, snap('t0#0', 1), 1);
    expect(c.acknowledge('t0#0', 1, snap('t0#0', 1), 2)).toEqual([]);
    expect(c.acknowledge('t0#0', 1, [...snap('t0#0', 1), { key: 'other', bytes: 1 }], 2)).toEqual([
      { type: 'discardSnapshots', checkpointId: 1, regionId: 'r0', keys: ['other'] },
    ]);
  });

  it('discards acknowledgements for unknown checkpoints or subtasks', () => {
    const c = coordinator([1]);
    c.trigger(0);
    expect(c.acknowledge('t0#0', 7, snap('t0#0', 7), 1)).toEqual([{ type: 'discardSnapshots', checkpointId: 7, regionId: 'r0', keys: ['s/7/t0#0'] }]);
    expect(c.acknowledge('nope#0', 1, snap('nope#0', 1), 1)).toEqual([{ type: 'discardSnapshots', checkpointId: 1, regionId: null, keys: ['s/1/nope#0'] }]);
    expect(c.decline('nope#0', 1, 'x', 1)).toEqual([]);
    expect(c.pendingCheckpoints()).toEqual([1]);
  });

  it('retires old checkpoints and releases exactly the snapshots no retained manifest references', () => {
    const c = coordinator([1, 1], { retained: 2 });
    for (let id = 1; id <= 2; id++) {
      c.trigger(id * 10);
      if (id === 2) c.decline('t1#0', 2, 'x', id * 10);
      ackAll(c, id, id * 10 + 1, id === 2 ? ['r0'] : undefined);
    }
    c.trigger(30);
    const e = ackAll(c, 3, 31);
    const [retire] = ofType(e, 'retireCheckpoints');
    // Dropping 1: r0's snapshot of 1 is unreferenced (2 and 3 restore r0 from 2 and 3);
    // r1's snapshot of 1 is still referenced by manifest 2 (r1 fell back to 1).
    expect(retire).toEqual({ type: 'retireCheckpoints', checkpointIds: [1], keys: ['s/1/t0#0'] });
    expect(e.map((x) => x.type).slice(0, 2)).toEqual(['checkpointFinalized', 'retireCheckpoints']);
    const fin = finalized(e)[0]!;
    if (fin.outcome === 'completed') expect(fin.retained).toEqual([2, 3]);
  });

  it('restores from persisted manifests: restore points and the next id', () => {
    const a = coordinator([1, 1]);
    a.trigger(0);
    a.decline('t1#0', 1, 'x', 0);
    ackAll(a, 1, 1, ['r0']);
    const manifest = a.latestManifest()!;
    const t = regions([1, 1]);
    const b = new CheckpointCoordinator({ config: { jobId: 'job', handle: 'regional', timeoutMs: 1000 }, topology: t, restored: [manifest] });
    expect(b.restorePoint('r0')).toBe(1);
    expect(b.restorePoint('r1')).toBeNull();
    expect(b.trigger(5)[0]).toMatchObject({ checkpointId: 2 });
    b.decline('t0#0', 2, 'x', 6);
    const f = finalized(ackAll(b, 2, 7, ['r1']))[0]!;
    if (f.outcome === 'completed') expect(f.manifest.regions.map((r) => r.restoreFrom)).toEqual([1, 2]);
    expect(
      () => new CheckpointCoordinator({ config: { jobId: 'job', handle: 'regional', timeoutMs: 1 }, topology: t, restored: [manifest], nextCheckpointId: 1 }),
    ).toThrow(/nextCheckpointId/);
  });

  it('rejects bad configuration and topology', () => {
    expect(() => coordinator([1], { maxConcurrent: 0 })).toThrow(CheckpointConfigError);
    expect(() => coordinator([1], { maxFailedRegionRatio: 1.5 })).toThrow(CheckpointConfigError);
    expect(() => coordinator([1], { timeoutMs: 0 })).toThrow(CheckpointConfigError);
    expect(
      () =>
        new CheckpointCoordinator({
          config: { jobId: 'j', handle: 'global', timeoutMs: 1 },
          topology: { regions: [{ id: 'a', subtasks: ['x#0'] }, { id: 'b', subtasks: ['x#0'] }], sources: ['x#0'] },
        }),
    ).toThrow(TopologyError);
    expect(
      () => new CheckpointCoordinator({ config: { jobId: 'j', handle: 'global', timeoutMs: 1 }, topology: { regions: [{ id: 'a', subtasks: ['x#0'] }], sources: ['y#0'] } }),
    ).toThrow(/source 'y#0'/);
  });
});

describe('CheckpointCoordinator — attempts (acknowledgements keyed by attempt)', () => {
  const withAttempts = (attempts: Record<string, number>) =>
    new CheckpointCoordinator({ config: { jobId: 'job', handle: 'regional', timeoutMs: 1000 }, topology: regions([2, 1]), attempts });

  it("a dead attempt's acknowledgement never completes a region that restarted: the region fails N and both attempts' snapshots are discarded", () => {
    const c = withAttempts({ 't0#0': 0, 't0#1': 0, 't1#0': 0 });
    c.trigger(0);
    // t0#0 acknowledged as attempt 0, then its unit restarted as attempt 1.
    expect(c.acknowledge('t0#0', 1, snap('t0#0', 1), 1, 0)).toEqual([]);
    const restarted = c.taskAttempt('t0#0', 1, 2);
    expect(ofType(restarted, 'discardSnapshots')).toEqual([{ type: 'discardSnapshots', checkpointId: 1, regionId: 'r0', keys: ['s/1/t0#0'] }]);
    // The other subtask of r0 (still attempt 0) and r1 acknowledge: N completes without r0.
    c.acknowledge('t0#1', 1, snap('t0#1', 1), 3, 0);
    const done = c.acknowledge('t1#0', 1, snap('t1#0', 1), 4, 0);
    const [f] = finalized(done);
    expect(f).toMatchObject({ outcome: 'completed' });
    if (f?.outcome !== 'completed') throw new Error('not completed');
    expect(f.manifest.regions.map((r) => [r.regionId, r.restoreFrom])).toEqual([
      ['r0', null],
      ['r1', 1],
    ]);
    expect(f.history.failedRegions).toEqual([expect.objectContaining({ regionId: 'r0', reason: 'task-failed', message: expect.stringMatching(/t0#0 restarted \(attempt 0 -> 1\)/) })]);
    expect(ofType(done, 'notifyComplete').map((n) => n.regionId)).toEqual(['r1']);
  });

  it('an acknowledgement of a newer attempt than N was triggered for fails the region; an older one is discarded and ignored', () => {
    const c = withAttempts({ 't0#0': 2, 't0#1': 2, 't1#0': 0 });
    c.trigger(0);
    // A zombie of attempt 1: discarded, nothing else.
    expect(c.acknowledge('t0#1', 1, snap('t0#1', 1), 1, 1)).toEqual([{ type: 'discardSnapshots', checkpointId: 1, regionId: 'r0', keys: ['s/1/t0#1'] }]);
    expect(c.pendingCheckpoints()).toEqual([1]);
    // Attempt 3 of t0#0 acknowledges N: t0#0 restarted after the trigger, so r0 fails N.
    const newer = c.acknowledge('t0#0', 1, snap('t0#0', 1), 2, 3);
    expect(ofType(newer, 'abortCheckpoint')).toEqual([expect.objectContaining({ regionId: 'r0', reason: 'task-failed' })]);
    expect(ofType(newer, 'discardSnapshots').flatMap((d) => d.keys)).toEqual(['s/1/t0#0']);
    // The next checkpoint is triggered for attempt 3, whose acknowledgements count.
    const done = c.acknowledge('t1#0', 1, snap('t1#0', 1), 3, 0);
    expect(finalized(done)).toHaveLength(1);
    c.trigger(10);
    for (const s of ['t0#0', 't0#1']) c.acknowledge(s, 2, snap(s, 2), 11, s === 't0#0' ? 3 : 2);
    const [f2] = finalized(c.acknowledge('t1#0', 2, snap('t1#0', 2), 12, 0));
    expect(f2).toMatchObject({ checkpointId: 2, outcome: 'completed', history: { failedRegions: [] } });
  });

  it('acknowledgements without an attempt, or of subtasks whose attempt is unknown, count as before', () => {
    const c = withAttempts({});
    c.trigger(0);
    expect(finalized(ackAll(c, 1, 1))).toMatchObject([{ outcome: 'completed' }]);
    expect(() => withAttempts({ 't0#0': -1 })).toThrow(/attempt of subtask t0#0/);
  });
});

describe('CheckpointCoordinator — job ended', () => {
  it('decides every pending checkpoint (failed as a whole, job-ended), drops queued triggers, and sends no abort', () => {
    const c = coordinator([1, 1], { whenBusy: 'queue' });
    c.trigger(0);
    c.acknowledge('t0#0', 1, snap('t0#0', 1), 1);
    expect(ofType(c.trigger(2), 'triggerQueued')).toHaveLength(1);
    const effects = c.jobEnded(5, 'the job ended FINISHED');
    expect(ofType(effects, 'abortCheckpoint')).toEqual([]);
    expect(ofType(effects, 'discardSnapshots').flatMap((d) => d.keys)).toEqual(['s/1/t0#0']);
    const [f] = finalized(effects);
    expect(f).toMatchObject({ checkpointId: 1, outcome: 'failed', failure: { reason: 'job-ended', message: 'checkpoint 1 was pending when the job ended FINISHED' } });
    expect(f!.history.outcome).toMatchObject({ status: 'failed', reason: 'job-ended' });
    expect(c.pendingCheckpoints()).toEqual([]);
    expect(c.queuedTriggers()).toBe(0);
    expect(c.jobEnded(6)).toEqual([]);
  });
});
