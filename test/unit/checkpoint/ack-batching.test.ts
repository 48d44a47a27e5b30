/**
 * A task unit's acknowledgements are written in batches (CheckpointIO with `AckBatching`): one
 * DynamoDB item per unit and linger instead of one per subtask, read back by the coordinator's
 * CheckpointIO.acks record by record, each with its subtask and attempt.
 */
import { describe, expect, it } from 'vitest';
import { CheckpointIO, ackSk, packAcks, type AckRecord } from '../../../lib/runtime/checkpoint-io';
import { MemoryMetadataStore } from '../../../lib/memory/metadata-store';
import { MemoryBlobStore } from '../../../lib/memory/blob-store';
import { ackPk } from '../../../lib/ports/metadata-keys';
import { ObservedMetadataStore } from '../../../bench/lib/metadata-observer';

const handle = (subtask: string, id: number, attempt: number) => ({ key: `checkpoints/j/${id}/${subtask}.a${attempt}.json`, bytes: 100 });
const bySubtask = (acks: AckRecord[]) => [...acks].sort((a, b) => (a.subtask < b.subtask ? -1 : a.subtask > b.subtask ? 1 : 0));

describe('acknowledgements batched per task unit', () => {
  it("a unit's subtasks that acknowledge within the linger cost one write, and the coordinator reads every record", async () => {
    const metadata = new ObservedMetadataStore(new MemoryMetadataStore());
    const blobs = new MemoryBlobStore();
    const unit = new CheckpointIO('j', blobs, metadata, 2, 4, 0, { unitId: 'unit-7', lingerMs: 20 });
    const subtasks = Array.from({ length: 100 }, (_, i) => `join#${i}`);
    await Promise.all([
      ...subtasks.slice(0, 99).map((s) => unit.acknowledge(5, s, [handle(s, 5, 2)])),
      unit.decline(5, 'join#99', 'gave up aligning'),
    ]);
    expect(metadata.writes).toBe(1);
    // Billed by size: ~100 records of ~150 B (15 KB as a list) packed into one item of a few KB, not 100 items of one unit each.
    expect(metadata.writeUnits).toBeLessThanOrEqual(3);

    const acks = bySubtask(await new CheckpointIO('j', blobs, metadata, 0, 4).acks(5));
    expect(acks).toHaveLength(100);
    expect(acks.every((a) => a.attempt === 2 && a.checkpointId === 5)).toBe(true);
    expect(acks.find((a) => a.subtask === 'join#3')!.state).toEqual([handle('join#3', 5, 2)]);
    expect(acks.find((a) => a.subtask === 'join#99')).toMatchObject({ declined: 'gave up aligning', state: [] });
    // Another checkpoint's partition holds none of them.
    expect(await new CheckpointIO('j', blobs, metadata, 0, 4).acks(6)).toEqual([]);
  });

  it('acknowledgements after the batch was written go in the next one; each caller waits for its own write', async () => {
    const metadata = new ObservedMetadataStore(new MemoryMetadataStore());
    const unit = new CheckpointIO('j', new MemoryBlobStore(), metadata, 0, 1, 0, { unitId: 'unit-1', lingerMs: 10 });
    await unit.acknowledge(1, 'src#0', [handle('src#0', 1, 0)]);
    expect(metadata.writes).toBe(1);
    await Promise.all([unit.acknowledge(1, 'join#0', []), unit.acknowledge(2, 'src#0', [])]);
    // Checkpoints 1 and 2 are separate partitions: one write each.
    expect(metadata.writes).toBe(3);
    expect((await unit.acks(1)).map((a) => a.subtask).sort()).toEqual(['join#0', 'src#0']);
    expect((await unit.acks(2)).map((a) => a.subtask)).toEqual(['src#0']);
  });

  it('a batch too large for one item is split, every item under 400 KB', async () => {
    const inner = new MemoryMetadataStore();
    const metadata = new ObservedMetadataStore(inner);
    const unit = new CheckpointIO('j', new MemoryBlobStore(), metadata, 0, 1, 0, { unitId: 'big', lingerMs: 10 });
    const bigState = (s: string) => Array.from({ length: 20 }, (_, k) => ({ key: `checkpoints/j/3/union/task/${s}-${k}.a0.json`, bytes: 1 }));
    const subtasks = Array.from({ length: 1000 }, (_, i) => `t#${i}`);
    await Promise.all(subtasks.map((s) => unit.acknowledge(3, s, bigState(s))));
    expect(metadata.writes).toBeGreaterThan(1);
    expect(metadata.largestItem!.bytes).toBeLessThan(400 * 1024);
    expect(await unit.acks(3)).toHaveLength(1000);
  });

  it('a subtask restarted inside its unit acknowledges again: its latest record counts; other attempts stay apart', async () => {
    const metadata = new MemoryMetadataStore();
    const blobs = new MemoryBlobStore();
    const unit = new CheckpointIO('j', blobs, metadata, 1, 2, 0, { unitId: 'unit-0', lingerMs: 10 });
    await unit.acknowledge(4, 'join#0', [handle('join#0', 4, 1)]);
    const restarted = unit.forIncarnation(1);
    await restarted.acknowledge(4, 'join#0', [{ key: 'checkpoints/j/4/join#0.a1.i1.json', bytes: 7 }]);
    // The previous attempt's acknowledgement (a single item, as readers before batching wrote) stays its own.
    const old: AckRecord = { subtask: 'join#0', checkpointId: 4, state: [handle('join#0', 4, 0)], at: 1, attempt: 0 };
    await metadata.put(ackPk('j', 4, 0), ackSk('join#0', 0), old as unknown as Record<string, never>);
    const acks = await new CheckpointIO('j', blobs, metadata, 0, 2).acks(4);
    expect(acks).toHaveLength(2);
    expect(acks.find((a) => a.attempt === 1)!.state).toEqual([{ key: 'checkpoints/j/4/join#0.a1.i1.json', bytes: 7 }]);
    expect(acks.find((a) => a.attempt === 0)!.state).toEqual([handle('join#0', 4, 0)]);
  });

  it('reads batches written as a plain list (before they were packed), and names a batch that does not decode', async () => {
    const metadata = new MemoryMetadataStore();
    const blobs = new MemoryBlobStore();
    const listed: AckRecord[] = [0, 1].map((i) => ({ subtask: `join#${i}`, checkpointId: 8, state: [handle(`join#${i}`, 8, 0)], at: 5, attempt: 0 }));
    await metadata.put(ackPk('j', 8, 0), 'unit-0#a0#old#0', { acks: listed as never, at: 5 });
    await metadata.put(ackPk('j', 8, 0), 'unit-1#a0#new#0', { packed: packAcks([{ subtask: 'join#2', checkpointId: 8, state: [], at: 6, attempt: 0 }]), count: 1, at: 6 });
    const reader = new CheckpointIO('j', blobs, metadata, 0, 1);
    expect((await reader.acks(8)).map((a) => a.subtask).sort()).toEqual(['join#0', 'join#1', 'join#2']);
    await metadata.put(ackPk('j', 8, 0), 'unit-2#a0#bad#0', { packed: 'not deflate', count: 3, at: 7 });
    await expect(reader.acks(8)).rejects.toThrow(/acknowledgement batch JOB#j#ACK#000000000008#0 \/ unit-2#a0#bad#0 cannot be read/);
  });

  it('a failed batch write fails every acknowledgement in it', async () => {
    const inner = new MemoryMetadataStore();
    const failing = Object.assign(Object.create(inner) as MemoryMetadataStore, { put: () => Promise.reject(new Error('throttled')) });
    const unit = new CheckpointIO('j', new MemoryBlobStore(), failing, 0, 1, 0, { unitId: 'u', lingerMs: 10 });
    const results = await Promise.allSettled([unit.acknowledge(1, 'a#0', []), unit.decline(1, 'a#1', 'no')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
