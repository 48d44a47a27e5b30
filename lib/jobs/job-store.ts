/**
 * Typed job and task-unit records over the metadata store (one DynamoDB table).
 *
 *   pk JOBS            sk <jobId>          job summary, for listing
 *   pk JOB#<jobId>     sk META             the job: name, params, settings, units, regions, status
 *   pk JOB#<jobId>     sk UNIT#<unitId>    a task unit: subtasks, attempt, status, heartbeat, counters
 *
 * Unit writes carry the unit's attempt as a fencing token: a unit of an older attempt cannot
 * overwrite the record of its replacement.
 */
import type { Condition, MetaItem, MetadataStore } from '../ports/metadata-store';
import type { JobParams } from '../api/registry';
import type { Region } from '../graph/execution-graph';
import { UNIT_LIFECYCLE, type UnitHandoverPointer, type UnitRecord, type UnitRecordStore, type UnitStatus } from '../ports/unit-records';
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

/** Where a job's task units run in the cloud (the local runtime runs child processes for both). */
export type UnitRuntime = 'lambda' | 'fargate';

export interface JobSettings {
  failover: FailoverStrategy;
  /** Where the job's task units run; missing: the deployment's default (SLUICE_LAUNCHER). */
  runOn?: UnitRuntime;
  /** Heartbeats older than this fail a unit. */
  heartbeatTimeoutMs: number;
  /** Most subtasks one task unit hosts (placement.ts); missing: 1. */
  subtasksPerUnit?: number;
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

export interface UnitPlacement {
  unitId: string;
  subtasks: string[];
  controlQueue: string;
  /**
   * The queue every channel into the unit's subtasks is multiplexed over (lib/runtime/channel-mux.ts);
   * absent when none of them reads an edge (sources only), and in jobs placed before units had one.
   */
  inputQueue?: string;
}

export interface JobRecord {
  jobId: string;
  name: string;
  params: JobParams;
  settings: JobSettings;
  status: JobStatus;
  createdAt: number;
  endedAt?: number;
  /** Task units: which subtasks each hosts, and its control queue. */
  units: UnitPlacement[];
  regions: Region[];
  queues: string[];
  error?: string;
  /** The supervisor's last look at the job's progress (the cloud supervisor is stateless between passes). */
  progress?: ProgressMark;
}

/**
 * Counters that add up over attempts (records in and out are progress, counted per attempt).
 * Record loss and replay counters (dropped, missing, duplicate, regenerated, resent) are not among
 * them: they are checkpointed state, and a restarted attempt starts from its checkpoint's values
 * and counts again what comes again after it (adding the dead attempt's would count it twice).
 */
const CARRIED = new Set(['duplicates', 'fenced', 'replayedRecords', 'expiredReceipts']);
/** Every counter a unit's totals show: the carried ones and the checkpointed ones. */
const TOTALLED = new Set([...CARRIED, 'dropped', 'duplicateRecords', 'missingRecords', 'regeneratedRecords', 'resentRecords']);

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

const jobPk = (jobId: string) => `JOB#${jobId}`;

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
  constructor(readonly metadata: MetadataStore) {}

  async createJob(job: JobRecord): Promise<void> {
    const created = await this.metadata.put(jobPk(job.jobId), 'META', asItem(job), [{ attr: 'jobId', op: 'notExists' }]);
    if (!created) throw new Error(`job '${job.jobId}' already exists`);
    await this.metadata.put('JOBS', job.jobId, { name: job.name, createdAt: job.createdAt, status: job.status });
  }

  async getJob(jobId: string): Promise<JobRecord> {
    const item = await this.metadata.get(jobPk(jobId), 'META');
    if (!item) throw new UnknownJobError(jobId);
    return item as unknown as JobRecord;
  }

  async listJobs(): Promise<{ jobId: string; name: string; createdAt: number; status: JobStatus }[]> {
    const items = await this.metadata.query('JOBS');
    return items.map(({ sk, item }) => ({ jobId: sk, ...(item as { name: string; createdAt: number; status: JobStatus }) }));
  }

  /** Ends the job; false when it has already ended (a finished, failed or cancelled job keeps its final status). */
  async setJobStatus(jobId: string, status: JobEnd, error?: string): Promise<boolean> {
    const set: MetaItem = { status, endedAt: Date.now(), ...(error ? { error } : {}) };
    const updated = await this.metadata.update(jobPk(jobId), 'META', { set }, onlyFrom(JOB_LIFECYCLE, JOB_LIFECYCLE.sources(status)));
    if (updated) await this.metadata.update('JOBS', jobId, { set: { status } });
    return updated !== undefined;
  }

  async setProgress(jobId: string, mark: ProgressMark): Promise<void> {
    await this.metadata.update(jobPk(jobId), 'META', { set: { progress: asItem(mark) } }, [{ attr: 'status', op: '=', value: 'RUNNING' }]);
  }

  async updateSettings(jobId: string, settings: JobSettings): Promise<void> {
    await this.metadata.update(jobPk(jobId), 'META', { set: { settings: asItem(settings) } }, [{ attr: 'jobId', op: 'exists' }]);
  }

  /** Registers a new attempt of a unit; fails when a newer attempt is already registered. */
  async startUnitAttempt(jobId: string, unitId: string, subtasks: string[], attempt: number): Promise<boolean> {
    const now = Date.now();
    const previous = attempt > 0 ? await this.getUnit(jobId, unitId) : undefined;
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
    return this.metadata.put(jobPk(jobId), `UNIT#${unitId}`, asItem(record), [{ attr: 'attempt', op: '<', value: attempt }]).then(
      async (ok) => ok || (await this.metadata.put(jobPk(jobId), `UNIT#${unitId}`, asItem(record), [{ attr: 'attempt', op: 'notExists' }])),
    );
  }

  /**
   * A unit's heartbeat or status change, fenced by its attempt (and, from a running invocation, by
   * its owner token). False: a newer attempt, or another invocation, owns the record.
   */
  async reportUnit(jobId: string, unitId: string, attempt: number, changes: Partial<UnitRecord>, owner?: string): Promise<boolean> {
    const fence: Condition[] = [{ attr: 'attempt', op: '=', value: attempt }, ...unitReportFence(changes.status)];
    if (owner !== undefined) fence.push({ attr: 'owner', op: '=', value: owner });
    const updated = await this.metadata.update(jobPk(jobId), `UNIT#${unitId}`, { set: asItem(changes) }, fence);
    return updated !== undefined;
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
    return (await this.metadata.update(jobPk(jobId), `UNIT#${unitId}`, { set }, fence)) !== undefined;
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
    const claimed = await this.metadata.update(jobPk(jobId), `UNIT#${unitId}`, { set: { owner, generation: handover.generation, heartbeatAt: Date.now() } }, fence);
    return claimed !== undefined ? handover : mine(await read());
  }

  /**
   * The job stopped this unit's attempt (cancel, or the job failed): its record says CANCELLED
   * with the reason, unless it had ended on its own. Its later heartbeats are refused, so it stops
   * (and is shown stopped) even where the launcher cannot kill it (a Lambda invocation).
   */
  async markStopped(jobId: string, unitId: string, attempt: number, reason: string): Promise<boolean> {
    const fence: Condition[] = [{ attr: 'attempt', op: '=', value: attempt }, ...onlyFrom(UNIT_LIFECYCLE, UNIT_LIFECYCLE.sources('CANCELLED'))];
    return (await this.metadata.update(jobPk(jobId), `UNIT#${unitId}`, { set: { status: 'CANCELLED', error: reason, stoppedAt: Date.now() } }, fence)) !== undefined;
  }

  async getUnit(jobId: string, unitId: string): Promise<UnitRecord | undefined> {
    return (await this.metadata.get(jobPk(jobId), `UNIT#${unitId}`)) as unknown as UnitRecord | undefined;
  }

  async getUnits(jobId: string): Promise<UnitRecord[]> {
    const items = await this.metadata.query(jobPk(jobId), 'UNIT#');
    return items.map(({ item }) => item as unknown as UnitRecord);
  }
}
