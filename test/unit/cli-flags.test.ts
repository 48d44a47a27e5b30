/** The flag parsing the benchmarks and the demo share (lib/cli/flags.ts). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlagError, commandWith, defineFlags, parseFlags } from '../../lib/cli/flags';

const SPEC = defineFlags({
  parallelism: { type: 'number', default: 4000, integer: true, min: 2, help: 'p' },
  headroom: { type: 'number', default: 1.5, check: (v) => (v > 1 ? undefined : 'must be more than 1'), help: 'h' },
  detect: { type: 'string', default: 'exit', choices: ['exit', 'heartbeat'], help: 'd' },
  handles: { type: 'list', default: ['global', 'regional'], choices: ['global', 'regional'], help: 'hs' },
  sizes: { type: 'numbers', default: [1000], integer: true, min: 1, help: 's' },
  judge: { type: 'string', help: 'j' },
  worker: { type: 'boolean', help: 'w' },
});

describe('command flags', () => {
  it('gives the defaults, in the order declared, when nothing is passed', () => {
    const { values, help } = parseFlags(SPEC, []);
    expect(help).toBe(false);
    expect(values).toEqual({ parallelism: 4000, headroom: 1.5, detect: 'exit', handles: ['global', 'regional'], sizes: [1000], judge: undefined, worker: false });
    expect(Object.keys(values)).toEqual(Object.keys(SPEC));
  });

  it('reads kebab-case flags with the value after a space or an equals sign, the last one winning', () => {
    const { values } = parseFlags(SPEC, ['--parallelism', '40', '--headroom=2', '--detect', 'heartbeat', '--handles', 'regional', '--sizes', '10,20', '--judge', 'x.json', '--worker', '--handles=global']);
    expect(values).toEqual({ parallelism: 40, headroom: 2, detect: 'heartbeat', handles: ['global'], sizes: [10, 20], judge: 'x.json', worker: true });
  });

  it('takes a negative number with an equals sign', () => {
    const spec = defineFlags({ failIndex: { type: 'number', default: -1, help: 'f' } });
    expect(parseFlags(spec, ['--fail-index=-3']).values.failIndex).toBe(-3);
  });

  it('leaves an optional number undefined when not given, and checks it when it is', () => {
    const spec = defineFlags({ killAfter: { type: 'number', optional: true, min: 0, help: 'k' } });
    expect(parseFlags(spec, []).values.killAfter).toBeUndefined();
    expect(parseFlags(spec, ['--kill-after', '8']).values.killAfter).toBe(8);
    expect(() => parseFlags(spec, ['--kill-after', 'x'])).toThrow("--kill-after needs a number >= 0, got 'x'");
  });

  it('says --help was asked for', () => {
    expect(parseFlags(SPEC, ['-h']).help).toBe(true);
    expect(parseFlags(SPEC, ['--help']).help).toBe(true);
  });

  it.each([
    [['--parallelism', '1.5'], "--parallelism needs a whole number >= 2, got '1.5'"],
    [['--parallelism', '1'], "--parallelism needs a whole number >= 2, got '1'"],
    [['--parallelism', 'many'], "--parallelism needs a whole number >= 2, got 'many'"],
    [['--headroom', '1'], '--headroom must be more than 1, got 1'],
    [['--detect', 'ping'], "--detect: 'ping' is not one of exit, heartbeat"],
    [['--handles', 'global,local'], "--handles: 'local' is not one of global, regional"],
    [['--handles', ','], '--handles names nothing'],
    [['--sizes', '10,x'], "--sizes needs a whole number >= 1, got 'x'"],
    [['--bogus', '1'], "Unknown option '--bogus'"],
    [['--parallelism'], "Option '--parallelism <value>' argument missing"],
  ])('rejects %j, naming what is wrong', (argv, message) => {
    expect(() => parseFlags(SPEC, argv)).toThrow(FlagError);
    expect(() => parseFlags(SPEC, argv)).toThrow(message);
  });

  it('writes a rerun command with the flags named, lists joined by commas', () => {
    const { values } = parseFlags(SPEC, ['--sizes', '10,20']);
    expect(commandWith('npx tsx bench/x.ts', values, ['parallelism', 'sizes', 'handles'])).toBe('npx tsx bench/x.ts --parallelism 4000 --sizes 10,20 --handles global,regional');
  });
});

describe('npm run demo', () => {
  const root = join(__dirname, '..', '..');
  const demo = (...args: string[]) => spawnSync(join(root, 'node_modules', '.bin', 'node'), ['--import', 'tsx', 'bin/demo.ts', ...args], { cwd: root, encoding: 'utf8' });

  it.each([
    [['--kill-after', 'x'], "demo: --kill-after needs a number >= 0, got 'x' (try --help)"],
    [['--spares=-1'], "demo: --spares needs a whole number >= 0, got '-1' (try --help)"],
    [['--failover', 'fast'], "demo: --failover: 'fast' is not one of full, region, single, single-buffered, single-exact (try --help)"],
    [['--records', '1e3x'], "demo: --records needs a whole number >= 1, got '1e3x' (try --help)"],
    [['--bogus'], "demo: Unknown option '--bogus' (try --help)"],
  ])('refuses %j with what is wrong, before starting the emulator', (args, message) => {
    const run = demo(...args);
    expect(run.stderr.trim()).toBe(message);
    expect(run.stdout).toBe('');
    expect(run.status).toBe(2);
  });
});
