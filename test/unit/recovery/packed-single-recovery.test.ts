/**
 * Single-point recovery of packed units (a unit hosts a slice of every task, so producers and
 * their consumers share it and the channels between units are multiplexed), through `hostUnit` as
 * child processes, Lambda and Fargate run it, on the in-memory ports. One unit is killed (its I/O
 * cut at once, as after SIGKILL) and restarts alone; checkpoints after the restart must complete
 * again (bench:scale's `--join-failover single` run found the next one never did).
 */
import { describe, expect, it } from 'vitest';
import { createMemoryPorts, type MemoryPorts } from '../../../lib/memory';
import { jobRegistry } from '../../../examples/jobs';
import { PortCheckpointCatalog } from '../../../lib/checkpoint/catalog';
import type { CheckpointManifest } from '../../../lib/checkpoint/types';
import { snapshotKey } from '../../../lib/runtime/checkpoint-io';
import { JobController } from '../../../lib/jobs/job-controller';
import { JobService, type UnitLauncher } from '../../../lib/jobs/job-service';
import { JobStore, type JobRecord, type UnitPlacement } from '../../../lib/jobs/job-store';
import { hostUnit } from '../../../lib/host/unit-host';
import { createFailoverHandler } from '../../../lib/recovery/failover-handler';
import { textLogger } from '../../../lib/ports/telemetry';
import { killSwitch } from '../../../lib/memory/kill-switch';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** Hosts each unit attempt in this process through `hostUnit`, each over its own kill switch. */
class KillableLauncher implements UnitLauncher {
  readonly log: string[] = [];
  private readonly live = new Map<string, { attempt: number; kill: () => void }>();

  constructor(private readonly ports: MemoryPorts) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const sw = killSwitch({ abortReceives: true });
    this.live.set(unit.unitId, { attempt, kill: sw.kill });
    const metadata = sw.wrap(this.ports.metadata);
    const name = `${unit.unitId}#${attempt}`;
    void hostUnit({
      jobId: job.jobId,
      job,
      unitId: unit.unitId,
      attempt,
      queuePrefix: 'pk',
      channels: sw.wrap(this.ports.channels),
      blobs: sw.wrap(this.ports.blobs),
      metadata,
      jobs: new JobStore(metadata),
      registry: jobRegistry,
      logger: textLogger((line, level) => {
        if (level !== 'debug') this.log.push(`${new Date().toISOString().slice(17, 23)} ${name}: ${line}`);
      }),
    }).catch((error: unknown) => this.log.push(`${name} ended: ${String(error)}`));
  }

  async stop(): Promise<void> {
    // A killed attempt does nothing more; these tests stop no live one.
  }

  /** Cuts the unit's I/O; returns the attempt killed. */
  kill(unitId: string): number {
    const live = this.live.get(unitId)!;
    live.kill();
    return live.attempt;
  }

  /** Every unit, before the job's queues are deleted (a live unit would poll them in a loop). */
  killAll(): void {
    for (const live of this.live.values()) live.kill();
  }
}

/** True when the manifest restores every one of these subtasks from a snapshot this attempt wrote. */
function snapshotsOf(manifest: CheckpointManifest, subtasks: readonly string[], attempt: number): boolean {
  const written = new Set(manifest.regions.flatMap((r) => r.subtasks.flatMap((s) => s.state.map((h) => h.key))));
  return subtasks.every((id) => written.has(snapshotKey(manifest.jobId, manifest.checkpointId, id, attempt)));
}

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

describe('single-point recovery of packed units (hostUnit, memory ports)', () => {
  // One unit: every producer restarts with its consumers (bench:scale's P=6). Two units: the
  // killed one hosts producers of both, and consumers fed by both.
  it.each([
    { units: 1, subtasksPerUnit: 100 },
    { units: 2, subtasksPerUnit: 3 },
  ])('$units unit(s): after a unit hosting producers and their consumers restarts alone, checkpoints complete again and its producers drop nothing', async ({ units, subtasksPerUnit }) => {
    const ports = createMemoryPorts();
    const jobs = new JobStore(ports.metadata);
    const launcher = new KillableLauncher(ports);
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'pk', launcher });
    // Paced sources (about 40 s of input): the job runs throughout the test, which cancels it.
    const params = { parallelism: 2, events: 40_000, featureUpdates: 4_000, users: 100, partitions: 4, minutes: 60, rate: 500 };
    const job = await service.submit({ job: 'recommendation-join', params, failover: 'single', subtasksPerUnit, heartbeatTimeoutSeconds: 60, checkpoint: { timeoutSeconds: 2 } });
    expect(job.units).toHaveLength(units);
    // The unit hosting producers and consumers both (pipelines are placed one after another: the
    // sources first, then the joins; the boundary's unit hosts some of each).
    const victim = job.units.find((u) => u.subtasks.some((s) => s.startsWith('join#')) && u.subtasks.some((s) => !s.startsWith('join#')))!;
    expect(victim).toBeDefined();
    const catalog = new PortCheckpointCatalog(job.jobId, ports.metadata, ports.blobs);
    const controlLog: string[] = [];
    const logger = textLogger((line, level) => {
      if (level !== 'debug') controlLog.push(`${new Date().toISOString().slice(17, 23)} control: ${line}`);
    });
    const controller = new JobController({
      service,
      metadata: ports.metadata,
      blobs: ports.blobs,
      pollMs: 50,
      checkpointEveryMs: 300,
      logger,
      onFailure: createFailoverHandler({ jobs, service, launcher, latestManifest: () => catalog.loadLatest(), logger }),
    });
    const running = controller.run(job.jobId);
    running.catch(() => undefined);
    try {
      const before = await waitFor('a first completed checkpoint', 15_000, async () => (await catalog.loadLatest())?.checkpointId);
      const attempt = launcher.kill(victim.unitId);
      controller.unitExited({ jobId: job.jobId, unitId: victim.unitId, attempt, code: null, signal: 'SIGKILL', at: Date.now() });
      const runningAt = await waitFor('the new attempt RUNNING', 10_000, async () => {
        const u = (await jobs.getUnits(job.jobId)).find((x) => x.unitId === victim.unitId);
        return u && u.attempt > attempt && u.status === 'RUNNING' ? Date.now() : undefined;
      });

      // Checkpoints go on completing, not just one: a barrier the restarted producers logged but
      // did not send can still reach their consumer in its replay (replay.ts), once. Triggered
      // every 300 ms, each timing out after 2 s. Messages the killed attempt had received stay
      // hidden for the gate's 15 s visibility timeout, as at SQS, and their channel waits for
      // them (CI saw checkpoints resume after 15.0 s): 45 s is that wait and many chances.
      const completed = await waitFor('3 checkpoints completed after the restart', 45_000, async () => {
        const after = (await controller.driver!.history()).filter((h) => h.triggerTime >= runningAt && h.outcome.status === 'completed');
        return after.length >= 3 ? after.map((h) => h.checkpointId) : undefined;
      }).catch((error: unknown) => {
        throw new Error(`${String(error)}\n${[...controlLog, ...launcher.log].sort().join('\n')}`);
      });
      expect(Math.min(...completed)).toBeGreaterThan(before);
      // ... with the new attempt's snapshots of the restarted subtasks.
      expect(snapshotsOf((await catalog.loadLatest())!, victim.subtasks, attempt + 1)).toBe(true);
      // The restarted producers dropped nothing (their consumers were all up before they sent).
      const stats = (await service.view(job.jobId)).units.find((u) => u.unitId === victim.unitId)!.stats;
      expect(Object.values(stats).map((st) => st.dropped)).toEqual(victim.subtasks.map(() => 0));
      // Only the killed unit restarted, once.
      const attempts = (await jobs.getUnits(job.jobId)).map((u) => [u.unitId, u.attempt]);
      expect(attempts).toEqual(job.units.map((u) => [u.unitId, u.unitId === victim.unitId ? attempt + 1 : 0]));
    } finally {
      launcher.killAll();
      await service.cancel(job.jobId).catch(() => undefined);
      await Promise.race([running, sleep(5000)]);
    }
  }, 90_000);
});
