/**
 * In-memory MetadataStore with DynamoDB's semantics: conditions are evaluated against the stored
 * item (a missing item is an empty one), comparisons need equal types, `<>` holds for a missing
 * attribute, sort keys are ordered by UTF-8 bytes, and DynamoDB's limits hold (400 KB items, key
 * lengths, nesting depth, number range: lib/ports/item-size.ts). The validation helpers here are
 * shared with the DynamoDB adapter so both reject the same mistakes before any write.
 */
import { compareUtf8, type Condition, type ItemChanges, type MetadataStore, type MetaItem, type MetaValue, type QueryOptions, type StoredItem } from '../ports/metadata-store';
import { checkItemSize, checkKeySizes, checkValueRules } from '../ports/item-size';

/** Attribute names the DynamoDB table uses for its keys. */
export const KEY_ATTRIBUTES = ['pk', 'sk'] as const;

/** Keys must be non-empty strings (DynamoDB refuses empty key values). Queries pass no sort key. */
export function validateKeys(pk: string, sk?: string): void {
  const bad = (k: unknown) => typeof k !== 'string' || k === '';
  if (bad(pk) || (sk !== undefined && bad(sk))) {
    throw new Error(`metadata keys must be non-empty strings, got pk='${pk}'${sk !== undefined ? ` sk='${sk}'` : ''}`);
  }
  checkKeySizes(pk, sk);
}

function checkAttributeName(attr: string): void {
  if (attr === 'pk' || attr === 'sk') throw new Error(`'${attr}' is a key attribute of the metadata table; use another attribute name`);
  if (attr === '') throw new Error('attribute names must not be empty');
}

function checkValue(value: MetaValue, path: string): void {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`attribute '${path}' is ${value}; only finite numbers can be stored`);
  checkValueRules(value, path);
}

export function validateItem(item: MetaItem): void {
  for (const [attr, value] of Object.entries(item)) {
    checkAttributeName(attr);
    if (value !== undefined) checkValue(value, attr);
  }
}

export function validateChanges(changes: ItemChanges): void {
  const seen = new Set<string>();
  const claim = (attr: string) => {
    checkAttributeName(attr);
    if (seen.has(attr)) throw new Error(`attribute '${attr}' appears in more than one of set/add/remove`);
    seen.add(attr);
  };
  for (const [attr, value] of Object.entries(changes.set ?? {})) {
    claim(attr);
    if (value !== undefined) checkValue(value, attr);
  }
  for (const [attr, value] of Object.entries(changes.add ?? {})) {
    claim(attr);
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`add '${attr}' needs a finite number, got ${value}`);
  }
  for (const attr of changes.remove ?? []) claim(attr);
  // DynamoDB itself would accept an empty update; moto answers it with HTTP 500. Nothing needs it.
  const undefinedSets = Object.values(changes.set ?? {}).filter((v) => v === undefined).length;
  if (seen.size === undefinedSets) {
    throw new Error('update needs at least one attribute to set, add or remove');
  }
}

export function validateConditions(conditions: readonly Condition[]): void {
  for (const c of conditions) {
    checkAttributeName(c.attr);
    if ('value' in c && typeof c.value === 'boolean' && c.op !== '=' && c.op !== '<>') {
      throw new Error(`condition '${c.attr} ${c.op} ${c.value}': booleans can only be compared with = or <>`);
    }
  }
}

export function validateQueryOptions(options: QueryOptions): void {
  if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit >= 1)) {
    throw new Error(`query limit must be a whole number of at least 1, got ${options.limit}`);
  }
}

/** DynamoDB condition semantics for one attribute value (undefined = missing). */
export function conditionHolds(item: MetaItem | undefined, c: Condition): boolean {
  const actual = item?.[c.attr];
  if (!('value' in c)) return c.op === 'exists' ? actual !== undefined : actual === undefined;
  const sameType = actual !== undefined && actual !== null && typeof actual === typeof c.value && typeof actual !== 'object';
  if (c.op === '<>') return !sameType || actual !== c.value;
  if (!sameType) return false;
  if (c.op === '=') return actual === c.value;
  const cmp = typeof actual === 'string' ? compareUtf8(actual, c.value as string) : (actual as number) - (c.value as number);
  switch (c.op) {
    case '<':
      return cmp < 0;
    case '<=':
      return cmp <= 0;
    case '>':
      return cmp > 0;
    case '>=':
      return cmp >= 0;
  }
}

/** Deep copy that also drops undefined object members (and nulls undefined array slots), like JSON. */
export function copyValue(value: MetaValue): MetaValue {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : copyValue(v)));
  return copyItem(value);
}

export function copyItem(item: MetaItem): MetaItem {
  const out: MetaItem = {};
  for (const key in item) {
    const v = item[key];
    if (v !== undefined) out[key] = copyValue(v);
  }
  return out;
}

interface Partition {
  items: Map<string, MetaItem>;
  /** Sort keys in order; rebuilt lazily after a key is added or removed. */
  sorted: string[] | undefined;
}

export class MemoryMetadataStore implements MetadataStore {
  /** Requests the DynamoDB adapter would make for the same calls (one per call; queries count 1). */
  requests = 0;
  private readonly partitions = new Map<string, Partition>();

  private partition(pk: string, create: true): Partition;
  private partition(pk: string, create: false): Partition | undefined;
  private partition(pk: string, create: boolean): Partition | undefined {
    let p = this.partitions.get(pk);
    if (!p && create) {
      p = { items: new Map(), sorted: undefined };
      this.partitions.set(pk, p);
    }
    return p;
  }

  private stored(pk: string, sk: string): MetaItem | undefined {
    return this.partitions.get(pk)?.items.get(sk);
  }

  private write(pk: string, sk: string, item: MetaItem): void {
    const p = this.partition(pk, true);
    if (!p.items.has(sk)) p.sorted = undefined;
    p.items.set(sk, item);
  }

  async get(pk: string, sk: string): Promise<MetaItem | undefined> {
    validateKeys(pk, sk);
    this.requests++;
    const item = this.stored(pk, sk);
    return item && copyItem(item);
  }

  async put(pk: string, sk: string, item: MetaItem, conditions: readonly Condition[] = []): Promise<boolean> {
    validateKeys(pk, sk);
    validateItem(item);
    validateConditions(conditions);
    this.requests++;
    const current = this.stored(pk, sk);
    checkItemSize(pk, sk, item);
    if (!conditions.every((c) => conditionHolds(current, c))) return false;
    this.write(pk, sk, copyItem(item));
    return true;
  }

  async update(pk: string, sk: string, changes: ItemChanges, conditions: readonly Condition[] = []): Promise<MetaItem | undefined> {
    validateKeys(pk, sk);
    validateChanges(changes);
    validateConditions(conditions);
    this.requests++;
    const current = this.stored(pk, sk);
    if (!conditions.every((c) => conditionHolds(current, c))) return undefined;
    // Build the new item aside so a failing ADD leaves the stored one untouched.
    const next: MetaItem = current ? { ...current } : {};
    for (const [attr, value] of Object.entries(changes.set ?? {})) {
      if (value !== undefined) next[attr] = copyValue(value);
    }
    for (const [attr, delta] of Object.entries(changes.add ?? {})) {
      const old = next[attr];
      if (old !== undefined && typeof old !== 'number') throw new Error(`cannot add to attribute '${attr}': it is not a number`);
      next[attr] = (old ?? 0) + delta;
    }
    for (const attr of changes.remove ?? []) delete next[attr];
    checkItemSize(pk, sk, next);
    this.write(pk, sk, next);
    return copyItem(next);
  }

  async query(pk: string, skPrefix = '', options: QueryOptions = {}): Promise<StoredItem[]> {
    validateKeys(pk);
    validateQueryOptions(options);
    this.requests++;
    const p = this.partition(pk, false);
    if (!p) return [];
    p.sorted ??= [...p.items.keys()].sort(compareUtf8);
    const out: StoredItem[] = [];
    const keys = options.newestFirst ? [...p.sorted].reverse() : p.sorted;
    for (const sk of keys) {
      if (options.limit !== undefined && out.length >= options.limit) break;
      if (sk.startsWith(skPrefix)) out.push({ pk, sk, item: copyItem(p.items.get(sk)!) });
    }
    return out;
  }

  async delete(pk: string, sk: string): Promise<void> {
    validateKeys(pk, sk);
    this.requests++;
    const p = this.partition(pk, false);
    if (p?.items.delete(sk)) {
      p.sorted = undefined;
      if (p.items.size === 0) this.partitions.delete(pk);
    }
  }
}
