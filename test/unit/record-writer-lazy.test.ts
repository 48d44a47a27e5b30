/**
 * A record writer keeps numbers per consumer channel and buffers only for channels with records
 * waiting (record-writer.ts): at 4000 consumers an idle writer has nothing pending, a watermark
 * reaches every channel once (alone, or with the channel's records), and drops are totalled.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import type { ChannelTransport, OutboundMessage } from '../../lib/ports/channels';
import { MemoryChannelTransport } from '../../lib/memory';
import { decodeChannelMessage, type ChannelMessage } from '../../lib/runtime/messages';
import { RecordWriter } from '../../lib/runtime/record-writer';

const edge: ExecutionEdge = { id: 'e0', kind: 'hash', from: 'a', to: 'b', toOperator: 'b', input: 0, key: (r: unknown) => String(r), pointwise: false };

/** Records what is sent, by consumer queue. */
function recording(): ChannelTransport & { sent: Map<string, ChannelMessage[]> } {
  const inner = new MemoryChannelTransport();
  const sent = new Map<string, ChannelMessage[]>();
  return Object.assign(inner, {
    sent,
    send: async (queue: string, messages: readonly OutboundMessage[]) => {
      const list = sent.get(queue) ?? [];
      list.push(...messages.map((m) => decodeChannelMessage(m.body)));
      sent.set(queue, list);
    },
  });
}

describe('record writer at high parallelism', () => {
  it('has nothing pending while idle; a watermark goes to every channel once, with its records where it has some', async () => {
    const transport = recording();
    const writer = new RecordWriter({ edge, producerIndex: 3, consumerParallelism: 4000, attempt: 0, queueOf: (c) => `q-${c}`, transport });
    expect(writer.hasPending()).toBe(false);
    await writer.flush(true, false);
    expect(transport.sent.size).toBe(0);
    writer.emit('k1'); // one consumer gets a record (buffered: not sent before the flush)
    expect(transport.sent.size).toBe(0);
    writer.emitWatermark(500);
    expect(writer.hasPending()).toBe(true);
    await writer.flush(true, false);
    expect(writer.hasPending()).toBe(false);
    expect(transport.sent.size).toBe(4000);
    const messages = [...transport.sent.values()].map((list) => list.map((m) => m.t));
    expect(messages.filter((m) => m.join() === 'w')).toHaveLength(3999);
    const data = [...transport.sent.values()].find((list) => list[0]!.t === 'd')!;
    expect(data).toEqual([expect.objectContaining({ t: 'd', r: ['k1'], w: 500, s: 0, n: 0 })]);
    // Within the watermark interval a lenient flush keeps the next watermark; a forced one sends it.
    writer.emitWatermark(600);
    await writer.flush(true, false);
    expect([...transport.sent.values()].every((list) => list.length === 1)).toBe(true);
    expect(writer.hasPending()).toBe(true);
    await writer.flush();
    expect([...transport.sent.values()].every((list) => list.length === 2 && list[1]!.t === 'w' && (list[1] as { w: number }).w === 600)).toBe(true);
    expect(writer.hasPending()).toBe(false);
  });

  it('a barrier takes a waiting watermark along on every channel; records sealed early carry it too', async () => {
    const transport = recording();
    const writer = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 3, attempt: 1, lineage: 0, queueOf: (c) => `q-${c}`, transport, maxMessageBytes: 200 });
    writer.emitWatermark(7);
    // Enough records for one channel to seal a message before the flush: it carries the watermark.
    for (let i = 0; i < 20; i++) writer.emit('same-key');
    writer.emitEvent({ t: 'b', c: 1 });
    await writer.flush();
    const kinds = [0, 1, 2].map((c) => (transport.sent.get(`q-${c}`) ?? []).map((m) => `${m.t}${'w' in m && m.w !== undefined ? `@${m.w}` : ''}`));
    const target = kinds.findIndex((k) => k[0]!.startsWith('d'));
    expect(kinds[target]![0]).toBe('d@7');
    expect(kinds[target]!.filter((k) => k.includes('@'))).toEqual(['d@7']);
    for (const [c, k] of kinds.entries()) if (c !== target) expect(k).toEqual(['w@7', 'b']);
    expect(kinds[target]!.at(-1)).toBe('b');
  });

  it('pointwise: the watermark goes to its one channel only', async () => {
    const transport = recording();
    const writer = new RecordWriter({ edge: { ...edge, kind: 'forward', pointwise: true }, producerIndex: 2, consumerParallelism: 5, attempt: 0, queueOf: (c) => `q-${c}`, transport });
    writer.emitWatermark(9);
    expect(writer.hasPending()).toBe(true);
    await writer.flush(true, false);
    expect([...transport.sent.keys()]).toEqual(['q-2']);
    expect(writer.hasPending()).toBe(false);
  });

  it('totals the records dropped for unavailable consumers', () => {
    const writer = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 4000, attempt: 0, queueOf: (c) => `q-${c}`, transport: recording(), gate: { isAvailable: (_, c) => c % 2 === 0 } });
    for (let i = 0; i < 1000; i++) writer.emit(`k${i}`);
    expect(writer.droppedRecords).toBe(writer.dropped.reduce((a, b) => a + b, 0));
    expect(writer.droppedRecords).toBeGreaterThan(400);
    const positions = writer.positions();
    const restored = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 4000, attempt: 1, queueOf: (c) => `q-${c}`, transport: recording() });
    restored.restoreCounters(positions);
    expect(restored.droppedRecords).toBe(writer.droppedRecords);
  });
});
