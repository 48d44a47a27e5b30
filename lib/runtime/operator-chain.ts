/**
 * The operators of one task, chained: records pass from one to the next by function call, with
 * no queue in between. The head may be a source or a keyed process function (keyed operators
 * always start a task, since their input is a hash edge); the tail is a sink or the task's
 * record writers.
 */
import type { Json, KeyedProcessContext, KeyedProcessFunction, RuntimeContext, SinkFunction, TimeDomain } from '../api/functions';
import { decodeKey, type Key } from '../api/keys';
import type { OutputTag } from '../api/output-tag';
import type { TaskVertex } from '../graph/execution-graph';
import { KeyedStateBackend } from './keyed-state';
import type { RecordWriter } from './record-writer';

type Push = (record: Json) => void;

export const END_OF_TIME = Number.MAX_SAFE_INTEGER;

export class OperatorChain {
  readonly keyedState: KeyedStateBackend | undefined;
  readonly sink: SinkFunction<Json> | undefined;
  private readonly keyed: KeyedProcessFunction<Json, Json, Key> | undefined;
  /** Writers of the main output (edges without a side-output tag), and of each side output by tag. */
  private readonly mainWriters: RecordWriter[];
  private readonly sideWriters = new Map<string, RecordWriter[]>();
  /** Key selector per input number of the keyed head. */
  private readonly keySelectors: ((record: Json) => string)[] = [];
  private readonly afterHead: Push;
  private watermark = Number.MIN_SAFE_INTEGER;
  private currentInput = 0;
  recordsOut = 0;

  constructor(
    private readonly task: TaskVertex,
    private readonly writers: RecordWriter[],
    /** Wall-clock time, for processing-time timers and state TTL (tests move it). */
    private readonly now: () => number = Date.now,
  ) {
    // writers[i] writes task.outputs[i] (see subtask.ts).
    this.mainWriters = writers.filter((_, i) => task.outputs[i]?.sideOutput === undefined);
    writers.forEach((w, i) => {
      const tag = task.outputs[i]?.sideOutput;
      if (tag !== undefined) this.sideWriters.set(tag, [...(this.sideWriters.get(tag) ?? []), w]);
    });
    const head = task.operators[0]!;
    const tail = task.operators[task.operators.length - 1]!;
    if (tail.kind === 'sink') this.sink = tail.sink!();

    // Build the chain back to front: each stage pushes into the next.
    let next: Push =
      tail.kind === 'sink'
        ? (r) => {
            this.recordsOut++;
            this.sink!.write(r);
          }
        : (r) => {
            this.recordsOut++;
            for (const w of this.mainWriters) w.emit(r);
          };
    const stages = task.operators.slice(head.kind === 'process' || head.kind === 'source' ? 1 : 0);
    for (const op of stages.reverse()) {
      if (op.kind === 'sink') continue;
      const fn = op.fn!;
      const downstream = next;
      if (op.kind === 'map') next = (r) => downstream(fn(r));
      else if (op.kind === 'filter') next = (r) => (fn(r) ? downstream(r) : undefined);
      else if (op.kind === 'flatMap') next = (r) => { for (const o of fn(r) as Iterable<Json>) downstream(o); };
      else throw new Error(`operator '${op.id}' of kind ${op.kind} cannot be chained`);
    }
    this.afterHead = next;

    if (head.kind === 'process') {
      this.keyed = head.process!();
      this.keyedState = new KeyedStateBackend(() => this.processingTime);
      for (const edge of task.inputs) this.keySelectors[edge.input] = edge.key!;
    }
  }

  /**
   * Opens the keyed head (if it has `open`) and the sink, each with its own operator id. The
   * context's union state is the subtask's: every operator of the chain shares it.
   */
  async open(ctx: RuntimeContext): Promise<void> {
    const head = this.task.operators[0]!;
    const tail = this.task.operators[this.task.operators.length - 1]!;
    if (this.keyed?.open) await this.keyed.open({ ...ctx, operatorId: head.id });
    await this.sink?.open({ ...ctx, operatorId: tail.id });
  }

  /** A record entering the task (from its source or from input `input`). */
  push(record: Json, input = 0): void {
    if (!this.keyed) return this.afterHead(record);
    const key = this.keySelectors[input]!(record);
    this.currentInput = input;
    this.keyedState!.setCurrentKey(key);
    this.keyed.processElement(record, this.contextFor(key, 'event-time'));
  }

  /** Advances event time: fires due timers, then tells the record writers. */
  advanceWatermark(watermark: number): void {
    if (watermark <= this.watermark) return;
    this.watermark = watermark;
    this.fireTimers(watermark, 'event-time');
    if (watermark < END_OF_TIME) for (const w of this.writers) w.emitWatermark(watermark);
  }

  /**
   * Fires the processing-time timers due at the wall clock; returns how many fired. The subtask
   * calls it between input batches (and a source subtask between polls).
   */
  /**
   * Processing time as this chain sees it: the wall clock, or under single-exact the last recorded
   * time (`recordProcessingTime`), so that a restarted attempt that follows its dead attempt's
   * determinants sees the same clock at the same records (TTL, timers, currentProcessingTime).
   */
  get processingTime(): number {
    return this.recordedTime ?? this.now();
  }

  /** Single-exact: from now on processing time moves only by `setProcessingTime` (determinant steps). */
  recordProcessingTime(start: number): void {
    this.recordedTime = start;
  }

  /** Moves recorded processing time to `t` (never back). */
  setProcessingTime(t: number): void {
    if (this.recordedTime !== undefined) this.recordedTime = Math.max(this.recordedTime, t);
  }

  /** Sets recorded processing time to `t`, back too: a restored or resumed subtask goes on from its checkpoint's time, a restarted one follows its dead attempt's steps. */
  restoreProcessingTime(t: number): void {
    if (this.recordedTime !== undefined) this.recordedTime = t;
  }

  /** True under single-exact (see `processingTime`). */
  get recordsProcessingTime(): boolean {
    return this.recordedTime !== undefined;
  }

  /** The earliest processing-time timer, if any. */
  nextProcessingTimer(): number | undefined {
    return this.keyedState?.nextProcessingTimer();
  }

  private recordedTime: number | undefined;

  advanceProcessingTime(): number {
    const state = this.keyedState;
    if (!state || !this.keyed?.onTimer) return 0;
    const next = state.nextProcessingTimer();
    const now = this.processingTime;
    if (next === undefined || next > now) return 0;
    return this.fireTimers(now, 'processing-time');
  }

  private fireTimers(time: number, domain: TimeDomain): number {
    if (!this.keyed?.onTimer) return 0;
    const due = this.keyedState!.takeDueTimers(time, domain);
    for (const [timestamp, key] of due) {
      this.keyedState!.setCurrentKey(key);
      this.keyed.onTimer(timestamp, this.contextFor(key, domain));
    }
    return due.length;
  }

  get currentWatermark(): number {
    return this.watermark;
  }

  /**
   * The context handed to the keyed head: one object per chain, its key, input, watermark and time
   * domain set for each call (a call is synchronous, so nothing sees it change under it).
   */
  private context: { -readonly [P in keyof KeyedProcessContext<Json, Key>]: KeyedProcessContext<Json, Key>[P] } | undefined;

  private contextFor(key: string, timeDomain: TimeDomain): KeyedProcessContext<Json, Key> {
    const ctx = (this.context ??= this.createContext());
    ctx.key = decodeKey(key);
    ctx.input = this.currentInput;
    ctx.watermark = this.watermark;
    ctx.timeDomain = timeDomain;
    return ctx;
  }

  private createContext(): NonNullable<OperatorChain['context']> {
    const state = this.keyedState!;
    return {
      key: '',
      input: 0,
      state: state.state,
      watermark: this.watermark,
      timeDomain: 'event-time',
      getState: (d) => state.getState(d),
      getListState: (d) => state.getListState(d),
      getMapState: (d) => state.getMapState(d),
      currentProcessingTime: () => this.processingTime,
      registerEventTimeTimer: (t) => state.registerTimer(t, 'event-time'),
      deleteEventTimeTimer: (t) => state.deleteTimer(t, 'event-time'),
      registerProcessingTimeTimer: (t) => state.registerTimer(t, 'processing-time'),
      deleteProcessingTimeTimer: (t) => state.deleteTimer(t, 'processing-time'),
      emit: this.afterHead,
      output: (tag, record) => this.sideOutput(tag, record),
    };
  }

  private sideOutput(tag: OutputTag<Json>, record: Json): void {
    const writers = this.sideWriters.get(tag.id);
    if (!writers) return; // nobody reads this side output
    this.recordsOut++;
    for (const w of writers) w.emit(record);
  }
}
