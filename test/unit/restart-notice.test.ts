/**
 * A restarted inner task numbers its output in a lineage of its own and tells its consumers, with
 * a restart notice on each output channel, from which checkpoint it regenerates: what a consumer
 * takes of the dead lineages after that point reaches it twice, and is counted (regenerated).
 *
 * Two ways the count came out short (chaos seed 70003, single-buffered: 1,327 duplicates, none
 * reported): a consumer that restarted too asked the restarted producer for its replay, and the
 * replay's end skipped the live group up to the next message, the notice with it; and a restarted
 * consumer that had not yet seen the dead lineage when the notice came never counted it after.
 */
import { describe, expect, it } from 'vitest';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { InputGate, channelKey, type ChannelPositions } from '../../lib/runtime/input-gate';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';

const edge: ExecutionEdge = { id: 'e0', kind: 'forward', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: true };
const key = channelKey('e0', 0);

const writer = (transport: MemoryChannelTransport, attempt: number) =>
  new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 1, attempt, queueOf: () => 'in', transport, maxMessageBytes: 400, inflightLog: true });

function consumer(transport: MemoryChannelTransport, restore?: { positions: ChannelPositions[]; checkpointId: number }) {
  const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
  if (restore) gate.restorePositions(restore.positions, restore.checkpointId);
  return gate;
}

/** The records the gate delivers within a few polls (everything acknowledged). */
async function take(gate: InputGate, polls = 8): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < polls; i++) {
    const { events, discarded } = await gate.next(50);
    for (const e of events) if (e.message.t === 'd') out.push(...(e.message.r as string[]));
    await gate.acknowledge(discarded);
    await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
    gate.release();
  }
  return out;
}

describe('a restart notice', () => {
  it('reaches a restarted consumer through the replay the restarted producer answers: what it then takes of the dead lineage counts as regenerated', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const old = writer(transport, 0);
    for (let i = 0; i < 3; i++) old.emit(`a${i}`);
    await old.flush();
    // The consumer's dead attempt took a0..a2; a3..a5 went out after it died, and then the producer died.
    for (const m of await transport.receive('in', { max: 10, waitSeconds: 0 })) await transport.delete('in', [m.receipt]);
    for (let i = 3; i < 6; i++) old.emit(`a${i}`);
    await old.flush();

    // The producer restarted from scratch (no checkpoint completed) in lineage 1000, and says so.
    const restarted = writer(transport, 1000);
    restarted.announceRestart(0);
    await restarted.flush();
    // The consumer restarted from scratch too; its replay request reaches the restarted producer.
    const gate = consumer(transport);
    gate.awaitReplay(key, 1000, 1);
    gate.start();
    await restarted.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1000, request: 1, from: {} });
    await restarted.flush();
    for (let i = 0; i < 6; i++) restarted.emit(`b${i}`);
    await restarted.flush();

    // The dead attempt's group is first seen past its start: it starts after the gate's grace (2 s).
    const got = await take(gate, 60);
    expect([...got].sort()).toEqual(['a3', 'a4', 'a5', 'b0', 'b1', 'b2', 'b3', 'b4', 'b5']);
    // a3..a5 come again as b3..b5: counted, as the duplicates they are.
    expect(gate.counters().regeneratedRecords).toBe(3);
    await gate.stop();
  });

  it('is counted once: a consumer restored from a checkpoint taken after it does not count it again when a replay repeats it', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const old = writer(transport, 0);
    old.emit('a0');
    old.emitEvent({ t: 'b', c: 2 });
    old.emit('a1');
    old.emit('a2');
    old.emitEvent({ t: 'b', c: 4 });
    const atCheckpoint4 = old.positions();
    for (let i = 3; i < 7; i++) old.emit(`a${i}`);
    await old.flush();
    const first = consumer(transport);
    first.start();
    expect(await take(first)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6']);

    // The producer restores from checkpoint 4 (position 3 of lineage 0): a3..a6 come again.
    const restarted = writer(transport, 1000);
    restarted.announceRestart(4, [atCheckpoint4]);
    restarted.emit('b3');
    restarted.emitEvent({ t: 'b', c: 5 });
    await restarted.flush();
    expect(await take(first)).toEqual(['b3']);
    expect(first.counters().regeneratedRecords).toBe(4);
    const snapshotAt5 = first.positions();
    await first.stop();

    // The consumer restarts from checkpoint 5 and asks the producer for its replay, which repeats the notice.
    const second = consumer(transport, { positions: snapshotAt5, checkpointId: 5 });
    second.awaitReplay(key, 1000, 1);
    second.start();
    await restarted.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1000, request: 1, from: { 0: snapshotAt5[0]!.positions } });
    restarted.emit('b4');
    await restarted.flush();
    expect(await take(second)).toEqual(['b4']);
    expect(second.counters()).toMatchObject({ regeneratedRecords: 4, missingRecords: 0 });
    await second.stop();
  });
});

describe('a restart notice past what a restarted consumer restored', () => {
  it('counts the records between as missing: its dead attempt consumed them, and nothing sends them again', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    // The consumer restored from checkpoint 2 (position 1); checkpoint 4 (position 3) completed
    // right after, with its dead attempt's acknowledgement. Its producer died too and restored from 4.
    const restarted = writer(transport, 1000);
    restarted.announceRestart(4, [{ edgeId: 'e0', lineage: 0, position: [3], roundRobin: 0 }]);
    for (let i = 0; i < 2; i++) restarted.emit(`b${i}`);
    await restarted.flush();
    const gate = consumer(transport, { positions: [{ key, positions: [[0, 1]] }], checkpointId: 2 });
    gate.start();
    expect(await take(gate)).toEqual(['b0', 'b1']);
    // Positions 1 and 2 of lineage 0: not in the restored state, not regenerated, not replayable.
    expect(gate.counters()).toMatchObject({ missingRecords: 2, unreplayedRecords: 2, regeneratedRecords: 0 });
    await gate.stop();
  });
});

describe('a restarted consumer whose replay a restarted source answers', () => {
  it('does not let the dead source attempt\'s leftover messages skip what the new attempt sends again', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    // One record per message. The source's first attempt sent r0..r14; the consumer's dead attempt
    // took r0..r2, and r3..r14 are still queued when the source dies too.
    const source = (attempt: number) => new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 1, attempt, lineage: 0, queueOf: () => 'in', transport, inflightLog: true });
    const old = source(0);
    for (let i = 0; i < 15; i++) {
      old.emit(`r${i}`);
      await old.flush();
    }
    for (const m of await transport.receive('in', { max: 3, waitSeconds: 0 })) await transport.delete('in', [m.receipt]);

    // Both restart from scratch. The source's new attempt has re-read r0, r1 when the consumer's
    // replay request reaches it; it answers, then reads on (r2..r14) in its live group.
    const restarted = source(1);
    restarted.restorePositions({ edgeId: 'e0', lineage: 0, position: [0], roundRobin: 0 });
    const gate = consumer(transport);
    gate.awaitReplay(key, 1, 1);
    gate.start();
    for (let i = 0; i < 2; i++) restarted.emit(`r${i}`);
    await restarted.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1, request: 1, from: {} });
    await restarted.flush();
    for (let i = 2; i < 15; i++) restarted.emit(`r${i}`);
    await restarted.flush();

    const got = await take(gate, 20);
    expect([...new Set(got)].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))).toEqual(Array.from({ length: 15 }, (_, i) => `r${i}`));
    expect(gate.counters().missingRecords).toBe(0);
    await gate.stop();
  });
});

describe('a restored source that sends again what it had dropped for this consumer', () => {
  it('finds the consumer past them: the consumer counts them lost (unreplayed), since the source\'s restored counter no longer holds the drop', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    let available = true;
    const gate = { isAvailable: () => available };
    const source = (attempt: number) => new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 1, attempt, lineage: 0, queueOf: () => 'in', transport, gate, inflightLog: true });
    const first = source(0);
    first.emit('r0');
    first.emit('r1');
    const atCheckpoint = first.positions();
    first.emit('r2');
    // The consumer is down for a while (it restarted): r3..r5 are dropped for it, and counted.
    available = false;
    for (let i = 3; i < 6; i++) first.emit(`r${i}`);
    available = true;
    for (let i = 6; i < 8; i++) first.emit(`r${i}`);
    await first.flush();
    expect(first.dropped).toEqual([3]);
    const consumerGate = consumer(transport);
    consumerGate.start();
    expect(await take(consumerGate)).toEqual(['r0', 'r1', 'r2', 'r6', 'r7']);
    expect(consumerGate.counters().missingRecords).toBe(3);

    // The source dies and restores from a checkpoint before the drops: its counter goes back to
    // 0 dropped, and it reads r2..r7 again, this time for an available consumer.
    const restored = source(1);
    restored.restorePositions(atCheckpoint);
    restored.restoreCounters(atCheckpoint);
    for (let i = 2; i < 8; i++) restored.emit(`r${i}`);
    await restored.flush();
    expect(restored.dropped).toEqual([0]);
    expect(await take(consumerGate)).toEqual([]);
    // r3..r5 are lost; the consumer is the one that still knows it.
    expect(consumerGate.counters()).toMatchObject({ missingRecords: 3, duplicateRecords: 6, unreplayedRecords: 3 });
    await consumerGate.stop();
  });
});
