/**
 * The two-phase commit of a chained sink: output is staged as one transaction per checkpoint (and
 * one per hand-over) and becomes visible only once the coordinator says that checkpoint completed
 * for the sink's region. At end of input the last transaction waits for `commitFinal` (every
 * subtask of the region has ended), so nothing becomes visible that a region restart would
 * produce again.
 *
 * What is staged and not committed travels in the checkpoint snapshot and the hand-over: a
 * restore commits what its checkpoint staged (that checkpoint completed), a hand-over's successor
 * keeps waiting for it.
 *
 * The final commit is released once and for all: before it commits anything, the ledger writes
 * what it is about to commit (every transaction still staged and the last one) as the subtask's
 * final record (`finalCommitKey`). A sink killed during or after the final commit, before its unit
 * was recorded finished, is restarted with its region from a checkpoint; its new attempt finds the
 * record, commits it again (commits are idempotent) and finishes, instead of processing the
 * region's replayed input into transactions of its own, which would commit that output twice.
 */
import type { Json, SinkFunction } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import { END_OF_TIME } from './operator-chain';

/** Where a sink subtask's final record is (see above): one per subtask, whichever attempt wrote it. */
export const finalCommitKey = (jobId: string, subtask: string): string => `sinks/${jobId}/final/${subtask}.json`;

/** What a sink subtask's final commit commits, written before it begins. */
export interface FinalCommitRecord {
  attempt: number;
  staged: StagedTransaction[];
  last?: Json;
  /** The subtask's counters when it began (reported again by an attempt that finishes from the record). */
  counters?: Json;
}

/** A transaction staged under a checkpoint and not committed yet. */
export interface StagedTransaction {
  checkpointId: number;
  staged: Json;
}

export class SinkLedger {
  private pending: StagedTransaction[] = [];
  /** Checkpoints the coordinator declared complete, committed at the next `commitCompleted`. */
  private readonly completed: number[] = [];

  constructor(private readonly sink: SinkFunction<Json>) {}

  /** Staged transactions not committed yet, oldest first (a copy: it goes into snapshots and hand-overs). */
  staged(): StagedTransaction[] {
    return [...this.pending];
  }

  /** Stages what the sink received since its last transaction, to commit with checkpoint N. */
  async stage(checkpointId: number, transactionId: string, watermark: number): Promise<void> {
    this.pending.push({ checkpointId, staged: await this.sink.prepare(transactionId, { watermark }) });
  }

  /** Checkpoint N completed for the sink's region (committed at the next `commitCompleted`). */
  complete(checkpointId: number): void {
    this.completed.push(checkpointId);
  }

  /** Commits every transaction staged up to the newest completed checkpoint. */
  async commitCompleted(): Promise<void> {
    if (this.completed.length === 0) return;
    const upTo = Math.max(...this.completed.splice(0));
    const due = this.pending.filter((p) => p.checkpointId <= upTo);
    this.pending = this.pending.filter((p) => p.checkpointId > upTo);
    for (const p of due) await this.sink.commit(p.staged);
  }

  /** End of input: stages the last output (committed by `commitFinal`). */
  prepareFinal(): Promise<Json> {
    return this.sink.prepare('final', { watermark: END_OF_TIME });
  }

  /**
   * The whole region has ended: records what it commits (`finalCommitKey`), then commits everything
   * still staged, then the last transaction, and closes the sink.
   */
  async commitFinal(last: Json | undefined, record: { blobs: BlobStore; key: string; attempt: number; counters?: Json }): Promise<void> {
    const final: FinalCommitRecord = { attempt: record.attempt, staged: this.pending, ...(last !== undefined ? { last } : {}), ...(record.counters !== undefined ? { counters: record.counters } : {}) };
    await record.blobs.put(record.key, JSON.stringify(final));
    await this.commitRecorded(final);
  }

  /**
   * Commits a final record (its own, or one a dead attempt wrote: commits are idempotent) and
   * closes the sink.
   */
  async commitRecorded(final: FinalCommitRecord): Promise<void> {
    for (const p of final.staged) await this.sink.commit(p.staged);
    this.pending = [];
    if (final.last !== undefined) await this.sink.commit(final.last);
    await this.sink.close?.();
  }

  /** A restore from checkpoint N: N completed, so everything it had staged belongs in the output. */
  async commitRestored(staged: readonly StagedTransaction[]): Promise<void> {
    for (const p of staged) await this.sink.commit(p.staged);
  }

  /** A hand-over's successor keeps waiting for what its predecessor staged. */
  resume(staged: readonly StagedTransaction[]): void {
    this.pending = [...staged];
  }
}
