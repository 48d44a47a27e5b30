/**
 * The API's services on AWS: units start as Lambda invocations (or Fargate tasks), a checkpoint
 * triggered through the API starts the coordinator state machine, and each job's checkpoint
 * schedule is an EventBridge Scheduler schedule that starts the same state machine.
 *
 * Configuration (environment, set by the CDK app):
 *   SLUICE_TABLE, SLUICE_BUCKET, SLUICE_QUEUE_PREFIX, AWS_REGION    see lib/config.ts
 *   SLUICE_LAUNCHER               lambda (default) | fargate: where a job runs unless it says (runOn)
 *   SLUICE_TASK_UNIT_FUNCTION     task unit Lambda function name or ARN (lambda launcher)
 *   SLUICE_ECS_CLUSTER, SLUICE_TASK_DEFINITION, SLUICE_SUBNETS, SLUICE_SECURITY_GROUPS,
 *   SLUICE_CONTAINER_NAME         Fargate launcher (subnets and groups comma-separated)
 *   SLUICE_STATE_MACHINE_ARN      checkpoint coordinator
 *   SLUICE_SCHEDULE_GROUP, SLUICE_SCHEDULER_ROLE_ARN   per-job schedules
 */
import { createHash, randomBytes } from 'node:crypto';
import { ECSClient, ListTasksCommand, RunTaskCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CreateScheduleCommand, DeleteScheduleCommand, SchedulerClient, UpdateScheduleCommand, type CreateScheduleCommandInput } from '@aws-sdk/client-scheduler';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { JobRegistry } from '../../lib/api/registry';
import { createAwsPorts, isAwsErrorCode } from '../../lib/aws';
import type { SluiceConfig } from '../../lib/config';
import { JobSpecError } from '../../lib/graph/job-graph';
import type { UnitLauncher } from '../../lib/jobs/job-service';
import type { JobRecord, JobSettings, UnitPlacement, UnitRuntime } from '../../lib/jobs/job-store';
import { nextFireTime, schedulerTimeZone, toSchedulerExpression, type CheckpointSchedule } from '../../lib/schedule';
import { buildApiServices, type ApiServices, type SchedulerPort } from './services';
import { traceClients, type LambdaTelemetry } from '../../lib/observability/lambda';

type Env = Record<string, string | undefined>;

function required(env: Env, name: string, what: string): string {
  const value = env[name]?.trim();
  if (!value) throw new Error(`${name} is not set: the ${what} needs it (the CDK app sets it on the function)`);
  return value;
}

function clientConfig(config: SluiceConfig) {
  return {
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(config.credentials ? { credentials: config.credentials } : {}),
  };
}

/** Starts each unit attempt as an asynchronous invocation of the task unit function. */
export class LambdaUnitLauncher implements UnitLauncher {
  constructor(
    private readonly lambda: LambdaClient,
    private readonly functionName: string,
  ) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const payload = JSON.stringify({ jobId: job.jobId, unitId: unit.unitId, attempt });
    await this.lambda.send(new InvokeCommand({ FunctionName: this.functionName, InvocationType: 'Event', Payload: new TextEncoder().encode(payload) }));
  }

  /** A Lambda invocation cannot be stopped from outside: the unit ends on the cancel control message the job service sends. */
  async stop(): Promise<void> {}
}

export interface FargateLauncherOptions {
  cluster: string;
  taskDefinition: string;
  subnets: string[];
  securityGroups: string[];
  containerName: string;
}

/** `startedBy` tag of a unit's tasks (ECS allows 36 characters). */
export const fargateStartedBy = (jobId: string, unitId: string) => `sluice-${createHash('sha256').update(`${jobId}/${unitId}`).digest('hex').slice(0, 28)}`;

/** Starts each unit attempt as a Fargate task of the task unit container. */
export class FargateUnitLauncher implements UnitLauncher {
  constructor(
    private readonly ecs: ECSClient,
    private readonly options: FargateLauncherOptions,
  ) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const o = this.options;
    const res = await this.ecs.send(
      new RunTaskCommand({
        cluster: o.cluster,
        taskDefinition: o.taskDefinition,
        launchType: 'FARGATE',
        count: 1,
        startedBy: fargateStartedBy(job.jobId, unit.unitId),
        networkConfiguration: { awsvpcConfiguration: { subnets: o.subnets, securityGroups: o.securityGroups, assignPublicIp: 'DISABLED' } },
        overrides: {
          containerOverrides: [
            {
              name: o.containerName,
              environment: [
                { name: 'SLUICE_JOB_ID', value: job.jobId },
                { name: 'SLUICE_UNIT_ID', value: unit.unitId },
                { name: 'SLUICE_ATTEMPT', value: String(attempt) },
              ],
            },
          ],
        },
      }),
    );
    const failure = res.failures?.[0];
    if (failure) throw new Error(`ECS RunTask for unit ${unit.unitId} of job ${job.jobId} failed: ${failure.reason ?? 'unknown'} ${failure.detail ?? ''}`.trim());
  }

  async stop(jobId: string, unitId: string): Promise<void> {
    const { taskArns } = await this.ecs.send(new ListTasksCommand({ cluster: this.options.cluster, startedBy: fargateStartedBy(jobId, unitId) }));
    await Promise.all((taskArns ?? []).map((task) => this.ecs.send(new StopTaskCommand({ cluster: this.options.cluster, task, reason: `sluice: job ${jobId} stopped unit ${unitId}` }))));
  }
}

export interface EventBridgeSchedulerOptions {
  groupName: string;
  /** Role EventBridge Scheduler assumes to start the state machine. */
  roleArn: string;
  stateMachineArn: string;
}

/** Name of a job's schedule (Scheduler allows 64 characters). */
export const jobScheduleName = (jobId: string) => `sluice-${jobId}`.slice(0, 64);

/** Each job's checkpoint schedule as an EventBridge Scheduler schedule starting the coordinator with { jobId }. */
export class EventBridgeSchedulerPort implements SchedulerPort {
  constructor(
    private readonly scheduler: SchedulerClient,
    private readonly options: EventBridgeSchedulerOptions,
    private readonly now: () => number = Date.now,
  ) {}

  check(schedule: CheckpointSchedule): void {
    toSchedulerExpression(schedule);
  }

  /** The CreateSchedule/UpdateSchedule input for a job (exported for tests). */
  input(jobId: string, schedule: CheckpointSchedule): CreateScheduleCommandInput {
    // A rate starts at its next epoch-aligned time, as the local scheduler fires it.
    const start = schedule.kind === 'rate' ? nextFireTime(schedule, this.now()) : undefined;
    return {
      Name: jobScheduleName(jobId),
      GroupName: this.options.groupName,
      ScheduleExpression: toSchedulerExpression(schedule),
      ScheduleExpressionTimezone: schedulerTimeZone(schedule),
      ...(start !== undefined ? { StartDate: new Date(start) } : {}),
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      Description: `Sluice checkpoints of job ${jobId}`,
      Target: {
        Arn: this.options.stateMachineArn,
        RoleArn: this.options.roleArn,
        Input: JSON.stringify({ jobId }),
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 300 },
      },
    };
  }

  async apply(jobId: string, schedule: CheckpointSchedule | null): Promise<void> {
    if (!schedule) {
      try {
        await this.scheduler.send(new DeleteScheduleCommand({ Name: jobScheduleName(jobId), GroupName: this.options.groupName }));
      } catch (err) {
        if (!isAwsErrorCode(err, 'ResourceNotFoundException')) throw err;
      }
      return;
    }
    const input = this.input(jobId, schedule);
    try {
      await this.scheduler.send(new UpdateScheduleCommand(input));
    } catch (err) {
      if (!isAwsErrorCode(err, 'ResourceNotFoundException')) throw err;
      await this.scheduler.send(new CreateScheduleCommand(input));
    }
  }
}

/** Starts one coordinator execution for a checkpoint triggered through the API. */
export function stateMachineStarter(sfn: SFNClient, stateMachineArn: string) {
  return async (jobId: string, checkpointId: number): Promise<void> => {
    const name = `${jobId}-c${checkpointId}-${randomBytes(3).toString('hex')}`.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 80);
    await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify({ jobId, checkpointId }) }));
  };
}

/**
 * Starts each job's units where the job asks (`settings.runOn`), or where the deployment's default
 * says; a runtime the deployment does not have is refused at submit, before anything is created.
 */
export class PerJobLauncher implements UnitLauncher {
  constructor(
    private readonly launchers: Partial<Record<UnitRuntime, UnitLauncher>>,
    readonly defaultRunOn: UnitRuntime,
  ) {}

  accepts(settings: JobSettings): void {
    const runOn = settings.runOn ?? this.defaultRunOn;
    if (this.launchers[runOn]) return;
    const how = runOn === 'fargate' ? 'deploy with -c sluice:fargate=true' : 'set SLUICE_TASK_UNIT_FUNCTION';
    throw new JobSpecError(`runOn '${runOn}': this deployment has no ${runOn === 'fargate' ? 'Fargate' : 'Lambda'} task unit (${how})`);
  }

  launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const runOn = job.settings.runOn ?? this.defaultRunOn;
    const launcher = this.launchers[runOn];
    if (!launcher) throw new Error(`job ${job.jobId} runs on ${runOn}, and this deployment has no ${runOn} task unit`);
    return launcher.launch(job, unit, attempt);
  }

  /** The job's runtime is not known here: every configured launcher stops what it has of the unit. */
  async stop(jobId: string, unitId: string): Promise<void> {
    await Promise.all(Object.values(this.launchers).map((l) => l.stop(jobId, unitId)));
  }
}

/**
 * The unit launchers the environment configures: Lambda when SLUICE_TASK_UNIT_FUNCTION is set,
 * Fargate when SLUICE_ECS_CLUSTER is; SLUICE_LAUNCHER names the default, which must be configured.
 */
export function launcherFromEnv(config: SluiceConfig, env: Env): PerJobLauncher {
  const kind = env.SLUICE_LAUNCHER?.trim() || 'lambda';
  if (kind !== 'lambda' && kind !== 'fargate') throw new Error(`SLUICE_LAUNCHER must be 'lambda' or 'fargate', got '${kind}'`);
  const launchers: Partial<Record<UnitRuntime, UnitLauncher>> = {};
  if (kind === 'lambda' || env.SLUICE_TASK_UNIT_FUNCTION?.trim()) {
    launchers.lambda = new LambdaUnitLauncher(new LambdaClient(clientConfig(config)), required(env, 'SLUICE_TASK_UNIT_FUNCTION', 'Lambda launcher'));
  }
  if (kind === 'fargate' || env.SLUICE_ECS_CLUSTER?.trim()) {
    const list = (name: string) => required(env, name, 'Fargate launcher').split(',').map((s) => s.trim()).filter(Boolean);
    launchers.fargate = new FargateUnitLauncher(new ECSClient(clientConfig(config)), {
      cluster: required(env, 'SLUICE_ECS_CLUSTER', 'Fargate launcher'),
      taskDefinition: required(env, 'SLUICE_TASK_DEFINITION', 'Fargate launcher'),
      subnets: list('SLUICE_SUBNETS'),
      securityGroups: list('SLUICE_SECURITY_GROUPS'),
      containerName: env.SLUICE_CONTAINER_NAME?.trim() || 'task-unit',
    });
  }
  return new PerJobLauncher(launchers, kind);
}

/** Defers building a launcher until a unit is launched (read-only API functions never need one). */
class LazyLauncher implements UnitLauncher {
  private inner: UnitLauncher | undefined;
  constructor(private readonly make: () => UnitLauncher) {}
  private get(): UnitLauncher {
    return (this.inner ??= this.make());
  }
  launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    return this.get().launch(job, unit, attempt);
  }
  stop(jobId: string, unitId: string): Promise<void> {
    return this.get().stop(jobId, unitId);
  }
  accepts(settings: JobSettings): void {
    this.get().accepts?.(settings);
  }
}

/** Fails only when used: a function without scheduler permissions never touches it. */
class LazySchedulerPort implements SchedulerPort {
  private inner: SchedulerPort | undefined;
  constructor(private readonly make: () => SchedulerPort) {}
  check(schedule: CheckpointSchedule): void {
    toSchedulerExpression(schedule);
  }
  apply(jobId: string, schedule: CheckpointSchedule | null): Promise<void> {
    return (this.inner ??= this.make()).apply(jobId, schedule);
  }
}

/** The API's services on AWS, from the config, the function's environment and the jobs (lib/api/jobs-module.ts). */
export function createCloudApiServices(config: SluiceConfig, env: Env, registry: JobRegistry, telemetry?: LambdaTelemetry): ApiServices {
  const ports = createAwsPorts(config);
  if (telemetry) traceClients(ports.clients, telemetry);
  let sfn: SFNClient | undefined;
  return buildApiServices({
    metadata: ports.metadata,
    channels: ports.channels,
    blobs: ports.blobs,
    registry,
    queuePrefix: config.queuePrefix,
    launcher: new LazyLauncher(() => launcherFromEnv(config, env)),
    ...(telemetry ? { logger: telemetry.logger, metrics: telemetry.metrics } : {}),
    scheduler: new LazySchedulerPort(
      () =>
        new EventBridgeSchedulerPort(new SchedulerClient(clientConfig(config)), {
          groupName: required(env, 'SLUICE_SCHEDULE_GROUP', 'checkpoint schedule'),
          roleArn: required(env, 'SLUICE_SCHEDULER_ROLE_ARN', 'checkpoint schedule'),
          stateMachineArn: required(env, 'SLUICE_STATE_MACHINE_ARN', 'checkpoint schedule'),
        }),
    ),
    startCheckpoint: async (jobId, checkpointId) => {
      const arn = required(env, 'SLUICE_STATE_MACHINE_ARN', 'checkpoint trigger');
      sfn ??= new SFNClient(clientConfig(config));
      await stateMachineStarter(sfn, arn)(jobId, checkpointId);
    },
  });
}
