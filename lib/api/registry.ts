/**
 * Registered jobs. A job is code (its functions cannot travel in a request), so users register a
 * definition under a name; a submission names it and passes parameters, and every task unit
 * rebuilds the same graph from the same name and parameters.
 */
import type { Json } from './functions';
import type { JobGraph } from '../graph/job-graph';
import { JobSpecError } from '../graph/job-graph';

export interface ParamSpec {
  type: 'number' | 'string' | 'boolean';
  default: number | string | boolean;
  description: string;
  integer?: boolean;
  min?: number;
  max?: number;
}

export type JobParams = { [name: string]: number | string | boolean };

export interface JobDefinition {
  name: string;
  description: string;
  /** Every parameter the job takes; `parallelism` is always among them. */
  params: { [name: string]: ParamSpec };
  build(params: JobParams): JobGraph;
}

export class JobRegistry {
  private readonly jobs = new Map<string, JobDefinition>();

  constructor(definitions: JobDefinition[] = []) {
    for (const d of definitions) this.register(d);
  }

  register(definition: JobDefinition): void {
    if (this.jobs.has(definition.name)) throw new JobSpecError(`job '${definition.name}' is registered twice`);
    if (!definition.params.parallelism) throw new JobSpecError(`job '${definition.name}' must declare a 'parallelism' parameter`);
    this.jobs.set(definition.name, definition);
  }

  get(name: string): JobDefinition {
    const d = this.jobs.get(name);
    if (!d) throw new JobSpecError(`unknown job '${name}'; registered jobs: ${[...this.jobs.keys()].join(', ') || 'none'}`);
    return d;
  }

  list(): JobDefinition[] {
    return [...this.jobs.values()];
  }

  /** Builds the graph of a registered job with checked parameters. */
  build(name: string, params: { [k: string]: Json } = {}): { graph: JobGraph; params: JobParams } {
    const definition = this.get(name);
    const resolved = resolveParams(definition, params);
    return { graph: definition.build(resolved), params: resolved };
  }
}

/** Fills defaults and checks every given parameter; the error names the parameter. */
export function resolveParams(definition: JobDefinition, given: { [k: string]: Json }): JobParams {
  const out: JobParams = {};
  for (const name of Object.keys(given)) {
    if (!(name in definition.params)) {
      throw new JobSpecError(`job '${definition.name}' has no parameter '${name}'; it takes ${Object.keys(definition.params).join(', ')}`);
    }
  }
  for (const [name, spec] of Object.entries(definition.params)) {
    const value = given[name] ?? spec.default;
    const where = `parameter '${name}' of job '${definition.name}'`;
    if (typeof value !== spec.type) throw new JobSpecError(`${where} must be a ${spec.type}, got ${JSON.stringify(value)}`);
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new JobSpecError(`${where} must be a finite number`);
      if (spec.integer && !Number.isInteger(value)) throw new JobSpecError(`${where} must be a whole number, got ${value}`);
      if (spec.min !== undefined && value < spec.min) throw new JobSpecError(`${where} must be at least ${spec.min}, got ${value}`);
      if (spec.max !== undefined && value > spec.max) throw new JobSpecError(`${where} must be at most ${spec.max}, got ${value}`);
    }
    out[name] = value as number | string | boolean;
  }
  return out;
}
