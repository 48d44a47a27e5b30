/**
 * What an idle or lightly loaded job sends and polls (issue 12): watermarks without records go out
 * at most once per interval per channel (they ride on data otherwise), and long polls back off to
 * 20 s while a queue is idle and come back to the short wait with the first message.
 */
import { describe, expect, it } from 'vitest';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { InputGate } from '../../lib/runtime/input-gate';
import { decodeChannelMessage } from '../../lib/runtime/messages';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import type { ChannelTransport, InboundMessage, ReceiveOptions } from '../../lib/ports/channels';

const edge: ExecutionEdge = { id: 'e0', kind: 'hash', from: 'a', to: 'b', toOperator: 'b', input: 0, key: (r: { k: string }) => r.k, pointwise: false };

async function messagesIn(transport: MemoryChannelTransport, queue: string) {
  const got = await transport.receive(queue, { max: 10, waitSeconds: 0 });
  await transport.delete(queue, got.map((m) => m.receipt));
  return got.map((m) => decodeChannelMessage(m.body));
}

describe('watermark-only messages', () => {
  it('go at most once per interval per channel on lenient flushes; a barrier or a forced flush sends the waiting one', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['q-0', 'q-1']);
    const writer = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 2, attempt: 0, queueOf: (c) => `q-${c}`, transport, watermarkEveryMs: 60_000 });
    writer.emitWatermark(10);
    await writer.flush(true, false);
    expect((await messagesIn(transport, 'q-0')).map((m) => [m.t, 'w' in m ? m.w : undefined])).toEqual([['w', 10]]);
    expect((await messagesIn(transport, 'q-1')).map((m) => [m.t, 'w' in m ? m.w : undefined])).toEqual([['w', 10]]);
    // Within the interval: the next watermarks wait (nothing sent), and the writer still has them pending.
    for (const w of [20, 30, 40]) {
      writer.emitWatermark(w);
      await writer.flush(true, false);
    }
    expect(await messagesIn(transport, 'q-0')).toEqual([]);
    expect(writer.hasPending()).toBe(true);
    // A record on channel 1 carries the newest watermark with it; channel 0 still waits.
    writer.emit({ k: 'x'.repeat(3) });
    await writer.flush(true, false);
    const withData = [...(await messagesIn(transport, 'q-0')), ...(await messagesIn(transport, 'q-1'))];
    expect(withData.map((m) => [m.t, 'w' in m ? m.w : undefined])).toEqual([['d', 40]]);
    // A barrier goes after the waiting watermark, in order.
    writer.emitEvent({ t: 'b', c: 1 });
    await writer.flush();
    const c0 = (await messagesIn(transport, 'q-0')).map((m) => m.t);
    expect(c0).toEqual(['w', 'b']);
    expect(writer.hasPending()).toBe(false);
  });
});

/** A transport whose receives answer at once: empty, or what `answers` holds for that call (by number). */
class RecordingTransport implements Partial<ChannelTransport> {
  readonly waits: number[] = [];
  constructor(private readonly answers: Map<number, InboundMessage[]>) {}
  async receive(_queue: string, options: ReceiveOptions): Promise<InboundMessage[]> {
    this.waits.push(options.waitSeconds);
    await new Promise((r) => setTimeout(r, 1));
    return this.answers.get(this.waits.length - 1) ?? [];
  }
  async delete() {
    return { expired: [] };
  }
  async changeVisibility() {
    return { expired: [] };
  }
}

describe('long polls', () => {
  it('back off from the short wait to 20 s while a queue is idle, and start over with the first message', async () => {
    const body = JSON.stringify({ p: 0, a: 0, s: 0, l: 0, n: 0, t: 'w', w: 5 });
    // The seventh receive brings a message.
    const transport = new RecordingTransport(new Map([[6, [{ body, groupId: '0.0', receipt: 'r0' }]]]));
    const gate = new InputGate({
      inputs: [{ ...edge, pointwise: true }],
      consumerIndex: 0,
      producerParallelism: () => 1,
      queueOf: () => 'q',
      transport: transport as unknown as ChannelTransport,
      waitSeconds: 2,
      onError: (e) => {
        throw e;
      },
    });
    gate.start();
    // Delivered: the gate receives again once the subtask has dealt with it.
    const { events } = await gate.next(10_000);
    expect(events).toHaveLength(1);
    expect(transport.waits).toHaveLength(7);
    gate.release();
    while (transport.waits.length < 9) await new Promise((r) => setTimeout(r, 5));
    await gate.stop();
    expect(transport.waits.slice(0, 9)).toEqual([2, 4, 8, 16, 20, 20, 20, 2, 4]);
  });

  it('a stopping reader aborts its long poll: the receive ends at once', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['idle']);
    const controller = new AbortController();
    const started = Date.now();
    const polling = transport.receive('idle', { max: 10, waitSeconds: 20, signal: controller.signal });
    controller.abort();
    await expect(polling).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
