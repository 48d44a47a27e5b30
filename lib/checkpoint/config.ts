import type { CheckpointConfig, ResolvedCheckpointConfig } from './types';

export const CHECKPOINT_DEFAULTS = {
  maxConcurrent: 1,
  whenBusy: 'queue',
  maxQueued: 1,
  maxFailedRegionRatio: 0.5,
  maxConsecutiveRegionFailures: 3,
  retained: 2,
  historySize: 100,
} as const;

export class CheckpointConfigError extends Error {
  override name = 'CheckpointConfigError';
}

function positiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new CheckpointConfigError(`${name} must be an integer >= 1, got ${value}`);
}

/** Fills in defaults and rejects values that make no sense. */
export function resolveCheckpointConfig(config: CheckpointConfig): ResolvedCheckpointConfig {
  const c: ResolvedCheckpointConfig = {
    jobId: config.jobId,
    handle: config.handle,
    timeoutMs: config.timeoutMs,
    maxConcurrent: config.maxConcurrent ?? CHECKPOINT_DEFAULTS.maxConcurrent,
    whenBusy: config.whenBusy ?? CHECKPOINT_DEFAULTS.whenBusy,
    maxQueued: config.maxQueued ?? CHECKPOINT_DEFAULTS.maxQueued,
    maxFailedRegionRatio: config.maxFailedRegionRatio ?? CHECKPOINT_DEFAULTS.maxFailedRegionRatio,
    maxConsecutiveRegionFailures: config.maxConsecutiveRegionFailures ?? CHECKPOINT_DEFAULTS.maxConsecutiveRegionFailures,
    retained: config.retained ?? CHECKPOINT_DEFAULTS.retained,
    historySize: config.historySize ?? CHECKPOINT_DEFAULTS.historySize,
  };
  if (typeof c.jobId !== 'string' || c.jobId === '' || c.jobId.includes('/')) {
    throw new CheckpointConfigError(`jobId must be a non-empty string without '/', got '${c.jobId}'`);
  }
  if (c.handle !== 'global' && c.handle !== 'regional') throw new CheckpointConfigError(`handle must be 'global' or 'regional', got '${c.handle}'`);
  if (c.whenBusy !== 'queue' && c.whenBusy !== 'refuse') throw new CheckpointConfigError(`whenBusy must be 'queue' or 'refuse', got '${c.whenBusy}'`);
  if (!(c.timeoutMs > 0) || !Number.isFinite(c.timeoutMs)) throw new CheckpointConfigError(`timeoutMs must be a finite number > 0, got ${c.timeoutMs}`);
  positiveInt('maxConcurrent', c.maxConcurrent);
  if (!Number.isInteger(c.maxQueued) || c.maxQueued < 0) throw new CheckpointConfigError(`maxQueued must be an integer >= 0, got ${c.maxQueued}`);
  if (!(c.maxFailedRegionRatio >= 0 && c.maxFailedRegionRatio <= 1)) {
    throw new CheckpointConfigError(`maxFailedRegionRatio must be in [0, 1], got ${c.maxFailedRegionRatio}`);
  }
  positiveInt('maxConsecutiveRegionFailures', c.maxConsecutiveRegionFailures);
  positiveInt('retained', c.retained);
  positiveInt('historySize', c.historySize);
  return c;
}
