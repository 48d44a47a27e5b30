/**
 * The Kinesis port's AWS adapter against the emulator (moto, with the AWS behaviours the embedded
 * emulator restores: lib/local/emulator.ts): records in and out, limits and errors as AWS names
 * them, a split that keeps the parent's records and ends it, and the source reading through a
 * split (parent first) and through throttling.
 */
import { CreateStreamCommand, DeleteStreamCommand, SplitShardCommand, waitUntilStreamExists } from '@aws-sdk/client-kinesis';
import { afterAll, describe, expect, it } from 'vitest';
import type { RuntimeContext } from '../../lib/api/functions';
import { AwsKinesisStreams, createKinesisClient } from '../../lib/aws/kinesis-streams';
import { KinesisSource, KinesisSourceError } from '../../lib/connectors/kinesis-source';
import { MemoryBlobStore } from '../../lib/memory';
import { KinesisArgumentError, StreamNotFoundError, ThroughputExceededError } from '../../lib/ports/kinesis';

const client = createKinesisClient();
const streams = new AwsKinesisStreams(client);
const created: string[] = [];

async function createStream(shards: number): Promise<string> {
  const name = `it-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  await waitUntilStreamExists({ client, maxWaitTime: 30 }, { StreamName: name });
  created.push(name);
  return name;
}

const put = async (stream: string, from: number, n: number, hashKey?: string) => {
  const { results } = await streams.putRecords(stream, Array.from({ length: n }, (_, i) => ({ partitionKey: `k${from + i}`, data: Buffer.from(JSON.stringify({ n: from + i })), ...(hashKey ? { explicitHashKey: hashKey } : {}) })));
  expect(results.every((r) => 'sequenceNumber' in r)).toBe(true);
};

afterAll(async () => {
  await Promise.all(created.map((StreamName) => client.send(new DeleteStreamCommand({ StreamName })).catch(() => undefined)));
  client.destroy();
});

describe('Kinesis on the emulator', () => {
  it('reads back what was put, in order per shard, and refuses what AWS refuses', async () => {
    const stream = await createStream(1);
    await put(stream, 0, 300);
    const [shard] = await streams.listShards(stream);
    let it = await streams.getShardIterator(stream, shard!.shardId, { type: 'TRIM_HORIZON' });
    const first = await streams.getRecords(it, 100);
    expect(first.records.map((r) => JSON.parse(Buffer.from(r.data).toString()).n)).toEqual([...Array(100).keys()]);
    it = first.nextIterator!;
    const after = await streams.getShardIterator(stream, shard!.shardId, { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: first.records[99]!.sequenceNumber });
    expect((await streams.getRecords(after, 1)).records[0]!.sequenceNumber).toBe((await streams.getRecords(it, 1)).records[0]!.sequenceNumber);
    await expect(streams.getRecords(it, 10_001)).rejects.toThrow(KinesisArgumentError);
    await expect(streams.listShards('no-such-stream')).rejects.toThrow(StreamNotFoundError);
    // Five calls a second per shard: ten at once go past it (a few rounds, should the machine be slow
    // enough to spread one round over more than a second).
    let throttled = false;
    for (let round = 0; round < 5 && !throttled; round++) {
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => streams.getRecords(it, 1)));
      throttled = results.some((r) => r.status === 'rejected' && r.reason instanceof ThroughputExceededError);
    }
    expect(throttled).toBe(true);
  });

  it('a split keeps the parent’s records in the parent, ends it, and the source reads parent before children', async () => {
    const stream = await createStream(1);
    await put(stream, 0, 50);
    const [parent] = await streams.listShards(stream);
    await client.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: parent!.shardId, NewStartingHashKey: String(1n << 127n) }));
    await put(stream, 50, 30, '1');
    await put(stream, 80, 20, String((1n << 127n) + 1n));
    const shards = await streams.listShards(stream);
    expect(shards).toHaveLength(3);
    expect(shards[0]!.endingSequenceNumber).toBeDefined();
    const it = await streams.getShardIterator(stream, parent!.shardId, { type: 'TRIM_HORIZON' });
    const all = await streams.getRecords(it, 1000);
    expect(all.records).toHaveLength(50);
    expect(all.nextIterator).toBeUndefined();

    const src = new KinesisSource<{ n: number }>({ stream, deserialize: (d) => JSON.parse(Buffer.from(d).toString()) as { n: number }, bounded: true, streams: () => streams });
    const ctx: RuntimeContext = { jobId: 'it', operatorId: 'k', subtaskIndex: 0, parallelism: 1, attempt: 0, blobs: new MemoryBlobStore() };
    await src.open(ctx);
    const got: number[] = [];
    for (let i = 0; i < 500; i++) {
      const batch = await src.poll(1000);
      got.push(...batch.records.map((r) => r.n));
      if (batch.done) break;
    }
    expect(got.slice(0, 50)).toEqual([...Array(50).keys()]);
    expect(got.slice(50).sort((a, b) => a - b)).toEqual([...Array(50).keys()].map((i) => i + 50));
  });

  it('the source names a stream that does not exist', async () => {
    const src = new KinesisSource({ stream: 'missing-stream', deserialize: () => null, streams: () => streams });
    await expect(src.open({ jobId: 'it', operatorId: 'k', subtaskIndex: 0, parallelism: 1, attempt: 0, blobs: new MemoryBlobStore() })).rejects.toThrow(KinesisSourceError);
  });
});
