/**
 * The failover handler: what the supervisor does with a failed task unit (its `FailureHandler`).
 *
 * single:           bump the failed unit's attempt -> mark its input sub-partitions UNAVAILABLE
 *                   with the failed attempt -> tell the producer units (availability control
 *                   messages, in chunks, stopping once the flag has moved on) -> launch the new
 *                   attempt (without waiting for the fan-out). The new attempt restores its state and
 *                   calls `announceAvailable`, which marks the sub-partitions AVAILABLE with its
 *                   attempt and tells the producer units again.
 * single-buffered,
 * single-exact:     bump -> launch; nothing is marked, producers keep writing into the queues.
 * region / full:    stop the old attempts of every unit of the plan -> bump each -> launch each.
 *
 * Every step is fenced by attempts: the bump is a conditional write (`JobStore.startUnitAttempt`),
 * so of two supervisors handling the same failure only one goes on; availability flags are
 * written with attempts as fencing tokens (see availability.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../ports/clock';
import { systemClock } from '../ports/clock';
import type { ChannelTransport } from '../ports/channels';
import type { MetadataStore } from '../ports/metadata-store';
import { silentLogger, type Logger, type MetricsSink } from '../ports/telemetry';
import { Metrics } from '../observability/metric-names';
import type { ExecutionGraph } from '../graph/execution-graph';
import type { JobView, UnitLauncher } from '../jobs/job-service';
import { isSinglePoint, UNIT_LIFECYCLE, type FailoverStrategy, type JobRecord, type JobStore, type UnitPlacement } from '../jobs/job-store';
import type { FailureHandler, UnitFailure } from '../jobs/supervisor';
import { fencePendingCheckpoints } from '../jobs/checkpoint-steps';
import { controlGroup, type ControlMessage } from '../runtime/messages';
import { AvailabilityRegistry, flagVersion, subPartitionKey, type AvailabilityMessage, type AvailabilityView, type StoredFlags, type SubPartitionRef } from './availability';
import { mapWithConcurrency } from '../util/concurrency';
import { inputSubPartitions, planFailover, producerNotices, type FailoverPlan, type ProducerNotice, type RestoreManifest } from './failover-planner';
import { RecoveryMetrics, type FailureEvent } from './recovery-metrics';

/** What the handler needs from the job service (`JobService` has all three). */
export interface FailoverService {
  sendControl(job: JobRecord, unitIds: string[], message: ControlMessage): Promise<void>;
  graphOf(jobId: string): Promise<ExecutionGraph>;
  fail(jobId: string, reason: string): Promise<void>;
}

export interface FailoverHandlerOptions {
  jobs: JobStore;
  service: FailoverService;
  launcher: UnitLauncher;
  /** Failure events are recorded here (default: a RecoveryMetrics over the job store's metadata). */
  metrics?: RecoveryMetrics;
  /** The job's latest completed checkpoint manifest (restore points); none: restart fresh. */
  latestManifest?: (jobId: string) => Promise<RestoreManifest | undefined>;
  /** Overrides the job's `settings.failover`. */
  strategy?: (job: JobRecord) => FailoverStrategy;
  /**
   * Failure budget: more than `maxFailures` unit failures (default 10) within `failureWindowMs`
   * (default 10 minutes) fail the job instead of recovering it. Only failures count: stops and
   * restarts the system makes itself never do, and a failure of an attempt already replaced is stale.
   */
  maxFailures?: number;
  failureWindowMs?: number;
  /** Calls to the store, launcher and queues in flight at once (default 32). */
  concurrency?: number;
  /** Unavailability notices go out in chunks of this many units per sub-partition (default 100). */
  noticeChunk?: number;
  clock?: Clock;
  /** Each failover and each refusal to recover are logged here (with jobId, unitId, attempt). */
  logger?: Logger;
  /** Units restarted, and failovers given up (the failure budget was used up), as metrics. */
  metricsSink?: MetricsSink;
  /**
   * Between recording the new attempts and launching them: orders the restart with the finalize
   * steps of pending checkpoints (default fencePendingCheckpoints on the job store's metadata;
   * returns the checkpoints still being decided when it gave up waiting).
   */
  fencePending?: (jobId: string) => Promise<number[]>;
}

export type FailoverStep = 'planned' | 'stopped' | 'attempts' | 'fenced' | 'unavailable' | 'notified' | 'launched';

export interface FailoverOutcome {
  status:
    /** New attempts launched. */
    | 'recovering'
    /** The failure is of an attempt already replaced: nothing done. */
    | 'stale'
    /** Another handler bumped the failed unit first: nothing more done. */
    | 'superseded'
    /** The failure budget is used up: the job was failed. */
    | 'gave-up';
  plan?: FailoverPlan;
  event?: FailureEvent;
  /** When each step ended (clock time), in order. */
  steps: { step: FailoverStep; at: number }[];
  /** Availability notices sent, per (producer unit, sub-partition); one message per producer unit and edge carries them. */
  controlMessages: number;
  /** Messages not sent because the restarted unit was available again before the fan-out got there. */
  controlMessagesSkipped?: number;
}

export class FailoverHandler {
  private readonly metrics: RecoveryMetrics;
  private readonly clock: Clock;

  constructor(private readonly options: FailoverHandlerOptions) {
    this.metrics = options.metrics ?? new RecoveryMetrics(options.jobs.metadata, { clock: options.clock });
    this.clock = options.clock ?? systemClock;
  }

  /** The supervisor hook: `new Supervisor({ ..., onFailure: handler.onFailure })`. */
  readonly onFailure: FailureHandler = async (failures, view) => {
    await this.handleAll(failures, view);
  };

  async handle(failure: UnitFailure, view: JobView): Promise<FailoverOutcome> {
    return this.handleAll([failure], view);
  }

  /**
   * Recovers from every failure given at once with one plan: units that failed together (one
   * supervision pass, a host that took several units down) restart once, a region once, from one
   * checkpoint of the manifest, each at one new attempt. A failure of an attempt that is no longer
   * the unit's current one (another failover replaced it meanwhile) is stale and ignored.
   */
  async handleAll(failures: readonly UnitFailure[], view: JobView): Promise<FailoverOutcome> {
    const { jobs, service, launcher } = this.options;
    const job = view.job;
    const steps: FailoverOutcome['steps'] = [];
    const step = (s: FailoverStep) => steps.push({ step: s, at: this.clock.now() });
    const limit = this.options.concurrency ?? 32;

    // What the plan reads, read at once: the recent failures (the budget) and the latest manifest
    // do not depend on the unit records. Attempts are read fresh: the view may predate a failover
    // that ran since it was taken.
    const recentFailures = this.metrics.list(job.jobId);
    const latest = Promise.resolve(this.options.latestManifest?.(job.jobId));
    recentFailures.catch(() => undefined); // awaited below; a failure surfaces there
    latest.catch(() => undefined);
    // Single-point strategies restart the failed units alone: their records are all the plan reads
    // (every record of a P=4000 job is 120 items of up to 41 KB). Region and full read them all.
    const strategy = this.options.strategy?.(job) ?? job.settings.failover;
    const alone = isSinglePoint(strategy);
    // A record read when the failure was raised from its exit, with no other failover around it, is not read again.
    const readAtDetection = new Map(view.units.filter((u) => failures.some((f) => f.recordFresh && f.unitId === u.unitId && f.attempt === u.attempt)).map((u) => [u.unitId, u]));
    const read = alone
      ? (await mapWithConcurrency([...new Set(failures.map((f) => f.unitId))], limit, async (id) => readAtDetection.get(id) ?? jobs.getUnit(job.jobId, id))).filter((u) => u !== undefined)
      : await jobs.getUnits(job.jobId);
    const records = new Map(read.map((u) => [u.unitId, u]));
    const byUnit = new Map<string, UnitFailure>();
    for (const f of failures) {
      const current = records.get(f.unitId)?.attempt ?? 0;
      if (current > f.attempt) continue;
      const seen = byUnit.get(f.unitId);
      if (!seen || seen.attempt < f.attempt) byUnit.set(f.unitId, f);
    }
    const live = [...byUnit.values()];
    if (live.length === 0) return { status: 'stale', steps, controlMessages: 0 };
    const [failure, ...alsoFailed] = live as [UnitFailure, ...UnitFailure[]];

    const graph = await service.graphOf(job.jobId);
    const attempts = new Map([...records.values()].map((u) => [u.unitId, u.attempt]));
    for (const f of live) attempts.set(f.unitId, Math.max(attempts.get(f.unitId) ?? 0, f.attempt));
    const planInput = { graph, units: job.units, attempts, failedUnit: failure.unitId, alsoFailed: alsoFailed.map((f) => f.unitId), strategy };

    // Single-point recovery: the producers of the failed consumers hear first. Every second they
    // do not, they send records a dead consumer will not read, and the restart must not overtake
    // the notice. Nothing of it depends on the checkpoint manifest or the failure budget; marking
    // and telling twice (a second handler of the same failure) changes nothing.
    const marking = strategy === 'single' ? this.markUnavailable(job, graph, live, step) : Promise.resolve({ notified: Promise.resolve(NO_NOTICES) });
    marking.catch(() => undefined); // awaited below; a failure surfaces there

    const log = (this.options.logger ?? silentLogger).child({ jobId: job.jobId, unitId: failure.unitId, attempt: failure.attempt });

    // Under the single-point strategies each restarted unit reads its own restore point; the
    // manifest only names it in the failure event here, and is not waited for (at P=2000, a join
    // unit killed right after a checkpoint waited 18 s for it while S3 served the sinks' commits).
    // Read later, the event gets it then.
    const manifest = alone ? await ifSettled(latest) : await latest;
    const plan = planFailover({ ...planInput, manifest });
    step('planned');

    // Old attempts that may still run are stopped first, each only at the attempt planned from: a
    // stop never reaches an attempt started after this plan was made. A unit that reported FAILED
    // has ended (stopping it would only leave a cancel in its control queue for the new attempt).
    const mayRun = (unitId: string) => {
      const status = records.get(unitId)?.status;
      return status === undefined || !UNIT_LIFECYCLE.isFinal(status);
    };
    const toStop = plan.restarts.filter((r) => mayRun(r.unitId));
    // A unit the launcher cannot kill (a Lambda invocation) stops at its next heartbeat, which the
    // bump below fences off.
    await mapWithConcurrency(toStop, limit, (r) => launcher.stop(job.jobId, r.unitId, r.previousAttempt).catch(() => undefined));
    step('stopped');

    // The failure event's number is taken while the attempts are bumped and the failure budget is
    // read: none needs another, and each is a DynamoDB call that took 0.2-2 s on the emulator at
    // P=4000 (one after another they were most of the failover). The budget decides before
    // anything is launched; a job that gives up is left with bumped attempts it never launches,
    // which its failure then marks stopped with the rest.
    const reserved = this.metrics.reserve(job.jobId, plan.restarts);
    reserved.catch(() => undefined); // awaited below; a failure surfaces there
    // Bump: the failed unit first, so a second handler of the same failure stops here.
    const [first, ...others] = plan.restarts;
    if (!(await jobs.startUnitAttempt(job.jobId, first!.unitId, first!.subtasks, first!.attempt, readAtDetection.get(first!.unitId)))) {
      await marking.then((m) => m.notified).catch(() => undefined);
      return { status: 'superseded', plan, steps, controlMessages: 0 };
    }
    const bumped = await mapWithConcurrency(others, limit, (r) => jobs.startUnitAttempt(job.jobId, r.unitId, r.subtasks, r.attempt, readAtDetection.get(r.unitId)));
    const launching = [first!, ...others.filter((_, i) => bumped[i])];
    step('attempts');

    const exhausted = this.budgetExhausted(await recentFailures, live);
    if (exhausted) {
      await marking.then((m) => m.notified).catch(() => undefined);
      const event = await this.metrics.begin({ job, failure, alsoFailed, status: 'GAVE_UP', reserved });
      await service.fail(job.jobId, exhausted);
      log.error(exhausted, { strategy, failure: event.seq });
      this.options.metricsSink?.add(Metrics.FailoverGaveUp, 1, { job: job.jobId });
      return { status: 'gave-up', event, steps, controlMessages: 0 };
    }

    // The flags are written before the new attempts are launched: an attempt's announceAvailable
    // must find them (it does not create items), and its compare-and-set on flags read during its
    // restore meets no racing mark (tried: launched at once, the two writers' retries made the
    // announce at P=1000 slower, 8.1 s against 5.5 s). The launch does not wait for the whole
    // fan-out of notices (thousands of sends at high parallelism): a producer view orders messages
    // by attempt, so an "available" of the new attempt that overtakes the "unavailable" wins anyway.
    // The failure event is recorded while the pending checkpoints are fenced: the new attempts need
    // both before they start, and neither depends on the other (each is a few DynamoDB calls).
    const fence = this.options.fencePending ?? ((jobId: string) => fencePendingCheckpoints(jobs.metadata, jobId, this.options.clock ? { clock: this.options.clock } : {}));
    const fencing = fence(job.jobId).then((deciding) => {
      step('fenced');
      return deciding;
    });
    const beginning = this.metrics.begin({ job, failure, alsoFailed, plan, graph, view, reserved });
    beginning.catch(() => undefined); // awaited below, after the fence; a failure surfaces there
    const stillDeciding = await fencing;
    if (stillDeciding.length > 0) log.warn(`checkpoint(s) ${stillDeciding.join(', ')} still being finalized after the wait: the new attempts may restore from the one before`, { checkpoints: stillDeciding });
    const { notified } = await marking;
    const event = await beginning;
    const placements = new Map(job.units.map((u) => [u.unitId, u]));
    const launched = mapWithConcurrency(launching, limit, (r) => launcher.launch(job, placements.get(r.unitId)!, r.attempt)).then(async () => {
      step('launched');
      await this.metrics.restarted(job.jobId, event.seq);
    });
    const [notices] = await Promise.all([notified, launched]);
    // Not awaited: failures are handled one after another, and the next one must not wait for it.
    if (manifest === undefined && event.restoreFrom === null) {
      void latest
        .then((named) => named && this.metrics.restoredFrom(job.jobId, event.seq, planFailover({ ...planInput, manifest: named }), failure.unitId))
        .catch(() => undefined);
    }
    const failedNames = live.map((f) => `${f.unitId} attempt ${f.attempt}`).join(', ');
    log.info(
      `failover (${strategy}) of ${failedNames}: ${launching.length} unit(s) restarted, ` +
        `${plan.unavailable.length} sub-partition(s) unavailable, ${notices.sent} control message(s)` +
        (notices.skipped > 0 ? ` (${notices.skipped} not sent: the unit was back first)` : '') +
        `; steps after detection: ${steps.map((s) => `${s.step} +${s.at - failure.detectedAt} ms`).join(', ')}`,
      { strategy, failure: event.seq, unitsRestarted: launching.length, unavailable: plan.unavailable.length, controlMessages: notices.sent },
    );
    this.options.metricsSink?.add(Metrics.UnitsRestarted, launching.length, { job: job.jobId });
    return { status: 'recovering', plan, event, steps, controlMessages: notices.sent, controlMessagesSkipped: notices.skipped };
  }

  /**
   * Marks each failed unit's input sub-partitions UNAVAILABLE with that unit's failed attempt (the
   * fencing token: an older failure never hides a newer attempt that is up), then tells the units
   * hosting their producers, in chunks, stopping a sub-partition's fan-out once its flag has moved
   * on (the new attempt announced itself). Failed units are not told: they restart.
   */
  private async markUnavailable(
    job: JobRecord,
    graph: ExecutionGraph,
    failed: readonly UnitFailure[],
    step: (s: FailoverStep) => void,
  ): Promise<{ notified: Promise<NoticeCount> }> {
    const limit = this.options.concurrency ?? 32;
    const registry = AvailabilityRegistry.forJob(this.options.jobs.metadata, job, graph, { clock: this.clock });
    const failedIds = new Set(failed.map((f) => f.unitId));
    const marked = await mapWithConcurrency(failed, limit, async (f) => {
      const subPartitions = inputSubPartitions(graph, f.subtasks);
      const result = await registry.markUnavailable(subPartitions, f.attempt);
      // A sub-partition fenced here already carries a newer attempt's flag: do not announce it.
      const fenced = new Set(result.fenced.map(subPartitionKey));
      return { attempt: f.attempt, subPartitions: subPartitions.filter((sp) => !fenced.has(subPartitionKey(sp))) };
    });
    step('unavailable');
    const notified = mapWithConcurrency(marked, limit, ({ attempt, subPartitions }) => {
      const failedVersion = flagVersion(false, attempt);
      const stillDown = async (sps: SubPartitionRef[]) => (await registry.getAll(sps)).map((flag) => flag?.version === failedVersion);
      const notices = producerNotices(graph, job.units, subPartitions, failedIds);
      return sendNotices(notices, false, attempt, (unitIds, message) => this.options.service.sendControl(job, unitIds, message), limit, {
        chunk: this.options.noticeChunk ?? 100,
        before: stillDown,
      });
    }).then((counts) => {
      step('notified');
      return counts.reduce((a, b) => ({ sent: a.sent + b.sent, skipped: a.skipped + b.skipped }), NO_NOTICES);
    });
    // Awaited by the caller after the launch; a failure surfaces there, not as an unhandled rejection.
    notified.catch(() => undefined);
    return { notified };
  }

  /**
   * The job's failure budget: the failures recorded within the window (each event counts every
   * unit it recovered) plus these. Returns the reason to give up, naming the failures that used
   * the budget up, or undefined while it lasts.
   */
  /** Why the job must fail rather than restart (too many failures lately, these included), or undefined. */
  private budgetExhausted(events: readonly FailureEvent[], failures: readonly UnitFailure[]): string | undefined {
    const max = this.options.maxFailures ?? 10;
    const windowMs = this.options.failureWindowMs ?? 10 * 60_000;
    const since = this.clock.now() - windowMs;
    const recent: { unitId: string; attempt: number; reason: string; failedAt: number }[] = [];
    for (const e of events) {
      if (e.status === 'GAVE_UP') continue;
      for (const f of [e, ...(e.alsoFailed ?? [])]) if (f.failedAt >= since) recent.push(f);
    }
    recent.push(...failures);
    if (recent.length <= max) return undefined;
    recent.sort((a, b) => a.failedAt - b.failedAt);
    const shown = recent.slice(-5).map((f) => `${f.unitId} attempt ${f.attempt}: ${f.reason}`);
    return (
      `${recent.length} task unit failures within ${Math.round(windowMs / 1000)} s, more than the budget of ${max}; giving up. ` +
      `${recent.length > shown.length ? `The last ${shown.length}: ` : ''}${shown.join('; ')}`
    );
  }
}

/** Shorthand: the supervisor's `onFailure` for these options. */
export function createFailoverHandler(options: FailoverHandlerOptions): FailureHandler {
  return new FailoverHandler(options).onFailure;
}

interface NoticeCount {
  sent: number;
  skipped: number;
}
const NO_NOTICES: NoticeCount = { sent: 0, skipped: 0 };

/**
 * Tells each producer unit of the notices about its sub-partitions: one message per (producer
 * unit, edge), listing every sub-partition of the edge it is told about (`consumers`), so a failed
 * unit of 100 subtasks costs its producer units a message per edge each, not one per sub-partition
 * (at P=4000 that was ~8,000 SQS sends per failure and as many per announce). Units told the same
 * sub-partitions of an edge share one `send(unitIds, message)` call, or one per chunk of units when
 * `chunked` is given; then `before(sps)` is checked for the sub-partitions ahead of each chunk but
 * the first, and those for which it is false are left out of the rest of the fan-out.
 * Counts are of (producer unit, sub-partition) notices.
 */
async function sendNotices(
  notices: readonly ProducerNotice[],
  available: boolean,
  attempt: number,
  send: (unitIds: string[], message: AvailabilityMessage) => Promise<void>,
  limit: number,
  chunked?: { chunk: number; before: (sps: SubPartitionRef[]) => Promise<boolean[]> },
): Promise<NoticeCount> {
  // Per unit and edge the consumers it is told about; units told the same ones form one group.
  const groups = new Map<string, { edgeId: string; consumers: number[]; units: string[] }>();
  for (const n of notices) {
    const byEdge = new Map<string, number[]>();
    for (const sp of n.subPartitions) {
      const list = byEdge.get(sp.edgeId);
      if (list) list.push(sp.consumer);
      else byEdge.set(sp.edgeId, [sp.consumer]);
    }
    for (const [edgeId, consumers] of byEdge) {
      const sorted = [...new Set(consumers)].sort((a, b) => a - b);
      const key = `${edgeId} ${sorted.join(',')}`;
      let group = groups.get(key);
      if (!group) groups.set(key, (group = { edgeId, consumers: sorted, units: [] }));
      group.units.push(n.unitId);
    }
  }
  const count: NoticeCount = { sent: 0, skipped: 0 };
  await mapWithConcurrency([...groups.values()], limit, async ({ edgeId, consumers, units }) => {
    let down = consumers;
    const size = chunked ? Math.max(1, chunked.chunk) : units.length;
    for (let i = 0; i < units.length; i += size) {
      // The first chunk goes out at once (the flags were just written), ahead of the launch.
      if (chunked && i > 0) {
        const still = await chunked.before(down.map((consumer) => ({ edgeId, consumer })));
        const next = down.filter((_, k) => still[k]);
        count.skipped += (down.length - next.length) * (units.length - i);
        down = next;
        if (down.length === 0) return;
      }
      const part = units.slice(i, i + size);
      const message: AvailabilityMessage = { type: 'availability', edgeId, consumer: down[0]!, available, attempt, ...(down.length > 1 ? { consumers: down } : {}) };
      await send(part, message);
      count.sent += part.length * down.length;
    }
  });
  return count;
}

/**
 * Sends a control message to units' control queues, in the body format `JobService.sendControl`
 * uses (for task units, which have the transport but not the job service).
 */
export async function sendControlDirect(
  channels: ChannelTransport,
  units: readonly UnitPlacement[],
  unitIds: readonly string[],
  message: ControlMessage,
  limit = 32,
): Promise<void> {
  const wanted = new Set(unitIds);
  const body = JSON.stringify(message);
  const id = `${Date.now()}-${randomBytes(4).toString('hex')}`;
  const targets = units.filter((u) => wanted.has(u.unitId));
  await mapWithConcurrency(targets, limit, (u) => channels.send(u.controlQueue, [{ groupId: controlGroup(message, id), dedupId: id, body }]));
}

/** Notices an announce sends at once per edge (one per producer unit). */
const ANNOUNCE_SENDS = 128;

export interface AnnounceOptions {
  metadata: MetadataStore;
  channels: ChannelTransport;
  job: Pick<JobRecord, 'jobId' | 'units'>;
  graph: ExecutionGraph;
  unitId: string;
  /** The starting attempt (the one `hostUnit` runs). */
  attempt: number;
  /** Where to record "available again" (default: a RecoveryMetrics over `metadata`; false: nowhere). */
  metrics?: RecoveryMetrics | false;
  clock?: Clock;
  /**
   * The announcing unit's own availability view (its record writers' gate). A packed unit hosts
   * producers of its own input sub-partitions; no message goes to it (the announcing unit is left
   * out of the notices), and its view was loaded while the flags still said unavailable.
   */
  view?: AvailabilityView;
  /**
   * The flags as read at the unit's start (`AvailabilityRegistry.storedFlags`). With them the
   * producers are told while the flags' write is in flight: a producer's view orders updates by
   * version, so an "available" that lands before the write, or for a write that then finds a newer
   * attempt's flag, never hides a newer state.
   */
  stored?: StoredFlags;
  /**
   * The unit's restore, when it runs alongside the announce: the producers are told at once (what
   * they send waits in the unit's queue), and "available again" is recorded only once the state is
   * restored too. A rejected restore records nothing and rejects the announce.
   */
  restored?: Promise<unknown>;
}

export interface AnnounceResult {
  /** The unit's input sub-partitions. */
  subPartitions: SubPartitionRef[];
  /** Those that were unavailable and are available now (their producers were told). */
  changed: SubPartitionRef[];
  /** True when a newer attempt of this unit already wrote its flags: this attempt must stop. */
  superseded: boolean;
  /** Availability notices sent, per (producer unit, changed sub-partition); one message per producer unit and edge carries them. */
  messages: number;
  /** The failure event this restart belongs to, when there is one. */
  event?: FailureEvent;
  /** When each part ended, in ms from the announce's start: the flags written, the producers told, the restore waited for, the event recorded. */
  steps?: { flagsMs: number; noticesMs: number; restoredMs: number; eventMs: number };
}

/**
 * Called by a restarted task unit while it restores its state (`restored`), before it reads its
 * inputs: marks its input sub-partitions AVAILABLE with its attempt, tells the units hosting their
 * producers (only for sub-partitions that were unavailable; its own producers through `view`), and
 * once the restore is done too records "available again" in the recovery metrics. A first attempt
 * (0) has nothing to announce and returns at once.
 */
export async function announceAvailable(options: AnnounceOptions): Promise<AnnounceResult> {
  const { job, graph, unitId, attempt } = options;
  const placement = job.units.find((u) => u.unitId === unitId);
  if (!placement) throw new Error(`job '${job.jobId}' has no task unit '${unitId}'`);
  const subPartitions = inputSubPartitions(graph, placement.subtasks);
  if (attempt === 0) return { subPartitions, changed: [], superseded: false, messages: 0 };

  const clock = options.clock ?? systemClock;
  const startedAt = clock.now();
  const registry = AvailabilityRegistry.forJob(options.metadata, job, graph, { clock });
  const tell = async (changed: readonly SubPartitionRef[]): Promise<number> => {
    if (changed.length === 0) return 0;
    const notices = producerNotices(graph, job.units, changed, new Set([unitId]));
    // Every producer unit's notice at once: one message per unit and edge (80 at P=4000), each a
    // call whose latency, not its work, is what the restarted unit waits for.
    const count = await sendNotices(notices, true, attempt, (unitIds, message) => sendControlDirect(options.channels, job.units, unitIds, message, ANNOUNCE_SENDS), 32);
    return count.sent;
  };
  const since = () => clock.now() - startedAt;
  const predicted = options.stored ? registry.predictAvailable(subPartitions, attempt, options.stored) : [];
  const marking = registry.markAvailable(subPartitions, attempt, options.stored ? { stored: options.stored } : {});
  // Settled at once (a rejection held as a value): the flags' write is awaited first.
  const early = tell(predicted).then(
    (sent) => ({ sent }),
    (error: unknown) => ({ error }),
  );
  const marked = await marking.catch(async (error: unknown) => {
    await early;
    throw error;
  });
  const flagsMs = since();
  if (marked.fenced.length > 0) {
    await early;
    return { subPartitions, changed: [], superseded: true, messages: 0 };
  }
  // This attempt is up, for its own producers too. Without this a restarted unit hosting producers
  // of its own input goes on dropping every record and barrier it sends itself: its consumers never
  // align again, so no checkpoint of their region completes. Every sub-partition, not only those
  // whose flag changed here: the view holds whatever the flags said when it was loaded.
  for (const sp of subPartitions) options.view?.apply({ ...sp, available: true, attempt });

  // What the write flipped that the stored flags did not predict (someone wrote in between) is told now.
  const told = new Set(predicted.map(subPartitionKey));
  const late = await tell(marked.changed.filter((sp) => !told.has(subPartitionKey(sp))));
  const first = await early;
  if ('error' in first) throw first.error;
  const noticesMs = since();
  await options.restored;
  const restoredMs = since();
  const metrics = options.metrics === false ? undefined : (options.metrics ?? new RecoveryMetrics(options.metadata, { clock }));
  const event = await metrics?.unitAvailable(job.jobId, unitId, attempt, clock.now());
  const steps = { flagsMs, noticesMs, restoredMs, eventMs: since() };
  return { subPartitions, changed: marked.changed, superseded: false, messages: first.sent + late, event, steps };
}

/** The promise's value if it has settled already, else undefined (a rejection is thrown). */
async function ifSettled<T>(promise: Promise<T>): Promise<T | undefined> {
  const pending = Symbol('pending');
  const value = await Promise.race([promise, Promise.resolve(pending)]);
  return value === pending ? undefined : (value as T);
}
