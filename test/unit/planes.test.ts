/**
 * One direction between the planes: what runs inside a unit (lib/runtime) never imports the
 * control plane (lib/jobs, lib/recovery). They meet in ports (lib/ports) and protocol types; the
 * unit's composition root (lib/host) wires them together.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const RUNTIME = join(__dirname, '..', '..', 'lib', 'runtime');

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
});
