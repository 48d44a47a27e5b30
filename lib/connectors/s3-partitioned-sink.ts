/**
 * S3 sink writing line-delimited JSON into hourly partitions by event time:
 *   <prefix>/dt=YYYY-MM-DD/hour=HH/part-<subtask>-<transaction>.jsonl
 *
 * Two-phase: `prepare` writes the pending records to a staging prefix that readers never see;
 * `commit` copies each staged file to its final, deterministic key and removes the staging copy.
 * Committing the same transaction again rewrites the same keys, so commit is idempotent and a
 * transaction that is never committed never becomes visible.
 */
import type { Json, RuntimeContext, SinkFunction } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';

export interface S3PartitionedSinkOptions<I> {
  /** Output prefix; `{jobId}` is replaced by the job id. */
  prefix: string;
  /** Event time (ms) that picks the hourly partition of a record. */
  eventTime(record: I): number;
}

export interface StagedFile {
  staging: string;
  final: string;
  records: number;
}

export interface StagedTransaction {
  transaction: string;
  files: StagedFile[];
}

export function hourPartition(eventTime: number): string {
  const iso = new Date(eventTime).toISOString();
  return `dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
}

export class S3PartitionedSink<I extends Json> implements SinkFunction<I> {
  private blobs!: BlobStore;
  private prefix = '';
  private stagingPrefix = '';
  private subtask = 0;
  /** Pending lines per hourly partition, since the last prepare. */
  private pending = new Map<string, string[]>();
  recordsCommitted = 0;

  constructor(private readonly options: S3PartitionedSinkOptions<I>) {}

  async open(ctx: RuntimeContext): Promise<void> {
    this.blobs = ctx.blobs;
    this.prefix = this.options.prefix.replaceAll('{jobId}', ctx.jobId).replace(/\/+$/, '');
    this.stagingPrefix = `staging/${ctx.jobId}/${ctx.operatorId}/${ctx.subtaskIndex}`;
    this.subtask = ctx.subtaskIndex;
  }

  write(record: I): void {
    const partition = hourPartition(this.options.eventTime(record));
    let lines = this.pending.get(partition);
    if (!lines) this.pending.set(partition, (lines = []));
    lines.push(JSON.stringify(record));
  }

  async prepare(transaction: string): Promise<Json> {
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
    const staged: StagedTransaction = { transaction, files };
    return staged as unknown as Json;
  }

  async commit(staged: Json): Promise<void> {
    const { files } = staged as unknown as StagedTransaction;
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
  }

  async abort(staged: Json): Promise<void> {
    const { files } = staged as unknown as StagedTransaction;
    await this.blobs.delete(files.map((f) => f.staging));
  }
}
