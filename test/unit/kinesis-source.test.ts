/**
 * The Kinesis source and sink on the in-memory Kinesis port (as strict as AWS: read rate, iterator
 * expiry, resharding that keeps the parents' records): shards as splits, exact replay from a
 * checkpoint, parents before children (also across subtasks), throttling and expired iterators
 * survived, bounded reads, named errors; and the port's own limits.
 */
import { describe, expect, it } from 'vitest';
import type { Json, RuntimeContext } from '../../lib/api/functions';
import { KinesisSink } from '../../lib/connectors/kinesis-sink';
import { KinesisSource, KinesisSourceError } from '../../lib/connectors/kinesis-source';
import { MemoryBlobStore } from '../../lib/memory';
import { MemoryKinesis } from '../../lib/memory/kinesis';
import { ExpiredIteratorError, KinesisArgumentError, ThroughputExceededError } from '../../lib/ports/kinesis';

type Ev = { shard: string; n: number };
const enc = (v: Json) => Buffer.from(JSON.stringify(v));

function ctx(subtaskIndex: number, parallelism: number, blobs = new MemoryBlobStore()): RuntimeContext {
  return { jobId: 'j1', operatorId: 'kinesis', subtaskIndex, parallelism, attempt: 0, blobs };
}

/** Puts `n` records with an explicit hash key inside the shard's range, numbered per shard. */
async function fill(kinesis: MemoryKinesis, stream: string, shardId: string, n: number, from = 0): Promise<void> {
  const shard = (await kinesis.listShards(stream)).find((s) => s.shardId === shardId)!;
  for (let i = from; i < from + n; i += 500) {
    const entries = Array.from({ length: Math.min(500, from + n - i) }, (_, k) => ({ partitionKey: 'k', explicitHashKey: shard.hashKeyRange.start, data: enc({ shard: shardId, n: i + k }) }));
    const { results } = await kinesis.putRecords(stream, entries);
    expect(results.every((r) => 'sequenceNumber' in r)).toBe(true);
  }
}

const source = (kinesis: MemoryKinesis, options: Partial<ConstructorParameters<typeof KinesisSource<Ev>>[0]> = {}) =>
  new KinesisSource<Ev>({
    stream: 's',
    deserialize: (data) => JSON.parse(Buffer.from(data).toString('utf8')) as Ev,
    eventTime: (e) => e.n,
    streams: () => kinesis,
    ...options,
  });

async function drain(src: KinesisSource<Ev>, until: (got: Ev[]) => boolean, max = 300, polls = 2000): Promise<Ev[]> {
  const got: Ev[] = [];
  for (let i = 0; i < polls && !until(got); i++) {
    const batch = await src.poll(max);
    got.push(...batch.records);
    if (batch.done) break;
  }
  return got;
}

describe('the in-memory Kinesis port keeps AWS limits', () => {
  it('throttles a sixth GetRecords in a second, refuses limits above 10,000, and expires iterators after 5 minutes', async () => {
    let now = 0;
    const kinesis = new MemoryKinesis({ now: () => now });
    kinesis.createStream('s', 1);
    let it = await kinesis.getShardIterator('s', 'shardId-000000000000', { type: 'TRIM_HORIZON' });
    for (let i = 0; i < 5; i++) it = (await kinesis.getRecords(it, 10)).nextIterator!;
    await expect(kinesis.getRecords(it, 10)).rejects.toThrow(ThroughputExceededError);
    await expect(kinesis.getRecords(it, 10_001)).rejects.toThrow(KinesisArgumentError);
    now += 5 * 60_000 + 1;
    await expect(kinesis.getRecords(it, 10)).rejects.toThrow(ExpiredIteratorError);
  });

  it('a split closes the parent, which keeps its records and ends; the children start empty', async () => {
    const kinesis = new MemoryKinesis();
    kinesis.createStream('s', 1);
    await fill(kinesis, 's', 'shardId-000000000000', 3);
    kinesis.splitShard('s', 'shardId-000000000000', 1n << 127n);
    const shards = await kinesis.listShards('s');
    expect(shards.map((s) => [s.shardId, s.parentShardId, s.endingSequenceNumber !== undefined])).toEqual([
      ['shardId-000000000000', undefined, true],
      ['shardId-000000000001', 'shardId-000000000000', false],
      ['shardId-000000000002', 'shardId-000000000000', false],
    ]);
    const it = await kinesis.getShardIterator('s', 'shardId-000000000000', { type: 'TRIM_HORIZON' });
    const read = await kinesis.getRecords(it, 100);
    expect(read.records).toHaveLength(3);
    expect(read.nextIterator).toBeUndefined();
  });
});

describe('Kinesis source', () => {
  it('reads its shards (shard N by subtask N % parallelism), each in order', async () => {
    const kinesis = new MemoryKinesis();
    kinesis.createStream('s', 4);
    for (let s = 0; s < 4; s++) await fill(kinesis, 's', `shardId-00000000000${s}`, 700);
    const got = new Map<number, Ev[]>();
    for (const i of [0, 1]) {
      const src = source(kinesis);
      await src.open(ctx(i, 2));
      got.set(i, await drain(src, (g) => g.length >= 1400));
    }
    expect(new Set(got.get(0)!.map((e) => e.shard))).toEqual(new Set(['shardId-000000000000', 'shardId-000000000002']));
    expect(new Set(got.get(1)!.map((e) => e.shard))).toEqual(new Set(['shardId-000000000001', 'shardId-000000000003']));
    for (const events of got.values()) {
      for (const shard of new Set(events.map((e) => e.shard))) expect(events.filter((e) => e.shard === shard).map((e) => e.n)).toEqual([...Array(700).keys()]);
    }
  });

  it('a restore from a checkpoint replays exactly what came after it, in the same order', async () => {
    const kinesis = new MemoryKinesis();
    kinesis.createStream('s', 4);
    for (const s of [0, 1, 2, 3]) await fill(kinesis, 's', `shardId-00000000000${s}`, 600);
    const first = source(kinesis);
    await first.open(ctx(0, 1));
    await drain(first, (g) => g.length >= 900, 300);
    const offsets = JSON.parse(JSON.stringify(first.snapshotOffsets(1))) as Json;
    const after = await drain(first, (g) => g.length >= 1500, 300);

    const restored = source(kinesis);
    await restored.open(ctx(0, 1));
    restored.restoreOffsets(offsets);
    const replay = await drain(restored, (g) => g.length >= 1500, 300);
    expect(replay).toEqual(after);
  });

  it('reads a parent to its end before its children; a parent of another subtask counts once that subtask’s checkpoint completed', async () => {
    const kinesis = new MemoryKinesis();
    kinesis.createStream('s', 2);
    await fill(kinesis, 's', 'shardId-000000000000', 50);
    // Split shard 0 into 2 and 3: child 3 belongs to subtask 1, its parent to subtask 0.
    kinesis.splitShard('s', 'shardId-000000000000', 1n << 126n);
    await fill(kinesis, 's', 'shardId-000000000002', 20);
    await fill(kinesis, 's', 'shardId-000000000003', 30);
    const blobs = new MemoryBlobStore();
    const s0 = source(kinesis, { discoveryIntervalMs: 0 });
    const s1 = source(kinesis, { discoveryIntervalMs: 0 });
    await s0.open(ctx(0, 2, blobs));
    await s1.open(ctx(1, 2, blobs));
    // Subtask 1 has shard 1 (empty) and child 3, which waits for parent 0.
    expect(await drain(s1, () => false, 1000, 5).then((g) => g.length)).toBe(0);
    const got0 = await drain(s0, (g) => g.length >= 70);
    // Subtask 0 reads parent 0 to its end, then its own child 2.
    expect(got0.map((e) => e.shard)).toEqual([...Array(50).fill('shardId-000000000000'), ...Array(20).fill('shardId-000000000002')]);
    s0.snapshotOffsets(7);
    expect(await drain(s1, () => false, 1000, 5).then((g) => g.length)).toBe(0);
    await s0.checkpointComplete(7);
    await new Promise((r) => setTimeout(r, 1100)); // markers are looked for at most once a second
    const got1 = await drain(s1, (g) => g.length >= 30);
    expect(got1.map((e) => e.n)).toEqual([...Array(30).keys()]);
  });

  it('after a merge, reads both parents to their ends before the child', async () => {
    const kinesis = new MemoryKinesis();
    kinesis.createStream('s', 2);
    await fill(kinesis, 's', 'shardId-000000000000', 30);
    await fill(kinesis, 's', 'shardId-000000000001', 40);
    kinesis.mergeShards('s', 'shardId-000000000000', 'shardId-000000000001');
    await fill(kinesis, 's', 'shardId-000000000002', 25);
    const src = source(kinesis, { bounded: true, discoveryIntervalMs: 0 });
    await src.open(ctx(0, 1));
    const got = await drain(src, () => false, 10);
    const firstChild = got.findIndex((e) => e.shard === 'shardId-000000000002');
    expect(got).toHaveLength(95);
    expect(firstChild).toBe(70);
    expect(got.slice(70).map((e) => e.n)).toEqual([...Array(25).keys()]);
  });

  it('survives throttling and expired iterators without losing or repeating a record', async () => {
    let skew = 0;
    const kinesis = new MemoryKinesis({ now: () => Date.now() + skew });
    kinesis.createStream('s', 1);
    await fill(kinesis, 's', 'shardId-000000000000', 600);
    const src = source(kinesis, { recordsPerCall: 100, callsPerSecond: 5 });
    await src.open(ctx(0, 1));
    const got = await drain(src, (g) => g.length >= 200, 100);
    // Someone else reads the same shard hard: our calls get throttled for a while.
    const other = await kinesis.getShardIterator('s', 'shardId-000000000000', { type: 'TRIM_HORIZON' });
    for (let i = 0; i < 5; i++) await kinesis.getRecords(other, 1).catch(() => undefined);
    got.push(...(await drain(src, (g) => g.length >= 100, 100)));
    skew += 6 * 60_000; // every iterator handed out so far is expired now
    got.push(...(await drain(src, (g) => g.length >= 300, 100)));
    expect(got.map((e) => e.n)).toEqual([...Array(600).keys()]);
  });

  it('bounded: reads what the stream held at the first start, then ends', async () => {
    const kinesis = new MemoryKinesis();
    kinesis.createStream('s', 2);
    await fill(kinesis, 's', 'shardId-000000000000', 40);
    const src = source(kinesis, { bounded: true });
    await src.open(ctx(0, 1));
    await new Promise((r) => setTimeout(r, 5));
    await fill(kinesis, 's', 'shardId-000000000001', 10); // after the start: not read
    const got = await drain(src, () => false);
    expect(got.map((e) => e.shard)).toEqual(Array(40).fill('shardId-000000000000'));
  });

  it('watermark: per shard, less out-of-orderness; an idle shard stops holding it back', async () => {
    const kinesis = new MemoryKinesis();
    kinesis.createStream('s', 2);
    await fill(kinesis, 's', 'shardId-000000000000', 100);
    let clock = 1_000_000;
    const src = source(kinesis, { maxOutOfOrdernessMs: 10, idleTimeoutMs: 300, now: () => clock });
    await src.open(ctx(0, 1));
    let batch = await src.poll(1000);
    expect(batch.records).toHaveLength(100);
    expect(batch.watermark).toBeUndefined(); // shard 1 has emitted nothing yet and is not idle yet
    clock += 300; // nothing from either shard since: both idle, no watermark
    await new Promise((r) => setTimeout(r, 250)); // past the GetRecords gap (200 ms at 5 calls a second)
    expect((await src.poll(1000)).watermark).toBeUndefined();
    await fill(kinesis, 's', 'shardId-000000000000', 10, 100);
    await new Promise((r) => setTimeout(r, 250));
    batch = await src.poll(1000);
    expect(batch.records).toHaveLength(10);
    expect(batch.watermark).toBe(109 - 10 - 1); // shard 0 has data again; shard 1 stays idle
  });

  it('names a missing stream', async () => {
    const kinesis = new MemoryKinesis();
    const src = source(kinesis, { stream: 'nope' });
    await expect(src.open(ctx(0, 1))).rejects.toThrow(KinesisSourceError);
    await expect(source(kinesis, { stream: 'nope' }).open(ctx(0, 1))).rejects.toThrow(/Kinesis stream 'nope' does not exist \(memory:\/\/kinesis\)/);
    expect(() => source(kinesis, { callsPerSecond: 6 })).toThrow(/at most 5 \(the GetRecords limit per shard\)/);
  });
});

describe('Kinesis sink (at-least-once)', () => {
  it('sends everything written before a prepare, resending entries a shard refused for its write rate', async () => {
    const kinesis = new MemoryKinesis();
    kinesis.createStream('out', 1);
    const sink = new KinesisSink<{ n: number }>({ stream: 'out', partitionKey: (r) => String(r.n % 7), streams: () => kinesis });
    await sink.open(ctx(0, 1));
    // 1,500 records: over the shard's 1,000 records a second, so some are refused and sent again.
    for (let n = 0; n < 1500; n++) sink.write({ n });
    await sink.prepare();
    expect(sink.sent).toBe(1500);
    let it = await kinesis.getShardIterator('out', 'shardId-000000000000', { type: 'TRIM_HORIZON' });
    const ns: number[] = [];
    while (ns.length < 1500) {
      const r = await kinesis.getRecords(it, 10_000).catch(async (e: unknown) => {
        if (e instanceof ThroughputExceededError) return new Promise<undefined>((ok) => setTimeout(() => ok(undefined), 250));
        throw e;
      });
      if (!r) continue;
      ns.push(...r.records.map((x) => (JSON.parse(Buffer.from(x.data).toString()) as { n: number }).n));
      it = r.nextIterator!;
    }
    expect(ns.sort((a, b) => a - b)).toEqual([...Array(1500).keys()]);
  });
});
