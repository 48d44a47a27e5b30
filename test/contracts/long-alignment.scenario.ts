/**
 * A barrier alignment held far longer than the input visibility timeout (15 s). Two sources feed
 * two sink subtasks (rebalance). Producer 0 is at barrier 1 and beyond; producer 1 sends its
 * barrier only after `passMinute` (a minute, real or on a fake clock), so out#0 holds producer 0's
 * later records for the minute. The sink's second subtask, out#1, starts only after the minute (a
 * subtask still restoring its state): what was sent to it before waits for it meanwhile.
 * The consumers must survive, lose and duplicate nothing, and no receipt may expire (visibility
 * extensions kept what was in flight in flight; at least one extension is made).
 *
 * Two transport variants, the same scenario:
 * - `queues`: each subtask reads its sub-partition queues itself (a job placed before input
 *   queues). out#0's input gate holds producer 0's records in flight at SQS and extends them.
 * - `mux`: the path task units take (unit-host.ts, task-unit.ts): the two sinks in one unit and the
 *   two sources in another (a unit's placement from jobLayout, split: channels within one unit do
 *   not go through SQS), both units' multiplexed channels (channel-mux.ts) made by the host's
 *   `multiplexedChannels`, every channel message in envelopes on the sink unit's one input queue,
 *   in the source unit's one message group. out#0 takes what it holds into memory and the envelopes are
 *   deleted (the late barrier comes in a later envelope of the same group: it could not arrive
 *   past an envelope left in flight); the envelopes with out#1's parts stay in flight for the
 *   minute, and the unit's channels extend them.
 * Run against the strict in-memory transport (test/unit/long-alignment.test.ts) and SQS on the
 * emulator (test/integration/long-alignment.test.ts, both emulator lanes).
 */
import { expect } from 'vitest';
import type { Json, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph, subPartitionQueue, type ExecutionGraph } from '../../lib/graph/execution-graph';
import { jobLayout } from '../../lib/graph/placement';
import { multiplexedChannels } from '../../lib/host/unit-host';
import type { BlobStore } from '../../lib/ports/blob-store';
import { forwardingTransport, MAX_MESSAGE_BYTES, type ChannelTransport } from '../../lib/ports/channels';
import type { Clock } from '../../lib/ports/clock';
import type { MetadataStore } from '../../lib/ports/metadata-store';
import { MUX_OVERHEAD_BYTES, type UnitChannels } from '../../lib/runtime/channel-mux';
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

/** How the sink subtasks read their input: their own sub-partition queues, or their unit's multiplexed channels. */
export type AlignmentTransport = 'queues' | 'mux';

/** What the transport saw: visibility extensions (timeout > 0) and receipts refused as expired. */
export interface VisibilityCounts {
  extensions: number;
  expired: number;
}

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

/** Waits (in real time, bounded) until `done` holds; the fake clock does not move meanwhile. */
async function until(done: () => boolean, ms = 90_000): Promise<void> {
  for (let waited = 0; waited < ms && !done(); waited += 20) await tick(20);
}

/** Counts the visibility extensions and expired receipts the transport reports. */
function counting(inner: ChannelTransport, counts: VisibilityCounts): ChannelTransport {
  return forwardingTransport(inner, {
    delete: async (q, r) => {
      const result = await inner.delete(q, r);
      counts.expired += result.expired.length;
      return result;
    },
    changeVisibility: async (q, r, s) => {
      if (s > 0) counts.extensions += r.length;
      const result = await inner.changeVisibility(q, r, s);
      counts.expired += result.expired.length;
      return result;
    },
  });
}

/** The subtasks' input, wired one way or the other. */
interface Wiring {
  /** What the scenario's producers send through (a sub-partition queue name, as a record writer does). */
  send: ChannelTransport['send'];
  /** Queues to create, and to find empty at the end. */
  queues: string[];
  runner(index: number): SubtaskRunner;
  /** The consuming unit's channels, and the producing unit's, when multiplexed. */
  mux?: UnitChannels;
  producers?: UnitChannels;
}

function wire(variant: AlignmentTransport, graph: ExecutionGraph, channels: ChannelTransport, ports: AlignmentPorts, io: CheckpointIO): Wiring {
  const { jobId, queuePrefix, blobs, clock } = ports;
  const task = graph.tasks.find((t) => t.operators.some((o) => o.kind === 'sink'))!;
  const common = { jobId, graph, task, attempt: 0, queuePrefix, blobs, checkpoints: io, ...(clock ? { clock } : {}) };
  if (variant === 'queues') {
    const edge = task.inputs[0]!;
    return {
      send: (queue, messages) => channels.send(queue, messages),
      queues: [0, 1].map((c) => subPartitionQueue(queuePrefix, jobId, edge.id, c)),
      runner: (index) => new SubtaskRunner({ ...common, index, channels }),
    };
  }
  // As unit-host.ts places and wires a unit: its layout, its multiplexed channels, and each
  // subtask's runner over them (task-unit.ts: room for the envelope, its inbox closed at its end).
  const layout = jobLayout(graph, { jobId, queuePrefix, subtasksPerUnit: 4 });
  expect(layout.units).toHaveLength(1);
  const placed = layout.units[0]!;
  expect([...placed.subtasks].sort()).toEqual(['out#0', 'out#1', 'src#0', 'src#1']);
  const unit = { ...placed, subtasks: ['out#0', 'out#1'] };
  const { inputQueue: _none, ...sourceUnit } = { ...placed, unitId: `${placed.unitId}-src`, subtasks: ['src#0', 'src#1'], controlQueue: placed.controlQueue.replace(/-c\d+$/, '-c9') };
  const units = [unit, sourceUnit];
  const options = { channels, queuePrefix, attempt: 0, ...(clock ? { clock } : {}) };
  const mux = multiplexedChannels(options, { jobId, units }, unit, graph)!;
  const producers = multiplexedChannels(options, { jobId, units }, sourceUnit, graph)!;
  return {
    send: (queue, messages) => producers.send(queue, messages),
    queues: [unit.inputQueue!],
    mux,
    producers,
    runner: (index) =>
      new SubtaskRunner({ ...common, index, channels: mux, maxMessageBytes: MAX_MESSAGE_BYTES - MUX_OVERHEAD_BYTES, inputEnded: () => mux.close(`${task.id}#${index}`) }),
  };
}

/**
 * Runs the scenario; `passMinute` lets a minute pass while the runner keeps running. Returns what
 * the transport saw (the caller may compare it with the transport's own counters).
 */
export async function longAlignmentScenario(ports: AlignmentPorts, passMinute: () => Promise<void>, variant: AlignmentTransport = 'queues'): Promise<VisibilityCounts> {
  const { blobs, metadata, jobId, queuePrefix } = ports;
  const counts: VisibilityCounts = { extensions: 0, expired: 0 };
  const channels = counting(ports.channels, counts);
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
  builder.source('src', source).rebalance().sink('out', sink);
  const graph = buildExecutionGraph(builder.build());
  const edge = graph.tasks.find((t) => t.operators.some((o) => o.kind === 'sink'))!.inputs[0]!;
  const io = new CheckpointIO(jobId, blobs, metadata);
  const wiring = wire(variant, graph, channels, ports, io);
  await channels.createQueues(wiring.queues);

  // Channel (producer p -> consumer c): its sequence numbers and record positions.
  const next = [
    [0, 0],
    [0, 0],
  ];
  const position = [
    [0, 0],
    [0, 0],
  ];
  const send = (p: number, c: number, body: { t: string; r?: string[]; c?: number }) => {
    const s = next[p]![c]!++;
    const n = position[p]![c]!;
    position[p]![c]! += body.r?.length ?? 0;
    const queue = subPartitionQueue(queuePrefix, jobId, edge.id, c);
    return wiring.send(queue, [{ groupId: `${p}.0`, dedupId: `${p}-0-${c}-${s}`, body: JSON.stringify({ p, a: 0, s, l: 0, n, ...body }) }]);
  };
  // Before the minute: producer 0 passes barrier 1 on both channels; producer 1 sends records only.
  // out#0's input first, then out#1's (multiplexed: out#1's envelopes come last in the unit's group).
  await send(0, 0, { t: 'd', r: ['a0'] });
  await send(0, 0, { t: 'b', c: 1 });
  await send(0, 0, { t: 'd', r: ['a1'] });
  await send(0, 0, { t: 'd', r: ['a2'] });
  await send(1, 0, { t: 'd', r: ['b0'] });
  await send(0, 1, { t: 'd', r: ['c0'] });
  await send(0, 1, { t: 'b', c: 1 });
  await send(1, 1, { t: 'd', r: ['d0'] });

  const { mux, producers } = wiring;
  mux?.start();
  const out0 = wiring.runner(0);
  const run0 = out0.run();
  await until(() => (out0.counters().aligning?.held ?? 0) >= 2 && (!mux || mux.stats.envelopesReceived >= producers!.stats.envelopesSent));
  expect(out0.counters().aligning).toMatchObject({ checkpointId: 1, waitingFor: [`${edge.id}/1`], held: 2 });
  // Multiplexed: every envelope was received; out#0's were deleted as it took them, out#1's wait in flight.
  if (mux) expect(mux.stats).toMatchObject({ envelopesReceived: producers!.stats.envelopesSent, partsReceived: 8 });

  await passMinute();
  expect(out0.status).toBe('running');
  expect(out0.counters().aligning).toMatchObject({ checkpointId: 1, held: 2 });
  // What was held in flight was extended (four times the timeout), and no receipt ran out.
  expect(counts.extensions).toBeGreaterThan(0);
  expect(counts.expired).toBe(0);

  // out#1 starts; producer 1's barrier arrives; both producers end.
  const out1 = wiring.runner(1);
  const run1 = out1.run();
  await send(1, 0, { t: 'b', c: 1 });
  await send(1, 0, { t: 'd', r: ['b1'] });
  await send(1, 1, { t: 'b', c: 1 });
  await send(1, 1, { t: 'd', r: ['d1'] });
  for (const [p, c] of [
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ] as const) {
    await send(p, c, { t: 'e' });
  }
  await until(() => out0.status !== 'running' && out1.status !== 'running');
  out0.commitFinal();
  out1.commitFinal();
  expect(await run0).toBe('finished');
  expect(await run1).toBe('finished');
  if (mux) {
    // As units end (task-unit.ts).
    await producers!.flush();
    await mux.stopReceiving(false);
  }

  expect([...written].sort()).toEqual(['a0', 'a1', 'a2', 'b0', 'b1', 'c0', 'd0', 'd1']);
  // No redelivery was dropped (duplicates), no record skipped or seen twice, no receipt expired.
  for (const runner of [out0, out1]) {
    expect(runner.counters()).toMatchObject({ duplicates: 0, duplicateRecords: 0, missingRecords: 0, replayedRecords: 0, expiredReceipts: 0 });
  }
  if (mux) expect(mux.stats).toMatchObject({ expiredReceipts: 0, partsDropped: 0, partsLocal: 0, partsReceived: producers!.stats.partsSent });
  expect(counts.expired).toBe(0);
  expect((await io.acks(1)).map((a) => a.declined)).toEqual([undefined, undefined]);
  for (const queue of wiring.queues) expect(await channels.receive(queue, { max: 10, waitSeconds: 0 })).toEqual([]);
  return counts;
}
