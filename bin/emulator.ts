/**
 * Starts the embedded AWS emulator (moto) and keeps it running until Ctrl-C.
 *   npm run emulator [-- --port 4566]
 */
import { commandFlags, defineFlags } from '../lib/cli/flags';
import { MOTO_VERSION, startEmulator } from '../lib/local/emulator';

const FLAGS = defineFlags({
  port: { type: 'number', optional: true, integer: true, min: 1, check: (p) => (p > 65535 ? 'must be at most 65535' : undefined), help: 'port to listen on (default $SLUICE_EMULATOR_PORT, else a free one)' },
});

function portArg(): number | undefined {
  const { port } = commandFlags('emulator', 'npm run emulator -- [--port N]', FLAGS);
  if (port !== undefined) return port;
  const raw = process.env.SLUICE_EMULATOR_PORT;
  if (raw === undefined) return undefined;
  const fromEnv = Number(raw);
  if (!Number.isInteger(fromEnv) || fromEnv <= 0 || fromEnv > 65535) {
    console.error(`emulator: SLUICE_EMULATOR_PORT must be a port number (1-65535), got '${raw}'`);
    process.exit(2);
  }
  return fromEnv;
}

const port = portArg();
const emulator = await startEmulator(port !== undefined ? { port } : {});
console.log(`AWS emulator (moto ${MOTO_VERSION}: SQS, DynamoDB, S3, Kinesis) listening at ${emulator.endpoint}`);
console.log(`export AWS_ENDPOINT_URL=${emulator.endpoint}`);
console.log('Press Ctrl-C to stop.');

// The emulator child does not hold the event loop open by itself.
const keepAlive = setInterval(() => {}, 1 << 30);
const shutdown = async () => {
  clearInterval(keepAlive);
  await emulator.stop();
  process.exit(0);
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
