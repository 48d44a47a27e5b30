/**
 * Replay requests between units (see replay.ts), sent and answered in bulk.
 *
 * A restarted unit of the join at P=1000 hosts 33 join subtasks, each asking, per input edge, each
 * producer unit for its replays: 66 control messages to every producer unit, and again every retry
 * for the channels still silent. The producer units answered one message after another (each a
 * send to the consumer unit's queue), more slowly than the retries came: the control queues grew
 * by ~280 requests per second and the restarted joins never got their answers (docs/scale.md). So:
 * - the consumer unit gathers the requests its subtasks make within a few milliseconds into one
 *   control message per producer unit (`ReplayBatcher`);
 * - a producer unit answers the requests of one receive together, and only the newest request per
 *   channel: a retry supersedes the request it repeats, whose answer the consumer would drop as
 *   stale (`ReplayRequestFilter`).
 */
import type { ReplayRequest } from './messages';
import { splitReplayRequest } from './replay';
import { chunkBySize } from '../util/chunks';

/** Most bytes of requests in one control message (SQS takes 256 KiB; the rest is the envelope's). */
export const MAX_REPLAY_MESSAGE_BYTES = 200 * 1024;

/** A consumer attempt's request number, ordered: a newer attempt's first request is newer than any of an older attempt. */
const newer = (a: ReplayRequest, b: { consumerAttempt: number; request: number }): boolean =>
  a.consumerAttempt > b.consumerAttempt || (a.consumerAttempt === b.consumerAttempt && a.request > b.request);

/**
 * The producer side: which channels of which requests to answer. A channel (edge, consumer,
 * producer) is answered for its newest request only, once: an older or repeated request for it (a
 * retry's predecessor still in the queue, a redelivery after the control visibility timeout) is
 * dropped. A request asks several producers; each producer's channel is judged on its own (a retry
 * asks again only the producers that were silent, while the others answer the earlier request).
 */
export class ReplayRequestFilter {
  private readonly answered = new Map<string, { consumerAttempt: number; request: number }>();

  /** The requests of one receive, in order, trimmed to the channels to answer now; requests left with none are dropped. */
  take(requests: readonly ReplayRequest[]): ReplayRequest[] {
    // Newest first: within one receive, a retry's predecessor is dropped before it is answered.
    const chosen = new Map<string, ReplayRequest>();
    for (const r of requests) {
      for (const producer of Object.keys(r.from)) {
        const key = `${r.edgeId} ${r.consumer} ${producer}`;
        const best = chosen.get(key) ?? this.answered.get(key);
        if (best === undefined || newer(r, best)) chosen.set(key, r);
      }
    }
    const out = new Map<ReplayRequest, ReplayRequest>();
    for (const [key, r] of chosen) {
      this.answered.set(key, { consumerAttempt: r.consumerAttempt, request: r.request });
      let part = out.get(r);
      if (!part) out.set(r, (part = { ...r, from: {} }));
      const producer = Number(key.slice(key.lastIndexOf(' ') + 1));
      part.from[producer] = r.from[producer]!;
    }
    return [...out.values()];
  }
}

export interface ReplayBatcherOptions {
  /** The unit hosting a producer subtask of an edge (undefined: not placed, left out). */
  unitOf(edgeId: string, producer: number): string | undefined;
  /** Sends one control message of requests to a producer unit. */
  deliver(unitId: string, requests: ReplayRequest[]): Promise<void>;
  /** How long a request waits for company (default 20 ms). */
  windowMs?: number;
  maxMessageBytes?: number;
}

/**
 * The consumer side: a unit's replay sender. Requests made within `windowMs` of each other go out
 * together, split by the unit hosting each producer, as one control message per producer unit
 * (more when they exceed `maxMessageBytes`). `send` resolves once its request went to every unit.
 */
export class ReplayBatcher {
  private pending: { request: ReplayRequest; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Control messages sent, and requests in them (each request counts once per producer unit). */
  messagesSent = 0;
  requestsSent = 0;

  constructor(private readonly options: ReplayBatcherOptions) {}

  send(request: ReplayRequest): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ request, resolve, reject });
      this.timer ??= setTimeout(() => void this.flush(), this.options.windowMs ?? 20);
    });
  }

  private async flush(): Promise<void> {
    this.timer = undefined;
    const batch = this.pending.splice(0);
    const byUnit = new Map<string, ReplayRequest[]>();
    for (const { request } of batch) {
      for (const [unitId, part] of splitReplayRequest(request, (p) => this.options.unitOf(request.edgeId, p))) {
        const list = byUnit.get(unitId);
        if (list) list.push(part);
        else byUnit.set(unitId, [part]);
      }
    }
    try {
      await Promise.all([...byUnit].flatMap(([unitId, requests]) => chunkBySize(requests, (r) => Buffer.byteLength(JSON.stringify(r)) + 1, this.options.maxMessageBytes ?? MAX_REPLAY_MESSAGE_BYTES).map((chunk) => {
        this.messagesSent++;
        this.requestsSent += chunk.length;
        return this.options.deliver(unitId, chunk);
      })));
      for (const p of batch) p.resolve();
    } catch (error) {
      for (const p of batch) p.reject(error);
    }
  }
}
