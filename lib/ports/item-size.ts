/**
 * DynamoDB's item rules, computed as AWS documents them ("Item sizes and formats", "Quotas"), so
 * the in-memory store refuses what DynamoDB refuses and the adapter names the item before AWS
 * does. Sizes are bytes:
 *
 *   string   its UTF-8 length               number  ceil(significant digits / 2) + 1
 *   boolean  1                              null    1
 *   list     3 + per element (1 + its size)  map     3 + per entry (1 + name + its size)
 *   item     sum over attributes (name + value), the key attributes included
 *
 * Limits: an item at most 400 KB (409,600 bytes); a partition key value at most 2,048 bytes and a
 * sort key value at most 1,024; values nested at most 32 levels deep; numbers of magnitude from
 * 1E-130 to under 1E126, with at most 38 significant digits (JavaScript numbers have at most 17).
 */
import type { MetaItem, MetaValue } from './metadata-store';

export const MAX_ITEM_BYTES = 400 * 1024;
export const MAX_PARTITION_KEY_BYTES = 2048;
export const MAX_SORT_KEY_BYTES = 1024;
export const MAX_NESTING_DEPTH = 32;
const MAX_NUMBER = 1e126;
const MIN_NUMBER = 1e-130;

export const utf8Bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Significant digits of a finite number as DynamoDB stores it (leading and trailing zeros do not count). */
function significantDigits(n: number): number {
  if (n === 0) return 1;
  const [mantissa] = Math.abs(n).toExponential().split('e');
  return mantissa!.replace('.', '').replace(/0+$/, '').length || 1;
}

/** The size DynamoDB counts for one value. */
export function valueSize(value: MetaValue): number {
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return utf8Bytes(value);
  if (typeof value === 'number') return Math.ceil(significantDigits(value) / 2) + 1;
  if (Array.isArray(value)) return value.reduce<number>((n, v) => n + 1 + valueSize(v ?? null), 3);
  let n = 3;
  for (const key in value) {
    const v = value[key];
    if (v !== undefined) n += 1 + utf8Bytes(key) + valueSize(v);
  }
  return n;
}

/** The size of a whole item with its key attributes (`pk`, `sk`), as DynamoDB counts it. */
export function itemSize(pk: string, sk: string, item: MetaItem): number {
  let n = 2 + utf8Bytes(pk) + 2 + utf8Bytes(sk);
  for (const attr in item) {
    const v = item[attr];
    if (v !== undefined) n += utf8Bytes(attr) + valueSize(v);
  }
  return n;
}

export class ItemLimitError extends Error {
  override name = 'ItemLimitError';
}

/** Refuses key values DynamoDB refuses (too long). */
export function checkKeySizes(pk: string, sk?: string): void {
  const p = utf8Bytes(pk);
  if (p > MAX_PARTITION_KEY_BYTES) throw new ItemLimitError(`partition key '${pk.slice(0, 60)}…' is ${p} bytes; DynamoDB allows at most ${MAX_PARTITION_KEY_BYTES}`);
  if (sk !== undefined) {
    const s = utf8Bytes(sk);
    if (s > MAX_SORT_KEY_BYTES) throw new ItemLimitError(`sort key '${sk.slice(0, 60)}…' of ${pk} is ${s} bytes; DynamoDB allows at most ${MAX_SORT_KEY_BYTES}`);
  }
}

/** Refuses a value nested deeper than DynamoDB allows, or a number it cannot store. */
export function checkValueRules(value: MetaValue, path: string, depth = 1): void {
  if (typeof value === 'number') {
    const a = Math.abs(value);
    if (a !== 0 && (a < MIN_NUMBER || a >= MAX_NUMBER)) throw new ItemLimitError(`attribute '${path}' is ${value}; DynamoDB stores numbers of magnitude 1E-130 to under 1E126 only`);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (depth > MAX_NESTING_DEPTH) throw new ItemLimitError(`attribute '${path}' is nested more than ${MAX_NESTING_DEPTH} levels deep (DynamoDB's limit)`);
  if (Array.isArray(value)) value.forEach((v, i) => checkValueRules(v ?? null, `${path}[${i}]`, depth + 1));
  else for (const key in value) if (value[key] !== undefined) checkValueRules(value[key]!, `${path}.${key}`, depth + 1);
}

/** Refuses an item over DynamoDB's 400 KB, naming it and its size. */
export function checkItemSize(pk: string, sk: string, item: MetaItem): number {
  const size = itemSize(pk, sk, item);
  if (size > MAX_ITEM_BYTES) {
    throw new ItemLimitError(`item ${pk} / ${sk} would be ${size} bytes; DynamoDB's item size limit is ${MAX_ITEM_BYTES} bytes (400 KB)`);
  }
  return size;
}
