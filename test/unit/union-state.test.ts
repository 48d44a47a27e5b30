import { describe, expect, it } from 'vitest';
import type { Json } from '../../lib/api/functions';
import { MemoryBlobStore } from '../../lib/memory';
import type { BlobInfo, BlobStore, ListOptions } from '../../lib/ports/blob-store';
import {
  UnionListState,
  UnionStateBackend,
  UnionStateError,
  restoreUnionState,
  unionStateKey,
  writeUnionSnapshot,
} from '../../lib/runtime/union-state';
import { mapWithConcurrency } from '../../lib/util/concurrency';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wraps a blob store: counts gets in flight (and the most at once), and delays each get. */
class InstrumentedBlobStore implements BlobStore {
  inFlight = 0;
  maxInFlight = 0;
  gets = 0;
  readonly location: string;
  constructor(
    private readonly inner: BlobStore,
    private readonly delay: (key: string) => number = () => 1,
  ) {
    this.location = inner.location;
  }
  async get(key: string): Promise<Uint8Array | undefined> {
    this.gets++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await sleep(this.delay(key));
      return await this.inner.get(key);
    } finally {
      this.inFlight--;
    }
  }
  put(key: string, body: Uint8Array | string) { return this.inner.put(key, body); }
  getRange(key: string, s: number, e: number) { return this.inner.getRange(key, s, e); }
  head(key: string): Promise<BlobInfo | undefined> { return this.inner.head(key); }
  list(prefix: string, options?: ListOptions) { return this.inner.list(prefix, options); }
  copy(a: string, b: string) { return this.inner.copy(a, b); }
  delete(keys: readonly string[]) { return this.inner.delete(keys); }
}

const loc = { jobId: 'job-u', checkpointId: 7, operatorId: 'rules' };

/** Subtask i holds entries `s<i>-<j>` in 'partitions' and i entries in 'rules'. */
async function writeAll(blobs: BlobStore, parallelism: number, perSubtask = 3) {
  const expected = { partitions: [] as Json[], rules: [] as Json[] };
  for (let i = 0; i < parallelism; i++) {
    const backend = new UnionStateBackend();
    const partitions = Array.from({ length: perSubtask }, (_, j) => `s${i}-${j}`);
    const rules = Array.from({ length: i % 3 }, (_, j) => ({ owner: i, rule: j, on: [true, null, 1.5] }));
    backend.state('partitions').addAll(partitions);
    for (const r of rules) backend.state('rules').add(r);
    const handle = await writeUnionSnapshot(blobs, { ...loc, subtaskIndex: i, parallelism }, backend);
    expect(handle.key).toBe(`checkpoints/job-u/7/union/rules/${i}.json`);
    expect(handle.bytes).toBe((await blobs.head(handle.key))!.size);
    expected.partitions.push(...partitions);
    expected.rules.push(...rules);
  }
  return expected;
}

describe('UnionListState', () => {
  it('adds, gets copies, replaces, clears and snapshots', () => {
    const s = new UnionListState<{ p: number }>();
    s.add({ p: 1 });
    s.addAll([{ p: 2 }, { p: 3 }]);
    const got = s.get();
    got.push({ p: 99 }); // a copy: the state does not change
    expect(s.get()).toEqual([{ p: 1 }, { p: 2 }, { p: 3 }]);
    expect(s.size).toBe(3);
    const snap = s.snapshot();
    s.replace([{ p: 3 }]);
    expect(snap).toHaveLength(3); // the snapshot is not affected by later changes
    expect(s.get()).toEqual([{ p: 3 }]);
    s.clear();
    expect(s.get()).toEqual([]);
    expect(s.size).toBe(0);
  });

  it('backend: names states, snapshots in name order, and restore replaces (and empties absent states)', () => {
    const b = new UnionStateBackend();
    expect(b.isEmpty).toBe(true);
    b.state('z').add(1);
    b.state('a').add('x');
    b.state('gone').add(true);
    expect(b.isEmpty).toBe(false);
    expect(Object.keys(b.snapshot())).toEqual(['a', 'gone', 'z']);
    b.restore({ a: ['u1', 'u2'], z: [5, 6] });
    expect(b.state('a').get()).toEqual(['u1', 'u2']);
    expect(b.state('z').get()).toEqual([5, 6]);
    expect(b.state('gone').get()).toEqual([]);
    expect(() => b.state('')).toThrow(/non-empty name/);
  });
});

describe('union state restore', () => {
  it('returns every subtask\'s entries in subtask order, the same in parallel and sequential mode', async () => {
    const mem = new MemoryBlobStore();
    const parallelism = 23;
    const expected = await writeAll(mem, parallelism);
    // Later subtasks answer faster: arrival order is the reverse of subtask order.
    const blobs = new InstrumentedBlobStore(mem, (key) => 30 - Number(/(\d+)\.json$/.exec(key)![1]));
    const parallel = await restoreUnionState(blobs, { ...loc, parallelism }, { concurrency: 8 });
    const sequential = await restoreUnionState(blobs, { ...loc, parallelism }, { mode: 'sequential' });
    expect(parallel.states.partitions).toEqual(expected.partitions);
    expect(parallel.states.rules).toEqual(expected.rules);
    expect(parallel.states).toEqual(sequential.states);
    expect(parallel.parts.map((p) => p.subtask)).toEqual(Array.from({ length: parallelism }, (_, i) => i));
    expect(parallel.parts[4]!.counts).toEqual({ partitions: 3, rules: 1 });
    const totalBytes = (await mem.list('checkpoints/job-u/7/union/rules/')).reduce((n, b) => n + b.size, 0);
    expect(parallel.stats).toMatchObject({ objects: parallelism, bytes: totalBytes, concurrency: 8, maxInFlight: 8 });
    expect(sequential.stats).toMatchObject({ objects: parallelism, bytes: totalBytes, concurrency: 1, maxInFlight: 1 });
    expect(parallel.stats.ms).toBeGreaterThan(0);
    expect(blobs.gets).toBe(2 * parallelism);
  });

  it('restores from a list of keys (subtasks from different checkpoints) in subtask order', async () => {
    const blobs = new MemoryBlobStore();
    // Region of subtasks 0-1 restores from checkpoint 7, region of subtask 2 from checkpoint 6.
    const k2 = await writeUnionSnapshot(blobs, { ...loc, checkpointId: 6, subtaskIndex: 2, parallelism: 3 }, { p: ['c'] });
    const k0 = await writeUnionSnapshot(blobs, { ...loc, subtaskIndex: 0, parallelism: 3 }, { p: ['a'] });
    const k1 = await writeUnionSnapshot(blobs, { ...loc, subtaskIndex: 1, parallelism: 3 }, { p: ['b1', 'b2'], q: [1] });
    const out = await restoreUnionState(blobs, [k2.key, k0.key, k1.key]);
    expect(out.states).toEqual({ p: ['a', 'b1', 'b2', 'c'], q: [1] });
    expect(out.parts.map((p) => p.key)).toEqual([k0.key, k1.key, k2.key]);
    // A key list that leaves a subtask out, or holds one twice, is refused.
    await expect(restoreUnionState(blobs, [k0.key, k2.key])).rejects.toThrow(/no object holds subtask 1 of 3/);
    await expect(restoreUnionState(blobs, [k0.key, k0.key, k1.key])).rejects.toThrow(/both hold subtask 0/);
  });

  it('names the missing key when a subtask\'s object is missing, and starts no read after the failure', async () => {
    const mem = new MemoryBlobStore('bkt');
    await writeAll(mem, 40);
    await mem.delete([unionStateKey(loc, 5)]);
    const blobs = new InstrumentedBlobStore(mem);
    const err = await restoreUnionState(blobs, { ...loc, parallelism: 40 }, { concurrency: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnionStateError);
    expect((err as UnionStateError).key).toBe('checkpoints/job-u/7/union/rules/5.json');
    expect((err as Error).message).toBe(
      "union state object memory://bkt/checkpoints/job-u/7/union/rules/5.json is missing (operator 'rules', subtask 5, checkpoint 7)",
    );
    expect(blobs.gets).toBeLessThan(40); // stopped early
    expect(blobs.inFlight).toBe(0); // and left nothing running
  });

  it('never has more reads in flight than the bound, for several bounds', async () => {
    const mem = new MemoryBlobStore();
    await writeAll(mem, 100, 1);
    for (const concurrency of [1, 3, 16, 32, 200]) {
      const blobs = new InstrumentedBlobStore(mem, (key) => 1 + (Number(/(\d+)\.json$/.exec(key)![1]) % 5));
      const out = await restoreUnionState(blobs, { ...loc, parallelism: 100 }, { concurrency });
      expect(blobs.maxInFlight).toBeLessThanOrEqual(concurrency);
      expect(blobs.maxInFlight).toBe(Math.min(concurrency, 100)); // and the bound is actually used
      expect(out.stats.maxInFlight).toBe(blobs.maxInFlight);
      expect(out.states.partitions).toHaveLength(100);
    }
  });

  it('refuses objects of another parallelism, a truncated list, and garbage', async () => {
    const blobs = new MemoryBlobStore();
    await writeAll(blobs, 4);
    await expect(restoreUnionState(blobs, { ...loc, parallelism: 3 })).rejects.toThrow(/written at parallelism 4, expected 3/);
    await blobs.put(unionStateKey(loc, 1), JSON.stringify({ format: 'sluice.union.v1', operatorId: 'rules', checkpointId: 7, subtask: 1, parallelism: 4, counts: { p: 2 }, states: { p: [1] } }));
    await expect(restoreUnionState(blobs, { ...loc, parallelism: 4 })).rejects.toThrow(/state 'p' should hold 2 entries, holds 1/);
    await blobs.put(unionStateKey(loc, 1), '{"format":"sluice.union.v1",');
    await expect(restoreUnionState(blobs, { ...loc, parallelism: 4 })).rejects.toThrow(/rules\/1\.json is not valid JSON/);
    await blobs.copy(unionStateKey(loc, 2), unionStateKey(loc, 1));
    await expect(restoreUnionState(blobs, { ...loc, parallelism: 4 })).rejects.toThrow(/rules\/1\.json belongs to operator 'rules', subtask 2/);
    await expect(writeUnionSnapshot(blobs, { ...loc, subtaskIndex: 4, parallelism: 4 }, {})).rejects.toThrow(/outside parallelism 4/);
  });

  it('writes an object for a subtask with no entries, and restores it as contributing nothing', async () => {
    const blobs = new MemoryBlobStore();
    await writeUnionSnapshot(blobs, { ...loc, subtaskIndex: 0, parallelism: 2 }, new UnionStateBackend());
    await writeUnionSnapshot(blobs, { ...loc, subtaskIndex: 1, parallelism: 2 }, { s: [1, 2] });
    const out = await restoreUnionState(blobs, { ...loc, parallelism: 2 });
    expect(out.states).toEqual({ s: [1, 2] });
    expect(out.parts.map((p) => p.counts)).toEqual([{}, { s: 2 }]);
  });
});

describe('mapWithConcurrency', () => {
  it('keeps item order, bounds the calls running, and rethrows the first error after the running calls end', async () => {
    let running = 0;
    let peak = 0;
    const out = await mapWithConcurrency([5, 1, 4, 2, 3], 2, async (x) => {
      running++;
      peak = Math.max(peak, running);
      await sleep(x);
      running--;
      return x * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
    const finished: number[] = [];
    await expect(
      mapWithConcurrency([1, 2, 3, 4, 5, 6], 3, async (x) => {
        await sleep(x === 2 ? 1 : 10);
        if (x === 2) throw new Error('boom 2');
        finished.push(x);
      }),
    ).rejects.toThrow('boom 2');
    expect(finished.sort()).toEqual([1, 3]); // the running calls ended; 4, 5, 6 never started
    await expect(mapWithConcurrency([1], 0, async () => 1)).rejects.toThrow(RangeError);
  });
});
