/**
 * Replay from upstream in-flight logs (lib/runtime/replay.ts): the producer's log, its replay of a
 * channel, and a restarted consumer's gate that waits for the replay before the live messages.
 */
import { describe, expect, it } from 'vitest';
import { InflightLog } from '../../lib/runtime/inflight-log';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { InputGate, channelKey, type ChannelPositions } from '../../lib/runtime/input-gate';
import { decodeChannelMessage } from '../../lib/runtime/messages';
import { replayBodies } from '../../lib/runtime/replay';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';

const msg = (first: number, count: number) => ({ first, count, fields: `"r":[${Array.from({ length: count }, (_, i) => first + i).join(',')}]` });

describe('in-flight log', () => {
  it('keeps what was sent after the last completed checkpoint, per channel', () => {
    const log = new InflightLog(2, 7);
    log.append(0, msg(0, 3));
    log.append(1, msg(0, 2));
    log.barrier(1, [3, 2]);
    log.append(0, msg(3, 2));
    log.barrier(2, [5, 2]);
    log.append(1, msg(2, 4));
    log.trim(1);
    expect(log.excerpt(0, 0)).toEqual({ lineage: 7, from: 3, messages: [msg(3, 2)], barriers: [{ checkpointId: 2, position: 5 }], end: 5 });
    expect(log.excerpt(1, 2)).toEqual({ lineage: 7, from: 2, messages: [msg(2, 4)], barriers: [{ checkpointId: 2, position: 2 }], end: 6 });
    // A position inside a message: the message comes whole (the consumer skips what it has).
    expect(log.excerpt(1, 4).messages).toEqual([msg(2, 4)]);
    log.trim(2);
    expect(log.excerpt(0, 0).messages).toEqual([]);
    expect(log.excerpt(0, 0)).toMatchObject({ from: 5, end: 5 });
    expect(log.size.messages).toBe(1);
  });

  it('gives up the oldest messages past its bound and says so (a replay then has a gap)', () => {
    const log = new InflightLog(1, 0, 200);
    for (let i = 0; i < 10; i++) log.append(0, msg(i * 5, 5));
    expect(log.overflowRecords).toBeGreaterThan(0);
    const excerpt = log.excerpt(0, 0);
    expect(excerpt.from).toBe(log.overflowRecords);
    expect(excerpt.messages[0]!.first).toBe(excerpt.from);
    expect(excerpt.end).toBe(50);
  });

  it('spills what does not fit in memory to S3 segments, reads them back for a replay, and deletes them when a checkpoint covers them', async () => {
    const objects = new Map<string, string>();
    const spill = {
      keyFor: (c: number, first: number) => `seg/${c}-${first}`,
      put: async (key: string, body: string) => void objects.set(key, body),
      get: async (key: string) => objects.get(key),
      delete: async (keys: readonly string[]) => keys.forEach((k) => objects.delete(k)),
    };
    const log = new InflightLog(1, 0, 200, spill);
    for (let i = 0; i < 10; i++) log.append(0, msg(i * 5, 5));
    expect(log.overflowRecords).toBe(0);
    expect(log.spilledSegments).toBeGreaterThan(0);
    expect(log.size.bytes).toBeLessThanOrEqual(200);
    const excerpt = await log.complete(log.excerpt(0, 7), 7);
    expect(excerpt.from).toBe(7);
    expect(excerpt.messages.map((m) => m.first)).toEqual([5, 10, 15, 20, 25, 30, 35, 40, 45]);
    log.barrier(1, [30]);
    log.trim(1);
    await new Promise((r) => setTimeout(r, 10));
    expect([...objects.keys()].every((k) => Number(k.split('-')[1]) >= 0)).toBe(true);
    const after = await log.complete(log.excerpt(0, 30), 30);
    expect(after.messages.map((m) => m.first)).toEqual([30, 35, 40, 45]);
    expect(objects.size).toBeLessThan(log.spilledSegments);
  });

  it('counts dropped records in its end position, without messages', () => {
    const log = new InflightLog(1, 0);
    log.append(0, msg(0, 2));
    log.skipTo(0, 5);
    expect(log.excerpt(0, 0)).toEqual({ lineage: 0, from: 0, messages: [msg(0, 2)], barriers: [], end: 5 });
  });

  it('starts over at a restored source position, and survives a hand-over', () => {
    const log = new InflightLog(2, 0);
    log.append(0, msg(0, 4));
    log.restart(0, [2, 9]);
    expect(log.excerpt(0, 0)).toEqual({ lineage: 0, from: 2, messages: [], barriers: [], end: 2 });
    log.append(1, msg(9, 1));
    log.barrier(3, [2, 10]);
    const next = new InflightLog(2, 0);
    next.resume(log.state());
    expect(next.excerpt(1, 0)).toEqual(log.excerpt(1, 0));
    next.trim(3);
    expect(next.excerpt(1, 0).messages).toEqual([]);
  });

  it('keeps nothing for a channel until it logs, skips or trims something, and answers for it all the same', () => {
    const log = new InflightLog(4000, 3);
    log.restart(3, Array.from({ length: 4000 }, (_, c) => c));
    const held = () => (log as unknown as { channels: Map<number, unknown> }).channels.size;
    // Barriers and replays of channels that never had records keep no state of their own.
    log.barrier(1, Array.from({ length: 4000 }, (_, c) => c));
    expect(log.excerpt(2500, 0)).toEqual({ lineage: 3, from: 2500, messages: [], barriers: [{ checkpointId: 1, position: 2500 }], end: 2500 });
    log.trim(1);
    expect(held()).toBe(0);
    // Only what moves is kept: a logged message, a drop past the base, a trim past it.
    log.append(7, msg(7, 2));
    log.skipTo(8, 8);
    log.skipTo(9, 12);
    log.barrier(2, Array.from({ length: 4000 }, (_, c) => (c === 11 ? 20 : c === 7 ? 9 : c)));
    log.trim(2);
    expect(held()).toBe(3);
    expect(log.excerpt(9, 9)).toMatchObject({ from: 9, end: 12, messages: [] });
    expect(log.excerpt(11, 0)).toMatchObject({ from: 20, end: 11, messages: [] });
    // A hand-over's state lists every channel, and the successor answers as the predecessor did.
    const next = new InflightLog(4000, 0);
    next.resume(log.state());
    for (const c of [0, 7, 9, 11, 3999]) expect(next.excerpt(c, 0)).toEqual({ ...log.excerpt(c, 0), end: next.excerpt(c, 0).end });
  });

  it('sheds the largest channel first, the lowest among equals', () => {
    const log = new InflightLog(3, 0, 100);
    const big = (first: number) => ({ first, count: 1, fields: 'x'.repeat(30) });
    log.append(2, big(0));
    // Channels 2 and 1 hold as much (62 bytes each): past the bound, channel 1's oldest goes.
    log.append(1, big(0));
    expect(log.excerpt(1, 0).from).toBe(1);
    expect(log.excerpt(2, 0).from).toBe(0);
    expect(log.overflowRecords).toBe(1);
  });
});

const edge: ExecutionEdge = { id: 'e0', kind: 'forward', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: true };

async function producer(transport: MemoryChannelTransport, attempt = 0) {
  await transport.createQueues(['in']);
  return new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 1, attempt, queueOf: () => 'in', transport, maxMessageBytes: 400, inflightLog: true });
}

/** Takes what the gate delivers within a few polls, acknowledging everything. */
async function take(gate: InputGate, polls = 6): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < polls; i++) {
    const { events, discarded } = await gate.next(50);
    for (const e of events) out.push(e.message.t === 'd' ? (e.message.r as number[]).join(',') : e.message.t === 'b' ? `b${e.message.c}` : e.message.t === 'w' ? `w${e.message.w}` : e.message.t);
    await gate.acknowledge(discarded);
    await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
    gate.release();
  }
  return out;
}

function consumer(transport: MemoryChannelTransport, restore?: ChannelPositions[]) {
  const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
  if (restore) gate.restorePositions(restore);
  return gate;
}

describe('replay to a restarted consumer', () => {
  it('sends the logged messages from the consumer position in a group of their own, then the end', async () => {
    const transport = new MemoryChannelTransport();
    const writer = await producer(transport, 2);
    for (let i = 0; i < 6; i++) writer.emit(i);
    await writer.flush();
    for (const m of await transport.receive('in', { max: 10, waitSeconds: 0 })) await transport.delete('in', [m.receipt]);
    await writer.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1, request: 1, from: { 0: [[2, 3]] } });
    await writer.flush();
    const got = await transport.receive('in', { max: 10, waitSeconds: 0 });
    expect(new Set(got.map((m) => m.groupId))).toEqual(new Set(['0.2.r1.1']));
    const decoded = got.map((m) => decodeChannelMessage(m.body));
    expect(decoded.at(-1)).toMatchObject({ t: 'x', n: 6, l: 2, ra: 1, rq: 1 });
    expect(decoded.filter((m) => m.t === 'd').flatMap((m) => (m.t === 'd' ? m.r : []))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(writer.replayedRecords).toBe(6);
  });

  it('replays what a dead consumer consumed after its checkpoint: nothing lost, nothing twice, live messages after the replay', async () => {
    const transport = new MemoryChannelTransport();
    const writer = await producer(transport);
    // The first attempt of the consumer reads everything up to barrier 1, then 4 more records.
    const first = consumer(transport);
    first.start();
    for (let i = 0; i < 3; i++) writer.emit(i);
    writer.emitEvent({ t: 'b', c: 1 });
    await writer.flush();
    for (let i = 3; i < 7; i++) writer.emit(i);
    await writer.flush();
    expect((await take(first)).join(';')).toBe('0,1,2;b1;3,4,5,6');
    const snapshotAt1: ChannelPositions[] = [{ key: channelKey('e0', 0), positions: [[0, 3]] }];
    writer.trimLog(1); // checkpoint 1 completed
    await first.stop(); // dies; its consumed input (3..6) is gone from the queue
    // Meanwhile the producer goes on (live messages the restarted consumer must take after the replay).
    for (let i = 7; i < 9; i++) writer.emit(i);
    await writer.flush();

    const restarted = consumer(transport, snapshotAt1);
    restarted.awaitReplay(channelKey('e0', 0), 1, 1);
    restarted.start();
    expect(await take(restarted, 3)).toEqual([]); // live messages held: the replay has not come
    expect(restarted.awaitedReplays()).toEqual([{ key: 'e0/0', consumerAttempt: 1, request: 1, received: 0 }]);
    await writer.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1, request: 1, from: { 0: [[0, 3]] } });
    await writer.flush();
    for (let i = 9; i < 11; i++) writer.emit(i);
    await writer.flush();
    const raw = await take(restarted);
    const after = raw.join(',').split(',').filter((x) => x !== '').map(Number);
    expect(after).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    expect(restarted.awaitedReplays()).toEqual([]);
    expect(restarted.counters()).toMatchObject({ missingRecords: 0 });
    await restarted.stop();
  });

  it('replays pending barriers in their places and the end of input, and the live group goes on after them at once', async () => {
    const transport = new MemoryChannelTransport();
    const writer = await producer(transport);
    for (let i = 0; i < 2; i++) writer.emit(i);
    writer.emitEvent({ t: 'b', c: 1 });
    for (let i = 2; i < 4; i++) writer.emit(i);
    writer.emitEvent({ t: 'b', c: 2 });
    writer.emit(4);
    writer.emitWatermark(77);
    writer.emitEvent({ t: 'e' });
    await writer.flush();
    writer.trimLog(1);
    // A consumer restored from checkpoint 1 (position 2): the whole live group is still queued.
    const gate = consumer(transport, [{ key: channelKey('e0', 0), positions: [[0, 2]] }]);
    gate.awaitReplay(channelKey('e0', 0), 1, 1);
    gate.start();
    await writer.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1, request: 1, from: { 0: [[0, 2]] } });
    await writer.flush();
    // The producer's watermark comes as an event in its place (after what the consumer may hold back), not with the end.
    expect(await take(gate)).toEqual(['2,3', 'b2', '4', 'w77', 'e']);
    // The live messages before the replay's end were dropped as already replayed; nothing left.
    expect(await transport.receive('in', { max: 10, waitSeconds: 0 })).toEqual([]);
    await gate.stop();
  });

  it('drops a replay of a request no longer waited for, and counts a gap the log no longer has as missing', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = consumer(transport);
    gate.awaitReplay(channelKey('e0', 0), 4, 2);
    const send = (bodies: string[], group: string) => transport.send('in', bodies.map((body, s) => ({ groupId: group, dedupId: `${group}-${s}`, body })));
    // An answer to request 1 (superseded by request 2): dropped.
    await send(replayBodies({ lineage: 0, from: 0, messages: [msg(0, 2)], barriers: [], end: 2 }, { producer: 0, attempt: 0, consumerAttempt: 4, request: 1 }), '0.0.r4.1');
    // The answer to request 2, whose log starts at 5 (0..4 given up): 5 records missing.
    await send(replayBodies({ lineage: 0, from: 5, messages: [msg(5, 2)], barriers: [], end: 7 }, { producer: 0, attempt: 0, consumerAttempt: 4, request: 2 }), '0.0.r4.2');
    gate.start();
    expect(await take(gate)).toEqual(['5,6']);
    expect(gate.staleReplays).toBe(2);
    expect(gate.counters().missingRecords).toBe(5);
    await gate.stop();
  });

  it('says what a restored source can no longer give, and the consumer counts it unreplayed (lost), beside missing', async () => {
    const transport = new MemoryChannelTransport();
    const writer = await producer(transport, 1);
    // The source restored from a later checkpoint than its consumer: its log starts at 5, the consumer is at 2.
    writer.restorePositions({ edgeId: 'e0', lineage: 0, position: [5], roundRobin: 0 });
    for (let i = 5; i < 8; i++) writer.emit(i);
    const gate = consumer(transport, [{ key: channelKey('e0', 0), positions: [[0, 2]] }]);
    gate.awaitReplay(channelKey('e0', 0), 1, 1);
    gate.start();
    await writer.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1, request: 1, from: { 0: [[0, 2]] } });
    await writer.flush();
    expect((await take(gate)).filter((e) => /^\d/.test(e))).toEqual(['5,6,7']);
    expect(gate.counters()).toMatchObject({ missingRecords: 3, unreplayedRecords: 3 });
    expect(gate.channelCounters()[channelKey('e0', 0)]).toMatchObject({ unreplayedRecords: 3 });
    await gate.stop();
  });

  it('takes a replay injected from a finished producer log like one from the queue', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = consumer(transport, [{ key: channelKey('e0', 0), positions: [[0, 1]] }]);
    gate.awaitReplay(channelKey('e0', 0), 1, 1);
    gate.start();
    gate.injectReplay(channelKey('e0', 0), replayBodies({ lineage: 0, from: 1, messages: [msg(0, 3)], barriers: [], end: 3 }, { producer: 0, attempt: 0, consumerAttempt: 1, request: 1 }));
    expect(await take(gate)).toEqual(['1,2']);
    expect(gate.counters().duplicateRecords).toBe(1);
    await gate.stop();
  });

  it('counts what a restarted producer regenerates: its dead lineage after the restored barrier, taken before and after the notice', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const edgeOf = { ...edge };
    const old = new RecordWriter({ edge: edgeOf, producerIndex: 0, consumerParallelism: 1, attempt: 0, queueOf: () => 'in', transport });
    const gate = consumer(transport);
    gate.start();
    for (let i = 0; i < 3; i++) old.emit(`a${i}`);
    old.emitEvent({ t: 'b', c: 4 });
    for (let i = 3; i < 7; i++) old.emit(`a${i}`);
    await old.flush();
    await take(gate);
    // The producer restarts from checkpoint 4 in lineage 1: a3..a6 (taken) come again.
    const restarted = new RecordWriter({ edge: edgeOf, producerIndex: 0, consumerParallelism: 1, attempt: 1, queueOf: () => 'in', transport });
    restarted.announceRestart(4);
    await restarted.flush();
    await take(gate);
    expect(gate.counters().regeneratedRecords).toBe(4);
    // A late message of the dead lineage still counts (it is regenerated too).
    old.emit('a7');
    await old.flush();
    await take(gate);
    expect(gate.counters().regeneratedRecords).toBe(5);
    await gate.stop();
  });
});

describe('replay from a finished producer\'s log in S3', () => {
  it('gives a consumer restored from a checkpoint every record after it, when the producer unit is gone', async () => {
    const { MemoryBlobStore } = await import('../../lib/memory');
    const { ReplayRequester } = await import('../../lib/runtime/replay-requester');
    const { finalLogKey } = await import('../../lib/runtime/replay');
    const transport = new MemoryChannelTransport();
    const blobs = new MemoryBlobStore();
    const hash: ExecutionEdge = { id: 'e0', kind: 'hash', from: 'a', to: 'b', toOperator: 'b', input: 0, key: (r: { k: string }) => r.k, pointwise: false };
    await transport.createQueues(['in-0', 'in-1']);
    const writer = new RecordWriter({ edge: hash, producerIndex: 0, consumerParallelism: 2, attempt: 0, lineage: 0, queueOf: (c) => `in-${c}`, transport, maxMessageBytes: 300, inflightLog: true });
    let i = 0;
    const emit = (n: number) => {
      for (const end = i + n; i < end; i++) writer.emit({ k: `k${i % 7}`, v: i });
    };
    emit(40);
    writer.emitEvent({ t: 'b', c: 1 });
    emit(40);
    writer.emitEvent({ t: 'b', c: 2 });
    await writer.flush();
    writer.trimLog(1);
    writer.trimLog(2);
    // The consumer restores from checkpoint 2: its position is where barrier 2 left its channel.
    const at2 = writer.positions().position[1]!;
    emit(200);
    writer.emitEvent({ t: 'e' });
    await writer.flush();
    await blobs.put(finalLogKey('job', 'e0', 0, 0), JSON.stringify({ producer: 0, attempt: 0, log: writer.log!.state() }));
    // Found by one listing of the edge: another producer's newer log and an edge whose id starts
    // the same are not this channel's (they are not even JSON: reading one would throw).
    await blobs.put(finalLogKey('job', 'e0', 10, 7), 'not this channel');
    await blobs.put(finalLogKey('job', 'e01', 0, 9), 'not this edge');
    // Everything in the queue was consumed by the dead attempt (deleted).
    for (;;) {
      const got = await transport.receive('in-1', { max: 10, waitSeconds: 0 });
      if (got.length === 0) break;
      await transport.delete('in-1', got.map((m) => m.receipt));
    }
    const gate = new InputGate({ inputs: [hash], consumerIndex: 1, producerParallelism: () => 1, queueOf: () => 'in-1', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    gate.restorePositions([{ key: channelKey('e0', 0), positions: [[0, at2]] }], 2);
    let now = 0;
    const requester = new ReplayRequester({ jobId: 'job', inputs: [hash], consumerIndex: 1, consumerAttempt: 1, producerParallelism: () => 1, send: async () => undefined, blobs, now: () => now });
    await requester.begin(gate);
    gate.start();
    now = 5_000;
    await requester.tick(gate);
    const out: number[] = [];
    let ended = false;
    for (let p = 0; p < 20 && !ended; p++) {
      const { events, discarded } = await gate.next(50);
      for (const e of events) {
        if (e.message.t === 'd') out.push(...(e.message.r as { v: number }[]).map((r) => r.v));
        if (e.message.t === 'e') ended = true;
      }
      await gate.acknowledge(discarded);
      gate.release();
    }
    await gate.stop();
    const expected: number[] = [];
    for (let v = 80; v < 280; v++) if (hashPartitionOf(`k${v % 7}`) === 1) expected.push(v);
    expect(out).toEqual(expected);
    expect(ended).toBe(true);
    expect(gate.counters().missingRecords).toBe(0);
  });
});

describe('a replay that has begun to arrive', () => {
  it('is not mixed with a finished producer\'s log: the S3 path is only for silent channels', async () => {
    const { MemoryBlobStore } = await import('../../lib/memory');
    const { ReplayRequester } = await import('../../lib/runtime/replay-requester');
    const { finalLogKey } = await import('../../lib/runtime/replay');
    const transport = new MemoryChannelTransport();
    const blobs = new MemoryBlobStore();
    const writer = await producer(transport);
    for (let i = 0; i < 6; i++) writer.emit(i);
    await writer.flush();
    for (const m of await transport.receive('in', { max: 10, waitSeconds: 0 })) await transport.delete('in', [m.receipt]);
    await blobs.put(finalLogKey('job', 'e0', 0, 0), JSON.stringify({ producer: 0, attempt: 0, log: writer.log!.state() }));
    const gate = consumer(transport);
    let now = 0;
    const requester = new ReplayRequester({ jobId: 'job', inputs: [edge], consumerIndex: 0, consumerAttempt: 1, producerParallelism: () => 1, send: async () => undefined, blobs, now: () => now });
    await requester.begin(gate);
    gate.start();
    // The producer's own answer: its first message arrives, its end not yet.
    const bodies = replayBodies(writer.log!.excerpt(0, 0), { producer: 0, attempt: 0, consumerAttempt: 1, request: 1 });
    await transport.send('in', [{ groupId: '0.0.r1.1', dedupId: 'r-0', body: bodies[0]! }]);
    expect(await take(gate, 3)).toEqual(['0,1,2,3,4,5']);
    now = 5_000;
    await requester.tick(gate);
    expect(requester.fromFinalLogs).toBe(0);
    await transport.send('in', [{ groupId: '0.0.r1.1', dedupId: 'r-1', body: bodies[1]! }]);
    await take(gate, 3);
    expect(gate.awaitedReplays()).toEqual([]);
    expect(gate.counters()).toMatchObject({ missingRecords: 0, duplicateRecords: 0 });
    await gate.stop();
  });
});

function hashPartitionOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % 2;
}
