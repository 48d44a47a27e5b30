#!/usr/bin/env node
/**
 * The Sluice CLI: talks to the job API (local `npm run dev`, or the deployed API Gateway) and
 * prints readable tables.
 *
 *   npm run sluice -- jobs
 *   npm run sluice -- submit demo --param records=20000 --param parallelism=2 --schedule 'rate(5 minutes)'
 *   npm run sluice -- status <jobId> [--watch]
 *   npm run sluice -- graph <jobId>
 *   npm run sluice -- logs <jobId> [unit|control] [--follow]
 *   npm run sluice -- checkpoints <jobId> [--now]
 *   npm run sluice -- schedule <jobId> 'cron(0 * * * ? *)' --tz Europe/Berlin | 'rate(5 minutes)' | off
 *   npm run sluice -- cancel <jobId>
 *   npm run sluice -- run <job> [--jobs FILE] [--param k=v]...   (on this machine; lib/cli/local-run.ts)
 *
 * The API URL comes from --api or SLUICE_API_URL. Requests to a deployed API (a host under
 * amazonaws.com, or --sigv4) are signed with SigV4 (service execute-api) using the default AWS
 * credential chain, as the API's IAM authorization requires. `sluice <command> --help` shows a
 * command's options. `logs` reads the local runtime's files and needs no API.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runLocal } from '../lib/cli/local-run';
import { callApi } from '../lib/cli/http';
import { followLogs, jobLogFiles, mergedLogLines } from '../lib/cli/logs';
import { CliError, helpFor, parseCli, type CliCommand, type LogsRequest } from '../lib/cli/parse';
import { renderApiError, renderCancelled, renderCheckpoints, renderGraph, renderJobs, renderSchedule, renderStatus, renderSubmitted } from '../lib/cli/render';
import { abortableSleep, watchStatus, type WatchIo } from '../lib/cli/watch';
import { DEFAULT_LOG_DIR } from '../lib/local/log-files';

export * from '../lib/cli/http';
export * from '../lib/cli/logs';
export * from '../lib/cli/parse';
export * from '../lib/cli/render';
export * from '../lib/cli/watch';

/** Runs a parsed command; returns the text to print and the exit code. */
export async function runCli(cmd: CliCommand, call = callApi): Promise<{ output: string; code: number }> {
  if (cmd.logs) {
    const lines = readLogs(cmd.logs);
    return { output: lines.length > 0 ? lines.join('\n') : `no log lines yet for ${cmd.logs.unit ?? 'job'} ${cmd.logs.jobId}`, code: 0 };
  }
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
    case 'graph':
      return { output: renderGraph(last), code: 0 };
    case 'checkpoints':
      return { output: renderCheckpoints(last, results.length > 1 ? results[0] : undefined), code: 0 };
    case 'schedule':
      return { output: renderSchedule(last), code: 0 };
    case 'submit':
      return { output: renderSubmitted(last), code: 0 };
    case 'cancel':
      return { output: renderCancelled(last), code: 0 };
    case 'logs':
      throw new CliError('logs reads files, not the API');
    case 'run':
      throw new CliError(`'run' runs a job on this machine: sluice run --help`);
  }
}

/** The job's log lines, merged by time and pretty-printed. */
export function readLogs(request: LogsRequest): string[] {
  const files = jobLogFiles(request.dir ?? DEFAULT_LOG_DIR, request);
  return mergedLogLines(files, { metrics: request.metrics });
}

/** Commands that run until the job ends or Ctrl-C: status --watch and logs --follow. */
async function runLong(cmd: CliCommand): Promise<number> {
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.on('SIGINT', onSigint);
  try {
    if (cmd.logs) {
      await followLogs(cmd.logs.dir ?? DEFAULT_LOG_DIR, cmd.logs, { write: (line) => console.log(line), sleep: abortableSleep, signal: stop.signal });
      return stop.signal.aborted ? 130 : 0;
    }
    if (!cmd.api) throw new CliError('no API URL: pass --api URL or set SLUICE_API_URL (`npm run dev` prints it)');
    const io: WatchIo = { write: (text) => process.stdout.write(text), isTTY: process.stdout.isTTY === true, sleep: abortableSleep, signal: stop.signal };
    return await watchStatus(cmd.api, cmd.requests[0]!, cmd.sigv4, cmd.watch!.intervalMs, callApi, io);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'run') return runLocal(argv.slice(1)).catch(reportError);
  const help = argv.length === 0 ? undefined : helpFor(argv);
  if (argv.length === 0 || help) {
    console.log(help ?? helpFor(['--help']));
    return argv.length === 0 ? 2 : 0;
  }
  try {
    const cmd = parseCli(argv);
    if (cmd.watch || cmd.logs?.follow) return await runLong(cmd);
    const { output, code } = await runCli(cmd);
    (code === 0 ? console.log : console.error)(output);
    return code;
  } catch (err) {
    if (err instanceof CliError) {
      const command = argv.find((a) => !a.startsWith('-'));
      const named = command && helpFor(['--help', command]) !== helpFor(['--help']) ? command : undefined;
      console.error(`sluice: ${err.message}\n(sluice ${named ? `${named} ` : ''}--help for usage)`);
      return 2;
    }
    console.error(`sluice: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

function reportError(err: unknown): number {
  if (err instanceof CliError) {
    console.error(`sluice: ${err.message}\n(sluice --help for usage)`);
    return 2;
  }
  console.error(`sluice: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
}

// Installed, the bin is a symlink (node_modules/.bin/sluice): compare real paths.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
