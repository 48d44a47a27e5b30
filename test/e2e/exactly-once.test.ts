/**
 * Exactly-once under failures, on child-process task units and the AWS emulator: task units are
 * killed with SIGKILL at random moments, one of them right after a checkpoint is triggered (in
 * the middle of the checkpoint). The committed S3 output must equal the expected records exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { LocalRuntime } from '../../lib/local/local-runtime';
import type { JobController } from '../../lib/jobs/job-controller';
import type { SubmitRequest } from '../../lib/jobs/job-service';
import { jobRegistry } from '../../examples/jobs';
import { expectedIngestIds } from '../../examples/jobs/ingest';
import { checkOutputIds } from '../../examples/jobs/output-check';
import { checkDemoOutput } from '../../examples/jobs/demo-check';
import { seededRandom } from '../../bench/lib/random';

const config = { ...loadConfig(), table: 'sluice-e2e-eo', bucket: 'sluice-e2e-eo', queuePrefix: 'e2eeo' };
let runtime: LocalRuntime;

beforeAll(async () => {
  runtime = new LocalRuntime(config, jobRegistry);
  await runtime.prepare();
});
afterAll(() => runtime.close());


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Chaos {
  killed: string[];
  midCheckpoint: number;
}

/** Kills `kills` random running units; the second one right after a checkpoint trigger. */
async function chaos(jobId: string, controller: JobController, random: () => number, kills: number, done: () => boolean): Promise<Chaos> {
  const out: Chaos = { killed: [], midCheckpoint: 0 };
  await sleep(1500);
  for (let k = 0; k < kills && !done(); k++) {
    if (k === 1) {
      // Wait for a fresh trigger, then kill while the checkpoint is in flight.
      const triggers = () => controller.driver?.log.filter((l) => l.startsWith('trigger')).length ?? 0;
      const before = triggers();
      for (let i = 0; i < 100 && triggers() === before && !done(); i++) await sleep(50);
      await sleep(random() * 150);
      out.midCheckpoint++;
    } else {
      await sleep(500 + random() * 2500);
    }
    let units = (await runtime.jobs.getUnits(jobId)).filter((u) => u.status === 'RUNNING');
    for (let i = 0; i < 100 && units.length === 0 && !done(); i++) {
      await sleep(200); // units still starting (or restarting after the last kill)
      units = (await runtime.jobs.getUnits(jobId)).filter((u) => u.status === 'RUNNING');
    }
    if (units.length === 0 || done()) break;
    const victim = units[Math.floor(random() * units.length)]!;
    if (runtime.launcher.kill(jobId, victim.unitId)) out.killed.push(`${victim.unitId}#${victim.attempt}`);
    await sleep(1500); // let the failover start before the next kill
  }
  return out;
}

async function runWithKills(request: SubmitRequest, seed: number, kills: number) {
  const random = seededRandom(seed);
  const job = await runtime.service.submit(request);
  const controller = runtime.controller({ pollMs: 250, checkpointEveryMs: 700 });
  let finished = false;
  const running = controller.run(job.jobId).finally(() => (finished = true));
  const chaotic = await chaos(job.jobId, controller, random, kills, () => finished);
  const view = await running;
  const history = await controller.driver!.history();
  console.log(
    `seed ${seed}: killed ${chaotic.killed.join(', ') || 'none'}; ${controller.supervisor.failures.length} failures handled; ` +
      `checkpoints ${history.filter((h) => h.outcome.status === 'completed').length} completed / ${history.length}`,
  );
  return { job, view, chaotic, controller, history };
}

describe('exactly-once output under random task-unit kills', () => {
  it('ingest job, regional checkpoints, region failover: each pipeline region restarts alone and the output is exact', async () => {
    const seed = Number(process.env.SLUICE_CHAOS_SEED ?? Date.now() % 100_000);
    const params = { parallelism: 3, partitions: 6, recordsPerPartition: 8000, rate: 1500 };
    const { job, view, chaotic, controller, history } = await runWithKills(
      { job: 'ingest', params, failover: 'region', heartbeatTimeoutSeconds: 20, checkpoint: { handle: 'regional', timeoutSeconds: 10 } },
      seed,
      3,
    );
    expect(view.job.status).toBe('FINISHED');
    expect(chaotic.killed.length).toBeGreaterThanOrEqual(2);
    expect(chaotic.midCheckpoint).toBe(1);
    // Every failure handled is a kill (a unit killed just as it finished its input is not a failure).
    const failures = controller.supervisor.failures;
    expect(failures.length).toBeGreaterThanOrEqual(1);
    for (const f of failures) expect(chaotic.killed).toContain(`${f.unitId}#${f.attempt}`);
    expect(history.some((h) => h.outcome.status === 'completed')).toBe(true);

    // Region failover restarts only the failed unit's pipeline (2 units of 6).
    const restarted = view.units.filter((u) => u.attempt > 0).map((u) => u.unitId.split('-').pop());
    const failedPipelines = new Set(failures.map((f) => f.unitId.split('-').pop()));
    expect(new Set(restarted)).toEqual(failedPipelines);

    const check = await checkOutputIds(runtime.ports.clients.s3, config.bucket, job.jobId, expectedIngestIds(view.job.params), (r) => r.id as string);
    expect(check.missing).toEqual([]);
    expect(check.duplicated).toEqual([]);
    expect(check.unexpected).toEqual([]);
    expect(check.records).toBe(6 * 8000);
  });

  it('ingest job, global checkpoint handle: the output is exact', async () => {
    const seed = Number(process.env.SLUICE_CHAOS_SEED ?? (Date.now() + 1) % 100_000);
    const params = { parallelism: 2, partitions: 4, recordsPerPartition: 8000, rate: 1500 };
    const { job, view, chaotic } = await runWithKills(
      { job: 'ingest', params, failover: 'region', heartbeatTimeoutSeconds: 20, checkpoint: { handle: 'global', timeoutSeconds: 10 } },
      seed,
      2,
    );
    expect(view.job.status).toBe('FINISHED');
    expect(chaotic.killed.length).toBeGreaterThanOrEqual(1);
    const check = await checkOutputIds(runtime.ports.clients.s3, config.bucket, job.jobId, expectedIngestIds(view.job.params), (r) => r.id as string);
    expect(check.missing).toEqual([]);
    expect(check.duplicated).toEqual([]);
    expect(check.records).toBe(4 * 8000);
  });

  it('keyed demo job (one region): every aggregate exact after kills', async () => {
    const seed = Number(process.env.SLUICE_CHAOS_SEED ?? (Date.now() + 2) % 100_000);
    const params = { records: 60_000, parallelism: 2, users: 100, hours: 4, partitions: 4, rate: 4000 };
    const { job, view, chaotic } = await runWithKills(
      { job: 'demo', params, failover: 'region', heartbeatTimeoutSeconds: 20, checkpoint: { handle: 'regional', timeoutSeconds: 10 } },
      seed,
      2,
    );
    expect(view.job.status).toBe('FINISHED');
    expect(chaotic.killed.length).toBeGreaterThanOrEqual(1);
    const check = await checkDemoOutput(runtime.ports.clients.s3, config.bucket, job.jobId, view.job.params);
    expect(check.wrong).toEqual([]);
    expect(check.duplicated).toEqual([]);
    expect(check.unexpected).toEqual([]);
  });
});
