/**
 * One running subtask: reads its source or its input gate, pushes records through its operator
 * chain, writes to its record writers, and takes part in checkpoints:
 *
 * - a source takes a trigger between two polls: it snapshots its offsets, then sends barrier N;
 * - any other subtask aligns barrier N across its open input channels (events that arrive on a
 *   channel after its barrier wait in memory), snapshots, forwards the barrier, then goes on;
 * - a sink stages its output under N and commits every staged transaction up to N when the
 *   coordinator says N is complete for its region.
 *
 * At end of input a sink stages its last output and waits for `commitFinal`, sent once every
 * subtask of its region has ended, so no output becomes visible that a region restart would
 * produce again.
 */
import type { Json, RuntimeContext, SourceFunction } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { Clock } from '../ports/clock';
import type { ExecutionEdge, ExecutionGraph, TaskVertex } from '../graph/execution-graph';
import { subPartitionQueue, subtaskId } from '../graph/execution-graph';
import type { CheckpointIO, SubtaskSnapshot } from './checkpoint-io';
import type { ChannelCounters, SubtaskHandover } from './handover';
import { InputGate, channelKey, type GateEvent } from './input-gate';
import { appendTo } from './multimap';
import type { KeyedStateSnapshot } from './keyed-state';
import { END_OF_TIME, OperatorChain } from './operator-chain';
import { RecordWriter, type SubPartitionGate } from './record-writer';
import { UnionStateBackend } from './union-state';

export type SubtaskStatus = 'created' | 'running' | 'ended' | 'finished' | 'failed' | 'cancelled' | 'handed-over';

export interface SubtaskEnvironment {
  jobId: string;
  graph: ExecutionGraph;
  task: TaskVertex;
  index: number;
  attempt: number;
  queuePrefix: string;
  channels: ChannelTransport;
  blobs: BlobStore;
  gate?: SubPartitionGate;
  /** Snapshots and acknowledgements; without it barriers pass through unaligned. */
  checkpoints?: CheckpointIO;
  /** State to start from (the region's restore point). */
  restore?: SubtaskSnapshot;
  /** Live state handed over by the previous invocation of this attempt (instead of `restore`). */
  resume?: SubtaskHandover;
  /** Invocation of this attempt (0 first; +1 per hand-over). */
  generation?: number;
  /**
   * Union list state to start from: name -> the entries of every subtask of this task at their
   * regions' restore points (see unit-host). Restored before any operator opens. May be shared by
   * the subtasks of one unit: each subtask restores a copy.
   */
  restoreUnion?: Record<string, Json[]>;
  /** Lowest producer attempt accepted per input channel. */
  minAttempt?: (edgeId: string, producer: number) => number;
  /** Records a source reads per poll. */
  sourceBatchSize?: number;
  /** Longest time records wait in a writer buffer before they are sent. */
  lingerMs?: number;
  /** Time for the input gate's visibility extension and gap timeouts (tests move it). */
  clock?: Clock;
  /**
   * Called once the subtask has finished (status `finished`, output and end of input sent on) and
   * before it deletes the end-of-input messages it held: the unit reports itself there, so a kill
   * in between leaves a unit recorded finished, not one restarted into a queue whose end of input
   * is gone (it would wait for it forever).
   */
  onFinished?: () => Promise<void>;
}

export interface SubtaskCounters {
  recordsIn: number;
  recordsOut: number;
  dropped: number;
  /** Input messages dropped as redeliveries of a sequence number already delivered. */
  duplicates: number;
  fenced: number;
  /** Input records dropped as already processed (a restored source replaying them). */
  duplicateRecords: number;
  /** Input records never seen: a channel's record position jumped (see messages.ts). */
  missingRecords: number;
  /** Input records processed from messages received before (re-read after this subtask restarted). */
  replayedRecords: number;
  /** Input deletes whose receipt had expired (the message came again). */
  expiredReceipts: number;
  /** Input messages that came before an earlier one of their channel and waited for it. */
  reordered: number;
  /** Per input channel (edge/producer), the channels with non-zero record counters. */
  channels?: Record<string, ChannelCounters>;
  lastCheckpoint: number;
  /** A barrier alignment in progress: the checkpoint, the channels it still waits for, events held. */
  aligning?: { checkpointId: number; waitingFor: string[]; held: number };
  /** Channels (edge/producer) still open. */
  openChannels?: number;
}

export class SubtaskRunner {
  readonly id: string;
  status: SubtaskStatus = 'created';
  error: unknown;
  private readonly writers: RecordWriter[];
  private readonly chain: OperatorChain;
  private readonly source: SourceFunction<Json> | undefined;
  /** Union list state of this subtask, shared by the operators of its chain. */
  private readonly union = new UnionStateBackend();
  private inputGate: InputGate | undefined;
  private recordsIn = 0;
  private cancelled = false;
  private lastFlush = Date.now();
  /** Checkpoints triggered at this source and not yet taken. */
  private readonly triggers: number[] = [];
  /** Checkpoints the coordinator declared complete, to commit between two batches. */
  private readonly completed: number[] = [];
  /** Checkpoints the coordinator aborted, to drop from alignment between two batches. */
  private readonly aborted: number[] = [];
  /** Sink transactions staged and not yet committed, by checkpoint id. */
  private sinkPending: { checkpointId: number; staged: Json }[] = [];
  private lastCheckpoint = 0;
  /** Barrier alignment in progress: the checkpoint and the channels whose barrier has arrived. */
  private aligning: { checkpointId: number; arrived: Set<string> } | undefined;
  private blocked: GateEvent[] = [];
  /** Receipts of input messages whose effects are done, to delete after the next flush. */
  private acks = new Map<string, string[]>();
  /**
   * Receipts of end-of-input messages, deleted only once this subtask has finished: if it dies
   * before (a sink waiting to commit, say), they come back for its next attempt, which would
   * otherwise wait for an end of input its producers will never send again.
   */
  private readonly ends = new Map<string, string[]>();
  /** Events taken from the gate and not yet handled (a batch, or what an alignment released). */
  private readonly unhandled: { events: readonly GateEvent[]; next: number }[] = [];
  private finalCommit: (() => void) | undefined;
  private finalCommitRequested = false;
  /** Hand-over asked for: stop at the next safe point, waiting at most until `deadline` for an alignment. */
  private handover: { deadline: number } | undefined;
  /** The state left for the next invocation, once handed over. */
  private handedOver: SubtaskHandover | undefined;

  constructor(private readonly env: SubtaskEnvironment) {
    const { task, index, graph } = env;
    this.id = subtaskId(task.id, index);
    const parallelism = new Map(graph.tasks.map((t) => [t.id, t.parallelism]));
    const head = task.operators[0]!;
    this.writers = task.outputs.map(
      (edge) =>
        new RecordWriter({
          edge,
          producerIndex: index,
          consumerParallelism: parallelism.get(edge.to)!,
          attempt: env.attempt,
          queueOf: (consumer) => subPartitionQueue(env.queuePrefix, env.jobId, edge.id, consumer),
          transport: env.channels,
          gate: env.gate,
          // A source's records are a function of its offsets: one lineage for all its attempts,
          // continued from a checkpoint (restore). Other tasks number each attempt on its own.
          lineage: head.kind === 'source' ? 0 : env.attempt,
        }),
    );
    this.chain = new OperatorChain(task, this.writers);
    if (head.kind === 'source') this.source = head.source!();
  }

  counters(): SubtaskCounters {
    return {
      recordsIn: this.recordsIn,
      recordsOut: this.chain.recordsOut,
      dropped: this.writers.reduce((n, w) => n + w.dropped.reduce((a, b) => a + b, 0), 0),
      ...this.gateCounters(),
      ...(this.inputGate && Object.keys(this.inputGate.channelCounters()).length > 0 ? { channels: this.inputGate.channelCounters() } : {}),
      lastCheckpoint: this.lastCheckpoint,
      ...(this.aligning
        ? {
            aligning: {
              checkpointId: this.aligning.checkpointId,
              waitingFor: [...this.inputGate!.channels].filter(([k, c]) => !c.ended && !this.aligning!.arrived.has(k)).map(([k]) => k),
              held: this.blocked.length,
            },
          }
        : {}),
      ...(this.inputGate ? { openChannels: [...this.inputGate.channels.values()].filter((c) => !c.ended).length } : {}),
    };
  }

  cancel(): void {
    this.cancelled = true;
    this.finalCommit?.();
  }

  /** Source subtasks: take checkpoint N at the next opportunity. */
  triggerCheckpoint(checkpointId: number): void {
    if (this.source && checkpointId > this.lastCheckpoint) this.triggers.push(checkpointId);
  }

  /** The coordinator completed N for this subtask's region: commit staged output up to N. */
  checkpointComplete(checkpointId: number): void {
    this.completed.push(checkpointId);
  }

  /** The coordinator gave checkpoint N up for this region: stop aligning it. */
  abortCheckpoint(checkpointId: number): void {
    this.aborted.push(checkpointId);
  }

  /**
   * The unit must end soon: stop at the next safe point and keep the live state for the next
   * invocation. A barrier alignment in progress may finish within `graceMs`; after that its
   * checkpoint is declined (the region's next checkpoint covers it).
   */
  requestHandover(graceMs: number): void {
    this.handover = { deadline: Date.now() + graceMs };
    this.finalCommit?.();
  }

  /** What the next invocation continues from (after `run` resolved 'handed-over' or 'finished'). */
  handoverState(): SubtaskHandover {
    if (this.handedOver) return this.handedOver;
    if (this.status !== 'finished') throw new Error(`subtask ${this.id} is ${this.status}: nothing to hand over`);
    return {
      subtask: this.id,
      status: 'finished',
      lastCheckpoint: this.lastCheckpoint,
      watermark: this.chain.currentWatermark,
      sinkPending: [],
      triggers: [],
      writers: [],
      channels: [],
      counters: this.handoverCounters(),
    };
  }

  /** Every subtask of this region has ended: the last staged output may become visible. */
  commitFinal(): void {
    this.finalCommitRequested = true;
    this.finalCommit?.();
  }

  async run(): Promise<SubtaskStatus> {
    this.status = 'running';
    try {
      // Union state first: operators read it when they open. A copy, since the union may be shared.
      // A hand-over carries this subtask's live union state instead.
      const union = this.env.resume ? this.env.resume.union : this.env.restoreUnion;
      if (union) this.union.restore(structuredClone(union));
      const ctx = this.context();
      await this.chain.open(ctx);
      if (this.source) await this.source.open(ctx);
      const resume = this.env.resume;
      if (resume) this.resume(resume);
      else if (this.env.restore) await this.restore(this.env.restore);
      if (resume?.status === 'finished') {
        this.status = 'finished';
        await this.env.onFinished?.();
        return this.status;
      }
      if (resume?.status === 'ended') {
        this.status = 'ended';
        await this.awaitFinalCommit(resume.finalStaged);
      } else {
        const quiesced = this.source ? await this.runSource() : await this.runInputs();
        if (this.cancelled) return (this.status = 'cancelled');
        if (quiesced) {
          await this.keepForHandover('running');
          return (this.status = 'handed-over');
        }
        await this.finish();
        if (!this.handedOver && !this.cancelled) {
          this.status = 'finished';
          await this.env.onFinished?.();
          await this.deleteEnds();
        }
      }
      if (this.handedOver) return (this.status = 'handed-over');
      return (this.status = this.cancelled ? 'cancelled' : 'finished');
    } catch (error) {
      this.error = error;
      return (this.status = 'failed');
    } finally {
      await this.inputGate?.stop();
      await this.source?.close?.();
    }
  }

  private context(): RuntimeContext {
    const { env } = this;
    return {
      jobId: env.jobId,
      operatorId: env.task.operators[0]!.id,
      subtaskIndex: env.index,
      parallelism: env.task.parallelism,
      attempt: env.attempt,
      blobs: env.blobs,
      unionState: <T extends Json>(name: string) => this.union.state<T>(name),
    };
  }

  /** Restores state from the snapshot; staged output of the restored checkpoint is committed. */
  private async restore(snapshot: SubtaskSnapshot): Promise<void> {
    if (snapshot.source !== undefined) this.source?.restoreOffsets(snapshot.source);
    // A source re-reads from its offsets: its records take the positions they had (see messages.ts).
    if (this.source) {
      for (const w of snapshot.writers ?? []) {
        const writer = this.writers.find((x) => x.edgeId === w.edgeId);
        if (!writer) throw new Error(`snapshot of ${this.id} names output edge ${w.edgeId}, which the subtask does not have`);
        writer.restorePositions(w);
      }
    }
    if (snapshot.keyed) this.chain.keyedState?.restore(snapshot.keyed);
    if (snapshot.watermark > Number.MIN_SAFE_INTEGER) this.chain.advanceWatermark(snapshot.watermark);
    this.lastCheckpoint = snapshot.checkpointId;
    // The restored checkpoint completed, so everything staged up to it belongs in the output.
    for (const pending of snapshot.sinkPending ?? []) await this.chain.sink!.commit(pending.staged);
  }

  /** Resumes a previous invocation's live state (see handover.ts). */
  private resume(h: SubtaskHandover): void {
    if (h.subtask !== this.id) throw new Error(`subtask ${this.id} given the hand-over of ${h.subtask}`);
    for (const w of h.writers) {
      const writer = this.writers.find((x) => x.edgeId === w.edgeId);
      if (!writer) throw new Error(`hand-over of ${this.id} names output edge ${w.edgeId}, which the subtask does not have`);
      writer.resume(w);
    }
    if (h.source !== undefined) this.source?.restoreOffsets(h.source);
    if (h.keyed) this.chain.keyedState?.restore(h.keyed);
    // Timers up to it have fired already (they are gone from the keyed state): nothing fires twice.
    if (h.watermark > Number.MIN_SAFE_INTEGER) this.chain.advanceWatermark(h.watermark);
    this.lastCheckpoint = h.lastCheckpoint;
    this.sinkPending = [...h.sinkPending];
    this.triggers.push(...h.triggers);
    this.recordsIn = h.counters.recordsIn;
    this.chain.recordsOut = h.counters.recordsOut;
  }

  private handoverCounters(): SubtaskHandover['counters'] {
    return { recordsIn: this.recordsIn, recordsOut: this.chain.recordsOut, ...this.gateCounters() };
  }

  /** A subtask resumed as finished starts no input gate: its counters are the handed-over ones. */
  private gateCounters(): Omit<SubtaskCounters, 'recordsIn' | 'recordsOut' | 'dropped' | 'lastCheckpoint' | 'aligning' | 'openChannels' | 'channels'> {
    const carried = this.env.resume?.counters;
    const gate = this.inputGate?.counters();
    return {
      duplicates: this.inputGate?.duplicates ?? carried?.duplicates ?? 0,
      fenced: this.inputGate?.fenced ?? carried?.fenced ?? 0,
      duplicateRecords: gate?.duplicateRecords ?? carried?.duplicateRecords ?? 0,
      missingRecords: gate?.missingRecords ?? carried?.missingRecords ?? 0,
      replayedRecords: gate?.replayedRecords ?? carried?.replayedRecords ?? 0,
      expiredReceipts: gate?.expiredReceipts ?? carried?.expiredReceipts ?? 0,
      reordered: gate?.reordered ?? carried?.reordered ?? 0,
    };
  }

  /**
   * Keeps the live state for the next invocation. What a sink received since its last checkpoint
   * is staged as its own transaction under the next checkpoint id: it commits with that
   * checkpoint (it precedes its barrier), and is never committed if the region restores instead.
   */
  private async keepForHandover(status: 'running' | 'ended', finalStaged?: Json): Promise<void> {
    // Held events would be lost: their sequence numbers are in the handed-over channel state.
    if (this.aligning || this.blocked.length > 0) throw new Error(`subtask ${this.id}: hand-over with an alignment open (${this.blocked.length} events held)`);
    const sink = this.chain.sink;
    if (sink && status === 'running') {
      const next = this.lastCheckpoint + 1;
      const staged = await sink.prepare(`h${next}-a${this.env.attempt}-g${this.env.generation ?? 0}`, { watermark: this.chain.currentWatermark });
      this.sinkPending.push({ checkpointId: next, staged });
    }
    const union = this.union.names.length > 0;
    this.handedOver = {
      subtask: this.id,
      status,
      lastCheckpoint: this.lastCheckpoint,
      ...this.operatorState(),
      ...(union ? { union: this.union.snapshot() } : {}),
      sinkPending: this.sinkPending,
      ...(finalStaged !== undefined ? { finalStaged } : {}),
      triggers: [...this.triggers],
      writers: this.writers.map((w) => w.handoverState()),
      channels: this.inputGate?.handoverState() ?? [],
      counters: this.handoverCounters(),
    };
  }

  /** Returns true when it stopped for a hand-over. */
  private async runSource(): Promise<boolean> {
    const source = this.source!;
    const batchSize = this.env.sourceBatchSize ?? 2000;
    while (!this.cancelled) {
      while (this.triggers.length > 0) await this.checkpoint(this.triggers.shift()!);
      await this.commitCompleted();
      if (this.handover) {
        await this.flush();
        return true;
      }
      const batch = await source.poll(batchSize);
      for (const record of batch.records) this.chain.push(record);
      this.recordsIn += batch.records.length;
      if (batch.watermark !== undefined) this.chain.advanceWatermark(batch.watermark);
      if (batch.done) return false;
      await this.maybeFlush();
    }
    return false;
  }

  /** Returns true when it stopped for a hand-over. */
  private async runInputs(): Promise<boolean> {
    const { env } = this;
    const parallelism = new Map(env.graph.tasks.map((t) => [t.id, t.parallelism]));
    let failure: unknown;
    const gate = new InputGate({
      inputs: env.task.inputs,
      consumerIndex: env.index,
      producerParallelism: (taskId) => parallelism.get(taskId)!,
      queueOf: (edge: ExecutionEdge) => subPartitionQueue(env.queuePrefix, env.jobId, edge.id, env.index),
      transport: env.channels,
      minAttempt: env.minAttempt,
      ...(env.clock ? { clock: env.clock } : {}),
      onError: (error) => (failure = error),
    });
    this.inputGate = gate;
    if (env.resume) {
      gate.resume(env.resume.channels, env.resume.counters);
      gate.duplicates = env.resume.counters.duplicates;
      gate.fenced = env.resume.counters.fenced;
    } else if (env.restore?.channels) {
      gate.restorePositions(env.restore.channels);
    }
    gate.start();
    while (!this.cancelled && !(gate.allEnded() && !this.aligning)) {
      const { events, discarded } = await gate.next(200);
      if (failure) throw failure;
      for (const [queue, receipts] of discarded) appendTo(this.acks, queue, ...receipts);
      await this.handleAll(events);
      if (!gate.allEnded()) {
        const watermark = gate.combinedWatermark();
        if (watermark > this.chain.currentWatermark) this.chain.advanceWatermark(watermark);
      }
      await this.commitCompleted();
      await this.dropAborted();
      // Input is deleted only after what it produced is safely in the next queues; input held
      // back by barrier alignment is deleted once it has been processed.
      if (events.length > 0) await this.flush();
      await this.acknowledgeInput();
      gate.release();
      if (this.handover && (!this.aligning || Date.now() >= this.handover.deadline)) {
        await this.quiesceInputs(gate);
        return true;
      }
    }
    return false;
  }

  private async acknowledgeInput(): Promise<void> {
    if (this.acks.size === 0) return;
    const acks = this.acks;
    this.acks = new Map();
    await this.inputGate!.acknowledge(acks);
  }

  /**
   * Hand-over of a consumer: no new receives, what is already received gets processed, an
   * alignment still open is declined (its blocked input is then processed like an aborted one),
   * output flushed, input deleted. Nothing stays in flight for the successor to wait out.
   */
  private async quiesceInputs(gate: InputGate): Promise<void> {
    await gate.drain();
    while (gate.buffered) {
      const { events, discarded } = await gate.next(0);
      for (const [queue, receipts] of discarded) appendTo(this.acks, queue, ...receipts);
      await this.handleAll(events);
    }
    await this.commitCompleted();
    await this.dropAborted();
    // Processing what an alignment held back may open the next one (its barrier was held too):
    // decline until nothing is held, so no event stays unprocessed behind the hand-over.
    while (this.aligning) {
      const { checkpointId } = this.aligning;
      await this.env.checkpoints?.decline(checkpointId, this.id, `task unit handed over to its next invocation while aligning checkpoint ${checkpointId}`);
      this.lastCheckpoint = Math.max(this.lastCheckpoint, checkpointId);
      await this.releaseBlocked(undefined);
    }
    if (!gate.allEnded()) {
      const watermark = gate.combinedWatermark();
      if (watermark > this.chain.currentWatermark) this.chain.advanceWatermark(watermark);
    }
    await this.flush();
    await this.acknowledgeInput();
  }

  /** Handles events in order; the ones not handled yet stay visible to a checkpoint taken meanwhile. */
  private async handleAll(events: readonly GateEvent[]): Promise<void> {
    // An index, not shift(): a released alignment can hand over thousands of events at once.
    const rest = { events, next: 0 };
    this.unhandled.push(rest);
    try {
      while (rest.next < events.length) await this.handle(events[rest.next++]!);
    } finally {
      this.unhandled.splice(this.unhandled.indexOf(rest), 1);
    }
  }

  private async handle(event: GateEvent): Promise<void> {
    const { channel, message } = event;
    const key = channelKey(channel.edge.id, channel.producer);
    if (this.aligning?.arrived.has(key)) {
      this.blocked.push(event); // after this channel's barrier: wait for the others
      return;
    }
    // No receipt: the message came early and was deleted when the gate took it into memory.
    if (event.receipt) {
      appendTo(message.t === 'e' ? this.ends : this.acks, event.queue, event.receipt);
    }
    switch (message.t) {
      case 'd':
        for (const record of message.r) this.chain.push(record, channel.edge.input);
        this.recordsIn += message.r.length;
        if (message.w !== undefined) channel.watermark = Math.max(channel.watermark, message.w);
        return;
      case 'w':
        channel.watermark = Math.max(channel.watermark, message.w);
        return;
      case 'e':
        channel.ended = true;
        return this.maybeAligned();
      case 'b':
        return this.onBarrier(key, message.c);
    }
  }

  private async onBarrier(key: string, checkpointId: number): Promise<void> {
    if (!this.env.checkpoints || checkpointId <= this.lastCheckpoint) return; // stale or unmanaged
    if (this.aligning && checkpointId > this.aligning.checkpointId) {
      // A newer barrier overtook the one being aligned (its producer never sent the older one,
      // e.g. it restarted): give the older checkpoint up and align the newer one.
      await this.env.checkpoints.decline(this.aligning.checkpointId, this.id, `barrier ${checkpointId} arrived before barrier ${this.aligning.checkpointId} was aligned`);
      await this.releaseBlocked(checkpointId);
    }
    // Replaying what waited may already have completed this checkpoint: never align it again.
    if (checkpointId <= this.lastCheckpoint) return;
    if (this.aligning && checkpointId < this.aligning.checkpointId) return;
    this.aligning ??= { checkpointId, arrived: new Set() };
    this.aligning.arrived.add(key);
    await this.maybeAligned();
  }

  /** Takes the checkpoint once every open channel has delivered its barrier. */
  private async maybeAligned(): Promise<void> {
    const aligning = this.aligning;
    if (!aligning) return;
    for (const [key, channel] of this.inputGate!.channels) if (!channel.ended && !aligning.arrived.has(key)) return;
    await this.checkpoint(aligning.checkpointId);
    await this.releaseBlocked(undefined);
  }

  /** Ends the current alignment and processes what waited behind it (possibly starting the next). */
  private async releaseBlocked(next: number | undefined): Promise<void> {
    const waiting = this.blocked;
    this.blocked = [];
    this.aligning = next === undefined ? undefined : { checkpointId: next, arrived: new Set() };
    await this.handleAll(waiting);
  }

  /**
   * The operators' state that a checkpoint snapshot and a hand-over both carry (they differ in
   * how they keep union state, writers and channels: a snapshot restores a new attempt, a
   * hand-over continues the same one).
   */
  private operatorState(): { watermark: number; source?: Json; keyed?: KeyedStateSnapshot } {
    return {
      watermark: this.chain.currentWatermark,
      ...(this.source ? { source: this.source.snapshotOffsets() } : {}),
      ...(this.chain.keyedState ? { keyed: this.chain.keyedState.snapshot() } : {}),
    };
  }

  /** Snapshot, acknowledge, forward the barrier. */
  private async checkpoint(checkpointId: number): Promise<void> {
    const io = this.env.checkpoints;
    if (!io || checkpointId <= this.lastCheckpoint) return;
    const sink = this.chain.sink;
    if (sink) this.sinkPending.push({ checkpointId, staged: await sink.prepare(`c${checkpointId}-a${this.env.attempt}`, { watermark: this.chain.currentWatermark }) });
    // A union object only when some union state name exists (even empty): a subtask that never
    // asked for union state writes none. Both writes take their state before their first await.
    const union = this.union.names.length > 0;
    const { task, index } = this.env;
    const [handle, unionHandle] = await Promise.all([
      io.writeSnapshot({
        checkpointId,
        subtask: this.id,
        ...this.operatorState(),
        ...(sink ? { sinkPending: this.sinkPending } : {}),
        ...(union ? { union: true } : {}),
        ...(this.writers.length > 0 ? { writers: this.writers.map((w) => w.positions()) } : {}),
        // Events delivered and not yet processed are not in the state: neither those held by the
        // alignment nor the rest of the batch that delivered the last barrier.
        ...(this.inputGate ? { channels: this.inputGate.positions([...this.blocked, ...this.unhandled.flatMap((u) => u.events.slice(u.next))]) } : {}),
      }),
      union ? io.writeUnion({ checkpointId, taskId: task.id, subtaskIndex: index, parallelism: task.parallelism }, this.union) : undefined,
    ]);
    this.lastCheckpoint = checkpointId;
    for (const w of this.writers) w.emitEvent({ t: 'b', c: checkpointId });
    await this.flush();
    // The snapshot first (restore reads it), then the union object: retention and discard cover both.
    await io.acknowledge(checkpointId, this.id, unionHandle ? [handle, unionHandle] : [handle]);
  }

  /** An aborted alignment lets its blocked channels go on (a dead producer's barrier never comes). */
  private async dropAborted(): Promise<void> {
    if (this.aborted.length === 0) return;
    const aborted = new Set(this.aborted.splice(0));
    if (this.aligning && aborted.has(this.aligning.checkpointId)) {
      this.lastCheckpoint = Math.max(this.lastCheckpoint, this.aligning.checkpointId);
      await this.releaseBlocked(undefined);
    }
  }

  private async commitCompleted(): Promise<void> {
    if (this.completed.length === 0) return;
    const upTo = Math.max(...this.completed.splice(0));
    const sink = this.chain.sink;
    if (!sink) return;
    const due = this.sinkPending.filter((p) => p.checkpointId <= upTo);
    this.sinkPending = this.sinkPending.filter((p) => p.checkpointId > upTo);
    for (const p of due) await sink.commit(p.staged);
  }

  /**
   * End of input: fire every timer and tell the consumers. A sink stages its last output and
   * commits it (with anything still pending) once its whole region has ended.
   */
  private async finish(): Promise<void> {
    this.chain.advanceWatermark(END_OF_TIME);
    for (const w of this.writers) w.emitEvent({ t: 'e' });
    await this.flush();
    const sink = this.chain.sink;
    if (!sink) return;
    const last = await sink.prepare('final', { watermark: END_OF_TIME });
    this.status = 'ended';
    await this.awaitFinalCommit(last);
  }

  /** An ended sink: commits everything once its region has ended, or keeps it for a hand-over. */
  private async awaitFinalCommit(last: Json | undefined): Promise<void> {
    const sink = this.chain.sink!;
    if (!this.finalCommitRequested && !this.handover) await new Promise<void>((resolve) => (this.finalCommit = resolve));
    if (this.cancelled) return;
    if (!this.finalCommitRequested) return this.keepForHandover('ended', last);
    for (const p of this.sinkPending) await sink.commit(p.staged);
    this.sinkPending = [];
    if (last !== undefined) await sink.commit(last);
    await sink.close?.();
  }

  /** The held end-of-input messages, once finished (a receipt that has expired meanwhile changes nothing). */
  private async deleteEnds(): Promise<void> {
    if (this.ends.size === 0 || !this.inputGate) return;
    const ends = new Map(this.ends);
    this.ends.clear();
    await this.inputGate.acknowledge(ends).catch(() => undefined);
  }

  /** Sends full messages at once and partial ones after the linger time. */
  private async maybeFlush(): Promise<void> {
    if (Date.now() - this.lastFlush >= (this.env.lingerMs ?? 200)) return this.flush();
    await Promise.all(this.writers.filter((w) => w.hasSealed()).map((w) => w.flush(false)));
  }

  private async flush(): Promise<void> {
    this.lastFlush = Date.now();
    await Promise.all(this.writers.filter((w) => w.hasPending()).map((w) => w.flush()));
  }
}
