import { z } from 'zod';
import type { BlobStore } from '../ports/blob-store';
import type { MetadataStore, MetaItem } from '../ports/metadata-store';
import { parseManifest, serializeManifest } from './manifest';
import type { CheckpointHistoryEntry, CheckpointManifest } from './types';

/**
 * Where finalized checkpoints are persisted. `saveCompleted` must be durable before the
 * `notifyComplete` effects that follow the `checkpointFinalized` effect are sent.
 */
export interface CheckpointCatalog {
  /** A completed checkpoint: its manifest, its history entry, then the latest pointer (the commit point). */
  saveCompleted(manifest: CheckpointManifest, history: CheckpointHistoryEntry, retained: readonly number[]): Promise<void>;
  /** A checkpoint that failed as a whole: its history entry. */
  saveFailed(history: CheckpointHistoryEntry): Promise<void>;
  /** The latest completed checkpoint, or undefined when there is none. */
  loadLatest(): Promise<CheckpointManifest | undefined>;
  /** The retained completed checkpoints, oldest first (to rebuild a coordinator). */
  loadRetained(): Promise<CheckpointManifest[]>;
  /** Every history entry, oldest first. */
  loadHistory(): Promise<CheckpointHistoryEntry[]>;
  /** Deletes the manifests of checkpoints no longer retained. */
  deleteManifests(checkpointIds: readonly number[]): Promise<void>;
}

export class StaleCheckpointError extends Error {
  override name = 'StaleCheckpointError';
}

/** Most failed-region records stored in one history item (DynamoDB items are at most 400 KB). */
export const MAX_FAILED_REGIONS_PER_ITEM = 200;
const MAX_MESSAGE_CHARS = 300;

export const checkpointPk = (jobId: string): string => `JOB#${jobId}`;
export const checkpointSk = (id: number): string => `CKPT#${String(id).padStart(12, '0')}`;
export const LATEST_SK = 'CKPT_LATEST';
export const manifestKey = (jobId: string, id: number): string => `checkpoints/${jobId}/${id}/manifest.json`;

const failedRegionSchema = z.object({
  regionId: z.string(),
  reason: z.enum(['declined', 'task-failed', 'timeout', 'unavailable', 'no-live-source']),
  message: z.string(),
  subtask: z.string().optional(),
  fallback: z.number().nullable(),
});
const historySchema = z.object({
  checkpointId: z.number(),
  handle: z.enum(['global', 'regional']),
  triggerTime: z.number(),
  endTime: z.number(),
  durationMs: z.number(),
  status: z.enum(['completed', 'failed']),
  reason: z
    .enum(['declined', 'task-failed', 'timeout', 'unavailable', 'no-live-source', 'too-many-failed-regions', 'too-many-consecutive-failures'])
    .optional(),
  message: z.string().optional(),
  regionsTotal: z.number(),
  participating: z.number(),
  completedRegions: z.number(),
  failedRegionCount: z.number(),
  failedRegions: z.array(failedRegionSchema),
  bytesWritten: z.number(),
  bytesKept: z.number(),
  // Absent in items written before counters were persisted.
  consecutiveFailures: z.record(z.string(), z.number().int().nonnegative()).optional(),
});
const pointerSchema = z.object({ checkpointId: z.number(), manifestKey: z.string(), retained: z.array(z.number()) });

function clip(s: string): string {
  return s.length > MAX_MESSAGE_CHARS ? `${s.slice(0, MAX_MESSAGE_CHARS - 1)}…` : s;
}

export function historyToItem(entry: CheckpointHistoryEntry, manifest?: string): MetaItem {
  const item: MetaItem = {
    checkpointId: entry.checkpointId,
    handle: entry.handle,
    triggerTime: entry.triggerTime,
    endTime: entry.endTime,
    durationMs: entry.durationMs,
    status: entry.outcome.status,
    regionsTotal: entry.regions.total,
    participating: entry.regions.participating,
    completedRegions: entry.regions.completed,
    failedRegionCount: entry.regions.failed,
    failedRegions: entry.failedRegions.slice(0, MAX_FAILED_REGIONS_PER_ITEM).map((f) => {
      const o: MetaItem = { regionId: f.regionId, reason: f.reason, message: clip(f.message), fallback: f.fallback };
      if (f.subtask !== undefined) o.subtask = f.subtask;
      return o;
    }),
    bytesWritten: entry.bytesWritten,
    bytesKept: entry.bytesKept,
  };
  if (entry.outcome.status === 'failed') {
    item.reason = entry.outcome.reason;
    item.message = clip(entry.outcome.message);
  }
  // All of them, never capped like failedRegions: the limit needs every count. At most one number
  // per region (5000 regions with 16-character ids: ~100 KB).
  if (entry.consecutiveFailures !== undefined) item.consecutiveFailures = { ...entry.consecutiveFailures };
  if (manifest !== undefined) item.manifestKey = manifest;
  return item;
}

/** The history entry back from an item (failed regions beyond the stored ones are not listed). */
export function itemToHistory(item: MetaItem): CheckpointHistoryEntry {
  const h = historySchema.parse(item);
  return {
    checkpointId: h.checkpointId,
    handle: h.handle,
    triggerTime: h.triggerTime,
    endTime: h.endTime,
    durationMs: h.durationMs,
    outcome: h.status === 'completed' ? { status: 'completed' } : { status: 'failed', reason: h.reason!, message: h.message ?? '' },
    regions: { total: h.regionsTotal, participating: h.participating, completed: h.completedRegions, failed: h.failedRegionCount },
    failedRegions: h.failedRegions.map((f) => ({ ...f })),
    bytesWritten: h.bytesWritten,
    bytesKept: h.bytesKept,
    ...(h.consecutiveFailures !== undefined ? { consecutiveFailures: h.consecutiveFailures } : {}),
  };
}

/**
 * The catalog over the ports: DynamoDB item `pk=JOB#<jobId>, sk=CKPT#<12-digit id>` per finalized
 * checkpoint (its history entry, plus `manifestKey` when it completed), S3 object
 * `checkpoints/<jobId>/<id>/manifest.json` per completed checkpoint, and a pointer item
 * `sk=CKPT_LATEST` (latest id, its manifest key, retained ids) written last, conditionally on the
 * id only going up, so a stale coordinator cannot move it back.
 *
 * Requests: completed checkpoint 1 S3 PUT + 2 DynamoDB writes (3 for the job's first one);
 * failed checkpoint 1 DynamoDB write; retiring manifests 1 S3 delete per 1000.
 */
export class PortCheckpointCatalog implements CheckpointCatalog {
  constructor(
    readonly jobId: string,
    private readonly metadata: MetadataStore,
    private readonly blobs: BlobStore,
  ) {}

  async saveCompleted(manifest: CheckpointManifest, history: CheckpointHistoryEntry, retained: readonly number[]): Promise<void> {
    if (manifest.jobId !== this.jobId) throw new Error(`manifest of job ${manifest.jobId} given to the catalog of job ${this.jobId}`);
    const key = manifestKey(this.jobId, manifest.checkpointId);
    await this.blobs.put(key, serializeManifest(manifest));
    const pk = checkpointPk(this.jobId);
    await this.metadata.put(pk, checkpointSk(manifest.checkpointId), historyToItem(history, key));
    const pointer: MetaItem = { checkpointId: manifest.checkpointId, manifestKey: key, retained: [...retained] };
    // DynamoDB: a comparison on a missing attribute is false, so the first pointer needs its own condition.
    if (await this.metadata.put(pk, LATEST_SK, pointer, [{ attr: 'checkpointId', op: '<', value: manifest.checkpointId }])) return;
    if (await this.metadata.put(pk, LATEST_SK, pointer, [{ attr: 'checkpointId', op: 'notExists' }])) return;
    throw new StaleCheckpointError(`checkpoint ${manifest.checkpointId} of job ${this.jobId} is not newer than the latest one in the catalog`);
  }

  async saveFailed(history: CheckpointHistoryEntry): Promise<void> {
    await this.metadata.put(checkpointPk(this.jobId), checkpointSk(history.checkpointId), historyToItem(history));
  }

  private async pointer(): Promise<z.infer<typeof pointerSchema> | undefined> {
    const item = await this.metadata.get(checkpointPk(this.jobId), LATEST_SK);
    return item === undefined ? undefined : pointerSchema.parse(item);
  }

  private async manifestAt(key: string): Promise<CheckpointManifest> {
    const body = await this.blobs.get(key);
    if (body === undefined) throw new Error(`manifest ${key} is missing from ${this.blobs.location}`);
    return parseManifest(new TextDecoder().decode(body));
  }

  async loadLatest(): Promise<CheckpointManifest | undefined> {
    const p = await this.pointer();
    return p === undefined ? undefined : this.manifestAt(p.manifestKey);
  }

  async loadRetained(): Promise<CheckpointManifest[]> {
    const p = await this.pointer();
    if (p === undefined) return [];
    const ids = [...new Set([...p.retained, p.checkpointId])].sort((a, b) => a - b);
    return Promise.all(ids.map((id) => this.manifestAt(manifestKey(this.jobId, id))));
  }

  async loadHistory(): Promise<CheckpointHistoryEntry[]> {
    const items = await this.metadata.query(checkpointPk(this.jobId), 'CKPT#');
    return items.map((i) => itemToHistory(i.item));
  }

  async deleteManifests(checkpointIds: readonly number[]): Promise<void> {
    if (checkpointIds.length === 0) return;
    await this.blobs.delete(checkpointIds.map((id) => manifestKey(this.jobId, id)));
  }
}
