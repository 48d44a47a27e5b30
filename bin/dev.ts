/**
 * The job API on this machine (`npm run dev`): the same handlers as the Lambda functions behind a
 * local HTTP server, and the web UI at /ui/ (built from ui/ at start); task units run as child processes.
 *
 *   npm run dev [-- --port 3000] [--host 127.0.0.1] [--aws] [--quiet]
 *
 * AWS: AWS_ENDPOINT_URL when set (LocalStack, `npm run emulator`); otherwise the embedded
 * emulator is started; `--aws` uses real AWS with your credentials (no endpoint).
 */
import { parseArgs } from 'node:util';
import { startLocalApi } from '../lib/api-server';
import { loadConfig } from '../lib/config';
import { resolveEndpoint } from '../lib/local/emulator';

const USAGE = `usage: npm run dev -- [--port N] [--host H] [--aws] [--quiet]
  --port   port to listen on (default $SLUICE_API_PORT or 3000; 0 picks a free one)
  --host   address to bind (default 127.0.0.1)
  --aws    use real AWS (default: $AWS_ENDPOINT_URL, or the embedded emulator)
  --quiet  do not log each request`;

function fail(message: string): never {
  console.error(`sluice dev: ${message}\n${USAGE}`);
  process.exit(2);
}

let args: { port?: string; host?: string; aws?: boolean; quiet?: boolean; help?: boolean };
try {
  args = parseArgs({
    options: { port: { type: 'string' }, host: { type: 'string' }, aws: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  }).values;
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const rawPort = args.port ?? process.env.SLUICE_API_PORT ?? '3000';
const port = Number(rawPort);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got '${rawPort}'`);

if (args.aws) delete process.env.AWS_ENDPOINT_URL;
const endpoint = args.aws ? undefined : await resolveEndpoint();
const config = loadConfig();
const log = args.quiet ? undefined : (line: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`);
let api;
try {
  api = await startLocalApi({ config, port, ...(args.host ? { host: args.host } : {}), ...(log ? { log } : {}) });
} catch (err) {
  console.error(`sluice dev: ${err instanceof Error ? err.message : String(err)}`);
  await endpoint?.stop();
  process.exit(1);
}
const where = endpoint ? `${endpoint.endpoint}${endpoint.started ? ' (embedded emulator)' : ''}` : `AWS ${config.region}`;
console.log(`Sluice job API listening on ${api.url}`);
console.log(`  web UI: ${api.url}/ui/`);
console.log(`  AWS: ${where}; table ${config.table}, bucket ${config.bucket}, queue prefix ${config.queuePrefix}`);
console.log(`  export SLUICE_API_URL=${api.url}`);
console.log(`  npm run sluice -- submit demo --param records=20000 --param parallelism=2`);
console.log('Press Ctrl-C to stop (running jobs\' units stop with it).');

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  await api.close();
  await endpoint?.stop();
  process.exit(0);
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
