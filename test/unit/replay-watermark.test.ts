/**
 * A replay's watermark takes its place in the channel's order. A restarted consumer gets the
 * barriers of checkpoints not completed yet in their places in the replay, and the records after
 * a barrier wait in the alignment until every channel has delivered it. The producer's watermark
 * at the end of the replay belongs after those records: had it moved the channel at once, an
 * event-time window would fire without the records held back, and drop them as late when the
 * alignment let them go (chaos seed 70031 under `single`: thousands of events lost, no counter).
 */
import { describe, expect, it } from 'vitest';
import type { Json, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { tumblingWindows } from '../../lib/api/windows';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore } from '../../lib/memory';
import { CheckpointIO } from '../../lib/runtime/checkpoint-io';
import type { LoggedMessage } from '../../lib/runtime/inflight-log';
import type { ReplayRequest } from '../../lib/runtime/messages';
import { replayBodies } from '../../lib/runtime/replay';
import { SubtaskRunner } from '../../lib/runtime/subtask';

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

interface Event {
  k: string;
  ts: number;
  [field: string]: Json;
}

/** A logged data message of these event times, with the producer's watermark after them. */
const logged = (first: number, times: number[], watermark: number): LoggedMessage => ({
  first,
  count: times.length,
  fields: `"r":${JSON.stringify(times.map((ts) => ({ k: 'a', ts })))},"w":${watermark}`,
});

describe('the watermark at the end of a replay', () => {
  it('does not overtake replayed records held back by a barrier alignment: an event-time window counts them all', async () => {
    const jobId = 'job-rw';
    const queuePrefix = 'rw';
    const channels = new MemoryChannelTransport();
    const blobs = new MemoryBlobStore();
    const written: Json[] = [];
    const sink = (): SinkFunction<Json> => ({
      open: async () => undefined,
      write: (r) => void written.push(r),
      prepare: async (txn) => txn,
      commit: async () => undefined,
      abort: async () => undefined,
    });
    const source = (): SourceFunction<Event> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
    const builder = new JobBuilder('replay-watermark', { parallelism: 2 });
    builder
      .source('src', source)
      .keyBy((e) => e.k)
      .window(tumblingWindows(100), (e) => e.ts)
      .aggregate('count', { createAccumulator: () => 0, add: (_e: Event, n: number) => n + 1, getResult: (n) => n, merge: (a, b) => a + b }, (key, window, n) => ({ key, start: window.start, n }), { parallelism: 1 })
      .sink('out', sink, { parallelism: 1 });
    const graph = buildExecutionGraph(builder.build());
    const task = graph.tasks.find((t) => t.inputs.length > 0)!;
    const edge = task.inputs[0]!;
    const queue = subPartitionQueue(queuePrefix, jobId, edge.id, 0);
    await channels.createQueues([queue]);
    const send = (group: string, bodies: string[]) => channels.send(queue, bodies.map((body, s) => ({ groupId: group, dedupId: `${group}-${s}`, body })));

    // The consumer restarted (attempt 1) from scratch; it asks both producers for a replay.
    const requests: ReplayRequest[] = [];
    const io = new CheckpointIO(jobId, blobs, new MemoryMetadataStore());
    const runner = new SubtaskRunner({ jobId, graph, task, index: 0, attempt: 1, queuePrefix, channels, blobs, checkpoints: io, replaySender: async (r) => void requests.push(r) });
    const run = runner.run();
    for (let i = 0; i < 100 && requests.length === 0; i++) await tick();
    expect(requests.map((r) => r.request)).toEqual([1]);

    // Producer 0 has sent barrier 1 (checkpoint 1 not completed) and records after it; its
    // watermark is far on (500). Producer 1 has not reached barrier 1 yet, but its watermark has.
    const answer = (producer: number) => ({ producer, attempt: 0, consumerAttempt: 1, request: 1 });
    await send(
      '0.0.r1.1',
      replayBodies({ lineage: 0, from: 0, messages: [logged(0, [10, 20], 20), logged(2, [30, 40], 40)], barriers: [{ checkpointId: 1, position: 2 }], end: 4 }, answer(0), { nextSequence: 0, watermark: 500 }),
    );
    await send('1.0.r1.1', replayBodies({ lineage: 0, from: 0, messages: [logged(0, [50], 500)], barriers: [], end: 1 }, answer(1), { nextSequence: 0, watermark: 500 }));
    for (let i = 0; i < 100 && (runner.counters().aligning?.held ?? 0) === 0; i++) await tick();
    await tick(100);
    // Records 30 and 40 wait behind barrier 1: the window [0, 100) has not fired without them.
    expect(runner.counters().aligning).toMatchObject({ checkpointId: 1, waitingFor: [`${edge.id}/1`] });
    expect(written).toEqual([]);

    // Producer 1 delivers barrier 1 and both end: the alignment lets 30 and 40 go, then the window fires.
    await send('1.0', [JSON.stringify({ p: 1, a: 0, s: 0, l: 0, n: 1, t: 'b', c: 1 }), JSON.stringify({ p: 1, a: 0, s: 1, l: 0, n: 1, t: 'e' })]);
    await send('0.0', [JSON.stringify({ p: 0, a: 0, s: 0, l: 0, n: 4, t: 'e' })]);
    for (let i = 0; i < 300 && runner.status === 'running'; i++) await tick(20);
    runner.commitFinal();
    expect(await run).toBe('finished');
    expect(written).toEqual([{ key: 'a', start: 0, n: 5 }]);
    expect(runner.counters()).toMatchObject({ missingRecords: 0, duplicateRecords: 0 });
  });
});
