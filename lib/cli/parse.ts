/** The CLI's arguments: one command line into the API requests it stands for (or a CliError). */
import { parseArgs } from 'node:util';

export class CliError extends Error {
  override name = 'CliError';
}

/** Each command: its synopsis, one line on what it does, and its own options. */
export const COMMAND_HELP = {
  jobs: { synopsis: 'jobs', summary: 'list jobs', options: [] },
  submit: {
    synopsis: 'submit <job> [--param name=value]... [--params JSON] [options]',
    summary: 'submit a registered job',
    options: [
      ['--param name=value', 'a job parameter, one per --param, name and value in one argument (records=200000)'],
      ['--params JSON', 'parameters as a JSON object ({"records": 200000})'],
      ['--failover STRATEGY', 'full | region | single | single-buffered | single-exact'],
      ['--run-on WHERE', 'lambda | fargate (deployed API)'],
      ['--subtasks-per-unit N', 'most subtasks one task unit hosts (default 1); channels between two units share messages'],
      ['--schedule EXPR', "checkpoint schedule: 'rate(5 minutes)', 'cron(0 * * * ? *)' or off"],
      ['--tz ZONE', 'time zone of a cron schedule (default UTC)'],
      ['--checkpoint-timeout S', 'seconds before a checkpoint times out'],
      ['--handle HANDLE', 'global | regional checkpoint failure handling'],
    ],
  },
  status: {
    synopsis: 'status <jobId> [--watch [--interval S]]',
    summary: 'a job: units, attempts, regions, availability, failures, totals',
    options: [
      ['--watch', 'refresh in place until the job ends (Ctrl-C stops watching, not the job)'],
      ['--interval S', 'seconds between refreshes with --watch (default 2)'],
    ],
  },
  graph: {
    synopsis: 'graph <jobId>',
    summary: 'a job graph: tasks (chained operators, parallelism), edges (kind, sub-partitions), checkpoint regions, sub-partition availability',
    options: [],
  },
  checkpoints: {
    synopsis: 'checkpoints <jobId> [--now]',
    summary: 'checkpoint history',
    options: [['--now', 'trigger a checkpoint first']],
  },
  schedule: {
    synopsis: 'schedule <jobId> <EXPR|off> [--tz ZONE]',
    summary: "change the checkpoint schedule without a restart; EXPR: 'rate(5 minutes)' or 'cron(0 * * * ? *)'",
    options: [['--tz ZONE', 'time zone of a cron schedule (default UTC)']],
  },
  cancel: { synopsis: 'cancel <jobId>', summary: 'cancel a job (stops units, deletes queues, keeps checkpoints)', options: [] },
  run: { synopsis: 'run <job> [--jobs FILE] [--param name=value]... [options]', summary: 'run a job on this machine until it ends (sluice run --help)', options: [] },
  logs: {
    synopsis: 'logs <jobId> [unit|control] [--follow] [--metrics] [--dir DIR]',
    summary: 'the local runtime\'s log files of a job (.sluice/logs/<jobId>/), pretty-printed, all units merged by time',
    options: [
      ['--follow', 'keep printing lines as they are written (Ctrl-C stops)'],
      ['--metrics', 'also print the EMF metric lines'],
      ['--dir DIR', 'the log directory (default: .sluice/logs of this checkout)'],
    ],
  },
} as const satisfies Record<string, { synopsis: string; summary: string; options: readonly (readonly [string, string])[] }>;

export type CommandName = keyof typeof COMMAND_HELP;
const COMMANDS = Object.keys(COMMAND_HELP) as CommandName[];

/** Commands that talk to the job API (the others read local files). */
const LOCAL_COMMANDS: readonly CommandName[] = ['logs'];

const GLOBAL_OPTIONS = `options:
  --api URL    the job API (default $SLUICE_API_URL)
  --sigv4      sign requests with SigV4 (automatic for *.amazonaws.com)
  --json       print the API's JSON instead of tables`;

function indentRows(rows: readonly (readonly [string, string])[], width: number): string {
  return rows.map(([a, b]) => `  ${a.padEnd(width)}  ${b}`).join('\n');
}

export const USAGE = `usage: sluice <command> [options]

commands:
${indentRows(
  COMMANDS.map((c) => [COMMAND_HELP[c].synopsis.split(' ')[0]!, COMMAND_HELP[c].summary]),
  11,
)}

${GLOBAL_OPTIONS}

sluice <command> --help shows a command's arguments and options.`;

/** One command's help: synopsis, what it does, its options, and the global ones that apply. */
export function commandUsage(command: CommandName): string {
  const h = COMMAND_HELP[command];
  const own = h.options.length > 0 ? `\n\noptions:\n${indentRows(h.options, Math.max(...h.options.map(([a]) => a.length)))}` : '';
  const global = LOCAL_COMMANDS.includes(command) ? '' : `\n\n${GLOBAL_OPTIONS.replace('options:', 'global options:')}`;
  return `usage: sluice ${h.synopsis}\n\n${h.summary}${own}${global}`;
}

/**
 * The help a command line asks for (--help, -h, or `help [command]`), or undefined when it asks
 * for none. A command named anywhere on the line gets its own help.
 */
export function helpFor(argv: readonly string[]): string | undefined {
  const asked = argv.includes('--help') || argv.includes('-h') || argv[0] === 'help';
  if (!asked) return undefined;
  const named = argv.find((a): a is CommandName => (COMMANDS as readonly string[]).includes(a));
  return named ? commandUsage(named) : USAGE;
}

export interface ApiRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
}

export interface LogsRequest {
  jobId: string;
  /** One unit's file (or `control`); all of the job's files when absent. */
  unit?: string;
  follow: boolean;
  metrics: boolean;
  /** The log directory (jobs are subdirectories); undefined: the local runtime's default. */
  dir?: string;
}

export interface CliCommand {
  command: CommandName;
  /** The requests to make, in order (checkpoints --now: trigger, then history); none for `logs`. */
  requests: ApiRequest[];
  api: string | undefined;
  sigv4: boolean;
  json: boolean;
  /** status --watch: refresh every `intervalMs` until the job ends. */
  watch?: { intervalMs: number };
  logs?: LogsRequest;
}

/**
 * `--param records 5` (the value as a separate argument) is refused by name with the line that
 * was meant, before the parser takes `records` as the parameter and `5` as a stray argument.
 */
function checkParamSyntax(argv: readonly string[]): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const inline = arg.startsWith('--param=') ? arg.slice('--param='.length) : undefined;
    const value = inline ?? (arg === '--param' ? argv[i + 1] : undefined);
    if (value === undefined || value.startsWith('-')) continue;
    if (value.includes('=')) continue; // '=5' (no name) is refused below, naming it
    const next = inline === undefined ? argv[i + 2] : argv[i + 1];
    const hint = next !== undefined && !next.startsWith('-') && value !== '' ? `: did you mean --param ${value}=${next}?` : ' (name=value, e.g. --param records=200000)';
    throw new CliError(`--param takes name=value as one argument, got '${value}'${hint}`);
  }
}

function parseParamValue(raw: string): string | number | boolean {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  if (raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
  return raw;
}

function scheduleArg(expression: string, tz: string | undefined): unknown {
  const text = expression.trim();
  if (/^rate\(/i.test(text)) {
    if (tz !== undefined) throw new CliError('--tz applies to cron schedules only');
    return text;
  }
  if (/^cron\(/i.test(text)) return { kind: 'cron', expression: text, timeZone: tz ?? 'UTC' };
  throw new CliError(`schedule must be 'rate(...)', 'cron(...)' or off, got '${expression}'`);
}

/** Reads the command line (without node and the script). Throws CliError with a usable message. */
export function parseCli(argv: readonly string[], env: Record<string, string | undefined> = process.env): CliCommand {
  checkParamSyntax(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        api: { type: 'string' },
        sigv4: { type: 'boolean' },
        json: { type: 'boolean' },
        param: { type: 'string', multiple: true },
        params: { type: 'string' },
        failover: { type: 'string' },
        'run-on': { type: 'string' },
        'subtasks-per-unit': { type: 'string' },
        schedule: { type: 'string' },
        tz: { type: 'string' },
        'checkpoint-timeout': { type: 'string' },
        handle: { type: 'string' },
        now: { type: 'boolean' },
        watch: { type: 'boolean' },
        interval: { type: 'string' },
        follow: { type: 'boolean', short: 'f' },
        metrics: { type: 'boolean' },
        dir: { type: 'string' },
      },
    });
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message.replace(/\. To specify.*$/s, '') : String(err));
  }
  const { values: o, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (!command) throw new CliError('no command given');
  if (!(COMMANDS as readonly string[]).includes(command)) throw new CliError(`unknown command '${command}'; commands: ${COMMANDS.join(', ')}`);
  const cmd = command as CommandName;
  const allowed: Record<CommandName, string[]> = {
    jobs: [],
    submit: ['param', 'params', 'failover', 'run-on', 'subtasks-per-unit', 'schedule', 'tz', 'checkpoint-timeout', 'handle'],
    status: ['watch', 'interval'],
    graph: [],
    checkpoints: ['now'],
    schedule: ['tz'],
    cancel: [],
    run: [],
    logs: ['follow', 'metrics', 'dir'],
  };
  for (const key of Object.keys(o)) {
    if (['api', 'sigv4', 'json'].includes(key) && !LOCAL_COMMANDS.includes(cmd)) continue;
    if (!allowed[cmd].includes(key)) throw new CliError(`option --${key} does not apply to '${cmd}' (sluice ${cmd} --help)`);
  }
  const positional = (count: number, names: string) => {
    if (rest.length < count) throw new CliError(`'${cmd}' needs ${names}`);
    if (rest.length > count) throw new CliError(`'${cmd}' takes ${names}; unexpected '${rest[count]}'`);
  };
  const jobPath = (id: string) => `/jobs/${encodeURIComponent(id)}`;
  let requests: ApiRequest[];
  switch (cmd) {
    case 'jobs':
      positional(0, 'no arguments');
      requests = [{ method: 'GET', path: '/jobs' }];
      break;
    case 'status':
    case 'graph':
      positional(1, 'a job id');
      requests = [{ method: 'GET', path: jobPath(rest[0]!) }];
      if (o.interval !== undefined && !o.watch) throw new CliError('--interval needs --watch');
      break;
    case 'logs':
      if (rest.length < 1) throw new CliError("'logs' needs a job id (and optionally a unit id, or control)");
      if (rest.length > 2) throw new CliError(`'logs' takes a job id and a unit id; unexpected '${rest[2]}'`);
      requests = [];
      break;
    case 'cancel':
      positional(1, 'a job id');
      requests = [{ method: 'DELETE', path: jobPath(rest[0]!) }];
      break;
    case 'run':
      // Dispatched before parsing (lib/cli/local-run.ts parses its own arguments).
      throw new CliError(`'run' runs a job on this machine: sluice run --help`);
    case 'checkpoints':
      positional(1, 'a job id');
      requests = [
        ...(o.now ? [{ method: 'POST' as const, path: `${jobPath(rest[0]!)}/checkpoints` }] : []),
        { method: 'GET', path: `${jobPath(rest[0]!)}/checkpoints` },
      ];
      break;
    case 'schedule': {
      positional(2, "a job id and a schedule ('rate(5 minutes)', 'cron(0 * * * ? *)' or off)");
      const expr = rest[1]!;
      const schedule = expr === 'off' ? null : scheduleArg(expr, o.tz);
      if (expr === 'off' && o.tz !== undefined) throw new CliError('--tz applies to cron schedules only');
      requests = [{ method: 'PUT', path: `${jobPath(rest[0]!)}/schedule`, body: { schedule } }];
      break;
    }
    case 'submit': {
      positional(1, 'a job name');
      const params: Record<string, string | number | boolean> = {};
      if (o.params !== undefined) {
        let p: unknown;
        try {
          p = JSON.parse(o.params);
        } catch {
          throw new CliError(`--params must be a JSON object, got '${o.params}'`);
        }
        if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new CliError(`--params must be a JSON object, got '${o.params}'`);
        Object.assign(params, p);
      }
      for (const kv of o.param ?? []) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new CliError(`--param must be name=value, got '${kv}'`);
        params[kv.slice(0, eq)] = parseParamValue(kv.slice(eq + 1));
      }
      const checkpoint: Record<string, unknown> = {};
      if (o.schedule !== undefined) checkpoint.schedule = o.schedule === 'off' ? null : scheduleArg(o.schedule, o.tz);
      else if (o.tz !== undefined) throw new CliError('--tz needs --schedule');
      if (o['checkpoint-timeout'] !== undefined) {
        const t = Number(o['checkpoint-timeout']);
        if (!(t > 0)) throw new CliError(`--checkpoint-timeout must be a number of seconds, got '${o['checkpoint-timeout']}'`);
        checkpoint.timeoutSeconds = t;
      }
      if (o.handle !== undefined) checkpoint.handle = o.handle;
      const body: Record<string, unknown> = { job: rest[0] };
      if (Object.keys(params).length > 0) body.params = params;
      if (o.failover !== undefined) body.failover = o.failover;
      if (o['run-on'] !== undefined) body.runOn = o['run-on'];
      if (o['subtasks-per-unit'] !== undefined) {
        const n = Number(o['subtasks-per-unit']);
        if (!Number.isInteger(n) || n < 1) throw new CliError(`--subtasks-per-unit must be a whole number of at least 1, got '${o['subtasks-per-unit']}'`);
        body.subtasksPerUnit = n;
      }
      if (Object.keys(checkpoint).length > 0) body.checkpoint = checkpoint;
      requests = [{ method: 'POST', path: '/jobs', body }];
      break;
    }
  }
  if (cmd === 'logs') {
    const logs: LogsRequest = { jobId: rest[0]!, follow: Boolean(o.follow), metrics: Boolean(o.metrics), ...(rest[1] !== undefined ? { unit: rest[1] } : {}), ...(o.dir !== undefined ? { dir: o.dir } : {}) };
    return { command: cmd, requests, api: undefined, sigv4: false, json: false, logs };
  }
  let watch: CliCommand['watch'];
  if (o.watch) {
    const seconds = o.interval === undefined ? 2 : Number(o.interval);
    if (!(seconds >= 0.2) || !Number.isFinite(seconds)) throw new CliError(`--interval must be a number of seconds, at least 0.2, got '${o.interval}'`);
    watch = { intervalMs: Math.round(seconds * 1000) };
  }
  const api = (o.api ?? env.SLUICE_API_URL)?.trim() || undefined;
  if (api !== undefined) {
    let url: URL;
    try {
      url = new URL(api);
    } catch {
      throw new CliError(`the API URL is not a URL: '${api}'`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`the API URL must be http(s), got '${api}'`);
  }
  const sigv4 = Boolean(o.sigv4) || (api !== undefined && /\.amazonaws\.com(\.cn)?$/i.test(new URL(api).hostname)) || env.SLUICE_API_SIGV4 === '1';
  return { command: cmd, requests, api, sigv4, json: Boolean(o.json), ...(watch ? { watch } : {}) };
}
