/**
 * A MetadataStore that measures what goes through it: the largest item written (by DynamoDB's
 * size rules, per kind of item), writes per partition key (the hottest key's peak per second),
 * and reads and writes with the capacity units DynamoDB would bill for them. It forwards every
 * call unchanged, so a benchmark can wrap the real adapter with it.
 */
import type { Condition, ItemChanges, MetadataStore, MetaItem, QueryOptions, StoredItem } from '../../lib/ports/metadata-store';
import { itemSize } from '../../lib/ports/item-size';

export interface ItemRecord {
  pk: string;
  sk: string;
  bytes: number;
}

/** The kind of an item, from its keys: `JOB#<id>#UNITS#3 / UNIT#join-100` → `UNITS / UNIT#`. */
export function itemKind(pk: string, sk: string): string {
  const pkKind = pk.startsWith('JOB#') ? (pk.split('#')[2] ?? 'JOB') : pk;
  const skKind = sk.match(/^[A-Z_]+#?/)?.[0] ?? (pkKind === 'ACK' ? '<subtask>' : sk);
  return `${pkKind} / ${skKind}`;
}

/** Writes and the write units DynamoDB bills for them (or S3 PUTs: units = requests), per kind of item. */
export interface KindCount {
  writes: number;
  units: number;
}
export type KindCounts = Record<string, KindCount>;

/** `b - a`, per kind (kinds with no write in between are left out). */
export function kindsBetween(a: KindCounts, b: KindCounts): KindCounts {
  const out: KindCounts = {};
  for (const [kind, n] of Object.entries(b)) {
    const before = a[kind] ?? { writes: 0, units: 0 };
    if (n.writes > before.writes) out[kind] = { writes: n.writes - before.writes, units: n.units - before.units };
  }
  return out;
}

/** Several observers' counts added up. */
export function kindsSum(...counts: KindCounts[]): KindCounts {
  const out: KindCounts = {};
  for (const c of counts) for (const [kind, n] of Object.entries(c)) out[kind] = { writes: (out[kind]?.writes ?? 0) + n.writes, units: (out[kind]?.units ?? 0) + n.units };
  return out;
}

export class ObservedMetadataStore implements MetadataStore {
  /** Largest item written, per kind. */
  readonly largest = new Map<string, ItemRecord>();
  /** Writes and billed write units per kind of item (`itemKind`; a delete counts one unit). */
  private readonly byKind = new Map<string, KindCount>();
  reads = 0;
  writes = 0;
  /** Read request units (4 KB each, strongly consistent as the adapter reads) and write request units (1 KB each). */
  readUnits = 0;
  writeUnits = 0;
  /** Writes per partition key per whole second: `${second}|${pk}` → count. */
  private readonly perSecond = new Map<string, number>();
  /** The most writes one partition key took within one second. */
  hottest: { pk: string; second: number; writes: number } = { pk: '', second: 0, writes: 0 };

  constructor(
    readonly inner: MetadataStore,
    private readonly now: () => number = Date.now,
  ) {}

  get largestItem(): ItemRecord | undefined {
    let best: ItemRecord | undefined;
    for (const r of this.largest.values()) if (!best || r.bytes > best.bytes) best = r;
    return best;
  }

  private wrote(pk: string, sk: string, item: MetaItem | undefined): void {
    this.writes++;
    const bytes = item ? itemSize(pk, sk, item) : 1;
    const units = Math.max(1, Math.ceil(bytes / 1024));
    this.writeUnits += units;
    const kind = itemKind(pk, sk);
    const counted = this.byKind.get(kind) ?? { writes: 0, units: 0 };
    counted.writes++;
    counted.units += units;
    this.byKind.set(kind, counted);
    if (item) {
      const known = this.largest.get(kind);
      if (!known || bytes > known.bytes) this.largest.set(kind, { pk, sk, bytes });
    }
    const second = Math.floor(this.now() / 1000);
    const key = `${second}|${pk}`;
    const n = (this.perSecond.get(key) ?? 0) + 1;
    this.perSecond.set(key, n);
    if (n > this.hottest.writes) this.hottest = { pk, second, writes: n };
    if (this.perSecond.size > 200_000) this.perSecond.clear();
  }

  /** A copy of the counts per kind so far (subtract two with `kindsBetween`). */
  writesByKind(): KindCounts {
    return Object.fromEntries([...this.byKind].map(([k, v]) => [k, { ...v }]));
  }

  private read(bytes: number): void {
    this.reads++;
    this.readUnits += Math.max(1, Math.ceil(bytes / 4096));
  }

  async get(pk: string, sk: string): Promise<MetaItem | undefined> {
    const item = await this.inner.get(pk, sk);
    this.read(item ? itemSize(pk, sk, item) : 0);
    return item;
  }

  async put(pk: string, sk: string, item: MetaItem, conditions?: readonly Condition[]): Promise<boolean> {
    const ok = await this.inner.put(pk, sk, item, conditions);
    this.wrote(pk, sk, ok ? item : undefined);
    return ok;
  }

  async update(pk: string, sk: string, changes: ItemChanges, conditions?: readonly Condition[]): Promise<MetaItem | undefined> {
    const item = await this.inner.update(pk, sk, changes, conditions);
    this.wrote(pk, sk, item);
    return item;
  }

  async query(pk: string, skPrefix?: string, options?: QueryOptions): Promise<StoredItem[]> {
    const items = await this.inner.query(pk, skPrefix, options);
    // Billed by the total size returned (rounded up per 4 KB), one request per 1 MB page at least.
    const bytes = items.reduce((n, i) => n + itemSize(i.pk, i.sk, i.item), 0);
    this.reads += Math.max(1, Math.ceil(bytes / (1024 * 1024)));
    this.readUnits += Math.max(1, Math.ceil(bytes / 4096));
    return items;
  }

  async delete(pk: string, sk: string): Promise<void> {
    await this.inner.delete(pk, sk);
    this.wrote(pk, sk, undefined);
  }
}
