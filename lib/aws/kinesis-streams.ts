/**
 * The Kinesis port on AWS (or the emulator): @aws-sdk/client-kinesis, its errors turned into the
 * port's (stream missing, throughput exceeded, expired iterator, bad argument), each naming the
 * stream or shard and the endpoint.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { loadConfig, serviceEndpoint, type SluiceConfig } from '../config';
import {
  ExpiredIteratorError,
  KinesisArgumentError,
  StreamNotFoundError,
  ThroughputExceededError,
  type GetRecordsResult,
  type KinesisStreams,
  type PutRecordsEntry,
  type PutRecordsResult,
  type ShardInfo,
  type ShardStart,
} from '../ports/kinesis';

let requests = 0;
/** Kinesis requests this process made (every attempt, retries included). */
export const kinesisRequestCount = (): number => requests;

export function createKinesisClient(config: SluiceConfig = loadConfig()): KinesisClient {
  const endpoint = serviceEndpoint(config, 'kinesis');
  const client = new KinesisClient({
    region: config.region,
    maxAttempts: 3,
    ...(endpoint ? { endpoint } : {}),
    ...(config.credentials ? { credentials: config.credentials } : {}),
    // HTTP/1.1: the Kinesis client defaults to HTTP/2 (for SubscribeToShard, not used here), which
    // emulators do not speak; GetRecords and PutRecords are plain requests.
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 2_000,
      requestTimeout: 30_000,
      throwOnRequestTimeout: true,
      httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
    }),
  });
  client.middlewareStack.add(
    (next) => async (args) => {
      requests++;
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'sluiceKinesisRequestCounter' },
  );
  return client;
}

export class AwsKinesisStreams implements KinesisStreams {
  readonly location: string;

  constructor(private readonly client: KinesisClient = createKinesisClient()) {
    const endpoint = serviceEndpoint(loadConfig(), 'kinesis');
    this.location = endpoint ? `kinesis at ${endpoint}` : `kinesis in ${loadConfig().region}`;
  }

  async listShards(stream: string): Promise<ShardInfo[]> {
    const shards: Shard[] = [];
    let token: string | undefined;
    do {
      // With a NextToken the stream name must be left out.
      const page = await this.call(`ListShards of stream '${stream}'`, () => this.client.send(new ListShardsCommand(token ? { NextToken: token } : { StreamName: stream })));
      shards.push(...(page.Shards ?? []));
      token = page.NextToken;
    } while (token);
    return shards.map((s) => ({
      shardId: s.ShardId!,
      ...(s.ParentShardId ? { parentShardId: s.ParentShardId } : {}),
      ...(s.AdjacentParentShardId ? { adjacentParentShardId: s.AdjacentParentShardId } : {}),
      hashKeyRange: { start: s.HashKeyRange!.StartingHashKey!, end: s.HashKeyRange!.EndingHashKey! },
      ...(s.SequenceNumberRange?.EndingSequenceNumber ? { endingSequenceNumber: s.SequenceNumberRange.EndingSequenceNumber } : {}),
    }));
  }

  async getShardIterator(stream: string, shardId: string, start: ShardStart): Promise<string> {
    const out = await this.call(`GetShardIterator of shard ${shardId} of stream '${stream}'`, () =>
      this.client.send(
        new GetShardIteratorCommand({
          StreamName: stream,
          ShardId: shardId,
          ShardIteratorType: start.type,
          ...('sequenceNumber' in start ? { StartingSequenceNumber: start.sequenceNumber } : {}),
          ...('timestamp' in start ? { Timestamp: new Date(start.timestamp) } : {}),
        }),
      ),
    );
    return out.ShardIterator!;
  }

  async getRecords(iterator: string, limit: number): Promise<GetRecordsResult> {
    const out = await this.call('GetRecords', () => this.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: limit })));
    return {
      records: (out.Records ?? []).map((r) => ({
        sequenceNumber: r.SequenceNumber!,
        partitionKey: r.PartitionKey!,
        data: r.Data ?? new Uint8Array(),
        arrivalTime: r.ApproximateArrivalTimestamp?.getTime() ?? 0,
      })),
      nextIterator: out.NextShardIterator ?? undefined,
      millisBehindLatest: out.MillisBehindLatest ?? 0,
    };
  }

  async putRecords(stream: string, entries: PutRecordsEntry[]): Promise<PutRecordsResult> {
    const out = await this.call(`PutRecords to stream '${stream}'`, () =>
      this.client.send(
        new PutRecordsCommand({
          StreamName: stream,
          Records: entries.map((e) => ({ PartitionKey: e.partitionKey, Data: e.data, ...(e.explicitHashKey ? { ExplicitHashKey: e.explicitHashKey } : {}) })),
        }),
      ),
    );
    return {
      results: (out.Records ?? []).map((r) =>
        r.ErrorCode ? { errorCode: r.ErrorCode, errorMessage: r.ErrorMessage ?? r.ErrorCode } : { sequenceNumber: r.SequenceNumber!, shardId: r.ShardId! },
      ),
    };
  }

  private async call<T>(what: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      const name = (error as { name?: string }).name ?? '';
      const message = `${what} (${this.location}): ${(error as Error).message}`;
      if (name === 'ResourceNotFoundException') throw new StreamNotFoundError(message);
      if (name === 'ProvisionedThroughputExceededException' || name === 'LimitExceededException') throw new ThroughputExceededError(message);
      if (name === 'ExpiredIteratorException') throw new ExpiredIteratorError(message);
      if (name === 'InvalidArgumentException' || name === 'ValidationException') throw new KinesisArgumentError(message);
      throw error;
    }
  }
}
