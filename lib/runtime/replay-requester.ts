/**
 * The consumer side of a replay (see replay.ts): a restarted consumer subtask asks the producers
 * of its input edges for what its dead attempt consumed after the checkpoint it restores from, and
 * makes sure every channel gets an answer:
 * - every channel is marked waiting before the input gate starts, and the gate holds each
 *   channel's live messages until that channel's replay has ended; the requests go out meanwhile,
 *   without holding the subtask's input (see `begin`);
 * - a channel without an answer after `checkAfterMs`: if its producer finished (and its unit may
 *   have exited), its final log is in S3: the consumer reads it and takes the replay from there;
 * - otherwise it asks again, with the next request number, once no replay of its own (nor, given
 *   `unitProgress`, of its unit's) progressed for `firstRetryMs`, then for `retryMs`, each later
 *   time twice as long as before, up to `maxRetryMs` (a request lost with a producer that died, or
 *   hidden from its restarted attempt by the dead attempt's last poll: see controlGroup), the
 *   channels whose replay has not progressed since the last look only, and fails the subtask
 *   with the channels still waiting once no replay has progressed for `giveUpMs` (a channel
 *   answered, or a message of an answer taken), its own nor, given `unitProgress`, any of its
 *   unit's subtasks'.
 *   Not a deadline from the first request: at P=2000 the producer units answered a restarted join
 *   unit's 800,000 channels for minutes, and joins that gave up after 120 s of that restarted in
 *   their unit and asked all over again.
 */
import type { BlobStore } from '../ports/blob-store';
import type { Logger } from '../ports/telemetry';
import type { ExecutionEdge } from '../graph/execution-graph';
import { producersOf } from '../graph/execution-graph';
import { InflightLog, readSegment, type LoggedMessage } from './inflight-log';
import { channelKey, type InputGate } from './input-gate';
import type { ReplayRequest } from './messages';
import { finalLogEdgePrefix, positionIn, replayBodies, restartEvent, segmentReader, type FinalLog } from './replay';

/** Sends a replay request to the units hosting the producers of `request.edgeId`. */
export type ReplaySender = (request: ReplayRequest) => Promise<void>;

/**
 * When any replay of a unit's subtasks last progressed: shared by the requesters of one unit. A
 * restarted join unit at P=4000 asks for 800,000 channels at once; its producers answer them in
 * some order, so one join may hear nothing for minutes while its unit-mates' replays arrive. Its
 * own channels are the wrong measure then: it gives up only when none of the unit's progressed.
 */
export class ReplayProgress {
  private last = Number.NEGATIVE_INFINITY;

  /**
   * `held`: true while the unit holds its own input back for a reason of its own (its poller waits
   * for its deletes): answers may be waiting in its queue then, and the silence is not its
   * producers'. At P=4000 a restarted join unit's poller waited minutes for deletes on an overloaded
   * emulator; its joins asked every channel again four times and then gave up, and each new request
   * made the producers send their answers all over (bench/results/scale-join-4000-t.log).
   */
  constructor(private readonly held?: () => boolean) {}

  note(now: number): void {
    if (now > this.last) this.last = now;
  }

  /** When a replay of the unit last progressed, as seen at `now` (a hold counts as progress). */
  at(now: number): number {
    if (this.held?.()) this.note(now);
    return this.last;
  }
}

export interface ReplayRequesterOptions {
  jobId: string;
  inputs: readonly ExecutionEdge[];
  consumerIndex: number;
  consumerAttempt: number;
  producerParallelism: (taskId: string) => number;
  send: ReplaySender;
  blobs: BlobStore;
  checkAfterMs?: number;
  /** The first retry: soon, since a request hidden by a dead producer's poll comes back only after 10 s. */
  firstRetryMs?: number;
  /** The second retry; each later one waits twice as long as the one before, up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
  giveUpMs?: number;
  /** The unit's replay progress (see ReplayProgress); without it, this subtask's own. */
  unitProgress?: ReplayProgress;
  now?: () => number;
  logger?: Logger;
}

/**
 * Fewest milliseconds between two looks at the waiting channels. A look lists every channel still
 * waiting (8,000 for a join at P=4000) and `tick` runs between any two batches of input: while a
 * restarted join unit's replays arrived in small batches at P=2000, these looks were a tenth of the
 * process's CPU and much of its garbage. Every decision here is counted in seconds.
 */
const LOOK_EVERY_MS = 1_000;

export class ReplayRequester {
  private request = 1;
  private readonly started: number;
  private lastAsked: number;
  private checkedFinal = false;
  /** Retries so far (requests after the first). */
  private retries = 0;
  /** Requests sent (a retry counts again). */
  requestsSent = 0;
  /** Channels whose replay came from a finished producer's log in S3. */
  fromFinalLogs = 0;
  /** Per waiting channel: replay messages it had taken at the last look (see tick). */
  private readonly received = new Map<string, number>();
  /** When a replay last progressed, and what it stood at then (channels waiting, messages taken). */
  private progressAt: number;
  private progress = { waiting: 0, taken: 0 };
  private lastLook = Number.NEGATIVE_INFINITY;
  /** Every channel got its replay: nothing more to look at (only this requester waits for replays). */
  private done = false;

  constructor(private readonly options: ReplayRequesterOptions) {
    this.started = this.lastAsked = this.progressAt = this.now();
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /**
   * Marks every input channel as waiting for its replay (before the gate starts) and sends the
   * requests, without waiting for them to go out: the subtask's input must be taken meanwhile. A
   * unit's channels share envelopes and FIFO groups (channel-mux.ts), so an envelope holding a
   * part for a subtask that does not take its input stays in flight, and every answer behind it in
   * its group waits: at P=4000 a restarted join unit's 100 joins sent their requests over minutes,
   * each starting its input only after its own had gone out, and 97 of them got no answer at all.
   */
  async begin(gate: InputGate): Promise<void> {
    const keys = [...this.channelKeys()];
    for (const key of keys) gate.awaitReplay(key, this.options.consumerAttempt, this.request);
    this.progress = { waiting: keys.length, taken: 0 };
    this.askInBackground(gate, keys);
  }

  /** The requests being sent, if any (one send at a time). */
  private sending: Promise<void> | undefined;

  private askInBackground(gate: InputGate, keys: readonly string[]): void {
    const request = this.request;
    this.sending = this.ask(gate, keys)
      .catch((error: unknown) => {
        // Its channels stay silent and are asked again (tick).
        this.options.logger?.warn(`replay request ${request} not sent: ${error instanceof Error ? error.message : String(error)}`, { request });
      })
      .finally(() => {
        this.sending = undefined;
        // Answers cannot come before the request is out: the retry interval counts from here.
        this.lastAsked = this.now();
      });
  }

  /** Resolves once no request is being sent (a failed send is logged, never thrown). */
  async sent(): Promise<void> {
    await this.sending;
  }

  /** Between two batches: S3 for finished producers, then requests again, then the error. */
  async tick(gate: InputGate): Promise<void> {
    if (this.done) return;
    const now = this.now();
    const { checkAfterMs = 3_000, firstRetryMs = 4_000, retryMs = 10_000, maxRetryMs = 40_000, giveUpMs = 120_000 } = this.options;
    // Backing off: producers busy answering many restarted consumers answer late, and a retry
    // makes the answer on its way stale (the storm at P=1000: docs/scale.md).
    const interval = this.retries === 0 ? firstRetryMs : Math.min(maxRetryMs, retryMs * 2 ** (this.retries - 1));
    const due =
      (!this.checkedFinal && now - this.started >= checkAfterMs) ||
      (this.sending === undefined && now - Math.max(this.lastAsked, this.lastProgress(now)) >= interval) ||
      now - this.lastProgress(now) >= giveUpMs;
    // Between decisions, a look only notes progress: once a second is enough.
    if (!due && now - this.lastLook < LOOK_EVERY_MS) return;
    this.lastLook = now;
    const waiting = gate.awaitedReplays();
    if (waiting.length === 0) {
      // Its last replays came: progress, for its unit-mates still waiting.
      this.options.unitProgress?.note(now);
      this.progress = { waiting: 0, taken: 0 };
      this.done = true;
      this.options.logger?.info(
        `every input channel has its replay, ${((now - this.started) / 1000).toFixed(1)} s after the first request (${this.request} request(s), ` +
          `${this.fromFinalLogs} from finished producers' logs, ${gate.staleReplays} stale replay message(s) dropped)`,
        { requests: this.request, seconds: (now - this.started) / 1000, fromFinalLogs: this.fromFinalLogs, staleReplays: gate.staleReplays },
      );
      return;
    }
    if (!this.checkedFinal && now - this.started >= checkAfterMs) {
      this.checkedFinal = true;
      // A replay that has begun to arrive is on its way: only silent channels look for a final log.
      await this.fromFinished(gate, waiting.filter((w) => w.received === 0).map((w) => w.key));
      return;
    }
    const taken = waiting.reduce((n, w) => n + w.received, 0);
    if (waiting.length < this.progress.waiting || taken > this.progress.taken) {
      this.progressAt = now;
      this.options.unitProgress?.note(now);
    }
    this.progress = { waiting: waiting.length, taken };
    if (now - this.lastProgress(now) >= giveUpMs) {
      throw new Error(
        `no replay from the producers of ${namedChannels(waiting.map((w) => w.key))}, and no replay${this.options.unitProgress ? ' of its unit' : ''} progressed for ${Math.round(giveUpMs / 1000)} s ` +
          `(consumer attempt ${this.options.consumerAttempt}, ${this.request} request(s), ${Math.round((now - this.started) / 1000)} s since the first): their units are gone and left no final log`,
      );
    }
    // Asked again only once no replay of the unit progressed for the interval: while answers
    // arrive, a silent channel's answer is most likely queued behind them (at P=1000 nearly every
    // restarted join asked all its channels again at 4 s while its answers were arriving, and
    // dropped hundreds of stale messages each; at P=4000 each join asked all 8,000 four times).
    if (this.sending === undefined && now - Math.max(this.lastAsked, this.lastProgress(now)) >= interval) {
      // A channel whose replay has been arriving since the last look is being answered: asking
      // again would make the producer send it all over (and the part already here stale). On a
      // slow transport a large replay takes longer than `retryMs`, and re-asking every channel
      // made each answer larger than the last (the logs grow while no checkpoint completes).
      const silent = waiting.filter((w) => w.received === (this.received.get(w.key) ?? 0));
      for (const w of waiting) this.received.set(w.key, w.received);
      this.lastAsked = now;
      if (silent.length === 0) return;
      this.retries++;
      this.request++;
      const keys = silent.map((w) => w.key);
      for (const key of keys) {
        gate.awaitReplay(key, this.options.consumerAttempt, this.request);
        this.received.set(key, 0);
      }
      // A producer may have finished since the last look.
      this.checkedFinal = false;
      this.askInBackground(gate, keys);
    }
  }

  /** Input channels still waiting for their replay, as of the last look. */
  get awaiting(): number {
    return this.done ? 0 : this.progress.waiting;
  }

  /** When a replay of this subtask, or given `unitProgress` of any of its unit's, last progressed. */
  private lastProgress(now = this.now()): number {
    return Math.max(this.progressAt, this.options.unitProgress?.at(now) ?? Number.NEGATIVE_INFINITY);
  }

  private *channelKeys(): Iterable<string> {
    for (const edge of this.options.inputs) {
      for (const p of producersOf(edge, this.options.consumerIndex, this.options.producerParallelism(edge.from))) yield channelKey(edge.id, p);
    }
  }

  /** One request per input edge with waiting channels: the restored positions of each. */
  private async ask(gate: InputGate, keys: Iterable<string>): Promise<void> {
    this.lastAsked = this.now();
    const byEdge = new Map<string, ReplayRequest>();
    for (const key of keys) {
      const channel = gate.channels.get(key)!;
      let request = byEdge.get(channel.edge.id);
      if (!request) {
        request = { edgeId: channel.edge.id, consumer: this.options.consumerIndex, consumerAttempt: this.options.consumerAttempt, request: this.request, from: {} };
        byEdge.set(channel.edge.id, request);
      }
      request.from[channel.producer] = [...channel.positions];
    }
    await Promise.all([...byEdge.values()].map((r) => this.options.send(r)));
    this.requestsSent += byEdge.size;
    this.options.logger?.info(`asked for replays (request ${this.request}) of ${[...byEdge.values()].map((r) => `${r.edgeId} from ${Object.keys(r.from).length} producer(s)`).join(', ')}; ${gate.staleReplays} stale replay message(s) dropped so far`, { request: this.request, staleReplays: gate.staleReplays });
  }

  /**
   * Channels whose producer left a final log: replayed from it, as the producer would have, under
   * a request number of its own (the wait switches to it: an answer of the producer's own that
   * arrives later is stale and dropped, so the two never mix).
   */
  private async fromFinished(gate: InputGate, keys: readonly string[]): Promise<void> {
    // One listing per edge, not per channel: a restarted join at P=300 has 600 silent channels at
    // first, and a listing each (33 joins of a unit at once) kept the S3 emulator busy past the
    // replays' deadline. The newest attempt's log per producer: one that finished again wrote its own.
    const finals = new Map<string, Map<number, { key: string; attempt: number }>>();
    for (const edgeId of new Set(keys.map((key) => gate.channels.get(key)!.edge.id))) {
      const prefix = finalLogEdgePrefix(this.options.jobId, edgeId);
      const newest = new Map<number, { key: string; attempt: number }>();
      for (const o of await this.options.blobs.list(prefix)) {
        const m = /^(\d+)\/a(\d+)\.json$/.exec(o.key.slice(prefix.length));
        if (!m) continue;
        const [producer, attempt] = [Number(m[1]), Number(m[2])];
        if ((newest.get(producer)?.attempt ?? -1) < attempt) newest.set(producer, { key: o.key, attempt });
      }
      finals.set(edgeId, newest);
    }
    for (const key of keys) {
      const channel = gate.channels.get(key)!;
      const newest = finals.get(channel.edge.id)!.get(channel.producer);
      if (!newest) continue;
      const body = await this.options.blobs.get(newest.key);
      if (!body) continue;
      const final = JSON.parse(Buffer.from(body).toString('utf8')) as FinalLog;
      const log = new InflightLog(final.log.channels.length, final.log.lineage);
      log.resume(final.log);
      const position = positionIn(log.lineage, [...channel.positions]);
      const taken = log.excerpt(this.options.consumerIndex % final.log.channels.length, position);
      // What the producer had spilled to S3 is read back from there too.
      const spilled: LoggedMessage[] = [];
      for (const g of taken.spilled ?? []) spilled.push(...(await readSegment(segmentReader(this.options.blobs), g)).filter((m) => m.first + m.count > position));
      const excerpt = { ...taken, messages: [...spilled, ...taken.messages], spilled: [] };
      const request = ++this.request;
      gate.awaitReplay(key, this.options.consumerAttempt, request);
      const address = { producer: channel.producer, attempt: final.attempt, consumerAttempt: this.options.consumerAttempt, request };
      const consumer = this.options.consumerIndex % final.log.channels.length;
      const unreplayable = Math.max(0, taken.from - position);
      const tail = { ended: true, ...(final.restart ? { restart: restartEvent(final.restart, consumer) } : {}), ...(unreplayable > 0 ? { unreplayable } : {}) };
      gate.injectReplay(key, replayBodies(excerpt, address, tail));
      this.fromFinalLogs++;
      this.options.logger?.info(`replay of ${key} from the finished producer's log ${newest.key}: ${excerpt.messages.reduce((n, m) => n + m.count, 0)} record(s)`, { channel: key, log: newest.key });
    }
  }
}

/** Channels named in an error: the first ten and how many more (a join at P=4000 waits on 8,000). */
function namedChannels(keys: readonly string[]): string {
  return keys.length <= 10 ? keys.join(', ') : `${keys.slice(0, 10).join(', ')} and ${keys.length - 10} more`;
}
