/**
 * Hosts one attempt of a task unit in the current process: loads the job, rebuilds its execution
 * graph from the registry and runs the unit's subtasks. Child processes, Lambda and Fargate
 * entrypoints all call this.
 */
import type { JobRegistry } from '../api/registry';
import { buildExecutionGraph } from '../graph/execution-graph';
import type { JobStore, UnitStatus } from '../jobs/job-store';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import { TaskUnit } from './task-unit';

export interface UnitHostOptions {
  jobId: string;
  unitId: string;
  attempt: number;
  queuePrefix: string;
  channels: ChannelTransport;
  blobs: BlobStore;
  jobs: JobStore;
  registry: JobRegistry;
  requestCounts?: () => Record<string, number>;
  log?: (line: string) => void;
}

export async function hostUnit(options: UnitHostOptions): Promise<UnitStatus> {
  const job = await options.jobs.getJob(options.jobId);
  const placement = job.units.find((u) => u.unitId === options.unitId);
  if (!placement) throw new Error(`job '${job.jobId}' has no task unit '${options.unitId}'`);
  const graph = buildExecutionGraph(options.registry.build(job.name, job.params).graph);
  const unit = new TaskUnit({
    jobId: job.jobId,
    unitId: placement.unitId,
    attempt: options.attempt,
    graph,
    subtasks: placement.subtasks,
    controlQueue: placement.controlQueue,
    queuePrefix: options.queuePrefix,
    channels: options.channels,
    blobs: options.blobs,
    jobs: options.jobs,
    requestCounts: options.requestCounts,
    log: options.log,
  });
  return unit.run();
}
