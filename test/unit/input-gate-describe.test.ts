/**
 * What a stuck job's report says about a subtask's open input channels (InputGate.describeOpen):
 * the chaos run of seed 94049 said only "1 input channel(s) not ended", which did not tell a
 * channel never heard from, one waiting for a replay, and one whose group waits for a gap apart.
 */
import { describe, expect, it } from 'vitest';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { InputGate, channelKey } from '../../lib/runtime/input-gate';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';

const edgeOf = (i: number): ExecutionEdge => ({ id: `e${i}`, kind: 'forward', from: `a${i}`, to: 'b', toOperator: 'b', input: i, pointwise: true });
const edges = [0, 1, 2].map(edgeOf);

describe('InputGate.describeOpen', () => {
  it('names each open channel with what it waits for; an ended channel is left out', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(edges.map((e) => `in-${e.id}`));
    const writer = (i: number) =>
      new RecordWriter({ edge: edges[i]!, producerIndex: 0, consumerParallelism: 1, attempt: 0, lineage: 0, queueOf: () => `in-e${i}`, transport });
    const gate = new InputGate({ inputs: edges, consumerIndex: 0, producerParallelism: () => 1, queueOf: (edge) => `in-${edge.id}`, transport, waitSeconds: 0.02, onError: (e) => { throw e; } });
    // On e0 the producer sends a record and ends; on e1 it sends a record, and the consumer waits
    // for a replay of it; on e2 nothing comes.
    const p0 = writer(0);
    p0.emit('a');
    p0.emitEvent({ t: 'e' });
    await p0.flush();
    const p1 = writer(1);
    p1.emit('b');
    await p1.flush();
    gate.awaitReplay(channelKey('e1', 0), 1, 7);
    gate.start();
    for (let i = 0; i < 50 && !(gate.openCount() === 2 && gate.describeOpen()[0]?.includes('1 live held')); i++) {
      const { events, discarded } = await gate.next(20);
      // What the input driver does with an end of input.
      for (const e of events) if (e.message.t === 'e') e.channel.ended = true;
      await gate.acknowledge(discarded);
      for (const e of events) if (e.receipt) await gate.acknowledge(new Map([[e.queue, [e.receipt]]]));
      gate.release();
    }
    const lines = gate.describeOpen();
    await gate.stop();
    expect(gate.openCount()).toBe(2);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^e1\/0: .*waits for replay 7 \(answer not begun, 1 live held\)/);
    expect(lines[1]).toBe(`${channelKey('e2', 0)}: nothing received`);
  });
});
