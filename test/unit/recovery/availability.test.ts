import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { MemoryMetadataStore } from '../../../lib/memory';
import {
  AvailabilityRegistry,
  AvailabilityView,
  flagVersion,
  loadAvailabilityView,
  outputEdgesOf,
  refreshAvailabilityView,
  scheduleRefreshes,
  flagGroupsByUnit,
  flagItemSk,
  flagPerSubPartition,
  type AvailabilityUpdate,
} from '../../../lib/recovery/availability';
import { RecordWriter, hashPartition } from '../../../lib/runtime/record-writer';
import type { ChannelTransport, OutboundMessage } from '../../../lib/ports/channels';
import { joinGraph } from './helpers';

const sp = (edgeId: string, consumer: number) => ({ edgeId, consumer });

describe('AvailabilityRegistry (stored flags)', () => {
  it('stores one item per edge and consumer unit: JOB#<jobId> / SUBPART#<edgeId>#<unit>, a version per consumer', async () => {
    const metadata = new MemoryMetadataStore();
    const graph = joinGraph(4);
    const [e0, e1] = graph.edges.map((e) => e.id) as [string, string];
    const units = [
      { unitId: 'unit-0', subtasks: ['join#0', 'join#1'] },
      { unitId: 'unit-1', subtasks: ['join#2', 'join#3'] },
    ];
    const registry = new AvailabilityRegistry(metadata, 'job-1', flagGroupsByUnit(graph, units), { clock: { now: () => 1234, sleep: async () => undefined } });
    const result = await registry.markUnavailable([sp(e0, 2), sp(e1, 2), sp(e0, 3), sp(e1, 3)], 0);
    expect(result.changed).toHaveLength(4);
    expect(await metadata.get('JOB#job-1', flagItemSk(e0, 'unit-1'))).toEqual({ edgeId: e0, group: 'unit-1', flags: { 2: 1, 3: 1 }, rev: 1, updatedAt: 1234 });
    expect(await metadata.query('JOB#job-1', 'SUBPART#')).toHaveLength(2);
    expect((await registry.list()).map((f) => [f.edgeId, f.consumer, f.available, f.attempt])).toEqual([
      [e0, 2, false, 0],
      [e0, 3, false, 0],
      [e1, 2, false, 0],
      [e1, 3, false, 0],
    ]);
    expect(await registry.list([e1])).toHaveLength(2);
    // Join#2 comes back alone (its own attempt): join#3's flag in the same item is untouched.
    expect((await registry.markAvailable([sp(e0, 2)], 1)).changed).toEqual([sp(e0, 2)]);
    expect(await metadata.get('JOB#job-1', flagItemSk(e0, 'unit-1'))).toMatchObject({ flags: { 2: 2, 3: 1 }, rev: 2 });
    expect(() => flagGroupsByUnit(graph, units)(sp(e0, 9))).toThrow(/e0\/9 has no consumer subtask/);
  });

  it('fences: an older attempt never overwrites a newer one, and "attempt a failed" beats "attempt a is up"', async () => {
    const registry = new AvailabilityRegistry(new MemoryMetadataStore(), 'j', flagPerSubPartition);
    await registry.markUnavailable([sp('e0', 1)], 0);
    expect((await registry.markAvailable([sp('e0', 1)], 1)).changed).toEqual([sp('e0', 1)]);
    // A late "attempt 0 failed" from a slow supervisor is refused.
    expect((await registry.markUnavailable([sp('e0', 1)], 0)).fenced).toEqual([sp('e0', 1)]);
    expect(await registry.get(sp('e0', 1))).toMatchObject({ available: true, attempt: 1 });
    // Attempt 1 fails: unavailable at attempt 1; a late "attempt 1 is up" cannot undo that.
    expect((await registry.markUnavailable([sp('e0', 1)], 1)).changed).toHaveLength(1);
    expect((await registry.markAvailable([sp('e0', 1)], 1)).fenced).toHaveLength(1);
    expect(await registry.get(sp('e0', 1))).toMatchObject({ available: false, attempt: 1 });
    // Repeating a write is harmless.
    expect((await registry.markUnavailable([sp('e0', 1)], 1)).unchanged).toHaveLength(1);
    expect((await registry.markAvailable([sp('e0', 1)], 2)).changed).toHaveLength(1);
    expect((await registry.markAvailable([sp('e0', 1)], 2)).unchanged).toHaveLength(1);
  });

  it('markAvailable creates nothing for a sub-partition that was never marked (no item = available)', async () => {
    const metadata = new MemoryMetadataStore();
    const registry = new AvailabilityRegistry(metadata, 'j', flagPerSubPartition);
    const result = await registry.markAvailable([sp('e0', 0), sp('e0', 1)], 4);
    expect(result.skipped).toHaveLength(2);
    expect(await metadata.query('JOB#j', 'SUBPART#')).toEqual([]);
  });

  it('refuses a negative or fractional attempt', async () => {
    const registry = new AvailabilityRegistry(new MemoryMetadataStore(), 'j', flagPerSubPartition);
    await expect(registry.markUnavailable([sp('e0', 0)], -1)).rejects.toThrow(/whole number/);
    await expect(registry.markAvailable([sp('e0', 0)], 1.5)).rejects.toThrow(/whole number/);
  });

  it('converges under racing writers: the highest version wins whatever the interleaving', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ available: fc.boolean(), attempt: fc.integer({ min: 0, max: 5 }) }), { minLength: 1, maxLength: 12 }),
        async (writes) => {
          const registry = new AvailabilityRegistry(new MemoryMetadataStore(), 'j', flagPerSubPartition);
          // The first failure creates the item (version 1); then every write races (their get and
          // conditional put steps interleave on the event loop).
          await registry.markUnavailable([sp('e0', 0)], 0);
          await Promise.all(writes.map((w) => (w.available ? registry.markAvailable([sp('e0', 0)], w.attempt) : registry.markUnavailable([sp('e0', 0)], w.attempt))));
          const newest = Math.max(1, ...writes.map((w) => flagVersion(w.available, w.attempt)));
          const flag = await registry.get(sp('e0', 0));
          expect(flag!.version).toBe(newest);
          expect(flag!.available).toBe(newest % 2 === 0);
          expect(flag!.attempt).toBe(Math.floor(newest / 2));
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });

  it('marks a packed unit\'s 200 sub-partitions with a read and a conditional put per edge, not one per sub-partition', async () => {
    const metadata = new MemoryMetadataStore();
    const refs = [...Array.from({ length: 100 }, (_, i) => sp('e0', 100 + i)), ...Array.from({ length: 100 }, (_, i) => sp('e1', 100 + i))];
    const unitOf = (ref: { consumer: number }) => `unit-${Math.floor(ref.consumer / 100)}`;
    const registry = new AvailabilityRegistry(metadata, 'j', unitOf);
    await registry.markUnavailable(refs.slice(0, 50), 0); // some are down already (an earlier failure)
    const get = vi.spyOn(metadata, 'get');
    const put = vi.spyOn(metadata, 'put');
    const down = await registry.markUnavailable(refs, 1);
    expect([down.changed.length, down.unchanged.length]).toEqual([150, 50]); // the 50 were down already
    expect([get.mock.calls.length, put.mock.calls.length]).toEqual([2, 2]);
    get.mockClear();
    put.mockClear();
    const stored = await registry.storedFlags(refs);
    expect([...stored.keys()]).toEqual([flagItemSk('e0', 'unit-1'), flagItemSk('e1', 'unit-1')]);
    const up = await registry.markAvailable(refs, 2, { stored });
    expect(up.changed).toHaveLength(200);
    expect([get.mock.calls.length, put.mock.calls.length]).toEqual([2, 2]); // the two reads were storedFlags'
    // A newer attempt's flag written meanwhile fences that one as before (what was read is only a first guess).
    await registry.markUnavailable([sp('e0', 100)], 2);
    const late = await registry.markAvailable(refs, 2, { stored });
    expect(late.fenced).toEqual([sp('e0', 100)]);
    expect(late.unchanged).toHaveLength(199);
  });

  it('converges under racing batch writers too (one item holds all their flags: read, then compare-and-set)', async () => {
    const refs = Array.from({ length: 10 }, (_, i) => sp('e0', i));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ available: fc.boolean(), attempt: fc.integer({ min: 0, max: 5 }) }), { minLength: 1, maxLength: 8 }), async (writes) => {
        const registry = new AvailabilityRegistry(new MemoryMetadataStore(), 'j', () => 'unit-0');
        await registry.markUnavailable(refs, 0);
        await Promise.all(writes.map((w) => (w.available ? registry.markAvailable(refs, w.attempt) : registry.markUnavailable(refs, w.attempt))));
        const newest = Math.max(1, ...writes.map((w) => flagVersion(w.available, w.attempt)));
        for (const flag of await registry.list(['e0'])) expect(flag.version).toBe(newest);
      }),
      { numRuns: 100, seed: 11 },
    );
  });

  it('relies on the handler\'s order for a sub-partition without an item: mark unavailable before the new attempt starts', async () => {
    // markAvailable does not create items (no item = available; a full restart would otherwise
    // create one per sub-partition). So "attempt 0 failed" must be stored before attempt 1 can
    // announce itself; FailoverHandler marks only after winning the attempt bump and before it
    // launches. Written the other way round, the late write would win:
    const registry = new AvailabilityRegistry(new MemoryMetadataStore(), 'j', flagPerSubPartition);
    expect((await registry.markAvailable([sp('e0', 0)], 1)).skipped).toHaveLength(1);
    expect((await registry.markUnavailable([sp('e0', 0)], 0)).changed).toHaveLength(1);
    expect(await registry.get(sp('e0', 0))).toMatchObject({ available: false, attempt: 0 });
  });

  it('takes flags read earlier (during the restore) as a first guess only: one that changed since is read again', async () => {
    const refs = Array.from({ length: 12 }, (_, i) => sp('e0', i));
    const registry = new AvailabilityRegistry(new MemoryMetadataStore(), 'j', flagPerSubPartition);
    await registry.markUnavailable(refs, 0);
    const stored = await registry.storedFlags(refs);
    await registry.markUnavailable(refs.slice(0, 3), 1); // attempt 1 failed too, after the read
    const up = await registry.markAvailable(refs, 1, { stored });
    expect(up.changed).toHaveLength(9);
    expect(up.fenced).toEqual(refs.slice(0, 3)); // "attempt 1 failed" outranks "attempt 1 is up"
  });
});

describe('AvailabilityRegistry.predictAvailable (the announce tells producers while it writes)', () => {
  it('predicts from the flags read earlier exactly what markAvailable then flips, when nobody wrote in between', async () => {
    const refs = Array.from({ length: 6 }, (_, i) => sp(i < 3 ? 'e0' : 'e1', i % 3));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.option(fc.record({ available: fc.boolean(), attempt: fc.integer({ min: 0, max: 3 }) }), { nil: undefined }), { minLength: 6, maxLength: 6 }),
        fc.integer({ min: 1, max: 4 }),
        async (states, attempt) => {
          const registry = new AvailabilityRegistry(new MemoryMetadataStore(), 'j', () => 'unit-0');
          for (const [i, st] of states.entries()) {
            if (!st) continue;
            if (st.available) {
              await registry.markUnavailable([refs[i]!], 0); // markAvailable creates no item
              await registry.markAvailable([refs[i]!], st.attempt);
            } else await registry.markUnavailable([refs[i]!], st.attempt);
          }
          const stored = await registry.storedFlags(refs);
          const predicted = registry.predictAvailable(refs, attempt, stored);
          const marked = await registry.markAvailable(refs, attempt, { stored });
          expect(predicted).toEqual(marked.changed);
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });
});

describe('AvailabilityView (producer-side gate)', () => {
  it('starts all-available, and applies control messages in version order only', () => {
    const changes: AvailabilityUpdate[] = [];
    const view = new AvailabilityView({ onChange: (u) => changes.push(u) });
    expect(view.isAvailable('e0', 7)).toBe(true);
    expect(view.handleControl({ type: 'availability', edgeId: 'e0', consumer: 7, available: false, attempt: 2 })).toBe(true);
    expect(view.isAvailable('e0', 7)).toBe(false);
    expect(view.isAvailable('e0', 6)).toBe(true);
    expect(view.isAvailable('e1', 7)).toBe(true);
    // Older attempt: ignored (still unavailable).
    expect(view.apply({ edgeId: 'e0', consumer: 7, available: true, attempt: 1 })).toBe(false);
    // Same attempt "up" is older than "attempt 2 failed": ignored.
    expect(view.apply({ edgeId: 'e0', consumer: 7, available: true, attempt: 2 })).toBe(false);
    expect(view.isAvailable('e0', 7)).toBe(false);
    expect(view.apply({ edgeId: 'e0', consumer: 7, available: true, attempt: 3 })).toBe(true);
    expect(view.isAvailable('e0', 7)).toBe(true);
    expect(view.attemptOf('e0', 7)).toBe(3);
    expect(view.unavailableCount).toBe(0);
    expect(changes.map((c) => c.available)).toEqual([false, true]);
    expect(view.handleControl({ type: 'cancel' })).toBe(false);
  });

  it('ignores edges it was not built for', () => {
    const view = new AvailabilityView({ edges: ['e1'] });
    view.apply({ edgeId: 'e0', consumer: 0, available: false, attempt: 0 });
    expect(view.isAvailable('e0', 0)).toBe(true);
    view.apply({ edgeId: 'e1', consumer: 0, available: false, attempt: 0 });
    expect(view.unavailable()).toEqual([sp('e1', 0)]);
  });

  it('ends in the state of the newest update whatever order the messages arrive in', () => {
    const update = fc.record({
      edgeId: fc.constantFrom('e0', 'e1'),
      consumer: fc.integer({ min: 0, max: 3 }),
      available: fc.boolean(),
      attempt: fc.integer({ min: 0, max: 4 }),
    });
    fc.assert(
      fc.property(fc.array(update, { maxLength: 40 }), fc.infiniteStream(fc.nat()), (updates, randoms) => {
        const inOrder = new AvailabilityView();
        const shuffled = [...updates];
        const it = randoms[Symbol.iterator]();
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = it.next().value % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const sorted = [...updates].sort((a, b) => flagVersion(a.available, a.attempt) - flagVersion(b.available, b.attempt));
        inOrder.load(sorted);
        const anyOrder = new AvailabilityView();
        anyOrder.load(shuffled);
        expect(anyOrder.unavailable()).toEqual(inOrder.unavailable());
        for (const u of updates) {
          const newest = updates
            .filter((x) => x.edgeId === u.edgeId && x.consumer === u.consumer)
            .reduce((a, b) => (flagVersion(b.available, b.attempt) > flagVersion(a.available, a.attempt) ? b : a));
          expect(anyOrder.isAvailable(u.edgeId, u.consumer)).toBe(newest.available);
        }
      }),
      { numRuns: 300, seed: 11 },
    );
  });

  it('loads the stored flags of a unit\'s output edges only', async () => {
    const metadata = new MemoryMetadataStore();
    const graph = joinGraph(4);
    const registry = new AvailabilityRegistry(metadata, 'j', flagPerSubPartition);
    const [e0, e1] = graph.edges.map((e) => e.id) as [string, string];
    await registry.markUnavailable([sp(e0, 2), sp(e1, 2)], 0);
    expect(outputEdgesOf(graph, ['a#1'])).toEqual([e0]);
    const view = await loadAvailabilityView({ metadata, jobId: 'j', graph, subtasks: ['a#1'] });
    expect(view.unavailable()).toEqual([sp(e0, 2)]);
    expect(view.isAvailable(e1, 2)).toBe(true); // not this unit's edge
    const joinView = await loadAvailabilityView({ metadata, jobId: 'j', graph, subtasks: ['join#0'] });
    expect(joinView.unavailableCount).toBe(0);
  });

  it('a restarted unit re-reads its flags: an "available" notice its dead predecessor\'s poll took is not waited for', async () => {
    const metadata = new MemoryMetadataStore();
    const graph = joinGraph(4);
    const registry = new AvailabilityRegistry(metadata, 'j', flagPerSubPartition);
    const [e0] = graph.edges.map((e) => e.id) as [string];
    await registry.markUnavailable([sp(e0, 2)], 0);
    const view = await loadAvailabilityView({ metadata, jobId: 'j', graph, subtasks: ['a#1'] });
    expect(view.isAvailable(e0, 2)).toBe(false);
    // The consumer came back: its flag is written, the notice to this unit never arrives.
    await registry.markAvailable([sp(e0, 2)], 1);
    expect(await refreshAvailabilityView(view, { metadata, jobId: 'j', graph, subtasks: ['a#1'] })).toBe(1);
    expect(view.isAvailable(e0, 2)).toBe(true);
    // Nothing newer: nothing applied. An older flag never wins over a newer notice.
    expect(await refreshAvailabilityView(view, { metadata, jobId: 'j', graph, subtasks: ['a#1'] })).toBe(0);
    view.apply({ edgeId: e0, consumer: 2, available: false, attempt: 1 });
    expect(await refreshAvailabilityView(view, { metadata, jobId: 'j', graph, subtasks: ['a#1'] })).toBe(0);
    expect(view.isAvailable(e0, 2)).toBe(false);
  });

  it('a restarted unit re-reads early while a sub-partition it writes to is unavailable, and always once its predecessor\'s poll is over', async () => {
    vi.useFakeTimers();
    try {
      const view = { unavailableCount: 1 };
      const reads: number[] = [];
      const applied: [number, number][] = [];
      const on = { reread: async () => (reads.push(Date.now()), 1), applied: (n: number, ms: number) => applied.push([n, ms]), failed: () => undefined };
      const start = Date.now();
      scheduleRefreshes(view, 2500, on);
      await vi.advanceTimersByTimeAsync(300);
      expect(reads.map((t) => t - start)).toEqual([300]);
      // Back in the view (the notice came): no early read any more, but the last one still runs.
      view.unavailableCount = 0;
      await vi.advanceTimersByTimeAsync(2200);
      expect(reads.map((t) => t - start)).toEqual([300, 2500]);
      expect(applied).toEqual([[1, 300], [1, 2500]]);
      // A consumer that stays away longer: read every second until the last read.
      const longer: number[] = [];
      const at = Date.now();
      scheduleRefreshes({ unavailableCount: 1 }, 4500, { ...on, reread: async () => (longer.push(Date.now() - at), 0) });
      await vi.advanceTimersByTimeAsync(5000);
      expect(longer).toEqual([300, 1000, 2000, 3000, 4000, 4500]);
      // Cancelled (the unit ended): nothing more runs.
      const cancel = scheduleRefreshes({ unavailableCount: 1 }, 2500, on);
      cancel();
      await vi.advanceTimersByTimeAsync(3000);
      expect(reads).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('drives RecordWriter: records to an unavailable consumer are dropped and counted, then flow again', async () => {
    const graph = joinGraph(4);
    const edge = graph.edges[0]!;
    const sent = new Map<string, number>();
    const transport = {
      send: async (queue: string, messages: readonly OutboundMessage[]) => {
        for (const m of messages) sent.set(queue, (sent.get(queue) ?? 0) + (JSON.parse(m.body) as { r?: unknown[] }).r!.length);
      },
    } as unknown as ChannelTransport;
    const view = new AvailabilityView();
    const writer = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 4, attempt: 0, queueOf: (c) => `q${c}`, transport, gate: view });
    const keys = Array.from({ length: 400 }, (_, i) => `k${i}`);
    const to = (k: string) => hashPartition(k, 4); // the writer's routing
    const toTwo = keys.filter((k) => to(k) === 2).length;
    view.apply({ edgeId: edge.id, consumer: 2, available: false, attempt: 0 });
    for (const k of keys) writer.emit(k);
    await writer.flush();
    expect(writer.dropped).toEqual([0, 0, toTwo, 0]);
    expect(sent.get('q2')).toBeUndefined();
    view.apply({ edgeId: edge.id, consumer: 2, available: true, attempt: 1 });
    for (const k of keys) writer.emit(k);
    await writer.flush();
    expect(sent.get('q2')).toBe(toTwo);
    expect(writer.dropped[2]).toBe(toTwo);
    expect([...sent.values()].reduce((a, b) => a + b, 0)).toBe(800 - toTwo);
  });
});
