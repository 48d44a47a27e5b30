/**
 * `npm run build` (and `npm pack`, through prepack): Sluice as an installable package in dist/.
 *
 * - esbuild bundles the entry points (the job API `sluice`, the construct `sluice/cdk`, the CLI,
 *   the Lambda handlers) with code splitting, so they share one copy of each module (one
 *   JobRegistry class, one JobBuilder) when a process loads several; dependencies stay imports.
 *   The handlers are bundled again by the construct at synth time, with the user's jobs module in
 *   place of `sluice-bundled-jobs` (lib/api/jobs-module.ts).
 * - tsc writes the type declarations, whose relative imports are then given the explicit `.js`
 *   file names Node's ESM resolution (TypeScript's `nodenext`) needs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(import.meta.dirname, '..');
const dist = join(root, 'dist');

export const ENTRY_POINTS = [
  'lib/index.ts',
  'infra/cdk.ts',
  'bin/sluice.ts',
  'functions/task-unit.ts',
  'functions/supervisor.ts',
  'functions/checkpoint-coordinator.ts',
  'functions/api/index.ts',
  'functions/ui.ts',
  'bin/build-ui.ts',
];

rmSync(dist, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ENTRY_POINTS,
  outdir: 'dist',
  outbase: '.',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  packages: 'external',
  external: ['sluice-bundled-jobs'],
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: true,
  logLevel: 'warning',
});

execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

/** `./x` → `./x.js` or `./x/index.js`, whichever declaration file exists. */
function withExtension(file: string, spec: string): string {
  if (!spec.startsWith('.') || /\.(js|json)$/.test(spec)) return spec;
  const base = resolve(dirname(file), spec);
  if (existsSync(`${base}.d.ts`)) return `${spec}.js`;
  if (existsSync(join(base, 'index.d.ts'))) return `${spec}/index.js`;
  throw new Error(`${relative(root, file)}: cannot resolve '${spec}' to a declaration file`);
}

function declarations(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? declarations(path) : name.endsWith('.d.ts') ? [path] : [];
  });
}

let files = 0;
for (const file of declarations(dist)) {
  const source = readFileSync(file, 'utf8');
  const fixed = source.replace(/(\bfrom\s+|\bimport\(\s*)(['"])(\.[^'"]*)\2/g, (_m, lead: string, quote: string, spec: string) => `${lead}${quote}${withExtension(file, spec)}${quote}`);
  if (fixed !== source) writeFileSync(file, fixed);
  files++;
}
console.log(`dist/: ${ENTRY_POINTS.length} entry points bundled, ${files} declaration files`);
