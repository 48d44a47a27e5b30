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
import type { KeyedProcessFunction, SinkFunction, SourceFunction } from './functions';
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
    protected readonly key?: (record: T) => string,
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

  /** Hash-partitions by key: the next operator sees every record of a key in one subtask. */
  keyBy(key: (record: T) => string): KeyedStream<T> {
    return new KeyedStream<T>(this.job, this.operatorId, key);
  }

  /** Round-robin to every subtask of the next operator. */
  rebalance(): DataStream<T> {
    return new DataStream<T>(this.job, this.operatorId, 'rebalance');
  }

  /** Every record to every subtask of the next operator. */
  broadcast(): DataStream<T> {
    return new DataStream<T>(this.job, this.operatorId, 'broadcast');
  }

  sink(id: string, sink: () => SinkFunction<T>, options?: OperatorOptions): void {
    this.then<never>(id, 'sink', { sink }, options);
  }

  protected then<O>(id: string, kind: OperatorKind, fns: Partial<OperatorDef>, options: OperatorOptions = {}): DataStream<O> {
    this.job.addOperator(id, kind, fns, options);
    this.job.addEdge({ from: this.operatorId, to: id, kind: this.partitioning, key: this.key as EdgeDef['key'], input: 0 });
    return new DataStream<O>(this.job, id, 'forward');
  }
}

export class KeyedStream<T> extends DataStream<T> {
  constructor(job: JobBuilder, operatorId: string, key: (record: T) => string) {
    super(job, operatorId, 'hash', key);
  }

  /** A keyed process function with per-key state and event-time timers. */
  process<O>(id: string, fn: () => KeyedProcessFunction<T, O>, options?: OperatorOptions): DataStream<O> {
    return this.then<O>(id, 'process', { process: fn }, options);
  }

  /** Keeps a running reduction per key and emits it after every record. */
  reduce(id: string, reducer: (accumulator: T, record: T) => T, options?: OperatorOptions): DataStream<T> {
    return this.process<T>(id, () => new ReduceFunction(reducer), options);
  }

  /** Joins two keyed streams in one keyed operator; records of `other` arrive with input 1. */
  connect<U>(other: KeyedStream<U>): ConnectedKeyedStreams<T, U> {
    return new ConnectedKeyedStreams(this.job, this, other);
  }

  /** @internal */
  get edge(): Omit<EdgeDef, 'to' | 'input'> {
    return { from: this.operatorId, kind: 'hash', key: this.key as EdgeDef['key'] };
  }
}

export class ConnectedKeyedStreams<A, B> {
  constructor(
    private readonly job: JobBuilder,
    private readonly first: KeyedStream<A>,
    private readonly second: KeyedStream<B>,
  ) {}

  process<O>(id: string, fn: () => KeyedProcessFunction<A | B, O>, options: OperatorOptions = {}): DataStream<O> {
    this.job.addOperator(id, 'process', { process: fn }, options);
    this.job.addEdge({ ...this.first.edge, to: id, input: 0 });
    this.job.addEdge({ ...this.second.edge, to: id, input: 1 });
    return new DataStream<O>(this.job, id, 'forward');
  }
}

class ReduceFunction<T> implements KeyedProcessFunction<T, T> {
  constructor(private readonly reducer: (accumulator: T, record: T) => T) {}

  processElement(record: T, ctx: Parameters<KeyedProcessFunction<T, T>['processElement']>[1]): void {
    const previous = ctx.state.get('reduce') as T | undefined;
    const next = previous === undefined ? record : this.reducer(previous, record);
    ctx.state.set('reduce', next as never);
    ctx.emit(next);
  }
}
