/**
 * The supervisor Lambda, run every minute by a schedule: one supervision pass over the running
 * jobs. A unit that reported an error or whose heartbeat is stale fails its job (Supervisor.detect
 * and the default failure handling); a region whose subtasks have all reached end of input gets
 * `commitFinal` (its sinks publish their last output; what Supervisor.watch does in process, kept
 * stateless here: sent again each pass until the sinks have finished); a job whose units have all
 * finished is completed (queues deleted). A job that ended loses its checkpoint schedule.
 */
import { jobRegistry } from '../examples/jobs';
import { createAwsPorts } from '../lib/aws';
import { loadConfig } from '../lib/config';
import { JobService, type JobView } from '../lib/jobs/job-service';
import { JobStore } from '../lib/jobs/job-store';
import { Supervisor } from '../lib/jobs/supervisor';
import { launcherFromEnv } from './api/cloud';

export interface SupervisionReport {
  running: number;
  failed: string[];
  finished: string[];
  /** Regions told to commit their final output, as `<jobId>/<regionId>`. */
  released: string[];
  errors: string[];
}

/** Sends commitFinal to the regions whose subtasks have all ended and whose sinks have not finished. */
export async function releaseEndedRegions(service: JobService, view: JobView): Promise<string[]> {
  const status = new Map<string, string>();
  const unitOf = new Map<string, string>();
  for (const unit of view.units) {
    for (const [id, st] of Object.entries(unit.stats ?? {})) status.set(id, st.status);
    for (const id of unit.subtasks) unitOf.set(id, unit.unitId);
  }
  const released: string[] = [];
  for (const region of view.job.regions) {
    const states = region.subtasks.map((id) => status.get(id));
    if (!states.every((st) => st === 'ended' || st === 'finished') || !states.includes('ended')) continue;
    const units = [...new Set(region.subtasks.map((id) => unitOf.get(id)!))];
    await service.sendControl(view.job, units, { type: 'commitFinal', subtasks: region.subtasks });
    released.push(`${view.job.jobId}/${region.id}`);
  }
  return released;
}

/** One pass over the running jobs; `onEnded` is told about each job that ended in it. */
export async function supervise(service: JobService, jobs: JobStore, now: number, onEnded?: (jobId: string) => Promise<void>): Promise<SupervisionReport> {
  const report: SupervisionReport = { running: 0, failed: [], finished: [], released: [], errors: [] };
  const running = (await jobs.listJobs()).filter((j) => j.status === 'RUNNING');
  report.running = running.length;
  for (const { jobId } of running) {
    try {
      const view = await service.view(jobId);
      if (view.job.status !== 'RUNNING') continue;
      const [failure] = new Supervisor({ service }).detect(view, now);
      if (failure) {
        await service.fail(jobId, `task unit ${failure.unitId} (subtasks ${failure.subtasks.join(', ')}) failed: ${failure.reason}`);
        report.failed.push(jobId);
        await onEnded?.(jobId);
        continue;
      }
      report.released.push(...(await releaseEndedRegions(service, view)));
      if (await service.completeIfDone(jobId)) {
        report.finished.push(jobId);
        await onEnded?.(jobId);
      }
    } catch (err) {
      report.errors.push(`${jobId}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return report;
}

export const handler = async (): Promise<SupervisionReport> => {
  const config = loadConfig();
  const ports = createAwsPorts(config);
  const jobs = new JobStore(ports.metadata);
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: config.queuePrefix, launcher: launcherFromEnv(config, process.env) });
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
    const report = await supervise(service, jobs, Date.now(), removeSchedule);
    console.log(JSON.stringify({ supervision: report }));
    return report;
  } finally {
    ports.clients.destroy();
  }
};
