/**
 * A BlobStore that counts the PUTs (and COPYs) that go through it per kind of object, from its
 * key: `checkpoints/<job>/<N>/<subtask>.a0.json` → `checkpoints/<N>/<object>`, a union object
 * → `checkpoints/<N>/union/...`, a manifest → `checkpoints/<N>/manifest`. It forwards every
 * call unchanged, so a benchmark can wrap the real adapter with it.
 */
import type { BlobInfo, BlobStore, ListOptions } from '../../lib/ports/blob-store';
import type { KindCount, KindCounts } from './metadata-observer';

/** The kind of an object, from its key (job ids, checkpoint numbers and subtask names left out). */
export function blobKind(key: string): string {
  const parts = key.split('/');
  const [top] = parts;
  if (top === 'checkpoints') {
    const rest = parts.slice(3);
    if (rest[0] === 'union') return 'checkpoints/<N>/union/<task>/<index>';
    const file = rest.join('/');
    if (/^manifest(-.*)?\.json$/.test(file)) return 'checkpoints/<N>/manifest';
    return 'checkpoints/<N>/<subtask snapshot>';
  }
  return `${top}/...`;
}

export class ObservedBlobStore implements BlobStore {
  private readonly byKind = new Map<string, KindCount>();

  constructor(readonly inner: BlobStore) {}

  get location(): string {
    return this.inner.location;
  }

  private wrote(key: string): void {
    const kind = blobKind(key);
    const n = this.byKind.get(kind) ?? { writes: 0, units: 0 };
    n.writes++;
    n.units++;
    this.byKind.set(kind, n);
  }

  /** A copy of the PUT counts per kind so far (`units` = billed write requests = `writes`). */
  writesByKind(): KindCounts {
    return Object.fromEntries([...this.byKind].map(([k, v]) => [k, { ...v }]));
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    await this.inner.put(key, body);
    this.wrote(key);
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.inner.get(key);
  }

  getRange(key: string, start: number, endExclusive: number): Promise<Uint8Array> {
    return this.inner.getRange(key, start, endExclusive);
  }

  head(key: string): Promise<BlobInfo | undefined> {
    return this.inner.head(key);
  }

  /** A LIST is billed as a write request too, per page (counted under `LIST <kind>`). */
  async list(prefix: string, options: ListOptions = {}): Promise<BlobInfo[]> {
    let pages = 0;
    const out = await this.inner.list(prefix, { until: (page) => (pages++, options.until?.(page) ?? false) });
    const kind = `LIST ${blobKind(prefix)}`;
    const n = this.byKind.get(kind) ?? { writes: 0, units: 0 };
    n.writes += Math.max(1, pages);
    n.units += Math.max(1, pages);
    this.byKind.set(kind, n);
    return out;
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    await this.inner.copy(fromKey, toKey);
    this.wrote(toKey);
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.inner.delete(keys);
  }
}
