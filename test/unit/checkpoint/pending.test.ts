import { describe, expect, it } from 'vitest';
import { CheckpointPlanner, CheckpointTopology, PendingCheckpoint } from '../../../lib/checkpoint';
import { R_COMPLETED, R_FAILED } from '../../../lib/checkpoint/plan';
import { regions, snap } from './helpers';

function pending(sizes: number[], finished: string[] = []) {
  const { regions: rs, sources } = regions(sizes);
  const t = new CheckpointTopology(rs);
  return { t, p: new PendingCheckpoint(7, 100, 50, new CheckpointPlanner(t, sources, finished).plan(), t) };
}

describe('PendingCheckpoint', () => {
  it('completes a region on its last acknowledgement and the checkpoint when every region is decided', () => {
    const { t, p } = pending([2, 1]);
    expect(p.deadline).toBe(150);
    expect(p.acknowledge(t.indexOf('t0#0'), snap('t0#0', 7, 3))).toBe('accepted');
    expect(p.acknowledge(t.indexOf('t0#0'), snap('t0#0', 7, 3))).toBe('duplicate');
    expect(p.acknowledge(t.indexOf('t0#1'), snap('t0#1', 7, 4))).toBe('region-completed');
    expect(p.regionState(0)).toBe(R_COMPLETED);
    expect(p.decided).toBe(false);
    expect(p.acknowledge(t.indexOf('t1#0'), [])).toBe('region-completed');
    expect(p.decided).toBe(true);
    expect(p.bytesWritten).toBe(7);
    expect(p.manifestEntry(0)).toEqual({
      regionId: 'r0',
      restoreFrom: 7,
      subtasks: [
        { subtask: 't0#0', state: snap('t0#0', 7, 3) },
        { subtask: 't0#1', state: snap('t0#1', 7, 4) },
      ],
      finished: [],
    });
    expect(p.bytesKept).toBe(7);
    expect(p.ackedSubtasks(0)).toBe(t.regionSubtasks[0]);
  });

  it('fails a region, returning the keys it wrote, and rejects its later acknowledgements', () => {
    const { t, p } = pending([3]);
    p.acknowledge(t.indexOf('t0#0'), snap('t0#0', 7));
    expect(p.failRegion(0, { reason: 'declined', message: 'x' })).toEqual(['s/7/t0#0']);
    expect(p.failRegion(0, { reason: 'declined', message: 'again' })).toBeUndefined();
    expect(p.regionState(0)).toBe(R_FAILED);
    expect(p.acknowledge(t.indexOf('t0#1'), snap('t0#1', 7))).toBe('rejected');
    expect(p.decided).toBe(true);
    expect(p.failedRegions).toEqual([0]);
  });

  it('can fail a completed region (task failure before finalize)', () => {
    const { t, p } = pending([1, 1]);
    p.acknowledge(t.indexOf('t0#0'), snap('t0#0', 7));
    expect(p.completedRegions).toBe(1);
    expect(p.failRegion(0, { reason: 'task-failed', message: 'x' })).toEqual(['s/7/t0#0']);
    expect(p.completedRegions).toBe(0);
    expect(p.undecided).toBe(1);
  });

  it('aborts, returning the keys of regions not already failed', () => {
    const { t, p } = pending([1, 1, 1]);
    p.acknowledge(t.indexOf('t0#0'), snap('t0#0', 7));
    p.acknowledge(t.indexOf('t1#0'), snap('t1#0', 7));
    p.failRegion(1, { reason: 'declined', message: 'x' });
    expect(p.abort({ reason: 'too-many-failed-regions', message: 'x' }, 120)).toEqual(['s/7/t0#0']);
    expect(p.aborted).toBe(true);
    expect(p.acknowledge(t.indexOf('t2#0'), snap('t2#0', 7))).toBe('rejected');
  });

  it('stops waiting for a subtask that finishes and lists it as finished', () => {
    const { t, p } = pending([2], ['t0#1']);
    expect(p.undecided).toBe(1);
    expect(p.finish(t.indexOf('t0#0'))).toBe(true);
    expect(p.decided).toBe(true);
    expect(p.manifestEntry(0)).toEqual({ regionId: 'r0', restoreFrom: 7, subtasks: [], finished: ['t0#0', 't0#1'] });
    expect(p.ackedSubtasks(0)).toEqual([]);
  });
});
