/**
 * Hosts one attempt of a task unit in the current process: loads the job, rebuilds its execution
 * graph from the registry, restores each subtask from its region's entry in the latest checkpoint
 * manifest, and runs the unit's subtasks. Child processes, Lambda and Fargate entrypoints all call
 * this.
 */
import type { JobRegistry } from '../api/registry';
import { PortCheckpointCatalog } from '../checkpoint/catalog';
import { regionRestore } from '../checkpoint/manifest';
import { buildExecutionGraph, subtaskId } from '../graph/execution-graph';
import type { JobStore, UnitStatus } from '../jobs/job-store';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { MetadataStore } from '../ports/metadata-store';
import { CheckpointIO, type SubtaskSnapshot } from './checkpoint-io';
import { announceAvailable } from '../recovery/failover-handler';
import { loadAvailabilityView } from '../recovery/availability';
import { TaskUnit } from './task-unit';

export interface UnitHostOptions {
  jobId: string;
  unitId: string;
  attempt: number;
  queuePrefix: string;
  channels: ChannelTransport;
  blobs: BlobStore;
  metadata: MetadataStore;
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
  const io = new CheckpointIO(job.jobId, options.blobs, options.metadata);

  // Restore: every subtask of a region from the same checkpoint id, the region's manifest entry.
  const restore = new Map<string, SubtaskSnapshot>();
  const manifest = await new PortCheckpointCatalog(job.jobId, options.metadata, options.blobs).loadLatest();
  if (manifest) {
    for (const id of placement.subtasks) {
      const region = job.regions.find((r) => r.subtasks.includes(id))!;
      const point = regionRestore(manifest, region.id);
      const handle = point.state.get(id)?.[0];
      if (point.checkpointId !== null && handle) restore.set(id, await io.readSnapshot(handle.key));
    }
    if (restore.size > 0) options.log?.(`restoring ${[...restore.values()].map((s) => `${s.subtask} from checkpoint ${s.checkpointId}`).join(', ')}`);
  }

  // Fencing: accept on each input channel only the producer's current attempt or a newer one.
  const attempts = new Map<string, number>();
  for (const unit of await options.jobs.getUnits(job.jobId)) for (const s of unit.subtasks) attempts.set(s, unit.attempt);
  const producerTask = new Map(graph.edges.map((e) => [e.id, e.from]));

  // Single-point recovery: writers drop records bound for unavailable sub-partitions; a restarted
  // unit marks its own input sub-partitions available again once its state is restored.
  const availability = await loadAvailabilityView({ metadata: options.metadata, jobId: job.jobId, graph, subtasks: placement.subtasks });
  const announced = await announceAvailable({
    metadata: options.metadata,
    channels: options.channels,
    job,
    graph,
    unitId: placement.unitId,
    attempt: options.attempt,
  });
  if (announced.superseded) throw new Error(`unit ${placement.unitId} attempt ${options.attempt} was superseded by a newer attempt`);

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
    gate: availability,
    onControl: async (message) => {
      if (message.type === 'availability' && availability.handleControl(message)) {
        options.log?.(`sub-partition ${message.edgeId}/${message.consumer} ${message.available ? 'available again' : 'unavailable'} (consumer attempt ${message.attempt})`);
      }
    },
    checkpoints: io,
    restore,
    minAttempt: (edgeId, producer) => attempts.get(subtaskId(producerTask.get(edgeId)!, producer)) ?? 0,
    requestCounts: options.requestCounts,
    log: options.log,
  });
  return unit.run();
}
