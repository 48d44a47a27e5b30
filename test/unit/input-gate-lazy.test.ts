/**
 * Channels an input gate keeps in arrays until they need more (channel-table.ts): a channel never
 * heard from has the default state and still counts (open, watermark unknown) for alignment, the
 * combined watermark and end of input; hand-over and snapshots carry the state of every channel;
 * and a gate that keeps channels in arrays does exactly what one that makes every channel a full
 * object does (the general code), over random message sequences.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import { MemoryChannelTransport } from '../../lib/memory';
import { BarrierAligner } from '../../lib/runtime/barrier-aligner';
import { alignmentChannels } from '../../lib/runtime/input-driver';
import { InputGate, channelKey, type ChannelPositions, type GateEvent } from '../../lib/runtime/input-gate';
import type { ChannelHandover } from '../../lib/runtime/handover';
import type { ChannelMessage } from '../../lib/runtime/messages';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { seededRandom } from '../../bench/lib/random';

const edge: ExecutionEdge = { id: 'e0', kind: 'hash', from: 'a', to: 'b', toOperator: 'b', input: 0, key: (r: unknown) => String(r), pointwise: false };
const MIN = Number.MIN_SAFE_INTEGER;
const MAX = Number.MAX_SAFE_INTEGER;

/** A gate of consumer 0 reading `producers` producers of `edge`, and one writer per producer (all into one queue). */
async function setup(producers: number, options: { minAttempt?: (edgeId: string, producer: number) => number } = {}) {
  const transport = new MemoryChannelTransport();
  await transport.createQueues(['in']);
  const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => producers, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; }, ...options });
  const writers = Array.from({ length: producers }, (_, p) => new RecordWriter({ edge, producerIndex: p, consumerParallelism: 1, attempt: 0, lineage: 0, queueOf: () => 'in', transport }));
  gate.start();
  /** What the input driver does with an event's watermark and end of input. */
  const apply = (e: GateEvent) => {
    if (e.message.t === 'w' || (e.message.t === 'd' && e.message.w !== undefined)) e.channel.watermark = Math.max(e.channel.watermark, e.message.w!);
    if (e.message.t === 'e') e.channel.ended = true;
  };
  /** Takes `count` events (waiting for them), applies them and acknowledges everything. */
  const take = async (count: number): Promise<GateEvent[]> => {
    const out: GateEvent[] = [];
    for (let i = 0; i < 100 && out.length < count; i++) {
      const { events, discarded } = await gate.next(50);
      out.push(...events);
      await gate.acknowledge(discarded);
      await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
      gate.release();
    }
    return out;
  };
  return { gate, writers, take, apply, transport };
}

/** A barrier aligner wired to the gate as the input driver wires it. */
function alignerOf(gate: InputGate) {
  const taken: number[] = [];
  let last = 0;
  const aligner = new BarrierAligner<GateEvent>({
    lastCheckpoint: () => last,
    passed: (id) => void (last = Math.max(last, id)),
    checkpoint: async (id) => {
      taken.push(id);
      last = id;
    },
    decline: async () => undefined,
    release: async () => undefined,
    ...alignmentChannels(() => gate),
  });
  const handle = async (e: GateEvent) => {
    if (aligner.hold(e.channel.index, e)) return;
    if (e.message.t === 'b') return aligner.barrier(e.channel.index, e.message.c);
    if (e.message.t === 'e') {
      e.channel.ended = true;
      return aligner.channelEnded();
    }
  };
  return { aligner, taken, handle };
}

describe('input gate: channels not heard from', () => {
  it('counts them open in barrier alignment: it waits for a channel that never wrote, until it delivers the barrier or ends', async () => {
    const { gate, writers, take } = await setup(4);
    const { aligner, taken, handle } = alignerOf(gate);
    for (const p of [0, 1, 2]) writers[p]!.emitEvent({ t: 'b', c: 1 });
    await Promise.all(writers.map((w) => w.flush()));
    for (const e of await take(3)) await handle(e);
    expect(gate.openCount()).toBe(4);
    expect(taken).toEqual([]);
    expect(aligner.status()).toEqual({ checkpointId: 1, waitingFor: ['e0/3'], held: 0 });
    // The silent producer ends: nothing is left to wait for.
    writers[3]!.emitEvent({ t: 'e' });
    await writers[3]!.flush();
    for (const e of await take(1)) await handle(e);
    expect(taken).toEqual([1]);
    expect(gate.openCount()).toBe(3);
    // Checkpoint 2: the three open channels only.
    for (const p of [0, 1, 2]) writers[p]!.emitEvent({ t: 'b', c: 2 });
    await Promise.all(writers.map((w) => w.flush()));
    for (const e of await take(3)) await handle(e);
    expect(taken).toEqual([1, 2]);
    await gate.stop();
  });

  it('names a few of the channels an alignment waits for and counts the rest', async () => {
    const { gate, writers, take } = await setup(50);
    const { aligner, handle } = alignerOf(gate);
    writers[7]!.emitEvent({ t: 'b', c: 1 });
    await writers[7]!.flush();
    for (const e of await take(1)) await handle(e);
    const status = aligner.status()!;
    expect(status.waitingFor).toEqual(['e0/0', 'e0/1', 'e0/2', 'e0/3', 'e0/4', 'e0/5', 'e0/6', 'e0/8', 'e0/9', 'e0/10']);
    expect(status.waiting).toBe(49);
    await gate.stop();
  });

  it('keep the combined watermark unknown until every open channel has one; ended channels no longer hold it', async () => {
    const { gate, writers, take, apply } = await setup(3);
    expect(gate.combinedWatermark()).toBe(MIN);
    writers[0]!.emitWatermark(100);
    writers[1]!.emitWatermark(200);
    await Promise.all(writers.map((w) => w.flush()));
    (await take(2)).forEach(apply);
    expect(gate.combinedWatermark()).toBe(MIN); // producer 2 not heard from
    writers[2]!.emitWatermark(150);
    await writers[2]!.flush();
    (await take(1)).forEach(apply);
    expect(gate.combinedWatermark()).toBe(100);
    writers[0]!.emitEvent({ t: 'e' });
    await writers[0]!.flush();
    (await take(1)).forEach(apply);
    expect(gate.combinedWatermark()).toBe(150);
    expect(gate.allEnded()).toBe(false);
    for (const p of [1, 2]) writers[p]!.emitEvent({ t: 'e' });
    await Promise.all(writers.map((w) => w.flush()));
    (await take(2)).forEach(apply);
    expect(gate.allEnded()).toBe(true);
    expect(gate.combinedWatermark()).toBe(MAX);
    await gate.stop();
  });

  it('end of input: not every channel has ended while one was never heard from', async () => {
    const { gate, writers, take, apply } = await setup(3);
    for (const p of [0, 2]) writers[p]!.emitEvent({ t: 'e' });
    await Promise.all(writers.map((w) => w.flush()));
    (await take(2)).forEach(apply);
    expect(gate.allEnded()).toBe(false);
    expect([...gate.openChannelKeys()]).toEqual(['e0/1']);
    expect(gate.isOpen('e0/1')).toBe(true);
    expect(gate.isOpen('e0/0')).toBe(false);
    expect(gate.isOpen('e0/3')).toBe(false); // not a channel of this gate
    expect(gate.channels.get('e0/1')).toMatchObject({ producer: 1, ended: false, watermark: MIN, minAttempt: 0, attempt: 0 });
    await gate.stop();
  });

  it('hands every channel over, those not heard from with their fence, and resumes them as they were', async () => {
    const fence = (_: string, p: number) => (p === 1 ? 2 : 0);
    const { gate, writers, take, apply } = await setup(4, { minAttempt: fence });
    gate.fenceProducer('a#3', 5); // before producer 3 is heard from
    writers[0]!.emit('x');
    writers[0]!.emitWatermark(70);
    await writers[0]!.flush();
    (await take(1)).forEach(apply);
    await gate.drain();
    const handover = gate.handoverState();
    expect(handover.map((h) => [h.key, h.minAttempt, h.attempt, h.order, h.positions, h.watermark, h.ended])).toEqual([
      ['e0/0', 0, 0, [{ attempt: 0, next: 1 }], [[0, 1]], 70, false],
      ['e0/1', 2, 2, [], [], MIN, false],
      ['e0/2', 0, 0, [], [], MIN, false],
      ['e0/3', 5, 0, [], [], MIN, false],
    ]);
    // The successor starts with another fence: the hand-over's holds.
    const next = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 4, queueOf: () => 'in', transport: new MemoryChannelTransport(), minAttempt: () => 9, onError: () => undefined });
    next.resume(handover);
    expect(next.handoverState()).toEqual(handover);
    expect(next.combinedWatermark()).toBe(MIN);
    expect(next.channels.get('e0/0')!.positions).toEqual(new Map([[0, 1]]));
    await gate.stop();
  });

  it('snapshots alike channels as runs, one entry for a held record, and restores every channel of a run', async () => {
    const { gate, writers, take, apply } = await setup(6);
    for (const w of writers) w.emitEvent({ t: 'b', c: 1 });
    await Promise.all(writers.map((w) => w.flush()));
    (await take(6)).forEach(apply);
    const zero = { duplicateRecords: 0, missingRecords: 0, replayedRecords: 0, regeneratedRecords: 0 };
    expect(gate.positions()).toEqual([{ key: 'e0/0', range: 6, positions: [[0, 0]], counters: zero }]);
    writers[3]!.emit('r3');
    writers[4]!.emit('r4');
    await Promise.all(writers.map((w) => w.flush()));
    const events = await take(2);
    events.forEach(apply);
    const held = events.filter((e) => e.channel.producer === 4);
    const snapshot = gate.positions(held);
    expect(snapshot).toEqual([
      { key: 'e0/0', range: 3, positions: [[0, 0]], counters: zero },
      { key: 'e0/3', positions: [[0, 1]], counters: zero },
      { key: 'e0/4', positions: [[0, 0]], counters: zero },
      { key: 'e0/5', positions: [[0, 0]], counters: zero },
    ]);
    const restored = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 6, queueOf: () => 'in', transport: new MemoryChannelTransport(), onError: () => undefined });
    restored.restorePositions(snapshot, 1);
    expect([...restored.channels.values()].map((c) => [...c.positions])).toEqual([[[0, 0]], [[0, 0]], [[0, 0]], [[0, 1]], [[0, 0]], [[0, 0]]]);
    // The same channels' state; alike neighbours are one run again.
    expect(expandRuns(restored.positions())).toEqual(expandRuns(snapshot));
    expect(restored.positions().map((e) => [e.key, e.range])).toEqual([['e0/0', 3], ['e0/3', undefined], ['e0/4', 2]]);
    await gate.stop();
  });
});

// ---- the arrays against the general code -----------------------------------------------------------

type Feed = { body: string; receiveCount?: number };

/** A random sequence of channel messages from `producers` producers: attempts, lineages, gaps, duplicates, reorders, records at and off their positions, restarts, replays. */
function scenario(seed: number, producers: number): Feed[] {
  const random = seededRandom(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const out: Feed[] = [];
  // Producer 0 is quiet, mostly barriers and watermarks (its channel can stay in the arrays), the last one noisy.
  const state = Array.from({ length: producers }, (_, p) => ({ attempt: 0, s: 0, n: 0, w: 0, c: 0, source: random() < 0.5, noise: p === 0 ? 0.1 : p / (producers - 1) }));
  for (let i = 0; i < 120; i++) {
    const p = Math.floor(random() * producers);
    const st = state[p]!;
    const r = random();
    if (r < 0.04 * st.noise) {
      // The producer restarts: a new attempt (a new group from 0), a source keeps lineage 0.
      st.attempt++;
      st.s = 0;
      if (!st.source) st.n = 0;
      if (random() < 0.5) out.push({ body: JSON.stringify({ p, a: st.attempt, s: st.s++, l: st.source ? 0 : st.attempt, n: st.n, t: 'r', c: Math.floor(random() * (st.c + 1)) }) });
      continue;
    }
    const l = st.source ? 0 : st.attempt;
    let m: Record<string, unknown>;
    const kind = random();
    if (kind < 0.35) m = { t: 'b', c: ++st.c, n: st.n };
    else if (kind < 0.6 || (kind < 0.9 && p === 0 && random() < 0.8)) m = { t: 'w', w: (st.w += 10), n: st.n };
    else if (kind < 0.9) {
      const k = Math.floor(random() * 3);
      const at = random() < 0.15 * st.noise ? Math.max(0, st.n - 1) : random() < 0.1 * st.noise ? st.n + 2 : st.n;
      m = { t: 'd', r: Array.from({ length: k }, (_, j) => `${p}.${at + j}`), n: at, ...(random() < 0.3 ? { w: (st.w += 5) } : {}) };
      st.n = Math.max(st.n, at + k);
    } else if (kind < 0.95) m = { t: 'e', n: st.n };
    else m = { t: 'x', n: st.n, ra: 1, rq: 1 };
    const feed: Feed = { body: JSON.stringify({ p, a: st.attempt, s: st.s++, l, ...m }), ...(random() < 0.1 * st.noise ? { receiveCount: 2 } : {}) };
    out.push(feed);
    // Duplicates, reorders, an attempt older than the fence.
    if (random() < 0.08) out.push(feed);
    if (random() < 0.06 * st.noise && out.length > 2) [out[out.length - 1], out[out.length - 2]] = [out[out.length - 2]!, out[out.length - 1]!];
    if (random() < 0.03) out.push({ body: JSON.stringify({ ...JSON.parse(feed.body), a: -1 }) });
    if (random() < 0.02 * st.noise) out.push({ body: JSON.stringify({ p: pick([...Array(producers).keys()]), a: 0, s: 0, l: 0, n: 0, t: 'w', w: 1 }) });
  }
  return out;
}

function normalizeHandover(h: ChannelHandover[]) {
  // A barrier at record position 0 is not kept in the arrays: its lookup gives 0 either way.
  return h.map((c) => ({ ...c, barriers: (c.barriers ?? []).map(([l, at]) => [l, at.filter(([, n]) => n !== 0)] as const).filter(([, at]) => at.length > 0) }));
}

function expandRuns(entries: ChannelPositions[]) {
  return entries.flatMap(({ range, ...e }) => {
    const slash = e.key.lastIndexOf('/');
    const first = Number(e.key.slice(slash + 1));
    return Array.from({ length: range ?? 1 }, (_, i) => ({ ...e, key: `${e.key.slice(0, slash)}/${first + i}` }));
  });
}

describe('input gate: channels in arrays do what full channel objects do', () => {
  const seeds = Number(process.env.GATE_SEEDS ?? 24);
  for (const seed of Array.from({ length: seeds }, (_, i) => i + 1)) {
    it(`the same events, counters, hand-over and snapshot over random sequence ${seed}`, () => {
      const producers = 3;
      let now = 1_000;
      const clock = { now: () => now, sleep: () => new Promise<void>(() => undefined) };
      const make = (compactChannels: boolean) =>
        new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => producers, queueOf: () => 'in', transport: new MemoryChannelTransport(), minAttempt: (_, p) => (p === 2 ? 0 : 0), clock, onError: () => undefined, compactChannels, ...(seed % 3 === 0 ? { groupsStartAtZero: true, gapTimeoutMs: 5_000 } : {}) });
      const gates = [make(true), make(false)];
      const random = seededRandom(seed * 7919);
      if (seed % 2 === 0) {
        const restore: ChannelPositions[] = [
          { key: 'e0/0', positions: [[0, random() < 0.5 ? 0 : 2]], counters: { duplicateRecords: 0, missingRecords: 0, replayedRecords: 0, regeneratedRecords: 0 } },
          { key: 'e0/1', range: 2, positions: [[0, 0]], ...(random() < 0.3 ? { ended: true } : {}) },
        ];
        for (const g of gates) g.restorePositions(restore, 1);
      }
      if (seed % 4 === 1) for (const g of gates) g.fenceProducer('a#1', 1);
      const feeds = scenario(seed, producers);
      const results = gates.map(() => [] as unknown[]);
      gates.forEach((gate, i) => {
        const internal = gate as unknown as {
          take(received: { queue: string; edge: ExecutionEdge; message: { body: string; groupId: string; receipt: string; receiveCount?: number } }, now: number, events: GateEvent[], discard: (q: string, r: string | undefined) => void): void;
          checkGaps(now: number, events: GateEvent[], discard: (q: string, r: string | undefined) => void): void;
        };
        const log = results[i]!;
        now = 1_000;
        feeds.forEach((f, n) => {
          now += 150;
          const events: GateEvent[] = [];
          const discarded: string[] = [];
          const discard = (_: string, r: string | undefined) => void (r && discarded.push(r));
          try {
            internal.take({ queue: 'in', edge, message: { body: f.body, groupId: '', receipt: `r${n}`, ...(f.receiveCount ? { receiveCount: f.receiveCount } : {}) } }, now, events, discard);
            internal.checkGaps(now, events, discard);
          } catch (error) {
            log.push(['error', (error as Error).message]);
            return;
          }
          for (const e of events) {
            if (e.message.t === 'w' || (e.message.t === 'd' && e.message.w !== undefined)) e.channel.watermark = Math.max(e.channel.watermark, (e.message as ChannelMessage & { w: number }).w);
            if (e.message.t === 'e') e.channel.ended = true;
          }
          log.push([n, events.map((e) => [channelKey(e.channel.edge.id, e.channel.producer), e.message, e.receipt]), discarded, gate.combinedWatermark(), gate.allEnded(), gate.openCount()]);
          if (n % 10 === 0) log.push(['state', gate.counters(), gate.channelCounters(), gate.channelCounters(1), gate.countedChannels(), gate.duplicates, gate.fenced, gate.staleReplays, gate.reordered]);
        });
        log.push(['handover', normalizeHandover(gate.handoverState())]);
        log.push(['positions', expandRuns(gate.positions())]);
        log.push(['awaited', gate.awaitedReplays()]);
      });
      expect(results[0]).toEqual(results[1]);
    });
  }
});

describe('input gate on multiplexed channels', () => {
  it('takes up to receiveMax messages a receive, and with extendVisibility false extends nothing', async () => {
    let now = 0;
    const clock = { now: () => now, sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.min(ms, 5))) };
    // An inbox as the multiplexed transport serves it (no limit of 10), counting extensions.
    const bodies = Array.from({ length: 3 }, (_, p) => Array.from({ length: 40 }, (_, s) => JSON.stringify({ p, a: 0, s, l: 0, n: s, t: 'd', r: [`${p}.${s}`] }))).flat();
    const asked: number[] = [];
    let extensions = 0;
    const inbox = Object.assign(new MemoryChannelTransport(), {
      receive: async (_: string, options: { max: number }) => {
        asked.push(options.max);
        return bodies.splice(0, options.max).map((body, i) => ({ body, groupId: '', receipt: `r${asked.length}.${i}` }));
      },
      changeVisibility: async () => {
        extensions++;
        return { expired: [] };
      },
      delete: async () => ({ expired: [] }),
    });
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 3, queueOf: () => 'in', transport: inbox, clock, waitSeconds: 0.05, extendEveryMs: 1, extendVisibility: false, receiveMax: 100, onError: (e) => { throw e; } });
    gate.start();
    const { events } = await gate.next(1000);
    expect(asked[0]).toBe(100);
    expect(events).toHaveLength(100);
    now += 60_000; // held a minute: nothing extended
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(extensions).toBe(0);
    gate.release();
    await gate.stop();
  });
});

describe('input gate: recovery state (restart notices, skipped positions, replays taken) in arrays and objects alike', () => {
  // Main's fixes keep more per channel: the producer's restart notice (with where its checkpoint
  // left the channel), positions skipped as missing, the producer attempt whose replay was taken.
  // Only a full channel holds them; hand-over, resume, snapshot and restore must carry them, and a
  // channel in the arrays must never take a state that has them.
  const producers = 4;
  const make = (compactChannels: boolean) =>
    new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => producers, queueOf: () => 'in', transport: new MemoryChannelTransport(), clock: { now: () => 1_000, sleep: () => new Promise<void>(() => undefined) }, onError: () => undefined, compactChannels });
  const msg = (m: Record<string, unknown>): string => JSON.stringify(m);
  /** Feeds bodies through the gate's `take`, as `next` does; what it delivered and discarded, and its counters. */
  const feed = (gate: InputGate, bodies: readonly string[]) => {
    const internal = gate as unknown as { take(received: { queue: string; edge: ExecutionEdge; message: { body: string; groupId: string; receipt: string } }, now: number, events: GateEvent[], discard: (q: string, r: string | undefined) => void): void };
    const events: GateEvent[] = [];
    const discarded: string[] = [];
    bodies.forEach((body, i) => internal.take({ queue: 'in', edge, message: { body, groupId: '', receipt: `r${i}` } }, 1_000, events, (_, r) => void (r && discarded.push(r))));
    for (const e of events) {
      if (e.message.t === 'w' || (e.message.t === 'd' && e.message.w !== undefined)) e.channel.watermark = Math.max(e.channel.watermark, (e.message as ChannelMessage & { w: number }).w);
      if (e.message.t === 'e') e.channel.ended = true;
    }
    return {
      events: events.map((e) => [channelKey(e.channel.edge.id, e.channel.producer), e.message, e.receipt]),
      discarded,
      counters: gate.counters(),
      channels: gate.channelCounters(),
      fenced: gate.fenced,
      watermark: gate.combinedWatermark(),
    };
  };
  const first = [
    // Producer 0: records, then a jump (3 records missing: skipped).
    msg({ p: 0, a: 0, s: 0, l: 0, n: 0, t: 'd', r: ['a', 'b'] }),
    msg({ p: 0, a: 0, s: 1, l: 0, n: 5, t: 'd', r: ['f'] }),
    // Producer 1: a record, then its restart notice (lineage 1, checkpoint 0 left lineage 0 at 0).
    msg({ p: 1, a: 0, s: 0, l: 0, n: 0, t: 'd', r: ['x'] }),
    msg({ p: 1, a: 1, s: 0, l: 1, n: 0, t: 'r', c: 0, f: [0, 0] }),
    // Producer 2: the replay this consumer waits for, answered by its attempt 1 in lineage 0 (a
    // restored source), with its watermark as an event and a record its log no longer had.
    msg({ p: 2, a: 1, s: 0, l: 0, n: 0, t: 'd', r: ['r0'], ra: 1, rq: 1 }),
    msg({ p: 2, a: 1, s: 1, l: 0, n: 1, t: 'x', ls: 0, g: 1, w: 40, ra: 1, rq: 1 }),
    // Producer 3: in order, stays in the arrays.
    msg({ p: 3, a: 0, s: 0, l: 0, n: 0, t: 'b', c: 1 }),
    msg({ p: 3, a: 0, s: 1, l: 0, n: 0, t: 'w', w: 50 }),
  ];
  const later = [
    // The dead attempt 0 of producer 2 left a message: fenced (the replay came from attempt 1).
    msg({ p: 2, a: 0, s: 3, l: 0, n: 7, t: 'd', r: ['old'] }),
    // Producer 0 restored from before its drop: it sends the skipped records again, now lost.
    msg({ p: 0, a: 0, s: 2, l: 0, n: 2, t: 'd', r: ['c', 'd', 'e'] }),
    // Producer 1's dead lineage 0, seen after the notice: regenerated.
    msg({ p: 1, a: 0, s: 1, l: 0, n: 1, t: 'd', r: ['y'] }),
  ];

  it('takes, hands over and resumes the same way with channels in arrays as with every channel an object', () => {
    const [compact, full] = [make(true), make(false)];
    for (const g of [compact, full]) g.awaitReplay('e0/2', 1, 1);
    const got = feed(compact, first);
    expect(got).toEqual(feed(full, first));
    expect(got.counters).toMatchObject({ missingRecords: 3, unreplayedRecords: 1, regeneratedRecords: 1 });
    // The replay's watermark went in order, as an event.
    expect(got.events.filter(([key, m]) => key === 'e0/2' && (m as ChannelMessage).t === 'w')).toHaveLength(1);
    const handover = compact.handoverState();
    expect(normalizeHandover(handover)).toEqual(normalizeHandover(full.handoverState()));
    const byKey = new Map(handover.map((h) => [h.key, h]));
    expect(byKey.get('e0/0')!.skipped).toEqual([[0, 2, 5]]);
    expect(byKey.get('e0/1')!.restarted).toEqual({ lineage: 1, from: 0, at: [0, 0] });
    expect(byKey.get('e0/2')!.replayedBy).toEqual({ attempt: 1, lineage: 0 });
    // Producer 3's channel stayed in the arrays.
    expect((compact as unknown as { tables: { full: Map<number, unknown> }[] }).tables[0]!.full.has(3)).toBe(false);
    // A successor resumes every channel as it was, and goes on as the predecessor would.
    const [resumedCompact, resumedFull] = [make(true), make(false)];
    for (const g of [resumedCompact, resumedFull]) g.resume(handover);
    expect(normalizeHandover(resumedCompact.handoverState())).toEqual(normalizeHandover(handover));
    const after = feed(resumedCompact, later);
    expect(after).toEqual(feed(resumedFull, later));
    expect(after).toEqual(feed(compact, later));
    expect(after.fenced).toBe(1);
    // 1 unreplayed from the replay's end, 3 skipped records sent again.
    expect(after.counters).toMatchObject({ unreplayedRecords: 4, regeneratedRecords: 2 });
  });

  it('records skipped in a lineage its producer restarted from before come again: neither missing nor regenerated', () => {
    for (const compact of [true, false]) {
      const gate = make(compact);
      const got = feed(gate, [
        // Producer 1's lineage 0: 3 records, 2 dropped for this consumer (a gap), 3 more.
        msg({ p: 1, a: 0, s: 0, l: 0, n: 0, t: 'd', r: ['a', 'b', 'c'] }),
        msg({ p: 1, a: 0, s: 1, l: 0, n: 5, t: 'd', r: ['f', 'g', 'h'] }),
        // It restarts from a checkpoint that left lineage 0 at position 2: 2..7 come again in
        // lineage 1, the 2 dropped ones for the first time.
        msg({ p: 1, a: 1, s: 0, l: 1, n: 0, t: 'r', c: 3, f: [0, 2] }),
        // Its dead attempt's last message, after a gap past the restart point: comes again too.
        msg({ p: 1, a: 0, s: 2, l: 0, n: 10, t: 'd', r: ['k'] }),
      ]);
      // Taken of lineage 0 after position 2: c, f, g, h, k (5, they come again); skipped: none for good.
      expect(got.channels['e0/1']).toMatchObject({ missingRecords: 0, regeneratedRecords: 5 });
    }
  });

  it('snapshots and restores a restart notice and skipped positions, in arrays as in objects', () => {
    const [compact, full] = [make(true), make(false)];
    for (const g of [compact, full]) g.awaitReplay('e0/2', 1, 1);
    feed(compact, first);
    feed(full, first);
    const snapshot = compact.positions();
    expect(expandRuns(snapshot)).toEqual(expandRuns(full.positions()));
    const entries = new Map(snapshot.map((e) => [e.key, e]));
    expect(entries.get('e0/0')!.skipped).toEqual([[0, 2, 5]]);
    expect(entries.get('e0/1')!.restarted).toEqual({ lineage: 1, from: 0, at: [0, 0] });
    const [restoredCompact, restoredFull] = [make(true), make(false)];
    for (const g of [restoredCompact, restoredFull]) g.restorePositions(snapshot, 1);
    expect(expandRuns(restoredCompact.positions())).toEqual(expandRuns(restoredFull.positions()));
    expect(expandRuns(restoredCompact.positions())).toEqual(expandRuns(snapshot));
    // Producer 0 restored (its attempt 1, lineage 0) sends the records it had dropped again.
    const resent = [msg({ p: 0, a: 1, s: 0, l: 0, n: 2, t: 'd', r: ['c', 'd', 'e'] })];
    const after = feed(restoredCompact, resent);
    expect(after).toEqual(feed(restoredFull, resent));
    // The consumer is past them: lost (unreplayed), beside the 1 the snapshot's counters hold.
    expect(after.counters.unreplayedRecords).toBe(1 + 3);
  });

  it('lists channels with unreplayed records first when it lists only a few, and sums every channel per edge', () => {
    const gate = make(true);
    gate.awaitReplay('e0/2', 1, 1);
    feed(gate, first);
    feed(gate, later);
    // Channels with counts: 0 (missing, unreplayed 3), 1 (regenerated), 2 (unreplayed 1).
    expect(Object.keys(gate.channelCounters(1))).toEqual(['e0/0']);
    expect(Object.keys(gate.channelCounters(2))).toEqual(['e0/0', 'e0/2']);
    const listed = Object.values(gate.channelCounters());
    const sum = (k: 'missingRecords' | 'unreplayedRecords' | 'regeneratedRecords') => listed.reduce((n, c) => n + (c[k] ?? 0), 0);
    expect(gate.edgeCounters()).toEqual({ e0: { missingRecords: sum('missingRecords'), unreplayedRecords: 4, regeneratedRecords: sum('regeneratedRecords') } });
    expect(sum('regeneratedRecords')).toBeGreaterThan(0);
  });
});
