/**
 * Channel transport port: how records and control events move between subtasks.
 *
 * A subtask writes to and reads from one logical queue per sub-partition: every channel of one edge
 * that ends at one consumer subtask; inside it, the channel from producer subtask i (attempt a) is
 * the message group `i.a`, so each channel is ordered (SQS FIFO semantics). The subtasks of a task
 * unit reach SQS through the unit's multiplexing transport (lib/runtime/channel-mux.ts: one input
 * queue per unit, one message group per producer unit); control queues (one per task unit) and
 * subtasks run on their own (tests) use SQS queues directly, through the same port.
 */
export interface OutboundMessage {
  /** Message group: the producer subtask of the channel (ordering unit). */
  groupId: string;
  /** Unique per (channel, attempt, sequence number) so a retried send is not delivered twice. */
  dedupId: string;
  body: string;
  /**
   * The send need not wait for this message: it may go out with the next send to its queue or a
   * moment later, in order (a checkpoint barrier: nothing before it depends on it being sent yet,
   * and the multiplexed unit transport gathers the barriers of a unit's subtasks into one message).
   * A transport that sends at once ignores it.
   */
  lazy?: boolean;
  /**
   * Records (or a watermark) a writer sends because its linger time passed: nothing waits for them
   * but the writer, so they may wait a little longer for company, until the unit's next send tick
   * (the multiplexed unit transport sends what the unit's subtasks flushed to one consumer unit
   * within one linger window together). The send still resolves only once they are sent. A
   * transport that sends at once ignores it.
   */
  linger?: boolean;
  /**
   * The body's size in UTF-8 bytes, when the sender already counted it (a record writer counts
   * every record it packs): a transport that needs the size may take it instead of measuring the
   * body again. Only a hint for the engine's own transports: SQS, and the in-memory SQS, measure
   * what they are sent.
   */
  bytes?: number;
}

export interface InboundMessage {
  body: string;
  groupId: string;
  /**
   * Handle used to delete (acknowledge) the message or change its visibility. It works only until
   * the message's visibility timeout passes or the message is received again (SQS FIFO).
   */
  receipt: string;
  /** How many times the message has been received, this time included (SQS ApproximateReceiveCount). */
  receiveCount?: number;
  /** When the message was sent, ms since the epoch (SQS SentTimestamp): input lag is now minus this. */
  sentAt?: number;
}

/**
 * What a delete or visibility change did not do because the receipt handle had expired (SQS:
 * "The receipt handle has expired"). The message is, or will be, received again under a new
 * receipt: the caller must treat it as redelivered, never as an error.
 */
export interface ReceiptResult {
  expired: string[];
}

export interface ReceiveOptions {
  /** At most this many messages (SQS allows 10; a unit's multiplexed inboxes, channel-mux.ts, more). */
  max: number;
  /** Long-poll wait; 0 returns at once. */
  waitSeconds: number;
  /** How long received messages stay hidden from other receivers. */
  visibilityTimeoutSeconds?: number;
  /**
   * Ends the long poll early (a stopping reader): the receive fails with an error named
   * 'AbortError', as the SDK's does. Messages SQS had already handed to an aborted request come
   * again after their visibility timeout.
   */
  signal?: AbortSignal;
}

/** The error a receive ends with when its signal aborts it. */
export function abortedReceive(): Error {
  return Object.assign(new Error('the receive was aborted'), { name: 'AbortError' });
}

export interface ChannelTransport {
  /** Creates these queues if they do not exist (idempotent). Names are logical queue names. */
  createQueues(names: readonly string[]): Promise<void>;
  /** Deletes these queues; missing ones are ignored. */
  deleteQueues(names: readonly string[]): Promise<void>;
  /** Lists existing queues whose name starts with the prefix. */
  listQueues(prefix: string): Promise<string[]>;
  /**
   * Sends messages to one queue, in order. The adapter splits them into as few batch calls as
   * the service limits allow (count and total size per call).
   */
  send(queue: string, messages: readonly OutboundMessage[]): Promise<void>;
  receive(queue: string, options: ReceiveOptions): Promise<InboundMessage[]>;
  /** Deletes received messages (any number; batched by 10). Expired receipts are reported, not thrown. */
  delete(queue: string, receipts: readonly string[]): Promise<ReceiptResult>;
  /**
   * Sets the visibility timeout of received messages to `timeoutSeconds` from now (any number of
   * receipts; batched by 10), to keep holding them. SQS caps a message's total visibility at
   * MAX_VISIBILITY_SECONDS from its receive. Expired receipts are reported, not thrown.
   */
  changeVisibility(queue: string, receipts: readonly string[], timeoutSeconds: number): Promise<ReceiptResult>;
}

/** SQS limit on a message's visibility timeout, and on its total visibility since it was received. */
export const MAX_VISIBILITY_SECONDS = 43_200;
/** The entry error SQS gives for a receipt handle past its visibility timeout (or superseded). */
export const RECEIPT_EXPIRED_MESSAGE = 'The receipt handle has expired.';

/** Largest message body we put on a queue (SQS limit is 256 KiB per message and per batch). */
export const MAX_MESSAGE_BYTES = 240 * 1024;
/** Largest total payload of one batch send call. */
export const MAX_BATCH_BYTES = 250 * 1024;
/** Most entries in one batch send call. */
export const MAX_BATCH_ENTRIES = 10;

/** A transport that forwards every call to `inner` except those `overrides` replaces (observers, test doubles). */
export function forwardingTransport(inner: ChannelTransport, overrides: Partial<ChannelTransport>): ChannelTransport {
  return {
    createQueues: (names) => inner.createQueues(names),
    deleteQueues: (names) => inner.deleteQueues(names),
    listQueues: (prefix) => inner.listQueues(prefix),
    send: (queue, messages) => inner.send(queue, messages),
    receive: (queue, options) => inner.receive(queue, options),
    delete: (queue, receipts) => inner.delete(queue, receipts),
    changeVisibility: (queue, receipts, timeoutSeconds) => inner.changeVisibility(queue, receipts, timeoutSeconds),
    ...overrides,
  };
}
