/**
 * Real-time recommendation join: two generator sources, both keyed by user, joined in one keyed
 * operator, written to S3.
 *
 *   events   (behaviour events: view/click/cart/buy of an item)  --keyBy(user)--\
 *                                                                               join -> s3-sink
 *   features (user feature updates: segment, favourite category) --keyBy(user)--/
 *
 * The join keeps the latest feature version of each user (keyed value state; "latest" is the
 * highest version seen so far, versions grow with event time) and enriches every behaviour event
 * with it. Every event yields exactly ONE output record carrying the event's unique id, so the
 * expected output ids are known from the input alone: loss = expected ids - seen ids. Which
 * feature version an event meets depends on arrival order, so only the ids, the users and that a
 * feature version (if any) belongs to the same user are checked, not the version itself.
 *
 * Tasks: `events` and `features` (sources), `join` (chained with the sink). Both edges are hash
 * (all-to-all), so the whole job is one checkpoint region.
 */
import { JobBuilder } from '../../lib/api/job';
import { defineJob, typedParams, type JobParams } from '../../lib/api/registry';
import type { KeyedProcessContext, KeyedProcessFunction } from '../../lib/api/functions';
import type { JobGraph } from '../../lib/graph/job-graph';
import { evenShare, GeneratorSource } from '../../lib/connectors/generator-source';
import { S3PartitionedSink } from '../../lib/connectors/s3-partitioned-sink';

/** Event time of the first generated record: 2026-01-01T00:00:00Z. */
export const JOIN_START = Date.UTC(2026, 0, 1);
const MINUTE_MS = 60_000;
const ACTIONS = ['view', 'click', 'cart', 'buy'] as const;
const SEGMENTS = ['new', 'casual', 'regular', 'loyal'] as const;
const CATEGORIES = ['books', 'games', 'garden', 'kitchen', 'music', 'sports', 'toys', 'travel'] as const;
const ITEMS_PER_CATEGORY = 500;

export interface JoinShape {
  /** Behaviour events in all (each yields one output record). */
  events: number;
  /** Feature updates in all. */
  featureUpdates: number;
  users: number;
  /** Generator partitions of each source. */
  partitions: number;
  /** Event-time span of both inputs. */
  minutes: number;
}

export type BehaviourEvent = { id: string; user: string; ts: number; action: string; item: string };
export type FeatureUpdate = { user: string; version: number; ts: number; segment: string; category: string };
export type Recommendation = {
  id: string;
  user: string;
  ts: number;
  action: string;
  item: string;
  /** Feature version the event was enriched with (null: none of the user's features seen yet). */
  featureVersion: number | null;
  segment: string;
  recommended: string;
};

const joinParams = {
  parallelism: { type: 'number', default: 8, integer: true, min: 1, max: 10_000, description: 'subtasks per operator' },
  events: { type: 'number', default: 1_000_000, integer: true, min: 1, max: 1_000_000_000, description: 'behaviour events (bounded); one output record each' },
  featureUpdates: { type: 'number', default: 100_000, integer: true, min: 1, max: 1_000_000_000, description: 'user feature updates (bounded)' },
  users: { type: 'number', default: 10_000, integer: true, min: 1, max: 999_999, description: 'distinct users (join keys)' },
  partitions: { type: 'number', default: 64, integer: true, min: 1, max: 100_000, description: 'generator partitions of each source' },
  minutes: { type: 'number', default: 120, integer: true, min: 1, max: 60 * 24 * 365, description: 'event-time span of both inputs' },
  rate: { type: 'number', default: 0, min: 0, description: 'behaviour events per second per source subtask (0: unlimited); feature updates are paced to the same span' },
  chainSink: { type: 'boolean', default: true, description: 'chain the sink to the join (false: a queue between them)' },
} as const;

export function joinShape(given: JobParams): JoinShape {
  const { events, featureUpdates, users, partitions, minutes } = typedParams('recommendation-join', joinParams, given);
  return { events, featureUpdates, users, partitions, minutes };
}

export const eventPartitionSize = (shape: JoinShape, p: number) => evenShare(shape.events, shape.partitions, p);
export const featurePartitionSize = (shape: JoinShape, p: number) => evenShare(shape.featureUpdates, shape.partitions, p);

const userName = (n: number) => `u${String(n).padStart(6, '0')}`;

/** The user of behaviour event number i (global index). */
export const eventUser = (shape: JoinShape, i: number) => userName(mix(i) % shape.users);
/** The user of feature version v (global index). */
export const featureUser = (shape: JoinShape, v: number) => userName(mix(v ^ 0x5bd1e995) % shape.users);

/** Behaviour event at (partition, offset): deterministic, so the input can be replayed or recomputed. */
export function eventAt(shape: JoinShape, partition: number, offset: number): BehaviourEvent {
  const i = offset * shape.partitions + partition;
  const h = mix(i + 0x1234567);
  const category = CATEGORIES[h % CATEGORIES.length]!;
  return {
    id: `ev-${i}`,
    user: eventUser(shape, i),
    ts: JOIN_START + Math.floor((i * shape.minutes * MINUTE_MS) / shape.events),
    action: ACTIONS[(h >>> 8) % ACTIONS.length]!,
    item: `${category}-${(h >>> 12) % ITEMS_PER_CATEGORY}`,
  };
}

/** Feature update at (partition, offset); its version is its global index (grows with event time). */
export function featureAt(shape: JoinShape, partition: number, offset: number): FeatureUpdate {
  const v = offset * shape.partitions + partition;
  const h = mix(v + 0x7654321);
  return {
    user: featureUser(shape, v),
    version: v,
    ts: JOIN_START + Math.floor((v * shape.minutes * MINUTE_MS) / shape.featureUpdates),
    segment: SEGMENTS[h % SEGMENTS.length]!,
    category: CATEGORIES[(h >>> 8) % CATEGORIES.length]!,
  };
}

type FeatureState = { version: number; segment: string; category: string };

/** Recommends an item of the user's favourite category (or of the event's category without features). */
export function recommend(event: BehaviourEvent, features: FeatureState | undefined): string {
  const category = features?.category ?? event.item.slice(0, event.item.indexOf('-'));
  const seed = mix(Number(event.id.slice(3)) ^ (features?.version ?? 0));
  return `${category}-${seed % ITEMS_PER_CATEGORY}`;
}

/** The keyed join: input 0 = behaviour events, input 1 = feature updates. */
export class RecommendationJoin implements KeyedProcessFunction<BehaviourEvent | FeatureUpdate, Recommendation> {
  processElement(record: BehaviourEvent | FeatureUpdate, ctx: KeyedProcessContext<Recommendation>): void {
    if (ctx.input === 1) {
      const f = record as FeatureUpdate;
      const known = ctx.state.get<FeatureState>('features');
      if (!known || f.version > known.version) ctx.state.set('features', { version: f.version, segment: f.segment, category: f.category });
      return;
    }
    const e = record as BehaviourEvent;
    const features = ctx.state.get<FeatureState>('features');
    ctx.emit({
      id: e.id,
      user: e.user,
      ts: e.ts,
      action: e.action,
      item: e.item,
      featureVersion: features?.version ?? null,
      segment: features?.segment ?? 'unknown',
      recommended: recommend(e, features),
    });
  }
}

export interface RecommendationJoinOptions {
  /** Replaces the join function (tests wrap it to inject failures). */
  join?: () => KeyedProcessFunction<BehaviourEvent | FeatureUpdate, Recommendation>;
}

export function buildRecommendationJoin(given: JobParams, options: RecommendationJoinOptions = {}): JobGraph {
  const params = typedParams('recommendation-join', joinParams, given);
  const shape = joinShape(params);
  const rate = params.rate;
  // Feature updates are paced so both sources span the same wall time.
  // Paced to the same span as the events, however low (a floor of 1/s would put 4000 updates/s on a
  // P=4000 job whose events trickle in at 1 a minute per subtask: bench:scale's low rate).
  const featureRate = rate > 0 ? (rate * shape.featureUpdates) / shape.events : 0;
  const job = new JobBuilder('recommendation-join', { parallelism: params.parallelism });
  const events = job
    .source('events', () => new GeneratorSource<BehaviourEvent>({
      partitions: shape.partitions,
      recordsPerPartition: (p) => eventPartitionSize(shape, p),
      ratePerSecond: rate,
      generate: (p, o) => eventAt(shape, p, o),
      eventTime: (e) => e.ts,
    }))
    .keyBy((e) => e.user);
  const features = job
    .source('features', () => new GeneratorSource<FeatureUpdate>({
      partitions: shape.partitions,
      recordsPerPartition: (p) => featurePartitionSize(shape, p),
      ratePerSecond: featureRate,
      generate: (p, o) => featureAt(shape, p, o),
      eventTime: (f) => f.ts,
    }))
    .keyBy((f) => f.user);
  events
    .connect(features)
    .process<Recommendation>('join', options.join ?? (() => new RecommendationJoin()))
    .sink('s3-sink', () => new S3PartitionedSink<Recommendation>({ prefix: 'output/{jobId}', eventTime: (r) => r.ts, successMarkers: true }), {
      // Unchained, the join's output is in the sink's queue as soon as it is produced: a failed
      // join subtask then loses only what its producers dropped while it was down.
      chaining: params.chainSink !== false,
    });
  return job.build();
}

export const recommendationJoinJob = defineJob({
  name: 'recommendation-join',
  description: 'events + user features -> keyBy(user) -> keyed join (latest features per user) -> one recommendation per event -> S3',
  params: joinParams,
  build: (params) => buildRecommendationJoin(params),
});

/** The output the job must produce, as event id -> user (computed from the input alone). */
export function expectedRecommendations(shape: JoinShape): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < shape.events; i++) out.set(`ev-${i}`, eventUser(shape, i));
  return out;
}

export interface JoinCheck {
  expected: number;
  seen: number;
  /** Expected ids not in the output. */
  missing: string[];
  /** Ids seen more than once. */
  duplicates: string[];
  /** Ids that are not events of the input. */
  unexpected: string[];
  /** Records whose user is not the event's user, or whose feature version belongs to another user. */
  wrong: string[];
}

/** Compares output records with the expected output: loss, duplicates and join mistakes. */
export function checkRecommendations(shape: JoinShape, records: Iterable<Recommendation>): JoinCheck {
  const seen = new Set<string>();
  const duplicates: string[] = [];
  const unexpected: string[] = [];
  const wrong: string[] = [];
  for (const r of records) {
    const i = /^ev-(\d+)$/.exec(r.id) ? Number(r.id.slice(3)) : -1;
    if (!(i >= 0 && i < shape.events)) {
      unexpected.push(r.id);
      continue;
    }
    if (seen.has(r.id)) duplicates.push(r.id);
    seen.add(r.id);
    if (r.user !== eventUser(shape, i)) wrong.push(r.id);
    else if (r.featureVersion !== null && !(r.featureVersion >= 0 && r.featureVersion < shape.featureUpdates && featureUser(shape, r.featureVersion) === r.user)) wrong.push(r.id);
  }
  const missing: string[] = [];
  for (let i = 0; i < shape.events; i++) if (!seen.has(`ev-${i}`)) missing.push(`ev-${i}`);
  return { expected: shape.events, seen: seen.size, missing, duplicates, unexpected, wrong };
}

/** A 32-bit integer mix (splitmix-like), so generated fields look random but are reproducible. */
function mix(x: number): number {
  let h = (x ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
