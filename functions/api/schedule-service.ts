/**
 * The job's checkpoint schedule: stored in its settings and applied to a SchedulerPort (EventBridge
 * Scheduler in the cloud, the local scheduler in the dev server).
 */
import { JobStore, type JobRecord, type JobSettings } from '../../lib/jobs/job-store';
import { systemClock, type Clock } from '../../lib/ports/clock';
import { approximateIntervalSeconds, describeSchedule, fireTimes, parseSchedule, type CheckpointSchedule } from '../../lib/schedule';
import { JobNotRunningError } from './errors';

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
