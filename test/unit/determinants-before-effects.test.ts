/**
 * Single-exact: a determinant step is durable before its effects leave the task (determinants.ts).
 *
 * A writer seals a message as soon as its buffer is full, in the middle of the operator chain's
 * work: while the records of one input message go through, or while timers fire on an event-time
 * advance. That message carries the steps recorded so far (`dt`). If the step that caused the
 * records in it is recorded only after the work is done, the message carries output whose cause
 * its consumer does not hold. When the task dies after sending it (and before the next message of
 * the channel), a restarted attempt follows the steps the consumer kept, then takes its input in
 * arrival order: it numbers other records at the positions the consumer already has. The consumer
 * drops them as duplicates by position, and the records it had get new positions and come twice:
 * as many lost as duplicated, nothing counted (chaos seed 81012, recommendation join: 145 + 145).
 *
 * Here the dead attempt's output is cut after each of its data messages in turn (what a consumer
 * holds if the task dies right after sending it); a restarted attempt given those steps and the
 * same input in another arrival order must regenerate every record of that prefix at its position.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Json, KeyedProcessContext, KeyedProcessFunction, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph, subPartitionQueue, subtaskId, type ExecutionGraph, type TaskVertex } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport } from '../../lib/memory';
import type { OutboundMessage } from '../../lib/ports/channels';
import { DeterminantStore, type Step } from '../../lib/runtime/determinants';
import { determinantAnswerKey } from '../../lib/runtime/determinant-requester';
import { decodeChannelMessage } from '../../lib/runtime/messages';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { SubtaskRunner } from '../../lib/runtime/subtask';

type In = { id: string; ts: number };
type Out = { out: string };

const JOB = 'job-dbe';
const PREFIX = 'dbe';
/** Output messages hold about 600 bytes of records (the rest of a message is the room kept for determinants). */
const MAX_MESSAGE_BYTES = 16 * 1024 + 96 + 600;
/** Padding, so a few dozen output records fill a message. */
const PAD = 'x'.repeat(20);

/** One output record per input record; with `timers`, an event-time timer per record too, whose firing emits another. */
class Tagging implements KeyedProcessFunction<In, Out> {
  constructor(private readonly timers: boolean) {}
  processElement(record: In, ctx: KeyedProcessContext<Out>): void {
    ctx.emit({ out: `${record.id}${PAD}` });
    if (this.timers) ctx.registerEventTimeTimer(record.ts);
  }
  onTimer(ts: number, ctx: KeyedProcessContext<Out>): void {
    ctx.emit({ out: `timer:${String(ctx.key)}@${ts}${PAD}` });
  }
}

/** src (2 subtasks) -> keyBy -> tag -> sink (unchained): only tag#0 runs, reading both producers' channels. */
function job(timers: boolean): { graph: ExecutionGraph; inner: TaskVertex } {
  const source = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
  const sink = (): SinkFunction<Json> => ({ open: async () => undefined, write: () => undefined, prepare: async (t) => t, commit: async () => undefined, abort: async () => undefined });
  const b = new JobBuilder('dbe', { parallelism: 2 });
  b.source('src', source)
    .keyBy((r: Json) => (r as In).id)
    .process<Out>('tag', () => new Tagging(timers) as unknown as KeyedProcessFunction<Json, Out>)
    .sink('out', sink as unknown as () => SinkFunction<Out>, { chaining: false });
  const graph = buildExecutionGraph(b.build());
  return { graph, inner: graph.tasks.find((t) => t.inputs.length > 0 && t.outputs.length > 0)! };
}

/** A transport that keeps every body sent to one queue. */
class Capturing extends MemoryChannelTransport {
  readonly sent: string[] = [];
  constructor(private readonly watched: string) {
    super();
  }
  override async send(queue: string, messages: readonly OutboundMessage[]): Promise<void> {
    if (queue === this.watched) this.sent.push(...messages.map((m) => m.body));
    return super.send(queue, messages);
  }
}

/** The data messages sent, each as its first position, its records and the steps it carried. */
function dataMessages(bodies: readonly string[]): { n: number; records: Out[]; dt: [number, Step[]] | undefined }[] {
  const out: { n: number; records: Out[]; dt: [number, Step[]] | undefined }[] = [];
  for (const body of bodies) {
    const m = decodeChannelMessage(body);
    if (m.t !== 'd') continue;
    expect(m.l ?? m.a).toBe(0);
    out.push({ n: m.n!, records: m.r as Out[], dt: m.dt as [number, Step[]] | undefined });
  }
  return out;
}

/** Output records by position. */
function byPosition(messages: ReturnType<typeof dataMessages>): Map<number, Out> {
  const out = new Map<number, Out>();
  for (const m of messages) m.records.forEach((r, i) => out.set(m.n + i, r));
  return out;
}

/** `afterMs`: sent that long after the previous write (the subtask has taken what came before). */
type Write = { producer: number; records: In[]; watermark?: number; afterMs?: number };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs tag#0 (attempt 0, or 1 following `answer`) over the writes, then end of input from both producers. */
async function run(opts: { timers: boolean; attempt: number; writes: Write[]; answer?: { first: number; steps: Step[] } }): Promise<string[]> {
  const { graph, inner } = job(opts.timers);
  const inEdge = inner.inputs[0]!;
  const outEdge = inner.outputs[0]!;
  const inQueue = subPartitionQueue(PREFIX, JOB, inEdge.id, 0);
  const outQueue = subPartitionQueue(PREFIX, JOB, outEdge.id, 0);
  const transport = new Capturing(outQueue);
  await transport.createQueues([inQueue, outQueue]);
  const blobs = new MemoryBlobStore();
  const me = subtaskId(inner.id, 0);
  const consumer = subtaskId(outEdge.to, 0);
  // Both producers' channels of tag#0 (a source numbers its records in lineage 0: a replay has the same positions).
  const producers = [0, 1].map(
    (p) => new RecordWriter({ edge: inEdge, producerIndex: p, consumerParallelism: 1, attempt: 0, lineage: 0, queueOf: () => inQueue, transport }),
  );
  const runner = new SubtaskRunner({
    jobId: JOB,
    graph,
    task: inner,
    index: 0,
    attempt: opts.attempt,
    queuePrefix: PREFIX,
    channels: transport,
    blobs,
    exactOnce: true,
    maxMessageBytes: MAX_MESSAGE_BYTES,
    ...(opts.answer
      ? {
          determinantSender: async () => {
            await blobs.put(determinantAnswerKey(JOB, me, opts.attempt, consumer), JSON.stringify({ consumer, ...opts.answer }));
          },
        }
      : {}),
  });
  const done = runner.run();
  for (const w of opts.writes) {
    if (w.afterMs) await sleep(w.afterMs);
    for (const r of w.records) producers[w.producer]!.emit(r);
    if (w.watermark !== undefined) producers[w.producer]!.emitWatermark(w.watermark);
    await producers[w.producer]!.flush();
  }
  for (const p of producers) {
    p.emitEvent({ t: 'e' });
    await p.flush();
  }
  const status = await done;
  expect(status, String(runner.error)).toBe('finished');
  return transport.sent;
}

/**
 * For every data message of a dead attempt's output: a consumer that received the messages up to
 * it holds their steps; a restart (`attempt`) given those steps and `writes` regenerates each of
 * their records at its position. Returns what the restart given all the steps sent.
 */
async function expectEveryPrefixRegenerated(timers: boolean, dead: ReturnType<typeof dataMessages>, attempt: number, writes: Write[]): Promise<ReturnType<typeof dataMessages>> {
  expect(dead.length).toBeGreaterThan(4);
  let last: ReturnType<typeof dataMessages> = [];
  for (let cut = 1; cut <= dead.length; cut++) {
    const store = new DeterminantStore();
    for (const m of dead.slice(0, cut)) if (m.dt) store.add('tag#0', m.dt[0], m.dt[1]);
    const held = byPosition(dead.slice(0, cut));
    last = dataMessages(await run({ timers, attempt, writes, answer: store.from('tag#0', 0) }));
    const replayed = byPosition(last);
    for (const [at, record] of held) expect(replayed.get(at), `attempt ${attempt}, position ${at}, the consumer holding ${cut} message(s)`).toEqual(record);
  }
  return last;
}

const records = (prefix: string, n: number, ts = 0): In[] => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, ts: ts + i }));

describe('single-exact: steps are durable before their effects leave the task', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a message sealed while an input message\'s records go through carries the step for them', async () => {
    // Each producer sends one message of 60 records; their output fills several messages, the
    // first one sealed in the middle of the first input message. The restart sees them the other way round.
    const a: Write = { producer: 0, records: records('a', 60) };
    const b: Write = { producer: 1, records: records('b', 60) };
    const dead = dataMessages(await run({ timers: false, attempt: 0, writes: [a, b] }));
    const restarted = await expectEveryPrefixRegenerated(false, dead, 1, [b, a]);
    // A restart that dies again while it still follows: its output carries the steps it followed as durably.
    await expectEveryPrefixRegenerated(false, restarted, 2, [b, a]);
  });

  it('a message sealed while timers fire on an event-time advance carries the advance', async () => {
    // One producer: records with timers at their event times, then a watermark past them all
    // (their timers fire, and their output fills more than a message), then more records. The
    // restart gets everything at once: without the advance at the right step it would take the
    // later records before the timers fired.
    // (Producer 1 only moves its watermark on: event time is the least of both channels'.)
    const idle: Write = { producer: 1, records: [], watermark: 1_000_000 };
    const a: Write = { producer: 0, records: records('a', 40), watermark: 1_000 };
    const c: Write = { producer: 0, records: records('c', 10, 2_000) };
    const dead = dataMessages(await run({ timers: true, attempt: 0, writes: [idle, a, { ...c, afterMs: 500 }] }));
    const restarted = await expectEveryPrefixRegenerated(true, dead, 1, [idle, a, c]);
    await expectEveryPrefixRegenerated(true, restarted, 2, [idle, a, c]);
  });
});
