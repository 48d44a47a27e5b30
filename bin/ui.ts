/**
 * The web UI of a deployed Sluice: a local server that forwards the browser's requests to the
 * deployed API, signed with SigV4 with your AWS credentials (the API takes only signed requests).
 *
 *   npm run ui -- [--api URL] [--port 3000] [--host 127.0.0.1] [--quiet]
 *
 * URL: --api or $SLUICE_API_URL (the stack output ApiUrl, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod).
 * For the local API, `npm run dev` serves the UI itself.
 */
import { parseArgs } from 'node:util';
import { startSigningProxy } from '../lib/ui/signing-proxy';

const USAGE = `usage: npm run ui -- [--api URL] [--port N] [--host H] [--quiet]
  --api    the deployed API (default $SLUICE_API_URL), e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod
  --port   port to listen on (default 3000; 0 picks a free one)
  --host   address to bind (default 127.0.0.1; whoever reaches it acts with your AWS credentials)
  --quiet  do not log each request`;

function fail(message: string): never {
  console.error(`sluice ui: ${message}\n${USAGE}`);
  process.exit(2);
}

let args: { api?: string; port?: string; host?: string; quiet?: boolean; help?: boolean };
try {
  args = parseArgs({
    options: { api: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  }).values;
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const api = args.api ?? process.env.SLUICE_API_URL;
if (!api) fail('name the deployed API with --api URL or SLUICE_API_URL');
const port = Number(args.port ?? '3000');
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got '${args.port}'`);

let proxy;
try {
  proxy = await startSigningProxy({
    api,
    port,
    ...(args.host ? { host: args.host } : {}),
    ...(args.quiet ? {} : { log: (line: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`) }),
  });
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
console.log(`Sluice web UI of ${api}: open ${proxy.url}/ui/ (requests are signed with your AWS credentials)`);
const shutdown = async () => {
  await proxy.close();
  process.exit(0);
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
