/**
 * Hand-over on child-process task units and the AWS emulator, as a Lambda unit does before its
 * 15-minute limit: every invocation ends after a few seconds (exit code 75) and the next
 * invocation of the same attempt continues from the state it left in S3. The output must be
 * exact, with no failure handled and no new attempt; and a real SIGKILL after hand-overs must
 * still recover exactly once from the checkpoint.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { LocalRuntime } from '../../lib/local/local-runtime';
import { jobRegistry } from '../../examples/jobs';
import { checkDemoOutput } from '../../examples/jobs/demo-check';

const config = { ...loadConfig(), table: 'sluice-e2e-ho', bucket: 'sluice-e2e-ho', queuePrefix: 'e2eho' };
const HANDOVER_AFTER_MS = 4000;
let runtime: LocalRuntime;

beforeAll(async () => {
  runtime = new LocalRuntime(config, jobRegistry, { handoverAfterMs: HANDOVER_AFTER_MS });
  await runtime.prepare();
});
afterAll(() => runtime.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const params = { records: 60_000, parallelism: 2, users: 100, hours: 4, partitions: 4, rate: 3000 };
const request = { job: 'demo', params, failover: 'region' as const, heartbeatTimeoutSeconds: 20, checkpoint: { handle: 'regional' as const, timeoutSeconds: 10 } };

function handoversOf(jobId: string): Map<string, number> {
  return new Map([...runtime.launcher.handovers].filter(([k]) => k.startsWith(`${jobId}/`)).map(([k, n]) => [k.slice(jobId.length + 1), n]));
}

describe('hand-over to the next invocation (child processes, exit code 75)', () => {
  it('keyed demo job: every unit hands over, nothing fails or restarts, every aggregate exact', async () => {
    const job = await runtime.service.submit(request);
    const controller = runtime.controller({ pollMs: 250, checkpointEveryMs: 1000 });
    const view = await controller.run(job.jobId);
    const handovers = handoversOf(job.jobId);
    const history = await controller.driver!.history();
    const failed = history.flatMap((h) => (h.outcome.status === 'failed' ? [`${h.checkpointId}: ${h.outcome.message}`] : h.failedRegions.map((f) => `${h.checkpointId} (${f.regionId}): ${f.message}`)));
    console.log(`hand-overs: ${[...handovers].map(([u, n]) => `${u} ${n}`).join(', ')}; checkpoints ${history.filter((h) => h.outcome.status === 'completed').length} completed / ${history.length}`);
    if (failed.length > 0) console.log(`checkpoint failures (a hand-over in the middle of one declines or delays it):\n  ${failed.join('\n  ')}`);
    expect(view.job.status).toBe('FINISHED');
    expect(controller.supervisor.failures).toEqual([]);
    expect(view.units.every((u) => u.attempt === 0)).toBe(true);
    // The keyed aggregators run from the first record to the last, well past one invocation.
    const aggregators = view.units.filter((u) => !u.subtasks.some((s) => s.startsWith('generator')));
    expect(aggregators.length).toBeGreaterThan(0);
    for (const u of aggregators) expect(handovers.get(`${u.unitId}#0`) ?? 0, u.unitId).toBeGreaterThanOrEqual(1);
    for (const u of view.units) expect(u.generation ?? 0, u.unitId).toBe(handovers.get(`${u.unitId}#0`) ?? 0);
    expect(view.totals.dropped).toBe(0);
    const check = await checkDemoOutput(runtime.ports.clients.s3, config.bucket, job.jobId, view.job.params);
    expect(check).toMatchObject({ ok: true, wrong: [], duplicated: [], unexpected: [] });
  });

  it('packed units (a generator and an aggregate each): channels within a unit hand over too, every aggregate exact', async () => {
    // Half the keyBy channels have their producer and consumer in one unit and skip SQS; at a
    // hand-over what the aggregate had not taken goes to the unit's queue for the next invocation.
    const job = await runtime.service.submit({ ...request, subtasksPerUnit: 2 });
    expect(job.units.map((u) => u.subtasks.length)).toEqual([2, 2]);
    const controller = runtime.controller({ pollMs: 250, checkpointEveryMs: 1000 });
    const view = await controller.run(job.jobId);
    const handovers = handoversOf(job.jobId);
    console.log(`packed hand-overs: ${[...handovers].map(([u, n]) => `${u} ${n}`).join(', ')}`);
    expect(view.job.status).toBe('FINISHED');
    expect(controller.supervisor.failures).toEqual([]);
    for (const u of view.units) expect(handovers.get(`${u.unitId}#0`) ?? 0, u.unitId).toBeGreaterThanOrEqual(1);
    expect(view.totals.dropped).toBe(0);
    const check = await checkDemoOutput(runtime.ports.clients.s3, config.bucket, job.jobId, view.job.params);
    expect(check).toMatchObject({ ok: true, wrong: [], duplicated: [], unexpected: [] });
  });

  it('a unit killed after hand-overs restarts from its last checkpoint, and the output stays exact', async () => {
    const job = await runtime.service.submit(request);
    const controller = runtime.controller({ pollMs: 250, checkpointEveryMs: 1000 });
    let finished = false;
    const running = controller.run(job.jobId).finally(() => (finished = true));
    // Kill a unit that has handed over, once a checkpoint has completed, on observed conditions
    // only: the paced input (20 s) outlasts several 4 s invocations, however long the units take
    // to start. On a loaded machine a checkpoint can take longer than the 4 s between hand-overs,
    // which decline it, and none completes before the input ends (a clean clone saw 3 of 26 in the
    // test above, none in this one): after the third hand-over the kill comes anyway, and the unit
    // restarts from whatever its last checkpoint is (the start, if none), which must be as exact.
    let victim: string | undefined;
    while (!finished && !victim) {
      await sleep(100);
      const handovers = handoversOf(job.jobId);
      const handed = [...handovers.keys()].map((k) => k.split('#')[0]!);
      const units = (await runtime.jobs.getUnits(job.jobId)).filter((u) => u.status === 'RUNNING' && handed.includes(u.unitId));
      const checkpointed = (controller.driver?.log.filter((l) => l.endsWith('completed')).length ?? 0) > 0;
      const handedOver = [...handovers.values()].reduce((a, n) => a + n, 0);
      if (units.length > 0 && (checkpointed || handedOver >= 3)) victim = units[0]!.unitId;
    }
    expect(victim, 'no unit handed over in time').toBeDefined();
    expect(runtime.launcher.kill(job.jobId, victim!)).toBe(true);
    const view = await running;
    console.log(`killed ${victim} after hand-overs ${[...handoversOf(job.jobId)].map(([u, n]) => `${u} ${n}`).join(', ')}; failures ${controller.supervisor.failures.map((f) => f.unitId).join(', ')}`);
    expect(view.job.status).toBe('FINISHED');
    expect(controller.supervisor.failures.map((f) => f.unitId)).toEqual([victim]);
    const check = await checkDemoOutput(runtime.ports.clients.s3, config.bucket, job.jobId, view.job.params);
    expect(check).toMatchObject({ ok: true, wrong: [], duplicated: [], unexpected: [] });
  });
});
