/**
 * `sluice run <job>`: runs one job on this machine, start to end, the way `npm run demo` runs the
 * demo: the job's task units as child processes, its supervisor and checkpoints in this process,
 * SQS, DynamoDB and S3 at $AWS_ENDPOINT_URL or on the embedded emulator. For trying a job of your
 * own jobs module (`--jobs`) before deploying it.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { JOBS_MODULE_ENV, loadJobRegistry } from '../api/jobs-module';
import type { Json } from '../api/json';
import { requestCounts } from '../aws';
import { loadConfig } from '../config';
import type { SubmitRequest } from '../jobs/job-service';
import { resolveEndpoint } from '../local/emulator';
import { LocalRuntime } from '../local/local-runtime';
import { CliError, parseParamValue } from './parse';

export const RUN_USAGE = `usage: sluice run <job> [--jobs FILE] [--param k=v]... [--failover S] [--checkpoint-every SECONDS]

Runs a job on this machine until it ends: task units as child processes, AWS at $AWS_ENDPOINT_URL
(LocalStack, \`npm run emulator\`) or else on the embedded emulator (moto; needs Python 3.9+).

  --jobs FILE             your jobs module: exports a JobRegistry or job definitions (a .ts file
                          needs Node 22.18 or later); default $${JOBS_MODULE_ENV}, else the examples
  --param k=v             a job parameter (repeatable; numbers and true/false are converted)
  --failover S            full | region | single | single-buffered (default region)
  --checkpoint-every S    seconds between checkpoints (default 3; 0 for none)`;

const FAILOVER = ['full', 'region', 'single', 'single-buffered'] as const;

interface RunArgs {
  job: string;
  params: { [k: string]: Json };
  failover: SubmitRequest['failover'];
  checkpointEvery: number;
  jobs?: string;
}

export function parseRunArgs(argv: readonly string[]): RunArgs | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        jobs: { type: 'string' },
        param: { type: 'string', multiple: true },
        failover: { type: 'string', default: 'region' },
        'checkpoint-every': { type: 'string', default: '3' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err));
  }
  const { values: o, positionals } = parsed;
  if (o.help) return 'help';
  if (positionals.length !== 1) throw new CliError(`run takes one job name, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`);
  const params: { [k: string]: Json } = {};
  for (const kv of o.param ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new CliError(`--param must be name=value, got '${kv}'`);
    params[kv.slice(0, eq)] = parseParamValue(kv.slice(eq + 1));
  }
  if (!(FAILOVER as readonly string[]).includes(o.failover)) throw new CliError(`--failover must be one of ${FAILOVER.join(', ')}, got '${o.failover}'`);
  const checkpointEvery = Number(o['checkpoint-every']);
  if (!Number.isFinite(checkpointEvery) || checkpointEvery < 0) throw new CliError(`--checkpoint-every must be a number of seconds, 0 or more, got '${o['checkpoint-every']}'`);
  return { job: positionals[0]!, params, failover: o.failover as SubmitRequest['failover'], checkpointEvery, ...(o.jobs ? { jobs: o.jobs } : {}) };
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
  registry.build(args.job, args.params);

  const started = Date.now();
  const endpoint = await resolveEndpoint();
  out(endpoint.started ? `AWS emulator (moto) started at ${endpoint.endpoint}` : `using AWS endpoint ${endpoint.endpoint}`);
  const config = loadConfig();
  const runtime = new LocalRuntime(config, registry);
  try {
    await runtime.prepare();
    const job = await runtime.service.submit({
      job: args.job,
      params: args.params,
      failover: args.failover,
      checkpoint: { handle: 'regional', intervalSeconds: args.checkpointEvery },
    });
    out(`job ${job.jobId} (${args.job}): ${job.units.length} task units (child processes), logs in .sluice/logs/${job.jobId}/`);
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
    out(`  output under s3://${config.bucket}/output/${job.jobId}/ (if the job's sinks write there)`);
    return view.job.status === 'FINISHED' ? 0 : 1;
  } finally {
    runtime.close();
    await endpoint.stop();
  }
}
