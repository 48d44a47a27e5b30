import { describe, expect, it } from 'vitest';
import { checkProgress } from '../../lib/jobs/progress-watch';
import type { JobView } from '../../lib/jobs/job-service';
import type { SubtaskStats, UnitRecord } from '../../lib/jobs/job-store';

const stats = (status: string, recordsIn: number, extra: object = {}): SubtaskStats => ({ status, recordsIn, recordsOut: 0, dropped: 0, duplicates: 0, fenced: 0, ...extra });

function view(source: SubtaskStats, agg: SubtaskStats): JobView {
  const unit = (unitId: string, id: string, s: SubtaskStats): UnitRecord => ({ unitId, subtasks: [id], attempt: 1, status: 'RUNNING', startedAt: 0, heartbeatAt: 0, stats: { [id]: s }, requests: {} });
  return {
    job: { jobId: 'j', status: 'RUNNING' } as JobView['job'],
    units: [unit('gen-0', 'gen#0', source), unit('agg-0', 'agg#0', agg)],
    totals: { recordsIn: 0, recordsOut: 0, dropped: 0, missing: 0, replayed: 0, duplicateRecords: 0, regenerated: 0, unreplayed: 0, resent: 0, requests: {} },
  };
}

describe('checkProgress', () => {
  const sources = new Set(['gen']);

  it('is not stuck while the sources still read, however quiet the job is', () => {
    const v = view(stats('running', 10), stats('running', 10));
    let { mark } = checkProgress(v, sources, undefined, 0, 1000);
    const later = checkProgress(v, sources, mark, 10_000, 1000);
    expect(later.stalled).toBeUndefined();
    mark = later.mark;
    expect(mark.since).toBe(0);
  });

  it('fails a drained job that stands still for the timeout, naming what each subtask waits for', () => {
    const v = view(stats('finished', 100), stats('running', 60, { openChannels: 1 }));
    const first = checkProgress(v, sources, undefined, 0, 1000);
    expect(checkProgress(v, sources, first.mark, 999, 1000).stalled).toBeUndefined();
    const stuck = checkProgress(v, sources, first.mark, 1000, 1000);
    expect(stuck.stalled).toMatch(/no progress for 1 s after every source reached end of input/);
    expect(stuck.stalled).toMatch(/agg#0 \(unit agg-0 attempt 1, RUNNING\): 1 input channel\(s\) not ended/);
    // With what the open channel waits for, when the subtask reported it (InputGate.describeOpen).
    const detailed = view(stats('finished', 100), stats('running', 60, { openChannels: 1, openDetail: ['e1/0: attempt 0, waits for replay 2'] }));
    const again = checkProgress(detailed, sources, undefined, 0, 1000);
    expect(checkProgress(detailed, sources, again.mark, 1000, 1000).stalled).toMatch(/1 input channel\(s\) not ended \(e1\/0: attempt 0, waits for replay 2\)/);
    // A restarted subtask says how many of its channels still wait for their replay.
    const replaying = view(stats('finished', 100), stats('running', 60, { openChannels: 8, replaysAwaited: 3 }));
    const third = checkProgress(replaying, sources, undefined, 0, 1000);
    expect(checkProgress(replaying, sources, third.mark, 1000, 1000).stalled).toMatch(/agg#0 \(unit agg-0 attempt 1, RUNNING\): 8 input channel\(s\) not ended, 3 waiting for their replay/);
    // Its input ended and it is finishing: the step it is in.
    const ending = view(stats('finished', 100), stats('running', 60, { openChannels: 0, ending: 'staging its last output' }));
    const fourth = checkProgress(ending, sources, undefined, 0, 1000);
    expect(checkProgress(ending, sources, fourth.mark, 1000, 1000).stalled).toMatch(/agg#0 \(unit agg-0 attempt 1, RUNNING\): input ended, staging its last output/);
  });

  it('any change of records, statuses or attempts restarts the clock', () => {
    const before = view(stats('finished', 100), stats('running', 60));
    const { mark } = checkProgress(before, sources, undefined, 0, 1000);
    const moved = checkProgress(view(stats('finished', 100), stats('running', 61)), sources, mark, 5000, 1000);
    expect(moved.stalled).toBeUndefined();
    expect(moved.mark.since).toBe(5000);
  });
});
