/**
 * What the job API handlers call: three services behind one `ApiServices` object, built in one
 * place (`buildApiServices`) from ports, so the same handlers run on AWS (functions/api/cloud.ts),
 * in the local server (lib/api-server) and in tests (memory ports).
 *
 * - jobs: submit, list, details (graph, units, attempts, regions, availability flags, totals), cancel,
 *   and the registered jobs with their parameters.
 * - checkpoints: trigger now, history, through the coordinator's steps (lib/jobs/checkpoint-steps.ts)
 *   and what they store (StepsCheckpointService); replaceable behind the CheckpointService interface.
 * - schedules: the job's checkpoint schedule, stored in its settings and applied to a
 *   SchedulerPort (EventBridge Scheduler in the cloud, the local scheduler in the dev server).
 */
import type { JobRegistry } from '../../lib/api/registry';
import { JobService, type UnitLauncher } from '../../lib/jobs/job-service';
import { JobStore, type JobRecord } from '../../lib/jobs/job-store';
import type { ChannelTransport } from '../../lib/ports/channels';
import type { BlobStore } from '../../lib/ports/blob-store';
import { CheckpointSteps } from '../../lib/jobs/checkpoint-steps';
import type { MetadataStore } from '../../lib/ports/metadata-store';
import type { Clock } from '../../lib/ports/clock';
import type { Logger, MetricsSink } from '../../lib/ports/telemetry';
import { ScheduleService, type SchedulerPort } from './schedule-service';
import { StepsCheckpointService, type CheckpointService, type CheckpointWorkflowSteps } from './checkpoint-service';
import { JobApiService, type JobApi } from './job-api';

export * from './errors';
export * from './schedule-service';
export * from './checkpoint-service';
export * from './job-api';

export interface ApiServices {
  jobs: JobApi;
  checkpoints: CheckpointService;
  schedules: ScheduleService;
}

export interface ApiDeps {
  metadata: MetadataStore;
  channels: ChannelTransport;
  blobs: BlobStore;
  registry: JobRegistry;
  queuePrefix: string;
  /** How units start (Lambda, Fargate, child processes, in-process in tests). */
  launcher: UnitLauncher;
  scheduler: SchedulerPort;
  /**
   * Runs the rest of a triggered checkpoint's workflow: Step Functions StartExecution with
   * { jobId, checkpointId } in the cloud, the local workflow driver in the dev server.
   */
  startCheckpoint?: (jobId: string, checkpointId: number, steps: CheckpointWorkflowSteps) => Promise<void>;
  /** A job service to use instead of building one (the local runtime's). */
  jobService?: JobService;
  /** Replaces the checkpoint service. */
  checkpoints?: CheckpointService;
  onSubmitted?: (job: JobRecord) => void;
  clock?: Clock;
  /** The checkpoint steps' log and metrics (triggers, decisions). */
  logger?: Logger;
  metrics?: MetricsSink;
}

export interface BuiltApiServices extends ApiServices {
  /** The coordinator's steps over the same ports (the local workflow driver uses them). */
  steps: CheckpointWorkflowSteps;
  service: JobService;
}

/** The one place the API's services are put together. */
export function buildApiServices(deps: ApiDeps): BuiltApiServices {
  const jobs = new JobStore(deps.metadata);
  const service =
    deps.jobService ??
    new JobService({ jobs, channels: deps.channels, registry: deps.registry, queuePrefix: deps.queuePrefix, launcher: deps.launcher });
  const clock = deps.clock ? { clock: deps.clock } : {};
  const schedules = new ScheduleService({ jobs, port: deps.scheduler, ...clock });
  const steps = new CheckpointSteps({
    jobs,
    service,
    metadata: deps.metadata,
    blobs: deps.blobs,
    ...clock,
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  });
  const start = deps.startCheckpoint;
  const checkpoints =
    deps.checkpoints ??
    new StepsCheckpointService({ jobs, metadata: deps.metadata, steps, ...(start ? { start: (jobId: string, id: number) => start(jobId, id, steps) } : {}) });
  return {
    jobs: new JobApiService({ service, jobs, metadata: deps.metadata, schedules, registry: deps.registry, ...(deps.onSubmitted ? { onSubmitted: deps.onSubmitted } : {}) }),
    checkpoints,
    schedules,
    steps,
    service,
  };
}
