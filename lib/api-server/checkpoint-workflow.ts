/**
 * The checkpoint workflow run in this process, step for step what the Step Functions state
 * machine does in the cloud (infra/sluice-construct.ts): wait, poll until the checkpoint is
 * decided or the poll budget is spent, finalize, and notify when it completed.
 */
import type { CheckpointStepInput, CheckpointStepResult, CheckpointWorkflowSteps } from '../../functions/api/services';
import { systemClock, type Clock } from '../ports/clock';

export interface WorkflowOptions {
  clock?: Clock;
  /** Polls before finalizing anyway (the state machine's bound). Default 450 (15 min at 2 s). */
  maxPolls?: number;
  /** Wait before a poll when the step does not say (seconds). Default 1. */
  defaultWaitSeconds?: number;
  /** Stops waiting between polls (the server is closing): the workflow ends undecided. */
  signal?: AbortSignal;
}

export interface WorkflowRun {
  polls: number;
  /** The last step's result: finalize's (failed / undecided) or notify's (completed). */
  result: CheckpointStepResult;
  steps: ('trigger' | 'poll' | 'finalize' | 'notify')[];
}

/** Runs poll → finalize → notify for a triggered checkpoint. */
export async function runCheckpointWorkflow(steps: CheckpointWorkflowSteps, input: CheckpointStepInput, options: WorkflowOptions = {}): Promise<WorkflowRun> {
  const clock = options.clock ?? systemClock;
  const maxPolls = options.maxPolls ?? 450;
  const run: WorkflowRun = { polls: 0, result: { jobId: input.jobId, checkpointId: input.checkpointId ?? null, done: false }, steps: [] };
  let wait = options.defaultWaitSeconds ?? 1;
  while (run.polls < maxPolls) {
    if (options.signal?.aborted) return run;
    await clock.sleep(wait * 1000);
    if (options.signal?.aborted) return run;
    run.result = await steps.poll(input);
    run.steps.push('poll');
    run.polls++;
    if (run.result.done) break;
    wait = run.result.waitSeconds ?? options.defaultWaitSeconds ?? 1;
  }
  run.result = await steps.finalize(input);
  run.steps.push('finalize');
  if (run.result.done && run.result.outcome === 'completed') {
    run.result = await steps.notify(input);
    run.steps.push('notify');
  }
  return run;
}
