/**
 * The metadata table's partitions, in one place. Items of one job are spread over several
 * partition keys so that no query reads more than it needs, nothing that grows with the run shares
 * a partition with what is read on every supervision pass, and no partition key takes more than a
 * few hundred writes a second at parallelism 4000-5000 (DynamoDB allows about 1,000 per key):
 *
 *   JOBS                          <jobId>                                               job summaries, for listing
 *   JOB#<jobId>                   META, SUBPART#…, FAILURESEQ, FAILURE#…, RECOVERY#…     the job (constant size), flags, failures
 *   JOB#<jobId>#UNITS#<shard>     UNIT#<unitId>, BEAT#<unitId>                           unit records and their liveness
 *   JOB#<jobId>#CKPT              CKPT#<N>, CKPT_LATEST, CKPT_PENDING#<N>                the checkpoint catalog
 *   JOB#<jobId>#ACK#<N>#<shard>   <unitId>#a<attempt>#<token>#<seq>, <subtaskId>#a<attempt>  acknowledgements of N: a unit's in
 *                                                                                        batches (runtime/checkpoint-io.ts), or one each
 *
 * What grows with parallelism is never a list in one item: the units, regions and queues of a job
 * are computed from its graph (lib/graph/placement.ts), and each unit, flag and acknowledgement is
 * an item of its own (a batch of acknowledgements holds one unit's subtasks, at most ~256 KB).
 *
 * Hot keys are sharded: unit records and heartbeats over `unitShards` partitions (one per
 * UNITS_PER_SHARD units; a unit writes at most about one report a second and a small heartbeat
 * every few seconds), acknowledgements of a checkpoint over `ackShards` partitions (one per
 * SUBTASKS_PER_ACK_SHARD subtasks: every subtask acknowledges within the alignment's few seconds).
 *
 * What is not kept expires through the table's TTL attribute `expiresAt` (epoch seconds;
 * DynamoDB deletes such items for free, some time after): acknowledgements a day after they were
 * written (read only while N is pending), checkpoint decisions (history) and failure events a week
 * after. Readers never depend on an expired item being gone: history is read newest first, with a
 * limit. Pending markers are deleted when N is decided.
 */

export const jobPk = (jobId: string): string => `JOB#${jobId}`;
export const catalogPk = (jobId: string): string => `JOB#${jobId}#CKPT`;
export const unitsPk = (jobId: string, shard: number): string => `JOB#${jobId}#UNITS#${shard}`;
export const ackPk = (jobId: string, checkpointId: number, shard = 0): string => `JOB#${jobId}#ACK#${String(checkpointId).padStart(12, '0')}#${shard}`;

export const META_SK = 'META';
export const UNIT_PREFIX = 'UNIT#';
export const BEAT_PREFIX = 'BEAT#';
export const unitSk = (unitId: string): string => `${UNIT_PREFIX}${unitId}`;
export const beatSk = (unitId: string): string => `${BEAT_PREFIX}${unitId}`;

/** Units per partition of unit records: at ≤ 2 writes a second each, a few hundred writes per key. */
export const UNITS_PER_SHARD = 128;
/** Subtasks per partition of a checkpoint's acknowledgements. */
export const SUBTASKS_PER_ACK_SHARD = 500;

export const unitShardCount = (units: number): number => Math.max(1, Math.ceil(units / UNITS_PER_SHARD));
export const ackShardCount = (subtasks: number): number => Math.max(1, Math.ceil(subtasks / SUBTASKS_PER_ACK_SHARD));

/** The shard of a key among `shards` (FNV-1a, 32 bit): stable across processes. */
export function shardOf(key: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

/** The table's TTL attribute (epoch seconds). */
export const TTL_ATTRIBUTE = 'expiresAt';
/** How long an acknowledgement is kept after it was written. */
export const ACK_TTL_SECONDS = 24 * 3600;
/** How long a checkpoint decision (its history entry) is kept after it was decided. */
export const HISTORY_TTL_SECONDS = 7 * 24 * 3600;
/** How long a failure event (and its recovery pointers) is kept after it began. */
export const FAILURE_TTL_SECONDS = 7 * 24 * 3600;

export const expiresAt = (nowMs: number, ttlSeconds: number): number => Math.floor(nowMs / 1000) + ttlSeconds;
