/**
 * The metadata model at the seed's parallelism (issue 12): placement packs subtasks into units,
 * the job item does not grow with parallelism, unit records and acknowledgements are spread over
 * partition keys, a unit's record stays small whatever its subtasks' channels count, a unit's
 * start reads only its producers' records, and what is not kept expires.
 * On the in-memory store, which refuses items over 400 KB as DynamoDB does.
 */
import { describe, expect, it } from 'vitest';
import { jobRegistry } from '../../examples/jobs';
import { ObservedMetadataStore } from '../../bench/lib/metadata-observer';
import { buildExecutionGraph } from '../../lib/graph/execution-graph';
import { jobLayout, LayoutIndex, placeSubtasks } from '../../lib/graph/placement';
import { producerUnitsOf } from '../../lib/host/unit-host';
import { JobService, type UnitLauncher } from '../../lib/jobs/job-service';
import { JobStore } from '../../lib/jobs/job-store';
import { MemoryChannelTransport } from '../../lib/memory/channels';
import { MemoryMetadataStore } from '../../lib/memory/metadata-store';
import { MemoryBlobStore } from '../../lib/memory/blob-store';
import { HeartbeatPolicy, reportSignature } from '../../lib/runtime/task-unit';
import { CheckpointIO } from '../../lib/runtime/checkpoint-io';
import { PortCheckpointCatalog } from '../../lib/checkpoint/catalog';
import { TTL_ATTRIBUTE, ackShardCount, unitShardCount, unitsPk } from '../../lib/ports/metadata-keys';
import type { CheckpointHistoryEntry } from '../../lib/checkpoint/types';
import { InputGate, channelKey } from '../../lib/runtime/input-gate';
import { BarrierAligner, STATUS_CHANNELS } from '../../lib/runtime/barrier-aligner';
import { alignmentChannels } from '../../lib/runtime/input-driver';
import { CHANNELS_REPORTED } from '../../lib/runtime/subtask';
import { MAX_ITEM_BYTES } from '../../lib/ports/item-size';

const joinGraph = (parallelism: number) => buildExecutionGraph(jobRegistry.build('recommendation-join', { parallelism, partitions: parallelism }).graph);

function submitter(subtasksPerUnit?: number) {
  const metadata = new ObservedMetadataStore(new MemoryMetadataStore());
  const jobs = new JobStore(metadata);
  const launched: string[] = [];
  const launcher: UnitLauncher = { launch: async (_job, unit) => void launched.push(unit.unitId), stop: async () => undefined };
  const service = new JobService({ jobs, channels: new MemoryChannelTransport(), registry: jobRegistry, queuePrefix: 'scale', launcher });
  const submit = (parallelism: number) =>
    service.submit({ job: 'recommendation-join', params: { parallelism, partitions: parallelism }, ...(subtasksPerUnit ? { subtasksPerUnit } : {}) });
  return { metadata, jobs, service, launched, submit };
}

describe('placement', () => {
  it('packs subtasks n to a unit, pipeline slice by slice; n = 1 is one unit per subtask, named as before', () => {
    const graph = joinGraph(4000);
    const packed = placeSubtasks(graph, 100);
    // The join's three tasks are three pipelines (all-to-all edges between them): 100 subtasks of one task to a unit.
    expect(packed).toHaveLength(120);
    expect(packed.every((u) => u.subtasks.length === 100 && new Set(u.subtasks.map((id) => id.slice(0, id.indexOf('#')))).size === 1)).toBe(true);
    const placed = packed.flatMap((u) => u.subtasks);
    expect(placed).toHaveLength(graph.subtasks.length);
    expect(new Set(placed).size).toBe(graph.subtasks.length);
    // A pipeline slice (subtask i of every task of the ingest pipeline) stays in one unit.
    const ingest = buildExecutionGraph(jobRegistry.build('ingest', { parallelism: 5000, partitions: 5000 }).graph);
    const unitOf = new LayoutIndex({ units: placeSubtasks(ingest, 100).map((u) => ({ ...u, controlQueue: '' })) });
    for (const i of [0, 1234, 4999]) expect(new Set(ingest.tasks.map((t) => unitOf.unitOf(`${t.id}#${i}`)!.unitId)).size).toBe(1);

    const small = joinGraph(3);
    expect(placeSubtasks(small).map((u) => [u.unitId, u.subtasks])).toEqual(small.subtasks.map((s) => [`${s.taskId}-${s.index}`, [s.id]]));
    expect(() => placeSubtasks(small, 0)).toThrow(/subtasksPerUnit must be a whole number from 1/);
  });

  it('refuses a bad subtasksPerUnit at submit, by name', async () => {
    const { service } = submitter();
    await expect(service.submit({ job: 'demo', subtasksPerUnit: 2.5 })).rejects.toThrow(/subtasksPerUnit must be a whole number/);
  });
});

describe('the job item at parallelism 4 and 4000', () => {
  it('stays the same small size: the layout is computed from the graph, never stored', async () => {
    const small = submitter();
    const big = submitter(100);
    const a = await small.submit(4);
    const b = await big.submit(4000);
    // Units of 100 subtasks of one task (the join's three tasks are pipelines of their own); the
    // join units read, so each has an input queue beside its control queue: queues grow with units.
    const units = 120;
    expect(b.units).toHaveLength(units);
    expect(b.queues).toHaveLength(units + 40);
    const metaOf = (m: ObservedMetadataStore) => m.largest.get('JOB / META')!.bytes;
    expect(metaOf(small.metadata)).toBeLessThan(1500);
    expect(Math.abs(metaOf(big.metadata) - metaOf(small.metadata))).toBeLessThan(40);
    // Every unit attempt was registered and launched; the layout comes back the same from the stored job.
    expect(big.launched).toHaveLength(units);
    const again = await new JobService({ jobs: new JobStore(big.metadata), channels: new MemoryChannelTransport(), registry: jobRegistry, queuePrefix: 'other', launcher: { launch: async () => undefined, stop: async () => undefined } }).job(b.jobId);
    expect(again.units).toEqual(b.units);
    expect(again.queues).toEqual(b.queues);
    expect(a.shape).toMatchObject({ units: 12, unitShards: 1 });
  });

  it('spreads 12,000 unpacked unit records over partitions of at most a few hundred units', async () => {
    const { metadata, submit } = submitter();
    const job = await submit(4000);
    expect(job.units).toHaveLength(12_000);
    expect(job.shape.unitShards).toBe(unitShardCount(12_000));
    expect(job.shape.unitShards).toBe(94);
    const perShard = await Promise.all(Array.from({ length: job.shape.unitShards }, (_, s) => metadata.inner.query(unitsPk(job.jobId, s), 'UNIT#')));
    expect(perShard.reduce((n, items) => n + items.length, 0)).toBe(12_000);
    expect(Math.max(...perShard.map((items) => items.length))).toBeLessThan(200);
    // Acknowledgements of one checkpoint: 12,000 subtasks over 24 partitions.
    expect(ackShardCount(job.shape.subtasks)).toBe(24);
  });
});

describe('unit records and heartbeats', () => {
  it('merges the liveness heartbeat into the record, and reads attempts only from the partitions of the units asked for', async () => {
    const { metadata, jobs, submit } = submitter();
    const job = await submit(300);
    expect(job.shape.unitShards).toBe(8);
    const unit = job.units[5]!;
    await jobs.startInvocation(job.jobId, unit.unitId, 0, 'owner');
    const before = (await jobs.getUnits(job.jobId)).find((u) => u.unitId === unit.unitId)!.heartbeatAt;
    await new Promise((r) => setTimeout(r, 5));
    expect(await jobs.beat(job.jobId, unit.unitId, 0)).toBe(true);
    expect((await jobs.getUnits(job.jobId)).find((u) => u.unitId === unit.unitId)!.heartbeatAt).toBeGreaterThan(before);
    // An older attempt's heartbeat is refused once a newer one is registered, and so is a stopped one's.
    await jobs.startUnitAttempt(job.jobId, unit.unitId, unit.subtasks, 1);
    expect(await jobs.beat(job.jobId, unit.unitId, 0)).toBe(false);
    expect(await jobs.markStopped(job.jobId, unit.unitId, 1, 'cancelled')).toBe(true);
    expect(await jobs.beat(job.jobId, unit.unitId, 1)).toBe(false);

    const reads = metadata.reads;
    const attempts = await jobs.unitAttempts(job.jobId, [unit.unitId]);
    expect(metadata.reads - reads).toBe(1);
    expect([...attempts]).toEqual([[unit.unitId, 1]]);
    expect((await jobs.unitAttempts(job.jobId)).size).toBe(job.units.length);
  });

  it('reads attempts from the heartbeat items, not the records that carry the units\' counters', async () => {
    const { metadata, jobs, submit } = submitter(100);
    const job = await submit(4000);
    // Counters as a running unit of 100 subtasks reports them: tens of KB a record.
    const stats = Object.fromEntries(job.units[0]!.subtasks.map((s) => [s, { records: 123456, bytes: 9876543, watermark: 1_700_000_000_000, channels: 'x'.repeat(200) }]));
    for (const u of job.units) await jobs.reportUnit(job.jobId, u.unitId, 0, { stats: stats as never });
    const before = metadata.readUnits;
    await jobs.getUnits(job.jobId);
    expect(metadata.readUnits - before).toBeGreaterThan(500);
    const unit = job.units[7]!;
    await jobs.startUnitAttempt(job.jobId, unit.unitId, unit.subtasks, 3);
    const units = metadata.readUnits;
    const attempts = await jobs.unitAttempts(job.jobId);
    // 120 heartbeat items of ~80 bytes: a few read units (the records: over 500).
    expect(metadata.readUnits - units).toBeLessThanOrEqual(5);
    expect(attempts.size).toBe(job.units.length);
    expect(attempts.get(unit.unitId)).toBe(3);
    expect(attempts.get(job.units[0]!.unitId)).toBe(0);
  });

  it('a starting unit reads the attempts of its producers only: one pipeline under forward edges, the producer task under all-to-all', () => {
    const ingest = buildExecutionGraph(jobRegistry.build('ingest', { parallelism: 5000, partitions: 5000 }).graph);
    const layout = new LayoutIndex(jobLayout(ingest, { jobId: 'j', queuePrefix: 'q', subtasksPerUnit: 100 }));
    // A pipeline slice shares a unit: the sink's producer is in its own unit.
    const sink = layout.unitOf('s3-sink#2500')!;
    expect([...producerUnitsOf(ingest, layout, sink.subtasks)]).toEqual([sink.unitId]);
    const join = joinGraph(4000);
    const joined = jobLayout(join, { jobId: 'j', queuePrefix: 'q', subtasksPerUnit: 100 });
    const joinLayout = new LayoutIndex(joined);
    // All-to-all: every unit hosting a producer subtask (the 80 units of the two sources).
    expect(producerUnitsOf(join, joinLayout, joinLayout.unitOf('join#0')!.subtasks).size).toBe(80);
    expect(producerUnitsOf(join, joinLayout, ['events#0']).size).toBe(0);
  });

  it('a join unit of 100 subtasks at parallelism 4000 reports under 400 KB with every input channel counted and an alignment open', async () => {
    const { metadata, jobs, submit } = submitter(100);
    const job = await submit(4000);
    const unit = job.units[100]!;
    const graph = joinGraph(4000);
    const join = graph.tasks.find((t) => t.id === 'join')!;
    // One join subtask after a restart: every one of its 8000 channels has counts.
    const gate = new InputGate({ inputs: join.inputs, consumerIndex: 0, producerParallelism: () => 4000, queueOf: () => 'q', transport: new MemoryChannelTransport(), onError: () => undefined });
    const counted = { duplicateRecords: 1234, missingRecords: 56, replayedRecords: 7890, regeneratedRecords: 12 };
    gate.restorePositions(join.inputs.map((e) => ({ key: channelKey(e.id, 0), range: 4000, positions: [[0, 99_999]], counters: counted })));
    expect(gate.countedChannels()).toBe(8000);
    const aligner = new BarrierAligner<string>({ lastCheckpoint: () => 0, passed: () => undefined, checkpoint: async () => undefined, decline: async () => undefined, release: async () => undefined, ...alignmentChannels(() => gate) });
    await aligner.barrier(17, 5);
    const base = { status: 'running', recordsIn: 123_456_789, recordsOut: 123_456_789, dropped: 0, duplicates: 12_345, fenced: 678, ...counted, resentRecords: 0, expiredReceipts: 3, reordered: 4, lastCheckpoint: 4, restarts: 1 };
    // As SubtaskRunner.counters() reports a join subtask: the channels with the most counts, how many are left out, the alignment.
    const channels = gate.channelCounters(CHANNELS_REPORTED);
    const joinStats = { ...base, channels, channelsOmitted: gate.countedChannels() - Object.keys(channels).length, aligning: aligner.status()!, openChannels: gate.openCount() };
    expect(Object.keys(channels)).toHaveLength(CHANNELS_REPORTED);
    expect(joinStats.channelsOmitted).toBe(8000 - CHANNELS_REPORTED);
    expect(joinStats.aligning.waitingFor).toHaveLength(STATUS_CHANNELS);
    expect(joinStats.aligning.waiting).toBe(7999);
    const stats = Object.fromEntries(unit.subtasks.map((id) => [id, id.startsWith('join#') ? joinStats : base]));
    expect(unit.subtasks.filter((id) => id.startsWith('join#'))).toHaveLength(100);
    await jobs.startUnitAttempt(job.jobId, unit.unitId, unit.subtasks, 1);
    expect(await jobs.reportUnit(job.jobId, unit.unitId, 1, { stats, heartbeatAt: Date.now(), requests: { sqs: 1e9, dynamodb: 1e9, s3: 1e9 } })).toBe(true);
    const record = metadata.largest.get('UNITS / UNIT#')!;
    expect(record.bytes).toBeGreaterThan(50_000); // 178 KB here (100 join subtasks)
    expect(record.bytes).toBeLessThan(MAX_ITEM_BYTES);
    // Every channel listed, as before, would not fit: DynamoDB refuses the write.
    const uncapped = { ...joinStats, channels: gate.channelCounters() };
    await expect(jobs.reportUnit(job.jobId, unit.unitId, 1, { stats: { ...stats, [unit.subtasks.find((id) => id.startsWith('join#'))!]: uncapped } })).rejects.toThrow(/400 KB/);
  });

  it('heartbeats adaptively: a report when the counters change, else a small liveness write every livenessMs', () => {
    const policy = new HeartbeatPolicy({ livenessMs: 3000, reportMaxAgeMs: 60_000, now: 0 });
    expect(policy.next(1000, 'a')).toBe('report');
    expect(policy.next(2000, 'a')).toBe('none');
    expect(policy.next(3000, 'a')).toBe('none');
    expect(policy.next(4000, 'a')).toBe('beat');
    expect(policy.next(5000, 'b')).toBe('report');
    const writes = Array.from({ length: 60 }, (_, i) => policy.next(6000 + i * 1000, 'b'));
    // Idle for a minute: a beat every 3 s, then the record once it is a minute old.
    expect(writes.filter((w) => w === 'beat')).toHaveLength(19);
    expect(writes.filter((w) => w === 'report')).toHaveLength(1);
  });

  it('checkpoint progress alone does not rewrite a unit record: it rides along with the next report', () => {
    const stats = (over: object) => ({ 'join#1': { status: 'running', recordsIn: 10, recordsOut: 10, dropped: 0, duplicates: 0, fenced: 0, lastCheckpoint: 3, ...over } });
    const policy = new HeartbeatPolicy({ livenessMs: 3000, reportMaxAgeMs: 60_000, now: 0 });
    expect(policy.next(1000, reportSignature(stats({})))).toBe('report');
    // A checkpoint aligns (the channels waited for change every second), is taken, the next one starts.
    const progress = [
      { aligning: { checkpointId: 4, waitingFor: ['e/1', 'e/2'], waiting: 7999, held: 0 } },
      { aligning: { checkpointId: 4, waitingFor: ['e/2'], waiting: 12, held: 3 } },
      { lastCheckpoint: 4 },
      { lastCheckpoint: 4, aligning: { checkpointId: 5, waitingFor: ['e/9'], held: 1 } },
    ];
    const writes = progress.map((p, i) => policy.next(2000 + i * 1000, reportSignature(stats(p))));
    expect(writes).toEqual(['none', 'none', 'beat', 'none']);
    // Records moving, or a status change, are still written at once (with the progress as it is then).
    expect(policy.next(6000, reportSignature(stats({ lastCheckpoint: 4, recordsIn: 11 })))).toBe('report');
    expect(policy.next(7000, reportSignature(stats({ lastCheckpoint: 5, recordsIn: 11, status: 'ended' })))).toBe('report');
    // Channel counters are not checkpoint progress.
    expect(reportSignature(stats({ channels: { 'e/1': { duplicateRecords: 1 } } }))).not.toBe(reportSignature(stats({})));
  });
});

describe('what is not kept expires', () => {
  const entry = (id: number): CheckpointHistoryEntry => ({
    checkpointId: id,
    handle: 'regional',
    triggerTime: id * 1000,
    endTime: id * 1000 + 500,
    durationMs: 500,
    outcome: { status: 'failed', reason: 'timeout', message: 'late' },
    regions: { total: 1, participating: 1, completed: 0, failed: 1 },
    failedRegions: [],
    bytesWritten: 0,
    bytesKept: 0,
  });

  it('checkpoint decisions carry a TTL and the history is read newest first, up to a limit', async () => {
    const metadata = new MemoryMetadataStore();
    const catalog = new PortCheckpointCatalog('j', metadata, new MemoryBlobStore());
    for (let id = 1; id <= 30; id++) await catalog.saveFailed(entry(id));
    expect((await catalog.loadHistory(5)).map((h) => h.checkpointId)).toEqual([26, 27, 28, 29, 30]);
    const stored = await metadata.get('JOB#j#CKPT', 'CKPT#000000000030');
    expect(stored![TTL_ATTRIBUTE]).toBe(Math.floor(30_500 / 1000) + 7 * 24 * 3600);
  });

  it('acknowledgements of a large job are spread over their shards and read back from all of them', async () => {
    const metadata = new ObservedMetadataStore(new MemoryMetadataStore());
    const blobs = new MemoryBlobStore();
    const writer = new CheckpointIO('j', blobs, metadata, 0, 24);
    for (let i = 0; i < 1200; i++) await writer.acknowledge(7, `join#${i}`, []);
    expect((await new CheckpointIO('j', blobs, metadata, 0, 24).acks(7))).toHaveLength(1200);
    expect(metadata.hottest.writes).toBeLessThan(1200 / 24 * 2);
  });
});
