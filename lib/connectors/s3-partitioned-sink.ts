/**
 * S3 sink writing line-delimited JSON into hourly partitions by event time:
 *   <prefix>/dt=YYYY-MM-DD/hour=HH/part-<subtask>-<transaction>.jsonl
 *
 * Two-phase: `prepare` writes the pending records to a staging prefix that readers never see;
 * `commit` copies each staged file to its final, deterministic key and removes the staging copy.
 * Committing the same transaction again rewrites the same keys, so commit is idempotent and a
 * transaction that is never committed never becomes visible.
 *
 * With `successMarkers: true`, an hourly partition also gets `<prefix>/dt=…/hour=HH/_SUCCESS` (an
 * empty object) once every subtask of the sink has committed a transaction whose watermark is at or
 * past the end of the hour (see partition-markers.ts; bookkeeping under sinks/<jobId>/<operatorId>/).
 * Readers of the output then see an empty `_SUCCESS` object among the data files.
 */
import type { Json, RuntimeContext, SinkFunction } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import { PartitionMarkers, partitionOfFile } from './partition-markers';

export interface S3PartitionedSinkOptions<I> {
  /** Output prefix; `{jobId}` is replaced by the job id. */
  prefix: string;
  /** Event time (ms) that picks the hourly partition of a record. */
  eventTime(record: I): number;
  /**
   * Write `_SUCCESS` into an hour partition once every sink subtask has committed past its end
   * (default false: readers that parse every object as JSON lines must skip empty objects first).
   */
  successMarkers?: boolean;
}

export interface StagedFile {
  staging: string;
  final: string;
  records: number;
}

export interface StagedTransaction {
  transaction: string;
  files: StagedFile[];
  /** Event time the subtask had completed when the transaction closed (absent: staged without one). */
  watermark?: number;
}

export function hourPartition(eventTime: number): string {
  // Consecutive records mostly fall in the same hour: its name is made once (a Date and an ISO
  // string per record cost ~0.5 µs). The hour truncates a fraction of a millisecond toward zero,
  // as a Date does (-0.5 is in 1970's first hour).
  const hour = Math.floor(Math.trunc(eventTime) / HOUR_MS);
  if (hour === lastHour.hour && Number.isFinite(eventTime)) return lastHour.name;
  const iso = new Date(eventTime).toISOString();
  const name = `dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
  lastHour = { hour, name };
  return name;
}

const HOUR_MS = 3_600_000;
let lastHour = { hour: Number.NaN, name: '' };

export class S3PartitionedSink<I extends Json> implements SinkFunction<I> {
  private blobs!: BlobStore;
  private prefix = '';
  private stagingPrefix = '';
  private subtask = 0;
  /** Pending lines per hourly partition, since the last prepare. */
  private pending = new Map<string, string[]>();
  private markers: PartitionMarkers | undefined;
  recordsCommitted = 0;

  constructor(private readonly options: S3PartitionedSinkOptions<I>) {}

  async open(ctx: RuntimeContext): Promise<void> {
    this.blobs = ctx.blobs;
    this.prefix = this.options.prefix.replaceAll('{jobId}', ctx.jobId).replace(/\/+$/, '');
    this.stagingPrefix = `staging/${ctx.jobId}/${ctx.operatorId}/${ctx.subtaskIndex}`;
    this.subtask = ctx.subtaskIndex;
    if (this.options.successMarkers) {
      this.markers = new PartitionMarkers(ctx.blobs, {
        jobId: ctx.jobId,
        operatorId: ctx.operatorId,
        subtaskIndex: ctx.subtaskIndex,
        parallelism: ctx.parallelism,
        outputPrefix: this.prefix,
      });
    }
  }

  /** `_SUCCESS` markers this subtask has written (0 without `successMarkers`). */
  get markersWritten(): number {
    return this.markers?.written ?? 0;
  }

  write(record: I): void {
    const partition = hourPartition(this.options.eventTime(record));
    let lines = this.pending.get(partition);
    if (!lines) this.pending.set(partition, (lines = []));
    lines.push(JSON.stringify(record));
  }

  async prepare(transaction: string, progress?: { watermark: number }): Promise<Json> {
    const files: StagedFile[] = [];
    const writes: Promise<void>[] = [];
    for (const [partition, lines] of [...this.pending.entries()].sort()) {
      const name = `part-${this.subtask}-${transaction}.jsonl`;
      const file = { staging: `${this.stagingPrefix}/${transaction}/${partition}/${name}`, final: `${this.prefix}/${partition}/${name}`, records: lines.length };
      writes.push(this.blobs.put(file.staging, lines.join('\n') + '\n'));
      files.push(file);
    }
    await Promise.all(writes);
    this.pending.clear();
    const staged: StagedTransaction = { transaction, files, ...(progress ? { watermark: progress.watermark } : {}) };
    return staged as unknown as Json;
  }

  async commit(staged: Json): Promise<void> {
    const { files, watermark } = staged as unknown as StagedTransaction;
    await Promise.all(
      files.map(async (f) => {
        // Already committed (a retried commit after a restore): the final key is there.
        if (!(await this.blobs.head(f.staging))) {
          if (await this.blobs.head(f.final)) return;
          throw new Error(`sink commit: staged file ${f.staging} is missing and ${f.final} was never written`);
        }
        await this.blobs.copy(f.staging, f.final);
        await this.blobs.delete([f.staging]);
        this.recordsCommitted += f.records;
      }),
    );
    // Every file is in place: record progress and mark the hours every subtask has passed.
    if (this.markers) await this.markers.committed(files.map((f) => partitionOfFile(f.final)!), watermark);
  }

  async abort(staged: Json): Promise<void> {
    const { files } = staged as unknown as StagedTransaction;
    await this.blobs.delete(files.map((f) => f.staging));
  }
}
