/** The CLI's arguments: one command line into the API requests it stands for (or a CliError). */
import { parseArgs } from 'node:util';

export class CliError extends Error {
  override name = 'CliError';
}

export const USAGE = `usage: sluice <command> [options]

commands:
  jobs                                   list jobs
  submit <job> [--param k=v]... [--params JSON] [--failover full|region|single|single-buffered]
         [--run-on lambda|fargate] [--schedule EXPR [--tz ZONE]] [--checkpoint-timeout S] [--handle global|regional]
                                         submit a registered job
  status <jobId>                         a job: units, attempts, regions, availability, failures, totals
  checkpoints <jobId> [--now]            checkpoint history (--now: trigger one first)
  schedule <jobId> <EXPR|off> [--tz ZONE]
                                         change the checkpoint schedule without a restart;
                                         EXPR: 'rate(5 minutes)' or 'cron(0 * * * ? *)'
  cancel <jobId>                         cancel a job (stops units, deletes queues, keeps checkpoints)
  run <job> [--jobs FILE] [--param k=v]...
                                         run a job on this machine until it ends (sluice run --help)

options:
  --api URL    the job API (default $SLUICE_API_URL)
  --sigv4      sign requests with SigV4 (automatic for *.amazonaws.com)
  --json       print the API's JSON instead of tables`;

export interface ApiRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
}

export interface CliCommand {
  command: 'jobs' | 'submit' | 'status' | 'checkpoints' | 'schedule' | 'cancel';
  /** The requests to make, in order (checkpoints --now: trigger, then history). */
  requests: ApiRequest[];
  api: string | undefined;
  sigv4: boolean;
  json: boolean;
}

const COMMANDS = ['jobs', 'submit', 'status', 'checkpoints', 'schedule', 'cancel'] as const;

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
        schedule: { type: 'string' },
        tz: { type: 'string' },
        'checkpoint-timeout': { type: 'string' },
        handle: { type: 'string' },
        now: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message.replace(/\. To specify.*$/s, '') : String(err));
  }
  const { values: o, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (!command) throw new CliError('no command given');
  if (!(COMMANDS as readonly string[]).includes(command)) throw new CliError(`unknown command '${command}'; commands: ${COMMANDS.join(', ')}`);
  const cmd = command as CliCommand['command'];
  const allowed: Record<CliCommand['command'], string[]> = {
    jobs: [],
    submit: ['param', 'params', 'failover', 'run-on', 'schedule', 'tz', 'checkpoint-timeout', 'handle'],
    status: [],
    checkpoints: ['now'],
    schedule: ['tz'],
    cancel: [],
  };
  for (const key of Object.keys(o)) {
    if (['api', 'sigv4', 'json'].includes(key)) continue;
    if (!allowed[cmd].includes(key)) throw new CliError(`option --${key} does not apply to '${cmd}'`);
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
      positional(1, 'a job id');
      requests = [{ method: 'GET', path: jobPath(rest[0]!) }];
      break;
    case 'cancel':
      positional(1, 'a job id');
      requests = [{ method: 'DELETE', path: jobPath(rest[0]!) }];
      break;
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
      if (Object.keys(checkpoint).length > 0) body.checkpoint = checkpoint;
      requests = [{ method: 'POST', path: '/jobs', body }];
      break;
    }
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
  return { command: cmd, requests, api, sigv4, json: Boolean(o.json) };
}
