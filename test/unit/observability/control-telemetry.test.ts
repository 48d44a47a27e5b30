/**
 * The control plane's logs and metrics, captured: a decided checkpoint (completed with a region
 * falling back, failed, ended with the job), detected failures, and a failover.
 */
import { describe, expect, it } from 'vitest';
import type { CheckpointEffect } from '../../../lib/checkpoint';
import { recordCheckpoint, type FinalizedEffect } from '../../../lib/observability/checkpoint-metrics';
import { createLogger } from '../../../lib/observability/logger';
import { EmfMetrics } from '../../../lib/observability/metrics';
import { recordFailures } from '../../../lib/jobs/supervisor';
import { ackAll, coordinator, ofType, snap } from '../checkpoint/helpers';

function capture() {
  const logs: string[] = [];
  const emf: string[] = [];
  const logger = createLogger({ write: (l) => logs.push(l) });
  const metrics = new EmfMetrics({ write: (l) => emf.push(l), disabled: false });
  const parsed = () => ({ logs: logs.map((l) => JSON.parse(l)), emf: emf.map((l) => JSON.parse(l)) });
  return { logger, metrics, parsed };
}

const decided = (effects: readonly CheckpointEffect[]): FinalizedEffect => ofType(effects, 'checkpointFinalized')[0]!;

/** The EMF lines with this metric, as [dimensions, value]. */
function values(emf: any[], name: string): [Record<string, string>, unknown][] {
  return emf
    .filter((e) => e[name] !== undefined)
    .map((e) => [Object.fromEntries(e._aws.CloudWatchMetrics[0].Dimensions[0].map((d: string) => [d, e[d]])), e[name]]);
}

describe('checkpoint decisions as metrics and log lines', () => {
  it('a completed checkpoint: outcome, duration, size, fallbacks, and per region completed or failed', () => {
    const c = coordinator([2, 1, 1]);
    c.trigger(0);
    const effects = [...c.decline('t2#0', 1, 'disk full', 3), ...ackAll(c, 1, 40, ['r0', 'r1'])];
    const { logger, metrics, parsed } = capture();
    recordCheckpoint(decided(effects), { jobId: 'j', logger: logger.child({ jobId: 'j' }), metrics });
    metrics.flush();
    const { logs, emf } = parsed();
    expect(logs).toEqual([expect.objectContaining({ level: 'INFO', jobId: 'j', checkpointId: 1, outcome: 'completed', durationMs: 40, failedRegions: ['r2'] })]);
    expect(logs[0].message).toMatch(/^checkpoint 1 completed in 40 ms: 2 of 3 regions, 30 bytes; 1 region\(s\) failed it and fall back \(r2\)$/);
    expect(values(emf, 'CheckpointCompleted')).toEqual([[{ job: 'j' }, 1]]);
    expect(values(emf, 'CheckpointDuration')).toEqual([[{ job: 'j' }, 40]]);
    expect(values(emf, 'CheckpointSize')).toEqual([[{ job: 'j' }, 30]]);
    expect(values(emf, 'CheckpointFallbacks')).toEqual([[{ job: 'j' }, 1]]);
    expect(values(emf, 'RegionCheckpointFailed')).toEqual([[{ job: 'j', region: 'r2' }, 1]]);
    expect(values(emf, 'RegionCheckpointCompleted')).toEqual([
      [{ job: 'j', region: 'r0' }, 1],
      [{ job: 'j', region: 'r1' }, 1],
    ]);
    expect(values(emf, 'RegionCheckpointSize')).toEqual([
      [{ job: 'j', region: 'r0' }, 20],
      [{ job: 'j', region: 'r1' }, 10],
    ]);
    expect(values(emf, 'CheckpointFailed')).toEqual([]);
  });

  it('a failed checkpoint is a warning and counted; one pending when the job ended is neither', () => {
    const failing = coordinator([1, 1], { handle: 'global' });
    failing.trigger(0);
    failing.acknowledge('t0#0', 1, snap('t0#0', 1), 1);
    const failed = decided(failing.decline('t1#0', 1, 'disk full', 7));
    const ending = coordinator([1]);
    ending.trigger(0);
    const ended = decided(ending.jobEnded(5, 'the job ended FINISHED'));
    const { logger, metrics, parsed } = capture();
    recordCheckpoint(failed, { jobId: 'j', logger, metrics });
    recordCheckpoint(ended, { jobId: 'j', logger, metrics });
    metrics.flush();
    const { logs, emf } = parsed();
    expect(logs.map((l) => [l.level, l.reason, l.checkpointId])).toEqual([
      ['WARN', 'declined', 1],
      ['INFO', 'job-ended', 1],
    ]);
    expect(values(emf, 'CheckpointFailed')).toEqual([[{ job: 'j' }, 1]]);
    expect(values(emf, 'CheckpointDuration')).toEqual([[{ job: 'j' }, 7]]);
    expect(values(emf, 'RegionCheckpointFailed')).toEqual([[{ job: 'j', region: 'r1' }, 1]]);
  });

  it('publishes only the job totals past the per-region limit', () => {
    const c = coordinator([1, 1, 1]);
    c.trigger(0);
    const { metrics, parsed } = capture();
    recordCheckpoint(decided(ackAll(c, 1, 2)), { jobId: 'j', metrics, perRegionLimit: 2 });
    metrics.flush();
    const { emf } = parsed();
    expect(values(emf, 'CheckpointCompleted')).toEqual([[{ job: 'j' }, 1]]);
    expect(emf.filter((e) => e.region !== undefined)).toEqual([]);
  });
});

describe('failures as metrics and log lines', () => {
  it('logs each detected failure with its unit and attempt, and counts it with its detection time', () => {
    const { logger, metrics, parsed } = capture();
    recordFailures(
      'j',
      [
        { unitId: 'join-1', attempt: 0, subtasks: ['join#1'], reason: 'process killed by SIGKILL', failedAt: 1000, detectedAt: 1600 },
        { unitId: 'sink-0', attempt: 2, subtasks: ['sink#0'], reason: 'no heartbeat for 21 s', failedAt: 0, detectedAt: 21_000 },
      ],
      { logger, metrics },
    );
    metrics.flush();
    const { logs, emf } = parsed();
    expect(logs.map((l) => [l.level, l.jobId, l.unitId, l.attempt, l.detectionMs])).toEqual([
      ['WARN', 'j', 'join-1', 0, 600],
      ['WARN', 'j', 'sink-0', 2, 21_000],
    ]);
    expect(values(emf, 'UnitFailures')).toEqual([[{ job: 'j' }, 2]]);
    expect(values(emf, 'FailureDetectionTime')).toEqual([[{ job: 'j' }, [600, 21_000]]]);
  });
});
