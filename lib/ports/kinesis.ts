/**
 * The Kinesis Data Streams calls the stream connectors make, as a port: the AWS adapter
 * (lib/aws/kinesis-streams.ts) and the in-memory one (lib/memory/kinesis.ts) keep the same contract,
 * including AWS's limits and errors:
 *
 * - GetRecords: at most 10,000 records (and 10 MiB) a call, 5 calls a second per shard (more is
 *   ProvisionedThroughputExceeded); a shard iterator expires 5 minutes after it was handed out
 *   (ExpiredIterator); a closed shard read to its end returns no next iterator.
 * - PutRecords: at most 500 records and 5 MiB a call, 1 MiB a record; per shard 1,000 records and
 *   1 MiB a second, past which entries fail one by one (the call succeeds).
 * - Sequence numbers are decimal strings, increasing within a shard; compare them as numbers.
 */

export interface ShardInfo {
  shardId: string;
  parentShardId?: string;
  adjacentParentShardId?: string;
  /** Hash key range, decimal strings (0 .. 2^128 - 1 over all open shards). */
  hashKeyRange: { start: string; end: string };
  /** Set once the shard is closed (split or merged): its last sequence number. */
  endingSequenceNumber?: string;
}

export type ShardStart =
  | { type: 'TRIM_HORIZON' }
  | { type: 'LATEST' }
  | { type: 'AT_SEQUENCE_NUMBER' | 'AFTER_SEQUENCE_NUMBER'; sequenceNumber: string }
  | { type: 'AT_TIMESTAMP'; timestamp: number };

export interface StreamRecord {
  sequenceNumber: string;
  partitionKey: string;
  data: Uint8Array;
  /** When the stream accepted it (ms since the epoch). */
  arrivalTime: number;
}

export interface GetRecordsResult {
  records: StreamRecord[];
  /** Absent once a closed shard has been read to its end. */
  nextIterator: string | undefined;
  millisBehindLatest: number;
}

export interface PutRecordsEntry {
  partitionKey: string;
  data: Uint8Array;
  explicitHashKey?: string;
}

export interface PutRecordsResult {
  /** Per entry, in order: its sequence number, or why it failed (retry those). */
  results: ({ sequenceNumber: string; shardId: string } | { errorCode: string; errorMessage: string })[];
}

export interface KinesisStreams {
  /** Where the calls go (for error messages). */
  readonly location: string;
  listShards(stream: string): Promise<ShardInfo[]>;
  getShardIterator(stream: string, shardId: string, start: ShardStart): Promise<string>;
  getRecords(iterator: string, limit: number): Promise<GetRecordsResult>;
  putRecords(stream: string, entries: PutRecordsEntry[]): Promise<PutRecordsResult>;
}

export const KINESIS_LIMITS = {
  getRecordsMaxRecords: 10_000,
  getRecordsMaxBytes: 10 * 1024 * 1024,
  getRecordsCallsPerSecond: 5,
  iteratorLifetimeMs: 5 * 60_000,
  putRecordsMaxRecords: 500,
  putRecordsMaxBytes: 5 * 1024 * 1024,
  recordMaxBytes: 1024 * 1024,
  shardWriteRecordsPerSecond: 1000,
  shardWriteBytesPerSecond: 1024 * 1024,
} as const;

/** The stream (or a shard of it) does not exist. */
export class StreamNotFoundError extends Error {
  override name = 'StreamNotFoundError';
}

/** A shard's read (or write) rate was exceeded: back off and try again. */
export class ThroughputExceededError extends Error {
  override name = 'ThroughputExceededError';
}

/** The shard iterator is older than 5 minutes: get a new one from the last position. */
export class ExpiredIteratorError extends Error {
  override name = 'ExpiredIteratorError';
}

/** A request AWS refuses as malformed (limits, bad arguments). */
export class KinesisArgumentError extends Error {
  override name = 'KinesisArgumentError';
}

/** Orders two sequence numbers (decimal strings of any length). */
export function compareSequenceNumbers(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
