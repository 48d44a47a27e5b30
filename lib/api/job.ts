/**
 * The job API for users: a fluent builder over the logical job graph.
 *
 *   const job = new JobBuilder('demo', { parallelism: 4 });
 *   job.source('generator', () => new GeneratorSource(...))
 *      .map('parse', parseLine)
 *      .keyBy((e) => e.user)
 *      .process('hourly-aggregate', () => new HourlyAggregate())
 *      .sink('output', () => new S3PartitionedSink(...));
 *   return job.build();
 */
import type { Json, KeyedProcessFunction, SinkFunction, SourceFunction } from './functions';
import { encodeKey, type Key } from './keys';
import type { OutputTag } from './output-tag';
import {
  aggregateContents,
  processContents,
  reduceContents,
  WindowOperator,
  type AggregateFunction,
  type ProcessWindowFunction,
  type TimeWindow,
  type WindowAssigner,
  type WindowContents,
} from './windows';
import { validateJobGraph, type EdgeDef, type EdgeKind, type JobGraph, type OperatorDef, type OperatorKind } from '../graph/job-graph';

export interface OperatorOptions {
  /** Parallel subtasks of this operator; defaults to the job's parallelism. */
  parallelism?: number;
  /** Set false to keep this operator out of its predecessor's task (its forward input then crosses a queue). */
  chaining?: boolean;
}

export class JobBuilder {
  private readonly operators: OperatorDef[] = [];
  private readonly edges: EdgeDef[] = [];

  constructor(
    readonly name: string,
    private readonly defaults: { parallelism: number } = { parallelism: 1 },
  ) {}

  source<O>(id: string, source: () => SourceFunction<O>, options: OperatorOptions = {}): DataStream<O> {
    this.addOperator(id, 'source', { source }, options);
    return new DataStream<O>(this, id, 'forward');
  }

  /** Adds an edge between two existing operators by id (for graphs the fluent API cannot express). */
  connect(from: string, to: string, kind: EdgeKind, key?: (record: never) => string, input = 0): void {
    this.edges.push({ from, to, kind, key: key as EdgeDef['key'], input });
  }

  /** The validated graph; throws JobSpecError naming the problem. */
  build(): JobGraph {
    const graph: JobGraph = { name: this.name, operators: [...this.operators], edges: [...this.edges] };
    validateJobGraph(graph);
    return graph;
  }

  /** @internal */
  addOperator(id: string, kind: OperatorKind, fns: Partial<OperatorDef>, options: OperatorOptions): void {
    this.operators.push({
      id,
      kind,
      parallelism: options.parallelism ?? this.defaults.parallelism,
      chaining: options.chaining ?? true,
      ...fns,
    });
  }

  /** @internal */
  addEdge(edge: EdgeDef): void {
    this.edges.push(edge);
  }
}

/** A stream of records; the next operator is connected with `partitioning`. */
export class DataStream<T> {
  constructor(
    protected readonly job: JobBuilder,
    readonly operatorId: string,
    protected readonly partitioning: EdgeKind,
    /** The engine's key string of a record (the user's key, encoded: lib/api/keys.ts). */
    protected readonly key?: (record: T) => string,
    /** This stream is the operator's side output with this tag. */
    protected readonly sideOutput?: string,
  ) {}

  map<O>(id: string, fn: (record: T) => O, options?: OperatorOptions): DataStream<O> {
    return this.then<O>(id, 'map', { fn }, options);
  }

  filter(id: string, predicate: (record: T) => boolean, options?: OperatorOptions): DataStream<T> {
    return this.then<T>(id, 'filter', { fn: predicate }, options);
  }

  flatMap<O>(id: string, fn: (record: T) => Iterable<O>, options?: OperatorOptions): DataStream<O> {
    return this.then<O>(id, 'flatMap', { fn }, options);
  }

  /**
   * Hash-partitions by key: the next operator sees every record of a key in one subtask. A key is
   * a string, a finite number, a boolean, or an array or object of them (lib/api/keys.ts).
   */
  keyBy<K extends Key>(key: (record: T) => K): KeyedStream<T, K> {
    const where = `key of a record after '${this.operatorId}'`;
    return new KeyedStream<T, K>(this.job, this.operatorId, (record) => encodeKey(key(record), where), this.sideOutput);
  }

  /** Round-robin to every subtask of the next operator. */
  rebalance(): DataStream<T> {
    return new DataStream<T>(this.job, this.operatorId, 'rebalance', undefined, this.sideOutput);
  }

  /** Every record to every subtask of the next operator. */
  broadcast(): DataStream<T> {
    return new DataStream<T>(this.job, this.operatorId, 'broadcast', undefined, this.sideOutput);
  }

  sink(id: string, sink: () => SinkFunction<T>, options?: OperatorOptions): void {
    this.then<never>(id, 'sink', { sink }, options);
  }

  protected then<O>(id: string, kind: OperatorKind, fns: Partial<OperatorDef>, options: OperatorOptions = {}): DataStream<O> {
    this.job.addOperator(id, kind, fns, options);
    this.job.addEdge({
      from: this.operatorId,
      to: id,
      kind: this.partitioning,
      key: this.key as EdgeDef['key'],
      input: 0,
      ...(this.sideOutput !== undefined ? { sideOutput: this.sideOutput } : {}),
    });
    return kind === 'process' ? new ProcessedStream<O>(this.job, id) : new DataStream<O>(this.job, id, 'forward');
  }
}

/** The output of a keyed process function or a window: it may have side outputs. */
export class ProcessedStream<T> extends DataStream<T> {
  constructor(job: JobBuilder, operatorId: string) {
    super(job, operatorId, 'forward');
  }

  /** The records this operator emitted with `ctx.output(tag, record)` (or a window's late data). */
  getSideOutput<X extends Json>(tag: OutputTag<X>): DataStream<X> {
    return new DataStream<X>(this.job, this.operatorId, 'forward', undefined, tag.id);
  }
}

export class KeyedStream<T, K extends Key = string> extends DataStream<T> {
  constructor(job: JobBuilder, operatorId: string, key: (record: T) => string, sideOutput?: string) {
    super(job, operatorId, 'hash', key, sideOutput);
  }

  /** A keyed process function with per-key state, event-time and processing-time timers, and side outputs. */
  process<O>(id: string, fn: () => KeyedProcessFunction<T, O, K>, options?: OperatorOptions): ProcessedStream<O> {
    return this.then<O>(id, 'process', { process: fn }, options) as ProcessedStream<O>;
  }

  /** Keeps a running reduction per key and emits it after every record. */
  reduce(id: string, reducer: (accumulator: T, record: T) => T, options?: OperatorOptions): ProcessedStream<T> {
    return this.process<T>(id, () => new ReduceFunction<T, K>(reducer), options);
  }

  /**
   * Event-time windows (lib/api/windows.ts): `tumblingWindows(size)`, `slidingWindows(size, slide)`,
   * `sessionWindows(gap)`. `eventTime` says where an element's time is (records carry no
   * timestamp of their own).
   */
  window(assigner: WindowAssigner, eventTime: (record: T) => number): WindowedStream<T, K> {
    return new WindowedStream<T, K>(this, assigner, eventTime);
  }

  /** Joins two keyed streams in one keyed operator; records of `other` arrive with input 1. */
  connect<U>(other: KeyedStream<U, K>): ConnectedKeyedStreams<T, U, K> {
    return new ConnectedKeyedStreams(this.job, this, other);
  }

  /** @internal */
  get edge(): Omit<EdgeDef, 'to' | 'input'> {
    return { from: this.operatorId, kind: 'hash', key: this.key as EdgeDef['key'], ...(this.sideOutput !== undefined ? { sideOutput: this.sideOutput } : {}) };
  }
}

/** A keyed stream cut into windows; a window function (reduce, aggregate or process) ends it. */
export class WindowedStream<T, K extends Key> {
  private lateness = 0;
  private lateTag: OutputTag<T & Json> | undefined;

  constructor(
    private readonly keyed: KeyedStream<T, K>,
    private readonly assigner: WindowAssigner,
    private readonly eventTime: (record: T) => number,
  ) {}

  /** Keeps each window this long (ms) after it fired: a late element fires it again, updated. */
  allowedLateness(ms: number): this {
    this.lateness = ms;
    return this;
  }

  /** Elements too late for every window go to this side output (`getSideOutput(tag)`) instead of being dropped. */
  sideOutputLateData(tag: OutputTag<T & Json>): this {
    this.lateTag = tag;
    return this;
  }

  /** Reduces each window's elements incrementally; emits `result(key, window, reduced)` (default: the reduced value). */
  reduce<O = T>(id: string, reducer: (a: T, b: T) => T, result?: (key: K, window: TimeWindow, reduced: T) => O, options?: OperatorOptions): ProcessedStream<O> {
    const fn = result ?? ((_k: K, _w: TimeWindow, r: T) => r as unknown as O);
    return this.apply(id, () => reduceContents<T & Json, O, K>(reducer as (a: T & Json, b: T & Json) => T & Json, fn as (k: K, w: TimeWindow, r: T & Json) => O), options);
  }

  /** Aggregates each window incrementally; emits `result(key, window, aggregate)` (default: the aggregate's result). */
  aggregate<A extends Json, R, O = R>(id: string, fn: AggregateFunction<T, A, R>, result?: (key: K, window: TimeWindow, value: R) => O, options?: OperatorOptions): ProcessedStream<O> {
    const toOutput = result ?? ((_k: K, _w: TimeWindow, r: R) => r as unknown as O);
    return this.apply(id, () => aggregateContents(fn, toOutput), options);
  }

  /** Keeps every element of a window (in state) and hands them all to `fn` when it fires. */
  process<O>(id: string, fn: ProcessWindowFunction<T, O, K>, options?: OperatorOptions): ProcessedStream<O> {
    return this.apply(id, () => processContents<T & Json, O, K>(fn as ProcessWindowFunction<T & Json, O, K>), options);
  }

  private apply<O>(id: string, contents: () => WindowContents<T, O, K>, options?: OperatorOptions): ProcessedStream<O> {
    const { assigner, eventTime, lateness, lateTag } = this;
    return this.keyed.process<O>(
      id,
      () => new WindowOperator<T, O, K>({ assigner, eventTime, allowedLateness: lateness, ...(lateTag ? { lateData: lateTag } : {}) }, contents()),
      options,
    );
  }
}

export class ConnectedKeyedStreams<A, B, K extends Key = string> {
  constructor(
    private readonly job: JobBuilder,
    private readonly first: KeyedStream<A, K>,
    private readonly second: KeyedStream<B, K>,
  ) {}

  process<O>(id: string, fn: () => KeyedProcessFunction<A | B, O, K>, options: OperatorOptions = {}): ProcessedStream<O> {
    this.job.addOperator(id, 'process', { process: fn }, options);
    this.job.addEdge({ ...this.first.edge, to: id, input: 0 });
    this.job.addEdge({ ...this.second.edge, to: id, input: 1 });
    return new ProcessedStream<O>(this.job, id);
  }
}

class ReduceFunction<T, K extends Key> implements KeyedProcessFunction<T, T, K> {
  constructor(private readonly reducer: (accumulator: T, record: T) => T) {}

  processElement(record: T, ctx: Parameters<KeyedProcessFunction<T, T, K>['processElement']>[1]): void {
    const previous = ctx.state.get('reduce') as T | undefined;
    const next = previous === undefined ? record : this.reducer(previous, record);
    ctx.state.set('reduce', next as never);
    ctx.emit(next);
  }
}
