/**
 * In-memory ChannelTransport with SQS FIFO semantics:
 * - order is kept per message group; a group is blocked while any of its messages is in flight
 *   (received, neither deleted nor past its visibility timeout);
 * - a message not deleted in time becomes visible again, at the head of its group;
 * - a dedup id seen in the last 5 minutes on that queue drops the message (even if the first copy
 *   was already deleted, as on SQS);
 * - a long poll returns as soon as something can be received;
 * - only the newest receipt of a message deletes it (an older one is a silent no-op, as on FIFO).
 * The pure helpers (names, batching, limits) are shared with the SQS adapter.
 */
import { missingQueueError } from '../aws/errors';
import {
  MAX_BATCH_BYTES,
  MAX_BATCH_ENTRIES,
  MAX_MESSAGE_BYTES,
  type ChannelTransport,
  type InboundMessage,
  type OutboundMessage,
  type ReceiveOptions,
} from '../ports/channels';

const FIFO = '.fifo';
/** SQS queue names: letters, digits, '-' and '_', at most 80 characters including '.fifo'. */
const FIFO_NAME = /^[A-Za-z0-9_-]{1,75}\.fifo$/;
const DEDUP_WINDOW_MS = 5 * 60_000;
const DEFAULT_VISIBILITY_SECONDS = 30;

/** The SQS name of a logical queue (adds '.fifo'); throws a clear error when SQS would refuse it. */
export function fifoQueueName(name: string): string {
  const physical = name.endsWith(FIFO) ? name : name + FIFO;
  if (!FIFO_NAME.test(physical)) {
    const why =
      physical.length > 80
        ? `is ${physical.length} characters with '.fifo'; SQS allows 80`
        : 'may only use letters, digits, hyphens and underscores';
    throw new Error(`queue name '${name}' ${why}`);
  }
  return physical;
}

/** Logical name of an SQS queue name. */
export function logicalQueueName(physical: string): string {
  return physical.endsWith(FIFO) ? physical.slice(0, -FIFO.length) : physical;
}

/** Splits messages into consecutive batches within the SQS count and payload limits. */
export function splitIntoBatches(queue: string, messages: readonly OutboundMessage[]): OutboundMessage[][] {
  const batches: OutboundMessage[][] = [];
  let current: OutboundMessage[] = [];
  let bytes = 0;
  for (const message of messages) {
    const size = Buffer.byteLength(message.body, 'utf8');
    if (size > MAX_MESSAGE_BYTES) {
      throw new Error(`a message for queue '${queue}' is ${size} bytes; the limit is ${MAX_MESSAGE_BYTES} (put fewer records in one message)`);
    }
    if (current.length === MAX_BATCH_ENTRIES || (current.length > 0 && bytes + size > MAX_BATCH_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(message);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

export function validateReceiveOptions(options: ReceiveOptions): void {
  if (!Number.isInteger(options.max) || options.max < 1 || options.max > 10) {
    throw new Error(`receive max must be an integer from 1 to 10, got ${options.max}`);
  }
  if (!(options.waitSeconds >= 0 && options.waitSeconds <= 20)) {
    throw new Error(`receive waitSeconds must be from 0 to 20, got ${options.waitSeconds}`);
  }
  const vis = options.visibilityTimeoutSeconds;
  if (vis !== undefined && !(vis >= 0 && vis <= 43_200)) {
    throw new Error(`receive visibilityTimeoutSeconds must be from 0 to 43200, got ${vis}`);
  }
}

interface Msg {
  body: string;
  groupId: string;
  receipt: string | undefined;
  deleted: boolean;
}

class Group {
  /** Undeleted messages from `head` on, in send order (deleted ones are skipped lazily). */
  msgs: Msg[] = [];
  head = 0;
  /** Messages of the current receive (the group's lease) not yet deleted. */
  leased: Msg[] = [];
  live = 0;
  leaseUntil = 0;

  blocked(now: number): boolean {
    return this.live > 0 && this.leaseUntil > now;
  }
}

class Queue {
  /** Groups with undeleted messages; a group served is moved to the end (round robin). */
  readonly active = new Set<Group>();
  readonly groups = new Map<string, Group>();
  readonly receipts = new Map<string, { group: Group; msg: Msg }>();
  /** Dedup id -> expiry; insertion order is time order, so expired ones are at the front. */
  readonly dedup = new Map<string, number>();
  readonly waiters = new Set<() => void>();
  nextReceipt = 0;

  constructor(readonly name: string) {}

  wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }
}

export class MemoryChannelTransport implements ChannelTransport {
  /** Requests the SQS adapter would make for the same calls (batch calls, not messages). */
  requests = 0;
  private readonly queues = new Map<string, Queue>();

  private queue(name: string): Queue {
    const q = this.queues.get(fifoQueueName(name));
    if (!q) throw missingQueueError(name);
    return q;
  }

  async createQueues(names: readonly string[]): Promise<void> {
    for (const name of names) {
      const physical = fifoQueueName(name);
      this.requests++;
      if (!this.queues.has(physical)) this.queues.set(physical, new Queue(name));
    }
  }

  async deleteQueues(names: readonly string[]): Promise<void> {
    for (const name of names) {
      const physical = fifoQueueName(name);
      this.requests++;
      const q = this.queues.get(physical);
      this.queues.delete(physical);
      q?.wake();
    }
  }

  async listQueues(prefix: string): Promise<string[]> {
    this.requests++;
    return [...this.queues.keys()].filter((n) => n.startsWith(prefix)).map(logicalQueueName).sort();
  }

  async send(queue: string, messages: readonly OutboundMessage[]): Promise<void> {
    const q = this.queue(queue);
    this.requests += splitIntoBatches(queue, messages).length;
    const now = Date.now();
    for (const [id, expiry] of q.dedup) {
      if (expiry > now) break;
      q.dedup.delete(id);
    }
    for (const m of messages) {
      const seen = q.dedup.get(m.dedupId);
      if (seen !== undefined && seen > now) continue;
      q.dedup.delete(m.dedupId);
      q.dedup.set(m.dedupId, now + DEDUP_WINDOW_MS);
      let g = q.groups.get(m.groupId);
      if (!g) {
        g = new Group();
        q.groups.set(m.groupId, g);
      }
      g.msgs.push({ body: m.body, groupId: m.groupId, receipt: undefined, deleted: false });
      q.active.add(g);
    }
    if (messages.length > 0) q.wake();
  }

  async receive(queue: string, options: ReceiveOptions): Promise<InboundMessage[]> {
    validateReceiveOptions(options);
    let q = this.queue(queue);
    this.requests++;
    const visibilityMs = (options.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_SECONDS) * 1000;
    const deadline = Date.now() + options.waitSeconds * 1000;
    for (;;) {
      const now = Date.now();
      const { out, nextUnblock } = this.take(q, options.max, now, visibilityMs);
      if (out.length > 0 || now >= deadline) return out;
      // Sleep until a send/delete wakes us, a lease runs out, or the poll ends.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(deadline, nextUnblock) - now);
        function done() {
          clearTimeout(timer);
          q.waiters.delete(done);
          resolve();
        }
        q.waiters.add(done);
      });
      q = this.queue(queue);
    }
  }

  private take(q: Queue, max: number, now: number, visibilityMs: number): { out: InboundMessage[]; nextUnblock: number } {
    const out: InboundMessage[] = [];
    const served: Group[] = [];
    let nextUnblock = Infinity;
    for (const g of q.active) {
      if (out.length >= max) break;
      if (g.blocked(now)) {
        nextUnblock = Math.min(nextUnblock, g.leaseUntil);
        continue;
      }
      // The old lease (if any) ran out: its receipts stop working, its messages are visible again.
      for (const m of g.leased) {
        if (!m.deleted && m.receipt !== undefined) q.receipts.delete(m.receipt);
      }
      g.leased = [];
      for (let i = g.head; i < g.msgs.length && out.length < max; i++) {
        const msg = g.msgs[i]!;
        if (msg.deleted) continue;
        msg.receipt = `${q.name}:${q.nextReceipt++}`;
        q.receipts.set(msg.receipt, { group: g, msg });
        g.leased.push(msg);
        out.push({ body: msg.body, groupId: msg.groupId, receipt: msg.receipt });
      }
      g.live = g.leased.length;
      g.leaseUntil = now + visibilityMs;
      served.push(g);
    }
    for (const g of served) {
      q.active.delete(g);
      q.active.add(g);
    }
    return { out, nextUnblock };
  }

  async delete(queue: string, receipts: readonly string[]): Promise<void> {
    const q = this.queue(queue);
    this.requests += Math.ceil(receipts.length / 10);
    let unblocked = false;
    for (const receipt of receipts) {
      const entry = q.receipts.get(receipt);
      if (!entry) continue;
      q.receipts.delete(receipt);
      const { group: g, msg } = entry;
      msg.deleted = true;
      if (--g.live === 0) {
        g.leased = [];
        unblocked = true;
      }
      while (g.head < g.msgs.length && g.msgs[g.head]!.deleted) g.head++;
      if (g.head === g.msgs.length) {
        g.msgs = [];
        g.head = 0;
        q.active.delete(g);
      } else if (g.head > 1024 && g.head * 2 > g.msgs.length) {
        g.msgs = g.msgs.slice(g.head);
        g.head = 0;
      }
    }
    if (unblocked) q.wake();
  }
}
