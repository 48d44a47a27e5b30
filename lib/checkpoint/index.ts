/** Checkpoint coordination core: pure logic, effect-based, no AWS and no timers. */
export * from './types';
export { CHECKPOINT_DEFAULTS, CheckpointConfigError, resolveCheckpointConfig } from './config';
export { CheckpointTopology, TopologyError } from './topology';
export { CheckpointPlanner, type CheckpointPlan } from './plan';
export { PendingCheckpoint, type AckResult } from './pending';
export { RegionFailureManager, type FailurePolicy } from './failure-manager';
export { CompletedCheckpointStore, unreferencedKeys, type Retired } from './store';
export { CheckpointStatsTracker, historyEntry, regionOutcome } from './stats';
export { CheckpointCoordinator, type CoordinatorOptions } from './coordinator';
export { ManifestError, manifestKeys, parseManifest, regionRestore, serializeManifest, type RegionRestore } from './manifest';
export {
  PortCheckpointCatalog,
  StaleCheckpointError,
  CheckpointDecidedError,
  checkpointPk,
  checkpointSk,
  historyToItem,
  itemToHistory,
  LATEST_SK,
  manifestKey,
  writerManifestKey,
  MAX_FAILED_REGIONS_PER_ITEM,
  type CheckpointCatalog,
  type CheckpointDecision,
} from './catalog';
export { CheckpointPersistence, type PersistenceOptions } from './persistence';
