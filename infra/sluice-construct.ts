/**
 * `Sluice`: everything one Sluice installation needs in AWS, as one construct you can put in your
 * own CDK app (infra/app.ts puts it in `SluiceStack`). It composes one construct per concept
 * (infra/constructs/):
 *
 * - `Storage` (storage.ts): the DynamoDB table, the data bucket and its access-log bucket, the
 *   queue name prefix, and the grants scoped to them;
 * - `TaskUnits` (task-units.ts): the task unit as a Lambda function and, optionally, a Fargate task;
 * - `CheckpointCoordinator` (coordinator.ts): the Step Functions state machine, its four functions,
 *   the EventBridge Scheduler group and role for the job schedules;
 * - `Supervision` (supervision.ts): the supervisor function, every minute;
 * - `ControlApi` (control-api.ts): the REST API with IAM authorization, one function per route;
 * - `Observability` (observability.ts, opt-in): a CloudWatch dashboard and alarms.
 *
 * Every function has X-Ray tracing and Lambda's JSON log format.
 *
 * The resources keep the CloudFormation logical ids they had when this was one flat construct
 * (constructs/logical-ids.ts): a new id would make CloudFormation replace the table and buckets
 * of a deployed stack.
 *
 * IAM is least privilege per function: the one table, bucket prefixes, SQS actions on
 * `arn:aws:sqs:<region>:<account>:<queuePrefix>-*` (queues are created per job), the one state
 * machine, the job schedules of the one group. Every wildcard carries its reason (infra/nag.ts).
 */
import { Aspects, RemovalPolicy, Stack, type CfnElement } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { RouteName } from '../functions/api/routes';
import { ControlApi } from './constructs/control-api';
import { CheckpointCoordinator, type CoordinatorStep } from './constructs/coordinator';
import { SluiceFunctions } from './constructs/functions';
import { FlatLogicalIds } from './constructs/logical-ids';
import { SluiceObservability, type SluiceObservabilityOptions } from './constructs/observability';
import { SluiceStorage } from './constructs/storage';
import { Supervision } from './constructs/supervision';
import { TaskUnitRuntime, type SluiceFargateOptions } from './constructs/task-units';
import { AcknowledgeWildcards, WildcardReasons } from './nag';

export { REPO_ROOT } from './constructs/functions';
export { PREFIXES } from './constructs/storage';
export type { SluiceFargateOptions } from './constructs/task-units';
export type { SluiceObservabilityOptions } from './constructs/observability';

export interface SluiceProps {
  /**
   * Your jobs module: a file exporting a JobRegistry or job definitions (see the README's "Writing
   * a job"), bundled into the task unit, supervisor, coordinator and API functions. A path relative
   * to the working directory of `cdk synth`, or absolute. Default: Sluice's example jobs.
   */
  jobs?: string;
  /** Prefix of every queue name; IAM for SQS is scoped to `<prefix>-*`. Default 'sluice'. At most 20 characters. */
  queuePrefix?: string;
  /** Days checkpoint objects (`checkpoints/`) are kept. Default 30. */
  checkpointRetentionDays?: number;
  /** Days the API, function and state machine logs are kept. Default one month. */
  logRetention?: logs.RetentionDays;
  /** What happens to the table and bucket when the stack is deleted. Default RETAIN. */
  dataRemovalPolicy?: RemovalPolicy;
  /** Memory of the task unit function (MiB). Default 1024. */
  taskUnitMemoryMiB?: number;
  /** Also define the task unit as a Fargate task (and a cluster). Default: off. */
  fargate?: SluiceFargateOptions;
  /** How the API and the supervisor start units. Default 'lambda'; 'fargate' needs `fargate`. */
  launcher?: 'lambda' | 'fargate';
  /** Seconds before the first poll of a pending checkpoint (default 2); each poll then says how long to wait (a quarter of the checkpoint's age, 1-60 s). */
  pollIntervalSeconds?: number;
  /** Longest a checkpoint may stay undecided before the workflow finalizes it anyway. Default 900. */
  maxCheckpointSeconds?: number;
  /** API Gateway stage. Default 'prod'. */
  stageName?: string;
  /** Minify the function bundles. Default true. */
  minify?: boolean;
  /**
   * Create the account's API Gateway CloudWatch role (AWS::ApiGateway::Account). API Gateway
   * writes execution and access logs through one role per account and region; setting it here
   * replaces one your account may already have. Default false.
   */
  apiGatewayCloudWatchRole?: boolean;
  /**
   * Execution and access logs on the API stage. They need the account's API Gateway CloudWatch
   * role: set once per account and region (`apiGatewayCloudWatchRole`, another stack, or the
   * console), else the deployment fails with "CloudWatch Logs role ARN must be set in account
   * settings". Default true.
   */
  apiLogging?: boolean;
  /** A CloudWatch dashboard and alarms over Sluice's metrics (infra/constructs/observability.ts). Default: none. */
  observability?: SluiceObservabilityOptions;
}

export class Sluice extends Construct {
  readonly storage: SluiceStorage;
  readonly taskUnits: TaskUnitRuntime;
  readonly coordinator: CheckpointCoordinator;
  readonly supervision: Supervision;
  readonly controlApi: ControlApi;
  /** The dashboard and alarms, when `observability` is given. */
  readonly observability: SluiceObservability | undefined;

  readonly table: dynamodb.Table;
  readonly bucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;
  readonly taskUnit: nodejs.NodejsFunction;
  readonly supervisor: nodejs.NodejsFunction;
  readonly coordinatorFunctions: Record<CoordinatorStep, nodejs.NodejsFunction>;
  readonly stateMachine: sfn.StateMachine;
  readonly scheduleGroup: scheduler.ScheduleGroup;
  readonly schedulerRole: iam.Role;
  readonly api: apigw.RestApi;
  readonly apiFunctions: Record<RouteName, nodejs.NodejsFunction>;
  readonly taskDefinition: ecs.FargateTaskDefinition | undefined;
  readonly cluster: ecs.Cluster | undefined;
  readonly queuePrefix: string;
  /** Reasons for the wildcards of this construct's policies (see infra/nag.ts). */
  readonly wildcards = new WildcardReasons();

  constructor(scope: Construct, id: string, props: SluiceProps = {}) {
    super(scope, id);
    // Access logs are delivered under a bucket policy (not the legacy ACL), wherever this construct is used.
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    this.queuePrefix = props.queuePrefix ?? 'sluice';
    if (!/^[A-Za-z0-9_-]{1,20}$/.test(this.queuePrefix)) throw new Error(`queuePrefix must be 1-20 letters, digits, - or _, got '${this.queuePrefix}'`);
    const launcher = props.launcher ?? 'lambda';
    if (launcher === 'fargate' && !props.fargate) throw new Error("launcher 'fargate' needs the fargate option");
    const logicalIds = new FlatLogicalIds(this);
    const wildcards = this.wildcards;
    const functions = new SluiceFunctions({
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      minify: props.minify ?? true,
      wildcards,
      ...(props.jobs !== undefined ? { jobs: props.jobs } : {}),
    });

    const storage = new SluiceStorage(this, 'Storage', {
      queuePrefix: this.queuePrefix,
      checkpointRetentionDays: props.checkpointRetentionDays ?? 30,
      dataRemovalPolicy: props.dataRemovalPolicy ?? RemovalPolicy.RETAIN,
      wildcards,
      logicalIds,
    });
    const taskUnits = new TaskUnitRuntime(this, 'TaskUnits', {
      storage,
      functions,
      wildcards,
      logicalIds,
      launcher,
      memoryMiB: props.taskUnitMemoryMiB ?? 1024,
      ...(props.fargate ? { fargate: props.fargate } : {}),
    });
    const coordinator = new CheckpointCoordinator(this, 'CheckpointCoordinator', {
      storage,
      functions,
      wildcards,
      logicalIds,
      pollSeconds: props.pollIntervalSeconds ?? 2,
      maxCheckpointSeconds: props.maxCheckpointSeconds ?? 900,
    });
    const supervision = new Supervision(this, 'Supervision', { storage, functions, taskUnits, coordinator, logicalIds });
    const controlApi = new ControlApi(this, 'ControlApi', {
      storage,
      functions,
      taskUnits,
      coordinator,
      logicalIds,
      stageName: props.stageName ?? 'prod',
      cloudWatchRole: props.apiGatewayCloudWatchRole ?? false,
      logging: props.apiLogging ?? true,
    });

    this.storage = storage;
    this.taskUnits = taskUnits;
    this.coordinator = coordinator;
    this.supervision = supervision;
    this.controlApi = controlApi;
    this.table = storage.table;
    this.bucket = storage.bucket;
    this.accessLogsBucket = storage.accessLogsBucket;
    this.taskUnit = taskUnits.function;
    this.taskDefinition = taskUnits.taskDefinition;
    this.cluster = taskUnits.cluster;
    this.coordinatorFunctions = coordinator.functions;
    this.stateMachine = coordinator.stateMachine;
    this.scheduleGroup = coordinator.scheduleGroup;
    this.schedulerRole = coordinator.schedulerRole;
    this.supervisor = supervision.function;
    this.api = controlApi.api;
    this.apiFunctions = controlApi.functions;

    // New: not part of the flat construct, so it keeps the ids of its own path.
    this.observability = props.observability
      ? new SluiceObservability(this, 'Observability', {
          ...props.observability,
          taskUnit: this.taskUnit,
          supervisor: this.supervisor,
          coordinatorFunctions: this.coordinatorFunctions,
          stateMachine: this.stateMachine,
          api: this.api,
        })
      : undefined;

    logicalIds.apply();
    Aspects.of(this).add(new AcknowledgeWildcards(this.wildcards));
  }

  /** Logical id of a resource of this construct (for tests and outputs). */
  logicalId(element: CfnElement): string {
    return Stack.of(this).getLogicalId(element);
  }
}
