/**
 * Keyed state a keyed process function declares by descriptor: value, list and map state, each
 * scoped to the current key, optionally with a time to live. The runtime keeps all of it in the
 * subtask's keyed state backend and checkpoints it with the subtask (lib/runtime/keyed-state.ts).
 *
 *   const COUNT = valueState<number>('count');
 *   const SEEN = mapState<string, number>('seen', { ttl: { ms: 3_600_000 } });
 *   ...
 *   const count = ctx.getState(COUNT);
 *   count.update((count.value() ?? 0) + 1);
 */
import type { Json } from './json';
import type { Key } from './keys';

/**
 * Time to live, in processing time (as Flink's state TTL): an entry not written (or, with
 * `update: 'on-read-and-write'`, not read or written) for `ms` is gone: never returned, and
 * dropped when it is next touched or at the next checkpoint. For list and map state each element
 * or entry has its own time.
 */
export interface StateTtl {
  ms: number;
  update?: 'on-create-and-write' | 'on-read-and-write';
}

export interface StateOptions {
  ttl?: StateTtl;
}

interface Descriptor<Kind extends string> extends StateOptions {
  readonly kind: Kind;
  readonly name: string;
}

/* The phantom fields carry the element types; they never hold a value. */
export interface ValueStateDescriptor<T extends Json> extends Descriptor<'value'> {
  readonly __value?: T;
}
export interface ListStateDescriptor<T extends Json> extends Descriptor<'list'> {
  readonly __element?: T;
}
export interface MapStateDescriptor<K extends Key, V extends Json> extends Descriptor<'map'> {
  readonly __key?: K;
  readonly __value?: V;
}
export type StateDescriptor = ValueStateDescriptor<Json> | ListStateDescriptor<Json> | MapStateDescriptor<Key, Json>;

export class StateSpecError extends Error {
  override name = 'StateSpecError';
}

function descriptor<Kind extends string>(kind: Kind, name: string, options: StateOptions): Descriptor<Kind> {
  if (typeof name !== 'string' || name === '') throw new StateSpecError(`${kind} state needs a name`);
  const ttl = options.ttl;
  if (ttl !== undefined) {
    if (!Number.isFinite(ttl.ms) || ttl.ms <= 0) throw new StateSpecError(`${kind} state '${name}': ttl.ms must be a positive number of milliseconds, got ${ttl.ms}`);
    if (ttl.update !== undefined && ttl.update !== 'on-create-and-write' && ttl.update !== 'on-read-and-write') {
      throw new StateSpecError(`${kind} state '${name}': ttl.update must be 'on-create-and-write' or 'on-read-and-write', got '${String(ttl.update)}'`);
    }
  }
  return { kind, name, ...(ttl ? { ttl: { ...ttl } } : {}) };
}

export const valueState = <T extends Json>(name: string, options: StateOptions = {}): ValueStateDescriptor<T> => descriptor('value', name, options);
export const listState = <T extends Json>(name: string, options: StateOptions = {}): ListStateDescriptor<T> => descriptor('list', name, options);
export const mapState = <K extends Key, V extends Json>(name: string, options: StateOptions = {}): MapStateDescriptor<K, V> => descriptor('map', name, options);

/** One value per key. */
export interface ValueState<T extends Json> {
  value(): T | undefined;
  update(value: T): void;
  clear(): void;
}

/** A list per key, in insertion order. */
export interface ListState<T extends Json> {
  /** The elements (a copy: changing it changes nothing here); empty when there are none. */
  get(): T[];
  add(element: T): void;
  addAll(elements: readonly T[]): void;
  /** Replaces every element. */
  update(elements: readonly T[]): void;
  clear(): void;
}

/** A map per key. */
export interface MapState<K extends Key, V extends Json> {
  get(key: K): V | undefined;
  put(key: K, value: V): void;
  putAll(entries: Iterable<readonly [K, V]>): void;
  contains(key: K): boolean;
  remove(key: K): void;
  entries(): [K, V][];
  keys(): K[];
  values(): V[];
  isEmpty(): boolean;
  clear(): void;
}

/** What a keyed process function's context hands out for a descriptor. */
export interface KeyedStateStore {
  getState<T extends Json>(descriptor: ValueStateDescriptor<T>): ValueState<T>;
  getListState<T extends Json>(descriptor: ListStateDescriptor<T>): ListState<T>;
  getMapState<K extends Key, V extends Json>(descriptor: MapStateDescriptor<K, V>): MapState<K, V>;
}
