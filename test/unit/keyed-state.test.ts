/**
 * The keyed state API (lib/api/state.ts, lib/runtime/keyed-state.ts): value, list and map state
 * with and without TTL, processing-time timers, keys that are not strings, side outputs, typed job
 * parameters; and one job on the in-memory ports with numeric keys, a window and its late data.
 */
import { describe, expect, it } from 'vitest';
import type { Json, KeyedProcessFunction, SourceBatch, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { decodeKey, encodeKey, KeyError, type Key } from '../../lib/api/keys';
import { OutputTag } from '../../lib/api/output-tag';
import { defineJob, JobRegistry, typedParams } from '../../lib/api/registry';
import { listState, mapState, StateSpecError, valueState } from '../../lib/api/state';
import { tumblingWindows } from '../../lib/api/windows';
import { GeneratorSource } from '../../lib/connectors/generator-source';
import { S3PartitionedSink } from '../../lib/connectors/s3-partitioned-sink';
import { JobService } from '../../lib/jobs/job-service';
import { JobStore } from '../../lib/jobs/job-store';
import { Supervisor } from '../../lib/jobs/supervisor';
import { InProcessLauncher } from '../../lib/local/in-process-launcher';
import { createMemoryPorts } from '../../lib/memory';
import { KeyedStateBackend } from '../../lib/runtime/keyed-state';
import { KeyedHarness, processWith } from './helpers/keyed-harness';

type Ev = { k: string; v: number };

describe('keys', () => {
  it('a string key is itself; other keys round-trip through their JSON text', () => {
    expect(encodeKey('user-1')).toBe('user-1');
    for (const key of [42, -0.5, true, ['a', 1], { region: 'eu', shard: 3 }, '\u0001odd']) expect(decodeKey(encodeKey(key))).toEqual(key);
    expect(encodeKey(1)).not.toBe(encodeKey('1'));
  });

  it('decodes a window\'s [start, end] without JSON.parse, exactly as JSON.parse would', () => {
    for (const key of [[0, 0], [0, 1], [1_700_000_000_000, 1_700_003_600_000], [10, 0]]) expect(decodeKey(encodeKey(key))).toEqual(key);
    // Texts the fast path must leave to JSON.parse: its answer (or its error) stands.
    for (const text of ['[01,2]', '[1,02]', '[1,]', '[,1]', '[1,2,3]', '[1.5,2]', '[-1,2]', '[1e3,2]', '[99999999999999999999,1]', '[ 1,2]']) {
      const parse = () => JSON.parse(text) as unknown;
      const decode = () => decodeKey('\u0001' + text);
      let expected: unknown;
      try {
        expected = parse();
      } catch {
        expect(decode).toThrow(SyntaxError);
        continue;
      }
      expect(decode()).toEqual(expected);
    }
  });

  it('round-trips random keys, and two keys share an encoding only when their JSON texts are equal', () => {
    let seed = 4242;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const atoms: Key[] = [0, -0, 1, -1, 0.5, 1e21, 1700000000000, Number.MAX_SAFE_INTEGER, '', 'a', '\u0001', '\u0001[1,2]', '[1,2]', '01', true, false];
    const key = (depth: number): Key => {
      const r = random();
      if (depth > 2 || r < 0.5) return atoms[Math.floor(random() * atoms.length)]!;
      if (r < 0.8) return Array.from({ length: Math.floor(random() * 3) }, () => key(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 3) }, (_, i) => [`k${i}`, key(depth + 1)]));
    };
    const byEncoding = new Map<string, string>();
    for (let i = 0; i < 5000; i++) {
      const k = key(0);
      const encoded = encodeKey(k);
      // -0 is 0 in JSON: a key's identity is its JSON text.
      expect(JSON.stringify(decodeKey(encoded))).toBe(JSON.stringify(k));
      const text = typeof k === 'string' ? `s:${k}` : `j:${JSON.stringify(k)}`;
      expect(byEncoding.get(encoded) ?? text, encoded).toBe(text);
      byEncoding.set(encoded, text);
    }
  });

  it('refuses what is not a key, naming it', () => {
    expect(() => encodeKey(Number.NaN, 'key of e')).toThrow(KeyError);
    expect(() => encodeKey([1, Number.POSITIVE_INFINITY], 'key of e')).toThrow(/key of e\[1\] is Infinity/);
    expect(() => encodeKey({ a: null } as never, 'key of e')).toThrow(/key of e\.a is null/);
  });
});

describe('value, list and map state', () => {
  const COUNT = valueState<number>('count');
  const LAST = listState<number>('last');
  const BY_PARITY = mapState<boolean, number>('by-parity');

  it('are scoped to the key and survive a snapshot and restore', () => {
    const fn = (): KeyedProcessFunction<Ev, Json, string> => ({
      processElement(e, ctx) {
        const count = ctx.getState(COUNT);
        count.update((count.value() ?? 0) + 1);
        const last = ctx.getListState(LAST);
        last.add(e.v);
        if (last.get().length > 2) last.update(last.get().slice(-2));
        const parity = ctx.getMapState(BY_PARITY);
        parity.put(e.v % 2 === 0, (parity.get(e.v % 2 === 0) ?? 0) + e.v);
        ctx.emit({ key: ctx.key, count: count.value()!, last: last.get(), parity: parity.entries() });
      },
    });
    const h = new KeyedHarness<Ev>(processWith(fn), (e) => e.k);
    h.push({ k: 'a', v: 1 }, { k: 'b', v: 2 }, { k: 'a', v: 4 });
    h.restart().push({ k: 'a', v: 5 });
    expect(h.take()).toEqual([
      { key: 'a', count: 1, last: [1], parity: [[false, 1]] },
      { key: 'b', count: 1, last: [2], parity: [[true, 2]] },
      { key: 'a', count: 2, last: [1, 4], parity: [[false, 1], [true, 4]] },
      { key: 'a', count: 3, last: [4, 5], parity: [[false, 6], [true, 4]] },
    ]);
  });

  it('hand out copies: changing what get() returned changes no state', () => {
    const backend = new KeyedStateBackend();
    backend.setCurrentKey('k');
    const list = backend.getListState(listState<{ n: number }>('l'));
    list.add({ n: 1 });
    list.get()[0]!.n = 99;
    expect(list.get()).toEqual([{ n: 1 }]);
    const map = backend.getMapState(mapState<string, number[]>('m'));
    map.put('__proto__', [1]);
    map.values()[0]!.push(2);
    expect(map.get('__proto__')).toEqual([1]);
    expect(map.keys()).toEqual(['__proto__']);
  });

  it('copies nested JSON (an own __proto__ key too); a value that is not JSON is still copied whole', () => {
    const backend = new KeyedStateBackend();
    backend.setCurrentKey('k');
    const map = backend.getMapState(mapState<string, Json>('m'));
    const nested = JSON.parse('{"__proto__":{"x":[1,{"y":2}]},"z":null}') as Json;
    map.put('a', nested);
    map.put('d', new Date(5) as unknown as Json);
    const [[, a], [, d]] = map.entries() as [string, Record<string, Json>][];
    expect(a).toEqual(nested);
    expect(Object.getPrototypeOf(a)).toBe(Object.prototype);
    ((a['__proto__'] as Record<string, Json[]>).x![1] as Record<string, number>).y = 3;
    expect(map.get('a')).toEqual(nested);
    expect(d).toBeInstanceOf(Date);
    expect(d).not.toBe(map.get('d'));
  });

  it('a snapshot copies the state unless its caller serializes it at once (a checkpoint)', () => {
    const backend = new KeyedStateBackend();
    backend.setCurrentKey('k');
    const list = backend.getListState(listState<number>('l'));
    list.add(1);
    const copied = backend.snapshot();
    const live = backend.snapshot({ copy: false });
    list.add(2);
    expect(copied.values).toEqual([['k', { l: [1] }]]);
    expect(live.values).toEqual([['k', { l: [1, 2] }]]);
  });

  it('removing the last entry of a map state drops the name, and the key with it', () => {
    const backend = new KeyedStateBackend();
    backend.setCurrentKey('k');
    const map = backend.getMapState(mapState<number[], number>('m'));
    map.put([0, 10], 1);
    map.put([10, 20], 2);
    map.remove([0, 10]);
    expect(map.isEmpty()).toBe(false);
    map.remove([10, 20]);
    expect(map.isEmpty()).toBe(true);
    expect(backend.keyCount).toBe(0);
  });

  it('a name keeps its kind and TTL', () => {
    const backend = new KeyedStateBackend();
    backend.getState(valueState<number>('x'));
    expect(() => backend.getListState(listState<number>('x'))).toThrow(/'x' is a value state; it cannot be used as a list state/);
    expect(() => backend.getState(valueState<number>('x', { ttl: { ms: 5 } }))).toThrow(/declared with no TTL; it cannot be used with a TTL of 5 ms/);
    expect(() => valueState('y', { ttl: { ms: 0 } })).toThrow(StateSpecError);
  });
});

describe('state TTL against a model', () => {
  type Entry = { v: number; x: number };
  for (const update of ['on-create-and-write', 'on-read-and-write'] as const) {
    it(`value, list and map state with a TTL (${update}) give what a model gives, over random operations, clock moves and restores`, () => {
      const TTL = 10;
      let seed = update.length * 977;
      const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      let now = 0;
      const ttl = { ttl: { ms: TTL, update } };
      const vd = valueState<number>('v', ttl);
      const ld = listState<number>('l', ttl);
      const md = mapState<string, number>('m', ttl);
      let backend = new KeyedStateBackend(() => now);
      // The model: per key, its value, list elements and map entries, each with when it expires.
      const model = new Map<string, { v?: Entry; l: Entry[]; m: Map<string, Entry> }>();
      const of = (k: string) => model.get(k) ?? (model.set(k, { l: [], m: new Map() }), model.get(k)!);
      const live = (e: Entry | undefined) => e !== undefined && e.x > now;
      const touch = (e: Entry) => {
        if (update === 'on-read-and-write') e.x = now + TTL;
      };
      for (let step = 0; step < 3000; step++) {
        const key = pick(['a', 'b', 'c']);
        backend.setCurrentKey(key);
        const m = of(key);
        const [v, l, map] = [backend.getState(vd), backend.getListState(ld), backend.getMapState(md)];
        const n = Math.floor(random() * 100);
        const mk = pick(['x', 'y', 'z']);
        const op = pick(['clock', 'clock', 'v.update', 'v.value', 'l.add', 'l.get', 'l.update', 'm.put', 'm.get', 'm.remove', 'm.entries', 'm.keys', 'm.values', 'm.contains', 'm.isEmpty', 'restore']);
        let got: unknown;
        let want: unknown;
        switch (op) {
          case 'clock':
            now += Math.floor(random() * 8);
            continue;
          case 'v.update':
            v.update(n);
            m.v = { v: n, x: now + TTL };
            continue;
          case 'v.value':
            got = v.value();
            want = live(m.v) ? (touch(m.v!), m.v!.v) : undefined;
            break;
          case 'l.add':
            l.add(n);
            m.l = m.l.filter(live);
            m.l.push({ v: n, x: now + TTL });
            continue;
          case 'l.get':
            got = l.get();
            m.l = m.l.filter(live);
            m.l.forEach(touch);
            want = m.l.map((e) => e.v);
            break;
          case 'l.update':
            l.update([n, n + 1]);
            m.l = [n, n + 1].map((x) => ({ v: x, x: now + TTL }));
            continue;
          case 'm.put':
            map.put(mk, n);
            m.m.set(mk, { v: n, x: now + TTL });
            continue;
          case 'm.get': {
            got = map.get(mk);
            const e = m.m.get(mk);
            want = live(e) ? (touch(e!), e!.v) : undefined;
            break;
          }
          case 'm.remove':
            map.remove(mk);
            m.m.delete(mk);
            continue;
          case 'm.entries':
          case 'm.keys':
          case 'm.values':
          case 'm.contains':
          case 'm.isEmpty': {
            for (const [k, e] of [...m.m]) if (!live(e)) m.m.delete(k);
            const entries = [...m.m];
            if (op === 'm.entries' || op === 'm.values') entries.forEach(([, e]) => touch(e));
            got = op === 'm.entries' ? map.entries() : op === 'm.keys' ? map.keys() : op === 'm.values' ? map.values() : op === 'm.contains' ? map.contains(mk) : map.isEmpty();
            want =
              op === 'm.entries'
                ? entries.map(([k, e]) => [k, e.v])
                : op === 'm.keys'
                  ? entries.map(([k]) => k)
                  : op === 'm.values'
                    ? entries.map(([, e]) => e.v)
                    : op === 'm.contains'
                      ? m.m.has(mk)
                      : entries.length === 0;
            if (op !== 'm.contains' && op !== 'm.isEmpty') {
              (got as unknown[]).sort();
              (want as unknown[]).sort();
            }
            break;
          }
          case 'restore': {
            const snapshot = JSON.parse(JSON.stringify(backend.snapshot())) as ReturnType<KeyedStateBackend['snapshot']>;
            backend = new KeyedStateBackend(() => now);
            backend.restore(snapshot);
            // A snapshot keeps exactly the keys with something unexpired.
            got = backend.keyCount;
            want = [...model.values()].filter((s) => live(s.v) || s.l.some(live) || [...s.m.values()].some(live)).length;
            break;
          }
        }
        expect(got, `step ${step}: ${op} of ${key}${op.startsWith('m.') ? ` '${mk}'` : ''} at ${now}`).toEqual(want);
      }
    });
  }
});

describe('state TTL', () => {
  it('hides and drops entries not written within the TTL; each list element and map entry has its own time', () => {
    let now = 0;
    const backend = new KeyedStateBackend(() => now);
    backend.setCurrentKey('k');
    const v = backend.getState(valueState<string>('v', { ttl: { ms: 100 } }));
    const l = backend.getListState(listState<number>('l', { ttl: { ms: 100 } }));
    const m = backend.getMapState(mapState<string, number>('m', { ttl: { ms: 100 } }));
    v.update('x');
    l.add(1);
    m.put('a', 1);
    now = 60;
    l.add(2);
    m.put('b', 2);
    now = 99;
    expect([v.value(), l.get(), m.entries()]).toEqual(['x', [1, 2], [['a', 1], ['b', 2]]]);
    now = 100;
    expect([v.value(), l.get(), m.entries()]).toEqual([undefined, [2], [['b', 2]]]);
    now = 160;
    expect([l.get(), m.isEmpty()]).toEqual([[], true]);
    expect(backend.keyCount).toBe(0);
  });

  it('on-read-and-write: a read extends the entry', () => {
    let now = 0;
    const backend = new KeyedStateBackend(() => now);
    backend.setCurrentKey('k');
    const v = backend.getState(valueState<number>('v', { ttl: { ms: 10, update: 'on-read-and-write' } }));
    v.update(1);
    for (now = 5; now <= 40; now += 5) expect(v.value()).toBe(1);
    now += 10;
    expect(v.value()).toBeUndefined();
  });

  it('a snapshot does not extend an on-read-and-write TTL', () => {
    let now = 0;
    const backend = new KeyedStateBackend(() => now);
    backend.setCurrentKey('k');
    const v = backend.getState(valueState<number>('v', { ttl: { ms: 10, update: 'on-read-and-write' } }));
    v.update(1);
    now = 9;
    backend.snapshot();
    now = 10;
    expect(v.value()).toBeUndefined();
  });

  it('a snapshot leaves expired entries of every key out', () => {
    let now = 0;
    const backend = new KeyedStateBackend(() => now);
    const v = backend.getState(valueState<number>('v', { ttl: { ms: 10 } }));
    for (const k of ['a', 'b']) {
      backend.setCurrentKey(k);
      v.update(1);
    }
    now = 5;
    backend.setCurrentKey('c');
    v.update(2);
    now = 12;
    expect(backend.snapshot().values.map(([k]) => k)).toEqual(['c']);
  });
});

describe('processing-time timers', () => {
  it('fire once the wall clock reaches them, can be deleted, and are restored overdue', () => {
    const fn = (): KeyedProcessFunction<Ev, Json, string> => ({
      processElement(e, ctx) {
        const at = ctx.currentProcessingTime() + e.v;
        ctx.registerProcessingTimeTimer(at);
        if (e.v === 0) ctx.deleteProcessingTimeTimer(at);
      },
      onTimer(t, ctx) {
        ctx.emit({ key: ctx.key, domain: ctx.timeDomain, late: ctx.currentProcessingTime() - t });
      },
    });
    const h = new KeyedHarness<Ev>(processWith(fn), (e) => e.k);
    h.push({ k: 'a', v: 100 }, { k: 'b', v: 200 }, { k: 'c', v: 0 });
    h.advanceClock(99);
    expect(h.take()).toEqual([]);
    h.advanceClock(1);
    expect(h.take()).toEqual([{ key: 'a', domain: 'processing-time', late: 0 }]);
    // Event time does not fire them.
    h.watermark(Number.MAX_SAFE_INTEGER - 1);
    expect(h.take()).toEqual([]);
    h.restart().advanceClock(500);
    expect(h.take()).toEqual([{ key: 'b', domain: 'processing-time', late: 400 }]);
    h.advanceClock(10_000);
    expect(h.take()).toEqual([]);
  });
});

describe('keys other than strings, side outputs, typed parameters', () => {
  it('a keyed function sees its key as the selector returned it and emits to a side output', () => {
    const SMALL = new OutputTag<number>('small');
    const job = new JobBuilder('tuple-keys', { parallelism: 1 });
    const processed = job
      .source('src', () => new GeneratorSource<number>({ partitions: 1, records: 10, generate: (_p, o) => o }))
      .keyBy((n): [string, number] => ['mod', n % 3])
      .process('op', (): KeyedProcessFunction<number, string, [string, number]> => ({
        processElement(n, ctx) {
          const [name, rest] = ctx.key;
          if (n < 3) ctx.output(SMALL, n);
          else ctx.emit(`${name}${rest}:${n}`);
        },
      }));
    processed.sink('main', () => { throw new Error('not run'); });
    processed.getSideOutput(SMALL).map('double', (n) => n * 2).sink('side', () => { throw new Error('not run'); });
    expect(() => job.build()).not.toThrow();
    expect(() => new OutputTag('Bad Tag')).toThrow(/output tag 'Bad Tag' must be/);
  });

  it('typedParams checks and types parameters by their specs', () => {
    const specs = { parallelism: { type: 'number', default: 2, integer: true, description: 'p' }, topic: { type: 'string', default: 'events', description: 't' } } as const;
    const p = typedParams('j', specs, { topic: 'clicks' });
    const n: number = p.parallelism;
    const s: string = p.topic;
    expect([n, s]).toEqual([2, 'clicks']);
    expect(() => typedParams('j', specs, { parallelism: 'two' })).toThrow(/parameter 'parallelism' of job 'j' must be a number, got "two"/);
  });

  it('a job with numeric keys, a window and its late data runs on the in-memory ports', async () => {
    const LATE = new OutputTag<Rec>('late');
    const registry = new JobRegistry([
      defineJob({
        name: 'windowed',
        description: 'source -> keyBy(number) -> tumbling hour windows, late data to its own sink',
        // One subtask each: one channel, so the watermark sent before the pause precedes every late record.
        params: { parallelism: { type: 'number', default: 1, integer: true, min: 1, description: 'subtasks' } },
        build(params) {
          const job = new JobBuilder('windowed', { parallelism: params.parallelism });
          const windows = job
            .source('src', () => new PausingSource(INPUT, PAUSE_AT))
            .keyBy((r) => r.id % 5)
            .window(tumblingWindows(HOUR), (r) => r.ts)
            .sideOutputLateData(LATE)
            .aggregate('hourly', { createAccumulator: () => 0, add: (_r, n: number) => n + 1, getResult: (n) => n }, (key, w, count) => ({ key, hour: w.start, count, ts: w.start }));
          windows.sink('out', () => new S3PartitionedSink({ prefix: 'output/{jobId}/main', eventTime: (r) => r.ts }));
          windows.getSideOutput(LATE).sink('late-out', () => new S3PartitionedSink({ prefix: 'output/{jobId}/late', eventTime: (r) => r.ts }));
          return job.build();
        },
      }),
    ]);
    const ports = createMemoryPorts();
    const jobs = new JobStore(ports.metadata);
    const launcher = new InProcessLauncher({ ...ports, jobs, registry, queuePrefix: 'test' });
    const service = new JobService({ jobs, channels: ports.channels, registry, queuePrefix: 'test', launcher });
    const job = await service.submit({ job: 'windowed', params: {} });
    const view = await new Supervisor({ service, pollMs: 50 }).watch(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    const read = async (prefix: string) => {
      const rows: Json[] = [];
      for (const f of await ports.blobs.list(prefix)) rows.push(...Buffer.from((await ports.blobs.get(f.key))!).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as Json));
      return rows;
    };
    const late = (await read(`output/${job.jobId}/late/`)) as Rec[];
    const main = (await read(`output/${job.jobId}/main/`)) as { key: number; hour: number; count: number }[];
    // What the input says: the late records are the ten-days-old ones after the pause; the rest counted per (id % 5, hour).
    const expected = new Map<string, number>();
    for (const r of INPUT.filter((r) => r.ts >= 0)) {
      const k = `${r.id % 5}|${Math.floor(r.ts / HOUR) * HOUR}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    expect(late.map((r) => r.id).sort((a, b) => a - b)).toEqual(INPUT.filter((r) => r.ts < 0).map((r) => r.id));
    expect(late.length).toBeGreaterThan(0);
    expect(new Map(main.map((r) => [`${r.key}|${r.hour}`, r.count]))).toEqual(expected);
    expect(main.every((r) => typeof r.key === 'number')).toBe(true);
  });
});

type Rec = { id: number; ts: number };
const HOUR = 3_600_000;
const PAUSE_AT = 2000;
/** 4000 records 2.5 s apart; after the pause every 100th is ten days old. */
const INPUT: Rec[] = Array.from({ length: 4000 }, (_, id) => ({ id, ts: id >= PAUSE_AT && id % 100 === 99 ? -10 * 24 * HOUR : id * 2500 }));

/**
 * Emits `records` in order with the watermark of the on-time ones; at `pauseAt` it waits past the
 * writers' linger once and returns nothing, so everything before (and its watermark) is sent before
 * any record after it: what comes after is late for good.
 */
class PausingSource implements SourceFunction<Rec> {
  private next = 0;
  private paused = false;
  private watermark = Number.MIN_SAFE_INTEGER;

  constructor(
    private readonly records: Rec[],
    private readonly pauseAt: number,
  ) {}

  async open(): Promise<void> {}

  async poll(max: number): Promise<SourceBatch<Rec>> {
    if (this.next === this.pauseAt && !this.paused) {
      this.paused = true;
      await new Promise((r) => setTimeout(r, 400)); // the linger is 200 ms
      return { records: [], watermark: this.watermark, done: false };
    }
    const end = Math.min(this.records.length, this.next + max, this.next < this.pauseAt ? this.pauseAt : Infinity);
    const batch = this.records.slice(this.next, end);
    this.next = end;
    for (const r of batch) this.watermark = Math.max(this.watermark, r.ts);
    return { records: batch, watermark: this.watermark, done: this.next >= this.records.length };
  }

  snapshotOffsets(): Json {
    return { next: this.next, paused: this.paused, watermark: this.watermark };
  }

  restoreOffsets(offsets: Json): void {
    Object.assign(this, offsets as object);
  }
}
