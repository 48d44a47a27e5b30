import {
  CheckpointCoordinator,
  MANIFEST_FORMAT,
  type CheckpointConfig,
  type CheckpointEffect,
  type CheckpointManifest,
  type CheckpointRegion,
  type ManifestRegion,
  type SnapshotHandle,
} from '../../../lib/checkpoint';

/** Regions `r0..r{n-1}`; region i has sizes[i] subtasks `t<i>#<j>`; the first of each is its source. */
export function regions(sizes: readonly number[]): { regions: CheckpointRegion[]; sources: string[] } {
  const regions = sizes.map((n, i) => ({ id: `r${i}`, subtasks: Array.from({ length: n }, (_, j) => `t${i}#${j}`) }));
  return { regions, sources: regions.map((r) => r.subtasks[0]!) };
}

export function coordinator(sizes: readonly number[], config: Partial<CheckpointConfig> = {}, finished: string[] = []): CheckpointCoordinator {
  const t = regions(sizes);
  return new CheckpointCoordinator({
    config: { jobId: 'job', handle: 'regional', timeoutMs: 1000, ...config },
    topology: { ...t, finished },
  });
}

export const snap = (subtask: string, id: number, bytes = 10): SnapshotHandle[] => [{ key: `s/${id}/${subtask}`, bytes }];

export function ofType<T extends CheckpointEffect['type']>(effects: readonly CheckpointEffect[], type: T): Extract<CheckpointEffect, { type: T }>[] {
  return effects.filter((e): e is Extract<CheckpointEffect, { type: T }> => e.type === type);
}

/** Acknowledges N for every subtask of the listed regions (default all), returning all effects. */
export function ackAll(c: CheckpointCoordinator, id: number, now: number, only?: readonly string[]): CheckpointEffect[] {
  const out: CheckpointEffect[] = [];
  c.topology.regionIds.forEach((rid, r) => {
    if (only && !only.includes(rid)) return;
    for (const s of c.topology.regionSubtasks[r]!) out.push(...c.acknowledge(s, id, snap(s, id), now));
  });
  return out;
}

/** A manifest from restore points per region (region i has one subtask `s<i>`). */
export function manifest(id: number, restore: (number | null)[]): CheckpointManifest {
  const regions: ManifestRegion[] = restore.map((c, i) => ({
    regionId: `r${i}`,
    restoreFrom: c,
    subtasks: c === null ? [] : [{ subtask: `s${i}`, state: [{ key: `k/${c}/s${i}`, bytes: 1 }] }],
    finished: [],
  }));
  return { format: MANIFEST_FORMAT, jobId: 'job', checkpointId: id, handle: 'regional', triggerTime: id, completedTime: id, regions };
}
