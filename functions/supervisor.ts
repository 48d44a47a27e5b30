/**
 * The supervisor Lambda, run every minute by a schedule: one supervision pass over the running
 * jobs. A unit that reported an error or whose heartbeat is stale is failed over by its job's
 * strategy (single, region, full; lib/recovery/failover-handler.ts); a region whose subtasks have all reached end of input gets
 * `commitFinal` (its sinks publish their last output; what Supervisor.watch does in process, kept
 * stateless here: sent again each pass until the sinks have finished); a job whose units have all
 * finished is completed (queues deleted). A job that ended loses its checkpoint schedule.
 *
 * Logs are Powertools JSON lines (with jobId, unitId, attempt where they apply); failures,
 * detection times, restarts and supervision errors are EMF metrics; the pass is traced.
 */
import { loadJobRegistry } from '../lib/api/jobs-module';
import { createAwsPorts } from '../lib/aws';
import { loadConfig } from '../lib/config';
import { JobService, type JobView } from '../lib/jobs/job-service';
import { JobStore } from '../lib/jobs/job-store';
import { Supervisor, describeFailures, recordFailures, regionsReadyForFinalCommit, type FailureHandler } from '../lib/jobs/supervisor';
import { instrument, lambdaTelemetry, traceClients } from '../lib/observability/lambda';
import { Metrics } from '../lib/observability/metric-names';
import { silentLogger, type Logger, type MetricsSink } from '../lib/ports/telemetry';
import { launcherFromEnv } from './api/cloud';
import { checkProgress, DEFAULT_STALL_TIMEOUT_MS } from '../lib/jobs/progress-watch';
import { PortCheckpointCatalog, lastCompletedAt } from '../lib/checkpoint/catalog';
import { scheduleOf } from './api/schedule-service';
import { createFailoverHandler } from '../lib/recovery/failover-handler';

export interface SupervisionReport {
  running: number;
  failed: string[];
  /** Unit failures handed to failover, as `<jobId>/<unitId>`. */
  recovered: string[];
  finished: string[];
  /** Regions told to commit their final output, as `<jobId>/<regionId>`. */
  released: string[];
  errors: string[];
}

/** Sends commitFinal to the regions whose subtasks have all ended (again each pass: commits are idempotent). */
export async function releaseEndedRegions(service: JobService, view: JobView): Promise<string[]> {
  const released: string[] = [];
  for (const { region, units } of regionsReadyForFinalCommit(view)) {
    await service.sendControl(view.job, units, { type: 'commitFinal', subtasks: region.subtasks });
    released.push(`${view.job.jobId}/${region.id}`);
  }
  return released;
}

/** One pass over the running jobs; `onEnded` is told about each job that ended in it. */
export async function supervise(
  service: JobService,
  jobs: JobStore,
  now: number,
  onEnded?: (jobId: string) => Promise<void>,
  onFailure?: FailureHandler,
  stallTimeoutMs = DEFAULT_STALL_TIMEOUT_MS,
  telemetry: { logger?: Logger; metrics?: MetricsSink } = {},
): Promise<SupervisionReport> {
  const root = telemetry.logger ?? silentLogger;
  const report: SupervisionReport = { running: 0, failed: [], recovered: [], finished: [], released: [], errors: [] };
  const running = (await jobs.listJobs()).filter((j) => j.status === 'RUNNING');
  report.running = running.length;
  for (const { jobId } of running) {
    const log = root.child({ jobId });
    try {
      const view = await service.view(jobId);
      if (view.job.status !== 'RUNNING') continue;
      const { failures, finished } = new Supervisor({ service }).detectAll(view, now);
      recordFailures(jobId, failures, telemetry);
      for (const unit of finished) {
        log.info(`task unit ${unit.unitId} ended after finishing all its subtasks: recorded FINISHED`, { unitId: unit.unitId, attempt: unit.attempt });
        await service.finishUnit(jobId, unit.unitId, unit.attempt);
      }
      if (failures.length > 0 && onFailure) {
        // Every failure of the pass at once, by the job's strategy (single, region, full): units
        // that failed together restart together. The handler fails the job only when its failure
        // budget is used up.
        await onFailure(failures, view);
        report.recovered.push(...failures.map((f) => `${jobId}/${f.unitId}`));
        if ((await jobs.getJob(jobId)).status !== 'RUNNING') {
          log.error(`job ${jobId} failed: its failure budget is used up`);
          report.failed.push(jobId);
          await onEnded?.(jobId);
        }
        continue;
      }
      if (failures.length > 0) {
        log.error(`job ${jobId} failed: ${describeFailures(failures)}`);
        await service.fail(jobId, describeFailures(failures));
        report.failed.push(jobId);
        await onEnded?.(jobId);
        continue;
      }
      // A drained bounded job that stands still is stuck: fail it with what it waits for.
      const graph = await service.graphOf(jobId);
      const sources = new Set(graph.tasks.filter((t) => t.inputs.length === 0).map((t) => t.id));
      const progress = checkProgress(view, sources, view.job.progress, now, stallTimeoutMs);
      if (progress.stalled) {
        log.error(`job ${jobId} is stuck: ${progress.stalled}`);
        await service.fail(jobId, `job is stuck: ${progress.stalled}`);
        report.failed.push(jobId);
        await onEnded?.(jobId);
        continue;
      }
      if (progress.mark.signature !== view.job.progress?.signature) await jobs.setProgress(jobId, progress.mark);
      // The checkpoint-age alarm's metric: since the last completed checkpoint (or the job's start).
      if (telemetry.metrics && scheduleOf(view.job.settings) !== null) {
        const last = (await lastCompletedAt(jobs.metadata, jobId)) ?? view.job.createdAt;
        telemetry.metrics.add(Metrics.CheckpointAge, Math.max(0, now - last), { job: jobId });
      }
      report.released.push(...(await releaseEndedRegions(service, view)));
      if (await service.completeIfDone(jobId)) {
        log.info(`job ${jobId} finished`);
        report.finished.push(jobId);
        await onEnded?.(jobId);
      }
    } catch (err) {
      report.errors.push(`${jobId}: ${err instanceof Error ? err.message : String(err)}`);
      log.error('supervising the job failed', { error: err });
      telemetry.metrics?.add(Metrics.SupervisorErrors, 1, { job: jobId });
    }
  }
  return report;
}

export const handler = instrument(async (): Promise<SupervisionReport> => {
  const { logger, metrics } = lambdaTelemetry();
  const config = loadConfig();
  const ports = createAwsPorts(config);
  traceClients(ports.clients);
  const jobs = new JobStore(ports.metadata);
  const launcher = launcherFromEnv(config, process.env);
  const service = new JobService({ jobs, channels: ports.channels, registry: await loadJobRegistry(), queuePrefix: config.queuePrefix, launcher });
  let removeSchedule: ((jobId: string) => Promise<void>) | undefined;
  const group = process.env.SLUICE_SCHEDULE_GROUP;
  if (group) {
    const { SchedulerClient, DeleteScheduleCommand } = await import('@aws-sdk/client-scheduler');
    const { jobScheduleName } = await import('./api/cloud');
    const scheduler = new SchedulerClient({ region: config.region, ...(config.endpoint ? { endpoint: config.endpoint } : {}) });
    removeSchedule = async (jobId) => {
      await scheduler.send(new DeleteScheduleCommand({ Name: jobScheduleName(jobId), GroupName: group })).catch((err: { name?: string }) => {
        if (err?.name !== 'ResourceNotFoundException') throw err;
      });
    };
  }
  try {
    const onFailure = createFailoverHandler({
      jobs,
      service,
      launcher,
      latestManifest: (jobId) => new PortCheckpointCatalog(jobId, ports.metadata, ports.blobs).loadLatest(),
      logger,
      metricsSink: metrics,
    });
    const report = await supervise(service, jobs, Date.now(), removeSchedule, onFailure, DEFAULT_STALL_TIMEOUT_MS, { logger, metrics });
    logger.info(`supervision pass: ${report.running} running job(s)`, { supervision: report });
    return report;
  } finally {
    ports.clients.destroy();
  }
});
