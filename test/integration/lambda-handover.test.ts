/**
 * The Lambda path of a task unit, against the emulator (moto, or AWS_ENDPOINT_URL): the production
 * handler composition (`makeHandler` with `runUnit` and `lambdaSelfInvoke`) runs every unit of a job,
 * each invocation is told it has a few seconds left, hands over, and invokes the function again
 * through the real Lambda Invoke API of the emulator. The test plays the Lambda service's other
 * half: it delivers each invoke that the emulator accepted to a new invocation of the handler.
 * The job must finish with every aggregate exact, no failure, every unit still at attempt 0.
 */
import { CreateFunctionCommand, LambdaClient, type InvokeCommandInput } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32 } from 'node:zlib';
import { createAwsPorts, ensureInfrastructure, type AwsPorts } from '../../lib/aws';
import { loadConfig } from '../../lib/config';
import { JobController } from '../../lib/jobs/job-controller';
import { JobService, type UnitLauncher } from '../../lib/jobs/job-service';
import { JobStore } from '../../lib/jobs/job-store';
import { LAMBDA_HANDOVER_MARGIN_MS, lambdaSelfInvoke, makeHandler, runUnit, type TaskUnitEvent } from '../../functions/task-unit';
import { jobRegistry } from '../../examples/jobs';
import { checkDemoOutput } from '../../examples/jobs/demo-check';

const env = { SLUICE_TABLE: 'sluice-it-lambda', SLUICE_BUCKET: 'sluice-it-lambda', SLUICE_QUEUE_PREFIX: 'itlam' };
const config = loadConfig({ ...process.env, ...env });
const FUNCTION_NAME = 'sluice-it-task-unit';
const ROLE_NAME = 'sluice-it-task-unit';
/** Each invocation believes it has this long before its hand-over. */
const INVOCATION_MS = 3000;
let ports: AwsPorts;
let lambda: LambdaClient;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  // runUnit reads the configuration from the environment, as it does in Lambda.
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  ports = createAwsPorts(config);
  await ensureInfrastructure(config, ports.clients);
  const endpoint = config.endpoint!;
  // moto runs no function code without Docker: its Docker-less Lambda accepts invokes and returns at once.
  await fetch(new URL('/moto-api/config', endpoint), { method: 'POST', body: JSON.stringify({ lambda: { use_docker: false } }) }).catch(() => undefined);
  // The function's role must exist (moto checks); the project has no IAM client, so one query call.
  const trust = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }] });
  await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `AWS4-HMAC-SHA256 Credential=test/20260101/${config.region}/iam/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: new URLSearchParams({ Action: 'CreateRole', Version: '2010-05-08', RoleName: ROLE_NAME, AssumeRolePolicyDocument: trust }),
  });
  lambda = new LambdaClient({ region: config.region, endpoint, ...(config.credentials ? { credentials: config.credentials } : {}) });
  const code = storedZip('index.mjs', 'export const handler = async () => ({});');
  await lambda
    .send(new CreateFunctionCommand({ FunctionName: FUNCTION_NAME, Runtime: 'nodejs22.x', Handler: 'index.handler', Role: `arn:aws:iam::123456789012:role/${ROLE_NAME}`, Code: { ZipFile: code } }))
    .catch((error: unknown) => {
      if (!(error instanceof Error && error.name === 'ResourceConflictException')) throw error;
    });
});

/** A one-file zip archive, stored without compression (the function's code is never run here). */
function storedZip(name: string, text: string): Uint8Array {
  const data = Buffer.from(text);
  const file = Buffer.from(name);
  const crc = crc32(data);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(file.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length, 24);
  central.writeUInt16LE(file.length, 28);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + file.length, 12);
  end.writeUInt32LE(local.length + file.length + data.length, 16);
  return Buffer.concat([local, file, data, central, file, end]);
}

afterAll(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  lambda?.destroy();
  ports?.clients.destroy();
});

describe('Lambda task units hand over through the Lambda Invoke API', () => {
  it('every invocation hands over after a few seconds; the next one continues; the output is exact', async () => {
    const invocations: Promise<unknown>[] = [];
    const accepted: TaskUnitEvent[] = [];
    const outcomes: string[] = [];
    // The invokes the emulator accepted (status 202) are what Lambda would deliver next.
    lambda.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const input = args.input as InvokeCommandInput;
        if (input.InvocationType === 'Event' && (result.output as { StatusCode?: number }).StatusCode === 202) {
          const event = JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array)) as TaskUnitEvent;
          accepted.push(event);
          deliver(event);
        }
        return result;
      },
      { step: 'initialize', name: 'sluiceDeliverAccepted' },
    );
    const handler = makeHandler({ run: runUnit, invoke: lambdaSelfInvoke(lambda) });
    const deliver = (event: TaskUnitEvent) => {
      const end = Date.now() + INVOCATION_MS + LAMBDA_HANDOVER_MARGIN_MS;
      const context = { functionName: FUNCTION_NAME, getRemainingTimeInMillis: () => end - Date.now() };
      invocations.push(handler(event, context).then((r) => void outcomes.push(`${event.unitId}:${r.status}`)));
    };
    const launcher: UnitLauncher = {
      launch: async (job, unit, attempt) => deliver({ jobId: job.jobId, unitId: unit.unitId, attempt }),
      stop: async () => undefined,
    };
    const jobs = new JobStore(ports.metadata);
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: config.queuePrefix, launcher });
    const job = await service.submit({
      job: 'demo',
      runOn: 'lambda',
      params: { records: 40_000, parallelism: 2, users: 50, hours: 3, partitions: 4, rate: 3000 },
      heartbeatTimeoutSeconds: 20,
      checkpoint: { handle: 'regional', timeoutSeconds: 10 },
    });
    const controller = new JobController({ service, metadata: ports.metadata, blobs: ports.blobs, pollMs: 250, checkpointEveryMs: 1000 });
    const view = await controller.run(job.jobId);
    await Promise.all(invocations);

    const handedOver = outcomes.filter((o) => o.endsWith(':HANDED_OVER')).length;
    console.log(`lambda invocations: ${outcomes.length} (${handedOver} handed over, ${accepted.length} invokes accepted by the emulator)`);
    expect(view.job.status).toBe('FINISHED');
    expect(controller.supervisor.failures).toEqual([]);
    expect(view.units.every((u) => u.attempt === 0)).toBe(true);
    // Every hand-over was followed by exactly one accepted invoke for the same attempt, with resume.
    expect(handedOver).toBeGreaterThanOrEqual(view.units.length);
    expect(accepted).toHaveLength(handedOver);
    expect(accepted.every((e) => e.resume === true && e.attempt === 0)).toBe(true);
    expect(outcomes.filter((o) => !o.endsWith(':HANDED_OVER') && !o.endsWith(':FINISHED'))).toEqual([]);
    const check = await checkDemoOutput(ports.clients.s3, config.bucket, job.jobId, view.job.params);
    expect(check).toMatchObject({ ok: true, wrong: [], duplicated: [], unexpected: [] });
  });
});
