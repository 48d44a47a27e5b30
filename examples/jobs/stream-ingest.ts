/**
 * Stream ingest into hourly S3 partitions: click events from a stream (Kinesis here, Kafka in
 * kafka-jobs.ts) -> keyBy(user) -> a tumbling event-time hour window per user -> S3, partitioned
 * by hour, exactly once per checkpoint region.
 *
 *   kinesis stream (shards) ─▶ parse ══keyBy(user)══▶ hourly window ─▶ S3 dt=…/hour=…
 *
 * The events are JSON: { user, ts, amount }. `clickEvents` makes a deterministic input for tests,
 * benchmarks and the example's own runs, and `expectedHourly` the output it must produce.
 */
import type { DataStream } from '../../lib/api/job';
import { JobBuilder } from '../../lib/api/job';
import { defineJob } from '../../lib/api/registry';
import { tumblingWindows, type AggregateFunction } from '../../lib/api/windows';
import { KinesisSource } from '../../lib/connectors/kinesis-source';
import { S3PartitionedSink } from '../../lib/connectors/s3-partitioned-sink';

export const HOUR_MS = 3_600_000;
export const CLICKS_START = Date.UTC(2026, 0, 1);

export interface ClickEvent {
  user: string;
  ts: number;
  amount: number;
  [k: string]: string | number;
}

export interface HourlyClicks {
  user: string;
  hourStart: number;
  hour: string;
  events: number;
  amount: number;
  [k: string]: string | number;
}

/** Event i of `n` over `hours` hours of event time, in time order (deterministic). */
export function clickEvent(i: number, n: number, users: number, hours: number): ClickEvent {
  const h = Math.imul(i ^ 0x5bd1e995, 0x27d4eb2d) >>> 0;
  return { user: `u${String(h % users).padStart(4, '0')}`, ts: CLICKS_START + Math.floor((i * hours * HOUR_MS) / n), amount: (h >>> 8) % 100 };
}

export const clickEvents = (n: number, users: number, hours: number): ClickEvent[] => Array.from({ length: n }, (_, i) => clickEvent(i, n, users, hours));

export const hourlyKey = (r: Pick<HourlyClicks, 'user' | 'hourStart'>) => `${r.user}|${r.hourStart}`;

const toHourly = (user: string, hourStart: number, [events, amount]: [number, number]): HourlyClicks => ({
  user,
  hourStart,
  hour: new Date(hourStart).toISOString().slice(0, 13) + ':00Z',
  events,
  amount,
});

/** What the job must write for this input: one row per user and hour. */
export function expectedHourly(events: Iterable<ClickEvent>): Map<string, HourlyClicks> {
  const acc = new Map<string, [number, number]>();
  for (const e of events) {
    const key = hourlyKey({ user: e.user, hourStart: Math.floor(e.ts / HOUR_MS) * HOUR_MS });
    const a = acc.get(key) ?? [0, 0];
    acc.set(key, [a[0] + 1, a[1] + e.amount]);
  }
  const out = new Map<string, HourlyClicks>();
  for (const [key, counts] of acc) {
    const [user, hourStart] = key.split('|');
    out.set(key, toHourly(user!, Number(hourStart), counts));
  }
  return out;
}

const perHour: AggregateFunction<ClickEvent, [number, number], [number, number]> = {
  createAccumulator: () => [0, 0],
  add: (e, [events, amount]) => [events + 1, amount + e.amount],
  getResult: (a) => a,
  merge: (a, b) => [a[0] + b[0], a[1] + b[1]],
};

/** The part after the source: keyBy(user) -> hour windows -> S3 hourly partitions. */
export function hourlyToS3(events: DataStream<ClickEvent>): void {
  events
    .keyBy((e) => e.user)
    .window(tumblingWindows(HOUR_MS), (e) => e.ts)
    .aggregate('hourly', perHour, (user, hour, counts) => toHourly(user, hour.start, counts))
    .sink('s3-sink', () => new S3PartitionedSink<HourlyClicks>({ prefix: 'output/{jobId}', eventTime: (r) => r.hourStart, successMarkers: true }));
}

export const parseClick = (bytes: Uint8Array): ClickEvent => JSON.parse(Buffer.from(bytes).toString('utf8')) as ClickEvent;

export const kinesisIngestJob = defineJob({
  name: 'kinesis-ingest',
  description: 'Kinesis stream -> keyBy(user) -> hourly window per user -> S3 hourly partitions',
  params: {
    parallelism: { type: 'number', default: 2, integer: true, min: 1, max: 256, description: 'subtasks per operator (shard N is read by subtask N % parallelism)' },
    stream: { type: 'string', default: 'clicks', description: 'Kinesis stream name' },
    bounded: { type: 'boolean', default: false, description: 'read what the stream held at the first start, then finish' },
    start: { type: 'string', default: 'trim-horizon', description: "where shards without a checkpointed position start: 'trim-horizon' or 'latest'" },
    recordsPerCall: { type: 'number', default: 10_000, integer: true, min: 1, max: 10_000, description: 'records per GetRecords call (lower it to slow the read)' },
  },
  build(params) {
    if (params.start !== 'trim-horizon' && params.start !== 'latest') throw new Error(`parameter 'start' must be 'trim-horizon' or 'latest', got '${params.start}'`);
    const start = params.start;
    const job = new JobBuilder('kinesis-ingest', { parallelism: params.parallelism });
    hourlyToS3(
      job.source('kinesis', () => new KinesisSource<ClickEvent>({
        stream: params.stream,
        start,
        bounded: params.bounded,
        recordsPerCall: params.recordsPerCall,
        deserialize: parseClick,
        eventTime: (e) => e.ts,
      })),
    );
    return job.build();
  },
});
