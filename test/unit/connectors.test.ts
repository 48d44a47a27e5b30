import { describe, expect, it } from 'vitest';
import { evenShare, GeneratorSource } from '../../lib/connectors/generator-source';
import { S3LineSource } from '../../lib/connectors/s3-line-source';
import { S3PartitionedSink, hourPartition } from '../../lib/connectors/s3-partitioned-sink';
import { KeyedStateBackend } from '../../lib/runtime/keyed-state';
import { MemoryBlobStore } from '../../lib/memory';
import type { RuntimeContext } from '../../lib/api/functions';

const ctx = (blobs = new MemoryBlobStore(), subtaskIndex = 0, parallelism = 1): RuntimeContext => ({
  jobId: 'job-1', operatorId: 'op', subtaskIndex, parallelism, attempt: 0, blobs,
});

async function readAll<T>(source: { poll(max: number): Promise<{ records: T[]; done: boolean }> }, max = 7): Promise<T[]> {
  const out: T[] = [];
  for (;;) {
    const batch = await source.poll(max);
    out.push(...batch.records);
    if (batch.done) return out;
  }
}

describe('generator source', () => {
  const options = { partitions: 5, recordsPerPartition: (p: number) => 10 + p, generate: (p: number, o: number) => `${p}:${o}`, eventTime: (_r: string, _p: number, o: number) => o * 1000 };

  it('splits partitions over subtasks and reads each exactly once', async () => {
    const all: string[] = [];
    for (let s = 0; s < 2; s++) {
      const source = new GeneratorSource(options);
      await source.open(ctx(undefined, s, 2));
      all.push(...(await readAll(source)));
    }
    expect(all.sort()).toEqual(Array.from({ length: 5 }, (_, p) => Array.from({ length: 10 + p }, (_, o) => `${p}:${o}`)).flat().sort());
  });

  it('rewinds to snapshotted offsets and replays the same records', async () => {
    const source = new GeneratorSource(options);
    await source.open(ctx());
    await source.poll(12);
    const offsets = source.snapshotOffsets();
    const rest = await readAll(source);
    const replay = new GeneratorSource(options);
    replay.restoreOffsets(offsets);
    await replay.open(ctx());
    expect(await readAll(replay)).toEqual(rest);
  });

  it('emits the same record order whatever the poll sizes (a restored source numbers its records as before)', async () => {
    const big = { ...options, recordsPerPartition: (p: number) => 150 + p };
    const order = async (sizes: number[], restoreAfter?: number) => {
      let source = new GeneratorSource(big);
      await source.open(ctx());
      const out: string[] = [];
      for (let i = 0; ; i++) {
        if (i === restoreAfter) {
          const offsets = source.snapshotOffsets();
          source = new GeneratorSource(big);
          source.restoreOffsets(offsets);
          await source.open(ctx());
        }
        const batch = await source.poll(sizes[i % sizes.length]!);
        out.push(...batch.records);
        if (batch.done) return out;
      }
    };
    const reference = await order([64]);
    expect(reference).toHaveLength(5 * 150 + 10);
    expect(await order([7, 100, 13])).toEqual(reference);
    expect(await order([30, 3], 5)).toEqual(reference);
  });

  it('reports a watermark no open partition has passed, and none before every partition has started', async () => {
    const source = new GeneratorSource({ ...options, recordsPerPartition: 1000 });
    await source.open(ctx());
    expect((await source.poll(64)).watermark).toBeUndefined();
    expect((await source.poll(4 * 64)).watermark).toBe(63_000);
    expect((await source.poll(64)).watermark).toBe(63_000);
    expect((await source.poll(4 * 64)).watermark).toBe(127_000);
  });
});

describe('generator source pacing', () => {
  it('a rate-limited poll waits until its next record is due (at most a second), and an interrupt ends the wait at once', async () => {
    // One record a minute: the first is due 60 s after open.
    const source = new GeneratorSource<number>({ partitions: 1, recordsPerPartition: 10, ratePerSecond: 1 / 60, generate: (_p, o) => o });
    await source.open(ctx());
    // Nothing due: the poll waits a second (not 100 ms, not a minute).
    let started = Date.now();
    expect((await source.poll(10)).records).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    // A checkpoint to take (or a cancel, a hand-over): the waiting poll returns now, empty.
    started = Date.now();
    const waiting = source.poll(10);
    await new Promise((r) => setTimeout(r, 50));
    source.interrupt();
    expect((await waiting).records).toEqual([]);
    expect(Date.now() - started).toBeLessThan(900);
  });
});

describe('generator source sizes', () => {
  const generate = (p: number, o: number) => `${p}:${o}`;

  it('refuses a fractional recordsPerPartition instead of rounding it (records=100 over 8 partitions read 104)', async () => {
    expect(() => new GeneratorSource({ partitions: 8, recordsPerPartition: 100 / 8, generate })).toThrow(
      /recordsPerPartition must be a whole number of records, 0 or more, got 12\.5 \(.*pass `records`/,
    );
    // A per-partition function is checked when the subtask opens, naming the partition.
    const source = new GeneratorSource({ partitions: 8, recordsPerPartition: (p) => (p === 5 ? 12.5 : 12), generate });
    await expect(source.open(ctx(undefined, 1, 4))).rejects.toThrow(/recordsPerPartition\(5\) must be a whole number of records, 0 or more, got 12\.5/);
    for (const bad of [-1, Number.NaN, Infinity]) expect(() => new GeneratorSource({ partitions: 2, records: bad, generate }), String(bad)).toThrow(/records must be a whole number/);
    expect(() => new GeneratorSource({ partitions: 2, records: 10, recordsPerPartition: 5, generate })).toThrow(/not both/);
    expect(() => new GeneratorSource({ partitions: 0.5, generate })).toThrow(/partitions must be a whole number, at least 1, got 0\.5/);
  });

  it('splits a total of records over the partitions exactly', async () => {
    for (const [records, partitions] of [[100, 8], [3, 8], [0, 3], [1000, 7]] as const) {
      const all: string[] = [];
      for (let s = 0; s < 3; s++) {
        const source = new GeneratorSource({ partitions, records, generate });
        await source.open(ctx(undefined, s, 3));
        all.push(...(await readAll(source)));
      }
      expect(all, `${records} over ${partitions}`).toHaveLength(records);
      expect(new Set(all).size).toBe(records);
      expect(Array.from({ length: partitions }, (_, p) => evenShare(records, partitions, p)).reduce((a, b) => a + b, 0)).toBe(records);
    }
  });
});

describe('S3 line source', () => {
  it('reads lines by byte offset across chunk borders and resumes from a snapshot', async () => {
    const blobs = new MemoryBlobStore();
    const lines = Array.from({ length: 50 }, (_, i) => `line-${i}-${'x'.repeat(i % 13)}`);
    await blobs.put('in/a.txt', lines.slice(0, 30).join('\n') + '\n');
    await blobs.put('in/b.txt', lines.slice(30).join('\n')); // no final newline
    const source = new S3LineSource({ prefix: 'in/', chunkBytes: 37 });
    await source.open(ctx(blobs));
    const first = (await source.poll(20)).records;
    const offsets = source.snapshotOffsets();
    const rest = await readAll(source, 9);
    expect([...first, ...rest]).toEqual(lines);
    const resumed = new S3LineSource({ prefix: 'in/', chunkBytes: 37 });
    resumed.restoreOffsets(offsets);
    await resumed.open(ctx(blobs));
    expect(await readAll(resumed, 9)).toEqual(rest);
  });

  it('says which prefix is empty', async () => {
    const source = new S3LineSource({ prefix: 'missing/' });
    await expect(source.open(ctx())).rejects.toThrow(/no objects under 'missing\/'/);
  });
});

describe('S3 partitioned sink', () => {
  it('stages invisibly, commits idempotently into hourly partitions, and aborts without a trace', async () => {
    const blobs = new MemoryBlobStore();
    const sink = new S3PartitionedSink<{ t: number; v: number }>({ prefix: 'out/{jobId}', eventTime: (r) => r.t });
    await sink.open(ctx(blobs, 2, 4));
    const h = Date.UTC(2026, 0, 1, 5);
    sink.write({ t: h + 10, v: 1 });
    sink.write({ t: h + 3_600_000, v: 2 });
    const staged = await sink.prepare('c7');
    expect(await blobs.list('out/')).toEqual([]);
    await sink.commit(staged);
    await sink.commit(staged); // again, as after a restore
    const keys = (await blobs.list('out/')).map((b) => b.key);
    expect(keys).toEqual([
      'out/job-1/dt=2026-01-01/hour=05/part-2-c7.jsonl',
      'out/job-1/dt=2026-01-01/hour=06/part-2-c7.jsonl',
    ]);
    expect(await blobs.list('staging/')).toEqual([]);
    sink.write({ t: h, v: 3 });
    await sink.abort(await sink.prepare('c8'));
    expect((await blobs.list('')).map((b) => b.key)).toEqual(keys);
    expect(hourPartition(h)).toBe('dt=2026-01-01/hour=05');
    // The hour's name is kept between calls: each call still names its own hour.
    const base = Date.UTC(2026, 11, 31, 23);
    for (const t of [base, base + 3_599_999, base + 3_600_000, base - 1, base, -1, 0, -0.5, -1, 0.5, -3_600_000.5]) {
      const iso = new Date(t).toISOString();
      expect(hourPartition(t)).toBe(`dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`);
    }
    expect(() => hourPartition(Number.NaN)).toThrow(RangeError);
  });
});

describe('keyed state backend', () => {
  it('scopes values to keys, fires timers in time order, and snapshots/restores', () => {
    const backend = new KeyedStateBackend();
    backend.setCurrentKey('a');
    backend.state.set('n', 1);
    backend.registerTimer(20);
    backend.setCurrentKey('b');
    expect(backend.state.get('n')).toBeUndefined();
    backend.state.set('n', 2);
    backend.registerTimer(10);
    const copy = new KeyedStateBackend();
    copy.restore(backend.snapshot());
    expect(copy.takeDueTimers(15)).toEqual([[10, 'b']]);
    expect(copy.takeDueTimers(100)).toEqual([[20, 'a']]);
    copy.setCurrentKey('a');
    expect(copy.state.get('n')).toBe(1);
    expect(copy.keyCount).toBe(2);
  });
});
