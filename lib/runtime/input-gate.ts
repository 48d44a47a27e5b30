/**
 * Input gate: the consumer side of a subtask. One long-polling reader per input queue (one queue
 * per input edge: the subtask's sub-partition) fills a bounded buffer; the subtask takes decoded
 * channel events from it in channel order and deletes the messages once their effects are safe
 * downstream.
 *
 * Per channel (edge, producer) the gate keeps the lowest producer attempt it accepts and the
 * sequence numbers it has seen per attempt: a message of an attempt below the fence is dropped
 * (after a region or full restart the consumer fences everything its producers sent before), a
 * sequence number seen before is a duplicate (SQS delivers at least once). An older sequence
 * number not seen before is still processed: SQS may deliver a channel out of order after a
 * partial batch failure, and dropping it would lose data. Messages of an older attempt above the fence are data the
 * producer sent before it failed, and still count (single-point recovery: the consumer did not
 * restart, and the producer's replacement does not send them again).
 */
import type { ChannelTransport, InboundMessage } from '../ports/channels';
import type { ExecutionEdge } from '../graph/execution-graph';
import { producersOf } from '../graph/execution-graph';
import type { ChannelHandover } from './handover';
import { decodeChannelMessage, type ChannelMessage } from './messages';

export interface ChannelState {
  edge: ExecutionEdge;
  producer: number;
  /** Lowest producer attempt accepted. */
  minAttempt: number;
  /** Highest producer attempt seen. */
  attempt: number;
  /** Sequence numbers seen, per producer attempt (each attempt numbers its messages from 0). */
  seen: Map<number, SeenSequences>;
  watermark: number;
  ended: boolean;
}

export interface GateEvent {
  channel: ChannelState;
  message: ChannelMessage;
  /** Where the message came from, to delete it once its effects are safe downstream. */
  queue: string;
  receipt: string;
}

interface Received {
  queue: string;
  edge: ExecutionEdge;
  message: InboundMessage;
}

export interface InputGateOptions {
  inputs: ExecutionEdge[];
  consumerIndex: number;
  producerParallelism: (taskId: string) => number;
  queueOf: (edge: ExecutionEdge) => string;
  transport: ChannelTransport;
  /** Lowest producer attempt accepted per channel (fencing after a restart). */
  minAttempt?: (edgeId: string, producer: number) => number;
  waitSeconds?: number;
  visibilityTimeoutSeconds?: number;
  /** Called when a poller fails (queue deleted, endpoint gone). */
  onError: (error: unknown) => void;
}

export class InputGate {
  readonly channels = new Map<string, ChannelState>();
  private readonly buffer: Received[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly pollers: Promise<void>[] = [];
  /** Per queue: resolves when the messages last received from it have been acknowledged. */
  private readonly unacknowledged = new Map<string, () => void>();
  private running = false;
  /** Stopping for a hand-over: what in-flight receives return is still buffered, to be processed. */
  private draining = false;
  duplicates = 0;
  fenced = 0;

  constructor(private readonly options: InputGateOptions) {
    for (const edge of options.inputs) {
      for (const p of producersOf(edge, options.consumerIndex, options.producerParallelism(edge.from))) {
        this.channels.set(channelKey(edge.id, p), {
          edge,
          producer: p,
          minAttempt: options.minAttempt?.(edge.id, p) ?? 0,
          attempt: options.minAttempt?.(edge.id, p) ?? 0,
          seen: new Map(),
          watermark: Number.MIN_SAFE_INTEGER,
          ended: false,
        });
      }
    }
  }

  start(): void {
    this.running = true;
    for (const edge of this.options.inputs) this.pollers.push(this.poll(edge));
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    for (const release of this.unacknowledged.values()) release();
    await Promise.allSettled(this.pollers);
  }

  /**
   * Stops receiving, for a hand-over: no new receive starts; messages that receives already in
   * flight return are buffered (the subtask processes them before it hands over), so nothing is
   * left hidden in flight for the successor to wait out.
   */
  async drain(): Promise<void> {
    this.draining = true;
    this.running = false;
    this.release();
    await Promise.allSettled(this.pollers);
    this.pollers.length = 0;
  }

  /** True when messages are buffered and not yet taken. */
  get buffered(): boolean {
    return this.buffer.length > 0;
  }

  /** Channel state for the next invocation of this attempt (after `drain` and the last batch). */
  handoverState(): ChannelHandover[] {
    return [...this.channels].map(([key, c]) => ({
      key,
      minAttempt: c.minAttempt,
      attempt: c.attempt,
      seen: [...c.seen].map(([attempt, seen]) => ({ attempt, ...seen.toJSON() })),
      watermark: c.watermark,
      ended: c.ended,
    }));
  }

  /** Continues from a predecessor's channel state (before `start`). */
  resume(state: readonly ChannelHandover[]): void {
    for (const h of state) {
      const c = this.channels.get(h.key);
      if (!c) throw new Error(`hand-over names input channel ${h.key}, which this subtask does not read`);
      c.minAttempt = h.minAttempt;
      c.attempt = h.attempt;
      c.seen = new Map(h.seen.map((s) => [s.attempt, SeenSequences.from(s)]));
      c.watermark = h.watermark;
      c.ended = h.ended;
    }
  }

  /**
   * Waits up to `timeoutMs` for messages and returns the accepted events in arrival order (each
   * to be acknowledged once processed), and the receipts of fenced and duplicate messages (to be
   * deleted at once). Call `release()` when done with the batch: the pollers receive again.
   */
  async next(timeoutMs: number): Promise<{ events: GateEvent[]; discarded: Map<string, string[]> }> {
    if (this.buffer.length === 0 && timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const taken = this.buffer.splice(0, this.buffer.length);
    const events: GateEvent[] = [];
    const discarded = new Map<string, string[]>();
    const discard = (queue: string, receipt: string) => discarded.set(queue, [...(discarded.get(queue) ?? []), receipt]);
    for (const { queue, edge, message } of taken) {
      const decoded = decodeChannelMessage(message.body);
      const channel = this.channels.get(channelKey(edge.id, decoded.p));
      if (!channel) throw new Error(`message on edge ${edge.id} from producer ${decoded.p}, which does not write to this subtask`);
      if (decoded.a < channel.minAttempt) {
        this.fenced++;
        discard(queue, message.receipt);
        continue;
      }
      if (decoded.a > channel.attempt) {
        // The producer restarted: its new attempt numbers messages from 0 and has not ended.
        channel.attempt = decoded.a;
        channel.ended = false;
      }
      let seen = channel.seen.get(decoded.a);
      if (!seen) channel.seen.set(decoded.a, (seen = new SeenSequences()));
      if (!seen.add(decoded.s)) {
        this.duplicates++;
        discard(queue, message.receipt);
        continue;
      }
      // An old attempt's end of input does not end the channel once a newer attempt writes to it.
      if (decoded.t === 'e' && decoded.a < channel.attempt) {
        discard(queue, message.receipt);
        continue;
      }
      events.push({ channel, message: decoded, queue, receipt: message.receipt });
    }
    return { events, discarded };
  }

  /** Deletes processed messages from their queues. */
  async acknowledge(receipts: Map<string, string[]>): Promise<void> {
    await Promise.all([...receipts].filter(([, list]) => list.length > 0).map(([queue, list]) => this.options.transport.delete(queue, list)));
  }

  /**
   * The last batch is dealt with: the pollers may receive again. Messages still held (a channel
   * blocked for barrier alignment) stay in flight, so SQS FIFO holds back the rest of their
   * channel meanwhile, while the other channels of the same queue keep flowing.
   */
  release(): void {
    for (const resolve of this.unacknowledged.values()) resolve();
    this.unacknowledged.clear();
  }

  /** Smallest watermark over channels still open; END when all have ended. */
  combinedWatermark(): number {
    let min = Number.MAX_SAFE_INTEGER;
    for (const c of this.channels.values()) if (!c.ended && c.watermark < min) min = c.watermark;
    return min;
  }

  allEnded(): boolean {
    for (const c of this.channels.values()) if (!c.ended) return false;
    return true;
  }

  private async poll(edge: ExecutionEdge): Promise<void> {
    const queue = this.options.queueOf(edge);
    while (this.running) {
      try {
        const messages = await this.options.transport.receive(queue, {
          max: 10,
          waitSeconds: this.options.waitSeconds ?? 2,
          visibilityTimeoutSeconds: this.options.visibilityTimeoutSeconds ?? 15,
        });
        if (!this.running && !this.draining) return; // stopping: leave them for the next attempt
        if (messages.length === 0) continue;
        if (!this.running) {
          for (const message of messages) this.buffer.push({ queue, edge, message });
          this.wake();
          return;
        }
        // Receive again only once the subtask has dealt with these (release): this bounds what is
        // buffered, and a channel whose messages are still in flight is held back by FIFO.
        const acknowledged = new Promise<void>((resolve) => this.unacknowledged.set(queue, resolve));
        for (const message of messages) this.buffer.push({ queue, edge, message });
        this.wake();
        await acknowledged;
      } catch (error) {
        if (!this.running) return;
        this.running = false;
        this.options.onError(error);
        this.wake();
        return;
      }
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/**
 * The sequence numbers one producer attempt's messages carried, as seen by this consumer: every
 * number up to `floor`, plus the ones above it. Numbers far below the newest are forgotten, so
 * memory stays bounded (SQS reorders, if at all, over a few messages).
 */
export class SeenSequences {
  private floor = -1;
  private readonly above = new Set<number>();

  toJSON(): { floor: number; above: number[] } {
    return { floor: this.floor, above: [...this.above] };
  }

  static from(state: { floor: number; above: readonly number[] }): SeenSequences {
    const seen = new SeenSequences();
    seen.floor = state.floor;
    for (const s of state.above) seen.above.add(s);
    return seen;
  }

  /** Records `seq`; false when it was seen before. */
  add(seq: number): boolean {
    if (seq <= this.floor || this.above.has(seq)) return false;
    this.above.add(seq);
    while (this.above.delete(this.floor + 1)) this.floor++;
    if (this.above.size > 4096) {
      // A gap that never fills (messages the previous consumer attempt processed): move past it.
      const sorted = [...this.above].sort((a, b) => a - b);
      this.floor = sorted[2047]!;
      for (const s of sorted.slice(0, 2048)) this.above.delete(s);
      while (this.above.delete(this.floor + 1)) this.floor++;
    }
    return true;
  }
}

export const channelKey = (edgeId: string, producer: number): string => `${edgeId}/${producer}`;
