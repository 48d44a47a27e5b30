/** The in-memory ports: the port contracts, plus request counts and what only they promise. */
import { describe, expect, it } from 'vitest';
import { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore, createMemoryPorts, memoryRequestCounts } from '../../lib/memory';
import { blobStoreContract } from '../contracts/blobs.contract';
import { channelTransportContract, receiptExpiryContract } from '../contracts/channels.contract';
import { metadataStoreContract } from '../contracts/metadata.contract';

channelTransportContract('memory', async () => new MemoryChannelTransport());
receiptExpiryContract('memory', async () => new MemoryChannelTransport());
metadataStoreContract('memory', async () => new MemoryMetadataStore());
blobStoreContract('memory', async () => new MemoryBlobStore());

describe('memory ports beyond the contract', () => {
  it('counts the requests the AWS adapters would make', async () => {
    const ports = createMemoryPorts();
    const { channels, metadata, blobs } = ports;
    await channels.createQueues(['a', 'b']); // 2 CreateQueue
    await channels.send('a', Array.from({ length: 25 }, (_, i) => ({ groupId: String(i), dedupId: String(i), body: 'x' }))); // 3 batches
    const got = await channels.receive('a', { max: 10, waitSeconds: 0 }); // 1
    await channels.delete('a', got.map((m) => m.receipt)); // 1
    expect(channels.requests).toBe(7);
    await metadata.put('p', 's', { a: 1 });
    await metadata.update('p', 's', { add: { a: 1 } });
    await metadata.query('p');
    expect(metadata.requests).toBe(3);
    await blobs.put('k', 'v');
    await blobs.delete(Array.from({ length: 1500 }, (_, i) => `k${i}`)); // 2 DeleteObjects
    expect(blobs.requests).toBe(3);
    expect(memoryRequestCounts(ports)).toEqual({ sqs: 7, dynamodb: 3, s3: 3, total: 13 });
  });

  it('expires receipts on its clock: a message held for minutes without waiting for them', async () => {
    let now = 1_000_000;
    const t = new MemoryChannelTransport({ clock: { now: () => now } });
    await t.createQueues(['q']);
    await t.send('q', [{ groupId: '0', dedupId: 'd1', body: 'one' }, { groupId: '0', dedupId: 'd2', body: 'two' }]);
    const [first] = await t.receive('q', { max: 1, waitSeconds: 0, visibilityTimeoutSeconds: 15 });
    // Extended every 5 s for 10 minutes: still in flight, its group still blocked.
    for (let i = 0; i < 120; i++) {
      now += 5_000;
      expect(await t.changeVisibility('q', [first!.receipt], 15)).toEqual({ expired: [] });
      expect(await t.receive('q', { max: 10, waitSeconds: 0 })).toEqual([]);
    }
    expect(await t.delete('q', [first!.receipt])).toEqual({ expired: [] });
    const [second] = await t.receive('q', { max: 1, waitSeconds: 0, visibilityTimeoutSeconds: 15 });
    expect(second!.body).toBe('two');
    now += 15_000;
    expect(await t.delete('q', [second!.receipt])).toEqual({ expired: [second!.receipt] });
    expect(t.expiredReceipts).toBe(1);
    // Received again: counted as a redelivery; the total visibility of one receive stays within 12 h.
    const [again] = await t.receive('q', { max: 1, waitSeconds: 0, visibilityTimeoutSeconds: 43_200 });
    expect([again!.body, again!.receiveCount, t.redeliveries]).toEqual(['two', 2, 1]);
    now += 60_000;
    await expect(t.changeVisibility('q', [again!.receipt], 43_200)).rejects.toThrow(/beyond the limit \[43200 seconds\]/);
    expect(await t.changeVisibility('q', [again!.receipt], 43_200 - 60)).toEqual({ expired: [] });
  });

  it('ends a long poll with the queue error when the queue is deleted meanwhile', async () => {
    const t = new MemoryChannelTransport();
    await t.createQueues(['q']);
    const pending = t.receive('q', { max: 1, waitSeconds: 10 });
    await t.deleteQueues(['q']);
    await expect(pending).rejects.toMatchObject({ kind: 'missing-queue' });
  });

  it('moves 10k messages and 20k metadata updates without losing any', async () => {
    const t = new MemoryChannelTransport();
    await t.createQueues(['fast']);
    const groups = 20;
    let seq = 0;
    for (let round = 0; round < 1_000; round++) {
      await t.send(
        'fast',
        Array.from({ length: 10 }, (_, i) => ({ groupId: String((round + i) % groups), dedupId: String(seq++), body: 'r'.repeat(100) })),
      );
    }
    let received = 0;
    for (;;) {
      const got = await t.receive('fast', { max: 10, waitSeconds: 0 });
      if (got.length === 0) break;
      received += got.length;
      await t.delete('fast', got.map((m) => m.receipt));
    }
    expect(received).toBe(10_000);

    const m = new MemoryMetadataStore();
    for (let i = 0; i < 20_000; i++) await m.update('job', `task#${i % 500}`, { add: { n: 1 }, set: { at: i } }, [{ attr: 'at', op: '<>', value: -1 }]);
    expect((await m.query('job', 'task#')).length).toBe(500);
    expect((await m.query('job', 'task#')).reduce((n, { item }) => n + Number(item.n), 0)).toBe(20_000);
  });
});
