/**
 * SDK v3 clients built from one SluiceConfig, plus per-process request counters.
 *
 * HTTP calls: a middleware at the `finalizeRequest` step with low priority. The retry middleware
 * sits at the same step with high priority, so ours runs inside the retry loop: every HTTP attempt
 * (first try and each SDK retry) is counted once, just after signing and before the request is
 * sent. A request that never connects (endpoint down) is still counted: it was attempted.
 *
 * Billed units, beside them (`billedCounts`), counted once per call that succeeded, as AWS prices
 * them: SQS bills each 64 KiB chunk of a request's payload as one request (a SendMessageBatch of
 * 200 KiB is 4; a ReceiveMessage is billed by what it returns); DynamoDB on demand bills read
 * request units (4 KB of item per strongly consistent read, at least 1) and write request units
 * (1 KB of item per write, at least 1; an update by the item after it, which the adapter gets
 * back, though AWS takes the larger of before and after); S3 bills PUT, COPY, POST and LIST at one
 * rate, GET and HEAD at another, DELETE not at all. Sizes follow DynamoDB's documented item-size
 * rules (lib/ports/item-size.ts), computed here from the wire format.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { serviceEndpoint, type ServiceName, type SluiceConfig } from '../config';

/** The services of the engine's own ports (a connector's clients, Kinesis, count apart). */
export type AwsService = Exclude<ServiceName, 'kinesis'>;

export interface RequestCounts {
  sqs: number;
  dynamodb: number;
  s3: number;
  total: number;
}

export interface AwsClients {
  readonly config: SluiceConfig;
  readonly sqs: SQSClient;
  readonly dynamodb: DynamoDBClient;
  readonly s3: S3Client;
  /** Closes the clients' sockets (lets a short-lived process exit promptly). */
  destroy(): void;
}

export interface ClientOptions {
  /** SDK attempts per request, retries included (default 3). */
  maxAttempts?: number;
  /** TCP connect timeout (default 2 s): an unreachable endpoint fails fast. */
  connectionTimeoutMs?: number;
  /**
   * Whole-request timeout for DynamoDB and SQS (default 10 s). SQS long polls pass their own
   * longer timeout per call. S3 gets max(this, 120 s) because snapshots can be large.
   */
  requestTimeoutMs?: number;
  /** Sockets per client (default 256: many subtasks of one unit long-poll at once). */
  maxSockets?: number;
}

const counts = { sqs: 0, dynamodb: 0, s3: 0 };

/** What AWS bills, by its price dimensions (see the header). */
export interface BilledCounts {
  /** SQS requests as billed: one per 64 KiB chunk of payload. */
  sqsRequests: number;
  dynamodbReadUnits: number;
  dynamodbWriteUnits: number;
  /** S3 PUT, COPY, POST and LIST requests. */
  s3WriteRequests: number;
  /** S3 GET, HEAD and other read requests. */
  s3ReadRequests: number;
}

const billed: BilledCounts = { sqsRequests: 0, dynamodbReadUnits: 0, dynamodbWriteUnits: 0, s3WriteRequests: 0, s3ReadRequests: 0 };

export function billedCounts(): BilledCounts {
  return { ...billed };
}

export function requestCounts(): RequestCounts {
  return { ...counts, total: counts.sqs + counts.dynamodb + counts.s3 };
}

export function resetRequestCounts(): void {
  counts.sqs = 0;
  counts.dynamodb = 0;
  counts.s3 = 0;
  for (const k of Object.keys(billed) as (keyof BilledCounts)[]) billed[k] = 0;
}

const SQS_CHUNK = 64 * 1024;
const chunks = (bytes: number) => Math.max(1, Math.ceil(bytes / SQS_CHUNK));

/** The billed SQS requests of one call. */
export function sqsBilledRequests(command: string, input: any, output: any): number {
  if (command === 'SendMessageBatchCommand') {
    return chunks((input?.Entries ?? []).reduce((n: number, e: { MessageBody?: string }) => n + Buffer.byteLength(e.MessageBody ?? ''), 0));
  }
  if (command === 'SendMessageCommand') return chunks(Buffer.byteLength(input?.MessageBody ?? ''));
  if (command === 'ReceiveMessageCommand') return chunks((output?.Messages ?? []).reduce((n: number, m: { Body?: string }) => n + Buffer.byteLength(m.Body ?? ''), 0));
  return 1;
}

/** DynamoDB's size of an item in its wire format (AttributeValue maps), by the documented rules. */
export function wireItemSize(item: Record<string, any> | undefined): number {
  if (!item) return 0;
  let n = 0;
  for (const [name, value] of Object.entries(item)) n += Buffer.byteLength(name) + wireValueSize(value);
  return n;
}

function wireValueSize(v: any): number {
  if (v.S !== undefined) return Buffer.byteLength(v.S);
  if (v.N !== undefined) return Math.ceil(String(v.N).replace(/^-/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '').length / 2) + 1;
  if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
  if (v.B !== undefined) return (v.B as Uint8Array).length;
  if (v.L !== undefined) return (v.L as any[]).reduce((n, x) => n + 1 + wireValueSize(x), 3);
  if (v.M !== undefined) return Object.entries(v.M as Record<string, any>).reduce((n, [k, x]) => n + 1 + Buffer.byteLength(k) + wireValueSize(x), 3);
  return 0;
}

/** The read and write request units of one DynamoDB call (on demand, strongly consistent reads). */
export function dynamodbBilledUnits(command: string, input: any, output: any): { read: number; write: number } {
  const readUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / 4096));
  const writeUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));
  switch (command) {
    case 'GetItemCommand':
      return { read: readUnits(wireItemSize(output?.Item)), write: 0 };
    case 'QueryCommand':
      return { read: readUnits((output?.Items ?? []).reduce((n: number, i: Record<string, any>) => n + wireItemSize(i), 0)), write: 0 };
    case 'PutItemCommand':
      return { read: 0, write: writeUnits(wireItemSize(input?.Item)) };
    case 'UpdateItemCommand':
      return { read: 0, write: writeUnits(wireItemSize(output?.Attributes)) };
    case 'DeleteItemCommand':
      return { read: 0, write: 1 };
    default:
      return { read: 0, write: 0 };
  }
}

const S3_FREE = new Set(['DeleteObjectCommand', 'DeleteObjectsCommand']);
const S3_WRITE = /^(Put|Copy|List|Create|Complete|Upload)/;

function countBilled(service: AwsService, command: string, input: unknown, output: unknown): void {
  if (service === 'sqs') billed.sqsRequests += sqsBilledRequests(command, input, output);
  else if (service === 'dynamodb') {
    const u = dynamodbBilledUnits(command, input, output);
    billed.dynamodbReadUnits += u.read;
    billed.dynamodbWriteUnits += u.write;
  } else if (!S3_FREE.has(command)) {
    if (S3_WRITE.test(command)) billed.s3WriteRequests++;
    else billed.s3ReadRequests++;
  }
}

interface AddableStack {
  // Loosely typed on purpose: each client's stack has its own Input/Output union.
  add(middleware: any, options: { step: 'finalizeRequest' | 'initialize'; priority: 'low'; name: string }): void;
}

function countRequests<C extends { middlewareStack: object }>(client: C, service: AwsService): C {
  const stack = client.middlewareStack as AddableStack;
  stack.add(
    (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
      counts[service]++;
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'sluiceRequestCounter' },
  );
  stack.add(
    (next: (args: { input: unknown }) => Promise<{ output: unknown }>, context: { commandName?: string }) => async (args: { input: unknown }) => {
      const result = await next(args);
      countBilled(service, context.commandName ?? '', args.input, result.output);
      return result;
    },
    { step: 'initialize', priority: 'low', name: 'sluiceBilledCounter' },
  );
  return client;
}

export function createAwsClients(config: SluiceConfig, options: ClientOptions = {}): AwsClients {
  const connectionTimeout = options.connectionTimeoutMs ?? 2_000;
  const requestTimeout = options.requestTimeoutMs ?? 10_000;
  const handler = (timeout: number) => ({
    connectionTimeout,
    requestTimeout: timeout,
    // Without this a request timeout only logs a warning.
    throwOnRequestTimeout: true,
    httpAgent: { maxSockets: options.maxSockets ?? 256, keepAlive: true },
    httpsAgent: { maxSockets: options.maxSockets ?? 256, keepAlive: true },
  });
  const common = (service: AwsService) => {
    const endpoint = serviceEndpoint(config, service);
    return {
      region: config.region,
      maxAttempts: options.maxAttempts ?? 3,
      ...(endpoint ? { endpoint } : {}),
      ...(config.credentials ? { credentials: config.credentials } : {}),
    };
  };
  const sqs = countRequests(new SQSClient({ ...common('sqs'), requestHandler: handler(requestTimeout) }), 'sqs');
  const dynamodb = countRequests(new DynamoDBClient({ ...common('dynamodb'), requestHandler: handler(requestTimeout) }), 'dynamodb');
  const s3 = countRequests(
    new S3Client({
      ...common('s3'),
      requestHandler: handler(Math.max(requestTimeout, 120_000)),
      // Emulators serve buckets by path, not by virtual host names.
      forcePathStyle: serviceEndpoint(config, 's3') !== undefined,
    }),
    's3',
  );
  return {
    config,
    sqs,
    dynamodb,
    s3,
    destroy() {
      sqs.destroy();
      dynamodb.destroy();
      s3.destroy();
    },
  };
}
