/**
 * `maxConsecutiveRegionFailures` on the Step Functions path: every step (trigger, poll, finalize,
 * notify) builds a fresh driver from the catalog, so the counters must come back from the history.
 * In-memory ports; acknowledgements are written as the task units write them.
 */
import { describe, expect, it } from 'vitest';
import { jobRegistry } from '../../../examples/jobs';
import type { CheckpointHistoryEntry } from '../../../lib/checkpoint';
import { CheckpointDriver } from '../../../lib/jobs/checkpoint-driver';
import { CheckpointSteps, type StepResult } from '../../../lib/jobs/checkpoint-steps';
import { JobService } from '../../../lib/jobs/job-service';
import { JobStore } from '../../../lib/jobs/job-store';
import { createMemoryPorts } from '../../../lib/memory';
import { ackPrefix, snapshotKey, type AckRecord } from '../../../lib/runtime/checkpoint-io';
import { RecordingLauncher } from '../api/helpers';
import { FakeClock } from '../schedule/fake-clock';

type Part = 'ack' | 'decline' | 'silent';

async function setup(maxConsecutiveRegionFailures: number) {
  const ports = createMemoryPorts();
  const jobs = new JobStore(ports.metadata);
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'steps', launcher: new RecordingLauncher() });
  const job = await service.submit({
    job: 'ingest',
    params: { parallelism: 3 },
    // Ratio 1: only the consecutive limit can fail a checkpoint as a whole here.
    checkpoint: { handle: 'regional', timeoutSeconds: 10, maxFailedRegionRatio: 1, maxConsecutiveRegionFailures },
  });
  const clock = new FakeClock(1_767_225_600_000);
  const steps = new CheckpointSteps({ jobs, service, metadata: ports.metadata, blobs: ports.blobs, clock });
  const regionIds = job.regions.map((r) => r.id);

  const write = async (id: number, subtask: string, declined?: string) => {
    const record: AckRecord = { subtask, checkpointId: id, state: [], at: clock.now() };
    if (declined !== undefined) record.declined = declined;
    else {
      const key = snapshotKey(job.jobId, id, subtask, 0);
      await ports.blobs.put(key, '{}');
      record.state = [{ key, bytes: 2 }];
    }
    await ports.metadata.put(`JOB#${job.jobId}`, ackPrefix(id) + subtask, record as unknown as Record<string, never>);
  };

  /** One run of the state machine: trigger → wait → poll … → finalize → notify (when completed). */
  const run = async (parts: Record<string, Part>): Promise<{ id: number; finalized: StepResult; notified: boolean }> => {
    const started = await steps.trigger({ jobId: job.jobId });
    expect(started).toMatchObject({ done: false, outcome: 'pending' });
    const id = started.checkpointId!;
    await clock.advance(100);
    for (const region of job.regions) {
      const part = parts[region.id] ?? 'ack';
      if (part === 'silent') continue;
      if (part === 'decline') await write(id, region.subtasks[0]!, 'disk full');
      else for (const s of region.subtasks) await write(id, s);
    }
    await clock.advance(1000);
    let polled = await steps.poll({ jobId: job.jobId, checkpointId: id });
    if (Object.values(parts).includes('silent')) {
      expect(polled).toMatchObject({ done: false, outcome: 'pending' });
      await clock.advance(10_000); // past the deadline: the silent region times out
      polled = await steps.poll({ jobId: job.jobId, checkpointId: id });
    }
    expect(polled.done).toBe(true);
    const finalized = await steps.finalize({ jobId: job.jobId, checkpointId: id });
    expect(finalized).toMatchObject({ done: true, outcome: polled.outcome });
    let notified = false;
    if (finalized.outcome === 'completed') notified = (await steps.notify({ jobId: job.jobId, checkpointId: id })).outcome === 'completed';
    await clock.advance(60_000);
    return { id, finalized, notified };
  };

  const driver = async () => CheckpointDriver.create({ job, graph: await service.graphOf(job.jobId), metadata: ports.metadata, blobs: ports.blobs, control: service, clock });
  const history = async (): Promise<CheckpointHistoryEntry[]> => (await driver()).history();
  return { ports, job, steps, regionIds, run, history, driver };
}

describe('CheckpointSteps: the consecutive-failure limit across steps', () => {
  it('a region failing in consecutive runs fails the checkpoint that reaches the limit as a whole; a completed region resets', async () => {
    const { job, regionIds, run, history, driver } = await setup(3);
    expect(regionIds.length).toBe(3);
    const [a, b] = regionIds as [string, string, string];

    // 1: a and b decline; the checkpoint completes, both fall back.
    const r1 = await run({ [a]: 'decline', [b]: 'decline' });
    expect(r1).toMatchObject({ id: 1, finalized: { outcome: 'completed' }, notified: true });
    // 2: a times out (fake clock), b completes and is reset.
    const r2 = await run({ [a]: 'silent' });
    expect(r2).toMatchObject({ id: 2, finalized: { outcome: 'completed' } });
    // 3: a fails a third time in a row: the limit (3) fails checkpoint 3 as a whole.
    const r3 = await run({ [a]: 'decline' });
    expect(r3.finalized).toMatchObject({ done: true, outcome: 'failed' });
    expect(r3.finalized.message).toMatch(new RegExp(`region ${a} failed 3 checkpoints in a row`));
    expect(r3.notified).toBe(false);
    // A driver built now (another step, or a restarted controller) starts from the counters.
    expect((await driver()).coordinator.consecutiveFailures(a)).toBe(3);
    // 4: everyone completes: a is reset. 5: a declines once more: only a fallback.
    expect(await run({})).toMatchObject({ id: 4, finalized: { outcome: 'completed' } });
    expect(await run({ [a]: 'decline' })).toMatchObject({ id: 5, finalized: { outcome: 'completed' } });

    const h = await history();
    expect(h.map((e) => [e.checkpointId, e.outcome.status === 'failed' ? e.outcome.reason : 'completed', e.failedRegions.map((f) => [f.regionId, f.reason]), e.consecutiveFailures])).toEqual([
      [1, 'completed', [[a, 'declined'], [b, 'declined']], { [a]: 1, [b]: 1 }],
      [2, 'completed', [[a, 'timeout']], { [a]: 2 }],
      [3, 'too-many-consecutive-failures', [[a, 'declined']], { [a]: 3 }],
      [4, 'completed', [], {}],
      [5, 'completed', [[a, 'declined']], { [a]: 1 }],
    ]);
    // Region a never completed before 4; the failed checkpoint 3 left no manifest.
    const latest = await (await driver()).catalog.loadLatest();
    expect(latest!.checkpointId).toBe(5);
    expect(latest!.regions.map((r) => [r.regionId, r.restoreFrom])).toEqual(regionIds.map((id) => [id, id === a ? 4 : 5]));
    expect(job.settings.checkpoint.maxConsecutiveRegionFailures).toBe(3);
  });

  it('with the limit at 2, the second consecutive failure (a timeout) fails the checkpoint; finalize run again does not count it twice', async () => {
    const { ports, job, steps, regionIds, run, history, driver } = await setup(2);
    const c = regionIds[2]!;
    expect((await run({ [c]: 'decline' })).finalized.outcome).toBe('completed');
    const r2 = await run({ [c]: 'silent' });
    expect(r2.finalized).toMatchObject({ outcome: 'failed' });
    expect(r2.finalized.message).toMatch(/failed 2 checkpoints in a row/);
    const entry = (await history()).find((e) => e.checkpointId === 2)!;
    expect(entry.outcome).toMatchObject({ status: 'failed', reason: 'too-many-consecutive-failures' });
    expect(entry.failedRegions).toEqual([expect.objectContaining({ regionId: c, reason: 'timeout' })]);
    expect(entry.consecutiveFailures).toEqual({ [c]: 2 });

    // A finalize retried after its write (the marker still there): the replay restores the counters
    // as of before 2, so it decides and writes the same entry.
    const marker = { checkpointId: 2, triggerTime: entry.triggerTime, deadline: entry.triggerTime + 10_000 };
    await ports.metadata.put(`JOB#${job.jobId}`, `CKPT_PENDING#${String(2).padStart(12, '0')}`, marker);
    expect(await steps.finalize({ jobId: job.jobId, checkpointId: 2 })).toMatchObject({ outcome: 'failed' });
    expect((await history()).find((e) => e.checkpointId === 2)!.consecutiveFailures).toEqual({ [c]: 2 });
    expect((await driver()).coordinator.consecutiveFailures(c)).toBe(2);
  });
});

describe('CheckpointSteps: a workflow that died before finalize', () => {
  it('the next trigger decides the abandoned checkpoint first, so its id and acknowledgements are not reused', async () => {
    const { job, steps, regionIds, history, run } = await setup(3);
    const abandoned = await steps.trigger({ jobId: job.jobId });
    expect(abandoned).toMatchObject({ checkpointId: 1, outcome: 'pending' });
    // Still within its deadline: a new trigger is refused.
    expect(await steps.trigger({ jobId: job.jobId })).toMatchObject({ outcome: 'refused', message: 'checkpoint 1 is still pending' });
    // The execution dies here (no poll, no finalize). Past the deadline the next run starts afresh.
    const { clock } = steps as unknown as { clock: { advance(ms: number): Promise<void> } };
    await clock.advance(11_000);
    const next = await run({});
    expect(next).toMatchObject({ id: 2, finalized: { outcome: 'completed' }, notified: true });
    const h = await history();
    // 1 was decided as timed out in every region (ratio 1 here: a completed checkpoint of fallbacks).
    expect(h.map((e) => e.checkpointId)).toEqual([1, 2]);
    expect(h[0]!.failedRegions.map((f) => f.reason)).toEqual(regionIds.map(() => 'timeout'));
    expect(h[1]!.failedRegions).toEqual([]);
  });
});
