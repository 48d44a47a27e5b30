/**
 * Re-reading a source to regenerate a replay its in-flight log no longer holds.
 *
 * A restarted consumer asks each producer for its channel from the position it restored (replay.ts).
 * A source's log starts where the source last restored or trimmed: at a checkpoint that can be
 * newer than the consumer's. The source restarted from checkpoint N+1 while its consumer restored
 * from N (a checkpoint completed between the two restarts, or with the consumer's dead attempt's
 * acknowledgement), or it trimmed its log at N+1 before the consumer's request came: the records
 * between the two positions were in the dead attempt's log, or in the trimmed part, and nowhere else
 * (chaos seed 45375: both aggregates, then both generators killed during their replays; 107 lost).
 *
 * A source's records are a function of its offsets (lineage 0 for all its attempts: messages.ts),
 * so it can give them again: every checkpoint it takes keeps a **read base** (its offsets and its
 * writers' positions at the barrier, what the snapshot holds anyway), and the snapshot carries the
 * bases of the checkpoints its log still covered, and of the last completed ones before them. A
 * request below the log's start re-reads from the newest base at or below the position asked for,
 * with a second instance of the source and of its operator chain whose writers send nothing, and
 * takes the records of that channel from the position asked for up to the log's start: the same
 * records at the same positions, with the same partitioning (the writers' round-robin is part of
 * the base). Barriers in that range belong to completed checkpoints (a log keeps none of those
 * either), and the regenerated messages carry no watermarks (a later message or the replay's end
 * brings the producer's watermark: event time is never moved past records, only later).
 */
import type { RuntimeContext } from '../api/functions';
import type { ChannelTransport } from '../ports/channels';
import type { ExecutionEdge, TaskVertex } from '../graph/execution-graph';
import type { LoggedMessage } from './inflight-log';
import { decodeChannelMessage } from './messages';
import { OperatorChain } from './operator-chain';
import { RecordWriter } from './record-writer';
import type { ReadBase } from './handover';

export type { ReadBase } from './handover';

/** Completed checkpoints whose bases are kept besides the pending ones (a consumer may restore from one of them). */
const COMPLETED_KEPT = 2;

/** The read bases of a source subtask, oldest first. */
export class ReadBases {
  private bases: ReadBase[] = [];
  private readonly completed = new Set<number>();

  /** Checkpoint N's base (taken, or restored from). */
  add(base: ReadBase): void {
    this.bases = [...this.bases.filter((b) => b.checkpointId !== base.checkpointId), base].sort((a, b) => a.checkpointId - b.checkpointId);
  }

  /** Checkpoint N completed: bases before the last COMPLETED_KEPT completed ones are not needed any more. */
  complete(checkpointId: number): void {
    this.completed.add(checkpointId);
    const kept = [...this.completed].sort((a, b) => b - a).slice(0, COMPLETED_KEPT);
    for (const id of [...this.completed]) if (!kept.includes(id)) this.completed.delete(id);
    const oldest = Math.min(...kept);
    if (kept.length === COMPLETED_KEPT) this.bases = this.bases.filter((b) => b.checkpointId >= oldest);
  }

  state(): ReadBase[] {
    return this.bases.map((b) => ({ ...b, writers: b.writers.map((w) => ({ ...w, position: [...w.position] })) }));
  }

  restore(bases: readonly ReadBase[]): void {
    for (const b of bases) this.add(b);
  }

  /** The newest base from which channel `consumer` of `edgeId` in `lineage` is at or before `position`. */
  find(edgeId: string, lineage: number, consumer: number, position: number): ReadBase | undefined {
    for (let i = this.bases.length - 1; i >= 0; i--) {
      const w = this.bases[i]!.writers.find((x) => x.edgeId === edgeId);
      if (w && w.lineage === lineage && (w.position[consumer] ?? Infinity) <= position) return this.bases[i];
    }
    return undefined;
  }
}

export interface RereadOptions {
  task: TaskVertex;
  index: number;
  /** Parallelism of a task (the consumers of each output edge). */
  parallelism: (taskId: string) => number;
  /** The source's context; the re-read one is told it reads again (`rereading`). */
  context: RuntimeContext;
  base: ReadBase;
  edgeId: string;
  consumer: number;
  /** Record positions [from, to) of the channel to regenerate. */
  from: number;
  to: number;
  batchSize?: number;
  maxMessageBytes?: number;
}

/** Polls that return nothing in a row before a re-read gives up (a source with nothing more to read). */
const MAX_EMPTY_POLLS = 100;

/**
 * Re-reads the source from `base` and returns the channel's messages covering [from, x), x ≤ to,
 * records only (x < to when the source ended before, or gave nothing more).
 */
export async function rereadChannel(options: RereadOptions): Promise<LoggedMessage[]> {
  const { task, index, base, edgeId, consumer, from, to } = options;
  const head = task.operators[0]!;
  if (head.kind !== 'source' || to <= from) return [];
  const captured: string[] = [];
  const target = `${edgeId}/${consumer}`;
  const transport = {
    send: async (queue: string, messages: readonly { body: string }[]) => {
      if (queue === target) for (const m of messages) captured.push(m.body);
    },
  } as unknown as ChannelTransport;
  const writers = task.outputs.map(
    (edge: ExecutionEdge) =>
      new RecordWriter({
        edge,
        producerIndex: index,
        consumerParallelism: options.parallelism(edge.to),
        attempt: 0,
        queueOf: (c) => `${edge.id}/${c}`,
        transport,
        lineage: 0,
        ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}),
      }),
  );
  for (const w of base.writers) writers.find((x) => x.edgeId === w.edgeId)?.restorePositions(w);
  const writer = writers.find((w) => w.edgeId === edgeId);
  if (!writer) return [];
  const chain = new OperatorChain(task, writers);
  const source = head.source!();
  await source.open({ ...options.context, rereading: true });
  try {
    source.restoreOffsets(base.source);
    const position = () => writer.positions().position[consumer]!;
    let empty = 0;
    while (position() < to && empty < MAX_EMPTY_POLLS) {
      const batch = await source.poll(options.batchSize ?? 2000);
      for (const record of batch.records) chain.push(record);
      empty = batch.records.length === 0 ? empty + 1 : 0;
      await Promise.all(writers.map((w) => w.flush(false)));
      if (batch.done) break;
    }
    await Promise.all(writers.map((w) => w.flush(true)));
  } finally {
    await source.close?.();
  }
  const out: LoggedMessage[] = [];
  let next = from;
  for (const body of captured) {
    const m = decodeChannelMessage(body);
    if (m.t !== 'd' || m.n === undefined) continue;
    const lo = Math.max(m.n, next);
    const hi = Math.min(m.n + m.r.length, to);
    if (hi <= lo) continue;
    // Positions are consecutive per channel: a hole means the re-read is not the stream the log had.
    if (lo !== next) break;
    const records = m.r.slice(lo - m.n, hi - m.n);
    out.push({ first: lo, count: records.length, fields: `"r":${JSON.stringify(records)}` });
    next = hi;
  }
  return out;
}
