/**
 * The supervisor watches a running job: it sees a task unit fail (its process exits without
 * finishing, it reports an error, or its heartbeat goes stale), hands the failure to the job's
 * failure handler, and completes the job once every unit has finished.
 */
import type { Clock } from '../ports/clock';
import { systemClock } from '../ports/clock';
import { silentLogger, type Logger, type MetricsSink } from '../ports/telemetry';
import { Metrics } from '../observability/metric-names';
import type { JobService, JobView } from './job-service';
import { isSinglePoint, type UnitRecord } from './job-store';
import type { Region } from '../graph/execution-graph';
import { checkProgress, DEFAULT_STALL_TIMEOUT_MS, type ProgressMark } from './progress-watch';

/** How long a unit may take from launch to its first heartbeat. */
export const STARTUP_TIMEOUT_MS = 60_000;

/** A watch's passes this much (or half the heartbeat timeout) beyond its poll apart: it was not looking. */
const PASS_GAP_MIN_MS = 5_000;

/** How a watch judges heartbeats: as of the start of its read, and silence only since it was looking. */
export interface HeartbeatWatch {
  /** When the pass began to read the view (a slow read is not the units' silence). */
  readAt: number;
  /** Since when the watch has looked without a gap (-Infinity: always). */
  since: number;
}

export interface UnitFailure {
  unitId: string;
  attempt: number;
  subtasks: string[];
  reason: string;
  /** When the failure happened (exit time, or last heartbeat for a stale unit). */
  failedAt: number;
  /** When the supervisor noticed it. */
  detectedAt: number;
  /**
   * The unit's record in the view handed over with this failure was read when the failure was
   * raised from its exit, while no other failure was being handled or waiting: the handler need not
   * read it again (one DynamoDB read less before the failover's first write).
   */
  recordFresh?: boolean;
}

export interface UnitExitEvent {
  jobId: string;
  unitId: string;
  attempt: number;
  code: number | null;
  signal: string | null;
  at: number;
  /** Stopped by the system (a failover, a cancel): never a failure. */
  stopped?: boolean;
}

/**
 * Decides what failures mean for the job; the default fails the whole job. It gets every failure
 * detected in one pass at once, so units that failed together are recovered together.
 */
export type FailureHandler = (failures: UnitFailure[], view: JobView) => Promise<void>;

export interface SupervisorOptions {
  service: JobService;
  clock?: Clock;
  pollMs?: number;
  onFailure?: FailureHandler;
  onProgress?: (view: JobView) => void;
  /**
   * A job whose sources have all ended and that then makes no progress for this long is failed
   * with what its subtasks wait for (default 3 minutes).
   */
  stallTimeoutMs?: number;
  /**
   * Asked before regions that have ended are told to commit their final output; false: not in
   * this pass. A test keeps sinks waiting at end of input until it has done what it wants there.
   */
  mayReleaseFinal?: () => boolean;
  /** Failures, finished units and the job's end are logged here (with jobId). */
  logger?: Logger;
  /** Failures detected and the time to detect them. */
  metrics?: MetricsSink;
}

/** Logs each detected failure and counts it, with the time from failure to detection. */
export function recordFailures(jobId: string, failures: readonly UnitFailure[], out: { logger?: Logger; metrics?: MetricsSink }): void {
  for (const f of failures) {
    const detectionMs = f.detectedAt - f.failedAt;
    out.logger?.warn(`task unit ${f.unitId} attempt ${f.attempt} failed: ${f.reason}; detected after ${detectionMs} ms`, {
      jobId,
      unitId: f.unitId,
      attempt: f.attempt,
      subtasks: f.subtasks,
      reason: f.reason,
      detectionMs,
    });
    out.metrics?.add(Metrics.UnitFailures, 1, { job: jobId });
    out.metrics?.add(Metrics.FailureDetectionTime, detectionMs, { job: jobId });
  }
}

/**
 * Regions whose subtasks have all reached end of input (some still waiting to commit): they can no
 * longer be restarted, so their sinks may make their last staged output visible. `key` names the
 * region with its attempts, so a region restarted by failover is released anew.
 */
export function regionsReadyForFinalCommit(view: JobView): { region: Region; units: string[]; key: string }[] {
  const status = new Map<string, string>();
  const unitOf = new Map<string, string>();
  const attempts = new Map<string, number>();
  for (const unit of view.units) {
    for (const [id, s] of Object.entries(unit.stats ?? {})) status.set(id, s.status);
    for (const id of unit.subtasks) {
      unitOf.set(id, unit.unitId);
      attempts.set(id, unit.attempt);
    }
  }
  return view.job.regions
    .filter((region) => {
      const states = region.subtasks.map((id) => status.get(id));
      return states.every((s) => s === 'ended' || s === 'finished') && states.includes('ended');
    })
    .map((region) => ({
      region,
      units: [...new Set(region.subtasks.map((id) => unitOf.get(id)!))],
      key: `${region.id}@${region.subtasks.map((s) => attempts.get(s) ?? 0).join(',')}`,
    }));
}

/** True when the unit reported every one of its subtasks finished. */
export function allFinished(unit: UnitRecord): boolean {
  return unit.subtasks.length > 0 && unit.subtasks.every((id) => unit.stats?.[id]?.status === 'finished');
}

/** One sentence naming the failed units and why, for a job that fails on them. */
export function describeFailures(failures: readonly UnitFailure[]): string {
  return failures.map((f) => `task unit ${f.unitId} (subtasks ${f.subtasks.join(', ')}) failed: ${f.reason}`).join('; ');
}

export class Supervisor {
  private readonly exits: UnitExitEvent[] = [];
  private readonly handled = new Set<string>();
  /** Regions whose sinks were told to commit their last output. */
  private readonly released = new Set<string>();
  readonly failures: UnitFailure[] = [];

  constructor(private readonly options: SupervisorOptions) {}

  /** The job being watched, and its view as of the last pass (what a failure raised from an exit gets). */
  private watching: string | undefined;
  private lastView: JobView | undefined;
  /** Failure handling in turn: one handler call at a time, whether raised by a pass or by an exit. */
  private handling: Promise<unknown> = Promise.resolve();
  /** Failure handler calls waiting or running, and all ever made. */
  private failoversPending = 0;
  private failoversMade = 0;

  /** Ends the current wait between two passes (set while the supervisor waits). */
  private wake: (() => void) | undefined;
  /** An exit came during a pass: the next pass starts without waiting. */
  private exitDuringPass = false;

  /**
   * Reports a unit's process exit (from a launcher that can see processes). The supervisor looks
   * at once, not at its next poll: a dead process is detected by its exit event, immediately.
   */
  unitExited(event: UnitExitEvent): void {
    this.exits.push(event);
    if (this.wake) this.wake();
    else this.exitDuringPass = true;
    if (event.jobId === this.watching && !event.stopped && !(event.code === 0 && event.signal === null)) void this.failFromExit(event);
  }

  /**
   * Under a single-point strategy, raises the failure of a unit whose process died from its exit
   * event and that unit's record alone, without waiting for a pass: a pass reads every unit record
   * of the job (at P=4000, 120 records of up to 41 KB), and one already under way would finish
   * first (6.3 s of a 10.1 s recovery in `bench:scale`). The handler gets the last pass's view with this unit's record in
   * it; it reads the attempts it acts on afresh anyway. When the record says otherwise (another
   * attempt, finished, stopped) or the read fails, the next pass decides, as before.
   */
  private async failFromExit(event: UnitExitEvent): Promise<void> {
    const key = `${event.unitId}#${event.attempt}`;
    const view = this.lastView;
    if (!view || this.handled.has(key)) return;
    // Single-point strategies only, where a second counts (the failed unit's producers drop, or
    // queue, until it is back). A region or full restart goes on from the next pass, as it always
    // has: under load a region restart raised at once raced a final commit released in the same
    // pass (the LocalStack lane's chaos schedule 105 stuck once beside a P=4000 benchmark).
    if (!isSinglePoint(view.job.settings.failover)) return;
    const clock = this.options.clock ?? systemClock;
    // Read with no failover waiting or running before, during or after it: no attempt moved since.
    const quietBefore = this.failoversPending === 0 ? this.failoversMade : undefined;
    let unit: UnitRecord | undefined;
    try {
      unit = await this.options.service.unit(event.jobId, event.unitId);
    } catch {
      return;
    }
    const now = clock.now();
    if (!unit || unit.attempt !== event.attempt || this.handled.has(key) || this.watching !== event.jobId) return;
    // Stopped, or died after its last subtask finished (recorded FINISHED, not recovered): the pass's call.
    if (unit.status === 'FINISHED' || unit.status === 'CANCELLED' || (unit.status !== 'FAILED' && allFinished(unit))) return;
    const reason = this.reasonFor(event.jobId, unit, now, view.job.settings.heartbeatTimeoutMs);
    if (!reason) return;
    this.handled.add(key);
    const fresh = quietBefore === this.failoversMade && this.failoversPending === 0;
    const failure: UnitFailure = { unitId: unit.unitId, attempt: unit.attempt, subtasks: unit.subtasks, detectedAt: now, ...reason, ...(fresh ? { recordFresh: true } : {}) };
    const withUnit: JobView = { ...view, units: view.units.map((u) => (u.unitId === unit.unitId ? unit : u)) };
    try {
      await this.handleFailures([failure], withUnit);
    } catch (error) {
      // Left to the next pass, which sees the same exit (and a fresh view).
      this.handled.delete(key);
      (this.options.logger ?? silentLogger).warn(`handling the failure of ${key} from its exit failed; the next pass retries: ${error instanceof Error ? error.message : String(error)}`, { jobId: event.jobId, unitId: unit.unitId, attempt: unit.attempt });
      if (this.wake) this.wake();
      else this.exitDuringPass = true;
    }
  }

  /** Records failures and hands them to the failure handler, one call after another. */
  private handleFailures(failures: UnitFailure[], view: JobView): Promise<void> {
    this.failoversPending++;
    this.failoversMade++;
    const run = this.handling
      .then(async () => {
        recordFailures(view.job.jobId, failures, this.options);
        this.options.metrics?.flush();
        this.failures.push(...failures);
        await (this.options.onFailure ?? this.failJob)(failures, view);
      })
      .finally(() => this.failoversPending--);
    this.handling = run.catch(() => undefined);
    return run;
  }

  /** Waits `ms`, or less when a unit process exits meanwhile (or exited during the last pass). */
  private async pause(clock: Clock, ms: number): Promise<void> {
    if (this.exitDuringPass) {
      this.exitDuringPass = false;
      return;
    }
    try {
      // A sleep that fails (its clock closed) ends the watch, as it did before exits could wake it.
      await new Promise<void>((resolve, reject) => {
        this.wake = resolve;
        clock.sleep(ms).then(resolve, reject);
      });
    } finally {
      this.wake = undefined;
    }
  }

  /** Watches the job until it is no longer running; returns its final view. */
  async watch(jobId: string): Promise<JobView> {
    const clock = this.options.clock ?? systemClock;
    const log = (this.options.logger ?? silentLogger).child({ jobId });
    this.watching = jobId;
    try {
      return await this.watchPasses(jobId, clock, log);
    } finally {
      this.watching = undefined;
      this.lastView = undefined;
      // A failure raised from an exit is not left running behind the watch.
      await this.handling;
    }
  }

  private async watchPasses(jobId: string, clock: Clock, log: Logger): Promise<JobView> {
    const graph = await this.options.service.graphOf(jobId);
    const sources = new Set(graph.tasks.filter((t) => t.inputs.length === 0).map((t) => t.id));
    let mark: ProgressMark | undefined;
    const pollMs = this.options.pollMs ?? 500;
    let lastPassAt: number | undefined;
    let gapLimitMs = pollMs + PASS_GAP_MIN_MS;
    let watchedSince = -Infinity;
    for (;;) {
      // Heartbeat silence counts only while this watch was looking: a pass that comes late (this
      // process, or the metadata store it reads, stood still) saw no heartbeats meanwhile either,
      // so units get a whole timeout again from then (chaos seed 103088: a 24 s stall of the whole
      // machine made two live units look dead). Staleness is judged at the start of the read.
      const passAt = clock.now();
      if (lastPassAt !== undefined && passAt - lastPassAt > gapLimitMs) watchedSince = passAt;
      lastPassAt = passAt;
      const view = await this.options.service.view(jobId);
      if (view.job.status !== 'RUNNING') {
        const line = `job ${jobId} ended ${view.job.status}${view.job.error ? `: ${view.job.error}` : ''}`;
        if (view.job.status === 'FAILED') log.error(line, { status: view.job.status });
        else log.info(line, { status: view.job.status });
        return view;
      }
      this.lastView = view;
      this.options.onProgress?.(view);
      const progress = checkProgress(view, sources, mark, clock.now(), this.options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS);
      mark = progress.mark;
      if (progress.stalled) {
        await this.options.service.fail(jobId, `job is stuck: ${progress.stalled}`);
        continue;
      }
      gapLimitMs = pollMs + Math.max(PASS_GAP_MIN_MS, view.job.settings.heartbeatTimeoutMs / 2);
      const { failures, finished } = this.detectAll(view, clock.now(), { readAt: passAt, since: watchedSince });
      for (const unit of finished) {
        log.info(`task unit ${unit.unitId} ended after finishing all its subtasks: recorded FINISHED`, { unitId: unit.unitId, attempt: unit.attempt });
        await this.options.service.finishUnit(jobId, unit.unitId, unit.attempt);
      }
      if (failures.length > 0) {
        await this.handleFailures(failures, view);
        continue; // a fresh view: the failover changed attempts and may have ended the job
      }
      // Not while this view shows a failed attempt not yet replaced (its failure raised from its
      // exit, being handled now): its subtasks' last reports may say ended, but they restart.
      if (!view.units.some((u) => this.handled.has(`${u.unitId}#${u.attempt}`) && u.status !== 'FINISHED' && u.status !== 'CANCELLED')) await this.releaseEndedRegions(view);
      if (await this.options.service.completeIfDone(jobId)) continue;
      await this.pause(clock, pollMs);
    }
  }

  /**
   * A region whose subtasks have all reached end of input can no longer be restarted, so its
   * sinks may make their last staged output visible.
   */
  private async releaseEndedRegions(view: JobView): Promise<void> {
    if (this.options.mayReleaseFinal && !this.options.mayReleaseFinal()) return;
    for (const ready of regionsReadyForFinalCommit(view)) {
      if (this.released.has(ready.key)) continue;
      this.released.add(ready.key);
      await this.options.service.sendControl(view.job, ready.units, { type: 'commitFinal', subtasks: ready.region.subtasks });
    }
  }

  private readonly failJob: FailureHandler = async (failures, view) => {
    await this.options.service.fail(view.job.jobId, describeFailures(failures));
  };

  /** Failures not seen before: exits without finishing, reported errors, stale heartbeats. */
  detect(view: JobView, now: number): UnitFailure[] {
    return this.detectAll(view, now).failures;
  }

  /**
   * The failures not seen before, and the units that died after every one of their subtasks had
   * finished (end of input sent on): nothing to recover there, and a restart would only send their
   * input again, so they are to be recorded FINISHED instead. Each (unit, attempt) comes once.
   */
  detectAll(view: JobView, now: number, watch?: HeartbeatWatch): { failures: UnitFailure[]; finished: UnitRecord[] } {
    const failures: UnitFailure[] = [];
    const finished: UnitRecord[] = [];
    const timeout = view.job.settings.heartbeatTimeoutMs;
    for (const unit of view.units) {
      const key = `${unit.unitId}#${unit.attempt}`;
      if (this.handled.has(key) || unit.status === 'FINISHED' || unit.status === 'CANCELLED') continue;
      const reason = this.reasonFor(view.job.jobId, unit, now, timeout, watch);
      if (!reason) continue;
      this.handled.add(key);
      if (unit.status !== 'FAILED' && allFinished(unit)) finished.push(unit);
      else failures.push({ unitId: unit.unitId, attempt: unit.attempt, subtasks: unit.subtasks, detectedAt: now, ...reason });
    }
    return { failures, finished };
  }

  private reasonFor(jobId: string, unit: UnitRecord, now: number, timeoutMs: number, watch?: HeartbeatWatch): { reason: string; failedAt: number } | undefined {
    if (unit.status === 'FAILED') return { reason: unit.error ?? 'reported an error', failedAt: unit.heartbeatAt };
    const exit = this.exits.find((e) => e.jobId === jobId && e.unitId === unit.unitId && e.attempt === unit.attempt && !e.stopped);
    if (exit && !(exit.code === 0 && exit.signal === null)) {
      return { reason: exit.signal ? `process killed by ${exit.signal}` : `process exited with code ${exit.code}`, failedAt: exit.at };
    }
    // A unit still starting (process spawn, module load, restore) gets a longer grace period.
    const limit = unit.status === 'STARTING' ? Math.max(timeoutMs, STARTUP_TIMEOUT_MS) : timeoutMs;
    const asOf = watch?.readAt ?? now;
    if (asOf - Math.max(unit.heartbeatAt, watch?.since ?? -Infinity) > limit) {
      return { reason: `no heartbeat for ${Math.round((asOf - unit.heartbeatAt) / 1000)} s`, failedAt: unit.heartbeatAt };
    }
    return undefined;
  }
}
