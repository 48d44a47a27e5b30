/**
 * A barrier alignment held far longer than the input visibility timeout (15 s): producer 0 is at
 * barrier 1 and beyond, producer 1 sends its barrier only after `passMinute` (a minute, real or
 * on a fake clock). The consumer must survive, lose and duplicate nothing, and never see a held
 * message again (its receipts were kept valid by visibility extensions). Run against the strict
 * in-memory transport (test/unit/long-alignment.test.ts) and SQS on the emulator
 * (test/integration/long-alignment.test.ts, both emulator lanes).
 */
import { expect } from 'vitest';
import type { Json, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import type { BlobStore } from '../../lib/ports/blob-store';
import type { ChannelTransport } from '../../lib/ports/channels';
import type { Clock } from '../../lib/ports/clock';
import type { MetadataStore } from '../../lib/ports/metadata-store';
import { CheckpointIO } from '../../lib/runtime/checkpoint-io';
import { SubtaskRunner } from '../../lib/runtime/subtask';

export interface AlignmentPorts {
  channels: ChannelTransport;
  blobs: BlobStore;
  metadata: MetadataStore;
  clock?: Clock;
  /** Names unique to this run (a shared emulator keeps queues and items between runs). */
  jobId: string;
  queuePrefix: string;
}

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

/** Runs the scenario; `passMinute` lets a minute pass while the runner keeps running. */
export async function longAlignmentScenario(ports: AlignmentPorts, passMinute: () => Promise<void>): Promise<void> {
  const { channels, blobs, metadata, jobId, queuePrefix } = ports;
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
  const queue = subPartitionQueue(queuePrefix, jobId, edge.id, 0);
  await channels.createQueues([queue]);
  const next = [0, 0];
  const position = [0, 0];
  const send = (p: number, body: { t: string; r?: string[]; c?: number }) => {
    const s = next[p]!++;
    const n = position[p]!;
    position[p]! += body.r?.length ?? 0;
    return channels.send(queue, [{ groupId: `${p}.0`, dedupId: `${p}-0-${s}`, body: JSON.stringify({ p, a: 0, s, l: 0, n, ...body }) }]);
  };
  await send(0, { t: 'd', r: ['a0'] });
  await send(0, { t: 'b', c: 1 });
  await send(0, { t: 'd', r: ['a1'] });
  await send(0, { t: 'd', r: ['a2'] });
  await send(1, { t: 'd', r: ['b0'] });
  const io = new CheckpointIO(jobId, blobs, metadata);
  const runner = new SubtaskRunner({ jobId, graph, task, index: 0, attempt: 0, queuePrefix, channels, blobs, checkpoints: io, ...(ports.clock ? { clock: ports.clock } : {}) });
  const run = runner.run();
  for (let i = 0; i < 1500 && (runner.counters().aligning?.held ?? 0) < 2; i++) await tick(20);
  expect(runner.counters().aligning).toMatchObject({ checkpointId: 1, waitingFor: [`${edge.id}/1`], held: 2 });

  await passMinute();
  expect(runner.status).toBe('running');
  expect(runner.counters().aligning).toMatchObject({ checkpointId: 1, held: 2 });

  await send(1, { t: 'b', c: 1 });
  await send(1, { t: 'd', r: ['b1'] });
  await send(0, { t: 'e' });
  await send(1, { t: 'e' });
  for (let i = 0; i < 1500 && runner.status === 'running'; i++) await tick(20);
  runner.commitFinal();
  expect(await run).toBe('finished');

  expect([...written].sort()).toEqual(['a0', 'a1', 'a2', 'b0', 'b1']);
  // No redelivery was dropped (duplicates), no record skipped or seen twice, no receipt expired.
  expect(runner.counters()).toMatchObject({ duplicates: 0, duplicateRecords: 0, missingRecords: 0, replayedRecords: 0, expiredReceipts: 0 });
  expect((await io.acks(1)).map((a) => a.declined)).toEqual([undefined]);
  expect(await channels.receive(queue, { max: 10, waitSeconds: 0 })).toEqual([]);
}
