/**
 * Turns SDK and network errors into errors a user can act on: which endpoint, bucket, table or
 * queue, and what to do. Imports nothing from the SDK so the in-memory ports can throw the same
 * error type.
 */
import type { AwsService } from './clients';

export type AwsErrorKind = 'unreachable' | 'missing-bucket' | 'missing-table' | 'missing-queue' | 'aws';

export interface AwsErrorContext {
  service: AwsService;
  /** The endpoint override, or undefined for real AWS. */
  endpoint?: string | undefined;
  region?: string;
  /** SDK operation, e.g. 'SendMessageBatch'. */
  operation?: string;
  bucket?: string;
  table?: string;
  /** Logical queue name. */
  queue?: string;
  key?: string;
}

export class SluiceAwsError extends Error {
  override name = 'SluiceAwsError';
  constructor(
    message: string,
    readonly kind: AwsErrorKind,
    readonly service: AwsService,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
};

const MISSING_QUEUE = new Set(['QueueDoesNotExist', 'AWS.SimpleQueueService.NonExistentQueue']);

interface ErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  errors?: unknown[];
  cause?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/** The network reason (connection refused, timed out, ...) or undefined for a service error. */
function networkReason(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== 'object' || depth > 3) return undefined;
  const e = err as ErrorShape;
  if (e.code && NETWORK_REASONS[e.code]) return NETWORK_REASONS[e.code];
  // Connection and request timeouts of the HTTP handler; socket hang-ups.
  if (e.name === 'TimeoutError' || e.code === 'ECONNABORTED') return 'timed out';
  if (e.message === 'socket hang up') return 'connection closed';
  // Node's happy-eyeballs connect reports an AggregateError of per-address failures.
  for (const inner of e.errors ?? []) {
    const reason = networkReason(inner, depth + 1);
    if (reason) return reason;
  }
  return networkReason(e.cause, depth + 1);
}

/** The service's error code (SDK v3 puts it in `name`; some protocols also set `Code`). */
export function awsErrorCode(err: unknown): string | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as ErrorShape;
  return e.Code ?? e.name;
}

export function isAwsErrorCode(err: unknown, ...codes: string[]): boolean {
  const code = awsErrorCode(err);
  return code !== undefined && codes.includes(code);
}

export function isMissingQueueError(err: unknown): boolean {
  if (err instanceof SluiceAwsError) return err.kind === 'missing-queue';
  const code = awsErrorCode(err);
  return code !== undefined && MISSING_QUEUE.has(code);
}

function where(context: AwsErrorContext): string {
  return context.endpoint ? `at ${context.endpoint}` : `in AWS region ${context.region ?? '(default)'}`;
}

/** A SluiceAwsError naming the endpoint, bucket, table or queue the error is about. */
export function describeAwsError(err: unknown, context: AwsErrorContext): SluiceAwsError {
  if (err instanceof SluiceAwsError) return err;
  const { service } = context;
  const reason = networkReason(err);
  if (reason) {
    const target = context.endpoint ? `the AWS endpoint ${context.endpoint}` : `AWS (${context.region ?? 'default region'})`;
    const hint = context.endpoint
      ? 'Is the emulator or LocalStack running? Set AWS_ENDPOINT_URL to a running endpoint ' +
        '(`npm run emulator` starts one and prints it).'
      : 'Check the network and the AWS region, or set AWS_ENDPOINT_URL to use an emulator.';
    return new SluiceAwsError(`cannot reach ${target} (${service}): ${reason}. ${hint}`, 'unreachable', service, { cause: err });
  }
  const code = awsErrorCode(err);
  if (code === 'NoSuchBucket') {
    return new SluiceAwsError(
      `S3 bucket '${context.bucket ?? '?'}' does not exist ${where(context)}. ` +
        'Create it (ensureInfrastructure / the demo does) or set SLUICE_BUCKET to an existing bucket.',
      'missing-bucket',
      service,
      { cause: err },
    );
  }
  if (service === 'dynamodb' && code === 'ResourceNotFoundException') {
    return new SluiceAwsError(
      `DynamoDB table '${context.table ?? '?'}' does not exist ${where(context)}. ` +
        'Create it (ensureInfrastructure / the demo does) or set SLUICE_TABLE to an existing table.',
      'missing-table',
      service,
      { cause: err },
    );
  }
  if (code !== undefined && MISSING_QUEUE.has(code)) {
    return missingQueueError(context.queue ?? '?', err);
  }
  const op = context.operation ? ` ${context.operation}` : '';
  const status = (err as ErrorShape | undefined)?.$metadata?.httpStatusCode;
  if ((code === 'Unknown' || code === 'UnknownError') && status !== undefined) {
    // Something answered, but not with an AWS error document (a web server, a proxy).
    return new SluiceAwsError(
      `${context.endpoint ?? 'the AWS endpoint'} answered HTTP ${status} to ${service}${op} with no AWS error in it. ` +
        'Does AWS_ENDPOINT_URL point at an AWS emulator (LocalStack, moto)?',
      'aws',
      service,
      { cause: err },
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  const subject = context.queue ? ` on queue '${context.queue}'` : context.table ? ` on table '${context.table}'` : context.bucket ? ` on bucket '${context.bucket}'` : '';
  return new SluiceAwsError(`${service}${op}${subject} failed: ${code ?? 'error'}: ${message}`, 'aws', service, { cause: err });
}

export function missingQueueError(queue: string, cause?: unknown): SluiceAwsError {
  return new SluiceAwsError(`queue '${queue}' no longer exists (deleted while the job ran?)`, 'missing-queue', 'sqs', { cause });
}

/** Runs one AWS call and rethrows its failure as a SluiceAwsError. */
export async function callAws<T>(context: AwsErrorContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw describeAwsError(err, context);
  }
}
