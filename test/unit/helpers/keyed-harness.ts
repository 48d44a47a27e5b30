/**
 * Drives one keyed operator through the real OperatorChain (keyed head, chained collecting sink):
 * push records, move the watermark and the wall clock, read what came out, snapshot and restore.
 */
import type { Json, KeyedProcessFunction, SinkFunction, SourceFunction } from '../../../lib/api/functions';
import { JobBuilder, type KeyedStream } from '../../../lib/api/job';
import type { Key } from '../../../lib/api/keys';
import { buildExecutionGraph } from '../../../lib/graph/execution-graph';
import { OperatorChain } from '../../../lib/runtime/operator-chain';

const noSource = (): SourceFunction<Json> => {
  throw new Error('not run');
};

export class KeyedHarness<T> {
  readonly out: Json[] = [];
  clock = 1_000_000;
  chain!: OperatorChain;

  /** `attach` adds the keyed operator (process or window) with id 'op' to the keyed stream. */
  constructor(private readonly attach: (keyed: KeyedStream<T, Key>) => { sink(id: string, s: () => SinkFunction<never>): void }, private readonly key: (r: T) => Key) {
    this.chain = this.build();
  }

  private build(): OperatorChain {
    const job = new JobBuilder('harness', { parallelism: 1 });
    const out = this.out;
    const sink = (): SinkFunction<Json> => ({
      open: async () => undefined,
      write: (r) => void out.push(r),
      prepare: async () => null,
      commit: async () => undefined,
      abort: async () => undefined,
    });
    this.attach(job.source('src', noSource as () => SourceFunction<T>).keyBy(this.key)).sink('out', sink as () => SinkFunction<never>);
    const task = buildExecutionGraph(job.build()).tasks.find((t) => t.operators[0]!.kind === 'process')!;
    return new OperatorChain(task, [], () => this.clock);
  }

  push(...records: T[]): this {
    for (const r of records) this.chain.push(r as Json);
    return this;
  }

  watermark(w: number): this {
    this.chain.advanceWatermark(w);
    return this;
  }

  /** Moves the wall clock and fires the processing-time timers due. */
  advanceClock(ms: number): this {
    this.clock += ms;
    this.chain.advanceProcessingTime();
    return this;
  }

  /** Takes what came out since the last call. */
  take(): Json[] {
    return this.out.splice(0);
  }

  /** A new chain restored from this one's keyed state and watermark (as a restarted subtask would be). */
  restart(): this {
    const snapshot = JSON.parse(JSON.stringify(this.chain.keyedState!.snapshot()));
    const watermark = this.chain.currentWatermark;
    this.chain = this.build();
    this.chain.keyedState!.restore(snapshot);
    if (watermark > Number.MIN_SAFE_INTEGER) this.chain.advanceWatermark(watermark);
    return this;
  }
}

export const processWith =
  <T, O>(fn: () => KeyedProcessFunction<T, O, Key>) =>
  (keyed: KeyedStream<T, Key>) =>
    keyed.process('op', fn);
