/**
 * The Sluice CLI: talks to the job API (local `npm run dev`, or the deployed API Gateway) and
 * prints readable tables.
 *
 *   npm run sluice -- jobs
 *   npm run sluice -- submit demo --param records=20000 --param parallelism=2 --schedule 'rate(5 minutes)'
 *   npm run sluice -- status <jobId>
 *   npm run sluice -- checkpoints <jobId> [--now]
 *   npm run sluice -- schedule <jobId> 'cron(0 * * * ? *)' --tz Europe/Berlin | 'rate(5 minutes)' | off
 *   npm run sluice -- cancel <jobId>
 *
 * The API URL comes from --api or SLUICE_API_URL. Requests to a deployed API (a host under
 * amazonaws.com, or --sigv4) are signed with SigV4 (service execute-api) using the default AWS
 * credential chain, as the API's IAM authorization requires.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { pathToFileURL } from 'node:url';
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

options:
  --api URL    the job API (default $SLUICE_API_URL)
  --sigv4      sign requests with SigV4 (automatic for *.amazonaws.com)
  --json       print the API's JSON instead of tables`;

// ---------------------------------------------------------------------------------------------
// Arguments.

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

// ---------------------------------------------------------------------------------------------
// Formatting.

type Cell = string | number | boolean | null | undefined;

/** A plain-text table: a header row, a rule, the rows; numbers right-aligned. */
export function formatTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = (c: Cell) => (c === null || c === undefined ? '-' : String(c));
  const cells = rows.map((r) => headers.map((_, i) => text(r[i])));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] === null || r[i] === undefined));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/** `2026-01-01 10:17:23Z` */
export function formatTime(ms: number | undefined | null): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '-';
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** `4s ago`, `3m ago`, `2h ago` */
export function formatAgo(ms: number | undefined | null, now: number): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

export function formatDuration(ms: number | undefined | null): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '-';
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60_000).toFixed(1)} min`;
}

export function renderJobs(body: any): string {
  const jobs: any[] = body.jobs ?? [];
  if (jobs.length === 0) return 'no jobs';
  return formatTable(
    ['JOB', 'NAME', 'STATUS', 'CREATED'],
    jobs.map((j) => [j.jobId, j.name, j.status, formatTime(j.createdAt)]),
  );
}

function sumStats(stats: Record<string, any> | undefined, key: string): number {
  return Object.values(stats ?? {}).reduce((n, s) => n + (Number(s?.[key]) || 0), 0);
}

export function renderStatus(body: any, now: number = Date.now()): string {
  const { job, units = [], regions = [], availability = [], failures = [], totals = {}, schedule } = body;
  const lines = [
    `job        ${job.jobId} (${job.name})`,
    `status     ${job.status}${job.error ? `: ${job.error}` : ''}`,
    `created    ${formatTime(job.createdAt)}${job.endedAt ? `   ended ${formatTime(job.endedAt)}` : ''}`,
    `params     ${Object.entries(job.params ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    `failover   ${job.settings?.failover ?? '-'}   runs on: ${job.settings?.runOn ?? 'default'}   checkpoints: ${job.settings?.checkpoint?.handle ?? '-'} handle, ${schedule?.description ?? 'off'}${
      schedule?.nextFireTimes?.[0] ? ` (next ${formatTime(Date.parse(schedule.nextFireTimes[0]))})` : ''
    }`,
    `regions    ${regions.length}`,
    `totals     in ${totals.recordsIn ?? 0}   out ${totals.recordsOut ?? 0}   dropped ${totals.dropped ?? 0}   missing ${totals.missing ?? 0}   replayed ${totals.replayed ?? 0}   duplicates discarded ${totals.duplicateRecords ?? 0}   requests ${Object.entries(totals.requests ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ') || '-'}`,
    '',
    formatTable(
      ['UNIT', 'ATTEMPT', 'INVOCATION', 'STATUS', 'HEARTBEAT', 'IN', 'OUT', 'DROPPED', 'ERROR'],
      units.map((u: any) => [
        u.unitId,
        u.attempt,
        u.invocation ?? 0,
        u.status,
        formatAgo(u.heartbeatAt, now),
        sumStats(u.stats, 'recordsIn'),
        sumStats(u.stats, 'recordsOut'),
        sumStats(u.stats, 'dropped'),
        u.error ?? '',
      ]),
    ),
  ];
  if (availability.length > 0) {
    lines.push(
      '',
      formatTable(
        ['SUB-PARTITION', 'STATUS', 'ATTEMPT'],
        availability.map((a: any) => [a.subPartition, a.status ?? (a.available === false ? 'UNAVAILABLE' : a.available === true ? 'AVAILABLE' : '-'), a.attempt]),
      ),
    );
  }
  if (failures.length > 0) {
    lines.push(
      '',
      formatTable(
        ['FAILURE', 'UNIT', 'ATTEMPT', 'STRATEGY', 'REASON', 'DETECTED', 'AVAILABLE AGAIN', 'UNITS RESTARTED', 'DROPPED', 'PROCESSED MEANWHILE'],
        failures.map((f: any) => [
          f.seq,
          f.unitId,
          `${f.attempt} -> ${f.newAttempt ?? '-'}`,
          f.strategy,
          f.reason,
          `${f.detectionMs} ms`,
          f.recoveryMs === null || f.recoveryMs === undefined ? 'not yet' : `${f.recoveryMs} ms`,
          f.unitsRestarted,
          f.recordsDropped,
          f.recordsProcessed,
        ]),
      ),
    );
  }
  return lines.join('\n');
}

export function renderCheckpoints(body: any, triggered?: any): string {
  const rows: any[] = body.checkpoints ?? [];
  const head = triggered ? `triggered checkpoint ${triggered.checkpointId} of ${triggered.jobId}\n\n` : '';
  if (rows.length === 0) return `${head}no checkpoints for ${body.jobId}`;
  return (
    head +
    formatTable(
      ['ID', 'STATUS', 'TRIGGERED', 'DURATION', 'REGIONS OK', 'FAILED', 'REASON'],
      rows.map((c) => [
        c.checkpointId,
        c.status,
        formatTime(c.triggerTime),
        formatDuration(c.durationMs),
        c.regionsTotal !== undefined ? `${c.completedRegions ?? 0}/${c.regionsTotal}` : '-',
        c.failedRegionCount,
        c.reason ?? c.message ?? '',
      ]),
    )
  );
}

export function renderSchedule(body: any): string {
  const next = (body.nextFireTimes ?? []).map((t: string) => formatTime(Date.parse(t)));
  return [`job        ${body.jobId}`, `schedule   ${body.description}`, `next       ${next.join(', ') || '-'}`].join('\n');
}

export function renderSubmitted(body: any): string {
  const j = body.job;
  return [
    `submitted  ${j.jobId} (${j.name}), ${j.status}`,
    `params     ${Object.entries(j.params ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    `follow it  sluice status ${j.jobId}`,
  ].join('\n');
}

export function renderCancelled(body: any): string {
  return `${body.job.jobId}: ${body.job.status}`;
}

/** `error (field)` from an API error body. */
export function renderApiError(status: number, body: any): string {
  const message = body && typeof body === 'object' && typeof body.error === 'string' ? body.error : JSON.stringify(body);
  return `API error ${status}: ${message}${body?.field ? ` [field: ${body.field}]` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// HTTP with optional SigV4.

/** SHA-256 and HMAC-SHA-256 for the SigV4 signer, on node:crypto. */
class NodeSha256 {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    const key = typeof this.secret === 'string' ? Buffer.from(this.secret, 'utf8') : ArrayBuffer.isView(this.secret) ? Buffer.from(this.secret.buffer, this.secret.byteOffset, this.secret.byteLength) : Buffer.from(this.secret);
    return createHmac('sha256', key);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === 'string' ? Buffer.from(data, 'utf8') : ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

/** The region of an API Gateway URL (`<id>.execute-api.<region>.amazonaws.com`), else the environment's. */
export function regionOf(url: URL, env: Record<string, string | undefined> = process.env): string {
  const m = /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/i.exec(url.hostname);
  return m?.[1] ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
}

/** A SigV4 signer hashing with node:crypto (loaded on first use: only deployed APIs need it). */
export async function sigv4Signer(options: {
  service: string;
  region: string;
  credentials: ConstructorParameters<typeof import('@smithy/signature-v4').SignatureV4>[0]['credentials'];
  applyChecksum?: boolean;
}) {
  const { SignatureV4 } = await import('@smithy/signature-v4');
  return new SignatureV4({ ...options, sha256: NodeSha256 });
}

export async function signedHeaders(url: URL, method: string, headers: Record<string, string>, body: string | undefined): Promise<Record<string, string>> {
  const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
  const signer = await sigv4Signer({ service: 'execute-api', region: regionOf(url), credentials: defaultProvider() });
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (query[k] = v));
  const signed = await signer.sign({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: url.pathname,
    query,
    headers: { ...headers, host: url.host },
    ...(body !== undefined ? { body } : {}),
  });
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== 'host') out[k] = String(v);
  return out;
}

export async function callApi(api: string, request: ApiRequest, sigv4: boolean): Promise<{ status: number; body: unknown }> {
  const base = api.replace(/\/+$/, '');
  const url = new URL(base + request.path);
  const body = request.body !== undefined ? JSON.stringify(request.body) : undefined;
  let headers: Record<string, string> = { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
  if (sigv4) headers = await signedHeaders(url, request.method, headers, body);
  let res: Response;
  try {
    res = await fetch(url, { method: request.method, headers, ...(body !== undefined ? { body } : {}) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new CliError(`cannot reach the job API at ${base}${cause ? ` (${cause})` : ''}: is \`npm run dev\` running, or is --api / SLUICE_API_URL right?`);
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** Runs a parsed command; returns the text to print and the exit code. */
export async function runCli(cmd: CliCommand, call = callApi): Promise<{ output: string; code: number }> {
  if (!cmd.api) throw new CliError('no API URL: pass --api URL or set SLUICE_API_URL (`npm run dev` prints it)');
  const results: unknown[] = [];
  for (const request of cmd.requests) {
    const { status, body } = await call(cmd.api, request, cmd.sigv4);
    if (status >= 400) return { output: renderApiError(status, body), code: 1 };
    results.push(body);
  }
  const last = results.at(-1);
  if (cmd.json) return { output: JSON.stringify(results.length === 1 ? last : results, null, 2), code: 0 };
  switch (cmd.command) {
    case 'jobs':
      return { output: renderJobs(last), code: 0 };
    case 'status':
      return { output: renderStatus(last), code: 0 };
    case 'checkpoints':
      return { output: renderCheckpoints(last, results.length > 1 ? results[0] : undefined), code: 0 };
    case 'schedule':
      return { output: renderSchedule(last), code: 0 };
    case 'submit':
      return { output: renderSubmitted(last), code: 0 };
    case 'cancel':
      return { output: renderCancelled(last), code: 0 };
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h') || argv[0] === 'help') {
    console.log(USAGE);
    return argv.length === 0 ? 2 : 0;
  }
  try {
    const { output, code } = await runCli(parseCli(argv));
    (code === 0 ? console.log : console.error)(output);
    return code;
  } catch (err) {
    if (err instanceof CliError) {
      console.error(`sluice: ${err.message}\n(sluice --help for usage)`);
      return 2;
    }
    console.error(`sluice: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
