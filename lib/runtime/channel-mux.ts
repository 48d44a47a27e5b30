/**
 * Multiplexed channels: the transport the subtasks of one task unit share, so that messages,
 * barriers and polls grow with units, not with subtasks.
 *
 * The subtasks keep writing and reading their channels as before, through logical sub-partition
 * queues (`subPartitionQueue`: edge, consumer subtask) and one message group per producer subtask
 * attempt; their record writers and input gates do not know about units. This transport carries
 * those channel messages between units:
 *
 * Queue layout. One SQS FIFO queue per consumer unit (its input queue, `unitInputQueue`), and in
 * it one message group per producer unit and unit attempt (`u<n>.<attempt>`). One SQS message (an
 * envelope, messages.ts) carries channel messages of every channel from the producer unit to the
 * consumer unit, in the order they were sent: records, watermarks, barriers, end of input and
 * restart notices alike, each a whole channel message with its own edge, producer subtask,
 * consumer subtask, attempt, sequence number, lineage, positions and determinants. Why:
 * - one receive loop per unit polls one queue (idle polls grow with units);
 * - the sends of all subtasks of a unit to one consumer unit share envelopes and batch calls (the
 *   barriers of a checkpoint go out as one envelope per unit pair, see `lazy` below);
 * - queues are per unit, so a job of 4000 subtasks in 40 units has 40 input queues, not one per
 *   sub-partition;
 * - one group per producer unit keeps the order of what one unit sends to another (so every
 *   channel's messages arrive in sequence order, as before), while groups of different producer
 *   units flow independently. A replay (replay.ts) goes in a group of its own
 *   (`u<n>.<attempt>.r<consumer attempt>.<request>`): what a dead consumer left in flight in the
 *   live group cannot hold it back.
 * Per channel nothing changes: availability, producer-attempt fencing, sequence order, record
 * positions and lineages, replays and determinants are handled by the writers and gates as before.
 *
 * Receiving: settled on take. The unit's one poller receives envelopes and splits them into the
 * sub-partitions' inboxes; a subtask's input gate takes its parts from its inbox. An envelope is
 * deleted from SQS as soon as every part of it has been taken by its subtask (into the gate's
 * memory), not when the subtask has processed it: a part held back by a barrier alignment, a
 * replay wait or an end of input would otherwise keep the whole envelope in flight, and with it
 * the producer unit's group, holding back the other subtasks' channels (a barrier one of them
 * waits for may be in a later envelope of the same group: a deadlock). What a consumer took and
 * had not processed when it dies is what its producers give again (docs/recovery.md, "Multiplexed
 * channels"). The poller stops receiving while the inboxes hold more than `maxBufferedBytes` (their
 * bodies and an estimate of each part's objects: a compact run of barriers is thousands of parts); a
 * gate never waits on its input to take the next batch, so the inboxes always drain. Envelopes
 * with parts not yet taken keep their visibility extended.
 *
 * Sending: group commit. A send is queued for its consumer unit's queue and goes out with the
 * other sends queued in the same turn of the event loop; while one send call to a queue is in
 * flight (at most one, which keeps the group's order) the next sends gather behind it. A `lazy`
 * message (a checkpoint barrier) does not hold its sender: it waits up to `lazyMs` for the next
 * send to its queue, so the barriers the unit's subtasks emit for one checkpoint share an envelope.
 * `flush()` sends everything (before a hand-over writes the writers' sequence numbers).
 *
 * Within the unit: a channel whose producer and consumer subtasks are both in this unit does not go
 * through SQS. Its messages go straight into the consumer's inbox, as if received (a unit of 100
 * subtasks whose pipelines are whole, the ingest job's, sends nothing through SQS at all). What
 * changes nothing per channel: the writer and gate see the same messages, sequences, barriers and
 * replays; a kill loses these parts with both their producer and consumer, as it loses parts
 * taken from SQS. A send waits while the inboxes are full (`maxBufferedBytes`): the consumer
 * drains them, since a gate takes what comes whatever it waits for. A subtask handed over (a
 * Lambda invocation's end) has its untaken parts, and what comes for it after, sent to the unit's
 * queue for the next invocation, in order. A unit none of whose channels has a producer elsewhere
 * polls its queue only until it is first empty (what a previous invocation handed over).
 *
 * Linger ticks (only for a job that sets `lingerMs`). A writer's linger flush (`linger`: records or
 * a watermark sent because the writer's linger time passed, nothing else waits for them) waits for
 * the unit's next send tick: every `lingerMs` (the writers' linger), at multiples of it on the clock.
 * Off by default: at one subtask per unit (the demo) the tick held sources in step with it and cost
 * more than it saved (2.71 SQS requests per 1000 records and 70,136 records/s, against 1.83 and
 * 87,966 without it, `npm run demo` on a quiet machine); between packed units it saves (P=16 in 4
 * units: 150 SQS requests/s, from 198; docs/scale.md). The writers'
 * lingers are not aligned (each subtask's runs from its own last flush), so without the tick each
 * writer's flush would be a send of its own to every consumer unit; with it, what all of a unit's
 * subtasks flush to one consumer unit within one linger window goes out as one send, and every
 * unit sends at the same moments, so a consumer unit's receive finds its producers' envelopes
 * together. The sender waits until its records are sent (its flush resolves then, as before): a
 * source then reads again after the tick, so its next flush falls in the next window and records
 * wait at most about one linger, as before. Anything else queued for the same consumer unit (an
 * urgent send, a barrier's grace running out) takes held records along at once, in order: per
 * group FIFO order and one send in flight per queue are unchanged.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_MESSAGE_BYTES, MAX_VISIBILITY_SECONDS, type ChannelTransport, type InboundMessage, type OutboundMessage, type ReceiptResult, type ReceiveOptions } from '../ports/channels';
import type { Clock } from '../ports/clock';
import type { PollerState, TransportStats } from '../ports/unit-records';
import { parseSubtaskId, producersOf, subPartitionQueue, type ExecutionGraph } from '../graph/execution-graph';
import { receiveClaimed } from './claimed-receive';
import { type ChannelInbound, type ChannelMessage, compactPart, compactRun, continuesRun, controlShape, decodeEnvelope, envelopeHeader, envelopePartHeader, readControl, type ControlFields, type ControlShape } from './messages';

/** Bytes a channel message leaves free for the envelope's header and its part header. */
export const MUX_OVERHEAD_BYTES = 256;
const DEFAULT_LAZY_MS = 50;
const DEFAULT_LAZY_MAX_MS = 5_000;
/**
 * Memory a buffered part holds besides its body (its Part and message objects, its inbox slot): a
 * compact run expands into parts of ~50-byte bodies, whose memory is mostly this (measured: the
 * join at P=2000 held ~400 bytes per buffered barrier part). Counted toward `maxBufferedBytes`.
 */
const PART_OVERHEAD_BYTES = 256;
/** Most parts in one compact run (its text stays a few KB, far below an envelope's 240 KiB). */
const MAX_COMPACT_RUN = 1000;
const DEFAULT_WAIT_SECONDS = 2;
/**
 * The base lease of what the unit receives (extended every third of it while held; longer while
 * deletes come back late, see `leaseSeconds`). What a killed unit's poller had received and its
 * subtasks had not taken stays hidden this long, and each producer's FIFO group behind it: under
 * `single` the restarted consumer caught up a median 13.3 s after it was available again with 15 s,
 * 5.4 s with 5 s (bench:demo-recovery), the demo's requests per record the same.
 */
const DEFAULT_VISIBILITY_SECONDS = 5;
/** A hand-over waits for a receive in progress that ends within this, rather than abort it (see stopReceiving). */
const GRACEFUL_RECEIVE_MS = 2500;
const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;
/** Settled envelopes not yet deleted before the poller waits for the deletes (10 delete batches). */
const MAX_PENDING_DELETES = 100;
/** The longest lease an overloaded unit asks for (a dead unit's envelopes stay hidden that long). */
const MAX_LEASE_SECONDS = 240;
/** A grown lease shrinks only after this long without an expired delete (longer than a checkpoint at P=4000 in one process). */
const LEASE_HOLD_MS = 15 * 60_000;

export interface UnitChannelsOptions {
  /** SQS (or the in-memory transport in unit tests). */
  transport: ChannelTransport;
  graph: ExecutionGraph;
  queuePrefix: string;
  jobId: string;
  /** This unit's number (its queues' number), attempt and invocation: its message groups and dedup ids. */
  unit: number;
  attempt: number;
  generation?: number;
  /**
   * Region and full failover: the attempt each producer unit had when this unit started (by unit
   * number). A producer unit's envelope of a newer attempt means a newer failover, which restarts
   * this unit too: what it sends is for this unit's next attempt, so it is given back at once and
   * this unit stops receiving (taking it would delete it: records lost to the next attempt).
   */
  producerAttempts?: ReadonlyMap<number, number>;
  /** The subtasks this unit hosts (their sub-partitions are received here). */
  subtasks: readonly string[];
  /** This unit's input queue; absent when none of its subtasks reads an edge. */
  inputQueue?: string;
  /** The input queue of the unit hosting a subtask. */
  inputQueueOf(subtask: string): string;
  /** Longest wait of a barrier for company once the unit's producers have all sent theirs (default 50 ms). */
  lazyMs?: number;
  /**
   * Longest wait of a barrier for the barriers of the same checkpoint from the unit's other
   * producers to the same consumer unit (default 5 s; see `barrierDue`).
   */
  lazyMaxMs?: number;
  /**
   * The unit's send tick for `linger` messages (a writer's linger flush): they go out at the next
   * multiple of this many ms on the clock; 0 (the default) sends them at once.
   */
  lingerMs?: number;
  /** Long-poll wait of the unit's receive while data flows (default 2 s); each empty receive doubles it, up to `idleWaitSeconds`. */
  waitSeconds?: number;
  /** Longest long-poll wait of an idle input queue (default 20 s, SQS's most): an idle unit costs one receive per 20 s. */
  idleWaitSeconds?: number;
  /**
   * How long the input queue's receives may go on failing (timeouts, throttling), tried again after
   * 1 s, then 2, 4 ... 20 s, before the unit's subtasks get the error (default 300 s).
   */
  receiveGiveUpMs?: number;
  /** The first wait before a failed receive is tried again (default 1000 ms; doubles up to 20 s). */
  receiveRetryMs?: number;
  visibilityTimeoutSeconds?: number;
  /** How often envelopes with parts not yet taken get their visibility extended (default a third of the timeout). */
  extendEveryMs?: number;
  /** The poller waits while the inboxes hold more than this (default 64 MiB): bodies and an estimate of each part's objects. */
  maxBufferedBytes?: number;
  /**
   * This unit's share of a budget of buffered input that the units of one process share (the
   * bench and the in-process launcher host many units in one process): its poller also waits
   * while the process's total is over that budget. See `InputBudget`.
   */
  inputBudget?: InputBudgetShare;
  clock?: Clock;
}

/** Counters of the multiplexed transport (reported with the unit's heartbeat). */
export type MuxStats = Omit<TransportStats, 'envelopesHeld' | 'bufferedBytes' | 'leaseSeconds'>;

/**
 * A budget of received input that the units hosted by one process share. Each unit's inboxes are
 * bounded by `maxBufferedBytes`, which bounds how long its gates take to work through them on a
 * core of its own (AWS runs one unit per Lambda or Fargate task). Many units in one process share
 * its cores and memory: at P=4000, 122 units of the join at 8 MB each may buffer ~3 M barrier
 * parts, minutes of one core's work. A shared budget bounds the process's backlog instead. (It
 * was not what stalled the join's checkpoint there: late deletes were, see `leaseSeconds`.)
 */
export class InputBudget {
  private used = 0;
  private waiters: (() => void)[] = [];

  constructor(readonly maxBytes: number) {
    if (!(maxBytes > 0)) throw new RangeError(`an input budget must be a positive number of bytes, got ${maxBytes}`);
  }

  get usedBytes(): number {
    return this.used;
  }

  /** One unit's share: what it buffers counts until its unit releases it (stopped, or killed in a simulation). */
  member(): InputBudgetShare {
    let mine = 0;
    let released = false;
    const change = (bytes: number) => {
      if (released) return;
      mine += bytes;
      this.used += bytes;
      if (bytes < 0 && this.used <= this.maxBytes && this.waiters.length > 0) for (const wake of this.waiters.splice(0)) wake();
    };
    return {
      add: (bytes) => change(bytes),
      remove: (bytes) => change(-bytes),
      full: () => this.used > this.maxBytes,
      tight: () => this.used > this.maxBytes / 2,
      room: () => new Promise<void>((resolve) => this.waiters.push(resolve)),
      release: () => {
        change(-mine);
        released = true;
      },
    };
  }
}

export interface InputBudgetShare {
  add(bytes: number): void;
  remove(bytes: number): void;
  /** The process's total is over the budget. */
  full(): boolean;
  /** Over half of it: a unit receives one envelope at a time (every waiting unit receives at once when room comes). */
  tight(): boolean;
  /** Resolves when some unit's parts leave the inboxes and the total is within the budget again. */
  room(): Promise<void>;
  /** Takes this unit's bytes off the total; later changes do not count. */
  release(): void;
}

interface Route {
  edgeId: string;
  consumer: number;
  queue: string;
}

interface Pending {
  group: string;
  text: string;
  bytes: number;
  edgeId: string;
  /** A control event a compact run can carry with its neighbours (messages.ts `compactPart`). */
  shape: ControlShape | undefined;
  /**
   * Barriers (lazy) of one run gathered as they are queued: (consumer, sequence, position) per
   * part, this Pending's own first. A checkpoint queues a barrier per channel, P x P of them at
   * once, and each as a Pending of its own was ~300 bytes waiting to be sent (the P=4000 join's
   * process grew past 11 GB in its first checkpoint).
   */
  run?: number[];
  lazy: boolean;
  /** Waits for the unit's next send tick (a writer's linger flush). */
  linger: boolean;
  /** Resolved once sent: the last part of each non-lazy send carries it. */
  done?: { resolve: () => void; reject: (error: unknown) => void };
}

interface Destination {
  queue: string;
  parts: Pending[];
  /** The send call in flight, if any (one at a time: the group's order). */
  inFlight: Promise<void> | undefined;
  immediate: NodeJS.Immediate | undefined;
  timer: NodeJS.Timeout | undefined;
  /** When the timer fires (clock time). */
  timerAt: number;
  /** When the parts queued (none urgent) are due: the first barrier's grace, the next send tick. */
  lazyDue: number | undefined;
  lingerDue: number | undefined;
  /** The checkpoint whose barriers wait here for the rest of the unit's producers (`barrierDue`). */
  awaiting: { checkpoint: string; missing: Set<string>; capAt: number; last: string } | undefined;
}

/** An envelope received and not yet deleted. */
interface Envelope {
  receipt: string;
  receivedAt: number;
  /** Parts not yet taken (or dropped). */
  untaken: number;
  /** Its receipt expired: it comes again; nothing more to do with this copy. */
  lapsed: boolean;
}

/**
 * A part buffered for its sub-partition; taken, it is the message the subtask's gate receives (one
 * object per part: a checkpoint of the join brings P x P of them). Settled on take: no group to
 * name and no receipt to keep (no delete or visibility change is due for it).
 */
interface Part extends ChannelInbound {
  groupId: '';
  receipt: '';
  /** Its body decoded (a part of a compact run), or undefined. */
  decoded: ChannelMessage | undefined;
  receiveCount: number | undefined;
  sentAt: number | undefined;
  /** What it holds of the unit's input buffer. */
  bytes: number;
  envelope: Envelope;
  /** Delivered within the unit: its writer's message group (kept if it is sent on at a hand-over). */
  writerGroup: string | undefined;
}

interface Inbox {
  subtask: string;
  /** Its sub-partition: edge and consumer index (what a part names, and a re-sent part's route). */
  edgeId: string;
  consumer: number;
  parts: Part[];
  /** False once its subtask's input has ended or the subtask is down: what arrives is dropped. */
  open: boolean;
  /** Producers in this unit deliver here directly (until the subtask is handed over). */
  local: boolean;
  waiters: Set<() => void>;
}

/** Delivered within the unit: nothing to delete or extend in SQS (`lapsed` skips both). */
const localEnvelope = (receivedAt: number): Envelope => ({ receipt: '', receivedAt, untaken: 1, lapsed: true });

export class UnitChannels implements ChannelTransport {
  readonly stats: MuxStats = { envelopesSent: 0, partsSent: 0, envelopesReceived: 0, partsReceived: 0, partsDropped: 0, expiredReceipts: 0, envelopesLapsed: 0, deleteFailures: 0, partsLocal: 0, receiveFailures: 0 };

  /** The counters, with what is held now (a unit's report). */
  report(): TransportStats {
    let held = 0;
    for (const e of this.envelopes.values()) if (e.untaken > 0 && !e.lapsed) held++;
    return { ...this.stats, envelopesHeld: held, bufferedBytes: this.buffered, leaseSeconds: this.leaseSeconds, ...(this.pollerState ? { poller: { ...this.pollerState } } : {}) };
  }

  /** True while the input poller waits for this unit's deletes to come back before it receives more. */
  waitsForDeletes(): boolean {
    return this.pollerState?.state === 'deletes';
  }

  /** The input poller's state (see TransportStats.poller); undefined until it first polls. */
  private pollerState: { state: PollerState; since: number } | undefined;

  private pollerIs(state: PollerState): void {
    if (this.pollerState?.state !== state) this.pollerState = { state, since: this.clock.now() };
  }
  private readonly routes = new Map<string, Route>();
  private readonly destinations = new Map<string, Destination>();
  /** `barrierPeers` by consumer unit queue, and the input queues of each task (both computed once). */
  private readonly peersByQueue = new Map<string, ReadonlySet<string>>();
  private readonly taskQueues = new Map<string, ReadonlySet<string>>();
  /** `<edge>:<producer index>` of producers here whose input ended (they send no more barriers). */
  private readonly ended = new Set<string>();
  /** Inboxes by logical queue name, and by `<edge> <consumer>` (how parts name them). */
  private readonly inboxes = new Map<string, Inbox>();
  private readonly inboxByPart = new Map<string, Inbox>();
  private readonly envelopes = new Map<string, Envelope>();
  private readonly toDelete: { receipt: string; receivedAt: number }[] = [];
  private deleting: Promise<void> | undefined;
  private sequence = 0;
  private buffered = 0;
  private running = false;
  private pollAbort = new AbortController();
  /** When the receive in progress ends at the latest (its long-poll wait), while there is one. */
  private receiveEndsAt: number | undefined;
  private poller: Promise<void> | undefined;
  private extender: Promise<void> | undefined;
  private stopExtender: (() => void) | undefined;
  /** The poller and local senders waiting for room in the inboxes. */
  private roomWaiters: (() => void)[] = [];
  /** Stopped receiving: nobody waits for room any more. */
  private stopped = false;
  /** No channel into this unit has its producer elsewhere: the queue is read only until first empty. */
  private readonly onlyLocalProducers: boolean;
  /** A receive of the unit's queue failed: every subtask's next receive throws it. */
  private receiveFailure: unknown;
  /** A send nobody waited for (lazy barriers) failed: the next send throws it. */
  private sendFailure: unknown;
  private readonly prefix: string;
  private readonly group: string;
  /** Scratch of `readControl` (a barrier's fields, read in place). */
  private readonly control: ControlFields = { pAt: 0, pEnd: 0, aAt: 0, aEnd: 0, sAt: 0, sEnd: 0, lAt: 0, lEnd: 0, nAt: 0, nEnd: 0, tAt: 0, s: 0, n: 0 };
  private readonly clock: Clock;
  private readonly visibilitySeconds: number;
  /**
   * The lease a receive asks for: `visibilitySeconds`, doubled (up to MAX_LEASE_SECONDS) each time
   * a delete comes back expired, and back toward it while deletes come quickly. A delete issued
   * after the lease ran out fails, its envelope comes again, and a FIFO group's next envelope waits
   * until the first is deleted: at P=4000 in one process every delete came later than 15 s and
   * the groups' first envelopes came again and again, for good (docs/scale.md).
   */
  private leaseSeconds: number;

  constructor(private readonly options: UnitChannelsOptions) {
    this.prefix = `${options.queuePrefix}-${options.jobId}-`;
    this.group = `u${options.unit}.${options.attempt}`;
    this.clock = options.clock ?? unrefClock;
    this.visibilitySeconds = options.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_SECONDS;
    this.leaseSeconds = this.visibilitySeconds;
    const tasks = new Map(options.graph.tasks.map((t) => [t.id, t]));
    for (const id of options.subtasks) {
      const { taskId, index } = parseSubtaskId(id);
      for (const edge of tasks.get(taskId)?.inputs ?? []) {
        const inbox: Inbox = { subtask: id, edgeId: edge.id, consumer: index, parts: [], open: true, local: true, waiters: new Set() };
        this.inboxes.set(subPartitionQueue(options.queuePrefix, options.jobId, edge.id, index), inbox);
        this.inboxByPart.set(`${edge.id} ${index}`, inbox);
      }
    }
    if (this.inboxes.size > 0 && !options.inputQueue) throw new Error(`unit ${options.unit}: its subtasks read ${this.inboxes.size} sub-partition(s), but it has no input queue`);
    this.onlyLocalProducers = this.inboxes.size > 0 && !this.hasRemoteProducer(tasks);
  }

  private hasRemoteProducer(tasks: ReadonlyMap<string, ExecutionGraph['tasks'][number]>): boolean {
    const here = new Set(this.options.subtasks);
    const seen = new Set<string>();
    for (const inbox of this.inboxes.values()) {
      const edge = this.options.graph.edges.find((e) => e.id === inbox.edgeId)!;
      // An all-to-all edge has the same producers for every consumer: once per edge.
      if (!edge.pointwise && seen.has(edge.id)) continue;
      seen.add(edge.id);
      for (const p of producersOf(edge, inbox.consumer, tasks.get(edge.from)!.parallelism)) {
        if (!here.has(`${edge.from}#${p}`)) return true;
      }
    }
    return false;
  }

  /** Starts receiving the unit's input queue (when it has one). */
  start(): void {
    if (this.running || !this.options.inputQueue) return;
    this.running = true;
    this.pollAbort = new AbortController();
    this.poller = this.pollLoop(this.options.inputQueue);
    this.extender = this.extendLoop();
  }

  /**
   * Stops receiving. Envelopes with parts no subtask took are made visible again at once (`release`:
   * the next invocation of the unit, after a hand-over, receives them; the parts its subtasks had
   * taken come again as duplicates and are dropped by their sequence numbers).
   */
  async stopReceiving(release = true): Promise<void> {
    this.running = false;
    this.stopped = true;
    // A long poll of an idle queue may have 20 s to go: ended now. SQS serves an aborted poll on
    // until its wait ends: what it takes meanwhile (a producer's next message, or the envelopes
    // released below) is hidden for its claim (claimed-receive.ts). A hand-over (`release`) lets a
    // receive that ends soon finish instead; what it brings is released with the rest.
    const left = this.receiveEndsAt === undefined ? undefined : this.receiveEndsAt - Date.now();
    if (!release || left === undefined || left > GRACEFUL_RECEIVE_MS) this.pollAbort.abort();
    this.wakeRoomWaiters();
    this.stopExtender?.();
    for (const inbox of this.inboxes.values()) wakeAll(inbox);
    await Promise.allSettled([this.poller, this.extender]);
    await this.deleting;
    // What the inboxes still hold no longer holds back the other units of the process.
    this.options.inputBudget?.release();
    if (!release || !this.options.inputQueue) return;
    const untaken = [...this.envelopes.values()].filter((e) => e.untaken > 0 && !e.lapsed).map((e) => e.receipt);
    if (untaken.length > 0) await this.options.transport.changeVisibility(this.options.inputQueue, untaken, 0).catch(() => undefined);
  }

  /** Sends everything queued, barriers included, and waits until it is sent. */
  async flush(): Promise<void> {
    for (;;) {
      const busy = [...this.destinations.values()].filter((d) => d.parts.length > 0 || d.inFlight);
      if (busy.length === 0) break;
      for (const d of busy) if (!d.inFlight) this.pump(d);
      await Promise.allSettled(busy.map((d) => d.inFlight));
    }
    if (this.sendFailure) throw this.sendFailure;
  }

  /** The subtask's input has ended, or the subtask is down: its inboxes drop what they hold and what comes. */
  close(subtask: string): void {
    for (const inbox of this.inboxes.values()) {
      if (inbox.subtask !== subtask || !inbox.open) continue;
      inbox.open = false;
      for (const part of inbox.parts.splice(0)) {
        this.unbuffer(part);
        this.drop(part);
      }
      wakeAll(inbox);
    }
  }

  /**
   * The subtask was handed over (this invocation ends; the next reads its queue): the parts its
   * producers here delivered and it did not take, and what they send it from now on, go to the
   * unit's queue, in that order.
   */
  handedOver(subtask: string): void {
    for (const inbox of this.inboxes.values()) {
      if (inbox.subtask !== subtask || !inbox.local) continue;
      inbox.local = false;
      const local = inbox.parts.filter((p) => p.envelope.receipt === '');
      if (local.length === 0) continue;
      inbox.parts = inbox.parts.filter((p) => p.envelope.receipt !== '');
      for (const part of local) this.unbuffer(part);
      const queue = subPartitionQueue(this.options.queuePrefix, this.options.jobId, inbox.edgeId, inbox.consumer);
      // Sent as they came (a live group's order); the send path queues them before anything later.
      void this.send(queue, local.map((p) => ({ groupId: p.writerGroup ?? '', dedupId: '', body: p.body }))).catch((error: unknown) => (this.sendFailure ??= error));
    }
  }

  /** The subtask runs again (restarted in its unit): its inboxes keep what comes, for its input gate. */
  open(subtask: string): void {
    for (const inbox of this.inboxes.values()) if (inbox.subtask === subtask) inbox.open = true;
  }

  // --- ChannelTransport, for the unit's subtasks (logical sub-partition queues) -------------------

  async createQueues(names: readonly string[]): Promise<void> {
    await this.options.transport.createQueues(names);
  }

  async deleteQueues(names: readonly string[]): Promise<void> {
    await this.options.transport.deleteQueues(names);
  }

  listQueues(prefix: string): Promise<string[]> {
    return this.options.transport.listQueues(prefix);
  }

  /** Queues the channel messages for their consumer unit; resolves once the non-lazy ones are sent. */
  send(queue: string, messages: readonly OutboundMessage[]): Promise<void> {
    if (this.sendFailure) return Promise.reject(this.sendFailure);
    if (messages.length === 0) return Promise.resolve();
    const route = this.route(queue);
    const inbox = route.queue === this.options.inputQueue ? this.inboxByPart.get(`${route.edgeId} ${route.consumer}`) : undefined;
    if (inbox?.local) return this.deliver(inbox, messages);
    const destination = this.destination(route.queue);
    const tick = this.options.lingerMs ?? 0;
    let urgent = false;
    let lingers = false;
    for (const m of messages) {
      const part = { edgeId: route.edgeId, consumer: route.consumer, body: m.body };
      const lazy = m.lazy === true;
      const linger = !lazy && m.linger === true && tick > 0;
      const group = this.groupOf(m.groupId);
      if (lazy) {
        // A barrier right after one of its run (same group, edge, producer, event): one more
        // triple, its body read in place (P x P of them per checkpoint: no shape object each).
        const last = destination.parts.at(-1);
        if (last?.run && !last.done && last.group === group && last.edgeId === route.edgeId && last.run.length < MAX_COMPACT_RUN * 3 && readControl(m.body, this.control) && continuesRun(m.body, this.control, last.shape!)) {
          last.run.push(part.consumer, this.control.s, this.control.n);
          continue;
        }
      }
      const shape = controlShape(part);
      if (shape && !lazy && shape.head.endsWith(',e')) this.producerEnded(`${route.edgeId}:${shape.head.slice(0, shape.head.indexOf(','))}`);
      const head = envelopePartHeader(part);
      const text = head + m.body;
      // A body its writer measured (records) is not measured again (a ~256 KB string, flattened
      // to be measured and copied again into its envelope): only the part's header is.
      const bytes = m.bytes !== undefined ? Buffer.byteLength(head) + m.bytes : Buffer.byteLength(text);
      destination.parts.push({ group, text, bytes, edgeId: route.edgeId, shape, ...(shape && lazy ? { run: [part.consumer, Number(shape.s), Number(shape.n)] } : {}), lazy, linger });
      urgent ||= !lazy && !linger;
      lingers ||= linger;
    }
    // The sender waits for its records (not for barriers alone): the last part resolves it once sent.
    const last = destination.parts.at(-1)!;
    const sent = urgent || lingers ? new Promise<void>((resolve, reject) => (last.done = { resolve, reject })) : Promise.resolve();
    if (urgent) {
      // Gathers what the unit's other subtasks send in this turn of the event loop.
      if (!destination.inFlight) destination.immediate ??= setImmediate(() => this.pump(destination));
      return sent;
    }
    const now = this.clock.now();
    if (lingers) destination.lingerDue ??= now - (now % tick) + tick;
    else destination.lazyDue = Math.min(destination.lazyDue ?? Infinity, this.barrierDue(destination, route.edgeId, messages, now));
    this.wake(destination, now);
    return sent;
  }

  /**
   * When barriers just queued for a consumer unit are due. They wait for the barriers of the same
   * checkpoint from the unit's other producers to that unit (its `barrierPeers`), then `lazyMs`
   * more for the rest of the turn, at most `lazyMaxMs` from the first: the unit's barriers of one
   * checkpoint go out as one envelope per consumer unit. With a fixed 50 ms grace, the sources of a
   * saturated process emitted theirs seconds apart, and the P=4000 join sent ~27k barrier envelopes
   * for ~15k unit pairs (docs/scale.md). Waiting costs the consumer nothing: its alignment needs
   * every producer's barrier anyway. A record sent meanwhile takes the barriers along at once
   * (`pump`); a producer whose input ended sends no more barriers and is not waited for.
   */
  private barrierDue(d: Destination, edgeId: string, messages: readonly OutboundMessage[], now: number): number {
    const grace = now + (this.options.lazyMs ?? DEFAULT_LAZY_MS);
    const first = messages.find((m) => m.lazy);
    if (!first) return grace;
    // A writer sends its barrier to each consumer in turn (P x P sends per checkpoint): the same
    // producer's next one is known by its group, without reading the body again.
    const tag = `${edgeId} ${first.groupId}`;
    let w = d.awaiting;
    if (w?.last !== tag) {
      if (!readControl(first.body, this.control)) return grace;
      const checkpoint = /"c":(\d+)/.exec(first.body.slice(this.control.tAt))?.[1];
      if (checkpoint === undefined) return grace;
      if (!w || w.checkpoint !== checkpoint) {
        const missing = new Set([...this.barrierPeers(d.queue)].filter((k) => !this.ended.has(k)));
        w = d.awaiting = { checkpoint, missing, capAt: now + (this.options.lazyMaxMs ?? DEFAULT_LAZY_MAX_MS), last: '' };
      }
      w.last = tag;
      w.missing.delete(`${edgeId}:${first.body.slice(this.control.pAt, this.control.pEnd)}`);
    }
    return w.missing.size > 0 ? Math.max(grace, w.capAt) : grace;
  }

  /** A producer here sent its end of input on an edge: no barrier waits for it from now on. */
  private producerEnded(key: string): void {
    if (this.ended.has(key)) return;
    this.ended.add(key);
    const now = this.clock.now();
    for (const d of this.destinations.values()) {
      if (!d.awaiting?.missing.delete(key) || d.awaiting.missing.size > 0) continue;
      if (d.lazyDue !== undefined) {
        d.lazyDue = Math.min(d.lazyDue, now + (this.options.lazyMs ?? DEFAULT_LAZY_MS));
        this.wake(d, now);
      }
    }
  }

  /** `<edge>:<producer index>` of this unit's subtasks that send on an edge to a consumer in the unit of `queue`. */
  private barrierPeers(queue: string): ReadonlySet<string> {
    const known = this.peersByQueue.get(queue);
    if (known) return known;
    const peers = new Set<string>();
    for (const id of this.options.subtasks) {
      const { taskId, index } = parseSubtaskId(id);
      for (const edge of this.options.graph.edges) {
        if (edge.from !== taskId) continue;
        const reaches = edge.pointwise ? this.options.inputQueueOf(`${edge.to}#${index}`) === queue : this.queuesOfTask(edge.to).has(queue);
        if (reaches) peers.add(`${edge.id}:${index}`);
      }
    }
    this.peersByQueue.set(queue, peers);
    return peers;
  }

  /** The input queues of a task's units. */
  private queuesOfTask(taskId: string): ReadonlySet<string> {
    let queues = this.taskQueues.get(taskId);
    if (queues) return queues;
    const parallelism = this.options.graph.tasks.find((t) => t.id === taskId)?.parallelism ?? 0;
    queues = new Set(Array.from({ length: parallelism }, (_, i) => this.options.inputQueueOf(`${taskId}#${i}`)));
    this.taskQueues.set(taskId, queues);
    return queues;
  }

  /**
   * A channel within the unit: into its consumer's inbox as if received, at once (in the order sent,
   * as the SQS path queues them); the sender's promise waits while the inboxes are over
   * `maxBufferedBytes`, so a fast producer slows to its consumers' pace.
   */
  private deliver(inbox: Inbox, messages: readonly OutboundMessage[]): Promise<void> {
    const now = this.clock.now();
    for (const m of messages) {
      const part: Part = {
        body: m.body,
        groupId: '',
        receipt: '',
        decoded: undefined,
        receiveCount: undefined,
        sentAt: now,
        bytes: m.body.length + PART_OVERHEAD_BYTES,
        envelope: localEnvelope(now),
        writerGroup: m.groupId,
      };
      this.stats.partsLocal++;
      if (!inbox.open) {
        this.drop(part);
        continue;
      }
      inbox.parts.push(part);
      this.buffered += part.bytes;
      this.options.inputBudget?.add(part.bytes);
    }
    wakeAll(inbox);
    return this.room();
  }

  /** Resolves once the inboxes are within `maxBufferedBytes` (or the unit stops receiving). */
  private async room(): Promise<void> {
    const max = this.options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    while (this.buffered > max && !this.stopped) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
  }

  /** The parts buffered for this sub-partition (up to `max`), waiting up to `waitSeconds` for some. */
  async receive(queue: string, options: ReceiveOptions): Promise<InboundMessage[]> {
    const inbox = this.inboxes.get(queue);
    if (!inbox) throw new Error(`unit ${this.options.unit} hosts no reader of sub-partition queue '${queue}'`);
    if (this.receiveFailure) throw this.receiveFailure;
    if (inbox.parts.length === 0 && options.waitSeconds > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          inbox.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, options.waitSeconds * 1000);
        inbox.waiters.add(done);
      });
      if (this.receiveFailure) throw this.receiveFailure;
    }
    const taken = inbox.parts.splice(0, options.max);
    for (const part of taken) {
      this.unbuffer(part);
      this.settle(part);
    }
    return taken;
  }

  /** Nothing to do: a part's envelope was settled when the part was taken. */
  async delete(): Promise<ReceiptResult> {
    return { expired: [] };
  }

  /** Nothing to do: taken parts are in the subtask's memory; envelopes not yet taken are extended here. */
  async changeVisibility(): Promise<ReceiptResult> {
    return { expired: [] };
  }

  // --- sending -------------------------------------------------------------------------------

  /** Where a logical sub-partition queue's messages go: its edge and consumer, and the consumer unit's queue. */
  private route(queue: string): Route {
    let route = this.routes.get(queue);
    if (route) return route;
    const rest = queue.startsWith(this.prefix) ? queue.slice(this.prefix.length) : undefined;
    const dash = rest?.lastIndexOf('-') ?? -1;
    const edgeId = rest?.slice(0, dash);
    const consumer = Number(rest?.slice(dash + 1));
    const edge = this.options.graph.edges.find((e) => e.id === edgeId);
    if (!rest || dash <= 0 || !edge || !Number.isInteger(consumer) || consumer < 0) {
      throw new Error(`unit ${this.options.unit}: '${queue}' names no sub-partition of job ${this.options.jobId}`);
    }
    route = { edgeId: edge.id, consumer, queue: this.options.inputQueueOf(`${edge.to}#${consumer}`) };
    this.routes.set(queue, route);
    return route;
  }

  /** The unit's live group, or a replay's group of its own (its inner group is `<p>.<a>.r<ra>.<rq>`). */
  private groupOf(inner: string): string {
    if (!inner.includes('.r')) return this.group; // a live group (`<p>.<a>`): no expression per message
    const replay = /^\d+\.\d+(\.r\d+\.\d+)$/.exec(inner);
    return replay ? `${this.group}${replay[1]}` : this.group;
  }

  private destination(queue: string): Destination {
    let d = this.destinations.get(queue);
    if (!d) this.destinations.set(queue, (d = { queue, parts: [], inFlight: undefined, immediate: undefined, timer: undefined, timerAt: 0, lazyDue: undefined, lingerDue: undefined, awaiting: undefined }));
    return d;
  }

  /**
   * What is queued for one consumer unit, none of it urgent, goes when the first of it is due (a
   * barrier's grace, the next send tick); at once if that has passed (a send was in flight meanwhile).
   */
  private wake(d: Destination, now: number): void {
    const due = Math.min(d.lazyDue ?? Infinity, d.lingerDue ?? Infinity);
    if (due === Infinity) return;
    if (due <= now) return this.pump(d);
    if (d.timer && d.timerAt <= due) return;
    if (d.timer) clearTimeout(d.timer);
    d.timerAt = due;
    d.timer = setTimeout(() => this.pump(d), due - now);
  }

  /** Sends what is queued for one consumer unit (when no send to it is in flight). */
  private pump(d: Destination): void {
    if (d.immediate) clearImmediate(d.immediate);
    if (d.timer) clearTimeout(d.timer);
    d.immediate = d.timer = undefined;
    if (d.inFlight || d.parts.length === 0) return;
    const parts = d.parts.splice(0);
    d.lazyDue = d.lingerDue = undefined;
    const envelopes = this.pack(parts);
    d.inFlight = this.options.transport
      .send(d.queue, envelopes)
      .then(
        () => {
          this.stats.envelopesSent += envelopes.length;
          this.stats.partsSent += parts.length;
          for (const p of parts) p.done?.resolve();
        },
        (error: unknown) => {
          for (const p of parts) p.done?.reject(error);
          if (!parts.some((p) => p.done)) this.sendFailure ??= error;
        },
      )
      .finally(() => {
        d.inFlight = undefined;
        if (d.parts.length === 0) return;
        // What gathered meanwhile goes at once when urgent; barriers and linger flushes alone keep their time.
        if (d.parts.some((p) => !p.lazy && !p.linger)) this.pump(d);
        else this.wake(d, this.clock.now());
      });
  }

  /** Envelopes of at most MAX_MESSAGE_BYTES, per message group, each group's parts in order. */
  private pack(parts: readonly Pending[]): OutboundMessage[] {
    const byGroup = new Map<string, Pending[]>();
    for (const p of parts) {
      const list = byGroup.get(p.group);
      if (list) list.push(p);
      else byGroup.set(p.group, [p]);
    }
    const header = envelopeHeader(this.options.unit, this.options.attempt);
    const out: OutboundMessage[] = [];
    for (const [groupId, list] of byGroup) {
      // The header goes first in the one join, so the envelope is one flat string (the transport
      // measures it and the consumer slices it: header + joined parts would be copied again).
      let texts: string[] = [header];
      let bytes = header.length;
      const close = () => {
        if (texts.length === 1) return;
        out.push({ groupId, dedupId: `${this.options.unit}-${this.options.attempt}-${this.options.generation ?? 0}-${this.sequence++}`, body: texts.join(''), bytes });
        texts = [header];
        bytes = header.length;
      };
      const add = (text: string, size: number) => {
        if (texts.length > 1 && bytes + size > MAX_MESSAGE_BYTES) close();
        texts.push(text);
        bytes += size;
      };
      // Consecutive parts of one control event (a writer's barrier to each consumer here) go as one
      // compact part: decoded, it gives the same parts in the same order (messages.ts).
      for (let i = 0; i < list.length; ) {
        const run = list[i]!.run;
        if (run) {
          // Gathered as they were queued (a run of one goes as it came).
          const text = run.length === 3 ? list[i]!.text : compactRun(list[i]!.edgeId, list[i]!.shape!.head, list[i]!.shape!.rest, run);
          add(text, run.length === 3 ? list[i]!.bytes : Buffer.byteLength(text));
          i++;
          continue;
        }
        const shape = list[i]!.shape;
        let k = i + 1;
        if (shape) while (k < list.length && k - i < MAX_COMPACT_RUN && list[k]!.shape?.key === shape.key && !list[k]!.run) k++;
        if (k - i < 2) {
          add(list[i]!.text, list[i]!.bytes);
        } else {
          const text = compactPart(list[i]!.edgeId, list.slice(i, k).map((p) => p.shape!));
          add(text, Buffer.byteLength(text));
        }
        i = k;
      }
      close();
    }
    return out;
  }

  // --- receiving -----------------------------------------------------------------------------

  private async pollLoop(queue: string): Promise<void> {
    const maxBuffered = this.options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    // Long polls back off while the queue is idle (an empty receive is billed like a full one) and
    // come back to the short wait with the first message; a long poll returns as soon as one arrives.
    const busyWait = this.options.waitSeconds ?? DEFAULT_WAIT_SECONDS;
    const idleWait = Math.max(busyWait, this.options.idleWaitSeconds ?? 20);
    try {
      await this.pollUntilStopped(queue, maxBuffered, busyWait, idleWait);
    } finally {
      this.pollerIs(this.receiveFailure !== undefined ? 'failed' : this.supersededAt !== undefined ? 'superseded' : 'stopped');
    }
  }

  private async pollUntilStopped(queue: string, maxBuffered: number, busyWait: number, idleWait: number): Promise<void> {
    let wait = busyWait;
    /** The last receive came back short of full: the queue may be empty, the next one may wait (claimed-receive.ts). */
    let drained = true;
    /** Since when receives fail, and the wait before the next try. */
    let failingSince: number | undefined;
    let retryMs = this.options.receiveRetryMs ?? 1000;
    while (this.running) {
      this.pollerIs('receiving');
      if (this.buffered > maxBuffered) {
        this.pollerIs('inboxes');
        await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
        continue;
      }
      // Backpressure from deletes: receiving faster than the queue takes deletes only makes every
      // delete later. At P=4000 in one process the deletes queued behind a busy connection pool
      // until their receipts had expired, and each envelope came again, ~16 times (docs/scale.md).
      if (this.pendingDeletes > MAX_PENDING_DELETES) {
        this.pollerIs('deletes');
        await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
        continue;
      }
      const budget = this.options.inputBudget;
      if (budget?.full()) {
        this.pollerIs('budget');
        // Woken by room in the process's budget, or by this unit's stop (its room waiters).
        await new Promise<void>((resolve) => {
          this.roomWaiters.push(resolve);
          void budget.room().then(resolve);
        });
        continue;
      }
      let messages: InboundMessage[];
      try {
        // Every producer is in this unit: only what a previous invocation handed over is in the queue.
        const waitSeconds = this.onlyLocalProducers ? 0 : wait;
        const max = budget?.tight() ? 1 : 10;
        this.receiveEndsAt = Date.now() + waitSeconds * 1000;
        try {
          messages = await receiveClaimed(this.options.transport, queue, { max, waitSeconds, visibilityTimeoutSeconds: this.leaseSeconds, signal: this.pollAbort.signal }, drained);
        } finally {
          this.receiveEndsAt = undefined;
        }
        wait = messages.length > 0 ? busyWait : Math.min(idleWait, wait * 2);
        drained = messages.length < max;
        if (this.onlyLocalProducers && messages.length === 0) return;
      } catch (error) {
        if (!this.running) return;
        // Tried again, a while: one timed-out receive (an overloaded endpoint) used to stop the
        // poller for good, and every subtask of the unit failed on it, restart after restart (at
        // P=4000 a restarted join unit, minutes into its replays: bench/results/scale-join-4000-p.log).
        const now = this.clock.now();
        failingSince ??= now;
        this.stats.receiveFailures = (this.stats.receiveFailures ?? 0) + 1;
        this.lastReceiveError = error instanceof Error ? error.message : String(error);
        if (now - failingSince >= (this.options.receiveGiveUpMs ?? 300_000)) {
          this.receiveFailure = error;
          for (const inbox of this.inboxes.values()) wakeAll(inbox);
          return;
        }
        this.pollerIs('retrying');
        await sleep(retryMs, undefined, { signal: this.pollAbort.signal }).catch(() => undefined);
        retryMs = Math.min(20_000, retryMs * 2);
        continue;
      }
      failingSince = undefined;
      retryMs = this.options.receiveRetryMs ?? 1000;
      const newer = messages.filter((m) => this.fromNewerProducer(m.groupId));
      if (newer.length > 0) {
        await this.options.transport.changeVisibility(queue, newer.map((m) => m.receipt), 0).catch(() => undefined);
        messages = messages.filter((m) => !newer.includes(m));
        this.supersededAt ??= this.clock.now();
      }
      const receivedAt = this.clock.now();
      for (const m of messages) {
        try {
          this.split(m, receivedAt);
        } catch (error) {
          this.receiveFailure = error;
          for (const inbox of this.inboxes.values()) wakeAll(inbox);
          return;
        }
      }
      // Superseded: nothing more is received; the failover that superseded this unit stops it.
      if (this.supersededAt !== undefined) return;
    }
  }

  /** When envelopes of a newer producer attempt were first given back (see `producerAttempts`). */
  supersededAt: number | undefined;

  private fromNewerProducer(groupId: string): boolean {
    const known = this.options.producerAttempts;
    if (!known) return false;
    const m = /^u(\d+)\.(\d+)/.exec(groupId);
    if (!m) return false;
    const attempt = known.get(Number(m[1]));
    return attempt !== undefined && Number(m[2]) > attempt;
  }

  /** One envelope into its sub-partitions' inboxes (parts for a closed inbox are dropped at once). */
  private split(message: InboundMessage, receivedAt: number): void {
    const { parts } = decodeEnvelope(message.body);
    this.stats.envelopesReceived++;
    this.stats.partsReceived += parts.length;
    const envelope: Envelope = { receipt: message.receipt, receivedAt, untaken: parts.length, lapsed: false };
    this.envelopes.set(message.receipt, envelope);
    if (parts.length === 0) return this.settleEnvelope(envelope);
    const woken = new Set<Inbox>();
    for (const p of parts) {
      const inbox = this.inboxByPart.get(`${p.edgeId} ${p.consumer}`);
      if (!inbox) throw new Error(`unit ${this.options.unit} received a message for sub-partition ${p.edgeId}/${p.consumer}, which no subtask of it reads`);
      const part: Part = {
        body: p.body,
        groupId: '',
        receipt: '',
        decoded: p.decoded,
        receiveCount: message.receiveCount,
        sentAt: message.sentAt,
        bytes: p.body.length + PART_OVERHEAD_BYTES,
        envelope,
        writerGroup: undefined,
      };
      if (!inbox.open) {
        this.drop(part);
        continue;
      }
      inbox.parts.push(part);
      this.buffered += part.bytes;
      this.options.inputBudget?.add(part.bytes);
      woken.add(inbox);
    }
    for (const inbox of woken) wakeAll(inbox);
  }

  private drop(part: Part): void {
    this.stats.partsDropped++;
    this.settle(part);
  }

  /** A part left its inbox: the poller may have room again. */
  private unbuffer(part: Part): void {
    this.buffered -= part.bytes;
    this.options.inputBudget?.remove(part.bytes);
    if (this.roomWaiters.length > 0 && this.buffered <= (this.options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES)) this.wakeRoomWaiters();
  }

  private wakeRoomWaiters(): void {
    for (const wake of this.roomWaiters.splice(0)) wake();
  }

  /** A part was taken (or dropped): its envelope is deleted once every part of it has been. */
  private settle(part: Part): void {
    if (--part.envelope.untaken === 0) this.settleEnvelope(part.envelope);
  }

  private settleEnvelope(envelope: Envelope): void {
    this.envelopes.delete(envelope.receipt);
    if (envelope.lapsed) return;
    this.toDelete.push({ receipt: envelope.receipt, receivedAt: envelope.receivedAt });
    this.deleting ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.deleteSettled());
  }

  /** Deletes the settled envelopes (batched by the transport); an expired receipt means the envelope comes again. */
  private async deleteSettled(): Promise<void> {
    try {
      while (this.toDelete.length > 0) {
        const settled = this.toDelete.splice(0);
        const receipts = settled.map((d) => d.receipt);
        this.deletesInFlight = receipts.length;
        const { expired } = await this.options.transport.delete(this.options.inputQueue!, receipts).catch((error: unknown) => {
          // Not deleted: the envelope comes again after its visibility timeout, every part a
          // duplicate. Counted, never silent (the P=4000 stall: docs/scale.md).
          this.stats.deleteFailures += receipts.length;
          this.lastDeleteError = error instanceof Error ? error.message : String(error);
          return { expired: [] as string[] };
        });
        this.deletesInFlight = 0;
        this.stats.expiredReceipts += expired.length;
        this.adaptLease(expired.length, this.clock.now() - Math.min(...settled.map((d) => d.receivedAt)));
        if (this.roomWaiters.length > 0 && this.toDelete.length <= MAX_PENDING_DELETES) this.wakeRoomWaiters();
      }
    } finally {
      this.deleting = undefined;
    }
  }

  /**
   * Longer leases while deletes come back expired; shorter again while they come within a third of
   * the base, but only once LEASE_HOLD_MS passed without an expired delete: the late deletes come
   * with each checkpoint's surge, and a lease shrunk between two checkpoints expired again in the
   * next (the P=4000 join's second checkpoint, docs/scale.md).
   */
  private adaptLease(expired: number, oldestAgeMs: number): void {
    const now = this.clock.now();
    if (expired > 0) {
      this.leaseSeconds = Math.min(MAX_LEASE_SECONDS, this.leaseSeconds * 2);
      this.lastExpiredAt = now;
    } else if (this.leaseSeconds > this.visibilitySeconds && now - this.lastExpiredAt >= LEASE_HOLD_MS && oldestAgeMs < (this.visibilitySeconds * 1000) / 3) {
      this.leaseSeconds = Math.max(this.visibilitySeconds, Math.floor(this.leaseSeconds * 0.9));
    }
  }

  /** The lease receives ask for now (see `leaseSeconds`). */
  get lease(): number {
    return this.leaseSeconds;
  }

  /** When a delete last came back expired (see `adaptLease`). */
  private lastExpiredAt = Number.NEGATIVE_INFINITY;

  /** Receipts being deleted now (the call in flight). */
  private deletesInFlight = 0;
  /** The last delete call that failed, for the unit's log. */
  lastDeleteError: string | undefined;
  /** The last receive that failed (tried again, see `receiveGiveUpMs`), for the unit's log. */
  lastReceiveError: string | undefined;

  /** Envelopes settled and not yet deleted: past MAX_PENDING_DELETES the poller waits (see pollLoop). */
  private get pendingDeletes(): number {
    return this.toDelete.length + this.deletesInFlight;
  }

  /** Keeps envelopes with parts not yet taken in flight (capped at SQS's 12 hours from their receive). */
  private async extendLoop(): Promise<void> {
    const every = this.options.extendEveryMs ?? (this.visibilitySeconds * 1000) / 3;
    let stopped = false;
    const stop = new Promise<void>((resolve) => {
      this.stopExtender = () => {
        stopped = true;
        resolve();
      };
    });
    // Rounds start every `every` ms, not `every` after the last round ended: on a slow endpoint a
    // round takes seconds, and a held message's next extension came that much later (three receipts
    // expired in the long-alignment test against the emulator at load ~13); at least a quarter of
    // it apart, so a round slower than `every` does not start the next at once.
    let started = this.clock.now();
    while (!stopped) {
      await Promise.race([this.clock.sleep(Math.max(every / 4, started + every - this.clock.now())), stop]);
      if (stopped) return;
      started = this.clock.now();
      const now = this.clock.now();
      const bySeconds = new Map<number, string[]>();
      for (const e of this.envelopes.values()) {
        if (e.lapsed || e.untaken === 0) continue;
        const seconds = Math.min(this.leaseSeconds, MAX_VISIBILITY_SECONDS - Math.ceil((now - e.receivedAt) / 1000) - 60);
        if (seconds <= 0) continue;
        const list = bySeconds.get(seconds);
        if (list) list.push(e.receipt);
        else bySeconds.set(seconds, [e.receipt]);
      }
      for (const [seconds, receipts] of bySeconds) {
        const result = await this.options.transport.changeVisibility(this.options.inputQueue!, receipts, seconds).catch(() => ({ expired: [] as string[] }));
        for (const r of result.expired) {
          const e = this.envelopes.get(r);
          if (e && !e.lapsed) {
            e.lapsed = true;
            this.stats.envelopesLapsed++;
          }
        }
        this.stats.expiredReceipts += result.expired.length;
      }
    }
  }
}

function wakeAll(inbox: Inbox): void {
  for (const w of [...inbox.waiters]) w();
}

/** Default clock: its timers do not keep the process alive. */
const unrefClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()),
};
