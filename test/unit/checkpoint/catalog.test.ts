import { describe, expect, it } from 'vitest';
import {
  CheckpointCoordinator,
  CheckpointPersistence,
  MAX_FAILED_REGIONS_PER_ITEM,
  PortCheckpointCatalog,
  StaleCheckpointError,
  CheckpointDecidedError,
  checkpointSk,
  historyEntry,
  historyToItem,
  itemToHistory,
  type CheckpointEffect,
  type CheckpointHistoryEntry,
} from '../../../lib/checkpoint';
import { MemoryBlobStore, MemoryMetadataStore } from '../../../lib/memory';
import { manifest, regions } from './helpers';

const history = (id: number, failed = false, failedRegions = 1): CheckpointHistoryEntry =>
  historyEntry({
    checkpointId: id,
    handle: 'regional',
    triggerTime: id * 10,
    endTime: id * 10 + 3,
    failure: failed ? { reason: 'too-many-consecutive-failures', message: 'r0 failed 3 in a row' } : undefined,
    regionsTotal: 2,
    participating: 2,
    completedRegions: 1,
    failedRegions: Array.from({ length: failedRegions }, (_, i) => ({ regionId: `r${i}`, reason: 'timeout' as const, message: 'slow', fallback: null })),
    bytesWritten: 2,
    bytesKept: failed ? 0 : 1,
  });

function ports() {
  const metadata = new MemoryMetadataStore();
  const blobs = new MemoryBlobStore();
  return { metadata, blobs, catalog: new PortCheckpointCatalog('job', metadata, blobs) };
}

describe('PortCheckpointCatalog', () => {
  it('writes the manifest to S3, the history item and the latest pointer to DynamoDB, and reads them back', async () => {
    const { metadata, blobs, catalog } = ports();
    expect(await catalog.loadLatest()).toBeUndefined();
    expect(await catalog.loadRetained()).toEqual([]);
    const m1 = manifest(1, [1, null]);
    await catalog.saveCompleted(m1, history(1), [1]);
    expect(blobs.requests).toBe(1);
    // 2 pointer lookups above, the history item, the pointer (`<` fails on a missing item), the pointer again (notExists).
    expect(metadata.requests).toBe(5);
    const m2 = manifest(2, [2, 2]);
    blobs.requests = 0;
    metadata.requests = 0;
    await catalog.saveCompleted(m2, history(2), [1, 2]);
    expect([blobs.requests, metadata.requests]).toEqual([1, 2]);
    // The manifest under its writer's own key, which the decision item names.
    const item = await metadata.get('JOB#job#CKPT', 'CKPT#000000000002');
    expect(item).toMatchObject({ status: 'completed', manifestKey: expect.stringMatching(/^checkpoints\/job\/2\/manifest-[0-9a-f-]{36}\.json$/) });
    expect(await blobs.head(item!.manifestKey as string)).toBeDefined();
    expect(await catalog.loadLatest()).toEqual(m2);
    expect((await catalog.loadRetained()).map((m) => m.checkpointId)).toEqual([1, 2]);
  });

  it('never moves the latest pointer back', async () => {
    const { catalog } = ports();
    await catalog.saveCompleted(manifest(5, [5]), history(5), [5]);
    await expect(catalog.saveCompleted(manifest(4, [4]), history(4), [4])).rejects.toThrow(StaleCheckpointError);
    expect((await catalog.loadLatest())!.checkpointId).toBe(5);
  });

  it('decides N once: a stale or retried writer of N cannot replace manifest N, the pointer or the history entry', async () => {
    const { metadata, blobs, catalog } = ports();
    const good = manifest(1, [1, 1]);
    await catalog.saveCompleted(good, history(1), [1]);
    const pointer = await metadata.get('JOB#job#CKPT', 'CKPT_LATEST');
    const entry = await metadata.get('JOB#job#CKPT', 'CKPT#000000000001');
    // Another coordinator decided N differently (r1 failed), from a catalog of its own.
    const stale = new PortCheckpointCatalog('job', metadata, blobs);
    const err = await stale.saveCompleted(manifest(1, [1, null]), history(1, false, 1), [1]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointDecidedError);
    expect(err).toBeInstanceOf(StaleCheckpointError);
    expect((err as CheckpointDecidedError).decision).toMatchObject({ checkpointId: 1, manifestKey: pointer!.manifestKey });
    await expect(stale.saveFailed(history(1, true))).rejects.toThrow(CheckpointDecidedError);
    // Nothing moved, and the stale writer's manifest object is gone again.
    expect(await metadata.get('JOB#job#CKPT', 'CKPT_LATEST')).toEqual(pointer);
    expect(await metadata.get('JOB#job#CKPT', 'CKPT#000000000001')).toEqual(entry);
    expect((await blobs.list('checkpoints/job/1/')).map((b) => b.key)).toEqual([pointer!.manifestKey]);
    expect(await stale.loadLatest()).toEqual(good);
  });

  it('rolls the pointer forward to a completed decision whose pointer write was lost, and never back', async () => {
    const { metadata, blobs, catalog } = ports();
    await catalog.saveCompleted(manifest(1, [1]), history(1), [1]);
    // The writer of 2 dies between its decision and the pointer.
    const put = metadata.put.bind(metadata);
    metadata.put = async (pk, sk, item, conditions) => (sk === 'CKPT_LATEST' ? false : put(pk, sk, item, conditions));
    await expect(catalog.saveCompleted(manifest(2, [2]), history(2), [1, 2])).rejects.toThrow(StaleCheckpointError);
    metadata.put = put;
    expect((await catalog.loadLatest())!.checkpointId).toBe(1);
    const fresh = new PortCheckpointCatalog('job', metadata, blobs);
    const decision = (await fresh.loadDecision(2))!;
    expect(decision).toMatchObject({ checkpointId: 2, retained: [{ checkpointId: 1 }, { checkpointId: 2 }] });
    expect(await fresh.rollForward(decision)).toBe(true);
    expect(await fresh.rollForward(decision)).toBe(false);
    expect((await fresh.loadRetained()).map((m) => m.checkpointId)).toEqual([1, 2]);
    expect(await fresh.rollForward((await fresh.loadDecision(1))!)).toBe(false);
    expect((await fresh.loadLatest())!.checkpointId).toBe(2);
  });

  it('keeps a history item per finalized checkpoint, in id order', async () => {
    const { catalog } = ports();
    await catalog.saveFailed(history(10, true));
    await catalog.saveCompleted(manifest(9, [9, 9]), history(9), [9]);
    const h = await catalog.loadHistory();
    expect(h.map((x) => [x.checkpointId, x.outcome.status])).toEqual([
      [9, 'completed'],
      [10, 'failed'],
    ]);
    expect(h[1]).toEqual(history(10, true));
    expect(checkpointSk(10)).toBe('CKPT#000000000010');
  });

  it('caps the failed regions stored in one item and keeps their count', () => {
    const entry = history(3, false, MAX_FAILED_REGIONS_PER_ITEM + 50);
    const back = itemToHistory(historyToItem(entry));
    expect(back.failedRegions).toHaveLength(MAX_FAILED_REGIONS_PER_ITEM);
    expect(back.regions.failed).toBe(MAX_FAILED_REGIONS_PER_ITEM + 50);
  });

  it('round-trips the consecutive-failure counters, in full even when the failed-region list is capped', async () => {
    const failedRegions = MAX_FAILED_REGIONS_PER_ITEM + 50;
    const counters = Object.fromEntries(Array.from({ length: failedRegions }, (_, i) => [`r${i}`, 1 + (i % 4)]));
    const entry: CheckpointHistoryEntry = { ...history(4, true, failedRegions), consecutiveFailures: counters };
    const item = historyToItem(entry);
    expect(itemToHistory(item).consecutiveFailures).toEqual(counters);
    const { catalog } = ports();
    await catalog.saveFailed(entry);
    await catalog.saveCompleted(manifest(5, [5, 5]), { ...history(5), consecutiveFailures: {} }, [5]);
    const [h4, h5] = await catalog.loadHistory();
    expect(h4!.consecutiveFailures).toEqual(counters);
    expect(h4!.failedRegions).toHaveLength(MAX_FAILED_REGIONS_PER_ITEM);
    expect(h5!.consecutiveFailures).toEqual({});
  });

  it('reads items written before counters were persisted, and refuses counts that are not whole numbers >= 0', () => {
    const old = historyToItem(history(6));
    expect(old).not.toHaveProperty('consecutiveFailures');
    expect(itemToHistory(old)).not.toHaveProperty('consecutiveFailures');
    expect(() => itemToHistory({ ...old, consecutiveFailures: { r0: -1 } })).toThrow();
    expect(() => itemToHistory({ ...old, consecutiveFailures: { r0: 'two' } })).toThrow();
  });

  it('keeps an item with every region counted well under the 400 KB DynamoDB limit', () => {
    const regions = 5000;
    const counters = Object.fromEntries(Array.from({ length: regions }, (_, i) => [`pipeline-${String(i).padStart(6, '0')}`, 99]));
    const item = historyToItem({ ...history(7, true, regions), consecutiveFailures: counters });
    expect(Buffer.byteLength(JSON.stringify(item))).toBeLessThan(300_000);
  });

  it('deletes retired manifests', async () => {
    const { blobs, catalog } = ports();
    await catalog.saveCompleted(manifest(1, [1]), history(1), [1]);
    expect(await blobs.list('checkpoints/job/1/')).toHaveLength(1);
    await catalog.deleteManifests([1]);
    expect(await blobs.list('checkpoints/job/1/')).toEqual([]);
  });
});

describe('CheckpointPersistence', () => {
  it('persists before returning, batches deletes, and flushes at each finalized checkpoint', async () => {
    const calls: string[] = [];
    const catalog = {
      saveCompleted: async (m: { checkpointId: number }) => void calls.push(`completed ${m.checkpointId}`),
      saveFailed: async (h: CheckpointHistoryEntry) => void calls.push(`failed ${h.checkpointId}`),
      deleteManifests: async (ids: readonly number[]) => void calls.push(`manifests ${ids.join(',')}`),
      loadLatest: async () => undefined,
      loadRetained: async () => [],
      loadHistory: async () => [],
    };
    const blobs = new MemoryBlobStore();
    const origDelete = blobs.delete.bind(blobs);
    blobs.delete = async (keys) => {
      calls.push(`delete ${keys.join(',')}`);
      return origDelete(keys);
    };
    const p = new CheckpointPersistence(catalog, blobs, { deleteBatchSize: 2 });
    const m = manifest(2, [2]);
    const effects: CheckpointEffect[] = [
      { type: 'discardSnapshots', checkpointId: 2, regionId: 'r1', keys: ['a'] },
      { type: 'checkpointFinalized', checkpointId: 2, outcome: 'completed', manifest: m, history: history(2), retained: [1, 2] },
      { type: 'retireCheckpoints', checkpointIds: [1], keys: ['b', 'c', 'd'] },
      { type: 'notifyComplete', checkpointId: 2, regionId: 'r0', subtasks: ['s0'] },
    ];
    await p.apply(effects);
    expect(calls).toEqual(['completed 2', 'manifests 1', 'delete a,b', 'delete c,d']);
    await p.apply([{ type: 'discardSnapshots', checkpointId: 3, regionId: null, keys: ['e'] }]);
    expect(p.pendingDeletes).toBe(1);
    await p.flush();
    expect(calls.at(-1)).toBe('delete e');
    expect(() => new CheckpointPersistence(catalog, blobs, { deleteBatchSize: 1001 })).toThrow(/deleteBatchSize/);
  });

  it('with the coordinator: storage ends up holding exactly the snapshots and manifests retained, and a new coordinator resumes from it', async () => {
    const { metadata, blobs, catalog } = ports();
    const t = regions([2, 1, 1]);
    const config = { jobId: 'job', handle: 'regional' as const, timeoutMs: 100, retained: 2 };
    const c = new CheckpointCoordinator({ config, topology: t });
    const persistence = new CheckpointPersistence(catalog, blobs);
    let now = 0;
    for (let id = 1; id <= 6; id++) {
      await persistence.apply(c.trigger(now));
      for (const r of t.regions) {
        for (const s of r.subtasks) {
          const key = `snap/${id}/${s}`;
          if (r.id === 'r1' && id % 2 === 0) {
            await persistence.apply(c.decline(s, id, 'nope', now + 1));
          } else {
            await blobs.put(key, 'x');
            await persistence.apply(c.acknowledge(s, id, [{ key, bytes: 1 }], now + 1));
          }
        }
      }
      now += 10;
    }
    await persistence.flush();
    const retained = await catalog.loadRetained();
    expect(retained.map((m) => m.checkpointId)).toEqual([5, 6]);
    const referenced = new Set(retained.flatMap((m) => m.regions.flatMap((r) => r.subtasks.flatMap((s) => s.state.map((h) => h.key)))));
    const stored = (await blobs.list('snap/')).map((b) => b.key);
    expect(stored.sort()).toEqual([...referenced].sort());
    expect((await blobs.list('checkpoints/job/')).map((b) => b.key.replace(/manifest-.*\.json$/, 'manifest-*.json'))).toEqual(['checkpoints/job/5/manifest-*.json', 'checkpoints/job/6/manifest-*.json']);
    expect((await catalog.loadHistory()).length).toBe(6);
    expect(metadata.requests).toBeGreaterThan(0);

    const resumed = new CheckpointCoordinator({ config, topology: t, restored: retained });
    expect(resumed.restorePoint('r1')).toBe(5);
    expect(resumed.restorePoint('r0')).toBe(6);
    expect(resumed.peekNextCheckpointId()).toBe(7);
  });
});
