import { describe, expect, it } from 'vitest';
import { RecordWriter, hashPartition } from '../../lib/runtime/record-writer';
import { InputGate } from '../../lib/runtime/input-gate';
import { decodeChannelMessage } from '../../lib/runtime/messages';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';

const hashEdge: ExecutionEdge = { id: 'e0', kind: 'hash', from: 'a', to: 'b', toOperator: 'b', input: 0, key: (r: { k: string }) => r.k, pointwise: false };

async function drain(transport: MemoryChannelTransport, queue: string) {
  const out = [];
  for (;;) {
    const got = await transport.receive(queue, { max: 10, waitSeconds: 0 });
    if (got.length === 0) return out;
    out.push(...got.map((m) => decodeChannelMessage(m.body)));
    await transport.delete(queue, got.map((m) => m.receipt));
  }
}

describe('record writer', () => {
  it('routes by key hash, packs records into size-bounded messages with per-channel sequence numbers', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['q-0', 'q-1', 'q-2']);
    const writer = new RecordWriter({ edge: hashEdge, producerIndex: 1, consumerParallelism: 3, attempt: 4, queueOf: (c) => `q-${c}`, transport, maxMessageBytes: 2000 });
    const records = Array.from({ length: 300 }, (_, i) => ({ k: `key-${i % 17}`, v: i }));
    for (const r of records) writer.emit(r);
    writer.emitWatermark(99);
    writer.emitEvent({ t: 'e' });
    await writer.flush();

    let seen = 0;
    for (let c = 0; c < 3; c++) {
      const messages = await drain(transport, `q-${c}`);
      expect(messages.map((m) => m.s)).toEqual(messages.map((_, i) => i));
      expect(messages.every((m) => m.p === 1 && m.a === 4)).toBe(true);
      expect(messages.at(-1)!.t).toBe('e');
      for (const m of messages) {
        expect(JSON.stringify(m).length).toBeLessThan(2000);
        if (m.t !== 'd') continue;
        for (const r of m.r as { k: string }[]) expect(hashPartition(r.k, 3)).toBe(c);
        seen += m.r.length;
      }
      expect(messages.some((m) => (m.t === 'd' && m.w === 99) || (m.t === 'w' && m.w === 99))).toBe(true);
    }
    expect(seen).toBe(300);
    expect(writer.recordsWritten).toBe(300);
  });

  it('drops and counts records bound for an unavailable sub-partition', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['q-0', 'q-1']);
    const down = new Set([1]);
    const writer = new RecordWriter({
      edge: { ...hashEdge, kind: 'rebalance' },
      producerIndex: 0,
      consumerParallelism: 2,
      attempt: 0,
      queueOf: (c) => `q-${c}`,
      transport,
      gate: { isAvailable: (_e, c) => !down.has(c) },
    });
    for (let i = 0; i < 10; i++) writer.emit({ k: 'x', v: i });
    await writer.flush();
    expect(writer.dropped).toEqual([0, 5]);
    expect((await drain(transport, 'q-1')).length).toBe(0);
    expect((await drain(transport, 'q-0')).flatMap((m) => (m.t === 'd' ? m.r : []))).toHaveLength(5);
  });

  it('the input gate fences older attempts and drops repeated sequence numbers', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const edge: ExecutionEdge = { ...hashEdge, kind: 'forward', pointwise: true };
    const send = (a: number, s: number) =>
      transport.send('in', [{ groupId: '0', dedupId: `${a}-${s}-${Math.random()}`, body: JSON.stringify({ p: 0, a, s, t: 'd', r: [`${a}/${s}`] }) }]);
    await send(1, 0);
    await send(1, 1);
    await send(1, 1); // duplicate
    await send(0, 5); // older attempt
    await send(2, 0); // producer restarted
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, minAttempt: () => 1, onError: (e) => { throw e; } });
    gate.start();
    const records: unknown[] = [];
    for (let i = 0; i < 20 && records.length < 3; i++) {
      const { events, discarded } = await gate.next(100);
      for (const e of events) if (e.message.t === 'd') records.push(...e.message.r);
      await gate.acknowledge(discarded);
      await gate.acknowledge(new Map([['in', events.map((e) => e.receipt)]]));
      gate.release();
    }
    await gate.stop();
    expect(records).toEqual(['1/0', '1/1', '2/0']);
    expect(await transport.receive('in', { max: 10, waitSeconds: 0 })).toEqual([]); // all deleted
    expect(gate.duplicates).toBe(1);
    expect(gate.fenced).toBe(1);
  });
});

describe('seen sequence numbers', () => {
  it('flags repeats, accepts late older numbers once, and stays bounded across a gap that never fills', async () => {
    const { SeenSequences } = await import('../../lib/runtime/input-gate');
    const seen = new SeenSequences();
    expect([13, 9, 10, 13, 9].map((s) => seen.add(s))).toEqual([true, true, true, false, false]);
    // 0..8 went to a previous consumer attempt and never come: thousands of later numbers still work.
    for (let s = 14; s < 20_000; s++) expect(seen.add(s)).toBe(true);
    expect(seen.add(19_999)).toBe(false);
    expect(seen.add(5)).toBe(false); // far below the newest: forgotten as seen
  });
});
