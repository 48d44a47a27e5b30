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
import type { Json, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import { CheckpointIO } from '../../lib/runtime/checkpoint-io';
import { SubtaskRunner } from '../../lib/runtime/subtask';
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
    // Paced to about 6.7 s per generator: a hand-over starts 400 ms in, plus up to one 1 s control
    // poll, so a generator is still running then however busy the machine (at 8000/s a loaded run
    // once saw a generator finish before its first hand-over).
    const params = { parallelism: 2, records: 40_000, users: 40, hours: 3, partitions: 4, rate: 3000 };
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
    // Paced to about 6 s per generator: a hand-over starts 300 ms in, plus up to one 1 s control poll
    // before the subtasks are asked, so a generator must still be running then, however busy the machine.
    const params = { parallelism: 3, partitions: 6, recordsPerPartition: 3000, rate: 1000 };
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

  it('an invocation owns its unit record: one first start, one claim per hand-over, a lost claim response is its own', async () => {
    const { ports, jobs } = setup(0);
    const jobId = 'claim';
    const owner = async () => (await jobs.getUnits(jobId))[0]!.owner;
    await jobs.startUnitAttempt(jobId, 'u0', ['a#0'], 0);
    // A duplicated launch event: only one first invocation starts; heartbeats are fenced by the owner.
    expect(await jobs.startInvocation(jobId, 'u0', 0, 'first')).toBe(true);
    expect(await jobs.startInvocation(jobId, 'u0', 0, 'duplicate')).toBe(false);
    expect(await jobs.reportUnit(jobId, 'u0', 0, { heartbeatAt: 1 }, 'duplicate')).toBe(false);
    expect(await jobs.reportUnit(jobId, 'u0', 0, { heartbeatAt: 1 }, 'first')).toBe(true);
    expect(await jobs.claimHandover(jobId, 'u0', 0, 'next')).toBeUndefined(); // nothing handed over yet

    const key = handoverKey(jobId, 'u0', 0, 1);
    await ports.blobs.put(key, JSON.stringify({ format: 'sluice.handover/v1', jobId, unitId: 'u0', attempt: 0, generation: 1, at: 1, subtasks: [], requests: {} }));
    expect(await jobs.recordHandover(jobId, 'u0', 0, 'duplicate', 1, key, {})).toBe(false); // not the owner
    expect(await jobs.recordHandover(jobId, 'u0', 0, 'first', 1, key, {})).toBe(true);
    expect((await jobs.getUnits(jobId))[0]).toMatchObject({ status: 'STARTING', handover: { generation: 1, key, from: 'first' } });
    // A retried first event after the hand-over cannot start the attempt again.
    expect(await jobs.startInvocation(jobId, 'u0', 0, 'retry')).toBe(false);

    const claimed = await jobs.claimHandover(jobId, 'u0', 0, 'second');
    expect(claimed).toMatchObject({ generation: 1, key });
    expect(await owner()).toBe('second');
    expect((await jobs.getUnits(jobId))[0]!.generation).toBe(1);
    // A duplicate resume event gets nothing; the claimer retrying (lost response) gets its own claim back.
    expect(await jobs.claimHandover(jobId, 'u0', 0, 'other')).toBeUndefined();
    expect(await jobs.claimHandover(jobId, 'u0', 0, 'second')).toMatchObject({ generation: 1, key });
    // The predecessor is fenced off from now on.
    expect(await jobs.reportUnit(jobId, 'u0', 0, { heartbeatAt: 2 }, 'first')).toBe(false);
    expect(await jobs.recordHandover(jobId, 'u0', 0, 'first', 2, 'k', {})).toBe(false);
    const doc = await readHandover(ports.blobs, key, { jobId, unitId: 'u0', attempt: 0, generation: 1 });
    expect(doc.subtasks).toEqual([]);
    await expect(readHandover(ports.blobs, key, { jobId, unitId: 'u0', attempt: 0, generation: 2 })).rejects.toThrow(/generation 1, expected 2/);

    // Generation 1 hands over again, then the supervisor starts attempt 1 (failover): the claim fails.
    expect(await jobs.recordHandover(jobId, 'u0', 0, 'second', 2, 'k2', {})).toBe(true);
    expect(await jobs.startUnitAttempt(jobId, 'u0', ['a#0'], 1)).toBe(true);
    expect(await jobs.claimHandover(jobId, 'u0', 0, 'third')).toBeUndefined();
    expect(await jobs.recordHandover(jobId, 'u0', 0, 'second', 3, 'k3', {})).toBe(false);
    expect(await jobs.startInvocation(jobId, 'u0', 1, 'attempt-1')).toBe(true);
  });
});

describe('hand-over in the middle of a barrier alignment', () => {
  it('declines every alignment its held events open, processes them all, and hands over nothing held', async () => {
    const ports = createMemoryPorts();
    const written: Json[] = [];
    const staged: { txn: string; records: Json[] }[] = [];
    let pending: Json[] = [];
    const sink = (): SinkFunction<Json> => ({
      open: async () => undefined,
      write: (r) => void pending.push(r),
      prepare: async (txn) => {
        staged.push({ txn, records: pending });
        written.push(...pending);
        pending = [];
        return txn;
      },
      commit: async () => undefined,
      abort: async () => undefined,
    });
    const source = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
    const builder = new JobBuilder('align', { parallelism: 2 });
    builder.source('src', source).rebalance().sink('out', sink, { parallelism: 1 });
    const graph = buildExecutionGraph(builder.build());
    const task = graph.tasks.find((t) => t.operators.some((o) => o.kind === 'sink'))!;
    const edge = task.inputs[0]!;
    const queue = subPartitionQueue('al', 'job-a', edge.id, 0);
    await ports.channels.createQueues([queue]);
    const send = (p: number, s: number, body: object) =>
      ports.channels.send(queue, [{ groupId: `${p}.0`, dedupId: `${p}-0-${s}`, body: JSON.stringify({ p, a: 0, s, ...body }) }]);
    // Producer 0 is ahead: barrier 1, a record, barrier 2, a record. Producer 1 never sends barrier 1.
    await send(0, 0, { t: 'd', r: ['a0'] });
    await send(0, 1, { t: 'b', c: 1 });
    await send(0, 2, { t: 'd', r: ['a1'] });
    await send(0, 3, { t: 'b', c: 2 });
    await send(0, 4, { t: 'd', r: ['a2'] });
    await send(1, 0, { t: 'd', r: ['b0'] });
    const io = new CheckpointIO('job-a', ports.blobs, ports.metadata);
    const runner = new SubtaskRunner({ jobId: 'job-a', graph, task, index: 0, attempt: 0, queuePrefix: 'al', channels: ports.channels, blobs: ports.blobs, checkpoints: io });
    const run = runner.run();
    // Wait until checkpoint 1 is aligning with events held behind producer 0's barrier.
    for (let i = 0; i < 100 && !(runner.counters().aligning?.held ?? 0); i++) await new Promise((r) => setTimeout(r, 20));
    expect(runner.counters().aligning).toMatchObject({ checkpointId: 1, waitingFor: [`${edge.id}/1`] });
    runner.requestHandover(0);
    expect(await run).toBe('handed-over');

    const state = runner.handoverState();
    // Every record was processed (staged as the hand-over's own transaction), none is held.
    expect([...written].sort()).toEqual(['a0', 'a1', 'a2', 'b0']);
    expect(staged.map((s) => s.txn)).toEqual(['h3-a0-g0']);
    expect(state).toMatchObject({ status: 'running', lastCheckpoint: 2, sinkPending: [{ checkpointId: 3, staged: 'h3-a0-g0' }] });
    expect(runner.counters().aligning).toBeUndefined();
    // Both alignments were declined; the queue is empty (every message processed and deleted).
    expect((await io.acks(1)).map((a) => a.declined)).toEqual([expect.stringMatching(/handed over .* aligning checkpoint 1/)]);
    expect((await io.acks(2)).map((a) => a.declined)).toEqual([expect.stringMatching(/aligning checkpoint 2/)]);
    expect(await ports.channels.receive(queue, { max: 10, waitSeconds: 0 })).toEqual([]);
    // The channel state carries every sequence number seen, so a redelivery is a duplicate.
    expect(state.channels.find((c) => c.key === `${edge.id}/0`)!.order).toEqual([{ attempt: 0, next: 5 }]);
  });
});
