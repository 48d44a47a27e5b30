import type { CheckpointManifest, ManifestRegion } from './types';

export interface Retired {
  /** Completed checkpoints no longer retained (their manifests can be deleted). */
  checkpointIds: number[];
  /** Snapshot keys no retained manifest references any more. */
  keys: string[];
}

/**
 * The completed checkpoints kept: the latest manifest and the ones before it, `retained` in all.
 *
 * A region's snapshot for checkpoint c is referenced by every manifest whose entry for that region
 * restores from c, and a region's restore point never goes back from one manifest to the next. So
 * when the oldest retained manifest D is dropped, its entry for region R is still referenced iff the
 * next retained manifest restores R from the same checkpoint: O(regions) per drop, no reference
 * counting. This relies on one assumption, stated in docs/checkpoints.md: a snapshot key belongs to
 * one (subtask, checkpoint) acknowledgement — keys are not shared between checkpoints.
 */
export class CompletedCheckpointStore {
  private readonly manifests: CheckpointManifest[] = [];

  constructor(
    readonly retained: number,
    initial: readonly CheckpointManifest[] = [],
  ) {
    if (!Number.isInteger(retained) || retained < 1) throw new Error(`retained must be an integer >= 1, got ${retained}`);
    const sorted = [...initial].sort((a, b) => a.checkpointId - b.checkpointId);
    for (const m of sorted.slice(Math.max(0, sorted.length - retained))) this.manifests.push(m);
  }

  latest(): CheckpointManifest | undefined {
    return this.manifests[this.manifests.length - 1];
  }

  /** Retained manifests, oldest first. */
  all(): readonly CheckpointManifest[] {
    return this.manifests;
  }

  /** Adds the newest completed checkpoint and returns what is no longer retained. */
  add(manifest: CheckpointManifest): Retired {
    const last = this.latest();
    if (last && manifest.checkpointId <= last.checkpointId) {
      throw new Error(`checkpoint ${manifest.checkpointId} is not newer than the latest completed one (${last.checkpointId})`);
    }
    this.manifests.push(manifest);
    const retired: Retired = { checkpointIds: [], keys: [] };
    while (this.manifests.length > this.retained) {
      const dropped = this.manifests.shift()!;
      retired.checkpointIds.push(dropped.checkpointId);
      unreferencedKeys(dropped, this.manifests[0]!, retired.keys);
    }
    return retired;
  }
}

/** Keys of `dropped` that `next` (the next retained manifest) does not reference, pushed into `into`. */
export function unreferencedKeys(dropped: CheckpointManifest, next: CheckpointManifest, into: string[]): void {
  let byId: Map<string, ManifestRegion> | undefined;
  const regions = dropped.regions;
  for (let i = 0; i < regions.length; i++) {
    const d = regions[i]!;
    if (d.restoreFrom === null) continue;
    let e: ManifestRegion | undefined = next.regions[i];
    if (e === undefined || e.regionId !== d.regionId) {
      byId ??= new Map(next.regions.map((x) => [x.regionId, x]));
      e = byId.get(d.regionId);
    }
    if (e !== undefined && e.restoreFrom === d.restoreFrom) continue;
    for (const s of d.subtasks) for (const h of s.state) into.push(h.key);
  }
}
