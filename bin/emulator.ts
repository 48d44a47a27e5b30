/**
 * Starts the embedded AWS emulator (moto) and keeps it running until Ctrl-C.
 *   npm run emulator [-- --port 4566]
 */
import { MOTO_VERSION, startEmulator } from '../lib/local/emulator';

function portArg(): number | undefined {
  const i = process.argv.indexOf('--port');
  const raw = i >= 0 ? process.argv[i + 1] : process.env.SLUICE_EMULATOR_PORT;
  if (raw === undefined) return undefined;
  const port = Number(raw);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`not a port: '${raw}'`);
  return port;
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
