/**
 * The checkpoint coordinator's Lambda handlers, one per task state of the Step Functions state
 * machine (infra/sluice-construct.ts): Trigger → Wait → Poll → Choice(decided?) → Finalize →
 * Notify. Each delegates to the coordinator's stateless steps (lib/jobs/checkpoint-steps.ts) over
 * the AWS ports; between states only the ids travel.
 *
 * Contract (the state machine relies on it):
 *   in   { jobId: string, checkpointId?: number | null }
 *   out  { jobId, checkpointId: number | null, done: boolean, outcome?, message?, waitSeconds: number }
 * - trigger: started by EventBridge Scheduler with { jobId }: triggers a checkpoint (done: true
 *   means nothing to do: job not running, or one still pending). Started by the API with
 *   { jobId, checkpointId }: the API already ran the trigger step, so it is passed through.
 * - poll: done once the checkpoint is decided (completed, failed, or timed out).
 * - finalize: persists the manifest or the failure; done: false when not decided yet.
 * - notify: tells the regions that completed it (their sinks commit).
 * Every handler may run again for the same input (a retry after a timeout or a kill, a replayed
 * execution) and answers as the first run did: the decision on a checkpoint is stored once.
 *
 * Each handler logs Powertools JSON lines (jobId, checkpointId), is traced, and publishes the
 * decision's metrics (outcome, duration, size, per region) as EMF when finalize stores it.
 */
import { loadJobRegistry } from '../lib/api/jobs-module';
import { createAwsPorts } from '../lib/aws';
import { loadConfig } from '../lib/config';
import { CheckpointSteps } from '../lib/jobs/checkpoint-steps';
import { JobService } from '../lib/jobs/job-service';
import { JobStore } from '../lib/jobs/job-store';
import { instrument, lambdaTelemetry, traceClients } from '../lib/observability/lambda';
import type { CheckpointStepInput, CheckpointStepResult, CheckpointWorkflowSteps } from './api/services';

export interface CoordinatorEvent {
  jobId: string;
  checkpointId?: number | null;
}

export interface CoordinatorResult extends CheckpointStepResult {
  /** Seconds the state machine waits before the next poll (a whole number, at least 1). */
  waitSeconds: number;
}

let built: CheckpointWorkflowSteps | undefined;

/** The steps over the AWS ports, built once per container. */
async function steps(): Promise<CheckpointWorkflowSteps> {
  if (built) return built;
  const registry = await loadJobRegistry();
  if (built) return built;
  const config = loadConfig();
  const ports = createAwsPorts(config);
  traceClients(ports.clients);
  const { logger, metrics } = lambdaTelemetry();
  const jobs = new JobStore(ports.metadata);
  const service = new JobService({
    jobs,
    channels: ports.channels,
    registry,
    queuePrefix: config.queuePrefix,
    launcher: {
      launch: async () => {
        throw new Error('the checkpoint coordinator does not launch task units');
      },
      stop: async () => undefined,
    },
  });
  built = new CheckpointSteps({ jobs, service, metadata: ports.metadata, blobs: ports.blobs, logger, metrics });
  return built;
}

/** For tests: run the handlers over other steps (memory ports). */
export function useSteps(s: CheckpointWorkflowSteps | undefined): void {
  built = s;
}

function input(event: CoordinatorEvent): CheckpointStepInput {
  if (!event || typeof event.jobId !== 'string' || event.jobId === '') throw new Error(`coordinator event needs a jobId, got ${JSON.stringify(event)}`);
  const id = event.checkpointId;
  if (id !== undefined && id !== null && !(Number.isInteger(id) && id > 0)) throw new Error(`checkpointId must be a positive whole number, got ${JSON.stringify(id)}`);
  return { jobId: event.jobId, checkpointId: id ?? null };
}

function result(r: CheckpointStepResult): CoordinatorResult {
  const wait = Math.max(1, Math.round(r.waitSeconds ?? 1));
  return { ...r, checkpointId: r.checkpointId ?? null, done: Boolean(r.done), waitSeconds: wait };
}

/** A step as a Lambda handler: logged with the job and checkpoint, traced, its metrics published when it ends. */
function step(run: (event: CoordinatorEvent) => Promise<CoordinatorResult>) {
  return instrument(async (event: CoordinatorEvent) => {
    lambdaTelemetry().logger.powertools.appendKeys({ jobId: event?.jobId, checkpointId: event?.checkpointId ?? undefined });
    return run(event);
  });
}

export const trigger = step(async (event) => {
  const i = input(event);
  if (typeof i.checkpointId === 'number') return result({ jobId: i.jobId, checkpointId: i.checkpointId, done: false, outcome: 'pending', waitSeconds: 1 });
  return result(await (await steps()).trigger({ jobId: i.jobId }));
});

export const poll = step(async (event) => result(await (await steps()).poll(input(event))));

export const finalize = step(async (event) => result(await (await steps()).finalize(input(event))));

export const notify = step(async (event) => result(await (await steps()).notify(input(event))));
