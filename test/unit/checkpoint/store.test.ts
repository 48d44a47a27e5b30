import { describe, expect, it } from 'vitest';
import { CompletedCheckpointStore } from '../../../lib/checkpoint';
import { manifest } from './helpers';

describe('CompletedCheckpointStore', () => {
  it('keeps the last K manifests and retires older ones', () => {
    const s = new CompletedCheckpointStore(2);
    expect(s.latest()).toBeUndefined();
    expect(s.add(manifest(1, [1, 1]))).toEqual({ checkpointIds: [], keys: [] });
    expect(s.add(manifest(2, [2, 1]))).toEqual({ checkpointIds: [], keys: [] });
    // Dropping 1: r0@1 is unreferenced; r1@1 is still used by manifest 2.
    expect(s.add(manifest(3, [3, 3]))).toEqual({ checkpointIds: [1], keys: ['k/1/s0'] });
    // Dropping 2: r0@2 and r1@1 are unreferenced now.
    expect(s.add(manifest(4, [4, 3]))).toEqual({ checkpointIds: [2], keys: ['k/2/s0', 'k/1/s1'] });
    expect(s.all().map((m) => m.checkpointId)).toEqual([3, 4]);
    expect(s.latest()!.checkpointId).toBe(4);
  });

  it('never releases a key referenced by a retained manifest, with K = 1', () => {
    const s = new CompletedCheckpointStore(1);
    s.add(manifest(1, [1, null]));
    expect(s.add(manifest(2, [1, 2]))).toEqual({ checkpointIds: [1], keys: [] });
    expect(s.add(manifest(3, [3, 2]))).toEqual({ checkpointIds: [2], keys: ['k/1/s0'] });
  });

  it('matches regions by id when the order differs', () => {
    const s = new CompletedCheckpointStore(1);
    s.add(manifest(1, [1, 1]));
    const m2 = manifest(2, [2, 1]);
    const reordered = { ...m2, regions: [m2.regions[1]!, m2.regions[0]!] };
    expect(s.add(reordered)).toEqual({ checkpointIds: [1], keys: ['k/1/s0'] });
  });

  it('rejects a manifest that is not newer, and starts from restored manifests', () => {
    const s = new CompletedCheckpointStore(2, [manifest(3, [3]), manifest(1, [1]), manifest(2, [2])]);
    expect(s.all().map((m) => m.checkpointId)).toEqual([2, 3]);
    expect(() => s.add(manifest(3, [3]))).toThrow(/not newer/);
    expect(() => new CompletedCheckpointStore(0)).toThrow(/retained/);
  });
});
