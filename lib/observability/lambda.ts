/**
 * Powertools for the Lambda handlers (functions/): one logger, metrics sink and tracer per
 * container, and middy middleware that puts the invocation's context (request id, cold start,
 * function, X-Ray trace id) on every log line and traces the handler. Outside Lambda (tests, the
 * local runtime) the tracer is off by itself (no AWS_EXECUTION_ENV) and every call on it is a no-op.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { AwsClients } from '../aws/clients';
import { createLogger, SERVICE_NAME, type PowertoolsLoggerAdapter } from './logger';
import { EmfMetrics } from './metrics';

export interface LambdaTelemetry {
  logger: PowertoolsLoggerAdapter;
  metrics: EmfMetrics;
  tracer: Tracer;
}

let telemetry: LambdaTelemetry | undefined;

/** The container's logger, metrics and tracer (made on first use). */
export function lambdaTelemetry(): LambdaTelemetry {
  telemetry ??= { logger: createLogger(), metrics: new EmfMetrics(), tracer: new Tracer({ serviceName: SERVICE_NAME }) };
  return telemetry;
}

/**
 * Adds the Powertools middleware to a middy handler: invocation context on log lines, a traced
 * handler, and the metrics added during the invocation published when it ends (however it ends).
 */
export function withPowertools<E, R>(handler: middy.MiddyfiedHandler<E, R, Error, Context>, t: LambdaTelemetry = lambdaTelemetry()): middy.MiddyfiedHandler<E, R, Error, Context> {
  const publish: middy.MiddlewareObj<E, R, Error, Context> = { after: () => t.metrics.flush(), onError: () => t.metrics.flush() };
  // resetKeys: keys appended during one invocation do not leak into the next on a warm container.
  return handler.use(injectLambdaContext(t.logger.powertools, { resetKeys: true })).use(captureLambdaHandler(t.tracer)).use(publish) as middy.MiddyfiedHandler<E, R, Error, Context>;
}

/**
 * A plain async handler as a middy handler with the Powertools middleware. The context is optional
 * (a test or a local driver calls the handler with its event only); without it the log lines
 * simply carry no invocation fields.
 */
export function instrument<E, R>(handler: (event: E) => Promise<R>, t: LambdaTelemetry = lambdaTelemetry()): (event: E, context?: Context) => Promise<R> {
  const wrapped = withPowertools(middy<E, R, Error, Context>().handler(async (event: E) => handler(event)), t);
  return (event, context) => wrapped(event, context as Context);
}

/** Traces every call of these SDK clients as an X-Ray subsegment (no-op when tracing is off). */
export function traceClients(clients: AwsClients, t: LambdaTelemetry = lambdaTelemetry()): void {
  t.tracer.captureAWSv3Client(clients.sqs);
  t.tracer.captureAWSv3Client(clients.dynamodb);
  t.tracer.captureAWSv3Client(clients.s3);
}
