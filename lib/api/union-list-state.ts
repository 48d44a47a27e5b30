/**
 * The union list state a function sees (`ctx.unionState(name)`): one named list of JSON entries per
 * subtask, checkpointed with it; after a restore it holds every subtask's entries (see
 * lib/runtime/union-state.ts for how the runtime snapshots and restores it).
 */
import type { Json } from './json';

/** One named list of JSON entries, held by one subtask; at restore it holds the union. */
export class UnionListState<T extends Json = Json> {
  private entries: T[];

  constructor(entries: readonly T[] = []) {
    this.entries = [...entries];
  }

  add(entry: T): void {
    this.entries.push(entry);
  }

  addAll(entries: readonly T[]): void {
    for (const e of entries) this.entries.push(e);
  }

  /** The entries, in insertion order (a copy of the list: changing it changes nothing here). */
  get(): T[] {
    return [...this.entries];
  }

  get size(): number {
    return this.entries.length;
  }

  clear(): void {
    this.entries = [];
  }

  /** Replaces every entry (typically: after a restore, keep only the entries this subtask owns). */
  replace(entries: readonly T[]): void {
    this.entries = [...entries];
  }

  /** The entries to checkpoint. Entries must be JSON values; they are serialised at once by the writer. */
  snapshot(): T[] {
    return [...this.entries];
  }
}
