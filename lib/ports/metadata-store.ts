/**
 * Metadata store port (DynamoDB): job, task, region, checkpoint metadata and the availability
 * flags of sub-partitions. Items are addressed by a partition key and a sort key; values are plain
 * JSON-like data (string, number, boolean, null, arrays, nested objects).
 *
 * Conditions make writes safe between processes: an attempt number written with
 * `{ attr: 'attempt', op: '<', value: newAttempt }` is a fencing token.
 */
export type MetaValue = string | number | boolean | null | MetaValue[] | { [k: string]: MetaValue };
export type MetaItem = { [attr: string]: MetaValue };

export type Condition =
  | { attr: string; op: '=' | '<>' | '<' | '<=' | '>' | '>='; value: string | number | boolean }
  | { attr: string; op: 'exists' | 'notExists' };

export interface ItemChanges {
  /** Attributes to set (overwrite). */
  set?: MetaItem;
  /** Numeric attributes to add to (created at 0 when missing). */
  add?: Record<string, number>;
  /** Attributes to remove. */
  remove?: string[];
}

export interface StoredItem {
  pk: string;
  sk: string;
  item: MetaItem;
}

export interface QueryOptions {
  /** At most this many items. */
  limit?: number;
  /** Highest sort key first (DynamoDB's ScanIndexForward = false). */
  newestFirst?: boolean;
}

/**
 * Items follow DynamoDB's rules in every implementation: at most 400 KB each (attribute names
 * included), keys of at most 2,048 / 1,024 bytes, values nested at most 32 deep
 * (lib/ports/item-size.ts). A write that breaks one is refused with an error naming the item.
 */
export interface MetadataStore {
  get(pk: string, sk: string): Promise<MetaItem | undefined>;
  /** Writes the whole item. Returns false (and writes nothing) when a condition does not hold. */
  put(pk: string, sk: string, item: MetaItem, conditions?: readonly Condition[]): Promise<boolean>;
  /**
   * Changes some attributes, creating the item if needed. Returns the item after the change, or
   * undefined (and changes nothing) when a condition does not hold.
   */
  update(pk: string, sk: string, changes: ItemChanges, conditions?: readonly Condition[]): Promise<MetaItem | undefined>;
  /** Items of a partition whose sort key starts with the prefix, in sort-key order (or reversed), up to `limit`. */
  query(pk: string, skPrefix?: string, options?: QueryOptions): Promise<StoredItem[]>;
  delete(pk: string, sk: string): Promise<void>;
}

/** Compares strings by UTF-8 byte order (= code point order), as DynamoDB orders sort keys. */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // UTF-16 puts surrogates (U+D800-DFFF, code points above U+FFFF) below U+E000-FFFF; fix that.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}
