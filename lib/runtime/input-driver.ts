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
import type { DeterminantLog, Step } from './determinants';
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

const DEFAULT_MAX_HELD_BYTES = 64 * 1024 * 1024;

/** The alignment's view of a gate's channels (by number: `GateChannel.index`); none before the gate runs. */
export function alignmentChannels(gate: () => InputGate | undefined): Pick<AlignmentHooks<GateEvent>, 'channelCount' | 'openCount' | 'isOpen' | 'channelName'> {
  return {
    channelCount: () => gate()?.channelCount ?? 0,
    openCount: () => gate()?.openCount() ?? 0,
    isOpen: (channel) => gate()?.isOpenAt(channel) ?? false,
    channelName: (channel) => gate()?.channelKeyAt(channel) ?? String(channel),
  };
}

/** What alignment needs from the subtask; without it barriers pass through unaligned. */
export type CheckpointHooks = Omit<AlignmentHooks<GateEvent>, 'release' | 'channelCount' | 'openCount' | 'isOpen' | 'channelName'>;

export class InputDriver {
  recordsIn = 0;
  /**
   * Single-exact: the order this subtask takes its input in is recorded here (determinants.ts),
   * and a restarted attempt first follows the order its dead attempt's consumers kept.
   */
  determinants: DeterminantLog | undefined;
  private following: { steps: readonly Step[]; next: number; taken: number; queued: GateEvent[] } | undefined;
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
  /** Bytes of the messages the alignment in progress holds back. */
  private heldBytes = 0;

  constructor(
    private readonly chain: OperatorChain,
    private readonly output: SubtaskOutput,
    private readonly hooks: InputDriverHooks,
    checkpoints: CheckpointHooks | undefined,
    /**
     * Most bytes an alignment may hold back before its checkpoint is declined here (default
     * 64 MiB). Multiplexed channels take held input into memory (channel-mux.ts); a direct queue
     * holds a channel back in SQS and never comes near it.
     */
    private readonly maxHeldBytes = DEFAULT_MAX_HELD_BYTES,
  ) {
    this.aligner =
      checkpoints &&
      new BarrierAligner<GateEvent>({
        ...checkpoints,
        release: (events) => {
          this.heldBytes = 0;
          return this.handleAll(events);
        },
        ...alignmentChannels(() => this.gate),
      });
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

  /**
   * Before anything else, take the input in the order of these steps (a restarted attempt under
   * single-exact: the steps its dead attempt's consumers kept), so that what it sends again is what
   * it sent then. Events that arrive meanwhile and are not named yet wait, in arrival order.
   */
  follow(steps: readonly Step[]): void {
    if (steps.length > 0) this.following = { steps, next: 0, taken: 0, queued: [] };
  }

  /** True while a restarted attempt still follows its dead attempt's order. */
  get followingDeterminants(): boolean {
    return this.following !== undefined;
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
      if (this.following) {
        this.following.queued.push(...events);
        await this.followSteps();
      } else {
        await this.handleAll(events);
        this.advanceWatermark(gate);
      }
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
      // A hand-over waits until the dead attempt's order has been followed (seconds at most).
      if (handover && !this.following && (!this.aligner?.aligning || Date.now() >= handover.deadline)) {
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
    this.advanceTo(gate.combinedWatermark());
  }

  /**
   * Event time moves on (timers fire): a determinant too, recorded first. What the timers emit
   * can fill a message that is sealed while they fire: it must carry the advance that caused it.
   */
  private advanceTo(watermark: number): void {
    if (watermark <= this.chain.currentWatermark) return;
    this.determinants?.watermark(watermark);
    this.chain.advanceWatermark(watermark);
  }

  /**
   * Takes the queued events in the order of the steps still to follow: records of the channel a
   * step names, from the position it names; event-time advances where it names them. Barriers
   * met on the way belong to checkpoints the dead attempt's failure ended (they are dropped);
   * watermarks only move their channel. Once every step is followed, what waits is handled as
   * usual, in arrival order.
   */
  private async followSteps(): Promise<void> {
    const f = this.following!;
    while (f.next < f.steps.length) {
      const step = f.steps[f.next]!;
      if (step[0] === 'w') {
        this.advanceTo(step[1]);
        f.next++;
        continue;
      }
      if (step[0] === 'p') {
        // Processing time moved here in the dead attempt, and its due timers fired here. The clock
        // is set to it, even back from this attempt's own start (a later wall clock).
        this.determinants?.processingTime(step[1]);
        this.chain.restoreProcessingTime(step[1]);
        this.chain.advanceProcessingTime();
        f.next++;
        continue;
      }
      const [, key, lineage, n, k] = step;
      while (f.taken < k) {
        const i = f.queued.findIndex((e) => channelKey(e.channel.edge.id, e.channel.producer) === key);
        if (i < 0) return; // not here yet
        const event = f.queued[i]!;
        const { message } = event;
        if (message.t === 'b' || message.t === 'w') {
          if (message.t === 'w') event.channel.watermark = Math.max(event.channel.watermark, message.w);
          if (event.receipt) appendTo(this.acks, event.queue, event.receipt);
          f.queued.splice(i, 1);
          continue;
        }
        const at = n + f.taken;
        if (message.t !== 'd' || (message.l ?? message.a) !== lineage || message.n !== at) {
          throw new Error(
            `input channel ${key}: the dead attempt took records ${n}..${n + k - 1} of lineage ${lineage} here, ` +
              `but the channel goes on with ${message.t === 'd' ? `records from ${message.n} of lineage ${message.l ?? message.a}` : `'${message.t}'`}`,
          );
        }
        const count = Math.min(k - f.taken, message.r.length);
        // The step first, as in `handle`: a message sealed while they go through carries it.
        this.determinants?.records(key, lineage, at, count);
        for (let r = 0; r < count; r++) this.chain.push(message.r[r]!, event.channel.edge.input);
        this.recordsIn += count;
        f.taken += count;
        if (count < message.r.length) {
          // The rest of the message comes with a later step; its receipt goes with the rest.
          f.queued[i] = { ...event, message: { ...message, n: at + count, r: message.r.slice(count) } };
        } else {
          if (message.w !== undefined) event.channel.watermark = Math.max(event.channel.watermark, message.w);
          if (event.receipt) appendTo(this.acks, event.queue, event.receipt);
          f.queued.splice(i, 1);
        }
      }
      f.next++;
      f.taken = 0;
    }
    this.following = undefined;
    await this.handleAll(f.queued);
  }

  private async acknowledgeInput(): Promise<void> {
    if (this.acks.size === 0) return;
    const acks = this.acks;
    this.acks = new Map();
    await this.gate!.acknowledge(acks);
  }

  /** Handles events in order; the ones not handled yet stay visible to a checkpoint taken meanwhile. */
  private async handleAll(events: readonly GateEvent[]): Promise<void> {
    // An index, not shift(): a released alignment can hand over thousands of events at once.
    const rest = { events, next: 0 };
    this.unhandled.push(rest);
    try {
      while (rest.next < events.length) {
        // Most events are handled at once: only what returns a promise is waited for.
        const pending = this.handle(events[rest.next++]!);
        if (pending) await pending;
      }
    } finally {
      this.unhandled.splice(this.unhandled.indexOf(rest), 1);
    }
  }

  /** Handles one event; a promise when there is something to wait for (a checkpoint, a release). */
  private handle(event: GateEvent): Promise<void> | undefined {
    const { channel, message } = event;
    if (this.aligner?.hold(channel.index, event)) {
      // After this channel's barrier: wait for the others, unless that holds back too much.
      this.heldBytes += event.bytes ?? 0;
      if (this.heldBytes > this.maxHeldBytes) {
        return this.aligner.giveUp(`the alignment held back more than ${Math.round(this.maxHeldBytes / 1024 / 1024)} MiB of input (${this.aligner.held.length} messages)`);
      }
      return undefined;
    }
    // No receipt: the message came early and was deleted when the gate took it into memory.
    if (event.receipt) {
      appendTo(message.t === 'e' ? this.ends : this.acks, event.queue, event.receipt);
    }
    switch (message.t) {
      case 'd':
        // The step before its effects: a writer seals a message as soon as its buffer is full,
        // while these records go through, and that message carries the steps recorded so far.
        // Recorded after, a consumer could hold output of these records without their step, and
        // a restart that follows its steps would put other records at those positions.
        this.determinants?.records(channelKey(channel.edge.id, channel.producer), message.l ?? message.a, message.n ?? 0, message.r.length);
        for (const record of message.r) this.chain.push(record, channel.edge.input);
        this.recordsIn += message.r.length;
        if (message.w !== undefined) channel.watermark = Math.max(channel.watermark, message.w);
        return undefined;
      case 'w':
        channel.watermark = Math.max(channel.watermark, message.w);
        return undefined;
      case 'e':
        channel.ended = true;
        return this.aligner?.channelEnded();
      case 'b':
        return this.aligner?.barrier(channel.index, message.c);
    }
  }
}
