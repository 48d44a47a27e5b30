/**
 * The task unit's composition root, above both planes: it wires the data plane (lib/runtime: the
 * TaskUnit and its subtasks) to the control plane's adapters (job store, availability flags,
 * the "announce available" step, the producer-attempt fence), so lib/runtime imports neither.
 *
 * Hosts one attempt of a task unit in the current process: loads the job, rebuilds its execution
 * graph from the registry, restores each subtask from its region's entry in the latest checkpoint
 * manifest (and its task's union list state from every subtask's region entry), and runs the
 * unit's subtasks. Child processes, Lambda and Fargate entrypoints all call this.
 */
import { randomUUID } from 'node:crypto';
import type { Json } from '../api/functions';
import type { JobRegistry } from '../api/registry';
import { PortCheckpointCatalog } from '../checkpoint/catalog';
import { regionRestore, type RegionRestore } from '../checkpoint/manifest';
import type { CheckpointManifest } from '../checkpoint/types';
import { buildExecutionGraph, consumersOf, parseSubtaskId, producersOf, subPartitionQueue, subtaskId, type ExecutionGraph, type Region } from '../graph/execution-graph';
import { jobLayout, LayoutIndex } from '../graph/placement';
import { isSinglePoint, type JobRecord, type JobStore, type UnitPlacement } from '../jobs/job-store';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { Clock } from '../ports/clock';
import type { MetadataStore } from '../ports/metadata-store';
import { ackShardCount } from '../ports/metadata-keys';
import { noMetrics, silentLogger, type Logger, type MetricsSink } from '../ports/telemetry';
import { observeInputLag, observeReports, UnitMetrics, type CounterValues } from '../observability/unit-metrics';
import { CheckpointIO, snapshotHandleOf, type SubtaskSnapshot, type TaskUnionRead, type UnionObjectRef } from '../runtime/checkpoint-io';
import { announceAvailable, sendControlDirect } from '../recovery/failover-handler';
import { ReplayBatcher } from '../runtime/replay-requests';
import { AvailabilityRegistry, loadAvailabilityView, refreshAvailabilityView, scheduleRefreshes, type AvailabilityView } from '../recovery/availability';
import { inputSubPartitions, producerAttemptFence } from '../recovery/failover-planner';
import { readHandover, type SubtaskHandover } from '../runtime/handover';
import type { ReplaySender } from '../runtime/replay-requester';
import type { DeterminantSender } from '../runtime/determinant-requester';
import { CONTROL_IDLE_WAIT_SECONDS, TaskUnit, subtaskAttempt, type SubtaskRestart, type TaskUnitOptions, type UnitOutcome } from '../runtime/task-unit';
import { UnitChannels, type InputBudgetShare } from '../runtime/channel-mux';
import { RecoveryMetrics } from '../recovery/recovery-metrics';

export interface UnitHostOptions {
  jobId: string;
  /**
   * The job's record, when the launcher has it at hand (a warm spare is told it with its unit):
   * its units, regions and settings do not change after submission, so it is not read again.
   */
  job?: JobRecord;
  unitId: string;
  attempt: number;
  queuePrefix: string;
  channels: ChannelTransport;
  blobs: BlobStore;
  metadata: MetadataStore;
  jobs: JobStore;
  registry: JobRegistry;
  requestCounts?: () => Record<string, number>;
  /** Most union state objects read at once per task (default 32). */
  unionRestoreConcurrency?: number;
  /**
   * Most memory (bytes, estimated) the unit's multiplexed inputs hold before its poller waits for its
   * subtasks to take them (default 64 MiB, for a unit in a process of its own). A process hosting
   * many units (bench:scale: 122 at P=4000) sets less: each unit has its own allowance.
   */
  inputBufferBytes?: number;
  /** This unit's share of a budget of input buffered by every unit of the process (channel-mux.ts `InputBudget`). */
  inputBudget?: InputBudgetShare;
  /** Continue from the hand-over of this attempt's previous invocation instead of a checkpoint. */
  resume?: boolean;
  /** Time (ms since the epoch) to hand over to the next invocation (Lambda: before its time limit). */
  handoverAt?: number;
  /** Longest wait for a barrier alignment in progress at hand-over time. */
  handoverGraceMs?: number;
  /** The unit's log; the host adds jobId, unitId, attempt and invocation to every line. */
  logger?: Logger;
  /** Where the unit's metrics go (records in/out per task, losses, input lag, requests, hand-overs). */
  metrics?: MetricsSink;
  /** Metrics are published at most this often (default 10 s) and when the invocation ends. */
  metricsEveryMs?: number;
}

export interface UnitRestore {
  /** Snapshot per restored subtask id. */
  snapshots: Map<string, SubtaskSnapshot>;
  /** Union list state per restored subtask id; the subtasks of one task share one object. */
  union: Map<string, Record<string, Json[]>>;
  /** One read per task with restored subtasks whose union state exists. */
  unionReads: (TaskUnionRead & { subtasks: string[]; checkpoints: (number | null)[] })[];
}

/**
 * What the subtasks of one unit restore from the manifest.
 *
 * Snapshots: every subtask of a region from the same checkpoint id, the region's manifest entry; a
 * subtask of a region that never completed a checkpoint (or that had finished) restores nothing.
 *
 * Union list state, per task with a restored subtask in the unit: subtask j of the task contributes
 * the union object it acknowledged at ITS region's restore point (regions may restore from
 * different checkpoints under the regional handle): the union key among j's handles in the
 * manifest at that checkpoint (it names the attempt that wrote it). Subtasks of a region without a restore point,
 * subtasks that had finished, and subtasks that never used union state contribute nothing. The
 * union is read once per task (at most `unionConcurrency` reads in flight, default 32) and given to
 * every restored subtask of that task in the unit. A task none of whose subtasks wrote union state
 * reads nothing.
 *
 * Every read (snapshots and union objects) is started at once; only union objects are bounded.
 */
export async function loadUnitRestore(args: {
  jobId: string;
  graph: ExecutionGraph;
  regions: readonly Region[];
  /** The unit's subtask ids. */
  subtasks: readonly string[];
  manifest: CheckpointManifest | undefined;
  io: CheckpointIO;
  unionConcurrency?: number;
}): Promise<UnitRestore> {
  const { jobId, graph, manifest, io } = args;
  const out: UnitRestore = { snapshots: new Map(), union: new Map(), unionReads: [] };
  if (!manifest) return out;

  const regionOf = new Map<string, string>();
  for (const r of args.regions) for (const id of r.subtasks) regionOf.set(id, r.id);
  const points = new Map<string, RegionRestore>();
  const pointOf = (id: string): RegionRestore => {
    const regionId = regionOf.get(id);
    if (regionId === undefined) throw new Error(`job ${jobId}: subtask ${id} is in no checkpoint region`);
    let point = points.get(regionId);
    if (!point) points.set(regionId, (point = regionRestore(manifest, regionId)));
    return point;
  };

  // What to read is known from the manifest alone: every read starts at once (a restart waits for
  // the slowest read, not for their sum). Snapshots: one per subtask with state in its region's entry.
  const restoring = args.subtasks.flatMap((id) => {
    const point = pointOf(id);
    const handles = point.state.get(id);
    return point.checkpointId === null || !handles?.length ? [] : [{ id, key: snapshotHandleOf(handles)!.key }];
  });
  const restoredByTask = new Map<string, string[]>();
  for (const { id } of restoring) {
    const { taskId } = parseSubtaskId(id);
    restoredByTask.set(taskId, [...(restoredByTask.get(taskId) ?? []), id]);
  }
  const unionPlans = [...restoredByTask].map(([taskId, restored]) => {
    const task = graph.tasks.find((t) => t.id === taskId);
    if (!task) throw new Error(`job ${jobId}: the execution graph has no task '${taskId}'`);
    const checkpoints: (number | null)[] = [];
    const refs: (UnionObjectRef | undefined)[] = [];
    for (let j = 0; j < task.parallelism; j++) {
      const id = subtaskId(taskId, j);
      const point = pointOf(id);
      checkpoints.push(point.checkpointId);
      // The key the manifest names (it carries the attempt that wrote it).
      const key = point.checkpointId === null ? undefined : io.unionKeyIn(point.state.get(id) ?? [], point.checkpointId, taskId, j);
      refs.push(key !== undefined ? { checkpointId: point.checkpointId!, key } : undefined);
    }
    return { taskId, parallelism: task.parallelism, restored, checkpoints, refs };
  });
  const [snapshots, unions] = await Promise.all([
    Promise.all(restoring.map(({ key }) => io.readSnapshot(key))),
    Promise.all(
      unionPlans.map((plan) =>
        plan.refs.every((r) => r === undefined) ? undefined : io.readUnion(plan.taskId, plan.parallelism, plan.refs, { concurrency: args.unionConcurrency }),
      ),
    ),
  ]);
  restoring.forEach(({ id }, i) => out.snapshots.set(id, snapshots[i]!));
  unionPlans.forEach((plan, i) => {
    for (const id of plan.restored) {
      if (out.snapshots.get(id)!.union && !plan.refs[parseSubtaskId(id).index]) {
        throw new Error(`job ${jobId}: the snapshot of ${id} says it wrote union state, but the manifest lists no union object for it`);
      }
    }
    const read = unions[i];
    if (!read) return;
    out.unionReads.push({ ...read, subtasks: plan.restored, checkpoints: plan.checkpoints });
    for (const id of plan.restored) out.union.set(id, read.states);
  });
  return out;
}

export async function hostUnit(options: UnitHostOptions): Promise<UnitOutcome> {
  const startedAt = Date.now();
  const log = (options.logger ?? silentLogger).child({ jobId: options.jobId, unitId: options.unitId, attempt: options.attempt });
  const stored = options.job?.jobId === options.jobId ? options.job : await options.jobs.getJob(options.jobId);
  const graph = buildExecutionGraph(options.registry.build(stored.name, stored.params).graph);
  // The layout is computed, not read: the job item does not list units (lib/graph/placement.ts).
  const job: JobRecord = { ...stored, ...jobLayout(graph, { jobId: stored.jobId, queuePrefix: stored.queuePrefix, subtasksPerUnit: stored.settings.subtasksPerUnit ?? 1 }) };
  const placement = job.units.find((u) => u.unitId === options.unitId);
  if (!placement) throw new Error(`job '${job.jobId}' has no task unit '${options.unitId}'`);
  // The unit's subtasks acknowledge a checkpoint in batches: one item per unit and linger, not one per subtask.
  const io = new CheckpointIO(job.jobId, options.blobs, options.metadata, options.attempt, ackShardCount(graph.subtasks.length), 0, { unitId: options.unitId });
  if (options.resume) return resumeUnit(options, job, placement, graph, io, log);

  const first = log.child({ invocation: 0 });
  const metrics = new UnitMetrics({ jobId: job.jobId, sink: options.metrics ?? noMetrics, ...(options.metricsEveryMs !== undefined ? { everyMs: options.metricsEveryMs } : {}) });

  // Restore: every subtask of a region from the same checkpoint id, the region's manifest entry;
  // union list state from every subtask of the task, each at its own region's entry. Read at once
  // with the fence's attempts and the availability view: a restart waits for the slowest only.
  const failover = job.settings.failover;
  const producerAttempts = async (): Promise<Map<string, number>> => {
    const producers = producerUnitsOf(graph, new LayoutIndex(job), placement.subtasks);
    return producers.size > 0 ? options.jobs.unitAttempts(job.jobId, producers) : new Map<string, number>();
  };
  const graphMs = Date.now() - startedAt;
  const timed = <T>(p: Promise<T>): Promise<[T, number]> => p.then((v) => [v, Date.now() - startedAt - graphMs]);
  // Under single, a restart's own flags are read at once, for the announce that runs alongside the restore.
  const announcing = options.attempt > 0 && failover === 'single';
  const restoring = timed(
    new PortCheckpointCatalog(job.jobId, options.metadata, options.blobs).loadLatest().then((manifest) =>
      loadUnitRestore({
        jobId: job.jobId,
        graph,
        regions: job.regions,
        subtasks: placement.subtasks,
        manifest,
        io,
        unionConcurrency: options.unionRestoreConcurrency,
      }),
    ),
  );
  // Handled here too: it may reject while the reads below are still awaited.
  restoring.catch(() => undefined);
  const [[units, fenceMs], [availability, availabilityMs], [storedFlags]] = await Promise.all([
    // Fencing: after a region or full restart every producer replays from the same checkpoint, so
    // what their older attempts sent is refused; under single-point recovery the producers did not
    // restart and what they sent before still counts. Only the units of this unit's producers are
    // read (their records' partitions), not every unit of the job.
    timed(failover === 'region' || failover === 'full' ? producerAttempts() : Promise.resolve(new Map<string, number>())),
    // Single-point recovery: writers drop records bound for unavailable sub-partitions.
    timed(loadAvailabilityView({ metadata: options.metadata, jobId: job.jobId, graph, subtasks: placement.subtasks })),
    timed(announcing ? AvailabilityRegistry.forJob(options.metadata, job, graph).storedFlags(inputSubPartitions(graph, placement.subtasks)) : Promise.resolve(undefined)),
  ]);
  // A restarted unit marks its own input sub-partitions available again and tells their producers
  // while its state is restored: what they send meanwhile waits in its queue, and the restore and
  // the announce take the longer of the two, not their sum (at P=4000 2.1 s and 5.2 s one after
  // the other). "Available again" is recorded once both are done.
  const [[restored, restoreMs], announced] = await Promise.all([
    restoring,
    announceAvailable({
      metadata: options.metadata,
      channels: options.channels,
      job,
      graph,
      unitId: placement.unitId,
      attempt: options.attempt,
      // Loaded above while the flags still said unavailable: its writers to its own consumers
      // learn here that they may send again.
      view: availability,
      ...(storedFlags ? { stored: storedFlags } : {}),
      restored: restoring,
    }),
  ]);
  // Where a start's time goes (a restart's is the recovery time): logged once per start.
  first.info(
    `started in ${Date.now() - startedAt} ms: job and graph ${graphMs} ms, then restore of ${restored.snapshots.size} subtask(s) ${restoreMs} ms, ` +
      `producer attempts ${fenceMs} ms, availability flags ${availabilityMs} ms (at once)`,
    { graphMs, restoreMs, fenceMs, availabilityMs },
  );
  const restore = restored.snapshots;
  for (const s of restore.values()) first.info(`restoring ${s.subtask} from checkpoint ${s.checkpointId}`, { subtask: s.subtask, checkpointId: s.checkpointId });
  for (const r of restored.unionReads) {
    first.info(
      `union state of task '${r.taskId}' for ${r.subtasks.join(', ')}: ${r.stats.objects} of ${r.parallelism} objects ` +
        `(checkpoints ${r.checkpoints.map((c) => c ?? '-').join(',')}), ${r.stats.bytes} bytes, ` +
        `at most ${r.stats.maxInFlight} reads in flight (bound ${r.stats.concurrency}), ${r.stats.ms.toFixed(0)} ms`,
      { taskId: r.taskId, bytes: r.stats.bytes, ms: Math.round(r.stats.ms) },
    );
  }
  const attempts = new Map<string, number>();
  for (const [unitId, attempt] of units) attempts.set(unitId, attempt);

  if (announced.superseded) throw new Error(`unit ${placement.unitId} attempt ${options.attempt} was superseded by a newer attempt`);
  if (announced.changed.length > 0) {
    const st = announced.steps;
    first.info(
      `input sub-partitions available again (${announced.changed.length}), producers told (${announced.messages} messages) ${Date.now() - startedAt} ms after the start` +
        (st ? ` (from the announce's start: flags written ${st.flagsMs} ms, producers told ${st.noticesMs} ms, restore done ${st.restoredMs} ms, event ${st.eventMs} ms)` : ''),
      { ...st },
    );
  }
  const event = announced.event;
  if (event?.status === 'AVAILABLE' && typeof event.recoveryMs === 'number') {
    first.info(`failure ${event.seq} recovered: available again ${event.recoveryMs} ms after the failure`, { failure: event.seq, recoveryMs: event.recoveryMs });
    metrics.recovered(event.recoveryMs);
  }

  // Single-point recovery: a restarted unit's consumers get back what their dead attempt consumed
  // after the checkpoint they restore from, from their producers' in-flight logs (replay.ts), and
  // under single-exact its inner tasks ask their consumers for their determinants.
  const { replaySender, determinantSender } = options.attempt > 0 ? recoverySenders(options, job, graph) : {};
  const unit = new TaskUnit({
    // Region and full: the producers' attempts at this start; a newer one means this unit is superseded.
    ...unitOptions(options, job, placement, graph, io, availability, first, metrics, 0, failover === 'region' || failover === 'full' ? attempts : undefined),
    restore,
    restoreUnion: restored.union,
    minAttempt: producerAttemptFence(graph, job.units, attempts),
    ...(replaySender ? { replaySender } : {}),
    ...(determinantSender ? { determinantSender } : {}),
  });
  const refresh = options.attempt > 0 ? refreshAfterPredecessor(availability, options, job, graph, placement, first) : undefined;
  try {
    return await runMeasured(unit, metrics);
  } finally {
    refresh?.();
  }
}

/** After this long a dead predecessor's control long poll has ended (its longest wait, and a margin). */
export const PREDECESSOR_POLL_MS = (CONTROL_IDLE_WAIT_SECONDS + 1.5) * 1000;

/**
 * A restarted unit reads its availability flags again once its predecessor's control poll is over
 * (see refreshAvailabilityView), and earlier while any sub-partition it writes to is unavailable
 * (scheduleRefreshes).
 */
function refreshAfterPredecessor(
  view: AvailabilityView,
  options: UnitHostOptions,
  job: JobRecord,
  graph: ExecutionGraph,
  placement: UnitPlacement,
  log: Logger,
): () => void {
  return scheduleRefreshes(view, PREDECESSOR_POLL_MS, {
    reread: () => refreshAvailabilityView(view, { metadata: options.metadata, jobId: job.jobId, graph, subtasks: placement.subtasks }),
    applied: (n, afterMs) => log.info(`availability re-read ${afterMs} ms after the restart: ${n} sub-partition flag(s) newer than what the control queue brought`, { applied: n, afterMs }),
    failed: (error) => log.warn(`availability re-read after the restart failed: ${error instanceof Error ? error.message : String(error)}`),
  });
}

/** The units hosting the producers of these subtasks' input channels. */
export function producerUnitsOf(graph: ExecutionGraph, layout: LayoutIndex, subtasks: readonly string[]): Set<string> {
  const tasks = new Map(graph.tasks.map((t) => [t.id, t]));
  const out = new Set<string>();
  const allToAll = new Set<string>();
  for (const id of subtasks) {
    const { taskId, index } = parseSubtaskId(id);
    for (const edge of tasks.get(taskId)?.inputs ?? []) {
      const from = tasks.get(edge.from)!;
      // An all-to-all edge has the same producers for every consumer: once per edge.
      if (!edge.pointwise && allToAll.has(edge.id)) continue;
      if (!edge.pointwise) allToAll.add(edge.id);
      for (const p of producersOf(edge, index, from.parallelism)) {
        const unit = layout.unitOf(subtaskId(edge.from, p));
        if (unit) out.add(unit.unitId);
      }
    }
  }
  return out;
}

/** How a restarted subtask asks for its replays and (single-exact) its determinants; none for strategies that keep no in-flight logs. */
function recoverySenders(options: UnitHostOptions, job: JobRecord, graph: ExecutionGraph): { replaySender?: ReplaySender; determinantSender?: DeterminantSender } {
  if (!isSinglePoint(job.settings.failover)) return {};
  const layout = new LayoutIndex(job);
  // The requests of the unit's restarted consumers go out together, one message per producer unit (replay-requests.ts).
  const producerTask = new Map(graph.edges.map((e) => [e.id, e.from]));
  const batcher = new ReplayBatcher({
    unitOf: (edgeId, p) => layout.unitOf(subtaskId(producerTask.get(edgeId)!, p))?.unitId,
    deliver: (unitId, requests) => sendControlDirect(options.channels, job.units, [unitId], { type: 'replay', requests }),
  });
  const replaySender: ReplaySender = (request) => {
    if (!producerTask.has(request.edgeId)) return Promise.reject(new Error(`job '${job.jobId}' has no edge '${request.edgeId}' to ask a replay of`));
    return batcher.send(request);
  };
  if (job.settings.failover !== 'single-exact') return { replaySender };
  const determinantSender: DeterminantSender = async (request) => {
    const { taskId, index } = parseSubtaskId(request.producer);
    const task = graph.tasks.find((t) => t.id === taskId);
    if (!task) throw new Error(`job '${job.jobId}' has no task '${taskId}' to collect determinants of`);
    const consumers = new Set<string>();
    for (const edge of task.outputs) {
      const parallelism = graph.tasks.find((t) => t.id === edge.to)!.parallelism;
      for (const j of consumersOf(edge, index, parallelism)) consumers.add(subtaskId(edge.to, j));
    }
    const units = job.units.filter((u) => u.subtasks.some((s) => consumers.has(s))).map((u) => u.unitId);
    await sendControlDirect(options.channels, job.units, units, { type: 'determinants', request });
  };
  return { replaySender, determinantSender };
}

/**
 * Under single-point recovery a subtask that fails inside its unit restarts there alone: the
 * failure is recorded (a FAILURE# event, which the failure budget counts), and the new incarnation
 * restores from its region's entry in the latest manifest and asks for its replays.
 */
function subtaskRestarter(options: UnitHostOptions, job: JobRecord, graph: ExecutionGraph, io: CheckpointIO, log: Logger): TaskUnitOptions['restartSubtask'] {
  if (!isSinglePoint(job.settings.failover)) return undefined;
  const recovery = new RecoveryMetrics(options.metadata);
  return async (subtask, error, restart): Promise<SubtaskRestart> => {
    const failedAt = Date.now();
    const manifest = await new PortCheckpointCatalog(job.jobId, options.metadata, options.blobs).loadLatest();
    const restored = await loadUnitRestore({ jobId: job.jobId, graph, regions: job.regions, subtasks: [subtask], manifest, io, unionConcurrency: options.unionRestoreConcurrency });
    const restore = restored.snapshots.get(subtask);
    const reason = `subtask ${subtask} failed: ${error instanceof Error ? error.message : String(error)}`;
    const event = await recovery.subtaskRestarted({
      jobId: job.jobId,
      unitId: options.unitId,
      attempt: options.attempt,
      subtask,
      subtaskAttempt: subtaskAttempt(options.attempt, restart, true),
      strategy: job.settings.failover,
      reason,
      failedAt,
      restoreFrom: restore?.checkpointId ?? null,
    });
    log.warn(`${reason}; restarting it in its unit (failure ${event.seq})`, { subtask, failure: event.seq });
    const restoreUnion = restored.union.get(subtask);
    return { ...(restore ? { restore } : {}), ...(restoreUnion ? { restoreUnion } : {}), ...recoverySenders(options, job, graph) };
  };
}

/** Runs the unit; its metrics are published when the invocation ends, however it ends. */
async function runMeasured(unit: TaskUnit, metrics: UnitMetrics): Promise<UnitOutcome> {
  try {
    const outcome = await unit.run();
    if (outcome === 'HANDED_OVER') metrics.handedOver();
    return outcome;
  } finally {
    metrics.flush();
  }
}

/** A unit's number: the number its queues carry (`-c<n>`), its place in the layout otherwise. */
function unitNumber(job: Pick<JobRecord, 'units'>, unit: UnitPlacement): number {
  return Number(/-c(\d+)$/.exec(unit.controlQueue)?.[1] ?? job.units.indexOf(unit));
}

/** Attempts by unit id, as attempts by unit number (the multiplexed channels name units by number). */
function attemptsByUnitNumber(job: Pick<JobRecord, 'units'>, byId: ReadonlyMap<string, number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const unit of job.units) {
    const attempt = byId.get(unit.unitId);
    if (attempt !== undefined) out.set(unitNumber(job, unit), attempt);
  }
  return out;
}

/**
 * The unit's multiplexed channels, when the job's units have input queues (placement.ts; a job
 * placed before them reads its sub-partition queues directly). The unit's number is its queues'.
 * `clock` times the visibility extensions (tests move it; units use the system clock).
 */
export function multiplexedChannels(
  options: Pick<UnitHostOptions, 'channels' | 'queuePrefix' | 'attempt' | 'inputBufferBytes' | 'inputBudget'> & { clock?: Clock },
  job: Pick<JobRecord, 'jobId' | 'units'> & { settings?: Pick<JobRecord['settings'], 'lingerMs'> },
  placement: UnitPlacement,
  graph: ExecutionGraph,
  generation = 0,
  producerAttempts?: ReadonlyMap<string, number>,
): UnitChannels | undefined {
  if (!job.units.some((u) => u.inputQueue)) return undefined;
  const queueOf = new Map<string, string>();
  for (const u of job.units) if (u.inputQueue) for (const s of u.subtasks) queueOf.set(s, u.inputQueue);
  const number = unitNumber(job, placement);
  return new UnitChannels({
    transport: options.channels,
    graph,
    queuePrefix: options.queuePrefix,
    jobId: job.jobId,
    unit: number,
    attempt: options.attempt,
    generation,
    subtasks: placement.subtasks,
    ...(producerAttempts ? { producerAttempts: attemptsByUnitNumber(job, producerAttempts) } : {}),
    ...(placement.inputQueue ? { inputQueue: placement.inputQueue } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(job.settings?.lingerMs !== undefined ? { lingerMs: job.settings.lingerMs } : {}),
    ...(options.inputBufferBytes !== undefined ? { maxBufferedBytes: options.inputBufferBytes } : {}),
    ...(options.inputBudget ? { inputBudget: options.inputBudget } : {}),
    inputQueueOf: (subtask) => {
      const queue = queueOf.get(subtask);
      if (!queue) throw new Error(`job '${job.jobId}': no unit with an input queue hosts subtask ${subtask}`);
      return queue;
    },
  });
}

/** The queue of each input sub-partition the unit's subtasks read, with the task that reads it. */
function inputQueues(options: UnitHostOptions, placement: UnitPlacement, graph: ExecutionGraph): Map<string, string> {
  const tasks = new Map(graph.tasks.map((t) => [t.id, t]));
  const out = new Map<string, string>();
  for (const id of placement.subtasks) {
    const { taskId, index } = parseSubtaskId(id);
    for (const edge of tasks.get(taskId)?.inputs ?? []) out.set(subPartitionQueue(options.queuePrefix, options.jobId, edge.id, index), taskId);
  }
  return out;
}

/** What a unit's invocations share, whether they restore from a checkpoint or resume a hand-over. */
function unitOptions(
  options: UnitHostOptions,
  job: JobRecord,
  placement: UnitPlacement,
  graph: ExecutionGraph,
  io: CheckpointIO,
  availability: AvailabilityView,
  log: Logger,
  metrics: UnitMetrics,
  generation: number,
  producerAttempts?: ReadonlyMap<string, number>,
): TaskUnitOptions {
  const mux = multiplexedChannels(options, job, placement, graph, generation, producerAttempts);
  const restartSubtask = subtaskRestarter(options, job, graph, io, log);
  return {
    jobId: options.jobId,
    unitId: placement.unitId,
    attempt: options.attempt,
    graph,
    subtasks: placement.subtasks,
    controlQueue: placement.controlQueue,
    queuePrefix: options.queuePrefix,
    channels: options.channels,
    // Input lag per task, measured where the subtasks receive (their sub-partitions).
    observeInputs: (channels) => observeInputLag(channels, inputQueues(options, placement, graph), (taskId, ageMs) => metrics.inputLag(taskId, ageMs)),
    ...(mux ? { mux } : {}),
    ...(restartSubtask ? { restartSubtask } : {}),
    blobs: options.blobs,
    jobs: observeReports(options.jobs, metrics),
    gate: availability,
    inflightLog: isSinglePoint(job.settings.failover),
    exactOnce: job.settings.failover === 'single-exact',
    ...(job.settings.lingerMs !== undefined ? { lingerMs: job.settings.lingerMs } : {}),
    groupsStartAtZero: job.settings.failover === 'region' || job.settings.failover === 'full',
    // A liveness heartbeat about three times within the job's heartbeat timeout.
    livenessMs: Math.max(1000, Math.min(5000, Math.floor(job.settings.heartbeatTimeoutMs / 3))),
    onControl: async (message) => {
      if (message.type === 'availability' && availability.handleControl(message)) {
        const consumers = message.consumers ?? [message.consumer];
        log.info(`sub-partition${consumers.length > 1 ? 's' : ''} ${message.edgeId}/${consumers.join(',')} ${message.available ? 'available again' : 'unavailable'} (consumer attempt ${message.attempt})`, {
          edgeId: message.edgeId,
          consumer: message.consumer,
          ...(message.consumers ? { consumers: message.consumers } : {}),
          available: message.available,
          consumerAttempt: message.attempt,
        });
      }
    },
    checkpoints: io,
    requestCounts: options.requestCounts,
    logger: log,
    ...(options.handoverAt !== undefined ? { handoverAt: options.handoverAt } : {}),
    ...(options.handoverGraceMs !== undefined ? { handoverGraceMs: options.handoverGraceMs } : {}),
  };
}

/**
 * The next invocation of an attempt that handed over: claims the hand-over (one invocation only),
 * and continues every subtask from its live state. No checkpoint restore, no availability
 * announcement: to the rest of the job nothing happened.
 */
async function resumeUnit(options: UnitHostOptions, job: JobRecord, placement: UnitPlacement, graph: ExecutionGraph, io: CheckpointIO, log: Logger): Promise<UnitOutcome> {
  const { jobId, unitId, attempt } = options;
  const unclaimed = () => {
    log.warn(`no hand-over of unit ${unitId} attempt ${attempt} to claim (another invocation took it, or a newer attempt runs): ending`);
    return 'CANCELLED' as const;
  };
  // Everything that can fail is read before the claim: a claimed hand-over nobody runs costs a failover.
  const record = await options.jobs.getUnit(jobId, unitId);
  const offered = record?.attempt === attempt ? record.handover : undefined;
  if (!offered) return unclaimed();
  const state = await readHandover(options.blobs, offered.key, { jobId, unitId, attempt, generation: offered.generation });
  const resume = new Map<string, SubtaskHandover>(state.subtasks.map((s) => [s.subtask, s]));
  for (const id of placement.subtasks) if (!resume.has(id)) throw new Error(`hand-over ${offered.key} has no state for subtask ${id}`);
  const availability = await loadAvailabilityView({ metadata: options.metadata, jobId, graph, subtasks: placement.subtasks });
  const owner = randomUUID();
  const pointer = await options.jobs.claimHandover(jobId, unitId, attempt, owner);
  if (!pointer || pointer.key !== offered.key) return unclaimed();
  const invocation = log.child({ invocation: pointer.generation });
  invocation.info(`continuing from hand-over ${pointer.key}`, { handover: pointer.key });
  // The counters go on from the hand-over: only what grows from here is new.
  const baseline: Record<string, CounterValues> = {};
  for (const s of state.subtasks) baseline[s.subtask] = { ...s.counters };
  const metrics = new UnitMetrics({
    jobId,
    sink: options.metrics ?? noMetrics,
    baseline: { stats: baseline, requests: state.requests },
    ...(options.metricsEveryMs !== undefined ? { everyMs: options.metricsEveryMs } : {}),
  });
  const unit = new TaskUnit({
    ...unitOptions(options, job, placement, graph, io, availability, invocation, metrics, pointer.generation),
    owner,
    generation: pointer.generation,
    resume,
    requestsBefore: state.requests,
  });
  return runMeasured(unit, metrics);
}
