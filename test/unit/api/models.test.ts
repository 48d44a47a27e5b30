/**
 * The API Gateway request models are generated from the zod body schemas (functions/api/models.ts).
 * API Gateway validates with a subset of JSON Schema draft 4; the generated models must use only
 * that subset, and must never refuse a body the handlers accept.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ROUTES } from '../../../functions/api/routes';
import { bodySchemas, checkpointSettingsSchema, submitSchema } from '../../../functions/api/schemas';
import { API_GATEWAY_MODEL_KEYWORDS, apiGatewayModel, modelName, type JsonSchemaObject } from '../../../functions/api/models';

type Schema = JsonSchemaObject;

/** Every keyword used anywhere in a schema, with its path. */
function keywords(schema: Schema, path = '#'): { keyword: string; path: string }[] {
  const out: { keyword: string; path: string }[] = [];
  for (const [k, v] of Object.entries(schema)) {
    out.push({ keyword: k, path });
    if (k === 'properties') for (const [name, sub] of Object.entries(v as Record<string, Schema>)) out.push(...keywords(sub, `${path}/properties/${name}`));
    else if ((k === 'items' || k === 'additionalProperties' || k === 'not') && typeof v === 'object' && v !== null) out.push(...keywords(v as Schema, `${path}/${k}`));
    else if (k === 'allOf') (v as Schema[]).forEach((sub, i) => out.push(...keywords(sub, `${path}/${k}/${i}`)));
  }
  return out;
}

/** A small draft-4 validator for the keywords the models may use: whether `value` conforms. */
function conforms(schema: Schema, value: unknown): boolean {
  const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' && Number.isInteger(v) ? 'integer' : typeof v);
  const types = schema.type === undefined ? undefined : ([] as string[]).concat(schema.type as string | string[]);
  if (types && !types.some((t) => t === typeOf(value) || (t === 'number' && typeOf(value) === 'integer'))) return false;
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) return false;
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) return false;
    if (typeof schema.maximum === 'number' && value > schema.maximum) return false;
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength) return false;
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength) return false;
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value)) return false;
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const r of (schema.required ?? []) as string[]) if (!(r in obj)) return false;
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) {
        if (!conforms(props[k], v)) return false;
      } else if (schema.additionalProperties === false) return false;
      else if (typeof schema.additionalProperties === 'object' && !conforms(schema.additionalProperties as Schema, v)) return false;
    }
  }
  return true;
}

const submitModel = apiGatewayModel(submitSchema, 'SubmitJob');

describe('API Gateway request models from the zod schemas', () => {
  it('has a body schema and a model name for exactly the routes that take a body', () => {
    for (const route of ROUTES) expect(route.name in bodySchemas, route.name).toBe(route.body);
    expect(ROUTES.filter((r) => r.body).map((r) => modelName(r.name))).toEqual(['SubmitJob', 'PutSchedule']);
  });

  it('emits draft 4 with only the keywords API Gateway models support', () => {
    for (const [name, schema] of Object.entries(bodySchemas)) {
      const model = apiGatewayModel(schema, modelName(name));
      expect(model.$schema).toBe('http://json-schema.org/draft-04/schema#');
      expect(model.title).toBe(modelName(name));
      const unsupported = keywords(model).filter((k) => !API_GATEWAY_MODEL_KEYWORDS.has(k.keyword));
      expect(unsupported, name).toEqual([]);
      expect(keywords(model).filter((k) => k.keyword === '$schema').map((k) => k.path)).toEqual(['#']);
    }
  });

  it('follows the zod schema: every field, its limits, required and unknown fields', () => {
    const props = submitModel.properties as Record<string, Schema>;
    expect(Object.keys(props).sort()).toEqual(Object.keys(submitSchema.shape).sort());
    expect(submitModel.required).toEqual(['job']);
    expect(submitModel.additionalProperties).toBe(false);
    const checkpoint = props.checkpoint!;
    expect(Object.keys(checkpoint.properties as object).sort()).toEqual(Object.keys(checkpointSettingsSchema.shape).sort());
    expect(checkpoint.additionalProperties).toBe(false);
    // The hand-written copy had drifted to { minimum: 0 } and no maximum.
    expect((checkpoint.properties as Record<string, Schema>).timeoutSeconds).toEqual({ type: 'number', minimum: 0, maximum: 86_400 });
    expect(props.heartbeatTimeoutSeconds).toEqual({ type: 'number', minimum: 1, maximum: 900 });
    expect(props.runOn).toEqual({ type: 'string', enum: ['lambda', 'fargate'] });
    expect((checkpoint.properties as Record<string, Schema>).schedule).toMatchObject({ type: ['object', 'string', 'null'] });
    expect(apiGatewayModel(bodySchemas.putSchedule, 'PutSchedule')).toMatchObject({ required: ['schedule'], additionalProperties: false, properties: { schedule: { type: ['object', 'string', 'null'] } } });
  });

  it('never refuses a body zod accepts, and refuses the shape errors zod refuses', () => {
    const accepted = [
      { job: 'demo' },
      { job: 'demo', params: { records: 2000, name: 'x', fast: true }, failover: 'single', runOn: 'fargate', heartbeatTimeoutSeconds: 900 },
      { job: 'demo', checkpoint: { handle: 'global', intervalSeconds: 0, timeoutSeconds: 0.5, maxFailedRegionRatio: 1, maxConsecutiveRegionFailures: 1, whenBusy: 'queue', schedule: 'rate(5 minutes)' } },
      { job: 'demo', checkpoint: { schedule: { kind: 'cron', expression: 'cron(0 * * * ? *)', timeZone: 'Europe/Berlin' } } },
      { job: 'demo', checkpoint: { schedule: null, timeoutSeconds: 86_400 } },
    ];
    for (const body of accepted) {
      expect(submitSchema.safeParse(body).success, JSON.stringify(body)).toBe(true);
      expect(conforms(submitModel, body), JSON.stringify(body)).toBe(true);
    }
    const refused = [
      {},
      { job: '' },
      { job: 'demo', extra: 1 },
      { job: 'demo', params: { records: [1] } },
      { job: 'demo', failover: 'sometimes' },
      { job: 'demo', heartbeatTimeoutSeconds: 0 },
      { job: 'demo', checkpoint: { timeoutSeconds: 90_000 } },
      { job: 'demo', checkpoint: { intervalSeconds: 1.5 } },
      { job: 'demo', checkpoint: { bogus: true } },
      { job: 'demo', checkpoint: { schedule: 5 } },
      [],
      'demo',
    ];
    for (const body of refused) expect(conforms(submitModel, body), JSON.stringify(body)).toBe(false);
    // Looser than zod where draft 4 on API Gateway cannot say it: timeoutSeconds must be > 0 (zod refuses 0, the model lets the handler say so).
    expect(submitSchema.safeParse({ job: 'demo', checkpoint: { timeoutSeconds: 0 } }).success).toBe(false);
    expect(conforms(submitModel, { job: 'demo', checkpoint: { timeoutSeconds: 0 } })).toBe(true);
  });

  it('refuses to generate a model API Gateway would not take, naming the keyword and where', () => {
    expect(() => apiGatewayModel(z.strictObject({ a: z.union([z.string(), z.number().array()]) }), 'X')).toThrow(/X: keyword 'anyOf' at #\/properties\/a is not supported by API Gateway models/);
    expect(() => apiGatewayModel(z.strictObject({ e: z.string().email() }), 'Y')).toThrow(/Y: keyword 'format' at #\/properties\/e/);
    expect(() => apiGatewayModel(z.strictObject({ d: z.date() }), 'Z')).toThrow(/Z/);
  });
});
