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
 */
import type { Json, SinkFunction } from '../api/functions';
import { END_OF_TIME } from './operator-chain';

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

  /** The whole region has ended: commits everything still staged, then the last transaction, and closes the sink. */
  async commitFinal(last: Json | undefined): Promise<void> {
    for (const p of this.pending) await this.sink.commit(p.staged);
    this.pending = [];
    if (last !== undefined) await this.sink.commit(last);
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
