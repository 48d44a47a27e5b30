/**
 * Kafka-fed jobs end to end (npm run test:kafka): a real Kafka broker on loopback, the emulator,
 * child-process task units.
 *
 * - kafka-ingest: a topic of click events -> hourly windows per user -> the exactly-once S3 sink;
 *   a source unit is killed (SIGKILL) once a checkpoint has completed, under `region` failover; the
 *   committed output equals what the input says, and the consumer group holds committed offsets.
 * - kafka-recommendations: two topics joined per user; one recommendation per event, none twice.
 */
import { Admin, Producer, stringSerializers } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { startKafka, type KafkaBroker } from '../../lib/local/kafka-broker';
import { LocalRuntime } from '../../lib/local/local-runtime';
import { jobRegistry } from '../../examples/jobs';
import { readOutputLines } from '../../examples/jobs/output-check';
import { eventAt, featureAt, type JoinShape, type Recommendation } from '../../examples/jobs/recommendation-join';
import { clickEvents, expectedHourly, hourlyKey, type HourlyClicks } from '../../examples/jobs/stream-ingest';

const config = { ...loadConfig(), table: 'sluice-e2e-kafka', bucket: 'sluice-e2e-kafka', queuePrefix: 'e2ekafka' };
let runtime: LocalRuntime;
let broker: KafkaBroker;
let admin: Admin;
let producer: Producer<string, string, string, string>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  broker = await startKafka({ log: (l) => console.log(l) });
  admin = new Admin({ clientId: 'e2e-admin', bootstrapBrokers: [broker.bootstrap] });
  // Idempotent: a send retried after a timeout on a loaded machine must not write its records twice.
  producer = new Producer({ clientId: 'e2e-producer', bootstrapBrokers: [broker.bootstrap], serializers: stringSerializers, idempotent: true });
  runtime = new LocalRuntime(config, jobRegistry);
  await runtime.prepare();
});
afterAll(async () => {
  await producer?.close().catch(() => undefined);
  await admin?.close().catch(() => undefined);
  await runtime?.close();
  await broker?.stop();
});

async function produce(topic: string, partitions: number, records: { key: string; value: unknown }[]): Promise<void> {
  await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
  for (let i = 0; i < records.length; i += 1000) {
    await producer.send({ messages: records.slice(i, i + 1000).map((r) => ({ topic, key: r.key, value: JSON.stringify(r.value) })) });
  }
  // The topic holds exactly the input: the output check compares with it.
  const [listed] = await admin.listOffsets({ topics: [{ name: topic, partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n })) }] });
  expect(listed!.partitions.reduce((n, p) => n + Number(p.offset), 0)).toBe(records.length);
}

describe('Kafka-fed jobs', () => {
  it('kafka-ingest: exact hourly aggregates after a source unit is killed', async () => {
    const events = clickEvents(24_000, 150, 6);
    await produce('clicks', 4, events.map((e) => ({ key: e.user, value: e })));
    const job = await runtime.service.submit({
      job: 'kafka-ingest',
      // 1,500 records a second per source subtask: the read spans several checkpoints.
      params: { parallelism: 2, brokers: broker.bootstrap, topic: 'clicks', group: 'e2e-ingest', bounded: true, rate: 1500 },
      failover: 'region',
      heartbeatTimeoutSeconds: 20,
      checkpoint: { handle: 'regional', timeoutSeconds: 10 },
    });
    const controller = runtime.controller({ pollMs: 250, checkpointEveryMs: 700 });
    let finished = false;
    const running = controller.run(job.jobId).finally(() => (finished = true));
    // Once a checkpoint has completed and its offsets are in the consumer group (observed, not timed), kill a source unit.
    const committed = async () => {
      const [group] = await admin.listConsumerGroupOffsets({ groups: ['e2e-ingest'] });
      return (group?.topics.find((t) => t.name === 'clicks')?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.committedOffset)), 0);
    };
    let killed: string | undefined;
    let committedBeforeKill = 0;
    while (!finished && !killed) {
      const completed = (await controller.driver?.history())?.some((h) => h.outcome.status === 'completed');
      committedBeforeKill = completed ? await committed() : 0;
      const units = (await runtime.jobs.getUnits(job.jobId)).filter((u) => u.status === 'RUNNING' && u.subtasks.some((s) => s.startsWith('kafka#')));
      if (committedBeforeKill > 0 && units.length > 0 && runtime.launcher.kill(job.jobId, units[0]!.unitId)) killed = units[0]!.unitId;
      else await sleep(100);
    }
    const view = await running;
    expect(view.job.status).toBe('FINISHED');
    expect(killed).toBeDefined();
    expect(controller.supervisor.failures.map((f) => f.unitId)).toContain(killed);

    const { lines } = await readOutputLines(runtime.ports.clients.s3, config.bucket, `output/${job.jobId}/`);
    const rows = lines.map((l) => JSON.parse(l) as HourlyClicks);
    const byKey = new Map(rows.map((r) => [hourlyKey(r), r]));
    expect(byKey.size).toBe(rows.length);
    expect(byKey).toEqual(expectedHourly(events));
    // A completed checkpoint committed its offsets to the group (for lag), and not past the input.
    expect(committedBeforeKill).toBeGreaterThan(0);
    expect(committedBeforeKill).toBeLessThanOrEqual(events.length);
  });

  it('kafka-recommendations: one recommendation per event, none twice', async () => {
    const shape: JoinShape = { events: 6000, featureUpdates: 1500, users: 200, partitions: 1, minutes: 60 };
    const events = Array.from({ length: shape.events }, (_, i) => eventAt(shape, 0, i));
    const features = Array.from({ length: shape.featureUpdates }, (_, i) => featureAt(shape, 0, i));
    await produce('events', 3, events.map((e) => ({ key: e.user, value: e })));
    await produce('features', 3, features.map((f) => ({ key: f.user, value: f })));
    const job = await runtime.service.submit({
      job: 'kafka-recommendations',
      params: { parallelism: 2, brokers: broker.bootstrap, events: 'events', features: 'features', group: 'e2e-join', bounded: true },
      failover: 'region',
      heartbeatTimeoutSeconds: 20,
      checkpoint: { handle: 'regional', timeoutSeconds: 10 },
    });
    const view = await runtime.controller({ pollMs: 250, checkpointEveryMs: 700 }).run(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    const { lines } = await readOutputLines(runtime.ports.clients.s3, config.bucket, `output/${job.jobId}/`);
    const rows = lines.map((l) => JSON.parse(l) as Recommendation);
    expect(rows).toHaveLength(events.length);
    expect(new Map(rows.map((r) => [r.id, r.user]))).toEqual(new Map(events.map((e) => [e.id, e.user])));
  });
});
