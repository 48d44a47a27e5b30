/**
 * `maxConsecutiveRegionFailures` on the Step Functions path: every step (trigger, poll, finalize,
 * notify) builds a fresh driver from the catalog, so the counters must come back from the history.
 * In-memory ports; acknowledgements are written as the task units write them.
 */
import { describe, expect, it } from 'vitest';
import { jobRegistry } from '../../../examples/jobs';
import type { CheckpointHistoryEntry } from '../../../lib/checkpoint';
import { CheckpointDriver } from '../../../lib/jobs/checkpoint-driver';
import { CheckpointSteps, fencePendingCheckpoints, pollWaitSeconds, type StepResult } from '../../../lib/jobs/checkpoint-steps';
import { JobService } from '../../../lib/jobs/job-service';
import { JobStore } from '../../../lib/jobs/job-store';
import { createMemoryPorts } from '../../../lib/memory';
import { ackSk, snapshotKey, type AckRecord } from '../../../lib/runtime/checkpoint-io';
import { ackPk } from '../../../lib/ports/metadata-keys';
import { StepsCheckpointService } from '../../../functions/api/services';
import { RecordingLauncher } from '../api/helpers';
import { FakeClock } from '../schedule/fake-clock';

type Part = 'ack' | 'decline' | 'silent';

async function setup(maxConsecutiveRegionFailures: number, timeoutSeconds = 10) {
  const ports = createMemoryPorts();
  const jobs = new JobStore(ports.metadata);
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'steps', launcher: new RecordingLauncher() });
  const job = await service.submit({
    job: 'ingest',
    params: { parallelism: 3 },
    // Ratio 1: only the consecutive limit can fail a checkpoint as a whole here.
    checkpoint: { handle: 'regional', timeoutSeconds, maxFailedRegionRatio: 1, maxConsecutiveRegionFailures },
  });
  const clock = new FakeClock(1_767_225_600_000);
  const steps = new CheckpointSteps({ jobs, service, metadata: ports.metadata, blobs: ports.blobs, clock });
  const regionIds = job.regions.map((r) => r.id);

  const write = async (id: number, subtask: string, declined?: string, attempt?: number) => {
    const record: AckRecord = { subtask, checkpointId: id, state: [], at: clock.now() };
    if (attempt !== undefined) record.attempt = attempt;
    if (declined !== undefined) record.declined = declined;
    else {
      const key = snapshotKey(job.jobId, id, subtask, attempt ?? 0);
      await ports.blobs.put(key, '{}');
      record.state = [{ key, bytes: 2 }];
    }
    const sk = attempt === undefined ? subtask : ackSk(subtask, attempt);
    await ports.metadata.put(ackPk(job.jobId, id), sk, record as unknown as Record<string, never>);
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
  return { ports, jobs, service, clock, job, steps, regionIds, run, history, driver, write };
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
    await ports.metadata.put(`JOB#${job.jobId}#CKPT`, `CKPT_PENDING#${String(2).padStart(12, '0')}`, marker);
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

describe('CheckpointSteps: every step converges when run twice', () => {
  it('a finalize killed after it persisted: the retry and a later trigger converge, and the next checkpoint completes', async () => {
    const { ports, job, steps, clock, run, history, write } = await setup(3);
    const started = await steps.trigger({ jobId: job.jobId });
    const id = started.checkpointId!;
    for (const r of job.regions) for (const s of r.subtasks) await write(id, s);
    expect(await steps.poll({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    // Killed between persisting and deleting the marker.
    const del = ports.metadata.delete.bind(ports.metadata);
    ports.metadata.delete = async () => {
      throw new Error('killed');
    };
    await expect(steps.finalize({ jobId: job.jobId, checkpointId: id })).rejects.toThrow('killed');
    ports.metadata.delete = del;
    const pointer = await ports.metadata.get(`JOB#${job.jobId}#CKPT`, 'CKPT_LATEST');
    expect(pointer).toMatchObject({ checkpointId: id });
    // The retry, a second poll, and a second notify all answer as the first run did.
    expect(await steps.poll({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    expect(await steps.finalize({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    expect(await steps.finalize({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    expect(await steps.notify({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    expect(await steps.notify({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    expect(await ports.metadata.get(`JOB#${job.jobId}#CKPT`, 'CKPT_LATEST')).toEqual(pointer);
    expect(await ports.metadata.query(`JOB#${job.jobId}#CKPT`, 'CKPT_PENDING#')).toEqual([]);
    await clock.advance(1000);
    expect(await run({})).toMatchObject({ id: 2, finalized: { outcome: 'completed' }, notified: true });
    expect((await history()).map((h) => [h.checkpointId, h.outcome.status])).toEqual([
      [1, 'completed'],
      [2, 'completed'],
    ]);
  });

  it('the next trigger finalizes a marker left by a killed finalize without throwing', async () => {
    const { ports, job, steps, clock, run, write } = await setup(3);
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    for (const r of job.regions) for (const s of r.subtasks) await write(id, s);
    const del = ports.metadata.delete.bind(ports.metadata);
    ports.metadata.delete = async () => {
      throw new Error('killed');
    };
    await expect(steps.finalize({ jobId: job.jobId, checkpointId: id })).rejects.toThrow('killed');
    ports.metadata.delete = del;
    await clock.advance(11_000); // the marker's deadline passes: the next trigger finalizes it first
    expect(await run({})).toMatchObject({ id: 2, finalized: { outcome: 'completed' } });
  });

  it('a trigger step killed after its marker, before the trigger went out, is taken over by the next one with the same id', async () => {
    const { ports, job, steps, service, run, write } = await setup(3);
    const send = service.sendControl.bind(service);
    service.sendControl = async () => {
      throw new Error('killed');
    };
    await expect(steps.trigger({ jobId: job.jobId })).rejects.toThrow('killed');
    service.sendControl = send;
    expect(await ports.metadata.query(`JOB#${job.jobId}#CKPT`, 'CKPT_PENDING#')).toMatchObject([{ item: { checkpointId: 1, sent: false } }]);
    const again = await steps.trigger({ jobId: job.jobId });
    expect(again).toMatchObject({ checkpointId: 1, done: false, outcome: 'pending' });
    const messages = await Promise.all(job.units.map((u) => ports.channels.receive(u.controlQueue, { max: 10, waitSeconds: 0 })));
    expect(messages.flat().map((m) => JSON.parse(m.body))).toContainEqual(expect.objectContaining({ type: 'triggerCheckpoint', checkpointId: 1 }));
    // Sent now: a third trigger is refused, and checkpoint 1 completes as usual.
    expect(await steps.trigger({ jobId: job.jobId })).toMatchObject({ outcome: 'refused' });
    for (const r of job.regions) for (const s of r.subtasks) await write(1, s);
    expect(await steps.finalize({ jobId: job.jobId, checkpointId: 1 })).toMatchObject({ done: true, outcome: 'completed' });
    expect(await run({})).toMatchObject({ id: 2, finalized: { outcome: 'completed' } });
  });
});

describe('CheckpointSteps: acknowledgements carry the attempt', () => {
  it("a unit restarted after acknowledging: its dead attempt's acknowledgement does not complete its region", async () => {
    const { jobs, job, steps, regionIds, write, driver } = await setup(3);
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    for (const r of job.regions) for (const s of r.subtasks) await write(id, s, undefined, 0);
    // Region 0's units restart (attempt 1) before N is finalized; attempt 1 acknowledges N too.
    const restarted = job.units.filter((u) => u.subtasks.some((s) => job.regions[0]!.subtasks.includes(s)));
    for (const u of restarted) await jobs.startUnitAttempt(job.jobId, u.unitId, u.subtasks, 1);
    for (const s of job.regions[0]!.subtasks) await write(id, s, undefined, 1);
    expect(await steps.poll({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    const finalized = await steps.finalize({ jobId: job.jobId, checkpointId: id });
    expect(finalized).toMatchObject({ done: true, outcome: 'completed' });
    const latest = (await (await driver()).catalog.loadLatest())!;
    expect(latest.regions.map((r) => [r.regionId, r.restoreFrom])).toEqual(regionIds.map((r, i) => [r, i === 0 ? null : id]));
    const entry = (await (await driver()).history()).find((h) => h.checkpointId === id)!;
    expect(entry.failedRegions).toEqual([expect.objectContaining({ regionId: regionIds[0], reason: 'task-failed' })]);
    // The manifest names each restored subtask's snapshot, of the attempt that wrote it.
    expect(latest.regions[1]!.subtasks.flatMap((s) => s.state.map((h) => h.key))).toEqual(job.regions[1]!.subtasks.map((s) => snapshotKey(job.jobId, id, s, 0)));
  });
});

describe('CheckpointSteps: a checkpoint pending when the job ends is decided', () => {
  it('the workflow in Wait/Poll decides it job-ended; the API history shows it failed, not pending', async () => {
    const { job, steps, service, history } = await setup(3);
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    await service.cancel(job.jobId);
    expect(await steps.poll({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'failed' });
    const finalized = await steps.finalize({ jobId: job.jobId, checkpointId: id });
    expect(finalized).toMatchObject({ done: true, outcome: 'failed', message: expect.stringMatching(/pending when the job was CANCELLED/) });
    expect((await history()).map((h) => [h.checkpointId, h.outcome])).toEqual([[id, expect.objectContaining({ status: 'failed', reason: 'job-ended' })]]);
  });

  it('with no workflow left to decide it, listing the history decides it', async () => {
    const { ports, jobs, job, steps, service } = await setup(3);
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    await service.cancel(job.jobId);
    const api = new StepsCheckpointService({ jobs, metadata: ports.metadata, steps });
    expect(await api.history(job.jobId)).toEqual([expect.objectContaining({ checkpointId: id, status: 'failed', reason: 'job-ended' })]);
    expect(await ports.metadata.query(`JOB#${job.jobId}#CKPT`, 'CKPT_PENDING#')).toEqual([]);
    // A trigger of the ended job decides nothing more and starts nothing.
    expect(await steps.trigger({ jobId: job.jobId })).toMatchObject({ done: true, outcome: 'job-not-running' });
  });

  it('the local driver, when its job ends, decides the checkpoint it has pending after a last look at the acknowledgements', async () => {
    const { job, driver, write, history } = await setup(3);
    const local = await driver();
    const id = (await local.trigger())!;
    await write(id, job.regions[0]!.subtasks[0]!);
    await local.jobEnded('the job ended FINISHED');
    expect(local.coordinator.pendingCheckpoints()).toEqual([]);
    const [entry] = await history();
    expect(entry).toMatchObject({ checkpointId: id, outcome: { status: 'failed', reason: 'job-ended', message: `checkpoint ${id} was pending when the job ended FINISHED` } });
    expect(entry!.bytesWritten).toBe(2); // the acknowledgement read at the end was counted (and its snapshot discarded)
  });
});

describe('CheckpointSteps: aborts reach the units, as from the local driver', () => {
  it('waits longer between polls as a checkpoint ages (a quarter of its age, up to a minute), never past its deadline', async () => {
    expect([0, 3_999, 4_000, 40_000, 239_999, 240_000, 3_600_000].map((age) => pollWaitSeconds(age, 3_600_000))).toEqual([1, 1, 1, 10, 59, 60, 60]);
    expect(pollWaitSeconds(400_000, 7_500)).toBe(8);
    expect(pollWaitSeconds(400_000, -5_000)).toBe(1);
    const { job, steps, clock } = await setup(3, 600);
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    const waits: number[] = [];
    for (const at of [100, 40_000, 400_000, 590_000]) {
      await clock.advance(at - (waits.length === 0 ? 0 : [100, 40_000, 400_000, 590_000][waits.length - 1]!));
      const r = await steps.poll({ jobId: job.jobId, checkpointId: id });
      expect(r.done).toBe(false);
      waits.push(r.waitSeconds!);
    }
    // 0.1 s, 40 s, 400 s old; at 590 s, 10 s before its 600 s deadline.
    expect(waits).toEqual([1, 10, 60, 10]);
  });

  it('a region that declines N is told to stop aligning N at the next poll, once, while the others go on', async () => {
    const { job, steps, service, clock, write } = await setup(3);
    const sent: { units: string[]; type: string; checkpointId?: number; subtasks?: string[] }[] = [];
    const send = service.sendControl.bind(service);
    service.sendControl = async (j, units, message) => {
      sent.push({ units: [...units], ...(message as { type: string; checkpointId?: number; subtasks?: string[] }) });
      return send(j, units, message);
    };
    const aborts = () => sent.filter((m) => m.type === 'checkpointAborted');
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    const [declining, ...others] = job.regions;
    await write(id, declining!.subtasks[0]!, 'disk full');
    await clock.advance(100);
    expect(await steps.poll({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: false });
    const unitsOf = (subtasks: readonly string[]) => job.units.filter((u) => u.subtasks.some((s) => subtasks.includes(s))).map((u) => u.unitId).sort();
    expect(aborts()).toEqual([{ units: unitsOf(declining!.subtasks), type: 'checkpointAborted', checkpointId: id, subtasks: declining!.subtasks }]);
    // Later polls replay N from the start: the abort is not sent again.
    await clock.advance(1000);
    expect(await steps.poll({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: false });
    for (const r of others) for (const s of r.subtasks) await write(id, s);
    expect(await steps.poll({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    expect(await steps.finalize({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    expect(aborts()).toHaveLength(1);
    expect(sent.filter((m) => m.type === 'checkpointAborted' && m.units.some((u) => !unitsOf(declining!.subtasks).includes(u)))).toEqual([]);
  });
});

describe('CheckpointSteps: a unit restart and a finalize are ordered (fencePendingCheckpoints)', () => {
  it('a restart between finalize reading the attempts and storing N: finalize decides again, and the restarted region fails N', async () => {
    const { ports, jobs, job, steps, regionIds, write, driver } = await setup(3);
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    for (const r of job.regions) for (const s of r.subtasks) await write(id, s, undefined, 0);
    const restarted = job.units.filter((u) => u.subtasks.some((s) => job.regions[0]!.subtasks.includes(s)));
    // The failover handler's steps, right after finalize has read the attempts (all still 0).
    const read = jobs.unitAttempts.bind(jobs);
    let restartedOnce = false;
    jobs.unitAttempts = async (jobId: string) => {
      const attempts = await read(jobId);
      if (!restartedOnce) {
        restartedOnce = true;
        for (const u of restarted) await jobs.startUnitAttempt(job.jobId, u.unitId, u.subtasks, 1);
        expect(await fencePendingCheckpoints(ports.metadata, job.jobId)).toEqual([]);
      }
      return attempts;
    };
    expect(await steps.finalize({ jobId: job.jobId, checkpointId: id })).toMatchObject({ done: true, outcome: 'completed' });
    expect(restartedOnce).toBe(true);
    // The new attempt restores from N - 1 (none here): N must not restore its region from the dead attempt's snapshots.
    const latest = (await (await driver()).catalog.loadLatest())!;
    expect(latest.regions.map((r) => [r.regionId, r.restoreFrom])).toEqual(regionIds.map((r, i) => [r, i === 0 ? null : id]));
    const entry = (await (await driver()).history()).find((h) => h.checkpointId === id)!;
    expect(entry.failedRegions).toEqual([expect.objectContaining({ regionId: regionIds[0], reason: 'task-failed' })]);
  });

  it('a restart after finalize has taken N waits until N is stored, so the new attempt restores from N', async () => {
    const { ports, jobs, job, steps, write, driver } = await setup(3);
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    for (const r of job.regions) for (const s of r.subtasks) await write(id, s, undefined, 0);
    const unit = job.units.find((u) => u.subtasks.some((s) => job.regions[0]!.subtasks.includes(s)))!;
    // Finalize is held right after it took the marker; the restart comes then.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const update = ports.metadata.update.bind(ports.metadata);
    let fenced: Promise<number[]> | undefined;
    let fenceDone = false;
    ports.metadata.update = async (pk, sk, changes, conditions) => {
      const out = await update(pk, sk, changes, conditions);
      if (out && changes.set?.deciding === true && !fenced) {
        await jobs.startUnitAttempt(job.jobId, unit.unitId, unit.subtasks, 1);
        fenced = fencePendingCheckpoints(ports.metadata, job.jobId, { pollMs: 5 }).then((left) => {
          fenceDone = true;
          return left;
        });
        await held;
      }
      return out;
    };
    const finalizing = steps.finalize({ jobId: job.jobId, checkpointId: id });
    await new Promise((r) => setTimeout(r, 100));
    expect(fenced).toBeDefined();
    expect(fenceDone).toBe(false); // the restart waits for N's decision
    release();
    expect(await finalizing).toMatchObject({ done: true, outcome: 'completed' });
    expect(await fenced).toEqual([]);
    // N was decided with the attempts finalize read: every region completed it, and N is what the new attempt finds.
    expect((await (await driver()).catalog.loadLatest())!.checkpointId).toBe(id);
    expect((await (await driver()).catalog.loadLatest())!.regions.every((r) => r.restoreFrom === id)).toBe(true);
  });

  it('a finalize that died holding N is waited for a bounded time, and named', async () => {
    const { ports, job, steps } = await setup(3);
    const id = (await steps.trigger({ jobId: job.jobId })).checkpointId!;
    await ports.metadata.update(`JOB#${job.jobId}#CKPT`, `CKPT_PENDING#${String(id).padStart(12, '0')}`, { set: { deciding: true } });
    expect(await fencePendingCheckpoints(ports.metadata, job.jobId, { waitMs: 50, pollMs: 5 })).toEqual([id]);
  });
});
