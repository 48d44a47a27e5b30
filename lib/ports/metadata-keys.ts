/**
 * The metadata table's partitions, in one place. Items of one job are spread over several
 * partition keys so that no query reads more than it needs and nothing that grows with the run
 * (acknowledgements per checkpoint, checkpoint history) shares a partition with what is read on
 * every supervision pass (the job and its units):
 *
 *   JOB#<jobId>               META, UNIT#<unitId>, SUBPART#…, FAILURE#…, RECOVERY#…   the live job
 *   JOB#<jobId>#CKPT          CKPT#<N>, CKPT_LATEST, CKPT_PENDING#<N>                 the checkpoint catalog
 *   JOB#<jobId>#ACK#<N>       <subtaskId>#a<attempt>                                  acknowledgements of N
 *
 * Acknowledgements are read only while N is pending: they carry `expiresAt` (epoch seconds), the
 * table's TTL attribute, and DynamoDB deletes them for free some time after.
 */

export const jobPk = (jobId: string): string => `JOB#${jobId}`;
export const catalogPk = (jobId: string): string => `JOB#${jobId}#CKPT`;
export const ackPk = (jobId: string, checkpointId: number): string => `JOB#${jobId}#ACK#${String(checkpointId).padStart(12, '0')}`;

/** The table's TTL attribute (epoch seconds). */
export const TTL_ATTRIBUTE = 'expiresAt';
/** How long an acknowledgement is kept after it was written. */
export const ACK_TTL_SECONDS = 24 * 3600;

export const expiresAt = (nowMs: number, ttlSeconds: number): number => Math.floor(nowMs / 1000) + ttlSeconds;
