/**
 * Failover planning: what a task unit's failure means for the job under its failover strategy.
 * A pure function of the execution graph, the unit placements, the current attempts, the failed
 * unit, the strategy and the latest completed checkpoint manifest.
 *
 *   single           the failed unit restarts alone, from its subtasks' own latest checkpoint
 *                    (else fresh); its input sub-partitions become UNAVAILABLE and the units that
 *                    host their producers are told (one notice per unit): producers drop.
 *   single-exact     as single-buffered; the restarted unit replays its input from the producers'
 *                    in-flight logs in its dead attempt's order (determinants): exactly once.
 *   single-buffered  the same restart, but nothing is marked: producers keep writing into the
 *                    durable queues and the restarted consumer reads the backlog.
 *   region           every subtask of the failed subtasks' checkpoint regions restarts from the same
 *                    checkpoint id (the region's entry in the latest manifest); a unit hosting any of
 *                    them restarts as a whole (so the set is closed over units, then regions, again).
 *   full             every unit restarts from the manifest.
 *
 * Under region/full the queues into restarted consumers are fenced: their consumers accept only
 * the producers' new attempts, so messages the old attempts left in the queues are skipped.
 */
import type { ExecutionEdge, ExecutionGraph, Region, TaskVertex } from '../graph/execution-graph';
import { parseSubtaskId, producersOf, subtaskId } from '../graph/execution-graph';
import type { FailoverStrategy, UnitPlacement } from '../jobs/job-store';
import type { SubPartitionRef } from './availability';

/**
 * What the planner reads from a checkpoint manifest. `CheckpointManifest` (lib/checkpoint/types.ts)
 * has this shape; only these fields are used.
 */
export interface RestoreManifest {
  checkpointId: number;
  regions: readonly {
    regionId: string;
    /** Checkpoint every subtask of the region restores from; null: it never completed one. */
    restoreFrom: number | null;
    subtasks: readonly { subtask: string; state: readonly { key: string; bytes: number }[] }[];
    /** Subtasks that had finished at `restoreFrom`. */
    finished: readonly string[];
  }[];
}

export type RestorePoint =
  | { subtask: string; from: 'checkpoint'; checkpointId: number; state: readonly { key: string; bytes: number }[] }
  /** No completed checkpoint for it: starts from scratch (a source from offset 0). */
  | { subtask: string; from: 'fresh' }
  /** It had finished at the checkpoint restored: it does not run again. */
  | { subtask: string; from: 'finished'; checkpointId: number };

export interface UnitRestart {
  unitId: string;
  subtasks: string[];
  previousAttempt: number;
  attempt: number;
  /** One restore point per subtask of the unit, in placement order. */
  restore: RestorePoint[];
}

/** A producer unit to tell about sub-partitions (one control message per sub-partition it feeds). */
export interface ProducerNotice {
  unitId: string;
  subPartitions: SubPartitionRef[];
}

export interface FailoverInput {
  graph: ExecutionGraph;
  units: readonly UnitPlacement[];
  /** Current attempt per unit id (missing: 0). */
  attempts: ReadonlyMap<string, number> | { readonly [unitId: string]: number };
  failedUnit: string;
  /**
   * Other units that failed at the same time (one supervision pass, or while this failover was
   * planned): they are recovered by the same plan, so a region restarts once, not once per unit.
   */
  alsoFailed?: readonly string[];
  strategy: FailoverStrategy;
  /** The latest completed checkpoint, if any. */
  manifest?: RestoreManifest;
}

export interface FailoverPlan {
  strategy: FailoverStrategy;
  failedUnit: string;
  /** Every failed unit of the plan, `failedUnit` first. */
  failedUnits: string[];
  failedSubtasks: string[];
  /** Units to start again, each with its new attempt (current + 1). The failed units are first. */
  restarts: UnitRestart[];
  /** region/full: the regions restored and the checkpoint each restores from (null: fresh). */
  regions: { regionId: string; restoreFrom: number | null }[];
  /** single: the failed subtasks' input sub-partitions, to mark UNAVAILABLE. Empty otherwise. */
  unavailable: SubPartitionRef[];
  /** single: the units hosting producers of `unavailable` (units being restarted excluded). */
  notify: ProducerNotice[];
  /** region/full: queues whose consumers must accept only the producers' new attempts. */
  fence: SubPartitionRef[];
}

export class FailoverPlanError extends Error {
  override name = 'FailoverPlanError';
}

/** Indexes of an execution graph and a placement, built once per plan (O(subtasks)). */
class PlanIndex {
  readonly tasks = new Map<string, TaskVertex>();
  readonly edges = new Map<string, ExecutionEdge>();
  readonly unitOf = new Map<string, UnitPlacement>();
  readonly regionOf = new Map<string, Region>();

  constructor(
    readonly graph: ExecutionGraph,
    readonly units: readonly UnitPlacement[],
  ) {
    for (const t of graph.tasks) this.tasks.set(t.id, t);
    for (const e of graph.edges) this.edges.set(e.id, e);
    for (const u of units) for (const s of u.subtasks) this.unitOf.set(s, u);
    for (const r of graph.regions) for (const s of r.subtasks) this.regionOf.set(s, r);
  }

  task(subtask: string): { task: TaskVertex; index: number } {
    const { taskId, index } = parseSubtaskId(subtask);
    const task = this.tasks.get(taskId);
    if (!task || !(index >= 0 && index < task.parallelism)) throw new FailoverPlanError(`the job has no subtask '${subtask}'`);
    return { task, index };
  }

  unit(subtask: string): UnitPlacement {
    const u = this.unitOf.get(subtask);
    if (!u) throw new FailoverPlanError(`subtask '${subtask}' is placed on no task unit`);
    return u;
  }
}

export function planFailover(input: FailoverInput): FailoverPlan {
  const { graph, units, strategy, manifest } = input;
  const index = new PlanIndex(graph, units);
  const attemptOf = attemptsLookup(input.attempts);
  const failedIds = [...new Set([input.failedUnit, ...(input.alsoFailed ?? [])])];
  const failedUnits = failedIds.map((id) => {
    const unit = units.find((u) => u.unitId === id);
    if (!unit) throw new FailoverPlanError(`the job has no task unit '${id}'`);
    for (const s of unit.subtasks) index.task(s);
    return unit;
  });
  const failed = failedUnits[0]!;
  const failedSet = new Set(failedUnits);

  const restorer = new RestoreLookup(manifest, index);
  const plan: FailoverPlan = {
    strategy,
    failedUnit: failed.unitId,
    failedUnits: failedIds,
    failedSubtasks: failedUnits.flatMap((u) => u.subtasks),
    restarts: [],
    regions: [],
    unavailable: [],
    notify: [],
    fence: [],
  };
  const restart = (u: UnitPlacement): UnitRestart => {
    const previousAttempt = attemptOf(u.unitId);
    return { unitId: u.unitId, subtasks: [...u.subtasks], previousAttempt, attempt: previousAttempt + 1, restore: u.subtasks.map((s) => restorer.pointFor(s)) };
  };

  switch (strategy) {
    case 'single':
    case 'single-buffered':
    case 'single-exact': {
      for (const u of failedUnits) plan.restarts.push(restart(u));
      if (strategy === 'single') {
        plan.unavailable = inputSubPartitions(graph, plan.failedSubtasks);
        plan.notify = producerNotices(graph, units, plan.unavailable, new Set(failedIds));
      }
      return plan;
    }
    case 'region':
    case 'full': {
      const restartUnits = strategy === 'full' ? [...units] : regionClosure(index, failedUnits);
      const regionIds = new Set<string>();
      for (const u of restartUnits) for (const s of u.subtasks) regionIds.add(index.regionOf.get(s)?.id ?? '');
      regionIds.delete('');
      plan.regions = graph.regions.filter((r) => regionIds.has(r.id)).map((r) => ({ regionId: r.id, restoreFrom: restorer.regionRestoreFrom(r.id) }));
      // The failed units first, then placement order; a unit whose subtasks all finished at the
      // checkpoint restored has nothing to run (a failed unit always restarts).
      const ordered = [...failedUnits, ...restartUnits.filter((u) => !failedSet.has(u))];
      for (const u of ordered) {
        const r = restart(u);
        if (!failedSet.has(u) && r.restore.every((p) => p.from === 'finished')) continue;
        plan.restarts.push(r);
      }
      plan.fence = fencedQueues(index, new Set(plan.restarts.flatMap((r) => r.subtasks)));
      return plan;
    }
    default:
      throw new FailoverPlanError(`unknown failover strategy '${String(strategy)}'`);
  }
}

/** Units that restart with the failed ones under `region`: regions of their subtasks, closed over units. */
function regionClosure(index: PlanIndex, failed: readonly UnitPlacement[]): UnitPlacement[] {
  const regions = new Set<string>();
  const chosen = new Set<UnitPlacement>(failed);
  const pending = failed.flatMap((u) => u.subtasks);
  while (pending.length > 0) {
    const s = pending.pop()!;
    const region = index.regionOf.get(s);
    if (!region) throw new FailoverPlanError(`subtask '${s}' is in no checkpoint region`);
    if (regions.has(region.id)) continue;
    regions.add(region.id);
    for (const member of region.subtasks) {
      const u = index.unit(member);
      if (chosen.has(u)) continue;
      chosen.add(u);
      pending.push(...u.subtasks);
    }
  }
  return index.units.filter((u) => chosen.has(u));
}

/** Queues into restarted consumers that have at least one restarted producer. */
function fencedQueues(index: PlanIndex, restarted: Set<string>): SubPartitionRef[] {
  const restartedPerTask = new Map<string, number>();
  for (const s of restarted) {
    const taskId = parseSubtaskId(s).taskId;
    restartedPerTask.set(taskId, (restartedPerTask.get(taskId) ?? 0) + 1);
  }
  const out: SubPartitionRef[] = [];
  for (const edge of index.graph.edges) {
    const consumers = index.tasks.get(edge.to)!.parallelism;
    for (let j = 0; j < consumers; j++) {
      if (!restarted.has(subtaskId(edge.to, j))) continue;
      // Pointwise: the one producer j; all-to-all: any restarted subtask of the producer task.
      const fenced = edge.pointwise ? restarted.has(subtaskId(edge.from, j)) : (restartedPerTask.get(edge.from) ?? 0) > 0;
      if (fenced) out.push({ edgeId: edge.id, consumer: j });
    }
  }
  return out;
}

/** Restore points from the latest manifest: a subtask restores from its region's entry. */
class RestoreLookup {
  private readonly entries = new Map<string, RestoreManifest['regions'][number]>();
  private readonly snapshots = new Map<string, Map<string, readonly { key: string; bytes: number }[]>>();
  private readonly finished = new Map<string, Set<string>>();

  constructor(
    manifest: RestoreManifest | undefined,
    private readonly index: PlanIndex,
  ) {
    for (const e of manifest?.regions ?? []) this.entries.set(e.regionId, e);
  }

  regionRestoreFrom(regionId: string): number | null {
    return this.entries.get(regionId)?.restoreFrom ?? null;
  }

  pointFor(subtask: string): RestorePoint {
    const region = this.index.regionOf.get(subtask);
    const entry = region && this.entries.get(region.id);
    if (!entry || entry.restoreFrom === null) return { subtask, from: 'fresh' };
    let finished = this.finished.get(entry.regionId);
    if (!finished) this.finished.set(entry.regionId, (finished = new Set(entry.finished)));
    if (finished.has(subtask)) return { subtask, from: 'finished', checkpointId: entry.restoreFrom };
    let byId = this.snapshots.get(entry.regionId);
    if (!byId) this.snapshots.set(entry.regionId, (byId = new Map(entry.subtasks.map((s) => [s.subtask, s.state]))));
    return { subtask, from: 'checkpoint', checkpointId: entry.restoreFrom, state: byId.get(subtask) ?? [] };
  }
}

/** The input sub-partitions of these subtasks: (input edge, subtask index) for each input edge. */
export function inputSubPartitions(graph: ExecutionGraph, subtasks: Iterable<string>): SubPartitionRef[] {
  const tasks = new Map(graph.tasks.map((t) => [t.id, t]));
  const out: SubPartitionRef[] = [];
  for (const s of subtasks) {
    const { taskId, index } = parseSubtaskId(s);
    const task = tasks.get(taskId);
    if (!task) throw new FailoverPlanError(`the job has no subtask '${s}'`);
    for (const edge of task.inputs) out.push({ edgeId: edge.id, consumer: index });
  }
  return out;
}

/**
 * The units hosting producers of these sub-partitions, each with the sub-partitions it feeds:
 * one entry per unit however many of its subtasks write to them. Units in `exclude` are left out.
 * In placement order.
 */
export function producerNotices(
  graph: ExecutionGraph,
  units: readonly UnitPlacement[],
  subPartitions: readonly SubPartitionRef[],
  exclude: ReadonlySet<string> = new Set(),
): ProducerNotice[] {
  const index = new PlanIndex(graph, units);
  const byUnit = new Map<string, SubPartitionRef[]>();
  // An all-to-all edge has the same producer units for every consumer: found once per edge (at
  // P=4000, 200 sub-partitions times 4,000 producers took ~1 s of a failover and of an announce).
  const allToAll = new Map<string, string[]>();
  const producerUnits = (edge: ExecutionEdge, consumer: number): string[] => {
    const known = edge.pointwise ? undefined : allToAll.get(edge.id);
    if (known) return known;
    const ids = new Set<string>();
    for (const p of producersOf(edge, consumer, index.tasks.get(edge.from)!.parallelism)) ids.add(index.unit(subtaskId(edge.from, p)).unitId);
    const list = [...ids].filter((id) => !exclude.has(id));
    if (!edge.pointwise) allToAll.set(edge.id, list);
    return list;
  };
  for (const sp of subPartitions) {
    const edge = index.edges.get(sp.edgeId);
    if (!edge) throw new FailoverPlanError(`the job has no edge '${sp.edgeId}'`);
    for (const unitId of producerUnits(edge, sp.consumer)) {
      const list = byUnit.get(unitId);
      if (list) list.push(sp);
      else byUnit.set(unitId, [sp]);
    }
  }
  return units.filter((u) => byUnit.has(u.unitId)).map((u) => ({ unitId: u.unitId, subPartitions: byUnit.get(u.unitId)! }));
}

/**
 * Fencing for a consumer's input gate (`InputGateOptions.minAttempt`): the lowest producer attempt
 * to accept per channel is the current attempt of the unit hosting that producer. Give it the
 * attempts read when the consumer starts (after a region/full restart: the new ones).
 */
export function producerAttemptFence(
  graph: ExecutionGraph,
  units: readonly UnitPlacement[],
  attempts: ReadonlyMap<string, number> | { readonly [unitId: string]: number },
): (edgeId: string, producer: number) => number {
  const edgeFrom = new Map(graph.edges.map((e) => [e.id, e.from]));
  const unitOf = new Map<string, string>();
  for (const u of units) for (const s of u.subtasks) unitOf.set(s, u.unitId);
  const attemptOf = attemptsLookup(attempts);
  return (edgeId, producer) => {
    const from = edgeFrom.get(edgeId);
    const unit = from === undefined ? undefined : unitOf.get(subtaskId(from, producer));
    return unit === undefined ? 0 : attemptOf(unit);
  };
}

function attemptsLookup(attempts: FailoverInput['attempts']): (unitId: string) => number {
  if (attempts instanceof Map) return (id) => attempts.get(id) ?? 0;
  const record = attempts as { readonly [unitId: string]: number };
  return (id) => record[id] ?? 0;
}
