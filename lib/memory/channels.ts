/**
 * In-memory ChannelTransport with SQS FIFO semantics:
 * - order is kept per message group; a group is blocked while any of its messages is in flight
 *   (received, neither deleted nor past its visibility timeout);
 * - a message not deleted in time becomes visible again, at the head of its group;
 * - a dedup id seen in the last 5 minutes on that queue drops the message (even if the first copy
 *   was already deleted, as on SQS);
 * - a long poll returns as soon as something can be received;
 * - a receipt works only while its message is in flight under it: once the visibility timeout
 *   passes (or the message is received again) delete and changeVisibility report it as expired,
 *   as SQS FIFO does ("The receipt handle has expired"); a message's total visibility is capped at
 *   12 hours from its receive;
 * - each receive counts (ApproximateReceiveCount).
 * Time (visibility, dedup window) comes from an injectable clock, so a test can hold messages for
 * minutes without waiting for them; long polls wait in real time.
 * The pure helpers (names, batching, limits) are shared with the SQS adapter.
 */
import { missingQueueError } from '../aws/errors';
import {
  abortedReceive,
  MAX_BATCH_BYTES,
  MAX_BATCH_ENTRIES,
  MAX_MESSAGE_BYTES,
  MAX_VISIBILITY_SECONDS,
  type ChannelTransport,
  type InboundMessage,
  type OutboundMessage,
  type ReceiptResult,
  type ReceiveOptions,
} from '../ports/channels';
import { chunkBySize } from '../util/chunks';

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
  const sizeOf = (message: OutboundMessage) => Buffer.byteLength(message.body, 'utf8');
  for (const message of messages) {
    const size = sizeOf(message);
    if (size > MAX_MESSAGE_BYTES) {
      throw new Error(`a message for queue '${queue}' is ${size} bytes; the limit is ${MAX_MESSAGE_BYTES} (put fewer records in one message)`);
    }
  }
  return chunkBySize(messages, sizeOf, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES);
}

export function validateReceiveOptions(options: ReceiveOptions): void {
  if (!Number.isInteger(options.max) || options.max < 1 || options.max > 10) {
    throw new Error(`receive max must be an integer from 1 to 10, got ${options.max}`);
  }
  if (!(options.waitSeconds >= 0 && options.waitSeconds <= 20)) {
    throw new Error(`receive waitSeconds must be from 0 to 20, got ${options.waitSeconds}`);
  }
  const vis = options.visibilityTimeoutSeconds;
  if (vis !== undefined && !(vis >= 0 && vis <= MAX_VISIBILITY_SECONDS)) {
    throw new Error(`receive visibilityTimeoutSeconds must be from 0 to ${MAX_VISIBILITY_SECONDS}, got ${vis}`);
  }
}

export function validateVisibilityTimeout(seconds: number): void {
  if (!(Number.isFinite(seconds) && seconds >= 0 && seconds <= MAX_VISIBILITY_SECONDS)) {
    throw new Error(`visibility timeout must be from 0 to ${MAX_VISIBILITY_SECONDS} seconds, got ${seconds}`);
  }
}

/** Splits receipts into SQS-sized batches (10 entries per DeleteMessageBatch / ChangeMessageVisibilityBatch). */
export function receiptBatches(receipts: readonly string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < receipts.length; i += MAX_BATCH_ENTRIES) out.push(receipts.slice(i, i + MAX_BATCH_ENTRIES));
  return out;
}

/** True for a batch entry failure SQS reports for an expired (or superseded) receipt handle. */
export function isExpiredReceiptFailure(failure: { Code?: string; Message?: string }): boolean {
  return /receipt handle has expired/i.test(failure.Message ?? '');
}

interface Msg {
  body: string;
  groupId: string;
  /** The current receipt (the latest receive), if any. */
  receipt: string | undefined;
  deleted: boolean;
  /** Clock time until which the message is in flight under `receipt` (0: never received). */
  invisibleUntil: number;
  /** Clock time of the latest receive (the 12 h visibility cap counts from it). */
  receivedAt: number;
  receiveCount: number;
  /** Clock time of the send (SQS SentTimestamp). */
  sentAt: number;
}

class Group {
  /** Undeleted messages from `head` on, in send order (deleted ones are skipped lazily). */
  msgs: Msg[] = [];
  head = 0;
  /** Messages of the latest receive (the group's lease). */
  leased: Msg[] = [];

  /** Blocked while any leased message is undeleted and still in flight; returns until when. */
  blockedUntil(now: number): number {
    let until = 0;
    for (const m of this.leased) if (!m.deleted && m.invisibleUntil > now) until = Math.max(until, m.invisibleUntil);
    return until;
  }
}

class Queue {
  /** Groups with undeleted messages; a group served is moved to the end (round robin). */
  readonly active = new Set<Group>();
  readonly groups = new Map<string, Group>();
  /** Current receipts only: a receipt is dropped when its message is deleted or received again. */
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

export interface MemoryChannelOptions {
  /** Time for visibility timeouts and the dedup window (default: the system clock). */
  clock?: { now(): number };
}

export class MemoryChannelTransport implements ChannelTransport {
  /** Requests the SQS adapter would make for the same calls (batch calls, not messages). */
  requests = 0;
  /** Deletes and visibility changes refused because their receipt had expired. */
  expiredReceipts = 0;
  /** Messages received again after an earlier receive (their visibility timeout passed). */
  redeliveries = 0;
  private readonly queues = new Map<string, Queue>();
  private readonly clock: { now(): number };
  private readonly fakeClock: boolean;

  constructor(options: MemoryChannelOptions = {}) {
    this.clock = options.clock ?? { now: () => Date.now() };
    this.fakeClock = options.clock !== undefined;
  }

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
    const now = this.clock.now();
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
      g.msgs.push({ body: m.body, groupId: m.groupId, receipt: undefined, deleted: false, invisibleUntil: 0, receivedAt: 0, receiveCount: 0, sentAt: now });
      q.active.add(g);
    }
    if (messages.length > 0) q.wake();
  }

  async receive(queue: string, options: ReceiveOptions): Promise<InboundMessage[]> {
    validateReceiveOptions(options);
    let q = this.queue(queue);
    this.requests++;
    const visibilityMs = (options.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_SECONDS) * 1000;
    // The long poll runs in real time; visibility runs on the clock (which a test may move).
    const deadline = Date.now() + options.waitSeconds * 1000;
    const { signal } = options;
    for (;;) {
      if (signal?.aborted) {
        // As SQS: a long poll whose caller went away (aborted, or its process killed) runs on until
        // its wait ends, and takes what arrives meanwhile, hidden for the visibility it asked for;
        // in a FIFO queue the rest of that message's group waits behind it.
        void this.abandonedPoll(queue, options.max, deadline, visibilityMs);
        throw abortedReceive();
      }
      const now = this.clock.now();
      const { out, nextUnblock } = this.take(q, options.max, now, visibilityMs);
      const realNow = Date.now();
      if (out.length > 0 || realNow >= deadline) return out;
      // Sleep until a send/delete wakes us, a lease runs out, or the poll ends. A fake clock may
      // jump at any time: look again every 50 ms then.
      const wait = Math.min(deadline - realNow, nextUnblock - now, this.fakeClock ? 50 : Infinity);
      await wakeOf(q, wait, signal);
      q = this.queue(queue);
    }
  }

  /** The rest of an aborted long poll: takes what arrives before `deadline`, answers no one. */
  private async abandonedPoll(queue: string, max: number, deadline: number, visibilityMs: number): Promise<void> {
    for (;;) {
      const q = this.queues.get(fifoQueueName(queue));
      if (!q) return;
      const now = this.clock.now();
      const { out, nextUnblock } = this.take(q, max, now, visibilityMs);
      const realNow = Date.now();
      if (out.length > 0 || realNow >= deadline) return;
      const wait = Math.min(deadline - realNow, nextUnblock - now, this.fakeClock ? 50 : Infinity);
      // Unref'd: a poll no one waits for does not keep the process alive.
      await wakeOf(q, wait, undefined, true);
    }
  }

  private take(q: Queue, max: number, now: number, visibilityMs: number): { out: InboundMessage[]; nextUnblock: number } {
    const out: InboundMessage[] = [];
    const served: Group[] = [];
    let nextUnblock = Infinity;
    for (const g of q.active) {
      if (out.length >= max) break;
      const until = g.blockedUntil(now);
      if (until > 0) {
        nextUnblock = Math.min(nextUnblock, until);
        continue;
      }
      // The old lease (if any) ran out: its receipts stop working, its messages are visible again.
      for (const m of g.leased) if (m.receipt !== undefined) q.receipts.delete(m.receipt);
      g.leased = [];
      for (let i = g.head; i < g.msgs.length && out.length < max; i++) {
        const msg = g.msgs[i]!;
        if (msg.deleted) continue;
        if (msg.receiveCount > 0) this.redeliveries++;
        msg.receipt = `${q.name}:${q.nextReceipt++}`;
        msg.invisibleUntil = now + visibilityMs;
        msg.receivedAt = now;
        msg.receiveCount++;
        q.receipts.set(msg.receipt, { group: g, msg });
        g.leased.push(msg);
        out.push({ body: msg.body, groupId: msg.groupId, receipt: msg.receipt, receiveCount: msg.receiveCount, sentAt: msg.sentAt });
      }
      served.push(g);
    }
    for (const g of served) {
      q.active.delete(g);
      q.active.add(g);
    }
    return { out, nextUnblock };
  }

  /** The receipt's message while the receipt is current and in flight; undefined when expired. */
  private held(q: Queue, receipt: string, now: number): { group: Group; msg: Msg } | undefined {
    if (!receipt.startsWith(`${q.name}:`)) {
      throw new Error(`receipt handle '${receipt.slice(0, 40)}' is not a receipt of queue '${q.name}' (ReceiptHandleIsInvalid)`);
    }
    const entry = q.receipts.get(receipt);
    if (!entry || entry.msg.receipt !== receipt || entry.msg.invisibleUntil <= now) return undefined;
    return entry;
  }

  async delete(queue: string, receipts: readonly string[]): Promise<ReceiptResult> {
    const q = this.queue(queue);
    this.requests += receiptBatches(receipts).length;
    const now = this.clock.now();
    const expired: string[] = [];
    let deleted = false;
    for (const receipt of receipts) {
      const entry = this.held(q, receipt, now);
      if (!entry) {
        expired.push(receipt);
        continue;
      }
      q.receipts.delete(receipt);
      const { group: g, msg } = entry;
      msg.deleted = true;
      deleted = true;
      while (g.head < g.msgs.length && g.msgs[g.head]!.deleted) g.head++;
      if (g.head === g.msgs.length) {
        g.msgs = [];
        g.head = 0;
        g.leased = [];
        q.active.delete(g);
      } else if (g.head > 1024 && g.head * 2 > g.msgs.length) {
        g.msgs = g.msgs.slice(g.head);
        g.head = 0;
      }
    }
    this.expiredReceipts += expired.length;
    if (deleted) q.wake();
    return { expired };
  }

  async changeVisibility(queue: string, receipts: readonly string[], timeoutSeconds: number): Promise<ReceiptResult> {
    validateVisibilityTimeout(timeoutSeconds);
    const q = this.queue(queue);
    this.requests += receiptBatches(receipts).length;
    const now = this.clock.now();
    const expired: string[] = [];
    for (const receipt of receipts) {
      const entry = this.held(q, receipt, now);
      if (!entry) {
        expired.push(receipt);
        continue;
      }
      const until = now + timeoutSeconds * 1000;
      if (until - entry.msg.receivedAt > MAX_VISIBILITY_SECONDS * 1000) {
        // SQS refuses the whole entry (sender fault): the caller must stay within the cap.
        throw new Error(
          `ChangeMessageVisibility on queue '${q.name}': value ${timeoutSeconds} for VisibilityTimeout is invalid: total visibility timeout for the message is beyond the limit [${MAX_VISIBILITY_SECONDS} seconds]`,
        );
      }
      entry.msg.invisibleUntil = until;
    }
    this.expiredReceipts += expired.length;
    if (timeoutSeconds === 0) q.wake();
    return { expired };
  }
}

/** Resolves when a send or delete wakes the queue's long polls, after `ms`, or when `signal` aborts. */
function wakeOf(q: Queue, ms: number, signal?: AbortSignal, unref = false): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, Math.max(0, ms));
    if (unref) timer.unref();
    function done() {
      clearTimeout(timer);
      q.waiters.delete(done);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    q.waiters.add(done);
    signal?.addEventListener('abort', done);
  });
}
