/**
 * One direction between the planes: what runs inside a unit (lib/runtime) never imports the
 * control plane (lib/jobs, lib/recovery). They meet in ports (lib/ports) and protocol types; the
 * unit's composition root (lib/host) wires them together.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');
const RUNTIME = join(ROOT, 'lib', 'runtime');

function imports(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  return [...source.matchAll(/\bfrom\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? m[2]!);
}

describe('planes', () => {
  it('lib/runtime imports neither lib/jobs nor lib/recovery', () => {
    const files = readdirSync(RUNTIME).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    const crossings = files.flatMap((f) => imports(join(RUNTIME, f)).filter((i) => /^\.\.\/(jobs|recovery)\//.test(i)).map((i) => `${f} -> ${i}`));
    expect(crossings).toEqual([]);
  });

  it('has no import cycle in lib/, functions/, infra/ or bin/ (type-only imports included)', () => {
    const files = ['lib', 'functions', 'infra', 'bin'].flatMap((d) => tsFiles(join(ROOT, d)));
    expect(files.length).toBeGreaterThan(50);
    const graph = new Map(files.map((f) => [f, imports(f).filter((i) => i.startsWith('.')).map((i) => resolveTs(f, i)).filter((t): t is string => t !== undefined)]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const t of graph.get(f) ?? []) {
        if (state.get(t) === 'open') cycles.push([...stack.slice(stack.indexOf(t)), t].map((x) => relative(ROOT, x)).join(' -> '));
        else if (!state.has(t)) visit(t);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The file a relative import names (`./x` -> x.ts or x/index.ts), or undefined outside the sources. */
function resolveTs(from: string, spec: string): string | undefined {
  const base = resolve(dirname(from), spec.replace(/\.js$/, ''));
  for (const candidate of [`${base}.ts`, join(base, 'index.ts'), base]) if (existsSync(candidate) && candidate.endsWith('.ts')) return candidate;
  return undefined;
}
