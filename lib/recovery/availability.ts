/**
 * Availability flags of sub-partitions, for single-point recovery.
 *
 * A sub-partition is one queue: every channel of one edge that ends at one consumer subtask. While
 * its consumer is down (strategy `single`), the sub-partition is UNAVAILABLE and producers drop the
 * records bound for it (RecordWriter counts them).
 *
 * Stored flags (metadata store): one item per edge and flag group, the group being the consumer
 * subtasks' task unit (`flagGroupsByUnit`):
 *
 *   pk JOB#<jobId>   sk SUBPART#<edgeId>#<group>
 *   { edgeId, group, flags: { <consumer>: version }, rev, updatedAt }
 *
 * Each sub-partition's flag is its own: `version = 2 * attempt + (available ? 0 : 1)`, `attempt`
 * being the consumer subtask's attempt and the fencing token. "Attempt a failed" (2a+1) beats
 * "attempt a is up" (2a), and "attempt a+1 is up" (2a+2) beats both; a write whose version is lower
 * than the stored one is refused, so a late write of an older attempt never undoes a newer one.
 * A write is a compare-and-set of the whole item on `rev`: read, decide per sub-partition, put
 * conditioned on the `rev` read.
 *
 * Why one item per unit: a unit's sub-partitions are always marked together, at its attempt (the
 * failover handler marks a failed unit's, its restart announces its own), so their flags change
 * together. A packed join unit of 100 subtasks at P=4000 has 200 input sub-partitions: one item
 * each was 400 compare-and-sets per failover (13.9 s of one on the emulator under load,
 * docs/scale.md); grouped, it is 4. Every writer of a job must use the same grouping.
 *
 * No flag means available: flags are written only when a sub-partition is first marked
 * unavailable, so a job that never failed has no items, and a unit start reads only the few there.
 *
 * `AvailabilityView` is the in-memory copy a producer's record writers consult on every record.
 */
import { mapWithConcurrency } from '../util/concurrency';
import type { Clock } from '../ports/clock';
import { systemClock } from '../ports/clock';
import type { Condition, MetaItem, MetaValue, MetadataStore } from '../ports/metadata-store';
import type { ExecutionGraph } from '../graph/execution-graph';
import { parseSubtaskId, subtaskId } from '../graph/execution-graph';
import type { ControlMessage } from '../runtime/messages';
import type { SubPartitionGate } from '../runtime/record-writer';

/** One sub-partition: the queue of (edge, consumer subtask index). */
export interface SubPartitionRef {
  edgeId: string;
  consumer: number;
}

export interface SubPartitionFlag extends SubPartitionRef {
  available: boolean;
  /** The consumer subtask's attempt this flag speaks for (fencing token). */
  attempt: number;
  /** Write order: 2 * attempt + (available ? 0 : 1). */
  version: number;
  updatedAt: number;
}

/** The `availability` control message a producer unit receives. */
export type AvailabilityMessage = Extract<ControlMessage, { type: 'availability' }>;

export interface AvailabilityUpdate extends SubPartitionRef {
  available: boolean;
  attempt: number;
}

/** Order of availability writes and messages for one sub-partition. */
export const flagVersion = (available: boolean, attempt: number): number => attempt * 2 + (available ? 0 : 1);

/** Which flag item a sub-partition's flag lives in (see the top of this file). */
export type FlagGroupOf = (ref: SubPartitionRef) => string;

/**
 * Flags grouped by the task unit of their consumer subtask: what a job's writers use. A job of one
 * subtask per unit has one flag per item.
 */
export function flagGroupsByUnit(graph: Pick<ExecutionGraph, 'edges'>, units: readonly { unitId: string; subtasks: readonly string[] }[]): FlagGroupOf {
  const unitOf = new Map<string, string>();
  for (const u of units) for (const s of u.subtasks) unitOf.set(s, u.unitId);
  const consumerTask = new Map(graph.edges.map((e) => [e.id, e.to]));
  return (ref) => {
    const task = consumerTask.get(ref.edgeId);
    const unit = task === undefined ? undefined : unitOf.get(subtaskId(task, ref.consumer));
    if (unit === undefined) throw new Error(`sub-partition ${subPartitionKey(ref)} has no consumer subtask in the job's placement`);
    return unit;
  };
}

/** One flag per item (group = the consumer index): jobs of one subtask per unit, and tests. */
export const flagPerSubPartition: FlagGroupOf = (ref) => String(ref.consumer);

export const flagItemSk = (edgeId: string, group: string): string => `SUBPART#${edgeId}#${group}`;

/** `e3/17`: a short printable key of a sub-partition. */
export const subPartitionKey = (ref: SubPartitionRef): string => `${ref.edgeId}/${ref.consumer}`;

const jobPk = (jobId: string) => `JOB#${jobId}`;

export type MarkOutcome =
  /** Written, and the effective availability changed (no flag counts as available). */
  | 'changed'
  /** The stored flag already said this (or was rewritten with the same availability, newer attempt). */
  | 'unchanged'
  /** A newer attempt's flag is stored: nothing written. */
  | 'fenced'
  /** No flag and the call does not create one (markAvailable): nothing to undo. */
  | 'skipped';

export interface MarkResult {
  /** Sub-partitions whose availability flipped: their producers must be told. */
  changed: SubPartitionRef[];
  unchanged: SubPartitionRef[];
  /** Refused because a newer attempt already wrote a flag: the caller is superseded. */
  fenced: SubPartitionRef[];
  skipped: SubPartitionRef[];
}

/** Flag items as read by `storedFlags`, by sort key; null: no item. */
export type StoredFlags = Map<string, MetaItem | null>;

/** The versions an item holds, by consumer. */
function versionsOf(item: MetaItem | undefined): Record<string, MetaValue> {
  const flags = item?.flags;
  return flags && typeof flags === 'object' && !Array.isArray(flags) ? flags : {};
}

/** The stored availability flags of one job. */
export class AvailabilityRegistry {
  constructor(
    readonly metadata: MetadataStore,
    readonly jobId: string,
    /** The job's grouping of flags into items; every writer of the job must use the same. */
    private readonly groupOf: FlagGroupOf,
    private readonly options: { clock?: Clock; concurrency?: number } = {},
  ) {}

  /** A job's registry, with the grouping every writer of it uses (`flagGroupsByUnit`). */
  static forJob(
    metadata: MetadataStore,
    job: { jobId: string; units: readonly { unitId: string; subtasks: readonly string[] }[] },
    graph: Pick<ExecutionGraph, 'edges'>,
    options: { clock?: Clock; concurrency?: number } = {},
  ): AvailabilityRegistry {
    return new AvailabilityRegistry(metadata, job.jobId, flagGroupsByUnit(graph, job.units), options);
  }

  /** The consumer of these sub-partitions failed in `failedAttempt`: producers must drop. */
  markUnavailable(subPartitions: readonly SubPartitionRef[], failedAttempt: number): Promise<MarkResult> {
    return this.markAll(subPartitions, false, failedAttempt, true);
  }

  /**
   * The consumer's attempt `newAttempt` has restored its state: producers may send again. Only
   * sub-partitions that have a flag are written (no flag already means available). `stored`: the
   * items as read earlier (`storedFlags`, while the state was restored); an item that changed
   * since fails its compare-and-set and is read again.
   */
  markAvailable(subPartitions: readonly SubPartitionRef[], newAttempt: number, options: { stored?: StoredFlags } = {}): Promise<MarkResult> {
    return this.markAll(subPartitions, true, newAttempt, false, options.stored);
  }

  /**
   * The sub-partitions `markAvailable(refs, newAttempt, { stored })` would flip, decided from
   * `stored` alone (no call): a restart tells their producers while its write is in flight.
   */
  predictAvailable(refs: readonly SubPartitionRef[], newAttempt: number, stored: StoredFlags): SubPartitionRef[] {
    const out: SubPartitionRef[] = [];
    for (const [sk, group] of this.byItem(refs)) {
      const { outcomes } = decideMarks(versionsOf(stored.get(sk) ?? undefined), group, true, newAttempt, false);
      for (const [ref, outcome] of outcomes) if (outcome === 'changed') out.push(ref);
    }
    return out;
  }

  async get(ref: SubPartitionRef): Promise<SubPartitionFlag | undefined> {
    return (await this.getAll([ref]))[0];
  }

  /** The flags of these sub-partitions, in their order (undefined: none), reading each item once. */
  async getAll(refs: readonly SubPartitionRef[]): Promise<(SubPartitionFlag | undefined)[]> {
    const stored = await this.storedFlags(refs);
    return refs.map((ref) => {
      const item = stored.get(flagItemSk(ref.edgeId, this.groupOf(ref)));
      return item ? flagsOf(item).find((f) => f.consumer === ref.consumer) : undefined;
    });
  }

  /** Every stored flag of the job, or of these edges only (one query per edge). */
  async list(edgeIds?: Iterable<string>): Promise<SubPartitionFlag[]> {
    return listFlags(this.metadata, this.jobId, edgeIds);
  }

  private async markAll(refs: readonly SubPartitionRef[], available: boolean, attempt: number, create: boolean, prefetched?: StoredFlags): Promise<MarkResult> {
    if (!Number.isInteger(attempt) || attempt < 0) throw new Error(`availability attempt must be a whole number >= 0, got ${attempt}`);
    const result: MarkResult = { changed: [], unchanged: [], fenced: [], skipped: [] };
    const outcomes = await mapWithConcurrency([...this.byItem(refs)], this.options.concurrency ?? 16, ([sk, group]) => this.mark(sk, group, available, attempt, create, prefetched));
    for (const map of outcomes) for (const [ref, outcome] of map) result[outcome].push(ref);
    return result;
  }

  /**
   * The stored flag items of these sub-partitions (null: no item): a GET per item, which is one
   * per edge for a unit's input sub-partitions.
   */
  async storedFlags(refs: readonly SubPartitionRef[]): Promise<StoredFlags> {
    const pk = jobPk(this.jobId);
    const sks = [...this.byItem(refs).keys()];
    const items = await mapWithConcurrency(sks, 4, (sk) => this.metadata.get(pk, sk));
    return new Map(sks.map((sk, i) => [sk, items[i] ?? null]));
  }

  /** These sub-partitions by the flag item (sort key) that holds them. */
  private byItem(refs: readonly SubPartitionRef[]): Map<string, SubPartitionRef[]> {
    const items = new Map<string, SubPartitionRef[]>();
    for (const ref of refs) {
      const sk = flagItemSk(ref.edgeId, this.groupOf(ref));
      const list = items.get(sk);
      if (list) list.push(ref);
      else items.set(sk, [ref]);
    }
    return items;
  }

  /** Compare-and-set of one flag item for these of its sub-partitions (first from `stored`, when given). */
  private async mark(sk: string, refs: readonly SubPartitionRef[], available: boolean, attempt: number, create: boolean, stored?: StoredFlags): Promise<Map<SubPartitionRef, MarkOutcome>> {
    const pk = jobPk(this.jobId);
    const version = flagVersion(available, attempt);
    for (let tries = 0; tries < 10; tries++) {
      const known = tries === 0 ? stored?.get(sk) : undefined;
      const current = known !== undefined ? (known ?? undefined) : await this.metadata.get(pk, sk);
      const versions = { ...versionsOf(current) };
      const { outcomes, writes } = decideMarks(versions, refs, available, attempt, create);
      // Nothing to write by what was read earlier: read again before deciding so (a flag written
      // since must not be skipped: its sub-partition would stay unavailable).
      if (writes.length === 0 && known !== undefined) continue;
      if (writes.length === 0) return outcomes;
      for (const ref of writes) versions[ref.consumer] = version;
      const rev = current ? Number(current.rev ?? 0) : 0;
      const item: MetaItem = { edgeId: refs[0]!.edgeId, group: sk.slice(sk.indexOf('#', 'SUBPART#'.length) + 1), flags: versions, rev: rev + 1, updatedAt: (this.options.clock ?? systemClock).now() };
      const condition: Condition = current ? { attr: 'rev', op: '=', value: rev } : { attr: 'rev', op: 'notExists' };
      if (await this.metadata.put(pk, sk, item, [condition])) return outcomes;
      // Someone wrote in between: read again and decide again.
    }
    throw new Error(`availability flags ${sk} of job '${this.jobId}' keep changing; gave up after 10 tries`);
  }
}

/**
 * What marking these sub-partitions of one flag item (its `versions`) at `attempt` does to each, and
 * which of them it writes: a lower version is replaced, an equal one left, a higher one fences the
 * writer; with `create` false a sub-partition without a flag is skipped.
 */
function decideMarks(
  versions: Record<string, MetaValue>,
  refs: readonly SubPartitionRef[],
  available: boolean,
  attempt: number,
  create: boolean,
): { outcomes: Map<SubPartitionRef, MarkOutcome>; writes: SubPartitionRef[] } {
  const version = flagVersion(available, attempt);
  const outcomes = new Map<SubPartitionRef, MarkOutcome>();
  const writes: SubPartitionRef[] = [];
  for (const ref of refs) {
    const storedVersion = typeof versions[ref.consumer] === 'number' ? (versions[ref.consumer] as number) : -1;
    if (storedVersion < 0 && !create) outcomes.set(ref, 'skipped');
    else if (storedVersion > version) outcomes.set(ref, 'fenced');
    else if (storedVersion === version) outcomes.set(ref, 'unchanged');
    else {
      const wasAvailable = storedVersion < 0 || storedVersion % 2 === 0;
      outcomes.set(ref, wasAvailable === available ? 'unchanged' : 'changed');
      writes.push(ref);
    }
  }
  return { outcomes, writes };
}

/** The stored flags of a job, or of these edges only (one query per edge). */
export async function listFlags(metadata: MetadataStore, jobId: string, edgeIds?: Iterable<string>): Promise<SubPartitionFlag[]> {
  const pk = jobPk(jobId);
  const prefixes = edgeIds === undefined ? ['SUBPART#'] : [...new Set(edgeIds)].map((e) => `SUBPART#${e}#`);
  const out: SubPartitionFlag[] = [];
  for (const prefix of prefixes) for (const { item } of await metadata.query(pk, prefix)) out.push(...flagsOf(item));
  return out;
}

function flagsOf(item: MetaItem): SubPartitionFlag[] {
  const edgeId = String(item.edgeId);
  const updatedAt = Number(item.updatedAt ?? 0);
  return Object.entries(versionsOf(item)).map(([consumer, v]) => {
    const version = Number(v);
    return { edgeId, consumer: Number(consumer), available: version % 2 === 0, attempt: Math.floor(version / 2), version, updatedAt };
  });
}

/**
 * The availability of sub-partitions as one producer unit knows it: what its record writers consult
 * on every record (`isAvailable` is a counter check while nothing is down, two hash lookups otherwise).
 *
 * Updated from `availability` control messages; a message older than what the view holds for that
 * sub-partition (lower version, see `flagVersion`) is ignored, so messages may arrive in any order.
 */
export class AvailabilityView implements SubPartitionGate {
  /** Version last applied, per `edgeId/consumer`. */
  private readonly versions = new Map<string, number>();
  /** Unavailable consumers per edge. */
  private readonly down = new Map<string, Set<number>>();
  private downCount = 0;
  private readonly edges: Set<string> | undefined;

  constructor(
    options: {
      /** Only these edges matter to this unit (its output edges); updates for others are ignored. */
      edges?: Iterable<string>;
      /** Called after every update that flipped a sub-partition. */
      onChange?: (update: AvailabilityUpdate) => void;
    } = {},
  ) {
    this.edges = options.edges ? new Set(options.edges) : undefined;
    this.onChange = options.onChange;
  }

  private readonly onChange: ((update: AvailabilityUpdate) => void) | undefined;

  isAvailable(edgeId: string, consumer: number): boolean {
    if (this.downCount === 0) return true;
    const consumers = this.down.get(edgeId);
    return consumers === undefined || !consumers.has(consumer);
  }

  /** Applies one update; false when it is older than (or the same as) what the view holds, or off its edges. */
  apply(update: AvailabilityUpdate): boolean {
    if (this.edges && !this.edges.has(update.edgeId)) return false;
    const key = `${update.edgeId}/${update.consumer}`;
    const version = flagVersion(update.available, update.attempt);
    const known = this.versions.get(key);
    if (known !== undefined && known >= version) return false;
    this.versions.set(key, version);
    let consumers = this.down.get(update.edgeId);
    const wasDown = consumers?.has(update.consumer) ?? false;
    if (update.available && wasDown) {
      consumers!.delete(update.consumer);
      if (consumers!.size === 0) this.down.delete(update.edgeId);
      this.downCount--;
    } else if (!update.available && !wasDown) {
      if (!consumers) this.down.set(update.edgeId, (consumers = new Set()));
      consumers.add(update.consumer);
      this.downCount++;
    }
    if (wasDown === update.available) this.onChange?.(update);
    return true;
  }

  /**
   * For a task unit's control loop: applies an `availability` message and returns true; returns
   * false for every other message type (the caller handles those).
   */
  handleControl(message: ControlMessage): boolean {
    if (message.type !== 'availability') return false;
    const { edgeId, available, attempt } = message;
    for (const consumer of message.consumers ?? [message.consumer]) this.apply({ edgeId, consumer, available, attempt });
    return true;
  }

  /** Initialises (or refreshes) the view from stored flags. */
  load(flags: Iterable<AvailabilityUpdate>): void {
    for (const flag of flags) this.apply(flag);
  }

  /** The attempt of the last update applied for a sub-partition (undefined: none). */
  attemptOf(edgeId: string, consumer: number): number | undefined {
    const v = this.versions.get(`${edgeId}/${consumer}`);
    return v === undefined ? undefined : Math.floor(v / 2);
  }

  get unavailableCount(): number {
    return this.downCount;
  }

  unavailable(): SubPartitionRef[] {
    const out: SubPartitionRef[] = [];
    for (const [edgeId, consumers] of this.down) for (const consumer of consumers) out.push({ edgeId, consumer });
    return out.sort((a, b) => (a.edgeId === b.edgeId ? a.consumer - b.consumer : a.edgeId < b.edgeId ? -1 : 1));
  }
}

/** The output edges of a unit's subtasks: the edges its record writers write. */
export function outputEdgesOf(graph: ExecutionGraph, subtasks: Iterable<string>): string[] {
  const tasks = new Map(graph.tasks.map((t) => [t.id, t]));
  const edges = new Set<string>();
  for (const s of subtasks) for (const e of tasks.get(parseSubtaskId(s).taskId)?.outputs ?? []) edges.add(e.id);
  return [...edges];
}

/**
 * The view a unit starts with: the stored flags of its output edges (one query per edge). Pass it
 * as `gate` to the unit's record writers and feed it the unit's availability control messages.
 */
export async function loadAvailabilityView(options: {
  metadata: MetadataStore;
  jobId: string;
  graph: ExecutionGraph;
  /** The unit's subtasks. */
  subtasks: readonly string[];
  onChange?: (update: AvailabilityUpdate) => void;
}): Promise<AvailabilityView> {
  const edges = outputEdgesOf(options.graph, options.subtasks);
  const view = new AvailabilityView({ edges, onChange: options.onChange });
  if (edges.length > 0) view.load(await listFlags(options.metadata, options.jobId, edges));
  return view;
}

/**
 * Reads the stored flags of a view's edges again and applies what is newer. A restarted unit does
 * this once its predecessor's last control poll has surely ended: that poll, still pending at the
 * queue after the process died, takes an availability notice sent meanwhile and hides it (and its
 * FIFO group) for the control visibility timeout, so the writers would drop records for a
 * consumer that is back. The flags are written before any notice is sent, so they hold it.
 */
export async function refreshAvailabilityView(
  view: AvailabilityView,
  options: { metadata: MetadataStore; jobId: string; graph: ExecutionGraph; subtasks: readonly string[] },
): Promise<number> {
  const edges = outputEdgesOf(options.graph, options.subtasks);
  if (edges.length === 0) return 0;
  let applied = 0;
  for (const flag of await listFlags(options.metadata, options.jobId, edges)) if (view.apply(flag)) applied++;
  return applied;
}

/**
 * When a restarted unit whose view still holds unavailable sub-partitions reads its flags again
 * before its predecessor's poll is surely over: a consumer killed with it (both units at once)
 * announces itself within a few hundred ms, and until the notice is applied the writers drop what
 * is bound for it; the notice itself may be hidden by the dead predecessor's poll (2.5 s of drops,
 * chaos seeds 10720, 10734). Then every second, for a consumer that takes longer to come back.
 */
export const EARLY_REFRESH_MS = 300;
export const REFRESH_EVERY_MS = 1000;

/**
 * Schedules a restarted unit's re-reads of its flags: from EARLY_REFRESH_MS on, every
 * REFRESH_EVERY_MS while the view holds an unavailable sub-partition, and always at `lastMs` (its
 * predecessor's poll is over then; a notice of a new failure may have been hidden too). Returns
 * what cancels the ones not yet run.
 */
export function scheduleRefreshes(
  view: Pick<AvailabilityView, 'unavailableCount'>,
  lastMs: number,
  on: { reread: () => Promise<number>; applied: (n: number, afterMs: number) => void; failed: (error: unknown) => void },
): () => void {
  const times: number[] = [];
  for (let ms = EARLY_REFRESH_MS; ms < lastMs; ms = ms < REFRESH_EVERY_MS ? REFRESH_EVERY_MS : ms + REFRESH_EVERY_MS) times.push(ms);
  const timers = [...times, lastMs].map((afterMs) => {
    const timer = setTimeout(() => {
      if (afterMs !== lastMs && view.unavailableCount === 0) return;
      on.reread()
        .then((n) => n > 0 && on.applied(n, afterMs))
        .catch(on.failed);
    }, afterMs);
    timer.unref();
    return timer;
  });
  return () => timers.forEach(clearTimeout);
}
