import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it, vi } from 'vitest';
import type { RuntimeContext } from '../../lib/api/functions';
import {
  PartitionMarkers,
  committedWatermarks,
  toHour,
  hourPartitionEnd,
  minimumCommitted,
  parseProgressKey,
  partitionOfFile,
  progressPrefix,
} from '../../lib/connectors/partition-markers';
import { S3PartitionedSink } from '../../lib/connectors/s3-partitioned-sink';
import { MemoryBlobStore } from '../../lib/memory';
import type { BlobStore } from '../../lib/ports/blob-store';
import { readOutputLines } from '../../examples/jobs/output-check';

type Rec = { t: number; v: number };
const H = (hour: number, minute = 0) => Date.UTC(2026, 0, 1, hour, minute);
const END_OF_TIME = Number.MAX_SAFE_INTEGER;

async function openSink(blobs: BlobStore, subtaskIndex: number, parallelism: number, successMarkers = true) {
  const ctx: RuntimeContext = { jobId: 'job-m', operatorId: 'sink', subtaskIndex, parallelism, attempt: 0, blobs };
  const sink = new S3PartitionedSink<Rec>({ prefix: 'output/{jobId}', eventTime: (r) => r.t, successMarkers });
  await sink.open(ctx);
  return sink;
}

/** Writes records, prepares with a watermark, commits. */
async function step(sink: S3PartitionedSink<Rec>, tx: string, watermark: number, times: number[]) {
  for (const t of times) sink.write({ t, v: t });
  const staged = await sink.prepare(tx, { watermark });
  await sink.commit(staged);
  return staged;
}

const markers = async (blobs: BlobStore) => (await blobs.list('output/')).map((b) => b.key).filter((k) => k.endsWith('/_SUCCESS'));

describe('partition marker helpers', () => {
  it('parses hour partitions, file keys and progress keys', () => {
    expect(hourPartitionEnd('dt=2026-01-01/hour=05')).toBe(H(6));
    expect(hourPartitionEnd('dt=2026-01-01/hour=23')).toBe(Date.UTC(2026, 0, 2, 0));
    expect(hourPartitionEnd('dt=2026-01-01')).toBeUndefined();
    expect(partitionOfFile('output/j/dt=2026-01-01/hour=05/part-0-c1.jsonl')).toBe('dt=2026-01-01/hour=05');
    const prefix = progressPrefix('j', 'op');
    expect(prefix).toBe('sinks/j/op/progress/');
    expect(parseProgressKey(prefix, `${prefix}3/-9007199254740991.json`)).toEqual({ subtask: 3, watermark: Number.MIN_SAFE_INTEGER });
    expect(parseProgressKey(prefix, `${prefix}12/${END_OF_TIME}.json`)).toEqual({ subtask: 12, watermark: END_OF_TIME });
    expect(parseProgressKey(prefix, `${prefix}x/1.json`)).toBeUndefined();
    expect(minimumCommitted([5, 3, 9])).toBe(3);
    expect(minimumCommitted([5, undefined, 9])).toBeUndefined();
  });
});

describe('S3 partitioned sink with _SUCCESS markers', () => {
  it('marks an hour only once both subtasks have committed past its end', async () => {
    const blobs = new MemoryBlobStore();
    const [s0, s1] = [await openSink(blobs, 0, 2), await openSink(blobs, 1, 2)];

    // s0 is past 06:30, s1 has committed nothing: nothing is complete.
    await step(s0, 'c1', H(6, 30), [H(5, 10), H(5, 50)]);
    expect(await markers(blobs)).toEqual([]);
    // s1 at 05:30: the minimum is 05:30, hour 05 ends at 06:00.
    await step(s1, 'c1', H(5, 30), [H(5, 20)]);
    expect(await markers(blobs)).toEqual([]);
    // s1 reaches exactly 06:00 with data in hour 06: hour 05 is done, hour 06 (ends 07:00) is not.
    await step(s1, 'c2', H(6), [H(6, 5)]);
    expect(await markers(blobs)).toEqual(['output/job-m/dt=2026-01-01/hour=05/_SUCCESS']);
    expect((await blobs.head('output/job-m/dt=2026-01-01/hour=05/_SUCCESS'))!.size).toBe(0);
    expect(s1.markersWritten).toBe(1);
    expect(s0.markersWritten).toBe(0);
    // s0 moves on to 07:10 (an empty transaction): s1 is still at 06:00.
    await step(s0, 'c2', H(7, 10), []);
    expect(await markers(blobs)).toHaveLength(1);
    // s1 reaches 07:00: hour 06 is done, whoever notices it.
    await step(s1, 'c3', H(7), []);
    expect(await markers(blobs)).toEqual([
      'output/job-m/dt=2026-01-01/hour=05/_SUCCESS',
      'output/job-m/dt=2026-01-01/hour=06/_SUCCESS',
    ]);

    // Bookkeeping is outside the output prefix; one progress object per subtask, to the hour; no staging left.
    expect(await committedWatermarks(blobs, 'job-m', 'sink', 2)).toEqual([H(7), H(7)]);
    expect((await blobs.list('sinks/job-m/sink/progress/')).map((b) => b.key)).toEqual([
      `sinks/job-m/sink/progress/0/${H(7)}.json`,
      `sinks/job-m/sink/progress/1/${H(7)}.json`,
    ]);
    expect(await blobs.list('sinks/job-m/sink/hours/')).toEqual([]); // every indexed hour was marked
    expect(await blobs.list('staging/')).toEqual([]);
    const output = (await blobs.list('output/')).map((b) => b.key).filter((k) => !k.endsWith('_SUCCESS'));
    expect(output.every((k) => /part-\d-c\d\.jsonl$/.test(k))).toBe(true);
  });

  it('end of input marks every hour that has data, and no hour without', async () => {
    const blobs = new MemoryBlobStore();
    const sinks = [await openSink(blobs, 0, 3), await openSink(blobs, 1, 3), await openSink(blobs, 2, 3)];
    await step(sinks[0]!, 'c1', H(1), [H(0, 1)]); // hour 00: data from subtask 0 only, committed early
    await step(sinks[1]!, 'c1', H(0), [H(3, 0)]);
    await step(sinks[2]!, 'c1', Number.MIN_SAFE_INTEGER, []); // no watermark yet
    expect(await markers(blobs)).toEqual([]);
    await step(sinks[0]!, 'final', END_OF_TIME, [H(4, 59)]);
    await step(sinks[1]!, 'final', END_OF_TIME, []);
    expect(await markers(blobs)).toEqual([]); // subtask 2 is still behind
    await step(sinks[2]!, 'final', END_OF_TIME, [H(2, 30), H(2, 31)]);
    expect(await markers(blobs)).toEqual(['00', '02', '03', '04'].map((h) => `output/job-m/dt=2026-01-01/hour=${h}/_SUCCESS`));
    // Every marked hour has a data file next to its marker.
    const keys = (await blobs.list('output/')).map((b) => b.key);
    for (const m of await markers(blobs)) expect(keys.some((k) => k.startsWith(m.replace('_SUCCESS', 'part-')))).toBe(true);
  });

  it('repeated and concurrent commits neither duplicate markers nor fail, and progress never goes back', async () => {
    const mem = new MemoryBlobStore();
    let markerPuts = 0;
    const blobs: BlobStore = Object.assign(Object.create(mem) as MemoryBlobStore, {
      put: async (key: string, body: Uint8Array | string) => {
        if (key.endsWith('/_SUCCESS')) markerPuts++;
        return mem.put(key, body);
      },
    });
    const [s0, s1] = [await openSink(blobs, 0, 2), await openSink(blobs, 1, 2)];
    const old0 = await step(s0, 'c1', H(5, 30), [H(5)]);
    s0.write({ t: H(5, 40), v: 1 });
    s1.write({ t: H(5, 45), v: 2 });
    const [a, b] = [await s0.prepare('c2', { watermark: H(8) }), await s1.prepare('c1', { watermark: H(8) })];
    await Promise.all([s0.commit(a), s1.commit(b)]); // both may see hour 05 due at once
    expect(await markers(mem)).toEqual(['output/job-m/dt=2026-01-01/hour=05/_SUCCESS']);
    const putsAfterFirst = markerPuts;
    expect(putsAfterFirst).toBeGreaterThanOrEqual(1);
    expect(putsAfterFirst).toBeLessThanOrEqual(2);
    // Commit everything again (as after a restore), including an older transaction.
    await s1.commit(b);
    await s0.commit(a);
    await s0.commit(old0);
    expect(markerPuts).toBe(putsAfterFirst); // the marker exists: not written again
    expect(await markers(mem)).toHaveLength(1);
    expect(await committedWatermarks(mem, 'job-m', 'sink', 2)).toEqual([H(8), H(8)]);
    // A restarted subtask (a new sink instance) re-committing its restored, older transaction.
    const restarted = await openSink(blobs, 0, 2);
    await restarted.commit(old0);
    expect(await committedWatermarks(mem, 'job-m', 'sink', 2)).toEqual([H(8), H(8)]);
    expect((await mem.list('sinks/job-m/sink/progress/0/')).map((x) => x.key)).toEqual([`sinks/job-m/sink/progress/0/${H(8)}.json`]);
    expect(markerPuts).toBe(putsAfterFirst);
  });

  it('the marker logic itself: a lagging subtask blocks, a subtask with no progress blocks', async () => {
    const blobs = new MemoryBlobStore();
    const scope = (i: number) => ({ jobId: 'j', operatorId: 'op', subtaskIndex: i, parallelism: 3, outputPrefix: 'out/j' });
    const m = [0, 1, 2].map((i) => new PartitionMarkers(blobs, scope(i)));
    expect(await m[0]!.committed(['dt=2026-01-01/hour=05'], H(9))).toEqual({ committed: H(9), minimum: undefined, marked: [] });
    expect(await m[1]!.committed([], H(9))).toEqual({ committed: H(9), minimum: undefined, marked: [] }); // subtask 2: nothing yet
    expect(await m[2]!.committed([], H(5, 59))).toEqual({ committed: H(5), marked: [] }); // its own progress rules it out
    // Subtask 0 again, nothing new (no hour, no progress): it does not even list; subtask 1 moves and looks.
    const list = vi.spyOn(blobs, 'list');
    expect(await m[0]!.committed([], H(9))).toEqual({ committed: H(9), marked: [] });
    expect(list).not.toHaveBeenCalled();
    expect(await m[1]!.committed([], H(10))).toEqual({ committed: H(10), minimum: H(5), marked: [] });
    // The slowest subtask moves past the hour: it marks it.
    expect(await m[2]!.committed([], H(6))).toEqual({ committed: H(6), minimum: H(6), marked: ['dt=2026-01-01/hour=05'] });
    expect(await blobs.head('out/j/dt=2026-01-01/hour=05/_SUCCESS')).toEqual({ key: 'out/j/dt=2026-01-01/hour=05/_SUCCESS', size: 0 });
    await expect(m[0]!.committed(['hour=5'], H(9))).rejects.toThrow(/not an hour partition/);
    // A watermark that moves within its hour (checkpoint after checkpoint) writes, deletes and lists nothing.
    const put = vi.spyOn(blobs, 'put');
    const del = vi.spyOn(blobs, 'delete');
    list.mockClear();
    for (const minute of [5, 20, 59]) expect(await m[1]!.committed([], H(10, minute))).toEqual({ committed: H(10), marked: [] });
    expect([put.mock.calls.length, del.mock.calls.length, list.mock.calls.length]).toEqual([0, 0, 0]);
    // The next hour is recorded, and a marker is still written exactly when the slowest passes an hour's end.
    await m[1]!.committed([], H(11));
    expect((await blobs.list('sinks/j/op/progress/1/')).map((b) => b.key)).toEqual([`sinks/j/op/progress/1/${H(11)}.json`]);
    expect(toHour(Number.MIN_SAFE_INTEGER)).toBe(Number.MIN_SAFE_INTEGER);
    expect(toHour(H(6, 59))).toBe(H(6));
    expect(() => new PartitionMarkers(blobs, { ...scope(0), outputPrefix: 'out/' })).toThrow(/must not end with/);
  });

  it('is off by default: no markers and no bookkeeping, the watermark is only kept in the staged transaction', async () => {
    const blobs = new MemoryBlobStore();
    const sink = await openSink(blobs, 0, 1, false);
    const staged = await step(sink, 'final', END_OF_TIME, [H(5)]);
    expect((staged as { watermark: number }).watermark).toBe(END_OF_TIME);
    expect((await blobs.list('')).map((b) => b.key)).toEqual(['output/job-m/dt=2026-01-01/hour=05/part-0-final.jsonl']);
    expect(sink.markersWritten).toBe(0);
  });

  it("the repo's output checker reads the lines and reports the markers apart from the data files", async () => {
    const blobs = new MemoryBlobStore();
    const sink = await openSink(blobs, 0, 1);
    await step(sink, 'final', END_OF_TIME, [H(5), H(5, 1), H(6)]);
    expect(await markers(blobs)).toHaveLength(2);
    // A minimal S3 client over the memory store: ListObjectsV2 and GetObject, what the checker sends.
    const s3 = {
      send: async (command: unknown) => {
        if (command instanceof ListObjectsV2Command) {
          const items = await blobs.list(command.input.Prefix ?? '');
          return { Contents: items.map((b) => ({ Key: b.key, Size: b.size })), IsTruncated: false };
        }
        if (command instanceof GetObjectCommand) {
          const body = (await blobs.get(command.input.Key!))!;
          return { Body: { transformToString: async () => Buffer.from(body).toString('utf8') } };
        }
        throw new Error('unexpected command');
      },
    } as unknown as S3Client;
    const { lines, files, markers: found } = await readOutputLines(s3, 'bucket', 'output/job-m/');
    expect(lines.map((l) => (JSON.parse(l) as Rec).t)).toEqual([H(5), H(5, 1), H(6)]);
    expect(files).toBe(2);
    expect(found.map((k) => k.split('/').slice(-3).join('/'))).toEqual(['dt=2026-01-01/hour=05/_SUCCESS', 'dt=2026-01-01/hour=06/_SUCCESS']);
  });

  it('at P=2500 the progress listing stops at the first page that shows a subtask behind, and reads every page when none is', async () => {
    const mem = new MemoryBlobStore();
    const P = 2500;
    const put = (subtask: number, watermark: number) => mem.put(`${progressPrefix('job-m', 'sink')}${subtask}/${watermark}.json`, '{}');
    for (let i = 0; i < P; i++) await put(i, H(8));
    // Subtask 10 (on the first page: keys sort as 0, 1, 10, 100, 1000, 1001, ...) is behind 08:00.
    await put(10, H(6));
    await mem.delete([`${progressPrefix('job-m', 'sink')}10/${H(8)}.json`]);
    let before = mem.requests;
    const partial = await committedWatermarks(mem, 'job-m', 'sink', P, H(7));
    expect(mem.requests - before).toBe(1);
    expect(partial[10]).toBe(H(6));
    expect(minimumCommitted(partial)).toBeUndefined();
    // Caught up: every page is read, and the minimum is known.
    await put(10, H(8));
    before = mem.requests;
    const full = await committedWatermarks(mem, 'job-m', 'sink', P, H(7));
    expect(mem.requests - before).toBe(3);
    expect(minimumCommitted(full)).toBe(H(8));
  });

  it('does not take a subtask for behind on a page that may end before its newer key', async () => {
    const mem = new MemoryBlobStore();
    const prefix = progressPrefix('job-m', 'sink');
    // 999 keys of subtasks 0..998 (sorted: the first page ends inside subtask '998' or so), then a
    // subtask with a stale key and its newer one right after it, across the page boundary.
    const keys: string[] = [];
    for (let i = 0; i < 1200; i++) keys.push(`${prefix}${i}/${H(8)}.json`);
    keys.sort();
    for (const k of keys) await mem.put(k, '{}');
    const boundary = keys[999]!; // the last key of the first page
    const subtask = parseProgressKey(prefix, boundary)!.subtask;
    // Its stale key sorts before its newer one; both exist (the newer written, the older not yet deleted).
    await mem.put(`${prefix}${subtask}/${H(6)}.json`, '{}');
    const listed = (await mem.list(prefix)).map((b) => b.key);
    expect(listed.indexOf(`${prefix}${subtask}/${H(6)}.json`)).toBe(999);
    const out = await committedWatermarks(mem, 'job-m', 'sink', 1200, H(7));
    expect(out[subtask]).toBe(H(8));
    expect(minimumCommitted(out)).toBe(H(8));
  });
});
