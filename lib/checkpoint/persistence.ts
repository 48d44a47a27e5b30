import type { BlobStore } from '../ports/blob-store';
import type { CheckpointCatalog } from './catalog';
import type { CheckpointEffect } from './types';

export interface PersistenceOptions {
  /** Keys per delete request (S3 DeleteObjects takes at most 1000). */
  deleteBatchSize?: number;
}

/**
 * Does the storage side of the coordinator's effects: persists finalized checkpoints through the
 * catalog and deletes discarded and retired snapshots, batching the deletes.
 *
 * Use: `effects = coordinator.x(...)`; `await persistence.apply(effects)`; then send the
 * `triggerSources` / `notifyComplete` / `abortCheckpoint` effects. `apply` returns only after every
 * completed checkpoint in the list is durable, which is what allows the notifies to go out.
 *
 * Discarded keys are never referenced by a manifest, so deleting them late is safe: they are
 * buffered and deleted in batches of `deleteBatchSize`, and whatever is left at each finalized
 * checkpoint (or at `flush`).
 */
export class CheckpointPersistence {
  private readonly batch: number;
  private buffer: string[] = [];

  constructor(
    private readonly catalog: CheckpointCatalog,
    private readonly blobs: BlobStore,
    options: PersistenceOptions = {},
  ) {
    this.batch = options.deleteBatchSize ?? 1000;
    if (!Number.isInteger(this.batch) || this.batch < 1 || this.batch > 1000) throw new Error(`deleteBatchSize must be in 1..1000, got ${this.batch}`);
  }

  /** Keys waiting to be deleted. */
  get pendingDeletes(): number {
    return this.buffer.length;
  }

  async apply(effects: readonly CheckpointEffect[]): Promise<void> {
    let finalized = false;
    for (const e of effects) {
      switch (e.type) {
        case 'checkpointFinalized':
          if (e.outcome === 'completed') await this.catalog.saveCompleted(e.manifest, e.history, e.retained);
          else await this.catalog.saveFailed(e.history);
          finalized = true;
          break;
        case 'retireCheckpoints':
          await this.catalog.deleteManifests(e.checkpointIds);
          await this.queue(e.keys);
          break;
        case 'discardSnapshots':
          await this.queue(e.keys);
          break;
        default:
          break;
      }
    }
    if (finalized) await this.flush();
  }

  /** Deletes every buffered key now. */
  async flush(): Promise<void> {
    while (this.buffer.length > 0) {
      const chunk = this.buffer.length <= this.batch ? this.buffer : this.buffer.slice(0, this.batch);
      this.buffer = this.buffer.length <= this.batch ? [] : this.buffer.slice(this.batch);
      await this.blobs.delete(chunk);
    }
  }

  private async queue(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.buffer.push(k);
    while (this.buffer.length >= this.batch) {
      const chunk = this.buffer.slice(0, this.batch);
      this.buffer = this.buffer.slice(this.batch);
      await this.blobs.delete(chunk);
    }
  }
}
