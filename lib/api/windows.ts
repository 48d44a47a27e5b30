/**
 * Event-time windows on keyed streams, as Flink's DataStream API has them:
 *
 *   stream.keyBy((e) => e.user)
 *     .window(tumblingWindows(HOUR_MS))              // or slidingWindows(size, slide), sessionWindows(gap)
 *     .allowedLateness(60_000)                       // optional: late elements update fired windows
 *     .sideOutputLateData(LATE)                      // optional: what is later than that
 *     .aggregate('hourly', counts, toRow);           // or .reduce(...), .process(...)
 *
 * A window [start, end) fires once the watermark reaches end - 1 (its last millisecond) and emits
 * the window function's result; it keeps its contents until end - 1 + allowed lateness, and an
 * element arriving for it meanwhile fires it again with the updated result. An element whose every
 * window is past that is late: it goes to the late-data side output, or is dropped (counted in
 * nothing but that output). Session windows merge when they overlap or touch.
 *
 * Underneath it is a keyed process function (`WindowOperator`) over map state and event-time
 * timers, so windows checkpoint and restore like any keyed state.
 */
import type { Json, KeyedProcessContext, KeyedProcessFunction } from './functions';
import type { Key } from './keys';
import type { OutputTag } from './output-tag';
import { mapState, type MapState } from './state';
import { cloneJson } from './json';

/** A time window [start, end): `end - 1` is its last millisecond. */
export interface TimeWindow {
  start: number;
  end: number;
}

export class WindowSpecError extends Error {
  override name = 'WindowSpecError';
}

export interface WindowAssigner {
  readonly kind: 'tumbling' | 'sliding' | 'session';
  /** The windows an element with this event time belongs to (before any merging). */
  assign(timestamp: number): TimeWindow[];
  /** Session windows merge; the others do not. */
  readonly merging: boolean;
  /**
   * When `assign` gives the same windows for every time in one period ([offset + k * every,
   * offset + (k + 1) * every)): the window operator then assigns once per period, not per element.
   */
  readonly period?: { every: number; offset: number };
}

const floorMod = (a: number, n: number) => ((a % n) + n) % n;

function checkMs(what: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min) throw new WindowSpecError(`${what} must be a whole number of milliseconds, at least ${min}, got ${value}`);
}

/** Fixed windows of `size` ms that do not overlap, aligned to the epoch (plus `offset`). */
export function tumblingWindows(size: number, offset = 0): WindowAssigner {
  checkMs('tumbling window size', size);
  checkMs('tumbling window offset', offset, 0);
  return {
    kind: 'tumbling',
    merging: false,
    period: { every: size, offset },
    assign: (t) => {
      const start = t - floorMod(t - offset, size);
      return [{ start, end: start + size }];
    },
  };
}

/** Windows of `size` ms starting every `slide` ms: an element belongs to size / slide of them. */
export function slidingWindows(size: number, slide: number, offset = 0): WindowAssigner {
  checkMs('sliding window size', size);
  checkMs('sliding window slide', slide);
  checkMs('sliding window offset', offset, 0);
  return {
    kind: 'sliding',
    merging: false,
    // The same windows for a whole slide only when the size is whole slides: with size 10 and slide
    // 3, time 1 is in 4 windows and time 2 in 3 (a window ends between them).
    ...(size % slide === 0 ? { period: { every: slide, offset } } : {}),
    assign: (t) => {
      const out: TimeWindow[] = [];
      for (let start = t - floorMod(t - offset, slide); start > t - size; start -= slide) out.push({ start, end: start + size });
      return out;
    },
  };
}

/** Per key, a window that lasts while elements come less than `gap` ms apart. */
export function sessionWindows(gap: number): WindowAssigner {
  checkMs('session gap', gap);
  return { kind: 'session', merging: true, assign: (t) => [{ start: t, end: t + gap }] };
}

/** An incremental aggregation: the accumulator is state, so it must be JSON. */
export interface AggregateFunction<T, A extends Json, R> {
  createAccumulator(): A;
  add(value: T, accumulator: A): A;
  getResult(accumulator: A): R;
  /** Combines two accumulators; needed by session windows (they merge). */
  merge?(a: A, b: A): A;
}

/** What a window function emits through. */
export interface WindowOutput<O> {
  emit(record: O): void;
  output<X extends Json>(tag: OutputTag<X>, record: X): void;
  /** The watermark when the window fires. */
  readonly watermark: number;
}

/** Sees every element of a window when it fires (the elements are kept in state until then). */
export type ProcessWindowFunction<T, O, K extends Key> = (key: K, window: TimeWindow, elements: T[], out: WindowOutput<O>) => void;

/** How a window's contents are kept and turned into output. */
export interface WindowContents<T, O, K extends Key> {
  empty(): Json;
  add(contents: Json, element: T): Json;
  merge(a: Json, b: Json): Json;
  fire(key: K, window: TimeWindow, contents: Json, out: WindowOutput<O>): void;
}

export function reduceContents<T extends Json, O, K extends Key>(reducer: (a: T, b: T) => T, result: (key: K, window: TimeWindow, reduced: T) => O): WindowContents<T, O, K> {
  return {
    empty: () => null,
    add: (c, e) => (c === null ? e : reducer(c as T, e)),
    merge: (a, b) => (a === null ? b : b === null ? a : reducer(a as T, b as T)),
    fire: (key, window, c, out) => {
      if (c !== null) out.emit(result(key, window, c as T));
    },
  };
}

export function aggregateContents<T, A extends Json, R, O, K extends Key>(fn: AggregateFunction<T, A, R>, result: (key: K, window: TimeWindow, value: R) => O): WindowContents<T, O, K> {
  return {
    empty: () => fn.createAccumulator(),
    add: (c, e) => fn.add(e, c as A),
    merge: (a, b) => {
      if (!fn.merge) throw new WindowSpecError('session windows merge: the aggregate function needs merge(a, b)');
      return fn.merge(a as A, b as A);
    },
    fire: (key, window, c, out) => out.emit(result(key, window, fn.getResult(c as A))),
  };
}

export function processContents<T extends Json, O, K extends Key>(fn: ProcessWindowFunction<T, O, K>): WindowContents<T, O, K> {
  return {
    empty: () => [],
    add: (c, e) => {
      (c as Json[]).push(e);
      return c;
    },
    merge: (a, b) => [...(a as Json[]), ...(b as Json[])],
    fire: (key, window, c, out) => fn(key, window, cloneJson(c) as T[], out),
  };
}

export interface WindowOptions<T> {
  assigner: WindowAssigner;
  /** Event time of an element. */
  eventTime: (element: T) => number;
  /** How long after a window fires late elements still update it (ms, default 0). */
  allowedLateness?: number;
  /** Where elements too late for every window go (default: dropped). */
  lateData?: OutputTag<T & Json>;
}

/** Windows assigned to an element, and the map state key of each. */
interface Assignment {
  windows: readonly TimeWindow[];
  keys: readonly [number, number][];
}

const assignment = (windows: readonly TimeWindow[]): Assignment => ({ windows, keys: windows.map((w): [number, number] => [w.start, w.end]) });

/** Window contents per key: [start, end] -> contents. */
const WINDOWS = mapState<[number, number], Json>('windows');

/**
 * The keyed process function behind `.window(...)`: keeps each window's contents in map state,
 * fires it with an event-time timer at its last millisecond, and drops it at the end of its
 * allowed lateness.
 */
export class WindowOperator<T, O, K extends Key> implements KeyedProcessFunction<T, O, K> {
  private readonly lateness: number;

  constructor(
    private readonly options: WindowOptions<T>,
    private readonly contents: WindowContents<T, O, K>,
  ) {
    this.lateness = options.allowedLateness ?? 0;
    checkMs('allowed lateness', this.lateness, 0);
  }

  processElement(element: T, ctx: KeyedProcessContext<O, K>): void {
    const t = this.options.eventTime(element);
    if (!Number.isFinite(t)) throw new WindowSpecError(`window: event time of an element is ${t}, not a number of milliseconds`);
    const windows = this.windowsOf(ctx);
    const merging = this.options.assigner.merging;
    let placed = false;
    const assignment = this.assign(t);
    for (let i = 0; i < assignment.windows.length; i++) {
      let window = assignment.windows[i]!;
      let contents: Json | undefined;
      if (!merging) {
        // Tumbling and sliding windows: each is its own, keyed [start, end].
        // A window that has contents has its timers already (its first element registered them;
        // its end timer fires only once the window is late, and then it takes the branch below).
        if (this.late(window, ctx)) continue;
        placed = true;
        const key = assignment.keys[i]!;
        const existing = windows.get(key);
        contents = this.contents.add(existing ?? this.contents.empty(), element);
        windows.put(key, contents);
        // A window of its own for the window function: the assigned one is shared (see `assign`).
        // Fired late, the window stays (for more late elements): the function gets a copy of its contents.
        if (window.end - 1 <= ctx.watermark) this.contents.fire(ctx.key, { start: window.start, end: window.end }, cloneJson(contents), this.output(ctx));
        else if (existing === undefined) ctx.registerEventTimeTimer(window.end - 1);
        if (this.lateness > 0 && existing === undefined) ctx.registerEventTimeTimer(window.end - 1 + this.lateness);
        continue;
      }
      // Sessions: this element's window absorbs every window of the key it overlaps or touches.
      contents = this.contents.empty();
      const absorbed: TimeWindow[] = [];
      for (const [start, end] of windows.keys()) {
        if (start > window.end || end < window.start) continue;
        if (this.late({ start, end }, ctx)) continue;
        contents = this.contents.merge(contents, windows.get([start, end])!);
        windows.remove([start, end]);
        absorbed.push({ start, end });
        window = { start: Math.min(start, window.start), end: Math.max(end, window.end) };
      }
      if (this.late(window, ctx)) continue;
      placed = true;
      contents = this.contents.add(contents ?? windows.get([window.start, window.end]) ?? this.contents.empty(), element);
      windows.put([window.start, window.end], contents);
      if (window.end - 1 <= ctx.watermark) {
        // Late but within the allowed lateness: the window fired already; fire it again, updated.
        this.contents.fire(ctx.key, window, cloneJson(contents), this.output(ctx));
      } else ctx.registerEventTimeTimer(window.end - 1);
      if (this.lateness > 0) ctx.registerEventTimeTimer(window.end - 1 + this.lateness);
      this.deleteTimers(absorbed, windows, ctx);
    }
    if (!placed && this.options.lateData) ctx.output(this.options.lateData, element as T & Json);
  }

  onTimer(timestamp: number, ctx: KeyedProcessContext<O, K>): void {
    const windows = ctx.getMapState(WINDOWS);
    for (const [start, end] of windows.keys()) {
      const gone = end - 1 + this.lateness <= timestamp;
      if (end - 1 === timestamp) {
        // The state's own contents when the window goes now (no copy: a few µs a window, with
        // 100,000 keys more than their records cost); a copy when it stays for late elements.
        const contents = windows.get([start, end])!;
        this.contents.fire(ctx.key, { start, end }, gone ? contents : cloneJson(contents), this.output(ctx));
      }
      if (gone) windows.remove([start, end]);
    }
  }

  /**
   * The windows of time `t`, and their map state keys: with a `period`, the last period's again
   * while `t` is in it (elements come mostly in time order: an hour's window and key, allocated
   * once per hour and key rather than per element). Read only: the operator never changes them.
   */
  private assign(t: number): Assignment {
    const period = this.options.assigner.period;
    if (!period) return assignment(this.options.assigner.assign(t));
    // Still in the last period: no modulo (of epoch milliseconds, a double's, ~30 ns an element).
    if (this.assigned !== undefined && t >= this.assignedFrom && t < this.assignedFrom + period.every) return this.assigned;
    const from = t - floorMod(t - period.offset, period.every);
    if (from !== this.assignedFrom || this.assigned === undefined) {
      this.assigned = assignment(this.options.assigner.assign(t));
      this.assignedFrom = from;
    }
    return this.assigned;
  }

  private assigned: Assignment | undefined;
  private assignedFrom = 0;

  /** The map state handle, looked up once per context (the chain keeps one context for every call). */
  private windowsOf(ctx: KeyedProcessContext<O, K>): MapState<[number, number], Json> {
    if (ctx !== this.ctx) {
      this.ctx = ctx;
      this.windows = ctx.getMapState(WINDOWS);
    }
    return this.windows!;
  }

  private ctx: KeyedProcessContext<O, K> | undefined;
  private windows: MapState<[number, number], Json> | undefined;

  /** Past its last millisecond plus the allowed lateness: the window is gone for good. */
  private late(window: TimeWindow, ctx: KeyedProcessContext<O, K>): boolean {
    return window.end - 1 + this.lateness <= ctx.watermark;
  }

  /**
   * The timers of sessions merged away, but those a session of the key still has: a timer is a key
   * and a time, and one session's end can be another's end of lateness (deleting it, that session
   * never fired: found by the model test).
   */
  private deleteTimers(absorbed: readonly TimeWindow[], windows: MapState<[number, number], Json>, ctx: KeyedProcessContext<O, K>): void {
    if (absorbed.length === 0) return;
    const kept = new Set<number>();
    for (const [, end] of windows.keys()) {
      kept.add(end - 1);
      if (this.lateness > 0) kept.add(end - 1 + this.lateness);
    }
    for (const { end } of absorbed) {
      if (!kept.has(end - 1)) ctx.deleteEventTimeTimer(end - 1);
      if (this.lateness > 0 && !kept.has(end - 1 + this.lateness)) ctx.deleteEventTimeTimer(end - 1 + this.lateness);
    }
  }

  private output(ctx: KeyedProcessContext<O, K>): WindowOutput<O> {
    return { emit: (r) => ctx.emit(r), output: (tag, r) => ctx.output(tag, r), watermark: ctx.watermark };
  }
}
