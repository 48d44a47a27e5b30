/**
 * The supervisor function (functions/supervisor.ts), run every minute by an EventBridge rule: it
 * fails dead units over by their job's strategy, releases ended regions, completes finished jobs
 * and removes the schedules of jobs that ended.
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import type { CheckpointCoordinator } from './coordinator';
import type { SluiceFunctions } from './functions';
import type { FlatLogicalIds } from './logical-ids';
import type { SluiceStorage } from './storage';
import type { TaskUnitRuntime } from './task-units';

export interface SupervisionProps {
  storage: SluiceStorage;
  functions: SluiceFunctions;
  taskUnits: TaskUnitRuntime;
  coordinator: CheckpointCoordinator;
  logicalIds: FlatLogicalIds;
}

export class Supervision extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly schedule: events.Rule;

  constructor(scope: Construct, id: string, props: SupervisionProps) {
    super(scope, id);
    props.logicalIds.flatten(this);
    const { storage, functions, taskUnits, coordinator } = props;

    const role = functions.lambdaRole(this, 'SupervisorRole', 'Sluice supervisor');
    storage.grantTable(role, 'write');
    storage.grantQueues(role, 'Supervisor', ['sqs:SendMessage', 'sqs:GetQueueUrl', 'sqs:DeleteQueue']);
    for (const s of [...taskUnits.launchStatements, ...coordinator.scheduleStatements('SupervisorSchedules', ['scheduler:DeleteSchedule'])]) role.addToPolicy(s);
    this.function = functions.function(this, 'Supervisor', {
      entry: 'functions/supervisor',
      service: 'supervisor',
      handler: 'handler',
      timeout: Duration.seconds(60),
      memorySize: 512,
      environment: { ...storage.env, ...taskUnits.launcherEnv, SLUICE_SCHEDULE_GROUP: coordinator.scheduleGroup.scheduleGroupName },
      role,
      description: 'Sluice supervisor: fails jobs with dead units, completes finished jobs',
    });
    this.schedule = new events.Rule(this, 'SupervisorEveryMinute', {
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new eventTargets.LambdaFunction(this.function, { retryAttempts: 0 })],
      description: 'Runs one Sluice supervision pass every minute',
    });
  }
}
