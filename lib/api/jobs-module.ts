/**
 * Where the entry points (task unit, supervisor, checkpoint coordinator, API, local runtime, CLI)
 * get their jobs: a *jobs module*, loaded on first use, never at import time, so an entry point
 * that needs no job (the CLI's --help, listing jobs) works whatever state the jobs are in.
 *
 * Which module:
 * 1. `SLUICE_JOBS_MODULE`, a file path (relative to the working directory): set by the CLI's
 *    `--jobs`, inherited by the local task unit processes;
 * 2. in a Lambda bundle the Sluice construct built with `jobs`: that module, bundled in
 *    (esbuild aliases `sluice-bundled-jobs` to it and defines SLUICE_BUNDLED_JOBS);
 * 3. otherwise this repository's examples (examples/jobs).
 *
 * A jobs module exports a JobRegistry (as default, `jobRegistry` or `registry`) or job definitions
 * (a default array, or named exports). A module that fails to import gives an empty registry that
 * says why on every lookup, instead of taking the entry point down.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { JobRegistry, type JobDefinition } from './registry';

declare const SLUICE_BUNDLED_JOBS: boolean | undefined;

export const JOBS_MODULE_ENV = 'SLUICE_JOBS_MODULE';

const loaded = new Map<string, Promise<JobRegistry>>();

/** The jobs of this process (cached: one load per module). */
export function loadJobRegistry(env: Record<string, string | undefined> = process.env): Promise<JobRegistry> {
  const file = env[JOBS_MODULE_ENV]?.trim();
  const where = file ? `the jobs module ${file}` : typeof SLUICE_BUNDLED_JOBS !== 'undefined' ? 'the bundled jobs module' : 'the example jobs (examples/jobs)';
  let registry = loaded.get(where);
  if (!registry) {
    const load: () => Promise<unknown> = file
      ? () => import(pathToFileURL(resolve(file)).href)
      : // A literal specifier in each branch, so a bundler bundles the one it keeps.
        typeof SLUICE_BUNDLED_JOBS !== 'undefined'
        ? () => import('sluice-bundled-jobs')
        : () => import('../../examples/jobs/index');
    registry = load().then(
      (module) => registryFromModule(module, where),
      (err: unknown) => new JobRegistry().unavailable(`${where} failed to load: ${err instanceof Error ? err.message : String(err)}`),
    );
    loaded.set(where, registry);
  }
  return registry;
}

const isRegistry = (x: unknown): x is JobRegistry =>
  x instanceof JobRegistry || (!!x && typeof x === 'object' && ['get', 'list', 'build'].every((m) => typeof (x as Record<string, unknown>)[m] === 'function'));

const looksLikeJob = (x: unknown): x is JobDefinition =>
  !!x && typeof x === 'object' && typeof (x as Partial<JobDefinition>).name === 'string' && typeof (x as Partial<JobDefinition>).build === 'function';

/** The registry a jobs module exports, or one of the job definitions it exports. */
export function registryFromModule(module: unknown, where: string): JobRegistry {
  const m = (module ?? {}) as Record<string, unknown>;
  for (const key of ['default', 'jobRegistry', 'registry']) if (isRegistry(m[key])) return m[key];
  const definitions = Array.isArray(m.default) ? (m.default as JobDefinition[]) : Object.values(m).filter(looksLikeJob);
  if (definitions.length > 0) return new JobRegistry(definitions);
  return new JobRegistry().unavailable(
    `${where} exports no jobs: export a JobRegistry (as default or 'jobRegistry'), or your JobDefinition objects (a default array, or named exports)`,
  );
}
