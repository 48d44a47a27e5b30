/**
 * The loop of a consumer subtask: take a batch of events from its input gate, handle each (records
 * into the operator chain, watermarks and end of input onto their channel, barriers into the
 * aligner), then send the output and delete the input whose effects are done.
 *
 * Input is deleted only after what it produced is safely in the next queues (or staged by a
 * sink); end-of-input messages only once the subtask has finished (see `deleteEnds`). A
 * hand-over quiesces the loop: no new receives, everything received gets handled, an alignment
 * still open is declined, output flushed and input deleted, so nothing stays in flight for the
 * successor to wait out.
 */
import { BarrierAligner, type AlignmentHooks, type AlignmentStatus } from './barrier-aligner';
import type { ChannelPositions, GateEvent, InputGate } from './input-gate';
import { channelKey } from './input-gate';
import { appendTo } from './multimap';
import type { OperatorChain } from './operator-chain';
import type { SubtaskOutput } from './subtask-output';

export interface InputDriverHooks {
  cancelled(): boolean;
  /** A hand-over asked for: stop at the next safe point, waiting at most until `deadline` for an alignment. */
  handover(): { deadline: number } | undefined;
  /** Work due between two batches (committing completed sink transactions). */
  betweenBatches(): Promise<void>;
}

/** What alignment needs from the subtask; without it barriers pass through unaligned. */
export type CheckpointHooks = Omit<AlignmentHooks<GateEvent>, 'release' | 'openChannels'>;

export class InputDriver {
  recordsIn = 0;
  /** The gate the driver reads, once it runs. */
  gate: InputGate | undefined;
  readonly aligner: BarrierAligner<GateEvent> | undefined;
  private failure: unknown;
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

  constructor(
    private readonly chain: OperatorChain,
    private readonly output: SubtaskOutput,
    private readonly hooks: InputDriverHooks,
    checkpoints: CheckpointHooks | undefined,
  ) {
    this.aligner = checkpoints && new BarrierAligner<GateEvent>({ ...checkpoints, release: (events) => this.handleAll(events), openChannels: () => this.openChannels() });
  }

  /** The gate failed (a receive or a visibility extension): the loop throws it. */
  fail(error: unknown): void {
    this.failure = error;
  }

  /** The coordinator gave checkpoint N up: stop aligning it (between two batches). */
  abort(checkpointId: number): void {
    this.aligner?.abort(checkpointId);
  }

  /** Alignment in progress, if any. */
  alignment(): AlignmentStatus | undefined {
    return this.aligner?.status();
  }

  /** Record positions per input channel, leaving out events delivered and not processed yet. */
  positions(): ChannelPositions[] {
    // Neither those held by the alignment nor the rest of the batch that delivered the last barrier are in the state.
    return this.gate!.positions([...(this.aligner?.held ?? []), ...this.unhandled.flatMap((u) => u.events.slice(u.next))]);
  }

  /** Reads `gate` until every channel has ended; returns true when it stopped for a hand-over instead. */
  async run(gate: InputGate): Promise<boolean> {
    const { hooks } = this;
    this.gate = gate;
    gate.start();
    while (!hooks.cancelled() && !(gate.allEnded() && !this.aligner?.aligning)) {
      const { events, discarded } = await gate.next(200);
      if (this.failure) throw this.failure;
      for (const [queue, receipts] of discarded) appendTo(this.acks, queue, ...receipts);
      await this.handleAll(events);
      this.advanceWatermark(gate);
      await hooks.betweenBatches();
      await this.aligner?.applyAborts();
      // Input is deleted only after what it produced is safely in the next queues; input held
      // back by barrier alignment is deleted once it has been processed. A watermark alone is
      // derived, not an effect: it may wait for its interval (and goes on an idle round then).
      if (events.length > 0) await this.output.flush(false);
      else await this.output.maybeFlush();
      await this.acknowledgeInput();
      gate.release();
      const handover = hooks.handover();
      if (handover && (!this.aligner?.aligning || Date.now() >= handover.deadline)) {
        await this.quiesce(gate);
        return true;
      }
    }
    return false;
  }

  /** The held end-of-input messages, once finished (a receipt that has expired meanwhile changes nothing). */
  async deleteEnds(): Promise<void> {
    if (this.ends.size === 0 || !this.gate) return;
    const ends = new Map(this.ends);
    this.ends.clear();
    await this.gate.acknowledge(ends).catch(() => undefined);
  }

  /**
   * Hand-over of a consumer: no new receives, what is already received gets processed, an
   * alignment still open is declined (its held input is then processed like an aborted one),
   * output flushed, input deleted.
   */
  private async quiesce(gate: InputGate): Promise<void> {
    await gate.drain();
    while (gate.buffered) {
      const { events, discarded } = await gate.next(0);
      for (const [queue, receipts] of discarded) appendTo(this.acks, queue, ...receipts);
      await this.handleAll(events);
    }
    await this.hooks.betweenBatches();
    await this.aligner?.applyAborts();
    await this.aligner?.declineAll((id) => `task unit handed over to its next invocation while aligning checkpoint ${id}`);
    this.advanceWatermark(gate);
    await this.output.flush();
    await this.acknowledgeInput();
  }

  private advanceWatermark(gate: InputGate): void {
    if (gate.allEnded()) return;
    const watermark = gate.combinedWatermark();
    if (watermark > this.chain.currentWatermark) this.chain.advanceWatermark(watermark);
  }

  private async acknowledgeInput(): Promise<void> {
    if (this.acks.size === 0) return;
    const acks = this.acks;
    this.acks = new Map();
    await this.gate!.acknowledge(acks);
  }

  private *openChannels(): Iterable<string> {
    for (const [key, channel] of this.gate?.channels ?? []) if (!channel.ended) yield key;
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
    if (this.aligner?.hold(key, event)) return; // after this channel's barrier: wait for the others
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
        return this.aligner?.channelEnded();
      case 'b':
        return this.aligner?.barrier(key, message.c);
    }
  }
}
