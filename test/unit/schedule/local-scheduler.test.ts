import { afterEach, describe, expect, it } from 'vitest';
import { LocalCheckpointScheduler, ScheduleError, type CheckpointSchedule } from '../../../lib/schedule';
import { FakeClock } from './fake-clock';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const hourly = (timeZone = 'UTC'): CheckpointSchedule => ({ kind: 'cron', expression: 'cron(0 * * * ? *)', timeZone });

let running: LocalCheckpointScheduler[] = [];
afterEach(async () => {
  await Promise.all(running.map((s) => s.stop()));
  running = [];
});

function start(clock: FakeClock, schedule: CheckpointSchedule | null, onFire?: (t: number) => void | Promise<void>) {
  const fires: string[] = [];
  const scheduler = new LocalCheckpointScheduler({
    clock,
    schedule,
    onFire: async (t) => {
      fires.push(iso(t));
      await onFire?.(t);
    },
  });
  scheduler.start();
  running.push(scheduler);
  return { scheduler, fires };
}

describe('LocalCheckpointScheduler', () => {
  it('fires on the hour, aligned to the wall clock, whenever it starts', async () => {
    const clock = new FakeClock(at('2026-01-01T10:17:23Z'));
    const { scheduler, fires } = start(clock, hourly());
    expect(iso(scheduler.nextFireAt!)).toBe('2026-01-01T11:00:00.000Z');
    await clock.advanceTo(at('2026-01-01T10:59:59Z'));
    expect(fires).toEqual([]);
    await clock.advanceTo(at('2026-01-01T13:30:00Z'));
    expect(fires).toEqual(['2026-01-01T11:00:00.000Z', '2026-01-01T12:00:00.000Z', '2026-01-01T13:00:00.000Z']);
    expect(iso(scheduler.nextFireAt!)).toBe('2026-01-01T14:00:00.000Z');
  });

  it('changes its interval mid-run without a restart, from the time of the change', async () => {
    const clock = new FakeClock(at('2026-01-01T10:17:00Z'));
    const { scheduler, fires } = start(clock, { kind: 'rate', seconds: 3600 });
    await clock.advanceTo(at('2026-01-01T11:40:00Z'));
    expect(fires).toEqual(['2026-01-01T11:00:00.000Z']);

    // Every hour -> every 5 minutes: the next fire is 11:45, not 12:00.
    scheduler.setSchedule({ kind: 'rate', seconds: 300 });
    expect(iso(scheduler.nextFireAt!)).toBe('2026-01-01T11:45:00.000Z');
    await clock.advanceTo(at('2026-01-01T11:52:00Z'));
    expect(fires).toEqual(['2026-01-01T11:00:00.000Z', '2026-01-01T11:45:00.000Z', '2026-01-01T11:50:00.000Z']);

    // -> on the hour in India (UTC+05:30): the next fire is 12:30 UTC.
    scheduler.setSchedule(hourly('Asia/Kolkata'));
    await clock.advanceTo(at('2026-01-01T14:00:00Z'));
    expect(fires.slice(3)).toEqual(['2026-01-01T12:30:00.000Z', '2026-01-01T13:30:00.000Z']);
    expect(scheduler.isRunning).toBe(true);
  });

  it('evaluates a cron in its time zone across a daylight-saving change', async () => {
    // 09:00 in Berlin: 08:00Z in winter, 07:00Z after the 2026-03-29 change.
    const clock = new FakeClock(at('2026-03-27T12:00:00Z'));
    const { fires } = start(clock, { kind: 'cron', expression: 'cron(0 9 * * ? *)', timeZone: 'Europe/Berlin' });
    await clock.advanceTo(at('2026-03-31T00:00:00Z'));
    expect(fires).toEqual(['2026-03-28T08:00:00.000Z', '2026-03-29T07:00:00.000Z', '2026-03-30T07:00:00.000Z']);
  });

  it('pauses with null, resumes, and keeps the old schedule when a new one is invalid', async () => {
    const clock = new FakeClock(at('2026-01-01T00:00:30Z'));
    const { scheduler, fires } = start(clock, { kind: 'rate', seconds: 60 });
    await clock.advanceTo(at('2026-01-01T00:02:30Z'));
    expect(fires).toHaveLength(2);
    scheduler.setSchedule(null);
    expect(scheduler.nextFireAt).toBeUndefined();
    await clock.advanceTo(at('2026-01-01T00:10:00Z'));
    expect(fires).toHaveLength(2);
    expect(() => scheduler.setSchedule({ kind: 'rate', seconds: -5 })).toThrow(ScheduleError);
    expect(scheduler.schedule).toBeNull();
    scheduler.setSchedule({ kind: 'rate', seconds: 120 });
    await clock.advanceTo(at('2026-01-01T00:14:00Z'));
    expect(fires.slice(2)).toEqual(['2026-01-01T00:12:00.000Z', '2026-01-01T00:14:00.000Z']);
  });

  it('skips fire times that pass while a slow callback runs, and survives a failing one', async () => {
    const clock = new FakeClock(at('2026-01-01T00:00:00Z'));
    const errors: unknown[] = [];
    let calls = 0;
    const scheduler = new LocalCheckpointScheduler({
      clock,
      schedule: { kind: 'rate', seconds: 10 },
      onError: (e) => errors.push(e),
      onFire: async () => {
        calls++;
        if (calls === 1) await clock.sleep(35_000); // a checkpoint slower than the interval
        if (calls === 2) throw new Error('trigger failed');
      },
    });
    scheduler.start();
    running.push(scheduler);
    await clock.advanceTo(at('2026-01-01T00:01:00Z'));
    // 00:10 ran until 00:45; 00:20, 00:30 and 00:40 were skipped; then 00:50 (fails) and 01:00.
    expect(scheduler.fired.map(iso)).toEqual(['2026-01-01T00:00:10.000Z', '2026-01-01T00:00:50.000Z', '2026-01-01T00:01:00.000Z']);
    expect(scheduler.skipped).toBe(3);
    expect(errors).toHaveLength(1);
  });

  it('stops: no fire after stop()', async () => {
    const clock = new FakeClock(at('2026-01-01T00:00:00Z'));
    const { scheduler, fires } = start(clock, { kind: 'rate', seconds: 60 });
    await clock.advanceTo(at('2026-01-01T00:01:00Z'));
    await scheduler.stop();
    await clock.advanceTo(at('2026-01-01T00:10:00Z'));
    expect(fires).toEqual(['2026-01-01T00:01:00.000Z']);
    expect(scheduler.nextFireAt).toBeUndefined();
  });

  it('runs on the system clock with a real timer', async () => {
    const fires: number[] = [];
    const scheduler = new LocalCheckpointScheduler({ schedule: { kind: 'rate', seconds: 1 }, onFire: (t) => void fires.push(t) });
    scheduler.start();
    running.push(scheduler);
    await new Promise((r) => setTimeout(r, 2300));
    await scheduler.stop();
    expect(fires.length).toBeGreaterThanOrEqual(2);
    for (const t of fires) expect(t % 1000).toBe(0);
  });
});
