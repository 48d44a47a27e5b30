/**
 * What one checkpoint of the all-to-all join costs per barrier part (issue 12), cheaply: the
 * recommendation join at parallelism P, units packed, every unit hosted in this process by
 * `hostUnit` (the composition root child processes, Lambda and Fargate run) over the IN-MEMORY
 * ports, no records, checkpoints only through the Step Functions steps (CheckpointSteps.trigger,
 * runCheckpointWorkflow). No emulator, no HTTP: what is left is the engine's own per-part work
 * (writers, multiplexer, envelope decoding, input gates, alignment, snapshots).
 *
 *   npm run bench:checkpoint-alignment -- [--parallelism 500] [--checkpoints 2] [--failover region]
 *
 * A checkpoint of the join is P x P barrier parts per all-to-all edge (two edges: 2 P^2), each
 * written by a source's writer, multiplexed, decoded and aligned by a join subtask. MEASURED per
 * checkpoint: this process's CPU (user + system) less the idle rate measured before, over the
 * barrier parts (every channel of the job carries one); heap used before it and the most sampled
 * during it (every 100 ms, so a short peak can be missed); wall time. `node --cpu-prof` or
 * `--heap-prof` before `--import tsx` profiles it (docs/scale.md).
 */
import { commandFlags, commandWith, defineFlags, type FlagValues } from '../lib/cli/flags';
import { markdownTable } from './lib/report';
import { describeMachine, machineInfo, writeResults } from './lib/results';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { writeHeapSnapshot } from 'node:v8';
import { createMemoryPorts } from '../lib/memory';
import { jobRegistry } from '../examples/jobs';
import { buildExecutionGraph } from '../lib/graph/execution-graph';
import { JobService, type UnitLauncher } from '../lib/jobs/job-service';
import { JobStore, type FailoverStrategy, type JobRecord, type UnitPlacement } from '../lib/jobs/job-store';
import { JobController } from '../lib/jobs/job-controller';
import { CheckpointSteps } from '../lib/jobs/checkpoint-steps';
import { runCheckpointWorkflow } from '../lib/api-server/checkpoint-workflow';
import { hostUnit } from '../lib/host/unit-host';
import { createFailoverHandler } from '../lib/recovery/failover-handler';
import { PortCheckpointCatalog } from '../lib/checkpoint/catalog';
import type { Logger } from '../lib/ports/telemetry';

const FLAGS = defineFlags({
  parallelism: { type: 'number', default: 500, integer: true, min: 2, help: 'parallelism of the join (P=1000: ~2 M barrier parts per checkpoint; keep it below 2000 on a shared machine)' },
  subtasksPerUnit: { type: 'number', default: 100, integer: true, min: 1, help: 'subtasks per task unit (whole pipeline slices), as bench:scale' },
  checkpoints: { type: 'number', default: 2, integer: true, min: 1, help: 'checkpoints measured, one after the other' },
  failover: { type: 'string', default: 'region', choices: ['single', 'single-exact', 'region', 'full'], help: 'failover of the job (single and single-exact keep in-flight logs)' },
  idleS: { type: 'number', default: 5, min: 1, help: 'idle window before the checkpoints (its CPU rate is subtracted)' },
  checkpointTimeoutS: { type: 'number', default: 600, min: 10, help: 'checkpoint timeout of the job' },
  liveHeap: { type: 'boolean', help: 'sample the LIVE heap: a full GC before each sample (every 500 ms; needs node --expose-gc, which the npm script gives): what a checkpoint holds, not what it left for the collector. Its GCs count in the CPU figures' },
  cpuProfile: { type: 'string', help: 'write a CPU profile of the checkpoints only (node:inspector) to this file (.cpuprofile)' },
  heapSnapshotS: { type: 'number', default: 0, min: 0, help: 'write a heap snapshot this many seconds into the first checkpoint (0: none), under bench/results/' },
  out: { type: 'string', default: 'bench/results/checkpoint-alignment.json', help: 'JSON results file' },
});
type Flags = FlagValues<typeof FLAGS>;

/** A source pace whose first record comes after 10^7 s: none during a run. */
const NO_RECORDS_RATE = 1e-7;

const problems: string[] = [];
function problemLogger(attrs: Record<string, unknown> = {}): Logger {
  const keep = (level: string) => (message: string) => {
    if (problems.length < 50) problems.push(`${level} ${attrs.unitId ?? 'control'}: ${message}`);
  };
  return { debug: () => undefined, info: () => undefined, warn: keep('WARN'), error: keep('ERROR'), child: (more) => problemLogger({ ...attrs, ...more }) };
}

/** Hosts every unit attempt in this process. */
class InProcessLauncher implements UnitLauncher {
  readonly errors: string[] = [];
  constructor(private readonly ports: ReturnType<typeof createMemoryPorts>) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const { channels, blobs, metadata } = this.ports;
    void hostUnit({ jobId: job.jobId, job, unitId: unit.unitId, attempt, queuePrefix: 'ca', channels, blobs, metadata, jobs: new JobStore(metadata), registry: jobRegistry, logger: problemLogger() }).catch(
      (error: unknown) => this.errors.push(`${unit.unitId}#${attempt}: ${error instanceof Error ? error.message : String(error)}`),
    );
  }

  async stop(): Promise<void> {}
}

const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
const mb = (bytes: number) => Math.round(bytes / 2 ** 20);

const gc = (globalThis as { gc?: () => void }).gc;

/** Heap used, after a full collection when `live` (and node has --expose-gc). */
function heapUsed(live: boolean): number {
  if (live && gc) gc();
  return process.memoryUsage().heapUsed;
}

/** Samples heap used (every 100 ms; live: every 500 ms, after a full GC) until stopped; the most seen. */
function heapSampler(live: boolean): { stop: () => number } {
  let most = heapUsed(live);
  const timer = setInterval(() => (most = Math.max(most, heapUsed(live))), live ? 500 : 100);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(most, heapUsed(live));
    },
  };
}

/** CPU profile of what runs between `start` and `stop` (node:inspector), written to `file`. */
async function profiler(file: string | undefined): Promise<{ stop: () => Promise<void> }> {
  if (!file) return { stop: async () => undefined };
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 1000 });
  await session.post('Profiler.start');
  return {
    stop: async () => {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
      console.log(`CPU profile of the checkpoints: ${file}`);
    },
  };
}

interface CheckpointFigures {
  checkpointId: number | null;
  outcome: string;
  seconds: number;
  cpuSeconds: number;
  /** CPU less the idle rate over the checkpoint's duration, per barrier part. */
  usPerPart: number;
  /** Heap used before it (live: after a full GC) and the most sampled during it. */
  heapBeforeMb: number;
  heapMostMb: number;
  /** Heap used once it completed (live: after a full GC): what stays after a checkpoint. */
  heapAfterMb: number;
  rssAfterMb: number;
}

async function main(): Promise<void> {
  const flags: Flags = commandFlags('bench:checkpoint-alignment', 'npm run bench:checkpoint-alignment -- [flags]', FLAGS);
  const command = commandWith('npm run bench:checkpoint-alignment --', flags, ['parallelism', 'subtasksPerUnit', 'checkpoints', 'failover']) + (flags.liveHeap ? ' --live-heap' : '');
  const machine = machineInfo();
  const P = flags.parallelism;
  console.log('Sluice checkpoint alignment: the join, units in this process, in-memory ports');
  console.log(describeMachine(machine));
  console.log(`rerun:   ${command}`);

  const params = { parallelism: P, partitions: P, events: P * 1000, featureUpdates: P * 100, users: 999_999, minutes: 60, rate: NO_RECORDS_RATE };
  const graph = buildExecutionGraph(jobRegistry.build('recommendation-join', params).graph);
  const taskParallelism = new Map(graph.tasks.map((t) => [t.id, t.parallelism]));
  // Every channel carries one barrier per checkpoint.
  const parts = graph.edges.reduce((n, e) => n + (e.pointwise ? taskParallelism.get(e.to)! : taskParallelism.get(e.from)! * taskParallelism.get(e.to)!), 0);

  const ports = createMemoryPorts();
  const jobs = new JobStore(ports.metadata);
  const launcher = new InProcessLauncher(ports);
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'ca', launcher });
  const steps = new CheckpointSteps({ jobs, service, metadata: ports.metadata, blobs: ports.blobs });
  const controller = new JobController({
    service,
    metadata: ports.metadata,
    blobs: ports.blobs,
    pollMs: 1000,
    logger: problemLogger(),
    onFailure: createFailoverHandler({ jobs, service, launcher, latestManifest: (jobId) => new PortCheckpointCatalog(jobId, ports.metadata, ports.blobs).loadLatest(), logger: problemLogger() }),
  });

  const t0 = performance.now();
  const job = await service.submit({
    job: 'recommendation-join',
    params,
    failover: flags.failover as FailoverStrategy,
    subtasksPerUnit: flags.subtasksPerUnit,
    heartbeatTimeoutSeconds: 600,
    checkpoint: { timeoutSeconds: flags.checkpointTimeoutS },
  });
  const running = controller.run(job.jobId);
  running.catch(() => undefined);
  for (;;) {
    if (launcher.errors.length > 0) throw new Error(`units failed to start: ${launcher.errors.slice(0, 3).join('; ')}`);
    const units = await jobs.getUnits(job.jobId);
    if (units.filter((u) => u.status === 'RUNNING').length === job.units.length) break;
    await sleep(500);
  }
  const startSeconds = (performance.now() - t0) / 1000;
  console.log(
    `P=${P}: ${job.shape.subtasks} subtasks in ${job.units.length} units, failover ${flags.failover}; ${parts.toLocaleString('en')} barrier parts per checkpoint; ` +
      `all RUNNING after ${startSeconds.toFixed(1)} s; heap ${mb(process.memoryUsage().heapUsed)} MB, RSS ${mb(process.memoryUsage().rss)} MB`,
  );

  await sleep(3000); // what the units' start left to do
  const idleStart = { at: performance.now(), cpu: cpuUs() };
  await sleep(flags.idleS * 1000);
  const idleCpuPerS = (cpuUs() - idleStart.cpu) / ((performance.now() - idleStart.at) / 1000);
  console.log(`idle: ${(idleCpuPerS / 1e6).toFixed(3)} CPU s per s`);

  if (flags.liveHeap && !gc) console.log('WARNING: --live-heap without node --expose-gc: heap figures include garbage');
  const live = flags.liveHeap;
  const figures: CheckpointFigures[] = [];
  const profile = await profiler(flags.cpuProfile);
  for (let i = 0; i < flags.checkpoints; i++) {
    const heapBefore = heapUsed(live);
    const sampler = heapSampler(live);
    const snapshotTimer =
      i === 0 && flags.heapSnapshotS > 0
        ? setTimeout(() => console.log(`heap snapshot: ${writeHeapSnapshot(`bench/results/checkpoint-alignment-p${P}.heapsnapshot`)}`), flags.heapSnapshotS * 1000)
        : undefined;
    const at = performance.now();
    const cpu = cpuUs();
    const triggered = await steps.trigger({ jobId: job.jobId });
    const run =
      triggered.checkpointId === null
        ? undefined
        : await runCheckpointWorkflow(steps, { jobId: job.jobId, checkpointId: triggered.checkpointId }, { defaultWaitSeconds: 0.25, maxPolls: flags.checkpointTimeoutS * 4 + 60 });
    const seconds = (performance.now() - at) / 1000;
    const cpuSeconds = (cpuUs() - cpu) / 1e6;
    clearTimeout(snapshotTimer);
    const heapMost = sampler.stop();
    const f: CheckpointFigures = {
      checkpointId: triggered.checkpointId,
      outcome: run?.result.outcome ?? triggered.outcome ?? '?',
      seconds,
      cpuSeconds,
      usPerPart: Math.max(0, cpuSeconds * 1e6 - idleCpuPerS * seconds) / parts,
      heapBeforeMb: mb(heapBefore),
      heapMostMb: mb(heapMost),
      heapAfterMb: mb(heapUsed(live)),
      rssAfterMb: mb(process.memoryUsage().rss),
    };
    figures.push(f);
    console.log(
      `checkpoint ${f.checkpointId}: ${f.outcome} in ${seconds.toFixed(1)} s, ${cpuSeconds.toFixed(1)} CPU s: ${f.usPerPart.toFixed(2)} us per barrier part; ` +
        `${live ? 'live ' : ''}heap ${f.heapBeforeMb} MB before, at most ${f.heapMostMb} MB during, ${f.heapAfterMb} MB after; RSS ${f.rssAfterMb} MB`,
    );
    if (f.outcome !== 'completed') for (const p of problems.splice(0, 10)) console.log(`  ${p}`);
  }
  await profile.stop();

  console.log(
    '\n' +
      markdownTable(
        ['P', 'units', 'barrier parts', 'checkpoint', 'outcome', 'seconds', 'CPU s', 'us / part', `${live ? 'live ' : ''}heap MB: before`, 'most', 'after'],
        figures.map((f) => [String(P), String(job.units.length), parts.toLocaleString('en'), String(f.checkpointId), f.outcome, f.seconds.toFixed(1), f.cpuSeconds.toFixed(1), f.usPerPart.toFixed(2), String(f.heapBeforeMb), String(f.heapMostMb), String(f.heapAfterMb)]),
        ['right', 'right', 'right', 'right', 'left', 'right', 'right', 'right', 'right', 'right', 'right'],
      ),
  );
  writeResults(flags.out, { bench: 'checkpoint-alignment', command, machine: { ...machine, loadavg1m: machineInfo().loadavg1m }, flags, parallelism: P, subtasks: job.shape.subtasks, units: job.units.length, barrierParts: parts, startSeconds, idleCpuPerS: idleCpuPerS / 1e6, checkpoints: figures });
  console.log(`results: ${flags.out}`);
  await service.cancel(job.jobId).catch(() => undefined);
  process.exit(figures.every((f) => f.outcome === 'completed') ? 0 : 1);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
