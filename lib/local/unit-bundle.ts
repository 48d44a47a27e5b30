/**
 * The task unit as one JavaScript file, bundled ahead of time with esbuild (its dependencies
 * included), so a local unit process starts in about a tenth of a second, as a Lambda bundle does,
 * instead of compiling TypeScript through tsx for over a second per process.
 *
 * From a checkout the bundle is built on demand into .sluice/build/ and reused while its inputs
 * are unchanged. Staleness: the manifest lists every input file esbuild read (sources and
 * node_modules files alike) with its size, mtime and content hash; a check stats each (a few
 * milliseconds), and hashes the content of a file whose stat differs (a checkout that touched it
 * without changing it does not rebuild). A file edited while the build ran is recorded as changed.
 * Builds take a lock file (test workers start at once) and write content-addressed files renamed
 * into place, so a reader never sees half a file. The installed package runs dist/ as built.
 */
import { createHash } from 'node:crypto';
import { BUNDLE_ALIASES } from '../util/bundle-aliases';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { withFileLock } from '../util/file-lock';
import { entryPoint, FROM_SOURCE, PACKAGE_ROOT } from '../util/package-root';

/** A runnable entry: the file and the node arguments before it. */
export interface RunnableEntry {
  file: string;
  nodeArgs: string[];
}

const FORMAT = 1;
/** Older bundles are removed this long after they were replaced (a process may be starting one). */
const KEEP_OLD_MS = 10 * 60_000;

interface Manifest {
  format: number;
  /** What else decides the output: esbuild's version and the build options. */
  key: string;
  bundle: string;
  /** Input path (relative to the package root), size, mtime, sha1 of the content. */
  inputs: [path: string, size: number, mtimeMs: number, sha1: string][];
}

const sha1 = (data: Uint8Array | string) => createHash('sha1').update(data).digest('hex');

/** Where a package's sources are and where their bundles go. */
export interface BundleRoots {
  /** The package root: entries and the inputs in the manifest are relative to it. */
  root: string;
  /** Where bundles and manifests are written. */
  buildDir: string;
}

const DEFAULT_ROOTS: BundleRoots = { root: PACKAGE_ROOT, buildDir: join(PACKAGE_ROOT, '.sluice', 'build') };

const baseName = (entry: string) => entry.replaceAll('/', '_');

/** The options every bundle is built with (part of the staleness key). */
function buildOptions(entry: string, { root, buildDir }: BundleRoots) {
  return {
    absWorkingDir: root,
    entryPoints: [join(root, `${entry}.ts`)],
    // Not written (write: false): it names the output and its source map.
    outfile: join(buildDir, `${baseName(entry)}.js`),
    bundle: true,
    format: 'esm' as const,
    platform: 'node' as const,
    target: 'node22',
    // The user's jobs module of a construct bundle; never imported outside one (lib/api/jobs-module.ts).
    external: ['sluice-bundled-jobs'],
    alias: BUNDLE_ALIASES,
    mainFields: ['module', 'main'],
    // CommonJS dependencies call require(): give the ESM bundle one.
    banner: { js: "import { createRequire as __sluiceCreateRequire } from 'node:module'; const require = __sluiceCreateRequire(import.meta.url);" },
    sourcemap: 'linked' as const,
    metafile: true,
    write: false,
    logLevel: 'silent' as const,
  };
}

function manifestPath(entry: string, roots: BundleRoots): string {
  return join(roots.buildDir, `${baseName(entry)}.json`);
}

function readManifest(entry: string, roots: BundleRoots): Manifest | undefined {
  try {
    return JSON.parse(readFileSync(manifestPath(entry, roots), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/** The bundle the manifest names, if every input is as it was when it was built. */
function current(entry: string, key: string, roots: BundleRoots): string | undefined {
  const manifest = readManifest(entry, roots);
  if (!manifest || manifest.format !== FORMAT || manifest.key !== key) return undefined;
  const bundle = join(roots.buildDir, manifest.bundle);
  if (!existsSync(bundle)) return undefined;
  for (const [path, size, mtimeMs, hash] of manifest.inputs) {
    const file = join(roots.root, path);
    let stat;
    try {
      stat = statSync(file);
    } catch {
      return undefined;
    }
    if (stat.size === size && stat.mtimeMs === mtimeMs) continue;
    if (stat.size !== size || sha1(readFileSync(file)) !== hash) return undefined;
  }
  return bundle;
}

async function esbuildKey(entry: string, roots: BundleRoots): Promise<string> {
  const { version } = await import('esbuild');
  return sha1(JSON.stringify({ version, options: buildOptions(entry, roots) }));
}

/** Writes `data` to `file` atomically (a temporary file renamed into place). */
function writeAtomic(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

async function build(entry: string, key: string, roots: BundleRoots): Promise<string> {
  const esbuild = await import('esbuild');
  const { root, buildDir } = roots;
  const started = Date.now();
  const result = await esbuild.build(buildOptions(entry, roots));
  const outputs = result.outputFiles ?? [];
  const js = outputs.find((f) => f.path.endsWith('.js'));
  const map = outputs.find((f) => f.path.endsWith('.js.map'));
  if (!js) throw new Error(`esbuild produced no JavaScript for ${entry}`);
  const name = `${baseName(entry)}-${sha1(js.contents).slice(0, 16)}.mjs`;
  mkdirSync(buildDir, { recursive: true });
  // The bundle names its map by the output name esbuild chose; point it at the content-addressed one.
  const source = js.text.replace(/\/\/# sourceMappingURL=\S+\s*$/, `//# sourceMappingURL=${name}.map\n`);
  if (map) writeAtomic(join(buildDir, `${name}.map`), map.contents);
  writeAtomic(join(buildDir, name), source);
  const inputs: Manifest['inputs'] = Object.keys(result.metafile!.inputs).map((path) => {
    const file = join(root, path);
    const stat = statSync(file);
    // Changed since the build began: esbuild may have read it before or after; rebuild next time.
    const hash = stat.mtimeMs >= started - 1 ? 'changed-during-build' : sha1(readFileSync(file));
    return [relative(root, file), stat.size, stat.mtimeMs, hash];
  });
  writeAtomic(manifestPath(entry, roots), JSON.stringify({ format: FORMAT, key, bundle: name, inputs } satisfies Manifest));
  pruneOld(entry, name, buildDir);
  builds++;
  return join(buildDir, name);
}

function pruneOld(entry: string, keep: string, buildDir: string): void {
  const prefix = `${baseName(entry)}-`;
  for (const name of readdirSync(buildDir)) {
    if (!name.startsWith(prefix) || name.startsWith(keep)) continue;
    const file = join(buildDir, name);
    try {
      if (Date.now() - statSync(file).mtimeMs > KEEP_OLD_MS) rmSync(file, { force: true });
    } catch {
      // removed by another process meanwhile
    }
  }
}

/** Bundles this process has built (the others it used were current). */
let builds = 0;
export const bundlesBuilt = () => builds;

/** The bundled file of `entry` (e.g. `functions/task-unit`), built or rebuilt if needed. */
export async function ensureBundle(entry: string, roots: BundleRoots = DEFAULT_ROOTS): Promise<string> {
  const key = await esbuildKey(entry, roots);
  const ready = current(entry, key, roots);
  if (ready) return ready;
  return withFileLock(join(roots.buildDir, `${baseName(entry)}.lock`), () => current(entry, key, roots) ?? build(entry, key, roots), 5 * 60_000);
}

const cache = new Map<string, Promise<RunnableEntry>>();

/**
 * How to run an entry point as a process from JavaScript: the bundle (from a checkout, checked
 * once per process), or dist/ (the installed package). Source maps stay on for readable stacks.
 */
export function runnableEntry(entry: string): Promise<RunnableEntry> {
  let found = cache.get(entry);
  if (!found) {
    found = FROM_SOURCE
      ? ensureBundle(entry).then((file) => ({ file, nodeArgs: ['--enable-source-maps'] }))
      : Promise.resolve(entryPoint(entry));
    found.catch(() => cache.delete(entry));
    cache.set(entry, found);
  }
  return found;
}
