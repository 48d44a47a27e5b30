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
import type { Condition, MetadataStore } from '../ports/metadata-store';
import type { Logger, MetricsSink } from '../ports/telemetry';
import { catalogPk } from '../ports/metadata-keys';
import { CheckpointDecidedError, PortCheckpointCatalog, type CheckpointDecision } from '../checkpoint/catalog';
import type { CheckpointEffect } from '../checkpoint/types';
import { LayoutIndex } from '../graph/placement';
import { CheckpointDriver, type ControlSender } from './checkpoint-driver';
import type { JobService } from './job-service';
import type { JobRecord, JobStore } from './job-store';

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

/** Longest wait between two polls of a pending checkpoint (seconds). */
export const MAX_POLL_WAIT_SECONDS = 60;

/**
 * Seconds to wait before the next poll of a checkpoint pending for `ageMs`: a quarter of its age,
 * from 1 s to MAX_POLL_WAIT_SECONDS, and never past its deadline (its timeout is decided at the
 * poll after it). Each poll reads every acknowledgement of the checkpoint and the units' attempts:
 * at P=4000 about 1,300 read units then (~47 since both got small, docs/scale.md), and a poll each
 * second made a 6-minute checkpoint cost 220-270k of them. A checkpoint that completes in seconds
 * is polled each second as before; one that takes minutes is known done within a quarter of its time.
 */
export function pollWaitSeconds(ageMs: number, untilDeadlineMs: number): number {
  const byAge = Math.min(MAX_POLL_WAIT_SECONDS, Math.max(1, Math.floor(ageMs / 4000)));
  return Math.max(1, Math.min(byAge, Math.ceil(untilDeadlineMs / 1000)));
}
export const PENDING_PREFIX = 'CKPT_PENDING#';
/** Sort key of checkpoint N's pending marker (under the catalog's partition). */
const markerSk = (id: number): string => PENDING_PREFIX + pad(id);

interface PendingMarker {
  checkpointId: number;
  triggerTime: number;
  deadline: number;
  /**
   * The task units' attempts at the trigger, in layout order (lib/graph/placement.ts): N counts
   * only their acknowledgements. A list, not a map by unit id: about 2 bytes a unit, so the marker
   * stays far below 400 KB at any parallelism.
   */
  attemptList?: number[];
  /** The same as a map (markers written before attemptList). */
  attempts?: Record<string, number>;
  /** False until the trigger was sent: a trigger step that died in between is taken over by the next. */
  sent?: boolean;
  /** Regions (null: the whole checkpoint) whose abort went out to their units: each is sent once, not every poll. */
  abortsSent?: (string | null)[];
  /** Bumped by each unit restart while N is pending (fencePendingCheckpoints): a finalize that read an older one decides again. */
  version?: number;
  /** Set by finalize once it holds N's decision: restarts from then on wait for the decision to be stored. */
  deciding?: boolean;
}

/**
 * Orders a unit restart with the finalize steps of the checkpoints pending at it. Called by the
 * failover handler after it recorded the new attempts and before it launches them. Finalize reads
 * the units' attempts, decides N and stores it; a restart in between was not seen: N's manifest
 * could name the dead attempt's snapshots for a region whose new attempt had already restored from
 * N - 1. Each pending marker's version is bumped unless its finalize holds it (`deciding`): a
 * finalize that has not taken it yet fails to, and decides again with the new attempts (their
 * region fails N); one that has taken it is waited for (a finalize stores its decision within
 * milliseconds), so the new attempts restore from N. Returns the checkpoints still deciding after
 * `waitMs` (a finalize that died holding its marker; the next trigger finalizes it).
 */
export async function fencePendingCheckpoints(metadata: MetadataStore, jobId: string, options: { waitMs?: number; pollMs?: number; clock?: Clock } = {}): Promise<number[]> {
  const clock = options.clock ?? systemClock;
  const markers = (await metadata.query(catalogPk(jobId), PENDING_PREFIX)).map((i) => i.item as unknown as PendingMarker);
  let deciding: number[] = [];
  for (const m of markers) {
    const bumped = await metadata.update(catalogPk(jobId), markerSk(m.checkpointId), { add: { version: 1 } }, [
      { attr: 'checkpointId', op: 'exists' },
      { attr: 'deciding', op: 'notExists' },
    ]);
    if (!bumped && (await metadata.get(catalogPk(jobId), markerSk(m.checkpointId)))) deciding.push(m.checkpointId);
  }
  const until = clock.now() + (options.waitMs ?? 10_000);
  while (deciding.length > 0 && clock.now() < until) {
    await clock.sleep(options.pollMs ?? 100);
    const left = await Promise.all(deciding.map((id) => metadata.get(catalogPk(jobId), markerSk(id))));
    deciding = deciding.filter((_, i) => left[i] !== undefined);
  }
  return deciding;
}

/**
 * Every step converges when run again (a Step Functions retry, a replayed execution, a second
 * execution for the same checkpoint): the decision on N is stored once (the catalog's decision
 * item) and every later step reads it back instead of deciding again.
 */
export class CheckpointSteps {
  private readonly clock: Clock;

  constructor(
    private readonly deps: {
      jobs: JobStore;
      service: JobService & ControlSender;
      metadata: MetadataStore;
      blobs: BlobStore;
      clock?: Clock;
      /** Triggers and decisions are logged here; decisions are counted in `metrics` (lib/observability). */
      logger?: Logger;
      metrics?: MetricsSink;
    },
  ) {
    this.clock = deps.clock ?? systemClock;
  }

  async trigger({ jobId }: StepInput): Promise<StepResult> {
    const job = await this.deps.service.job(jobId);
    const markers = (await this.markers(jobId)).sort((a, b) => a.checkpointId - b.checkpointId);
    if (job.status !== 'RUNNING') {
      // Nothing to trigger; a checkpoint left pending is decided ('job-ended').
      for (const m of markers) await this.finalize({ jobId, checkpointId: m.checkpointId });
      return { jobId, checkpointId: null, done: true, outcome: 'job-not-running', message: `job is ${job.status}` };
    }
    const now = this.clock.now();
    const open = markers.filter((m) => m.deadline > now);
    const unsent = open.find((m) => m.sent === false);
    if (unsent !== undefined) {
      // The trigger step that wrote it died before (or while) sending: send it now, same id.
      const driver = await this.driver(jobId, unsent.checkpointId, attemptsOf(job, unsent));
      await this.send(jobId, driver, unsent, driver.coordinator.trigger(unsent.triggerTime));
      return { jobId, checkpointId: unsent.checkpointId, done: false, outcome: 'pending', waitSeconds: 1 };
    }
    if (open.length > 0) {
      return { jobId, checkpointId: null, done: true, outcome: 'refused', message: `checkpoint ${open[0]!.checkpointId} is still pending` };
    }
    // A checkpoint whose workflow died before finalize (an execution failed or was stopped): decide
    // it now (past its deadline it times out) so its id is used up and its acks are never read as
    // those of the next checkpoint.
    for (const m of markers) await this.finalize({ jobId, checkpointId: m.checkpointId });
    const attempts = Object.fromEntries(await this.deps.jobs.unitAttempts(jobId));
    const driver = await this.driver(jobId, undefined, attempts);
    const effects = driver.coordinator.trigger(now);
    const started = effects.find((e) => e.type === 'triggerSources');
    if (started?.type !== 'triggerSources') {
      await driver.persist(effects);
      const failed = effects.find((e) => e.type === 'checkpointFinalized');
      const refused = effects.find((e) => e.type === 'triggerRefused');
      const message =
        failed?.type === 'checkpointFinalized' && failed.outcome === 'failed'
          ? `checkpoint ${failed.checkpointId} failed at its trigger: ${failed.failure.message}`
          : refused?.type === 'triggerRefused' && refused.reason === 'sources-finished'
            ? 'no checkpoint: every source has reached end of input (the rest of the job is draining)'
            : 'the coordinator refused the trigger';
      return { jobId, checkpointId: null, done: true, outcome: 'refused', message };
    }
    const id = started.checkpointId;
    // The marker before the trigger goes out: a checkpoint whose sources were told is always pending or decided.
    const marker: PendingMarker = { checkpointId: id, triggerTime: now, deadline: started.deadline, attemptList: job.units.map((u) => attempts[u.unitId] ?? 0), sent: false };
    await this.deps.metadata.put(catalogPk(jobId), markerSk(id), { ...marker });
    await this.send(jobId, driver, marker, effects);
    return { jobId, checkpointId: id, done: false, outcome: 'pending', waitSeconds: 1 };
  }

  /** Sends the trigger effects of N (sources ignore a trigger they already took) and marks it sent. */
  private async send(jobId: string, driver: CheckpointDriver, marker: PendingMarker, effects: readonly CheckpointEffect[]): Promise<void> {
    await driver.persist(effects);
    await driver.send(effects.filter((e) => e.type === 'triggerSources' && e.checkpointId === marker.checkpointId));
    await this.deps.metadata.update(catalogPk(jobId), markerSk(marker.checkpointId), { set: { sent: true } }, [{ attr: 'checkpointId', op: 'exists' }]);
  }

  async poll({ jobId, checkpointId }: StepInput): Promise<StepResult> {
    const id = requireId(checkpointId);
    const decided = await this.catalog(jobId).loadDecision(id);
    if (decided) return { jobId, checkpointId: id, done: true, outcome: decided.history.outcome.status };
    const { marker } = await this.marker(jobId, id);
    const driver = await this.driver(jobId, id, attemptsOf(await this.deps.service.job(jobId), marker));
    const effects = await this.replay(jobId, marker, driver);
    await this.sendAborts(jobId, driver, marker, effects, true);
    const finalized = effects.find((e) => e.type === 'checkpointFinalized');
    if (finalized) return { jobId, checkpointId: id, done: true, outcome: finalized.outcome };
    const now = this.clock.now();
    return { jobId, checkpointId: id, done: false, outcome: 'pending', waitSeconds: pollWaitSeconds(now - marker.triggerTime, marker.deadline - now) };
  }

  /**
   * Sends N's aborts that have not gone out yet, as the local driver does when a region fails:
   * subtasks still aligning N stop waiting (under single-point recovery, for a barrier a restarted
   * producer will never send) instead of holding their input until N's deadline. Each poll replays
   * N from the start, so the marker remembers what was sent.
   */
  private async sendAborts(jobId: string, driver: CheckpointDriver, marker: PendingMarker, effects: readonly CheckpointEffect[], remember: boolean): Promise<void> {
    const sent = new Set(marker.abortsSent ?? []);
    const aborts = effects.filter((e): e is Extract<CheckpointEffect, { type: 'abortCheckpoint' }> => e.type === 'abortCheckpoint' && e.checkpointId === marker.checkpointId && !sent.has(e.regionId));
    if (aborts.length === 0) return;
    await driver.send(aborts);
    if (!remember) return;
    const abortsSent = [...sent, ...aborts.map((e) => e.regionId)];
    await this.deps.metadata.update(catalogPk(jobId), markerSk(marker.checkpointId), { set: { abortsSent } }, [{ attr: 'checkpointId', op: 'exists' }]).catch(() => undefined);
  }

  /**
   * Persists the decision (manifest or failure) and clears the pending marker. Run again — after it
   * died anywhere in between, or by a second execution — it reads the stored decision, finishes
   * what is left (the latest pointer, the marker) and answers the same.
   */
  async finalize({ jobId, checkpointId }: StepInput): Promise<StepResult> {
    const id = requireId(checkpointId);
    const catalog = this.catalog(jobId);
    const decided = await catalog.loadDecision(id);
    if (decided) return this.finished(jobId, catalog, decided);
    let marker: PendingMarker;
    let driver: CheckpointDriver;
    let effects: CheckpointEffect[];
    for (let round = 1; ; round++) {
      // The marker before the attempts (replay reads them): a restart after this read bumps its version.
      ({ marker } = await this.marker(jobId, id));
      driver = await this.driver(jobId, id, attemptsOf(await this.deps.service.job(jobId), marker));
      effects = await this.replay(jobId, marker, driver);
      if (!effects.some((e) => e.type === 'checkpointFinalized')) return { jobId, checkpointId: id, done: false, outcome: 'pending', message: 'not decided yet' };
      // Take the marker at the version read: a unit restarted since then (fencePendingCheckpoints)
      // makes this fail, and N is decided again with its new attempt.
      const version: Condition = marker.version === undefined ? { attr: 'version', op: 'notExists' } : { attr: 'version', op: '=', value: marker.version };
      const held = await this.deps.metadata.update(catalogPk(jobId), markerSk(id), { set: { deciding: true } }, [{ attr: 'checkpointId', op: 'exists' }, version]);
      if (held) break;
      const stored = await catalog.loadDecision(id);
      if (stored) return this.finished(jobId, catalog, stored);
      if (round >= 5) throw new Error(`checkpoint ${id} of job '${jobId}': units kept restarting while it was being finalized (${round} tries)`);
    }
    const finalized = effects.find((e) => e.type === 'checkpointFinalized')!;
    try {
      await driver.persist(effects);
    } catch (e) {
      // Decided meanwhile by another run of this step: that decision stands.
      if (e instanceof CheckpointDecidedError) return this.finished(jobId, catalog, e.decision);
      throw e;
    }
    await this.sendAborts(jobId, driver, marker, effects, false);
    await this.deps.metadata.delete(catalogPk(jobId), markerSk(id));
    return { jobId, checkpointId: id, done: true, outcome: finalized.outcome, ...(finalized.outcome === 'failed' ? { message: finalized.failure.message } : {}) };
  }

  private async finished(jobId: string, catalog: PortCheckpointCatalog, d: CheckpointDecision): Promise<StepResult> {
    await catalog.rollForward(d);
    await this.deps.metadata.delete(catalogPk(jobId), markerSk(d.checkpointId));
    const o = d.history.outcome;
    return { jobId, checkpointId: d.checkpointId, done: true, outcome: o.status, ...(o.status === 'failed' ? { message: o.message } : {}) };
  }

  /**
   * Tells the regions that completed N (by N's own manifest); their sinks commit. Safe to repeat
   * (commits are idempotent, and a subtask commits only what it staged up to N).
   */
  async notify({ jobId, checkpointId }: StepInput): Promise<StepResult> {
    const id = requireId(checkpointId);
    const catalog = this.catalog(jobId);
    const decided = await catalog.loadDecision(id);
    if (!decided || decided.history.outcome.status !== 'completed') return { jobId, checkpointId: id, done: true, outcome: 'failed', message: `checkpoint ${id} has no manifest` };
    const manifest = await catalog.manifestOf(decided);
    // Retired already: a later checkpoint completed, and its notify commits everything up to it.
    if (!manifest) return { jobId, checkpointId: id, done: true, outcome: 'completed', message: `checkpoint ${id} was superseded by a later one` };
    const job = await this.deps.service.job(jobId);
    const layout = new LayoutIndex(job);
    for (const region of manifest.regions) {
      if (region.restoreFrom !== id) continue;
      const subtasks = region.subtasks.map((s) => s.subtask);
      const units = [...new Set(subtasks.flatMap((s) => layout.unitOf(s)?.unitId ?? []))];
      await this.deps.service.sendControl(job, units, { type: 'checkpointComplete', checkpointId: id, subtasks });
    }
    return { jobId, checkpointId: id, done: true, outcome: 'completed' };
  }

  /** N replayed from what is stored, with the units' attempts now and whether the job still runs. */
  private async replay(jobId: string, marker: PendingMarker, driver?: CheckpointDriver): Promise<CheckpointEffect[]> {
    const [job, now] = await Promise.all([this.deps.service.job(jobId), this.deps.jobs.unitAttempts(jobId).then((m) => Object.fromEntries(m))]);
    const d = driver ?? (await this.driver(jobId, marker.checkpointId, attemptsOf(job, marker)));
    return d.replay(marker.checkpointId, marker.triggerTime, {
      unitAttempts: now,
      ...(job.status !== 'RUNNING' ? { jobEnded: `the job was ${job.status}${job.error ? ` (${job.error})` : ''}` } : {}),
    });
  }

  private catalog(jobId: string): PortCheckpointCatalog {
    return new PortCheckpointCatalog(jobId, this.deps.metadata, this.deps.blobs);
  }

  private async driver(jobId: string, nextCheckpointId?: number, unitAttempts?: Record<string, number>): Promise<CheckpointDriver> {
    const job = await this.deps.service.job(jobId);
    const graph = await this.deps.service.graphOf(jobId);
    return CheckpointDriver.create({
      job,
      graph,
      metadata: this.deps.metadata,
      blobs: this.deps.blobs,
      control: this.deps.service,
      clock: this.clock,
      ...(this.deps.logger ? { logger: this.deps.logger } : {}),
      ...(this.deps.metrics ? { metrics: this.deps.metrics } : {}),
      // Markers written before attempts were recorded: attempts unknown, every acknowledgement counts.
      unitAttempts: unitAttempts ?? {},
      ...(nextCheckpointId !== undefined ? { nextCheckpointId } : {}),
    });
  }

  private async markers(jobId: string): Promise<PendingMarker[]> {
    return (await this.deps.metadata.query(catalogPk(jobId), PENDING_PREFIX)).map((i) => i.item as unknown as PendingMarker);
  }

  private async marker(jobId: string, checkpointId: number | null | undefined): Promise<{ id: number; marker: PendingMarker }> {
    const id = requireId(checkpointId);
    const item = await this.deps.metadata.get(catalogPk(jobId), markerSk(id));
    if (!item) throw new Error(`checkpoint ${id} of job '${jobId}' is not pending`);
    return { id, marker: item as unknown as PendingMarker };
  }
}

/** The attempts a marker recorded, by unit id (undefined: a marker from before attempts were recorded). */
function attemptsOf(job: JobRecord, marker: PendingMarker): Record<string, number> | undefined {
  if (marker.attemptList) {
    if (marker.attemptList.length !== job.units.length) throw new Error(`checkpoint ${marker.checkpointId} of job '${job.jobId}': its marker lists ${marker.attemptList.length} unit attempts, the job has ${job.units.length} units`);
    return Object.fromEntries(job.units.map((u, i) => [u.unitId, marker.attemptList![i]!]));
  }
  return marker.attempts;
}

function requireId(checkpointId: number | null | undefined): number {
  if (typeof checkpointId !== 'number') throw new Error('checkpointId is required');
  return checkpointId;
}
