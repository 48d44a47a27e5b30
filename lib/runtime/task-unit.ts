/**
 * A task unit: the process (child process, Lambda invocation or Fargate task) that hosts one or
 * more subtasks of a job. It heartbeats its status and counters into the metadata store, listens
 * on its control queue, and ends when its subtasks end.
 */
import type { Json } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { ExecutionGraph } from '../graph/execution-graph';
import { parseSubtaskId } from '../graph/execution-graph';
import type { JobStore, SubtaskStats, UnitStatus } from '../jobs/job-store';
import type { CheckpointIO, SubtaskSnapshot } from './checkpoint-io';
import type { ControlMessage } from './messages';
import type { SubPartitionGate } from './record-writer';
import { SubtaskRunner, type SubtaskStatus } from './subtask';

export interface TaskUnitOptions {
  jobId: string;
  unitId: string;
  attempt: number;
  graph: ExecutionGraph;
  subtasks: string[];
  controlQueue: string;
  queuePrefix: string;
  channels: ChannelTransport;
  blobs: BlobStore;
  jobs: JobStore;
  gate?: SubPartitionGate;
  checkpoints?: CheckpointIO;
  /** Snapshot to restore per subtask id. */
  restore?: Map<string, SubtaskSnapshot>;
  /** Union list state to restore per subtask id (subtasks of one task may share one object). */
  restoreUnion?: Map<string, Record<string, Json[]>>;
  /** Lowest producer attempt accepted per input channel. */
  minAttempt?: (edgeId: string, producer: number) => number;
  heartbeatMs?: number;
  /** AWS requests made so far by this process, by service (reported with the heartbeat). */
  requestCounts?: () => Record<string, number>;
  /** Handles control messages the unit itself does not know (checkpoints, availability). */
  onControl?: (message: ControlMessage) => Promise<void>;
  log?: (line: string) => void;
}

export class ZombieUnitError extends Error {
  override name = 'ZombieUnitError';
}

export class TaskUnit {
  readonly runners: SubtaskRunner[];
  private stopped = false;

  constructor(private readonly options: TaskUnitOptions) {
    const tasks = new Map(options.graph.tasks.map((t) => [t.id, t]));
    this.runners = options.subtasks.map((id) => {
      const { taskId, index } = parseSubtaskId(id);
      const task = tasks.get(taskId);
      if (!task || index >= task.parallelism) throw new Error(`unit ${options.unitId}: job has no subtask '${id}'`);
      return new SubtaskRunner({
        jobId: options.jobId,
        graph: options.graph,
        task,
        index,
        attempt: options.attempt,
        queuePrefix: options.queuePrefix,
        channels: options.channels,
        blobs: options.blobs,
        gate: options.gate,
        checkpoints: options.checkpoints,
        restore: options.restore?.get(id),
        restoreUnion: options.restoreUnion?.get(id),
        minAttempt: options.minAttempt,
      });
    });
  }

  /** Runs every subtask to its end; resolves with the unit's final status. */
  async run(): Promise<UnitStatus> {
    const { jobs, jobId, unitId, attempt } = this.options;
    if (!(await jobs.reportUnit(jobId, unitId, attempt, { status: 'RUNNING', heartbeatAt: Date.now() }))) {
      throw new ZombieUnitError(`unit ${unitId} attempt ${attempt} was superseded before it started`);
    }
    const heartbeat = this.heartbeatLoop();
    const control = this.controlLoop();
    const results = await Promise.all(this.runners.map((r) => r.run()));
    this.stopped = true;
    const failed = this.runners.find((r) => r.status === 'failed');
    const status: UnitStatus = failed ? 'FAILED' : results.every((s) => s === 'finished') ? 'FINISHED' : 'CANCELLED';
    const error = failed ? describe(failed.error) : undefined;
    await Promise.allSettled([heartbeat, control]);
    await jobs.reportUnit(jobId, unitId, attempt, { ...this.report(), status, ...(error ? { error } : {}) });
    if (failed) this.options.log?.(`subtask ${failed.id} failed: ${error}`);
    return status;
  }

  cancel(): void {
    for (const r of this.runners) r.cancel();
  }

  private report(): { heartbeatAt: number; stats: Record<string, SubtaskStats>; requests: Record<string, number> } {
    const stats: Record<string, SubtaskStats> = {};
    for (const r of this.runners) stats[r.id] = { status: r.status as SubtaskStatus, ...r.counters() };
    return { heartbeatAt: Date.now(), stats, requests: this.options.requestCounts?.() ?? {} };
  }

  private async heartbeatLoop(): Promise<void> {
    const { jobs, jobId, unitId, attempt } = this.options;
    const every = this.options.heartbeatMs ?? 1000;
    while (!this.stopped) {
      await sleepUnless(every, () => this.stopped);
      if (this.stopped) return;
      const current = await jobs.reportUnit(jobId, unitId, attempt, this.report());
      if (!current) {
        // A newer attempt of this unit exists: stop writing anything.
        this.options.log?.(`unit ${unitId} attempt ${attempt} was superseded; stopping`);
        this.cancel();
        return;
      }
    }
  }

  private async controlLoop(): Promise<void> {
    const { channels, controlQueue: queue } = this.options;
    while (!this.stopped) {
      const messages = await channels.receive(queue, { max: 10, waitSeconds: 1 }).catch(() => []);
      for (const m of messages) await this.onControl(JSON.parse(m.body) as ControlMessage);
      if (messages.length > 0) await channels.delete(queue, messages.map((m) => m.receipt)).catch(() => undefined);
    }
  }

  private async onControl(message: ControlMessage): Promise<void> {
    const targets = (ids: string[]) => this.runners.filter((r) => ids.includes(r.id));
    switch (message.type) {
      case 'cancel':
        if (message.attempt === undefined || message.attempt === this.options.attempt) this.cancel();
        return;
      case 'triggerCheckpoint':
        return targets(message.subtasks).forEach((r) => r.triggerCheckpoint(message.checkpointId));
      case 'checkpointComplete':
        return targets(message.subtasks).forEach((r) => r.checkpointComplete(message.checkpointId));
      case 'commitFinal':
        return targets(message.subtasks).forEach((r) => r.commitFinal());
      case 'checkpointAborted':
        return targets(message.subtasks).forEach((r) => r.abortCheckpoint(message.checkpointId));
      default:
        return this.options.onControl?.(message);
    }
  }
}

async function sleepUnless(ms: number, stop: () => boolean): Promise<void> {
  const step = 100;
  for (let waited = 0; waited < ms && !stop(); waited += step) await new Promise((r) => setTimeout(r, step));
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
