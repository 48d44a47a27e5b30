/**
 * The demo job: generator -> parse/enrich -> keyBy(user) -> hourly tumbling window -> S3 sink.
 * The generator and parse are chained in one task; the keyBy crosses SQS queues; the aggregate
 * and the sink are chained in the other task.
 */
import { JobBuilder } from '../../lib/api/job';
import { defineJob, typedParams, type JobParams, type ParamSpecs } from '../../lib/api/registry';
import { tumblingWindows, type AggregateFunction } from '../../lib/api/windows';
import { evenShare, GeneratorSource } from '../../lib/connectors/generator-source';
import { S3PartitionedSink } from '../../lib/connectors/s3-partitioned-sink';

export const HOUR_MS = 3_600_000;
/** Event time of the first generated record: 2026-01-01T00:00:00Z. */
export const DEMO_START = Date.UTC(2026, 0, 1);
const ACTIONS = ['view', 'click', 'cart', 'buy'] as const;
const SEGMENTS = ['bronze', 'silver', 'gold'] as const;

export interface DemoShape {
  records: number;
  users: number;
  hours: number;
  partitions: number;
}

export interface Enriched {
  ts: number;
  user: string;
  action: string;
  amount: number;
  segment: string;
}

export interface HourlyAggregate {
  user: string;
  segment: string;
  hourStart: number;
  hour: string;
  events: number;
  buys: number;
  amount: number;
  [k: string]: string | number;
}

/** Records in partition p: the input is dealt round-robin over the partitions. */
export const partitionSize = (shape: DemoShape, p: number) => evenShare(shape.records, shape.partitions, p);

/** The raw line at (partition, offset): deterministic, so the input can be replayed or recomputed. */
export function demoLine(shape: DemoShape, partition: number, offset: number): string {
  const i = offset * shape.partitions + partition;
  const ts = DEMO_START + Math.floor((i * shape.hours * HOUR_MS) / shape.records);
  const h = mix(i);
  const user = `user-${String(h % shape.users).padStart(5, '0')}`;
  const action = ACTIONS[(h >>> 12) % ACTIONS.length]!;
  const amount = action === 'buy' ? ((h >>> 4) % 100) + 1 : 0;
  return `${ts},${user},${action},${amount}`;
}

export function parseAndEnrich(line: string): Enriched {
  const [ts, user, action, amount] = line.split(',');
  const n = Number(user!.slice(5));
  return { ts: Number(ts), user: user!, action: action!, amount: Number(amount), segment: SEGMENTS[n % SEGMENTS.length]! };
}

/** Per user and event-time hour: segment, events, buys and amount (the window's accumulator). */
type HourlyCounts = [segment: string, events: number, buys: number, amount: number];

export const hourlyCounts: AggregateFunction<Enriched, HourlyCounts, HourlyCounts> = {
  createAccumulator: () => ['', 0, 0, 0],
  add: (e, [, events, buys, amount]) => [e.segment, events + 1, buys + (e.action === 'buy' ? 1 : 0), amount + e.amount],
  getResult: (counts) => counts,
  merge: (a, b) => [b[0] || a[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]],
};

const toAggregate = (user: string, segment: string, hourStart: number, [events, buys, amount]: [number, number, number]): HourlyAggregate => ({
  user,
  segment,
  hourStart,
  hour: new Date(hourStart).toISOString().slice(0, 13) + ':00Z',
  events,
  buys,
  amount,
});

/** The aggregates the job must produce, computed directly from the input (for verification). */
export function expectedAggregates(shape: DemoShape): Map<string, HourlyAggregate> {
  const acc = new Map<string, { segment: string; slot: [number, number, number] }>();
  for (let p = 0; p < shape.partitions; p++) {
    const n = partitionSize(shape, p);
    for (let o = 0; o < n; o++) {
      const e = parseAndEnrich(demoLine(shape, p, o));
      const key = `${e.user}|${Math.floor(e.ts / HOUR_MS) * HOUR_MS}`;
      let a = acc.get(key);
      if (!a) acc.set(key, (a = { segment: e.segment, slot: [0, 0, 0] }));
      a.slot[0] += 1;
      a.slot[1] += e.action === 'buy' ? 1 : 0;
      a.slot[2] += e.amount;
    }
  }
  const out = new Map<string, HourlyAggregate>();
  for (const [key, { segment, slot }] of acc) {
    const [user, hourStart] = key.split('|');
    out.set(key, toAggregate(user!, segment, Number(hourStart), slot));
  }
  return out;
}

export const aggregateKey = (a: HourlyAggregate) => `${a.user}|${a.hourStart}`;

export function demoShape(params: JobParams): DemoShape {
  const { records, users, hours, partitions } = typedParams('demo', demoParams, params);
  return { records, users, hours, partitions };
}

const demoParams = {
  parallelism: { type: 'number', default: 4, integer: true, min: 1, max: 256, description: 'subtasks per operator' },
  records: { type: 'number', default: 1_000_000, integer: true, min: 1, max: 1_000_000_000, description: 'input records (bounded)' },
  users: { type: 'number', default: 1000, integer: true, min: 1, max: 99_999, description: 'distinct users (keys)' },
  hours: { type: 'number', default: 6, integer: true, min: 1, max: 24 * 365, description: 'event-time span of the input' },
  partitions: { type: 'number', default: 16, integer: true, min: 1, max: 4096, description: 'generator partitions' },
  rate: { type: 'number', default: 0, min: 0, description: 'records per second per source subtask (0: unlimited)' },
} as const satisfies ParamSpecs;

export const demoJob = defineJob({
  name: 'demo',
  description: 'generator -> parse/enrich -> keyBy(user) -> hourly aggregate per user -> S3 (hourly partitions)',
  params: demoParams,
  build(params) {
    const shape = { records: params.records, users: params.users, hours: params.hours, partitions: params.partitions };
    const job = new JobBuilder('demo', { parallelism: params.parallelism });
    job
      .source('generator', () => new GeneratorSource<string>({
        partitions: shape.partitions,
        recordsPerPartition: (p) => partitionSize(shape, p),
        ratePerSecond: params.rate,
        generate: (p, o) => demoLine(shape, p, o),
        eventTime: (line) => Number(line.slice(0, line.indexOf(','))),
      }))
      .map('parse', parseAndEnrich)
      .keyBy((e) => e.user)
      .window(tumblingWindows(HOUR_MS), (e) => e.ts).aggregate('hourly-aggregate', hourlyCounts, (user, hour, [segment, ...counts]) => toAggregate(user, segment, hour.start, counts))
      .sink('s3-sink', () => new S3PartitionedSink<HourlyAggregate>({ prefix: 'output/{jobId}', eventTime: (a) => a.hourStart, successMarkers: true }));
    return job.build();
  },
});

/** A 32-bit integer mix (splitmix-like), so generated fields look random but are reproducible. */
function mix(x: number): number {
  let h = (x ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
