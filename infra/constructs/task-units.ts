/**
 * Where task units run: a Lambda function (15 min per invocation; a unit hands over its live
 * state to the next invocation of the same attempt, which the function starts by invoking itself)
 * and, optionally, a Fargate task definition built from infra/docker/task-unit.Dockerfile (with a
 * cluster, and a VPC unless one is given). What starts units (the API, the supervisor) gets
 * `launcherEnv` and `launchStatements` from here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Duration, Fn, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import { METRIC_NAMESPACE } from '../../lib/observability/metric-names';
import { acknowledge, type WildcardReasons } from '../nag';
import { REPO_ROOT, type SluiceFunctions } from './functions';
import type { FlatLogicalIds } from './logical-ids';
import { PREFIXES, type SluiceStorage } from './storage';

export interface SluiceFargateOptions {
  /** VPC for the tasks (private subnets with egress). Default: a new 2-AZ VPC with one NAT gateway and flow logs. */
  vpc?: ec2.IVpc;
  /** A pushed task-unit image; default: built from infra/docker/task-unit.Dockerfile at deploy time (needs Docker). */
  image?: string;
  cpu?: number;
  memoryLimitMiB?: number;
}

export interface TaskUnitRuntimeProps {
  storage: SluiceStorage;
  functions: SluiceFunctions;
  wildcards: WildcardReasons;
  logicalIds: FlatLogicalIds;
  /** How the API and the supervisor start units. */
  launcher: 'lambda' | 'fargate';
  memoryMiB: number;
  fargate?: SluiceFargateOptions;
}

export class TaskUnitRuntime extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly taskDefinition: ecs.FargateTaskDefinition | undefined;
  readonly cluster: ecs.Cluster | undefined;
  /** What a launcher needs to know (functions/api/cloud.ts launcherFromEnv). */
  readonly launcherEnv: Record<string, string>;
  /** Starting units (Lambda invoke; Fargate RunTask, stop and PassRole). */
  readonly launchStatements: iam.PolicyStatement[];
  /** Stopping Fargate units (none for Lambda: an invocation ends on the job's cancel message). */
  readonly stopStatements: iam.PolicyStatement[];

  constructor(scope: Construct, id: string, props: TaskUnitRuntimeProps) {
    super(scope, id);
    props.logicalIds.flatten(this);
    const { storage, functions } = props;

    this.function = functions.function(this, 'TaskUnit', {
      entry: 'functions/task-unit',
      service: 'task-unit',
      handler: 'handler',
      timeout: Duration.minutes(15),
      // No automatic retry of an event: a rerun of an attempt would restart it behind its own back
      // (the invocation owner fence refuses it anyway); failures are the supervisor's to handle.
      retryAttempts: 0,
      memorySize: props.memoryMiB,
      environment: storage.env,
      description: 'Sluice task unit: runs subtasks, long-polls their queues; hands over to its next invocation before 15 min',
    });
    grantTaskUnitData(storage, this.function.role!, 'TaskUnit');
    // Only the Lambda unit hands over (a Fargate task has no time limit).
    storage.grantObjects(this.function.role!, 'TaskUnitHandover', [PREFIXES.handover], ['s3:GetObject', 's3:PutObject']);
    // Self re-invocation, in its own policy: the function's default policy cannot name the function (cycle).
    new iam.Policy(this, 'TaskUnitSelfInvoke', {
      roles: [this.function.role!],
      statements: [new iam.PolicyStatement({ sid: 'SelfInvoke', actions: ['lambda:InvokeFunction'], resources: [this.function.functionArn] })],
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
      const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
      this.cluster = cluster;
      const taskRole = new iam.Role(this, 'TaskUnitTaskRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'), description: 'Sluice task unit on Fargate' });
      grantTaskUnitData(storage, taskRole, 'TaskUnitTask');
      const taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskUnitTask', {
        // The family CDK derives from the path, as before the split.
        family: props.logicalIds.uniqueIdOf(this, 'TaskUnitTask'),
        cpu: f.cpu ?? 1024,
        memoryLimitMiB: f.memoryLimitMiB ?? 2048,
        taskRole,
        runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
      });
      this.taskDefinition = taskDefinition;
      const dockerfile = 'infra/docker/task-unit.Dockerfile';
      if (!f.image && functions.jobs) {
        throw new Error('fargate: the task unit image built from infra/docker bundles the example jobs; with your own jobs, build an image that bundles them and pass fargate.image (see docs/deploy.md)');
      }
      if (!f.image && !existsSync(join(REPO_ROOT, dockerfile))) {
        throw new Error(`fargate: no ${dockerfile} in ${REPO_ROOT} (an installed Sluice has none): build the task unit image from a Sluice checkout and pass fargate.image`);
      }
      const image = f.image
        ? ecs.ContainerImage.fromRegistry(f.image)
        : ecs.ContainerImage.fromAsset(REPO_ROOT, {
            file: dockerfile,
            exclude: ['**/node_modules', 'node_modules', 'cdk.out', '.git', '.venv', '.sluice', 'bench', 'test', 'docs', 'localstack', '*.log'],
          });
      const container = taskDefinition.addContainer('task-unit', {
        containerName: 'task-unit',
        image,
        environment: { ...storage.env, POWERTOOLS_SERVICE_NAME: 'task-unit', POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE },
        logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'task-unit', logGroup: functions.logGroup(this, 'TaskUnitTaskLogs') }),
      });
      acknowledge(taskDefinition, 'AwsSolutions-ECS2', 'The environment holds the table, bucket and queue prefix names only: configuration, not secrets.');
      const securityGroup = new ec2.SecurityGroup(this, 'TaskUnitSecurityGroup', {
        vpc,
        allowAllOutbound: true,
        description: 'Sluice task units: no inbound; outbound HTTPS to AWS APIs',
      });
      const subnets = vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds;
      fargateEnv = {
        SLUICE_ECS_CLUSTER: cluster.clusterArn,
        SLUICE_TASK_DEFINITION: taskDefinition.taskDefinitionArn,
        SLUICE_SUBNETS: Fn.join(',', subnets),
        SLUICE_SECURITY_GROUPS: securityGroup.securityGroupId,
        SLUICE_CONTAINER_NAME: container.containerName,
      };
      const taskArns = Stack.of(this).formatArn({ service: 'ecs', resource: 'task', resourceName: `${cluster.clusterName}/*` });
      fargateStatements.push(
        new iam.PolicyStatement({ sid: 'RunTaskUnit', actions: ['ecs:RunTask'], resources: [taskDefinition.taskDefinitionArn], conditions: { ArnEquals: { 'ecs:cluster': cluster.clusterArn } } }),
        new iam.PolicyStatement({
          sid: props.wildcards.sid('StopTaskUnits', "Units are tasks started per job; their ARNs are known only at run time, so the statement names the cluster's tasks (<cluster>/*)."),
          actions: ['ecs:ListTasks', 'ecs:StopTask'],
          resources: [cluster.clusterArn, taskArns],
        }),
        new iam.PolicyStatement({
          sid: 'PassTaskRoles',
          actions: ['iam:PassRole'],
          resources: [taskRole.roleArn, taskDefinition.obtainExecutionRole().roleArn],
          conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
        }),
      );
    }
    this.launcherEnv = {
      SLUICE_LAUNCHER: props.launcher,
      SLUICE_TASK_UNIT_FUNCTION: this.function.functionName,
      ...fargateEnv,
    };
    this.launchStatements = [new iam.PolicyStatement({ sid: 'LaunchTaskUnits', actions: ['lambda:InvokeFunction'], resources: [this.function.functionArn] }), ...fargateStatements];
    this.stopStatements = fargateStatements.filter((s) => s.sid !== 'RunTaskUnit' && s.sid !== 'PassTaskRoles');
  }
}

/** Everything a task unit touches: its job's records, queues and state. */
function grantTaskUnitData(storage: SluiceStorage, role: iam.IRole, who: string): void {
  storage.grantTable(role, 'write');
  storage.grantObjects(role, `${who}Write`, [PREFIXES.checkpoints, PREFIXES.staging, PREFIXES.output], ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']);
  storage.grantObjects(role, `${who}Read`, [PREFIXES.input], ['s3:GetObject']);
  storage.grantList(role, who, [PREFIXES.checkpoints, PREFIXES.staging, PREFIXES.output, PREFIXES.input]);
  storage.grantQueues(role, who, ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl', 'sqs:GetQueueAttributes']);
}
