import { CreateScheduleCommand, DeleteScheduleCommand, SchedulerClient, UpdateScheduleCommand } from '@aws-sdk/client-scheduler';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import { EventBridgeSchedulerPort, jobScheduleName, LambdaUnitLauncher, launcherFromEnv, stateMachineStarter } from '../../../functions/api/cloud';
import { loadConfig } from '../../../lib/config';
import type { JobRecord } from '../../../lib/jobs/job-store';
import { ScheduleError } from '../../../lib/schedule';

/** A client whose send records commands and answers from a script. */
function fakeClient<T>(answer: (command: { input: any; constructor: { name: string } }) => unknown = () => ({})) {
  const sent: { name: string; input: any }[] = [];
  const client = {
    send: async (command: { input: any; constructor: { name: string } }) => {
      sent.push({ name: command.constructor.name, input: command.input });
      return answer(command);
    },
  } as unknown as T;
  return { client, sent };
}

const notFound = () => Object.assign(new Error('Schedule not found'), { name: 'ResourceNotFoundException' });
const options = { groupName: 'sluice-jobs', roleArn: 'arn:aws:iam::123:role/sched', stateMachineArn: 'arn:aws:states:us-east-1:123:stateMachine:ckpt' };

describe('EventBridge Scheduler port', () => {
  it('creates a missing schedule starting the coordinator with { jobId }, aligned for rates', async () => {
    const { client, sent } = fakeClient<SchedulerClient>((c) => {
      if (c.constructor.name === UpdateScheduleCommand.name) throw notFound();
      return {};
    });
    const port = new EventBridgeSchedulerPort(client, options, () => Date.parse('2026-01-01T10:17:23Z'));
    await port.apply('demo-abc123', { kind: 'rate', seconds: 300 });
    expect(sent.map((s) => s.name)).toEqual([UpdateScheduleCommand.name, CreateScheduleCommand.name]);
    expect(sent[1]!.input).toMatchObject({
      Name: 'sluice-demo-abc123',
      GroupName: 'sluice-jobs',
      ScheduleExpression: 'rate(5 minutes)',
      ScheduleExpressionTimezone: 'UTC',
      StartDate: new Date('2026-01-01T10:20:00Z'),
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: { Arn: options.stateMachineArn, RoleArn: options.roleArn, Input: '{"jobId":"demo-abc123"}' },
    });
  });

  it('updates an existing schedule to a cron in its zone, and deletes it (missing is fine)', async () => {
    const { client, sent } = fakeClient<SchedulerClient>((c) => {
      if (c.constructor.name === DeleteScheduleCommand.name) throw notFound();
      return {};
    });
    const port = new EventBridgeSchedulerPort(client, options);
    await port.apply('j', { kind: 'cron', expression: 'cron(0 * * * ? *)', timeZone: 'Europe/Berlin' });
    expect(sent[0]).toMatchObject({ name: UpdateScheduleCommand.name, input: { ScheduleExpression: 'cron(0 * * * ? *)', ScheduleExpressionTimezone: 'Europe/Berlin' } });
    expect(sent[0]!.input.StartDate).toBeUndefined();
    await port.apply('j', null);
    expect(sent[1]).toEqual({ name: DeleteScheduleCommand.name, input: { Name: 'sluice-j', GroupName: 'sluice-jobs' } });
    expect(() => port.check({ kind: 'rate', seconds: 30 })).toThrow(ScheduleError);
    expect(jobScheduleName('x'.repeat(80))).toHaveLength(64);
  });
});

describe('cloud launchers and the checkpoint starter', () => {
  it('invokes the task unit function asynchronously with { jobId, unitId, attempt }', async () => {
    const { client, sent } = fakeClient<LambdaClient>();
    const launcher = new LambdaUnitLauncher(client, 'sluice-task-unit');
    await launcher.launch({ jobId: 'demo-1' } as JobRecord, { unitId: 'u-0', subtasks: [], controlQueue: 'q' }, 2);
    expect(sent[0]!.name).toBe(InvokeCommand.name);
    expect(sent[0]!.input.FunctionName).toBe('sluice-task-unit');
    expect(sent[0]!.input.InvocationType).toBe('Event');
    expect(JSON.parse(new TextDecoder().decode(sent[0]!.input.Payload))).toEqual({ jobId: 'demo-1', unitId: 'u-0', attempt: 2 });
  });

  it('starts the state machine with { jobId, checkpointId }', async () => {
    const { client, sent } = fakeClient<SFNClient>();
    await stateMachineStarter(client, options.stateMachineArn)('demo-1', 7);
    expect(sent[0]!.name).toBe(StartExecutionCommand.name);
    expect(sent[0]!.input).toMatchObject({ stateMachineArn: options.stateMachineArn, input: '{"jobId":"demo-1","checkpointId":7}' });
    expect(sent[0]!.input.name).toMatch(/^demo-1-c7-[0-9a-f]{6}$/);
  });

  it('says which variable a launcher is missing', () => {
    const config = loadConfig({});
    expect(() => launcherFromEnv(config, {})).toThrow(/SLUICE_TASK_UNIT_FUNCTION is not set/);
    expect(() => launcherFromEnv(config, { SLUICE_LAUNCHER: 'fargate' })).toThrow(/SLUICE_ECS_CLUSTER is not set/);
    expect(() => launcherFromEnv(config, { SLUICE_LAUNCHER: 'k8s' })).toThrow(/'lambda' or 'fargate'/);
  });
});
