import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { BlobStore } from '../ports/blob-store';
import type { MetadataStore, MetaItem } from '../ports/metadata-store';
import { HISTORY_TTL_SECONDS, TTL_ATTRIBUTE, catalogPk, expiresAt } from '../ports/metadata-keys';
import { parseManifest, serializeManifest } from './manifest';
import type { CheckpointHistoryEntry, CheckpointManifest } from './types';

/**
 * Where finalized checkpoints are persisted. `saveCompleted` must be durable before the
 * `notifyComplete` effects that follow the `checkpointFinalized` effect are sent.
 *
 * Every checkpoint id is decided once: the first `saveCompleted` or `saveFailed` of N wins, and any
 * later one (a retried or replayed step, a stale coordinator) gets a `CheckpointDecidedError`
 * carrying the decision that stands, and changes nothing.
 */
export interface CheckpointCatalog {
  /** A completed checkpoint: its manifest, its decision (history entry), then the latest pointer. */
  saveCompleted(manifest: CheckpointManifest, history: CheckpointHistoryEntry, retained: readonly number[]): Promise<void>;
  /** A checkpoint that failed as a whole: its decision (history entry). */
  saveFailed(history: CheckpointHistoryEntry): Promise<void>;
  /** The latest completed checkpoint, or undefined when there is none. */
  loadLatest(): Promise<CheckpointManifest | undefined>;
  /** The retained completed checkpoints, oldest first (to rebuild a coordinator). */
  loadRetained(): Promise<CheckpointManifest[]>;
  /** The newest `limit` history entries (default HISTORY_LIMIT), oldest first. */
  loadHistory(limit?: number): Promise<CheckpointHistoryEntry[]>;
  /** Deletes the manifests of checkpoints no longer retained. */
  deleteManifests(checkpointIds: readonly number[]): Promise<void>;
}

export class StaleCheckpointError extends Error {
  override name = 'StaleCheckpointError';
}

/** How checkpoint N was decided, as stored: what a retried step converges to. */
export interface CheckpointDecision {
  checkpointId: number;
  history: CheckpointHistoryEntry;
  /** Completed only: the manifest object the decision names. */
  manifestKey?: string;
  /** Completed only: the checkpoints retained once N was added, with their manifest keys, oldest first. */
  retained?: { checkpointId: number; manifestKey: string }[];
  /** Token of the writer that decided it. */
  writer?: string;
}

/** N was already decided by another writer (or an earlier run of this step): `decision` stands. */
export class CheckpointDecidedError extends StaleCheckpointError {
  override name = 'CheckpointDecidedError';
  constructor(readonly decision: CheckpointDecision) {
    super(`checkpoint ${decision.checkpointId} was already decided (${decision.history.outcome.status}) by another writer`);
  }
}

/**
 * History entries read at most (the newest): decisions expire a week after they were made
 * (HISTORY_TTL_SECONDS), and nobody reads the whole history of a long-running job.
 */
export const HISTORY_LIMIT = 100;

/** Most failed-region records stored in one history item (DynamoDB items are at most 400 KB). */
export const MAX_FAILED_REGIONS_PER_ITEM = 200;
const MAX_MESSAGE_CHARS = 300;

/** The catalog's partition (see lib/ports/metadata-keys.ts). */
export const checkpointPk = catalogPk;
export const checkpointSk = (id: number): string => `CKPT#${String(id).padStart(12, '0')}`;
export const LATEST_SK = 'CKPT_LATEST';

/**
 * When the job's latest completed checkpoint was decided (its history entry's end time), or
 * undefined before the first: two reads, for the supervisor's checkpoint-age metric.
 */
export async function lastCompletedAt(metadata: MetadataStore, jobId: string): Promise<number | undefined> {
  const pointer = await metadata.get(catalogPk(jobId), LATEST_SK);
  if (pointer === undefined) return undefined;
  const entry = await metadata.get(catalogPk(jobId), checkpointSk(Number(pointer.checkpointId)));
  return typeof entry?.endTime === 'number' ? entry.endTime : undefined;
}
/** Where manifests of catalogs before writer tokens were (still read for their pointers). */
export const manifestKey = (jobId: string, id: number): string => `checkpoints/${jobId}/${id}/manifest.json`;
/** Each writer of N puts its manifest under its own key, so none can replace another's. */
export const writerManifestKey = (jobId: string, id: number, writer: string): string => `checkpoints/${jobId}/${id}/manifest-${writer}.json`;

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
    .enum(['declined', 'task-failed', 'timeout', 'unavailable', 'no-live-source', 'too-many-failed-regions', 'too-many-consecutive-failures', 'job-ended'])
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
const pointerSchema = z.object({
  checkpointId: z.number(),
  manifestKey: z.string(),
  retained: z.array(z.number()),
  // Absent in pointers written before writer tokens: the retained manifests are at `manifestKey(job, id)`.
  retainedKeys: z.array(z.string()).optional(),
});
const decisionSchema = z.object({
  manifestKey: z.string().optional(),
  retained: z.array(z.number()).optional(),
  retainedKeys: z.array(z.string()).optional(),
  writer: z.string().optional(),
});

function clip(s: string): string {
  return s.length > MAX_MESSAGE_CHARS ? `${s.slice(0, MAX_MESSAGE_CHARS - 1)}…` : s;
}

export function historyToItem(entry: CheckpointHistoryEntry, manifest?: string, extra?: MetaItem): MetaItem {
  const item: MetaItem = {
    ...extra,
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
 * The catalog over the ports, per job (`pk=JOB#<jobId>`):
 * - S3 `checkpoints/<jobId>/<id>/manifest-<writer>.json`: a completed checkpoint's manifest, under
 *   a key of its own per writer (a random token per save), so no writer can replace another's.
 * - DynamoDB `sk=CKPT#<12-digit id>`: the decision on N (its history entry; when completed, the
 *   manifest key and the retained checkpoints with their keys). Created only if absent: exactly one
 *   writer decides N, and every retry or replay reads that decision back.
 * - DynamoDB `sk=CKPT_LATEST`: the latest completed checkpoint (id, manifest key, retained ids and
 *   keys), what recovery reads. Moved only forward (conditional on the id), after the decision; a
 *   decision whose pointer write was lost is rolled forward by `rollForward` (the next step does).
 *
 * Requests: completed checkpoint 1 S3 PUT + 2 DynamoDB writes (3 for the job's first one);
 * failed checkpoint 1 DynamoDB write; retiring manifests 1 S3 delete per 1000.
 */
export class PortCheckpointCatalog implements CheckpointCatalog {
  /** Manifest keys of the completed checkpoints this catalog saved or read. */
  private readonly keys = new Map<number, string>();

  constructor(
    readonly jobId: string,
    private readonly metadata: MetadataStore,
    private readonly blobs: BlobStore,
  ) {}

  async saveCompleted(manifest: CheckpointManifest, history: CheckpointHistoryEntry, retained: readonly number[]): Promise<void> {
    if (manifest.jobId !== this.jobId) throw new Error(`manifest of job ${manifest.jobId} given to the catalog of job ${this.jobId}`);
    const id = manifest.checkpointId;
    const writer = randomUUID();
    const key = writerManifestKey(this.jobId, id, writer);
    const retainedKeys: { checkpointId: number; manifestKey: string }[] = [];
    for (const r of [...retained].sort((a, b) => a - b)) retainedKeys.push({ checkpointId: r, manifestKey: r === id ? key : await this.keyOf(r) });
    await this.blobs.put(key, serializeManifest(manifest));
    const decision: CheckpointDecision = { checkpointId: id, history, manifestKey: key, retained: retainedKeys, writer };
    try {
      await this.decide(decision);
    } catch (e) {
      // Not ours: nothing references the object just written.
      if (e instanceof CheckpointDecidedError) await this.blobs.delete([key]);
      throw e;
    }
    this.keys.set(id, key);
    if (await this.rollForward(decision)) return;
    const p = await this.pointer();
    if (p?.checkpointId !== id || p.manifestKey !== key) {
      throw new StaleCheckpointError(`checkpoint ${id} of job ${this.jobId} is not newer than the latest one in the catalog (${p?.checkpointId})`);
    }
  }

  async saveFailed(history: CheckpointHistoryEntry): Promise<void> {
    await this.decide({ checkpointId: history.checkpointId, history, writer: randomUUID() });
  }

  /** Creates the decision item of N unless one exists; throws CheckpointDecidedError with the one that stands. */
  private async decide(d: CheckpointDecision): Promise<void> {
    const extra: MetaItem = { writer: d.writer! };
    if (d.retained) {
      extra.retained = d.retained.map((r) => r.checkpointId);
      extra.retainedKeys = d.retained.map((r) => r.manifestKey);
    }
    const item = historyToItem(d.history, d.manifestKey, extra);
    // Kept a week, then DynamoDB's TTL deletes it (the pointer, not the decision, is what recovery reads).
    item[TTL_ATTRIBUTE] = expiresAt(d.history.endTime, HISTORY_TTL_SECONDS);
    if (await this.metadata.put(checkpointPk(this.jobId), checkpointSk(d.checkpointId), item, [{ attr: 'checkpointId', op: 'notExists' }])) return;
    const standing = await this.loadDecision(d.checkpointId);
    // Our own write, retried after a lost response, stands.
    if (standing !== undefined && standing.writer === d.writer) return;
    if (standing === undefined) throw new Error(`checkpoint ${d.checkpointId} of job ${this.jobId}: its decision item was refused but is not there`);
    throw new CheckpointDecidedError(standing);
  }

  /** How N was decided, or undefined while it is not. */
  async loadDecision(checkpointId: number): Promise<CheckpointDecision | undefined> {
    const item = await this.metadata.get(checkpointPk(this.jobId), checkpointSk(checkpointId));
    return item === undefined ? undefined : itemToDecision(item, this.jobId);
  }

  /**
   * Moves the latest pointer to a completed decision if it is behind it; idempotent. False when the
   * pointer is already at or past N (nothing to do).
   */
  async rollForward(d: CheckpointDecision): Promise<boolean> {
    if (d.history.outcome.status !== 'completed' || d.manifestKey === undefined) return false;
    const retained = d.retained ?? [{ checkpointId: d.checkpointId, manifestKey: d.manifestKey }];
    const pointer: MetaItem = {
      checkpointId: d.checkpointId,
      manifestKey: d.manifestKey,
      retained: retained.map((r) => r.checkpointId),
      retainedKeys: retained.map((r) => r.manifestKey),
    };
    for (const r of retained) this.keys.set(r.checkpointId, r.manifestKey);
    const pk = checkpointPk(this.jobId);
    // DynamoDB: a comparison on a missing attribute is false, so the first pointer needs its own condition.
    if (await this.metadata.put(pk, LATEST_SK, pointer, [{ attr: 'checkpointId', op: '<', value: d.checkpointId }])) return true;
    if (await this.metadata.put(pk, LATEST_SK, pointer, [{ attr: 'checkpointId', op: 'notExists' }])) return true;
    return false;
  }

  /**
   * Rolls the pointer forward to the newest completed decision after it (one whose pointer write
   * was lost: the writer died between the two).
   */
  async repair(): Promise<void> {
    const latest = (await this.pointer())?.checkpointId ?? 0;
    const items = await this.metadata.query(checkpointPk(this.jobId), 'CKPT#', { newestFirst: true, limit: HISTORY_LIMIT });
    for (let i = 0; i < items.length; i++) {
      const d = itemToDecision(items[i]!.item, this.jobId);
      if (d.checkpointId <= latest) return;
      if (d.history.outcome.status === 'completed') {
        await this.rollForward(d);
        return;
      }
    }
  }

  private async pointer(): Promise<z.infer<typeof pointerSchema> | undefined> {
    const item = await this.metadata.get(checkpointPk(this.jobId), LATEST_SK);
    return item === undefined ? undefined : pointerSchema.parse(item);
  }

  /** The manifest key of a retained checkpoint: known here, or from the pointer, or from its decision. */
  private async keyOf(id: number): Promise<string> {
    const known = this.keys.get(id);
    if (known !== undefined) return known;
    const p = await this.pointer();
    if (p !== undefined) this.rememberPointer(p);
    const fromPointer = this.keys.get(id);
    if (fromPointer !== undefined) return fromPointer;
    const d = await this.loadDecision(id);
    return d?.manifestKey ?? manifestKey(this.jobId, id);
  }

  private rememberPointer(p: z.infer<typeof pointerSchema>): { checkpointId: number; key: string }[] {
    const ids = [...new Set([...p.retained, p.checkpointId])].sort((a, b) => a - b);
    const keyed = p.retainedKeys !== undefined && p.retainedKeys.length === p.retained.length ? new Map(p.retained.map((id, i) => [id, p.retainedKeys![i]!])) : undefined;
    const out = ids.map((id) => ({ checkpointId: id, key: id === p.checkpointId ? p.manifestKey : (keyed?.get(id) ?? manifestKey(this.jobId, id)) }));
    for (const r of out) this.keys.set(r.checkpointId, r.key);
    return out;
  }

  private async manifestAt(key: string): Promise<CheckpointManifest> {
    const body = await this.blobs.get(key);
    if (body === undefined) throw new Error(`manifest ${key} is missing from ${this.blobs.location}`);
    return parseManifest(new TextDecoder().decode(body));
  }

  /** The manifest a decision names (undefined: failed, or its manifest was retired since). */
  async manifestOf(d: CheckpointDecision): Promise<CheckpointManifest | undefined> {
    if (d.manifestKey === undefined) return undefined;
    const body = await this.blobs.get(d.manifestKey);
    return body === undefined ? undefined : parseManifest(new TextDecoder().decode(body));
  }

  async loadLatest(): Promise<CheckpointManifest | undefined> {
    const p = await this.pointer();
    if (p === undefined) return undefined;
    this.rememberPointer(p);
    return this.manifestAt(p.manifestKey);
  }

  async loadRetained(): Promise<CheckpointManifest[]> {
    const p = await this.pointer();
    if (p === undefined) return [];
    return Promise.all(this.rememberPointer(p).map((r) => this.manifestAt(r.key)));
  }

  async loadHistory(limit = HISTORY_LIMIT): Promise<CheckpointHistoryEntry[]> {
    const items = await this.metadata.query(checkpointPk(this.jobId), 'CKPT#', { newestFirst: true, limit });
    return items.reverse().map((i) => itemToHistory(i.item));
  }

  async deleteManifests(checkpointIds: readonly number[]): Promise<void> {
    if (checkpointIds.length === 0) return;
    const keys: string[] = [];
    for (const id of checkpointIds) {
      keys.push(await this.keyOf(id));
      this.keys.delete(id);
    }
    await this.blobs.delete(keys);
  }
}

function itemToDecision(item: MetaItem, jobId: string): CheckpointDecision {
  const history = itemToHistory(item);
  const d = decisionSchema.parse(item);
  const out: CheckpointDecision = { checkpointId: history.checkpointId, history };
  if (d.writer !== undefined) out.writer = d.writer;
  if (d.manifestKey !== undefined) {
    out.manifestKey = d.manifestKey;
    const ids = d.retained ?? [history.checkpointId];
    const keys = d.retainedKeys;
    out.retained = ids.map((id, i) => ({ checkpointId: id, manifestKey: id === history.checkpointId ? d.manifestKey! : (keys?.[i] ?? manifestKey(jobId, id)) }));
  }
  return out;
}
