/**
 * Job lifecycle states are true: after cancel (or a job failure) the units are shown stopped and a
 * late heartbeat does not make them look alive; an ended job's schedule shows no next fire time.
 */
import { describe, expect, it } from 'vitest';
import { jobRegistry } from '../../examples/jobs';
import { JobService } from '../../lib/jobs/job-service';
import { JobStore } from '../../lib/jobs/job-store';
import { createMemoryPorts } from '../../lib/memory';
import { RecordingSchedulerPort, ScheduleService } from '../../functions/api/services';
import { RecordingLauncher } from './api/helpers';

function setup() {
  const ports = createMemoryPorts();
  const jobs = new JobStore(ports.metadata);
  const launcher = new RecordingLauncher();
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'life', launcher });
  return { ports, jobs, launcher, service };
}

describe('job lifecycle', () => {
  for (const end of ['cancel', 'fail'] as const) {
    it(`${end}: every unit that was running is shown stopped, and its late heartbeat is refused`, async () => {
      const { jobs, service } = setup();
      const job = await service.submit({ job: 'demo', params: { records: 100, parallelism: 2 } });
      const [first, second, ...rest] = job.units;
      for (const u of job.units) await jobs.reportUnit(job.jobId, u.unitId, 0, { status: 'RUNNING', heartbeatAt: Date.now() });
      // One unit had already finished on its own: it stays FINISHED.
      await jobs.reportUnit(job.jobId, second!.unitId, 0, { status: 'FINISHED' });

      if (end === 'cancel') await service.cancel(job.jobId);
      else await service.fail(job.jobId, 'boom');

      const units = new Map((await jobs.getUnits(job.jobId)).map((u) => [u.unitId, u]));
      expect(units.get(second!.unitId)!.status).toBe('FINISHED');
      for (const u of [first!, ...rest]) {
        expect(units.get(u.unitId)).toMatchObject({ status: 'CANCELLED', error: end === 'cancel' ? 'stopped: the job was cancelled' : 'stopped: the job failed' });
      }
      // A unit the launcher could not kill (a Lambda invocation) heartbeats once more: refused.
      expect(await jobs.reportUnit(job.jobId, first!.unitId, 0, { heartbeatAt: Date.now() + 5000 })).toBe(false);
      expect((await jobs.getUnit(job.jobId, first!.unitId))!.status).toBe('CANCELLED');
      expect((await service.view(job.jobId)).job.status).toBe(end === 'cancel' ? 'CANCELLED' : 'FAILED');
    });
  }

  it("a restarted unit's record carries its earlier attempts' delivery counters; loss counters are the new attempt's (restored from its checkpoint)", async () => {
    const { jobs, service } = setup();
    const job = await service.submit({ job: 'demo', params: { records: 100, parallelism: 1 } });
    const unit = job.units[0]!;
    const stats = (dropped: number) => ({ [unit.subtasks[0]!]: { status: 'running', recordsIn: 10, recordsOut: 10, dropped, duplicates: 1, fenced: 0 } });
    await jobs.reportUnit(job.jobId, unit.unitId, 0, { status: 'RUNNING', stats: stats(7) });
    expect(await jobs.startUnitAttempt(job.jobId, unit.unitId, unit.subtasks, 1)).toBe(true);
    await jobs.reportUnit(job.jobId, unit.unitId, 1, { status: 'RUNNING', stats: stats(5) });
    expect(await jobs.startUnitAttempt(job.jobId, unit.unitId, unit.subtasks, 2)).toBe(true);
    // Redeliveries and fenced messages happened once each: they add up over attempts.
    expect((await jobs.getUnit(job.jobId, unit.unitId))!.carried).toEqual({ duplicates: 2, fenced: 0 });
    // Drops are checkpointed state: attempt 2 restored the checkpoint's 4 and counts from there
    // (what attempts 0 and 1 dropped after it is sent again, so counted again, not twice).
    await jobs.reportUnit(job.jobId, unit.unitId, 2, { status: 'RUNNING', stats: stats(4) });
    expect((await service.view(job.jobId)).totals.dropped).toBe(4);
  });

  it('an ended job keeps its schedule as a record but shows no next fire time', async () => {
    const { jobs, service } = setup();
    const schedules = new ScheduleService({ jobs, port: new RecordingSchedulerPort() });
    const job = await service.submit({ job: 'demo', params: { records: 100, parallelism: 1 } });
    await schedules.install(job, { kind: 'rate', seconds: 60 });
    expect((await schedules.get(job.jobId)).nextFireTimes).toHaveLength(3);
    await service.cancel(job.jobId);
    const view = await schedules.get(job.jobId);
    expect(view.schedule).toEqual({ kind: 'rate', seconds: 60 });
    expect(view.nextFireTimes).toEqual([]);
    expect(view.description).toMatch(/stopped: the job has ended/);
  });
});
