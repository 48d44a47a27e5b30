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
  job: { jobId: 'j', status: 'RUNNING', settings: { heartbeatTimeoutMs: 10_000, failover: 'single' } } as JobView['job'],
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

  it('raises a failure from the exit and that unit\'s record while a pass is still reading every record', async () => {
    const running = view([unit('a', 0, 'running'), unit('b', 0, 'running')]);
    let current: JobView = { ...running, job: { ...running.job, regions: [] } };
    let passes = 0;
    let release: (() => void) | undefined;
    const unitReads: string[] = [];
    const service = {
      graphOf: async () => ({ tasks: [] }),
      view: async () => {
        passes++;
        // The second pass reads as slowly as every record of a P=4000 job: until the test lets it go.
        if (passes === 2) await new Promise<void>((resolve) => (release = resolve));
        return current;
      },
      unit: async (_jobId: string, unitId: string) => {
        unitReads.push(unitId);
        return current.units.find((u) => u.unitId === unitId);
      },
      completeIfDone: async () => false,
      fail: async () => {
        current = { ...current, job: { ...current.job, status: 'FAILED' } };
      },
    } as unknown as JobService;
    let now = 2000;
    const clock = { now: () => now, sleep: () => new Promise<void>((resolve) => setImmediate(resolve)) };
    const handled: { failures: string[]; units: string[]; fresh: boolean[] }[] = [];
    const s = new Supervisor({
      service,
      clock,
      pollMs: 1,
      onFailure: async (failures, v) => {
        handled.push({ failures: failures.map((f) => `${f.unitId}#${f.attempt}@${f.detectedAt}`), units: v.units.map((u) => u.unitId), fresh: failures.map((f) => f.recordFresh === true) });
      },
    });
    const watching = s.watch('j');
    while (!release) await new Promise((resolve) => setImmediate(resolve));
    now = 2100;
    s.unitExited(exit('b', 0));
    while (handled.length === 0) await new Promise((resolve) => setImmediate(resolve));
    // Handled before the pass under way returned, from one record read, with the last view's units;
    // that record, read with no other failover around, is handed over as fresh (not read again).
    expect(handled).toEqual([{ failures: ['b#0@2100'], units: ['a', 'b'], fresh: [true] }]);
    expect(unitReads).toEqual(['b']);
    expect(passes).toBe(2);
    // The pass that comes back does not raise it again; an exit of an attempt the record no longer has is left to the passes.
    release!();
    s.unitExited(exit('a', 7));
    current = { ...current, units: [unit('a', 0, 'running'), unit('b', 1, 'running')] };
    while (passes < 5) await new Promise((resolve) => setImmediate(resolve));
    expect(handled).toHaveLength(1);
    await service.fail('j', 'done');
    await watching;
  });

  it('a record read while another failure is handled, or with one handled during the read, is not handed over as fresh', async () => {
    const running = view([unit('a', 0, 'running'), unit('b', 0, 'running'), unit('c', 0, 'running'), unit('d', 0, 'running')]);
    let current: JobView = { ...running, job: { ...running.job, regions: [] } };
    let passes = 0;
    let releasePass: (() => void) | undefined;
    const readsOf: Record<string, () => void> = {};
    const service = {
      graphOf: async () => ({ tasks: [] }),
      // The second pass reads until the test lets it go: every failure here is raised from its exit.
      view: async () => {
        passes++;
        if (passes === 2) await new Promise<void>((resolve) => (releasePass = resolve));
        return current;
      },
      // Each unit read waits until the test lets it go.
      unit: async (_jobId: string, unitId: string) => {
        await new Promise<void>((resolve) => (readsOf[unitId] = resolve));
        return current.units.find((u) => u.unitId === unitId);
      },
      completeIfDone: async () => false,
      fail: async () => {
        current = { ...current, job: { ...current.job, status: 'FAILED' } };
      },
    } as unknown as JobService;
    const clock = { now: () => 2000, sleep: () => new Promise<void>((resolve) => setImmediate(resolve)) };
    const handled: { unitId: string; fresh: boolean }[] = [];
    let finishA: (() => void) | undefined;
    const s = new Supervisor({
      service,
      clock,
      pollMs: 1,
      onFailure: async (failures) => {
        handled.push(...failures.map((f) => ({ unitId: f.unitId, fresh: f.recordFresh === true })));
        // a's failover runs until the test ends it.
        if (failures.some((f) => f.unitId === 'a')) await new Promise<void>((resolve) => (finishA = resolve));
      },
    });
    const watching = s.watch('j');
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise((resolve) => setImmediate(resolve));
    };
    await until(() => releasePass !== undefined);
    // b's read starts before a's failover and ends after it has begun; c's starts and ends while it runs.
    s.unitExited(exit('b', 0));
    s.unitExited(exit('a', 0));
    await until(() => !!readsOf.a && !!readsOf.b);
    readsOf.a!();
    await until(() => finishA !== undefined);
    readsOf.b!();
    s.unitExited(exit('c', 0));
    await until(() => !!readsOf.c);
    readsOf.c!();
    await new Promise((resolve) => setImmediate(resolve));
    finishA!();
    await until(() => handled.length === 3);
    // Once nothing is handled or waiting, a read is fresh again.
    s.unitExited(exit('d', 0));
    await until(() => !!readsOf.d);
    readsOf.d!();
    await until(() => handled.length === 4);
    expect(handled).toEqual([
      { unitId: 'a', fresh: true },
      { unitId: 'b', fresh: false },
      { unitId: 'c', fresh: false },
      { unitId: 'd', fresh: true },
    ]);
    expect(passes).toBe(2);
    await service.fail('j', 'done');
    releasePass!();
    await watching;
  });

  it('does not release an ended region while a failure raised from an exit is still being handled', async () => {
    const running = view([unit('a', 0, 'running')]);
    let current: JobView = { ...running, job: { ...running.job, regions: [{ id: 'r', subtasks: ['a#0'] }] } as unknown as JobView['job'] };
    let passes = 0;
    const sent: string[] = [];
    const service = {
      graphOf: async () => ({ tasks: [] }),
      view: async () => (passes++, current),
      unit: async () => current.units[0],
      completeIfDone: async () => false,
      sendControl: async (_job: unknown, units: string[], message: { type: string }) => void sent.push(`${message.type} ${units.join()}`),
    } as unknown as JobService;
    const clock = { now: () => 2000, sleep: () => new Promise<void>((resolve) => setImmediate(resolve)) };
    let finishFailover: (() => void) | undefined;
    const s = new Supervisor({ service, clock, pollMs: 1, onFailure: () => new Promise<void>((resolve) => (finishFailover = resolve)) });
    const watching = s.watch('j');
    while (passes < 1) await new Promise((resolve) => setImmediate(resolve));
    s.unitExited(exit('a', 0));
    while (!finishFailover) await new Promise((resolve) => setImmediate(resolve));
    // The dead attempt's last report said its subtasks ended (it died at its final commit); the new
    // attempt is not recorded yet, so passes go on reading that report.
    current = { ...current, units: [unit('a', 0, 'ended')] };
    const before = passes;
    while (passes < before + 5) await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual([]);
    // Replaced: once the new attempt has ended too, its region is released.
    current = { ...current, units: [unit('a', 1, 'ended')] };
    finishFailover();
    while (sent.length < 1) await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual(['commitFinal a']);
    current = { ...current, job: { ...current.job, status: 'FINISHED' } };
    await watching;
  });

  it('under region or full, an exit is left to the next pass (no read of its record)', async () => {
    const running = view([unit('a', 0, 'running')]);
    let current: JobView = { ...running, job: { ...running.job, regions: [], settings: { ...running.job.settings, failover: 'region' } } as JobView['job'] };
    let passes = 0;
    const unitReads: string[] = [];
    const service = {
      graphOf: async () => ({ tasks: [] }),
      view: async () => (passes++, current),
      unit: async (_j: string, unitId: string) => (unitReads.push(unitId), current.units[0]),
      completeIfDone: async () => false,
    } as unknown as JobService;
    const clock = { now: () => 2000, sleep: () => new Promise<void>((resolve) => setImmediate(resolve)) };
    const detected: string[] = [];
    const s = new Supervisor({
      service,
      clock,
      pollMs: 1,
      onFailure: async (failures) => {
        detected.push(...failures.map((f) => f.unitId));
        current = { ...current, job: { ...current.job, status: 'FAILED' } };
      },
    });
    const watching = s.watch('j');
    while (passes < 1) await new Promise((resolve) => setImmediate(resolve));
    s.unitExited(exit('a', 0));
    await watching;
    expect(detected).toEqual(['a']);
    expect(unitReads).toEqual([]);
  });

  it('a failure raised from an exit whose handling fails is retried by the next pass', async () => {
    const running = view([unit('a', 0, 'running')]);
    let current: JobView = { ...running, job: { ...running.job, regions: [] } };
    let passes = 0;
    const service = {
      graphOf: async () => ({ tasks: [] }),
      view: async () => (passes++, current),
      unit: async () => current.units[0],
      completeIfDone: async () => false,
    } as unknown as JobService;
    const clock = { now: () => 2000, sleep: () => new Promise<void>((resolve) => setImmediate(resolve)) };
    const calls: string[] = [];
    const s = new Supervisor({
      service,
      clock,
      pollMs: 1,
      onFailure: async (failures) => {
        calls.push(failures.map((f) => f.unitId).join());
        if (calls.length === 1) throw new Error('throttled');
        current = { ...current, job: { ...current.job, status: 'FAILED' } };
      },
    });
    const watching = s.watch('j');
    while (passes < 1) await new Promise((resolve) => setImmediate(resolve));
    s.unitExited(exit('a', 0));
    await watching;
    expect(calls).toEqual(['a', 'a']);
  });

  /**
   * A watch over one unit whose heartbeat stays at 1000: `read` says how the clock moves while a
   * view is read, `between` how far it moved between passes; returns the failures of the passes.
   */
  async function watchStalled(steps: { read: number; between: number }[]): Promise<string[]> {
    let now = 2000;
    let step = 0;
    const running = view([unit('a', 0, 'running')]);
    let current: JobView = { ...running, job: { ...running.job, regions: [] } };
    const service = {
      graphOf: async () => ({ tasks: [] }),
      view: async () => {
        if (step >= steps.length) current = { ...current, job: { ...current.job, status: 'FINISHED' } };
        else now += steps[step]!.read;
        return current;
      },
      completeIfDone: async () => false,
    } as unknown as JobService;
    const clock = {
      now: () => now,
      sleep: async () => {
        now += steps[step]?.between ?? 0;
        step++;
      },
    };
    const detected: string[] = [];
    const s = new Supervisor({ service, clock, pollMs: 500, onFailure: async (failures) => void detected.push(...failures.map((f) => `${f.unitId}#${f.attempt}: ${f.reason}`)) });
    await s.watch('j');
    return detected;
  }

  it('a stale heartbeat is a failure when the watch was looking the whole time', async () => {
    // Passes every 500 ms from t=2000: at t=11.5 s the last heartbeat (t=1 s) is 10.5 s old.
    expect(await watchStalled(Array.from({ length: 20 }, () => ({ read: 0, between: 500 })))).toEqual(['a#0: no heartbeat for 11 s']);
  });

  it('silence while the watch itself stood still is not a failure: the unit gets a whole timeout from when it looks again', async () => {
    // The machine stalls 24 s between two passes; then 9 s of passes without a heartbeat: still
    // within the 10 s timeout counted from the first pass after the stall.
    const stalled = [{ read: 0, between: 500 }, { read: 0, between: 24_000 }, ...Array.from({ length: 18 }, () => ({ read: 0, between: 500 }))];
    expect(await watchStalled(stalled)).toEqual([]);
    // ... and a unit that stays silent after that is failed, as before.
    expect(await watchStalled([...stalled, ...Array.from({ length: 4 }, () => ({ read: 0, between: 500 }))])).toEqual(['a#0: no heartbeat for 36 s']);
  });

  it('a slow read of the view is not the units\' silence', async () => {
    // The view read takes 24 s (the metadata store stood still): its heartbeats are judged as of
    // the start of the read, and the next pass comes after a gap, so it counts from then.
    expect(await watchStalled([{ read: 0, between: 500 }, { read: 24_000, between: 500 }, ...Array.from({ length: 18 }, () => ({ read: 0, between: 500 }))])).toEqual([]);
  });
});
