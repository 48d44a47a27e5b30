/**
 * Command-line flags of the benchmarks and the demo, on `node:util` parseArgs: each command
 * declares its flags once (camelCase name, kind, default, help) and gets them back typed and checked. Flags are
 * written in kebab case (`--decline-probability 1e-4` or `--decline-probability=1e-4`); a value
 * that starts with a dash needs the `=` form (`--fail-index=-1`). `--help` / `-h` lists them all.
 */
import { parseArgs } from 'node:util';

interface Described {
  help: string;
}
interface NumberBounds {
  /** Whole numbers only. */
  integer?: boolean;
  /** Smallest value allowed (inclusive). */
  min?: number;
}
export type Flag = Described &
  (
    | ({ type: 'number'; default: number; check?: (value: number) => string | undefined } & NumberBounds)
    /** A number that may be left out (undefined then). */
    | ({ type: 'number'; optional: true; check?: (value: number) => string | undefined } & NumberBounds)
    | ({ type: 'numbers'; default: readonly number[] } & NumberBounds)
    | { type: 'string'; default?: string; choices?: readonly string[] }
    | { type: 'list'; default: readonly string[]; choices?: readonly string[] }
    | { type: 'boolean' }
  );

/** The value a flag parses to. */
export type FlagValue<F> = F extends { type: 'number'; optional: true }
  ? number | undefined
  : F extends { type: 'number' }
    ? number
  : F extends { type: 'numbers' }
    ? number[]
    : F extends { type: 'string'; choices: readonly (infer C)[] }
      ? C
      : F extends { type: 'string'; default: string }
        ? string
        : F extends { type: 'string' }
          ? string | undefined
          : F extends { type: 'list'; choices: readonly (infer C)[] }
            ? C[]
            : F extends { type: 'list' }
              ? string[]
              : boolean;

export type FlagValues<S extends Record<string, Flag>> = { -readonly [K in keyof S]: FlagValue<S[K]> };

/** Declares a command's flags, keeping the literal choices for the value types. */
export const defineFlags = <const S extends Record<string, Flag>>(spec: S): S => spec;

/** A bad command line: the message names the flag and what is wrong. */
export class FlagError extends Error {}

export const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Parses `argv` against `spec`; `help` is true when --help / -h was given (the values are then the defaults). */
export function parseFlags<S extends Record<string, Flag>>(spec: S, argv: readonly string[]): { values: FlagValues<S>; help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, flag] of Object.entries(spec)) options[kebab(name)] = { type: flag.type === 'boolean' ? 'boolean' : 'string' };
  let parsed: Record<string, string | boolean | undefined>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    throw new FlagError(error instanceof Error ? error.message : String(error));
  }
  const values: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(spec)) {
    const raw = parsed[kebab(name)];
    values[name] = raw === undefined ? defaultOf(flag) : convert(`--${kebab(name)}`, flag, raw);
  }
  return { values: values as FlagValues<S>, help: parsed.help === true };
}

/** One line per flag: name, default, help. */
export function describeFlags(spec: Record<string, Flag>): string {
  return Object.entries(spec)
    .map(([name, flag]) => {
      const d = defaultOf(flag);
      const shown = d === undefined ? '' : Array.isArray(d) ? d.join(',') : String(d);
      const choices = 'choices' in flag && flag.choices ? ` (${flag.choices.join(', ')})` : '';
      return `  --${kebab(name).padEnd(32)} ${shown.padEnd(28)} ${flag.help}${choices}`;
    })
    .join('\n');
}

/**
 * The flags of a command, or the end of the process: `--help` prints `usage` and the flags (exit 0),
 * a bad command line prints what is wrong (exit 2).
 */
export function commandFlags<S extends Record<string, Flag>>(command: string, usage: string, spec: S, argv: readonly string[] = process.argv.slice(2)): FlagValues<S> {
  try {
    const { values, help } = parseFlags(spec, argv);
    if (help) {
      console.log(`usage: ${usage}\n\n${describeFlags(spec)}`);
      process.exit(0);
    }
    return values;
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    console.error(`${command}: ${error.message} (try --help)`);
    process.exit(2);
  }
}

/** `base --flag value ...` for the flags named, in their order: a rerun command that does not depend on defaults. */
export function commandWith(base: string, values: Record<string, unknown>, names: readonly string[]): string {
  return [base, ...names.map((n) => `--${kebab(n)} ${Array.isArray(values[n]) ? (values[n] as unknown[]).join(',') : String(values[n])}`)].join(' ');
}

function defaultOf(flag: Flag): unknown {
  if (flag.type === 'boolean') return false;
  if (!('default' in flag)) return undefined;
  return Array.isArray(flag.default) ? [...flag.default] : flag.default;
}

function convert(name: string, flag: Flag, raw: string | boolean): unknown {
  switch (flag.type) {
    case 'boolean':
      return raw;
    case 'number': {
      const n = toNumber(name, flag, String(raw));
      const problem = flag.check?.(n);
      if (problem) throw new FlagError(`${name} ${problem}, got ${n}`);
      return n;
    }
    case 'numbers':
      return items(name, String(raw)).map((s) => toNumber(name, flag, s));
    case 'string':
      return oneOf(name, flag.choices, String(raw));
    case 'list':
      return items(name, String(raw)).map((s) => oneOf(name, flag.choices, s));
  }
}

function toNumber(name: string, bounds: NumberBounds, raw: string): number {
  const n = raw.trim() === '' ? NaN : Number(raw);
  const kind = bounds.integer ? 'a whole number' : 'a number';
  const floor = bounds.min !== undefined ? ` >= ${bounds.min}` : '';
  if (!Number.isFinite(n) || (bounds.integer && !Number.isInteger(n)) || (bounds.min !== undefined && n < bounds.min)) {
    throw new FlagError(`${name} needs ${kind}${floor}, got '${raw}'`);
  }
  return n;
}

function items(name: string, raw: string): string[] {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new FlagError(`${name} names nothing`);
  return list;
}

function oneOf(name: string, choices: readonly string[] | undefined, value: string): string {
  if (choices && !choices.includes(value)) throw new FlagError(`${name}: '${value}' is not one of ${choices.join(', ')}`);
  return value;
}
