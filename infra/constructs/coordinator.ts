/**
 * The checkpoint coordinator: a Step Functions state machine Trigger → Wait → Poll →
 * Choice(decided or out of polls?) → Finalize → Notify over four Lambda functions
 * (functions/checkpoint-coordinator.ts), and the EventBridge Scheduler group and role under which
 * the API creates one schedule per job that starts it.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { WildcardReasons } from '../nag';
import type { SluiceFunctions } from './functions';
import type { FlatLogicalIds } from './logical-ids';
import { PREFIXES, type SluiceStorage } from './storage';

export type CoordinatorStep = 'trigger' | 'poll' | 'finalize' | 'notify';

export interface CheckpointCoordinatorProps {
  storage: SluiceStorage;
  functions: SluiceFunctions;
  wildcards: WildcardReasons;
  logicalIds: FlatLogicalIds;
  /** Seconds between polls of a pending checkpoint. */
  pollSeconds: number;
  /** Longest a checkpoint may stay undecided before the workflow finalizes it anyway. */
  maxCheckpointSeconds: number;
}

export class CheckpointCoordinator extends Construct {
  readonly functions: Record<CoordinatorStep, nodejs.NodejsFunction>;
  readonly stateMachine: sfn.StateMachine;
  readonly scheduleGroup: scheduler.ScheduleGroup;
  readonly schedulerRole: iam.Role;
  /** What the API needs to start executions and manage job schedules (functions/api/cloud.ts). */
  readonly scheduleEnv: Record<string, string>;
  private readonly wildcards: WildcardReasons;

  constructor(scope: Construct, id: string, props: CheckpointCoordinatorProps) {
    super(scope, id);
    props.logicalIds.flatten(this);
    const { storage, functions } = props;
    this.wildcards = props.wildcards;
    const stack = Stack.of(this);

    const role = functions.lambdaRole(this, 'CoordinatorRole', 'Sluice checkpoint coordinator steps');
    storage.grantTable(role, 'write');
    storage.grantObjects(role, 'Coordinator', [PREFIXES.checkpoints], ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']);
    storage.grantList(role, 'Coordinator', [PREFIXES.checkpoints]);
    storage.grantQueues(role, 'Coordinator', ['sqs:SendMessage', 'sqs:GetQueueUrl']);
    const step = (name: CoordinatorStep) =>
      functions.function(this, `Coordinator${name[0]!.toUpperCase()}${name.slice(1)}`, {
        entry: 'functions/checkpoint-coordinator',
        service: 'checkpoint-coordinator',
        handler: name,
        timeout: Duration.seconds(60),
        memorySize: 512,
        environment: storage.env,
        role,
        description: `Sluice checkpoint coordinator: ${name}`,
      });
    this.functions = { trigger: step('trigger'), poll: step('poll'), finalize: step('finalize'), notify: step('notify') };
    this.stateMachine = this.buildStateMachine(functions, props.pollSeconds, props.maxCheckpointSeconds);

    // The group's name is generated from its path: it keeps the one it had before the split
    // (a new name replaces the group, and with it every job schedule in it).
    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'JobSchedules', {
      scheduleGroupName: props.logicalIds.resourceName(this, 'JobSchedules', { maxLength: 64, separator: '-' }),
    });
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
      description: 'EventBridge Scheduler starts the checkpoint coordinator for each job schedule',
    });
    this.schedulerRole.addToPolicy(new iam.PolicyStatement({ sid: 'StartCoordinator', actions: ['states:StartExecution'], resources: [this.stateMachine.stateMachineArn] }));
    this.scheduleEnv = {
      SLUICE_SCHEDULE_GROUP: this.scheduleGroup.scheduleGroupName,
      SLUICE_SCHEDULER_ROLE_ARN: this.schedulerRole.roleArn,
      SLUICE_STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
    };
  }

  /** Managing the job schedules of the group (and passing the scheduler role, unless only deleting). */
  scheduleStatements(sid: string, actions: string[]): iam.PolicyStatement[] {
    const jobSchedules = Stack.of(this).formatArn({ service: 'scheduler', resource: 'schedule', resourceName: `${this.scheduleGroup.scheduleGroupName}/sluice-*` });
    return [
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
  }

  /** Starting one execution (a checkpoint triggered through the API). */
  startStatement(): iam.PolicyStatement {
    return new iam.PolicyStatement({ sid: 'StartCoordinator', actions: ['states:StartExecution'], resources: [this.stateMachine.stateMachineArn] });
  }

  /**
   * Trigger → Triggered? → Wait → Poll → Count → Decided? → Finalize → Finalized? → Completed? → Notify.
   * Input { jobId, checkpointId? }; every task retries transient errors and has a timeout; the
   * poll loop is bounded by maxCheckpointSeconds / pollSeconds polls.
   */
  private buildStateMachine(functions: SluiceFunctions, pollSeconds: number, maxCheckpointSeconds: number): sfn.StateMachine {
    const f = this.functions;
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
      parameters: { 'jobId.$': '$.trigger.jobId', 'checkpointId.$': '$.trigger.checkpointId', polls: 0, waitSeconds: pollSeconds },
    });
    // The first wait is pollSeconds; each poll says how long to wait before the next (a quarter of
    // the checkpoint's age, up to a minute: each poll reads every acknowledgement of it).
    const wait = new sfn.Wait(this, 'Wait', { time: sfn.WaitTime.secondsPath('$.waitSeconds') });
    const poll = step('Poll', f.poll, ids, '$.poll');
    const count = new sfn.Pass(this, 'CountPoll', {
      parameters: { 'jobId.$': '$.jobId', 'checkpointId.$': '$.checkpointId', 'polls.$': 'States.MathAdd($.polls, 1)', 'done.$': '$.poll.done', 'waitSeconds.$': '$.poll.waitSeconds' },
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
      logs: { destination: functions.logGroup(this, 'CoordinatorLogs'), level: sfn.LogLevel.ALL, includeExecutionData: true },
      comment: 'Sluice checkpoint coordinator: one execution per checkpoint',
    });
  }
}
