/**
 * A fixed handful of the chaos suite's fault schedules (bench/chaos/runner.ts), on child-process
 * task units and the emulator; `npm run test:chaos` runs randomized ones. Each kill waits for an
 * observed moment (input read, a failover in progress, end of input), and each run's committed
 * output is read back from S3 and compared with the input, not with the job's counters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { LocalRuntime } from '../../lib/local/local-runtime';
import { jobRegistry } from '../../examples/jobs';
import { runSchedule, type ChaosResult, type Schedule } from '../../bench/chaos/runner';
import { verdict } from '../../bench/chaos/verdict';

const config = { ...loadConfig(), table: 'sluice-e2e-chaos', bucket: 'sluice-e2e-chaos', queuePrefix: 'e2echaos' };
let runtime: LocalRuntime;
const rows: string[] = [];

beforeAll(async () => {
  runtime = new LocalRuntime(config, jobRegistry);
  await runtime.prepare();
});
afterAll(() => {
  runtime.close();
  console.log(['', 'chaos schedules:', ...rows].join('\n'));
});

async function run(schedule: Schedule): Promise<ChaosResult> {
  const result = await runSchedule(schedule, { runtime, sourceSeconds: 8 });
  const kills = result.kills.map((k) => `${k.units.join('+') || '-'}@${k.atMs === null ? '-' : (k.atMs / 1000).toFixed(1)}s(${k.spec.moment})`).join(' ');
  rows.push(
    `  ${schedule.strategy.padEnd(16)} ${schedule.job.padEnd(5)} ${result.outcome}: lost ${result.lost}, duplicated ${result.duplicated}, ` +
      `reported dropped ${result.reportedDropped} unreplayed ${result.reportedUnreplayed ?? 0} missing ${result.reportedMissing} regenerated ${result.reportedDuplicates}; ` +
      `recovery ${result.failures.map((f) => (f.status === 'SUPERSEDED' ? 'sup' : (f.recoveryMs ?? '?'))).join(',')} ms; kills ${kills}`,
  );
  const v = verdict(result);
  if (!v.ok) console.log(`schedule ${JSON.stringify(schedule)} broke: ${v.why.join('; ')}\n${JSON.stringify(result.kills)}\n${JSON.stringify(result.failures)}`);
  return result;
}

describe('chaos schedules (fixed)', () => {
  it('region: two units killed at the same instant recover in one failover; output exact', async () => {
    const result = await run({ seed: 101, job: 'demo', strategy: 'region', parallelism: 2, kills: [{ moment: 'running', fraction: 0.3, role: 'any', count: 2, delayMs: 0 }] });
    expect(result.kills[0]!.units).toHaveLength(2);
    expect(verdict(result)).toEqual({ ok: true, why: [] });
    // One failover recovered both: one failure event, and every unit of the region (the demo is
    // one) restarted once, at attempt 1. The event names the second unit too when its exit was seen
    // before the failover was planned; seen after, it is the exit of an attempt already replaced
    // (CI, loaded: the event named one unit), never a second failover.
    expect(result.failures).toHaveLength(1);
    for (const killed of result.kills[0]!.units) expect(result.restarted).toContain(`${killed.split('#')[0]}#1`);
    expect(result.restarted.every((u) => u.endsWith('#1'))).toBe(true);
  });

  it('full: a kill while a failover is in progress; the job finishes, output exact', async () => {
    const result = await run({
      seed: 102,
      job: 'join',
      strategy: 'full',
      parallelism: 2,
      kills: [
        { moment: 'running', fraction: 0.25, role: 'inner', count: 1, delayMs: 0 },
        { moment: 'during-failover', role: 'source', count: 1, delayMs: 0 },
      ],
    });
    expect(result.kills.map((k) => k.note ?? k.units.length)).toEqual([1, 1]);
    expect(verdict(result)).toEqual({ ok: true, why: [] });
  });

  it('single: a source restarted from its checkpoint re-delivers nothing its consumers already had', async () => {
    const result = await run({ seed: 103, job: 'demo', strategy: 'single', parallelism: 2, kills: [{ moment: 'running', fraction: 0.4, role: 'source', count: 1, delayMs: 0 }] });
    expect(result.kills[0]!.units).toHaveLength(1);
    expect(result.restarted.map((u) => u.split('#')[0])).toEqual([result.kills[0]!.units[0]!.split('#')[0]]);
    expect(result.duplicated).toBe(0);
    expect(verdict(result)).toEqual({ ok: true, why: [] });
  });

  it('single: a source and a consumer of it killed together, then the other consumer during that failover; loss as reported', async () => {
    // Chaos seed 70031: what the restarted consumers asked the restarted source for, and the
    // source's records after its restore, must reach them or be counted (dropped, unreplayed).
    const result = await run({
      seed: 70031,
      job: 'demo',
      strategy: 'single',
      parallelism: 2,
      kills: [
        { moment: 'running', fraction: 0.16, role: 'any', count: 2, delayMs: 0 },
        { moment: 'during-failover', role: 'inner', count: 1, delayMs: 0 },
      ],
    });
    expect(result.outcome).toBe('FINISHED');
    expect(verdict(result)).toEqual({ ok: true, why: [] });
  });

  it("region: a sink killed as its region's final commit is released; the output is still exact", async () => {
    const result = await run({ seed: 105, job: 'join', strategy: 'region', parallelism: 2, kills: [{ moment: 'final-commit', role: 'sink', count: 1, delayMs: 0 }] });
    expect(result.kills[0]!.units).toHaveLength(1);
    expect(result.outcome).toBe('FINISHED');
    expect(result.lost + result.duplicated).toBe(0);
    expect(verdict(result)).toEqual({ ok: true, why: [] });
  });

  it('single: a sink killed after end of input is restored and the job still finishes; loss as reported', async () => {
    const result = await run({ seed: 104, job: 'demo', strategy: 'single', parallelism: 2, kills: [{ moment: 'after-input', role: 'sink', count: 1, delayMs: 0 }] });
    expect(result.kills[0]!.units).toHaveLength(1);
    expect(result.outcome).toBe('FINISHED');
    expect(verdict(result)).toEqual({ ok: true, why: [] });
  });
});
