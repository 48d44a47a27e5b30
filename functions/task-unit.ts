/**
 * Task unit entrypoint. As a child process (local runtime) or a Fargate task it reads its job,
 * unit and attempt from the environment; as a Lambda function, from the event.
 *
 * A Lambda invocation ends after 15 minutes at most, so a Lambda unit hands over before then
 * (lib/runtime/handover.ts): its subtasks stop at a safe point, their live state goes to S3, and
 * the function invokes itself for the same attempt with `resume: true`. A child process hands
 * over when SLUICE_HANDOVER_AFTER_MS is set (to try the same path locally) by exiting with code 75;
 * the process launcher then starts the next invocation.
 *
 * Logs are Powertools JSON lines on stdout (CloudWatch Logs in Lambda; the unit's log file under
 * .sluice/logs/<jobId>/ locally), each with the job, unit, attempt and invocation; metrics are EMF
 * lines on the same stream (lib/observability).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { createAwsPorts, requestCounts, type AwsPorts } from '../lib/aws';
import { loadConfig } from '../lib/config';
import { JobStore, type JobRecord } from '../lib/jobs/job-store';
import { HANDED_OVER_EXIT_CODE } from '../lib/runtime/handover';
import { hostUnit } from '../lib/host/unit-host';
import { lambdaTelemetry, withPowertools } from '../lib/observability/lambda';
import { silentLogger, type Logger, type MetricsSink } from '../lib/ports/telemetry';
import { loadJobRegistry } from '../lib/api/jobs-module';

export interface TaskUnitEvent {
  jobId: string;
  unitId: string;
  attempt: number;
  /** Continue from the hand-over of this attempt's previous invocation. */
  resume?: boolean;
}

/** Time left at hand-over: quiescing (alignment grace 20 s), writing the state, invoking the next. */
export const LAMBDA_HANDOVER_MARGIN_MS = 60_000;

/** Where a unit's log lines and metrics go (default: nowhere). */
export interface UnitTelemetry {
  logger?: Logger;
  metrics?: MetricsSink;
}

/** Runs one invocation of a unit; `prepared`: AWS ports made before (a warm spare's), closed at the end like its own. */
export async function runUnit(event: TaskUnitEvent, handoverAt?: number, telemetry: UnitTelemetry = {}, prepared?: AwsPorts, job?: JobRecord) {
  const config = loadConfig();
  const ports = prepared ?? createAwsPorts(config);
  try {
    return await hostUnit({
      ...event,
      ...(job ? { job } : {}),
      queuePrefix: config.queuePrefix,
      channels: ports.channels,
      blobs: ports.blobs,
      metadata: ports.metadata,
      jobs: new JobStore(ports.metadata),
      registry: await loadJobRegistry(),
      requestCounts: () => ({ ...requestCounts() }),
      ...(telemetry.logger ? { logger: telemetry.logger } : {}),
      ...(telemetry.metrics ? { metrics: telemetry.metrics } : {}),
      ...(handoverAt !== undefined ? { handoverAt } : {}),
    });
  } finally {
    ports.clients.destroy();
  }
}

/** What the handler needs of the Lambda context (a subset of aws-lambda's Context). */
export interface InvocationContext {
  functionName: string;
  getRemainingTimeInMillis(): number;
}

/** Invokes the task unit function asynchronously with this event. */
export type SelfInvoke = (functionName: string, event: TaskUnitEvent) => Promise<void>;

export function lambdaSelfInvoke(lambda: LambdaClient = new LambdaClient({})): SelfInvoke {
  return async (functionName, event) => {
    await lambda.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: new TextEncoder().encode(JSON.stringify(event)) }));
  };
}

/**
 * The Lambda handler, with its two dependencies as parameters (the unit run, the self-invoke) so
 * the hand-over decision is testable without Lambda.
 */
export function makeHandler(deps: { run: typeof runUnit; invoke: SelfInvoke; marginMs?: number; retryDelayMs?: number; telemetry?: UnitTelemetry }) {
  return async (event: TaskUnitEvent, context: InvocationContext) => {
    const log = (deps.telemetry?.logger ?? silentLogger).child({ jobId: event.jobId, unitId: event.unitId, attempt: event.attempt });
    const handoverAt = Date.now() + context.getRemainingTimeInMillis() - (deps.marginMs ?? LAMBDA_HANDOVER_MARGIN_MS);
    const outcome = await deps.run(event, handoverAt, deps.telemetry);
    log.info(`invocation ended: ${outcome}`, { status: outcome });
    if (outcome === 'HANDED_OVER') {
      const next: TaskUnitEvent = { jobId: event.jobId, unitId: event.unitId, attempt: event.attempt, resume: true };
      for (let attempt = 1; ; attempt++) {
        try {
          await deps.invoke(context.functionName, next);
          break;
        } catch (error) {
          // Never fail the invocation: Lambda would retry the event and run this attempt again.
          // Without a successor the heartbeat goes stale and the supervisor restarts the unit.
          log.error(`invoking the next invocation failed (try ${attempt})`, { error });
          if (attempt === 3) return { status: 'HANDOVER_LOST' as const };
          await sleep((deps.retryDelayMs ?? 1000) * attempt);
        }
      }
    }
    return { status: outcome };
  };
}

const lambdaHandler = makeHandler({ run: runUnit, invoke: lambdaSelfInvoke(), telemetry: lambdaTelemetry() });

/** The Lambda handler with Powertools: the invocation's context on every log line, a traced handler. */
export const handler = withPowertools(middy<TaskUnitEvent, Awaited<ReturnType<typeof lambdaHandler>>, Error, Context>().handler((event, context) => lambdaHandler(event, context)));

/** Runs the unit the environment names, then ends the process with its outcome's exit code. */
function runFromEnv(env: NodeJS.ProcessEnv, ports?: AwsPorts, job?: JobRecord): void {
  const { SLUICE_JOB_ID: jobId, SLUICE_UNIT_ID: unitId, SLUICE_ATTEMPT: attempt, SLUICE_RESUME: resume, SLUICE_HANDOVER_AFTER_MS: after } = env;
  // The same Powertools logger and EMF sink as in Lambda: JSON lines on stdout, which the process
  // launcher writes to the unit's log file (a Fargate task's go to CloudWatch Logs).
  const { logger, metrics } = lambdaTelemetry();
  if (!jobId || !unitId) {
    console.error('task unit: set SLUICE_JOB_ID and SLUICE_UNIT_ID (and SLUICE_ATTEMPT)');
    process.exit(2);
  }
  const handoverAfterMs = after ? Number(after) : undefined;
  if (handoverAfterMs !== undefined && !(handoverAfterMs > 0)) {
    console.error(`task unit: SLUICE_HANDOVER_AFTER_MS must be a positive number of milliseconds, got '${after}'`);
    process.exit(2);
  }
  const log = logger.child({ jobId, unitId, attempt: Number(attempt ?? 0) });
  const event = { jobId, unitId, attempt: Number(attempt ?? 0), resume: resume === '1' };
  runUnit(event, handoverAfterMs === undefined ? undefined : Date.now() + handoverAfterMs, { logger, metrics }, ports, job).then(
    (status) => {
      log.info(`unit ${unitId} ended: ${status}`, { status });
      process.exit(status === 'FAILED' ? 1 : status === 'HANDED_OVER' ? HANDED_OVER_EXIT_CODE : 0);
    },
    (error: unknown) => {
      log.error(`unit ${unitId} failed: ${error instanceof Error ? error.message : String(error)}`, { error });
      process.exit(1);
    },
  );
}

/**
 * A warm spare (lib/local/process-launcher.ts): the code is loaded; the jobs and the AWS clients
 * are made now, then it waits, idle, to be told over its IPC channel which unit to become. It
 * ends with its parent while idle.
 */
function waitAsSpare(): void {
  let claimed = false;
  const config = loadConfig();
  const ports = createAwsPorts(config);
  // One cheap request per service while idle: the SDK's first call in a process costs far more than
  // the next (lazy set-up and first compiles: ~0.45 s measured for a DynamoDB GetItem), and a
  // restart should not pay it. What they find does not matter; a missing table or bucket is fine.
  const firstCalls = [
    ports.metadata.get('SLUICE#WARMUP', 'SPARE'),
    ports.channels.listQueues(`${config.queuePrefix}-warmup-`),
    ports.blobs.head('warmup/spare'),
  ].map((call) => call.catch(() => undefined));
  const warm = Promise.all([loadJobRegistry(), ...firstCalls]).catch(() => undefined);
  process.on('disconnect', () => {
    if (!claimed) process.exit(0);
  });
  process.once('message', (message: { type?: string; env?: Record<string, string>; job?: JobRecord }) => {
    claimed = true;
    if (message.type !== 'run' || !message.env) {
      console.error(`task unit: a spare expects {type: 'run', env}, got ${JSON.stringify(message).slice(0, 200)}`);
      process.exit(2);
    }
    for (const name of Object.keys(process.env)) if (!(name in message.env)) delete process.env[name];
    Object.assign(process.env, message.env);
    // Its parent may go while it runs: a running unit ends on its own terms, like one started cold.
    (process as unknown as { channel?: { unref?: () => void } }).channel?.unref?.();
    // The clients made while idle serve only if the unit's configuration is the one they were made for.
    const same = JSON.stringify(loadConfig()) === JSON.stringify(config);
    if (!same) ports.clients.destroy();
    void warm.then(() => runFromEnv(process.env, same ? ports : undefined, message.job));
  });
  void warm.then(() => process.send?.({ type: 'ready' }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.env.SLUICE_SPARE === '1' && process.send) waitAsSpare();
  else runFromEnv(process.env);
}
