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
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkOutputIds, type IdCheck } from '../../examples/jobs/output-check';
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

/**
 * What an exact output check found, small enough to read in a CI log: counts, the files that share
 * duplicated ids, and what the control plane did (the seed reruns the schedule:
 * SLUICE_CHAOS_SEED=<seed>). Equal to `exact(seed)` when the output is exact.
 */
function outcome(seed: number, jobId: string, check: IdCheck) {
  const exactly = check.missing.length + check.duplicated.length + check.unexpected.length === 0;
  let control: string[] = [];
  if (!exactly) {
    // Failovers and checkpoint decisions (control.log), and what each unit attempt restored from.
    const dir = join(runtime.logDir, jobId);
    const lines: { at: string; line: string }[] = [];
    for (const file of existsSync(dir) ? readdirSync(dir) : []) {
      for (const text of readFileSync(join(dir, file), 'utf8').split('\n')) {
        if (!text.startsWith('{') || !/failover|checkpoint \d+ (completed|failed)|restoring/.test(text)) continue;
        const l = JSON.parse(text) as { timestamp: string; message: string; unitId?: string; attempt?: number };
        lines.push({ at: l.timestamp, line: `${l.timestamp.slice(11, 23)} ${l.unitId ? `${l.unitId}#${l.attempt} ` : ''}${l.message.slice(0, 160)}` });
      }
    }
    control = lines.sort((a, b) => a.at.localeCompare(b.at)).map((l) => l.line).slice(-60);
  }
  return {
    seed,
    missing: check.missing.length,
    duplicated: check.duplicated.length,
    unexpected: check.unexpected.length,
    examples: [...check.missing.slice(0, 3), ...check.duplicated.slice(0, 3), ...check.unexpected.slice(0, 3)],
    duplicatedIn: check.duplicatedIn.slice(0, 10),
    control,
  };
}
const exact = (seed: number) => ({ seed, missing: 0, duplicated: 0, unexpected: 0, examples: [], duplicatedIn: [], control: [] });

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
  return { job, view, chaotic, controller, history, seed };
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
    expect(outcome(seed, job.jobId, check)).toEqual(exact(seed));
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
    expect(outcome(seed, job.jobId, check)).toEqual(exact(seed));
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
