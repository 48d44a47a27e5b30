/**
 * Input gate: the consumer side of a subtask. One long-polling reader per input queue (one queue
 * per input edge: the subtask's sub-partition) fills a bounded buffer; the subtask takes decoded
 * channel events from it in channel order and deletes the messages once their effects are safe
 * downstream.
 *
 * Per channel (edge, producer) the gate keeps the producer's attempt and last sequence number:
 * a message of an older attempt is fenced off, a repeated sequence number is a duplicate.
 */
import type { ChannelTransport, InboundMessage } from '../ports/channels';
import type { ExecutionEdge } from '../graph/execution-graph';
import { producersOf } from '../graph/execution-graph';
import { decodeChannelMessage, type ChannelMessage } from './messages';

export interface ChannelState {
  edge: ExecutionEdge;
  producer: number;
  attempt: number;
  lastSeq: number;
  watermark: number;
  ended: boolean;
}

export interface GateEvent {
  channel: ChannelState;
  message: ChannelMessage;
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
  duplicates = 0;
  fenced = 0;

  constructor(private readonly options: InputGateOptions) {
    for (const edge of options.inputs) {
      for (const p of producersOf(edge, options.consumerIndex, options.producerParallelism(edge.from))) {
        this.channels.set(channelKey(edge.id, p), {
          edge,
          producer: p,
          attempt: options.minAttempt?.(edge.id, p) ?? 0,
          lastSeq: -1,
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
   * Waits up to `timeoutMs` for messages and returns the accepted events in arrival order, with
   * the receipts to delete once they are processed (fenced and duplicate messages included).
   */
  async next(timeoutMs: number): Promise<{ events: GateEvent[]; receipts: Map<string, string[]> }> {
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
    const receipts = new Map<string, string[]>();
    for (const { queue, edge, message } of taken) {
      receipts.set(queue, [...(receipts.get(queue) ?? []), message.receipt]);
      const decoded = decodeChannelMessage(message.body);
      const channel = this.channels.get(channelKey(edge.id, decoded.p));
      if (!channel) throw new Error(`message on edge ${edge.id} from producer ${decoded.p}, which does not write to this subtask`);
      if (decoded.a < channel.attempt) {
        this.fenced++;
        continue;
      }
      if (decoded.a > channel.attempt) {
        // The producer restarted: its sequence starts over.
        channel.attempt = decoded.a;
        channel.lastSeq = -1;
        channel.ended = false;
      }
      if (decoded.s <= channel.lastSeq) {
        this.duplicates++;
        continue;
      }
      channel.lastSeq = decoded.s;
      events.push({ channel, message: decoded });
    }
    return { events, receipts };
  }

  async acknowledge(receipts: Map<string, string[]>): Promise<void> {
    await Promise.all([...receipts].map(([queue, list]) => this.options.transport.delete(queue, list)));
    for (const queue of receipts.keys()) {
      this.unacknowledged.get(queue)?.();
      this.unacknowledged.delete(queue);
    }
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
        if (!this.running) return; // stopping: leave them for the next attempt
        if (messages.length === 0) continue;
        // Receive again only once these are acknowledged: while a channel's messages are in
        // flight its message group is blocked anyway (FIFO), and this bounds what is buffered.
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

export const channelKey = (edgeId: string, producer: number): string => `${edgeId}/${producer}`;
