/**
 * SDK v3 clients built from one SluiceConfig, plus a per-process request counter.
 *
 * Counting: a middleware at the `finalizeRequest` step with low priority. The retry middleware
 * sits at the same step with high priority, so ours runs inside the retry loop: every HTTP attempt
 * (first try and each SDK retry) is counted once, just after signing and before the request is
 * sent. A request that never connects (endpoint down) is still counted: it was attempted.
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

export function requestCounts(): RequestCounts {
  return { ...counts, total: counts.sqs + counts.dynamodb + counts.s3 };
}

export function resetRequestCounts(): void {
  counts.sqs = 0;
  counts.dynamodb = 0;
  counts.s3 = 0;
}

interface AddableStack {
  // Loosely typed on purpose: each client's stack has its own Input/Output union.
  add(middleware: any, options: { step: 'finalizeRequest'; priority: 'low'; name: string }): void;
}

function countRequests<C extends { middlewareStack: AddableStack }>(client: C, service: AwsService): C {
  client.middlewareStack.add(
    (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
      counts[service]++;
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'sluiceRequestCounter' },
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
