/**
 * Stopping an input gate: once every channel has ended the stop does not wait out a receive still
 * in a long poll (a finished subtask ends at once); before that it does, so no receive opened
 * before the stop takes messages a successor is to read.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ReceiveOptions } from '../../lib/ports/channels';
import { InputGate } from '../../lib/runtime/input-gate';
import { RecordWriter } from '../../lib/runtime/record-writer';

const edge: ExecutionEdge = { id: 'e0', kind: 'forward', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: true };

/** The memory transport, counting receives still waiting. */
class WatchedTransport extends MemoryChannelTransport {
  open = 0;
  override async receive(queue: string, options: ReceiveOptions) {
    this.open++;
    try {
      return await super.receive(queue, options);
    } finally {
      this.open--;
    }
  }
}

async function setup() {
  const transport = new WatchedTransport();
  await transport.createQueues(['in']);
  const writer = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 1, attempt: 0, queueOf: () => 'in', transport });
  // A long poll no test waits out.
  const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, waitSeconds: 20, onError: (e) => { throw e; } });
  return { transport, writer, gate };
}

/** Takes what the gate has (waiting for it), acknowledges it and lets the pollers receive again. */
async function takeAll(gate: InputGate): Promise<string[]> {
  const { events } = await gate.next(5_000);
  await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
  gate.release();
  return events.map((e) => e.message.t);
}

describe('InputGate.stop', () => {
  it('after every channel ended, returns while a receive is still in its long poll', async () => {
    const { transport, writer, gate } = await setup();
    gate.start();
    writer.emit({ n: 1 });
    writer.emitEvent({ t: 'e' });
    await writer.flush();
    const seen: string[] = [];
    while (!seen.includes('e')) seen.push(...(await takeAll(gate)));
    // The channel ended in the gate's state once its end event was taken.
    [...gate.channels.values()][0]!.ended = true;
    while (transport.open === 0) await new Promise((resolve) => setImmediate(resolve));
    await gate.stop();
    expect(gate.allEnded()).toBe(true);
    expect(transport.open).toBe(1);
    await transport.deleteQueues(['in']); // ends the long poll
  });

  it('with a channel still open, waits for the long poll, so nothing sent after the stop is taken by it', async () => {
    const { transport, writer, gate } = await setup();
    gate.start();
    while (transport.open === 0) await new Promise((resolve) => setImmediate(resolve));
    let stopped = false;
    const stopping = gate.stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    await transport.deleteQueues(['in']); // ends the long poll (an error the stopped gate ignores)
    await stopping;
    expect(transport.open).toBe(0);
    expect(writer.hasPending()).toBe(false);
  });
});
