/**
 * Typed job and task-unit records over the metadata store (one DynamoDB table; the layout of its
 * partitions is lib/ports/metadata-keys.ts):
 *
 *   pk JOBS                        sk <jobId>          job summary, for listing
 *   pk JOB#<jobId>                 sk META             the job: name, params, settings, status, and the
 *                                                      sizes of its layout (never the layout: units,
 *                                                      regions and queues are computed from the graph)
 *   pk JOB#<jobId>#UNITS#<shard>   sk UNIT#<unitId>    a task unit: subtasks, attempt, status, counters
 *                                  sk BEAT#<unitId>    its liveness: attempt, last heartbeat (small: written often,
 *                                                      and read for the units' attempts)
 *
 * Unit writes carry the unit's attempt as a fencing token: a unit of an older attempt cannot
 * overwrite the record of its replacement, nor keep its heartbeat alive.
 */
import type { Condition, MetaItem, MetadataStore } from '../ports/metadata-store';
import type { JobParams } from '../api/registry';
import type { JobLayout, PlacedUnit } from '../graph/placement';
import { BEAT_PREFIX, META_SK, UNIT_PREFIX, beatSk, jobPk, shardOf, unitSk, unitsPk } from '../ports/metadata-keys';
import { mapWithConcurrency } from '../util/concurrency';
import { CARRIED_COUNTERS, UNIT_LIFECYCLE, type UnitHandoverPointer, type UnitRecord, type UnitRecordStore, type UnitStatus } from '../ports/unit-records';
import { lifecycle, onlyFrom, type NextOf } from '../util/lifecycle';

/** The progress watch's last look at a job (lib/jobs/progress-watch.ts), kept in the job item. */
export interface ProgressMark {
  /** What the job's progress looked like when it last changed. */
  signature: string;
  /** When it last changed (ms since the epoch). */
  since: number;
}

export type { SubtaskStats, UnitHandoverPointer, UnitRecord, UnitStatus } from '../ports/unit-records';
export { UNIT_LIFECYCLE } from '../ports/unit-records';

/** The lifecycle of a job (its record's `status`): it runs until it ends, one way or another. */
export const JOB_LIFECYCLE = lifecycle('job', {
  RUNNING: ['FINISHED', 'FAILED', 'CANCELLED'],
  /** Every unit finished. */
  FINISHED: [],
  /** A failure the job could not recover from (or a stall). */
  FAILED: [],
  /** Cancelled by a user. */
  CANCELLED: [],
});

export type JobStatus = (typeof JOB_LIFECYCLE.states)[number];
/** How a running job may end. */
export type JobEnd = NextOf<typeof JOB_LIFECYCLE.moves, 'RUNNING'>;
export type FailoverStrategy = 'full' | 'region' | 'single' | 'single-buffered' | 'single-exact';

/** The single-point strategies: a failed unit restarts alone, its producers keep in-flight logs. */
export function isSinglePoint(strategy: string | undefined): boolean {
  return strategy === 'single' || strategy === 'single-buffered' || strategy === 'single-exact';
}

/** Where a job's task units run in the cloud (the local runtime runs child processes for both). */
export type UnitRuntime = 'lambda' | 'fargate';

export interface JobSettings {
  failover: FailoverStrategy;
  /** Subtasks one task unit hosts (lib/graph/placement.ts); missing: 1. */
  subtasksPerUnit?: number;
  /**
   * Longest time records wait in a writer before they are sent, and a unit's send tick: a unit
   * sends what its subtasks flushed to another unit at most once per linger (channel-mux.ts).
   * Missing: writers linger 200 ms and units send at once (no tick). Set it for packed units:
   * fewer SQS requests between units, records later.
   */
  lingerMs?: number;
  /** Where the job's task units run; missing: the deployment's default (SLUICE_LAUNCHER). */
  runOn?: UnitRuntime;
  /** Heartbeats older than this fail a unit. */
  heartbeatTimeoutMs: number;
  checkpoint: {
    handle: 'global' | 'regional';
    /** Seconds between checkpoints; 0 turns periodic checkpoints off. */
    intervalSeconds: number;
    timeoutSeconds: number;
    maxFailedRegionRatio: number;
    maxConsecutiveRegionFailures: number;
    /** A trigger while a checkpoint is pending: refused, or queued until it is decided. */
    whenBusy?: 'refuse' | 'queue';
  };
}

/** A task unit of a job: which subtasks it hosts, and its control queue. */
export type UnitPlacement = PlacedUnit;

/** How large a job's layout is: what the job item keeps of it (its size does not grow with parallelism). */
export interface JobShape {
  units: number;
  subtasks: number;
  regions: number;
  queues: number;
  /** Partitions the unit records are spread over (lib/ports/metadata-keys.ts). */
  unitShards: number;
}

/** The job item as stored. */
export interface StoredJob {
  jobId: string;
  name: string;
  params: JobParams;
  settings: JobSettings;
  status: JobStatus;
  createdAt: number;
  endedAt?: number;
  /** The queue prefix the job's queues were created with. */
  queuePrefix: string;
  shape: JobShape;
  error?: string;
  /** The supervisor's last look at the job's progress (the cloud supervisor is stateless between passes). */
  progress?: ProgressMark;
}

/** A job with its layout (units, regions, queues), which JobService computes from its graph. */
export type JobRecord = StoredJob & JobLayout;

/** The stored part of a job (what createJob writes). */
export function storedJob(job: JobRecord): StoredJob {
  const { units: _units, regions: _regions, queues: _queues, ...stored } = job;
  return stored;
}

/**
 * Counters that add up over attempts (records in and out are progress, counted per attempt).
 * Record loss and replay counters (dropped, missing, duplicate, regenerated, resent) are not among
 * them: they are checkpointed state, and a restarted attempt starts from its checkpoint's values
 * and counts again what comes again after it (adding the dead attempt's would count it twice).
 */
const CARRIED: ReadonlySet<string> = new Set(CARRIED_COUNTERS);
/** Every counter a unit's totals show: the carried ones and the checkpointed ones. */
const TOTALLED = new Set([...CARRIED, 'dropped', 'duplicateRecords', 'missingRecords', 'regeneratedRecords', 'unreplayedRecords', 'resentRecords']);

/** The carried counters of a record plus what its own stats say (of every counter the totals show). */
export function countersWithCarried(unit: Pick<UnitRecord, 'stats' | 'carried'>): { [counter: string]: number } {
  const out: { [counter: string]: number } = { ...unit.carried };
  for (const stats of Object.values(unit.stats ?? {})) {
    for (const [k, v] of Object.entries(stats)) if (TOTALLED.has(k) && typeof v === 'number') out[k] = (out[k] ?? 0) + v;
  }
  return out;
}

/** What a new attempt carries of the record of the attempt it replaces: the carried counters only. */
function carriedOf(unit: Pick<UnitRecord, 'stats' | 'carried'>): { [counter: string]: number } {
  return Object.fromEntries(Object.entries(countersWithCarried(unit)).filter(([k]) => CARRIED.has(k)));
}

export class UnknownJobError extends Error {
  override name = 'UnknownJobError';
  constructor(readonly jobId: string) {
    super(`unknown job '${jobId}'`);
  }
}

/**
 * When a unit record takes a report: a status the lifecycle moves to from the record's (or the
 * one it has: a restatement), and never once the job stopped the unit, so a late heartbeat does
 * not revive it.
 */
function unitReportFence(status: UnitStatus | undefined): Condition[] {
  const accepted = status === undefined ? [...UNIT_LIFECYCLE.states] : [...UNIT_LIFECYCLE.sources(status), status];
  return onlyFrom(UNIT_LIFECYCLE, [...new Set(accepted)].filter((s) => s !== 'CANCELLED'));
}
const asItem = (value: object) => value as unknown as MetaItem;

export class JobStore implements UnitRecordStore {
  /** Unit-record partitions per job (fixed at submit), so unit writes need no read of the job. */
  private readonly shardCounts = new Map<string, number>();

  constructor(readonly metadata: MetadataStore) {}

  /** Stores the job item (a layout passed along is left out: it is computed, never stored). */
  async createJob(job: StoredJob): Promise<void> {
    const created = await this.metadata.put(jobPk(job.jobId), META_SK, asItem(storedJob(job as JobRecord)), [{ attr: 'jobId', op: 'notExists' }]);
    if (!created) throw new Error(`job '${job.jobId}' already exists`);
    this.shardCounts.set(job.jobId, job.shape.unitShards);
    await this.metadata.put('JOBS', job.jobId, { name: job.name, createdAt: job.createdAt, status: job.status });
  }

  async getJob(jobId: string): Promise<StoredJob> {
    const item = await this.metadata.get(jobPk(jobId), META_SK);
    if (!item) throw new UnknownJobError(jobId);
    const job = item as unknown as StoredJob;
    if (!job.shape) throw new Error(`job '${jobId}' was stored by an older Sluice (its item lists its units); it cannot be read by this one`);
    this.shardCounts.set(jobId, job.shape.unitShards);
    return job;
  }

  async listJobs(): Promise<{ jobId: string; name: string; createdAt: number; status: JobStatus }[]> {
    const items = await this.metadata.query('JOBS');
    return items.map(({ sk, item }) => ({ jobId: sk, ...(item as { name: string; createdAt: number; status: JobStatus }) }));
  }

  /** Ends the job; false when it has already ended (a finished, failed or cancelled job keeps its final status). */
  async setJobStatus(jobId: string, status: JobEnd, error?: string): Promise<boolean> {
    const set: MetaItem = { status, endedAt: Date.now(), ...(error ? { error } : {}) };
    const updated = await this.metadata.update(jobPk(jobId), META_SK, { set }, onlyFrom(JOB_LIFECYCLE, JOB_LIFECYCLE.sources(status)));
    if (updated) await this.metadata.update('JOBS', jobId, { set: { status } });
    return updated !== undefined;
  }

  async setProgress(jobId: string, mark: ProgressMark): Promise<void> {
    await this.metadata.update(jobPk(jobId), META_SK, { set: { progress: asItem(mark) } }, [{ attr: 'status', op: '=', value: 'RUNNING' }]);
  }

  async updateSettings(jobId: string, settings: JobSettings): Promise<void> {
    await this.metadata.update(jobPk(jobId), META_SK, { set: { settings: asItem(settings) } }, [{ attr: 'jobId', op: 'exists' }]);
  }

  /**
   * How many partitions the job's unit records are spread over (read once per job and process).
   * Unit records without a job item (a test of the unit lifecycle) are in one.
   */
  private async shards(jobId: string): Promise<number> {
    const known = this.shardCounts.get(jobId);
    if (known !== undefined) return known;
    const item = await this.metadata.get(jobPk(jobId), META_SK);
    if (!item) return 1;
    return (await this.getJob(jobId)).shape.unitShards;
  }

  /** The partition of a unit's record and heartbeat. */
  private async unitPk(jobId: string, unitId: string): Promise<string> {
    return unitsPk(jobId, shardOf(unitId, await this.shards(jobId)));
  }

  /**
   * Registers a new attempt of a unit; fails when a newer attempt is already registered. `previous`:
   * the unit's record as read by the caller, when nothing can have written it since (the attempt
   * died, its failure was raised from its exit), so it is not read again for what it carries over.
   */
  async startUnitAttempt(jobId: string, unitId: string, subtasks: string[], attempt: number, previous?: UnitRecord): Promise<boolean> {
    const now = Date.now();
    const pk = await this.unitPk(jobId, unitId);
    previous ??= attempt > 0 ? await this.getUnit(jobId, unitId) : undefined;
    const carried = previous && previous.attempt < attempt ? carriedOf(previous) : undefined;
    const record: UnitRecord = {
      unitId,
      subtasks,
      attempt,
      status: 'STARTING',
      startedAt: now,
      heartbeatAt: now,
      stats: {},
      requests: {},
      ...(carried && Object.keys(carried).length > 0 ? { carried } : {}),
    };
    const newer = (item: MetaItem) =>
      this.metadata.put(pk, item === beat ? beatSk(unitId) : unitSk(unitId), item, [{ attr: 'attempt', op: '<', value: attempt }]).then(
        async (ok) => ok || (await this.metadata.put(pk, item === beat ? beatSk(unitId) : unitSk(unitId), item, [{ attr: 'attempt', op: 'notExists' }])),
      );
    // No heartbeat yet: until the unit beats, its record's start time is its last sign of life.
    const beat: MetaItem = { unitId, attempt };
    // The record decides; the heartbeat item is written beside it (an older attempt's heartbeats
    // are refused from then on). Both take only a higher attempt, so however two bumps interleave
    // both items end at the highest; a beat item written by a bump whose record lost says what the
    // winner's says (at P=4000 on the emulator each call took 0.2-2 s of a failover).
    const [won] = await Promise.all([newer(asItem(record)), newer(beat)]);
    return won;
  }

  /**
   * A unit's heartbeat or status change, fenced by its attempt (and, from a running invocation, by
   * its owner token). False: a newer attempt, or another invocation, owns the record.
   */
  async reportUnit(jobId: string, unitId: string, attempt: number, changes: Partial<UnitRecord>, owner?: string): Promise<boolean> {
    const fence: Condition[] = [{ attr: 'attempt', op: '=', value: attempt }, ...unitReportFence(changes.status)];
    if (owner !== undefined) fence.push({ attr: 'owner', op: '=', value: owner });
    const updated = await this.metadata.update(await this.unitPk(jobId, unitId), unitSk(unitId), { set: asItem(changes) }, fence);
    return updated !== undefined;
  }

  /**
   * A liveness heartbeat alone: a small item, cheap to write often, fenced by attempt. False: a
   * newer attempt exists, or the job stopped this one (the unit must stop).
   */
  async beat(jobId: string, unitId: string, attempt: number): Promise<boolean> {
    const fence: Condition[] = [
      { attr: 'attempt', op: '=', value: attempt },
      { attr: 'stoppedAt', op: 'notExists' },
    ];
    return (await this.metadata.update(await this.unitPk(jobId, unitId), beatSk(unitId), { set: { heartbeatAt: Date.now() } }, fence)) !== undefined;
  }

  /**
   * The first invocation of an attempt takes the record: only one can (a duplicated launch event,
   * or a retried invocation after a hand-over, finds an owner and must not run).
   */
  async startInvocation(jobId: string, unitId: string, attempt: number, owner: string): Promise<boolean> {
    const fence: Condition[] = [
      { attr: 'attempt', op: '=', value: attempt },
      { attr: 'owner', op: 'notExists' },
      ...onlyFrom(UNIT_LIFECYCLE, UNIT_LIFECYCLE.sources('RUNNING')),
    ];
    const set = asItem({ status: 'RUNNING', heartbeatAt: Date.now(), owner, generation: 0 });
    return (await this.metadata.update(await this.unitPk(jobId, unitId), unitSk(unitId), { set }, fence)) !== undefined;
  }

  /**
   * An invocation hands over: points its record at the state for invocation `generation`, and
   * counts as starting again (the supervisor gives it the startup grace). False: it no longer owns
   * the record (a newer attempt exists).
   */
  async recordHandover(jobId: string, unitId: string, attempt: number, owner: string, generation: number, key: string, report: Partial<UnitRecord>): Promise<boolean> {
    const now = Date.now();
    const handover: UnitHandoverPointer = { generation, key, at: now, from: owner };
    return this.reportUnit(jobId, unitId, attempt, { ...report, handover, status: UNIT_LIFECYCLE.move('RUNNING', 'STARTING'), heartbeatAt: now }, owner);
  }

  /**
   * The next invocation claims the hand-over of its attempt, becoming the record's owner: exactly one
   * claim succeeds (a duplicated Lambda event, or a relaunch racing a failover, gets undefined and
   * must not run). A claim whose response was lost and is retried sees itself as the owner.
   */
  async claimHandover(jobId: string, unitId: string, attempt: number, owner: string): Promise<UnitHandoverPointer | undefined> {
    const read = () => this.getUnit(jobId, unitId);
    const mine = (u: UnitRecord | undefined) => (u?.attempt === attempt && u.owner === owner && u.handover ? u.handover : undefined);
    const unit = await read();
    const handover = unit?.handover;
    if (!unit || !handover || unit.attempt !== attempt) return undefined;
    if (unit.owner !== handover.from) return mine(unit);
    const fence: Condition[] = [
      { attr: 'attempt', op: '=', value: attempt },
      { attr: 'owner', op: '=', value: handover.from },
    ];
    const claimed = await this.metadata.update(await this.unitPk(jobId, unitId), unitSk(unitId), { set: { owner, generation: handover.generation, heartbeatAt: Date.now() } }, fence);
    return claimed !== undefined ? handover : mine(await read());
  }

  /**
   * The job stopped this unit's attempt (cancel, or the job failed): its record says CANCELLED
   * with the reason, unless it had ended on its own. Its later heartbeats are refused, so it stops
   * (and is shown stopped) even where the launcher cannot kill it (a Lambda invocation).
   */
  async markStopped(jobId: string, unitId: string, attempt: number, reason: string): Promise<boolean> {
    const pk = await this.unitPk(jobId, unitId);
    const stoppedAt = Date.now();
    const fence: Condition[] = [{ attr: 'attempt', op: '=', value: attempt }, ...onlyFrom(UNIT_LIFECYCLE, UNIT_LIFECYCLE.sources('CANCELLED'))];
    const stopped = (await this.metadata.update(pk, unitSk(unitId), { set: { status: 'CANCELLED', error: reason, stoppedAt } }, fence)) !== undefined;
    if (stopped) await this.metadata.update(pk, beatSk(unitId), { set: { stoppedAt } }, [{ attr: 'attempt', op: '=', value: attempt }]);
    return stopped;
  }

  /** A unit's record (its last report; the liveness heartbeat is not read). */
  async getUnit(jobId: string, unitId: string): Promise<UnitRecord | undefined> {
    return (await this.metadata.get(await this.unitPk(jobId, unitId), unitSk(unitId))) as unknown as UnitRecord | undefined;
  }

  /**
   * Every unit record of the job, each with its latest heartbeat (the record's or its liveness
   * item's, whichever is newer for the same attempt): one query per partition.
   */
  async getUnits(jobId: string): Promise<UnitRecord[]> {
    const shards = await this.shards(jobId);
    const parts = await mapWithConcurrency(Array.from({ length: shards }, (_, s) => s), 16, (s) => this.metadata.query(unitsPk(jobId, s)));
    const out: UnitRecord[] = [];
    for (const items of parts) {
      const beats = new Map<string, MetaItem>();
      for (const { sk, item } of items) if (sk.startsWith(BEAT_PREFIX)) beats.set(sk.slice(BEAT_PREFIX.length), item);
      for (const { sk, item } of items) {
        if (!sk.startsWith(UNIT_PREFIX)) continue;
        const unit = item as unknown as UnitRecord;
        const beat = beats.get(unit.unitId);
        if (beat && beat.attempt === unit.attempt && typeof beat.heartbeatAt === 'number' && beat.heartbeatAt > unit.heartbeatAt) unit.heartbeatAt = beat.heartbeatAt;
        out.push(unit);
      }
    }
    return out.sort((a, b) => (a.unitId < b.unitId ? -1 : a.unitId > b.unitId ? 1 : 0));
  }

  /**
   * The current attempt of these units (all when none are named), from their heartbeat items: one
   * query per partition that holds any of them. Not from their records: a record carries its unit's
   * counters (30-40 KB at 100 subtasks a unit), a heartbeat item ~80 bytes, and every checkpoint
   * poll and restart reads attempts (at P=4000 a poll read ~790 of its ~1,300 read units in unit
   * records; docs/scale.md). A bump writes both items, each only to a higher attempt, and is awaited before its
   * attempt launches or fences a checkpoint (`startUnitAttempt`), so both say the same of any
   * attempt that runs.
   */
  async unitAttempts(jobId: string, unitIds?: Iterable<string>): Promise<Map<string, number>> {
    const shards = await this.shards(jobId);
    const wanted = unitIds === undefined ? undefined : new Set(unitIds);
    const partitions = wanted === undefined ? Array.from({ length: shards }, (_, s) => s) : [...new Set([...wanted].map((u) => shardOf(u, shards)))];
    const parts = await mapWithConcurrency(partitions, 16, (s) => this.metadata.query(unitsPk(jobId, s), BEAT_PREFIX));
    const out = new Map<string, number>();
    for (const items of parts) {
      for (const { item } of items) {
        const unitId = String(item.unitId);
        if (wanted === undefined || wanted.has(unitId)) out.set(unitId, Number(item.attempt));
      }
    }
    return out;
  }
}
