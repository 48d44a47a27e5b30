/**
 * Checkpoint success at high parallelism: global vs regional handle.
 *
 * Drives the real CheckpointCoordinator with simulated subtasks: an ingest job whose source and
 * sink are chained, so P subtasks and P regions (one per pipeline). In every checkpoint each
 * subtask declines with probability p, independently, and otherwise acknowledges with a snapshot
 * handle; responses arrive in a random order. Every effect goes through the real persistence
 * (CheckpointPersistence + PortCheckpointCatalog) over the in-memory ports, which count the
 * DynamoDB and S3 requests the AWS adapters would make.
 *
 *   npx tsx bench/checkpoints.ts [--checkpoints 20000] [--seed 1] [--parallelism 5000]
 *     [--decline-probability 1e-4] [--handles global,regional] [--max-failed-region-ratio 0.5]
 *     [--max-consecutive-region-failures 10] [--jobs <cores>] [--out bench/results/checkpoints.json]
 *
 * Each handle runs in its own child process (up to --jobs at once), so the CPU figures of one
 * handle are not mixed with the other's; --jobs 1 runs them one after the other.
 *
 * CPU time of the coordinator is process.cpuUsage() around the coordinator calls of each
 * checkpoint only (the random draws, the snapshot handles and the persistence are outside it).
 */
import os from 'node:os';
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CheckpointCoordinator,
  CheckpointPersistence,
  PortCheckpointCatalog,
  type CheckpointEffect,
  type FailureHandle,
  type SnapshotHandle,
} from '../lib/checkpoint';
import { MemoryBlobStore, MemoryMetadataStore } from '../lib/memory';
import { commandFlags, commandWith, defineFlags, type FlagValues } from '../lib/cli/flags';
import { Xoshiro128 } from './lib/random';
import { markdownTable, percent } from './lib/report';
import { describeMachine, machineInfo, writeResults } from './lib/results';
import { SimClock } from './lib/sim-clock';

// ------------------------------------------------------------------------------------------------
// Arguments.

const FLAGS = defineFlags({
  checkpoints: { type: 'number', default: 20_000, integer: true, min: 1, help: 'checkpoints per handle' },
  seed: { type: 'number', default: 1, help: 'PRNG seed (declines, response order)' },
  parallelism: { type: 'number', default: 5000, integer: true, min: 1, help: 'subtasks (one region each)' },
  declineProbability: { type: 'number', default: 1e-4, min: 0, check: (p) => (p < 1 ? undefined : 'must be below 1'), help: 'probability that a subtask declines a checkpoint' },
  handles: { type: 'list', default: ['global', 'regional'], choices: ['global', 'regional'], help: 'failure handles to run' },
  maxFailedRegionRatio: { type: 'number', default: 0.5, help: 'regional: most regions that may fall back in one checkpoint (fraction)' },
  maxConsecutiveRegionFailures: { type: 'number', default: 10, help: 'regional: checkpoints a region may decline in a row' },
  out: { type: 'string', default: 'bench/results/checkpoints.json', help: 'JSON results file' },
  jobs: { type: 'number', default: Math.max(1, os.cpus().length), integer: true, min: 1, help: 'handles run at once, each in its own process (default: the cores)' },
  worker: { type: 'boolean', help: 'internal: run the one handle given and send the result to the parent process' },
});
type Options = FlagValues<typeof FLAGS>;

// ------------------------------------------------------------------------------------------------
// Statistics.

/** Wilson score interval for k successes out of n, at z (1.96: 95 %). */
function wilson(k: number, n: number, z = 1.959963984540054): [number, number] {
  if (n === 0) return [0, 1];
  const phat = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (phat + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((phat * (1 - phat)) / n + z2 / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** P(X > m) for X ~ Binomial(n, p), summed in log space. */
function binomialTail(n: number, p: number, m: number): number {
  if (p === 0) return 0;
  let logTerm = n * Math.log1p(-p); // log P(X = 0)
  let cdf = 0;
  for (let k = 0; k <= m && k <= n; k++) {
    if (k > 0) logTerm += Math.log((n - k + 1) / k) + Math.log(p) - Math.log1p(-p);
    cdf += Math.exp(logTerm);
  }
  return Math.max(0, 1 - cdf);
}

/**
 * Probability that a regional checkpoint fails as a whole, in the steady state: more than the
 * allowed regions decline (binomial tail), or a region declines its c-th checkpoint in a row
 * (about P * p^c per checkpoint; a union bound, exact enough at these sizes).
 */
function regionalFailureProbability(P: number, p: number, ratio: number, consecutive: number): number {
  const ratioTrip = binomialTail(P, p, Math.floor(ratio * P + 1e-9));
  const consecutiveTrip = Math.min(1, P * p ** consecutive);
  return Math.min(1, ratioTrip + consecutiveTrip);
}

// ------------------------------------------------------------------------------------------------
// One run.

/** The memory blob store, also measuring the manifests written. */
class MeasuredBlobStore extends MemoryBlobStore {
  manifestBytes = 0;
  manifests = 0;

  override async put(key: string, body: Uint8Array | string): Promise<void> {
    if (key.endsWith('/manifest.json')) {
      this.manifests++;
      // Manifests are ASCII JSON here, so length = bytes.
      this.manifestBytes += body.length;
    }
    return super.put(key, body);
  }
}

interface HandleResult {
  handle: FailureHandle;
  checkpoints: number;
  completed: number;
  successRate: number;
  successCi95: [number, number];
  expectedSuccessRate: number;
  regionCheckpoints: number;
  regionSucceeded: number;
  regionSuccessRate: number;
  expectedRegionSuccessRate: number;
  regionFellBack: number;
  /** Of the region checkpoints in completed checkpoints, the fraction that fell back. */
  fellBackFraction: number;
  declines: number;
  declinesPerCheckpoint: number;
  failureReasons: Record<string, number>;
  /** Checkpoints whose outcome differs from the one the simulation predicts (must be 0). */
  outcomeMismatches: number;
  coordinatorCpuUsPerCheckpoint: number;
  coordinatorCpuNsPerResponse: number;
  coordinatorWallUsPerCheckpoint: number;
  persistenceCpuUsPerCheckpoint: number;
  metadataRequestsPerCheckpoint: number;
  blobRequestsPerCheckpoint: number;
  /** Average size of a manifest written. */
  manifestBytes: number;
  wallSeconds: number;
}

async function runHandle(handle: FailureHandle, o: Options): Promise<HandleResult> {
  const P = o.parallelism;
  const p = o.declineProbability;
  const rng = new Xoshiro128(o.seed * 2 + (handle === 'global' ? 0 : 1));
  const subtasks = Array.from({ length: P }, (_, i) => `source-sink#${i}`);
  const regions = subtasks.map((s, i) => ({ id: `pipeline-${i}`, subtasks: [s] }));
  const jobId = `bench-${handle}`;
  const coordinator = new CheckpointCoordinator({
    config: {
      jobId,
      handle,
      timeoutMs: 10 * 60_000,
      maxFailedRegionRatio: o.maxFailedRegionRatio,
      maxConsecutiveRegionFailures: o.maxConsecutiveRegionFailures,
      retained: 2,
    },
    topology: { regions, sources: subtasks },
  });
  const metadata = new MemoryMetadataStore();
  const blobs = new MeasuredBlobStore();
  const persistence = new CheckpointPersistence(new PortCheckpointCatalog(jobId, metadata, blobs), blobs);

  const order = Int32Array.from({ length: P }, (_, i) => i);
  const declines = new Uint8Array(P);
  const consecutive = new Int32Array(P); // the simulation's own model of the regional limits
  const logQ = Math.log1p(-p);
  const maxFailed = handle === 'global' ? 0 : Math.floor(o.maxFailedRegionRatio * P + 1e-9);
  let cpuMicros = 0;
  let wallMs = 0;
  let persistMicros = 0;
  let completed = 0;
  let totalDeclines = 0;
  let mismatches = 0;
  let regionSucceeded = 0;
  let regionFellBack = 0;
  const failureReasons: Record<string, number> = {};
  const started = performance.now();
  const clock = new SimClock(Date.UTC(2026, 0, 1));
  const batches: (readonly CheckpointEffect[])[] = [];
  const states: SnapshotHandle[][] = new Array(P);

  for (let n = 1; n <= o.checkpoints; n++) {
    // --- Simulation (not timed): response order, declines, snapshot handles.
    for (let i = P - 1; i > 0; i--) {
      const j = rng.below(i + 1);
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    const declined: number[] = [];
    if (p > 0) {
      for (let pos = Math.floor(Math.log(rng.unit()) / logQ); pos < P; pos += 1 + Math.floor(Math.log(rng.unit()) / logQ)) {
        declines[pos] = 1;
        declined.push(pos);
      }
    }
    totalDeclines += declined.length;
    const prefix = `snapshots/${jobId}/${n}/`;
    for (let i = 0; i < P; i++) states[i] = declines[i] ? [] : [{ key: `${prefix}${subtasks[i]}`, bytes: 4096 }];

    // --- Coordinator (timed).
    batches.length = 0;
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    let effects = coordinator.trigger(clock.now());
    if (effects.length > 0) batches.push(effects);
    const at = clock.now() + 1;
    for (let k = 0; k < P; k++) {
      const i = order[k]!;
      effects = declines[i] ? coordinator.decline(subtasks[i]!, n, 'snapshot upload failed', at) : coordinator.acknowledge(subtasks[i]!, n, states[i]!, at);
      if (effects.length > 0) batches.push(effects);
    }
    wallMs += performance.now() - wall0;
    const cpu = process.cpuUsage(cpu0);
    cpuMicros += cpu.user + cpu.system;

    // --- Check the outcome against the simulation's own model.
    let finalized: Extract<CheckpointEffect, { type: 'checkpointFinalized' }> | undefined;
    for (const b of batches) for (const e of b) if (e.type === 'checkpointFinalized' && e.checkpointId === n) finalized = e;
    if (!finalized) throw new Error(`checkpoint ${n} was not finalized after every subtask responded`);
    let expectComplete = declined.length <= maxFailed;
    for (const r of declined) if (consecutive[r]! + 1 >= o.maxConsecutiveRegionFailures && handle === 'regional') expectComplete = false;
    if (handle === 'global') expectComplete = declined.length === 0;
    if ((finalized.outcome === 'completed') !== expectComplete) mismatches++;
    for (const r of declined) consecutive[r]!++;
    if (finalized.outcome === 'completed') {
      completed++;
      regionSucceeded += P - declined.length;
      regionFellBack += declined.length;
      for (let i = 0; i < P; i++) if (!declines[i]) consecutive[i] = 0;
    } else {
      failureReasons[finalized.failure.reason] = (failureReasons[finalized.failure.reason] ?? 0) + 1;
    }
    for (const r of declined) declines[r] = 0;

    // --- Persistence (timed separately).
    const pcpu0 = process.cpuUsage();
    for (const b of batches) await persistence.apply(b);
    const pcpu = process.cpuUsage(pcpu0);
    persistMicros += pcpu.user + pcpu.system;
    clock.advance(60_000);
  }
  const pcpu0 = process.cpuUsage();
  await persistence.flush();
  const pcpu = process.cpuUsage(pcpu0);
  persistMicros += pcpu.user + pcpu.system;

  const N = o.checkpoints;
  const expectedSuccessRate =
    handle === 'global' ? (1 - p) ** P : 1 - regionalFailureProbability(P, p, o.maxFailedRegionRatio, o.maxConsecutiveRegionFailures);
  return {
    handle,
    checkpoints: N,
    completed,
    successRate: completed / N,
    successCi95: wilson(completed, N),
    expectedSuccessRate,
    regionCheckpoints: N * P,
    regionSucceeded,
    regionSuccessRate: regionSucceeded / (N * P),
    expectedRegionSuccessRate: handle === 'global' ? (1 - p) ** P : expectedSuccessRate * (1 - p),
    regionFellBack,
    fellBackFraction: completed === 0 ? 0 : regionFellBack / (completed * P),
    declines: totalDeclines,
    declinesPerCheckpoint: totalDeclines / N,
    failureReasons,
    outcomeMismatches: mismatches,
    coordinatorCpuUsPerCheckpoint: cpuMicros / N,
    coordinatorCpuNsPerResponse: (cpuMicros * 1000) / (N * P),
    coordinatorWallUsPerCheckpoint: (wallMs * 1000) / N,
    persistenceCpuUsPerCheckpoint: persistMicros / N,
    metadataRequestsPerCheckpoint: metadata.requests / N,
    blobRequestsPerCheckpoint: blobs.requests / N,
    manifestBytes: blobs.manifests === 0 ? 0 : blobs.manifestBytes / blobs.manifests,
    wallSeconds: (performance.now() - started) / 1000,
  };
}

// ------------------------------------------------------------------------------------------------
// Main.

const pct = percent;

function table(rows: HandleResult[]): string {
  const header = [
    'handle',
    'checkpoints',
    'success (95 % CI, Wilson)',
    'expected',
    'region success',
    'region expected',
    'fell back',
    'coord CPU/ckpt',
    'coord CPU/response',
    'DynamoDB req/ckpt',
    'S3 req/ckpt',
  ];
  const body = rows.map((r) => [
    r.handle,
    String(r.checkpoints),
    `${pct(r.successRate)} [${pct(r.successCi95[0])}, ${pct(r.successCi95[1])}]`,
    pct(r.expectedSuccessRate),
    pct(r.regionSuccessRate, 3),
    pct(r.expectedRegionSuccessRate, 3),
    pct(r.fellBackFraction, 4),
    `${r.coordinatorCpuUsPerCheckpoint.toFixed(0)} µs`,
    `${r.coordinatorCpuNsPerResponse.toFixed(0)} ns`,
    r.metadataRequestsPerCheckpoint.toFixed(2),
    r.blobRequestsPerCheckpoint.toFixed(2),
  ]);
  return markdownTable(header, body);
}

/** Runs one handle in a child process (same entry point, same loader) and returns its result. */
function runInChild(handle: FailureHandle): Promise<HandleResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [...process.argv.slice(2), '--handles', handle, '--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: HandleResult | undefined;
    child.on('message', (m) => (result = m as HandleResult));
    child.on('error', reject);
    child.on('exit', (code) => (result && code === 0 ? resolve(result) : reject(new Error(`${handle} run exited with ${code}`))));
  });
}

async function runAll(o: Options): Promise<HandleResult[]> {
  const results: HandleResult[] = new Array(o.handles.length);
  let next = 0;
  const lane = async () => {
    while (next < o.handles.length) {
      const k = next++;
      const h = o.handles[k]!;
      const r = o.jobs > 1 && o.handles.length > 1 ? await runInChild(h) : await runHandle(h, o);
      console.log(`  ${h}: done in ${r.wallSeconds.toFixed(1)} s`);
      results[k] = r;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.jobs, o.handles.length)) }, lane));
  return results;
}

async function main(): Promise<void> {
  const o = commandFlags('bench/checkpoints', 'npx tsx bench/checkpoints.ts [flags]   (or: npm run bench:checkpoints -- [flags])', FLAGS);
  if (o.worker) {
    const r = await runHandle(o.handles[0]!, o);
    await new Promise<void>((resolve) => process.send!(r, () => resolve()));
    return;
  }
  const command = commandWith('npx tsx bench/checkpoints.ts', o, ['checkpoints', 'seed', 'parallelism', 'declineProbability', 'handles', 'maxFailedRegionRatio', 'maxConsecutiveRegionFailures', 'jobs']);
  const machine = machineInfo();
  console.log(`checkpoint bench: parallelism ${o.parallelism} (one region per subtask), decline probability ${o.declineProbability}, ${o.checkpoints} checkpoints per handle, seed ${o.seed}`);
  const started = performance.now();
  const results = await runAll(o);
  console.log(`  all handles done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  console.log('');
  console.log(table(results));
  console.log('');
  for (const r of results) {
    console.log(
      `${r.handle}: ${r.completed}/${r.checkpoints} completed; ${r.declines} declines (${r.declinesPerCheckpoint.toFixed(3)}/checkpoint); ` +
        `whole failures by reason ${JSON.stringify(r.failureReasons)}; outcome mismatches vs the simulation's model: ${r.outcomeMismatches}; ` +
        `coordinator wall ${r.coordinatorWallUsPerCheckpoint.toFixed(0)} µs/ckpt; persistence CPU ${r.persistenceCpuUsPerCheckpoint.toFixed(0)} µs/ckpt; ` +
        `manifest ${(r.manifestBytes / 1024).toFixed(0)} KiB`,
    );
  }
  console.log('');
  console.log(describeMachine(machine));
  console.log(`rerun:   ${command}   (or: npm run bench:checkpoints)`);
  const out = path.resolve(o.out);
  writeResults(
    out,
    {
      bench: 'checkpoints',
      date: new Date().toISOString(),
      command,
      machine,
      parameters: { ...o, worker: undefined, topology: 'ingest: source and sink chained, one region per subtask', retained: 2, maxConcurrent: 1 },
      notes: [
        'success = checkpoint N completes; for the regional handle some regions may fall back to an earlier checkpoint',
        'region success = region checkpoints whose restore point moved to N, over checkpoints x regions',
        'coordinator CPU = process.cpuUsage() around the coordinator calls of each checkpoint (trigger + every acknowledgement/decline), GC included',
        'requests = DynamoDB / S3 requests made by CheckpointPersistence + PortCheckpointCatalog over the counting in-memory ports (S3 deletes per 1000 keys)',
      ],
      results,
    },
  );
  console.log(`results: ${path.relative(process.cwd(), out)}`);
  if (results.some((r) => r.outcomeMismatches > 0)) {
    console.error('outcome mismatches: the coordinator disagrees with the simulation model');
    process.exitCode = 1;
  }
}

await main();
