/** In-memory BlobStore with S3's semantics (UTF-8 key order, clamped ranges, missing keys ignored on delete). */
import { SluiceAwsError } from '../aws/errors';
import type { BlobInfo, BlobStore, ListOptions } from '../ports/blob-store';
import { compareUtf8 } from '../ports/metadata-store';

const encoder = new TextEncoder();
/** Keys per page of a listing (ListObjectsV2's most). */
const LIST_PAGE = 1000;

export class MemoryBlobStore implements BlobStore {
  readonly location: string;
  /** Requests the S3 adapter would make for the same calls (list and delete per 1000 keys). */
  requests = 0;
  private readonly objects = new Map<string, Uint8Array>();

  constructor(name = 'sluice-memory') {
    this.location = `memory://${name}`;
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    this.requests++;
    // Copy: the caller may reuse its buffer.
    this.objects.set(key, typeof body === 'string' ? encoder.encode(body) : new Uint8Array(body));
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.requests++;
    return this.objects.get(key)?.slice();
  }

  async getRange(key: string, start: number, endExclusive: number): Promise<Uint8Array> {
    this.requests++;
    const body = this.objects.get(key);
    if (!body) throw new SluiceAwsError(`S3 object '${this.location}/${key}' does not exist`, 'aws', 's3');
    return body.slice(Math.max(0, start), Math.max(start, Math.min(endExclusive, body.length)));
  }

  async head(key: string): Promise<BlobInfo | undefined> {
    this.requests++;
    const body = this.objects.get(key);
    return body && { key, size: body.length };
  }

  async list(prefix: string, options: ListOptions = {}): Promise<BlobInfo[]> {
    const all: BlobInfo[] = [];
    for (const [key, body] of this.objects) if (key.startsWith(prefix)) all.push({ key, size: body.length });
    all.sort((a, b) => compareUtf8(a.key, b.key));
    // Pages of 1000 keys, as S3 lists them: a request each, up to the one `until` stops at.
    const out: BlobInfo[] = [];
    for (let from = 0; ; from += LIST_PAGE) {
      const page = all.slice(from, from + LIST_PAGE);
      this.requests++;
      out.push(...page);
      const stop = options.until?.(page) ?? false;
      if (stop || from + LIST_PAGE >= all.length) return out;
    }
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    this.requests++;
    const body = this.objects.get(fromKey);
    if (!body) throw new SluiceAwsError(`S3 object '${this.location}/${fromKey}' does not exist`, 'aws', 's3');
    this.objects.set(toKey, body); // stored bodies are never mutated, so sharing is safe
  }

  async delete(keys: readonly string[]): Promise<void> {
    this.requests += Math.ceil(keys.length / 1000);
    for (const key of keys) this.objects.delete(key);
  }
}
