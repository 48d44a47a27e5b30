/**
 * Checkpoints through the API: trigger now and history, through the coordinator's steps
 * (lib/jobs/checkpoint-steps.ts) and what they store; replaceable behind CheckpointService.
 */
import { JobStore } from '../../lib/jobs/job-store';
import type { MetaItem, MetadataStore } from '../../lib/ports/metadata-store';
import { catalogPk } from '../../lib/ports/metadata-keys';
import { CheckpointRefusedError, JobNotRunningError } from './errors';

/** A region that did not complete a checkpoint, and what it falls back to. */
export interface FailedRegionItem {
  regionId: string;
  /** declined, task-failed, timeout, unavailable, no-live-source. */
  reason: string;
  message?: string;
  /** The subtask that failed it, when one did. */
  subtask?: string;
  /** The checkpoint the region restores from instead (null: none yet, it starts fresh). */
  fallback: number | null;
}

export interface CheckpointHistoryItem {
  checkpointId: number;
  /** pending (triggered, not decided), completed, failed. */
  status: string;
  /** regional: a failed region fails only itself; global: the whole checkpoint. */
  handle?: string;
  triggerTime?: number;
  endTime?: number;
  /** Pending: when it times out. */
  deadline?: number;
  durationMs?: number;
  regionsTotal?: number;
  participating?: number;
  completedRegions?: number;
  failedRegionCount?: number;
  reason?: string;
  message?: string;
  bytesWritten?: number;
  bytesKept?: number;
  manifestKey?: string;
  /**
   * The regions that did not complete it (at most 200 stored). Every other region of a completed
   * checkpoint completed it; of a failed one, none is kept.
   */
  failedRegions?: FailedRegionItem[];
}

export interface CheckpointService {
  /** Starts a checkpoint of a running job now. */
  trigger(jobId: string): Promise<{ checkpointId: number }>;
  /** The job's checkpoints, oldest first (pending ones included). */
  history(jobId: string): Promise<CheckpointHistoryItem[]>;
}

/** Input and result of the coordinator's steps (the state machine's contract, see functions/checkpoint-coordinator.ts). */
export interface CheckpointStepInput {
  jobId: string;
  checkpointId?: number | null;
}
export interface CheckpointStepResult {
  jobId: string;
  checkpointId: number | null;
  done: boolean;
  outcome?: string;
  message?: string;
  waitSeconds?: number;
}

/** The four coordinator steps (lib/jobs/checkpoint-steps.ts CheckpointSteps has this shape). */
export interface CheckpointWorkflowSteps {
  trigger(input: CheckpointStepInput): Promise<CheckpointStepResult>;
  poll(input: CheckpointStepInput): Promise<CheckpointStepResult>;
  finalize(input: CheckpointStepInput): Promise<CheckpointStepResult>;
  notify(input: CheckpointStepInput): Promise<CheckpointStepResult>;
}

/** Pending-checkpoint markers the trigger step writes (lib/jobs/checkpoint-steps.ts PENDING_PREFIX). */
export const PENDING_SK_PREFIX = 'CKPT_PENDING#';

/**
 * Checkpoints through the coordinator's steps: `trigger` runs the trigger step (it takes the id,
 * sends the trigger to the sources and writes the pending marker), then `start`s the rest of the
 * workflow — in the cloud a Step Functions execution with { jobId, checkpointId }, whose Trigger
 * state passes a given id through; locally the same poll/finalize/notify steps in this process.
 * `history` reads what the coordinator stores: the finalized entries `CKPT#<12-digit id>` of
 * pk `JOB#<jobId>#CKPT` and the pending markers `CKPT_PENDING#<id>`.
 */
export class StepsCheckpointService implements CheckpointService {
  constructor(
    private readonly deps: {
      jobs: JobStore;
      metadata: MetadataStore;
      steps: CheckpointWorkflowSteps;
      /** Runs the rest of the workflow (poll, finalize, notify) for a triggered checkpoint. */
      start?: (jobId: string, checkpointId: number) => Promise<void>;
    },
  ) {}

  async trigger(jobId: string): Promise<{ checkpointId: number }> {
    const job = await this.deps.jobs.getJob(jobId);
    if (job.status !== 'RUNNING') throw new JobNotRunningError(`job '${jobId}' is ${job.status}; only a running job can take a checkpoint`);
    const result = await this.deps.steps.trigger({ jobId });
    if (result.checkpointId === null || result.checkpointId === undefined) {
      if (result.outcome === 'job-not-running') throw new JobNotRunningError(`job '${jobId}' is not running: ${result.message ?? ''}`.trim());
      throw new CheckpointRefusedError(`checkpoint not started: ${result.message ?? result.outcome ?? 'refused'}`);
    }
    await this.deps.start?.(jobId, result.checkpointId);
    return { checkpointId: result.checkpointId };
  }

  async history(jobId: string): Promise<CheckpointHistoryItem[]> {
    const job = await this.deps.jobs.getJob(jobId); // 404 for an unknown job
    const read = () => Promise.all([this.deps.metadata.query(catalogPk(jobId), 'CKPT#'), this.deps.metadata.query(catalogPk(jobId), PENDING_SK_PREFIX)]);
    let [done, pending] = await read();
    if (job.status !== 'RUNNING' && pending.length > 0) {
      // The job ended with a checkpoint pending and no workflow left to decide it: decide it now
      // (finalize of an ended job fails it 'job-ended'). One that cannot be decided stays pending.
      for (const { item } of pending) await this.deps.steps.finalize({ jobId, checkpointId: Number(item.checkpointId) }).catch(() => undefined);
      [done, pending] = await read();
    }
    const byId = new Map<number, CheckpointHistoryItem>();
    for (const { sk, item } of pending) {
      const h = toHistoryItem(sk.slice(PENDING_SK_PREFIX.length), item);
      byId.set(h.checkpointId, { ...h, status: 'pending' });
    }
    for (const { sk, item } of done) {
      const h = toHistoryItem(sk.slice('CKPT#'.length), item);
      byId.set(h.checkpointId, h);
    }
    return [...byId.values()].sort((a, b) => a.checkpointId - b.checkpointId);
  }
}

/** A stored checkpoint item as a history item; tolerant of missing fields. */
function toHistoryItem(idText: string, item: MetaItem): CheckpointHistoryItem {
  const num = (k: string) => (typeof item[k] === 'number' ? (item[k] as number) : undefined);
  const str = (k: string) => (typeof item[k] === 'string' ? (item[k] as string) : undefined);
  const out: CheckpointHistoryItem = { checkpointId: num('checkpointId') ?? Number(idText), status: str('status') ?? 'unknown' };
  for (const k of ['triggerTime', 'endTime', 'deadline', 'durationMs', 'regionsTotal', 'participating', 'completedRegions', 'failedRegionCount', 'bytesWritten', 'bytesKept'] as const) {
    const v = num(k);
    if (v !== undefined) out[k] = v;
  }
  for (const k of ['handle', 'reason', 'message', 'manifestKey'] as const) {
    const v = str(k);
    if (v !== undefined) out[k] = v;
  }
  if (Array.isArray(item.failedRegions)) out.failedRegions = item.failedRegions.flatMap((f) => toFailedRegion(f));
  return out;
}

function toFailedRegion(value: unknown): FailedRegionItem[] {
  if (value === null || typeof value !== 'object') return [];
  const f = value as { [k: string]: unknown };
  if (typeof f.regionId !== 'string') return [];
  return [
    {
      regionId: f.regionId,
      reason: typeof f.reason === 'string' ? f.reason : 'unknown',
      ...(typeof f.message === 'string' ? { message: f.message } : {}),
      ...(typeof f.subtask === 'string' ? { subtask: f.subtask } : {}),
      fallback: typeof f.fallback === 'number' ? f.fallback : null,
    },
  ];
}
