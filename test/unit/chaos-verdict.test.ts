/** The chaos suite's verdict: what each failover strategy promises (issue 9), on made-up results. */
import { describe, expect, it } from 'vitest';
import { planSchedule, type ChaosResult, type KillRecord } from '../../bench/chaos/runner';
import { verdict } from '../../bench/chaos/verdict';
import type { FailoverStrategy } from '../../lib/jobs/job-store';

const kill = (...units: string[]): KillRecord => ({ spec: { moment: 'running', role: 'any', count: 1, delayMs: 0 }, units, atMs: 1000 });

function result(strategy: FailoverStrategy, fields: Partial<ChaosResult>): ChaosResult {
  return {
    schedule: { seed: 1, job: 'demo', strategy, parallelism: 2, kills: [] },
    jobId: 'j',
    outcome: 'FINISHED',
    kills: [kill('hourly-aggregate-0#0')],
    expected: 1000,
    lost: 0,
    duplicated: 0,
    wrong: 0,
    reportedDropped: 0,
    reportedMissing: 0,
    reportedDuplicates: 0,
    failures: [],
    restarted: [],
    totalMs: 1,
    ...fields,
  };
}

describe('chaos verdict', () => {
  it('region and full: any loss, duplicate, wrong value or unfinished job breaks the promise', () => {
    expect(verdict(result('region', {})).ok).toBe(true);
    expect(verdict(result('full', { lost: 1, reportedMissing: 5 })).why).toEqual(['1 events lost']);
    expect(verdict(result('region', { duplicated: 2 })).why).toEqual(['2 events duplicated']);
    expect(verdict(result('full', { outcome: 'HUNG', error: 'no progress' })).why).toEqual(['ended HUNG: no progress']);
  });

  it('single: the loss equals what the consumers counted missing and the duplicates the reported regenerated records; none at all from source restarts', () => {
    expect(verdict(result('single', { lost: 10, reportedDropped: 10, reportedMissing: 10, duplicated: 4, reportedDuplicates: 4 })).ok).toBe(true);
    expect(verdict(result('single', { lost: 11, reportedDropped: 11, reportedMissing: 10 })).why).toEqual(['11 events lost, but the consumers reported 10 missing']);
    expect(verdict(result('single', { lost: 9, reportedMissing: 10 })).ok).toBe(false);
    // Loss a replay could not give back (the producer's log went with it) is part of missing.
    expect(verdict(result('single', { lost: 15, reportedDropped: 10, reportedUnreplayed: 5, reportedMissing: 15 })).ok).toBe(true);
    expect(verdict(result('single', { lost: 16, reportedDropped: 10, reportedUnreplayed: 5, reportedMissing: 15 })).why).toEqual(['16 events lost, but the consumers reported 15 missing (5 unreplayed)']);
    expect(verdict(result('single', { lost: 4, reportedUnreplayed: 5, reportedMissing: 4 })).why).toEqual(['5 unreplayed is more than the 4 missing it is part of']);
    // The producers' drop counters are not the loss (chaos seeds 10720, 10734): a restored source
    // forgets its dead attempt's drops, and counts drops of what a consumer already has.
    expect(verdict(result('single', { lost: 6160, reportedDropped: 3084, reportedMissing: 6160 })).ok).toBe(true);
    expect(verdict(result('single', { lost: 0, reportedDropped: 5691, reportedMissing: 0 })).ok).toBe(true);
    expect(verdict(result('single', { duplicated: 4, reportedDuplicates: 3 })).why).toEqual(['4 events duplicated, but the consumers reported 3 regenerated']);
    expect(verdict(result('single', { duplicated: 3, reportedDuplicates: 4 })).why).toEqual(['3 events duplicated, but the consumers reported 4 regenerated (1 more; 0 missing records were not lost)']);
    // A restarted join lost 17 events at its input that its dead attempt had sent on: in the
    // output once, counted missing at the join and regenerated at the sink (chaos seed 10721).
    expect(verdict(result('single', { lost: 28, reportedMissing: 45, duplicated: 856, reportedDuplicates: 873 })).ok).toBe(true);
    expect(verdict(result('single', { lost: 28, reportedMissing: 46, duplicated: 856, reportedDuplicates: 873 })).why).toEqual(['28 events lost, but the consumers reported 46 missing (18 more; 17 regenerated records did not come again)']);
    const sourceOnly = { kills: [kill('generator-0#0', 'generator-1#0')], duplicated: 3, reportedDuplicates: 3 };
    expect(verdict(result('single', sourceOnly)).why).toEqual(['3 events duplicated by source restarts']);
    expect(verdict(result('single', { ...sourceOnly, kills: [kill('generator-0#0'), kill('hourly-aggregate-1#0')] })).ok).toBe(true);
  });

  it('single-buffered: nothing dropped and nothing lost, even when reported', () => {
    expect(verdict(result('single-buffered', { duplicated: 3, reportedDuplicates: 3 })).ok).toBe(true);
    expect(verdict(result('single-buffered', { reportedDropped: 2, lost: 2, reportedMissing: 2 })).why).toEqual(['2 records dropped under single-buffered', '2 events lost under single-buffered']);
    expect(verdict(result('single-buffered', { lost: 7, reportedMissing: 7 })).why).toEqual(['7 events lost under single-buffered']);
  });

  it('single-exact: exactly once, and no attempt changes but the killed units\'', () => {
    expect(verdict(result('single-exact', { restarted: ['hourly-aggregate-0#1'] })).ok).toBe(true);
    expect(verdict(result('single-exact', { duplicated: 1 })).why).toEqual(['1 events duplicated']);
    expect(verdict(result('single-exact', { restarted: ['hourly-aggregate-0#1', 'generator-1#1'] })).why).toEqual(['units restarted that were not killed: generator-1#1']);
  });

  it('--final-commit-kills adds a sink kill at the final commit and leaves the rest of each plan as without it', () => {
    const options = { strategies: ['region', 'single-exact'] as FailoverStrategy[], jobs: ['demo', 'join'] as const };
    for (let seed = 1; seed <= 20; seed++) {
      const plain = planSchedule(seed, options);
      const withFinal = planSchedule(seed, { ...options, finalCommitKills: true });
      expect(withFinal.kills.slice(0, -1)).toEqual(plain.kills);
      expect({ ...withFinal, kills: [] }).toEqual({ ...plain, kills: [] });
      expect(withFinal.kills.at(-1)).toMatchObject({ moment: 'final-commit', role: 'sink' });
    }
  });
});
