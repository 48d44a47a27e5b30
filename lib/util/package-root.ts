/**
 * Where Sluice's own files are, whether it runs from its TypeScript sources (a checkout, under
 * tsx or vitest) or from the built package (dist/, possibly bundled into chunks, installed under
 * node_modules): the nearest directory above this module whose package.json is Sluice's.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);

function findPackageRoot(from: string): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'sluice') return dir;
    if (dirname(dir) === dir) throw new Error(`cannot find Sluice's package.json above ${from}`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(here);

/** Running the TypeScript sources (this module is a .ts file), not the built dist/. */
export const FROM_SOURCE = here.endsWith('.ts');

/**
 * Where local state goes (.sluice/logs, the embedded emulator): the checkout when running from
 * the sources, the working directory (the user's project) when running the installed package.
 */
export const WORK_ROOT = FROM_SOURCE ? PACKAGE_ROOT : process.cwd();

/**
 * The runnable file of an entry point (`functions/task-unit`), and the node arguments that run it:
 * the .ts source through tsx in a checkout, the built .js in the package.
 */
export function entryPoint(path: string): { file: string; nodeArgs: string[] } {
  if (FROM_SOURCE) return { file: join(PACKAGE_ROOT, `${path}.ts`), nodeArgs: ['--import', 'tsx'] };
  return { file: join(PACKAGE_ROOT, 'dist', `${path}.js`), nodeArgs: [] };
}
