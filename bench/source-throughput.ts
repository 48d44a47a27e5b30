/**
 * Source throughput: records a second one source subtask takes in from Kinesis (on the embedded
 * emulator) and from a local Kafka broker, through the connectors' `poll` loop as the engine's
 * source driver runs it (fetch, deserialize JSON, order, watermark), nothing downstream.
 *
 *   npx tsx bench/source-throughput.ts [--records 100000] [--shards 4] [--partitions 4] [--reps 3]
 *     [--sources kinesis,kafka] [--out bench/results/source-throughput.json]
 *
 * Kinesis is read twice: on the emulator's common process (the one that also serves DynamoDB) and
 * on the moto process the embedded emulator runs for Kinesis alone, to show what the latter buys.
 * The Kinesis source stays within AWS's 5 GetRecords a second per shard (the emulator enforces
 * it), 10,000 records a call. Kafka: a KRaft broker on loopback (lib/local/kafka-broker.ts).
 */
import { CreateStreamCommand, waitUntilStreamExists } from '@aws-sdk/client-kinesis';
import os from 'node:os';
import { commandFlags, commandWith, defineFlags } from '../lib/cli/flags';
import { markdownTable, median, round } from './lib/report';
import { describeMachine, machineInfo, writeResults } from './lib/results';
import type { Json, RuntimeContext, SourceFunction } from '../lib/api/functions';
import { AwsKinesisStreams, createKinesisClient } from '../lib/aws/kinesis-streams';
import { loadConfig } from '../lib/config';
import { KafkaSource } from '../lib/connectors/kafka-source';
import { KinesisSource } from '../lib/connectors/kinesis-source';
import { resolveEndpoint } from '../lib/local/emulator';
import { startKafka } from '../lib/local/kafka-broker';
import { MemoryBlobStore } from '../lib/memory';
import { clickEvents, type ClickEvent } from '../examples/jobs/stream-ingest';

const FLAGS = defineFlags({
  records: { type: 'number', default: 100_000, integer: true, min: 1, help: 'records in the stream / topic' },
  shards: { type: 'number', default: 4, integer: true, min: 1, help: 'Kinesis shards' },
  partitions: { type: 'number', default: 4, integer: true, min: 1, help: 'Kafka partitions' },
  reps: { type: 'number', default: 3, integer: true, min: 1, help: 'timed reads of each source' },
  sources: { type: 'string', default: 'kinesis,kafka', help: 'which sources: kinesis, kafka or both' },
  out: { type: 'string', default: 'bench/results/source-throughput.json', help: 'JSON results file' },
});

interface Row {
  source: string;
  where: string;
  records: number;
  splits: number;
  seconds: number[];
  medianRecordsPerSecond: number;
  clientCpuSecondsMedian: number;
}

const ctx = (): RuntimeContext => ({ jobId: 'bench', operatorId: 'src', subtaskIndex: 0, parallelism: 1, attempt: 0, blobs: new MemoryBlobStore() });

/** Reads a bounded source to its end; returns seconds and client CPU seconds. */
async function readAll(make: () => SourceFunction<Json>, expected: number): Promise<{ seconds: number; cpu: number }> {
  const source = make();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await source.open(ctx());
  let n = 0;
  for (;;) {
    const batch = await source.poll(2000);
    n += batch.records.length;
    if (batch.done) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await source.close?.();
  if (n !== expected) throw new Error(`read ${n} records, expected ${expected}`);
  return { seconds, cpu: (cpu.user + cpu.system) / 1e6 };
}

async function measure(source: string, where: string, splits: number, records: number, reps: number, make: () => SourceFunction<Json>): Promise<Row> {
  await readAll(make, records); // warm-up: connections, JIT
  const runs = [];
  for (let r = 0; r < reps; r++) runs.push(await readAll(make, records));
  const seconds = runs.map((x) => round(x.seconds, 2));
  return { source, where, records, splits, seconds, medianRecordsPerSecond: Math.round(records / median(runs.map((x) => x.seconds))), clientCpuSecondsMedian: round(median(runs.map((x) => x.cpu)), 2) };
}

async function main(): Promise<void> {
  const o = commandFlags('source-throughput', 'npx tsx bench/source-throughput.ts [flags]   (or: npm run bench:sources -- [flags])', FLAGS);
  const command = commandWith('npx tsx bench/source-throughput.ts', o, Object.keys(FLAGS));
  const wanted = new Set(o.sources.split(',').map((s) => s.trim()));
  const loadBefore = os.loadavg()[0]!;
  const events = clickEvents(o.records, 1000, 24);
  const rows: Row[] = [];
  const deserialize = (bytes: Uint8Array) => JSON.parse(Buffer.from(bytes).toString('utf8')) as ClickEvent;

  if (wanted.has('kinesis')) {
    const endpoint = await resolveEndpoint();
    try {
      const config = loadConfig();
      const { kinesis: own, ...others } = config.endpoints;
      const placements: [string, typeof config][] = [['emulator, common process (also DynamoDB)', { ...config, endpoints: others }]];
      // The embedded emulator runs Kinesis on a process of its own; an endpoint given from outside is used as it is.
      if (own) placements.push(['emulator, a moto process of its own', config]);
      for (const [where, placed] of placements) {
        const client = createKinesisClient(placed);
        const streams = new AwsKinesisStreams(client);
        const stream = `bench-${Date.now().toString(36)}`;
        await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: o.shards }));
        await waitUntilStreamExists({ client, maxWaitTime: 30 }, { StreamName: stream });
        for (let i = 0; i < events.length; i += 500) {
          let batch = events.slice(i, i + 500).map((e) => ({ partitionKey: e.user, data: Buffer.from(JSON.stringify(e)) }));
          while (batch.length > 0) {
            const { results } = await streams.putRecords(stream, batch);
            batch = batch.filter((_, k) => 'errorCode' in results[k]!);
          }
        }
        rows.push(await measure('Kinesis', where, o.shards, o.records, o.reps, () => new KinesisSource<ClickEvent>({ stream, bounded: true, deserialize, eventTime: (e) => e.ts, streams: () => streams })));
        client.destroy();
      }
    } finally {
      await endpoint.stop();
    }
  }

  if (wanted.has('kafka')) {
    const broker = await startKafka({ log: (l) => console.log(l) });
    const { Admin, Producer, stringSerializers } = await import('@platformatic/kafka');
    const admin = new Admin({ clientId: 'bench', bootstrapBrokers: [broker.bootstrap] });
    const producer = new Producer({ clientId: 'bench', bootstrapBrokers: [broker.bootstrap], serializers: stringSerializers, idempotent: true });
    try {
      await admin.createTopics({ topics: ['clicks'], partitions: o.partitions, replicas: 1 });
      for (let i = 0; i < events.length; i += 2000) await producer.send({ messages: events.slice(i, i + 2000).map((e) => ({ topic: 'clicks', key: e.user, value: JSON.stringify(e) })) });
      rows.push(
        await measure('Kafka', 'KRaft broker on loopback', o.partitions, o.records, o.reps, () =>
          new KafkaSource<ClickEvent>({ brokers: [broker.bootstrap], topic: 'clicks', groupId: 'bench', bounded: true, deserialize: (v) => JSON.parse(v!.toString('utf8')) as ClickEvent, eventTime: (e) => e.ts }),
        ),
      );
    } finally {
      await producer.close().catch(() => undefined);
      await admin.close().catch(() => undefined);
      await broker.stop();
    }
  }

  const machine = { ...machineInfo(), loadavg1mBefore: round(loadBefore, 2), loadavg1mAfter: round(os.loadavg()[0]!, 2) };
  const notes = [
    'One source subtask reads every split (parallelism 1), bounded: from the first record to what the stream held at its start.',
    'Includes JSON deserialization and the split reader (order, watermarks); nothing downstream of the source.',
    'Records are ~60-byte JSON click events. Median of the timed reads after one untimed warm-up; each read listed in seconds.',
    'The machine is shared (2 cores; other sessions run tests on it): the load average before and after is recorded; above the core count, the broker, the emulator and the client competed for CPU.',
    'Kinesis on the emulator: moto (Python) serves GetRecords on loopback, so the figure is bounded by the emulator, not by Kinesis (2 MB/s per shard on AWS, or 10,000 records per call at 5 calls a second).',
  ];
  writeResults(o.out, { bench: 'source-throughput', date: new Date().toISOString(), command, machine, parameters: o, results: rows, notes });
  console.log(`source throughput: one subtask reading ${o.records} records`);
  console.log(describeMachine(machine));
  console.log(
    markdownTable(
      ['source', 'where', 'splits', 'records/s (median)', 'seconds per read', 'client CPU s'],
      rows.map((r) => [r.source, r.where, String(r.splits), r.medianRecordsPerSecond.toLocaleString('en-US'), r.seconds.join(', '), String(r.clientCpuSecondsMedian)]),
    ),
  );
  for (const n of notes) console.log(`- ${n}`);
  console.log(`rerun: ${command}`);
  console.log(`results: ${o.out}`);
}

await main();
