/**
 * The synthesized checkpoint state machine, run locally (aws-local-stepfunctions) with its task
 * states calling the real coordinator handlers (functions/checkpoint-coordinator.ts) over memory
 * ports, with the demo job's task units running in this process: a checkpoint goes Trigger →
 * Wait → Poll ... → Finalize → Notify and is committed. Also the branches: nothing to trigger,
 * a failed checkpoint, and the poll budget running out.
 */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { StateMachine } from 'aws-local-stepfunctions';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jobRegistry } from '../../examples/jobs';
import * as coordinator from '../../functions/checkpoint-coordinator';
import { buildApp } from '../../infra/app';
import { CheckpointSteps } from '../../lib/jobs/checkpoint-steps';
import { JobService } from '../../lib/jobs/job-service';
import { JobStore } from '../../lib/jobs/job-store';
import { Supervisor } from '../../lib/jobs/supervisor';
import { InProcessLauncher } from '../../lib/local/in-process-launcher';
import { createMemoryPorts } from '../../lib/memory';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

let definition: Json;
const handlerOf: Record<string, string> = {};

beforeAll(() => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], 'sluice:nag': false, 'sluice:maxCheckpointSeconds': 60 } });
  const { stack } = buildApp(app);
  const template = Template.fromStack(stack);
  const functions = template.findResources('AWS::Lambda::Function');
  const sm = Object.values<Json>(template.findResources('AWS::StepFunctions::StateMachine'))[0]!;
  const raw = sm.Properties.DefinitionString;
  // Tokens (function ARNs) become plausible ARNs named after the handler they invoke.
  const text = raw['Fn::Join'][1]
    .map((p: Json) => {
      if (typeof p === 'string') return p;
      const id = p['Fn::GetAtt']?.[0];
      const handler = id && functions[id] ? String(functions[id].Properties.Handler).replace('index.', '') : 'unknown';
      return `arn:aws:lambda:us-east-1:123456789012:function:${handler}`;
    })
    .join('');
  definition = JSON.parse(text);
  for (const [name, state] of Object.entries<Json>(definition.States)) if (state.Type === 'Task') handlerOf[name] = String(state.Resource).split(':').at(-1)!;
}, 60_000);

afterEach(() => coordinator.useSteps(undefined));

/** Runs the definition with each Task calling a handler of `impl` (by the function it invokes). */
async function run(input: Json, impl: Record<string, (event: Json) => Promise<Json>>, waitMs = 0) {
  const machine = new StateMachine(definition, { validationOptions: { checkArn: true, checkPaths: true } });
  const visited: string[] = [];
  const execution = machine.run(input, {
    overrides: {
      taskResourceLocalHandlers: Object.fromEntries(
        Object.entries(handlerOf).map(([state, handler]) => [
          state,
          async (event: Json) => {
            visited.push(state);
            return impl[handler]!(event);
          },
        ]),
      ),
      waitTimeOverrides: { Wait: waitMs },
      retryIntervalOverrides: Object.fromEntries(Object.keys(handlerOf).map((s) => [s, 0])),
    },
  });
  const result = (await execution.result) as Json;
  return { result, visited };
}

describe('checkpoint state machine (synthesized definition, run locally)', () => {
  it('is valid ASL and maps its task states to the coordinator handlers', () => {
    expect(handlerOf).toEqual({ Trigger: 'trigger', Poll: 'poll', Finalize: 'finalize', Notify: 'notify' });
    expect(() => new StateMachine(definition)).not.toThrow();
  });

  it('waits as long as the last poll said before the next (the first wait: the construct\'s poll interval)', () => {
    expect(definition.States.Wait).toMatchObject({ Type: 'Wait', SecondsPath: '$.waitSeconds' });
    expect(definition.States.Prepare.Parameters).toMatchObject({ waitSeconds: 2 });
    expect(definition.States.CountPoll.Parameters).toMatchObject({ 'waitSeconds.$': '$.poll.waitSeconds' });
  });

  it('takes a real checkpoint of a running demo job: trigger, poll until decided, finalize, notify', async () => {
    const ports = createMemoryPorts();
    const jobs = new JobStore(ports.metadata);
    const launcher = new InProcessLauncher({ ...ports, jobs, registry: jobRegistry, queuePrefix: 'sm' });
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'sm', launcher });
    coordinator.useSteps(new CheckpointSteps({ jobs, service, metadata: ports.metadata, blobs: ports.blobs }));
    // A few seconds of input (rate: records per second per source subtask): the checkpoint happens mid-stream.
    const job = await service.submit({ job: 'demo', params: { parallelism: 2, records: 4000, rate: 500 } });
    const { result, visited } = await run({ jobId: job.jobId }, coordinator as never, 100);
    expect(visited[0]).toBe('Trigger');
    expect(visited.filter((s) => s === 'Poll').length).toBeGreaterThanOrEqual(1);
    expect(visited.slice(-2)).toEqual(['Finalize', 'Notify']);
    expect(result.finalize).toMatchObject({ jobId: job.jobId, checkpointId: 1, done: true, outcome: 'completed' });
    expect(result.notify).toMatchObject({ done: true, outcome: 'completed' });
    const entry = await ports.metadata.get(`JOB#${job.jobId}#CKPT`, 'CKPT#000000000001');
    expect(entry).toMatchObject({ checkpointId: 1, status: 'completed' });
    expect(await ports.blobs.head(entry!.manifestKey as string)).toBeDefined();
    // The job then runs to its end under a supervisor (which releases the sinks' last output).
    const view = await new Supervisor({ service, pollMs: 100 }).watch(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    expect(view.totals.recordsIn).toBe(4000);
  }, 60_000);

  it('a Finalize killed after it persisted the checkpoint is retried and converges; the next checkpoint completes', async () => {
    const ports = createMemoryPorts();
    // Finalize dies between persisting the decision (manifest, history, pointer) and deleting the
    // pending marker: the marker delete throws, once, as a killed Lambda would leave it.
    let kills = 0;
    const metadata: typeof ports.metadata = Object.create(ports.metadata);
    metadata.delete = async (pk: string, sk: string) => {
      if (sk.startsWith('CKPT_PENDING#') && kills++ === 0) throw new Error('Lambda killed after persisting');
      return ports.metadata.delete(pk, sk);
    };
    const jobs = new JobStore(metadata);
    const launcher = new InProcessLauncher({ ...ports, metadata, jobs, registry: jobRegistry, queuePrefix: 'smk' });
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'smk', launcher });
    coordinator.useSteps(new CheckpointSteps({ jobs, service, metadata, blobs: ports.blobs }));
    const job = await service.submit({ job: 'demo', params: { parallelism: 2, records: 16000, rate: 1000 } });

    const first = await run({ jobId: job.jobId }, coordinator as never, 100);
    expect(kills).toBe(2); // the killed run and its retry
    expect(first.visited.filter((s) => s === 'Finalize')).toHaveLength(2);
    expect(first.visited.slice(-2)).toEqual(['Finalize', 'Notify']);
    expect(first.result.finalize).toMatchObject({ checkpointId: 1, done: true, outcome: 'completed' });
    expect(first.result.notify).toMatchObject({ done: true, outcome: 'completed' });
    expect(await ports.metadata.query(`JOB#${job.jobId}#CKPT`, 'CKPT_PENDING#')).toEqual([]);

    // The next scheduled execution: a new id, completed, committed.
    const second = await run({ jobId: job.jobId }, coordinator as never, 100);
    expect(second.result.finalize).toMatchObject({ checkpointId: 2, done: true, outcome: 'completed' });
    expect(second.result.notify).toMatchObject({ done: true, outcome: 'completed' });
    const history = await ports.metadata.query(`JOB#${job.jobId}#CKPT`, 'CKPT#');
    expect(history.map((h) => [h.item.checkpointId, h.item.status])).toEqual([
      [1, 'completed'],
      [2, 'completed'],
    ]);
    expect(await ports.metadata.get(`JOB#${job.jobId}#CKPT`, 'CKPT_LATEST')).toMatchObject({ checkpointId: 2, manifestKey: history[1]!.item.manifestKey });
    const view = await new Supervisor({ service, pollMs: 100 }).watch(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    expect(view.totals.recordsIn).toBe(16000);
  }, 90_000);

  const scripted = (over: Partial<Record<'trigger' | 'poll' | 'finalize' | 'notify', Json>>) => {
    const calls: Record<string, number> = {};
    const step = (name: string) => async (e: Json) => {
      calls[name] = (calls[name] ?? 0) + 1;
      const base = { jobId: e.jobId, checkpointId: e.checkpointId ?? 7, done: false, waitSeconds: 1 };
      const o = over[name as keyof typeof over];
      return { ...base, ...(typeof o === 'function' ? o(calls[name]) : o) };
    };
    return { calls, impl: { trigger: step('trigger'), poll: step('poll'), finalize: step('finalize'), notify: step('notify') } };
  };

  it('ends at once when there is nothing to trigger', async () => {
    const { calls, impl } = scripted({ trigger: { checkpointId: null, done: true, outcome: 'refused' } });
    const { visited } = await run({ jobId: 'j' }, impl);
    expect(visited).toEqual(['Trigger']);
    expect(calls).toEqual({ trigger: 1 });
  });

  it('does not notify a checkpoint that failed; retries a failing step', async () => {
    const { calls, impl } = scripted({
      poll: (n: number) => {
        if (n === 1) throw new Error('throttled');
        return { done: n >= 3 };
      },
      finalize: { done: true, outcome: 'failed', message: 'too many failed regions' },
    });
    const { visited, result } = await run({ jobId: 'j', checkpointId: 7 }, impl);
    expect(visited.at(-1)).toBe('Finalize');
    expect(calls.notify).toBeUndefined();
    expect(calls.poll).toBe(3);
    expect(result.finalize.outcome).toBe('failed');
  });

  it('finalizes anyway once the poll budget is spent, and fails the execution if still undecided', async () => {
    const { calls, impl } = scripted({ poll: { done: false }, finalize: { done: false, outcome: 'pending' } });
    await expect(run({ jobId: 'j' }, impl)).rejects.toThrow(/CheckpointUndecided|not decided/);
    // sluice:maxCheckpointSeconds 60 at a 2 s poll interval: 30 polls.
    expect(calls.poll).toBe(30);
    expect(calls.finalize).toBe(1);
  });
});
