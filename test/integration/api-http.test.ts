/**
 * The job API over HTTP, against the AWS emulator (AWS_ENDPOINT_URL from the global setup): the
 * local server, real child-process task units, DynamoDB and SQS checked after each call.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsPorts, type AwsPorts } from '../../lib/aws';
import { loadConfig, type SluiceConfig } from '../../lib/config';
import { MAX_BODY_BYTES, startLocalApi, type LocalApi } from '../../lib/api-server';
import { jobRegistry } from '../../examples/jobs';
import type { JobParams } from '../../lib/api/registry';
import { buildExecutionGraph } from '../../lib/graph/execution-graph';
import { jobLayout } from '../../lib/graph/placement';

const suffix = randomBytes(3).toString('hex');
let config: SluiceConfig;
let api: LocalApi;
let aws: AwsPorts;

async function http(method: string, path: string, body?: unknown) {
  const res = await fetch(`${api.url}${path}`, {
    method,
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'Content-Type': 'application/json' } } : {}),
  });
  return { status: res.status, body: (await res.json()) as any, type: res.headers.get('content-type') };
}

beforeAll(async () => {
  expect(process.env.AWS_ENDPOINT_URL, 'the global setup sets AWS_ENDPOINT_URL').toBeTruthy();
  config = loadConfig({ ...process.env, SLUICE_TABLE: `sluice-apihttp-${suffix}`, SLUICE_BUCKET: `sluice-apihttp-${suffix}`, SLUICE_QUEUE_PREFIX: `apih${suffix}` });
  api = await startLocalApi({ config, port: 0, supervisePollMs: 250 });
  aws = createAwsPorts(config);
});

afterAll(async () => {
  await api?.close();
  aws?.clients.destroy();
});

describe('job API over HTTP (local server, emulator)', () => {
  it('submits, shows, reschedules, checkpoints and cancels a demo job', async () => {
    expect(api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // rate: records per second per source subtask, so the job is still running when it is cancelled.
    const submitted = await http('POST', '/jobs', { job: 'demo', params: { records: 2000, parallelism: 2, rate: 20 }, checkpoint: { schedule: 'rate(1 hour)' } });
    expect(submitted.status).toBe(201);
    expect(submitted.type).toBe('application/json');
    const jobId: string = submitted.body.job.jobId;

    // DynamoDB: the job item; SQS: its queues.
    const meta = await aws.metadata.get(`JOB#${jobId}`, 'META');
    expect(meta).toMatchObject({ jobId, status: 'RUNNING', settings: { checkpoint: { schedule: { kind: 'rate', seconds: 3600 }, intervalSeconds: 3600 } } });
    // The job item keeps the layout's sizes, not the layout (lib/graph/placement.ts computes it).
    expect(meta!.queues).toBeUndefined();
    const layout = jobLayout(buildExecutionGraph(jobRegistry.build('demo', meta!.params as JobParams).graph), { jobId, queuePrefix: config.queuePrefix });
    const { queues } = layout;
    expect(queues.length).toBeGreaterThan(0);
    expect(await aws.channels.listQueues(`${config.queuePrefix}-${jobId}`)).toEqual([...queues].sort());
    const scheduler = api.scheduler.get(jobId);
    expect(scheduler?.schedule).toEqual({ kind: 'rate', seconds: 3600 });

    const listed = await http('GET', '/jobs');
    expect(listed.body.jobs.map((j: { jobId: string }) => j.jobId)).toContain(jobId);

    const got = await http('GET', `/jobs/${jobId}`);
    expect(got.status).toBe(200);
    expect(got.body.job).toMatchObject({ jobId, name: 'demo', status: 'RUNNING' });
    expect(got.body.units.map((u: { unitId: string }) => u.unitId).sort()).toEqual(layout.units.map((u) => u.unitId).sort());
    for (const u of got.body.units) expect(u.attempt).toBe(0);
    expect(got.body.regions.length).toBeGreaterThan(0);
    expect(got.body).toHaveProperty('totals.recordsIn');
    expect(got.body.schedule.description).toBe('every hour');

    // Change the schedule: stored in the settings, applied to the same running scheduler.
    const changed = await http('PUT', `/jobs/${jobId}/schedule`, { schedule: { kind: 'cron', expression: 'cron(0/5 * * * ? *)', timeZone: 'Europe/Berlin' } });
    expect(changed.status).toBe(200);
    expect(changed.body.nextFireTimes).toHaveLength(3);
    const settings = (await aws.metadata.get(`JOB#${jobId}`, 'META'))!.settings as any;
    expect(settings.checkpoint).toMatchObject({ schedule: { kind: 'cron', expression: 'cron(0/5 * * * ? *)', timeZone: 'Europe/Berlin' }, intervalSeconds: 300 });
    expect(api.scheduler.get(jobId)).toBe(scheduler);
    expect(scheduler!.schedule).toEqual(settings.checkpoint.schedule);
    expect(scheduler!.nextFireAt! % 300_000).toBe(0);

    // Trigger a checkpoint now: the coordinator's trigger step, then the workflow (poll, finalize, notify).
    const triggered = await http('POST', `/jobs/${jobId}/checkpoints`);
    expect(triggered).toMatchObject({ status: 202, body: { jobId, checkpointId: 1 } });
    let history = await http('GET', `/jobs/${jobId}/checkpoints`);
    expect(history.body.checkpoints[0]).toMatchObject({ checkpointId: 1 });
    for (let i = 0; i < 225 && history.body.checkpoints[0].status === 'pending'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      history = await http('GET', `/jobs/${jobId}/checkpoints`);
    }
    expect(history.body.checkpoints[0]).toMatchObject({ checkpointId: 1, status: 'completed', completedRegions: history.body.checkpoints[0].regionsTotal });
    const item = await aws.metadata.get(`JOB#${jobId}#CKPT`, 'CKPT#000000000001');
    expect(item).toMatchObject({ checkpointId: 1, status: 'completed' });
    expect(await aws.blobs.head(item!.manifestKey as string)).toBeDefined();

    const cancelled = await http('DELETE', `/jobs/${jobId}`);
    expect(cancelled).toMatchObject({ status: 200, body: { job: { jobId, status: 'CANCELLED' } } });
    expect(await aws.metadata.get(`JOB#${jobId}`, 'META')).toMatchObject({ status: 'CANCELLED' });
    expect(await aws.channels.listQueues(`${config.queuePrefix}-${jobId}`)).toEqual([]);
    for (const u of layout.units) expect(api.runtime.launcher.pid(jobId, u.unitId)).toBeUndefined();
    expect(api.scheduler.get(jobId)).toBeUndefined();
    expect(await aws.metadata.get(`JOB#${jobId}#CKPT`, 'CKPT#000000000001')).toMatchObject({ status: 'completed' });
    expect((await http('GET', `/jobs/${jobId}`)).body.job.status).toBe('CANCELLED');
    expect((await http('DELETE', `/jobs/${jobId}`)).status).toBe(409);
  });

  it('answers an oversized body with 413 the client can read, and starts nothing', async () => {
    const before = (await http('GET', '/jobs')).body.jobs.length;
    // fetch writes the whole body; the server must let it finish and answer, not reset the connection.
    const big = await http('POST', '/jobs', { job: 'demo', params: { pad: 'x'.repeat(MAX_BODY_BYTES) } });
    expect(big).toMatchObject({ status: 413, type: 'application/json', body: { error: `the request body is larger than ${MAX_BODY_BYTES} bytes`, field: 'body' } });
    expect((await http('GET', '/jobs')).body.jobs).toHaveLength(before);
  });

  it('answers a body not sent as application/json with 415, and starts nothing', async () => {
    const before = (await http('GET', '/jobs')).body.jobs.length;
    // fetch sends a string body as text/plain;charset=UTF-8 unless told otherwise.
    const plain = await fetch(`${api.url}/jobs`, { method: 'POST', body: JSON.stringify({ job: 'demo', params: { records: 10 } }) });
    expect(plain.status).toBe(415);
    expect(await plain.json()).toEqual({ error: 'the request body must be sent as Content-Type: application/json (got text/plain;charset=UTF-8)', field: 'content-type' });
    expect((await http('GET', '/jobs')).body.jobs).toHaveLength(before);
  });

  it('answers valid JSON with a __proto__ key with 400 saying so', async () => {
    const proto = await http('POST', '/jobs', '{"job":"demo","params":{"__proto__":{"records":1}}}');
    expect(proto).toMatchObject({ status: 400, body: { field: 'params.__proto__' } });
    expect(proto.body.error).toMatch(/key '__proto__' at params\.__proto__, which is not allowed/);
  });

  it('answers bad input with 400 naming the field, and unknown jobs with 404', async () => {
    const before = (await http('GET', '/jobs')).body.jobs.length;
    const badParam = await http('POST', '/jobs', { job: 'demo', params: { records: 'many' } });
    expect(badParam.status).toBe(400);
    expect(badParam.body.field).toBe('params.records');
    const badJob = await http('POST', '/jobs', { job: 'nope' });
    expect(badJob).toMatchObject({ status: 400, body: { field: 'job' } });
    const badJson = await http('POST', '/jobs', '{"job":');
    expect(badJson).toMatchObject({ status: 400, body: { field: 'body' } });
    const badCron = await http('POST', '/jobs', { job: 'demo', checkpoint: { schedule: { kind: 'cron', expression: '0 25 * * ? *' } } });
    expect(badCron).toMatchObject({ status: 400, body: { field: 'checkpoint.schedule.expression' } });
    expect(badCron.body.error).toMatch(/hours field: 25/);
    // Nothing was created for the refused submissions.
    expect((await http('GET', '/jobs')).body.jobs).toHaveLength(before);

    for (const [method, path] of [
      ['GET', '/jobs/demo-ffffff'],
      ['DELETE', '/jobs/demo-ffffff'],
      ['GET', '/jobs/demo-ffffff/checkpoints'],
      ['POST', '/jobs/demo-ffffff/checkpoints'],
    ] as const) {
      const res = await http(method, path);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toEqual({ error: "unknown job 'demo-ffffff'", field: 'id' });
    }
    const unknownSchedule = await http('PUT', '/jobs/demo-ffffff/schedule', { schedule: 'rate(5 minutes)' });
    expect(unknownSchedule.status).toBe(404);
    expect((await http('GET', '/nowhere')).status).toBe(404);
  });
});
