/**
 * Runs the control plane of one job in this process (the local runtime's equivalent of the
 * supervisor Lambda, the Step Functions coordinator and its schedule): the supervisor watches
 * units, the checkpoint driver is triggered on the job's schedule and polled for acknowledgements,
 * and a unit failure goes to the checkpoint coordinator (its region fails pending checkpoints)
 * and to the failover handler.
 */
import type { Clock } from '../ports/clock';
import { systemClock } from '../ports/clock';
import type { BlobStore } from '../ports/blob-store';
import type { MetadataStore } from '../ports/metadata-store';
import { noMetrics, type Logger, type MetricsSink } from '../ports/telemetry';
import { CheckpointDriver } from './checkpoint-driver';
import type { JobService, JobView } from './job-service';
import { Supervisor, describeFailures, type FailureHandler, type UnitExitEvent } from './supervisor';
import type { RecoveryMetrics } from '../recovery/recovery-metrics';

export interface ControllerOptions {
  service: JobService;
  metadata: MetadataStore;
  blobs: BlobStore;
  clock?: Clock;
  /** What a unit failure means beyond the checkpoint coordinator; default: the job fails. */
  onFailure?: FailureHandler;
  onProgress?: (view: JobView) => void;
  pollMs?: number;
  /** Failure events to keep up to date (records dropped and processed meanwhile, recovery times). */
  metrics?: RecoveryMetrics;
  /** Overrides the job's checkpoint interval (ms); 0 or undefined: the job's own setting. */
  checkpointEveryMs?: number;
  /** A drained job with no progress for this long fails as stuck (see progress-watch.ts). */
  stallTimeoutMs?: number;
  /** See SupervisorOptions.mayReleaseFinal. */
  mayReleaseFinal?: () => boolean;
  /** The control plane's log: supervisor and checkpoint driver lines (with jobId, checkpointId). */
  logger?: Logger;
  /** Failures and checkpoint decisions as metrics; flushed every checkpoint-loop round. */
  metricsSink?: MetricsSink;
}

export class JobController {
  readonly supervisor: Supervisor;
  driver: CheckpointDriver | undefined;
  private stopped = false;
  /** Subtasks reported to the coordinator as finished (end of input), as `<subtask>#<unit attempt>`: a restarted one runs again and is reported again when it finishes. */
  private readonly finished = new Set<string>();
  /** Failures being told to the checkpoint coordinator now (see `fenceRestart`). */
  private readonly failing = new Set<Promise<void>>();

  constructor(private readonly options: ControllerOptions) {
    this.supervisor = new Supervisor({
      service: options.service,
      clock: options.clock,
      pollMs: options.pollMs,
      ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
      ...(options.mayReleaseFinal ? { mayReleaseFinal: options.mayReleaseFinal } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.metricsSink ? { metrics: options.metricsSink } : {}),
      onProgress: (view) => {
        this.noteFinished(view);
        void options.metrics?.observe(view).catch(() => undefined);
        options.onProgress?.(view);
      },
      onFailure: async (failures, view) => {
        // The coordinator and the failover hear at once: a failover waits for nothing of the
        // coordinator's (a pending checkpoint counts only the attempts it was triggered for, so
        // no restarted attempt can complete it), and single-point recovery must tell producers fast.
        const failing = (async () => {
          for (const f of failures) await this.driver?.taskFailed(f.subtasks, `unit ${f.unitId}: ${f.reason}`);
        })();
        this.failing.add(failing);
        void failing.catch(() => undefined).finally(() => this.failing.delete(failing));
        if (options.onFailure) {
          await Promise.all([failing, options.onFailure(failures, view)]);
          await this.driver?.taskRecovered(failures.flatMap((f) => f.subtasks));
        } else {
          await failing;
          await options.service.fail(view.job.jobId, describeFailures(failures));
        }
      },
    });
  }

  /**
   * Finished subtasks take no more checkpoints; the coordinator must not wait for them. A sink that
   * has only ended (its last output staged, waiting for its region's final commit) is not finished:
   * killed now it restarts from its last checkpoint, so later checkpoints must not complete
   * without it (they would record no state for it, and it would restart from nothing).
   */
  private noteFinished(view: JobView): void {
    const ended: { subtask: string; lastCheckpoint: number; attempt: number }[] = [];
    const keys: string[] = [];
    for (const unit of view.units) {
      for (const [id, s] of Object.entries(unit.stats ?? {})) {
        const key = `${id}#${unit.attempt}`;
        if (s.status !== 'finished' || this.finished.has(key)) continue;
        ended.push({ subtask: id, lastCheckpoint: s.lastCheckpoint ?? 0, attempt: unit.attempt });
        keys.push(key);
      }
    }
    if (ended.length === 0 || !this.driver) return;
    for (const k of keys) this.finished.add(k);
    void this.driver.subtaskFinished(ended).catch(() => undefined);
  }

  /**
   * The failover handler's `fencePending` for this controller: called after the new attempts are
   * recorded and before they are launched (and read the latest manifest). Once the failures are
   * applied, no pending checkpoint can complete with the failed attempts' regions; a decision
   * taken just before is waited for until it is stored, so the new attempts restore from it
   * (its sink transactions are committed by the old attempts or by the restore, never replayed).
   * The in-process twin of `fencePendingCheckpoints` (the Step Functions path). Returns nothing
   * still deciding.
   */
  async fenceRestart(): Promise<number[]> {
    await Promise.allSettled([...this.failing]);
    await this.driver?.settled();
    return [];
  }

  unitExited(event: UnitExitEvent): void {
    this.supervisor.unitExited(event);
  }

  /** Supervises the job and takes its checkpoints until it is no longer running. */
  async run(jobId: string): Promise<JobView> {
    const { service, metadata, blobs } = this.options;
    const clock = this.options.clock ?? systemClock;
    const job = (await service.view(jobId)).job;
    this.driver = await CheckpointDriver.create({
      job,
      graph: await service.graphOf(jobId),
      metadata,
      blobs,
      control: service,
      ...(this.options.logger ? { logger: this.options.logger } : {}),
      ...(this.options.metricsSink ? { metrics: this.options.metricsSink } : {}),
    });
    const every = this.options.checkpointEveryMs || job.settings.checkpoint.intervalSeconds * 1000;
    const checkpoints = this.checkpointLoop(clock, every);
    let ended = 'the job ended';
    try {
      const view = await this.supervisor.watch(jobId);
      ended = `the job ended ${view.job.status}`;
      await this.options.metrics?.observe(view).catch(() => undefined);
      return view;
    } finally {
      this.stopped = true;
      await checkpoints;
      const metrics = this.options.metricsSink ?? noMetrics;
      // A checkpoint still pending is decided (failed, 'job-ended'), never left undecided in the history.
      const driver = this.driver;
      await driver.jobEnded(ended).catch((error) => driver.note(`deciding pending checkpoints at the end: ${error instanceof Error ? error.message : String(error)}`));
      metrics.flush();
    }
  }

  /** Triggers on the interval (if any) and polls acknowledgements of pending checkpoints. */
  private async checkpointLoop(clock: Clock, everyMs: number): Promise<void> {
    let next = everyMs > 0 ? clock.now() + everyMs : Infinity;
    while (!this.stopped) {
      const driver = this.driver!;
      try {
        if (clock.now() >= next) {
          next = clock.now() + everyMs;
          await driver.trigger();
        }
        await driver.poll();
      } catch (error) {
        // A failed poll (queue deleted at job end, a throttled call) is retried on the next round.
        if (!this.stopped) driver.note(`checkpoint loop: ${error instanceof Error ? error.message : String(error)}`);
      }
      // Failures and checkpoint decisions of this round are published now (EMF lines are cheap).
      this.options.metricsSink?.flush();
      await clock.sleep(200);
    }
  }
}
