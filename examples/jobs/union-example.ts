/**
 * A job that keeps union list state: its source records, in union state, the partitions it has
 * finished reading. After a restore each source subtask sees the partitions finished by EVERY
 * subtask (as of each one's restore point) and skips them: the Flink pattern for a source that
 * tracks finished splits, so a restore (or a rescale) re-reads no split anybody finished.
 *
 *   ledger (source; union state 'finished-partitions') -> parse -> S3 sink, all chained
 *
 * Forward edges only, chained into one task: every pipeline is one task unit and its own checkpoint
 * region, so under the regional handle the subtasks of `ledger` may restore from different
 * checkpoints. Every record has a unique id (`<partition>-<offset>`), so the committed output can
 * be checked exactly.
 *
 * Not registered in examples/jobs/index.ts; tests build their own JobRegistry.
 */
import type { Json, RuntimeContext, SourceBatch, SourceFunction } from '../../lib/api/functions';
import { unionStateOf } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { defineJob, typedParams, type JobParams } from '../../lib/api/registry';
import { S3PartitionedSink } from '../../lib/connectors/s3-partitioned-sink';
import type { UnionListState } from '../../lib/runtime/union-state';

export const LEDGER_START = Date.UTC(2026, 0, 1);
export const FINISHED_STATE = 'finished-partitions';

/** One entry of the union state: partition `partition` was read to its end by subtask `subtask`. */
export interface FinishedPartition {
  partition: number;
  subtask: number;
  [k: string]: number;
}

export interface LedgerRecord {
  id: string;
  ts: number;
  [k: string]: string | number;
}

/** What a ledger subtask saw when it opened (for tests and the demo's log). */
export interface LedgerOpen {
  subtaskIndex: number;
  attempt: number;
  /** The union state as restored, before the subtask kept its own entries. */
  union: FinishedPartition[];
  /** Partitions of this subtask it skips because some subtask finished them. */
  skipped: number[];
}

export interface LedgerOptions {
  partitions: number;
  recordsPerPartition: number;
  /** Records per second per subtask (0: unlimited). */
  ratePerSecond: number;
  msPerRecord: number;
  onOpen?: (event: LedgerOpen) => void;
}

export const ledgerLine = (partition: number, offset: number, msPerRecord: number): string => `${partition}-${offset},${LEDGER_START + offset * msPerRecord}`;

export function parseLedger(line: string): LedgerRecord {
  const [id, ts] = line.split(',');
  return { id: id!, ts: Number(ts) };
}

/**
 * Subtask i reads partitions p with p % parallelism === i, one after the other. Its offsets are
 * its operator snapshot; the partitions it finished are its union state.
 */
export class LedgerSource implements SourceFunction<string> {
  private finished!: UnionListState<FinishedPartition>;
  private assigned: number[] = [];
  private offsets = new Map<number, number>();
  private subtask = 0;
  private startedAt = 0;
  private emitted = 0;

  constructor(private readonly options: LedgerOptions) {}

  async open(ctx: RuntimeContext): Promise<void> {
    this.subtask = ctx.subtaskIndex;
    this.finished = unionStateOf<FinishedPartition>(ctx, FINISHED_STATE);
    // After a restore this is the union: every subtask's finished partitions.
    const union = this.finished.get();
    const done = new Set(union.map((e) => e.partition));
    const owned: number[] = [];
    for (let p = ctx.subtaskIndex; p < this.options.partitions; p += ctx.parallelism) owned.push(p);
    // Keep only this subtask's own entries, or every checkpoint would write the whole union again.
    this.finished.replace(union.filter((e) => owned.includes(e.partition)));
    this.assigned = owned.filter((p) => !done.has(p));
    for (const p of owned) if (!this.offsets.has(p)) this.offsets.set(p, 0);
    this.startedAt = Date.now();
    this.emitted = 0;
    this.options.onOpen?.({ subtaskIndex: ctx.subtaskIndex, attempt: ctx.attempt, union, skipped: owned.filter((p) => done.has(p)) });
  }

  async poll(max: number): Promise<SourceBatch<string>> {
    const { ratePerSecond: rate, recordsPerPartition: limit, msPerRecord } = this.options;
    let budget = max;
    if (rate) {
      const allowed = Math.floor(((Date.now() - this.startedAt) / 1000) * rate) - this.emitted;
      if (allowed <= 0) {
        await new Promise((r) => setTimeout(r, Math.min(50, Math.ceil(1000 / rate))));
        return { records: [], done: false };
      }
      budget = Math.min(budget, allowed);
    }
    const records: string[] = [];
    while (records.length < budget && this.assigned.length > 0) {
      const p = this.assigned[0]!;
      let offset = this.offsets.get(p)!;
      const end = Math.min(limit, offset + budget - records.length);
      for (; offset < end; offset++) records.push(ledgerLine(p, offset, msPerRecord));
      this.offsets.set(p, offset);
      if (offset >= limit) {
        this.assigned.shift();
        this.finished.add({ partition: p, subtask: this.subtask });
      }
    }
    this.emitted += records.length;
    return { records, done: this.assigned.length === 0 };
  }

  snapshotOffsets(): Json {
    return Object.fromEntries([...this.offsets].map(([p, o]) => [String(p), o]));
  }

  restoreOffsets(offsets: Json): void {
    for (const [p, o] of Object.entries(offsets as Record<string, number>)) this.offsets.set(Number(p), o);
    // A partition read to its end is finished, whether or not the union said so.
    this.assigned = this.assigned.filter((p) => (this.offsets.get(p) ?? 0) < this.options.recordsPerPartition);
  }
}

/** Every id the job must write. */
export function expectedLedgerIds(given: JobParams): Set<string> {
  const params = typedParams('union-example', unionExampleParams, given);
  const ids = new Set<string>();
  for (let p = 0; p < params.partitions; p++) for (let o = 0; o < params.recordsPerPartition; o++) ids.add(`${p}-${o}`);
  return ids;
}

const unionExampleParams = {
  parallelism: { type: 'number', default: 4, integer: true, min: 1, max: 256, description: 'pipelines' },
  partitions: { type: 'number', default: 16, integer: true, min: 1, max: 4096, description: 'ledger partitions' },
  recordsPerPartition: { type: 'number', default: 1000, integer: true, min: 1, description: 'records in each partition' },
  rate: { type: 'number', default: 0, min: 0, description: 'records per second per source subtask (0: unlimited)' },
  msPerRecord: { type: 'number', default: 1000, integer: true, min: 1, description: 'event-time step between records of a partition' },
} as const;

export function buildUnionExample(given: JobParams, hooks: { source?: () => SourceFunction<string>; onOpen?: (event: LedgerOpen) => void } = {}) {
  const params = typedParams('union-example', unionExampleParams, given);
  const job = new JobBuilder('union-example', { parallelism: params.parallelism });
  const source =
    hooks.source ??
    (() =>
      new LedgerSource({
        partitions: params.partitions,
        recordsPerPartition: params.recordsPerPartition,
        ratePerSecond: params.rate,
        msPerRecord: params.msPerRecord,
        onOpen: hooks.onOpen,
      }));
  job
    .source('ledger', source)
    .map('parse', parseLedger)
    .sink('s3-sink', () => new S3PartitionedSink<LedgerRecord>({ prefix: 'output/{jobId}', eventTime: (r) => r.ts }));
  return job.build();
}

export const unionExampleJob = defineJob({
  name: 'union-example',
  description: 'ledger source (finished partitions in union state) -> parse -> S3 sink, chained (one region per pipeline)',
  params: unionExampleParams,
  build: (params) => buildUnionExample(params),
});
