/**
 * The end of a replay (replay.ts) carries the producer's last watermark. It is the channel's
 * watermark only once every record of the replay before it has been processed: records held back
 * by a barrier alignment have not been. Taken when the gate received the end event, it let event
 * time pass records still held: a restarted window fired early and the held records came late, so
 * they were dropped, counted nowhere (chaos seeds 81052, 81070, 81084: the demo's hourly aggregate,
 * both aggregate units restarted, output rows short).
 *
 * Here a restarted window aggregate gets both channels' replays at once. Producer 0 had sent
 * barrier 1 before the consumer asked (it is in its replay, a record after it); producer 1 sends
 * its barrier 1 after its replay, live, a little later. Until it comes, producer 0's record after
 * the barrier waits in the alignment, and event time must not pass it.
 */
import { describe, expect, it } from 'vitest';
import type { Json, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { tumblingWindows } from '../../lib/api/windows';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore } from '../../lib/memory';
import { CheckpointIO } from '../../lib/runtime/checkpoint-io';
import type { ReplayRequest } from '../../lib/runtime/messages';
import { SubtaskRunner } from '../../lib/runtime/subtask';

type Ev = { k: string; ts: number };

const body = (m: Record<string, unknown>) => JSON.stringify(m);

describe('a replay\'s end watermark', () => {
  it('moves event time only after the records before it, even those an alignment holds back', async () => {
    const channels = new MemoryChannelTransport();
    const written: Json[] = [];
    const sink = (): SinkFunction<Json> => ({
      open: async () => undefined,
      write: (r) => void written.push(r),
      prepare: async (txn) => txn,
      commit: async () => undefined,
      abort: async () => undefined,
    });
    const source = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
    const builder = new JobBuilder('rw', { parallelism: 2 });
    builder
      .source('src', source)
      .keyBy((r: Json) => (r as Ev).k)
      .window(tumblingWindows(1000), (r: Json) => (r as Ev).ts)
      .aggregate('count', { createAccumulator: () => 0, add: (_: Json, n: number) => n + 1, getResult: (n: number) => n, merge: (a: number, b: number) => a + b }, (key, w, n) => ({ key: String(key), start: w.start, n }))
      .sink('out', sink);
    const graph = buildExecutionGraph(builder.build());
    const task = graph.tasks.find((t) => t.inputs.length > 0)!;
    const queue = subPartitionQueue('rw', 'job-rw', task.inputs[0]!.id, 0);
    await channels.createQueues([queue]);

    // Producer p (attempt 0) replays to consumer attempt 1, request 1, in a group of its own.
    const replay = (p: number, messages: Record<string, unknown>[]) =>
      channels.send(queue, messages.map((m, s) => ({ groupId: `${p}.0.r1.1`, dedupId: `${p}-r-${s}`, body: body({ p, a: 0, s, l: 0, ra: 1, rq: 1, ...m }) })));
    const live = (p: number, s: number, m: Record<string, unknown>) => channels.send(queue, [{ groupId: `${p}.0`, dedupId: `${p}-${s}`, body: body({ p, a: 0, s, l: 0, ...m }) }]);
    const replaySender = async (request: ReplayRequest) => {
      expect(request.consumerAttempt).toBe(1);
      await replay(0, [
        { n: 0, t: 'd', r: [{ k: 'a', ts: 10 }], w: 10 },
        { n: 1, t: 'b', c: 1 },
        { n: 1, t: 'd', r: [{ k: 'a', ts: 20 }], w: 20 },
        // Its live group goes on at sequence 3 (0..2 are in the replay); its last watermark is far on.
        { n: 2, t: 'x', ls: 3, w: 5000 },
      ]);
      await replay(1, [
        { n: 0, t: 'd', r: [{ k: 'a', ts: 30 }], w: 30 },
        { n: 1, t: 'x', ls: 1, w: 5000 },
      ]);
    };

    const runner = new SubtaskRunner({
      jobId: 'job-rw', graph, task, index: 0, attempt: 1, queuePrefix: 'rw', channels,
      blobs: new MemoryBlobStore(), checkpoints: new CheckpointIO('job-rw', new MemoryBlobStore(), new MemoryMetadataStore()),
      replaySender,
      exactOnce: true,
    });
    const run = runner.run();
    // The replays are taken (producer 0's record after its barrier waits for producer 1's barrier).
    for (let i = 0; i < 100 && runner.counters().recordsIn < 2; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 300));
    // Producer 1's barrier 1 comes live, after its replay; then both producers end.
    await live(1, 1, { n: 1, t: 'b', c: 1 });
    await live(1, 2, { n: 1, t: 'e' });
    await live(0, 3, { n: 2, t: 'e' });
    for (let i = 0; i < 300 && runner.status === 'running'; i++) await new Promise((r) => setTimeout(r, 10));
    runner.commitFinal();
    await run;
    // One window, all three events in it: nothing late, nothing dropped.
    expect(written).toEqual([{ key: 'a', start: 0, n: 3 }]);
  });
});
