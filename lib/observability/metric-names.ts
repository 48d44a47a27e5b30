/**
 * Every metric Sluice emits: one CloudWatch namespace, each metric's name, unit and dimensions.
 * The emitters (task units, checkpoint steps, supervisor, failover) and the CDK dashboard and
 * alarms both read this table, so a metric cannot be renamed on one side only. A plain table of
 * constants, no imports: the CDK app loads it without the runtime.
 *
 * Units are CloudWatch unit names (the same strings as Powertools' MetricUnit). A metric is
 * published under exactly its dimension set: CloudWatch tells `{job}` and `{job, operator}` apart.
 * `operator` is a task's id (the first operator of a chain: chained operators report as one task).
 */

export const METRIC_NAMESPACE = 'Sluice';

/** Dimension names. */
export const Dimension = {
  job: 'job',
  /** The task (chain of operators) a subtask belongs to. */
  operator: 'operator',
  /** A checkpoint region (`r0`, `r1`, ...). */
  region: 'region',
  /** An AWS service (`sqs`, `dynamodb`, `s3`). */
  service: 'service',
} as const;

export type DimensionName = (typeof Dimension)[keyof typeof Dimension];

export type MetricUnitName = 'Count' | 'Milliseconds' | 'Bytes';

export interface MetricSpec {
  readonly name: string;
  readonly unit: MetricUnitName;
  readonly dimensions: readonly DimensionName[];
  readonly description: string;
}

const JOB = ['job'] as const;
const OPERATOR = ['job', 'operator'] as const;
const REGION = ['job', 'region'] as const;

export const Metrics = {
  // Data plane: from each task unit's counters, summed per task, every metrics interval.
  RecordsIn: { name: 'RecordsIn', unit: 'Count', dimensions: OPERATOR, description: 'records read by the task (a source: records polled)' },
  RecordsOut: { name: 'RecordsOut', unit: 'Count', dimensions: OPERATOR, description: 'records emitted by the task (a sink: records staged)' },
  RecordsDropped: { name: 'RecordsDropped', unit: 'Count', dimensions: OPERATOR, description: 'records the task dropped because their sub-partition was unavailable (single-point recovery)' },
  RecordsDuplicated: { name: 'RecordsDuplicated', unit: 'Count', dimensions: OPERATOR, description: 'input records discarded as already processed (a restored producer replaying)' },
  RecordsMissing: { name: 'RecordsMissing', unit: 'Count', dimensions: OPERATOR, description: 'input records never received (a channel position jumped)' },
  RecordsReplayed: { name: 'RecordsReplayed', unit: 'Count', dimensions: OPERATOR, description: 'input records read again after the task restarted' },
  InputLag: { name: 'InputLag', unit: 'Milliseconds', dimensions: OPERATOR, description: 'age of the oldest input message received in the interval (receive time minus SQS SentTimestamp)' },
  AwsRequests: { name: 'AwsRequests', unit: 'Count', dimensions: ['job', 'service'], description: 'AWS requests (HTTP attempts, retries included) by service' },
  Handovers: { name: 'Handovers', unit: 'Count', dimensions: JOB, description: 'Lambda task units that handed over to their next invocation' },

  // Checkpoints: when a checkpoint is decided.
  CheckpointCompleted: { name: 'CheckpointCompleted', unit: 'Count', dimensions: JOB, description: 'checkpoints completed (regions that fell back included)' },
  CheckpointFailed: { name: 'CheckpointFailed', unit: 'Count', dimensions: JOB, description: 'checkpoints failed as a whole' },
  CheckpointDuration: { name: 'CheckpointDuration', unit: 'Milliseconds', dimensions: JOB, description: 'trigger to decision' },
  CheckpointSize: { name: 'CheckpointSize', unit: 'Bytes', dimensions: JOB, description: 'bytes of every snapshot acknowledged for the checkpoint' },
  CheckpointFallbacks: { name: 'CheckpointFallbacks', unit: 'Count', dimensions: JOB, description: 'regions that failed a completed checkpoint and fall back to an earlier one' },
  CheckpointAge: { name: 'CheckpointAge', unit: 'Milliseconds', dimensions: JOB, description: "time since the job's last completed checkpoint (since it started, before the first), reported by each supervision pass while the job runs with checkpoints; the checkpoint-age alarm reads it" },
  RegionCheckpointCompleted: { name: 'RegionCheckpointCompleted', unit: 'Count', dimensions: REGION, description: 'the region completed the checkpoint' },
  RegionCheckpointFailed: { name: 'RegionCheckpointFailed', unit: 'Count', dimensions: REGION, description: 'the region failed the checkpoint' },
  RegionCheckpointSize: { name: 'RegionCheckpointSize', unit: 'Bytes', dimensions: REGION, description: "bytes of the region's snapshots in the checkpoint's manifest" },

  // Failures and recovery.
  UnitFailures: { name: 'UnitFailures', unit: 'Count', dimensions: JOB, description: 'task unit failures detected (exit, reported error, stale heartbeat)' },
  FailureDetectionTime: { name: 'FailureDetectionTime', unit: 'Milliseconds', dimensions: JOB, description: 'failure to detection by the supervisor' },
  UnitsRestarted: { name: 'UnitsRestarted', unit: 'Count', dimensions: JOB, description: 'task units restarted by failover' },
  RecoveryTime: { name: 'RecoveryTime', unit: 'Milliseconds', dimensions: JOB, description: 'failure to available again (the last restarted unit restored its state)' },
  FailoverGaveUp: { name: 'FailoverGaveUp', unit: 'Count', dimensions: JOB, description: 'failovers refused because the failure budget was used up (the job failed)' },

  // The control plane's own health.
  SupervisorErrors: { name: 'SupervisorErrors', unit: 'Count', dimensions: JOB, description: 'supervision passes over the job that threw' },
} as const satisfies Record<string, MetricSpec>;

export type MetricName = keyof typeof Metrics;
