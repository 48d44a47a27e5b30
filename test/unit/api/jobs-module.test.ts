/**
 * Jobs are loaded lazily and checked one by one: a broken job is reported by name when it is
 * used, and neither the other jobs nor an entry point that needs no job go down with it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { demoJob } from '../../../examples/jobs/demo';
import { ingestJob } from '../../../examples/jobs/ingest';
import { JOBS_MODULE_ENV, loadJobRegistry, registryFromModule } from '../../../lib/api/jobs-module';
import { JobRegistry, type JobDefinition } from '../../../lib/api/registry';
import { JobSpecError } from '../../../lib/graph/job-graph';

const dir = mkdtempSync(join(tmpdir(), 'sluice-jobs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function module(name: string, source: string): string {
  const file = join(dir, name);
  writeFileSync(file, source);
  return file;
}

describe('JobRegistry', () => {
  const noParallelism = { ...ingestJob, name: 'no-parallelism', params: { records: ingestJob.params.records! } } as JobDefinition;

  it('reports a broken definition by name when it is used, and serves the others', () => {
    const registry = new JobRegistry([demoJob, noParallelism, ingestJob, { ...ingestJob, description: 'a second ingest' }, undefined as unknown as JobDefinition]);
    expect(registry.get('demo')).toBe(demoJob);
    expect(registry.build('demo', { records: 100 }).params.records).toBe(100);
    expect(() => registry.get('no-parallelism')).toThrow(JobSpecError);
    expect(() => registry.get('no-parallelism')).toThrow("job 'no-parallelism' cannot be used: it must declare a 'parallelism' parameter");
    // The same name twice: neither is served (units could build another job than the one submitted).
    expect(() => registry.get('ingest')).toThrow("job 'ingest' cannot be used: it is registered twice");
    expect(registry.list().map((d) => d.name)).toEqual(['demo']);
    expect(registry.problems()).toEqual([
      { job: 'no-parallelism', error: "it must declare a 'parallelism' parameter" },
      { job: 'ingest', error: 'it is registered twice (two definitions with this name)' },
      { job: '#5', error: 'registered job #5 has no name (got undefined)' },
    ]);
    expect(() => registry.get('nope')).toThrow("unknown job 'nope'; registered jobs: demo");
  });

  it('says which job failed to build its graph', () => {
    const failing: JobDefinition = { ...demoJob, name: 'failing', build: () => (undefined as unknown as { x: number }).x as never };
    expect(() => new JobRegistry([failing]).build('failing')).toThrow(/^job 'failing' failed to build its graph: Cannot read properties of undefined/);
  });
});

describe('loadJobRegistry', () => {
  it('loads the examples by default', async () => {
    const registry = await loadJobRegistry({});
    expect(registry.list().map((d) => d.name).sort()).toEqual(['demo', 'ingest', 'kafka-ingest', 'kafka-recommendations', 'kinesis-ingest', 'recommendation-join']);
    expect(await loadJobRegistry({})).toBe(registry);
  });

  it('loads the module SLUICE_JOBS_MODULE names: a registry or job definitions', async () => {
    const job = "{ name: '%s', description: 'd', params: { parallelism: { type: 'number', default: 1, description: 'p' } }, build() { throw new Error('not built here'); } }";
    const named = module('named.mjs', `export const a = ${job.replace('%s', 'a')};\nexport const b = ${job.replace('%s', 'b')};\nexport const other = 42;\n`);
    expect((await loadJobRegistry({ [JOBS_MODULE_ENV]: named })).list().map((d) => d.name)).toEqual(['a', 'b']);
    const array = module('array.mjs', `export default [${job.replace('%s', 'c')}];\n`);
    expect((await loadJobRegistry({ [JOBS_MODULE_ENV]: array })).get('c').name).toBe('c');
    // A registry object, whichever copy of the class made it.
    expect(registryFromModule({ jobRegistry: new JobRegistry([demoJob]) }, 'x').get('demo')).toBe(demoJob);
    const none = registryFromModule({ answer: 42 }, 'the jobs module ./x.ts');
    expect(() => none.get('demo')).toThrow(/unknown job 'demo'; registered jobs: none; the jobs module \.\/x\.ts exports no jobs: export a JobRegistry/);
  });

  it('turns a module that fails to import into a registry that says why, instead of failing the entry point', async () => {
    const broken = module('broken.mjs', "throw new Error('boom at import');\n");
    const registry = await loadJobRegistry({ [JOBS_MODULE_ENV]: broken });
    expect(registry.list()).toEqual([]);
    expect(() => registry.get('clicks')).toThrow(`unknown job 'clicks'; registered jobs: none; the jobs module ${broken} failed to load: boom at import`);
    expect(registry.problems()).toEqual([{ job: '*', error: `the jobs module ${broken} failed to load: boom at import` }]);
  });

  it('lets `npm run demo -- --help` answer with a broken jobs module', () => {
    const broken = module('broken-demo.mjs', "throw new Error('boom at import');\n");
    const node = join(__dirname, '..', '..', '..', 'node_modules', '.bin', 'node');
    const run = spawnSync(node, ['--import', 'tsx', 'bin/demo.ts', '--help'], { cwd: join(__dirname, '..', '..', '..'), env: { ...process.env, [JOBS_MODULE_ENV]: broken }, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^usage: npm run demo/);
    expect(run.status).toBe(0);
  });
});
