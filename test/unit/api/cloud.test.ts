import { CreateScheduleCommand, DeleteScheduleCommand, SchedulerClient, UpdateScheduleCommand } from '@aws-sdk/client-scheduler';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import { EventBridgeSchedulerPort, jobScheduleName, LambdaUnitLauncher, launcherFromEnv, PerJobLauncher, stateMachineStarter } from '../../../functions/api/cloud';
import { jobRegistry } from '../../../examples/jobs';
import { loadConfig } from '../../../lib/config';
import { JobSpecError } from '../../../lib/graph/job-graph';
import { JobService } from '../../../lib/jobs/job-service';
import { JobStore, type JobRecord, type JobSettings } from '../../../lib/jobs/job-store';
import { createMemoryPorts } from '../../../lib/memory';
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

describe('where a job runs: Lambda or Fargate, per job', () => {
  const job = (runOn?: 'lambda' | 'fargate') => ({ jobId: 'j-1', settings: { ...(runOn ? { runOn } : {}) } }) as unknown as JobRecord;
  const unit = { unitId: 'u-0', subtasks: [], controlQueue: 'q' };

  it('starts each job on the runtime it asks for, the default otherwise, and stops units on both', async () => {
    const calls: string[] = [];
    const fake = (name: string) => ({
      launch: async (j: JobRecord, u: { unitId: string }, attempt: number) => void calls.push(`${name} launch ${j.jobId}/${u.unitId}#${attempt}`),
      stop: async (jobId: string, unitId: string) => void calls.push(`${name} stop ${jobId}/${unitId}`),
    });
    const launcher = new PerJobLauncher({ lambda: fake('lambda'), fargate: fake('fargate') }, 'lambda');
    await launcher.launch(job(), unit, 0);
    await launcher.launch(job('fargate'), unit, 1);
    await launcher.launch(job('lambda'), unit, 2);
    await launcher.stop('j-1', 'u-0');
    expect(calls).toEqual(['lambda launch j-1/u-0#0', 'fargate launch j-1/u-0#1', 'lambda launch j-1/u-0#2', 'lambda stop j-1/u-0', 'fargate stop j-1/u-0']);
    expect(() => launcher.accepts({ runOn: 'fargate' } as JobSettings)).not.toThrow();
  });

  it('refuses, before anything is created, a job asking for a runtime the deployment lacks', async () => {
    const config = loadConfig({});
    const lambdaOnly = launcherFromEnv(config, { SLUICE_TASK_UNIT_FUNCTION: 'fn' });
    expect(lambdaOnly.defaultRunOn).toBe('lambda');
    expect(() => lambdaOnly.accepts({ runOn: 'fargate' } as JobSettings)).toThrow(JobSpecError);
    expect(() => lambdaOnly.accepts({ runOn: 'fargate' } as JobSettings)).toThrow(/runOn 'fargate': this deployment has no Fargate task unit \(deploy with -c sluice:fargate=true\)/);
    expect(() => lambdaOnly.accepts({} as JobSettings)).not.toThrow();
    const both = launcherFromEnv(config, {
      SLUICE_LAUNCHER: 'fargate',
      SLUICE_TASK_UNIT_FUNCTION: 'fn',
      SLUICE_ECS_CLUSTER: 'c',
      SLUICE_TASK_DEFINITION: 'td',
      SLUICE_SUBNETS: 's1,s2',
      SLUICE_SECURITY_GROUPS: 'g',
    });
    expect(both.defaultRunOn).toBe('fargate');
    expect(() => both.accepts({ runOn: 'lambda' } as JobSettings)).not.toThrow();
    // Through the job service: the refusal comes before any queue or record exists.
    const ports = createMemoryPorts();
    const service = new JobService({ jobs: new JobStore(ports.metadata), channels: ports.channels, registry: jobRegistry, queuePrefix: 'ro', launcher: lambdaOnly });
    await expect(service.submit({ job: 'demo', runOn: 'fargate' })).rejects.toThrow(/runOn 'fargate'/);
    await expect(service.submit({ job: 'demo', runOn: 'k8s' as never })).rejects.toThrow(/runOn must be 'lambda' or 'fargate', got 'k8s'/);
    expect(await ports.channels.listQueues('ro')).toEqual([]);
    expect(await new JobStore(ports.metadata).listJobs()).toEqual([]);
  });
});
