/**
 * Keyed state backend of one subtask: per key, named state slots (value, list or map state, with an
 * optional time to live), and event-time and processing-time timers per key. The whole backend
 * snapshots to one JSON document (stored in S3 at a checkpoint).
 *
 * Keys are the engine's key strings (lib/api/keys.ts). A slot holds plain JSON: a value state its
 * value, a list state an array, a map state an object by encoded map key; with a TTL each value,
 * element or entry is wrapped as `{ v, x }` (x: when it expires, in processing time).
 */
import type { Json, KeyedValueState, TimeDomain } from '../api/functions';
import { cloneJson } from '../api/json';
import { decodeKey, encodeKey, type Key } from '../api/keys';
import {
  StateSpecError,
  type KeyedStateStore,
  type ListState,
  type ListStateDescriptor,
  type MapState,
  type MapStateDescriptor,
  type StateDescriptor,
  type StateTtl,
  type ValueState,
  type ValueStateDescriptor,
} from '../api/state';

export interface KeyedStateSnapshot {
  values: [string, Record<string, Json>][];
  /** Event-time timers: timestamp -> keys. */
  timers: [number, string[]][];
  /** Processing-time timers: timestamp -> keys (absent in snapshots taken before they existed). */
  processingTimers?: [number, string[]][];
}

type Slot = Record<string, Json>;
type Wrapped = { v: Json; x: number };

/** Timers of one time domain: timestamp -> keys. */
class TimerQueue {
  readonly byTime = new Map<number, Set<string>>();

  add(timestamp: number, key: string): void {
    let keys = this.byTime.get(timestamp);
    if (!keys) this.byTime.set(timestamp, (keys = new Set()));
    keys.add(key);
  }

  delete(timestamp: number, key: string): void {
    const keys = this.byTime.get(timestamp);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.byTime.delete(timestamp);
  }

  /** Removes and returns the timers due at `time`, earliest first. */
  takeDue(time: number): [number, string][] {
    const due = [...this.byTime.keys()].filter((t) => t <= time).sort((a, b) => a - b);
    const out: [number, string][] = [];
    for (const t of due) {
      for (const key of this.byTime.get(t)!) out.push([t, key]);
      this.byTime.delete(t);
    }
    return out;
  }

  /** The earliest timestamp, if any. */
  earliest(): number | undefined {
    let min: number | undefined;
    for (const t of this.byTime.keys()) if (min === undefined || t < min) min = t;
    return min;
  }

  snapshot(): [number, string[]][] {
    return [...this.byTime.entries()].map(([t, keys]) => [t, [...keys]]);
  }

  restore(entries: [number, string[]][] | undefined): void {
    this.byTime.clear();
    for (const [t, keys] of entries ?? []) this.byTime.set(t, new Set(keys));
  }
}

export class KeyedStateBackend implements KeyedStateStore {
  private readonly values = new Map<string, Slot>();
  private readonly eventTimers = new TimerQueue();
  private readonly processingTimers = new TimerQueue();
  /** The descriptor each state name was declared with (a name has one kind and one TTL). */
  private readonly declared = new Map<string, StateDescriptor>();
  private readonly handles = new Map<string, unknown>();
  private currentKey = '';
  /** The current key's values, looked up once per key change rather than once per access. */
  private cur: Slot | undefined;

  constructor(
    /** Processing time, for TTL (tests move it). */
    private readonly now: () => number = Date.now,
  ) {}

  /** The untyped value-state view of the key currently being processed (`ctx.state`). */
  readonly state: KeyedValueState = {
    get: <T extends Json>(name: string) => this.slot()?.[name] as T | undefined,
    set: (name, value) => {
      this.writableSlot()[name] = value;
    },
    clear: (name) => this.clearName(name),
  };

  setCurrentKey(key: string): void {
    if (key === this.currentKey && this.cur !== undefined) return;
    this.currentKey = key;
    this.cur = this.values.get(key);
  }

  get key(): string {
    return this.currentKey;
  }

  // ---- timers ------------------------------------------------------------------------------

  registerTimer(timestamp: number, domain: TimeDomain = 'event-time'): void {
    this.queue(domain).add(timestamp, this.currentKey);
  }

  deleteTimer(timestamp: number, domain: TimeDomain = 'event-time'): void {
    this.queue(domain).delete(timestamp, this.currentKey);
  }

  /** Removes and returns the timers of `domain` due at `time`, earliest first. */
  takeDueTimers(time: number, domain: TimeDomain = 'event-time'): [number, string][] {
    return this.queue(domain).takeDue(time);
  }

  /** The earliest processing-time timer, if any. */
  nextProcessingTimer(): number | undefined {
    return this.processingTimers.earliest();
  }

  private queue(domain: TimeDomain): TimerQueue {
    return domain === 'event-time' ? this.eventTimers : this.processingTimers;
  }

  // ---- typed state -------------------------------------------------------------------------

  getState<T extends Json>(d: ValueStateDescriptor<T>): ValueState<T> {
    return this.handle(d, () => {
      const ttl = d.ttl;
      return {
        value: () => {
          const raw = this.slot()?.[d.name];
          if (raw === undefined) return undefined;
          if (!ttl) return raw as T;
          const w = raw as Wrapped;
          if (this.expired(w)) {
            this.clearName(d.name);
            return undefined;
          }
          if (ttl.update === 'on-read-and-write') w.x = this.expiry(ttl);
          return w.v as T;
        },
        update: (value: T) => {
          this.writableSlot()[d.name] = ttl ? { v: value, x: this.expiry(ttl) } : value;
        },
        clear: () => this.clearName(d.name),
      };
    });
  }

  getListState<T extends Json>(d: ListStateDescriptor<T>): ListState<T> {
    return this.handle(d, () => {
      const ttl = d.ttl;
      const live = (): Json[] | undefined => {
        const list = this.slot()?.[d.name] as Json[] | undefined;
        if (!list || !ttl) return list;
        const kept = (list as Wrapped[]).filter((w) => !this.expired(w));
        if (kept.length === list.length) return list;
        if (kept.length === 0) return void this.clearName(d.name);
        this.writableSlot()[d.name] = kept;
        return kept;
      };
      const wrap = (element: T): Json => (ttl ? { v: element, x: this.expiry(ttl) } : element);
      return {
        get: () => {
          const list = live();
          if (!list) return [];
          if (!ttl) return cloneJson(list) as T[];
          if (ttl.update === 'on-read-and-write') for (const w of list as Wrapped[]) w.x = this.expiry(ttl);
          return (list as Wrapped[]).map((w) => cloneJson(w.v) as T);
        },
        add: (element: T) => {
          const list = live();
          if (list) list.push(wrap(element));
          else this.writableSlot()[d.name] = [wrap(element)];
        },
        addAll: (elements: readonly T[]) => {
          if (elements.length === 0) return;
          const list = live();
          if (list) for (const e of elements) list.push(wrap(e));
          else this.writableSlot()[d.name] = elements.map(wrap);
        },
        update: (elements: readonly T[]) => {
          if (elements.length === 0) return this.clearName(d.name);
          this.writableSlot()[d.name] = elements.map(wrap);
        },
        clear: () => this.clearName(d.name),
      };
    });
  }

  getMapState<K extends Key, V extends Json>(d: MapStateDescriptor<K, V>): MapState<K, V> {
    return this.handle(d, () => {
      const ttl = d.ttl;
      // Named once: a get or put encodes its key on every call.
      const where = `map state '${d.name}' key`;
      // The last array key of primitives, and its encoding: a window's get and put, and most of the
      // elements that follow, name the same [start, end]; the same string again also finds its
      // entry without being hashed again.
      let lastKey: Key[] | undefined;
      let lastEncoded = '';
      const encode = (key: K): string => {
        if (!Array.isArray(key)) return encodeKey(key, where);
        const last = lastKey;
        if (last !== undefined && last.length === key.length) {
          let i = 0;
          while (i < key.length && key[i] === last[i] && typeof key[i] !== 'object') i++;
          if (i === key.length) return lastEncoded;
        }
        const encoded = encodeKey(key, where);
        lastKey = key.slice();
        lastEncoded = encoded;
        return encoded;
      };
      /** The map of the current key, expired entries dropped; undefined when empty. */
      const live = (): Record<string, Json> | undefined => {
        const map = this.slot()?.[d.name] as Record<string, Json> | undefined;
        if (!map || !ttl) return map;
        let left = 0;
        for (const k of Object.keys(map)) {
          if (this.expired(map[k] as Wrapped)) delete map[k];
          else left++;
        }
        if (left === 0) return void this.clearName(d.name);
        return map;
      };
      const read = (entry: Json): V => {
        if (!ttl) return entry as V;
        const w = entry as Wrapped;
        if (ttl.update === 'on-read-and-write') w.x = this.expiry(ttl);
        return w.v as V;
      };
      const writable = (): Record<string, Json> => {
        const existing = live();
        if (existing) return existing;
        const map: Record<string, Json> = {};
        this.writableSlot()[d.name] = map;
        return map;
      };
      const put = (key: K, value: V) => setOwn(writable(), encode(key), ttl ? { v: value, x: this.expiry(ttl) } : value);
      return {
        get: (key: K) => {
          const map = live();
          const k = encode(key);
          return map && Object.hasOwn(map, k) ? read(map[k]!) : undefined;
        },
        put,
        putAll: (entries: Iterable<readonly [K, V]>) => {
          for (const [k, v] of entries) put(k, v);
        },
        contains: (key: K) => {
          const map = live();
          return map !== undefined && Object.hasOwn(map, encode(key));
        },
        remove: (key: K) => {
          const map = live();
          if (!map) return;
          delete map[encode(key)];
          // Empty without listing its keys (a key's windows are removed one by one as they fire).
          for (const _ in map) return;
          this.clearName(d.name);
        },
        entries: () => Object.entries(live() ?? {}).map(([k, v]) => [decodeKey<K>(k), cloneJson(read(v))] as [K, V]),
        keys: () => Object.keys(live() ?? {}).map((k) => decodeKey<K>(k)),
        values: () => Object.values(live() ?? {}).map((v) => cloneJson(read(v))),
        isEmpty: () => live() === undefined,
        clear: () => this.clearName(d.name),
      };
    });
  }

  /** One handle per state name, checked against the descriptor the name was first declared with. */
  private handle<H>(d: StateDescriptor, create: () => H): H {
    const known = this.declared.get(d.name);
    if (!known) {
      this.declared.set(d.name, d);
      const h = create();
      this.handles.set(d.name, h);
      return h;
    }
    if (known.kind !== d.kind) throw new StateSpecError(`keyed state '${d.name}' is a ${known.kind} state; it cannot be used as a ${d.kind} state`);
    if (known.ttl?.ms !== d.ttl?.ms || (known.ttl?.update ?? 'on-create-and-write') !== (d.ttl?.update ?? 'on-create-and-write')) {
      throw new StateSpecError(`keyed state '${d.name}' was declared with ${ttlText(known.ttl)}; it cannot be used with ${ttlText(d.ttl)}`);
    }
    return this.handles.get(d.name) as H;
  }

  private expiry(ttl: StateTtl): number {
    return this.now() + ttl.ms;
  }

  private expired(w: Wrapped): boolean {
    return w.x <= this.now();
  }

  private slot(): Slot | undefined {
    return this.cur;
  }

  private writableSlot(): Slot {
    if (!this.cur) this.values.set(this.currentKey, (this.cur = {}));
    return this.cur;
  }

  private clearName(name: string): void {
    const slot = this.cur;
    if (!slot) return;
    delete slot[name];
    for (const _ in slot) return;
    this.values.delete(this.currentKey);
    this.cur = undefined;
  }

  /** Drops every expired entry of the states declared with a TTL, over all keys (reading nothing: no TTL is extended). */
  private purgeExpired(): void {
    const withTtl = [...this.declared.values()].filter((d) => d.ttl);
    if (withTtl.length === 0) return;
    for (const [key, slot] of [...this.values]) {
      for (const d of withTtl) {
        const held = slot[d.name];
        if (held === undefined) continue;
        if (d.kind === 'value') {
          if (this.expired(held as Wrapped)) delete slot[d.name];
        } else if (d.kind === 'list') {
          const kept = (held as Wrapped[]).filter((w) => !this.expired(w));
          if (kept.length === 0) delete slot[d.name];
          else slot[d.name] = kept;
        } else {
          const map = held as Record<string, Json>;
          for (const k of Object.keys(map)) if (this.expired(map[k] as Wrapped)) delete map[k];
          if (Object.keys(map).length === 0) delete slot[d.name];
        }
      }
      if (Object.keys(slot).length === 0) this.values.delete(key);
    }
    this.cur = this.values.get(this.currentKey);
  }

  get keyCount(): number {
    return this.values.size;
  }

  /**
   * The state as a JSON document. `copy: false` hands out the backend's own values: only for a
   * caller that serializes them before the next record can change them (a checkpoint's snapshot is
   * stringified before its first await); copying 100,000 keys' state at every checkpoint cost more
   * than processing the records did (bench:engine with 99,999 users).
   */
  snapshot(options: { copy?: boolean } = {}): KeyedStateSnapshot {
    this.purgeExpired();
    const copy = options.copy ?? true;
    return {
      values: copy ? [...this.values.entries()].map(([k, v]) => [k, cloneJson(v)]) : [...this.values.entries()],
      timers: this.eventTimers.snapshot(),
      processingTimers: this.processingTimers.snapshot(),
    };
  }

  restore(snapshot: KeyedStateSnapshot): void {
    this.values.clear();
    this.cur = undefined;
    this.currentKey = '';
    for (const [k, v] of snapshot.values) this.values.set(k, v);
    this.eventTimers.restore(snapshot.timers);
    this.processingTimers.restore(snapshot.processingTimers);
  }
}

/** Sets an own property, also for the name `__proto__` (which plain assignment would not). */
function setOwn(target: Record<string, Json>, key: string, value: Json): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

const ttlText = (ttl: StateTtl | undefined) => (ttl ? `a TTL of ${ttl.ms} ms (${ttl.update ?? 'on-create-and-write'})` : 'no TTL');
