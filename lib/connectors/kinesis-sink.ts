/**
 * Kinesis Data Streams sink, AT-LEAST-ONCE. Records are sent with PutRecords (up to 500 a call) as
 * they come; a checkpoint's `prepare` waits until everything written before its barrier is in the
 * stream (entries the stream refused, e.g. for a shard's write rate, are sent again with back-off).
 * Kinesis has no transactions and no deduplication, so output cannot be held back and withdrawn:
 *
 * Duplicates: after a failure, the restarted region replays from its restored checkpoint N, and
 * every record this sink had sent after N's barrier is sent again (each once per restart). A reader
 * that needs exactly-once deduplicates by the record's own identity (put one in the record).
 * A PutRecords call whose answer is lost (a timeout) is retried by the SDK and may also duplicate.
 *
 * Order: one call in flight at a time, records in the order written; an entry the stream refused
 * goes again after the others of its call, so under throttling a key's order can change (as with
 * any PutRecords client; PutRecord one at a time with SequenceNumberForOrdering would keep it, slowly).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Json, RuntimeContext, SinkFunction } from '../api/functions';
import { KINESIS_LIMITS, type KinesisStreams, type PutRecordsEntry } from '../ports/kinesis';

export interface KinesisSinkOptions<I> {
  stream: string;
  partitionKey(record: I): string;
  /** Bytes of a record (default: its JSON text). */
  serialize?(record: I): Uint8Array;
  /** Attempts for entries the stream refuses before the sink fails (default 10). */
  maxAttempts?: number;
  streams?: () => KinesisStreams;
}

export class KinesisSinkError extends Error {
  override name = 'KinesisSinkError';
}

export class KinesisSink<I extends Json> implements SinkFunction<I> {
  private streams!: KinesisStreams;
  private pending: PutRecordsEntry[] = [];
  private sending: Promise<void> = Promise.resolve();
  private failure: unknown;
  /** Records the stream accepted (tests and logs read it). */
  sent = 0;

  constructor(private readonly options: KinesisSinkOptions<I>) {}

  async open(_ctx: RuntimeContext): Promise<void> {
    if (this.options.streams) this.streams = this.options.streams();
    else {
      const { AwsKinesisStreams } = await import('../aws/kinesis-streams');
      this.streams = new AwsKinesisStreams();
    }
  }

  write(record: I): void {
    if (this.failure) throw this.failure;
    const data = this.options.serialize ? this.options.serialize(record) : Buffer.from(JSON.stringify(record));
    this.pending.push({ partitionKey: this.options.partitionKey(record), data });
    if (this.pending.length >= KINESIS_LIMITS.putRecordsMaxRecords) this.send();
  }

  /** Everything written so far is in the stream when this resolves; nothing is staged. */
  async prepare(): Promise<Json> {
    this.send();
    await this.sending;
    if (this.failure) throw this.failure;
    return null;
  }

  async commit(): Promise<void> {}

  async abort(): Promise<void> {}

  async close(): Promise<void> {
    await this.sending.catch(() => undefined);
  }

  /** Queues the pending records behind the call in flight (one at a time keeps per-key order). */
  private send(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.sending = this.sending.then(() => this.put(batch)).catch((error: unknown) => void (this.failure ??= error));
  }

  private async put(entries: PutRecordsEntry[]): Promise<void> {
    const attempts = this.options.maxAttempts ?? 10;
    for (let from = 0; from < entries.length; ) {
      // A call holds at most 500 records and 5 MiB.
      let bytes = 0;
      let to = from;
      while (to < entries.length && to - from < KINESIS_LIMITS.putRecordsMaxRecords) {
        const size = entries[to]!.data.length + Buffer.byteLength(entries[to]!.partitionKey);
        if (size > KINESIS_LIMITS.recordMaxBytes) throw new KinesisSinkError(`Kinesis sink '${this.options.stream}': a record of ${size} bytes is over the ${KINESIS_LIMITS.recordMaxBytes}-byte limit`);
        if (to > from && bytes + size > KINESIS_LIMITS.putRecordsMaxBytes) break;
        bytes += size;
        to++;
      }
      let batch = entries.slice(from, to);
      for (let attempt = 1; batch.length > 0; attempt++) {
        const { results } = await this.streams.putRecords(this.options.stream, batch);
        const failed = batch.filter((_, i) => 'errorCode' in results[i]!);
        this.sent += batch.length - failed.length;
        if (failed.length === 0) break;
        if (attempt >= attempts) {
          const first = results.find((r) => 'errorCode' in r) as { errorCode: string; errorMessage: string };
          throw new KinesisSinkError(`Kinesis sink '${this.options.stream}': ${failed.length} records still refused after ${attempts} attempts (${first.errorCode}: ${first.errorMessage})`);
        }
        batch = failed;
        await sleep(Math.min(2_000, 50 * 2 ** attempt));
      }
      from = to;
    }
  }
}
