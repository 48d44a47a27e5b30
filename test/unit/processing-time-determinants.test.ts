/**
 * Single-exact: processing time is a determinant (determinants.ts, `['p', T]` steps). An inner task
 * whose output depends on its processing clock (a processing-time timer, value state with a TTL,
 * `currentProcessingTime`) is run as attempt 0 over input that arrives in batches with real pauses,
 * so timers fire and state expires between them. A restarted attempt (1, lineage 0) gets the steps
 * its dead attempt's output carried (`dt`) the way the runtime gets them (a determinants request
 * answered in the blob store, as a consumer unit answers), is given the same input again, all at
 * once and an hour later on the wall clock, and regenerates exactly what the dead attempt sent, at
 * the same record positions. A plain restart (`single`: no recorded clock) does not.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Json, KeyedProcessFunction, SinkFunction, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { valueState } from '../../lib/api/state';
import { buildExecutionGraph, subPartitionQueue, subtaskId, type ExecutionGraph, type TaskVertex } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore } from '../../lib/memory';
import type { OutboundMessage } from '../../lib/ports/channels';
import { CheckpointIO, type SubtaskSnapshot } from '../../lib/runtime/checkpoint-io';
import { DeterminantStore, type Step } from '../../lib/runtime/determinants';
import { determinantAnswerKey } from '../../lib/runtime/determinant-requester';
import { decodeChannelMessage } from '../../lib/runtime/messages';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { SubtaskRunner } from '../../lib/runtime/subtask';

type In = { k: string; v: number };
type Out =
  | { e: string; v: number; prev: number | null; at: number }
  | { timer: string; ts: number; at: number };

const TTL_MS = 700;
const TIMER_MS = 100;
const JOB = 'job-ptime';
const PREFIX = 'pt';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Per element: the key's last value unless it expired (TTL), and the clock; a timer shortly after. On the timer: its time and the clock. */
class ClockDependent implements KeyedProcessFunction<In, Out> {
  private readonly last = valueState<number>('last', { ttl: { ms: TTL_MS } });
  processElement(record: In, ctx: Parameters<KeyedProcessFunction<In, Out>['processElement']>[1]): void {
    const last = ctx.getState(this.last);
    const prev = last.value() ?? null;
    last.update(record.v);
    const at = ctx.currentProcessingTime();
    ctx.registerProcessingTimeTimer(at + TIMER_MS);
    ctx.emit({ e: record.k, v: record.v, prev, at });
  }
  onTimer(ts: number, ctx: Parameters<KeyedProcessFunction<In, Out>['processElement']>[1]): void {
    ctx.emit({ timer: String(ctx.key), ts, at: ctx.currentProcessingTime() });
  }
}

function job(): { graph: ExecutionGraph; inner: TaskVertex } {
  const source = (): SourceFunction<Json> => ({ open: async () => undefined, poll: async () => ({ records: [], done: true }), snapshotOffsets: () => null, restoreOffsets: () => undefined });
  const sink = (): SinkFunction<Json> => ({ open: async () => undefined, write: () => undefined, prepare: async (t) => t, commit: async () => undefined, abort: async () => undefined });
  const b = new JobBuilder('ptime', { parallelism: 1 });
  b.source('src', source)
    .keyBy((r: Json) => (r as In).k)
    .process<Out>('clocked', () => new ClockDependent() as unknown as KeyedProcessFunction<Json, Out>)
    .sink('out', sink as unknown as () => SinkFunction<Out>, { chaining: false });
  const graph = buildExecutionGraph(b.build());
  const inner = graph.tasks.find((t) => t.inputs.length > 0 && t.outputs.length > 0)!;
  return { graph, inner };
}

/** A transport that keeps every body sent to the inner task's output queue. */
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

/** Records by position (lineage 0), and the determinant steps the data messages carried. */
function decode(bodies: readonly string[], lineage = 0): { first: number; records: Out[]; store: DeterminantStore; steps: Step[] } {
  const byPosition = new Map<number, Out>();
  const store = new DeterminantStore();
  for (const body of bodies) {
    const m = decodeChannelMessage(body);
    if (m.t !== 'd') continue;
    expect(m.l ?? m.a).toBe(lineage);
    m.r.forEach((r, i) => {
      const at = m.n! + i;
      // The same position twice (a resend) must be the same record.
      if (byPosition.has(at)) expect(r).toEqual(byPosition.get(at));
      byPosition.set(at, r as Out);
    });
    if (m.dt) store.add('producer', m.dt[0], m.dt[1]);
  }
  const positions = [...byPosition.keys()].sort((a, b) => a - b);
  const first = positions[0] ?? 0;
  expect(positions).toEqual(positions.map((_, i) => first + i)); // no gaps
  return { first, records: positions.map((p) => byPosition.get(p)!), store, steps: store.from('producer', 0).steps };
}

interface Run {
  runner: SubtaskRunner;
  checkpoints: KeepingCheckpoints;
  done: Promise<string>;
  transport: Capturing;
  write: (records: In[], end?: boolean, barrier?: { c: number; after: number }) => Promise<void>;
}

/** Keeps the snapshots the subtask writes. */
class KeepingCheckpoints extends CheckpointIO {
  readonly snapshots: SubtaskSnapshot[] = [];
  override async writeSnapshot(snapshot: SubtaskSnapshot): ReturnType<CheckpointIO['writeSnapshot']> {
    this.snapshots.push(structuredClone(snapshot));
    return super.writeSnapshot(snapshot);
  }
}

async function start(opts: { attempt: number; exactOnce: boolean; answer?: { first: number; steps: Step[] }; restore?: SubtaskSnapshot }): Promise<Run> {
  const { graph, inner } = job();
  const inEdge = inner.inputs[0]!;
  const outEdge = inner.outputs[0]!;
  const inQueue = subPartitionQueue(PREFIX, JOB, inEdge.id, 0);
  const outQueue = subPartitionQueue(PREFIX, JOB, outEdge.id, 0);
  const transport = new Capturing(outQueue);
  await transport.createQueues([inQueue, outQueue]);
  const blobs = new MemoryBlobStore();
  const checkpoints = new KeepingCheckpoints(JOB, blobs, new MemoryMetadataStore(), opts.attempt);
  const me = subtaskId(inner.id, 0);
  const consumer = subtaskId(outEdge.to, 0);
  const runner = new SubtaskRunner({
    jobId: JOB,
    graph,
    task: inner,
    index: 0,
    attempt: opts.attempt,
    queuePrefix: PREFIX,
    channels: transport,
    blobs,
    exactOnce: opts.exactOnce,
    checkpoints,
    ...(opts.restore ? { restore: opts.restore } : {}),
    // The consumer's unit answers in S3 (task-unit.ts): here, what the dead attempt's output carried.
    ...(opts.answer
      ? {
          determinantSender: async (request) => {
            expect(request).toEqual({ producer: me, attempt: opts.attempt, from: opts.restore?.determinants ?? 0 });
            await blobs.put(determinantAnswerKey(JOB, me, opts.attempt, consumer), JSON.stringify({ consumer, ...opts.answer }));
          },
        }
      : {}),
  });
  // The producer side of the source -> process edge: a source numbers its records in lineage 0, so a replay has the same positions.
  const producer = new RecordWriter({ edge: inEdge, producerIndex: 0, consumerParallelism: 1, attempt: 0, lineage: 0, queueOf: () => inQueue, transport });
  const write = async (records: In[], end = false, barrier?: { c: number; after: number }) => {
    for (const [i, r] of records.entries()) {
      producer.emit(r);
      if (barrier && i + 1 === barrier.after) producer.emitEvent({ t: 'b', c: barrier.c });
    }
    if (end) producer.emitEvent({ t: 'e' });
    await producer.flush();
  };
  return { runner, checkpoints, done: runner.run(), transport, write };
}

const BATCHES: { records: In[]; pauseMs: number }[] = [
  { records: [{ k: 'a', v: 1 }, { k: 'b', v: 1 }], pauseMs: 450 }, // timers fire (100 ms)
  { records: [{ k: 'a', v: 2 }, { k: 'c', v: 1 }], pauseMs: 1_700 }, // timers fire, then a 1 s step: a, b, c expire (700 ms)
  { records: [{ k: 'a', v: 3 }, { k: 'b', v: 2 }], pauseMs: 300 },
  { records: [{ k: 'b', v: 3 }, { k: 'c', v: 2 }], pauseMs: 450 },
];
const ALL = BATCHES.flatMap((b) => b.records);

/** The dead attempt: attempt 0 over input in batches, with real pauses between them (`barrierIn`: checkpoint 1's barrier after that batch's first record). */
async function deadAttempt(barrierIn?: number): Promise<ReturnType<typeof decode> & { snapshots: SubtaskSnapshot[] }> {
  const run = await start({ attempt: 0, exactOnce: true });
  for (const [i, b] of BATCHES.entries()) {
    await run.write(b.records, false, i === barrierIn ? { c: 1, after: 1 } : undefined);
    await sleep(b.pauseMs);
  }
  await run.write([], true);
  expect(await run.done, String(run.runner.error)).toBe('finished');
  return { ...decode(run.transport.sent), snapshots: run.checkpoints.snapshots };
}

/**
 * A restart: attempt 1, the same input again at once (replayed; restored from a checkpoint, the
 * input gate skips what precedes its positions), the wall clock an hour later.
 */
async function restart(exactOnce: boolean, answer?: { first: number; steps: Step[] }, restore?: SubtaskSnapshot): Promise<ReturnType<typeof decode>> {
  const realNow = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
  const run = await start({ attempt: 1, exactOnce, ...(answer ? { answer } : {}), ...(restore ? { restore } : {}) });
  await run.write(ALL, true);
  expect(await run.done, String(run.runner.error)).toBe('finished');
  vi.restoreAllMocks();
  return decode(run.transport.sent, exactOnce ? 0 : 1);
}

const shape = (records: Out[]) => records.map((r) => ('e' in r ? `${r.e}${r.v}<${r.prev ?? '-'}` : `t:${r.timer}`));

describe('single-exact: processing time as a determinant', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a restarted attempt following its dead attempt\'s steps regenerates what it sent, at the same positions', async () => {
    const dead = await deadAttempt();
    // The clock mattered: timers fired between the batches, state expired in the long pause.
    expect(dead.records.filter((r) => 'timer' in r).length).toBeGreaterThanOrEqual(5);
    expect(shape(dead.records)).toContain('a3<-'); // a's value 2 expired before a3
    expect(shape(dead.records)).toContain('a2<1'); // a's value 1 had not expired before a2
    // Processing time was recorded: the first step is the starting clock, then steps between batches.
    const pSteps = dead.steps.filter((s) => s[0] === 'p');
    expect(dead.steps[0]?.[0]).toBe('p');
    expect(pSteps.length).toBeGreaterThanOrEqual(4);
    // Every clock the function read is a recorded step.
    const recorded = new Set(pSteps.map((s) => s[1]));
    for (const r of dead.records) expect(recorded.has(r.at)).toBe(true);

    const replayed = await restart(true, dead.store.from('producer', 0));
    expect(replayed.records.length).toBeGreaterThanOrEqual(dead.records.length);
    expect(replayed.records.slice(0, dead.records.length)).toEqual(dead.records);
    // The followed steps are recorded again, as they were: a later restart would follow them too.
    expect(replayed.steps.slice(0, dead.steps.length)).toEqual(dead.steps);

    // Not vacuous: without the recorded clock (a plain 'single' restart) the output differs, and
    // not only in the clock's value: timers fire elsewhere and no state expires.
    const plain = await restart(false);
    expect(shape(plain.records)).not.toEqual(shape(dead.records));
    expect(shape(plain.records)).not.toContain('a3<-');
  }, 30_000);

  it('does so from a checkpoint too: the snapshot holds the recorded clock, the steps go on from its count', async () => {
    // Checkpoint 1 inside the second batch: the batch's other record reads the checkpointed clock
    // (no step between), its timers and the expiries come after it.
    const dead = await deadAttempt(1);
    expect(dead.snapshots.map((s) => s.checkpointId)).toEqual([1]);
    const snapshot = dead.snapshots[0]!;
    expect(typeof snapshot.processingTime).toBe('number');
    expect(snapshot.determinants).toBeGreaterThan(0);
    const restoredAt = snapshot.writers![0]!.position[0]!;
    expect(restoredAt).toBeGreaterThan(0);
    expect(restoredAt).toBeLessThan(dead.records.length);

    const replayed = await restart(true, dead.store.from('producer', snapshot.determinants!), snapshot);
    // It sends again from its checkpoint's positions on: what it sent then, record for record.
    expect(replayed.first).toBe(restoredAt);
    expect(replayed.records.slice(0, dead.records.length - restoredAt)).toEqual(dead.records.slice(restoredAt));
    expect(replayed.records.length).toBeGreaterThanOrEqual(dead.records.length - restoredAt);
  }, 30_000);
});
