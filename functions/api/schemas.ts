/**
 * Input schemas of the job API (zod). The shapes are checked here; the meaning (registered job
 * and its parameters, failover names, schedule fields) by the services, which name the field too.
 */
import { z } from 'zod';
import type { RouteName } from './routes';

export const jobIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/, 'job id may only use letters, digits, _ . - (at most 80)');

export const pathSchema = z.object({ id: jobIdSchema });

/**
 * A schedule: { kind: 'rate', seconds } | { kind: 'cron', expression, timeZone? } | 'rate(5 minutes)' | 'cron(...)' | null (off).
 * Checked by ScheduleService, which names the field; the metadata narrows the API Gateway model (models.ts) to those types.
 */
const scheduleInput = z.unknown().meta({
  type: ['object', 'string', 'null'],
  description: "{ kind: 'rate', seconds } | { kind: 'cron', expression, timeZone } | 'rate(...)' | 'cron(...)' | null",
});

export const checkpointSettingsSchema = z.strictObject({
  handle: z.enum(['global', 'regional']).optional(),
  intervalSeconds: z.number().int().min(0).optional(),
  timeoutSeconds: z.number().positive().max(86_400).optional(),
  maxFailedRegionRatio: z.number().min(0).max(1).optional(),
  maxConsecutiveRegionFailures: z.number().int().min(1).optional(),
  whenBusy: z.enum(['refuse', 'queue']).optional(),
  schedule: scheduleInput.optional(),
});

export const submitSchema = z.strictObject({
  job: z.string().min(1, 'job must name a registered job'),
  params: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  failover: z.enum(['full', 'region', 'single', 'single-buffered', 'single-exact']).optional(),
  runOn: z.enum(['lambda', 'fargate']).optional(),
  heartbeatTimeoutSeconds: z.number().min(1).max(900).optional(),
  subtasksPerUnit: z.number().int().min(1).max(1000).optional(),
  checkpoint: checkpointSettingsSchema.optional(),
});

export type SubmitBody = z.infer<typeof submitSchema>;

export const scheduleBodySchema = z.strictObject({
  schedule: scheduleInput.refine((v) => v !== undefined, 'schedule is required (null turns checkpoints off)'),
});

/** The JSON body of each route that takes one (routes.ts `body: true`); API Gateway's request models are generated from these. */
export const bodySchemas = {
  submitJob: submitSchema,
  putSchedule: scheduleBodySchema,
} as const satisfies Partial<Record<RouteName, z.ZodType>>;

/** The first problem of a zod error as `{ error, field }`, the field as a dotted path. */
export function describeZodError(error: z.ZodError, prefix?: string): { error: string; field?: string } {
  const issue = error.issues[0];
  if (!issue) return { error: 'invalid input' };
  let path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) path = [...path, issue.keys[0]!];
  if (prefix) path = [prefix, ...path];
  const field = path.join('.') || 'body';
  if (issue.code === 'unrecognized_keys') return { error: `unknown field '${field}'`, field };
  if (field === 'body' && issue.code === 'invalid_type') return { error: 'the request body must be a JSON object', field };
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) return { error: `${field} is required`, field };
  return { error: `${field}: ${issue.message}`, field };
}
