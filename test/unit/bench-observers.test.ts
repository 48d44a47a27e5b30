/** The scale benchmark's write breakdown: DynamoDB write units and S3 PUTs per kind of item or object. */
import { describe, expect, it } from 'vitest';
import { ObservedMetadataStore, kindsBetween, kindsSum } from '../../bench/lib/metadata-observer';
import { ObservedBlobStore, blobKind } from '../../bench/lib/blob-observer';
import { MemoryMetadataStore } from '../../lib/memory/metadata-store';
import { MemoryBlobStore } from '../../lib/memory/blob-store';

describe('writes by kind', () => {
  it('counts DynamoDB writes and billed units (1 per started KB) per kind of item', async () => {
    const store = new ObservedMetadataStore(new MemoryMetadataStore());
    const before = store.writesByKind();
    await store.put('JOB#j#UNITS#0', 'UNIT#unit-1', { stats: 'x'.repeat(3000) });
    await store.put('JOB#j#UNITS#0', 'UNIT#unit-2', { stats: 'x'.repeat(10) });
    await store.put('JOB#j#ACK#000000000004#0', 'join#3#a0', { at: 1 });
    const counts = kindsBetween(before, store.writesByKind());
    expect(counts['UNITS / UNIT#']).toEqual({ writes: 2, units: 3 + 1 });
    expect(counts['ACK / <subtask>']).toEqual({ writes: 1, units: 1 });
    expect(kindsSum(counts, counts)['ACK / <subtask>']).toEqual({ writes: 2, units: 2 });
    // Only kinds written in between.
    const later = store.writesByKind();
    await store.put('JOB#j#ACK#000000000005#0', 'join#3#a0', { at: 2 });
    expect(Object.keys(kindsBetween(later, store.writesByKind()))).toEqual(['ACK / <subtask>']);
  });

  it('counts S3 PUTs and LISTs per kind of object', async () => {
    const blobs = new ObservedBlobStore(new MemoryBlobStore());
    await blobs.put('checkpoints/j/4/join#3.a0.json', '{}');
    await blobs.put('checkpoints/j/4/union/op/3.a0.json', '{}');
    await blobs.put('checkpoints/j/4/manifest-r0.json', '{}');
    await blobs.list('sinks/j/op/hours/');
    const counts = blobs.writesByKind();
    expect(counts['checkpoints/<N>/<subtask snapshot>']).toEqual({ writes: 1, units: 1 });
    expect(counts['checkpoints/<N>/union/<task>/<index>']).toEqual({ writes: 1, units: 1 });
    expect(counts['checkpoints/<N>/manifest']).toEqual({ writes: 1, units: 1 });
    expect(counts['LIST sinks/...']).toEqual({ writes: 1, units: 1 });
    expect(blobKind('staging/j/op/0/x.json')).toBe('staging/...');
  });
});
