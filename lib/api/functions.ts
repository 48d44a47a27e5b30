/**
 * The functions a user writes: sources, transformations, keyed process functions and sinks.
 * Records are plain JSON-serialisable values: they cross SQS queues between tasks.
 */
import type { BlobStore } from '../ports/blob-store';
import type { Json } from './json';
import type { UnionListState } from './union-list-state';
import type { Key } from './keys';
import type { OutputTag } from './output-tag';
import type { KeyedStateStore } from './state';

export type { Json };
export type { UnionListState };

/** Where a function runs: which subtask of which operator. */
export interface RuntimeContext {
  jobId: string;
  operatorId: string;
  subtaskIndex: number;
  parallelism: number;
  /** Attempt of this subtask (grows with every restart). */
  attempt: number;
  /** The job's blob store (S3), for sources and sinks that read or write objects. */
  blobs: BlobStore;
  /**
   * Union (operator) list state of this subtask, by name: created empty on first use, checkpointed
   * with the subtask, and after a restore holding the entries of EVERY subtask of the task (the
   * union, subtask 0's first) as of the restored checkpoint. The operators chained in one task share
   * one set of names. Keep only what this subtask owns (`replace`) or the next checkpoint writes the
   * whole union again from every subtask.
   *
   * The runtime always provides it (sources, sinks and keyed process functions get it at open). It is
   * optional in the type only so that contexts built by hand (tests) need not; `unionStateOf(ctx, name)`
   * reads it with a clear error when it is missing.
   */
  unionState?<T extends Json>(name: string): UnionListState<T>;
  /**
   * A source opened to read again what it read before, from restored offsets (a replay its
   * in-flight log no longer holds: lib/runtime/source-reread.ts): it need not pace itself, and must
   * return the records it returned then, in the same order.
   */
  rereading?: boolean;
}

/** `ctx.unionState(name)`, or an error naming the operator when the context has no union state. */
export function unionStateOf<T extends Json>(ctx: RuntimeContext, name: string): UnionListState<T> {
  if (!ctx.unionState) throw new Error(`operator '${ctx.operatorId}' subtask ${ctx.subtaskIndex}: this runtime context provides no union state`);
  return ctx.unionState<T>(name);
}

// ---- sources -------------------------------------------------------------------------------

export interface SourceBatch<O> {
  records: O[];
  /** Event time up to which this subtask has emitted everything (watermark), if it tracks one. */
  watermark?: number;
  /** True when this subtask has no more input (bounded source). */
  done: boolean;
}

/**
 * A replayable source. Each subtask reads its own partitions; offsets are its state, so a
 * checkpoint can rewind it.
 */
export interface SourceFunction<O> {
  open(ctx: RuntimeContext): Promise<void>;
  /** Reads up to `max` records. May wait briefly when rate-limited. */
  poll(max: number): Promise<SourceBatch<O>>;
  /**
   * Current read positions, to be checkpointed (`checkpointId` given) or handed over to the next
   * invocation of the same attempt (none given).
   */
  snapshotOffsets(checkpointId?: number): Json;
  restoreOffsets(offsets: Json): void;
  /**
   * Checkpoint N, whose offsets this source snapshotted, completed for its region: the offsets are
   * durable (a source may now tell its broker, e.g. commit them to a Kafka consumer group for lag
   * monitoring; recovery never reads them back from there).
   */
  checkpointComplete?(checkpointId: number): void | Promise<void>;
  /**
   * Ends a poll that is waiting (rate-limited, nothing to read) at once; it returns what it has,
   * possibly nothing. Called when the subtask has a checkpoint to take, is cancelled or hands over:
   * a source whose poll may wait long implements it, so that barriers are not held by the wait.
   */
  interrupt?(): void;
  close?(): Promise<void>;
}

// ---- keyed processing ----------------------------------------------------------------------

/** Value state scoped to the current key, by name, untyped (the typed states: `ctx.getState(descriptor)`). */
export interface KeyedValueState {
  get<T extends Json>(name: string): T | undefined;
  set(name: string, value: Json): void;
  clear(name: string): void;
}

/** Which clock a timer belongs to. */
export type TimeDomain = 'event-time' | 'processing-time';

/** What a keyed function sees of the runtime during one call (valid during that call only: the runtime reuses it). */
export interface KeyedProcessContext<O, K extends Key = string> extends KeyedStateStore {
  /** The current key, as the key selector returned it (a string, a number, a tuple...). */
  readonly key: K;
  /** Which input the record came from (0 for single-input operators, 0/1 for connected streams). */
  readonly input: number;
  /** Untyped value state by name (typed state: `getState`, `getListState`, `getMapState`). */
  readonly state: KeyedValueState;
  /** Largest event time known to be complete across all inputs. */
  readonly watermark: number;
  /** In `onTimer`: the clock of the timer that fired. */
  readonly timeDomain: TimeDomain;
  /** Wall-clock time of this subtask (ms since the epoch). */
  currentProcessingTime(): number;
  /** Calls onTimer(timestamp) for this key once the watermark reaches the timestamp. */
  registerEventTimeTimer(timestamp: number): void;
  deleteEventTimeTimer(timestamp: number): void;
  /**
   * Calls onTimer(timestamp) for this key once the subtask's wall clock reaches the timestamp
   * (checked between input batches, so at most a few hundred milliseconds late). Processing-time
   * timers are checkpointed like event-time ones; a restored subtask fires the overdue ones at once.
   */
  registerProcessingTimeTimer(timestamp: number): void;
  deleteProcessingTimeTimer(timestamp: number): void;
  emit(record: O): void;
  /** Emits to a side output: read it with `stream.getSideOutput(tag)`; with no reader it is dropped. */
  output<X extends Json>(tag: OutputTag<X>, record: X): void;
}

export interface KeyedProcessFunction<I, O, K extends Key = string> {
  /**
   * Called once per subtask before the first record (after a restore: with union state already
   * restored, keyed state not yet). No key is current here: use it for union state and set-up.
   */
  open?(ctx: RuntimeContext): void | Promise<void>;
  processElement(record: I, ctx: KeyedProcessContext<O, K>): void;
  onTimer?(timestamp: number, ctx: KeyedProcessContext<O, K>): void;
}

// ---- sinks ---------------------------------------------------------------------------------

/**
 * A two-phase sink: records are written into a pending transaction; `prepare` stages them
 * durably (not yet visible) and returns a handle; `commit` makes staged handles visible. Commit
 * must be idempotent: after a failure the same handle may be committed again.
 */
export interface SinkFunction<I> {
  open(ctx: RuntimeContext): Promise<void>;
  write(record: I): void;
  /**
   * Stages everything written since the last prepare, under this transaction id. `watermark` is
   * the event time this subtask has completed when the transaction closes (END_OF_TIME at end of
   * input), so a sink can tell when a time partition is complete.
   */
  prepare(transactionId: string, progress: { watermark: number }): Promise<Json>;
  commit(staged: Json): Promise<void>;
  /** Drops a staged transaction that will never commit. */
  abort(staged: Json): Promise<void>;
  close?(): Promise<void>;
}
