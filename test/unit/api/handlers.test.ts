import { describe, expect, it } from 'vitest';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { createApiHandlers } from '../../../functions/api/handlers';
import { createLogger } from '../../../lib/observability/logger';
import { EmfMetrics } from '../../../lib/observability/metrics';
import { historyToItem } from '../../../lib/checkpoint/catalog';
import { historyEntry } from '../../../lib/checkpoint/stats';
import { apiEvent, CloudLikeSchedulerPort, lambdaContext, memoryApi } from './helpers';
import { AvailabilityRegistry } from '../../../lib/recovery/availability';

const demo = { job: 'demo', params: { records: 2000, parallelism: 2 } };

describe('job API handlers on memory ports', () => {
  it('submits a job: stores it, creates its queues, launches its units and installs its schedule', async () => {
    const api = memoryApi();
    const res = await api.call('POST', '/jobs', { ...demo, failover: 'single', checkpoint: { schedule: { kind: 'rate', seconds: 300 }, timeoutSeconds: 30 } });
    expect(res.status).toBe(201);
    const { jobId } = res.body.job;
    expect(jobId).toMatch(/^demo-[0-9a-f]{6}$/);
    expect(res.body.links.self).toBe(`/jobs/${jobId}`);

    const meta = await api.ports.metadata.get(`JOB#${jobId}`, 'META');
    expect(meta).toMatchObject({ status: 'RUNNING', name: 'demo', settings: { failover: 'single', checkpoint: { intervalSeconds: 300, timeoutSeconds: 30, schedule: { kind: 'rate', seconds: 300 } } } });
    // The job item keeps the sizes of the layout, never the layout (it is computed from the graph).
    const layout = await api.services.service.job(jobId);
    expect(meta).not.toHaveProperty('units');
    expect(meta).toMatchObject({ shape: { units: layout.units.length, queues: layout.queues.length, regions: layout.regions.length } });
    const queues = await api.ports.channels.listQueues(`apitest-${jobId}`);
    expect(queues.length).toBeGreaterThan(0);
    expect(queues.sort()).toEqual([...layout.queues].sort());
    expect(api.launcher.launched.map((l) => l.attempt)).toEqual(layout.units.map(() => 0));
    expect(api.scheduler.schedules.get(jobId)).toEqual({ kind: 'rate', seconds: 300 });
  });

  it('accepts a cron schedule in a time zone and mirrors it as intervalSeconds', async () => {
    const api = memoryApi();
    const res = await api.call('POST', '/jobs', { ...demo, checkpoint: { schedule: { kind: 'cron', expression: '0 * * * ? *', timeZone: 'Asia/Kolkata' } } });
    expect(res.status).toBe(201);
    expect(res.body.job.settings.checkpoint).toMatchObject({
      intervalSeconds: 3600,
      schedule: { kind: 'cron', expression: 'cron(0 * * * ? *)', timeZone: 'Asia/Kolkata' },
    });
    const got = await api.call('GET', `/jobs/${res.body.job.jobId}`);
    expect(got.body.schedule.description).toBe('cron(0 * * * ? *) in Asia/Kolkata');
    expect(got.body.schedule.nextFireTimes).toHaveLength(3);
    for (const t of got.body.schedule.nextFireTimes) expect(t).toMatch(/T\d\d:30:00\.000Z$/);
  });

  it('lists jobs and shows one with units, attempts, regions, availability flags and totals', async () => {
    const api = memoryApi();
    const a = (await api.call('POST', '/jobs', demo)).body.job.jobId;
    const b = (await api.call('POST', '/jobs', { job: 'demo', params: { parallelism: 1 } })).body.job.jobId;
    const list = await api.call('GET', '/jobs');
    expect(list.status).toBe(200);
    expect(list.body.jobs.map((j: { jobId: string }) => j.jobId).sort()).toEqual([a, b].sort());
    expect(list.body.jobs[0]).toMatchObject({ name: 'demo', status: 'RUNNING' });

    await new AvailabilityRegistry(api.ports.metadata, a, () => 'unit-x', { clock: { now: () => 5, sleep: async () => undefined } }).markUnavailable([{ edgeId: 'e1', consumer: 0 }], 1);
    const res = await api.call('GET', `/jobs/${a}`);
    expect(res.status).toBe(200);
    expect(res.body.job).toMatchObject({ jobId: a, status: 'RUNNING', params: { records: 2000, parallelism: 2 } });
    expect(res.body.units.length).toBe(api.launcher.launched.filter((l) => l.jobId === a).length);
    for (const u of res.body.units) expect(u).toMatchObject({ attempt: 0, invocation: 0, status: 'STARTING' });
    expect(res.body.regions.length).toBeGreaterThan(0);
    expect(res.body.availability).toEqual([{ subPartition: 'e1#0', edgeId: 'e1', consumer: 0, available: false, attempt: 1, version: 3, updatedAt: 5 }]);
    expect(res.body.totals).toEqual({ recordsIn: 0, recordsOut: 0, dropped: 0, missing: 0, replayed: 0, duplicateRecords: 0, regenerated: 0, unreplayed: 0, resent: 0, requests: {} });
    expect(res.body.schedule).toEqual({ jobId: a, schedule: null, description: 'off', nextFireTimes: [] });
  });

  it('shows a job with its graph (tasks, chained operators, edges with kind and sub-partitions) and lists the registered jobs', async () => {
    const api = memoryApi();
    const jobId = (await api.call('POST', '/jobs', demo)).body.job.jobId;
    const res = await api.call('GET', `/jobs/${jobId}`);
    expect(res.body.graph).toEqual({
      tasks: [
        { id: 'generator', parallelism: 2, operators: [{ id: 'generator', kind: 'source' }, { id: 'parse', kind: 'map' }] },
        { id: 'hourly-aggregate', parallelism: 2, operators: [{ id: 'hourly-aggregate', kind: 'process' }, { id: 's3-sink', kind: 'sink' }] },
      ],
      edges: [{ id: 'e0', kind: 'hash', from: 'generator', to: 'hourly-aggregate', toOperator: 'hourly-aggregate', input: 0, pointwise: false, subPartitions: 2, channels: 4 }],
    });
    // Every subtask of the graph is hosted by a unit and sits in a region.
    const subtasks = res.body.graph.tasks.flatMap((t: { id: string; parallelism: number }) => Array.from({ length: t.parallelism }, (_, i) => `${t.id}#${i}`)).sort();
    expect(res.body.units.flatMap((u: { subtasks: string[] }) => u.subtasks).sort()).toEqual(subtasks);
    expect(res.body.regions.flatMap((r: { subtasks: string[] }) => r.subtasks).sort()).toEqual(subtasks);

    const list = await api.call('GET', '/jobs');
    expect(list.body.definitions.map((d: { name: string }) => d.name)).toEqual(['demo', 'ingest', 'recommendation-join', 'kinesis-ingest', 'kafka-recommendations', 'kafka-ingest']);
    const demoDefinition = list.body.definitions[0];
    expect(demoDefinition.description).toMatch(/hourly aggregate/);
    expect(demoDefinition.params.parallelism).toEqual({ type: 'number', default: 4, integer: true, min: 1, max: 256, description: 'subtasks per operator' });
    expect(Object.keys(demoDefinition.params)).toEqual(['parallelism', 'records', 'users', 'hours', 'partitions', 'rate']);
  });

  it('lists the regions that failed a checkpoint, with their fallbacks', async () => {
    const api = memoryApi();
    const jobId = (await api.call('POST', '/jobs', { job: 'ingest', params: { parallelism: 2 } })).body.job.jobId;
    const entry = historyEntry({
      checkpointId: 3, handle: 'regional', triggerTime: 1000, endTime: 1900, failure: undefined,
      regionsTotal: 2, participating: 2, completedRegions: 1, bytesWritten: 10, bytesKept: 5,
      failedRegions: [{ regionId: 'r1', reason: 'task-failed', message: 'unit parse-1 exited', subtask: 'generator#1', fallback: 2 }],
    });
    await api.ports.metadata.put(`JOB#${jobId}#CKPT`, 'CKPT#000000000003', historyToItem(entry, 'checkpoints/x/3/manifest.json'));
    const history = await api.call('GET', `/jobs/${jobId}/checkpoints`);
    expect(history.body.checkpoints).toEqual([
      {
        checkpointId: 3, status: 'completed', handle: 'regional', triggerTime: 1000, endTime: 1900, durationMs: 900,
        regionsTotal: 2, participating: 2, completedRegions: 1, failedRegionCount: 1, bytesWritten: 10, bytesKept: 5,
        manifestKey: 'checkpoints/x/3/manifest.json',
        failedRegions: [{ regionId: 'r1', reason: 'task-failed', message: 'unit parse-1 exited', subtask: 'generator#1', fallback: 2 }],
      },
    ]);
  });

  it('triggers a checkpoint through the coordinator steps and lists the history', async () => {
    const api = memoryApi();
    const jobId = (await api.call('POST', '/jobs', demo)).body.job.jobId;
    const first = await api.call('POST', `/jobs/${jobId}/checkpoints`);
    expect(first).toMatchObject({ status: 202, body: { jobId, checkpointId: 1 } });
    expect(api.started).toEqual([{ jobId, checkpointId: 1 }]);
    // The trigger step wrote its pending marker and sent the trigger to the source units.
    expect(await api.ports.metadata.get(`JOB#${jobId}#CKPT`, 'CKPT_PENDING#000000000001')).toMatchObject({ checkpointId: 1 });
    const { units } = await api.services.service.job(jobId);
    const controlMessages = await Promise.all(units.map((u) => api.ports.channels.receive(u.controlQueue, { max: 10, waitSeconds: 0 })));
    expect(controlMessages.flat().map((m) => JSON.parse(m.body).type)).toContain('triggerCheckpoint');

    // One pending checkpoint at a time: a second trigger is refused with 409.
    const busy = await api.call('POST', `/jobs/${jobId}/checkpoints`);
    expect(busy.status).toBe(409);
    expect(busy.body.error).toMatch(/checkpoint 1 is still pending/);
    expect((await api.call('GET', `/jobs/${jobId}/checkpoints`)).body.checkpoints).toMatchObject([{ checkpointId: 1, status: 'pending' }]);

    // What finalize stores: the history entry, and the pending marker goes.
    const entry = historyEntry({
      checkpointId: 1, handle: 'regional', triggerTime: 1000, endTime: 1400, failure: undefined,
      regionsTotal: 2, participating: 2, completedRegions: 2, failedRegions: [], bytesWritten: 10, bytesKept: 10,
    });
    await api.ports.metadata.put(`JOB#${jobId}#CKPT`, 'CKPT#000000000001', historyToItem(entry, 'checkpoints/x/1/manifest.json'));
    await api.ports.metadata.delete(`JOB#${jobId}#CKPT`, 'CKPT_PENDING#000000000001');
    const second = await api.call('POST', `/jobs/${jobId}/checkpoints`);
    expect(second).toMatchObject({ status: 202, body: { checkpointId: 2 } });
    const history = await api.call('GET', `/jobs/${jobId}/checkpoints`);
    expect(history.status).toBe(200);
    expect(history.body.checkpoints).toMatchObject([
      { checkpointId: 1, status: 'completed', durationMs: 400, regionsTotal: 2, completedRegions: 2, failedRegionCount: 0, manifestKey: 'checkpoints/x/1/manifest.json' },
      { checkpointId: 2, status: 'pending' },
    ]);
  });

  it('changes the schedule of a running job: settings and scheduler', async () => {
    const api = memoryApi();
    const jobId = (await api.call('POST', '/jobs', { ...demo, checkpoint: { intervalSeconds: 3600 } })).body.job.jobId;
    expect(api.scheduler.schedules.get(jobId)).toEqual({ kind: 'rate', seconds: 3600 });

    const res = await api.call('PUT', `/jobs/${jobId}/schedule`, { schedule: { kind: 'cron', expression: 'cron(0/15 * * * ? *)', timeZone: 'Europe/Berlin' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ jobId, description: 'cron(0/15 * * * ? *) in Europe/Berlin' });
    const settings = (await api.ports.metadata.get(`JOB#${jobId}`, 'META'))!.settings as any;
    expect(settings.checkpoint.schedule).toEqual({ kind: 'cron', expression: 'cron(0/15 * * * ? *)', timeZone: 'Europe/Berlin' });
    expect(settings.checkpoint.intervalSeconds).toBe(900);
    expect(api.scheduler.schedules.get(jobId)).toEqual(settings.checkpoint.schedule);

    const viaString = await api.call('PUT', `/jobs/${jobId}/schedule`, { schedule: 'rate(5 minutes)' });
    expect(viaString.body.schedule).toEqual({ kind: 'rate', seconds: 300 });
    const off = await api.call('PUT', `/jobs/${jobId}/schedule`, { schedule: null });
    expect(off.body).toMatchObject({ schedule: null, description: 'off' });
    expect(api.scheduler.schedules.has(jobId)).toBe(false);
    expect(((await api.ports.metadata.get(`JOB#${jobId}`, 'META'))!.settings as any).checkpoint).toMatchObject({ schedule: null, intervalSeconds: 0 });
  });

  it('cancels: stops units, deletes queues, removes the schedule, keeps checkpoints', async () => {
    const api = memoryApi();
    const jobId = (await api.call('POST', '/jobs', { ...demo, checkpoint: { schedule: 'rate(1 minute)' } })).body.job.jobId;
    await api.call('POST', `/jobs/${jobId}/checkpoints`);
    const res = await api.call('DELETE', `/jobs/${jobId}`);
    expect(res).toMatchObject({ status: 200, body: { job: { jobId, status: 'CANCELLED' } } });
    expect(await api.ports.channels.listQueues(`apitest-${jobId}`)).toEqual([]);
    expect(api.launcher.stopped.filter((s) => s.jobId === jobId).length).toBe(api.launcher.launched.filter((l) => l.jobId === jobId).length);
    expect(api.scheduler.schedules.has(jobId)).toBe(false);
    expect((await api.call('GET', `/jobs/${jobId}/checkpoints`)).body.checkpoints).toMatchObject([{ checkpointId: 1 }]);
    expect((await api.call('GET', '/jobs')).body.jobs[0]).toMatchObject({ jobId, status: 'CANCELLED' });

    const again = await api.call('DELETE', `/jobs/${jobId}`);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatch(/CANCELLED, not running/);
    expect((await api.call('POST', `/jobs/${jobId}/checkpoints`)).status).toBe(409);
    expect((await api.call('PUT', `/jobs/${jobId}/schedule`, { schedule: 'rate(5 minutes)' })).status).toBe(409);
  });

  it.each([
    [{}, 'job', /job is required/],
    [{ job: 'nope' }, 'job', /unknown job 'nope'/],
    [{ job: 'demo', params: { records: 0 } }, 'params.records', /at least 1/],
    [{ job: 'demo', params: { bogus: 1 } }, 'params.bogus', /no parameter 'bogus'/],
    [{ job: 'demo', params: { records: [1] } }, 'params.records', /params\.records/],
    [{ job: 'demo', failover: 'sometimes' }, 'failover', /failover/],
    [{ job: 'demo', runOn: 'k8s' }, 'runOn', /runOn/],
    [{ job: 'demo', extra: true }, 'extra', /unknown field 'extra'/],
    [{ job: 'demo', checkpoint: { maxFailedRegionRatio: 2 } }, 'checkpoint.maxFailedRegionRatio', /checkpoint\.maxFailedRegionRatio/],
    [{ job: 'demo', checkpoint: { schedule: { kind: 'cron', expression: '0 * * *' } } }, 'checkpoint.schedule.expression', /6 fields/],
    [{ job: 'demo', checkpoint: { schedule: { kind: 'cron', expression: '0 * * * ? *', timeZone: 'Nowhere/Land' } } }, 'checkpoint.schedule.timeZone', /IANA/],
    [{ job: 'demo', checkpoint: { schedule: { kind: 'rate', seconds: 90 } } }, 'checkpoint.schedule.seconds', /whole minutes/],
    [{ job: 'demo', checkpoint: { intervalSeconds: 45 } }, 'checkpoint.intervalSeconds', /whole minutes/],
  ])('refuses a bad submission %j with 400 naming %s', async (body, field, message) => {
    const api = memoryApi({ scheduler: new CloudLikeSchedulerPort() });
    const res = await api.call('POST', '/jobs', body);
    expect(res.status).toBe(400);
    expect(res.body.field).toBe(field);
    expect(res.body.error).toMatch(message);
    expect(res.headers['Content-Type']).toBe('application/json');
    expect(api.launcher.launched).toEqual([]);
  });

  it('answers malformed JSON, unknown jobs, bad ids, unknown routes and methods', async () => {
    const api = memoryApi();
    const malformed = await api.call('POST', '/jobs', undefined, '{"job": ');
    expect(malformed).toMatchObject({ status: 400, body: { field: 'body' } });
    expect(await api.call('POST', '/jobs', undefined, '[1,2]')).toMatchObject({ status: 400, body: { field: 'body' } });
    for (const [method, path, body] of [
      ['GET', '/jobs/demo-000000'],
      ['DELETE', '/jobs/demo-000000'],
      ['POST', '/jobs/demo-000000/checkpoints'],
      ['GET', '/jobs/demo-000000/checkpoints'],
      ['PUT', '/jobs/demo-000000/schedule', { schedule: 'rate(5 minutes)' }],
    ] as const) {
      const res = await api.call(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body).toEqual({ error: "unknown job 'demo-000000'", field: 'id' });
    }
    expect(await api.call('GET', '/jobs/bad%20id!')).toMatchObject({ status: 400, body: { field: 'id' } });
    expect(await api.call('PUT', '/jobs/demo-000000/schedule', {})).toMatchObject({ status: 400, body: { field: 'schedule' } });
    expect(await api.call('PUT', '/jobs/demo-000000/schedule', { schedule: { kind: 'cron', expression: '99 * * * ? *' } })).toMatchObject({
      status: 400,
      body: { field: 'schedule.expression' },
    });
    expect((await api.call('GET', '/nothing')).status).toBe(404);
    const wrongMethod = await api.call('PATCH', '/jobs');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.Allow).toBe('POST, GET');
  });

  it.each([
    ['text/plain;charset=UTF-8', 'text/plain;charset=UTF-8'],
    ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded'],
    ['application/jsonp', 'application/jsonp'],
    [undefined, 'none'],
  ])('refuses a body sent as %s with 415 and starts nothing', async (type, shown) => {
    const api = memoryApi();
    const headers: Record<string, string> = type === undefined ? {} : { 'Content-Type': type };
    const submitted = await api.call('POST', '/jobs', undefined, JSON.stringify(demo), headers);
    expect(submitted).toMatchObject({ status: 415, body: { field: 'content-type' } });
    expect(submitted.body.error).toBe(`the request body must be sent as Content-Type: application/json (got ${shown})`);
    expect(submitted.headers['Content-Type']).toBe('application/json');
    expect(api.launcher.launched).toEqual([]);
    expect(await api.call('GET', '/jobs')).toMatchObject({ body: { jobs: [] } });
    const jobId = (await api.call('POST', '/jobs', demo)).body.job.jobId;
    const schedule = await api.call('PUT', `/jobs/${jobId}/schedule`, undefined, JSON.stringify({ schedule: 'rate(5 minutes)' }), headers);
    expect(schedule).toMatchObject({ status: 415, body: { field: 'content-type' } });
    expect(api.scheduler.schedules.has(jobId)).toBe(false);
  });

  it('accepts JSON content types in any header case, with parameters, and +json types', async () => {
    const api = memoryApi();
    for (const headers of <Record<string, string>[]>[
      { 'content-type': 'application/json' },
      { 'Content-type': 'Application/JSON; charset=utf-8' },
      { 'CONTENT-TYPE': 'application/vnd.sluice+json' },
    ]) {
      const res = await api.call('POST', '/jobs', undefined, JSON.stringify(demo), headers);
      expect(res.status, JSON.stringify(headers)).toBe(201);
    }
    // Routes without a body do not look at the content type.
    expect((await api.call('GET', '/jobs', undefined, undefined, { 'Content-Type': 'text/plain' })).status).toBe(200);
  });

  it.each([
    ['{"job":"demo","__proto__":{"polluted":true}}', '__proto__'],
    ['{"job":"demo","params":{"__proto__":{"records":1}}}', 'params.__proto__'],
    ['{"job":"demo","checkpoint":{"constructor":{"prototype":{"x":1}}}}', 'checkpoint.constructor.prototype'],
  ])('refuses valid JSON with a prototype key %s, naming the key', async (raw, field) => {
    const api = memoryApi();
    const res = await api.call('POST', '/jobs', undefined, raw);
    expect(res.status).toBe(400);
    expect(res.body.field).toBe(field);
    expect(res.body.error).toMatch(new RegExp(`^the request body has the key '${field.split('.').pop()}' at ${field.replace(/\./g, '\\.')}, which is not allowed`));
    expect(res.body.error).not.toMatch(/not valid JSON/);
    expect(api.launcher.launched).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('says what is wrong with malformed JSON', async () => {
    const api = memoryApi();
    const res = await api.call('POST', '/jobs', undefined, '{"job": ');
    expect(res).toMatchObject({ status: 400, body: { field: 'body' } });
    expect(res.body.error).toMatch(/^the request body is not valid JSON: /);
  });

  it('works as separate Lambda handlers with API Gateway path parameters', async () => {
    const api = memoryApi();
    const handlers = createApiHandlers(() => api.services);
    const submitted = await handlers.submitJob(apiEvent('POST', '/jobs', demo), lambdaContext);
    expect(submitted.statusCode).toBe(201);
    const jobId = JSON.parse(submitted.body).job.jobId;
    const event = { ...apiEvent('GET', `/jobs/${jobId}`), resource: '/jobs/{id}', pathParameters: { id: jobId } };
    const got = await handlers.getJob(event, lambdaContext);
    expect(got.statusCode).toBe(200);
    expect(JSON.parse(got.body).job.jobId).toBe(jobId);
    const boom = createApiHandlers(() => {
      throw new Error('secret detail');
    });
    const failed = await boom.listJobs(apiEvent('GET', '/jobs'), lambdaContext);
    expect(failed.statusCode).toBe(500);
    expect(JSON.parse(failed.body)).toEqual({ error: 'internal error' });
  });

  it("shows a job's graph: tasks with their chained operators and parallelism, edges with kind, sub-partitions and channels", async () => {
    const api = memoryApi();
    const jobId = (await api.call('POST', '/jobs', demo)).body.job.jobId;
    const { graph, regions } = (await api.call('GET', `/jobs/${jobId}`)).body;
    expect(graph.tasks.map((t: { id: string; parallelism: number; operators: { id: string }[] }) => [t.id, t.parallelism, t.operators.map((o) => o.id)])).toEqual([
      ['generator', 2, ['generator', 'parse']],
      ['hourly-aggregate', 2, ['hourly-aggregate', 's3-sink']],
    ]);
    expect(graph.edges).toEqual([{ id: 'e0', from: 'generator', to: 'hourly-aggregate', toOperator: 'hourly-aggregate', input: 0, kind: 'hash', pointwise: false, subPartitions: 2, channels: 4 }]);
    expect(regions).toHaveLength(1);
  });

  it('with Lambda telemetry, logs one JSON line per request with the invocation context, and a 5xx with its cause', async () => {
    const api = memoryApi();
    const lines: string[] = [];
    const telemetry = { logger: createLogger({ write: (l) => lines.push(l) }), metrics: new EmfMetrics({ write: () => undefined }), tracer: new Tracer({ serviceName: 'sluice' }) };
    const handlers = createApiHandlers(() => api.services, telemetry);
    const context = { ...lambdaContext, functionName: 'sluice-GetJob', awsRequestId: 'req-1', invokedFunctionArn: 'arn:aws:lambda:us-east-1:1:function:sluice-GetJob', memoryLimitInMB: '256', functionVersion: '$LATEST' } as unknown as typeof lambdaContext;
    const jobId = JSON.parse((await handlers.submitJob(apiEvent('POST', '/jobs', demo), context)).body).job.jobId;
    await handlers.getJob({ ...apiEvent('GET', `/jobs/${jobId}`), resource: '/jobs/{id}', pathParameters: { id: jobId } }, context);
    await handlers.getJob({ ...apiEvent('GET', '/jobs/nope'), resource: '/jobs/{id}', pathParameters: { id: 'nope' } }, context);
    const boom = createApiHandlers(() => {
      throw new Error('secret detail');
    }, telemetry);
    await boom.listJobs(apiEvent('GET', '/jobs'), context);
    const logs = lines.map((l) => JSON.parse(l));
    const requests = logs.filter((l) => l.route !== undefined);
    expect(requests.map((l) => [l.level, l.route, l.status, l.jobId])).toEqual([
      ['INFO', 'submitJob', 201, undefined],
      ['INFO', 'getJob', 200, jobId],
      ['INFO', 'getJob', 404, 'nope'],
      ['ERROR', 'listJobs', 500, undefined],
    ]);
    for (const l of logs) expect(l).toMatchObject({ service: 'sluice', function_name: 'sluice-GetJob', function_request_id: 'req-1' });
    expect(logs.find((l) => l.message === 'request failed')).toMatchObject({ level: 'ERROR', error: { message: 'secret detail' } });
  });
});
