/**
 * Blob store port (S3): state snapshots, checkpoint manifests, sink staging and output, S3 sources.
 * Keys are object keys inside the one configured bucket.
 */
export interface BlobInfo {
  key: string;
  size: number;
}

export interface ListOptions {
  /**
   * Called with each page of the listing (S3: up to 1000 keys, in key order) as it arrives; the
   * listing stops after a page for which it returns true, and returns what it has listed so far.
   */
  until?: (page: readonly BlobInfo[]) => boolean;
}

export interface BlobStore {
  /** The bucket (or equivalent) this store writes to, for messages and manifests. */
  readonly location: string;
  put(key: string, body: Uint8Array | string): Promise<void>;
  /** The whole object, or undefined when it does not exist. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Bytes [start, endExclusive) of an object (clamped to its size). */
  getRange(key: string, start: number, endExclusive: number): Promise<Uint8Array>;
  head(key: string): Promise<BlobInfo | undefined>;
  /** Every object under the prefix, in key order (up to the page `options.until` stops at). */
  list(prefix: string, options?: ListOptions): Promise<BlobInfo[]>;
  copy(fromKey: string, toKey: string): Promise<void>;
  /** Deletes these keys; missing ones are ignored. */
  delete(keys: readonly string[]): Promise<void>;
}
