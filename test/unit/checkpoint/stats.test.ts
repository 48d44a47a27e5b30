import { describe, expect, it } from 'vitest';
import { CheckpointStatsTracker, historyEntry, regionOutcome } from '../../../lib/checkpoint';

const info = (id: number, failed: boolean) => ({
  checkpointId: id,
  handle: 'regional' as const,
  triggerTime: 1000,
  endTime: 1250,
  failure: failed ? { reason: 'too-many-failed-regions' as const, message: 'm' } : undefined,
  regionsTotal: 4,
  participating: 4,
  completedRegions: 3,
  failedRegions: [{ regionId: 'r2', reason: 'declined' as const, message: 'no', fallback: 5 }],
  bytesWritten: 40,
  bytesKept: failed ? 0 : 30,
});

describe('stats', () => {
  it('makes a history entry with duration, outcome and per-region outcomes', () => {
    const e = historyEntry(info(6, false));
    expect(e).toMatchObject({ checkpointId: 6, durationMs: 250, outcome: { status: 'completed' }, regions: { total: 4, completed: 3, failed: 1 } });
    expect(regionOutcome(e, 'r2')).toEqual({ status: 'failed', record: expect.objectContaining({ fallback: 5 }) });
    expect(regionOutcome(e, 'r0')).toEqual({ status: 'completed' });
    expect(regionOutcome(historyEntry(info(7, true)), 'r0')).toEqual({ status: 'not-kept' });
  });

  it('counts outcomes and keeps a bounded history', () => {
    const s = new CheckpointStatsTracker(3);
    s.triggered();
    s.refused();
    s.queued();
    for (let id = 1; id <= 10; id++) s.record(historyEntry(info(id, id % 2 === 0)));
    expect(s.counters).toEqual({
      triggered: 1,
      completed: 5,
      failed: 5,
      refused: 1,
      queued: 1,
      regionCompleted: 15,
      regionFailed: 10,
      regionFallbacks: 5,
      failureReasons: { 'too-many-failed-regions': 5 },
    });
    expect(s.history().map((h) => h.checkpointId)).toEqual([8, 9, 10]);
    expect(s.latestCompleted()!.checkpointId).toBe(9);
    expect(s.latestFailed()!.checkpointId).toBe(10);
  });
});
