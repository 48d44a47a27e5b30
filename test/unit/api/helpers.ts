import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { jobRegistry } from '../../../examples/jobs';
import type { UnitLauncher } from '../../../lib/jobs/job-service';
import type { JobRecord, UnitPlacement } from '../../../lib/jobs/job-store';
import { createMemoryPorts } from '../../../lib/memory';
import { toSchedulerExpression, type CheckpointSchedule } from '../../../lib/schedule';
import { createApiRouter } from '../../../functions/api/handlers';
import { buildApiServices, RecordingSchedulerPort } from '../../../functions/api/services';

/** Records launches and stops; runs nothing, so a job stays RUNNING until cancelled. */
export class RecordingLauncher implements UnitLauncher {
  readonly launched: { jobId: string; unitId: string; attempt: number }[] = [];
  readonly stopped: { jobId: string; unitId: string }[] = [];
  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    this.launched.push({ jobId: job.jobId, unitId: unit.unitId, attempt });
  }
  async stop(jobId: string, unitId: string): Promise<void> {
    this.stopped.push({ jobId, unitId });
  }
}

/** Refuses what EventBridge Scheduler refuses (rates that are not whole minutes). */
export class CloudLikeSchedulerPort extends RecordingSchedulerPort {
  override check(schedule: CheckpointSchedule): void {
    toSchedulerExpression(schedule);
  }
}

/** An API Gateway proxy event; a body gets `Content-Type: application/json` unless `headers` are given. */
export function apiEvent(method: string, path: string, body?: unknown, raw?: string, headers?: Record<string, string>): APIGatewayProxyEvent {
  return {
    httpMethod: method,
    path,
    resource: path,
    body: raw ?? (body === undefined ? null : JSON.stringify(body)),
    headers: headers ?? (body !== undefined || raw !== undefined ? { 'Content-Type': 'application/json' } : {}),
    multiValueHeaders: {},
    isBase64Encoded: false,
    pathParameters: null,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    stageVariables: null,
    requestContext: {} as APIGatewayProxyEvent['requestContext'],
  };
}

export const lambdaContext = { functionName: 'test', awsRequestId: 'test' } as unknown as Context;

export function memoryApi(options: { scheduler?: RecordingSchedulerPort } = {}) {
  const ports = createMemoryPorts();
  const launcher = new RecordingLauncher();
  const scheduler = options.scheduler ?? new RecordingSchedulerPort();
  const started: { jobId: string; checkpointId: number }[] = [];
  const services = buildApiServices({
    metadata: ports.metadata,
    channels: ports.channels,
    blobs: ports.blobs,
    registry: jobRegistry,
    queuePrefix: 'apitest',
    launcher,
    scheduler,
    startCheckpoint: async (jobId: string, checkpointId: number) => void started.push({ jobId, checkpointId }),
  });
  const router = createApiRouter(services);
  const call = async (method: string, path: string, body?: unknown, raw?: string, headers?: Record<string, string>) => {
    const res: APIGatewayProxyResult = await router(apiEvent(method, path, body, raw, headers), lambdaContext);
    return { status: res.statusCode, body: JSON.parse(res.body) as any, headers: res.headers ?? {} };
  };
  return { ports, launcher, scheduler, started, services, call };
}
