/**
 * What the supervisor counts as a failure: exits, errors and stale heartbeats of a unit's current
 * attempt; never an exit it was told the system caused (a stop), never an older attempt's exit,
 * and never a unit that died after every one of its subtasks had finished.
 */
import { describe, expect, it } from 'vitest';
import { Supervisor } from '../../lib/jobs/supervisor';
import type { JobService, JobView } from '../../lib/jobs/job-service';
import type { SubtaskStats, UnitRecord } from '../../lib/jobs/job-store';

const stats = (status: string): SubtaskStats => ({ status, recordsIn: 1, recordsOut: 1, dropped: 0, duplicates: 0, fenced: 0 });
const unit = (unitId: string, attempt: number, status: string): UnitRecord => ({
  unitId,
  subtasks: [`${unitId}#0`],
  attempt,
  status: 'RUNNING',
  startedAt: 0,
  heartbeatAt: 1000,
  stats: { [`${unitId}#0`]: stats(status) },
  requests: {},
});
const view = (units: UnitRecord[]): JobView => ({
  job: { jobId: 'j', status: 'RUNNING', settings: { heartbeatTimeoutMs: 10_000 } } as JobView['job'],
  units,
  totals: { recordsIn: 0, recordsOut: 0, dropped: 0, missing: 0, replayed: 0, duplicateRecords: 0, regenerated: 0, unreplayed: 0, resent: 0, requests: {} },
});
const exit = (unitId: string, attempt: number, extra: object = {}) => ({ jobId: 'j', unitId, attempt, code: null, signal: 'SIGKILL', at: 1500, ...extra });

describe('Supervisor.detect', () => {
  const supervisor = () => new Supervisor({ service: {} as JobService });

  it('a killed current attempt is a failure, once', () => {
    const s = supervisor();
    s.unitExited(exit('a', 2));
    const v = view([unit('a', 2, 'running')]);
    expect(s.detect(v, 2000).map((f) => [f.unitId, f.attempt, f.reason])).toEqual([['a', 2, 'process killed by SIGKILL']]);
    expect(s.detect(v, 2100)).toEqual([]);
  });

  it('an exit the system caused (a stop), or of an older attempt, is no failure', () => {
    const s = supervisor();
    s.unitExited(exit('a', 1, { stopped: true, signal: 'SIGTERM' }));
    s.unitExited(exit('b', 0));
    expect(s.detect(view([unit('a', 1, 'running'), unit('b', 1, 'running')]), 2000)).toEqual([]);
  });

  it('a unit killed after all its subtasks finished is recorded finished, not failed over', () => {
    const s = supervisor();
    s.unitExited(exit('a', 0));
    const first = s.detectAll(view([unit('a', 0, 'finished')]), 2000);
    expect(first.failures).toEqual([]);
    expect(first.finished.map((u) => u.unitId)).toEqual(['a']);
    expect(s.detectAll(view([unit('a', 0, 'finished')]), 2100)).toEqual({ failures: [], finished: [] });
  });

  it('an ended sink (waiting to commit) that dies is a failure: its output is not committed yet', () => {
    const s = supervisor();
    s.unitExited(exit('a', 0));
    expect(s.detect(view([unit('a', 0, 'ended')]), 2000)).toHaveLength(1);
  });
});

describe('Supervisor.watch', () => {
  it('looks at once when a unit process exits, not at its next poll', async () => {
    let passes = 0;
    const running = view([unit('a', 0, 'running')]);
    let current: JobView = { ...running, job: { ...running.job, regions: [] } };
    const service = {
      graphOf: async () => ({ tasks: [] }),
      view: async () => {
        passes++;
        return current;
      },
      completeIfDone: async () => false,
      fail: async () => {
        current = { ...current, job: { ...current.job, status: 'FAILED' } };
      },
    } as unknown as JobService;
    // A poll interval no test waits out, and a clock whose sleeps never end: only the exit can wake it.
    const clock = { now: () => 2000, sleep: () => new Promise<void>(() => undefined) };
    const detected: string[] = [];
    const s = new Supervisor({
      service,
      clock,
      pollMs: 3_600_000,
      onFailure: async (failures) => {
        detected.push(...failures.map((f) => `${f.unitId}#${f.attempt}: ${f.reason}`));
        await service.fail('j', 'failed');
      },
    });
    const watching = s.watch('j');
    while (passes < 1) await new Promise((resolve) => setImmediate(resolve));
    s.unitExited(exit('a', 0));
    const ended = await watching;
    expect(detected).toEqual(['a#0: process killed by SIGKILL']);
    expect(ended.job.status).toBe('FAILED');
  });
});
