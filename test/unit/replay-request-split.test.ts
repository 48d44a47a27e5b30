/**
 * A restarted consumer's replay request, split per producer unit (replay.ts, splitReplayRequest):
 * each unit receives the positions of the producers it hosts, not those of every producer of the
 * edge (at P=4000 a request names 4000 producers, sent to some 40 units).
 */
import { describe, expect, it } from 'vitest';
import { splitReplayRequest } from '../../lib/runtime/replay';
import type { ReplayRequest } from '../../lib/runtime/messages';

const request = (producers: number): ReplayRequest => ({
  edgeId: 'e1',
  consumer: 7,
  consumerAttempt: 2,
  request: 3,
  from: Object.fromEntries(Array.from({ length: producers }, (_, p) => [p, [[0, p * 10]] as [number, number][]])),
});

describe('replay request split per producer unit', () => {
  it('gives each unit its own producers positions and the same address', () => {
    const whole = request(10);
    // Four producers per unit: u0 hosts 0-3, u1 4-7, u2 8-9.
    const parts = splitReplayRequest(whole, (p) => `u${Math.floor(p / 4)}`);
    expect([...parts.keys()]).toEqual(['u0', 'u1', 'u2']);
    expect(Object.keys(parts.get('u1')!.from).map(Number)).toEqual([4, 5, 6, 7]);
    expect(parts.get('u2')!.from).toEqual({ 8: [[0, 80]], 9: [[0, 90]] });
    for (const part of parts.values()) expect(part).toMatchObject({ edgeId: 'e1', consumer: 7, consumerAttempt: 2, request: 3 });
    // Every producer is asked exactly once, and the request itself is left as it was.
    expect([...parts.values()].flatMap((p) => Object.keys(p.from).map(Number)).sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect(Object.keys(whole.from)).toHaveLength(10);
  });

  it('leaves out producers that no unit hosts, and sends nothing for an empty request', () => {
    const parts = splitReplayRequest(request(3), (p) => (p === 1 ? undefined : 'u0'));
    expect([...parts.keys()]).toEqual(['u0']);
    expect(Object.keys(parts.get('u0')!.from).map(Number)).toEqual([0, 2]);
    expect(splitReplayRequest({ ...request(0) }, () => 'u0').size).toBe(0);
  });

  it('keeps a retry that asks only the silent producers to their units', () => {
    const retry: ReplayRequest = { ...request(0), request: 4, from: { 5: [[1, 12]] } };
    const parts = splitReplayRequest(retry, (p) => `u${Math.floor(p / 4)}`);
    expect([...parts.entries()]).toEqual([['u1', { ...retry, from: { 5: [[1, 12]] } }]]);
  });
});
