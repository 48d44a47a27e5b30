/**
 * The job service: submit, inspect, complete and cancel jobs. The API handlers, the local
 * runtime and the CLI all go through it. Starting task units is the launcher's business
 * (child processes locally, Lambda or Fargate in the cloud).
 */
import { randomBytes } from 'node:crypto';
import type { Json } from '../api/functions';
import type { JobRegistry } from '../api/registry';
import { buildExecutionGraph, type ExecutionGraph } from '../graph/execution-graph';
import { JobSpecError } from '../graph/job-graph';
import { checkSubtasksPerUnit, jobLayout, type JobLayout } from '../graph/placement';
import { unitShardCount } from '../ports/metadata-keys';
import type { ChannelTransport } from '../ports/channels';
import { controlGroup, type ControlMessage } from '../runtime/messages';
import { mapWithConcurrency } from '../util/concurrency';
import { JOB_LIFECYCLE, UNIT_LIFECYCLE, countersWithCarried, storedJob, type FailoverStrategy, type JobRecord, type JobSettings, type JobStore, type StoredJob, type UnitPlacement, type UnitRecord, type UnitRuntime } from './job-store';

export interface UnitLauncher {
  /** Starts the given attempt of a unit. */
  launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void>;
  /**
   * Stops a unit at once (best effort; it may already be gone). With `attempt`, only that attempt
   * or an older one: a failover stops what it planned to replace, never a newer attempt.
   */
  stop(jobId: string, unitId: string, attempt?: number): Promise<void>;
  /** Throws a JobSpecError when it cannot run a job with these settings (checked before anything is created). */
  accepts?(settings: JobSettings): void;
}

export interface SubmitRequest {
  job: string;
  params?: { [k: string]: Json };
  failover?: FailoverStrategy;
  /** Run the task units on Lambda (hand-over every 15 min) or Fargate (no time limit). */
  runOn?: UnitRuntime;
  heartbeatTimeoutSeconds?: number;
  checkpoint?: Partial<JobSettings['checkpoint']>;
  /** Subtasks one task unit hosts (default 1): placement fills units task by task (lib/graph/placement.ts). */
  subtasksPerUnit?: number;
  /** Longest wait of records before they are sent, and the units' send tick (default: 200 ms, no tick; JobSettings.lingerMs). */
  lingerMs?: number;
}

export const DEFAULT_SETTINGS: JobSettings = {
  failover: 'region',
  heartbeatTimeoutMs: 10_000,
  checkpoint: { handle: 'regional', intervalSeconds: 0, timeoutSeconds: 60, maxFailedRegionRatio: 0.5, maxConsecutiveRegionFailures: 3, whenBusy: 'refuse' },
};

/** The failover strategies a job may ask for. */
export const FAILOVER_STRATEGIES: readonly FailoverStrategy[] = ['full', 'region', 'single', 'single-buffered', 'single-exact'];

export interface JobTotals {
  /** Records read by the sources. */
  recordsIn: number;
  /** Records written by the sinks. */
  recordsOut: number;
  /** Records dropped for unavailable sub-partitions (every attempt's). */
  dropped: number;
  /** Input records consumers never saw (sequence gaps: drops, or input a dead attempt consumed after its checkpoint). */
  missing: number;
  /** Input records processed again from messages received before (after a consumer's restart). */
  replayed: number;
  /** Input records discarded as already processed (a restored source's replay). */
  duplicateRecords: number;
  /** Input records a restarted producer sends again (the duplicates single-point recovery delivers downstream). */
  regenerated: number;
  /** Input records consumers skipped for good that no producer counts as dropped: lost (part of `missing`). */
  unreplayed: number;
  /** Records producers sent again from their in-flight logs to restarted consumers. */
  resent: number;
  requests: Record<string, number>;
}

export interface JobView {
  job: JobRecord;
  units: UnitRecord[];
  totals: JobTotals;
}

export class JobService {
  private readonly graphs = new Map<string, ExecutionGraph>();
  private readonly layouts = new Map<string, JobLayout>();

  constructor(
    private readonly deps: {
      jobs: JobStore;
      channels: ChannelTransport;
      registry: JobRegistry;
      queuePrefix: string;
      launcher: UnitLauncher;
    },
  ) {}

  async submit(request: SubmitRequest): Promise<JobRecord> {
    const settings = resolveSettings(request);
    this.deps.launcher.accepts?.(settings);
    const { graph: logical, params } = this.deps.registry.build(request.job, request.params ?? {});
    const graph = buildExecutionGraph(logical);
    const jobId = `${request.job}-${randomBytes(4).toString('hex').slice(0, 6)}`;
    const { queuePrefix } = this.deps;
    const layout = jobLayout(graph, { jobId, queuePrefix, subtasksPerUnit: settings.subtasksPerUnit ?? 1 });
    await this.deps.channels.createQueues(layout.queues);

    const job: JobRecord = {
      jobId,
      name: request.job,
      params,
      settings,
      status: 'RUNNING',
      createdAt: Date.now(),
      queuePrefix,
      shape: {
        units: layout.units.length,
        subtasks: graph.subtasks.length,
        regions: layout.regions.length,
        queues: layout.queues.length,
        unitShards: unitShardCount(layout.units.length),
      },
      ...layout,
    };
    await this.deps.jobs.createJob(storedJob(job));
    this.graphs.set(jobId, graph);
    this.layouts.set(jobId, layout);
    await mapWithConcurrency(layout.units, 32, async (unit) => {
      await this.deps.jobs.startUnitAttempt(jobId, unit.unitId, unit.subtasks, 0);
      await this.deps.launcher.launch(job, unit, 0);
    });
    return job;
  }

  /** A job with its layout (units, regions, queues), computed from its graph: nothing of it is stored. */
  async job(jobId: string): Promise<JobRecord> {
    return this.withLayout(await this.deps.jobs.getJob(jobId));
  }

  /** The layout of a stored job (computed once per job and process). */
  async withLayout(job: StoredJob): Promise<JobRecord> {
    let layout = this.layouts.get(job.jobId);
    if (!layout) {
      layout = jobLayout(await this.graphOf(job.jobId, job), { jobId: job.jobId, queuePrefix: job.queuePrefix, subtasksPerUnit: job.settings.subtasksPerUnit ?? 1 });
      this.layouts.set(job.jobId, layout);
    }
    return { ...job, ...layout };
  }

  /** The execution graph of a job, rebuilt from its registered name and parameters. */
  async graphOf(jobId: string, stored?: StoredJob): Promise<ExecutionGraph> {
    let graph = this.graphs.get(jobId);
    if (!graph) {
      const job = stored ?? (await this.deps.jobs.getJob(jobId));
      graph = buildExecutionGraph(this.deps.registry.build(job.name, job.params).graph);
      this.graphs.set(jobId, graph);
    }
    return graph;
  }

  async view(jobId: string): Promise<JobView> {
    const [job, units] = await Promise.all([this.job(jobId), this.deps.jobs.getUnits(jobId)]);
    const graph = await this.graphOf(jobId);
    const sources = new Set(graph.tasks.filter((t) => t.inputs.length === 0).map((t) => t.id));
    const sinks = new Set(graph.tasks.filter((t) => t.operators.at(-1)!.kind === 'sink').map((t) => t.id));
    const totals: JobTotals = { recordsIn: 0, recordsOut: 0, dropped: 0, missing: 0, replayed: 0, duplicateRecords: 0, regenerated: 0, unreplayed: 0, resent: 0, requests: {} };
    for (const unit of units) {
      for (const [id, s] of Object.entries(unit.stats ?? {})) {
        const taskId = id.slice(0, id.lastIndexOf('#'));
        if (sources.has(taskId)) totals.recordsIn += s.recordsIn;
        if (sinks.has(taskId)) totals.recordsOut += s.recordsOut;
      }
      const counters = countersWithCarried(unit);
      totals.dropped += counters.dropped ?? 0;
      totals.missing += counters.missingRecords ?? 0;
      totals.replayed += counters.replayedRecords ?? 0;
      totals.duplicateRecords += counters.duplicateRecords ?? 0;
      totals.regenerated += counters.regeneratedRecords ?? 0;
      totals.unreplayed += counters.unreplayedRecords ?? 0;
      totals.resent += counters.resentRecords ?? 0;
      for (const [service, n] of Object.entries(unit.requests ?? {})) totals.requests[service] = (totals.requests[service] ?? 0) + n;
    }
    return { job, units, totals };
  }

  /** One unit's record (its last report), without the rest of the job's. */
  unit(jobId: string, unitId: string): Promise<UnitRecord | undefined> {
    return this.deps.jobs.getUnit(jobId, unitId);
  }

  list() {
    return this.deps.jobs.listJobs();
  }

  /** Marks a job finished once every unit has finished, and deletes its queues. */
  async completeIfDone(jobId: string): Promise<boolean> {
    const units = await this.deps.jobs.getUnits(jobId);
    const job = await this.job(jobId);
    if (units.length < job.units.length || units.some((u) => u.status !== 'FINISHED')) return false;
    await this.deps.channels.deleteQueues(job.queues);
    return this.deps.jobs.setJobStatus(jobId, 'FINISHED');
  }

  /** Records a unit attempt FINISHED whose process died after all its subtasks had finished. */
  async finishUnit(jobId: string, unitId: string, attempt: number): Promise<void> {
    await this.deps.jobs.reportUnit(jobId, unitId, attempt, { status: 'FINISHED' });
  }

  /** Ends a job that cannot go on: stops its units and deletes its queues. */
  async fail(jobId: string, reason: string): Promise<void> {
    if (!(await this.deps.jobs.setJobStatus(jobId, 'FAILED', reason))) return;
    await this.stopAll(jobId, 'stopped: the job failed');
  }

  /** Cancels a running job: stops its units, deletes its queues, keeps its checkpoints. */
  async cancel(jobId: string): Promise<JobRecord> {
    const job = await this.deps.jobs.getJob(jobId);
    if (!JOB_LIFECYCLE.can(job.status, 'CANCELLED')) throw new JobSpecError(`job '${jobId}' is ${job.status}, not running`);
    await this.deps.jobs.setJobStatus(jobId, 'CANCELLED');
    await this.stopAll(jobId, 'stopped: the job was cancelled');
    return this.job(jobId);
  }

  /** Sends a control message to units of a job. */
  async sendControl(job: JobRecord, unitIds: string[], message: ControlMessage): Promise<void> {
    const body = JSON.stringify(message);
    const wanted = new Set(unitIds);
    const targets = job.units.filter((u) => wanted.has(u.unitId));
    const id = `${Date.now()}-${randomBytes(4).toString('hex')}`;
    await mapWithConcurrency(targets, 32, (u) => this.deps.channels.send(u.controlQueue, [{ groupId: controlGroup(message, id), dedupId: id, body }]));
  }

  private async stopAll(jobId: string, reason: string): Promise<void> {
    const job = await this.job(jobId);
    await this.sendControl(job, job.units.map((u) => u.unitId), { type: 'cancel' }).catch(() => undefined);
    await mapWithConcurrency(job.units, 32, (u) => this.deps.launcher.stop(jobId, u.unitId));
    await this.deps.channels.deleteQueues(job.queues);
    // What the launcher could not kill ends at its next heartbeat, which this refuses.
    const units = await this.deps.jobs.getUnits(jobId);
    await mapWithConcurrency(
      units.filter((u) => UNIT_LIFECYCLE.can(u.status, 'CANCELLED')),
      32,
      (u) => this.deps.jobs.markStopped(jobId, u.unitId, u.attempt, reason),
    );
  }
}

export function resolveSettings(request: SubmitRequest): JobSettings {
  const failover = request.failover ?? DEFAULT_SETTINGS.failover;
  if (!FAILOVER_STRATEGIES.includes(failover)) throw new JobSpecError(`failover must be one of ${FAILOVER_STRATEGIES.join(', ')}, got '${failover}'`);
  if (request.runOn !== undefined && !['lambda', 'fargate'].includes(request.runOn)) {
    throw new JobSpecError(`runOn must be 'lambda' or 'fargate', got '${String(request.runOn)}'`);
  }
  const heartbeat = request.heartbeatTimeoutSeconds;
  if (heartbeat !== undefined && !(heartbeat >= 1 && heartbeat <= 900)) {
    throw new JobSpecError(`heartbeatTimeoutSeconds must be from 1 to 900, got ${heartbeat}`);
  }
  const checkpoint = { ...DEFAULT_SETTINGS.checkpoint, ...(request.checkpoint ?? {}) };
  if (!['global', 'regional'].includes(checkpoint.handle)) throw new JobSpecError(`checkpoint.handle must be 'global' or 'regional', got '${checkpoint.handle}'`);
  if (!(checkpoint.intervalSeconds >= 0)) throw new JobSpecError(`checkpoint.intervalSeconds must be 0 or more, got ${checkpoint.intervalSeconds}`);
  if (!(checkpoint.timeoutSeconds > 0)) throw new JobSpecError(`checkpoint.timeoutSeconds must be more than 0, got ${checkpoint.timeoutSeconds}`);
  if (!(checkpoint.maxFailedRegionRatio >= 0 && checkpoint.maxFailedRegionRatio <= 1)) {
    throw new JobSpecError(`checkpoint.maxFailedRegionRatio must be from 0 to 1, got ${checkpoint.maxFailedRegionRatio}`);
  }
  if (checkpoint.whenBusy !== undefined && !['refuse', 'queue'].includes(checkpoint.whenBusy)) {
    throw new JobSpecError(`checkpoint.whenBusy must be 'refuse' or 'queue', got '${checkpoint.whenBusy}'`);
  }
  if (!(Number.isInteger(checkpoint.maxConsecutiveRegionFailures) && checkpoint.maxConsecutiveRegionFailures >= 1)) {
    throw new JobSpecError(`checkpoint.maxConsecutiveRegionFailures must be a whole number of at least 1, got ${checkpoint.maxConsecutiveRegionFailures}`);
  }
  const subtasksPerUnit = checkSubtasksPerUnit(request.subtasksPerUnit);
  const linger = request.lingerMs;
  if (linger !== undefined && !(Number.isInteger(linger) && linger >= 1 && linger <= 10_000)) {
    throw new JobSpecError(`lingerMs must be a whole number of milliseconds from 1 to 10000, got ${JSON.stringify(linger)}`);
  }
  return {
    failover,
    ...(request.runOn ? { runOn: request.runOn } : {}),
    heartbeatTimeoutMs: (heartbeat ?? DEFAULT_SETTINGS.heartbeatTimeoutMs / 1000) * 1000,
    ...(subtasksPerUnit !== undefined && subtasksPerUnit !== 1 ? { subtasksPerUnit } : {}),
    ...(linger !== undefined ? { lingerMs: linger } : {}),
    checkpoint,
  };
}
