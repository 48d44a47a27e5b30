/**
 * Sluice as a user gets it: `npm pack`, then a scratch project in a temp directory that installs
 * the tarball (dependencies from npm's cache, which `npm ci` of this repository filled; the
 * registry only for what is missing), writes the README's "Writing a job" example exactly as the
 * README shows it, where the README says, and
 * - type-checks it (`module: nodenext`, against the package's declarations: a type error the
 *   example's API must reject is rejected, so the types are real, not `any`);
 * - synthesizes a stack with the construct (`sluice/cdk`) and that jobs module, and finds the job
 *   bundled into the task unit function;
 * - runs the job with the package's bin (`sluice run`) against the emulator, at 100 records.
 *
 * Slow (packing, installing aws-cdk-lib, bundling 13 functions): its own script,
 * `npm run test:package`, not part of `npm test`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
/** The Node 22 this repository runs on (the `node` devDependency); the system's may be older. */
const NODE = realpathSync(join(ROOT, 'node_modules', '.bin', 'node'));
const env = { ...process.env, PATH: `${dirname(NODE)}${delimiter}${process.env.PATH}`, npm_config_update_notifier: 'false' };

const work = mkdtempSync(join(tmpdir(), 'sluice-package-'));
const project = join(work, 'project');
afterAll(() => rmSync(work, { recursive: true, force: true }));

const version = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/** The README's job example: the first ts block of "Writing a job", and the file its first line names. */
function readmeExample(): { path: string; source: string } {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Writing a job'));
  const block = /```ts\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error('README: no ts block under "## Writing a job"');
  const path = /^\/\/ (\S+\.ts)\n/.exec(block[1]!)?.[1];
  if (!path) throw new Error('README: the job example does not start with a `// <file>.ts` line');
  return { path, source: block[1]! };
}

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}

const example = readmeExample();

beforeAll(() => {
  // npm pack runs prepack (npm run build): dist/ with bundles and declarations.
  run('npm', ['pack', '--pack-destination', work, '--silent'], ROOT);
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack left no tarball in ${work}`);
  mkdirSync(join(project, 'src'), { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }, null, 2));
  const peers = ['aws-cdk-lib', 'constructs', 'esbuild', 'typescript', '@types/node'].map((p) => `${p}@${version(p)}`);
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(work, tarball), ...peers], project);
  writeFileSync(join(project, example.path), example.source);
}, 600_000);

describe('the packed package in a scratch project', () => {
  it('ships the job API, the construct, the bin and declarations, and nothing of the repository besides', () => {
    const pkg = join(project, 'node_modules', 'sluice');
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
    expect(manifest.exports['.']).toEqual({ types: './dist/lib/index.d.ts', default: './dist/lib/index.js' });
    expect(manifest.exports['./cdk']).toEqual({ types: './dist/infra/cdk.d.ts', default: './dist/infra/cdk.js' });
    // ui: the web UI's sources, which the construct builds for its serveUi function.
    expect(readdirSync(pkg).sort()).toEqual(['README.md', 'dist', 'package.json', 'ui']);
    expect(readFileSync(join(project, 'node_modules', '.bin', 'sluice'), 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
  });

  it("type-checks the README's job where the README puts it, against the package's declarations", () => {
    expect(example.path).toBe('src/jobs.ts');
    // Proof that the declarations resolve (with `any` types, these would not be errors).
    writeFileSync(
      join(project, 'src', 'types-are-real.ts'),
      [
        "import { GeneratorSource, JobRegistry } from 'sluice';",
        "import { Sluice } from 'sluice/cdk';",
        '// @ts-expect-error partitions is a number',
        "new GeneratorSource({ partitions: 'eight', generate: () => 1 });",
        '// @ts-expect-error register takes a job definition',
        'new JobRegistry().register(42);',
        '// @ts-expect-error jobs is a path',
        'export const props: ConstructorParameters<typeof Sluice>[2] = { jobs: 7 };',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2023', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, include: ['src'] }),
    );
    const out = (() => {
      try {
        return run(NODE, [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], project);
      } catch (err) {
        return String((err as { stdout?: string }).stdout ?? err);
      }
    })();
    expect(out).toBe('');
  }, 120_000);

  it('synthesizes a stack with the construct and that jobs module, bundled into the functions', () => {
    writeFileSync(
      join(project, 'src', 'app.ts'),
      [
        "import { App, Stack } from 'aws-cdk-lib';",
        "import { Sluice } from 'sluice/cdk';",
        '',
        "const app = new App({ outdir: 'cdk.out' });",
        "const stack = new Stack(app, 'Streaming');",
        "new Sluice(stack, 'Sluice', { jobs: 'src/jobs.ts', queuePrefix: 'clicks' });",
        'app.synth();',
        '',
      ].join('\n'),
    );
    run(NODE, ['src/app.ts'], project);
    const out = join(project, 'cdk.out');
    const template = JSON.parse(readFileSync(join(out, 'Streaming.template.json'), 'utf8'));
    const functions = Object.values<{ Type: string; Properties: { Handler: string; Environment: { Variables: Record<string, string> } } }>(template.Resources).filter(
      (r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Handler?.startsWith('index.'),
    );
    // 13 and the web UI's (serveUi).
    expect(functions.length).toBe(14);
    // Each function's bundle holds the user's job, and not the repository's examples.
    const assets = JSON.parse(readFileSync(join(out, 'Streaming.assets.json'), 'utf8')) as { files: Record<string, { source: { path: string } }> };
    const bundles = Object.values(assets.files)
      .map((f) => f.source.path)
      .filter((p) => p.startsWith('asset.'))
      .map((p) => readFileSync(join(out, p, 'index.mjs'), 'utf8'));
    expect(bundles.length).toBeGreaterThanOrEqual(4);
    // Every function that runs jobs (all but the web UI's) holds the user's job.
    expect(bundles.filter((code) => code.includes('clicks per user and event-time hour')).length).toBeGreaterThanOrEqual(4);
    for (const code of bundles) expect(code).not.toContain('recommendation-join');
  }, 300_000);

  it("runs the job with the package's bin against the emulator: exactly the records asked for", async () => {
    const endpoint = process.env.AWS_ENDPOINT_URL;
    expect(endpoint, 'the test setup provides an emulator').toBeTruthy();
    const bin = join(project, 'node_modules', '.bin', 'sluice');
    const prefix = `pkg${process.pid}`;
    const child = spawn(NODE, [bin, 'run', 'clicks', '--jobs', example.path, '--param', 'records=100', '--checkpoint-every', '1'], {
      cwd: project,
      env: { ...env, AWS_ENDPOINT_URL: endpoint, SLUICE_QUEUE_PREFIX: prefix },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(output).toMatch(/job \S+ FINISHED/);
    // records=100 over 8 partitions is 100 records, not 104; all in the first event-time hour, from
    // 50 users: 50 hourly counts out of the window.
    const users = new Set<number>();
    for (let p = 0; p < 8; p++) for (let o = 0; o < Math.floor(100 / 8) + (p < 100 % 8 ? 1 : 0); o++) users.add((p * 7 + o) % 50);
    expect(output).toMatch(new RegExp(`records in 100, out ${users.size};`));
    expect(code, output).toBe(0);
  }, 300_000);
});
