/**
 * The job API handlers (API Gateway REST proxy events), written with middy. Each one parses its
 * input with zod, calls one service and answers JSON. Errors become JSON `{ error, field? }`:
 * bad input 400 (naming the field), unknown job 404, a job in the wrong state 409, a body that is
 * not sent as JSON 415.
 *
 * With Lambda telemetry (functions/api/index.ts) each handler also gets the Powertools middleware
 * (invocation context on every JSON log line, a traced handler) and logs one line per request:
 * route, status, job id and time taken; a 5xx is logged as an error with its cause.
 */
import middy from '@middy/core';
import httpErrorHandler from '@middy/http-error-handler';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { z } from 'zod';
import { JobSpecError } from '../../lib/graph/job-graph';
import { UnknownJobError, type JobRecord } from '../../lib/jobs/job-store';
import { SluiceAwsError } from '../../lib/aws/errors';
import { ScheduleError } from '../../lib/schedule';
import { ROUTES, matchRoute, type RouteName } from './routes';
import { describeZodError, pathSchema, scheduleBodySchema, submitSchema } from './schemas';
import { ConflictError, type ApiServices } from './services';
import { withPowertools, type LambdaTelemetry } from '../../lib/observability/lambda';
import type { Logger } from '../../lib/ports/telemetry';

export type ApiHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
export type ServicesProvider = ApiServices | (() => ApiServices | Promise<ApiServices>);

/** An error with an HTTP status and a JSON body, rendered by @middy/http-error-handler. */
export class ApiError extends Error {
  readonly expose = true;
  constructor(
    readonly statusCode: number,
    readonly body: { error: string; field?: string },
  ) {
    super(JSON.stringify(body));
  }
}

/** The field a JobSpecError message is about, when it says (unknown job, a parameter, a setting). */
export function fieldOfSpecError(message: string): string | undefined {
  if (/^unknown job '/.test(message)) return 'job';
  const param = /parameter '([^']+)'/.exec(message);
  if (param) return `params.${param[1]}`;
  const setting = /^(failover|heartbeatTimeoutSeconds|subtasksPerUnit|checkpoint\.[A-Za-z]+) /.exec(message);
  if (setting) return setting[1];
  return undefined;
}

/** Maps what services throw to ApiError. */
export function toApiError(error: unknown): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (error instanceof z.ZodError) return new ApiError(400, describeZodError(error));
  if (error instanceof ScheduleError) return new ApiError(400, { error: error.message, field: error.field.startsWith('checkpoint.') || error.field.startsWith('schedule') ? error.field : `schedule.${error.field}` });
  if (error instanceof UnknownJobError) return new ApiError(404, { error: error.message, field: 'id' });
  if (error instanceof ConflictError) return new ApiError(409, { error: error.message });
  if (error instanceof JobSpecError) {
    const field = fieldOfSpecError(error.message);
    return new ApiError(400, { error: error.message, ...(field ? { field } : {}) });
  }
  // AWS unreachable, a missing table or bucket: say so (the message names the endpoint and resource).
  if (error instanceof SluiceAwsError) return new ApiError(error.kind === 'aws' ? 502 : 503, { error: error.message });
  const e = error as { statusCode?: number; message?: string } | null;
  if (e && typeof e.statusCode === 'number' && e.statusCode < 500) return new ApiError(e.statusCode, { error: e.message ?? 'bad request' });
  return undefined;
}

/** `application/json`, `application/<x>+json`, with parameters (`; charset=utf-8`); any case. */
const JSON_CONTENT_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i;

/** A header's value, whatever the case of its name (API Gateway passes names as the client sent them). */
function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === wanted && v !== undefined) return v;
  return undefined;
}

/**
 * The dotted path of the first key that could change an object's prototype when the parsed body is
 * merged or copied: `__proto__` anywhere, `prototype` under `constructor`. JSON.parse itself makes
 * them plain own properties; code further on (spreads into settings, param records) may not.
 */
function prototypeKey(value: unknown, path: string[] = []): string[] | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  for (const [k, v] of Object.entries(value)) {
    if (k === '__proto__' || (k === 'prototype' && path[path.length - 1] === 'constructor')) return [...path, k];
    const found = prototypeKey(v, [...path, k]);
    if (found) return found;
  }
  return undefined;
}

/**
 * Before middleware of the routes with a body: a non-empty body must be sent as JSON (415 otherwise,
 * so a text/plain post never starts a job), must parse (400 saying where it breaks) and must not
 * carry prototype keys (400 naming the key). An absent body is left to the route's zod schema.
 */
const jsonBody = (): middy.MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> => ({
  before: (request) => {
    const event = request.event;
    const raw = event.body == null ? '' : event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
    if (raw === '') {
      (event as { body: unknown }).body = undefined;
      return;
    }
    const type = header(event, 'content-type');
    if (!type || !JSON_CONTENT_TYPE.test(type)) {
      throw new ApiError(415, { error: `the request body must be sent as Content-Type: application/json (got ${type || 'none'})`, field: 'content-type' });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      throw new ApiError(400, { error: `the request body is not valid JSON: ${(err as Error).message}`, field: 'body' });
    }
    const key = prototypeKey(parsed);
    if (key) {
      const field = key.join('.');
      throw new ApiError(400, { error: `the request body has the key '${key[key.length - 1]}' at ${field}, which is not allowed (it could change object prototypes)`, field });
    }
    (event as { body: unknown }).body = parsed;
  },
});

/** onError middleware: known errors become JSON ApiErrors; http-error-handler renders them. */
const jsonErrors = (): middy.MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> => ({
  onError: (request) => {
    const mapped = toApiError(request.error);
    if (mapped) request.error = mapped;
  },
});

const json = (statusCode: number, body: unknown): APIGatewayProxyResult => ({
  statusCode,
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(body),
});

function jobId(event: APIGatewayProxyEvent): string {
  return pathSchema.parse(event.pathParameters ?? {}).id;
}

function summary(job: JobRecord) {
  return { jobId: job.jobId, name: job.name, status: job.status, createdAt: job.createdAt, params: job.params, settings: job.settings };
}

type Core = (event: APIGatewayProxyEvent, services: ApiServices) => Promise<APIGatewayProxyResult>;

const CORE: Record<RouteName, Core> = {
  async submitJob(event, services) {
    const body = submitSchema.parse(event.body ?? undefined);
    const job = await services.jobs.submit(body);
    return json(201, { job: summary(job), links: { self: `/jobs/${job.jobId}` } });
  },
  async listJobs(_event, services) {
    // The registered jobs ride along: a client (the web UI's submit form) needs them, and a route
    // of their own would be one more function and API Gateway method for a constant.
    return json(200, { jobs: await services.jobs.list(), definitions: services.jobs.definitions() });
  },
  async getJob(event, services) {
    return json(200, await services.jobs.details(jobId(event)));
  },
  async cancelJob(event, services) {
    const job = await services.jobs.cancel(jobId(event));
    return json(200, { job: { jobId: job.jobId, status: job.status, endedAt: job.endedAt } });
  },
  async triggerCheckpoint(event, services) {
    const id = jobId(event);
    const { checkpointId } = await services.checkpoints.trigger(id);
    return json(202, { jobId: id, checkpointId });
  },
  async listCheckpoints(event, services) {
    const id = jobId(event);
    return json(200, { jobId: id, checkpoints: await services.checkpoints.history(id) });
  },
  async putSchedule(event, services) {
    const id = jobId(event);
    const body = scheduleBodySchema.parse(event.body ?? undefined);
    return json(200, await services.schedules.set(id, body.schedule));
  },
};

function serverErrorLogger(logger: Logger | undefined) {
  return (error: unknown): void => {
    const status = (error as { statusCode?: number } | null)?.statusCode;
    if (status !== undefined && status < 500) return;
    if (logger) logger.error('request failed', { error });
    else console.error(error);
  };
}

/** One line per request: route, status, job id, time taken. */
const requestLog = (logger: Logger, route: RouteName): middy.MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> => {
  const line = (request: middy.Request<APIGatewayProxyEvent, APIGatewayProxyResult>, started: number) => {
    const status = request.response?.statusCode ?? (request.error as { statusCode?: number } | null)?.statusCode ?? 500;
    const jobId = request.event.pathParameters?.id;
    const attributes = { route, method: request.event.httpMethod, path: request.event.path, status, ms: Date.now() - started, ...(jobId ? { jobId } : {}) };
    (status >= 500 ? logger.error : logger.info).call(logger, `${request.event.httpMethod} ${request.event.path} -> ${status}`, attributes);
  };
  const startedAt = new WeakMap<object, number>();
  return {
    before: (request) => void startedAt.set(request, Date.now()),
    after: (request) => line(request, startedAt.get(request) ?? Date.now()),
    // Runs after http-error-handler's onError (middy runs onError in reverse order): the response is set.
    onError: (request) => line(request, startedAt.get(request) ?? Date.now()),
  };
};

/**
 * One middy handler per route, over the given services (or a provider, called once); with
 * `telemetry`, instrumented with Powertools (the Lambda functions).
 */
export function createApiHandlers(provider: ServicesProvider, telemetry?: LambdaTelemetry): Record<RouteName, ApiHandler> {
  let services: Promise<ApiServices> | undefined;
  const get = () => (services ??= Promise.resolve(typeof provider === 'function' ? provider() : provider));
  const handlers = {} as Record<RouteName, ApiHandler>;
  for (const route of ROUTES) {
    const core = CORE[route.name];
    let handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult, Error, Context>();
    if (telemetry) handler = withPowertools(handler, telemetry).use(requestLog(telemetry.logger, route.name));
    handler = handler.use(httpErrorHandler({ logger: serverErrorLogger(telemetry?.logger), fallbackMessage: JSON.stringify({ error: 'internal error' }) }));
    handler = handler.use(jsonErrors());
    // The body parser runs before the handler; its errors go through jsonErrors too.
    if (route.body) handler = handler.use(jsonBody());
    const done = handler.handler(async (event) => core(event, await get()));
    handlers[route.name] = (event, context) => done(event, context);
  }
  return handlers;
}

/** A handler for every route at once: routes by method and path (the local server, tests). */
export function createApiRouter(provider: ServicesProvider): ApiHandler {
  const handlers = createApiHandlers(provider);
  return async (event, context) => {
    const match = matchRoute(event.httpMethod, event.path);
    if (!match) return json(404, { error: `no route for ${event.httpMethod} ${event.path}` });
    if ('allowed' in match) return { ...json(405, { error: `${event.httpMethod} is not allowed on ${event.path}; use ${match.allowed.join(', ')}` }), headers: { 'Content-Type': 'application/json', Allow: match.allowed.join(', ') } };
    return handlers[match.route.name]({ ...event, resource: match.route.resource, pathParameters: match.pathParameters }, context);
  };
}
