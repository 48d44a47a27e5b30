/**
 * Replay from upstream in-flight logs: how a consumer subtask that restarted alone (strategies
 * `single` and `single-buffered`) gets back the input its dead attempt had consumed after the
 * checkpoint it restores from. That input was deleted from the queues; every producer still has
 * it in its in-flight log (inflight-log.ts), trimmed only once a later checkpoint completes.
 *
 * 1. The restarted consumer restores its channel positions (per producer lineage) from its
 *    snapshot, and for each input edge sends a `replay` control message to the units hosting the
 *    edge's producers: consumer attempt `ra`, request number `rq`, positions per producer.
 * 2. Each producer subtask sends its log of that channel from the consumer's position of its
 *    current lineage (0 for a lineage the consumer never saw) as data messages in a message group
 *    of their own (`<p>.<a>.r<ra>.<rq>`), with the barriers of checkpoints not completed yet in
 *    their places, then an end event (`t: 'x'`): `n` the position its live messages continue
 *    from, `ls` the sequence number of its next live message (everything of the live group before
 *    it is in the replay: records, barriers; its end of input as `e`), after a watermark event
 *    with the producer's last watermark (on the end itself when nothing comes before it). The replay
 *    goes into the same queue as the live messages.
 * 3. Until the end event arrives the consumer holds the channel's live messages (received, kept
 *    in flight, not processed); then its live group goes on at `ls` (earlier messages of it are
 *    dropped), at once: no waiting to learn where the group starts. Record positions the replay
 *    skips (records dropped for an unavailable consumer, or given up by a full log) count missing.
 *    What the producer's log no longer held from the position asked for (it starts later: the
 *    producer restarted from a later checkpoint than the consumer, or the log was trimmed by one
 *    the consumer did not restore from) the end says (`g`), and the consumer counts it unreplayed.
 * 4. A producer whose subtask finished (its unit may have exited) wrote its log to S3 at the end
 *    (`finalLogKey`); the consumer reads it there when no replay came. A request that got no
 *    answer is sent again with the next request number (the producer may have restarted: its new
 *    attempt reads the same control queue and answers from its own log).
 */
import type { BlobStore } from '../ports/blob-store';
import type { InflightLogState, LogExcerpt, LogSpill } from './inflight-log';
import type { ReplayRequest } from './messages';

/** Where a finished producer subtask leaves its in-flight log of one edge. */
/** Where the final logs of an edge's producers are (one listing finds every producer's). */
export const finalLogEdgePrefix = (jobId: string, edgeId: string): string => `inflight/${jobId}/${edgeId}/`;
export const finalLogPrefix = (jobId: string, edgeId: string, producer: number): string => `${finalLogEdgePrefix(jobId, edgeId)}${producer}/`;
export const finalLogKey = (jobId: string, edgeId: string, producer: number, attempt: number): string => `${finalLogPrefix(jobId, edgeId, producer)}a${attempt}.json`;

/** Reads spilled segments back (text objects of the blob store). */
export function segmentReader(blobs: BlobStore): Pick<LogSpill, 'get'> {
  return {
    get: async (key) => {
      const body = await blobs.get(key);
      return body === undefined ? undefined : Buffer.from(body).toString('utf8');
    },
  };
}

/** Where a producer's in-flight log puts the segments that do not fit in memory. */
export function logSpill(blobs: BlobStore, jobId: string, edgeId: string, producer: number, attempt: number): LogSpill {
  return {
    ...segmentReader(blobs),
    keyFor: (consumer, first) => `inflight-spill/${jobId}/${edgeId}/${producer}/a${attempt}/${consumer}-${first}.json`,
    put: (key, body) => blobs.put(key, body),
    delete: (keys) => blobs.delete(keys),
  };
}

/** The final log object: the writer's log state and the producer attempt that wrote it. */
export interface FinalLog {
  producer: number;
  attempt: number;
  log: InflightLogState;
  /** The producer's restart notice, if it restarted in a lineage of its own (a replay from the log repeats it). */
  restart?: RestartNotice;
}

export interface ReplayAddress {
  /** Producer subtask index and attempt. */
  producer: number;
  attempt: number;
  /** Consumer attempt and request number the replay answers. */
  consumerAttempt: number;
  request: number;
}

export const replayGroupId = (a: ReplayAddress): string => `${a.producer}.${a.attempt}.r${a.consumerAttempt}.${a.request}`;

/** The consumer's position for the producer's lineage (0 for a lineage it never saw). */
export function positionIn(lineage: number, from: readonly (readonly [number, number])[] | undefined): number {
  return from?.find(([l]) => l === lineage)?.[1] ?? 0;
}

/**
 * One replay request per unit hosting the producers it asks: each gets the positions of its own
 * producers only (at P=4000 a request carries 4000 producers' positions, and every producer unit
 * used to receive all of them). Producers `unitOf` does not place are left out.
 */
export function splitReplayRequest(request: ReplayRequest, unitOf: (producer: number) => string | undefined): Map<string, ReplayRequest> {
  const byUnit = new Map<string, ReplayRequest>();
  for (const [key, positions] of Object.entries(request.from)) {
    const unit = unitOf(Number(key));
    if (unit === undefined) continue;
    let part = byUnit.get(unit);
    if (!part) byUnit.set(unit, (part = { ...request, from: {} }));
    part.from[Number(key)] = positions;
  }
  return byUnit;
}

/**
 * A restarted producer's notice (messages.ts, `r`): the checkpoint it restored from (0: from
 * scratch), and the lineage and record positions per channel that checkpoint left its writer at.
 */
export interface RestartNotice {
  checkpointId: number;
  lineage?: number;
  position?: number[];
}

/** The notice's event body fields for channel `consumer`. */
export function restartEvent(notice: RestartNotice, consumer: number): { t: 'r'; c: number; f?: [number, number] } {
  const at = notice.lineage !== undefined ? notice.position?.[consumer] : undefined;
  return { t: 'r', c: notice.checkpointId, ...(at !== undefined ? { f: [notice.lineage!, at] as [number, number] } : {}) };
}

/** How the producer's live channel goes on after a replay (see the end event above). */
export interface ReplayTail {
  /**
   * The producer restarted (a lineage of its own): its notice, sent first on its live group, which
   * the end's `ls` skips. The replay carries it first, or a consumer whose replay the restarted
   * producer answers would never count what the dead lineages send it again.
   */
  restart?: { c: number; f?: [number, number] };
  /** Sequence number of the next live message of the producer's group; absent: the consumer takes the live group as it comes. */
  nextSequence?: number;
  /** The producer's last watermark on the channel. */
  watermark?: number;
  /** The producer sent its end of input on the channel. */
  ended?: boolean;
  /** Records from the consumer's position that the log no longer holds (it starts later). */
  unreplayable?: number;
}

/**
 * The message bodies of one replay, in order: the producer's restart notice (if it restarted in
 * a lineage of its own), the logged messages with the pending barriers in their places, its
 * watermark, then the end event. Sequence numbers count from 0 within the replay's own group.
 */
export function replayBodies(excerpt: LogExcerpt, address: ReplayAddress, tail: ReplayTail = {}): string[] {
  const bodies: string[] = [];
  const head = () => `{"p":${address.producer},"a":${address.attempt},"s":${bodies.length},"l":${excerpt.lineage},"ra":${address.consumerAttempt},"rq":${address.request}`;
  if (tail.restart) {
    const { c, f } = tail.restart;
    bodies.push(`${head()},"n":0,"t":"r","c":${c}${f ? `,"f":[${f[0]},${f[1]}]` : ''}}`);
  }
  let b = 0;
  const barriersUpTo = (position: number) => {
    for (; b < excerpt.barriers.length && excerpt.barriers[b]!.position <= position; b++) {
      const barrier = excerpt.barriers[b]!;
      bodies.push(`${head()},"n":${barrier.position},"t":"b","c":${barrier.checkpointId}}`);
    }
  };
  for (const m of excerpt.messages) {
    barriersUpTo(m.first);
    bodies.push(`${head()},"n":${m.first},"t":"d",${m.fields}}`);
  }
  barriersUpTo(excerpt.end);
  // The producer's watermark is an event in the replay's order, after its last records and
  // barriers: the consumer may hold those back (a barrier alignment), and a watermark taken at
  // once, with the end, would fire event-time windows without them and make them late.
  // With nothing before it, the watermark rides on the end (one message, not two: at P=4000 a
  // restarted join unit's 800,000 channels are mostly empty, and each was answered with both).
  const alone = bodies.length === 0 && tail.watermark !== undefined;
  if (tail.watermark !== undefined && !alone) bodies.push(`${head()},"n":${excerpt.end},"t":"w","w":${tail.watermark}}`);
  const extra = `${tail.nextSequence !== undefined ? `,"ls":${tail.nextSequence}` : ''}${tail.ended ? ',"e":1' : ''}${tail.unreplayable ? `,"g":${tail.unreplayable}` : ''}${alone ? `,"w":${tail.watermark}` : ''}`;
  bodies.push(`${head()},"n":${excerpt.end},"t":"x"${extra}}`);
  return bodies;
}
