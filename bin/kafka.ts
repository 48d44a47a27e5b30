/**
 * The local Apache Kafka broker (KRaft, one node, 127.0.0.1) the tests use, by hand:
 *   npm run kafka:install         fetch its jars from Maven Central once (.sluice/kafka/), then exit
 *   npm run kafka:install -- --start   and start a broker until Ctrl-C (prints its bootstrap address)
 */
import { ensureKafkaInstalled, KAFKA_VERSION, startKafka } from '../lib/local/kafka-broker';

const libs = await ensureKafkaInstalled((line) => console.log(line));
console.log(`Apache Kafka ${KAFKA_VERSION}: ${libs}`);
if (process.argv.includes('--start')) {
  const broker = await startKafka({ log: (line) => console.log(line) });
  console.log(`Kafka broker (KRaft) listening at ${broker.bootstrap}; e.g. npm run sluice -- run kafka-ingest --param brokers=${broker.bootstrap}`);
  console.log('Press Ctrl-C to stop.');
  const keepAlive = setInterval(() => {}, 1 << 30);
  const shutdown = async () => {
    clearInterval(keepAlive);
    await broker.stop();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
