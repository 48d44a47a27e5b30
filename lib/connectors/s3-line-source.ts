/**
 * Reads line-delimited objects under an S3 prefix. Objects are split among subtasks by their
 * position in key order; the offset of an object is the byte after the last line read, so a
 * rewind re-reads from exactly there.
 */
import type { Json, RuntimeContext, SourceBatch, SourceFunction } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';

export interface S3LineSourceOptions {
  prefix: string;
  /** Bytes read per request. */
  chunkBytes?: number;
}

interface ObjectCursor {
  key: string;
  size: number;
  offset: number;
}

export class S3LineSource implements SourceFunction<string> {
  private objects: ObjectCursor[] = [];
  private restored = new Map<string, number>();
  private blobs!: BlobStore;
  /** Lines read but not yet emitted, with the object and byte offset where each starts. */
  private pending: { line: string; key: string; start: number }[] = [];

  constructor(private readonly options: S3LineSourceOptions) {}

  async open(ctx: RuntimeContext): Promise<void> {
    this.blobs = ctx.blobs;
    const all = await ctx.blobs.list(this.options.prefix);
    if (all.length === 0) throw new Error(`S3 source: no objects under '${this.options.prefix}' in ${ctx.blobs.location}`);
    this.objects = all
      .filter((_, i) => i % ctx.parallelism === ctx.subtaskIndex)
      .map((o) => ({ key: o.key, size: o.size, offset: this.restored.get(o.key) ?? 0 }));
  }

  async poll(max: number): Promise<SourceBatch<string>> {
    while (this.pending.length < max) {
      const current = this.objects.find((o) => o.offset < o.size);
      if (!current) break;
      await this.readChunk(current);
    }
    const records = this.pending.splice(0, max).map((p) => p.line);
    const done = this.pending.length === 0 && this.objects.every((o) => o.offset >= o.size);
    return { records, done };
  }

  /** Reads whole lines from the object's offset; a partial last line waits for the next chunk. */
  private async readChunk(cursor: ObjectCursor): Promise<void> {
    const chunk = this.options.chunkBytes ?? 1 << 20;
    let end = Math.min(cursor.offset + chunk, cursor.size);
    for (;;) {
      const bytes = await this.blobs.getRange(cursor.key, cursor.offset, end);
      const lastNewline = bytes.lastIndexOf(10);
      if (lastNewline >= 0 || end >= cursor.size) {
        const usable = end >= cursor.size && lastNewline < bytes.length - 1 ? bytes.length : lastNewline + 1;
        let start = 0;
        while (start < usable) {
          const nl = bytes.indexOf(10, start);
          const stop = nl < 0 || nl >= usable ? usable : nl;
          if (stop > start) {
            const line = Buffer.from(bytes.subarray(start, stop)).toString('utf8');
            this.pending.push({ line, key: cursor.key, start: cursor.offset + start });
          }
          start = stop + 1;
        }
        cursor.offset += usable;
        return;
      }
      end = Math.min(end + chunk, cursor.size); // a line longer than one chunk
    }
  }

  snapshotOffsets(): Json {
    // Lines read but not yet emitted are read again after a restore.
    const firstPending = new Map<string, number>();
    for (const p of this.pending) if (!firstPending.has(p.key)) firstPending.set(p.key, p.start);
    return this.objects.map((o) => [o.key, firstPending.get(o.key) ?? o.offset]);
  }

  restoreOffsets(offsets: Json): void {
    this.restored = new Map(offsets as [string, number][]);
    this.pending = [];
    for (const o of this.objects) o.offset = this.restored.get(o.key) ?? 0;
  }
}
