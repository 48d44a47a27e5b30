/**
 * Event-time windows (lib/api/windows.ts) through the real operator chain: tumbling, sliding and
 * session windows; reduce, aggregate and process window functions; allowed lateness and the
 * late-data side output; restore from a snapshot mid-window; and tumbling, sliding and session
 * windows with lateness and restarts against a model of what they must emit, over random input.
 */
import { describe, expect, it } from 'vitest';
import type { Json, SourceFunction } from '../../lib/api/functions';
import { OutputTag } from '../../lib/api/output-tag';
import { sessionWindows, slidingWindows, tumblingWindows, WindowSpecError, type AggregateFunction } from '../../lib/api/windows';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph } from '../../lib/graph/execution-graph';
import { KeyedHarness } from './helpers/keyed-harness';

type Ev = { k: string; t: number; n: number };
const ev = (k: string, t: number, n = 1): Ev => ({ k, t, n });
const sum = (a: Ev, b: Ev): Ev => ({ ...a, n: a.n + b.n });

describe('tumbling windows', () => {
  it('fire once the watermark reaches their last millisecond, one result per key and window', () => {
    const h = new KeyedHarness<Ev>((s) => s.window(tumblingWindows(10), (e) => e.t).reduce('op', sum, (key, w, r) => ({ key, start: w.start, end: w.end, n: r.n })), (e) => e.k);
    h.push(ev('a', 1), ev('a', 9), ev('b', 5), ev('a', 10), ev('a', 12, 5));
    h.watermark(8);
    expect(h.take()).toEqual([]);
    h.watermark(9);
    expect(h.take()).toEqual([
      { key: 'a', start: 0, end: 10, n: 2 },
      { key: 'b', start: 0, end: 10, n: 1 },
    ]);
    h.watermark(100);
    expect(h.take()).toEqual([{ key: 'a', start: 10, end: 20, n: 6 }]);
    // Fired windows are gone from state (no lateness): nothing left for either key.
    expect(h.chain.keyedState!.keyCount).toBe(0);
  });

  it('align to the epoch plus the offset, also for negative times', () => {
    const assign = tumblingWindows(10, 3).assign;
    expect(assign(3)).toEqual([{ start: 3, end: 13 }]);
    expect(assign(2)).toEqual([{ start: -7, end: 3 }]);
    expect(tumblingWindows(10).assign(-1)).toEqual([{ start: -10, end: 0 }]);
  });

  it('drop late elements, or send them to the late-data side output', () => {
    const late = new OutputTag<Ev>('late');
    const job = new JobBuilder('late', { parallelism: 1 });
    const windowed = job.source('src', (): SourceFunction<Ev> => { throw new Error('not run'); }).keyBy((e) => e.k).window(tumblingWindows(10), (e) => e.t).sideOutputLateData(late).reduce('op', sum);
    windowed.sink('main', () => { throw new Error('not run'); });
    windowed.getSideOutput(late).sink('late-sink', () => { throw new Error('not run'); });
    const graph = buildExecutionGraph(job.build());
    // The window's task ends at the window: both outputs cross a queue; the side edge is tagged.
    const op = graph.tasks.find((t) => t.id === 'op')!;
    expect(op.operators.map((o) => o.id)).toEqual(['op']);
    expect(op.outputs.map((e) => [e.to, e.sideOutput])).toEqual([
      ['main', undefined],
      ['late-sink', 'late'],
    ]);

    const h = new KeyedHarness<Ev>((s) => s.window(tumblingWindows(10), (e) => e.t).reduce('op', sum), (e) => e.k);
    h.push(ev('a', 1)).watermark(20);
    expect(h.take()).toEqual([ev('a', 1)]);
    h.push(ev('a', 2)).watermark(30); // window [0,10) is past: dropped
    expect(h.take()).toEqual([]);
  });

  it('with allowed lateness, fire again for each late element and keep the window until its lateness ends', () => {
    const h = new KeyedHarness<Ev>((s) => s.window(tumblingWindows(10), (e) => e.t).allowedLateness(5).reduce('op', sum), (e) => e.k);
    h.push(ev('a', 1)).watermark(9);
    expect(h.take()).toEqual([ev('a', 1)]);
    h.push(ev('a', 3, 2)); // late, within lateness: fires at once with the update
    expect(h.take()).toEqual([ev('a', 1, 3)]);
    h.watermark(14); // cleanup at 9 + 5
    h.push(ev('a', 4)); // now too late
    h.watermark(50);
    expect(h.take()).toEqual([]);
  });
});

describe('sliding windows', () => {
  it('put an element into size / slide windows and fire each', () => {
    expect(slidingWindows(10, 5).assign(7)).toEqual([
      { start: 5, end: 15 },
      { start: 0, end: 10 },
    ]);
    const counts: AggregateFunction<Ev, number, number> = { createAccumulator: () => 0, add: (_e, a) => a + 1, getResult: (a) => a };
    const h = new KeyedHarness<Ev>((s) => s.window(slidingWindows(10, 5), (e) => e.t).aggregate('op', counts, (k, w, n) => `${k}[${w.start},${w.end})=${n}`), (e) => e.k);
    h.push(ev('a', 1), ev('a', 6), ev('a', 11)).watermark(100);
    expect(h.take()).toEqual(['a[-5,5)=1', 'a[0,10)=2', 'a[5,15)=2', 'a[10,20)=1']);
  });
});

describe('windows assigned once per period', () => {
  it('give every element its own windows when times go back and forth across periods and offsets', () => {
    const counts: AggregateFunction<Ev, number, number> = { createAccumulator: () => 0, add: (_e, a) => a + 1, getResult: (a) => a };
    const h = new KeyedHarness<Ev>((s) => s.window(slidingWindows(10, 5, 2), (e) => e.t).aggregate('op', counts, (k, w, n) => `${k}[${w.start},${w.end})=${n}`), (e) => e.k);
    // Periods [2, 7), [7, 12), [-3, 2): each element lands in exactly its two windows (starts 2 + 5k in (t - 10, t]).
    h.push(ev('a', 2), ev('b', 7), ev('a', 6), ev('a', -3), ev('b', 11), ev('a', 7), ev('a', 1)).watermark(100);
    expect(h.take().sort()).toEqual(['a[-3,7)=4', 'a[-8,2)=2', 'a[2,12)=3', 'a[7,17)=1', 'b[2,12)=2', 'b[7,17)=2'].sort());
  });

  it('hand the window function a window of its own when a late element fires it again', () => {
    const h = new KeyedHarness<Ev>(
      (s) =>
        s.window(tumblingWindows(10), (e) => e.t).allowedLateness(5).reduce('op', sum, (key, w, r) => {
          const row = { key, start: w.start, n: r.n };
          w.start = -1; // a window function that changes its window changes no other firing's
          return row;
        }),
      (e) => e.k,
    );
    h.push(ev('a', 1)).watermark(9);
    h.push(ev('a', 2), ev('a', 3));
    expect(h.take()).toEqual([{ key: 'a', start: 0, n: 1 }, { key: 'a', start: 0, n: 2 }, { key: 'a', start: 0, n: 3 }]);
  });
});

describe('window contents at firing', () => {
  it('a window function that changes its accumulator changes no later firing of a window kept for lateness', () => {
    const total: AggregateFunction<Ev, { n: number }, { n: number }> = { createAccumulator: () => ({ n: 0 }), add: (e, a) => ({ n: a.n + e.n }), getResult: (a) => a };
    const h = new KeyedHarness<Ev>(
      (s) =>
        s.window(tumblingWindows(10), (e) => e.t).allowedLateness(5).aggregate('op', total, (key, _w, r) => {
          const row = { key, n: r.n };
          r.n = -100; // changes the accumulator it was given
          return row;
        }),
      (e) => e.k,
    );
    h.push(ev('a', 1), ev('a', 2)).watermark(9);
    h.push(ev('a', 3)); // late: fires again, from the state's own count
    h.push(ev('a', 4)); // and again
    h.watermark(20);
    expect(h.take()).toEqual([{ key: 'a', n: 2 }, { key: 'a', n: 3 }, { key: 'a', n: 4 }]);
  });
});

/**
 * Drives `h` and `model` with the same random elements (keys from `keys`, some late), watermark
 * moves and restarts, and checks every step's output against the model's; at the end every window
 * has fired and gone, and no key has state left.
 */
function againstModel(h: KeyedHarness<Ev>, model: { push(e: Ev): string[]; advance(to: number): string[] }, seed: number, keys: string): void {
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let watermark = 0;
  for (let step = 0; step < 400; step++) {
    const r = random();
    let want: string[];
    if (r < 0.7) {
      const e = ev(keys[Math.floor(random() * keys.length)]!, watermark - 15 + Math.floor(random() * 40), 1 + Math.floor(random() * 3));
      h.push(e);
      want = model.push(e);
    } else if (r < 0.97) {
      watermark += Math.floor(random() * 8);
      h.watermark(watermark);
      want = model.advance(watermark);
    } else {
      h.restart();
      want = [];
    }
    expect((h.take() as string[]).sort(), `step ${step}`).toEqual(want.sort());
  }
  h.watermark(10_000);
  expect((h.take() as string[]).sort()).toEqual(model.advance(10_000).sort());
  expect(h.chain.keyedState!.keyCount).toBe(0);
}

describe('tumbling and sliding windows against a model', () => {
  /** What the windows must emit: per key, [start, end] -> sum; fired at end - 1, again for each late element, gone after the lateness. */
  class Model {
    private readonly state = new Map<string, Map<string, { start: number; end: number; n: number }>>();
    private watermark = Number.MIN_SAFE_INTEGER;
    constructor(
      private readonly assign: (t: number) => readonly { start: number; end: number }[],
      private readonly lateness: number,
    ) {}
    push(e: Ev): string[] {
      const out: string[] = [];
      const windows = this.state.get(e.k) ?? new Map<string, { start: number; end: number; n: number }>();
      this.state.set(e.k, windows);
      for (const w of this.assign(e.t)) {
        if (w.end - 1 + this.lateness <= this.watermark) continue;
        const id = `${w.start},${w.end}`;
        const slot = windows.get(id) ?? { ...w, n: 0 };
        slot.n += e.n;
        windows.set(id, slot);
        if (w.end - 1 <= this.watermark) out.push(`${e.k}[${w.start},${w.end})=${slot.n}`);
      }
      return out;
    }
    advance(to: number): string[] {
      const out: string[] = [];
      for (const [k, windows] of this.state) {
        for (const [id, w] of windows) {
          if (w.end - 1 > this.watermark && w.end - 1 <= to) out.push(`${k}[${w.start},${w.end})=${w.n}`);
          if (w.end - 1 + this.lateness <= to) windows.delete(id);
        }
      }
      this.watermark = Math.max(this.watermark, to);
      return out;
    }
  }

  const counts: AggregateFunction<Ev, number, number> = { createAccumulator: () => 0, add: (e, a) => a + e.n, getResult: (a) => a };
  for (const [name, assigner] of [
    ['tumbling(10)', tumblingWindows(10)],
    ['sliding(10, 5)', slidingWindows(10, 5)],
    ['sliding(10, 3, 1)', slidingWindows(10, 3, 1)],
  ] as const) {
    for (const lateness of [0, 3, 5, 10]) {
      it(`${name}, lateness ${lateness}: the same firings as the model, over random input with restarts`, () => {
        const h = new KeyedHarness<Ev>((st) => st.window(assigner, (e) => e.t).allowedLateness(lateness).aggregate('op', counts, (k, w, n) => `${k}[${w.start},${w.end})=${n}`), (e) => e.k);
        againstModel(h, new Model((t) => assigner.assign(t), lateness), lateness * 7919 + name.length, 'abc');
        // No timer left either.
        expect(h.chain.keyedState!.snapshot().timers).toEqual([]);
      });
    }
  }
});

describe('session windows against a model', () => {
  /** Per key, sessions [start, end) -> sum: an element's [t, t + gap) absorbs every session it overlaps or touches, but those already gone with their lateness. */
  class SessionModel {
    private readonly state = new Map<string, { start: number; end: number; n: number }[]>();
    private watermark = Number.MIN_SAFE_INTEGER;
    constructor(
      private readonly gap: number,
      private readonly lateness: number,
    ) {}
    private late(w: { end: number }): boolean {
      return w.end - 1 + this.lateness <= this.watermark;
    }
    push(e: Ev): string[] {
      const sessions = this.state.get(e.k) ?? [];
      this.state.set(e.k, sessions);
      let w = { start: e.t, end: e.t + this.gap, n: 0 };
      for (const other of [...sessions]) {
        if (other.start > w.end || other.end < w.start || this.late(other)) continue;
        w = { start: Math.min(w.start, other.start), end: Math.max(w.end, other.end), n: w.n + other.n };
        sessions.splice(sessions.indexOf(other), 1);
      }
      if (this.late(w)) return [];
      w.n += e.n;
      sessions.push(w);
      return w.end - 1 <= this.watermark ? [`${e.k}[${w.start},${w.end})=${w.n}`] : [];
    }
    advance(to: number): string[] {
      const out: string[] = [];
      for (const [k, sessions] of this.state) {
        for (const w of [...sessions]) {
          if (w.end - 1 > this.watermark && w.end - 1 <= to) out.push(`${k}[${w.start},${w.end})=${w.n}`);
          if (w.end - 1 + this.lateness <= to) sessions.splice(sessions.indexOf(w), 1);
        }
      }
      this.watermark = Math.max(this.watermark, to);
      return out;
    }
  }

  const sums: AggregateFunction<Ev, number, number> = { createAccumulator: () => 0, add: (e, a) => a + e.n, getResult: (a) => a, merge: (a, b) => a + b };
  const configs = [
    ['aggregate', 3, 0],
    ['aggregate', 3, 4],
    ['aggregate', 3, 12],
    ['aggregate', 8, 0],
    ['aggregate', 8, 4],
    ['aggregate', 8, 12],
    ['reduce', 3, 12],
    ['reduce', 8, 4],
    ['process', 3, 12],
    ['process', 8, 4],
  ] as const;
  for (const [fn, gap, lateness] of configs) {
    it(`${fn}, gap ${gap}, lateness ${lateness}: the same firings as the model, over random input with restarts`, () => {
      const h = new KeyedHarness<Ev>((st) => {
        const w = st.window(sessionWindows(gap), (e) => e.t).allowedLateness(lateness);
        const row = (k: unknown, win: { start: number; end: number }, n: number) => `${String(k)}[${win.start},${win.end})=${n}`;
        if (fn === 'aggregate') return w.aggregate('op', sums, row);
        if (fn === 'reduce') return w.reduce('op', sum, (k, win, r) => row(k, win, r.n));
        return w.process<string>('op', (k, win, elements, out) => out.emit(row(k, win, elements.reduce((n, e) => n + e.n, 0))));
      }, (e) => e.k);
      againstModel(h, new SessionModel(gap, lateness), gap * 31 + lateness * 7919 + fn.length, 'ab');
    });
  }
});

describe('session windows', () => {
  it('merge windows closer than the gap, also when an element bridges two sessions', () => {
    const h = new KeyedHarness<Ev>(
      (s) => s.window(sessionWindows(10), (e) => e.t).process<Json>('op', (key, w, elements, out) => out.emit({ key, start: w.start, end: w.end, ts: elements.map((e) => e.t).sort((a, b) => a - b) })),
      (e) => e.k,
    );
    h.push(ev('a', 0), ev('a', 25), ev('b', 3));
    h.push(ev('a', 12)); // [12,22): apart from [0,10) and from [25,35)
    h.push(ev('a', 8)); // [8,18) overlaps [0,10) and [12,22): all three merge into [0,22)
    h.watermark(21);
    expect(h.take()).toEqual([
      { key: 'b', start: 3, end: 13, ts: [3] },
      { key: 'a', start: 0, end: 22, ts: [0, 8, 12] },
    ]);
    h.push(ev('a', 30)).watermark(1000); // [30,40) merges with [25,35)
    expect(h.take()).toEqual([{ key: 'a', start: 25, end: 40, ts: [25, 30] }]);
  });

  it('need merge() of an aggregate function', () => {
    const noMerge: AggregateFunction<Ev, number, number> = { createAccumulator: () => 0, add: (_e, a) => a + 1, getResult: (a) => a };
    const h = new KeyedHarness<Ev>((s) => s.window(sessionWindows(10), (e) => e.t).aggregate('op', noMerge), (e) => e.k);
    expect(() => h.push(ev('a', 0), ev('a', 5))).toThrow(/needs merge/);
  });
});

describe('windows across a restore', () => {
  it('keep their contents and timers in the keyed snapshot', () => {
    const h = new KeyedHarness<Ev>((s) => s.window(tumblingWindows(10), (e) => e.t).reduce('op', sum), (e) => e.k);
    h.push(ev('a', 1), ev('a', 2)).watermark(5).restart();
    h.push(ev('a', 3)).watermark(9);
    expect(h.take()).toEqual([ev('a', 1, 3)]);
  });
});

describe('window specs', () => {
  it('refuse sizes, slides, gaps and lateness that are not whole positive milliseconds', () => {
    expect(() => tumblingWindows(0)).toThrow(WindowSpecError);
    expect(() => tumblingWindows(1.5)).toThrow(/whole number of milliseconds, at least 1, got 1.5/);
    expect(() => slidingWindows(10, 0)).toThrow(/slide/);
    expect(() => sessionWindows(-1)).toThrow(/session gap/);
    expect(() => new KeyedHarness<Ev>((s) => s.window(tumblingWindows(10), (e) => e.t).allowedLateness(-1).reduce('op', sum), (e) => e.k).push(ev('a', 1))).toThrow(/allowed lateness/);
  });
});
