/**
 * The checkpoint workflow as four stateless steps — trigger, poll, finalize, notify — for the
 * Step Functions state machine (each step is one Lambda invocation) and for anything else that
 * drives a checkpoint from outside the job's process. Between steps only the job id and the
 * checkpoint id travel; the rest is read back: a pending marker (trigger time, deadline) and the
 * acknowledgements in DynamoDB, replayed through a fresh coordinator built from the catalog
 * (retained manifests, and the consecutive-failure counters of the newest history entry, so
 * `maxConsecutiveRegionFailures` holds from one run to the next).
 */
import type { BlobStore } from '../ports/blob-store';
import type { Clock } from '../ports/clock';
import { systemClock } from '../ports/clock';
import type { MetadataStore } from '../ports/metadata-store';
import { CheckpointDriver, type ControlSender } from './checkpoint-driver';
import type { JobService } from './job-service';
import type { JobStore } from './job-store';

export interface StepInput {
  jobId: string;
  checkpointId?: number | null;
}

export interface StepResult {
  jobId: string;
  checkpointId: number | null;
  /** Poll: the checkpoint is decided (or cannot go on); the workflow moves to finalize. */
  done: boolean;
  outcome?: 'pending' | 'completed' | 'failed' | 'refused' | 'job-not-running';
  message?: string;
  /** Seconds the workflow should wait before the next poll. */
  waitSeconds?: number;
}

const pad = (id: number) => String(id).padStart(12, '0');
export const PENDING_PREFIX = 'CKPT_PENDING#';

interface PendingMarker {
  checkpointId: number;
  triggerTime: number;
  deadline: number;
}

export class CheckpointSteps {
  private readonly clock: Clock;

  constructor(private readonly deps: { jobs: JobStore; service: JobService & ControlSender; metadata: MetadataStore; blobs: BlobStore; clock?: Clock }) {
    this.clock = deps.clock ?? systemClock;
  }

  async trigger({ jobId }: StepInput): Promise<StepResult> {
    const job = await this.deps.jobs.getJob(jobId);
    if (job.status !== 'RUNNING') return { jobId, checkpointId: null, done: true, outcome: 'job-not-running', message: `job is ${job.status}` };
    const now = this.clock.now();
    const markers = await this.markers(jobId);
    const open = markers.filter((m) => m.deadline > now);
    if (open.length > 0) {
      return { jobId, checkpointId: null, done: true, outcome: 'refused', message: `checkpoint ${open[0]!.checkpointId} is still pending` };
    }
    // A checkpoint whose workflow died before finalize (an execution failed or was stopped): decide
    // it now (past its deadline it times out) so its id is used up and its acks are never read as
    // those of the next checkpoint.
    for (const m of markers.sort((a, b) => a.checkpointId - b.checkpointId)) await this.finalize({ jobId, checkpointId: m.checkpointId });
    const driver = await this.driver(jobId);
    const id = await driver.trigger();
    if (id === undefined) return { jobId, checkpointId: null, done: true, outcome: 'refused', message: 'the coordinator refused the trigger' };
    const deadline = now + job.settings.checkpoint.timeoutSeconds * 1000;
    const marker: PendingMarker = { checkpointId: id, triggerTime: now, deadline };
    await this.deps.metadata.put(`JOB#${jobId}`, PENDING_PREFIX + pad(id), { ...marker });
    return { jobId, checkpointId: id, done: false, outcome: 'pending', waitSeconds: 1 };
  }

  async poll({ jobId, checkpointId }: StepInput): Promise<StepResult> {
    const { id, marker } = await this.marker(jobId, checkpointId);
    const effects = await (await this.driver(jobId, id)).replay(id, marker.triggerTime);
    const finalized = effects.find((e) => e.type === 'checkpointFinalized');
    if (finalized) return { jobId, checkpointId: id, done: true, outcome: finalized.outcome };
    return { jobId, checkpointId: id, done: false, outcome: 'pending', waitSeconds: 1 };
  }

  /** Persists the manifest (or the failure) and clears the pending marker. */
  async finalize({ jobId, checkpointId }: StepInput): Promise<StepResult> {
    const { id, marker } = await this.marker(jobId, checkpointId);
    const driver = await this.driver(jobId, id);
    const effects = await driver.replay(id, marker.triggerTime);
    const finalized = effects.find((e) => e.type === 'checkpointFinalized');
    if (!finalized) return { jobId, checkpointId: id, done: false, outcome: 'pending', message: 'not decided yet' };
    await driver.persist(effects);
    await this.deps.metadata.delete(`JOB#${jobId}`, PENDING_PREFIX + pad(id));
    return { jobId, checkpointId: id, done: true, outcome: finalized.outcome, ...(finalized.outcome === 'failed' ? { message: finalized.failure.message } : {}) };
  }

  /** Tells the regions that completed N; their sinks commit. Safe to repeat (commits are idempotent). */
  async notify({ jobId, checkpointId }: StepInput): Promise<StepResult> {
    const id = requireId(checkpointId);
    const driver = await this.driver(jobId);
    const manifest = await driver.catalog.loadLatest();
    if (!manifest || manifest.checkpointId < id) return { jobId, checkpointId: id, done: true, outcome: 'failed', message: `checkpoint ${id} has no manifest` };
    const job = await this.deps.jobs.getJob(jobId);
    for (const region of manifest.regions) {
      if (region.restoreFrom !== id) continue;
      const subtasks = region.subtasks.map((s) => s.subtask);
      const units = job.units.filter((u) => u.subtasks.some((s) => subtasks.includes(s))).map((u) => u.unitId);
      await this.deps.service.sendControl(job, units, { type: 'checkpointComplete', checkpointId: id, subtasks });
    }
    return { jobId, checkpointId: id, done: true, outcome: 'completed' };
  }

  private async driver(jobId: string, nextCheckpointId?: number): Promise<CheckpointDriver> {
    const job = await this.deps.jobs.getJob(jobId);
    const graph = await this.deps.service.graphOf(jobId);
    return CheckpointDriver.create({
      job,
      graph,
      metadata: this.deps.metadata,
      blobs: this.deps.blobs,
      control: this.deps.service,
      clock: this.clock,
      ...(nextCheckpointId !== undefined ? { nextCheckpointId } : {}),
    });
  }

  private async markers(jobId: string): Promise<PendingMarker[]> {
    return (await this.deps.metadata.query(`JOB#${jobId}`, PENDING_PREFIX)).map((i) => i.item as unknown as PendingMarker);
  }

  private async marker(jobId: string, checkpointId: number | null | undefined): Promise<{ id: number; marker: PendingMarker }> {
    const id = requireId(checkpointId);
    const item = await this.deps.metadata.get(`JOB#${jobId}`, PENDING_PREFIX + pad(id));
    if (!item) throw new Error(`checkpoint ${id} of job '${jobId}' is not pending`);
    return { id, marker: item as unknown as PendingMarker };
  }
}

function requireId(checkpointId: number | null | undefined): number {
  if (typeof checkpointId !== 'number') throw new Error('checkpointId is required');
  return checkpointId;
}
