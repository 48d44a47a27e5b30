/**
 * Recovery metrics: one record per failure event, in the metadata store, listable by the API/CLI.
 *
 *   pk JOB#<jobId>   sk FAILURE#<seq, 8 digits>          the event (see FailureEvent)
 *   pk JOB#<jobId>   sk FAILURESEQ                        counter that numbers the events
 *   pk JOB#<jobId>   sk RECOVERY#<unitId>#<attempt>       pointer: this restarted attempt belongs to event <seq>
 *
 * Events and pointers expire a week after the failure (FAILURE_TTL_SECONDS, the table's TTL).
 *
 * Timeline of an event: failedAt (exit time, or last heartbeat of a stale unit) -> detectedAt (the
 * supervisor saw it) -> restartedAt (every new attempt launched) -> availableAgainAt (the restarted
 * unit restored its state and announced itself; for region/full: the last restarted unit did).
 *
 * Counters: `recordsDropped` is the sum, over the producer subtasks of the sub-partitions marked
 * unavailable, of their drop counters' growth since detection (as reported in unit heartbeats); it
 * is final once every such producer has heartbeated `settleMs` after availableAgainAt. With two
 * outages at once that share producers, the drops of both are counted in each. `recordsProcessed`
 * is the growth of records read by every subtask that did not restart, from detection until
 * available again. Both come from heartbeat counters, so they lag by up to one heartbeat.
 */
import type { Clock } from '../ports/clock';
import { systemClock } from '../ports/clock';
import type { MetaItem, MetadataStore } from '../ports/metadata-store';
import { FAILURE_TTL_SECONDS, TTL_ATTRIBUTE, expiresAt } from '../ports/metadata-keys';
import type { ExecutionGraph } from '../graph/execution-graph';
import { producersOfAll, subtaskId } from '../graph/execution-graph';
import type { JobView } from '../jobs/job-service';
import type { FailoverStrategy, JobRecord } from '../jobs/job-store';
import type { UnitFailure } from '../jobs/supervisor';
import { subPartitionKey } from './availability';
import { mapWithConcurrency } from '../util/concurrency';
import type { FailoverPlan } from './failover-planner';

export type FailureEventStatus =
  /** Restart under way; the failed part of the job is not back yet. */
  | 'RECOVERING'
  /** Available again; the drop counters may still grow until the producers got the notice. */
  | 'AVAILABLE'
  /** Final: counters settled. */
  | 'CLOSED'
  /** The unit failed too often; the job was failed instead of restarted. */
  | 'GAVE_UP'
  /** A unit it restarted failed again before it was back: a later event (`supersededBy`) goes on with the outage. */
  | 'SUPERSEDED';

export interface FailureEvent {
  jobId: string;
  seq: number;
  unitId: string;
  subtasks: string[];
  /** The attempt that failed. */
  attempt: number;
  /** Units that failed at the same time and were recovered by the same failover. */
  alsoFailed?: { unitId: string; attempt: number; reason: string; failedAt: number }[];
  /** The failed unit's new attempt (null: not restarted). */
  newAttempt: number | null;
  strategy: FailoverStrategy;
  reason: string;
  failedAt: number;
  detectedAt: number;
  restartedAt: number | null;
  availableAgainAt: number | null;
  /** When the failed unit itself was back (for single* the same as availableAgainAt). */
  failedUnitAvailableAt: number | null;
  /** detectedAt - failedAt. */
  detectionMs: number;
  /** availableAgainAt - (outageStartedAt ?? failedAt). */
  recoveryMs: number | null;
  unitsRestarted: number;
  /** The restarted units (the first 100). */
  restartedUnits: string[];
  /** Restarted units not yet back. */
  pendingUnits: number;
  /** Sub-partitions marked unavailable, as `edgeId/consumer` (the first 100). */
  unavailable: string[];
  unavailableCount: number;
  /** Checkpoint the failed unit's first subtask restores from (null: fresh). */
  restoreFrom: number | null;
  recordsDropped: number;
  recordsProcessed: number;
  status: FailureEventStatus;
  closedAt: number | null;
  /** Earlier events whose restarts this one replaced before they were back (one outage). */
  supersedes?: number[];
  supersededBy?: number;
  /** When the outage began: the earliest failure of the events it supersedes (else failedAt); recoveryMs counts from here. */
  outageStartedAt?: number;
  /** A subtask that failed inside its unit and was restarted there alone (the unit kept its attempt): its new attempt. */
  subtaskRestart?: { subtask: string; attempt: number };
}

const LIST_LIMIT = 100;

/** A stored event without its expiry attribute. */
function eventOf(item: MetaItem): FailureEvent {
  const { [TTL_ATTRIBUTE]: _ttl, ...event } = item;
  return event as unknown as FailureEvent;
}
const jobPk = (jobId: string) => `JOB#${jobId}`;
export const failureSk = (seq: number): string => `FAILURE#${String(seq).padStart(8, '0')}`;
const pointerSk = (unitId: string, attempt: number) => `RECOVERY#${unitId}#${attempt}`;

interface Baseline {
  /** Producer subtasks of the unavailable sub-partitions and their drop counters at detection. */
  dropped: Map<string, number>;
  /** Units hosting those producers: the event closes once each has heartbeated after recovery. */
  producerUnits: Set<string>;
  /** Subtasks that did not restart and their records-in at detection. */
  processed: Map<string, number>;
  processedFrozen: boolean;
}

export interface BeginInput {
  job: JobRecord;
  failure: UnitFailure;
  /** Other failures recovered by the same failover. */
  alsoFailed?: readonly UnitFailure[];
  /** The plan carried out; undefined when the job gives up instead. */
  plan?: FailoverPlan;
  graph?: ExecutionGraph;
  /** The supervisor's view at detection: the counters' baseline. */
  view?: JobView;
  status?: FailureEventStatus;
  /** The event's number and the earlier events it supersedes, taken ahead (`reserve`) while the failover did other work. */
  reserved?: Promise<Reservation>;
}

/** What an event needs from the store before it is written: its number, and the earlier events its restarts supersede. */
export interface Reservation {
  seq: number;
  /** Per unit restarted, the event that launched the attempt now replaced, if that attempt has not come back. */
  pending: ReadonlyMap<string, number>;
}

export class RecoveryMetrics {
  private readonly clock: Clock;
  private readonly settleMs: number;
  private readonly baselines = new Map<string, Baseline>();
  /** Open events per job known to this instance (seq list). */
  private readonly open = new Map<string, Set<number>>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly metadata: MetadataStore,
    options: { clock?: Clock; settleMs?: number } = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.settleMs = options.settleMs ?? 1000;
  }

  /**
   * Numbers an event ahead of its writing and reads what it supersedes: restarted attempts of
   * earlier events that are not back yet (those events are superseded, and this one carries on
   * their outage: its recovery time counts from their first failure). A failover takes it while it
   * bumps the attempts, so neither waits for the other; a number taken by a failover that then
   * found itself superseded is left unused (event numbers may skip).
   */
  async reserve(jobId: string, restarts: FailoverPlan['restarts']): Promise<Reservation> {
    const [counter, pointers] = await Promise.all([
      this.metadata.update(jobPk(jobId), 'FAILURESEQ', { add: { next: 1 } }),
      mapWithConcurrency(restarts, 32, async (r) => (r.previousAttempt > 0 ? this.metadata.get(jobPk(jobId), pointerSk(r.unitId, r.previousAttempt)) : undefined)),
    ]);
    const pending = new Map<string, number>();
    restarts.forEach((r, i) => {
      const pointer = pointers[i];
      if (pointer !== undefined) pending.set(r.unitId, Number(pointer.seq));
    });
    return { seq: Number(counter!.next), pending };
  }

  /** Records a failure event and the pointers of its restarted attempts; returns it. */
  async begin(input: BeginInput): Promise<FailureEvent> {
    const { job, failure, plan } = input;
    const restarts = plan?.restarts ?? [];
    const reservation = await (input.reserved ?? this.reserve(job.jobId, restarts));
    const seq = reservation.seq;
    const failedRestart = restarts.find((r) => r.unitId === failure.unitId);
    const event: FailureEvent = {
      jobId: job.jobId,
      seq,
      unitId: failure.unitId,
      subtasks: [...failure.subtasks],
      attempt: failure.attempt,
      ...(input.alsoFailed?.length
        ? { alsoFailed: input.alsoFailed.map((f) => ({ unitId: f.unitId, attempt: f.attempt, reason: f.reason, failedAt: f.failedAt })) }
        : {}),
      newAttempt: failedRestart?.attempt ?? null,
      strategy: plan?.strategy ?? job.settings.failover,
      reason: failure.reason,
      failedAt: failure.failedAt,
      detectedAt: failure.detectedAt,
      restartedAt: null,
      availableAgainAt: null,
      failedUnitAvailableAt: null,
      detectionMs: failure.detectedAt - failure.failedAt,
      recoveryMs: null,
      unitsRestarted: restarts.length,
      restartedUnits: restarts.slice(0, LIST_LIMIT).map((r) => r.unitId),
      pendingUnits: restarts.length,
      unavailable: (plan?.unavailable ?? []).slice(0, LIST_LIMIT).map(subPartitionKey),
      unavailableCount: plan?.unavailable.length ?? 0,
      restoreFrom: restoreCheckpoint(failedRestart?.restore[0]),
      recordsDropped: 0,
      recordsProcessed: 0,
      status: input.status ?? (plan ? 'RECOVERING' : 'GAVE_UP'),
      closedAt: null,
    };
    // Without a plan (a give-up) nothing restarts and nothing is superseded.
    const superseded = [...new Set(restarts.flatMap((r) => reservation.pending.get(r.unitId) ?? []))].filter((s) => s !== seq);
    if (superseded.length > 0) {
      const earlier = await mapWithConcurrency(superseded, 32, (s) =>
        this.metadata.update(jobPk(job.jobId), failureSk(s), { set: { status: 'SUPERSEDED', supersededBy: seq } }, [{ attr: 'status', op: '=', value: 'RECOVERING' }]),
      );
      const starts = earlier.filter((e): e is MetaItem => e !== undefined).map((e) => Number(e.outageStartedAt ?? e.failedAt));
      event.supersedes = superseded;
      event.outageStartedAt = Math.min(failure.failedAt, ...starts);
      await mapWithConcurrency(restarts, 32, (r) => (r.previousAttempt > 0 ? this.metadata.delete(jobPk(job.jobId), pointerSk(r.unitId, r.previousAttempt)) : Promise.resolve()));
    }
    // The event and its pointers together: a restarted attempt looks them up only once launched,
    // after this returns. Both expire (TTL): the history is read newest first with a limit.
    const ttl = { [TTL_ATTRIBUTE]: expiresAt(failure.detectedAt, FAILURE_TTL_SECONDS) };
    await Promise.all([
      this.metadata.put(jobPk(job.jobId), failureSk(seq), { ...(event as unknown as MetaItem), ...ttl }),
      mapWithConcurrency(restarts, 32, (r) => this.metadata.put(jobPk(job.jobId), pointerSk(r.unitId, r.attempt), { seq, failedUnit: r.unitId === failure.unitId, ...ttl })),
    ]);
    if (plan && input.view) {
      this.baselines.set(`${job.jobId}/${seq}`, baselineOf(plan, input.graph, job, input.view));
      let open = this.open.get(job.jobId);
      if (!open) this.open.set(job.jobId, (open = new Set()));
      open.add(seq);
    }
    return event;
  }

  /**
   * A subtask failed (an exception inside it) and its unit restarted it alone, the unit's other
   * subtasks running on (single-point strategies). One event, closed at once: nothing was marked
   * unavailable and nothing dropped (its producers replay what it had not processed), no unit
   * restarted. It counts in the failure budget like a unit's failure (FailoverHandler).
   */
  async subtaskRestarted(input: {
    jobId: string;
    unitId: string;
    attempt: number;
    subtask: string;
    subtaskAttempt: number;
    strategy: FailoverStrategy;
    reason: string;
    failedAt: number;
    restoreFrom: number | null;
  }): Promise<FailureEvent> {
    const at = this.clock.now();
    const counter = await this.metadata.update(jobPk(input.jobId), 'FAILURESEQ', { add: { next: 1 } });
    const seq = Number(counter!.next);
    const event: FailureEvent = {
      jobId: input.jobId,
      seq,
      unitId: input.unitId,
      subtasks: [input.subtask],
      attempt: input.attempt,
      newAttempt: input.attempt,
      strategy: input.strategy,
      reason: input.reason,
      failedAt: input.failedAt,
      detectedAt: input.failedAt,
      restartedAt: at,
      availableAgainAt: at,
      failedUnitAvailableAt: at,
      detectionMs: 0,
      recoveryMs: at - input.failedAt,
      unitsRestarted: 0,
      restartedUnits: [],
      pendingUnits: 0,
      unavailable: [],
      unavailableCount: 0,
      restoreFrom: input.restoreFrom,
      recordsDropped: 0,
      recordsProcessed: 0,
      status: 'CLOSED',
      closedAt: at,
      subtaskRestart: { subtask: input.subtask, attempt: input.subtaskAttempt },
    };
    await this.metadata.put(jobPk(input.jobId), failureSk(seq), event as unknown as MetaItem);
    return event;
  }

  /** The checkpoint the failed unit restores from, once the manifest was read (the event was begun without it). */
  async restoredFrom(jobId: string, seq: number, plan: FailoverPlan, unitId: string): Promise<void> {
    const restoreFrom = restoreCheckpoint(plan.restarts.find((r) => r.unitId === unitId)?.restore[0]);
    if (restoreFrom === null) return;
    await this.metadata.update(jobPk(jobId), failureSk(seq), { set: { restoreFrom } }, [{ attr: 'seq', op: '=', value: seq }]);
  }

  /** Every new attempt of the event was launched. */
  async restarted(jobId: string, seq: number, at = this.clock.now()): Promise<void> {
    await this.metadata.update(jobPk(jobId), failureSk(seq), { set: { restartedAt: at } }, [{ attr: 'seq', op: '=', value: seq }]);
  }

  /**
   * A restarted attempt has restored its state and is available again (called from
   * `announceAvailable`). Returns the event when this attempt belongs to one.
   */
  async unitAvailable(jobId: string, unitId: string, attempt: number, at = this.clock.now()): Promise<FailureEvent | undefined> {
    const pk = jobPk(jobId);
    const pointer = await this.metadata.get(pk, pointerSk(unitId, attempt));
    if (!pointer) return undefined;
    const seq = Number(pointer.seq);
    const set: MetaItem = pointer.failedUnit === true ? { failedUnitAvailableAt: at } : {};
    let item = await this.metadata.update(pk, failureSk(seq), { set, add: { pendingUnits: -1 } }, [{ attr: 'pendingUnits', op: '>', value: 0 }]);
    await this.metadata.delete(pk, pointerSk(unitId, attempt));
    if (item && Number(item.pendingUnits) === 0) {
      const failedAt = Number(item.outageStartedAt ?? item.failedAt);
      item = await this.metadata.update(pk, failureSk(seq), {
        set: { availableAgainAt: at, recoveryMs: at - failedAt, status: 'AVAILABLE' },
      }, [{ attr: 'status', op: '=', value: 'RECOVERING' }]) ?? item;
    }
    return item && eventOf(item);
  }

  /**
   * Updates the counters of the job's open events from a supervisor view and closes the ones that
   * have settled. Call it from the supervisor's `onProgress` and once more with the final view.
   */
  observe(view: JobView): Promise<FailureEvent[]> {
    const run = this.chain.then(() => this.observeNow(view));
    this.chain = run.catch(() => undefined);
    return run;
  }

  async list(jobId: string): Promise<FailureEvent[]> {
    return (await this.metadata.query(jobPk(jobId), 'FAILURE#')).map(({ item }) => eventOf(item));
  }

  async get(jobId: string, seq: number): Promise<FailureEvent | undefined> {
    const item = await this.metadata.get(jobPk(jobId), failureSk(seq));
    return item && eventOf(item);
  }

  private async observeNow(view: JobView): Promise<FailureEvent[]> {
    const jobId = view.job.jobId;
    const open = this.open.get(jobId);
    if (!open || open.size === 0) return [];
    const updated: FailureEvent[] = [];
    for (const seq of [...open]) {
      const event = await this.get(jobId, seq);
      const baseline = this.baselines.get(`${jobId}/${seq}`);
      if (!event || !baseline || event.status === 'CLOSED' || event.status === 'GAVE_UP' || event.status === 'SUPERSEDED') {
        open.delete(seq);
        continue;
      }
      const { dropped, processed } = measure(view, baseline);
      const set: MetaItem = { recordsDropped: dropped };
      if (!baseline.processedFrozen) set.recordsProcessed = processed;
      const available = event.availableAgainAt !== null;
      if (available) baseline.processedFrozen = true;
      const settled = available && (view.job.status !== 'RUNNING' || producersReportedAfter(view, baseline.producerUnits, event.availableAgainAt! + this.settleMs));
      if (settled) {
        set.status = 'CLOSED';
        set.closedAt = this.clock.now();
      }
      const changed = settled || set.recordsDropped !== event.recordsDropped || (set.recordsProcessed !== undefined && set.recordsProcessed !== event.recordsProcessed);
      if (changed) {
        const item = await this.metadata.update(jobPk(jobId), failureSk(seq), { set });
        if (item) updated.push(eventOf(item));
      }
      if (settled) {
        open.delete(seq);
        this.baselines.delete(`${jobId}/${seq}`);
      }
    }
    return updated;
  }
}

function restoreCheckpoint(point: FailoverPlan['restarts'][number]['restore'][number] | undefined): number | null {
  return point && point.from !== 'fresh' ? point.checkpointId : null;
}

function baselineOf(plan: FailoverPlan, graph: ExecutionGraph | undefined, job: JobRecord, view: JobView): Baseline {
  const producers = new Set<string>();
  if (plan.unavailable.length > 0) {
    if (!graph) throw new Error('recovery metrics need the execution graph to count the drops of a single-point recovery');
    const tasks = new Map(graph.tasks.map((t) => [t.id, t]));
    const edges = new Map(graph.edges.map((e) => [e.id, e]));
    const consumers = new Map<string, number[]>();
    for (const sp of plan.unavailable) {
      const list = consumers.get(sp.edgeId);
      if (list) list.push(sp.consumer);
      else consumers.set(sp.edgeId, [sp.consumer]);
    }
    for (const [edgeId, of] of consumers) {
      const edge = edges.get(edgeId)!;
      for (const p of producersOfAll(edge, of, tasks.get(edge.from)!.parallelism)) producers.add(subtaskId(edge.from, p));
    }
  }
  const producerUnits = new Set<string>();
  for (const u of job.units) if (u.subtasks.some((s) => producers.has(s))) producerUnits.add(u.unitId);
  const restarted = new Set(plan.restarts.flatMap((r) => r.subtasks));
  const dropped = new Map<string, number>();
  const processed = new Map<string, number>();
  for (const s of producers) dropped.set(s, 0);
  for (const unit of view.units) {
    for (const [id, stats] of Object.entries(unit.stats ?? {})) {
      if (producers.has(id)) dropped.set(id, stats.dropped);
      if (!restarted.has(id)) processed.set(id, stats.recordsIn);
    }
  }
  // Subtasks not yet reporting count from 0.
  for (const u of job.units) for (const s of u.subtasks) if (!restarted.has(s) && !processed.has(s)) processed.set(s, 0);
  return { dropped, producerUnits, processed, processedFrozen: false };
}

/** Growth of a counter; a counter that went down was reset by a restart and counts from 0. */
const growth = (now: number, base: number) => (now >= base ? now - base : now);

function measure(view: JobView, baseline: Baseline): { dropped: number; processed: number } {
  let dropped = 0;
  let processed = 0;
  for (const unit of view.units) {
    for (const [id, stats] of Object.entries(unit.stats ?? {})) {
      const d = baseline.dropped.get(id);
      if (d !== undefined) dropped += growth(stats.dropped, d);
      const p = baseline.processed.get(id);
      if (p !== undefined) processed += growth(stats.recordsIn, p);
    }
  }
  return { dropped, processed };
}

function producersReportedAfter(view: JobView, units: Set<string>, after: number): boolean {
  for (const u of view.units) {
    if (!units.has(u.unitId)) continue;
    if (u.status === 'FINISHED' || u.status === 'FAILED' || u.status === 'CANCELLED') continue;
    if (u.heartbeatAt < after) return false;
  }
  return true;
}
