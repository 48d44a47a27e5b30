/**
 * Channel transport port: how records and control events move between subtasks.
 *
 * One queue holds one sub-partition: every channel of one edge that ends at one consumer subtask.
 * Inside a queue, the channel from producer subtask i is the message group `String(i)`, so each
 * channel is ordered (SQS FIFO semantics). Control queues (one per task unit) use the same port.
 */
export interface OutboundMessage {
  /** Message group: the producer subtask of the channel (ordering unit). */
  groupId: string;
  /** Unique per (channel, attempt, sequence number) so a retried send is not delivered twice. */
  dedupId: string;
  body: string;
}

export interface InboundMessage {
  body: string;
  groupId: string;
  /** Handle used to delete (acknowledge) the message. */
  receipt: string;
}

export interface ReceiveOptions {
  /** At most this many messages (SQS allows 10). */
  max: number;
  /** Long-poll wait; 0 returns at once. */
  waitSeconds: number;
  /** How long received messages stay hidden from other receivers. */
  visibilityTimeoutSeconds?: number;
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
  delete(queue: string, receipts: readonly string[]): Promise<void>;
}

/** Largest message body we put on a queue (SQS limit is 256 KiB per message and per batch). */
export const MAX_MESSAGE_BYTES = 240 * 1024;
/** Largest total payload of one batch send call. */
export const MAX_BATCH_BYTES = 250 * 1024;
/** Most entries in one batch send call. */
export const MAX_BATCH_ENTRIES = 10;
