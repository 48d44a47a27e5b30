/**
 * Replay requests in bulk (lib/runtime/replay-requests.ts): a consumer unit's requests go out as
 * one control message per producer unit; a producer unit answers each channel's newest request once.
 */
import { describe, expect, it } from 'vitest';
import type { ReplayRequest } from '../../lib/runtime/messages';
import { ReplayBatcher, ReplayRequestFilter } from '../../lib/runtime/replay-requests';
import { chunkBySize } from '../../lib/util/chunks';

const req = (consumer: number, request: number, producers: number[], consumerAttempt = 1, edgeId = 'e0'): ReplayRequest => ({
  edgeId,
  consumer,
  consumerAttempt,
  request,
  from: Object.fromEntries(producers.map((p) => [p, [[0, p * 10]]])),
});
const shape = (rs: ReplayRequest[]) => rs.map((r) => `${r.edgeId}/${r.consumer} a${r.consumerAttempt} r${r.request}: ${Object.keys(r.from).join(',')}`);

describe('ReplayRequestFilter', () => {
  it('answers each channel once, for its newest request, judged per producer', () => {
    const filter = new ReplayRequestFilter();
    // Request 1 asked producers 0 and 1; its retry (2) asks producer 1 only; both in one receive.
    expect(shape(filter.take([req(5, 1, [0, 1]), req(5, 2, [1]), req(6, 1, [0], 1, 'e1')]))).toEqual(['e0/5 a1 r1: 0', 'e0/5 a1 r2: 1', 'e1/6 a1 r1: 0']);
    // A redelivery of request 1, and request 2 again: answered already.
    expect(filter.take([req(5, 1, [0, 1]), req(5, 2, [1])])).toEqual([]);
    // Request 3 for producer 0: newer than what producer 0 answered.
    expect(shape(filter.take([req(5, 3, [0])]))).toEqual(['e0/5 a1 r3: 0']);
    // A newer consumer attempt starts again at request 1, and is newer than any request of the older.
    expect(shape(filter.take([req(5, 1, [0, 1], 2)]))).toEqual(['e0/5 a2 r1: 0,1']);
    expect(filter.take([req(5, 9, [0, 1], 1)])).toEqual([]);
  });

  it('keeps the positions each producer was asked from', () => {
    const [r] = new ReplayRequestFilter().take([req(1, 1, [2, 3])]);
    expect(r!.from).toEqual({ 2: [[0, 20]], 3: [[0, 30]] });
  });
});

describe('ReplayBatcher', () => {
  it('sends the requests made together as one message per producer unit', async () => {
    const delivered: { unitId: string; requests: ReplayRequest[] }[] = [];
    const batcher = new ReplayBatcher({
      // Producers 0-1 in unit-a, 2-3 in unit-b; producer 4 is not placed.
      unitOf: (_edge, p) => (p < 2 ? 'unit-a' : p < 4 ? 'unit-b' : undefined),
      deliver: async (unitId, requests) => void delivered.push({ unitId, requests }),
      windowMs: 5,
    });
    await Promise.all([batcher.send(req(7, 1, [0, 1, 2, 3, 4])), batcher.send(req(8, 1, [1, 3])), batcher.send(req(7, 1, [0, 2], 1, 'e1'))]);
    const byUnit = Object.fromEntries(delivered.map((d) => [d.unitId, shape(d.requests)]));
    expect(byUnit).toEqual({
      'unit-a': ['e0/7 a1 r1: 0,1', 'e0/8 a1 r1: 1', 'e1/7 a1 r1: 0'],
      'unit-b': ['e0/7 a1 r1: 2,3', 'e0/8 a1 r1: 3', 'e1/7 a1 r1: 2'],
    });
    expect(batcher.messagesSent).toBe(2);
    // A later request is a message of its own.
    await batcher.send(req(9, 2, [0]));
    expect(delivered.at(-1)).toEqual({ unitId: 'unit-a', requests: [req(9, 2, [0])] });
  });

  it('splits a unit\'s requests into messages within the size limit, and fails the senders with the delivery', async () => {
    const delivered: number[] = [];
    const big = (c: number) => req(c, 1, Array.from({ length: 50 }, (_, p) => p));
    const one = Buffer.byteLength(JSON.stringify(big(0))) + 1;
    const batcher = new ReplayBatcher({ unitOf: () => 'u', deliver: async (_u, rs) => void delivered.push(rs.length), windowMs: 1, maxMessageBytes: one * 3 });
    await Promise.all(Array.from({ length: 7 }, (_, c) => batcher.send(big(c))));
    expect(delivered).toEqual([3, 3, 1]);

    const failing = new ReplayBatcher({ unitOf: () => 'u', deliver: async () => Promise.reject(new Error('queue gone')), windowMs: 1 });
    await expect(failing.send(req(1, 1, [0]))).rejects.toThrow('queue gone');
  });

  it('chunkBySize puts an item larger than the limit alone, and keeps to a count', () => {
    expect(chunkBySize(['a', 'bbbbbbbbbb', 'c', 'd'], (s) => s.length, 8)).toEqual([['a'], ['bbbbbbbbbb'], ['c', 'd']]);
    expect(chunkBySize([1, 1, 1, 1, 1], () => 1, 100, 2)).toEqual([[1, 1], [1, 1], [1]]);
  });
});
