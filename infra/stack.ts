/** SluiceStack: the Sluice construct in a stack of its own, with its endpoints as outputs. */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { Sluice, type SluiceProps } from './sluice-construct';

export interface SluiceStackProps extends StackProps {
  /** The construct's props; `observability` defaults to on here (`false` turns it off). */
  sluice?: Omit<SluiceProps, 'observability'> & { observability?: SluiceProps['observability'] | false };
}

export class SluiceStack extends Stack {
  readonly sluice: Sluice;

  constructor(scope: Construct, id: string, props: SluiceStackProps = {}) {
    super(scope, id, props);
    const { observability, ...sluice } = props.sluice ?? {};
    this.sluice = new Sluice(this, 'Sluice', { ...sluice, ...(observability === false ? {} : { observability: observability ?? {} }) });
    const s = this.sluice;
    new CfnOutput(this, 'ApiUrl', { value: s.api.url, description: 'Job API (SLUICE_API_URL for the CLI; IAM/SigV4 auth)' });
    new CfnOutput(this, 'TableName', { value: s.table.tableName, description: 'SLUICE_TABLE' });
    new CfnOutput(this, 'BucketName', { value: s.bucket.bucketName, description: 'SLUICE_BUCKET' });
    new CfnOutput(this, 'QueuePrefix', { value: s.queuePrefix, description: 'SLUICE_QUEUE_PREFIX' });
    new CfnOutput(this, 'StateMachineArn', { value: s.stateMachine.stateMachineArn, description: 'Checkpoint coordinator' });
    new CfnOutput(this, 'ScheduleGroup', { value: s.scheduleGroup.scheduleGroupName, description: 'EventBridge Scheduler group of the job schedules' });
    new CfnOutput(this, 'TaskUnitFunction', { value: s.taskUnit.functionName });
    if (s.observability) new CfnOutput(this, 'Dashboard', { value: s.observability.dashboard.dashboardName, description: 'CloudWatch dashboard' });
  }
}
