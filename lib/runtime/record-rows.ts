/**
 * Records of one shape as rows: a data message whose records are plain objects with the same keys
 * carries the keys once (`k`) and each record as the array of its values (`c`), instead of every
 * record repeating its keys. The demo's records are ~45 % smaller that way, so a message (SQS:
 * 256 KB, billed per 64 KB) holds ~1.8x the records, and writing and reading them costs less CPU:
 * a JSON array of five values is stringified and parsed faster than an object with five keys
 * (a micro-benchmark of the demo's records, serialized, packed and parsed back: ~0.84 -> ~0.59 µs).
 *
 * A row stands for exactly what JSON.stringify would have sent: the record's own enumerable keys
 * in their order, every value one JSON keeps (a value JSON.stringify leaves out, `undefined`, a
 * function or a symbol, would turn into null in an array). A record that is not a row of the
 * message's shape travels as `{"v":<record>}` in its place, so order is kept whatever the records.
 * A record with a toJSON method is never a row (JSON writes what toJSON returns). A value's toJSON
 * is called with the value's index in the row for its key (Date's ignores it).
 */
import type { Json } from '../api/functions';

/** The keys a message's rows have, as the writer chose them from its first record. */
export interface RowShape {
  readonly keys: readonly string[];
  /** `keys` as JSON (the message's `k`). */
  readonly text: string;
  /** UTF-8 bytes of `text`. */
  readonly bytes: number;
}

/** Wider records stay objects: a row saves little there, and the keys must fit a message's header. */
const MAX_ROW_KEYS = 64;
const MAX_SHAPE_BYTES = 2048;
/** Row builders kept, by the keys' JSON; a stream with more shapes than this builds the rest by loop. */
const MAX_BUILDERS = 256;

/** The shape of `record` when its messages can carry rows of it: a non-empty plain object's keys. */
export function rowShapeOf(record: Json): RowShape | undefined {
  if (!rowLike(record)) return undefined;
  const keys = Object.keys(record);
  // `__proto__` as a key of an object literal or an assignment sets the prototype instead.
  if (keys.length === 0 || keys.length > MAX_ROW_KEYS || keys.includes('__proto__')) return undefined;
  const text = JSON.stringify(keys);
  const bytes = Buffer.byteLength(text);
  return bytes > MAX_SHAPE_BYTES ? undefined : { keys, text, bytes };
}

/** `record` as the text of a row of `shape`, or as `{"v":…}` when it is not one. */
export function rowText(record: Json, shape: RowShape): string {
  const row = rowOf(record, shape.keys);
  return row ? JSON.stringify(row) : `{"v":${JSON.stringify(record)}}`;
}

/** An object JSON writes as its own keys: not an array, and without a toJSON of its own (a Date, a class's). */
function rowLike(record: Json): record is { [key: string]: Json } {
  return typeof record === 'object' && record !== null && !Array.isArray(record) && typeof (record as { toJSON?: unknown }).toJSON !== 'function';
}

function rowOf(record: Json, keys: readonly string[]): Json[] | undefined {
  if (!rowLike(record)) return undefined;
  const own = Object.keys(record);
  if (own.length !== keys.length) return undefined;
  const row = new Array<Json>(own.length);
  for (let i = 0; i < own.length; i++) {
    const key = own[i]!;
    if (key !== keys[i]) return undefined;
    const value = (record as Record<string, Json>)[key];
    const type = typeof value;
    if (value === undefined || type === 'function' || type === 'symbol') return undefined;
    row[i] = value!;
  }
  return row;
}

export class MalformedRowsError extends Error {
  override name = 'MalformedRowsError';
}

type Builder = (row: Json[]) => Json;
const builders = new Map<string, Builder>();

/**
 * The records of rows `rows` of keys `keys` (a message's `k` and `c`), built in place in `rows`.
 * Throws MalformedRowsError for anything a writer does not send.
 */
export function recordsOfRows(keys: unknown, rows: unknown): Json[] {
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'string') || keys.includes('__proto__') || new Set(keys).size !== keys.length) {
    throw new MalformedRowsError(`record rows with malformed keys: ${JSON.stringify(keys)?.slice(0, 80)}`);
  }
  if (!Array.isArray(rows)) throw new MalformedRowsError('record rows that are not a list');
  const build = builderOf(keys as string[]);
  const out = rows as Json[];
  for (let i = 0; i < out.length; i++) {
    const row = out[i];
    if (Array.isArray(row)) {
      if (row.length !== keys.length) throw new MalformedRowsError(`a record row of ${row.length} values for ${keys.length} keys`);
      out[i] = build(row);
    } else if (typeof row === 'object' && row !== null && Object.hasOwn(row, 'v')) {
      out[i] = (row as { v: Json }).v;
    } else {
      throw new MalformedRowsError(`a record row that is neither a row nor a record: ${JSON.stringify(row)?.slice(0, 80)}`);
    }
  }
  return out;
}

/**
 * An object literal per shape (compiled once): its objects are built with one hidden class and
 * without a keyed store per value (a loop costs ~10 % more per record in the micro-benchmark).
 * The keys enter the code only as JSON string literals.
 */
function builderOf(keys: readonly string[]): Builder {
  const id = JSON.stringify(keys);
  let build = builders.get(id);
  if (build) return build;
  if (builders.size >= MAX_BUILDERS) return (row) => buildByLoop(keys, row);
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- keys are JSON string literals
  build = new Function('r', `return {${keys.map((k, i) => `${JSON.stringify(k)}:r[${i}]`).join(',')}};`) as Builder;
  builders.set(id, build);
  return build;
}

function buildByLoop(keys: readonly string[], row: Json[]): Json {
  const o: Record<string, Json> = {};
  for (let i = 0; i < keys.length; i++) o[keys[i]!] = row[i]!;
  return o;
}
