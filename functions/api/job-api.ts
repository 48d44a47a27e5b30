/** Jobs through the API: submit, list, details (graph, units, attempts, regions, flags, totals), cancel, registered jobs. */
import { RecoveryMetrics, type FailureEvent } from '../../lib/recovery/recovery-metrics';
import type { Json } from '../../lib/api/functions';
import type { JobRegistry, ParamSpec } from '../../lib/api/registry';
import { JobService, type SubmitRequest, type JobTotals } from '../../lib/jobs/job-service';
import { JobStore, type JobRecord, type JobSettings, type JobStatus, type UnitRecord } from '../../lib/jobs/job-store';
import type { Region } from '../../lib/graph/execution-graph';
import { graphView, type GraphView } from '../../lib/graph/graph-view';
import type { MetadataStore } from '../../lib/ports/metadata-store';
import { listFlags, type SubPartitionFlag } from '../../lib/recovery/availability';
import { approximateIntervalSeconds, ScheduleError, type CheckpointSchedule } from '../../lib/schedule';
import { JobNotRunningError } from './errors';
import { ScheduleService, scheduleOf, type ScheduleView } from './schedule-service';


export interface JobSummary {
  jobId: string;
  name: string;
  createdAt: number;
  status: JobStatus;
}

/** A registered job: what a submission can name, and the parameters it takes. */
export interface JobDefinitionView {
  name: string;
  description: string;
  params: { [name: string]: ParamSpec };
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
  /** Tasks (chained operators, parallelism) and edges (kind, sub-partitions, channels). */
  graph?: GraphView;
  /** Why `graph` is missing: the job's definition could not be built (say, its code changed or broke). */
  graphError?: string;
  /** Availability flags of sub-partitions that were ever marked, named `<edge id>#<consumer>`. */
  availability: ({ subPartition: string } & SubPartitionFlag)[];
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
  /** The registered jobs a submission can name, with their parameters. */
  definitions(): JobDefinitionView[];
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
      registry: JobRegistry;
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
    return this.deps.service.job(job.jobId);
  }

  async list(): Promise<JobSummary[]> {
    const jobs = await this.deps.jobs.listJobs();
    return jobs.sort((a, b) => b.createdAt - a.createdAt || a.jobId.localeCompare(b.jobId));
  }

  definitions(): JobDefinitionView[] {
    return this.deps.registry.list().map((d) => ({ name: d.name, description: d.description, params: d.params }));
  }

  async details(jobId: string): Promise<JobDetails> {
    const [view, flags, failures] = await Promise.all([
      this.deps.service.view(jobId),
      listFlags(this.deps.metadata, jobId),
      new RecoveryMetrics(this.deps.metadata).list(jobId),
    ]);
    // The graph is rebuilt from the job's definition; a definition that no longer builds must not
    // hide the rest of the job's details.
    const graph = await this.deps.service.graphOf(jobId).then(
      (g) => ({ graph: graphView(g) }),
      (err: unknown) => ({ graphError: err instanceof Error ? err.message : String(err) }),
    );
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
      ...graph,
      availability: flags.map((f) => ({ subPartition: `${f.edgeId}#${f.consumer}`, ...f })),
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
