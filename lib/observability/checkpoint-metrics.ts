/**
 * A decided checkpoint as metrics and one log line: outcome, duration and size for the job, and
 * per region whether it completed N (with its snapshot bytes) or failed it. Called where the
 * decision is persisted (the checkpoint driver, locally and in the Step Functions finalize step),
 * so each decision is counted once.
 *
 * A checkpoint decided 'job-ended' (pending when the job ended) is logged, not counted as failed.
 * Per-region metrics are one CloudWatch metric per region; past `perRegionLimit` regions (default
 * 100; an ingest job at parallelism 5000 has 5000) only the job's totals are published.
 */
import type { CheckpointEffect } from '../checkpoint/types';
import type { Logger, MetricsSink } from '../ports/telemetry';
import { Metrics } from './metric-names';

export type FinalizedEffect = Extract<CheckpointEffect, { type: 'checkpointFinalized' }>;

export function recordCheckpoint(effect: FinalizedEffect, out: { jobId: string; metrics?: MetricsSink; logger?: Logger; perRegionLimit?: number }): void {
  const { history } = effect;
  const job = { job: out.jobId };
  const failedRegions = history.failedRegions.map((r) => r.regionId);
  if (effect.outcome === 'completed') {
    out.logger?.info(
      `checkpoint ${effect.checkpointId} completed in ${history.durationMs} ms: ${history.regions.completed} of ${history.regions.total} regions, ${history.bytesWritten} bytes` +
        (failedRegions.length > 0 ? `; ${failedRegions.length} region(s) failed it and fall back (${failedRegions.join(', ')})` : ''),
      { checkpointId: effect.checkpointId, outcome: 'completed', durationMs: history.durationMs, bytes: history.bytesWritten, failedRegions },
    );
  } else if (effect.failure.reason === 'job-ended') {
    // Not a checkpoint failure: the job ended while it was pending. Logged, not counted.
    out.logger?.info(`checkpoint ${effect.checkpointId} left undecided at the end of the job: ${effect.failure.message}`, { checkpointId: effect.checkpointId, outcome: 'failed', reason: 'job-ended' });
    return;
  } else {
    out.logger?.warn(`checkpoint ${effect.checkpointId} failed (${effect.failure.reason}): ${effect.failure.message}`, {
      checkpointId: effect.checkpointId,
      outcome: 'failed',
      reason: effect.failure.reason,
      durationMs: history.durationMs,
      failedRegions,
    });
  }
  const sink = out.metrics;
  if (!sink) return;
  sink.add(effect.outcome === 'completed' ? Metrics.CheckpointCompleted : Metrics.CheckpointFailed, 1, job);
  sink.add(Metrics.CheckpointDuration, history.durationMs, job);
  sink.add(Metrics.CheckpointSize, history.bytesWritten, job);
  if (effect.outcome === 'completed') sink.add(Metrics.CheckpointFallbacks, history.failedRegions.length, job);
  if (history.regions.total > (out.perRegionLimit ?? 100)) return;
  for (const regionId of failedRegions) sink.add(Metrics.RegionCheckpointFailed, 1, { job: out.jobId, region: regionId });
  if (effect.outcome !== 'completed') return;
  for (const region of effect.manifest.regions) {
    if (region.restoreFrom !== effect.checkpointId) continue;
    const bytes = region.subtasks.reduce((n, s) => n + s.state.reduce((m, h) => m + h.bytes, 0), 0);
    sink.add(Metrics.RegionCheckpointCompleted, 1, { job: out.jobId, region: region.regionId });
    sink.add(Metrics.RegionCheckpointSize, bytes, { job: out.jobId, region: region.regionId });
  }
}
