/**
 * Where an input gate keeps the state of its channels (see input-gate.ts for what that state
 * means), sized for all-to-all edges at high parallelism.
 *
 * A consumer subtask of an all-to-all edge reads one channel per producer subtask: at parallelism
 * 4000 a join subtask has 8000, and a job of 4000 such subtasks 32 million. One object with its
 * maps per channel (about 1 KB each) is 30 GB; so, per input edge, the plain part of every
 * channel's state lives in typed arrays (about 41 bytes a channel), and a channel gets a full
 * `ChannelState` object only once it needs more than they hold:
 *
 * - a channel never heard from has the default state: the lowest attempt from the fence (read when
 *   it is first needed; the fence is fixed when the gate starts), no message group, no record
 *   position, watermark unknown (Number.MIN_SAFE_INTEGER), not ended;
 * - the arrays hold, per channel: its fence and highest attempt, ONE message group delivered in
 *   order from sequence 0 with nothing waiting early, ONE lineage's record position, its watermark
 *   and whether it ended. Counters are zero, nothing is waited for, no replay, no superseded
 *   lineage, and every barrier it delivered was at record position 0 (a barrier at position 0 is
 *   not kept: its lookup, `barriers.get(lineage)?.get(id) ?? 0`, gives 0 whether it is kept or not);
 * - anything else (a second group or lineage, a gap, a counter, a replay, a barrier past position 0,
 *   a restart notice, skipped positions, a replay taken) first turns the channel into a
 *   `FullChannel`, built from the arrays to the same state, and from then on the gate's general
 *   code runs on it.
 * Watermark and end of input always live in the arrays (a full channel reads and writes them
 * there), so the gate keeps its totals (channels ended, the smallest watermark) without a pass
 * over every channel on each batch.
 */
import type { ExecutionEdge } from '../graph/execution-graph';
import type { InboundMessage } from '../ports/channels';
import type { ChannelCounters } from './handover';
import type { ChannelMessage } from './messages';
import type { Range } from './skipped-ranges';

export interface ChannelState {
  edge: ExecutionEdge;
  producer: number;
  /** Its number in the gate (see GateChannel). */
  readonly index: number;
  /** Lowest producer attempt accepted. */
  minAttempt: number;
  /** Highest producer attempt seen. */
  attempt: number;
  /** Per producer attempt (message group): delivery order. */
  groups: Map<number, GroupOrder>;
  /** Per lineage: the next record position. */
  positions: Map<number, number>;
  counters: ChannelCounters;
  watermark: number;
  ended: boolean;
  /** A replay this consumer asked for and waits for (see replay.ts). */
  replay: ReplayWait | undefined;
  /** Per lineage: record positions at the most recent barriers (checkpoint id -> position). */
  barriers: Map<number, Map<number, number>>;
  /** Per lineage superseded by a producer restart: the position from which its records come again. */
  superseded: Map<number, number>;
  /** The producer's newest restart notice: it covers older lineages this consumer sees only later too. */
  restarted: RestartRule | undefined;
  /** The producer attempt, and its lineage, whose replay this consumer took last (see `InputGate.take`). */
  replayedBy: { attempt: number; lineage: number } | undefined;
  /** Per lineage: record positions skipped (counted missing) and not sent again since (skipped-ranges.ts). */
  skipped: Map<number, Range[]>;
}

/** A restart notice (messages.ts, `r`): lineage `lineage` restarted from checkpoint `from`, which left the channel at `at`. */
export interface RestartRule {
  lineage: number;
  from: number;
  at?: [lineage: number, position: number];
}

/**
 * A replay of one channel that the consumer waits for: the channel's live messages are held
 * (received, kept in flight, not delivered) until the replay's end event, then delivered.
 */
export interface ReplayWait {
  consumerAttempt: number;
  request: number;
  /**
   * The producer attempt whose answer is taken (undefined until its first message). A producer
   * killed while its answer goes out leaves the request in its control queue, and its new attempt
   * answers the same request again, in full: that answer replaces the dead one's part (see `takeReplay`).
   */
  attempt?: number;
  /** Delivery order of the replay's own message group. */
  order: GroupOrder;
  /** Live messages received meanwhile, in arrival order. */
  held: Received[];
  /**
   * Earlier requests of this wait, asked from the same positions before any answer came: an answer
   * to one of them is as good as one to `request` (it was on its way when the consumer asked
   * again). The first answer taken decides which; the others are stale from then on.
   */
  earlier?: number[];
}

export interface GroupOrder {
  /**
   * Next sequence number to deliver; undefined while the group's start is not known yet (its first
   * message seen was not sequence 0: see `startGroup`).
   */
  next: number | undefined;
  /** Clock time the group was first seen. */
  since: number;
  /** Messages that came before `next` did, by sequence number (already deleted from the queue). */
  early: Map<number, Early>;
}

export interface Early {
  queue: string;
  edge: ExecutionEdge;
  message: InboundMessage;
  decoded: ChannelMessage;
  /** Clock time it arrived. */
  at: number;
}

/** A message as the gate received it, before it is sorted (`take`). */
export interface Received {
  queue: string;
  edge: ExecutionEdge;
  message: InboundMessage;
}

/** What the input driver sees of a channel an event came from. */
export interface GateChannel {
  readonly edge: ExecutionEdge;
  readonly producer: number;
  /** The channel's number in its gate (its inputs' channels in order, from 0): barrier alignment keys by it. */
  readonly index: number;
  watermark: number;
  ended: boolean;
}

const SEEN = 1;
const ENDED = 2;

/** An unknown watermark: what a channel has until its producer says more. */
export const NO_WATERMARK = Number.MIN_SAFE_INTEGER;

export const zeroCounters = (): ChannelCounters => ({ duplicateRecords: 0, missingRecords: 0, replayedRecords: 0, regeneratedRecords: 0 });

/** Totals over every channel of a gate, heard from or not, kept as channels change. */
export class ChannelTotals {
  /** Channels the gate reads. */
  expected = 0;
  ended = 0;
  /** A watermark or an end of input changed since the smallest open watermark was last computed. */
  watermarkDirty = true;
}

/** The channels of one input edge of one consumer subtask. */
export class EdgeChannels {
  /** Channels of this edge: one per producer (all-to-all), or the consumer's own producer (pointwise). */
  readonly size: number;
  /** Producer index of slot 0. */
  private readonly first: number;
  /** The gate's number of slot 0 (`GateChannel.index`): the channels of the edges before this one. */
  readonly base: number;
  private readonly flags: Uint8Array;
  readonly minAttempt: Int32Array;
  readonly attempt: Int32Array;
  /** Attempt of the channel's one message group; -1 none yet. */
  readonly group: Int32Array;
  /** Its next sequence number to deliver. */
  readonly next: Float64Array;
  /** The lineage of the channel's one record position; -1 none yet. */
  readonly lineage: Int32Array;
  readonly position: Float64Array;
  readonly watermark: Float64Array;
  /** Channels whose state went past what the arrays hold, by slot. */
  readonly full = new Map<number, FullChannel>();
  /** Lowest attempts raised (`fenceProducer`) before the channel was first heard from, by slot. */
  private readonly floors = new Map<number, number>();

  constructor(
    readonly edge: ExecutionEdge,
    /** Position of the edge among the gate's inputs (the order channels are listed in). */
    readonly order: number,
    consumerIndex: number,
    producerParallelism: number,
    /** The fence: lowest producer attempt accepted, as when the gate started. */
    private readonly fence: (producer: number) => number,
    private readonly totals: ChannelTotals,
  ) {
    this.size = edge.pointwise ? 1 : producerParallelism;
    this.first = edge.pointwise ? consumerIndex : 0;
    const n = this.size;
    this.flags = new Uint8Array(n);
    this.minAttempt = new Int32Array(n);
    this.attempt = new Int32Array(n);
    this.group = new Int32Array(n).fill(-1);
    this.next = new Float64Array(n);
    this.lineage = new Int32Array(n).fill(-1);
    this.position = new Float64Array(n);
    this.watermark = new Float64Array(n).fill(NO_WATERMARK);
    this.base = totals.expected;
    totals.expected += n;
  }

  /** The slot of producer `p`'s channel; -1 when `p` does not write to this consumer on this edge. */
  slotOf(producer: number): number {
    const slot = producer - this.first;
    return Number.isInteger(slot) && slot >= 0 && slot < this.size ? slot : -1;
  }

  producerOf(slot: number): number {
    return this.first + slot;
  }

  /** Reads the channel's fence the first time it is needed. */
  see(slot: number): void {
    if (this.flags[slot]! & SEEN) return;
    this.flags[slot]! |= SEEN;
    const fence = this.fence(this.producerOf(slot));
    this.attempt[slot] = fence;
    this.minAttempt[slot] = Math.max(fence, this.floors.get(slot) ?? fence);
    this.floors.delete(slot);
  }

  seen(slot: number): boolean {
    return (this.flags[slot]! & SEEN) !== 0;
  }

  /** Raises the lowest attempt accepted on a channel (heard from or not). */
  raiseFence(slot: number, attempt: number): void {
    const full = this.full.get(slot);
    if (full) full.minAttempt = Math.max(full.minAttempt, attempt);
    else if (this.seen(slot)) this.minAttempt[slot] = Math.max(this.minAttempt[slot]!, attempt);
    else this.floors.set(slot, Math.max(this.floors.get(slot) ?? attempt, attempt));
  }

  /** The highest attempt seen (the fence for a channel not heard from). */
  attemptOf(slot: number): number {
    const full = this.full.get(slot);
    if (full) return full.attempt;
    return this.seen(slot) ? this.attempt[slot]! : this.fence(this.producerOf(slot));
  }

  /** The lowest attempt accepted, without reading the fence of a channel not heard from. */
  minAttemptOf(slot: number): number {
    const full = this.full.get(slot);
    if (full) return full.minAttempt;
    if (this.seen(slot)) return this.minAttempt[slot]!;
    const fence = this.fence(this.producerOf(slot));
    return Math.max(fence, this.floors.get(slot) ?? fence);
  }

  isEnded(slot: number): boolean {
    return (this.flags[slot]! & ENDED) !== 0;
  }

  setEnded(slot: number, ended: boolean): void {
    if (this.isEnded(slot) === ended) return;
    this.see(slot);
    this.flags[slot]! ^= ENDED;
    this.totals.ended += ended ? 1 : -1;
    this.totals.watermarkDirty = true;
  }

  setWatermark(slot: number, watermark: number): void {
    if (this.watermark[slot] === watermark) return;
    this.see(slot);
    this.watermark[slot] = watermark;
    this.totals.watermarkDirty = true;
  }

  /** Smallest watermark of this edge's open channels (MAX_SAFE_INTEGER when all have ended). */
  minOpenWatermark(): number {
    let min = Number.MAX_SAFE_INTEGER;
    const { flags, watermark } = this;
    for (let i = 0; i < this.size; i++) if (!(flags[i]! & ENDED) && watermark[i]! < min) min = watermark[i]!;
    return min;
  }

  /** The channel as a full object (made from the arrays, same state, the first time). */
  promote(slot: number, now: number): FullChannel {
    let channel = this.full.get(slot);
    if (channel) return channel;
    this.see(slot);
    const group = this.group[slot]!;
    const lineage = this.lineage[slot]!;
    channel = new FullChannel(this, slot, {
      minAttempt: this.minAttempt[slot]!,
      attempt: this.attempt[slot]!,
      groups: new Map(group === -1 ? [] : [[group, { next: this.next[slot]!, since: now, early: new Map() }]]),
      positions: new Map(lineage === -1 ? [] : [[lineage, this.position[slot]!]]),
    });
    this.full.set(slot, channel);
    this.inOrder = undefined;
    return channel;
  }

  /** Full channels in slot order, kept between promotions: the gate's counters go over them at every report (8,000 of a restarted join at P=4000). */
  private inOrder: FullChannel[] | undefined;

  fullInOrder(): readonly FullChannel[] {
    return (this.inOrder ??= [...this.full.values()].sort((a, b) => a.slot - b.slot));
  }

  /** The event handle of a channel: its full object, or a view of its slot. */
  handle(slot: number): GateChannel {
    return this.full.get(slot) ?? new SlotChannel(this, slot);
  }

  /** The channel's whole state, as a full object or a read-only view of its slot (watermark and ended writable). */
  state(slot: number): ChannelState {
    return this.full.get(slot) ?? new SlotView(this, slot);
  }
}

/** A channel whose state needs more than the arrays: the gate's general code runs on it. */
export class FullChannel implements ChannelState, GateChannel {
  readonly edge: ExecutionEdge;
  readonly producer: number;
  readonly index: number;
  minAttempt: number;
  attempt: number;
  groups: Map<number, GroupOrder>;
  positions: Map<number, number>;
  counters: ChannelCounters = zeroCounters();
  replay: ReplayWait | undefined = undefined;
  barriers = new Map<number, Map<number, number>>();
  superseded = new Map<number, number>();
  restarted: RestartRule | undefined = undefined;
  replayedBy: { attempt: number; lineage: number } | undefined = undefined;
  skipped = new Map<number, Range[]>();

  constructor(
    private readonly table: EdgeChannels,
    readonly slot: number,
    init: { minAttempt: number; attempt: number; groups: Map<number, GroupOrder>; positions: Map<number, number> },
  ) {
    this.edge = table.edge;
    this.producer = table.producerOf(slot);
    this.index = table.base + slot;
    this.minAttempt = init.minAttempt;
    this.attempt = init.attempt;
    this.groups = init.groups;
    this.positions = init.positions;
  }

  /** Sort key: the order the gate lists its channels in. */
  get rank(): number {
    return this.table.order * 2 ** 32 + this.slot;
  }

  get watermark(): number {
    return this.table.watermark[this.slot]!;
  }

  set watermark(watermark: number) {
    this.table.setWatermark(this.slot, watermark);
  }

  get ended(): boolean {
    return this.table.isEnded(this.slot);
  }

  set ended(ended: boolean) {
    this.table.setEnded(this.slot, ended);
  }
}

/** A channel kept in the arrays, as an event names it. */
class SlotChannel implements GateChannel {
  readonly edge: ExecutionEdge;
  readonly producer: number;
  readonly index: number;

  constructor(
    protected readonly table: EdgeChannels,
    protected readonly slot: number,
  ) {
    this.edge = table.edge;
    this.producer = table.producerOf(slot);
    this.index = table.base + slot;
  }

  get watermark(): number {
    return this.table.watermark[this.slot]!;
  }

  set watermark(watermark: number) {
    this.table.setWatermark(this.slot, watermark);
  }

  get ended(): boolean {
    return this.table.isEnded(this.slot);
  }

  set ended(ended: boolean) {
    this.table.setEnded(this.slot, ended);
  }
}

/** A channel kept in the arrays, read as a whole state (copies: only watermark and ended write through). */
class SlotView extends SlotChannel implements ChannelState {
  get minAttempt(): number {
    return this.table.minAttemptOf(this.slot);
  }

  get attempt(): number {
    return this.table.attemptOf(this.slot);
  }

  get groups(): Map<number, GroupOrder> {
    const group = this.table.group[this.slot]!;
    return new Map(group === -1 ? [] : [[group, { next: this.table.next[this.slot]!, since: 0, early: new Map() }]]);
  }

  get positions(): Map<number, number> {
    const lineage = this.table.lineage[this.slot]!;
    return new Map(lineage === -1 ? [] : [[lineage, this.table.position[this.slot]!]]);
  }

  get counters(): ChannelCounters {
    return zeroCounters();
  }

  get replay(): undefined {
    return undefined;
  }

  get barriers(): Map<number, Map<number, number>> {
    return new Map();
  }

  get superseded(): Map<number, number> {
    return new Map();
  }

  get restarted(): undefined {
    return undefined;
  }

  get replayedBy(): undefined {
    return undefined;
  }

  get skipped(): Map<number, Range[]> {
    return new Map();
  }
}
