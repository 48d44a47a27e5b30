/**
 * A writer's linger flush marks what it sends `linger` (records and watermarks only), so a unit's
 * multiplexed transport may hold them until its send tick (channel-mux.ts); control events and
 * replays are never held. A subtask's output makes its linger flushes such flushes.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import type { ChannelTransport, OutboundMessage } from '../../lib/ports/channels';
import { MemoryChannelTransport } from '../../lib/memory';
import { decodeChannelMessage } from '../../lib/runtime/messages';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { SubtaskOutput } from '../../lib/runtime/subtask-output';
import { resolveSettings } from '../../lib/jobs/job-service';

const edge: ExecutionEdge = { id: 'e0', kind: 'rebalance', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: false };

/** Records each send: its queue, and per message its type and whether it was marked linger. */
function recording(): ChannelTransport & { sends: { queue: string; messages: { t: string; linger: boolean }[] }[] } {
  const inner = new MemoryChannelTransport();
  const sends: { queue: string; messages: { t: string; linger: boolean }[] }[] = [];
  return Object.assign(inner, {
    sends,
    send: async (queue: string, messages: readonly OutboundMessage[]) => {
      sends.push({ queue, messages: messages.map((m) => ({ t: decodeChannelMessage(m.body).t, linger: m.linger === true })) });
    },
  });
}

const writerOn = (transport: ChannelTransport, consumers = 2) =>
  new RecordWriter({ edge, producerIndex: 0, consumerParallelism: consumers, attempt: 0, lineage: 0, queueOf: (c) => `q-${c}`, transport });

describe('linger flushes', () => {
  it('a linger flush marks records and watermarks linger; any other flush does not', async () => {
    const transport = recording();
    const writer = writerOn(transport);
    writer.emit('r0');
    writer.emit('r1');
    writer.emitWatermark(100);
    await writer.flush(true, true, true);
    expect(transport.sends.map((s) => s.messages)).toEqual([
      [{ t: 'd', linger: true }],
      [{ t: 'd', linger: true }],
    ]);
    writer.emit('r2');
    await writer.flush(true, false);
    expect(transport.sends.at(-1)!.messages).toEqual([{ t: 'd', linger: false }]);
  });

  it("a channel with a control event or a replay in its outbox is sent as usual, its records too (they go before it)", async () => {
    const transport = recording();
    const writer = writerOn(transport);
    writer.emit('r0');
    writer.emit('r1');
    // Sealed by the event: on every channel, records then end of input.
    writer.emitEvent({ t: 'e' });
    await writer.flush(true, true, true);
    expect(transport.sends.map((s) => s.messages)).toEqual([
      [{ t: 'd', linger: false }, { t: 'e', linger: false }],
      [{ t: 'd', linger: false }, { t: 'e', linger: false }],
    ]);
    // The next linger flush of records alone is linger again.
    const again = writerOn(transport, 1);
    again.emit('x');
    await again.flush(true, true, true);
    expect(transport.sends.at(-1)!.messages).toEqual([{ t: 'd', linger: true }]);
  });

  it("a subtask's output flushes as linger once its linger time passed, and full messages at once as usual", async () => {
    const transport = recording();
    const writer = writerOn(transport, 1);
    const output = new SubtaskOutput('a#0', [writer], 0);
    writer.emit('r0');
    await output.maybeFlush();
    expect(transport.sends.map((s) => s.messages)).toEqual([[{ t: 'd', linger: true }]]);
    // A flush that is not a linger (input processed, hand-over, checkpoint) is not held.
    writer.emit('r1');
    await output.flush(false);
    expect(transport.sends.at(-1)!.messages).toEqual([{ t: 'd', linger: false }]);
  });

  it("the job's linger is a setting: whole milliseconds from 1 to 10000, missing by default", () => {
    expect(resolveSettings({ job: 'demo' }).lingerMs).toBeUndefined();
    expect(resolveSettings({ job: 'demo', lingerMs: 400 }).lingerMs).toBe(400);
    expect(() => resolveSettings({ job: 'demo', lingerMs: 0 })).toThrow(/lingerMs must be/);
    expect(() => resolveSettings({ job: 'demo', lingerMs: 2.5 })).toThrow(/lingerMs must be/);
  });
});
