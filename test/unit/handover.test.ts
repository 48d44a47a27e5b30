/**
 * Hand-over between invocations of one attempt (a Lambda unit before its time limit), on
 * in-memory ports: every unit hands over many times while checkpoints run, and the output stays
 * exact, with no failure, no new attempt and nothing dropped.
 */
import { describe, expect, it } from 'vitest';
import { createMemoryPorts } from '../../lib/memory';
import { JobStore } from '../../lib/jobs/job-store';
import { JobService } from '../../lib/jobs/job-service';
import { JobController } from '../../lib/jobs/job-controller';
import { Supervisor } from '../../lib/jobs/supervisor';
import { InProcessLauncher } from '../../lib/local/in-process-launcher';
import { jobRegistry } from '../../examples/jobs';
import { expectedIngestIds } from '../../examples/jobs/ingest';
import { aggregateKey, demoShape, expectedAggregates, type HourlyAggregate } from '../../examples/jobs/demo';
import { checkRecommendations, joinShape, type Recommendation } from '../../examples/jobs/recommendation-join';
import { handoverKey, readHandover } from '../../lib/runtime/handover';
import { readOutput } from './recovery/helpers';

function setup(handoverAfterMs: number) {
  const ports = createMemoryPorts();
  const jobs = new JobStore(ports.metadata);
  const launcher = new InProcessLauncher({ ...ports, jobs, registry: jobRegistry, queuePrefix: 'ho', handoverAfterMs, handoverGraceMs: 500 });
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'ho', launcher });
  return { ports, jobs, launcher, service };
}

/** Every unit (that `ranLong`) handed over at least once, all stayed at attempt 0, and nothing was dropped. */
function expectHandedOverCleanly(launcher: InProcessLauncher, view: Awaited<ReturnType<JobController['run']>>, ranLong = (_unitId: string) => true) {
  expect(view.units.map((u) => u.attempt)).toEqual(view.units.map(() => 0));
  for (const u of view.units.filter((x) => ranLong(x.unitId))) expect(launcher.handovers.get(`${view.job.jobId}/${u.unitId}#0`) ?? 0, u.unitId).toBeGreaterThanOrEqual(1);
  for (const u of view.units) expect(u.generation ?? 0).toBe(launcher.handovers.get(`${view.job.jobId}/${u.unitId}#0`) ?? 0);
  expect(view.totals.dropped).toBe(0);
}

describe('hand-over to the next invocation of the same attempt', () => {
  it('keyed demo job, global checkpoints: aggregates exact while every unit hands over repeatedly', async () => {
    const { ports, launcher, service } = setup(400);
    const params = { parallelism: 2, records: 40_000, users: 40, hours: 3, partitions: 4, rate: 8000 };
    const job = await service.submit({ job: 'demo', params, checkpoint: { handle: 'global', intervalSeconds: 1 } });
    const controller = new JobController({ service, metadata: ports.metadata, blobs: ports.blobs, pollMs: 50, checkpointEveryMs: 250 });
    const view = await controller.run(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    expect(controller.supervisor.failures).toEqual([]);
    expectHandedOverCleanly(launcher, view);
    const history = await controller.driver!.history();
    expect(history.filter((h) => h.outcome.status === 'completed').length).toBeGreaterThanOrEqual(2);

    const expected = expectedAggregates(demoShape(view.job.params));
    const rows = await readOutput<HourlyAggregate>(ports.blobs, job.jobId);
    expect(rows.length).toBe(expected.size);
    for (const row of rows) expect(row).toEqual(expected.get(aggregateKey(row)));
    expect(await ports.blobs.list(`staging/${job.jobId}/`)).toEqual([]);
  });

  it('ingest job, regional checkpoints: every id exactly once; hand-over output commits with the next checkpoint', async () => {
    const { ports, launcher, service } = setup(300);
    const params = { parallelism: 3, partitions: 6, recordsPerPartition: 3000, rate: 4000 };
    const job = await service.submit({ job: 'ingest', params, checkpoint: { handle: 'regional', intervalSeconds: 1 } });
    const controller = new JobController({ service, metadata: ports.metadata, blobs: ports.blobs, pollMs: 50, checkpointEveryMs: 300 });
    const view = await controller.run(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    expect(controller.supervisor.failures).toEqual([]);
    expectHandedOverCleanly(launcher, view);
    const files = (await ports.blobs.list(`output/${job.jobId}/`)).map((f) => f.key);
    // Output a sink held at a hand-over is its own transaction, named after the checkpoint it commits with.
    expect(files.some((k) => /part-\d-h\d+-a0-g\d+\.jsonl$/.test(k))).toBe(true);
    const ids = (await readOutput<{ id: string }>(ports.blobs, job.jobId)).map((r) => r.id);
    expect(ids.length).toBe(18_000);
    expect(new Set(ids)).toEqual(expectedIngestIds(view.job.params));
  });

  it('two-input join: connected keyed state, channel sequences and watermarks carry over', async () => {
    const { ports, launcher, service } = setup(250);
    const params = { parallelism: 3, events: 12_000, featureUpdates: 3_000, users: 150, partitions: 5, minutes: 90, rate: 4000 };
    const job = await service.submit({ job: 'recommendation-join', params });
    const supervisor = new Supervisor({ service, pollMs: 50 });
    const view = await supervisor.watch(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    expect(supervisor.failures).toEqual([]);
    // The sources may finish before their first hand-over; the join and the sinks run on.
    expectHandedOverCleanly(launcher, view, (unitId) => !/^(events|features)/.test(unitId));
    console.log(`join hand-overs: ${[...launcher.handovers].map(([k, n]) => `${k.split('/')[1]} ${n}`).join(', ')}`);
    expect(view.totals.recordsOut).toBe(12_000);
    const check = checkRecommendations(joinShape(view.job.params), await readOutput<Recommendation>(ports.blobs, job.jobId));
    expect(check).toMatchObject({ expected: 12_000, seen: 12_000, missing: [], duplicates: [], unexpected: [], wrong: [] });
  });

  it('a hand-over is claimed once: a duplicate invocation and a superseded attempt get nothing', async () => {
    const { ports, jobs } = setup(0);
    const jobId = 'claim';
    await jobs.startUnitAttempt(jobId, 'u0', ['a#0'], 0);
    expect(await jobs.claimHandover(jobId, 'u0', 0)).toBeUndefined(); // nothing handed over yet
    await ports.blobs.put(handoverKey(jobId, 'u0', 0, 1), JSON.stringify({ format: 'sluice.handover/v1', jobId, unitId: 'u0', attempt: 0, generation: 1, at: 1, subtasks: [], requests: {} }));
    expect(await jobs.recordHandover(jobId, 'u0', 0, 1, handoverKey(jobId, 'u0', 0, 1), {})).toBe(true);
    const first = await jobs.claimHandover(jobId, 'u0', 0);
    expect(first).toMatchObject({ generation: 1, key: handoverKey(jobId, 'u0', 0, 1) });
    expect(await jobs.claimHandover(jobId, 'u0', 0)).toBeUndefined();
    // Once claimed, generation 0 can no longer hand over (it would be a zombie).
    expect(await jobs.recordHandover(jobId, 'u0', 0, 1, 'other', {})).toBe(false);
    const doc = await readHandover(ports.blobs, first!.key, { jobId, unitId: 'u0', attempt: 0, generation: 1 });
    expect(doc.subtasks).toEqual([]);
    await expect(readHandover(ports.blobs, first!.key, { jobId, unitId: 'u0', attempt: 0, generation: 2 })).rejects.toThrow(/generation 1, expected 2/);

    // Generation 1 hands over again, then the supervisor starts attempt 1 (failover): the claim fails.
    expect(await jobs.recordHandover(jobId, 'u0', 0, 2, 'k2', {})).toBe(true);
    expect(await jobs.startUnitAttempt(jobId, 'u0', ['a#0'], 1)).toBe(true);
    expect(await jobs.claimHandover(jobId, 'u0', 0)).toBeUndefined();
    expect(await jobs.recordHandover(jobId, 'u0', 0, 3, 'k3', {})).toBe(false);
  });
});
