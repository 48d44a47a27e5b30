import { resolveCheckpointConfig } from './config';
import { RegionFailureManager } from './failure-manager';
import { PendingCheckpoint } from './pending';
import { CheckpointPlanner, R_COMPLETED, R_FAILED, R_UNDECIDED, S_FINISHED, S_WAITING } from './plan';
import { historyEntry, CheckpointStatsTracker } from './stats';
import { CompletedCheckpointStore } from './store';
import { CheckpointTopology } from './topology';
import {
  MANIFEST_FORMAT,
  type CheckpointConfig,
  type CheckpointEffect,
  type CheckpointFailure,
  type CheckpointManifest,
  type CheckpointTopologyInput,
  type ManifestRegion,
  type RegionFailure,
  type RegionFailureRecord,
  type ResolvedCheckpointConfig,
  type SnapshotHandle,
  type SubtaskId,
} from './types';

export interface CoordinatorOptions {
  config: CheckpointConfig;
  topology: CheckpointTopologyInput;
  /** Completed checkpoints read back from the catalog (any order); the latest gives the restore points. */
  restored?: readonly CheckpointManifest[];
  /** First checkpoint id to use (default: latest restored + 1, or 1). */
  nextCheckpointId?: number;
  /**
   * Each region's consecutive failed checkpoints before `nextCheckpointId`: the newest history
   * entry's `consecutiveFailures` (missing regions: 0). Ids of regions the topology does not have
   * are ignored, since nothing of theirs can be judged.
   */
  consecutiveFailures?: Readonly<Record<string, number>>;
  /**
   * The attempt each subtask runs now (its task unit's attempt; missing: unknown). A checkpoint
   * counts only acknowledgements of the attempt its subtask ran at the trigger.
   */
  attempts?: Readonly<Record<SubtaskId, number>>;
}

const NONE: readonly CheckpointEffect[] = Object.freeze([]);

function checkAttempt(subtask: SubtaskId, attempt: number): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`attempt of subtask ${subtask} must be a whole number >= 0, got ${attempt}`);
  return attempt;
}

/** Keys of `state` that `original` does not have. */
function keysNotIn(state: readonly SnapshotHandle[], original: readonly SnapshotHandle[] | undefined): string[] {
  const known = new Set(original?.map((h) => h.key));
  return state.filter((h) => !known.has(h.key)).map((h) => h.key);
}

/**
 * The checkpoint coordinator: composes the plan, the pending checkpoints, the failure manager,
 * the completed checkpoint store and the stats. Pure and effect-based: every call takes `now` and
 * returns what must be done, in order. It has no timers; call `tick(now)` at `nextDeadline()`.
 *
 * Rules (see docs/checkpoints.md):
 * - Checkpoints finalize in id order. A completed checkpoint's manifest comes out as a
 *   `checkpointFinalized` effect, and the `notifyComplete` effects for it follow that effect in the
 *   same list: notifies happen only after the manifest is persisted, never before N is finalized.
 * - A checkpoint that fails as a whole is decided at once (fail fast): its snapshots are discarded,
 *   its slot freed; only its consecutive-failure counting waits for the older checkpoints.
 * - The consecutive-failure counters go out in the history entries and come back through
 *   `consecutiveFailures`: a coordinator rebuilt from the catalog judges the limit as one that
 *   lived on would.
 */
export class CheckpointCoordinator {
  readonly config: ResolvedCheckpointConfig;
  readonly topology: CheckpointTopology;
  readonly store: CompletedCheckpointStore;
  readonly stats: CheckpointStatsTracker;
  private readonly planner: CheckpointPlanner;
  private readonly failures: RegionFailureManager;
  /** Triggered and not yet retired from this list (in id order); aborted ones stay until oldest. */
  private readonly pending: PendingCheckpoint[] = [];
  /** Pending checkpoints not failed as a whole: they hold a concurrency slot. */
  private active = 0;
  private queue = 0;
  private nextId: number;
  private minDeadline = Infinity;
  /** Each region's entry in the latest manifest (undefined: none yet). */
  private readonly restoreEntries: (ManifestRegion | undefined)[];
  private out: CheckpointEffect[] | null = null;
  /** The attempt each subtask runs, as far as told (-1: unknown). */
  private readonly attempts: Int32Array;

  constructor(options: CoordinatorOptions) {
    this.config = resolveCheckpointConfig(options.config);
    this.topology = new CheckpointTopology(options.topology.regions);
    this.planner = new CheckpointPlanner(this.topology, options.topology.sources, options.topology.finished ?? []);
    this.failures = new RegionFailureManager(this.topology.regionCount, this.config);
    for (const [regionId, count] of Object.entries(options.consecutiveFailures ?? {})) {
      const r = this.topology.regionIndex(regionId);
      if (r >= 0) this.failures.restore(r, count);
    }
    this.attempts = new Int32Array(this.topology.subtaskCount).fill(-1);
    for (const [subtask, attempt] of Object.entries(options.attempts ?? {})) {
      const i = this.topology.indexOf(subtask);
      if (i >= 0) this.attempts[i] = checkAttempt(subtask, attempt);
    }
    this.store = new CompletedCheckpointStore(this.config.retained, options.restored ?? []);
    this.stats = new CheckpointStatsTracker(this.config.historySize);
    const latest = this.store.latest();
    const byId = new Map((latest?.regions ?? []).map((e) => [e.regionId, e]));
    this.restoreEntries = this.topology.regionIds.map((id) => byId.get(id));
    const minNext = (latest?.checkpointId ?? 0) + 1;
    this.nextId = options.nextCheckpointId ?? minNext;
    if (!Number.isInteger(this.nextId) || this.nextId < minNext) {
      throw new Error(`nextCheckpointId must be an integer >= ${minNext}, got ${options.nextCheckpointId}`);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Events.

  /** Start checkpoint N at the sources of every live region, or queue / refuse the trigger. */
  trigger(now: number): readonly CheckpointEffect[] {
    this.expire(now);
    if (this.active < this.config.maxConcurrent && this.queue === 0) {
      this.start(now);
      this.settle(now);
    } else if (this.config.whenBusy === 'refuse') {
      this.stats.refused();
      this.emit({ type: 'triggerRefused', reason: 'busy', pending: this.pendingCheckpoints() });
    } else if (this.queue < this.config.maxQueued) {
      this.queue++;
      this.stats.queued();
      this.emit({ type: 'triggerQueued', queued: this.queue });
    } else {
      this.stats.refused();
      this.emit({ type: 'triggerRefused', reason: 'queue-full', pending: this.pendingCheckpoints() });
    }
    return this.finish();
  }

  /**
   * A subtask snapshotted N: `state` lists the objects it wrote (empty when stateless). With
   * `attempt` (the subtask's task unit attempt that wrote it): an attempt older than the one N was
   * triggered for is a dead attempt's, and is discarded; a newer one means the subtask restarted
   * since the trigger, which fails its region for N (as `taskAttempt`).
   */
  acknowledge(subtask: SubtaskId, checkpointId: number, state: readonly SnapshotHandle[], now: number, attempt?: number): readonly CheckpointEffect[] {
    if (now >= this.minDeadline) this.expire(now);
    const i = this.topology.indexOf(subtask);
    const p = this.find(checkpointId);
    if (i < 0 || p === undefined || !this.fromTriggeredAttempt(p, i, attempt, now)) {
      this.discardLate(checkpointId, i, state);
      return this.finish();
    }
    switch (p.acknowledge(i, state)) {
      case 'accepted':
        break;
      case 'region-completed':
        if (p.decided) this.settle(now);
        break;
      case 'duplicate': {
        const extra = keysNotIn(state, p.snapshotOf(i));
        if (extra.length > 0) this.emitDiscard(checkpointId, this.topology.regionIds[this.topology.regionOf[i]!]!, extra);
        break;
      }
      case 'rejected':
        this.discardLate(checkpointId, i, state);
        break;
    }
    return this.finish();
  }

  /** A subtask could not snapshot N (`attempt`: as for `acknowledge`). */
  decline(subtask: SubtaskId, checkpointId: number, reason: string, now: number, attempt?: number): readonly CheckpointEffect[] {
    this.expire(now);
    const i = this.topology.indexOf(subtask);
    const p = this.find(checkpointId);
    if (i >= 0 && p !== undefined && !p.aborted && p.subtaskState(i) !== S_FINISHED && this.fromTriggeredAttempt(p, i, attempt, now)) {
      const r = this.topology.regionOf[i]!;
      if (p.regionState(r) === R_UNDECIDED) {
        this.failRegion(p, r, { reason: 'declined', message: `subtask ${subtask} declined checkpoint ${checkpointId}: ${reason}`, subtask }, now);
        this.settle(now);
      }
    }
    return this.finish();
  }

  /**
   * A subtask failed. Its region fails every checkpoint not yet finalized — also one it had
   * completed, since it will restart from the latest finalized manifest — and is not triggered
   * again until `taskRecovered`.
   */
  taskFailed(subtask: SubtaskId, now: number, message = 'task failed'): readonly CheckpointEffect[] {
    this.expire(now);
    const i = this.topology.indexOf(subtask);
    if (i >= 0) {
      this.planner.markDown(i);
      const r = this.topology.regionOf[i]!;
      for (const p of this.pending) {
        if (p.aborted || p.regionState(r) === R_FAILED) continue;
        this.failRegion(p, r, { reason: 'task-failed', message: `subtask ${subtask}: ${message}`, subtask }, now);
      }
      this.settle(now);
    }
    return this.finish();
  }

  /**
   * A failed subtask runs again (restored); its region takes part in the next trigger. With
   * `attempt`, the attempt it runs now (as `taskAttempt`).
   */
  taskRecovered(subtask: SubtaskId, now: number, attempt?: number): readonly CheckpointEffect[] {
    this.expire(now);
    const i = this.topology.indexOf(subtask);
    if (i >= 0) {
      if (attempt !== undefined) this.newAttempt(i, checkAttempt(subtask, attempt), now);
      this.planner.markUp(i);
      this.settle(now);
    }
    return this.finish();
  }

  /**
   * The subtask runs `attempt` now (its task unit was restarted, or this is what the unit record
   * says). A checkpoint triggered for an older attempt of it can no longer complete its region:
   * the region fails it ('task-failed'), as it restarts from the latest finalized manifest. An
   * attempt older than the one known is ignored.
   */
  taskAttempt(subtask: SubtaskId, attempt: number, now: number): readonly CheckpointEffect[] {
    this.expire(now);
    const i = this.topology.indexOf(subtask);
    if (i >= 0) {
      this.newAttempt(i, checkAttempt(subtask, attempt), now);
      this.settle(now);
    }
    return this.finish();
  }

  /**
   * The job ended (finished, failed or cancelled): every checkpoint still pending is decided now,
   * failed as a whole with reason 'job-ended', and queued triggers are dropped. No abort is sent
   * (the units are gone or going).
   */
  jobEnded(now: number, message = 'the job ended'): readonly CheckpointEffect[] {
    this.expire(now);
    this.queue = 0;
    for (const p of this.pending) {
      if (p.phase === 'pending') this.abortWhole(p, { reason: 'job-ended', message: `checkpoint ${p.id} was pending when ${message}` }, now, false);
    }
    this.settle(now);
    return this.finish();
  }

  /**
   * A subtask's bounded input ended and it finished: it is not waited for any more, except by the
   * checkpoints up to `lastCheckpoint`, the last one it took. Its acknowledgement of those is on
   * its way (written before it reported finishing, and possibly read after): counting it finished
   * there would record "finished" in place of its snapshot, and a restore from that checkpoint
   * would not rerun it, losing what it sent after the barrier. With `attempt` (the unit attempt
   * that finished), an older attempt's end is ignored and a newer one counts as its restart first.
   */
  subtaskFinished(subtask: SubtaskId, now: number, lastCheckpoint = 0, attempt?: number): readonly CheckpointEffect[] {
    this.expire(now);
    const i = this.topology.indexOf(subtask);
    if (i >= 0 && attempt !== undefined) {
      // An older attempt's end says nothing of the one running now; a newer one is a restart first.
      if (checkAttempt(subtask, attempt) < this.attempts[i]!) return this.finish();
      this.newAttempt(i, attempt, now);
      this.settle(now);
    }
    if (i >= 0 && this.planner.markFinished(i)) {
      let decided = false;
      for (const p of this.pending) if (p.id > lastCheckpoint && p.finish(i) && p.decided) decided = true;
      if (decided) this.settle(now);
    }
    return this.finish();
  }

  /** Changes which subtasks receive the trigger (e.g. when sources finished), from the next trigger on. */
  setSources(sources: readonly SubtaskId[], now: number): readonly CheckpointEffect[] {
    this.expire(now);
    this.planner.setSources(sources);
    return this.finish();
  }

  /** Lets timeouts pass (`now >= triggerTime + timeoutMs`). */
  tick(now: number): readonly CheckpointEffect[] {
    this.expire(now);
    return this.finish();
  }

  // ------------------------------------------------------------------------------------------
  // Queries.

  /** When `tick` must be called next for a timeout to pass; undefined when nothing is pending. */
  nextDeadline(): number | undefined {
    return this.minDeadline === Infinity ? undefined : this.minDeadline;
  }

  /** Ids of the checkpoints in flight (not failed as a whole, not finalized). */
  pendingCheckpoints(): number[] {
    const ids: number[] = [];
    for (const p of this.pending) if (!p.aborted) ids.push(p.id);
    return ids;
  }

  queuedTriggers(): number {
    return this.queue;
  }

  /** The id the next trigger will use. */
  peekNextCheckpointId(): number {
    return this.nextId;
  }

  latestManifest(): CheckpointManifest | undefined {
    return this.store.latest();
  }

  /** The checkpoint a region restores from now (null: none). */
  restorePoint(regionId: string): number | null {
    const r = this.topology.regionIndex(regionId);
    if (r < 0) throw new Error(`unknown region '${regionId}'`);
    return this.restoreEntries[r]?.restoreFrom ?? null;
  }

  consecutiveFailures(regionId: string): number {
    const r = this.topology.regionIndex(regionId);
    if (r < 0) throw new Error(`unknown region '${regionId}'`);
    return this.failures.consecutiveFailures(r);
  }

  // ------------------------------------------------------------------------------------------
  // Internals.

  /** Records attempt `a` of subtask `i`; fails its region in checkpoints triggered for an older one. */
  private newAttempt(i: number, a: number, now: number): void {
    const known = this.attempts[i]!;
    if (a <= known) return;
    this.attempts[i] = a;
    // A restart (not the first attempt heard of) runs from a restore point: finished there or
    // not, it says so again (`subtaskFinished`). Kept finished, later checkpoints would record
    // "finished" for a subtask that runs again, and a restore from them would not rerun it.
    if (known >= 0) this.planner.markRunning(i);
    const r = this.topology.regionOf[i]!;
    const subtask = this.topology.subtasks[i]!;
    for (const p of this.pending) {
      const expected = p.attempts[i]!;
      if (p.aborted || expected < 0 || expected >= a || p.regionState(r) === R_FAILED) continue;
      this.failRegion(p, r, { reason: 'task-failed', message: `subtask ${subtask} restarted (attempt ${expected} -> ${a}) before checkpoint ${p.id} was finalized`, subtask }, now);
    }
  }

  /**
   * Whether a message of `attempt` from subtask `i` about `p` counts: yes when either attempt is
   * unknown or they are the same. A newer attempt is also news of a restart (`newAttempt`).
   */
  private fromTriggeredAttempt(p: PendingCheckpoint, i: number, attempt: number | undefined, now: number): boolean {
    const expected = p.attempts[i]!;
    if (attempt === undefined || expected < 0 || attempt === expected) return true;
    if (attempt > expected) {
      this.newAttempt(i, attempt, now);
      this.settle(now);
    }
    return false;
  }

  private emit(effect: CheckpointEffect): void {
    (this.out ??= []).push(effect);
  }

  private finish(): readonly CheckpointEffect[] {
    const out = this.out;
    this.out = null;
    return out ?? NONE;
  }

  private find(id: number): PendingCheckpoint | undefined {
    for (const p of this.pending) if (p.id === id) return p;
    return undefined;
  }

  private emitDiscard(checkpointId: number, regionId: string | null, keys: string[]): void {
    this.emit({ type: 'discardSnapshots', checkpointId, regionId, keys });
  }

  /** A snapshot nobody will reference (late, unknown, or for a failed region): discard it. */
  private discardLate(checkpointId: number, subtask: number, state: readonly SnapshotHandle[]): void {
    if (state.length === 0) return;
    const regionId = subtask < 0 ? null : this.topology.regionIds[this.topology.regionOf[subtask]!]!;
    this.emitDiscard(checkpointId, regionId, state.map((h) => h.key));
  }

  private start(now: number): void {
    const plan = this.planner.plan();
    if (plan.triggers.length === 0 && plan.initialFailures.length > 0 && plan.initialFailures.every((f) => f.failure.reason === 'no-live-source')) {
      // Every source still running has finished (end of input) and the rest of the job drains:
      // no barrier could start. Not a failed checkpoint (its failure would count against the
      // regions); the regions' final commits cover what comes after the last one.
      this.stats.refused();
      this.emit({ type: 'triggerRefused', reason: 'sources-finished', pending: this.pendingCheckpoints() });
      return;
    }
    const p = new PendingCheckpoint(this.nextId++, now, this.config.timeoutMs, plan, this.topology, this.attempts);
    this.pending.push(p);
    this.active++;
    this.stats.triggered();
    const isHead = this.pending[0] === p;
    p.headChecked = isHead;
    if (plan.initialFailures.length > 0) {
      const failed: number[] = [];
      for (const f of plan.initialFailures) {
        p.failRegion(f.region, f.failure);
        failed.push(f.region);
      }
      const whole = this.failures.judge(p, failed, this.topology.regionIds, isHead);
      if (whole) {
        this.abortWhole(p, whole, now, false);
        return;
      }
    }
    if (plan.triggers.length > 0) {
      this.emit({ type: 'triggerSources', checkpointId: p.id, triggerTime: now, deadline: p.deadline, subtasks: plan.triggers });
    }
    if (p.deadline < this.minDeadline) this.minDeadline = p.deadline;
  }

  /** Fails one region of `p` and applies the handle and the limits. */
  private failRegion(p: PendingCheckpoint, r: number, failure: RegionFailure, now: number): void {
    if (!this.recordRegionFailure(p, r, failure)) return;
    const whole = this.failures.judge(p, [r], this.topology.regionIds, p.headChecked);
    if (whole) this.abortWhole(p, whole, now, true);
  }

  private recordRegionFailure(p: PendingCheckpoint, r: number, failure: RegionFailure): boolean {
    const keys = p.failRegion(r, failure);
    if (keys === undefined) return false;
    const regionId = this.topology.regionIds[r]!;
    if (this.config.handle === 'regional') {
      this.emit({ type: 'abortCheckpoint', checkpointId: p.id, regionId, subtasks: this.topology.regionSubtasks[r]!, reason: failure.reason });
    }
    if (keys.length > 0) this.emitDiscard(p.id, regionId, keys);
    return true;
  }

  private abortWhole(p: PendingCheckpoint, failure: CheckpointFailure, now: number, triggered: boolean): void {
    const keys = p.abort(failure, now);
    this.active--;
    if (triggered) this.emit({ type: 'abortCheckpoint', checkpointId: p.id, regionId: null, subtasks: this.topology.subtasks, reason: failure.reason });
    if (keys.length > 0) this.emitDiscard(p.id, null, keys);
    const history = historyEntry({
      checkpointId: p.id,
      handle: this.config.handle,
      triggerTime: p.triggerTime,
      endTime: now,
      failure,
      regionsTotal: this.topology.regionCount,
      participating: p.plan.participating,
      completedRegions: p.completedRegions,
      failedRegions: this.failureRecords(p),
      bytesWritten: p.bytesWritten,
      bytesKept: 0,
      consecutiveFailures: this.countersWith(p),
    });
    this.stats.record(history);
    this.emit({ type: 'checkpointFinalized', checkpointId: p.id, outcome: 'failed', failure, history });
    this.recomputeDeadline();
  }

  /**
   * The counters for the history entry of `p` (just finalized): as they stand once `p` is counted
   * along with the run of failed-as-whole checkpoints at the head that `settle` counts next.
   * Undefined when `p` failed as a whole behind a checkpoint still in flight: it cannot be counted yet.
   */
  private countersWith(p: PendingCheckpoint): Record<string, number> | undefined {
    // A completed `p` is the head and already counted.
    const start = p.aborted ? 0 : 1;
    let end = start;
    while (end < this.pending.length && this.pending[end]!.aborted) end++;
    const run = this.pending.slice(start, end);
    if (p.aborted && !run.includes(p)) return undefined;
    return this.failures.countersAfter(run, this.topology.regionIds);
  }

  private failureRecords(p: PendingCheckpoint): RegionFailureRecord[] {
    return p.failedRegions.map((r) => ({
      regionId: this.topology.regionIds[r]!,
      ...p.regionFailures.get(r)!,
      fallback: this.restoreEntries[r]?.restoreFrom ?? null,
    }));
  }

  private expire(now: number): void {
    if (now >= this.minDeadline) {
      for (const p of this.pending) if (!p.aborted && p.deadline <= now) this.timeout(p, now);
      this.recomputeDeadline();
    }
    this.settle(now);
  }

  private timeout(p: PendingCheckpoint, now: number): void {
    const t = this.topology;
    const failed: number[] = [];
    for (let r = 0; r < t.regionCount; r++) {
      if (p.regionState(r) !== R_UNDECIDED) continue;
      const waiting: SubtaskId[] = [];
      for (const i of t.regionMembers[r]!) if (p.subtaskState(i) === S_WAITING) waiting.push(t.subtasks[i]!);
      const shown = waiting.slice(0, 3).join(', ') + (waiting.length > 3 ? ` (+${waiting.length - 3} more)` : '');
      const message = `checkpoint ${p.id} timed out after ${this.config.timeoutMs} ms waiting for ${shown}`;
      this.recordRegionFailure(p, r, { reason: 'timeout', message });
      failed.push(r);
    }
    const whole = this.failures.judge(p, failed, t.regionIds, p.headChecked);
    if (whole) this.abortWhole(p, whole, now, true);
  }

  /** Finalizes what can be, oldest first, and starts queued triggers when slots free up. */
  private settle(now: number): void {
    for (;;) {
      const head = this.pending[0];
      if (head !== undefined) {
        if (head.aborted) {
          this.failures.applyFinalized(head);
          this.pending.shift();
          continue;
        }
        if (!head.headChecked) {
          head.headChecked = true;
          const whole = this.failures.judge(head, head.failedRegions, this.topology.regionIds, true);
          if (whole) {
            this.abortWhole(head, whole, now, true);
            continue;
          }
        }
        if (head.decided) {
          this.finalizeCompleted(head, now);
          this.pending.shift();
          continue;
        }
      }
      if (this.queue > 0 && this.active < this.config.maxConcurrent) {
        this.queue--;
        this.start(now);
        continue;
      }
      return;
    }
  }

  private finalizeCompleted(p: PendingCheckpoint, now: number): void {
    const t = this.topology;
    const failedRegions = this.failureRecords(p);
    const regions: ManifestRegion[] = new Array(t.regionCount);
    for (let r = 0; r < t.regionCount; r++) {
      if (p.regionState(r) === R_COMPLETED) {
        const entry = p.manifestEntry(r);
        regions[r] = entry;
        this.restoreEntries[r] = entry;
      } else {
        regions[r] = this.restoreEntries[r] ?? { regionId: t.regionIds[r]!, restoreFrom: null, subtasks: [], finished: [] };
      }
    }
    p.finalize(now);
    const manifest: CheckpointManifest = {
      format: MANIFEST_FORMAT,
      jobId: this.config.jobId,
      checkpointId: p.id,
      handle: this.config.handle,
      triggerTime: p.triggerTime,
      completedTime: now,
      regions,
    };
    this.failures.applyFinalized(p);
    const retired = this.store.add(manifest);
    this.active--;
    const history = historyEntry({
      checkpointId: p.id,
      handle: this.config.handle,
      triggerTime: p.triggerTime,
      endTime: now,
      failure: undefined,
      regionsTotal: t.regionCount,
      participating: p.plan.participating,
      completedRegions: p.completedRegions,
      failedRegions,
      bytesWritten: p.bytesWritten,
      bytesKept: p.bytesKept,
      consecutiveFailures: this.countersWith(p),
    });
    this.stats.record(history);
    this.emit({
      type: 'checkpointFinalized',
      checkpointId: p.id,
      outcome: 'completed',
      manifest,
      history,
      retained: this.store.all().map((m) => m.checkpointId),
    });
    if (retired.checkpointIds.length > 0) this.emit({ type: 'retireCheckpoints', checkpointIds: retired.checkpointIds, keys: retired.keys });
    for (let r = 0; r < t.regionCount; r++) {
      if (p.regionState(r) !== R_COMPLETED) continue;
      const subtasks = p.ackedSubtasks(r);
      if (subtasks.length > 0) this.emit({ type: 'notifyComplete', checkpointId: p.id, regionId: t.regionIds[r]!, subtasks });
    }
    this.recomputeDeadline();
  }

  private recomputeDeadline(): void {
    let min = Infinity;
    for (const p of this.pending) if (p.phase === 'pending' && !p.decided && p.deadline < min) min = p.deadline;
    this.minDeadline = min;
  }
}
