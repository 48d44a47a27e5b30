/**
 * The loop of a source subtask: poll a batch, push it through the operator chain, send what is
 * due. Between two polls it takes the checkpoints triggered meanwhile (a source's checkpoint is
 * its offsets: it needs no alignment), commits what completed, and stops for a hand-over.
 */
import type { Json, SourceFunction } from '../api/functions';
import type { OperatorChain } from './operator-chain';
import type { SubtaskOutput } from './subtask-output';

export interface SourceDriverHooks {
  /** Snapshot, acknowledge and forward barrier N. */
  checkpoint(checkpointId: number): Promise<void>;
  /** Work due between two polls (committing completed sink transactions). */
  betweenBatches(): Promise<void>;
  cancelled(): boolean;
  handoverRequested(): boolean;
}

export class SourceDriver {
  recordsIn = 0;
  /** Checkpoints triggered at this source and not yet taken. */
  readonly triggers: number[] = [];

  constructor(
    private readonly source: SourceFunction<Json>,
    private readonly chain: OperatorChain,
    private readonly output: SubtaskOutput,
    private readonly hooks: SourceDriverHooks,
    /** Records read per poll. */
    private readonly batchSize = 2000,
  ) {}

  /** Take checkpoint N before the next poll (a poll that waits is ended now). */
  trigger(checkpointId: number): void {
    this.triggers.push(checkpointId);
    this.source.interrupt?.();
  }

  /** Cancelled or handing over: a poll that waits is ended now. */
  interrupt(): void {
    this.source.interrupt?.();
  }

  /** Reads until the source is done; returns true when it stopped for a hand-over instead. */
  async run(): Promise<boolean> {
    const { source, chain, output, hooks } = this;
    while (!hooks.cancelled()) {
      while (this.triggers.length > 0) await hooks.checkpoint(this.triggers.shift()!);
      await hooks.betweenBatches();
      if (hooks.handoverRequested()) {
        await output.flush();
        return true;
      }
      const batch = await source.poll(this.batchSize);
      for (const record of batch.records) chain.push(record);
      this.recordsIn += batch.records.length;
      if (batch.watermark !== undefined) chain.advanceWatermark(batch.watermark);
      if (batch.done) return false;
      await output.maybeFlush();
    }
    return false;
  }
}
