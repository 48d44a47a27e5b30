/**
 * API Gateway request models generated from the zod body schemas (schemas.ts), so that the model
 * API Gateway validates with and the schema the handlers parse with cannot drift apart.
 *
 * API Gateway models are JSON Schema draft 4, and not all of it: AWS lists `exclusiveMinimum`,
 * `discriminator`, `example`, `readOnly` (and, for OpenAPI import, `oneOf`/`anyOf`) as unsupported.
 * The model is a first gate only: zod in the handler has the last word. So a model may be looser
 * than zod, never stricter: what draft 4 on API Gateway cannot say is dropped (an exclusive bound
 * becomes inclusive), and anything else outside the supported subset fails the build, naming it.
 * Imports only zod (the CDK app loads this file).
 */
import { z } from 'zod';

export type JsonSchemaObject = { [keyword: string]: unknown };

/** Keywords a generated model may use (draft 4, as API Gateway validates it). */
export const API_GATEWAY_MODEL_KEYWORDS: ReadonlySet<string> = new Set([
  '$schema', 'title', 'description', 'type', 'enum', 'default',
  'properties', 'required', 'additionalProperties', 'minProperties', 'maxProperties',
  'items', 'minItems', 'maxItems', 'uniqueItems',
  'minLength', 'maxLength', 'pattern',
  'minimum', 'maximum', 'multipleOf',
  'allOf', 'not',
]);

/** Keywords dropped because API Gateway does not support them and dropping only loosens the model. */
const LOOSENED = new Set(['exclusiveMinimum', 'exclusiveMaximum']);

/** The model name of a route: 'submitJob' → 'SubmitJob' (API Gateway model names are alphanumeric). */
export function modelName(route: string): string {
  return route[0]!.toUpperCase() + route.slice(1);
}

/** The API Gateway model (draft 4) of a zod body schema; throws naming any keyword API Gateway would refuse. */
export function apiGatewayModel(schema: z.ZodType, title: string): JsonSchemaObject {
  let json: JsonSchemaObject;
  try {
    json = z.toJSONSchema(schema, { target: 'draft-4', io: 'input', unrepresentable: 'throw' }) as JsonSchemaObject;
  } catch (err) {
    throw new Error(`${title}: the body schema has no JSON Schema form (${(err as Error).message})`);
  }
  const { $schema, ...rest } = json;
  return { $schema, title, ...clean(rest, '#', title) };
}

function clean(node: JsonSchemaObject, path: string, title: string): JsonSchemaObject {
  const out: JsonSchemaObject = {};
  for (const [keyword, value] of Object.entries(node)) {
    if (LOOSENED.has(keyword)) continue;
    if (!API_GATEWAY_MODEL_KEYWORDS.has(keyword) || keyword === '$schema') {
      throw new Error(`${title}: keyword '${keyword}' at ${path} is not supported by API Gateway models (JSON Schema draft 4 subset); change the zod schema or map it in functions/api/models.ts`);
    }
    if (keyword === 'properties') {
      out[keyword] = Object.fromEntries(Object.entries(value as Record<string, JsonSchemaObject>).map(([name, sub]) => [name, clean(sub, `${path}/properties/${name}`, title)]));
    } else if ((keyword === 'items' || keyword === 'additionalProperties' || keyword === 'not') && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      out[keyword] = clean(value as JsonSchemaObject, `${path}/${keyword}`, title);
    } else if (keyword === 'allOf' || (keyword === 'items' && Array.isArray(value))) {
      out[keyword] = (value as JsonSchemaObject[]).map((sub, i) => clean(sub, `${path}/${keyword}/${i}`, title));
    } else out[keyword] = value;
  }
  return out;
}
