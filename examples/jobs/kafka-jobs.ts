/**
 * Jobs fed by Kafka (Amazon MSK or any Kafka):
 *
 * - `kafka-recommendations`: behaviour events and user feature updates, two topics, each
 *   keyBy(user), joined in one keyed operator that keeps each user's latest features and emits one
 *   recommendation per event, into S3 (the recommendation-join example, fed by streams):
 *
 *     topic events   ──keyBy(user)──╮
 *                                   ├──▶ join (latest features per user) ─▶ S3
 *     topic features ──keyBy(user)──╯
 *
 * - `kafka-ingest`: click events -> hourly windows per user -> S3 hourly partitions (as kinesis-ingest).
 *
 * Both take the brokers as a parameter (`brokers=host:port,...`); TLS and SASL (MSK IAM) are
 * options of KafkaSource (README, job section).
 */
import { JobBuilder } from '../../lib/api/job';
import { defineJob } from '../../lib/api/registry';
import { KafkaSource } from '../../lib/connectors/kafka-source';
import { S3PartitionedSink } from '../../lib/connectors/s3-partitioned-sink';
import { RecommendationJoin, type BehaviourEvent, type FeatureUpdate, type Recommendation } from './recommendation-join';
import { hourlyToS3, type ClickEvent } from './stream-ingest';

const json = <T>(value: Buffer | null): T => JSON.parse(value ? value.toString('utf8') : 'null') as T;
const brokersOf = (list: string) => list.split(',').map((b) => b.trim()).filter(Boolean);

export const kafkaRecommendationJoinJob = defineJob({
  name: 'kafka-recommendations',
  description: 'Kafka topics events + features -> keyBy(user) -> keyed join (latest features per user) -> one recommendation per event -> S3',
  params: {
    parallelism: { type: 'number', default: 2, integer: true, min: 1, max: 1024, description: 'subtasks per operator (partition P is read by subtask P % parallelism)' },
    brokers: { type: 'string', default: '127.0.0.1:9092', description: 'bootstrap brokers, host:port,...' },
    events: { type: 'string', default: 'events', description: 'topic of behaviour events' },
    features: { type: 'string', default: 'features', description: 'topic of user feature updates' },
    group: { type: 'string', default: 'sluice-recommendations', description: 'consumer group the completed checkpoints commit to (lag monitoring)' },
    bounded: { type: 'boolean', default: false, description: 'read what the topics held at the first start, then finish' },
  },
  build(params) {
    const brokers = brokersOf(params.brokers);
    const job = new JobBuilder('kafka-recommendations', { parallelism: params.parallelism });
    const events = job
      .source('events', () => new KafkaSource<BehaviourEvent>({ brokers, topic: params.events, groupId: params.group, bounded: params.bounded, deserialize: json, eventTime: (e) => e.ts }))
      .keyBy((e) => e.user);
    const features = job
      .source('features', () => new KafkaSource<FeatureUpdate>({ brokers, topic: params.features, groupId: params.group, bounded: params.bounded, deserialize: json, eventTime: (f) => f.ts }))
      .keyBy((f) => f.user);
    events
      .connect(features)
      .process<Recommendation>('join', () => new RecommendationJoin())
      .sink('s3-sink', () => new S3PartitionedSink<Recommendation>({ prefix: 'output/{jobId}', eventTime: (r) => r.ts, successMarkers: true }));
    return job.build();
  },
});

export const kafkaIngestJob = defineJob({
  name: 'kafka-ingest',
  description: 'Kafka topic -> keyBy(user) -> hourly window per user -> S3 hourly partitions',
  params: {
    parallelism: { type: 'number', default: 2, integer: true, min: 1, max: 1024, description: 'subtasks per operator (partition P is read by subtask P % parallelism)' },
    brokers: { type: 'string', default: '127.0.0.1:9092', description: 'bootstrap brokers, host:port,...' },
    topic: { type: 'string', default: 'clicks', description: 'topic of click events (JSON: user, ts, amount)' },
    group: { type: 'string', default: 'sluice-ingest', description: 'consumer group the completed checkpoints commit to (lag monitoring)' },
    bounded: { type: 'boolean', default: false, description: 'read what the topic held at the first start, then finish' },
    rate: { type: 'number', default: 0, min: 0, description: 'records per second per source subtask (0: unlimited)' },
  },
  build(params) {
    const job = new JobBuilder('kafka-ingest', { parallelism: params.parallelism });
    hourlyToS3(
      job.source('kafka', () => new KafkaSource<ClickEvent>({
        brokers: brokersOf(params.brokers),
        topic: params.topic,
        groupId: params.group,
        bounded: params.bounded,
        ...(params.rate > 0 ? { ratePerSecond: params.rate } : {}),
        deserialize: json,
        eventTime: (e) => e.ts,
      })),
    );
    return job.build();
  },
});
