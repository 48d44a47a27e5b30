/**
 * What the job API handlers call: three services behind one `ApiServices` object, built in one
 * place (`buildApiServices`) from ports, so the same handlers run on AWS (functions/api/cloud.ts),
 * in the local server (lib/api-server) and in tests (memory ports).
 *
 * - jobs: submit, list, details (units, attempts, regions, availability flags, totals), cancel.
 * - checkpoints: trigger now, history, through the coordinator's steps (lib/jobs/checkpoint-steps.ts)
 *   and what they store (StepsCheckpointService); replaceable behind the CheckpointService interface.
 * - schedules: the job's checkpoint schedule, stored in its settings and applied to a
 *   SchedulerPort (EventBridge Scheduler in the cloud, the local scheduler in the dev server).
 */
import { RecoveryMetrics, type FailureEvent } from '../../lib/recovery/recovery-metrics';
import type { JobRegistry } from '../../lib/api/registry';
import type { Json } from '../../lib/api/functions';
import { JobService, type SubmitRequest, type UnitLauncher, type JobTotals } from '../../lib/jobs/job-service';
import { JobStore, type JobRecord, type JobSettings, type JobStatus, type UnitRecord } from '../../lib/jobs/job-store';
import type { Region } from '../../lib/graph/execution-graph';
import type { ChannelTransport } from '../../lib/ports/channels';
import type { BlobStore } from '../../lib/ports/blob-store';
import { CheckpointSteps } from '../../lib/jobs/checkpoint-steps';
import type { MetaItem, MetadataStore } from '../../lib/ports/metadata-store';
import { systemClock, type Clock } from '../../lib/ports/clock';
import {
  approximateIntervalSeconds,
  describeSchedule,
  fireTimes,
  parseSchedule,
  ScheduleError,
  type CheckpointSchedule,
} from '../../lib/schedule';

// ---------------------------------------------------------------------------------------------
// Errors the handlers turn into HTTP statuses (besides JobSpecError 400, UnknownJobError 404).

/** The request is valid but the job is not in a state that allows it (e.g. cancel a finished job). */
export class ConflictError extends Error {
  override name = 'ConflictError';
}

// ---------------------------------------------------------------------------------------------
// Schedule in the job's settings.

/**
 * Checkpoint settings with the schedule. `JobSettings['checkpoint']` has no `schedule` member yet;
 * it is stored next to `intervalSeconds`, which mirrors it for readers that know only that field
 * (the rate, or for a cron the gap between its next two fire times; 0 when off).
 */
export type CheckpointSettingsWithSchedule = JobSettings['checkpoint'] & { schedule?: CheckpointSchedule | null };

/** The schedule stored in a job's settings; an old job with only `intervalSeconds` reads as a rate. */
export function scheduleOf(settings: JobSettings): CheckpointSchedule | null {
  const checkpoint = settings.checkpoint as CheckpointSettingsWithSchedule;
  if (checkpoint.schedule) return checkpoint.schedule;
  if (checkpoint.schedule === undefined && checkpoint.intervalSeconds > 0) return { kind: 'rate', seconds: checkpoint.intervalSeconds };
  return null;
}

export function withSchedule(settings: JobSettings, schedule: CheckpointSchedule | null, now: number): JobSettings {
  const checkpoint: CheckpointSettingsWithSchedule = { ...settings.checkpoint, schedule, intervalSeconds: approximateIntervalSeconds(schedule, now) };
  return { ...settings, checkpoint };
}

/** Where a job's checkpoint schedule fires: EventBridge Scheduler, the local scheduler, or nothing. */
export interface SchedulerPort {
  /** Refuses schedules the target cannot run (EventBridge: rates in whole minutes). Throws ScheduleError. */
  check(schedule: CheckpointSchedule): void;
  /** Creates or updates the job's schedule; null removes it (missing is fine). */
  apply(jobId: string, schedule: CheckpointSchedule | null): Promise<void>;
}

/** A SchedulerPort that only remembers what it was told (tests, and installations with no scheduler). */
export class RecordingSchedulerPort implements SchedulerPort {
  readonly schedules = new Map<string, CheckpointSchedule>();
  readonly calls: { jobId: string; schedule: CheckpointSchedule | null }[] = [];
  check(_schedule: CheckpointSchedule): void {}
  async apply(jobId: string, schedule: CheckpointSchedule | null): Promise<void> {
    this.calls.push({ jobId, schedule });
    if (schedule) this.schedules.set(jobId, schedule);
    else this.schedules.delete(jobId);
  }
}

export interface ScheduleView {
  jobId: string;
  schedule: CheckpointSchedule | null;
  description: string;
  /** The next fire times (ISO), at most 3. */
  nextFireTimes: string[];
}

export class ScheduleService {
  private readonly clock: Clock;

  constructor(
    private readonly deps: { jobs: JobStore; port: SchedulerPort; clock?: Clock },
  ) {
    this.clock = deps.clock ?? systemClock;
  }

  /** A schedule from request data (null: off), checked for this installation's scheduler. Throws ScheduleError. */
  validate(input: unknown): CheckpointSchedule | null {
    if (input === null) return null;
    const schedule = parseSchedule(input, this.clock.now());
    this.deps.port.check(schedule);
    return schedule;
  }

  /** `running: false` (the job ended): the schedule is kept as a record, but it fires no more. */
  view(jobId: string, schedule: CheckpointSchedule | null, running = true): ScheduleView {
    return {
      jobId,
      schedule,
      description: running ? describeSchedule(schedule) : `${describeSchedule(schedule)} (stopped: the job has ended)`,
      nextFireTimes: schedule && running ? fireTimes(schedule, this.clock.now(), 3).map((t) => new Date(t).toISOString()) : [],
    };
  }

  async get(jobId: string): Promise<ScheduleView> {
    const job = await this.deps.jobs.getJob(jobId);
    return this.view(jobId, scheduleOf(job.settings), job.status === 'RUNNING');
  }

  /** Changes a running job's schedule, without a restart: the scheduler first, then the settings. */
  async set(jobId: string, input: unknown): Promise<ScheduleView> {
    const schedule = this.validate(input);
    const job = await this.deps.jobs.getJob(jobId);
    if (job.status !== 'RUNNING') throw new JobNotRunningError(`job '${jobId}' is ${job.status}; only a running job's schedule can change`);
    await this.deps.port.apply(jobId, schedule);
    await this.deps.jobs.updateSettings(jobId, withSchedule(job.settings, schedule, this.clock.now()));
    return this.view(jobId, schedule);
  }

  /** After submit: stores the schedule in the job's settings and starts it. */
  async install(job: JobRecord, schedule: CheckpointSchedule | null): Promise<void> {
    await this.deps.jobs.updateSettings(job.jobId, withSchedule(job.settings, schedule, this.clock.now()));
    if (schedule) await this.deps.port.apply(job.jobId, schedule);
  }

  /** At cancel: stops firing (the settings keep the schedule, as a record). */
  async remove(jobId: string): Promise<void> {
    await this.deps.port.apply(jobId, null);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints.

/** A job that is not running (finished, failed, cancelled): nothing to checkpoint or reschedule. */
export class JobNotRunningError extends ConflictError {
  override name = 'JobNotRunningError';
}

/** The coordinator refused a trigger (a checkpoint of the job is still pending). */
export class CheckpointRefusedError extends ConflictError {
  override name = 'CheckpointRefusedError';
}

export interface CheckpointHistoryItem {
  checkpointId: number;
  /** pending (triggered, not decided), completed, failed. */
  status: string;
  triggerTime?: number;
  endTime?: number;
  /** Pending: when it times out. */
  deadline?: number;
  durationMs?: number;
  regionsTotal?: number;
  participating?: number;
  completedRegions?: number;
  failedRegionCount?: number;
  reason?: string;
  message?: string;
  bytesWritten?: number;
  bytesKept?: number;
  manifestKey?: string;
}

export interface CheckpointService {
  /** Starts a checkpoint of a running job now. */
  trigger(jobId: string): Promise<{ checkpointId: number }>;
  /** The job's checkpoints, oldest first (pending ones included). */
  history(jobId: string): Promise<CheckpointHistoryItem[]>;
}

/** Input and result of the coordinator's steps (the state machine's contract, see functions/checkpoint-coordinator.ts). */
export interface CheckpointStepInput {
  jobId: string;
  checkpointId?: number | null;
}
export interface CheckpointStepResult {
  jobId: string;
  checkpointId: number | null;
  done: boolean;
  outcome?: string;
  message?: string;
  waitSeconds?: number;
}

/** The four coordinator steps (lib/jobs/checkpoint-steps.ts CheckpointSteps has this shape). */
export interface CheckpointWorkflowSteps {
  trigger(input: CheckpointStepInput): Promise<CheckpointStepResult>;
  poll(input: CheckpointStepInput): Promise<CheckpointStepResult>;
  finalize(input: CheckpointStepInput): Promise<CheckpointStepResult>;
  notify(input: CheckpointStepInput): Promise<CheckpointStepResult>;
}

const jobPk = (jobId: string) => `JOB#${jobId}`;
/** Pending-checkpoint markers the trigger step writes (lib/jobs/checkpoint-steps.ts PENDING_PREFIX). */
export const PENDING_SK_PREFIX = 'CKPT_PENDING#';

/**
 * Checkpoints through the coordinator's steps: `trigger` runs the trigger step (it takes the id,
 * sends the trigger to the sources and writes the pending marker), then `start`s the rest of the
 * workflow — in the cloud a Step Functions execution with { jobId, checkpointId }, whose Trigger
 * state passes a given id through; locally the same poll/finalize/notify steps in this process.
 * `history` reads what the coordinator stores: the finalized entries `CKPT#<12-digit id>` of
 * pk `JOB#<jobId>` and the pending markers `CKPT_PENDING#<id>`.
 */
export class StepsCheckpointService implements CheckpointService {
  constructor(
    private readonly deps: {
      jobs: JobStore;
      metadata: MetadataStore;
      steps: CheckpointWorkflowSteps;
      /** Runs the rest of the workflow (poll, finalize, notify) for a triggered checkpoint. */
      start?: (jobId: string, checkpointId: number) => Promise<void>;
    },
  ) {}

  async trigger(jobId: string): Promise<{ checkpointId: number }> {
    const job = await this.deps.jobs.getJob(jobId);
    if (job.status !== 'RUNNING') throw new JobNotRunningError(`job '${jobId}' is ${job.status}; only a running job can take a checkpoint`);
    const result = await this.deps.steps.trigger({ jobId });
    if (result.checkpointId === null || result.checkpointId === undefined) {
      if (result.outcome === 'job-not-running') throw new JobNotRunningError(`job '${jobId}' is not running: ${result.message ?? ''}`.trim());
      throw new CheckpointRefusedError(`checkpoint not started: ${result.message ?? result.outcome ?? 'refused'}`);
    }
    await this.deps.start?.(jobId, result.checkpointId);
    return { checkpointId: result.checkpointId };
  }

  async history(jobId: string): Promise<CheckpointHistoryItem[]> {
    const job = await this.deps.jobs.getJob(jobId); // 404 for an unknown job
    const read = () => Promise.all([this.deps.metadata.query(jobPk(jobId), 'CKPT#'), this.deps.metadata.query(jobPk(jobId), PENDING_SK_PREFIX)]);
    let [done, pending] = await read();
    if (job.status !== 'RUNNING' && pending.length > 0) {
      // The job ended with a checkpoint pending and no workflow left to decide it: decide it now
      // (finalize of an ended job fails it 'job-ended'). One that cannot be decided stays pending.
      for (const { item } of pending) await this.deps.steps.finalize({ jobId, checkpointId: Number(item.checkpointId) }).catch(() => undefined);
      [done, pending] = await read();
    }
    const byId = new Map<number, CheckpointHistoryItem>();
    for (const { sk, item } of pending) {
      const h = toHistoryItem(sk.slice(PENDING_SK_PREFIX.length), item);
      byId.set(h.checkpointId, { ...h, status: 'pending' });
    }
    for (const { sk, item } of done) {
      const h = toHistoryItem(sk.slice('CKPT#'.length), item);
      byId.set(h.checkpointId, h);
    }
    return [...byId.values()].sort((a, b) => a.checkpointId - b.checkpointId);
  }
}

/** A stored checkpoint item as a history item; tolerant of missing fields. */
function toHistoryItem(idText: string, item: MetaItem): CheckpointHistoryItem {
  const num = (k: string) => (typeof item[k] === 'number' ? (item[k] as number) : undefined);
  const str = (k: string) => (typeof item[k] === 'string' ? (item[k] as string) : undefined);
  const out: CheckpointHistoryItem = { checkpointId: num('checkpointId') ?? Number(idText), status: str('status') ?? 'unknown' };
  for (const k of ['triggerTime', 'endTime', 'deadline', 'durationMs', 'regionsTotal', 'participating', 'completedRegions', 'failedRegionCount', 'bytesWritten', 'bytesKept'] as const) {
    const v = num(k);
    if (v !== undefined) out[k] = v;
  }
  for (const k of ['reason', 'message', 'manifestKey'] as const) {
    const v = str(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Jobs.

export interface JobSummary {
  jobId: string;
  name: string;
  createdAt: number;
  status: JobStatus;
}

export interface UnitView {
  unitId: string;
  subtasks: string[];
  attempt: number;
  /** Invocation of the attempt (Lambda hand-overs; 0 for the first). */
  invocation: number;
  status: string;
  startedAt?: number;
  heartbeatAt?: number;
  error?: string;
  stats: UnitRecord['stats'];
}

export interface JobDetails {
  job: {
    jobId: string;
    name: string;
    params: { [k: string]: Json };
    status: JobStatus;
    createdAt: number;
    endedAt?: number;
    error?: string;
    settings: JobSettings;
  };
  schedule: ScheduleView;
  /** Every placed unit, with its current attempt (units not registered yet show as PENDING). */
  units: UnitView[];
  regions: Region[];
  /** Availability flags of sub-partitions (items `SUBPART#<id>` of the job), as stored. */
  availability: ({ subPartition: string } & MetaItem)[];
  /** Unit failures and their recovery: detection time, time until available again, records dropped. */
  failures: FailureEvent[];
  totals: JobTotals;
}

/** A submission: the job service's request, with an optional schedule in the checkpoint settings. */
export interface SubmitInput extends Omit<SubmitRequest, 'checkpoint'> {
  checkpoint?: SubmitRequest['checkpoint'] & { schedule?: unknown };
}

export interface JobApi {
  submit(input: SubmitInput): Promise<JobRecord>;
  list(): Promise<JobSummary[]>;
  details(jobId: string): Promise<JobDetails>;
  cancel(jobId: string): Promise<JobRecord>;
}

export class JobApiService implements JobApi {
  constructor(
    private readonly deps: {
      service: JobService;
      jobs: JobStore;
      metadata: MetadataStore;
      schedules: ScheduleService;
      /** Called after a submit (the dev server starts supervising the job). */
      onSubmitted?: (job: JobRecord) => void;
    },
  ) {}

  async submit(input: SubmitInput): Promise<JobRecord> {
    const { schedule: scheduleInput, ...checkpoint } = input.checkpoint ?? {};
    let schedule: CheckpointSchedule | null;
    try {
      schedule =
        scheduleInput !== undefined
          ? this.deps.schedules.validate(scheduleInput)
          : checkpoint.intervalSeconds
            ? this.deps.schedules.validate({ kind: 'rate', seconds: checkpoint.intervalSeconds })
            : null;
    } catch (err) {
      if (err instanceof ScheduleError) {
        const field = scheduleInput !== undefined ? `checkpoint.schedule${err.field === 'kind' ? '' : `.${err.field}`}` : 'checkpoint.intervalSeconds';
        throw new ScheduleError(err.message, field);
      }
      throw err;
    }
    const request: SubmitRequest = { ...input, checkpoint: { ...checkpoint, intervalSeconds: approximateIntervalSeconds(schedule) } };
    const job = await this.deps.service.submit(request);
    try {
      await this.deps.schedules.install(job, schedule);
    } catch (err) {
      await this.deps.service.cancel(job.jobId).catch(() => undefined);
      throw err;
    }
    this.deps.onSubmitted?.(job);
    return this.deps.jobs.getJob(job.jobId);
  }

  async list(): Promise<JobSummary[]> {
    const jobs = await this.deps.jobs.listJobs();
    return jobs.sort((a, b) => b.createdAt - a.createdAt || a.jobId.localeCompare(b.jobId));
  }

  async details(jobId: string): Promise<JobDetails> {
    const [view, flags, failures] = await Promise.all([
      this.deps.service.view(jobId),
      this.deps.metadata.query(jobPk(jobId), 'SUBPART#'),
      new RecoveryMetrics(this.deps.metadata).list(jobId),
    ]);
    const { job } = view;
    const registered = new Map(view.units.map((u) => [u.unitId, u]));
    const units: UnitView[] = job.units.map((placement) => {
      const u = registered.get(placement.unitId);
      if (!u) return { unitId: placement.unitId, subtasks: placement.subtasks, attempt: 0, invocation: 0, status: 'PENDING', stats: {} };
      return {
        unitId: u.unitId,
        subtasks: u.subtasks,
        attempt: u.attempt,
        invocation: u.generation ?? 0,
        status: u.status,
        startedAt: u.startedAt,
        heartbeatAt: u.heartbeatAt,
        ...(u.error ? { error: u.error } : {}),
        stats: u.stats ?? {},
      };
    });
    return {
      job: {
        jobId: job.jobId,
        name: job.name,
        params: job.params,
        status: job.status,
        createdAt: job.createdAt,
        ...(job.endedAt !== undefined ? { endedAt: job.endedAt } : {}),
        ...(job.error ? { error: job.error } : {}),
        settings: job.settings,
      },
      schedule: this.deps.schedules.view(jobId, scheduleOf(job.settings)),
      units,
      regions: job.regions,
      availability: flags.map(({ sk, item }) => ({ ...item, subPartition: sk.slice('SUBPART#'.length) })),
      failures,
      totals: view.totals,
    };
  }

  /** Stops the units and deletes the queues (keeps checkpoints), and removes the schedule. */
  async cancel(jobId: string): Promise<JobRecord> {
    const job = await this.deps.jobs.getJob(jobId);
    if (job.status !== 'RUNNING') throw new JobNotRunningError(`job '${jobId}' is ${job.status}, not running`);
    await this.deps.schedules.remove(jobId);
    return this.deps.service.cancel(jobId);
  }
}

// ---------------------------------------------------------------------------------------------
// Composition.

export interface ApiServices {
  jobs: JobApi;
  checkpoints: CheckpointService;
  schedules: ScheduleService;
}

export interface ApiDeps {
  metadata: MetadataStore;
  channels: ChannelTransport;
  blobs: BlobStore;
  registry: JobRegistry;
  queuePrefix: string;
  /** How units start (Lambda, Fargate, child processes, in-process in tests). */
  launcher: UnitLauncher;
  scheduler: SchedulerPort;
  /**
   * Runs the rest of a triggered checkpoint's workflow: Step Functions StartExecution with
   * { jobId, checkpointId } in the cloud, the local workflow driver in the dev server.
   */
  startCheckpoint?: (jobId: string, checkpointId: number, steps: CheckpointWorkflowSteps) => Promise<void>;
  /** A job service to use instead of building one (the local runtime's). */
  jobService?: JobService;
  /** Replaces the checkpoint service. */
  checkpoints?: CheckpointService;
  onSubmitted?: (job: JobRecord) => void;
  clock?: Clock;
}

export interface BuiltApiServices extends ApiServices {
  /** The coordinator's steps over the same ports (the local workflow driver uses them). */
  steps: CheckpointWorkflowSteps;
  service: JobService;
}

/** The one place the API's services are put together. */
export function buildApiServices(deps: ApiDeps): BuiltApiServices {
  const jobs = new JobStore(deps.metadata);
  const service =
    deps.jobService ??
    new JobService({ jobs, channels: deps.channels, registry: deps.registry, queuePrefix: deps.queuePrefix, launcher: deps.launcher });
  const clock = deps.clock ? { clock: deps.clock } : {};
  const schedules = new ScheduleService({ jobs, port: deps.scheduler, ...clock });
  const steps = new CheckpointSteps({ jobs, service, metadata: deps.metadata, blobs: deps.blobs, ...clock });
  const start = deps.startCheckpoint;
  const checkpoints =
    deps.checkpoints ??
    new StepsCheckpointService({ jobs, metadata: deps.metadata, steps, ...(start ? { start: (jobId: string, id: number) => start(jobId, id, steps) } : {}) });
  return {
    jobs: new JobApiService({ service, jobs, metadata: deps.metadata, schedules, ...(deps.onSubmitted ? { onSubmitted: deps.onSubmitted } : {}) }),
    checkpoints,
    schedules,
    steps,
    service,
  };
}
