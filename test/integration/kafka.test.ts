/**
 * The Kafka source against a real Apache Kafka broker (KRaft, one node) on loopback, started here
 * and stopped after (lib/local/kafka-broker.ts; its jars are fetched once from Maven Central):
 * partitions as splits, exact replay from a checkpoint, records of aborted transactions skipped,
 * bounded reads, offsets committed to the consumer group after a checkpoint completes (for lag),
 * and a missing topic named. The job end to end with a unit killed: test/kafka (npm run test:kafka).
 */
import { Admin, Producer, stringSerializers } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json, RuntimeContext } from '../../lib/api/functions';
import { KafkaSource, KafkaSourceError } from '../../lib/connectors/kafka-source';
import { startKafka, type KafkaBroker } from '../../lib/local/kafka-broker';
import { MemoryBlobStore } from '../../lib/memory';

type Ev = { p: number; n: number };
let broker: KafkaBroker;
let admin: Admin;
let producer: Producer<string, string, string, string>;

beforeAll(async () => {
  broker = await startKafka({ log: (l) => console.log(l) });
  admin = new Admin({ clientId: 'it-admin', bootstrapBrokers: [broker.bootstrap] });
  // Idempotent: a send retried after a timeout on a loaded machine must not write its records twice.
  producer = new Producer({ clientId: 'it-producer', bootstrapBrokers: [broker.bootstrap], serializers: stringSerializers, idempotent: true });
});
afterAll(async () => {
  await producer?.close().catch(() => undefined);
  await admin?.close().catch(() => undefined);
  await broker?.stop();
});

async function topicWith(partitions: number, perPartition: number): Promise<string> {
  const topic = `t-${Math.random().toString(36).slice(2, 8)}`;
  await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
  for (let p = 0; p < partitions; p++) {
    for (let i = 0; i < perPartition; i += 500) {
      const messages = Array.from({ length: Math.min(500, perPartition - i) }, (_, k) => ({ topic, partition: p, key: `k${i + k}`, value: JSON.stringify({ p, n: i + k }) }));
      await producer.send({ messages });
    }
  }
  return topic;
}

const ctx = (subtaskIndex: number, parallelism: number): RuntimeContext => ({ jobId: 'it', operatorId: 'kafka', subtaskIndex, parallelism, attempt: 0, blobs: new MemoryBlobStore() });
const source = (topic: string, options: Partial<ConstructorParameters<typeof KafkaSource<Ev>>[0]> = {}) =>
  new KafkaSource<Ev>({ brokers: [broker.bootstrap], topic, groupId: `g-${topic}`, deserialize: (v) => JSON.parse(v!.toString()) as Ev, eventTime: (e) => e.n, ...options });

async function drain(src: KafkaSource<Ev>, until: (got: Ev[]) => boolean, max = 250): Promise<Ev[]> {
  const got: Ev[] = [];
  for (let i = 0; i < 2000 && !until(got); i++) {
    const batch = await src.poll(max);
    got.push(...batch.records);
    if (batch.done) break;
  }
  return got;
}

describe('Kafka source on a real broker', () => {
  it('reads partition P in subtask P % parallelism, each partition in order, and ends a bounded read', async () => {
    const topic = await topicWith(3, 400);
    for (const [i, partitions] of [[0, [0, 2]], [1, [1]]] as const) {
      const src = source(topic, { bounded: true });
      await src.open(ctx(i, 2));
      const got = await drain(src, () => false);
      await src.close();
      expect(new Set(got.map((e) => e.p))).toEqual(new Set(partitions));
      for (const p of partitions) expect(got.filter((e) => e.p === p).map((e) => e.n)).toEqual([...Array(400).keys()]);
    }
  });

  it('a restore from a checkpoint replays exactly what came after it; completed checkpoints commit to the group', async () => {
    const topic = await topicWith(2, 1000);
    const first = source(topic);
    await first.open(ctx(0, 1));
    const before = await drain(first, (g) => g.length >= 700);
    const offsets = JSON.parse(JSON.stringify(first.snapshotOffsets(3))) as Json;
    await first.checkpointComplete(3);
    const after = await drain(first, (g) => g.length >= 900);
    await first.close();
    const committed = await admin.listConsumerGroupOffsets({ groups: [`g-${topic}`] });
    const byPartition = committed[0]!.topics.find((t) => t.name === topic)!.partitions.map((p) => Number(p.committedOffset));
    // What the checkpoint held, as the next offsets to read: every record emitted before it.
    expect(byPartition.reduce((a, b) => a + b, 0)).toBe(before.length);

    const restored = source(topic);
    await restored.open(ctx(0, 1));
    restored.restoreOffsets(offsets);
    expect(await drain(restored, (g) => g.length >= 900)).toEqual(after);
    await restored.close();
  });

  it('skips the records of an aborted transaction', async () => {
    const topic = await topicWith(1, 0);
    const tx = new Producer({ clientId: 'it-tx', bootstrapBrokers: [broker.bootstrap], serializers: stringSerializers, idempotent: true, transactionalId: `tx-${topic}` });
    try {
      const send = async (from: number, commit: boolean) => {
        const t = await tx.beginTransaction();
        await t.send({ messages: Array.from({ length: 10 }, (_, k) => ({ topic, partition: 0, key: 'k', value: JSON.stringify({ p: 0, n: from + k }) })) });
        await (commit ? t.commit() : t.abort());
      };
      await send(0, true);
      await send(100, false);
      await send(10, true);
    } finally {
      await tx.close();
    }
    // A bounded read stops at the last stable offset it sees when it opens. The transaction
    // coordinator writes the commit markers after commit() returns, so on a loaded machine the
    // offset can still stand before the last transaction (a clean clone read 0..9 only): read
    // again until it is past it. Aborted records must never appear, whatever the read stops at.
    let got: Ev[] = [];
    for (let until = Date.now() + 60_000; ; ) {
      const src = source(topic, { bounded: true });
      await src.open(ctx(0, 1));
      got = await drain(src, () => false);
      await src.close();
      expect(got.filter((e) => e.n >= 100)).toEqual([]);
      if (got.length >= 20 || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(got.map((e) => e.n)).toEqual([...Array(20).keys()]);
  });

  it('names a topic that does not exist', async () => {
    const src = source('no-such-topic');
    await expect(src.open(ctx(0, 1))).rejects.toThrow(KafkaSourceError);
    await src.close();
  });
});
