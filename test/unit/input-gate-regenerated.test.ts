/**
 * Regenerated records (single-buffered): a producer that restarts from a checkpoint in a new
 * lineage sends again what it sent after the checkpoint, and what a consumer took of that before
 * reaches it twice. The gate counts them as the new lineage's records come, not at its restart
 * notice: counted at the notice, a job that ended before the new lineage had sent them all
 * reported more than its output held (chaos seed 26347: a sink took 9,582 records of a join's
 * lineage 2000, the join restarted from the same checkpoint again, and the output had 2,186
 * duplicates in one run, 0 in another).
 */
import { describe, expect, it } from 'vitest';
import { InputGate, channelKey, type ChannelPositions, type GateEvent } from '../../lib/runtime/input-gate';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';

const edge: ExecutionEdge = { id: 'e0', kind: 'forward', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: true };
const key = channelKey('e0', 0);

/** Producer 0's messages: one group per attempt, numbered as a record writer numbers them. */
function producer(transport: MemoryChannelTransport) {
  const seq = new Map<number, number>();
  const send = async (attempt: number, fields: Record<string, unknown>) => {
    const s = seq.get(attempt) ?? 0;
    seq.set(attempt, s + 1);
    await transport.send('in', [{ groupId: `0.${attempt}`, dedupId: `0.${attempt}.${s}`, body: JSON.stringify({ p: 0, a: attempt, s, l: attempt, ...fields }) }]);
  };
  return {
    records: (attempt: number, n: number, r: string[]) => send(attempt, { n, t: 'd', r }),
    barrier: (attempt: number, n: number, c: number) => send(attempt, { n, t: 'b', c }),
    /** Restarted from checkpoint `c`, which left the channel at `f` (lineage, position). */
    restart: (attempt: number, c: number, f: [number, number]) => send(attempt, { n: 0, t: 'r', c, f }),
  };
}

function consumer(transport: MemoryChannelTransport, restore?: ChannelPositions[]) {
  const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
  if (restore) gate.restorePositions(restore);
  gate.start();
  return gate;
}

/** The data events the gate delivers within a few polls (everything acknowledged). */
async function take(gate: InputGate, polls = 4): Promise<GateEvent[]> {
  const out: GateEvent[] = [];
  for (let i = 0; i < polls; i++) {
    const { events, discarded } = await gate.next(30);
    out.push(...events.filter((e) => e.message.t === 'd'));
    await gate.acknowledge(discarded);
    await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
    gate.release();
  }
  return out;
}

const records = (events: GateEvent[]) => events.flatMap((e) => (e.message.t === 'd' ? (e.message.r as string[]) : []));

/**
 * Lineage 0 sent a0..a2 and barrier 2; the producer restarted from checkpoint 2 in lineage 1
 * (b0..b5, all taken), and again from checkpoint 2 in lineage 2: b0..b5 come again, as c0..c5.
 */
async function restartedTwice(transport: MemoryChannelTransport, gate: InputGate) {
  const p = producer(transport);
  await p.records(0, 0, ['a0', 'a1', 'a2']);
  await p.barrier(0, 3, 2);
  await p.restart(1, 2, [0, 3]);
  await p.records(1, 0, ['b0', 'b1', 'b2', 'b3', 'b4', 'b5']);
  expect(records(await take(gate))).toEqual(['a0', 'a1', 'a2', 'b0', 'b1', 'b2', 'b3', 'b4', 'b5']);
  // Nothing of lineage 0 past the checkpoint was taken: nothing came twice yet.
  expect(gate.counters().regeneratedRecords).toBe(0);
  await p.restart(2, 2, [0, 3]);
  return p;
}

describe('input gate: regenerated records', () => {
  it('counts what a newer lineage has sent again, not all it will: part of it before the job ends, the whole overlap once it has sent everything', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = consumer(transport);
    const p = await restartedTwice(transport, gate);
    expect(records(await take(gate))).toEqual([]);
    // The notice alone: nothing has come twice yet (counting all 6 here over-reported).
    expect(gate.counters().regeneratedRecords).toBe(0);
    await p.records(2, 0, ['c0', 'c1']);
    await take(gate);
    expect(gate.counters().regeneratedRecords).toBe(2);
    await p.records(2, 2, ['c2', 'c3', 'c4', 'c5', 'c6', 'c7']);
    await take(gate);
    // c0..c5 came twice (as b0..b5); c6, c7 are new.
    expect(gate.counters().regeneratedRecords).toBe(6);
    expect(gate.counters()).toMatchObject({ missingRecords: 0, duplicateRecords: 0 });
    await gate.stop();
  });

  it('counts a superseded lineage\'s records taken after the newer lineage sent them at once', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = consumer(transport);
    const p = producer(transport);
    await p.records(0, 0, ['a0']);
    await p.barrier(0, 1, 2);
    await take(gate);
    await p.restart(1, 2, [0, 1]);
    await p.records(1, 0, ['b0', 'b1', 'b2']);
    await take(gate);
    expect(gate.counters().regeneratedRecords).toBe(0);
    // The dead attempt's last message comes after them (its group is its own): a1, a2 were sent as b0, b1.
    await p.records(0, 1, ['a1', 'a2']);
    expect(records(await take(gate))).toEqual(['a1', 'a2']);
    expect(gate.counters().regeneratedRecords).toBe(2);
    await gate.stop();
  });

  it('keeps what has not come again yet in a snapshot and a hand-over, and takes back what a held event counted', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = consumer(transport);
    const p = await restartedTwice(transport, gate);
    await p.records(2, 0, ['c0', 'c1']);
    const held = await take(gate);
    expect(records(held)).toEqual(['c0', 'c1']);
    expect(gate.counters().regeneratedRecords).toBe(2);
    // A snapshot with c0, c1 held (not in the state): they come again after a restore, and count then.
    const [atHeld] = gate.positions(held);
    expect(atHeld).toMatchObject({ positions: [[0, 3], [1, 6], [2, 0]], regenerating: 6, counters: { regeneratedRecords: 0 } });
    const [snapshot] = gate.positions();
    expect(snapshot).toMatchObject({ regenerating: 4, counters: { regeneratedRecords: 2 } });
    const [handover] = gate.handoverState();
    expect(handover).toMatchObject({ key, regenerating: 4 });
    await gate.stop();

    // Restored from the snapshot: the rest counts as it comes, b0..b5 in all. (Its producer's
    // replay repeats the notice, then sends what came after the snapshot's position.)
    const replay = new MemoryChannelTransport();
    await replay.createQueues(['in']);
    const restored = consumer(replay, [snapshot!]);
    const again = producer(replay);
    await again.restart(2, 2, [0, 3]);
    await again.records(2, 2, ['c2', 'c3', 'c4', 'c5', 'c6']);
    expect(records(await take(restored))).toEqual(['c2', 'c3', 'c4', 'c5', 'c6']);
    expect(restored.counters().regeneratedRecords).toBe(6);
    await restored.stop();

    // A snapshot of an older version (no `regenerating`) restores as nothing still to come.
    const old = consumer(new MemoryChannelTransport(), [{ ...snapshot!, regenerating: undefined }]);
    expect(old.positions()[0]!.regenerating).toBeUndefined();
    await old.stop();
  });
});
