/**
 * The operators of one task, chained: records pass from one to the next by function call, with
 * no queue in between. The head may be a source or a keyed process function (keyed operators
 * always start a task, since their input is a hash edge); the tail is a sink or the task's
 * record writers.
 */
import type { Json, KeyedProcessContext, KeyedProcessFunction, RuntimeContext, SinkFunction } from '../api/functions';
import type { TaskVertex } from '../graph/execution-graph';
import { KeyedStateBackend } from './keyed-state';
import type { RecordWriter } from './record-writer';

type Push = (record: Json) => void;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export const END_OF_TIME = Number.MAX_SAFE_INTEGER;

export class OperatorChain {
  readonly keyedState: KeyedStateBackend | undefined;
  readonly sink: SinkFunction<Json> | undefined;
  private readonly keyed: KeyedProcessFunction<Json, Json> | undefined;
  /** Key selector per input number of the keyed head. */
  private readonly keySelectors: ((record: Json) => string)[] = [];
  private readonly afterHead: Push;
  private watermark = Number.MIN_SAFE_INTEGER;
  private currentInput = 0;
  recordsOut = 0;

  constructor(
    private readonly task: TaskVertex,
    private readonly writers: RecordWriter[],
  ) {
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
            for (const w of writers) w.emit(r);
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
      this.keyedState = new KeyedStateBackend();
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
    this.keyed.processElement(record, this.contextFor(key));
  }

  /** Advances event time: fires due timers, then tells the record writers. */
  advanceWatermark(watermark: number): void {
    if (watermark <= this.watermark) return;
    this.watermark = watermark;
    if (this.keyed?.onTimer) {
      for (const [timestamp, key] of this.keyedState!.takeDueTimers(watermark)) {
        this.keyedState!.setCurrentKey(key);
        this.keyed.onTimer(timestamp, this.contextFor(key));
      }
    }
    if (watermark < END_OF_TIME) for (const w of this.writers) w.emitWatermark(watermark);
  }

  get currentWatermark(): number {
    return this.watermark;
  }

  /**
   * The keyed head's context for the current key: one object for every call, its key, input and
   * watermark set before each (a context is valid during its call only, as documented): no
   * allocation per record.
   */
  private contextFor(key: string): KeyedProcessContext<Json> {
    const ctx = (this.context ??= this.newContext());
    ctx.key = key;
    ctx.input = this.currentInput;
    ctx.watermark = this.watermark;
    return ctx;
  }

  private context: Mutable<KeyedProcessContext<Json>> | undefined;

  private newContext(): Mutable<KeyedProcessContext<Json>> {
    const state = this.keyedState!;
    return { key: '', input: 0, state: state.state, watermark: this.watermark, registerEventTimeTimer: (t) => state.registerTimer(t), emit: this.afterHead };
  }
}
