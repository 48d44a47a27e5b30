/**
 * `Sluice`: everything one Sluice installation needs in AWS, as one construct you can put in your
 * own CDK app (infra/app.ts puts it in `SluiceStack`).
 *
 * - DynamoDB table (pk/sk strings, on demand, point-in-time recovery): jobs, units, regions,
 *   checkpoints, availability flags.
 * - S3 bucket (private, encrypted, TLS only, access-logged): snapshots and manifests under
 *   `checkpoints/` (expire after `checkpointRetentionDays`), sink staging under `staging/` (1 day),
 *   task unit hand-overs under `handover/` (2 days),
 *   output under `output/`, inputs under `input/`; incomplete multipart uploads are aborted.
 * - The task unit as a Lambda function (15 min per invocation; a unit hands over its live state to
 *   the next invocation of the same attempt, which the function starts by invoking itself) and,
 *   optionally, as a Fargate task definition built from infra/docker/task-unit.Dockerfile.
 * - The supervisor function, every minute.
 * - The checkpoint coordinator: a Step Functions state machine Trigger → Wait → Poll →
 *   Choice(decided or out of polls?) → Finalize → Notify, its four functions, and the
 *   EventBridge Scheduler group and role under which the API creates one schedule per job.
 * - The job API: API Gateway REST API, IAM (SigV4) authorization on every method, request
 *   validation, one Lambda function per route (functions/api/routes.ts).
 *
 * IAM is least privilege per function: the one table, bucket prefixes, SQS actions on
 * `arn:aws:sqs:<region>:<account>:<queuePrefix>-*` (queues are created per job), the one state
 * machine, the job schedules of the one group. Every wildcard carries its reason (infra/nag.ts).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aspects, Duration, Fn, RemovalPolicy, Stack, type CfnElement } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { TTL_ATTRIBUTE } from '../lib/ports/metadata-keys';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { z } from 'zod';
import { apiGatewayModel, modelName } from '../functions/api/models';
import { ROUTES, type RouteName } from '../functions/api/routes';
import { bodySchemas } from '../functions/api/schemas';
import { AcknowledgeWildcards, acknowledge, WildcardReasons } from './nag';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface SluiceFargateOptions {
  /** VPC for the tasks (private subnets with egress). Default: a new 2-AZ VPC with one NAT gateway and flow logs. */
  vpc?: ec2.IVpc;
  /** A pushed task-unit image; default: built from infra/docker/task-unit.Dockerfile at deploy time (needs Docker). */
  image?: string;
  cpu?: number;
  memoryLimitMiB?: number;
}

export interface SluiceProps {
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
  /** Seconds between polls of a pending checkpoint. Default 2. */
  pollIntervalSeconds?: number;
  /** Longest a checkpoint may stay undecided before the workflow finalizes it anyway. Default 900. */
  maxCheckpointSeconds?: number;
  /** API Gateway stage. Default 'prod'. */
  stageName?: string;
  /** Minify the function bundles. Default true. */
  minify?: boolean;
}

const NODE_RUNTIME_REASON =
  'Sluice runs on Node.js 22 everywhere (package.json engines, the local child-process task units, the Fargate image); the functions move to a newer runtime together with the project.';

/** The S3 prefixes Sluice uses. */
export const PREFIXES = { checkpoints: 'checkpoints/', staging: 'staging/', output: 'output/', input: 'input/', handover: 'handover/' } as const;

export class Sluice extends Construct {
  readonly table: dynamodb.Table;
  readonly bucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;
  readonly taskUnit: nodejs.NodejsFunction;
  readonly supervisor: nodejs.NodejsFunction;
  readonly coordinatorFunctions: Record<'trigger' | 'poll' | 'finalize' | 'notify', nodejs.NodejsFunction>;
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

  private readonly logRetention: logs.RetentionDays;
  private readonly minify: boolean;

  constructor(scope: Construct, id: string, props: SluiceProps = {}) {
    super(scope, id);
    // Access logs are delivered under a bucket policy (not the legacy ACL), wherever this construct is used.
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    const stack = Stack.of(this);
    this.queuePrefix = props.queuePrefix ?? 'sluice';
    if (!/^[A-Za-z0-9_-]{1,20}$/.test(this.queuePrefix)) throw new Error(`queuePrefix must be 1-20 letters, digits, - or _, got '${this.queuePrefix}'`);
    const launcher = props.launcher ?? 'lambda';
    if (launcher === 'fargate' && !props.fargate) throw new Error("launcher 'fargate' needs the fargate option");
    this.logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    this.minify = props.minify ?? true;
    const dataRemoval = props.dataRemovalPolicy ?? RemovalPolicy.RETAIN;
    const pollSeconds = props.pollIntervalSeconds ?? 2;
    const maxCheckpointSeconds = props.maxCheckpointSeconds ?? 900;

    // ---------------------------------------------------------------------------------------
    // Data.

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      // Checkpoint acknowledgements expire once read (lib/ports/metadata-keys.ts); TTL deletes are free.
      timeToLiveAttribute: TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: dataRemoval,
    });

    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(90) }],
      removalPolicy: dataRemoval,
    });
    acknowledge(this.accessLogsBucket, 'AwsSolutions-S1', 'This bucket receives the data bucket\'s server access logs; logging it to itself would loop.');

    this.bucket = new s3.Bucket(this, 'Data', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'data/',
      removalPolicy: dataRemoval,
      lifecycleRules: [
        { id: 'expire-checkpoints', prefix: PREFIXES.checkpoints, expiration: Duration.days(props.checkpointRetentionDays ?? 30) },
        { id: 'expire-staging', prefix: PREFIXES.staging, expiration: Duration.days(1) },
        // A hand-over is read within seconds by the next invocation; older ones are history.
        { id: 'expire-handover', prefix: PREFIXES.handover, expiration: Duration.days(2) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    const configEnv: Record<string, string> = {
      SLUICE_TABLE: this.table.tableName,
      SLUICE_BUCKET: this.bucket.bucketName,
      SLUICE_QUEUE_PREFIX: this.queuePrefix,
    };

    // ---------------------------------------------------------------------------------------
    // Task units.

    this.taskUnit = this.fn('TaskUnit', {
      entry: 'functions/task-unit.ts',
      handler: 'handler',
      timeout: Duration.minutes(15),
      // No automatic retry of an event: a rerun of an attempt would restart it behind its own back
      // (the invocation owner fence refuses it anyway); failures are the supervisor's to handle.
      retryAttempts: 0,
      memorySize: props.taskUnitMemoryMiB ?? 1024,
      environment: configEnv,
      description: 'Sluice task unit: runs subtasks, long-polls their queues; hands over to its next invocation before 15 min',
    });
    this.grantTaskUnitData(this.taskUnit.role!, 'TaskUnit');
    // Only the Lambda unit hands over (a Fargate task has no time limit).
    this.grantObjects(this.taskUnit.role!, 'TaskUnitHandover', [PREFIXES.handover], ['s3:GetObject', 's3:PutObject']);
    // Self re-invocation, in its own policy: the function's default policy cannot name the function (cycle).
    new iam.Policy(this, 'TaskUnitSelfInvoke', {
      roles: [this.taskUnit.role!],
      statements: [new iam.PolicyStatement({ sid: 'SelfInvoke', actions: ['lambda:InvokeFunction'], resources: [this.taskUnit.functionArn] })],
    });

    let fargateEnv: Record<string, string> = {};
    const fargateStatements: iam.PolicyStatement[] = [];
    if (props.fargate) {
      const f = props.fargate;
      const vpc =
        f.vpc ??
        new ec2.Vpc(this, 'Vpc', {
          maxAzs: 2,
          natGateways: 1,
          flowLogs: { all: { trafficType: ec2.FlowLogTrafficType.REJECT } },
          subnetConfiguration: [
            { name: 'public', subnetType: ec2.SubnetType.PUBLIC },
            { name: 'tasks', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
          ],
        });
      this.cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
      const taskRole = new iam.Role(this, 'TaskUnitTaskRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'), description: 'Sluice task unit on Fargate' });
      this.grantTaskUnitData(taskRole, 'TaskUnitTask');
      this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskUnitTask', {
        cpu: f.cpu ?? 1024,
        memoryLimitMiB: f.memoryLimitMiB ?? 2048,
        taskRole,
        runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
      });
      const image = f.image
        ? ecs.ContainerImage.fromRegistry(f.image)
        : ecs.ContainerImage.fromAsset(REPO_ROOT, {
            file: 'infra/docker/task-unit.Dockerfile',
            exclude: ['**/node_modules', 'node_modules', 'cdk.out', '.git', '.venv', '.sluice', 'bench', 'test', 'docs', 'localstack', '*.log'],
          });
      const container = this.taskDefinition.addContainer('task-unit', {
        containerName: 'task-unit',
        image,
        environment: configEnv,
        logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'task-unit', logGroup: this.logGroup('TaskUnitTaskLogs') }),
      });
      acknowledge(this.taskDefinition, 'AwsSolutions-ECS2', 'The environment holds the table, bucket and queue prefix names only: configuration, not secrets.');
      const securityGroup = new ec2.SecurityGroup(this, 'TaskUnitSecurityGroup', {
        vpc,
        allowAllOutbound: true,
        description: 'Sluice task units: no inbound; outbound HTTPS to AWS APIs',
      });
      const subnets = vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds;
      fargateEnv = {
        SLUICE_ECS_CLUSTER: this.cluster.clusterArn,
        SLUICE_TASK_DEFINITION: this.taskDefinition.taskDefinitionArn,
        SLUICE_SUBNETS: Fn.join(',', subnets),
        SLUICE_SECURITY_GROUPS: securityGroup.securityGroupId,
        SLUICE_CONTAINER_NAME: container.containerName,
      };
      const taskArns = stack.formatArn({ service: 'ecs', resource: 'task', resourceName: `${this.cluster.clusterName}/*` });
      fargateStatements.push(
        new iam.PolicyStatement({ sid: 'RunTaskUnit', actions: ['ecs:RunTask'], resources: [this.taskDefinition.taskDefinitionArn], conditions: { ArnEquals: { 'ecs:cluster': this.cluster.clusterArn } } }),
        new iam.PolicyStatement({
          sid: this.wildcards.sid('StopTaskUnits', 'Units are tasks started per job; their ARNs are known only at run time, so the statement names the cluster\'s tasks (<cluster>/*).'),
          actions: ['ecs:ListTasks', 'ecs:StopTask'],
          resources: [this.cluster.clusterArn, taskArns],
        }),
        new iam.PolicyStatement({
          sid: 'PassTaskRoles',
          actions: ['iam:PassRole'],
          resources: [taskRole.roleArn, this.taskDefinition.obtainExecutionRole().roleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
        }),
      );
    }
    const launcherEnv: Record<string, string> = {
      SLUICE_LAUNCHER: launcher,
      SLUICE_TASK_UNIT_FUNCTION: this.taskUnit.functionName,
      ...fargateEnv,
    };
    const launchStatements = [
      new iam.PolicyStatement({ sid: 'LaunchTaskUnits', actions: ['lambda:InvokeFunction'], resources: [this.taskUnit.functionArn] }),
      ...fargateStatements,
    ];

    // ---------------------------------------------------------------------------------------
    // Checkpoint coordinator.

    const coordinatorRole = this.lambdaRole('CoordinatorRole', 'Sluice checkpoint coordinator steps');
    this.grantTable(coordinatorRole, 'write');
    this.grantObjects(coordinatorRole, 'Coordinator', [PREFIXES.checkpoints], ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']);
    this.grantList(coordinatorRole, 'Coordinator', [PREFIXES.checkpoints]);
    this.grantQueues(coordinatorRole, 'Coordinator', ['sqs:SendMessage', 'sqs:GetQueueUrl']);
    const coordinator = (step: 'trigger' | 'poll' | 'finalize' | 'notify') =>
      this.fn(`Coordinator${step[0]!.toUpperCase()}${step.slice(1)}`, {
        entry: 'functions/checkpoint-coordinator.ts',
        handler: step,
        timeout: Duration.seconds(60),
        memorySize: 512,
        environment: configEnv,
        role: coordinatorRole,
        description: `Sluice checkpoint coordinator: ${step}`,
      });
    this.coordinatorFunctions = { trigger: coordinator('trigger'), poll: coordinator('poll'), finalize: coordinator('finalize'), notify: coordinator('notify') };
    this.stateMachine = this.coordinatorStateMachine(pollSeconds, maxCheckpointSeconds);

    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'JobSchedules', {});
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
      description: 'EventBridge Scheduler starts the checkpoint coordinator for each job schedule',
    });
    this.schedulerRole.addToPolicy(new iam.PolicyStatement({ sid: 'StartCoordinator', actions: ['states:StartExecution'], resources: [this.stateMachine.stateMachineArn] }));
    const jobSchedules = stack.formatArn({ service: 'scheduler', resource: 'schedule', resourceName: `${this.scheduleGroup.scheduleGroupName}/sluice-*` });
    const scheduleStatements = (sid: string, actions: string[]) => [
      new iam.PolicyStatement({
        sid: this.wildcards.sid(sid, 'One EventBridge Scheduler schedule per job, named sluice-<jobId> in the Sluice group, is created at run time; the statement covers that name pattern in that group only.'),
        actions,
        resources: [jobSchedules],
      }),
      ...(actions.some((a) => a !== 'scheduler:DeleteSchedule')
        ? [
            new iam.PolicyStatement({
              sid: 'PassSchedulerRole',
              actions: ['iam:PassRole'],
              resources: [this.schedulerRole.roleArn],
              conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
            }),
          ]
        : []),
    ];
    const scheduleEnv = {
      SLUICE_SCHEDULE_GROUP: this.scheduleGroup.scheduleGroupName,
      SLUICE_SCHEDULER_ROLE_ARN: this.schedulerRole.roleArn,
      SLUICE_STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
    };

    // ---------------------------------------------------------------------------------------
    // Supervisor.

    const supervisorRole = this.lambdaRole('SupervisorRole', 'Sluice supervisor');
    this.grantTable(supervisorRole, 'write');
    this.grantQueues(supervisorRole, 'Supervisor', ['sqs:SendMessage', 'sqs:GetQueueUrl', 'sqs:DeleteQueue']);
    for (const s of [...launchStatements, ...scheduleStatements('SupervisorSchedules', ['scheduler:DeleteSchedule'])]) supervisorRole.addToPolicy(s);
    this.supervisor = this.fn('Supervisor', {
      entry: 'functions/supervisor.ts',
      handler: 'handler',
      timeout: Duration.seconds(60),
      memorySize: 512,
      environment: { ...configEnv, ...launcherEnv, SLUICE_SCHEDULE_GROUP: this.scheduleGroup.scheduleGroupName },
      role: supervisorRole,
      description: 'Sluice supervisor: fails jobs with dead units, completes finished jobs',
    });
    new events.Rule(this, 'SupervisorEveryMinute', {
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new eventTargets.LambdaFunction(this.supervisor, { retryAttempts: 0 })],
      description: 'Runs one Sluice supervision pass every minute',
    });

    // ---------------------------------------------------------------------------------------
    // Job API.

    this.api = this.restApi(props.stageName ?? 'prod');
    const apiEnv = { ...configEnv, ...launcherEnv, ...scheduleEnv };
    const permissions: Record<RouteName, (role: iam.Role) => void> = {
      submitJob: (role) => {
        this.grantTable(role, 'write');
        this.grantQueues(role, 'SubmitJob', ['sqs:CreateQueue', 'sqs:GetQueueUrl', 'sqs:SendMessage', 'sqs:DeleteQueue']);
        for (const s of [...launchStatements, ...scheduleStatements('SubmitJobSchedules', ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'])]) role.addToPolicy(s);
      },
      listJobs: (role) => this.grantTable(role, 'read'),
      getJob: (role) => this.grantTable(role, 'read'),
      cancelJob: (role) => {
        this.grantTable(role, 'write');
        this.grantQueues(role, 'CancelJob', ['sqs:GetQueueUrl', 'sqs:SendMessage', 'sqs:DeleteQueue']);
        for (const s of [...fargateStatements.filter((s) => s.sid !== 'RunTaskUnit' && s.sid !== 'PassTaskRoles'), ...scheduleStatements('CancelJobSchedules', ['scheduler:DeleteSchedule'])]) {
          role.addToPolicy(s);
        }
      },
      triggerCheckpoint: (role) => {
        this.grantTable(role, 'write');
        this.grantObjects(role, 'TriggerCheckpoint', [PREFIXES.checkpoints], ['s3:GetObject']);
        this.grantQueues(role, 'TriggerCheckpoint', ['sqs:GetQueueUrl', 'sqs:SendMessage']);
        role.addToPolicy(new iam.PolicyStatement({ sid: 'StartCoordinator', actions: ['states:StartExecution'], resources: [this.stateMachine.stateMachineArn] }));
      },
      listCheckpoints: (role) => this.grantTable(role, 'read'),
      putSchedule: (role) => {
        this.grantTable(role, 'write');
        for (const s of scheduleStatements('PutScheduleSchedules', ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'])) role.addToPolicy(s);
      },
    };
    const validators = {
      body: new apigw.RequestValidator(this, 'ValidateBody', { restApi: this.api, validateRequestBody: true, validateRequestParameters: true }),
      params: new apigw.RequestValidator(this, 'ValidateParams', { restApi: this.api, validateRequestBody: false, validateRequestParameters: true }),
    };
    const models = this.apiModels();
    const functions = {} as Record<RouteName, nodejs.NodejsFunction>;
    for (const route of ROUTES) {
      const name = route.name[0]!.toUpperCase() + route.name.slice(1);
      const role = this.lambdaRole(`Api${name}Role`, `Sluice API ${route.method} ${route.resource}`);
      permissions[route.name](role);
      const fn = this.fn(`Api${name}`, {
        entry: 'functions/api/index.ts',
        handler: route.name,
        timeout: Duration.seconds(29),
        memorySize: 512,
        environment: apiEnv,
        role,
        description: `Sluice API: ${route.method} ${route.resource} (${route.summary})`,
      });
      functions[route.name] = fn;
      const resource = this.api.root.resourceForPath(route.resource);
      const hasId = route.resource.includes('{id}');
      const method = resource.addMethod(route.method, new apigw.LambdaIntegration(fn, { proxy: true }), {
        authorizationType: apigw.AuthorizationType.IAM,
        requestValidator: route.body ? validators.body : validators.params,
        ...(hasId ? { requestParameters: { 'method.request.path.id': true } } : {}),
        ...(route.body ? { requestModels: { 'application/json': models[route.name]! } } : {}),
      });
      acknowledge(method, 'AwsSolutions-COG4', 'Every method uses IAM (SigV4) authorization instead of a Cognito user pool: callers are AWS principals (the CLI, other services).');
    }
    this.apiFunctions = functions;

    Aspects.of(this).add(new AcknowledgeWildcards(this.wildcards));
  }

  // -----------------------------------------------------------------------------------------
  // Building blocks.

  private logGroup(id: string, name?: string): logs.LogGroup {
    return new logs.LogGroup(this, id, {
      retention: this.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
      ...(name ? { logGroupName: name } : {}),
    });
  }

  /** A role for a Lambda function, with nothing but writing to its own log group (added in fn()). */
  private lambdaRole(id: string, description: string): iam.Role {
    return new iam.Role(this, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description });
  }

  private fn(
    id: string,
    options: {
      entry: string;
      handler: string;
      timeout: Duration;
      memorySize: number;
      environment: Record<string, string>;
      role?: iam.Role;
      description: string;
      /** Retries of a failed asynchronous invocation (Lambda's default: 2). */
      retryAttempts?: number;
    },
  ): nodejs.NodejsFunction {
    const role = options.role ?? this.lambdaRole(`${id}Role`, options.description);
    const logGroup = this.logGroup(`${id}Logs`);
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: this.wildcards.sid(`${id}Logs`, "Writing log events needs the log group's streams (<log group ARN>:*), created by Lambda at run time; only this function's own log group."),
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    const fn = new nodejs.NodejsFunction(this, id, {
      entry: join(REPO_ROOT, options.entry),
      handler: options.handler,
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      timeout: options.timeout,
      memorySize: options.memorySize,
      role,
      logGroup,
      environment: options.environment,
      description: options.description,
      ...(options.retryAttempts !== undefined ? { retryAttempts: options.retryAttempts } : {}),
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        minify: this.minify,
        sourceMap: true,
      },
    });
    acknowledge(fn, 'AwsSolutions-L1', NODE_RUNTIME_REASON);
    return fn;
  }

  private grantTable(role: iam.IRole, access: 'read' | 'write'): void {
    const actions = ['dynamodb:GetItem', 'dynamodb:Query', ...(access === 'write' ? ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'] : [])];
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: access === 'write' ? 'TableReadWrite' : 'TableRead', actions, resources: [this.table.tableArn] }));
  }

  private grantObjects(role: iam.IRole, who: string, prefixes: string[], actions: string[]): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: this.wildcards.sid(`${who}Objects`, `Objects are written per job and checkpoint under fixed prefixes of the one bucket (${prefixes.join(', ')}); the statement names those prefixes only.`),
        actions,
        resources: prefixes.map((p) => this.bucket.arnForObjects(`${p}*`)),
      }),
    );
  }

  private grantList(role: iam.IRole, who: string, prefixes: string[]): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: this.wildcards.sid(`${who}List`, 'Listing is limited to the Sluice prefixes by the s3:prefix condition.'),
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } },
      }),
    );
  }

  private grantQueues(role: iam.IRole, who: string, actions: string[]): void {
    const queues = Stack.of(this).formatArn({ service: 'sqs', resource: `${this.queuePrefix}-*` });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: this.wildcards.sid(
          `${who}Queues`,
          `SQS FIFO queues are created per job (one per sub-partition and per task unit), named ${this.queuePrefix}-<jobId>-...; the statement covers that prefix only.`,
        ),
        actions,
        resources: [queues],
      }),
    );
  }

  /** Everything a task unit touches: its job's records, queues and state. */
  private grantTaskUnitData(role: iam.IRole, who: string): void {
    this.grantTable(role, 'write');
    this.grantObjects(role, `${who}Write`, [PREFIXES.checkpoints, PREFIXES.staging, PREFIXES.output], ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']);
    this.grantObjects(role, `${who}Read`, [PREFIXES.input], ['s3:GetObject']);
    this.grantList(role, who, [PREFIXES.checkpoints, PREFIXES.staging, PREFIXES.output, PREFIXES.input]);
    this.grantQueues(role, who, ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl', 'sqs:GetQueueAttributes']);
  }

  /**
   * Trigger → Triggered? → Wait → Poll → Count → Decided? → Finalize → Finalized? → Completed? → Notify.
   * Input { jobId, checkpointId? }; every task retries transient errors and has a timeout; the
   * poll loop is bounded by maxCheckpointSeconds / pollSeconds polls.
   */
  private coordinatorStateMachine(pollSeconds: number, maxCheckpointSeconds: number): sfn.StateMachine {
    const f = this.coordinatorFunctions;
    const ids = sfn.TaskInput.fromObject({ jobId: sfn.JsonPath.stringAt('$.jobId'), checkpointId: sfn.JsonPath.numberAt('$.checkpointId') });
    const failed = new sfn.Fail(this, 'CoordinatorError', { error: 'CoordinatorError', causePath: '$.error.Cause' });
    // No payload: the function gets the state's input as is ({ jobId, checkpointId? } for Trigger).
    const step = (id: string, fn: lambda.IFunction, payload: sfn.TaskInput | undefined, resultPath: string) =>
      new tasks.LambdaInvoke(this, id, {
        lambdaFunction: fn,
        ...(payload ? { payload } : {}),
        payloadResponseOnly: true,
        resultPath,
        retryOnServiceExceptions: true,
        taskTimeout: sfn.Timeout.duration(Duration.seconds(90)),
      })
        .addRetry({ errors: ['States.Timeout', 'States.TaskFailed'], interval: Duration.seconds(2), maxAttempts: 2, backoffRate: 2 })
        .addCatch(failed, { errors: ['States.ALL'], resultPath: '$.error' });

    const trigger = step('Trigger', f.trigger, undefined, '$.trigger');
    const prepare = new sfn.Pass(this, 'Prepare', {
      parameters: { 'jobId.$': '$.trigger.jobId', 'checkpointId.$': '$.trigger.checkpointId', polls: 0 },
    });
    const wait = new sfn.Wait(this, 'Wait', { time: sfn.WaitTime.duration(Duration.seconds(pollSeconds)) });
    const poll = step('Poll', f.poll, ids, '$.poll');
    const count = new sfn.Pass(this, 'CountPoll', {
      parameters: { 'jobId.$': '$.jobId', 'checkpointId.$': '$.checkpointId', 'polls.$': 'States.MathAdd($.polls, 1)', 'done.$': '$.poll.done' },
    });
    const maxPolls = Math.max(1, Math.ceil(maxCheckpointSeconds / pollSeconds));
    const finalize = step('Finalize', f.finalize, ids, '$.finalize');
    const notify = step('Notify', f.notify, ids, '$.notify');
    const done = new sfn.Succeed(this, 'CheckpointCompleted');
    const checkpointFailed = new sfn.Succeed(this, 'CheckpointFailed', { comment: 'The checkpoint failed as a whole; its history entry says why.' });
    const nothingToDo = new sfn.Succeed(this, 'NothingToTrigger', { comment: 'The job is not running, or a checkpoint of it is still pending.' });
    const undecided = new sfn.Fail(this, 'CheckpointUndecided', { error: 'CheckpointUndecided', cause: `not decided after ${maxPolls} polls` });

    const definition = trigger.next(
      new sfn.Choice(this, 'Triggered?')
        .when(sfn.Condition.booleanEquals('$.trigger.done', true), nothingToDo)
        .otherwise(
          prepare.next(wait).next(poll).next(count).next(
            new sfn.Choice(this, 'Decided?')
              .when(
                sfn.Condition.or(sfn.Condition.booleanEquals('$.done', true), sfn.Condition.numberGreaterThanEquals('$.polls', maxPolls)),
                finalize.next(
                  new sfn.Choice(this, 'Finalized?')
                    .when(
                      sfn.Condition.booleanEquals('$.finalize.done', true),
                      new sfn.Choice(this, 'Completed?')
                        .when(sfn.Condition.isNotPresent('$.finalize.outcome'), checkpointFailed)
                        .when(sfn.Condition.stringEquals('$.finalize.outcome', 'completed'), notify.next(done))
                        .otherwise(checkpointFailed),
                    )
                    .otherwise(undecided),
                ),
              )
              .otherwise(wait),
          ),
        ),
    );
    return new sfn.StateMachine(this, 'Coordinator', {
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      stateMachineType: sfn.StateMachineType.STANDARD,
      timeout: Duration.seconds(maxCheckpointSeconds + 600),
      tracingEnabled: true,
      logs: { destination: this.logGroup('CoordinatorLogs'), level: sfn.LogLevel.ALL, includeExecutionData: true },
      comment: 'Sluice checkpoint coordinator: one execution per checkpoint',
    });
  }

  private restApi(stageName: string): apigw.RestApi {
    const accessLogs = this.logGroup('ApiAccessLogs');
    const api = new apigw.RestApi(this, 'Api', {
      description: 'Sluice job API',
      endpointConfiguration: { types: [apigw.EndpointType.REGIONAL] },
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.DESTROY,
      defaultMethodOptions: { authorizationType: apigw.AuthorizationType.IAM },
      deployOptions: {
        stageName,
        loggingLevel: apigw.MethodLoggingLevel.INFO,
        dataTraceEnabled: false,
        metricsEnabled: true,
        tracingEnabled: true,
        accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
      },
    });
    const cloudWatchRole = api.node.tryFindChild('CloudWatchRole');
    if (cloudWatchRole) {
      acknowledge(
        cloudWatchRole,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        "API Gateway's account-level CloudWatch role (needed for execution logging) uses the AWS managed push-to-logs policy, as AWS documents.",
      );
    }
    // What API Gateway answers itself (a body the model refuses, auth failures, throttling, its own
    // errors) comes as JSON `{ error, field? }`, as the handlers answer. Gateway response templates are
    // not VTL: only variable substitution; messageString comes quoted and escaped.
    api.addGatewayResponse('BadRequestBody', {
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      templates: { 'application/json': '{"error": "the request body does not match the API model: $context.error.validationErrorString", "field": "body"}' },
    });
    for (const [id, type] of [['Default4xx', apigw.ResponseType.DEFAULT_4XX], ['Default5xx', apigw.ResponseType.DEFAULT_5XX]] as const) {
      api.addGatewayResponse(id, { type, templates: { 'application/json': '{"error": $context.error.messageString}' } });
    }
    acknowledge(api.deploymentStage, 'AwsSolutions-APIG3', 'The API is private to AWS principals by IAM (SigV4) authorization on every method; attach a WAF web ACL to the stage if it is exposed further.');
    return api;
  }

  /** One request model per route with a body, generated from its zod schema (functions/api/models.ts). */
  private apiModels(): Partial<Record<RouteName, apigw.Model>> {
    const models: Partial<Record<RouteName, apigw.Model>> = {};
    for (const route of ROUTES.filter((r) => r.body)) {
      const schema = (bodySchemas as Partial<Record<RouteName, z.ZodType>>)[route.name];
      if (!schema) throw new Error(`route ${route.name} takes a body but functions/api/schemas.ts has no body schema for it`);
      const name = modelName(route.name);
      models[route.name] = this.api.addModel(`${name}Model`, {
        contentType: 'application/json',
        modelName: name,
        // The generated schema is plain draft 4 (`$schema`, not CDK's `schema`), which CDK passes through as is.
        schema: apiGatewayModel(schema, name) as apigw.JsonSchema,
      });
    }
    return models;
  }

  /** Logical id of a resource of this construct (for tests and outputs). */
  logicalId(element: CfnElement): string {
    return Stack.of(this).getLogicalId(element);
  }
}
