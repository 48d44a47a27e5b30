import { z } from 'zod';
import { MANIFEST_FORMAT, type CheckpointManifest, type ManifestRegion, type SnapshotHandle, type SubtaskId } from './types';

const handleSchema = z.object({ key: z.string().min(1), bytes: z.number().nonnegative() });
const regionSchema = z.object({
  regionId: z.string().min(1),
  restoreFrom: z.number().int().positive().nullable(),
  subtasks: z.array(z.object({ subtask: z.string().min(1), state: z.array(handleSchema) })),
  finished: z.array(z.string().min(1)),
});
const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  jobId: z.string().min(1),
  checkpointId: z.number().int().positive(),
  handle: z.enum(['global', 'regional']),
  triggerTime: z.number(),
  completedTime: z.number(),
  regions: z.array(regionSchema),
});

export class ManifestError extends Error {
  override name = 'ManifestError';
}

export function serializeManifest(manifest: CheckpointManifest): string {
  return JSON.stringify(manifest);
}

/** Parses and checks a manifest read back from storage. */
export function parseManifest(text: string): CheckpointManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(`manifest is not JSON: ${(e as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw new ManifestError(`not a checkpoint manifest: ${parsed.error.message}`);
  const m = parsed.data;
  for (const r of m.regions) {
    if (r.restoreFrom !== null && r.restoreFrom > m.checkpointId) {
      throw new ManifestError(`region ${r.regionId} restores from ${r.restoreFrom}, after the manifest's checkpoint ${m.checkpointId}`);
    }
    if (r.restoreFrom === null && (r.subtasks.length > 0 || r.finished.length > 0)) {
      throw new ManifestError(`region ${r.regionId} has no restore point but lists snapshots`);
    }
  }
  return m;
}

/** What recovery of one region needs: every subtask restores from the same checkpoint. */
export interface RegionRestore {
  regionId: string;
  /** null: the region never completed a checkpoint; start it from scratch. */
  checkpointId: number | null;
  state: ReadonlyMap<SubtaskId, readonly SnapshotHandle[]>;
  /** Subtasks that had finished at that checkpoint: do not restart them. */
  finished: ReadonlySet<SubtaskId>;
}

export function regionRestore(manifest: CheckpointManifest, regionId: string): RegionRestore {
  const entry = manifest.regions.find((r) => r.regionId === regionId);
  if (entry === undefined) throw new ManifestError(`checkpoint ${manifest.checkpointId} has no region '${regionId}'`);
  return restoreOf(entry);
}

function restoreOf(entry: ManifestRegion): RegionRestore {
  return {
    regionId: entry.regionId,
    checkpointId: entry.restoreFrom,
    state: new Map(entry.subtasks.map((s) => [s.subtask, s.state])),
    finished: new Set(entry.finished),
  };
}

/** Every snapshot key a manifest references. */
export function manifestKeys(manifest: CheckpointManifest): string[] {
  const keys: string[] = [];
  for (const r of manifest.regions) for (const s of r.subtasks) for (const h of s.state) keys.push(h.key);
  return keys;
}
