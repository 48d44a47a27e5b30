/**
 * A restarted source asked for a replay from before its restored position reads it again
 * (lib/runtime/source-reread.ts). The case chaos seed 45375 (single-exact, demo) opens: a consumer
 * restored from checkpoint N, its source producer killed and restored from checkpoint N+1. The
 * records between the two positions were only in the dead source's in-flight log: the restarted
 * source answered "unreplayable" (the end event's `g`), and they were lost.
 *
 * Here: a source (deterministic, a map chained, a rebalance edge to two consumers) takes
 * checkpoints 1, 2 and 3; 2 completes (its log is trimmed there). Its unit dies. The new attempt
 * restores from checkpoint 2 (the manifest); a consumer restored from checkpoint 1 asks for its
 * channel from there. The replay must hold exactly the records the dead attempt sent at those
 * positions, from checkpoint 1's position on, with nothing left unreplayable.
 */
import { describe, expect, it } from 'vitest';
import type { Json, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore } from '../../lib/memory';
import { CheckpointIO, snapshotKey } from '../../lib/runtime/checkpoint-io';
import { decodeChannelMessage, type ChannelMessage } from '../../lib/runtime/messages';
import { SubtaskRunner } from '../../lib/runtime/subtask';
import { ReadBases } from '../../lib/runtime/source-reread';

/** Records 0.. in batches of 7; reads only up to `released.upTo` (the test moves it), done at `total`. */
function countingSource(released: { upTo: number }, total: number): () => SourceFunction<Json> {
  return () => {
    let next = 0;
    return {
      open: async () => undefined,
      poll: async () => {
        if (next >= Math.min(released.upTo, total)) {
          await new Promise((r) => setTimeout(r, 2));
          return { records: [], done: next >= total };
        }
        const end = Math.min(next + 7, released.upTo, total);
        const records = Array.from({ length: end - next }, (_, i) => ({ v: next + i }));
        next = end;
        return { records, watermark: end, done: next >= total };
      },
      snapshotOffsets: () => ({ next }),
      restoreOffsets: (o) => void (next = (o as { next: number }).next),
    };
  };
}

const until = async (what: () => boolean) => {
  for (let i = 0; i < 2000 && !what(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(what()).toBe(true);
};

describe('a restarted source asked for a replay from before its restored checkpoint', () => {
  it('reads it again and sends exactly what its dead attempt sent there: same records, same positions, nothing unreplayable', async () => {
    const released = { upTo: 0 };
    const builder = new JobBuilder('rr', { parallelism: 1 });
    builder
      .source('src', countingSource(released, 200))
      .map('tag', (r: Json) => ({ ...(r as { v: number }), tag: `t${(r as { v: number }).v % 3}` }))
      .rebalance()
      .sink('out', () => ({ open: async () => undefined, write: () => undefined, prepare: async (t) => t, commit: async () => undefined, abort: async () => undefined }), { parallelism: 2 });
    const graph = buildExecutionGraph(builder.build());
    const task = graph.tasks.find((t) => t.operators[0]!.kind === 'source')!;
    const edge = task.outputs[0]!;
    const channels = new MemoryChannelTransport();
    const queues = [0, 1].map((c) => subPartitionQueue('rr', 'job-rr', edge.id, c));
    await channels.createQueues(queues);
    const blobs = new MemoryBlobStore();
    const metadata = new MemoryMetadataStore();
    const env = { jobId: 'job-rr', graph, task, index: 0, queuePrefix: 'rr', channels, blobs, inflightLog: true, exactOnce: true, sourceBatchSize: 7 };

    // Attempt 0: checkpoints 1, 2, 3 at records 30, 61, 95; checkpoint 2 completes (log trimmed to it).
    const first = new SubtaskRunner({ ...env, attempt: 0, checkpoints: new CheckpointIO('job-rr', blobs, metadata, 0) });
    const run0 = first.run();
    for (const [id, upTo] of [[1, 30], [2, 61], [3, 95]] as const) {
      released.upTo = upTo;
      await until(() => first.counters().recordsIn === upTo);
      first.triggerCheckpoint(id);
      await until(() => first.counters().lastCheckpoint === id);
    }
    first.checkpointComplete(1);
    first.checkpointComplete(2);
    // What the dead attempt sent, per channel and record position.
    const sent = [new Map<number, Json>(), new Map<number, Json>()];
    for (const c of [0, 1]) {
      for (let got = await channels.receive(queues[c]!, { max: 10, waitSeconds: 0 }); got.length > 0; got = await channels.receive(queues[c]!, { max: 10, waitSeconds: 0 })) {
        for (const m of got) {
          const d = decodeChannelMessage(m.body);
          if (d.t === 'd') d.r.forEach((r, i) => sent[c]!.set(d.n! + i, r));
        }
        await channels.delete(queues[c]!, got.map((m) => m.receipt));
      }
    }
    expect(sent[0]!.size + sent[1]!.size).toBe(95);
    // Its unit dies.
    first.cancel();
    released.upTo = 95;
    await run0;

    const io = new CheckpointIO('job-rr', blobs, metadata);
    const at1 = await io.readSnapshot(snapshotKey('job-rr', 1, first.id, 0));
    const at2 = await io.readSnapshot(snapshotKey('job-rr', 2, first.id, 0));
    // Attempt 1 restores from checkpoint 2 (the latest manifest) and reads on up to record 95.
    const second = new SubtaskRunner({ ...env, attempt: 1, restore: at2, checkpoints: new CheckpointIO('job-rr', blobs, metadata, 1) });
    const run1 = second.run();
    await until(() => second.counters().recordsIn === 95 - 61);

    for (const c of [0, 1]) {
      // The consumer restored from checkpoint 1 asks for its channel from there.
      const from = at1.writers![0]!.position[c]!;
      expect(from).toBeLessThan(at2.writers![0]!.position[c]!);
      await second.replay({ edgeId: edge.id, consumer: c, consumerAttempt: 1, request: 1, from: { 0: [[0, from]] } });
      const replay: ChannelMessage[] = [];
      for (let got = await channels.receive(queues[c]!, { max: 10, waitSeconds: 0 }); got.length > 0; got = await channels.receive(queues[c]!, { max: 10, waitSeconds: 0 })) {
        replay.push(...got.filter((m) => m.groupId === '0.1.r1.1').map((m) => decodeChannelMessage(m.body)));
        await channels.delete(queues[c]!, got.map((m) => m.receipt));
      }
      const end = replay.find((m) => m.t === 'x');
      expect(end).toBeDefined();
      expect(end).not.toHaveProperty('g');
      // Records in position order, from the consumer's position on, each what the dead attempt sent there.
      const records: [number, Json][] = replay.flatMap((m) => (m.t === 'd' ? m.r.map((r, i) => [m.n! + i, r] as [number, Json]) : []));
      expect(records.map(([n]) => n)).toEqual(Array.from({ length: records.length }, (_, i) => from + i));
      expect(records.length).toBe(sent[c]!.size - from);
      for (const [n, r] of records) expect(r).toEqual(sent[c]!.get(n));
    }
    second.cancel();
    await run1;
  });
});

describe('read bases', () => {
  const base = (checkpointId: number, at: number) => ({ checkpointId, source: { next: at }, writers: [{ edgeId: 'e', lineage: 0, position: [at], roundRobin: 0 }] });

  it('finds the newest base at or before a position, and keeps the last two completed checkpoints and every later one', () => {
    const bases = new ReadBases();
    for (const [id, at] of [[1, 10], [2, 20], [3, 30], [4, 40]] as const) bases.add(base(id, at));
    expect(bases.find('e', 0, 0, 25)?.checkpointId).toBe(2);
    expect(bases.find('e', 0, 0, 9)).toBeUndefined();
    expect(bases.find('e', 1, 0, 25)).toBeUndefined();
    bases.complete(1);
    bases.complete(2);
    expect(bases.state().map((b) => b.checkpointId)).toEqual([1, 2, 3, 4]);
    bases.complete(3);
    expect(bases.state().map((b) => b.checkpointId)).toEqual([2, 3, 4]);
    // A restored subtask goes on with the bases its snapshot carried.
    const restored = new ReadBases();
    restored.restore(bases.state());
    restored.add(base(5, 50));
    restored.complete(5);
    expect(restored.find('e', 0, 0, 21)?.checkpointId).toBe(2);
  });
});
