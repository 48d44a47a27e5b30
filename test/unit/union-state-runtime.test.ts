/**
 * Union list state wired into the runtime, in-process on the in-memory ports:
 *
 * - a job whose source keeps the partitions it finished in union state runs with regional
 *   checkpoints; one source subtask crashes in the middle of a checkpoint; its region restarts,
 *   and the restarted subtask sees the union of every subtask's entries, each at its own region's
 *   restore point, read once with a bounded number of reads in flight; the output stays exact;
 * - a job without union state writes no union object;
 * - `loadUnitRestore` on a hand-made manifest: per-region checkpoints, regions without a restore
 *   point, finished subtasks, one read shared by the subtasks of a unit, the default bound of 32;
 * - a keyed process function's `open` gets the subtask's union state.
 */
import { describe, expect, it } from 'vitest';
import type { Json, KeyedProcessFunction, RuntimeContext, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { JobRegistry } from '../../lib/api/registry';
import { GeneratorSource } from '../../lib/connectors/generator-source';
import { PortCheckpointCatalog } from '../../lib/checkpoint/catalog';
import { manifestKeys, regionRestore } from '../../lib/checkpoint/manifest';
import { MANIFEST_FORMAT, type CheckpointManifest, type ManifestRegion } from '../../lib/checkpoint/types';
import { buildExecutionGraph, subtaskId } from '../../lib/graph/execution-graph';
import { JobController } from '../../lib/jobs/job-controller';
import { JobService, type UnitLauncher } from '../../lib/jobs/job-service';
import { JobStore, type JobRecord, type UnitPlacement } from '../../lib/jobs/job-store';
import { createMemoryPorts, type MemoryPorts } from '../../lib/memory';
import type { BlobInfo, BlobStore, ListOptions } from '../../lib/ports/blob-store';
import { createFailoverHandler } from '../../lib/recovery/failover-handler';
import { CheckpointIO, type SubtaskSnapshot } from '../../lib/runtime/checkpoint-io';
import type { ControlMessage } from '../../lib/runtime/messages';
import { OperatorChain } from '../../lib/runtime/operator-chain';
import { UnionStateBackend, type UnionListState } from '../../lib/runtime/union-state';
import { hostUnit, loadUnitRestore } from '../../lib/host/unit-host';
import type { UnitOutcome } from '../../lib/runtime/task-unit';
import { ingestJob, expectedIngestIds } from '../../examples/jobs/ingest';
import {
  FINISHED_STATE,
  LedgerSource,
  buildUnionExample,
  expectedLedgerIds,
  unionExampleJob,
  type FinishedPartition,
  type LedgerOpen,
} from '../../examples/jobs/union-example';
import { readOutput } from './recovery/helpers';
import { textLogger } from '../../lib/ports/telemetry';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isUnionKey = (key: string) => /^checkpoints\/[^/]+\/\d+\/union\//.test(key);
const decode = (body: Uint8Array) => Buffer.from(body).toString('utf8');

/**
 * Wraps the job's blob store: keeps a copy of every union object and manifest written (retention
 * deletes them later), and counts the reads of union objects, how many were in flight at once, and
 * delays each by `unionGetDelayMs` so that a bound on reads in flight shows.
 */
class WatchedBlobs implements BlobStore {
  readonly location: string;
  readonly unionPuts = new Map<string, string>();
  readonly snapshotPuts = new Map<string, SubtaskSnapshot>();
  readonly manifests: CheckpointManifest[] = [];
  readonly unionGets: string[] = [];
  inFlight = 0;
  maxInFlight = 0;

  constructor(
    readonly inner: BlobStore,
    private readonly unionGetDelayMs = 0,
  ) {
    this.location = inner.location;
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const text = typeof body === 'string' ? body : decode(body);
    if (isUnionKey(key)) this.unionPuts.set(key, text);
    if (/^checkpoints\/[^/]+\/\d+\/[^/]+#\d+\.a\d+\.json$/.test(key)) this.snapshotPuts.set(key, JSON.parse(text) as SubtaskSnapshot);
    if (/\/manifest(-[^/]+)?\.json$/.test(key)) this.manifests.push(JSON.parse(text) as CheckpointManifest);
    return this.inner.put(key, body);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    if (!isUnionKey(key)) return this.inner.get(key);
    this.unionGets.push(key);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.unionGetDelayMs > 0) await sleep(this.unionGetDelayMs);
      return await this.inner.get(key);
    } finally {
      this.inFlight--;
    }
  }

  getRange(key: string, start: number, end: number) {
    return this.inner.getRange(key, start, end);
  }
  head(key: string): Promise<BlobInfo | undefined> {
    return this.inner.head(key);
  }
  list(prefix: string, options?: ListOptions) {
    return this.inner.list(prefix, options);
  }
  copy(from: string, to: string) {
    return this.inner.copy(from, to);
  }
  delete(keys: readonly string[]) {
    return this.inner.delete(keys);
  }
}

/** Runs each unit attempt in this process through `hostUnit`, as the runtime does. */
class HostingLauncher implements UnitLauncher {
  readonly runs: Promise<UnitOutcome>[] = [];
  readonly log: string[] = [];
  private readonly attempts = new Map<string, number>();
  private readonly controlQueues = new Map<string, string>();
  /** Awaited before a restarted attempt (attempt > 0) is hosted. */
  beforeRestart: (() => Promise<void>) | undefined;

  constructor(
    private readonly deps: {
      ports: MemoryPorts;
      blobs: BlobStore;
      jobs: JobStore;
      registry: JobRegistry;
      queuePrefix: string;
      unionRestoreConcurrency?: number;
      /** Waited for before a restarted attempt (attempt > 0) is hosted. */
      beforeRestart?: () => Promise<void>;
    },
  ) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const { ports, blobs, jobs, registry, queuePrefix, unionRestoreConcurrency } = this.deps;
    if (attempt > 0) await this.deps.beforeRestart?.();
    this.attempts.set(unit.unitId, attempt);
    this.controlQueues.set(unit.unitId, unit.controlQueue);
    if (attempt > 0) await this.beforeRestart?.();
    const run = hostUnit({
      jobId: job.jobId,
      unitId: unit.unitId,
      attempt,
      queuePrefix,
      channels: ports.channels,
      blobs,
      metadata: ports.metadata,
      jobs,
      registry,
      unionRestoreConcurrency,
      logger: textLogger((line) => this.log.push(`${unit.unitId}#${attempt}: ${line}`)),
    });
    run.catch(() => undefined);
    this.runs.push(run);
  }

  async stop(_jobId: string, unitId: string): Promise<void> {
    const attempt = this.attempts.get(unitId);
    const message: ControlMessage = { type: 'cancel', attempt };
    await this.deps.ports.channels
      .send(this.controlQueues.get(unitId)!, [{ groupId: 'control', dedupId: `stop-${unitId}-${attempt}`, body: JSON.stringify(message) }])
      .catch(() => undefined);
  }
}

function setup(registry: JobRegistry, options: { unionGetDelayMs?: number; unionRestoreConcurrency?: number; beforeRestart?: () => Promise<void> } = {}) {
  const ports = createMemoryPorts();
  const blobs = new WatchedBlobs(ports.blobs, options.unionGetDelayMs);
  const jobs = new JobStore(ports.metadata);
  const launcher = new HostingLauncher({ ports, blobs, jobs, registry, queuePrefix: 'u', unionRestoreConcurrency: options.unionRestoreConcurrency, beforeRestart: options.beforeRestart });
  const service = new JobService({ jobs, channels: ports.channels, registry, queuePrefix: 'u', launcher });
  return { ports, blobs, jobs, launcher, service };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const noSource = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
const noSink = (): SinkFunction<Json> => ({ open: async () => undefined, write: () => undefined, prepare: async () => null, commit: async () => undefined, abort: async () => undefined });

const finishedOf = (body: string) => (JSON.parse(body) as { states: Record<string, FinishedPartition[]> }).states[FINISHED_STATE] ?? [];

describe('union list state in the runtime (in-process, memory ports)', () => {
  it('a restarted region restores the union of every subtask at its own region’s restore point, with bounded reads, and the output stays exact', async () => {
    const P = 4;
    const CRASHING = 1;
    const opens: LedgerOpen[] = [];
    let armed = false;
    let crashedAt: number | undefined;
    const params = { parallelism: P, partitions: 24, recordsPerPartition: 400, rate: 800, msPerRecord: 1000 };
    // Subtask 1's first attempt fails while it takes the first checkpoint after `armed`: its region
    // fails that checkpoint (and falls back) while the other regions complete it.
    const registry = new JobRegistry([
      {
        ...unionExampleJob,
        build: (resolved) => {
          let ctx: RuntimeContext | undefined;
          const source = (): SourceFunction<string> => {
            const inner = new LedgerSource({
              partitions: resolved.partitions as number,
              recordsPerPartition: resolved.recordsPerPartition as number,
              ratePerSecond: resolved.rate as number,
              msPerRecord: resolved.msPerRecord as number,
              onOpen: (event) => opens.push(event),
            });
            return {
              open: async (c) => {
                ctx = c;
                await inner.open(c);
              },
              poll: async (max) => {
                const batch = await inner.poll(max);
                if (!batch.done || crashedAt !== undefined) return batch;
                // End of input waits for the crash: on a loaded machine the job could otherwise end
                // before a checkpoint armed it (CI, load ~20: crashedAt undefined, job FINISHED).
                await sleep(20);
                return { ...batch, done: false };
              },
              snapshotOffsets: () => {
                if (armed && crashedAt === undefined && ctx?.subtaskIndex === CRASHING && ctx.attempt === 0) {
                  crashedAt = Date.now();
                  throw new Error('injected crash while taking a checkpoint');
                }
                return inner.snapshotOffsets();
              },
              restoreOffsets: (offsets) => inner.restoreOffsets(offsets),
            };
          };
          return buildUnionExample(resolved, { source });
        },
      },
    ]);
    // The restart is held until a completed checkpoint has the other regions past the crashed
    // one's restore point (the checkpoint the crash failed completes for them): a restart is
    // faster than a checkpoint's completion, and this test wants the regions at different points.
    let catalog: PortCheckpointCatalog | undefined;
    const crashedRegionBehind = async () => {
      for (;;) {
        const manifest = await catalog!.loadLatest();
        const points = manifest ? job.regions.map((r) => regionRestore(manifest, r.id).checkpointId ?? 0) : [];
        const at = job.regions.findIndex((r) => r.subtasks.includes(subtaskId('ledger', CRASHING)));
        if (points.length > 0 && points.every((p, i) => i === at || p > points[at]!)) return;
        await sleep(20);
      }
    };
    const { ports, blobs, jobs, launcher, service } = setup(registry, { unionGetDelayMs: 20, unionRestoreConcurrency: 2, beforeRestart: crashedRegionBehind });
    const job = await service.submit({ job: 'union-example', params, failover: 'region', checkpoint: { handle: 'regional', intervalSeconds: 1 } });
    expect(job.regions).toHaveLength(P);
    catalog = new PortCheckpointCatalog(job.jobId, ports.metadata, ports.blobs);
    const controller = new JobController({
      service,
      metadata: ports.metadata,
      blobs,
      pollMs: 50,
      checkpointEveryMs: 250,
      onFailure: createFailoverHandler({ jobs, service, launcher, latestManifest: () => catalog.loadLatest() }),
    });

    // The restart waits until the other regions have completed a checkpoint after the crashed
    // region's restore point, so the restored union mixes restore points (a failover is faster
    // than the other regions' next checkpoint otherwise).
    const regionOf = (j: number) => job.regions.find((r) => r.subtasks.includes(subtaskId('ledger', j)))!.id;
    launcher.beforeRestart = async () => {
      for (;;) {
        const manifest = await catalog.loadLatest();
        const from = (j: number) => manifest?.regions.find((r) => r.regionId === regionOf(j))?.restoreFrom ?? 0;
        if (Array.from({ length: P }, (_, j) => j).every((j) => j === CRASHING || from(j) > from(CRASHING))) return;
        await sleep(50);
      }
    };

    // Arm the crash once a completed checkpoint holds at least one finished partition of every subtask.
    const arming = (async () => {
      while (!armed) {
        await sleep(50);
        const manifest = await catalog.loadLatest();
        if (!manifest || manifest.regions.some((r) => r.restoreFrom === null)) continue;
        const counts = await Promise.all(
          Array.from({ length: P }, async (_, j) => {
            const id = subtaskId('ledger', j);
            const point = regionRestore(manifest, job.regions.find((r) => r.subtasks.includes(id))!.id);
            const key = point.state.get(id)?.find((h) => isUnionKey(h.key))?.key;
            const body = key && (await ports.blobs.get(key));
            return body ? finishedOf(decode(body)).length : 0;
          }),
        );
        if (counts.every((n) => n > 0)) armed = true;
      }
    })();
    const view = await withTimeout(controller.run(job.jobId), 60_000, 'the job');
    await arming;
    await Promise.allSettled(launcher.runs);

    expect(crashedAt).toBeDefined();
    expect(view.job.status).toBe('FINISHED');
    expect(controller.supervisor.failures.map((f) => f.unitId)).toEqual([`ledger-${CRASHING}`]);
    // Region failover: only the crashed pipeline restarted.
    expect(view.units.filter((u) => u.attempt > 0).map((u) => [u.unitId, u.attempt])).toEqual([[`ledger-${CRASHING}`, 1]]);

    // The restarted subtask read every subtask's union object once: no other union reads in the job.
    expect(blobs.unionGets).toHaveLength(P);
    const read = new Map(blobs.unionGets.map((key) => [Number(/\/(\d+)\.a\d+\.json$/.exec(key)![1]), key]));
    expect([...read.keys()].sort()).toEqual([0, 1, 2, 3]);
    // ... with at most 2 reads in flight (the unit's bound), and in parallel up to it.
    expect(blobs.maxInFlight).toBe(2);
    // Each object is from its own region's restore point: the crashed region failed the checkpoint
    // it crashed in and fell back to an earlier one; the other regions completed it.
    const checkpointOf = (j: number) => Number(/^checkpoints\/[^/]+\/(\d+)\/union\//.exec(read.get(j)!)![1]);
    // Written by the attempt that acknowledged it: the crashed subtask's by attempt 0 (before the crash) or 1.
    for (let j = 0; j < P; j++) expect(read.get(j)).toMatch(new RegExp(`^checkpoints/${job.jobId}/${checkpointOf(j)}/union/ledger/${j}\\.a${j === CRASHING ? '[01]' : '0'}\\.json$`));
    for (let j = 0; j < P; j++) if (j !== CRASHING) expect(checkpointOf(j)).toBeGreaterThan(checkpointOf(CRASHING));
    // ... exactly as one completed manifest lists them.
    const used = blobs.manifests.filter((m) =>
      Array.from({ length: P }, (_, j) => {
        const id = subtaskId('ledger', j);
        const point = regionRestore(m, job.regions.find((r) => r.subtasks.includes(id))!.id);
        return point.checkpointId === checkpointOf(j) && (point.state.get(id) ?? []).some((h) => h.key === read.get(j));
      }).every(Boolean),
    );
    expect(used.length).toBeGreaterThan(0);

    // What the restarted subtask saw at open: the union, in subtask order, of what each wrote.
    const reopened = opens.filter((o) => o.subtaskIndex === CRASHING && o.attempt === 1);
    expect(reopened).toHaveLength(1);
    const expected = Array.from({ length: P }, (_, j) => finishedOf(blobs.unionPuts.get(read.get(j)!)!)).flat();
    expect(reopened[0]!.union).toEqual(expected);
    for (let j = 0; j < P; j++) expect(reopened[0]!.union.some((e) => e.subtask === j)).toBe(true);
    // It skipped its own partitions that the union lists as finished.
    const ownFinished = expected.filter((e) => e.subtask === CRASHING).map((e) => e.partition);
    expect(ownFinished.length).toBeGreaterThan(0);
    expect(reopened[0]!.skipped).toEqual(ownFinished);
    // First attempts started empty.
    expect(opens.filter((o) => o.attempt === 0).every((o) => o.union.length === 0)).toBe(true);
    expect(launcher.log.some((l) => l.startsWith(`ledger-${CRASHING}#1: union state of task 'ledger' for ledger#${CRASHING}: ${P} of ${P} objects`))).toBe(true);

    // Exactly-once output: every id once.
    const ids = (await readOutput<{ id: string }>(ports.blobs, job.jobId)).map((r) => r.id);
    expect(ids.length).toBe(expectedLedgerIds(view.job.params).size);
    expect(new Set(ids)).toEqual(expectedLedgerIds(view.job.params));

    // Union objects are acknowledged handles: manifests list them, and retention (or discarding)
    // deleted every one no retained manifest references (at the end of a bounded job: all of them,
    // since its last checkpoints hold only finished subtasks).
    const listed = new Set(blobs.manifests.flatMap(manifestKeys));
    expect([...blobs.unionPuts.keys()].filter((key) => listed.has(key)).length).toBeGreaterThan(P);
    const left = (await ports.blobs.list(`checkpoints/${job.jobId}/`)).map((b) => b.key).filter(isUnionKey);
    const referenced = new Set((await catalog.loadRetained()).flatMap(manifestKeys));
    for (const key of left) expect(referenced.has(key)).toBe(true);
    expect(blobs.unionPuts.size).toBeGreaterThan(left.length);
    // Every snapshot of the ledger says it wrote union state, and its union object exists.
    const ledgerSnapshots = [...blobs.snapshotPuts.entries()].filter(([key]) => key.includes('/ledger#'));
    expect(ledgerSnapshots.length).toBeGreaterThan(P);
    for (const [key, snapshot] of ledgerSnapshots) {
      expect(snapshot.union).toBe(true);
      expect(blobs.unionPuts.has(key.replace(/ledger#(\d+)(\.a\d+)\.json$/, 'union/ledger/$1$2.json'))).toBe(true);
    }
  });

  it('a job without union state writes no union object, and acknowledges only its snapshots', async () => {
    const registry = new JobRegistry([ingestJob]);
    const { ports, blobs, service } = setup(registry);
    // 3 s of input at this rate: room for several checkpoints every 250 ms (a job ends promptly at its end of input).
    const params = { parallelism: 2, partitions: 4, recordsPerPartition: 1500, rate: 1000 };
    const job = await service.submit({ job: 'ingest', params, checkpoint: { handle: 'regional', intervalSeconds: 1 } });
    const controller = new JobController({ service, metadata: ports.metadata, blobs, pollMs: 50, checkpointEveryMs: 250 });
    const view = await withTimeout(controller.run(job.jobId), 60_000, 'the job');
    expect(view.job.status).toBe('FINISHED');
    expect(blobs.manifests.length).toBeGreaterThanOrEqual(2);
    expect(blobs.unionPuts.size).toBe(0);
    for (const m of blobs.manifests) for (const r of m.regions) for (const s of r.subtasks) expect(s.state).toHaveLength(1);
    expect(blobs.snapshotPuts.size).toBeGreaterThan(0);
    for (const snapshot of blobs.snapshotPuts.values()) expect(snapshot).not.toHaveProperty('union');
    const ids = (await readOutput<{ id: string }>(ports.blobs, job.jobId)).map((r) => r.id);
    expect(new Set(ids)).toEqual(expectedIngestIds(view.job.params));
    expect(ids.length).toBe(6000);
  });
});

describe('loadUnitRestore: which union objects a unit reads', () => {
  /** A graph with one source task 'src' of parallelism P chained to a sink: one region per subtask. */
  function graphOf(P: number) {
    const job = new JobBuilder('shape', { parallelism: P });
    job.source('src', noSource).sink('out', noSink);
    return buildExecutionGraph(job.build());
  }

  /**
   * Region of src#j restores from `points[j]` (null: never completed; 'finished': finished at 5).
   * Every subtask with a restore point wrote a union object (entries `s<j>@<N>`) at that checkpoint
   * and at the one before, so a wrong checkpoint shows.
   */
  async function writeJob(P: number, points: (number | null | 'finished')[], blobs: BlobStore) {
    const graph = graphOf(P);
    const io = new CheckpointIO('job-x', blobs, createMemoryPorts().metadata);
    const regions: ManifestRegion[] = [];
    for (let j = 0; j < P; j++) {
      const id = subtaskId('src', j);
      const point = points[j]!;
      const region = graph.regions.find((r) => r.subtasks.includes(id))!;
      expect(region.subtasks).toEqual([id]);
      if (point === null) {
        regions.push({ regionId: region.id, restoreFrom: null, subtasks: [], finished: [] });
        continue;
      }
      if (point === 'finished') {
        regions.push({ regionId: region.id, restoreFrom: 5, subtasks: [], finished: [id] });
        continue;
      }
      const handles = [];
      for (const n of [point - 1, point]) {
        const backend = new UnionStateBackend();
        backend.state('s').add(`s${j}@${n}`);
        backend.state('empty');
        const snapshot = await io.writeSnapshot({ checkpointId: n, subtask: id, watermark: 0, union: true });
        const union = await io.writeUnion({ checkpointId: n, taskId: 'src', subtaskIndex: j, parallelism: P }, backend);
        if (n === point) handles.push(snapshot, union);
      }
      regions.push({ regionId: region.id, restoreFrom: point, subtasks: [{ subtask: id, state: handles }], finished: [] });
    }
    const manifest: CheckpointManifest = { format: MANIFEST_FORMAT, jobId: 'job-x', checkpointId: 6, handle: 'regional', triggerTime: 0, completedTime: 0, regions };
    return { graph, io, manifest };
  }

  it('reads each subtask’s object at its region’s restore point once for the unit, skips regions without one, and bounds reads at 32 by default', async () => {
    const P = 40;
    const blobs = new WatchedBlobs(createMemoryPorts().blobs, 5);
    const points = Array.from({ length: P }, (_, j): number | null | 'finished' => (j === 7 ? null : j === 9 ? 'finished' : j % 2 === 0 ? 5 : 4));
    const { graph, io, manifest } = await writeJob(P, points, blobs);
    const restored = await loadUnitRestore({ jobId: 'job-x', graph, regions: graph.regions, subtasks: ['src#2', 'src#3', 'src#7', 'src#9'], manifest, io });

    // src#7's region never completed a checkpoint, src#9 had finished: they restore nothing.
    expect([...restored.snapshots.keys()]).toEqual(['src#2', 'src#3']);
    expect([...restored.union.keys()]).toEqual(['src#2', 'src#3']);
    // One read for the task, shared by both subtasks of the unit.
    expect(restored.unionReads).toHaveLength(1);
    expect(restored.union.get('src#2')).toBe(restored.union.get('src#3'));
    expect(blobs.unionGets).toHaveLength(P - 2);
    expect(new Set(blobs.unionGets).size).toBe(P - 2);
    expect(blobs.maxInFlight).toBe(32);
    const read = restored.unionReads[0]!;
    expect(read.absent).toEqual([7, 9]);
    expect(read.stats).toMatchObject({ objects: P - 2, concurrency: 32, maxInFlight: 32 });
    expect(read.checkpoints[7]).toBeNull();
    // The union, in subtask order, each from its own region's checkpoint.
    const expected = points.flatMap((p, j) => (typeof p === 'number' ? [`s${j}@${p}`] : []));
    expect(restored.union.get('src#2')).toEqual({ s: expected, empty: [] });
  });

  it('with every subtask present it restores through restoreUnionState, regions at different checkpoints', async () => {
    const blobs = new WatchedBlobs(createMemoryPorts().blobs, 2);
    const { graph, io, manifest } = await writeJob(3, [5, 3, 4], blobs);
    const restored = await loadUnitRestore({ jobId: 'job-x', graph, regions: graph.regions, subtasks: ['src#1'], manifest, io, unionConcurrency: 1 });
    expect(restored.union.get('src#1')).toEqual({ s: ['s0@5', 's1@3', 's2@4'], empty: [] });
    expect(restored.unionReads[0]).toMatchObject({ absent: [], checkpoints: [5, 3, 4], parts: [{ subtask: 0 }, { subtask: 1 }, { subtask: 2 }] });
    expect(blobs.maxInFlight).toBe(1);
    expect(blobs.unionGets).toEqual(['checkpoints/job-x/5/union/src/0.a0.json', 'checkpoints/job-x/3/union/src/1.a0.json', 'checkpoints/job-x/4/union/src/2.a0.json']);
  });

  it('reads the snapshots of a unit’s subtasks and their union objects all at once, not one after another', async () => {
    const watched = new WatchedBlobs(createMemoryPorts().blobs);
    const { graph, manifest } = await writeJob(3, [5, 4, 5], watched);
    // Every get waits a few turns of the event loop: reads started together overlap, sequential ones never do.
    let inFlight = 0;
    let most = 0;
    const overlapping: BlobStore = Object.create(watched, {
      get: {
        value: async (key: string) => {
          most = Math.max(most, ++inFlight);
          for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
          inFlight--;
          return watched.get(key);
        },
      },
    }) as BlobStore;
    const io = new CheckpointIO('job-x', overlapping, createMemoryPorts().metadata);
    const restored = await loadUnitRestore({ jobId: 'job-x', graph, regions: graph.regions, subtasks: ['src#0', 'src#1', 'src#2'], manifest, io });
    expect([...restored.snapshots.keys()]).toEqual(['src#0', 'src#1', 'src#2']);
    expect(restored.union.get('src#1')).toEqual({ s: ['s0@5', 's1@4', 's2@5'], empty: [] });
    // Three snapshots and three union objects (one task), all in flight together.
    expect(most).toBe(6);
  });

  it('a restarted attempt that takes checkpoint N again writes its own union object; restore reads the one the manifest names', async () => {
    const blobs = new WatchedBlobs(createMemoryPorts().blobs);
    const { graph, io, manifest } = await writeJob(2, [5, 5], blobs);
    // Attempt 1 of src#1 (a restart after N's trigger) writes N again: attempt 0's object stays.
    const again = new CheckpointIO('job-x', blobs, createMemoryPorts().metadata, 1);
    const backend = new UnionStateBackend();
    backend.state('s').add('from attempt 1');
    const handle = await again.writeUnion({ checkpointId: 5, taskId: 'src', subtaskIndex: 1, parallelism: 2 }, backend);
    expect(handle.key).toBe('checkpoints/job-x/5/union/src/1.a1.json');
    expect(await blobs.get('checkpoints/job-x/5/union/src/1.a0.json')).toBeDefined();
    const restored = await loadUnitRestore({ jobId: 'job-x', graph, regions: graph.regions, subtasks: ['src#0'], manifest, io });
    expect(restored.union.get('src#0')).toEqual({ s: ['s0@5', 's1@5'], empty: [] });
    // An incarnation restarted inside its unit names itself too.
    expect((await io.forIncarnation(2).writeUnion({ checkpointId: 5, taskId: 'src', subtaskIndex: 1, parallelism: 2 }, backend)).key).toBe('checkpoints/job-x/5/union/src/1.a0r2.json');
  });

  it('a missing union object the manifest lists is an error naming it; no manifest restores nothing', async () => {
    const blobs = new WatchedBlobs(createMemoryPorts().blobs);
    const { graph, io, manifest } = await writeJob(3, [5, 5, null], blobs);
    await blobs.delete(['checkpoints/job-x/5/union/src/1.a0.json']);
    await expect(loadUnitRestore({ jobId: 'job-x', graph, regions: graph.regions, subtasks: ['src#0'], manifest, io })).rejects.toThrow(
      /union state object memory:\/\/sluice-memory\/checkpoints\/job-x\/5\/union\/src\/1\.a0\.json is missing/,
    );
    const none = await loadUnitRestore({ jobId: 'job-x', graph, regions: graph.regions, subtasks: ['src#0'], manifest: undefined, io });
    expect(none.snapshots.size + none.union.size + none.unionReads.length).toBe(0);
  });
});

describe('keyed process functions and union state', () => {
  it('OperatorChain.open opens the keyed head with its operator id and the subtask’s union state', async () => {
    const seen: { operatorId: string; state: UnionListState<string> }[] = [];
    const keyed = (): KeyedProcessFunction<Json, Json> => ({
      open(ctx) {
        const state = ctx.unionState!<string>('rules');
        state.add(`opened-${ctx.subtaskIndex}`);
        seen.push({ operatorId: ctx.operatorId, state });
      },
      processElement: () => undefined,
    });
    const job = new JobBuilder('k', { parallelism: 2 });
    job
      .source('src', noSource)
      .keyBy((r) => String(r))
      .process('agg', keyed)
      .sink('out', noSink);
    const graph = buildExecutionGraph(job.build());
    const task = graph.tasks.find((t) => t.id === 'agg')!;
    const backend = new UnionStateBackend();
    backend.restore({ rules: ['from-0', 'from-1'] });
    const chain = new OperatorChain(task, []);
    const ctx: RuntimeContext = {
      jobId: 'j',
      operatorId: 'whatever',
      subtaskIndex: 1,
      parallelism: 2,
      attempt: 0,
      blobs: createMemoryPorts().blobs,
      unionState: <T extends Json>(name: string) => backend.state<T>(name),
    };
    await chain.open(ctx);
    expect(seen.map((s) => s.operatorId)).toEqual(['agg']);
    expect(seen[0]!.state.get()).toEqual(['from-0', 'from-1', 'opened-1']);
    expect(backend.snapshot()).toEqual({ rules: ['from-0', 'from-1', 'opened-1'] });
  });

  it('a running job checkpoints a keyed operator’s union state (opened at subtask start) and none for its source', async () => {
    const registry = new JobRegistry([
      {
        name: 'keyed-union',
        description: 'generator -> keyBy -> keyed operator with union state -> sink',
        params: { parallelism: { type: 'number', default: 3, integer: true, min: 1, description: 'subtasks' } },
        build: (params) => {
          const job = new JobBuilder('keyed-union', { parallelism: params.parallelism as number });
          job
            .source('src', () => new GeneratorSource<number>({ partitions: 3, recordsPerPartition: 1500, ratePerSecond: 1500, generate: (p, o) => p * 10_000 + o }))
            .keyBy((r) => String(r % 17))
            .process('agg', (): KeyedProcessFunction<number, Json> => {
              let seen!: UnionListState<number>;
              return {
                open(ctx) {
                  ctx.unionState!<number>('subtasks').replace([ctx.subtaskIndex]);
                  seen = ctx.unionState!<number>('records');
                  seen.replace([0]);
                },
                processElement() {
                  seen.replace([seen.get()[0]! + 1]);
                },
              };
            })
            .sink('out', noSink);
          return job.build();
        },
      },
    ]);
    const { ports, blobs, service } = setup(registry);
    const job = await service.submit({ job: 'keyed-union', params: {}, checkpoint: { handle: 'global', intervalSeconds: 1 } });
    const controller = new JobController({ service, metadata: ports.metadata, blobs, pollMs: 50, checkpointEveryMs: 250 });
    const view = await withTimeout(controller.run(job.jobId), 60_000, 'the job');
    expect(view.job.status).toBe('FINISHED');
    const keys = [...blobs.unionPuts.keys()];
    expect(keys.length).toBeGreaterThanOrEqual(3);
    for (const key of keys) expect(key).toMatch(/\/union\/agg\/[012]\.a0\.json$/);
    for (const [key, body] of blobs.unionPuts) {
      const part = JSON.parse(body) as { subtask: number; parallelism: number; states: Record<string, number[]> };
      expect(key.endsWith(`/${part.subtask}.a0.json`)).toBe(true);
      expect(part.parallelism).toBe(3);
      expect(part.states.subtasks).toEqual([part.subtask]);
      expect(part.states.records).toHaveLength(1);
    }
    for (const [key, snapshot] of blobs.snapshotPuts) expect(snapshot.union).toBe(key.includes('/agg#') ? true : undefined);
  });
});
