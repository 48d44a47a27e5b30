/**
 * An input gate decodes what it received a few messages at a time (about 1 MiB of bodies per
 * `next`), so records are not decoded long before they are processed; its pollers receive again
 * only once everything received has been taken and dealt with.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import { MemoryChannelTransport } from '../../lib/memory';
import { InputGate } from '../../lib/runtime/input-gate';
import { RecordWriter } from '../../lib/runtime/record-writer';

const edge: ExecutionEdge = { id: 'e0', kind: 'forward', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: true };

describe('input gate batches', () => {
  it('takes about 1 MiB of message bodies a call, in order, and receives again only once all are taken', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const writer = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 1, attempt: 0, lineage: 0, queueOf: () => 'in', transport });
    // 10 messages of ~250 KB each (244 records: one receive takes all 10).
    const record = 'x'.repeat(1000);
    for (let i = 0; i < 2440; i++) writer.emit(record);
    await writer.flush();
    let receives = 0;
    const counting = Object.assign(Object.create(transport) as MemoryChannelTransport, {
      receive: (queue: string, options: Parameters<MemoryChannelTransport['receive']>[1]) => {
        receives++;
        return transport.receive(queue, options);
      },
    });
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport: counting, waitSeconds: 0.05, extendVisibility: false, onError: (e) => { throw e; } });
    gate.start();
    const batches: number[] = [];
    const sequences: number[] = [];
    let records = 0;
    while (records < 2440) {
      const { events } = await gate.next(1000);
      batches.push(events.length);
      for (const e of events) {
        sequences.push(e.message.s);
        if (e.message.t === 'd') records += e.message.r.length;
      }
      expect(receives).toBe(1);
      await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
      gate.release();
    }
    await gate.stop();
    expect(sequences).toEqual(sequences.map((_, i) => i));
    expect(sequences.length).toBe(10);
    expect(batches).toEqual([4, 4, 2]);
  });
});
