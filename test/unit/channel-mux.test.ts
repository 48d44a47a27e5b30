/**
 * Multiplexed channels (lib/runtime/channel-mux.ts): the subtasks of a producer unit share SQS
 * messages to a consumer unit, and per channel nothing changes (order, fencing, dedup, replays).
 * On the strict in-memory transport (FIFO groups blocked while a message is in flight).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../bench/lib/random';
import { JobBuilder } from '../../lib/api/job';
import type { Json, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import { MemoryChannelTransport } from '../../lib/memory';
import { forwardingTransport, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES, type ChannelTransport, type OutboundMessage } from '../../lib/ports/channels';
import { InputBudget, UnitChannels, MUX_OVERHEAD_BYTES } from '../../lib/runtime/channel-mux';
import { InputGate, channelKey } from '../../lib/runtime/input-gate';
import { CLAIM_SECONDS } from '../../lib/runtime/claimed-receive';
import { MalformedMessageError, compactPart, continuesRun, controlShape, decodeEnvelope, envelopeHeader, envelopePart, readControl, type ControlFields } from '../../lib/runtime/messages';
import { RecordWriter } from '../../lib/runtime/record-writer';
import type { Clock } from '../../lib/ports/clock';

/** A clock that stands still: a unit's next send tick is always `lingerMs` away (timers still run). */
const stillClock: Clock = { now: () => 0, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };

const source = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
const sink = (): SinkFunction<Json> => ({ open: async () => undefined, write: () => undefined, prepare: async (t) => t, commit: async () => undefined, abort: async () => undefined });

/** src (2) -> rebalance -> out (2): four channels; unit 0 hosts both sources, unit 1 both sinks. */
function setup(options: { lazyMs?: number; lazyMaxMs?: number; lingerMs?: number; clock?: Clock } = {}) {
  const builder = new JobBuilder('mux', { parallelism: 2 });
  builder.source('src', source).rebalance().sink('out', sink);
  const graph = buildExecutionGraph(builder.build());
  const edge = graph.edges[0]!;
  const transport = new MemoryChannelTransport();
  const sends: { queue: string; messages: OutboundMessage[] }[] = [];
  const receives: string[] = [];
  const counted = forwardingTransport(transport, {
    send: (q, m) => {
      sends.push({ queue: q, messages: [...m] });
      return transport.send(q, m);
    },
    receive: (q, o) => {
      receives.push(q);
      return transport.receive(q, o);
    },
  });
  const inputQueue = 'q-j-u1';
  const common = { transport: counted, graph, queuePrefix: 'q', jobId: 'j', attempt: 0, inputQueueOf: () => inputQueue, ...options };
  const producers = new UnitChannels({ ...common, unit: 0, subtasks: ['src#0', 'src#1'] });
  const consumers = (attempt = 0) => new UnitChannels({ ...common, unit: 1, attempt, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05 });
  const logical = (consumer: number) => subPartitionQueue('q', 'j', edge.id, consumer);
  const writer = (producer: number, mux: ChannelTransport, extra: Partial<ConstructorParameters<typeof RecordWriter>[0]> = {}) =>
    new RecordWriter({ edge, producerIndex: producer, consumerParallelism: 2, attempt: 0, lineage: 0, queueOf: logical, transport: mux, maxMessageBytes: MAX_MESSAGE_BYTES - MUX_OVERHEAD_BYTES, ...extra });
  const gate = (consumer: number, mux: ChannelTransport, extra: Partial<ConstructorParameters<typeof InputGate>[0]> = {}) =>
    new InputGate({ inputs: [edge], consumerIndex: consumer, producerParallelism: () => 2, queueOf: () => logical(consumer), transport: mux, waitSeconds: 0.05, onError: (e) => { throw e; }, ...extra });
  return { graph, edge, transport, sends, receives, inputQueue, producers, consumers, logical, writer, gate, common };
}

const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

/** The consumer unit's transport receiving, and a started gate on it for each of its two subtasks (stopped after the test). */
function startedGates(mux: UnitChannels, gate: (consumer: number, mux: ChannelTransport) => InputGate): [InputGate, InputGate] {
  mux.start();
  stops.push(() => mux.stopReceiving(false));
  const gates: [InputGate, InputGate] = [gate(0, mux), gate(1, mux)];
  for (const g of gates) g.start();
  stops.push(...gates.map((g) => () => g.stop()));
  return gates;
}

/** Takes events from a gate until `until` holds (or 50 rounds), deleting what it processed. */
async function take(gate: InputGate, until: (records: Json[]) => boolean): Promise<Json[]> {
  const records: Json[] = [];
  for (let i = 0; i < 50 && !until(records); i++) {
    const { events, discarded } = await gate.next(50);
    for (const e of events) if (e.message.t === 'd') records.push(...e.message.r);
    await gate.acknowledge(discarded);
    gate.release();
  }
  return records;
}

/** The topology of `setup`, on a memory transport whose clock (receipts, visibility) the test moves: `time.now`. */
async function clockedSetup() {
  const time = { now: 0 };
  const clock: Clock = { now: () => time.now, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 5))) };
  const transport = new MemoryChannelTransport({ clock });
  const inputQueue = 'q-j-u1';
  await transport.createQueues([inputQueue]);
  const { graph, logical } = setup();
  const common = { graph, queuePrefix: 'q', jobId: 'j', attempt: 0, inputQueueOf: () => inputQueue, clock };
  return { time, transport, inputQueue, logical, common };
}

describe('multiplexed channels', () => {
  it('carries every channel from one unit to another in one message, and each consumer gets its channels in order', async () => {
    const { sends, transport, inputQueue, producers, consumers, writer, gate, edge } = setup();
    await transport.createQueues([inputQueue]);
    const w0 = writer(0, producers);
    const w1 = writer(1, producers);
    // Round robin: each producer writes to both consumers.
    for (let i = 0; i < 4; i++) w0.emit(`a${i}`);
    for (let i = 0; i < 4; i++) w1.emit(`b${i}`);
    await Promise.all([w0.flush(), w1.flush()]);
    // Four channels, one send call, one message (both subtasks of the unit flushed in the same turn).
    expect(sends).toHaveLength(1);
    expect(sends[0]!.messages).toHaveLength(1);
    expect(sends[0]!.messages[0]!.groupId).toBe('u0.0');
    expect(decodeEnvelope(sends[0]!.messages[0]!.body).parts.map((p) => `${p.edgeId}/${p.consumer}`).sort()).toEqual([`${edge.id}/0`, `${edge.id}/0`, `${edge.id}/1`, `${edge.id}/1`]);

    const mux = consumers();
    const [g0, g1] = startedGates(mux, gate);
    const got0 = await take(g0, (r) => r.length >= 4);
    const got1 = await take(g1, (r) => r.length >= 4);
    expect([...got0, ...got1].sort()).toEqual(['a0', 'a1', 'a2', 'a3', 'b0', 'b1', 'b2', 'b3']);
    // Per channel in sequence order.
    expect(got0.filter((r) => String(r).startsWith('a'))).toEqual(['a1', 'a3']);
    expect(got1.filter((r) => String(r).startsWith('a'))).toEqual(['a0', 'a2']);
    expect(mux.stats).toMatchObject({ envelopesReceived: 1, partsReceived: 4, partsDropped: 0 });
    // The envelope was deleted once both subtasks had taken their parts.
    for (let i = 0; i < 20 && (await transport.receive(inputQueue, { max: 10, waitSeconds: 0 })).length === 0 && mux.stats.envelopesReceived === 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await transport.receive(inputQueue, { max: 10, waitSeconds: 0 })).toEqual([]);
  });

  it('keeps per-channel order over many messages, drops a redelivered message and fences older attempts, per channel', async () => {
    const { transport, inputQueue, producers, consumers, writer, gate, edge, sends } = setup();
    await transport.createQueues([inputQueue]);
    const old = writer(1, producers, { attempt: 0, lineage: 0 });
    const w = writer(0, producers, { attempt: 3, lineage: 0, maxMessageBytes: 200 });
    old.emit('stale-0');
    old.emit('stale-1');
    await old.flush();
    for (let i = 0; i < 40; i++) {
      w.emit(`r${i}`);
      if (i % 10 === 9) await w.flush(); // several sends, several messages
    }
    await w.flush();
    // A duplicate of an earlier message (SQS delivers at least once): the same envelope again.
    const again = sends[1]!.messages[0]!;
    await transport.send(inputQueue, [{ ...again, dedupId: `${again.dedupId}-again` }]);

    const mux = consumers();
    mux.start();
    const g = gate(0, mux, { minAttempt: (_e, producer) => (producer === 1 ? 1 : 0) });
    g.start();
    stops.push(() => g.stop(), () => mux.stopReceiving(false));
    const got = await take(g, (r) => r.length >= 20);
    // Consumer 0 gets the odd records of producer 0 (round robin), each once, in order; producer 1's attempt 0 is fenced.
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => `r${2 * i + 1}`));
    expect(g.duplicates).toBeGreaterThan(0);
    expect(g.fenced).toBe(1);
    expect(g.channels.get(channelKey(edge.id, 0))!.positions.get(0)).toBe(20);
  });

  it('a part a subtask holds does not hold back the other subtasks: the message is deleted once every part is taken', async () => {
    const { transport, inputQueue, producers, consumers, logical } = setup();
    await transport.createQueues([inputQueue]);
    // Message 1: a part for each consumer (sent in one turn); message 2 (same producer unit, same group): a part for consumer 1.
    await Promise.all([
      producers.send(logical(0), [{ groupId: '0.0', dedupId: 'x', body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'd', r: ['held'] }) }]),
      producers.send(logical(1), [{ groupId: '0.0', dedupId: 'y', body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'b', c: 1 }) }]),
    ]);
    await producers.send(logical(1), [{ groupId: '1.0', dedupId: 'z', body: JSON.stringify({ p: 1, a: 0, s: 0, t: 'b', c: 1 }) }]);
    const mux = consumers();
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    // Consumer 0 takes its part and holds it (never processes or deletes it, as an alignment would).
    const held = await mux.receive(logical(0), { max: 10, waitSeconds: 1 });
    expect(held.map((m) => JSON.parse(m.body).r)).toEqual([['held']]);
    // Consumer 1 gets both barriers, the second from a later message of the same FIFO group:
    // under SQS FIFO it is received only once the first message is deleted.
    const barriers: unknown[] = [];
    for (let i = 0; i < 40 && barriers.length < 2; i++) {
      for (const m of await mux.receive(logical(1), { max: 10, waitSeconds: 0.05 })) barriers.push(JSON.parse(m.body).p);
    }
    expect(barriers).toEqual([0, 1]);
  });

  it('reports what it holds, and counts an envelope whose receipt expired before its parts were taken (it comes again)', async () => {
    const { time, transport, inputQueue, logical, common: base } = await clockedSetup();
    const common = { ...base, transport };
    const producers = new UnitChannels({ ...common, unit: 0, subtasks: ['src#0', 'src#1'] });
    await Promise.all([
      producers.send(logical(0), [{ groupId: '0.0', dedupId: 'x', body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'd', r: ['a'] }) }]),
      producers.send(logical(1), [{ groupId: '0.0', dedupId: 'y', body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'd', r: ['b'] }) }]),
    ]);
    // Visibility 15 s, extended every 5 s (the defaults); the extender's round is late by 20 s.
    const mux = new UnitChannels({ ...common, unit: 1, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05 });
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    // Consumer 0 takes its part; consumer 1's is not taken: the envelope is held.
    expect((await mux.receive(logical(0), { max: 10, waitSeconds: 1 })).map((m) => JSON.parse(m.body).r)).toEqual([['a']]);
    expect(mux.report()).toMatchObject({ envelopesReceived: 1, envelopesHeld: 1, envelopesLapsed: 0 });
    expect(mux.report().bufferedBytes).toBeGreaterThan(0);
    time.now += 20_000;
    for (let i = 0; i < 200 && mux.report().envelopesLapsed === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    // Lapsed: no longer held; the poller receives the envelope again (a second copy of both parts).
    for (let i = 0; i < 200 && mux.report().envelopesReceived < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(mux.report()).toMatchObject({ envelopesLapsed: 1, envelopesReceived: 2, partsReceived: 4 });
  });

  it('does not receive more while its deletes lag (past 100 settled envelopes not yet deleted), and counts deletes that fail', async () => {
    const { transport, inputQueue, logical, common } = setup();
    await transport.createQueues([inputQueue]);
    // 150 envelopes, each from a producer unit of its own (150 FIFO groups: all receivable at once).
    for (let u = 0; u < 150; u++) {
      const from = new UnitChannels({ ...common, unit: 100 + u, subtasks: ['src#0', 'src#1'] });
      await from.send(logical(0), [{ groupId: '0.0', dedupId: `d-${u}`, body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'd', r: [u] }) }]);
    }
    // Deletes hang until released, then fail.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const slow = forwardingTransport(transport, {
      delete: async () => {
        await released;
        throw new Error('connection reset');
      },
    });
    const mux = new UnitChannels({ ...common, transport: slow, unit: 1, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05 });
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    let taken = 0;
    for (let i = 0; i < 2000 && taken <= 100; i++) taken += (await mux.receive(logical(0), { max: 10, waitSeconds: 0.02 })).length;
    for (let i = 0; i < 20; i++) taken += (await mux.receive(logical(0), { max: 10, waitSeconds: 0.02 })).length;
    // Taken as they come, each settling its envelope; past 100 undeleted the poller stopped.
    expect(taken).toBeGreaterThan(100);
    expect(taken).toBeLessThan(150);
    expect(mux.report().deleteFailures).toBe(0);
    expect(mux.report().poller?.state).toBe('deletes');
    expect(mux.waitsForDeletes()).toBe(true); // the unit's replay requesters wait too (ReplayProgress)
    release();
    for (let i = 0; i < 400 && taken < 150; i++) taken += (await mux.receive(logical(0), { max: 10, waitSeconds: 0.02 })).length;
    expect(taken).toBe(150);
    expect(mux.waitsForDeletes()).toBe(false);
    for (let i = 0; i < 200 && mux.report().deleteFailures < 150; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect([mux.report().deleteFailures, mux.lastDeleteError]).toEqual([150, 'connection reset']);
  });

  it('tries a failed receive again (1 s, then longer), and gives its subtasks the error only once receives fail for receiveGiveUpMs', async () => {
    const { transport, inputQueue, logical, common } = setup();
    await transport.createQueues([inputQueue]);
    const from = new UnitChannels({ ...common, unit: 100, subtasks: ['src#0', 'src#1'] });
    await from.send(logical(0), [{ groupId: '0.0', dedupId: 'd-1', body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'd', r: [1] }) }]);
    // Three receives time out (an overloaded endpoint), then they work again.
    let failing = 3;
    const flaky = forwardingTransport(transport, {
      receive: async (q, o) => {
        if (failing > 0) {
          failing--;
          throw new Error('cannot reach the AWS endpoint (sqs): timed out');
        }
        return transport.receive(q, o);
      },
    });
    const mux = new UnitChannels({ ...common, transport: flaky, unit: 1, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05, receiveRetryMs: 10 });
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    const states = new Set<string>();
    let taken = 0;
    for (let i = 0; i < 400 && taken === 0; i++) {
      states.add(mux.report().poller?.state ?? '');
      taken += (await mux.receive(logical(0), { max: 10, waitSeconds: 0.01 })).length;
    }
    expect(taken).toBe(1);
    expect(states.has('retrying')).toBe(true);
    expect([mux.report().receiveFailures, mux.lastReceiveError]).toEqual([3, 'cannot reach the AWS endpoint (sqs): timed out']);

    // Receives that go on failing past the give-up time: the subtasks get the error.
    const down = forwardingTransport(transport, {
      receive: async () => {
        throw new Error('connection refused');
      },
    });
    const gone = new UnitChannels({ ...common, transport: down, unit: 2, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05, receiveRetryMs: 5, receiveGiveUpMs: 50 });
    gone.start();
    stops.push(() => gone.stopReceiving(false));
    let error: unknown;
    for (let i = 0; i < 400 && error === undefined; i++) await gone.receive(logical(0), { max: 10, waitSeconds: 0.01 }).catch((e: unknown) => (error = e));
    expect(String(error)).toMatch(/connection refused/);
    expect(gone.report().poller?.state).toBe('failed');
  });

  it('asks for longer leases while its deletes come back expired, and for the base one again once they came quickly for 15 minutes', async () => {
    const { time, transport, inputQueue, logical, common } = await clockedSetup();
    let lateBy = 20_000;
    // The lease a received envelope is held for: the receive claims CLAIM_SECONDS (a poll nobody
    // answers hides what it takes only that long), and the unit extends what it got to its lease.
    const leases: number[] = [];
    let claimed = false;
    const late = forwardingTransport(transport, {
      receive: async (q, o) => {
        const got = await transport.receive(q, o);
        if (got.length > 0) {
          expect(o.visibilityTimeoutSeconds).toBe(CLAIM_SECONDS);
          claimed = true;
        }
        return got;
      },
      changeVisibility: (q, r, seconds) => {
        if (claimed) leases.push(seconds);
        claimed = false;
        return transport.changeVisibility(q, r, seconds);
      },
      // The delete reaches the queue `lateBy` ms after the envelope was taken (a busy connection pool).
      delete: (q, r) => {
        time.now += lateBy;
        return transport.delete(q, r);
      },
    });
    const producers = new UnitChannels({ ...common, transport, unit: 0, subtasks: ['src#0', 'src#1'] });
    // A base lease of 15 s here (the default is 5): the numbers below are this test's.
    const mux = new UnitChannels({ ...common, transport: late, unit: 1, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05, extendEveryMs: 3_600_000, visibilityTimeoutSeconds: 15 });
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    const oneEnvelope = async (s: number) => {
      await producers.send(logical(0), [{ groupId: '0.0', dedupId: `e-${s}-${time.now}`, body: JSON.stringify({ p: 0, a: 0, s, t: 'd', r: [s] }) }]);
      for (let i = 0; i < 400; i++) {
        if ((await mux.receive(logical(0), { max: 10, waitSeconds: 0.02 })).length > 0) break;
      }
      const expiredBefore = mux.report().expiredReceipts;
      for (let i = 0; i < 400 && mux.report().expiredReceipts === expiredBefore && (mux as unknown as { pendingDeletes: number }).pendingDeletes > 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 20));
    };
    // Deleted 20 s after receive with a 15 s lease: expired, so the next receive asks for 30 s.
    await oneEnvelope(0);
    expect(mux.report().expiredReceipts).toBe(1);
    expect(mux.lease).toBe(30);
    // It comes again (a duplicate, which its gate would drop); the deletes are quick from now on.
    lateBy = 1_000;
    for (let i = 0; i < 400 && leases.length < 2; i++) await mux.receive(logical(0), { max: 10, waitSeconds: 0.02 });
    // The next envelope is received under the longer lease; quick deletes keep it for 15 minutes
    // after the last expired one (the next checkpoint's surge needs it again).
    await oneEnvelope(1);
    for (let s = 2; s < 6; s++) await oneEnvelope(s);
    expect(leases.at(-1)).toBe(30);
    expect(mux.lease).toBe(30);
    time.now += 15 * 60_000;
    // Then deletes within a third of the base lease: back to 15 s, 10 % a delete.
    for (let s = 6; s < 20 && mux.lease > 15; s++) await oneEnvelope(s);
    expect(mux.lease).toBe(15);
    expect(mux.report().leaseSeconds).toBe(15);
  });

  it('what a dead attempt had received comes back to its restarted attempt after the default 5 s lease, not 15 s', async () => {
    const { time, transport, inputQueue, logical, common } = await clockedSetup();
    const producers = new UnitChannels({ ...common, transport, unit: 0, subtasks: ['src#0', 'src#1'] });
    const dead = new UnitChannels({ ...common, transport, unit: 1, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05, extendEveryMs: 3_600_000 });
    dead.start();
    await producers.send(logical(0), [{ groupId: '0.0', dedupId: 'e-0', body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'd', r: ['held'] }) }]);
    // Its poller received the envelope; no subtask took the part yet (a unit's inbox runs ahead of
    // its subtasks). The unit dies holding it: nothing deletes or extends it.
    for (let i = 0; i < 400 && dead.report().envelopesReceived === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(dead.report().envelopesHeld).toBe(1);
    await dead.stopReceiving(false);
    const restarted = new UnitChannels({ ...common, attempt: 1, transport, unit: 1, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05, extendEveryMs: 3_600_000 });
    restarted.start();
    stops.push(() => restarted.stopReceiving(false));
    const poll = async () => {
      for (let i = 0; i < 20; i++) {
        const m = await restarted.receive(logical(0), { max: 10, waitSeconds: 0.02 });
        if (m.length > 0) return m;
      }
      return [];
    };
    time.now += 4_500;
    expect(await poll()).toHaveLength(0);
    time.now += 1_000;
    expect((await poll()).map((m) => JSON.parse(m.body).r)).toEqual([['held']]);
  });

  it('units sharing an input budget: past half of it a unit receives one envelope at a time, past all of it none until parts are taken elsewhere', async () => {
    const { transport, inputQueue, producers, logical, common } = setup();
    await transport.createQueues([inputQueue, 'q-j-u2']);
    // Three envelopes of one part each for consumer 1, from three producer units (three FIFO groups:
    // one group's next envelope would wait for its first to be deleted anyway).
    for (let s = 0; s < 3; s++) {
      const from = s === 0 ? producers : new UnitChannels({ ...common, unit: 10 + s, subtasks: ['src#0', 'src#1'] });
      await from.send(logical(1), [{ groupId: '0.0', dedupId: `p-${s}`, body: JSON.stringify({ p: 0, a: 0, s, t: 'd', r: ['x'.repeat(400)] }) }]);
    }
    // A part is ~660 bytes buffered (body and overhead): the budget holds one, and is tight past half of one.
    const budget = new InputBudget(700);
    const other = budget.member();
    other.add(600); // another unit of the process holds 600 bytes: tight, not full
    const share = budget.member();
    const mux = new UnitChannels({ ...common, transport, unit: 1, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05, inputBudget: share });
    const received = () => mux.report().envelopesReceived;
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    for (let i = 0; i < 1000 && received() < 1; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 100));
    // One envelope (tight: max 1), then full: no more received.
    expect([received(), budget.usedBytes > 700]).toEqual([1, true]);
    // Its report says why it takes nothing in.
    expect(mux.report().poller?.state).toBe('budget');
    // The other unit's parts are taken: room again, and one more envelope comes.
    other.remove(600);
    for (let i = 0; i < 1000 && received() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(received()).toBe(2);
    // This unit's subtask takes its parts: the rest comes.
    const got: string[] = [];
    for (let i = 0; i < 1000 && got.length < 3; i++) for (const m of await mux.receive(logical(1), { max: 10, waitSeconds: 0.05 })) got.push(JSON.parse(m.body).s);
    expect(got.sort()).toEqual([0, 1, 2]);
    expect(budget.usedBytes).toBe(0);
    expect(mux.report().poller?.state).toBe('receiving');
    // Released (its unit stopped or killed), a unit's bytes leave the total and no longer count.
    share.add(500);
    share.release();
    share.add(500);
    expect(budget.usedBytes).toBe(0);
    expect(() => new InputBudget(0)).toThrow(/positive/);
  });

  it('region and full failover: an envelope from a newer producer attempt is given back, not taken, and the superseded consumer stops receiving', async () => {
    const { transport, inputQueue, consumers, writer, gate, graph } = setup();
    await transport.createQueues([inputQueue]);
    // The producer unit restarted again (attempt 1) after this consumer started with its attempt 0.
    const newer = new UnitChannels({ transport, graph, queuePrefix: 'q', jobId: 'j', attempt: 1, unit: 0, subtasks: ['src#0', 'src#1'], inputQueueOf: () => inputQueue });
    const w = writer(0, newer, { attempt: 1 });
    w.emit('r0');
    w.emit('r1');
    await w.flush();
    const common = { transport, graph, queuePrefix: 'q', jobId: 'j', inputQueueOf: () => inputQueue, unit: 1, subtasks: ['out#0', 'out#1'], inputQueue, waitSeconds: 0.05 };
    const superseded = new UnitChannels({ ...common, attempt: 0, producerAttempts: new Map([[0, 0]]) });
    const g = gate(0, superseded);
    superseded.start();
    g.start();
    stops.push(() => g.stop(), () => superseded.stopReceiving(false));
    expect(await take(g, () => false)).toEqual([]);
    expect(superseded.supersededAt).toBeDefined();
    expect(superseded.report().poller?.state).toBe('superseded');
    // The next attempt of the consumer (started with the producer's attempt 1) gets every record.
    const next = new UnitChannels({ ...common, attempt: 1, producerAttempts: new Map([[0, 1]]) });
    const g1 = gate(0, next);
    next.start();
    g1.start();
    stops.push(() => g1.stop(), () => next.stopReceiving(false));
    // Round robin put one record on this consumer's channel: it arrives, once.
    const got = await take(g1, (r) => r.length >= 1);
    expect(got).toHaveLength(1);
    expect(['r0', 'r1']).toContain(got[0]);
    expect(next.supersededAt).toBeUndefined();
    void consumers;
  });

  it('sends a replay in a message group of its own, which the restarted consumer takes before the live channel', async () => {
    const { transport, inputQueue, producers, consumers, writer, gate, edge, sends } = setup();
    await transport.createQueues([inputQueue]);
    const w = writer(0, producers, { inflightLog: true });
    for (let i = 0; i < 6; i++) w.emit(`r${i}`);
    await w.flush();
    // The consumer restarted (attempt 2) from position 1 of producer 0's channel: it asks for a replay.
    const mux = consumers(2);
    const g = gate(1, mux);
    g.restorePositions([{ key: channelKey(edge.id, 0), positions: [[0, 1]] }]);
    g.awaitReplay(channelKey(edge.id, 0), 2, 1);
    g.awaitReplay(channelKey(edge.id, 1), 2, 1);
    await w.replay({ edgeId: edge.id, consumer: 1, consumerAttempt: 2, request: 1, from: { 0: [[0, 1]] } });
    await w.flush(false);
    // The second producer keeps no log: its replay is only its end event.
    const w1 = writer(1, producers);
    await w1.replay({ edgeId: edge.id, consumer: 1, consumerAttempt: 2, request: 1, from: { 1: [] } });
    await w1.flush(false);
    expect(sends.flatMap((s) => s.messages.map((m) => m.groupId))).toContain('u0.0.r2.1');
    mux.start();
    g.start();
    stops.push(() => g.stop(), () => mux.stopReceiving(false));
    const got = await take(g, (r) => r.length >= 2);
    // Consumer 1 had r0 (position 0) of producer 0's channel 1 ... it restored position 1: the live
    // records r2, r4 arrive once, through the replay, and nothing after it is taken twice.
    expect(got).toEqual(['r2', 'r4']);
    expect(g.awaitedReplays()).toEqual([]);
    expect(g.staleReplays).toBe(0);
  });

  it('gathers the barriers of a unit\'s subtasks into one message, without holding their senders', async () => {
    const { transport, inputQueue, producers, consumers, writer, sends, logical } = setup({ lazyMs: 40 });
    await transport.createQueues([inputQueue]);
    const w0 = writer(0, producers);
    const w1 = writer(1, producers);
    w0.emitEvent({ t: 'b', c: 7 });
    await w0.flush();
    await new Promise((r) => setTimeout(r, 5));
    w1.emitEvent({ t: 'b', c: 7 });
    await w1.flush();
    // Both flushes returned; nothing was sent yet (the barriers wait for company).
    expect(sends).toHaveLength(0);
    await producers.flush();
    expect(sends).toHaveLength(1);
    expect(sends[0]!.messages).toHaveLength(1);
    const mux = consumers();
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    const parts = [...(await mux.receive(logical(0), { max: 10, waitSeconds: 1 })), ...(await mux.receive(logical(1), { max: 10, waitSeconds: 1 }))];
    expect(parts.map((m) => JSON.parse(m.body).t)).toEqual(['b', 'b', 'b', 'b']);
    expect(mux.stats.envelopesReceived).toBe(1);
  });

  it("holds a unit's barriers of one checkpoint until all its producers to that consumer unit sent theirs (at most lazyMaxMs), not for one whose input ended", async () => {
    const time = { now: 0 };
    const clock: Clock = { now: () => time.now, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };
    const { transport, inputQueue, producers, consumers, writer, sends, logical } = setup({ lazyMs: 40, clock, lazyMaxMs: 60_000 });
    await transport.createQueues([inputQueue]);
    const w0 = writer(0, producers);
    const w1 = writer(1, producers);
    // Producer 0's barrier; producer 1's comes 3 s later (a saturated process): no send meanwhile.
    w0.emitEvent({ t: 'b', c: 1 });
    await w0.flush();
    await new Promise((r) => setTimeout(r, 80));
    time.now += 3_000;
    await new Promise((r) => setTimeout(r, 80));
    expect(sends).toHaveLength(0);
    w1.emitEvent({ t: 'b', c: 1 });
    await w1.flush();
    // The last peer's barrier came: the grace (40 ms), then one envelope with both.
    for (let i = 0; i < 100 && sends.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(sends).toHaveLength(1);
    expect(sends[0]!.messages).toHaveLength(1);
    const mux = consumers();
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    const parts = [...(await mux.receive(logical(0), { max: 10, waitSeconds: 1 })), ...(await mux.receive(logical(1), { max: 10, waitSeconds: 1 }))].map((m) => JSON.parse(m.body));
    expect(parts.map((m) => `${m.t}${m.c} from ${m.p}`).sort()).toEqual(['b1 from 0', 'b1 from 0', 'b1 from 1', 'b1 from 1']);
    // Producer 1's input ends (its end of input goes at once); checkpoint 2: producer 0's barrier waits for nobody.
    w1.emitEvent({ t: 'e' });
    await w1.flush();
    await producers.flush();
    const before = sends.length;
    w0.emitEvent({ t: 'b', c: 2 });
    await w0.flush();
    for (let i = 0; i < 100 && sends.length === before; i++) await new Promise((r) => setTimeout(r, 5));
    expect(sends.length).toBe(before + 1);
  });

  it('sends held barriers after lazyMaxMs when a producer never sends its own', async () => {
    const { transport, inputQueue, producers, writer, sends } = setup({ lazyMs: 10, lazyMaxMs: 150 });
    await transport.createQueues([inputQueue]);
    const w0 = writer(0, producers);
    const started = Date.now();
    w0.emitEvent({ t: 'b', c: 3 });
    await w0.flush();
    await new Promise((r) => setTimeout(r, 50));
    expect(sends).toHaveLength(0);
    for (let i = 0; i < 400 && sends.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(sends).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("sends a writer's barrier to every consumer of a unit as one compact part, which decodes to the channel messages it would have sent", async () => {
    const { transport, inputQueue, producers, consumers, writer, gate, sends, edge } = setup();
    await transport.createQueues([inputQueue]);
    const w0 = writer(0, producers);
    // Records first: the two channels' positions differ at the barrier.
    for (let i = 0; i < 3; i++) w0.emit(`r${i}`);
    await w0.flush();
    w0.emitEvent({ t: 'b', c: 4 });
    await w0.flush();
    await producers.flush();
    const envelope = sends.at(-1)!.messages[0]!.body;
    expect(envelope).toContain(`\n* ${edge.id} `);
    const decoded = decodeEnvelope(envelope).parts;
    // (Round robin: consumer 1 got r0 and r2, consumer 0 got r1, each in one message.)
    expect(decoded.map((p) => [p.consumer, JSON.parse(p.body)])).toEqual([
      [0, { p: 0, a: 0, s: 1, l: 0, n: 1, t: 'b', c: 4 }],
      [1, { p: 0, a: 0, s: 1, l: 0, n: 2, t: 'b', c: 4 }],
    ]);
    // Each decoded body is the writer's text exactly (what a gate parses, checks and orders).
    for (const p of decoded) expect(p.body).toMatch(/^\{"p":0,"a":0,"s":\d+,"l":0,"n":\d+,"t":"b","c":4\}$/);
    // Both consumers align on it after their records, as without compaction.
    const [g0, g1] = startedGates(consumers(), gate);
    const seen = async (g: InputGate) => {
      const out: string[] = [];
      for (let i = 0; i < 40 && !out.includes('b'); i++) {
        const { events, discarded } = await g.next(50);
        for (const e of events) out.push(e.message.t === 'd' ? `d${e.message.r.length}` : e.message.t);
        await g.acknowledge(discarded);
        g.release();
      }
      return out;
    };
    expect(await seen(g0)).toEqual(['d1', 'b']);
    expect(await seen(g1)).toEqual(['d2', 'b']);
  });

  it("holds the unit's linger flushes until its send tick: the subtasks' flushes of one window share one message, each sender resolving once it is sent", async () => {
    const { transport, inputQueue, producers, consumers, writer, gate, sends } = setup({ lingerMs: 1000, clock: stillClock });
    await transport.createQueues([inputQueue]);
    const w0 = writer(0, producers);
    const w1 = writer(1, producers);
    const sent: string[] = [];
    for (let i = 0; i < 4; i++) w0.emit(`a${i}`);
    const first = w0.flush(true, false, true).then(() => sent.push('w0'));
    // Another subtask's linger runs out in a later turn of the event loop.
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 4; i++) w1.emit(`b${i}`);
    const second = w1.flush(true, false, true).then(() => sent.push('w1'));
    await new Promise((r) => setImmediate(r));
    expect(sends).toHaveLength(0);
    expect(sent).toEqual([]);
    // The tick (a second away on this clock) sends both, in one call and one message.
    await Promise.all([first, second]);
    expect(sent.sort()).toEqual(['w0', 'w1']);
    expect(sends).toHaveLength(1);
    expect(sends[0]!.messages).toHaveLength(1);
    expect(producers.stats).toMatchObject({ envelopesSent: 1, partsSent: 4 });
    const mux = consumers();
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    const gates = [0, 1].map((c) => gate(c, mux));
    for (const g of gates) {
      g.start();
      stops.push(() => g.stop());
    }
    const got = await Promise.all(gates.map((g) => take(g, (r) => r.length === 4)));
    // Per channel in order: each consumer gets two of each producer's records (round robin).
    expect(got.map((r) => r.filter((x) => String(x).startsWith('a')))).toEqual([['a1', 'a3'], ['a0', 'a2']]);
    expect(got.map((r) => r.filter((x) => String(x).startsWith('b')))).toEqual([['b0', 'b2'], ['b1', 'b3']]);
  });

  it('an urgent send to the same unit takes held linger parts along at once, in the order they were sent', async () => {
    const { transport, inputQueue, producers, writer, sends } = setup({ lingerMs: 60_000, clock: stillClock });
    await transport.createQueues([inputQueue]);
    const w0 = writer(0, producers);
    const w1 = writer(1, producers);
    w0.emit('held-0');
    w0.emit('held-1');
    const held = w0.flush(true, false, true);
    await new Promise((r) => setImmediate(r));
    expect(sends).toHaveLength(0);
    // A flush that is not a linger (input processed, a barrier follows...) goes at once; the tick is a minute away.
    w1.emit('urgent-0');
    w1.emit('urgent-1');
    await Promise.all([w1.flush(), held]);
    expect(sends).toHaveLength(1);
    const { parts } = decodeEnvelope(sends[0]!.messages[0]!.body);
    // (Round robin: each record is a channel's message of its own.)
    expect(parts.map((p) => String(JSON.parse(p.body).r[0]).split('-')[0])).toEqual(['held', 'held', 'urgent', 'urgent']);
    // A barrier's grace (50 ms) ends a linger hold early too, and mux.flush() sends whatever is held.
    w0.emit('held-2');
    const again = w0.flush(true, false, true);
    await producers.flush();
    await again;
    expect(sends).toHaveLength(2);
  });

  it('without a tick (lingerMs 0) a linger flush goes at once, as any send', async () => {
    const { transport, inputQueue, producers, writer, sends } = setup({ lingerMs: 0, clock: stillClock });
    await transport.createQueues([inputQueue]);
    const w0 = writer(0, producers);
    w0.emit('x');
    await w0.flush(true, false, true);
    expect(sends).toHaveLength(1);
  });

  it('drops what arrives for a subtask that is down, and gives a successor what no subtask took', async () => {
    const { transport, inputQueue, producers, consumers, logical } = setup();
    await transport.createQueues([inputQueue]);
    await producers.send(logical(0), [{ groupId: '0.0', dedupId: 'a', body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'd', r: ['for-0'] }) }]);
    await producers.send(logical(1), [{ groupId: '0.0', dedupId: 'b', body: JSON.stringify({ p: 0, a: 0, s: 0, t: 'd', r: ['for-1'] }) }]);
    const mux = consumers();
    mux.close('out#0');
    mux.start();
    expect((await mux.receive(logical(1), { max: 10, waitSeconds: 1 })).map((m) => JSON.parse(m.body).r[0])).toEqual(['for-1']);
    expect(mux.stats.partsDropped).toBe(1);
    await mux.stopReceiving(true);

    // A part no subtask took before a hand-over: its message becomes visible again for the successor.
    await producers.send(logical(0), [{ groupId: '0.0', dedupId: 'c', body: JSON.stringify({ p: 0, a: 0, s: 1, t: 'd', r: ['late'] }) }]);
    const first = consumers();
    first.start();
    for (let i = 0; i < 50 && first.stats.envelopesReceived === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await first.stopReceiving(true);
    const successor = consumers();
    successor.start();
    stops.push(() => successor.stopReceiving(false));
    const got = await successor.receive(logical(0), { max: 10, waitSeconds: 1 });
    expect(got.map((m) => [JSON.parse(m.body).r[0], m.receiveCount])).toEqual([['late', 2]]);
  });

  it('packs many channel messages into envelopes within SQS limits', async () => {
    const { transport, inputQueue, producers, writer, sends } = setup();
    await transport.createQueues([inputQueue]);
    const w = writer(0, producers, { maxMessageBytes: 20 * 1024 });
    for (let i = 0; i < 300; i++) w.emit('x'.repeat(2000));
    await w.flush();
    const envelopes = sends.flatMap((s) => s.messages);
    expect(envelopes.length).toBeGreaterThan(1);
    for (const e of envelopes) expect(Buffer.byteLength(e.body)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(envelopes.length).toBeLessThanOrEqual(Math.ceil((300 * 2010) / (200 * 1024)) + 1);
    // The transport splits each send into batches of at most 10 entries and 250 KiB (it would throw otherwise).
    expect(MAX_BATCH_ENTRIES).toBe(10);
    expect(MAX_BATCH_BYTES).toBeGreaterThan(MAX_MESSAGE_BYTES);
    expect(new Set(envelopes.map((e) => e.dedupId)).size).toBe(envelopes.length);
  });
});

describe('multiplexed message format', () => {
  it('round-trips channel messages as they are, whatever they hold', () => {
    const parts = [
      { edgeId: 'e0', consumer: 3, body: '{"p":1,"a":0,"s":4,"t":"d","r":["line\\nbreak","ünïcödé ✓",{"k":"a b\\n"}]}' },
      { edgeId: 'e12', consumer: 0, body: '{"p":0,"a":2,"s":0,"t":"b","c":9}' },
      { edgeId: 'e1', consumer: 7, body: 'multi\nline\n' },
    ];
    const body = envelopeHeader(5, 2) + parts.map(envelopePart).join('');
    expect(decodeEnvelope(body)).toEqual({ unit: 5, attempt: 2, parts });
  });

  it('packs a run of one control event into a compact part that decodes to the same parts, in order', () => {
    const body = (p: number, s: number, n: number, t: string, rest: string) => `{"p":${p},"a":2,"s":${s},"l":3,"n":${n},"t":"${t}"${rest}}`;
    const runs = [
      // Consumers 0..4 at one sequence and position (a range), 5 and 9 on their own.
      [0, 1, 2, 3, 4, 5, 9].map((j) => ({ edgeId: 'e1', consumer: j, body: body(7, j === 5 ? 12 : 3, j === 9 ? 40 : 0, 'b', ',"c":11') })),
      // A restart notice whose rest holds the characters the format uses (',', ':', ';', '-').
      [2, 3].map((j) => ({ edgeId: 'e0', consumer: j, body: body(0, 0, 5, 'r', ',"c":1,"f":[0,5],"x":"a:b;c-d"') })),
    ];
    const other = { edgeId: 'e0', consumer: 1, body: '{"p":1,"a":0,"s":4,"t":"d","r":["x"]}' };
    const text = envelopeHeader(1, 0) + compactPart('e1', runs[0]!.map((p) => controlShape(p)!)) + envelopePart(other) + compactPart('e0', runs[1]!.map((p) => controlShape(p)!));
    const decoded = decodeEnvelope(text).parts;
    expect(decoded.map(({ decoded: _, ...part }) => part)).toEqual([...runs[0]!, other, ...runs[1]!]);
    // The barriers come decoded, as JSON.parse reads their bodies (the same fields, in order); the
    // restart notice's position pair is parsed per part, and so is anything not compacted.
    for (const part of decoded) if (part.decoded) expect(JSON.stringify(part.decoded)).toBe(JSON.stringify(JSON.parse(part.body)));
    expect(decoded.map((part) => part.decoded !== undefined)).toEqual([true, true, true, true, true, true, true, false, false, false]);
    expect(text.length).toBeLessThan([...runs[0]!, other, ...runs[1]!].map(envelopePart).join('').length);
    // Only a writer's control events are compacted, and only as written (numbers without leading zeros).
    expect(controlShape(other)).toBeUndefined();
    expect(controlShape({ edgeId: 'e0', consumer: 0, body: '{"p":01,"a":0,"s":0,"l":0,"n":0,"t":"b","c":1}' })).toBeUndefined();
    expect(controlShape({ edgeId: 'e0', consumer: 0, body: '{"a":0,"p":1,"s":0,"l":0,"n":0,"t":"b","c":1}' })).toBeUndefined();
    expect(controlShape({ edgeId: 'e0', consumer: 0, body: '{"p":1,"a":0,"s":0,"l":0,"n":0,"t":"w","w":17}' })?.key).toBe('e0 1,0,0,w ,"w":17');
  });

  it('reads a control event in place exactly where the pattern of a writer\'s control body matches, and tells which continue a run', () => {
    // The pattern the reader implements (numbers without leading zeros; sequence and position of at most 15 digits).
    const pattern = /^\{"p":(0|[1-9]\d*),"a":(0|[1-9]\d*),"s":(0|[1-9]\d*),"l":(0|[1-9]\d*),"n":(0|[1-9]\d*),"t":"([bwer])"([^\n]*)\}$/;
    const random = seededRandom(7);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const numbers = ['0', '7', '12', '01', '', 'x', '123456789012345', '1234567890123456', '99'];
    const fields = (): string => {
      const [p, a, s, l, n] = [pick(numbers), pick(numbers), pick(numbers), pick(numbers), pick(numbers)];
      const order = random() < 0.9 ? `"p":${p},"a":${a},"s":${s},"l":${l},"n":${n}` : `"a":${a},"p":${p},"s":${s},"l":${l},"n":${n}`;
      return `{${order},"t":"${pick(['b', 'w', 'e', 'r', 'd', 'bb'])}"${pick(['', ',"c":11', ',"w":-5', ',"c":1,"di":3', ',"x":"a\nb"', ',"r":[1]'])}${pick(['}', '', '}}', ' }'])}`;
    };
    const c: ControlFields = { pAt: 0, pEnd: 0, aAt: 0, aEnd: 0, sAt: 0, sEnd: 0, lAt: 0, lEnd: 0, nAt: 0, nEnd: 0, tAt: 0, s: 0, n: 0 };
    let matched = 0;
    for (let i = 0; i < 5000; i++) {
      const body = fields();
      const m = pattern.exec(body);
      const ok = m !== null && m[3]!.length <= 15 && m[5]!.length <= 15;
      expect(readControl(body, c), body).toBe(ok);
      if (!ok) continue;
      matched++;
      expect([c.s, c.n]).toEqual([Number(m[3]), Number(m[5])]);
      const shape = controlShape({ edgeId: 'e', consumer: 0, body })!;
      expect(shape.key).toBe(`e ${m[1]},${m[2]},${m[4]},${m[6]} ${m[7]}`);
      // A run continues with the same producer, attempt, lineage, type and rest, whatever the sequence and position.
      const other = fields();
      const om = pattern.exec(other);
      if (!om || !readControl(other, c)) continue;
      expect(continuesRun(other, c, shape), `${body} then ${other}`).toBe(om[1] === m[1] && om[2] === m[2] && om[4] === m[4] && om[6] === m[6] && om[7] === m[7]);
      expect(continuesRun(body, (readControl(body, c), c), shape)).toBe(true);
    }
    expect(matched).toBeGreaterThan(100);
  });

  it('names what is wrong with a malformed compact part', () => {
    const compact = (body: string, length = body.length) => `M1 1.0\n* e0 ${length}\n${body}`;
    expect(() => decodeEnvelope(compact('ab', NaN))).toThrow(/malformed compact part header/);
    expect(() => decodeEnvelope(compact('1,0,0,q,0:0:0:0'))).toThrow(/malformed compact part '1,0,0,q/);
    expect(() => decodeEnvelope(compact('1,0,0,b,9:0:0:0'))).toThrow(/malformed compact part/);
    expect(() => decodeEnvelope(compact('1,0,0,b,0:5-2:0:0'))).toThrow(/empty range/);
    expect(() => decodeEnvelope(compact('1,0,0,b,0:x:0:0'))).toThrow(/malformed compact item/);
    expect(() => decodeEnvelope(compact('1,0,0,b,0:1:0:0:0'))).toThrow(/malformed compact item/);
    expect(decodeEnvelope(compact('1,0,0,b,6:,"c":21-2:3:4')).parts.map((p) => p.body)).toEqual(['{"p":1,"a":0,"s":3,"l":0,"n":4,"t":"b","c":2}', '{"p":1,"a":0,"s":3,"l":0,"n":4,"t":"b","c":2}']);
  });

  it('names what is wrong with a malformed message', () => {
    expect(() => decodeEnvelope('{"p":0}')).toThrow(MalformedMessageError);
    expect(() => decodeEnvelope('M1 x.y\n')).toThrow(/names no producer unit/);
    expect(() => decodeEnvelope('M1 1.0\ne0 1 99\nshort')).toThrow(/malformed part header 'e0 1 99'/);
    expect(() => decodeEnvelope('M1 1.0\ne0 1 4')).toThrow(/without its line end/);
  });
});

describe('multiplexed message packing', () => {
  /**
   * The pack loop carries two mechanisms: parts whose size their writer measured (records, sized
   * in bytes, not characters), and control events gathered into compact runs (lazy barriers as
   * triples, consecutive control parts of one event). Their summed sizes decide where an envelope
   * is split at SQS's 256 KiB: a sum that undercounts makes SQS refuse the message.
   */
  it('splits a mixed queue of records, barrier runs and control runs at 256 KiB, summing each envelope to its exact size, and decodes to what was sent', async () => {
    const { transport, inputQueue, producers, logical, sends, edge } = setup();
    await transport.createQueues([inputQueue]);
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const sequence = [0, 0];
    const expected: { edgeId: string; consumer: number; body: string }[] = [];
    const sent: Promise<void>[] = [];
    const send = (consumer: number, message: Omit<OutboundMessage, 'groupId' | 'dedupId'>) => {
      expected.push({ edgeId: edge.id, consumer, body: message.body });
      sent.push(producers.send(logical(consumer), [{ groupId: '0.0', dedupId: `d${expected.length}`, ...message }]));
    };
    const control = (producer: number, consumer: number, t: string, rest: string) =>
      `{"p":${producer},"a":0,"s":${sequence[consumer]!++},"l":0,"n":${1000 + expected.length},"t":"${t}"${rest}}`;
    // All queued in one turn of the event loop: one pump packs the lot.
    for (let i = 0; i < 600; i++) {
      const kind = random();
      if (kind < 0.5) {
        // Records with multi-byte characters: bytes and characters differ (é 2 bytes, 🙂 4).
        const consumer = random() < 0.5 ? 0 : 1;
        const text = 'aé🙂'.repeat(1 + Math.floor(random() * 900));
        const body = `{"p":0,"a":0,"s":${sequence[consumer]!++},"l":0,"n":${i},"t":"d","r":["${text}"]}`;
        send(consumer, random() < 0.7 ? { body, bytes: Buffer.byteLength(body) } : { body });
      } else if (kind < 0.8) {
        // A writer's barrier to both consumers, lazy: kept as triples, sent as one compact run.
        const producer = random() < 0.5 ? 0 : 1;
        for (const consumer of [0, 1]) send(consumer, { body: control(producer, consumer, 'b', `,"c":${i}`), lazy: true });
      } else {
        // A watermark to both consumers, not lazy: consecutive parts of one event, compacted at packing.
        for (const consumer of [0, 1]) send(consumer, { body: control(1, consumer, 'w', `,"w":${i}`) });
      }
    }
    await Promise.all(sent);
    await producers.flush();
    const envelopes = sends.flatMap((s) => s.messages);
    expect(envelopes.length).toBeGreaterThan(3);
    let total = 0;
    for (const e of envelopes) {
      const size = Buffer.byteLength(e.body);
      expect(e.bytes).toBe(size);
      expect(size).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
      total += size;
    }
    // Split where the next part would not fit, not earlier: no more envelopes than the bytes need (parts are at most ~11 KB).
    expect(envelopes.length).toBeLessThanOrEqual(Math.ceil(total / (MAX_MESSAGE_BYTES - 12 * 1024)));
    // Compaction took place (fewer part headers than parts), and decoding gives every part back, in order.
    const texts = envelopes.map((e) => e.body).join('');
    expect(texts.split('\n* ').length - 1).toBeGreaterThan(0);
    const decoded = envelopes.flatMap((e) => decodeEnvelope(e.body).parts.map((p) => ({ edgeId: p.edgeId, consumer: p.consumer, body: p.body })));
    expect(decoded).toEqual(expected);
  });
});

describe('channels within a unit', () => {
  /** One unit hosting both sources and both sinks: every channel has its producer and consumer here. */
  function oneUnit(extra: Partial<ConstructorParameters<typeof UnitChannels>[0]> = {}) {
    const t = setup();
    const unit = (generation = 0) => new UnitChannels({ ...t.common, unit: 1, generation, subtasks: ['src#0', 'src#1', 'out#0', 'out#1'], inputQueue: t.inputQueue, waitSeconds: 0.05, ...extra });
    return { ...t, unit };
  }

  it('delivers straight into the consumer inboxes: nothing through SQS, each channel in order, and the queue read only until first empty', async () => {
    const { transport, inputQueue, sends, receives, unit, writer, gate } = oneUnit();
    await transport.createQueues([inputQueue]);
    const mux = unit();
    const [g0, g1] = startedGates(mux, gate);
    const w0 = writer(0, mux);
    const w1 = writer(1, mux);
    for (let i = 0; i < 40; i++) (i % 2 ? w1 : w0).emit(`r${i}`);
    await Promise.all([w0.flush(), w1.flush()]);
    const got = [...(await take(g0, (r) => r.length >= 20)), ...(await take(g1, (r) => r.length >= 20))];
    expect(got.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `r${i}`).sort());
    expect(sends).toEqual([]);
    expect(mux.stats.partsLocal).toBeGreaterThan(0);
    // Every producer is in the unit: one empty receive (what a previous invocation left), then no polling.
    await new Promise((r) => setTimeout(r, 200));
    expect(receives.filter((q) => q === inputQueue)).toHaveLength(1);
  });

  it("a handed-over consumer's untaken parts, and what comes for it after, go to the unit's queue in order for the next invocation", async () => {
    const { transport, inputQueue, sends, unit, writer, gate } = oneUnit();
    await transport.createQueues([inputQueue]);
    const first = unit();
    first.start();
    const w0 = writer(0, first);
    for (let i = 0; i < 6; i++) w0.emit(`a${i}`);
    await w0.flush();
    expect(sends).toEqual([]);
    // Neither consumer took anything; both hand over, then the producer sends more.
    first.handedOver('out#0');
    first.handedOver('out#1');
    for (let i = 0; i < 4; i++) w0.emit(`b${i}`);
    await w0.flush();
    await first.flush();
    await first.stopReceiving(true);
    expect(sends.length).toBeGreaterThan(0);
    // The next invocation reads them from the queue, each channel in sequence.
    const next = unit(1);
    const [g0, g1] = startedGates(next, gate);
    const channels = [await take(g0, (r) => r.length >= 5), await take(g1, (r) => r.length >= 5)];
    expect(channels.flat().map(String).sort()).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'b0', 'b1', 'b2', 'b3']);
    // Per channel in the producer's order: the untaken a's first, then the b's sent after the hand-over.
    const rank = (r: Json) => (String(r)[0] === 'a' ? 0 : 100) + Number(String(r).slice(1));
    for (const records of channels) expect(records.map(rank)).toEqual(records.map(rank).sort((x, y) => x - y));
  });

  it("a send within the unit is delivered at once, and its sender waits while the inboxes are full, until the consumer takes", async () => {
    const { transport, inputQueue, unit, writer, gate } = oneUnit({ maxBufferedBytes: 1 });
    await transport.createQueues([inputQueue]);
    const mux = unit();
    mux.start();
    stops.push(() => mux.stopReceiving(false));
    const w0 = writer(0, mux);
    w0.emit('x0');
    w0.emit('x1');
    let sent = false;
    const flushed = w0.flush().then(() => (sent = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(sent).toBe(false);
    expect(mux.stats.partsLocal).toBe(2);
    const gates = [gate(0, mux), gate(1, mux)];
    for (const g of gates) {
      g.start();
      stops.push(() => g.stop());
    }
    const got = [...(await take(gates[1]!, (r) => r.length >= 1)), ...(await take(gates[0]!, (r) => r.length >= 1))];
    await flushed;
    expect(sent).toBe(true);
    expect(got.sort()).toEqual(['x0', 'x1']);
  });
});
