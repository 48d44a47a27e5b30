/**
 * The bundled entry points (lib/local/unit-bundle.ts): built once, reused while the inputs are as
 * they were, rebuilt when one changes (not when it is only touched), built once by processes that
 * ask at the same time, and runnable with plain node.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundlesBuilt, ensureBundle, type BundleRoots } from '../../../lib/local/unit-bundle';

function project(): BundleRoots & { write(path: string, text: string): void } {
  const root = mkdtempSync(join(tmpdir(), 'sluice-bundle-'));
  mkdirSync(join(root, 'functions'));
  const write = (path: string, text: string) => writeFileSync(join(root, path), text);
  write('functions/entry.ts', "import { greeting } from './dep';\nconst who: string = 'unit';\nconsole.log(greeting(who));\n");
  write('functions/dep.ts', "export const greeting = (name: string): string => `hello ${name}`;\n");
  return { root, buildDir: join(root, '.sluice', 'build'), write };
}

const run = (file: string) => spawnSync(process.execPath, [file], { encoding: 'utf8' }).stdout.trim();

describe('unit bundle', () => {
  it('is built once, reused while its inputs are unchanged, rebuilt when one changes', async () => {
    const p = project();
    const before = bundlesBuilt();
    const first = await ensureBundle('functions/entry', p);
    expect(bundlesBuilt() - before).toBe(1);
    expect(run(first)).toBe('hello unit');

    expect(await ensureBundle('functions/entry', p)).toBe(first);
    // Touched, same content (a checkout, an editor saving without changes): no rebuild.
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(p.root, 'functions/dep.ts'), later, later);
    expect(await ensureBundle('functions/entry', p)).toBe(first);
    expect(bundlesBuilt() - before).toBe(1);

    p.write('functions/dep.ts', "export const greeting = (name: string): string => `hi ${name}`;\n");
    const second = await ensureBundle('functions/entry', p);
    expect(bundlesBuilt() - before).toBe(2);
    expect(second).not.toBe(first);
    expect(run(second)).toBe('hi unit');
  });

  it('is built by one of several processes that ask at once; the others wait and use it', async () => {
    const p = project();
    const script = join(p.root, 'ask.mts');
    const module = resolve('lib/local/unit-bundle.ts');
    writeFileSync(
      script,
      `import { bundlesBuilt, ensureBundle } from ${JSON.stringify(module)};\n` +
        `const file = await ensureBundle('functions/entry', ${JSON.stringify({ root: p.root, buildDir: p.buildDir })});\n` +
        `console.log(JSON.stringify({ file, built: bundlesBuilt() }));\n`,
    );
    const ask = () =>
      new Promise<{ file: string; built: number }>((done, fail) => {
        const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (chunk) => (out += chunk));
        child.on('exit', (code) => (code === 0 ? done(JSON.parse(out) as { file: string; built: number }) : fail(new Error(`exit ${code}`))));
      });
    const answers = await Promise.all([ask(), ask(), ask()]);
    expect(new Set(answers.map((a) => a.file)).size).toBe(1);
    expect(answers.reduce((n, a) => n + a.built, 0)).toBe(1);
    expect(run(answers[0]!.file)).toBe('hello unit');
  });
});
