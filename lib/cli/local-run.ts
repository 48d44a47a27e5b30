/**
 * `sluice run <job>`: runs one job on this machine, start to end, the way `npm run demo` runs the
 * demo: the job's task units as child processes, its supervisor and checkpoints in this process,
 * SQS, DynamoDB and S3 at $AWS_ENDPOINT_URL or on the embedded emulator. For trying a job of your
 * own jobs module (`--jobs`) before deploying it.
 */
import { resolve } from 'node:path';
import { JOBS_MODULE_ENV, loadJobRegistry } from '../api/jobs-module';
import { requestCounts } from '../aws';
import { loadConfig } from '../config';
import type { SubmitRequest } from '../jobs/job-service';
import { resolveEndpoint } from '../local/emulator';
import { LocalRuntime } from '../local/local-runtime';
import { CliError, parseCli } from './parse';

export const RUN_USAGE = `usage: sluice run <job> [--jobs FILE] [--checkpoint-every SECONDS] [submit's options]

Runs a job on this machine until it ends: task units as child processes, AWS at $AWS_ENDPOINT_URL
(LocalStack, \`npm run emulator\`) or else on the embedded emulator (moto; needs Python 3.9+).

  --jobs FILE             your jobs module: exports a JobRegistry or job definitions (a .ts file
                          needs Node 22.18 or later); default $${JOBS_MODULE_ENV}, else the examples
  --checkpoint-every S    seconds between checkpoints (default 3; 0 for none)
  --param k=v, --params JSON, --failover S, --handle H, --checkpoint-timeout S,
  --subtasks-per-unit N
                          as for \`sluice submit\``;

export interface RunArgs {
  request: SubmitRequest;
  jobs?: string;
}

/** Own options (--jobs, --checkpoint-every); the rest is read as `sluice submit` reads it. */
export function parseRunArgs(argv: readonly string[]): RunArgs | 'help' {
  const own: { jobs?: string; 'checkpoint-every'?: string } = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    const name = (['jobs', 'checkpoint-every'] as const).find((n) => arg === `--${n}` || arg.startsWith(`--${n}=`));
    if (!name) {
      rest.push(arg);
      continue;
    }
    const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
    if (value === undefined || value === '') throw new CliError(`--${name} needs a value`);
    own[name] = value;
  }
  if (rest.some((a) => a === '--schedule' || a.startsWith('--schedule=') || a === '--tz' || a.startsWith('--tz='))) {
    throw new CliError('run takes no --schedule: it checkpoints every --checkpoint-every seconds');
  }
  if (rest.filter((a) => !a.startsWith('-')).length === 0) throw new CliError('run needs a job name');
  let submit;
  try {
    // An API URL only to satisfy the parser: nothing is sent.
    submit = parseCli(['submit', ...rest], { SLUICE_API_URL: 'http://127.0.0.1' });
  } catch (err) {
    if (err instanceof CliError) throw new CliError(err.message.replaceAll("'submit'", "'run'"));
    throw err;
  }
  const body = submit.requests[0]!.body as SubmitRequest;
  const every = Number(own['checkpoint-every'] ?? 3);
  if (!Number.isFinite(every) || every < 0) throw new CliError(`--checkpoint-every must be a number of seconds, 0 or more, got '${own['checkpoint-every']}'`);
  const request: SubmitRequest = { ...body, checkpoint: { handle: 'regional', ...body.checkpoint, intervalSeconds: every } };
  return { request, ...(own.jobs ? { jobs: own.jobs } : {}) };
}

/** Runs the job; resolves to the exit code (0 when it finished). */
export async function runLocal(argv: readonly string[], out: (line: string) => void = console.log): Promise<number> {
  const args = parseRunArgs(argv);
  if (args === 'help') {
    out(RUN_USAGE);
    return 0;
  }
  // The task unit processes inherit it, so they build the same jobs.
  if (args.jobs) process.env[JOBS_MODULE_ENV] = resolve(args.jobs);
  const registry = await loadJobRegistry();
  // A job that cannot be built fails here, in one sentence, before anything is started.
  registry.build(args.request.job, args.request.params ?? {});

  const started = Date.now();
  const endpoint = await resolveEndpoint();
  out(endpoint.started ? `AWS emulator (moto) started at ${endpoint.endpoint}` : `using AWS endpoint ${endpoint.endpoint}`);
  const config = loadConfig();
  const runtime = new LocalRuntime(config, registry);
  try {
    await runtime.prepare();
    const job = await runtime.service.submit(args.request);
    out(`job ${job.jobId} (${args.request.job}): ${job.units.length} task units (child processes), logs in .sluice/logs/${job.jobId}/`);
    let lastAt = 0;
    const controller = runtime.controller({
      pollMs: 500,
      onProgress: (view) => {
        if (Date.now() - lastAt < 2000) return;
        lastAt = Date.now();
        out(`  read ${view.totals.recordsIn}, written ${view.totals.recordsOut}, units running ${view.units.filter((u) => u.status === 'RUNNING').length}`);
      },
    });
    const view = await controller.run(job.jobId);
    const requests = (view.totals.requests.total ?? 0) + requestCounts().total;
    out(`job ${job.jobId} ${view.job.status}${view.job.error ? `: ${view.job.error}` : ''}`);
    out(`  records in ${view.totals.recordsIn}, out ${view.totals.recordsOut}; ${requests} AWS requests; ${((Date.now() - started) / 1000).toFixed(1)} s`);
    out(`  bucket ${config.bucket} (the job's sinks write there), table ${config.table}`);
    return view.job.status === 'FINISHED' ? 0 : 1;
  } finally {
    runtime.close();
    await endpoint.stop();
  }
}
