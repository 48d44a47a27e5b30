/**
 * Drives the checkpoint coordinator of one job: turns triggers, acknowledgements read from the
 * metadata store, task failures and time into coordinator events, and carries out its effects —
 * persist manifests and history, delete discarded snapshots, send triggers and "checkpoint
 * complete" to the task units' control queues.
 *
 * The local runtime keeps one driver per job; the Step Functions steps rebuild one per call
 * (`replay`), since the coordinator is a pure function of the events it was given.
 */
import { CheckpointCoordinator } from '../checkpoint/coordinator';
import { PortCheckpointCatalog } from '../checkpoint/catalog';
import { CheckpointPersistence } from '../checkpoint/persistence';
import type { CheckpointEffect, CheckpointHistoryEntry, CheckpointManifest } from '../checkpoint/types';
import type { ExecutionGraph } from '../graph/execution-graph';
import type { BlobStore } from '../ports/blob-store';
import type { Clock } from '../ports/clock';
import { systemClock } from '../ports/clock';
import type { MetadataStore } from '../ports/metadata-store';
import { CheckpointIO } from '../runtime/checkpoint-io';
import type { ControlMessage } from '../runtime/messages';
import type { JobRecord } from './job-store';

export interface ControlSender {
  sendControl(job: JobRecord, unitIds: string[], message: ControlMessage): Promise<void>;
}

export interface DriverDeps {
  job: JobRecord;
  graph: ExecutionGraph;
  metadata: MetadataStore;
  blobs: BlobStore;
  control: ControlSender;
  clock?: Clock;
  /** First checkpoint id to use (default: after the latest completed one). */
  nextCheckpointId?: number;
}

export class CheckpointDriver {
  readonly coordinator: CheckpointCoordinator;
  readonly catalog: PortCheckpointCatalog;
  private readonly io: CheckpointIO;
  private readonly persistence: CheckpointPersistence;
  private readonly clock: Clock;
  /** Acks already fed to the coordinator, per checkpoint. */
  private readonly seen = new Map<number, Set<string>>();
  private readonly unitOf = new Map<string, string>();
  readonly log: string[] = [];

  private constructor(
    private readonly deps: DriverDeps,
    restored: CheckpointManifest[],
    consecutiveFailures: Readonly<Record<string, number>> | undefined,
  ) {
    const { job, graph } = deps;
    this.clock = deps.clock ?? systemClock;
    this.catalog = new PortCheckpointCatalog(job.jobId, deps.metadata, deps.blobs);
    this.io = new CheckpointIO(job.jobId, deps.blobs, deps.metadata);
    this.persistence = new CheckpointPersistence(this.catalog, deps.blobs);
    for (const u of job.units) for (const s of u.subtasks) this.unitOf.set(s, u.unitId);
    const sources = graph.subtasks.filter((s) => graph.tasks.find((t) => t.id === s.taskId)!.inputs.length === 0).map((s) => s.id);
    const c = job.settings.checkpoint;
    this.coordinator = new CheckpointCoordinator({
      config: {
        jobId: job.jobId,
        handle: c.handle,
        timeoutMs: c.timeoutSeconds * 1000,
        maxFailedRegionRatio: c.maxFailedRegionRatio,
        maxConsecutiveRegionFailures: c.maxConsecutiveRegionFailures,
        // Refused by default: the schedule fires again; 'queue' starts it once the pending one is decided.
        whenBusy: c.whenBusy ?? 'refuse',
      },
      topology: { regions: job.regions, sources },
      restored,
      ...(deps.nextCheckpointId !== undefined ? { nextCheckpointId: deps.nextCheckpointId } : {}),
      ...(consecutiveFailures !== undefined ? { consecutiveFailures } : {}),
    });
  }

  /**
   * A driver for the job, restored from its catalog. Checkpoint ids continue after every id the
   * job has used, completed or not, so a failed checkpoint's snapshots and acks are never reused.
   * The consecutive-failure counters come from the newest history entry before the first id, so
   * `maxConsecutiveRegionFailures` holds across Step Functions steps and controller restarts (and
   * a step that replays an already persisted checkpoint does not count it twice).
   */
  static async create(deps: DriverDeps): Promise<CheckpointDriver> {
    const catalog = new PortCheckpointCatalog(deps.job.jobId, deps.metadata, deps.blobs);
    const [retained, history] = await Promise.all([catalog.loadRetained(), catalog.loadHistory()]);
    const used = Math.max(0, ...history.map((h) => h.checkpointId), ...retained.map((m) => m.checkpointId));
    const next = deps.nextCheckpointId ?? used + 1;
    let counted: CheckpointHistoryEntry | undefined;
    for (const h of history) {
      if (h.consecutiveFailures !== undefined && h.checkpointId < next && (counted === undefined || h.checkpointId > counted.checkpointId)) counted = h;
    }
    return new CheckpointDriver({ ...deps, nextCheckpointId: next }, retained, counted?.consecutiveFailures);
  }

  /** Acknowledgements (and declines) of N stored so far, oldest first. */
  acksOf(checkpointId: number) {
    return this.io.acks(checkpointId).then((acks) => acks.sort((a, b) => a.at - b.at));
  }

  /** Starts a checkpoint now; returns its id, or undefined when it was refused or queued. */
  async trigger(): Promise<number | undefined> {
    const effects = this.coordinator.trigger(this.clock.now());
    await this.apply(effects);
    const started = effects.find((e) => e.type === 'triggerSources');
    return started?.type === 'triggerSources' ? started.checkpointId : undefined;
  }

  /** Reads new acknowledgements of pending checkpoints and lets time pass (timeouts). */
  async poll(): Promise<void> {
    for (const id of this.coordinator.pendingCheckpoints()) {
      const seen = this.seen.get(id) ?? new Set<string>();
      this.seen.set(id, seen);
      for (const ack of await this.io.acks(id)) {
        if (seen.has(ack.subtask)) continue;
        seen.add(ack.subtask);
        const now = this.clock.now();
        await this.apply(
          ack.declined !== undefined
            ? this.coordinator.decline(ack.subtask, id, ack.declined, now)
            : this.coordinator.acknowledge(ack.subtask, id, ack.state, now),
        );
      }
    }
    await this.apply(this.coordinator.tick(this.clock.now()));
  }

  async taskFailed(subtasks: string[], message: string): Promise<void> {
    for (const s of subtasks) await this.apply(this.coordinator.taskFailed(s, this.clock.now(), message));
  }

  async taskRecovered(subtasks: string[]): Promise<void> {
    for (const s of subtasks) await this.apply(this.coordinator.taskRecovered(s, this.clock.now()));
  }

  async subtaskFinished(subtasks: string[]): Promise<void> {
    for (const s of subtasks) await this.apply(this.coordinator.subtaskFinished(s, this.clock.now()));
  }

  history(): Promise<CheckpointHistoryEntry[]> {
    return this.catalog.loadHistory();
  }

  /**
   * Rebuilds the coordinator's view of checkpoint N from what is stored (its trigger time and its
   * acknowledgements) and returns the effects, without carrying any out. The Step Functions steps
   * use this: each step is a fresh process, and the coordinator is a pure function of its events.
   */
  async replay(checkpointId: number, triggerTime: number): Promise<CheckpointEffect[]> {
    const effects: CheckpointEffect[] = [];
    const started = this.coordinator.trigger(triggerTime);
    if (!started.some((e) => e.type === 'triggerSources' && e.checkpointId === checkpointId)) {
      throw new Error(`checkpoint ${checkpointId} cannot be replayed: the coordinator would start ${this.coordinator.pendingCheckpoints().join(', ') || 'nothing'}`);
    }
    for (const ack of await this.acksOf(checkpointId)) {
      effects.push(
        ...(ack.declined !== undefined
          ? this.coordinator.decline(ack.subtask, checkpointId, ack.declined, ack.at)
          : this.coordinator.acknowledge(ack.subtask, checkpointId, ack.state, ack.at)),
      );
    }
    effects.push(...this.coordinator.tick(this.clock.now()));
    return effects;
  }

  /** Storage effects first (a manifest is durable before any notify), then messages to units. */
  async apply(effects: readonly CheckpointEffect[]): Promise<void> {
    if (effects.length === 0) return;
    await this.persistence.apply(effects);
    await this.send(effects);
  }

  /** Sends the triggers and "checkpoint complete" notifications among these effects. */
  async send(effects: readonly CheckpointEffect[]): Promise<void> {
    const { job, control } = this.deps;
    for (const e of effects) {
      switch (e.type) {
        case 'triggerSources':
          this.log.push(`trigger ${e.checkpointId}`);
          await control.sendControl(job, this.unitsOf(e.subtasks), { type: 'triggerCheckpoint', checkpointId: e.checkpointId, subtasks: [...e.subtasks] });
          break;
        case 'notifyComplete':
          await control.sendControl(job, this.unitsOf(e.subtasks), { type: 'checkpointComplete', checkpointId: e.checkpointId, subtasks: [...e.subtasks] });
          break;
        case 'abortCheckpoint':
          // Advisory: subtasks still aligning N stop waiting (e.g. for a dead producer's barrier).
          await control.sendControl(job, this.unitsOf(e.subtasks), { type: 'checkpointAborted', checkpointId: e.checkpointId, subtasks: [...e.subtasks] });
          break;
        case 'checkpointFinalized':
          this.seen.delete(e.checkpointId);
          this.log.push(`checkpoint ${e.checkpointId} ${e.outcome}`);
          break;
        default:
          break;
      }
    }
  }

  /** Persists finalized checkpoints and deletes discarded snapshots among these effects. */
  persist(effects: readonly CheckpointEffect[]): Promise<void> {
    return this.persistence.apply(effects);
  }

  private unitsOf(subtasks: readonly string[]): string[] {
    return [...new Set(subtasks.map((s) => this.unitOf.get(s)!))];
  }
}
