/**
 * ChannelTransport on SQS FIFO queues. One logical queue name maps to `<name>.fifo`; the caller
 * owns naming (the adapter adds no prefix). Deduplication is explicit (MessageDeduplicationId),
 * never content-based, so two identical record batches are never merged.
 *
 * Queues are created in FIFO high-throughput mode (deduplication per message group, throughput
 * per message group): each channel is a message group, so a queue is not held to 300 calls a
 * second. Creating and deleting thousands of queues (20,000 for recommendation-join at P=4000
 * without packing) is paced: at most `queueOpsPerSecond` calls a second (SQS publishes no rate for
 * CreateQueue and DeleteQueue, and throttles bursts), and a throttled call is retried with
 * backoff while the pace halves.
 */
import { serviceEndpoint } from '../config';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChangeMessageVisibilityBatchCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueUrlCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type BatchResultErrorEntry,
} from '@aws-sdk/client-sqs';
import { abortedReceive, type ChannelTransport, type InboundMessage, type OutboundMessage, type ReceiptResult, type ReceiveOptions } from '../ports/channels';
// The in-memory transport is the reference for names, batching and limits; share its helpers.
import {
  fifoQueueName,
  isExpiredReceiptFailure,
  logicalQueueName,
  receiptBatches,
  splitIntoBatches,
  validateReceiveOptions,
  validateVisibilityTimeout,
} from '../memory/channels';
import type { AwsClients } from './clients';
import { SluiceAwsError, callAws, isAwsErrorCode, isMissingQueueError, missingQueueError, type AwsErrorContext } from './errors';
import { mapWithConcurrency } from '../util/concurrency';

export { fifoQueueName, logicalQueueName };

export interface SqsChannelOptions {
  /** Queues created or deleted at once (default 8). */
  concurrency?: number;
  /** Most CreateQueue / DeleteQueue calls a second (default 100). */
  queueOpsPerSecond?: number;
  /** Attempts for a throttled CreateQueue / DeleteQueue (default 8). */
  queueOpAttempts?: number;
  /** Attempts for batch entries SQS reports as failed (default 5). */
  entryAttempts?: number;
}

/** The attributes of every queue: FIFO, explicit deduplication ids, high-throughput mode. */
export const QUEUE_ATTRIBUTES = {
  FifoQueue: 'true',
  ContentBasedDeduplication: 'false',
  DeduplicationScope: 'messageGroup',
  FifoThroughputLimit: 'perMessageGroupId',
} as const;

const THROTTLED = ['RequestThrottled', 'ThrottlingException', 'Throttling', 'AWS.SimpleQueueService.RequestThrottled', 'TooManyRequestsException'];

/** True for SQS's "slow down" answers. */
export function isThrottled(err: unknown): boolean {
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  return isAwsErrorCode(cause, ...THROTTLED) || isAwsErrorCode(err, ...THROTTLED);
}

/**
 * Spaces calls at most `perSecond` a second (a start every 1/perSecond s), shared by every worker
 * of a fan-out; `slowDown` halves the pace after a throttle, and it recovers as calls succeed.
 */
export class Pacer {
  private next = 0;
  private rate: number;

  constructor(private readonly perSecond: number) {
    if (!(perSecond > 0)) throw new RangeError(`pace must be above 0 calls a second, got ${perSecond}`);
    this.rate = perSecond;
  }

  async take(): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.next);
    this.next = at + 1000 / this.rate;
    if (at > now) await sleep(at - now);
  }

  slowDown(): void {
    this.rate = Math.max(1, this.rate / 2);
  }

  succeeded(): void {
    this.rate = Math.min(this.perSecond, this.rate * 1.05);
  }

  get callsPerSecond(): number {
    return this.rate;
  }
}

export class SqsChannelTransport implements ChannelTransport {
  private readonly urls = new Map<string, string>();
  private readonly concurrency: number;
  private readonly entryAttempts: number;
  private readonly queueOpAttempts: number;
  readonly pacer: Pacer;
  /** Throttled CreateQueue / DeleteQueue calls retried so far. */
  throttledQueueOps = 0;

  constructor(
    private readonly clients: AwsClients,
    options: SqsChannelOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 8;
    this.entryAttempts = options.entryAttempts ?? 5;
    this.queueOpAttempts = options.queueOpAttempts ?? 8;
    this.pacer = new Pacer(options.queueOpsPerSecond ?? 100);
  }

  /** One queue operation at the pace, retried with backoff while SQS throttles it. */
  private async paced<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.pacer.take();
      try {
        const result = await call();
        this.pacer.succeeded();
        return result;
      } catch (err) {
        if (!isThrottled(err) || attempt >= this.queueOpAttempts) throw err;
        this.throttledQueueOps++;
        this.pacer.slowDown();
        await sleep(backoffMs(attempt));
      }
    }
  }

  private context(queue: string | undefined, operation: string): AwsErrorContext {
    const { region } = this.clients.config;
    const endpoint = serviceEndpoint(this.clients.config, 'sqs');
    return { service: 'sqs', endpoint, region, operation, ...(queue !== undefined ? { queue } : {}) };
  }

  /** Queue URL, looked up once per process (one GetQueueUrl) and cached. */
  private async url(queue: string): Promise<string> {
    const physical = fifoQueueName(queue);
    const cached = this.urls.get(physical);
    if (cached) return cached;
    const { QueueUrl } = await callAws(this.context(queue, 'GetQueueUrl'), () =>
      this.clients.sqs.send(new GetQueueUrlCommand({ QueueName: physical })),
    );
    this.urls.set(physical, QueueUrl!);
    return QueueUrl!;
  }

  /** A call on a cached URL; a vanished queue drops the cache entry so a re-created one is found. */
  private async onQueue<T>(queue: string, operation: string, call: (url: string) => Promise<T>): Promise<T> {
    const url = await this.url(queue);
    try {
      return await callAws(this.context(queue, operation), () => call(url));
    } catch (err) {
      if (isMissingQueueError(err)) this.urls.delete(fifoQueueName(queue));
      throw err;
    }
  }

  async createQueues(names: readonly string[]): Promise<void> {
    await mapWithConcurrency(names, this.concurrency, async (name) => {
      const physical = fifoQueueName(name);
      const { QueueUrl } = await this.paced(() =>
        callAws(this.context(name, 'CreateQueue'), () => this.clients.sqs.send(new CreateQueueCommand({ QueueName: physical, Attributes: { ...QUEUE_ATTRIBUTES } }))),
      );
      this.urls.set(physical, QueueUrl!);
    });
  }

  async deleteQueues(names: readonly string[]): Promise<void> {
    await mapWithConcurrency(names, this.concurrency, async (name) => {
      try {
        await this.paced(() => this.onQueue(name, 'DeleteQueue', (url) => this.clients.sqs.send(new DeleteQueueCommand({ QueueUrl: url }))));
      } catch (err) {
        if (!isMissingQueueError(err)) throw err;
      }
      this.urls.delete(fifoQueueName(name));
    });
  }

  async listQueues(prefix: string): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await callAws(this.context(undefined, 'ListQueues'), () =>
        this.clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix, MaxResults: 1000, NextToken: token })),
      );
      for (const url of page.QueueUrls ?? []) {
        const physical = url.slice(url.lastIndexOf('/') + 1);
        if (physical.endsWith('.fifo')) names.push(logicalQueueName(physical));
      }
      token = page.NextToken;
    } while (token);
    return names.sort();
  }

  async send(queue: string, messages: readonly OutboundMessage[]): Promise<void> {
    // Batches go one after another: FIFO order across batches is the order of the calls.
    for (const batch of splitIntoBatches(queue, messages)) {
      const entries = batch.map((m, i) => ({
        Id: String(i),
        MessageBody: m.body,
        MessageGroupId: m.groupId,
        MessageDeduplicationId: m.dedupId,
      }));
      await this.batchCall(queue, 'SendMessageBatch', entries, (Entries, QueueUrl) =>
        this.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries })),
      );
    }
  }

  async receive(queue: string, options: ReceiveOptions): Promise<InboundMessage[]> {
    validateReceiveOptions(options);
    const result = await this.onQueue(queue, 'ReceiveMessage', (url) =>
      this.clients.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: options.max,
          WaitTimeSeconds: Math.ceil(options.waitSeconds),
          ...(options.visibilityTimeoutSeconds !== undefined
            ? { VisibilityTimeout: Math.ceil(options.visibilityTimeoutSeconds) }
            : {}),
          MessageSystemAttributeNames: ['MessageGroupId', 'ApproximateReceiveCount', 'SentTimestamp'],
        }),
        // The long poll itself may take waitSeconds; allow that plus the usual request time.
        { requestTimeout: (options.waitSeconds + 10) * 1000, ...(options.signal ? { abortSignal: options.signal } : {}) },
      ),
    ).catch((err: unknown) => {
      if (options.signal?.aborted) throw abortedReceive();
      throw err;
    });
    return (result.Messages ?? []).map((m) => ({
      body: m.Body ?? '',
      groupId: m.Attributes?.MessageGroupId ?? '',
      receipt: m.ReceiptHandle!,
      ...(m.Attributes?.ApproximateReceiveCount ? { receiveCount: Number(m.Attributes.ApproximateReceiveCount) } : {}),
      ...(m.Attributes?.SentTimestamp ? { sentAt: Number(m.Attributes.SentTimestamp) } : {}),
    }));
  }

  async delete(queue: string, receipts: readonly string[]): Promise<ReceiptResult> {
    const results = await Promise.all(
      receiptBatches(receipts).map((chunk) =>
        this.batchCall(
          queue,
          'DeleteMessageBatch',
          chunk.map((ReceiptHandle, i) => ({ Id: String(i), ReceiptHandle })),
          (Entries, QueueUrl) => this.clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl, Entries })),
        ),
      ),
    );
    return { expired: results.flatMap((r) => r.map((e) => e.ReceiptHandle)) };
  }

  async changeVisibility(queue: string, receipts: readonly string[], timeoutSeconds: number): Promise<ReceiptResult> {
    validateVisibilityTimeout(timeoutSeconds);
    const results = await Promise.all(
      receiptBatches(receipts).map((chunk) =>
        this.batchCall(
          queue,
          'ChangeMessageVisibilityBatch',
          chunk.map((ReceiptHandle, i) => ({ Id: String(i), ReceiptHandle, VisibilityTimeout: Math.ceil(timeoutSeconds) })),
          (Entries, QueueUrl) => this.clients.sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl, Entries })),
        ),
      ),
    );
    return { expired: results.flatMap((r) => r.map((e) => e.ReceiptHandle)) };
  }

  /**
   * One batch call, then again for the entries SQS reports in `Failed` (backoff, bounded). A
   * re-sent message keeps its dedup id, so an entry that did land is not delivered twice.
   * An entry that fails while later entries of its group succeed lands after them (SQS offers no
   * way to keep the order then): consumers restore the order from the sequence numbers (see
   * input-gate.ts). Entries failing for the sender's fault are not retried; an expired receipt
   * handle (delete, visibility change) is not a fault: those entries are returned, the message
   * comes again and its duplicate is dropped by sequence.
   */
  private async batchCall<E extends { Id: string }>(
    queue: string,
    operation: string,
    entries: E[],
    call: (entries: E[], url: string) => Promise<{ Failed?: BatchResultErrorEntry[] }>,
  ): Promise<E[]> {
    let pending = entries;
    const expired: E[] = [];
    for (let attempt = 1; pending.length > 0; attempt++) {
      const current = pending;
      const { Failed: all = [] } = await this.onQueue(queue, operation, (url) => call(current, url));
      const byId = new Map(current.map((e) => [e.Id, e]));
      const failed: BatchResultErrorEntry[] = [];
      for (const f of all) {
        if (operation !== 'SendMessageBatch' && (isExpiredReceiptFailure(f) || (operation === 'ChangeMessageVisibilityBatch' && isGoneFromFlight(f)))) {
          expired.push(byId.get(f.Id!)!);
        } else failed.push(f);
      }
      if (failed.length === 0) return expired;
      const senderFault = failed.filter((f) => f.SenderFault);
      if (senderFault.length > 0 || attempt >= this.entryAttempts) {
        const sample = (senderFault[0] ?? failed[0])!;
        if (sample.Code && isMissingQueueError({ name: sample.Code })) throw missingQueueError(queue);
        const why = senderFault.length > 0 ? 'SQS rejected them' : `still failing after ${attempt} attempts`;
        throw new SluiceAwsError(
          `${operation} on queue '${queue}': ${failed.length} entr${failed.length === 1 ? 'y' : 'ies'} failed, ${why} (${sample.Code}: ${sample.Message ?? ''})`,
          'aws',
          'sqs',
        );
      }
      const failedIds = new Set(failed.map((f) => f.Id));
      pending = current.filter((e) => failedIds.has(e.Id));
      await sleep(backoffMs(attempt));
    }
    return expired;
  }
}

/**
 * A visibility change for a message no longer in flight under that receipt: deleted meanwhile (a
 * delete racing the extension round) or visible again. Nothing to extend; not a fault.
 */
function isGoneFromFlight(f: BatchResultErrorEntry): boolean {
  return f.Code === 'ReceiptHandleIsInvalid' || /MessageNotInflight/.test(f.Code ?? '');
}

/** Exponential backoff with full jitter: 50 ms, 100 ms, 200 ms ... capped at 2 s. */
function backoffMs(attempt: number): number {
  return Math.random() * Math.min(2_000, 50 * 2 ** attempt);
}
