/**
 * A barrier alignment held far longer than the input visibility timeout (15 s), against the strict
 * in-memory transport (receipts expire as on SQS FIFO) on a fake clock: no real minute passes.
 */
import { describe, expect, it } from 'vitest';
import type { Json, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore } from '../../lib/memory';
import type { Clock } from '../../lib/ports/clock';
import { CheckpointIO } from '../../lib/runtime/checkpoint-io';
import { SubtaskRunner } from '../../lib/runtime/subtask';

/** A clock that moves only when told; sleepers wake as it passes their time. */
class FakeClock implements Clock {
  private t = 1_700_000_000_000;
  private sleepers: { at: number; wake: () => void }[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number): Promise<void> {
    return new Promise((wake) => this.sleepers.push({ at: this.t + ms, wake }));
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.at <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.at > this.t);
    for (const s of due) s.wake();
  }
}

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

describe('barrier alignment longer than the visibility timeout', () => {
  it('holds its input for 60 s: the consumer survives, nothing lost, nothing duplicated, no receipt expired', async () => {
    const clock = new FakeClock();
    const channels = new MemoryChannelTransport({ clock });
    const blobs = new MemoryBlobStore();
    const metadata = new MemoryMetadataStore();
    const written: Json[] = [];
    const sink = (): SinkFunction<Json> => ({
      open: async () => undefined,
      write: (r) => void written.push(r),
      prepare: async (txn) => txn,
      commit: async () => undefined,
      abort: async () => undefined,
    });
    const source = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
    const builder = new JobBuilder('long-align', { parallelism: 2 });
    builder.source('src', source).rebalance().sink('out', sink, { parallelism: 1 });
    const graph = buildExecutionGraph(builder.build());
    const task = graph.tasks.find((t) => t.operators.some((o) => o.kind === 'sink'))!;
    const edge = task.inputs[0]!;
    const queue = subPartitionQueue('la', 'job-la', edge.id, 0);
    await channels.createQueues([queue]);
    const next = [0, 0];
    const position = [0, 0];
    const send = (p: number, body: { t: string; r?: string[]; c?: number }) => {
      const s = next[p]!++;
      const n = position[p]!;
      position[p]! += body.r?.length ?? 0;
      return channels.send(queue, [{ groupId: `${p}.0`, dedupId: `${p}-0-${s}`, body: JSON.stringify({ p, a: 0, s, l: 0, n, ...body }) }]);
    };
    // Producer 0 is at barrier 1 and beyond; producer 1 sends its barrier only a minute later.
    await send(0, { t: 'd', r: ['a0'] });
    await send(0, { t: 'b', c: 1 });
    await send(0, { t: 'd', r: ['a1'] });
    await send(0, { t: 'd', r: ['a2'] });
    await send(1, { t: 'd', r: ['b0'] });
    const io = new CheckpointIO('job-la', blobs, metadata);
    const runner = new SubtaskRunner({ jobId: 'job-la', graph, task, index: 0, attempt: 0, queuePrefix: 'la', channels, blobs, checkpoints: io, clock });
    const run = runner.run();
    for (let i = 0; i < 200 && (runner.counters().aligning?.held ?? 0) < 2; i++) await tick(20);
    expect(runner.counters().aligning).toMatchObject({ checkpointId: 1, waitingFor: [`${edge.id}/1`], held: 2 });

    // A minute passes, one second at a time; the runner and the gate keep running meanwhile.
    for (let s = 0; s < 60; s++) {
      clock.advance(1_000);
      await tick();
    }
    expect(runner.status).toBe('running');
    expect(runner.counters().aligning).toMatchObject({ checkpointId: 1, held: 2 });

    await send(1, { t: 'b', c: 1 });
    await send(1, { t: 'd', r: ['b1'] });
    await send(0, { t: 'e' });
    await send(1, { t: 'e' });
    for (let i = 0; i < 200 && runner.status === 'running'; i++) await tick(20);
    runner.commitFinal();
    expect(await run).toBe('finished');

    expect([...written].sort()).toEqual(['a0', 'a1', 'a2', 'b0', 'b1']);
    expect(runner.counters()).toMatchObject({ duplicates: 0, duplicateRecords: 0, missingRecords: 0, expiredReceipts: 0 });
    // The held messages stayed in flight under their first receipt: never received again.
    expect([channels.redeliveries, channels.expiredReceipts]).toEqual([0, 0]);
    expect((await io.acks(1)).map((a) => a.declined)).toEqual([undefined]);
    expect(await channels.receive(queue, { max: 10, waitSeconds: 0 })).toEqual([]);
  });
});
