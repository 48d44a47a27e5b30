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

/** The parameter specs of a job, by name. */
export type ParamSpecs = { [name: string]: ParamSpec };

/** The values `build` gets for these specs: each parameter typed by its spec (no casts in job code). */
export type ParamValues<P extends ParamSpecs> = { [N in keyof P]: ParamValue<P[N]['type']> };
/** Distributes over a union of types, so untyped specs give `number | string | boolean`. */
type ParamValue<T extends ParamSpec['type']> = T extends 'number' ? number : T extends 'string' ? string : boolean;

export interface JobDefinition<P extends ParamSpecs = ParamSpecs> {
  name: string;
  description: string;
  /** Every parameter the job takes; `parallelism` is always among them. */
  params: P;
  build(params: ParamValues<P>): JobGraph;
}

/**
 * A job definition whose `build` sees its parameters typed by their specs:
 *
 *   defineJob({ name: 'clicks', description: '...', params: { parallelism: { type: 'number', default: 2, ... } },
 *     build(params) { params.parallelism ... } })   // a number, no cast
 */
export function defineJob<const P extends ParamSpecs & { parallelism: ParamSpec & { type: 'number' } }>(definition: JobDefinition<P>): JobDefinition {
  // The registry resolves and checks every parameter against its spec before `build` sees it.
  return definition as unknown as JobDefinition;
}

/** Parameters checked against these specs (defaults filled in), typed by them: for code outside `build` (output checks). */
export function typedParams<const P extends ParamSpecs>(job: string, specs: P, given: { [k: string]: Json }): ParamValues<P> {
  return resolveParams({ name: job, description: '', params: specs, build: () => ({ name: job, operators: [], edges: [] }) }, given) as ParamValues<P>;
}

/** A job that cannot be used, and why. */
export interface JobProblem {
  job: string;
  error: string;
}

/**
 * The jobs of an installation, by name. Definitions are checked when a job is first looked up,
 * not when they are registered: a broken definition (no name, no `parallelism`, a name used twice)
 * is reported by name when it is used, and every other job, and every entry point that needs no
 * job at all, keeps working.
 */
export class JobRegistry {
  private readonly definitions: unknown[] = [];
  private readonly unavailableBecause: string[] = [];
  private checked: { jobs: Map<string, JobDefinition>; problems: Map<string, string> } | undefined;

  constructor(definitions: JobDefinition[] = []) {
    this.definitions.push(...definitions);
  }

  register(definition: JobDefinition): void {
    this.definitions.push(definition);
    this.checked = undefined;
  }

  /** Says why some jobs could not be loaded at all (a jobs module that failed to import); lookups of unknown jobs say it too. */
  unavailable(reason: string): this {
    this.unavailableBecause.push(reason);
    return this;
  }

  get(name: string): JobDefinition {
    const { jobs, problems } = this.check();
    const problem = problems.get(name);
    if (problem !== undefined) throw new JobSpecError(`job '${name}' cannot be used: ${problem}`);
    const d = jobs.get(name);
    if (!d) {
      const known = [...jobs.keys()].join(', ') || 'none';
      throw new JobSpecError(`unknown job '${name}'; registered jobs: ${known}${this.unavailableBecause.map((r) => `; ${r}`).join('')}`);
    }
    return d;
  }

  /** The jobs that can be used. */
  list(): JobDefinition[] {
    return [...this.check().jobs.values()];
  }

  /** The jobs that cannot, and why (a module that failed to load appears as job '*'). */
  problems(): JobProblem[] {
    return [...this.check().problems].map(([job, error]) => ({ job, error })).concat(this.unavailableBecause.map((error) => ({ job: '*', error })));
  }

  /** Builds the graph of a registered job with checked parameters. */
  build(name: string, params: { [k: string]: Json } = {}): { graph: JobGraph; params: JobParams } {
    const definition = this.get(name);
    const resolved = resolveParams(definition, params);
    try {
      return { graph: definition.build(resolved as ParamValues<ParamSpecs>), params: resolved };
    } catch (err) {
      if (err instanceof JobSpecError) throw err;
      throw new JobSpecError(`job '${name}' failed to build its graph: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private check(): { jobs: Map<string, JobDefinition>; problems: Map<string, string> } {
    if (this.checked) return this.checked;
    const jobs = new Map<string, JobDefinition>();
    const problems = new Map<string, string>();
    this.definitions.forEach((candidate, index) => {
      const d = candidate as Partial<JobDefinition> | undefined;
      if (!d || typeof d !== 'object' || typeof d.name !== 'string' || d.name === '') {
        problems.set(`#${index + 1}`, `registered job #${index + 1} has no name (got ${d === undefined ? 'undefined' : typeof d === 'object' ? 'an object without a name' : typeof d})`);
        return;
      }
      const name = d.name;
      const problem =
        jobs.has(name) || problems.has(name)
          ? 'it is registered twice (two definitions with this name)'
          : typeof d.build !== 'function'
            ? 'it has no build(params) function'
            : !d.params || typeof d.params !== 'object' || !d.params.parallelism
              ? "it must declare a 'parallelism' parameter"
              : undefined;
      if (problem === undefined) {
        jobs.set(name, d as JobDefinition);
        return;
      }
      jobs.delete(name);
      problems.set(name, problem);
    });
    this.checked = { jobs, problems };
    return this.checked;
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
