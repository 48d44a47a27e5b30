/**
 * A subtask that finishes reports itself before it lets go of the end-of-input messages it held:
 * killed in between, its unit is recorded finished; the other order left a restarted attempt
 * waiting for an end of input its dead attempt had deleted (chaos seed 22404, stuck for good).
 */
import { describe, expect, it } from 'vitest';
import type { Json, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore } from '../../lib/memory';
import type { ReceiptResult } from '../../lib/ports/channels';
import { CheckpointIO } from '../../lib/runtime/checkpoint-io';
import { SubtaskRunner } from '../../lib/runtime/subtask';

describe('a finishing subtask', () => {
  it('is reported finished while its end-of-input messages are still held, and deletes them after', async () => {
    const log: string[] = [];
    class LoggingTransport extends MemoryChannelTransport {
      override async delete(queue: string, receipts: readonly string[]): Promise<ReceiptResult> {
        log.push(`delete ${receipts.length}`);
        return super.delete(queue, receipts);
      }
    }
    const channels = new LoggingTransport();
    const written: Json[] = [];
    const sink = (): SinkFunction<Json> => ({
      open: async () => undefined,
      write: (r) => void written.push(r),
      prepare: async (txn) => txn,
      commit: async () => undefined,
      abort: async () => undefined,
    });
    const source = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
    const builder = new JobBuilder('finish', { parallelism: 2 });
    builder.source('src', source).rebalance().sink('out', sink, { parallelism: 1 });
    const graph = buildExecutionGraph(builder.build());
    const task = graph.tasks.find((t) => t.operators.some((o) => o.kind === 'sink'))!;
    const queue = subPartitionQueue('fin', 'job-fin', task.inputs[0]!.id, 0);
    await channels.createQueues([queue]);
    for (const p of [0, 1]) {
      await channels.send(queue, [
        { groupId: `${p}.0`, dedupId: `${p}-0`, body: JSON.stringify({ p, a: 0, s: 0, l: 0, n: 0, t: 'd', r: [`r${p}`] }) },
        { groupId: `${p}.0`, dedupId: `${p}-1`, body: JSON.stringify({ p, a: 0, s: 1, l: 0, n: 1, t: 'e' }) },
      ]);
    }
    const runner = new SubtaskRunner({
      jobId: 'job-fin', graph, task, index: 0, attempt: 0, queuePrefix: 'fin', channels,
      blobs: new MemoryBlobStore(), checkpoints: new CheckpointIO('job-fin', new MemoryBlobStore(), new MemoryMetadataStore()),
      onFinished: async () => {
        expect(runner.status).toBe('finished');
        // Both end-of-input messages are still in flight: nothing else may take them meanwhile.
        expect(await channels.receive(queue, { max: 10, waitSeconds: 0 })).toEqual([]);
        log.push('reported');
      },
    });
    const run = runner.run();
    for (let i = 0; i < 200 && runner.status === 'running'; i++) await new Promise((r) => setTimeout(r, 10));
    runner.commitFinal();
    expect(await run).toBe('finished');
    expect(written.sort()).toEqual(['r0', 'r1']);
    expect(log.at(-1)).toBe('delete 2');
    expect(log.indexOf('reported')).toBe(log.length - 2);
  });

  it('says which step of its end it is in while its status is still running (a stuck job\'s report names it)', async () => {
    const channels = new MemoryChannelTransport();
    let releasePrepare!: () => void;
    const prepared = new Promise<void>((r) => (releasePrepare = r));
    const sink = (): SinkFunction<Json> => ({
      open: async () => undefined,
      write: () => undefined,
      // The final transaction's staging hangs until released (a storage call that does not answer).
      prepare: async (txn) => {
        if (txn === 'final') await prepared;
        return txn;
      },
      commit: async () => undefined,
      abort: async () => undefined,
    });
    const source = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
    const builder = new JobBuilder('ending', { parallelism: 1 });
    builder.source('src', source).rebalance().sink('out', sink, { parallelism: 1 });
    const graph = buildExecutionGraph(builder.build());
    const task = graph.tasks.find((t) => t.operators.some((o) => o.kind === 'sink'))!;
    const queue = subPartitionQueue('end', 'job-end', task.inputs[0]!.id, 0);
    await channels.createQueues([queue]);
    await channels.send(queue, [{ groupId: '0.0', dedupId: '0-0', body: JSON.stringify({ p: 0, a: 0, s: 0, l: 0, n: 0, t: 'e' }) }]);
    const runner = new SubtaskRunner({
      jobId: 'job-end', graph, task, index: 0, attempt: 0, queuePrefix: 'end', channels,
      blobs: new MemoryBlobStore(), checkpoints: new CheckpointIO('job-end', new MemoryBlobStore(), new MemoryMetadataStore()),
    });
    expect(runner.counters().ending).toBeUndefined();
    const run = runner.run();
    for (let i = 0; i < 500 && runner.counters().ending === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    expect(runner.status).toBe('running');
    expect(runner.counters()).toMatchObject({ openChannels: 0, ending: 'staging its last output' });
    releasePrepare();
    for (let i = 0; i < 500 && runner.status === 'running'; i++) await new Promise((r) => setTimeout(r, 10));
    // Staged: it waits for its region's final commit, and says so by its status alone.
    expect(runner.status).toBe('ended');
    expect(runner.counters().ending).toBeUndefined();
    runner.commitFinal();
    expect(await run).toBe('finished');
  });
});
