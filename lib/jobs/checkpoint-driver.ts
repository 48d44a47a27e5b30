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
import { silentLogger, type Logger, type MetricsSink } from '../ports/telemetry';
import { recordCheckpoint } from '../observability/checkpoint-metrics';
import { CheckpointIO, type AckRecord } from '../runtime/checkpoint-io';
import type { ControlMessage } from '../runtime/messages';
import { JobStore, type JobRecord } from './job-store';
import { ackShardCount } from '../ports/metadata-keys';

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
  /** The attempt of each task unit (by unit id) to start from; default: their unit records now. */
  unitAttempts?: Readonly<Record<string, number>>;
  /** Decisions and triggers are logged here (with jobId and checkpointId). */
  logger?: Logger;
  /** Each decided checkpoint's outcome, duration and size, once it is persisted. */
  metrics?: MetricsSink;
}

/** The unit records' attempts, by unit id (units without a record are left out). */
export async function readUnitAttempts(metadata: MetadataStore, jobId: string): Promise<Record<string, number>> {
  return Object.fromEntries(await new JobStore(metadata).unitAttempts(jobId));
}

/**
 * History entries a driver reads when it is built (each Step Functions step builds one): enough
 * for the newest ids and counters, without reading the job's whole history every poll.
 */
export const DRIVER_HISTORY = 16;

export interface ReplayOptions {
  /** The units' attempts now (unit records): a unit restarted since the trigger fails its region. */
  unitAttempts?: Readonly<Record<string, number>>;
  /** The job is no longer running (this says how it ended): N, if still undecided, is decided 'job-ended'. */
  jobEnded?: string;
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
  /** Decisions being stored now (see `settled`). */
  private readonly persisting = new Set<Promise<void>>();
  /** What the driver did, in order (`trigger N`, `checkpoint N completed`): tests wait on it. */
  readonly log: string[] = [];
  readonly logger: Logger;

  private constructor(
    private readonly deps: DriverDeps,
    catalog: PortCheckpointCatalog,
    restored: CheckpointManifest[],
    consecutiveFailures: Readonly<Record<string, number>> | undefined,
  ) {
    const { job, graph } = deps;
    this.clock = deps.clock ?? systemClock;
    this.logger = (deps.logger ?? silentLogger).child({ jobId: job.jobId });
    this.catalog = catalog;
    this.io = new CheckpointIO(job.jobId, deps.blobs, deps.metadata, 0, ackShardCount(graph.subtasks.length));
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
      attempts: this.subtaskAttempts(deps.unitAttempts ?? {}),
    });
  }

  /** Unit attempts as subtask attempts (what the coordinator counts acknowledgements by). */
  private subtaskAttempts(units: Readonly<Record<string, number>>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const u of this.deps.job.units) if (units[u.unitId] !== undefined) for (const s of u.subtasks) out[s] = units[u.unitId]!;
    return out;
  }

  /** Tells the coordinator which attempt each unit runs (a restarted one fails its region in pending checkpoints). */
  async unitAttempts(units: Readonly<Record<string, number>>, at = this.clock.now()): Promise<void> {
    for (const [s, a] of Object.entries(this.subtaskAttempts(units))) await this.apply(this.coordinator.taskAttempt(s, a, at));
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
    const [loaded, history, unitAttempts] = await Promise.all([
      catalog.loadRetained(),
      // The newest decisions only: what ids were used, the newest counters, a decision newer than the pointer.
      catalog.loadHistory(DRIVER_HISTORY),
      deps.unitAttempts ?? readUnitAttempts(deps.metadata, deps.job.jobId),
    ]);
    let retained = loaded;
    // A completed decision newer than the pointer: its writer died before moving the pointer.
    const latest = retained.at(-1)?.checkpointId ?? 0;
    const newest = history.filter((h) => h.outcome.status === 'completed').at(-1);
    if (newest !== undefined && newest.checkpointId > latest) {
      const decision = await catalog.loadDecision(newest.checkpointId);
      // Never point at a manifest that is not there.
      if (decision?.manifestKey !== undefined && (await deps.blobs.head(decision.manifestKey)) && (await catalog.rollForward(decision))) retained = await catalog.loadRetained();
    }
    const used = Math.max(0, ...history.map((h) => h.checkpointId), ...retained.map((m) => m.checkpointId));
    const next = deps.nextCheckpointId ?? used + 1;
    let counted: CheckpointHistoryEntry | undefined;
    for (const h of history) {
      if (h.consecutiveFailures !== undefined && h.checkpointId < next && (counted === undefined || h.checkpointId > counted.checkpointId)) counted = h;
    }
    return new CheckpointDriver({ ...deps, nextCheckpointId: next, unitAttempts }, catalog, retained, counted?.consecutiveFailures);
  }

  /** Acknowledgements (and declines) of N stored so far, oldest first. */
  acksOf(checkpointId: number) {
    return this.io.acks(checkpointId).then((acks) => acks.sort((a, b) => a.at - b.at));
  }

  /**
   * Starts a checkpoint now; returns its id, or undefined when it was refused or queued. The
   * units' attempts are read first: N counts only acknowledgements of the attempts it was
   * triggered for.
   */
  async trigger(): Promise<number | undefined> {
    await this.unitAttempts(await readUnitAttempts(this.deps.metadata, this.deps.job.jobId));
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
        const key = `${ack.subtask}#${ack.attempt ?? 0}`;
        if (seen.has(key)) continue;
        seen.add(key);
        await this.apply(this.feed(id, ack, this.clock.now()));
      }
    }
    await this.apply(this.coordinator.tick(this.clock.now()));
  }

  async taskFailed(subtasks: string[], message: string): Promise<void> {
    for (const s of subtasks) await this.apply(this.coordinator.taskFailed(s, this.clock.now(), message));
  }

  async taskRecovered(subtasks: string[], attempt?: number): Promise<void> {
    for (const s of subtasks) await this.apply(this.coordinator.taskRecovered(s, this.clock.now(), attempt));
  }

  /**
   * The job ended: decides every pending checkpoint (failed as a whole, 'job-ended'), after a last
   * look at the acknowledgements, so none stays pending in the history.
   */
  async jobEnded(message: string): Promise<void> {
    await this.poll().catch((error) => this.note(`last poll at the end: ${error instanceof Error ? error.message : String(error)}`));
    await this.persist(this.coordinator.jobEnded(this.clock.now(), message));
    // Discards buffered since the last finalized checkpoint (late acknowledgements) go now: nothing comes after.
    await this.persistence.flush();
  }

  /** One stored acknowledgement (or decline) as a coordinator event. */
  private feed(id: number, ack: AckRecord, now: number): readonly CheckpointEffect[] {
    return ack.declined !== undefined
      ? this.coordinator.decline(ack.subtask, id, ack.declined, now, ack.attempt)
      : this.coordinator.acknowledge(ack.subtask, id, ack.state, now, ack.attempt);
  }

  /** Subtasks that finished, each with the last checkpoint it took (its acknowledgement may still be unread). */
  async subtaskFinished(subtasks: readonly { subtask: string; lastCheckpoint: number; attempt?: number }[]): Promise<void> {
    for (const s of subtasks) await this.apply(this.coordinator.subtaskFinished(s.subtask, this.clock.now(), s.lastCheckpoint, s.attempt));
  }

  history(): Promise<CheckpointHistoryEntry[]> {
    return this.catalog.loadHistory();
  }

  /**
   * Rebuilds the coordinator's view of checkpoint N from what is stored (its trigger time and its
   * acknowledgements) and returns the effects, without carrying any out. The Step Functions steps
   * use this: each step is a fresh process, and the coordinator is a pure function of its events.
   */
  async replay(checkpointId: number, triggerTime: number, options: ReplayOptions = {}): Promise<CheckpointEffect[]> {
    const effects: CheckpointEffect[] = [];
    const started = this.coordinator.trigger(triggerTime);
    // Failed as a whole at its trigger (every region down, say) is a decision too.
    const known = this.coordinator.pendingCheckpoints().includes(checkpointId) || started.some((e) => e.type === 'checkpointFinalized' && e.checkpointId === checkpointId);
    if (!known) {
      throw new Error(`checkpoint ${checkpointId} cannot be replayed: the coordinator would start ${this.coordinator.pendingCheckpoints().join(', ') || 'nothing'}`);
    }
    effects.push(...started.filter((e) => e.type !== 'triggerSources'));
    // A unit restarted since the trigger: its region cannot complete N (it restarts from the
    // latest persisted manifest), whatever its dead attempt acknowledged.
    if (options.unitAttempts) {
      for (const [s, a] of Object.entries(this.subtaskAttempts(options.unitAttempts))) effects.push(...this.coordinator.taskAttempt(s, a, triggerTime));
    }
    for (const ack of await this.acksOf(checkpointId)) effects.push(...this.feed(checkpointId, ack, Math.max(ack.at, triggerTime)));
    const now = this.clock.now();
    effects.push(...this.coordinator.tick(now));
    if (options.jobEnded !== undefined) effects.push(...this.coordinator.jobEnded(now, options.jobEnded));
    return effects;
  }

  /** Storage effects first (a manifest is durable before any notify), then messages to units. */
  async apply(effects: readonly CheckpointEffect[]): Promise<void> {
    if (effects.length === 0) return;
    await this.persist(effects);
    await this.send(effects);
  }

  /** A problem the driver carries on after (a failed poll, say): kept in `log` and logged. */
  note(line: string): void {
    this.log.push(line);
    this.logger.warn(line);
  }

  /** Sends the triggers and "checkpoint complete" notifications among these effects. */
  async send(effects: readonly CheckpointEffect[]): Promise<void> {
    const { job, control } = this.deps;
    for (const e of effects) {
      switch (e.type) {
        case 'triggerSources':
          this.log.push(`trigger ${e.checkpointId}`);
          this.logger.debug(`checkpoint ${e.checkpointId} triggered at ${e.subtasks.length} source subtask(s)`, { checkpointId: e.checkpointId });
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

  /**
   * Persists finalized checkpoints and deletes discarded snapshots among these effects; a decision
   * is logged and counted once it is stored (a step that finds it decided already stores nothing).
   */
  async persist(effects: readonly CheckpointEffect[]): Promise<void> {
    const storing = this.persistence.apply(effects);
    this.persisting.add(storing);
    try {
      await storing;
    } finally {
      this.persisting.delete(storing);
    }
    for (const e of effects) {
      if (e.type === 'checkpointFinalized') recordCheckpoint(e, { jobId: this.deps.job.jobId, logger: this.logger, ...(this.deps.metrics ? { metrics: this.deps.metrics } : {}) });
    }
  }

  /**
   * Resolves once every decision taken so far is stored (or failed to be). A restart waits for it
   * before its new attempts read the latest manifest: a checkpoint the coordinator completed just
   * before the failure was applied is still being written, and restoring from the one before while
   * the old attempts commit its sink transactions would commit that output twice.
   */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.persisting]);
  }

  private unitsOf(subtasks: readonly string[]): string[] {
    return [...new Set(subtasks.map((s) => this.unitOf.get(s)!))];
  }
}
