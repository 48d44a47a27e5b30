import { describe, expect, it } from 'vitest';
import { RecordWriter, hashPartition, spliced } from '../../lib/runtime/record-writer';
import { InputGate } from '../../lib/runtime/input-gate';
import { decodeChannelMessage, type ChannelMessage } from '../../lib/runtime/messages';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import type { ChannelTransport, OutboundMessage } from '../../lib/ports/channels';
import { DeterminantLog } from '../../lib/runtime/determinants';

const hashEdge: ExecutionEdge = { id: 'e0', kind: 'hash', from: 'a', to: 'b', toOperator: 'b', input: 0, key: (r: { k: string }) => r.k, pointwise: false };

/** The messages of `queue`, decoded; `bytes`, when given, gets each body's UTF-8 size. */
async function drain(transport: MemoryChannelTransport, queue: string, bytes?: number[]) {
  const out = [];
  for (;;) {
    const got = await transport.receive(queue, { max: 10, waitSeconds: 0 });
    if (got.length === 0) return out;
    bytes?.push(...got.map((m) => Buffer.byteLength(m.body)));
    out.push(...got.map((m) => decodeChannelMessage(m.body)));
    await transport.delete(queue, got.map((m) => m.receipt));
  }
}

describe('record writer', () => {
  it('splices record chunks into a JSON array, the same text as a join', () => {
    for (const chunks of [[], ['1'], ['{"a":1},{"b":"x"}', '2', '"ü"']]) {
      expect(spliced(chunks)).toBe(`[${chunks.join(',')}]`);
      expect(JSON.parse(spliced(chunks))).toEqual(JSON.parse(`[${chunks.join(',')}]`));
    }
  });

  it('packs text of any width, from a few bytes to 8 KB a record, into messages within their size in UTF-8 bytes', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['q-0']);
    // 1 to 3 bytes a UTF-16 unit and 4 for a pair: messages are cut by their exact size.
    const texts = ['a', 'ü', '€', '😀', '"\\', '\u0000\n'];
    const records = Array.from({ length: 400 }, (_, i) => ({ i, s: texts[i % texts.length]!.repeat(1 + ((i * 7919) % (i % 50 === 0 ? 2000 : 60))) }));
    const maxMessageBytes = 16 * 1024;
    const writer = new RecordWriter({ edge: { ...hashEdge, kind: 'forward', pointwise: true, key: undefined }, producerIndex: 0, consumerParallelism: 1, attempt: 0, queueOf: () => 'q-0', transport, maxMessageBytes });
    for (const r of records) writer.emit(r);
    await writer.flush(true);
    const bodies: string[] = [];
    for (;;) {
      const got = await transport.receive('q-0', { max: 10, waitSeconds: 0 });
      if (got.length === 0) break;
      bodies.push(...got.map((m) => m.body));
      await transport.delete('q-0', got.map((m) => m.receipt));
    }
    const got = bodies.map((b) => decodeChannelMessage(b)).flatMap((m) => (m.t === 'd' ? m.r : []));
    expect(got).toEqual(records);
    expect(bodies.length).toBeGreaterThan(3);
    for (const b of bodies) expect(Buffer.byteLength(b)).toBeLessThanOrEqual(maxMessageBytes);
    // Full messages come near their size: cut by the bytes, not by 3 bytes a unit.
    expect(Buffer.byteLength(bodies[0]!)).toBeGreaterThan(maxMessageBytes - 8_500);
  });

  it('routes by key hash, packs records into size-bounded messages with per-channel sequence numbers', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['q-0', 'q-1', 'q-2']);
    const writer = new RecordWriter({ edge: hashEdge, producerIndex: 1, consumerParallelism: 3, attempt: 4, queueOf: (c) => `q-${c}`, transport, maxMessageBytes: 2000 });
    const records = Array.from({ length: 300 }, (_, i) => ({ k: `key-${i % 17}`, v: i }));
    for (const r of records) writer.emit(r);
    writer.emitWatermark(99);
    writer.emitEvent({ t: 'e' });
    await writer.flush();

    let seen = 0;
    for (let c = 0; c < 3; c++) {
      const bytes: number[] = [];
      const messages = await drain(transport, `q-${c}`, bytes);
      expect(messages.map((m) => m.s)).toEqual(messages.map((_, i) => i));
      expect(messages.every((m) => m.p === 1 && m.a === 4)).toBe(true);
      expect(messages.at(-1)!.t).toBe('e');
      expect(bytes.every((b) => b <= 2000)).toBe(true);
      for (const m of messages) {
        if (m.t !== 'd') continue;
        for (const r of m.r as { k: string }[]) expect(hashPartition(r.k, 3)).toBe(c);
        seen += m.r.length;
      }
      expect(messages.some((m) => (m.t === 'd' && m.w === 99) || (m.t === 'w' && m.w === 99))).toBe(true);
    }
    expect(seen).toBe(300);
    expect(writer.recordsWritten).toBe(300);
  });

  it('a data message says its UTF-8 size (the transport need not measure it again), exactly, for wide characters and determinants too', async () => {
    const sent: OutboundMessage[] = [];
    const transport = { send: async (_queue: string, messages: readonly OutboundMessage[]) => void sent.push(...messages) } as unknown as ChannelTransport;
    const determinants = new DeterminantLog();
    determinants.records('é0/0', 0, 0, 3);
    const writer = new RecordWriter({ edge: hashEdge, producerIndex: 0, consumerParallelism: 2, attempt: 1, queueOf: (c) => `q-${c}`, transport, maxMessageBytes: 40_000, determinants });
    for (let i = 0; i < 3000; i++) writer.emit({ k: `key-${i % 5}`, v: i % 3 === 0 ? `naïve ☃ 😀 ${i}` : i });
    writer.emitWatermark(1234);
    writer.emitEvent({ t: 'b', c: 7 });
    await writer.flush();
    const data = sent.filter((m) => decodeChannelMessage(m.body).t === 'd');
    expect(data.length).toBeGreaterThan(2);
    for (const m of data) expect(m.bytes).toBe(Buffer.byteLength(m.body));
    const decoded = data.map((m) => decodeChannelMessage(m.body) as Extract<ChannelMessage, { t: 'd' }>);
    expect(decoded.some((m) => m.w === 1234)).toBe(true);
    expect(decoded.some((m) => m.dt !== undefined)).toBe(true);
  });

  it('numbers the records of each channel: a message carries its first position, drops take theirs', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['q-0', 'q-1']);
    let down = false;
    const edge: ExecutionEdge = { ...hashEdge, kind: 'forward', pointwise: false, key: undefined };
    const writer = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 2, attempt: 3, lineage: 0, queueOf: (c) => `q-${c}`, transport, gate: { isAvailable: () => !down } });
    for (let i = 0; i < 5; i++) writer.emit(i);
    down = true;
    for (let i = 5; i < 8; i++) writer.emit(i); // dropped: positions 5..7
    down = false;
    writer.emitEvent({ t: 'b', c: 1 });
    for (let i = 8; i < 10; i++) writer.emit(i);
    await writer.flush();
    const messages = await drain(transport, 'q-0');
    expect(messages.map((m) => [m.t, m.l, m.n, m.t === 'd' ? m.r : m.t === 'b' ? m.c : null])).toEqual([
      ['d', 0, 0, [0, 1, 2, 3, 4]],
      ['b', 0, 8, 1],
      ['d', 0, 8, [8, 9]],
    ]);
    expect(messages.every((m) => m.a === 3)).toBe(true);
    expect(writer.dropped).toEqual([3, 0]);
    // A checkpoint keeps the numbering; a restored writer (new attempt, new group) continues it.
    const kept = writer.positions();
    expect(kept).toEqual({ edgeId: 'e0', lineage: 0, position: [10, 0], roundRobin: 0, dropped: [3, 0], resent: 0 });
    const restored = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 2, attempt: 4, queueOf: (c) => `q-${c}`, transport });
    restored.restorePositions(kept);
    restored.emit(10);
    await restored.flush();
    expect((await drain(transport, 'q-0')).map((m) => [m.a, m.s, m.l, m.n])).toEqual([[4, 0, 0, 10]]);
    expect(() => restored.restorePositions(kept)).toThrow(/positions restored after records were written/);
  });

  it('drops and counts records bound for an unavailable sub-partition', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['q-0', 'q-1']);
    const down = new Set([1]);
    const writer = new RecordWriter({
      edge: { ...hashEdge, kind: 'rebalance' },
      producerIndex: 0,
      consumerParallelism: 2,
      attempt: 0,
      queueOf: (c) => `q-${c}`,
      transport,
      gate: { isAvailable: (_e, c) => !down.has(c) },
    });
    for (let i = 0; i < 10; i++) writer.emit({ k: 'x', v: i });
    await writer.flush();
    expect(writer.dropped).toEqual([0, 5]);
    expect((await drain(transport, 'q-1')).length).toBe(0);
    expect((await drain(transport, 'q-0')).flatMap((m) => (m.t === 'd' ? m.r : []))).toHaveLength(5);
  });

  it('the input gate fences older attempts and drops repeated sequence numbers', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const edge: ExecutionEdge = { ...hashEdge, kind: 'forward', pointwise: true };
    const send = (a: number, s: number) =>
      transport.send('in', [{ groupId: '0', dedupId: `${a}-${s}-${Math.random()}`, body: JSON.stringify({ p: 0, a, s, t: 'd', r: [`${a}/${s}`] }) }]);
    await send(1, 0);
    await send(1, 1);
    await send(1, 1); // duplicate
    await send(0, 5); // older attempt
    await send(2, 0); // producer restarted
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, minAttempt: () => 1, onError: (e) => { throw e; } });
    gate.start();
    const records: unknown[] = [];
    for (let i = 0; i < 20 && records.length < 3; i++) {
      const { events, discarded } = await gate.next(100);
      for (const e of events) if (e.message.t === 'd') records.push(...e.message.r);
      await gate.acknowledge(discarded);
      await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
      gate.release();
    }
    await gate.stop();
    expect(records).toEqual(['1/0', '1/1', '2/0']);
    expect(await transport.receive('in', { max: 10, waitSeconds: 0 })).toEqual([]); // all deleted
    expect(gate.duplicates).toBe(1);
    expect(gate.fenced).toBe(1);
  });
});

describe('input gate order and record positions', () => {
  const edge: ExecutionEdge = { ...hashEdge, kind: 'forward', pointwise: true };
  async function setup(options: { gapTimeoutMs?: number; groupsStartAtZero?: boolean } = {}) {
    let now = 1_000_000;
    const clock = { now: () => now, sleep: () => new Promise<void>(() => undefined) };
    const transport = new MemoryChannelTransport({ clock });
    await transport.createQueues(['in']);
    const send = (body: object) => {
      const m = body as { a: number; s: number };
      return transport.send('in', [{ groupId: `0.${m.a}`, dedupId: `${m.a}-${m.s}-${Math.random()}`, body: JSON.stringify({ p: 0, ...body }) }]);
    };
    const errors: unknown[] = [];
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, clock, waitSeconds: 0.2, onError: (e) => errors.push(e), ...options });
    gate.start();
    /** Takes what arrives within a few polls; acknowledges everything. */
    const take = async () => {
      const out: string[] = [];
      for (let i = 0; i < 5; i++) {
        const { events, discarded } = await gate.next(60);
        for (const e of events) out.push(e.message.t === 'd' ? e.message.r.join('+') : e.message.t === 'b' ? `b${e.message.c}` : e.message.t);
        await gate.acknowledge(discarded);
        await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
        gate.release();
      }
      return out;
    };
    return { transport, send, gate, take, errors, advance: (ms: number) => (now += ms) };
  }

  it('delivers a channel in sequence order: a message that comes early waits for the one before it', async () => {
    const { transport, send, gate, take } = await setup();
    // What a resent batch entry does: sequence 2 lands after 3 and the barrier 4 behind it.
    await send({ a: 0, s: 0, l: 0, n: 0, t: 'd', r: ['r0'] });
    await send({ a: 0, s: 1, l: 0, n: 1, t: 'd', r: ['r1'] });
    await send({ a: 0, s: 3, l: 0, n: 3, t: 'd', r: ['r3'] });
    await send({ a: 0, s: 4, l: 0, n: 4, t: 'b', c: 7 });
    await send({ a: 0, s: 2, l: 0, n: 2, t: 'd', r: ['r2'] });
    await send({ a: 0, s: 3, l: 0, n: 3, t: 'd', r: ['r3'] }); // redelivered
    expect(await take()).toEqual(['r0', 'r1', 'r2', 'r3', 'b7']);
    expect([gate.reordered, gate.duplicates]).toEqual([2, 1]);
    expect(gate.counters()).toMatchObject({ duplicateRecords: 0, missingRecords: 0 });
    await gate.stop();
    expect(await transport.receive('in', { max: 10, waitSeconds: 0 })).toEqual([]); // all deleted
  });

  it('treats a delete whose receipt expired as a redelivery: no error, the copy is dropped by sequence', async () => {
    let now = 1_000_000;
    const clock = { now: () => now, sleep: () => new Promise<void>(() => undefined) }; // never extends
    const transport = new MemoryChannelTransport({ clock });
    await transport.createQueues(['in']);
    await transport.send('in', [{ groupId: '0.0', dedupId: 'm0', body: JSON.stringify({ p: 0, a: 0, s: 0, l: 0, n: 0, t: 'd', r: ['x'] }) }]);
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, clock, waitSeconds: 0.2, onError: (e) => { throw e; } });
    gate.start();
    const first = await gate.next(1_000);
    expect(first.events.map((e) => e.message.t === 'd' && e.message.r)).toEqual([['x']]);
    now += 20_000; // past the 15 s visibility timeout
    await gate.acknowledge(new Map([['in', [first.events[0]!.receipt!]]]));
    expect(gate.expiredReceipts).toBe(1);
    gate.release();
    const again = await gate.next(1_000);
    expect(again.events).toEqual([]);
    expect(gate.duplicates).toBe(1);
    await gate.acknowledge(again.discarded);
    await gate.stop();
    expect(await transport.receive('in', { max: 10, waitSeconds: 0 })).toEqual([]);
  });

  it('orders a group whose first message was resent behind later ones; starts a group seen mid-way after a grace', async () => {
    const { send, take, advance } = await setup();
    await send({ a: 0, s: 1, l: 0, n: 1, t: 'd', r: ['r1'] });
    await send({ a: 0, s: 2, l: 0, n: 2, t: 'd', r: ['r2'] });
    await send({ a: 0, s: 0, l: 0, n: 0, t: 'd', r: ['r0'] });
    expect(await take()).toEqual(['r0', 'r1', 'r2']);
    // Attempt 1's group is first seen at sequence 5 (what came before went to a dead consumer).
    await send({ a: 1, s: 5, l: 1, n: 50, t: 'd', r: ['x5'] });
    await send({ a: 1, s: 6, l: 1, n: 51, t: 'd', r: ['x6'] });
    expect(await take()).toEqual([]);
    advance(2_000);
    expect(await take()).toEqual(['x5', 'x6']);
  });

  it('region and full failover: a group never starts past 0, so a first message taken by a dead consumer\'s poll is waited for, not skipped', async () => {
    const { send, gate, take, advance } = await setup({ groupsStartAtZero: true, gapTimeoutMs: 60_000 });
    // Sequence 0 went to the long poll of the consumer's dead attempt; 1..11 come first.
    for (let s = 1; s <= 11; s++) await send({ a: 1, s, l: 0, n: s, t: 'd', r: [`x${s}`] });
    expect(await take()).toEqual([]);
    advance(20_000); // far past the 2 s start grace
    expect(await take()).toEqual([]);
    // Its visibility timed out: it comes again, and the group goes on in order, nothing skipped.
    await send({ a: 1, s: 0, l: 0, n: 0, t: 'd', r: ['x0'] });
    expect(await take()).toEqual(Array.from({ length: 12 }, (_, s) => `x${s}`));
    expect(gate.counters()).toMatchObject({ missingRecords: 0, duplicateRecords: 0 });
    // A group whose first message never comes fails the consumer, naming it.
    await send({ a: 2, s: 1, l: 2, n: 1, t: 'd', r: ['y1'] });
    expect(await take()).toEqual([]);
    advance(61_000);
    await expect(gate.next(0)).rejects.toThrow(/input channel e0\/0 \(producer attempt 2\): message 0 never arrived; 1 later message\(s\) \(from 1\) wait for it since 61 s/);
    await gate.stop();
  });

  it('fails with the channel and the missing sequence number when a gap never fills', async () => {
    const { send, gate, take, advance } = await setup({ gapTimeoutMs: 60_000 });
    await send({ a: 0, s: 0, l: 0, n: 0, t: 'd', r: ['r0'] });
    await send({ a: 0, s: 2, l: 0, n: 2, t: 'd', r: ['r2'] });
    expect(await take()).toEqual(['r0']);
    advance(61_000);
    await expect(gate.next(0)).rejects.toThrow(/input channel e0\/0 \(producer attempt 0\): message 1 never arrived; 1 later message\(s\) \(from 2\) wait for it since 61 s/);
    await gate.stop();
  });

  it('gives an old attempt\'s gap up once a newer attempt writes; skips replayed records by position', async () => {
    const { send, gate, take } = await setup();
    // Attempt 0 (lineage 0) sent records 0..5; its message 1 (records 2..3) never lands.
    await send({ a: 0, s: 0, l: 0, n: 0, t: 'd', r: ['r0', 'r1'] });
    await send({ a: 0, s: 2, l: 0, n: 4, t: 'd', r: ['r4', 'r5'] });
    expect(await take()).toEqual(['r0+r1']);
    // Its replacement restored from a checkpoint at position 1: re-sends 1.. in a new group, so
    // the old group's waiting message is dropped and its records come from the replay, gap included.
    await send({ a: 1, s: 0, l: 0, n: 1, t: 'd', r: ['r1', 'r2', 'r3', 'r4'] });
    await send({ a: 1, s: 1, l: 0, n: 5, t: 'd', r: ['r5', 'r6'] });
    expect(await take()).toEqual(['r2+r3+r4', 'r5+r6']);
    expect(gate.counters()).toMatchObject({ duplicateRecords: 1, missingRecords: 0, replayedRecords: 0 });
    expect(gate.channelCounters()).toEqual({ 'e0/0': { duplicateRecords: 1, missingRecords: 0, replayedRecords: 0, regeneratedRecords: 0 } });
    // An inner task's new attempt starts a lineage of its own: attempt 1's gap is then given up.
    await send({ a: 1, s: 3, l: 0, n: 8, t: 'd', r: ['r8'] });
    await send({ a: 2, s: 0, l: 2, n: 0, t: 'd', r: ['y0'] });
    expect(await take()).toEqual(['r8', 'y0']);
    expect(gate.counters()).toMatchObject({ duplicateRecords: 1, missingRecords: 1 });
    await gate.stop();
  });

  it('counts records of a message received before as replayed; a restored position marks the rest missing', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    await transport.send('in', [{ groupId: '0.2', dedupId: 'x', body: JSON.stringify({ p: 0, a: 2, s: 7, l: 2, n: 30, t: 'd', r: ['a', 'b'] }) }]);
    // A previous consumer attempt received it and died: it comes again (receive count 2).
    const [first] = await transport.receive('in', { max: 1, waitSeconds: 0, visibilityTimeoutSeconds: 0 });
    expect(first!.receiveCount).toBe(1);
    const restarted = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, waitSeconds: 0.2, onError: (e) => { throw e; } });
    restarted.restorePositions([{ key: 'e0/0', positions: [[2, 25]] }]);
    restarted.start();
    // Its group starts past sequence 0 (the consumer restarted mid-group): it starts after a grace.
    const events = [];
    for (let i = 0; i < 40 && events.length === 0; i++) events.push(...(await restarted.next(100)).events);
    expect(events.map((e) => e.message.t === 'd' && e.message.r)).toEqual([['a', 'b']]);
    expect(restarted.counters()).toMatchObject({ replayedRecords: 2, missingRecords: 5, duplicateRecords: 0 });
    await restarted.stop();
  });

  it('a consumer restarted with no checkpoint to restore counts a lineage first seen past position 0 as missing', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    // Its dead attempt consumed positions 0..29 of lineage 2; what is left starts at 30.
    await transport.send('in', [{ groupId: '0.2', dedupId: 'y', body: JSON.stringify({ p: 0, a: 2, s: 7, l: 2, n: 30, t: 'd', r: ['a', 'b'] }) }]);
    const fresh = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, waitSeconds: 0.2, onError: (e) => { throw e; } });
    fresh.start();
    const events = [];
    for (let i = 0; i < 40 && events.length === 0; i++) events.push(...(await fresh.next(100)).events);
    expect(events.map((e) => e.message.t === 'd' && e.message.r)).toEqual([['a', 'b']]);
    expect(fresh.counters()).toMatchObject({ missingRecords: 30, duplicateRecords: 0 });
    await fresh.stop();
  });
});
