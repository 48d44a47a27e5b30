import { afterEach, describe, expect, it } from 'vitest';
import { jobRegistry } from '../../../examples/jobs';
import { finalize, notify, poll, trigger, useSteps } from '../../../functions/checkpoint-coordinator';
import { createFailoverHandler } from '../../../lib/recovery/failover-handler';
import { supervise } from '../../../functions/supervisor';
import type { CheckpointStepInput, CheckpointStepResult, CheckpointWorkflowSteps } from '../../../functions/api/services';
import { runCheckpointWorkflow } from '../../../lib/api-server/checkpoint-workflow';
import { CheckpointSteps } from '../../../lib/jobs/checkpoint-steps';
import { JobService } from '../../../lib/jobs/job-service';
import { JobStore } from '../../../lib/jobs/job-store';
import { createMemoryPorts } from '../../../lib/memory';
import { FakeClock } from '../schedule/fake-clock';
import { RecordingLauncher } from './helpers';

function memoryJobs() {
  const ports = createMemoryPorts();
  const jobs = new JobStore(ports.metadata);
  const launcher = new RecordingLauncher();
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'wf', launcher });
  return { ports, jobs, launcher, service };
}

afterEach(() => useSteps(undefined));

describe('checkpoint coordinator handlers (state machine contract)', () => {
  it('trigger takes a checkpoint for { jobId } and passes a given checkpointId through', async () => {
    const { ports, jobs, service } = memoryJobs();
    useSteps(new CheckpointSteps({ jobs, service, metadata: ports.metadata, blobs: ports.blobs }));
    const job = await service.submit({ job: 'demo', params: { parallelism: 2, records: 100 } });

    const started = await trigger({ jobId: job.jobId });
    expect(started).toMatchObject({ jobId: job.jobId, checkpointId: 1, done: false });
    expect(Number.isInteger(started.waitSeconds) && started.waitSeconds >= 1).toBe(true);
    // A second one while 1 is pending: nothing to do, the state machine ends.
    expect(await trigger({ jobId: job.jobId })).toMatchObject({ checkpointId: null, done: true, outcome: 'refused' });
    // From the API, with the id it already triggered.
    expect(await trigger({ jobId: job.jobId, checkpointId: 1 })).toEqual({ jobId: job.jobId, checkpointId: 1, done: false, outcome: 'pending', waitSeconds: 1 });
    // No acknowledgement yet: undecided; finalize says so.
    expect(await poll({ jobId: job.jobId, checkpointId: 1 })).toMatchObject({ checkpointId: 1, done: false });
    expect(await finalize({ jobId: job.jobId, checkpointId: 1 })).toMatchObject({ done: false });
    expect(await notify({ jobId: job.jobId, checkpointId: 1 })).toMatchObject({ done: true, outcome: 'failed' });

    await service.cancel(job.jobId);
    expect(await trigger({ jobId: job.jobId })).toMatchObject({ done: true, outcome: 'job-not-running' });
  });

  it('refuses malformed events', async () => {
    await expect(trigger({} as never)).rejects.toThrow(/needs a jobId/);
    await expect(poll({ jobId: 'j', checkpointId: -1 })).rejects.toThrow(/positive whole number/);
  });
});

class ScriptedSteps implements CheckpointWorkflowSteps {
  readonly calls: string[] = [];
  constructor(private readonly pollsUntilDone: number, private readonly outcome: 'completed' | 'failed') {}
  private r(input: CheckpointStepInput, extra: Partial<CheckpointStepResult>): CheckpointStepResult {
    return { jobId: input.jobId, checkpointId: input.checkpointId ?? null, done: false, ...extra };
  }
  async trigger(input: CheckpointStepInput) {
    this.calls.push('trigger');
    return this.r(input, { checkpointId: 1 });
  }
  async poll(input: CheckpointStepInput) {
    this.calls.push('poll');
    const polls = this.calls.filter((c) => c === 'poll').length;
    return this.r(input, polls >= this.pollsUntilDone ? { done: true, outcome: this.outcome } : { waitSeconds: 2 });
  }
  async finalize(input: CheckpointStepInput) {
    this.calls.push('finalize');
    const decided = this.calls.filter((c) => c === 'poll').length >= this.pollsUntilDone;
    return this.r(input, decided ? { done: true, outcome: this.outcome } : { done: false, outcome: 'pending' });
  }
  async notify(input: CheckpointStepInput) {
    this.calls.push('notify');
    return this.r(input, { done: true, outcome: 'completed' });
  }
}

describe('local checkpoint workflow (the state machine, run in process)', () => {
  it('waits between polls as the step says, then finalizes and notifies a completed checkpoint', async () => {
    const clock = new FakeClock(0);
    const steps = new ScriptedSteps(3, 'completed');
    const run = runCheckpointWorkflow(steps, { jobId: 'j', checkpointId: 1 }, { clock });
    await clock.advance(1000); // first wait: 1 s
    expect(steps.calls).toEqual(['poll']);
    await clock.advance(1999);
    expect(steps.calls).toEqual(['poll']); // then 2 s, as the poll said
    await clock.advance(1);
    await clock.advance(2000);
    const result = await run;
    expect(steps.calls).toEqual(['poll', 'poll', 'poll', 'finalize', 'notify']);
    expect(result.result).toMatchObject({ done: true, outcome: 'completed' });
    expect(clock.now()).toBe(5000);
  });

  it('does not notify a failed checkpoint, and finalizes anyway after the poll budget', async () => {
    const failed = new ScriptedSteps(1, 'failed');
    const r1 = await runCheckpointWorkflow(failed, { jobId: 'j', checkpointId: 1 }, { clock: { now: () => 0, sleep: async () => undefined } });
    expect(failed.calls).toEqual(['poll', 'finalize']);
    expect(r1.result.outcome).toBe('failed');
    const stuck = new ScriptedSteps(99, 'completed');
    const r2 = await runCheckpointWorkflow(stuck, { jobId: 'j', checkpointId: 1 }, { clock: { now: () => 0, sleep: async () => undefined }, maxPolls: 4 });
    expect(stuck.calls).toEqual(['poll', 'poll', 'poll', 'poll', 'finalize']);
    expect(r2).toMatchObject({ polls: 4, result: { done: false } });
  });
});

describe('supervisor pass', () => {
  it('fails a job whose unit went silent, completes a finished one, and reports both', async () => {
    const { ports, jobs, service } = memoryJobs();
    const stale = await service.submit({ job: 'demo', params: { parallelism: 1, records: 10 }, heartbeatTimeoutSeconds: 5 });
    const done = await service.submit({ job: 'demo', params: { parallelism: 1, records: 10 } });
    const healthy = await service.submit({ job: 'demo', params: { parallelism: 1, records: 10 } });
    const now = Date.now() + 6_000;
    for (const u of stale.units) await jobs.reportUnit(stale.jobId, u.unitId, 0, { status: 'RUNNING', heartbeatAt: now - 6_000 });
    for (const u of done.units) await jobs.reportUnit(done.jobId, u.unitId, 0, { status: 'FINISHED', heartbeatAt: now });
    for (const u of healthy.units) await jobs.reportUnit(healthy.jobId, u.unitId, 0, { status: 'RUNNING', heartbeatAt: now });
    const ended: string[] = [];
    const report = await supervise(service, jobs, now, async (id) => void ended.push(id));
    expect(report).toEqual({ running: 3, failed: [stale.jobId], recovered: [], finished: [done.jobId], released: [], errors: [] });
    expect(ended.sort()).toEqual([stale.jobId, done.jobId].sort());
    expect((await jobs.getJob(stale.jobId)).status).toBe('FAILED');
    expect((await jobs.getJob(stale.jobId)).error).toMatch(/no heartbeat/);
    expect((await jobs.getJob(done.jobId)).status).toBe('FINISHED');
    expect(await ports.channels.listQueues(`wf-${done.jobId}`)).toEqual([]);
    expect((await jobs.getJob(healthy.jobId)).status).toBe('RUNNING');

    // The healthy job's subtasks reach end of input: their regions are told to commit their final output.
    const units = await jobs.getUnits(healthy.jobId);
    for (const u of units) {
      const stats = Object.fromEntries(u.subtasks.map((id) => [id, { status: 'ended', recordsIn: 0, recordsOut: 0, dropped: 0, duplicates: 0, fenced: 0 }]));
      await jobs.reportUnit(healthy.jobId, u.unitId, 0, { stats, heartbeatAt: now });
    }
    const next = await supervise(service, jobs, now, async () => undefined);
    expect(next.released.sort()).toEqual(healthy.regions.map((r) => `${healthy.jobId}/${r.id}`).sort());
    const control = await Promise.all(healthy.units.map((u) => ports.channels.receive(u.controlQueue, { max: 10, waitSeconds: 0 })));
    expect(control.flat().map((m) => JSON.parse(m.body).type)).toContain('commitFinal');
  });

  it('reports each checkpointed job\'s checkpoint age: since its last completed checkpoint, or its start before the first', async () => {
    const { ports, jobs, service } = memoryJobs();
    const job = await service.submit({ job: 'demo', params: { parallelism: 1, records: 10 }, checkpoint: { intervalSeconds: 5 } });
    const now = job.createdAt + 60_000;
    for (const u of job.units) await jobs.reportUnit(job.jobId, u.unitId, 0, { status: 'RUNNING', heartbeatAt: now });
    const ages: number[] = [];
    const metrics = { add: (m: { name: string }, v: number) => void (m.name === 'CheckpointAge' && ages.push(v)), flush: () => undefined };
    await supervise(service, jobs, now, undefined, undefined, undefined, { metrics });
    expect(ages).toEqual([60_000]);
    await ports.metadata.put(`JOB#${job.jobId}#CKPT`, 'CKPT_LATEST', { checkpointId: 3, manifestKey: 'm', retained: [3] });
    await ports.metadata.put(`JOB#${job.jobId}#CKPT`, 'CKPT#000000000003', { checkpointId: 3, endTime: now - 4_000 });
    await supervise(service, jobs, now, undefined, undefined, undefined, { metrics });
    expect(ages).toEqual([60_000, 4_000]);
  });

  it('hands every failure of a pass to the failover handler at once: two silent units of one region restart it once', async () => {
    const { jobs, launcher, service } = memoryJobs();
    // The demo is one region (generators feed every aggregate); two of its four units go silent.
    const job = await service.submit({ job: 'demo', params: { parallelism: 2, records: 10 }, failover: 'region', heartbeatTimeoutSeconds: 5 });
    expect(job.regions).toHaveLength(1);
    const silent = ['generator-0', 'hourly-aggregate-1'];
    const now = Date.now() + 6_000;
    for (const u of job.units) await jobs.reportUnit(job.jobId, u.unitId, 0, { status: 'RUNNING', heartbeatAt: silent.includes(u.unitId) ? now - 6_000 : now });
    // Pending checkpoints are fenced once, after the attempts are recorded and before any launch.
    const fenced: { jobId: string; launchedBefore: number; attempts: number[] }[] = [];
    const fencePending = async (jobId: string) => {
      fenced.push({ jobId, launchedBefore: launcher.launched.filter((l) => l.attempt > 0).length, attempts: (await jobs.getUnits(jobId)).map((u) => u.attempt) });
      return [];
    };
    const onFailure = createFailoverHandler({ jobs, service, launcher, fencePending });
    const report = await supervise(service, jobs, now, async () => undefined, onFailure);
    expect(fenced).toEqual([{ jobId: job.jobId, launchedBefore: 0, attempts: job.units.map(() => 1) }]);
    expect(report.recovered.sort()).toEqual(silent.map((u) => `${job.jobId}/${u}`).sort());
    expect(report.failed).toEqual([]);
    expect((await jobs.getJob(job.jobId)).status).toBe('RUNNING');
    // One restart of the region, at one new attempt: not one failover per failed unit.
    expect((await jobs.getUnits(job.jobId)).map((u) => [u.unitId, u.attempt])).toEqual(job.units.map((u) => [u.unitId, 1]));
    expect(launcher.launched.filter((l) => l.attempt === 1).map((l) => l.unitId).sort()).toEqual(job.units.map((u) => u.unitId).sort());
    expect(launcher.launched.filter((l) => l.attempt > 1)).toEqual([]);
  });

  it('hands a silent unit to the failover handler: the unit restarts with a new attempt and the job goes on', async () => {
    const { jobs, launcher, service } = memoryJobs();
    const job = await service.submit({ job: 'demo', params: { parallelism: 2, records: 10 }, failover: 'single', heartbeatTimeoutSeconds: 5 });
    const now = Date.now() + 6_000;
    for (const u of job.units) await jobs.reportUnit(job.jobId, u.unitId, 0, { status: 'RUNNING', heartbeatAt: u.unitId === 'hourly-aggregate-1' ? now - 6_000 : now });
    const onFailure = createFailoverHandler({ jobs, service, launcher });
    const report = await supervise(service, jobs, now, async () => undefined, onFailure);
    expect(report.recovered).toEqual([`${job.jobId}/hourly-aggregate-1`]);
    expect(report.failed).toEqual([]);
    expect((await jobs.getJob(job.jobId)).status).toBe('RUNNING');
    const units = await jobs.getUnits(job.jobId);
    expect(units.filter((u) => u.attempt === 1).map((u) => u.unitId)).toEqual(['hourly-aggregate-1']);
  });
});
