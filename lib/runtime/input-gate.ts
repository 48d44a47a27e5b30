/**
 * Input gate: the consumer side of a subtask. One long-polling reader per input queue (one queue
 * per input edge: the subtask's sub-partition) fills a bounded buffer; the subtask takes decoded
 * channel events from it in channel order and deletes the messages once their effects are safe
 * downstream.
 *
 * Per channel (edge, producer) the gate keeps (see messages.ts for the fields):
 * - the lowest producer attempt it accepts: a message of an attempt below it is dropped (after a
 *   region or full restart the consumer fences everything its producers sent before). Messages of
 *   an older attempt above the fence are data the producer sent before it failed, and still count
 *   (single-point recovery: the consumer did not restart);
 * - per producer attempt (message group) the next sequence number to deliver. Each group is
 *   delivered strictly in order: a message that comes early (SQS lands a resent batch entry after
 *   later ones) waits in memory for the ones before it. It is deleted from the queue at once, or
 *   the FIFO group would stay blocked behind it and the missing one could never come. A gap that
 *   does not fill within `gapTimeoutMs` (or grows past MAX_EARLY messages) fails the consumer with
 *   an error naming the channel and the missing sequence number; a gap in an older attempt's group
 *   is given up once a newer attempt writes to the channel (the old producer is gone). A sequence
 *   number below the next one is a redelivery: dropped. The first message a consumer sees of a
 *   group starts it (a restarted consumer never sees what its dead attempt deleted), except under
 *   region and full failover, where every group starts at 0 (`groupsStartAtZero`);
 * - per lineage the next record position: records below it are duplicates (a restored source
 *   replaying what this consumer already processed), dropped and counted; a jump counts the
 *   records skipped as missing. Records of a message received before (receive count > 1) count as
 *   replayed.
 *
 * Every message received and not yet deleted (buffered, being processed, held back by a barrier
 * alignment) has its visibility extended while the gate holds it, so an alignment of any length
 * keeps its receipts valid (up to SQS's 12-hour cap). A delete whose receipt has expired anyway
 * is not an error: the message comes again and is dropped by its sequence number.
 *
 * The channels' state is kept as channel-table.ts describes: a channel not heard from costs
 * nothing but a few array slots and has the default state, and one that carries only in-order
 * messages of one group (watermarks, barriers, records at the expected position) stays in typed
 * arrays; only the others become objects. Whatever counts over all channels (open channels, the
 * smallest watermark, alignment) counts the channels not heard from as open, watermark unknown.
 */
import { DeterminantStore } from './determinants';
import { appendTo } from './multimap';
import type { Clock } from '../ports/clock';
import { MAX_VISIBILITY_SECONDS, type ChannelTransport, type InboundMessage } from '../ports/channels';
import type { ExecutionEdge } from '../graph/execution-graph';
import type { ChannelCounters, ChannelHandover, EdgeCounters, InputCounters } from './handover';
import { receiveClaimed } from './claimed-receive';
import { decodeChannelMessage, type ChannelInbound, type ChannelMessage } from './messages';
import { addSkipped, takeSkipped, type Range } from './skipped-ranges';
import { ChannelTotals, EdgeChannels, FullChannel, NO_WATERMARK, zeroCounters, type ChannelState, type GateChannel, type GroupOrder, type Received, type RestartRule } from './channel-table';

export type { ChannelState, GateChannel } from './channel-table';

/** Barrier positions kept per lineage (a producer restores from a recent checkpoint). */
const BARRIERS_KEPT = 32;

export interface GateEvent {
  /** The channel it came from (its watermark and end of input are set through it). */
  channel: GateChannel;
  message: ChannelMessage;
  /** Where the message came from, to delete it once its effects are safe downstream. */
  queue: string;
  /** Absent when the message was already deleted (it came early and waited in memory). */
  receipt: string | undefined;
  /** Size of the message it came in (what holding it back costs in memory). */
  bytes?: number;
}


/**
 * Channel positions a checkpoint keeps, so a restored consumer recognizes a replay, and the
 * channel's record counters: a restart takes them back to the checkpoint (what comes again after
 * it is counted again, not twice).
 */
export interface ChannelPositions {
  key: string;
  positions: [lineage: number, next: number][];
  /** Absent in older snapshots. */
  counters?: ChannelCounters;
  /**
   * The channel's end of input was processed before the snapshot: a consumer restored from it does
   * not wait for it again (a finished producer is not restarted, and its end of input may be gone
   * from the queue: multiplexed channels delete what a subtask has taken, see channel-mux.ts).
   */
  ended?: boolean;
  /**
   * Lineages superseded by the producer's restart notice before the snapshot, and the notice: a
   * replay repeats the notice to the restored consumer, whose counters already hold what it counted.
   */
  superseded?: [lineage: number, from: number][];
  restarted?: RestartRule;
  /** Positions skipped (missing) per lineage, [lineage, from, to]: a source that sends them again finds them lost. */
  skipped?: [lineage: number, from: number, to: number][];
  /**
   * This entry stands for `range` channels of the edge (producers `p` to `p + range - 1`, where
   * `key` names `p`), all with these positions, counters and end (absent: 1). A snapshot lists
   * alike channels this way: a join subtask at parallelism 4000 reads 8000 channels, mostly alike.
   * (Only channels kept in the arrays are listed as runs: they have no superseded, restarted or skipped.)
   */
  range?: number;
}

export interface InputGateOptions {
  inputs: ExecutionEdge[];
  consumerIndex: number;
  producerParallelism: (taskId: string) => number;
  queueOf: (edge: ExecutionEdge) => string;
  transport: ChannelTransport;
  /** Lowest producer attempt accepted per channel (fencing after a restart). */
  minAttempt?: (edgeId: string, producer: number) => number;
  /** Long-poll wait while data flows (default 2 s); each empty receive doubles it, up to `idleWaitSeconds`. */
  waitSeconds?: number;
  /** Longest long-poll wait of an idle queue (default 20 s, SQS's most): idle queues cost one receive per 20 s. */
  idleWaitSeconds?: number;
  visibilityTimeoutSeconds?: number;
  /** How often held messages get their visibility extended (default: a third of the timeout). */
  extendEveryMs?: number;
  /**
   * False when the transport settles a message once it is taken (multiplexed channels,
   * channel-mux.ts: what the gate holds is in memory, not in flight at SQS): no visibility to
   * extend, no receipts to keep for it (default true).
   */
  extendVisibility?: boolean;
  /** Most messages one receive takes (default 10, SQS's most; an in-memory inbox can give more). */
  receiveMax?: number;
  /** Longest wait for a missing message of a group before the consumer fails (default 120 s). */
  gapTimeoutMs?: number;
  /**
   * Region and full failover: every producer group this consumer accepts began with the attempt it
   * restarted with, at sequence 0, so a group never starts past 0. A missing first message was
   * received by a dead consumer's long poll (pending at the queue when it died): it comes again
   * once its visibility times out, and SQS FIFO holds the group's later messages back meanwhile.
   * Starting without it would lose its records. It is waited for like any gap.
   */
  groupsStartAtZero?: boolean;
  /** Time for visibility extension and gap timeouts (default: the system clock). */
  clock?: Clock;
  /**
   * Keep channels in the arrays while their state fits (default true, see channel-table.ts);
   * false makes every channel a full object from its first message (tests compare the two).
   */
  compactChannels?: boolean;
  /** Called when a poller fails (queue deleted, endpoint gone). */
  onError: (error: unknown) => void;
}

/** Most messages one group may hold back waiting for a gap to fill. */
export const MAX_EARLY = 1000;
/**
 * A group first seen past its sequence 0 (a consumer that restarted mid-group, or a resent first
 * entry) starts at the lowest sequence seen once this many messages or START_GRACE_MS have passed:
 * a resent entry lands behind at most the rest of its batch (9 entries), one batch call at a time.
 */
const START_AFTER_MESSAGES = 10;
const START_GRACE_MS = 2_000;
const DEFAULT_VISIBILITY_SECONDS = 15;
const DEFAULT_GAP_TIMEOUT_MS = 120_000;
/** Characters of message bodies one `next` decodes at most (but always one message): about 4 full messages. */
const BATCH_CHARS = 1 << 20;

/** Default clock: its timers do not keep the process alive. */
const unrefClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()),
};

export class InputGate {
  /** Every input channel (heard from or not), by key, in order: read-only views but for `watermark` and `ended`. */
  readonly channels: ReadonlyMap<string, ChannelState>;
  /** Per input edge (in input order), its channels. */
  private readonly tables: EdgeChannels[] = [];
  private readonly tableOf = new Map<string, EdgeChannels>();
  private readonly totals = new ChannelTotals();
  private combined = NO_WATERMARK;
  /** Channels that may have a group waiting for its start or for a gap to fill (see `checkGaps`). */
  private readonly gapped = new Set<FullChannel>();
  private readonly compact: boolean;
  private readonly buffer: Received[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly pollers: Promise<void>[] = [];
  /** Per queue: resolves when the messages last received from it have been acknowledged. */
  private readonly unacknowledged = new Map<string, () => void>();
  /** Messages received and not yet deleted, by receipt: their visibility is kept extended. */
  private readonly inFlight = new Map<string, { queue: string; receivedAt: number }>();
  private extender: Promise<void> | undefined;
  private stopExtender: (() => void) | undefined;
  private running = false;
  /** Stopping for a hand-over: what in-flight receives return is still buffered, to be processed. */
  private draining = false;
  private readonly clock: Clock;
  private readonly visibilitySeconds: number;
  /** Messages discarded as redeliveries of a sequence number already delivered. */
  duplicates = 0;
  fenced = 0;
  expiredReceipts = 0;
  reordered = 0;
  /** Replay messages of a request no longer waited for (answered twice, or superseded by a retry). */
  staleReplays = 0;
  /** The determinants producers sent along (single-exact), kept until their next checkpoint completes. */
  readonly determinants = new DeterminantStore();

  constructor(private readonly options: InputGateOptions) {
    this.clock = options.clock ?? unrefClock;
    this.visibilitySeconds = options.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_SECONDS;
    this.compact = options.compactChannels !== false;
    for (const edge of options.inputs) {
      const fence = options.minAttempt;
      const table = new EdgeChannels(edge, this.tables.length, options.consumerIndex, options.producerParallelism(edge.from), (p) => fence?.(edge.id, p) ?? 0, this.totals);
      this.tables.push(table);
      this.tableOf.set(edge.id, table);
    }
    this.channels = new ChannelsView(this.tables);
  }

  start(): void {
    this.running = true;
    for (const edge of this.options.inputs) this.pollers.push(this.poll(edge));
    if (this.options.extendVisibility !== false) this.extender ??= this.extendLoop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    for (const release of this.unacknowledged.values()) release();
    this.stopExtender?.();
    // Once every channel has ended nothing more comes: a finished subtask does not wait out its
    // pollers' long polls (up to `waitSeconds`). Otherwise it does, so no receive still open after
    // the stop can take messages a successor is to read.
    await Promise.allSettled([...(this.allEnded() ? [] : this.pollers), ...(this.extender ? [this.extender] : [])]);
  }

  /**
   * Stops receiving, for a hand-over: no new receive starts; messages that receives already in
   * flight return are buffered (the subtask processes them before it hands over), so nothing is
   * left hidden in flight for the successor to wait out.
   */
  async drain(): Promise<void> {
    this.draining = true;
    this.running = false;
    this.releaseAll();
    await Promise.allSettled(this.pollers);
    this.pollers.length = 0;
  }

  /** True when messages are buffered and not yet taken. */
  get buffered(): boolean {
    return this.buffer.length > 0;
  }

  /** Totals over all channels. */
  counters(): InputCounters {
    const total = { ...zeroCounters(), unreplayedRecords: 0, expiredReceipts: this.expiredReceipts, reordered: this.reordered };
    // A channel kept in the arrays has no counts.
    for (const c of this.fullChannels()) {
      total.duplicateRecords += c.counters.duplicateRecords;
      total.missingRecords += c.counters.missingRecords;
      total.replayedRecords += c.counters.replayedRecords;
      total.regeneratedRecords! += c.counters.regeneratedRecords ?? 0;
      total.unreplayedRecords! += c.counters.unreplayedRecords ?? 0;
    }
    return total;
  }

  /**
   * Counters of the channels with any, by channel key (edge/producer), in channel order; with
   * `limit`, only the `limit` channels with the most records counted (`countedChannels` says how
   * many have any). Channels with unreplayed records (lost) go first: a chaos verdict reads them
   * per edge (`edgeCounters` has the totals).
   */
  channelCounters(limit = Infinity): Record<string, ChannelCounters> {
    let counted = [...this.fullChannels()].filter((c) => hasCounts(c.counters));
    if (counted.length > limit) {
      const kept = new Set(
        [...counted]
          .sort((a, b) => (b.counters.unreplayedRecords ?? 0) - (a.counters.unreplayedRecords ?? 0) || countedRecords(b.counters) - countedRecords(a.counters) || a.rank - b.rank)
          .slice(0, limit),
      );
      counted = counted.filter((c) => kept.has(c));
    }
    const out: Record<string, ChannelCounters> = {};
    for (const c of counted) out[channelKey(c.edge.id, c.producer)] = { ...c.counters };
    return out;
  }

  /**
   * Per input edge with any, the loss and regeneration counters summed over all its channels
   * (`channelCounters` may list only a few channels): what a loss check per edge reads, since the
   * records the output counts one for one travel on some edges and not others.
   */
  edgeCounters(): Record<string, EdgeCounters> {
    const out: Record<string, EdgeCounters> = {};
    for (const c of this.fullChannels()) {
      const { missingRecords, regeneratedRecords = 0, unreplayedRecords = 0 } = c.counters;
      if (missingRecords === 0 && regeneratedRecords === 0 && unreplayedRecords === 0) continue;
      const e = (out[c.edge.id] ??= { missingRecords: 0, unreplayedRecords: 0, regeneratedRecords: 0 });
      e.missingRecords += missingRecords;
      e.unreplayedRecords += unreplayedRecords;
      e.regeneratedRecords += regeneratedRecords;
    }
    return out;
  }

  /** Channels with any counts (only full channels have counts). */
  countedChannels(): number {
    let n = 0;
    for (const c of this.fullChannels()) if (hasCounts(c.counters)) n++;
    return n;
  }

  /** Input channels not ended (those not heard from included). */
  openCount(): number {
    return this.totals.expected - this.totals.ended;
  }

  /** True when channel `key` is one of this gate's and has not ended. */
  isOpen(key: string): boolean {
    const at = this.locate(key);
    return at !== undefined && !at.table.isEnded(at.slot);
  }

  /** Channels of this gate: numbered 0 to channelCount - 1 (`GateChannel.index`), in channel order. */
  get channelCount(): number {
    return this.totals.expected;
  }

  /** True when channel number `index` has not ended. */
  isOpenAt(index: number): boolean {
    const table = this.tableAt(index);
    return !table.isEnded(index - table.base);
  }

  /** The key (edge/producer) of channel number `index`. */
  channelKeyAt(index: number): string {
    const table = this.tableAt(index);
    return channelKey(table.edge.id, table.producerOf(index - table.base));
  }

  private tableAt(index: number): EdgeChannels {
    // A handful of input edges: the last one whose first channel is at or below `index`.
    const tables = this.tables;
    for (let i = tables.length - 1; i > 0; i--) if (tables[i]!.base <= index) return tables[i]!;
    return tables[0]!;
  }

  /** Keys of the channels not ended, in channel order. */
  *openChannelKeys(): Iterable<string> {
    for (const table of this.tables) {
      for (let slot = 0; slot < table.size; slot++) if (!table.isEnded(slot)) yield channelKey(table.edge.id, table.producerOf(slot));
    }
  }

  /**
   * What each of the first `limit` open channels waits for, one line each: why this subtask has
   * not ended, for a stuck job's report (progress-watch.ts). Cheap: it walks only open channels.
   */
  describeOpen(limit = 4): string[] {
    const out: string[] = [];
    for (const table of this.tables) {
      for (let slot = 0; slot < table.size && out.length < limit; slot++) {
        if (table.isEnded(slot)) continue;
        const key = channelKey(table.edge.id, table.producerOf(slot));
        const c = table.full.get(slot);
        if (!c) {
          const g = table.group[slot]!;
          out.push(`${key}: ${g === -1 ? 'nothing received' : `attempt ${g}, next ${table.next[slot]}`}`);
          continue;
        }
        const groups = [...c.groups].map(([a, g]) => `a${a} next ${g.next ?? '?'}${g.early.size > 0 ? ` (${g.early.size} early from ${Math.min(...g.early.keys())})` : ''}`);
        const replay = c.replay
          ? `; waits for replay ${c.replay.request} (answer ${c.replay.attempt === undefined ? 'not begun' : `from a${c.replay.attempt}, next ${c.replay.order.next}`}, ${c.replay.held.length} live held)`
          : '';
        out.push(`${key}: attempt ${c.attempt} (accepts from ${c.minAttempt}), groups ${groups.join(', ') || 'none'}${replay}${c.replayedBy ? `; replayed by a${c.replayedBy.attempt}` : ''}`);
      }
    }
    return out;
  }

  /** Channel state for the next invocation of this attempt (after `drain` and the last batch). */
  handoverState(): ChannelHandover[] {
    const out: ChannelHandover[] = [];
    for (const table of this.tables) {
      for (let slot = 0; slot < table.size; slot++) {
        const key = channelKey(table.edge.id, table.producerOf(slot));
        const c = table.full.get(slot);
        out.push(c ? this.fullHandover(key, c) : slotHandover(key, table, slot));
      }
    }
    return out;
  }

  private fullHandover(key: string, c: FullChannel): ChannelHandover {
    return {
      key,
      minAttempt: c.minAttempt,
      attempt: c.attempt,
      order: [...c.groups].map(([attempt, g]) => ({ attempt, next: g.next ?? null })),
      early: [...c.groups.values()].flatMap((g) =>
        [...g.early.values()].map((e) => ({ body: e.message.body, ...(e.message.receiveCount !== undefined ? { receiveCount: e.message.receiveCount } : {}) })),
      ),
      positions: [...c.positions],
      counters: { ...c.counters },
      watermark: c.watermark,
      ended: c.ended,
      barriers: [...c.barriers].map(([lineage, at]) => [lineage, [...at]] as [number, [number, number][]]),
      superseded: [...c.superseded],
      ...(c.restarted ? { restarted: c.restarted } : {}),
      ...(c.replayedBy ? { replayedBy: c.replayedBy } : {}),
      ...(c.skipped.size > 0 ? { skipped: skippedState(c) } : {}),
      ...(c.replay
        ? {
            replay: {
              consumerAttempt: c.replay.consumerAttempt,
              request: c.replay.request,
              ...(c.replay.attempt !== undefined ? { attempt: c.replay.attempt } : {}),
              next: c.replay.order.next ?? 0,
              early: [...c.replay.order.early.values()].map((e) => e.message.body),
              held: c.replay.held.map((h) => ({ body: h.message.body, ...(h.message.receiveCount !== undefined ? { receiveCount: h.message.receiveCount } : {}) })),
            },
          }
        : {}),
    };
  }

  /** Continues from a predecessor's channel state (before `start`). */
  resume(state: readonly ChannelHandover[], counters?: Partial<InputCounters>): void {
    const now = this.clock.now();
    for (const h of state) {
      const at = this.locate(h.key);
      if (!at) throw new Error(`hand-over names input channel ${h.key}, which this subtask does not read`);
      if (this.compact && !at.table.full.has(at.slot) && resumeInSlot(at.table, at.slot, h)) continue;
      const c = at.table.promote(at.slot, now);
      c.minAttempt = h.minAttempt;
      c.attempt = h.attempt;
      c.groups = new Map(h.order.map((o) => [o.attempt, { next: o.next ?? undefined, since: now, early: new Map() }]));
      for (const e of h.early) {
        const decoded = decodeChannelMessage(e.body);
        const group = c.groups.get(decoded.a);
        if (!group) throw new Error(`hand-over of channel ${h.key} holds a message of producer attempt ${decoded.a} without its order`);
        const message: InboundMessage = { body: e.body, groupId: `${decoded.p}.${decoded.a}`, receipt: '', ...(e.receiveCount !== undefined ? { receiveCount: e.receiveCount } : {}) };
        group.early.set(decoded.s, { queue: this.options.queueOf(c.edge), edge: c.edge, message, decoded, at: now });
      }
      this.noteGaps(c);
      c.positions = new Map(h.positions);
      c.counters = { ...zeroCounters(), ...h.counters };
      c.barriers = new Map((h.barriers ?? []).map(([lineage, at]) => [lineage, new Map(at)]));
      c.superseded = new Map(h.superseded ?? []);
      c.restarted = h.restarted;
      c.replayedBy = h.replayedBy;
      c.skipped = skippedFrom(h.skipped);
      c.watermark = h.watermark;
      c.ended = h.ended;
      if (h.replay) {
        const order: GroupOrder = { next: h.replay.next, since: now, early: new Map() };
        const queue = this.options.queueOf(c.edge);
        for (const body of h.replay.early) {
          const decoded = decodeChannelMessage(body);
          order.early.set(decoded.s, { queue, edge: c.edge, message: { body, groupId: '', receipt: '' }, decoded, at: now });
        }
        // Held live messages: a multiplexed transport deleted them when they were taken (a direct
        // queue leaves them in flight: they come again too, and are dropped by their sequence numbers).
        const held: Received[] = (h.replay.held ?? []).map((m) => ({ queue, edge: c.edge, message: { body: m.body, groupId: '', receipt: '', ...(m.receiveCount !== undefined ? { receiveCount: m.receiveCount } : {}) } }));
        c.replay = { consumerAttempt: h.replay.consumerAttempt, request: h.replay.request, ...(h.replay.attempt !== undefined ? { attempt: h.replay.attempt } : {}), order, held };
      }
    }
    this.expiredReceipts = counters?.expiredReceipts ?? this.expiredReceipts;
    this.reordered = counters?.reordered ?? this.reordered;
  }

  /**
   * Waits for a replay of channel `key` (its request `request` of consumer attempt
   * `consumerAttempt`; a later request replaces an earlier one): the channel's live messages are
   * held from now until the replay's end event. Call before `start` for what a restart needs.
   */
  awaitReplay(key: string, consumerAttempt: number, request: number): void {
    const at = this.locate(key);
    if (!at) throw new Error(`no input channel ${key} to wait for a replay on`);
    const channel = at.table.promote(at.slot, this.clock.now());
    const old = channel.replay;
    // Asked again before any answer came: the positions are the ones asked from before, so the
    // answers on their way stay good. At P=2000 a restarted join unit's answers came slower than
    // its retries, and each retry made every answer still on its way stale: 1,400 of a join's
    // 2,000 channels of an edge asked again and again (3,800 stale messages by request 5).
    const untouched = old !== undefined && old.consumerAttempt === consumerAttempt && old.attempt === undefined && (old.order.next ?? 0) === 0 && old.order.early.size === 0;
    channel.replay = {
      consumerAttempt,
      request,
      order: { next: 0, since: this.clock.now(), early: new Map() },
      held: old?.held ?? [],
      ...(untouched ? { earlier: [...(old.earlier ?? []), old.request] } : {}),
    };
  }

  /**
   * A restarted producer (single-exact) asked for its determinants: from now on the channels of
   * `producer` (`<task>#<index>`) take nothing of its attempts below `attempt` (what is already
   * taken, and its determinants, stay). Returns how many channels were fenced.
   */
  fenceProducer(producer: string, attempt: number): number {
    const hash = producer.lastIndexOf('#');
    const task = producer.slice(0, hash);
    const index = Number(producer.slice(hash + 1));
    let n = 0;
    for (const table of this.tables) {
      if (hash < 0 || table.edge.from !== task) continue;
      const slot = table.slotOf(index);
      if (slot < 0 || `${task}#${table.producerOf(slot)}` !== producer) continue;
      table.raiseFence(slot, attempt);
      n++;
    }
    return n;
  }

  /** Channels still waiting for a replay, with the request they wait for. */
  awaitedReplays(): { key: string; consumerAttempt: number; request: number; received: number }[] {
    const out: { key: string; consumerAttempt: number; request: number; received: number }[] = [];
    for (const c of this.fullChannels()) {
      const key = channelKey(c.edge.id, c.producer);
      // `received`: messages of the awaited request taken so far (delivered, or early): the replay is arriving.
      if (c.replay) out.push({ key, consumerAttempt: c.replay.consumerAttempt, request: c.replay.request, received: (c.replay.order.next ?? 0) + c.replay.order.early.size });
    }
    return out;
  }

  /**
   * A replay that did not come through the queue (read from a finished producer's log in S3):
   * taken like replay messages received, with nothing to delete.
   */
  injectReplay(key: string, bodies: readonly string[]): void {
    const at = this.locate(key);
    if (!at) throw new Error(`no input channel ${key} to replay into`);
    const { edge } = at.table;
    const queue = this.options.queueOf(edge);
    for (const body of bodies) this.buffer.push({ queue, edge, message: { body, groupId: '', receipt: '' } });
    this.wake();
  }

  /**
   * Record positions per channel, for a checkpoint snapshot. `held`: events delivered but not
   * processed (held back by the alignment): the snapshot's state does not contain them, so their
   * channel's position is where the first of them starts.
   */
  positions(held: readonly GateEvent[] = []): ChannelPositions[] {
    // Channels with held records are listed one by one (their position moves back); alike
    // channels kept in the arrays, as runs (`range`).
    const heldKeys = new Set<string>();
    for (const { channel, message } of held) if (message.t === 'd' && message.n !== undefined) heldKeys.add(channelKey(channel.edge.id, channel.producer));
    type Entry = { key: string; positions: Map<number, number>; counters: ChannelCounters; ended: boolean; range: number; channel?: FullChannel };
    const list: Entry[] = [];
    const single = new Map<string, { entry: Entry; channel: FullChannel | undefined }>();
    for (const table of this.tables) {
      let run: (Entry & { lineage: number; at: number }) | undefined;
      for (let slot = 0; slot < table.size; slot++) {
        const key = channelKey(table.edge.id, table.producerOf(slot));
        const c = table.full.get(slot);
        const ended = table.isEnded(slot);
        if (c || heldKeys.has(key)) {
          run = undefined;
          const positions = c ? c.positions : slotPositions(table, slot);
          const counters = c ? c.counters : zeroCounters();
          if (positions.size === 0 && !hasCounts(counters) && !ended) continue;
          const entry: Entry = { key, positions: new Map(positions), counters: { ...counters }, ended, range: 1, ...(c ? { channel: c } : {}) };
          list.push(entry);
          single.set(key, { entry, channel: c });
          continue;
        }
        const lineage = table.lineage[slot]!;
        if (lineage === -1 && !ended) {
          run = undefined;
          continue;
        }
        const at = table.position[slot]!;
        if (run && run.lineage === lineage && run.at === at && run.ended === ended) {
          run.range++;
          continue;
        }
        run = { key, positions: slotPositions(table, slot), counters: zeroCounters(), ended, range: 1, lineage, at };
        list.push(run);
      }
    }
    for (const { channel, message } of held) {
      if (message.t !== 'd' || message.n === undefined) continue;
      const found = single.get(channelKey(channel.edge.id, channel.producer));
      const entry = found?.entry;
      const lineage = message.l ?? message.a;
      const at = entry?.positions.get(lineage);
      if (!entry || at === undefined) continue;
      entry.positions.set(lineage, Math.min(at, message.n));
      // Counted when taken, and counted again when it comes after a restore from this snapshot.
      const regeneratedFrom = found.channel?.superseded.get(lineage);
      if (regeneratedFrom !== undefined) entry.counters.regeneratedRecords! -= Math.max(0, message.n + message.r.length - Math.max(regeneratedFrom, message.n));
    }
    return list.map(({ key, positions, counters, ended, range, channel }) => ({
      key,
      positions: [...positions],
      counters,
      ...(ended ? { ended } : {}),
      ...(range > 1 ? { range } : {}),
      ...(channel && channel.superseded.size > 0 ? { superseded: [...channel.superseded] } : {}),
      ...(channel?.restarted ? { restarted: channel.restarted } : {}),
      ...(channel && channel.skipped.size > 0 ? { skipped: skippedState(channel) } : {}),
    }));
  }

  /**
   * A consumer restored from a checkpoint: its state holds the records up to these positions, so
   * a producer that replays them (a restored source) is recognized, and what its previous attempt
   * processed after the checkpoint shows as missing records.
   */
  restorePositions(state: readonly ChannelPositions[], checkpointId?: number): void {
    const now = this.clock.now();
    for (const { key, positions, counters, ended, range, superseded, restarted, skipped } of state) {
      const at = this.locate(key);
      if (!at) continue;
      const { table } = at;
      // A restart notice, superseded lineages or skipped positions need a full channel.
      const inSlot = this.compact && !(superseded?.length || restarted || skipped?.length);
      const last = Math.min(table.size, at.slot + Math.max(1, range ?? 1));
      for (let slot = at.slot; slot < last; slot++) {
        if (inSlot && !table.full.has(slot) && restoreInSlot(table, slot, positions, counters, ended, checkpointId)) continue;
        const c = table.promote(slot, now);
        if (counters) c.counters = { ...zeroCounters(), ...counters };
        if (ended) c.ended = true;
        if (superseded) c.superseded = new Map(superseded);
        if (restarted) c.restarted = restarted;
        if (skipped) c.skipped = skippedFrom(skipped);
        for (const [lineage, next] of positions) {
          c.positions.set(lineage, next);
          // The snapshot was taken at the barrier: where a producer restarting from it goes on.
          if (checkpointId !== undefined) this.noteBarrier(c, lineage, checkpointId, next);
        }
      }
    }
  }

  /**
   * Waits up to `timeoutMs` for messages and returns the accepted events in channel order (each
   * to be acknowledged once processed), and the receipts of messages to delete at once (fenced,
   * duplicate, or waiting early in memory). Call `release()` when done with the batch: the
   * pollers receive again.
   */
  async next(timeoutMs: number): Promise<{ events: GateEvent[]; discarded: Map<string, string[]> }> {
    if (this.buffer.length === 0 && timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    // Decoded a few at a time: a multiplexed receive brings up to 500 messages of ~2,000 records,
    // and records decoded long before they are processed outlive young-generation collections and
    // get copied and promoted (bench:engine: ~280 bytes per record promoted when a gate decoded
    // all it had received at once). The rest waits in the buffer for the next call.
    let count = 0;
    let chars = 0;
    while (count < this.buffer.length && (count === 0 || chars + this.buffer[count]!.message.body.length <= BATCH_CHARS)) chars += this.buffer[count++]!.message.body.length;
    const taken = this.buffer.splice(0, count);
    const events: GateEvent[] = [];
    const discarded = new Map<string, string[]>();
    const discard = (queue: string, receipt: string | undefined) => {
      if (receipt) appendTo(discarded, queue, receipt);
    };
    const now = this.clock.now();
    for (const received of taken) this.take(received, now, events, discard);
    this.checkGaps(now, events, discard);
    return { events, discarded };
  }

  /** Sorts one received message: delivered in order, held, kept early, or discarded. */
  private take(received: Received, now: number, events: GateEvent[], discard: (queue: string, receipt: string | undefined) => void): void {
    const { queue, edge, message } = received;
    const decoded = (message as ChannelInbound).decoded ?? decodeChannelMessage(message.body);
    const table = this.tableOf.get(edge.id);
    const slot = table?.slotOf(decoded.p) ?? -1;
    if (!table || slot < 0) throw new Error(`message on edge ${edge.id} from producer ${decoded.p}, which does not write to this subtask`);
    if (this.compact && !table.full.has(slot) && this.takeInSlot(table, slot, received, decoded, events, discard)) return;
    const channel = table.promote(slot, now);
    if (decoded.a < channel.minAttempt) {
      this.fenced++;
      discard(queue, message.receipt);
      return;
    }
    if (decoded.ra !== undefined) return this.takeReplay(channel, received, decoded, now, events, discard);
    if (channel.replay) {
      // Waiting for a replay: live messages come after it. Kept in flight (their group waits).
      channel.replay.held.push(received);
      return;
    }
    const by = channel.replayedBy;
    if (by && decoded.a < by.attempt && (decoded.l ?? decoded.a) === by.lineage) {
      // A newer attempt of the producer answered this consumer's replay in the same lineage (a
      // restored source): it sends everything after its restored position again, and whatever
      // its dead attempt left in the queue lies after that. Taken, the leftovers' later positions
      // would make this consumer skip what the new attempt sends again, as duplicates.
      this.fenced++;
      discard(queue, message.receipt);
      return;
    }
    if (decoded.a > channel.attempt) {
      // The producer restarted: its new attempt has not ended, and the old one sends no more.
      channel.attempt = decoded.a;
      channel.ended = false;
      for (const [attempt, group] of channel.groups) if (attempt < decoded.a) this.giveUpGap(channel, group, decoded.l ?? decoded.a, events, discard);
    }
    let group = channel.groups.get(decoded.a);
    if (!group) channel.groups.set(decoded.a, (group = { next: decoded.s === 0 ? 0 : undefined, since: now, early: new Map() }));
    if (group.next === undefined) {
      // Start not known yet: wait in memory (off the queue, so the group's next messages come).
      if (group.early.has(decoded.s)) {
        this.duplicates++;
      } else {
        group.early.set(decoded.s, { queue, edge, message, decoded, at: now });
        this.gapped.add(channel);
      }
      discard(queue, message.receipt);
      if (decoded.s === 0) this.startGroup(channel, group, events, discard);
      else if (!this.options.groupsStartAtZero && group.early.size >= START_AFTER_MESSAGES) this.startGroup(channel, group, events, discard);
      else if (group.early.size >= MAX_EARLY) throw gapError(channel, decoded.a, group, now, `${MAX_EARLY} later messages wait`);
      return;
    }
    if (decoded.s < group.next || group.early.has(decoded.s)) {
      this.duplicates++;
      discard(queue, message.receipt);
      return;
    }
    if (decoded.s > group.next) {
      // Came early: wait in memory for the ones before it; off the queue, so they can come.
      if (group.early.size >= MAX_EARLY) throw gapError(channel, decoded.a, group, now, `${MAX_EARLY} later messages wait`);
      group.early.set(decoded.s, { queue, edge, message, decoded, at: now });
      this.gapped.add(channel);
      this.reordered++;
      discard(queue, message.receipt);
      return;
    }
    this.deliver(channel, group, { queue, message, decoded, receipt: message.receipt }, events, discard);
  }

  /**
   * `take` on a channel kept in the arrays: true when its state stays within them (fenced, a
   * duplicate, or the next message of its one group that changes no counter and keeps no barrier
   * position), with exactly what `take` would do on the full state; false, changing nothing, when
   * the channel must become a full one first.
   */
  private takeInSlot(table: EdgeChannels, slot: number, received: Received, m: ChannelMessage, events: GateEvent[], discard: (queue: string, receipt: string | undefined) => void): boolean {
    const { queue, message } = received;
    table.see(slot);
    if (m.a < table.minAttempt[slot]!) {
      this.fenced++;
      discard(queue, message.receipt);
      return true;
    }
    if (m.ra !== undefined) {
      // No replay is waited for on it: stale.
      this.staleReplays++;
      discard(queue, message.receipt);
      return true;
    }
    const group = table.group[slot]!;
    const attempt = table.attempt[slot]!;
    if (group === -1) {
      // Its first group, from sequence 0 (else its start is not known yet: it waits in memory).
      if (m.s !== 0 || m.a < attempt) return false;
    } else {
      // The one group is the highest attempt's: a message of another attempt opens a second group.
      if (m.a !== group) return false;
      if (m.s < table.next[slot]!) {
        this.duplicates++;
        discard(queue, message.receipt);
        return true;
      }
      if (m.s > table.next[slot]!) return false;
    }
    // Delivered now: what `accept` makes of it, checked before anything changes.
    let lineage = table.lineage[slot]!;
    let position = table.position[slot]!;
    let take = true;
    if (m.n !== undefined) {
      const l = m.l ?? m.a;
      if (m.t === 'r' || (lineage !== -1 && lineage !== l)) return false;
      const at = lineage === -1 ? 0 : position;
      if (m.n > at) return false; // records never seen: counted missing
      if (m.t !== 'd') {
        if (m.t === 'b' && m.n !== 0) return false; // a barrier position is kept
        position = Math.max(at, m.n);
      } else {
        if (at > m.n && m.r.length > 0) return false; // duplicates: counted
        if (m.r.length === 0) take = false;
        else if ((message.receiveCount ?? 1) > 1) return false; // replayed: counted
        position = Math.max(at, m.n + m.r.length);
      }
      lineage = l;
    }
    if (group === -1) {
      if (m.a > attempt) {
        table.attempt[slot] = m.a;
        table.setEnded(slot, false);
      }
      table.group[slot] = m.a;
    }
    table.next[slot] = m.s + 1;
    table.lineage[slot] = lineage;
    table.position[slot] = position;
    if (m.t === 'd' && m.dt) this.determinants.add(`${table.edge.from}#${table.producerOf(slot)}`, m.dt[0], m.dt[1]);
    if (m.t === 'b' && m.di !== undefined) this.determinants.barrier(`${table.edge.from}#${table.producerOf(slot)}`, m.c, m.di);
    if (take) events.push({ channel: table.handle(slot), message: m, queue, receipt: message.receipt, bytes: message.body.length });
    else discard(queue, message.receipt);
    return true;
  }

  /**
   * A replay message: delivered in its own group's order while its request is the one waited for
   * (else stale: discarded). Its end event sets the channel position (what it skips counts as
   * missing), ends the wait, and lets the held live messages through, in the order they came.
   */
  private takeReplay(
    channel: ChannelState,
    received: Received,
    decoded: ChannelMessage,
    now: number,
    events: GateEvent[],
    discard: (queue: string, receipt: string | undefined) => void,
  ): void {
    const { queue, edge, message } = received;
    const wait = channel.replay;
    if (!wait || wait.consumerAttempt !== decoded.ra || (wait.request !== decoded.rq && !wait.earlier?.includes(decoded.rq!))) {
      this.staleReplays++;
      discard(queue, message.receipt);
      return;
    }
    // The first answer taken decides the request (an earlier one's, when it came first).
    if (wait.earlier) {
      wait.request = decoded.rq!;
      delete wait.earlier;
    }
    // One answer per request, from one producer attempt. Two attempts may answer the same request:
    // a producer killed after part of its answer went out, before it deleted the request from its
    // control queue, and its new attempt that reads the request again. Their groups both number
    // from 0 but cut the records into messages differently: spliced by sequence number, the new
    // attempt's next message started past what the dead one had given, and the records between
    // were lost, counted only as missing (chaos seed 45375). The newer attempt's answer is whole,
    // from the position asked for: it replaces the older one (what the older one gave is dropped
    // by record position), and the older one's later messages are stale.
    if (wait.attempt !== undefined && decoded.a < wait.attempt) {
      this.staleReplays++;
      discard(queue, message.receipt);
      return;
    }
    if (wait.attempt !== decoded.a) {
      if (wait.attempt !== undefined) wait.order = { next: 0, since: now, early: new Map() };
      wait.attempt = decoded.a;
    }
    const order = wait.order;
    if (decoded.s < order.next! || order.early.has(decoded.s)) {
      this.duplicates++;
      discard(queue, message.receipt);
      return;
    }
    if (decoded.s > order.next!) {
      if (order.early.size >= MAX_EARLY) throw gapError(channel, decoded.a, order, now, `${MAX_EARLY} later replay messages wait`);
      order.early.set(decoded.s, { queue, edge, message, decoded, at: now });
      discard(queue, message.receipt);
      return;
    }
    let item: { queue: string; message: InboundMessage; decoded: ChannelMessage; receipt: string | undefined } | undefined = { queue, message, decoded, receipt: message.receipt };
    while (item) {
      order.next = item.decoded.s + 1;
      if (item.decoded.t === 'x') {
        this.endReplay(channel, item.decoded, item, now, events, discard);
        for (const held of wait.held) this.take(held, now, events, discard);
        return;
      }
      const event = this.accept(channel, item.decoded, 1);
      if (event) events.push({ channel, message: event, queue: item.queue, receipt: item.receipt, bytes: item.message.body.length });
      else discard(item.queue, item.receipt);
      const early = order.early.get(order.next);
      if (early) order.early.delete(order.next);
      item = early ? { queue: early.queue, message: early.message, decoded: early.decoded, receipt: undefined } : undefined;
    }
  }

  /**
   * The end of a replay: the channel position moves to where the producer's live records go on
   * (a jump counts missing), its watermark (a `w` event) and end of input (an `e` event, kept until
   * the subtask has finished like any end of input) are taken, and the producer's live group goes on at `ls`:
   * everything of it before is in the replay.
   */
  private endReplay(
    channel: ChannelState,
    end: Extract<ChannelMessage, { t: 'x' }>,
    from: { queue: string; receipt: string | undefined },
    now: number,
    events: GateEvent[],
    discard: (queue: string, receipt: string | undefined) => void,
  ): void {
    channel.replay = undefined;
    channel.replayedBy = { attempt: end.a, lineage: end.l ?? end.a };
    // What the producer's log no longer had: counted missing by the jump too, and lost for good.
    if (end.g) channel.counters.unreplayedRecords = (channel.counters.unreplayedRecords ?? 0) + end.g;
    this.accept(channel, end, 1);
    // The watermark goes in order, as an event after the replay's records: some of them may wait
    // behind a barrier alignment, and event time must not pass them (a window would drop them as late).
    if (end.w !== undefined) {
      const { p, a, s, l, n } = end;
      events.push({ channel, message: { t: 'w', w: end.w, p, a, s, ...(l !== undefined ? { l } : {}), ...(n !== undefined ? { n } : {}) }, queue: from.queue, receipt: undefined });
    }
    if (end.a > channel.attempt) channel.attempt = end.a;
    if (end.ls !== undefined) {
      let group = channel.groups.get(end.a);
      if (!group) channel.groups.set(end.a, (group = { next: end.ls, since: now, early: new Map() }));
      group.next = Math.max(group.next ?? end.ls, end.ls);
      for (const s of [...group.early.keys()]) if (s < group.next) group.early.delete(s);
      const first = group.early.get(group.next);
      if (first) {
        group.early.delete(group.next);
        this.deliver(channel, group, { queue: first.queue, message: first.message, decoded: first.decoded, receipt: undefined }, events, discard);
      }
    }
    if (end.e) {
      const { p, a, s, l, n } = end;
      events.push({ channel, message: { t: 'e', p, a, s, ...(l !== undefined ? { l } : {}), ...(n !== undefined ? { n } : {}) }, queue: from.queue, receipt: from.receipt });
    } else {
      discard(from.queue, from.receipt);
    }
  }

  /** Starts a group whose start was not known at the lowest sequence number it has seen. */
  private startGroup(channel: ChannelState, group: GroupOrder, events: GateEvent[], discard: (queue: string, receipt: string | undefined) => void): void {
    if (group.early.size === 0) return;
    const lowest = Math.min(...group.early.keys());
    const first = group.early.get(lowest)!;
    group.early.delete(lowest);
    this.deliver(channel, group, { queue: first.queue, message: first.message, decoded: first.decoded, receipt: undefined }, events, discard);
  }

  /** Delivers the next message of a group, then the early ones it unblocks. */
  private deliver(
    channel: ChannelState,
    group: GroupOrder,
    first: { queue: string; message: InboundMessage; decoded: ChannelMessage; receipt: string | undefined },
    events: GateEvent[],
    discard: (queue: string, receipt: string | undefined) => void,
  ): void {
    let item: typeof first | undefined = first;
    while (item) {
      group.next = item.decoded.s + 1;
      const event = this.accept(channel, item.decoded, item.message.receiveCount ?? 1);
      if (event) events.push({ channel, message: event, queue: item.queue, receipt: item.receipt, bytes: item.message.body.length });
      else discard(item.queue, item.receipt);
      const early = group.early.get(group.next);
      if (early) group.early.delete(group.next);
      item = early ? { queue: early.queue, message: early.message, decoded: early.decoded, receipt: undefined } : undefined;
    }
  }

  /**
   * A group whose producer attempt is gone (a newer one writes to the channel, in `lineage`): what
   * waited behind its gap is delivered and the gap is lost. Unless the new attempt continues the
   * same lineage (a restored source): it re-sends those records, gap included, so they are dropped
   * here and taken from the replay.
   */
  private giveUpGap(channel: ChannelState, group: GroupOrder, lineage: number, events: GateEvent[], discard: (queue: string, receipt: string | undefined) => void): void {
    if (group.next !== undefined && group.early.size > 0 && [...group.early.values()].every((e) => (e.decoded.l ?? e.decoded.a) === lineage && e.decoded.n !== undefined)) {
      group.early.clear();
      return;
    }
    while (group.early.size > 0) this.startGroup(channel, group, events, discard);
  }

  /**
   * Starts groups whose start grace has passed; fails the consumer when a gap has stayed open too
   * long (an error naming the channel and the missing sequence number).
   */
  private checkGaps(now: number, events: GateEvent[], discard: (queue: string, receipt: string | undefined) => void): void {
    const limit = this.options.gapTimeoutMs ?? DEFAULT_GAP_TIMEOUT_MS;
    if (this.gapped.size === 0) return;
    // Only channels that had a group wait (in channel order); the others have nothing to check.
    const gapped = [...this.gapped].sort((a, b) => a.rank - b.rank);
    for (const channel of gapped) {
      if (!hasGaps(channel)) {
        this.gapped.delete(channel);
        continue;
      }
      for (const [attempt, group] of channel.groups) {
        if (group.next === undefined) {
          if (!this.options.groupsStartAtZero) {
            if (now - group.since >= START_GRACE_MS) this.startGroup(channel, group, events, discard);
          } else if (now - group.since > limit) {
            throw gapError(channel, attempt, group, now, `waiting for more than ${Math.round(limit / 1000)} s`);
          }
          continue;
        }
        let oldest = Infinity;
        for (const e of group.early.values()) oldest = Math.min(oldest, e.at);
        if (now - oldest > limit) throw gapError(channel, attempt, group, now, `waiting for more than ${Math.round(limit / 1000)} s`);
      }
    }
  }

  /**
   * The event to process for a message delivered in order, after the record-position check;
   * undefined when nothing of it is new (its receipt is then deleted at once).
   */
  private accept(channel: ChannelState, m: ChannelMessage, receiveCount: number): ChannelMessage | undefined {
    // An old attempt's end of input does not end the channel once a newer attempt writes to it.
    if (m.t === 'e' && m.a < channel.attempt) return undefined;
    // The producer's determinants, kept for it in case it restarts (single-exact: determinants.ts).
    if (m.t === 'd' && m.dt) this.determinants.add(`${channel.edge.from}#${channel.producer}`, m.dt[0], m.dt[1]);
    if (m.t === 'b' && m.di !== undefined) this.determinants.barrier(`${channel.edge.from}#${channel.producer}`, m.c, m.di);
    if (m.n === undefined) return m;
    const lineage = m.l ?? m.a;
    if (m.t === 'r') {
      this.supersede(channel, { lineage, from: m.c, ...(m.f ? { at: m.f } : {}) });
      return undefined;
    }
    // A lineage numbers its records from 0: a first message past 0 means records this consumer never saw
    // (its dead attempt consumed them before the checkpoint it restored, if any, or they were dropped).
    const position = channel.positions.get(lineage) ?? 0;
    // Records of a lineage whose producer restarted from before them: it sends them again. A
    // lineage first seen after the notice (this consumer restarted too) is covered by it as well.
    const regeneratedFrom = channel.superseded.get(lineage) ?? this.supersedeLate(channel, lineage);
    if (m.n > position) {
      // Skipped past the restart point of a superseded lineage: they come again in the new one.
      const missingTo = regeneratedFrom === undefined ? m.n : Math.max(position, Math.min(m.n, regeneratedFrom));
      channel.counters.missingRecords += missingTo - position;
      addSkipped(this.skippedOf(channel, lineage), position, missingTo);
    }
    if (m.t !== 'd') {
      channel.positions.set(lineage, Math.max(position, m.n));
      if (m.t === 'b') this.noteBarrier(channel, lineage, m.c, m.n);
      return m;
    }
    const end = m.n + m.r.length;
    channel.positions.set(lineage, Math.max(position, end));
    const skip = Math.max(0, Math.min(position - m.n, m.r.length));
    channel.counters.duplicateRecords += skip;
    // Sent again below the position: records this consumer skipped are lost (it is past them), and
    // a restored source that sends them again no longer counts their drop. Counted here.
    const resentSkipped = skip > 0 ? takeSkipped(channel.skipped.get(lineage) ?? [], m.n, m.n + skip) : 0;
    if (resentSkipped > 0) channel.counters.unreplayedRecords = (channel.counters.unreplayedRecords ?? 0) + resentSkipped;
    if (skip === m.r.length) return undefined;
    if (receiveCount > 1) channel.counters.replayedRecords += m.r.length - skip;
    if (regeneratedFrom !== undefined) channel.counters.regeneratedRecords! += Math.max(0, end - Math.max(regeneratedFrom, m.n + skip));
    return skip === 0 ? m : { ...m, n: m.n + skip, r: m.r.slice(skip) };
  }

  private skippedOf(channel: ChannelState, lineage: number): Range[] {
    let ranges = channel.skipped.get(lineage);
    if (!ranges) channel.skipped.set(lineage, (ranges = []));
    return ranges;
  }

  private noteBarrier(channel: ChannelState, lineage: number, checkpointId: number, position: number): void {
    let at = channel.barriers.get(lineage);
    if (!at) channel.barriers.set(lineage, (at = new Map()));
    at.set(checkpointId, position);
    if (at.size > BARRIERS_KEPT) at.delete(Math.min(...at.keys()));
  }

  /**
   * The producer restarted from checkpoint `from` in lineage `lineage`: what this consumer took of
   * its older lineages after the point `from` left them at comes again, and so does what it takes
   * of them from now on, including lineages it sees only later. Counted as regenerated.
   */
  private supersede(channel: ChannelState, rule: RestartRule): void {
    if (!channel.restarted || rule.lineage > channel.restarted.lineage) channel.restarted = rule;
    if (rule.at && rule.at[0] < rule.lineage) {
      // Below where the producer's checkpoint left its lineage, nothing comes again. This consumer
      // holds everything up to there, unless it restored from an older checkpoint than the
      // producer (one that completed just after it restarted, with its dead attempt's
      // acknowledgement): what its dead attempt consumed in between is gone with the producer's
      // log. Missing, counted now, since no later position of the lineage may ever show the gap.
      const [lineage, at] = rule.at;
      const position = channel.positions.get(lineage) ?? 0;
      if (position < at) {
        channel.counters.missingRecords += at - position;
        channel.counters.unreplayedRecords = (channel.counters.unreplayedRecords ?? 0) + at - position;
        channel.positions.set(lineage, at);
      }
    }
    for (const [older, position] of channel.positions) {
      if (older >= rule.lineage || channel.superseded.has(older)) continue;
      const start = regeneratedFrom(channel, rule, older);
      if (start === undefined) continue;
      channel.superseded.set(older, start);
      // What it skipped of the lineage after the restart point (dropped for it) comes again, in
      // the new lineage, for the first time: neither missing any more nor regenerated (chaos seed
      // 10721: 38 records of a join's dropped output counted as both, and were neither).
      const skipped = channel.skipped.get(older);
      const comesAgain = skipped && position > start ? takeSkipped(skipped, start, position) : 0;
      channel.counters.missingRecords -= comesAgain;
      channel.counters.regeneratedRecords! += Math.max(0, position - start - comesAgain);
    }
  }

  /** An older lineage first seen after the producer's restart notice: where its records come again, if they do. */
  private supersedeLate(channel: ChannelState, lineage: number): number | undefined {
    const rule = channel.restarted;
    if (!rule || lineage >= rule.lineage) return undefined;
    const start = regeneratedFrom(channel, rule, lineage);
    if (start !== undefined) channel.superseded.set(lineage, start);
    return start;
  }

  /** The table and slot of channel `key`, when it is one of this gate's. */
  private locate(key: string): { table: EdgeChannels; slot: number } | undefined {
    const at = parseChannelKey(key);
    const table = at && this.tableOf.get(at.edgeId);
    const slot = at && table ? table.slotOf(at.producer) : -1;
    return table && slot >= 0 ? { table, slot } : undefined;
  }

  /** The channels that became full objects, in channel order. */
  private *fullChannels(): Iterable<FullChannel> {
    for (const table of this.tables) {
      if (table.full.size > 0) yield* table.fullInOrder();
    }
  }

  private noteGaps(channel: FullChannel): void {
    if (hasGaps(channel)) this.gapped.add(channel);
  }

  /** Deletes processed messages from their queues; an expired receipt means the message comes again. */
  async acknowledge(receipts: Map<string, string[]>): Promise<void> {
    await Promise.all(
      [...receipts]
        .filter(([, list]) => list.length > 0)
        .map(async ([queue, list]) => {
          for (const r of list) this.inFlight.delete(r); // first: the next extension round skips them
          const { expired } = await this.options.transport.delete(queue, list);
          this.expiredReceipts += expired.length;
        }),
    );
  }

  /**
   * The last batch is dealt with: the pollers may receive again. Messages still held (a channel
   * blocked for barrier alignment) stay in flight, so SQS FIFO holds back the rest of their
   * channel meanwhile, while the other channels of the same queue keep flowing.
   */
  release(): void {
    // Received messages not yet taken are still to be dealt with first (`next` takes a few at a time).
    if (this.buffer.length > 0) return;
    this.releaseAll();
  }

  private releaseAll(): void {
    for (const resolve of this.unacknowledged.values()) resolve();
    this.unacknowledged.clear();
  }

  /** Smallest watermark over channels still open; END when all have ended. */
  combinedWatermark(): number {
    if (this.totals.watermarkDirty) {
      // Watermarks and ends changed since the last look: one pass over the arrays (a channel not
      // heard from has an unknown watermark, so it holds the minimum down).
      let min = Number.MAX_SAFE_INTEGER;
      for (const table of this.tables) min = Math.min(min, table.minOpenWatermark());
      this.combined = min;
      this.totals.watermarkDirty = false;
    }
    return this.combined;
  }

  allEnded(): boolean {
    return this.totals.ended === this.totals.expected;
  }

  /**
   * Keeps every held message in flight: well inside the timeout, sets its visibility to the full
   * timeout again (capped so its total stays within SQS's 12 hours; past that it lapses, comes
   * again and is dropped as a redelivery).
   */
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
      // A failed round is not fatal: at worst a held message becomes visible, comes again and is
      // dropped by its sequence number. Queue errors reach the consumer through its pollers.
      await this.extendHeld().catch(() => undefined);
    }
  }

  /** One round of visibility extension, grouped by queue and timeout (batched by the transport). */
  private async extendHeld(): Promise<void> {
    const now = this.clock.now();
    const byQueue = new Map<string, Map<number, string[]>>();
    for (const [receipt, held] of this.inFlight) {
      const left = MAX_VISIBILITY_SECONDS - Math.ceil((now - held.receivedAt) / 1000) - 60;
      const seconds = Math.min(this.visibilitySeconds, left);
      if (seconds <= 0) continue;
      const q = byQueue.get(held.queue) ?? new Map<number, string[]>();
      byQueue.set(held.queue, q);
      appendTo(q, seconds, receipt);
    }
    await Promise.all(
      [...byQueue].flatMap(([queue, bySeconds]) =>
        [...bySeconds].map(async ([seconds, receipts]) => {
          const { expired } = await this.options.transport.changeVisibility(queue, receipts, seconds);
          // Already visible again (held too long before a round): it comes again, dropped by sequence.
          for (const r of expired) this.inFlight.delete(r);
          this.expiredReceipts += expired.length;
        }),
      ),
    );
  }

  private async poll(edge: ExecutionEdge): Promise<void> {
    const queue = this.options.queueOf(edge);
    // Long polls back off while the queue is idle (an empty receive is billed like a full one) and
    // come back to the short wait with the first message; a long poll returns as soon as one arrives.
    const busyWait = this.options.waitSeconds ?? 2;
    const idleWait = Math.max(busyWait, this.options.idleWaitSeconds ?? 20);
    let wait = busyWait;
    /** The last receive came back short of full: the next one may wait (claimed-receive.ts). */
    let drained = true;
    while (this.running) {
      try {
        const max = this.options.receiveMax ?? 10;
        // Through a unit's multiplexed channels (extendVisibility false) nothing is leased here: no claim.
        const mayWait = drained && this.options.extendVisibility !== false;
        const messages = await receiveClaimed(this.options.transport, queue, { max, waitSeconds: wait, visibilityTimeoutSeconds: this.visibilitySeconds }, mayWait);
        drained = messages.length < max;
        if (!this.running && !this.draining) return; // stopping: leave them for the next attempt
        if (messages.length === 0) {
          wait = Math.min(idleWait, wait * 2);
          continue;
        }
        wait = busyWait;
        const receivedAt = this.clock.now();
        if (this.options.extendVisibility !== false) for (const m of messages) this.inFlight.set(m.receipt, { queue, receivedAt });
        if (!this.running) {
          for (const message of messages) this.buffer.push({ queue, edge, message });
          this.wake();
          return;
        }
        // Receive again only once the subtask has dealt with these (release): this bounds what is
        // buffered, and a channel whose messages are still in flight is held back by FIFO.
        const acknowledged = new Promise<void>((resolve) => this.unacknowledged.set(queue, resolve));
        for (const message of messages) this.buffer.push({ queue, edge, message });
        this.wake();
        await acknowledged;
      } catch (error) {
        if (!this.running) return;
        this.running = false;
        this.options.onError(error);
        this.wake();
        return;
      }
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

function gapError(channel: ChannelState, attempt: number, group: GroupOrder, now: number, why: string): Error {
  const waiting = [...group.early.values()];
  const oldest = Math.min(...waiting.map((e) => e.at));
  const key = channelKey(channel.edge.id, channel.producer);
  return new Error(
    `input channel ${key} (producer attempt ${attempt}): message ${group.next ?? 0} never arrived; ${waiting.length} later message(s) ` +
      `(from ${Math.min(...group.early.keys())}) wait for it since ${Math.round((now - oldest) / 1000)} s (${why})`,
  );
}

export const channelKey = (edgeId: string, producer: number): string => `${edgeId}/${producer}`;

const skippedState = (c: ChannelState): [number, number, number][] => [...c.skipped].flatMap(([lineage, ranges]) => ranges.map(([from, to]) => [lineage, from, to] as [number, number, number]));

function skippedFrom(state: readonly [number, number, number][] | undefined): Map<number, Range[]> {
  const out = new Map<number, Range[]>();
  for (const [lineage, from, to] of state ?? []) {
    let ranges = out.get(lineage);
    if (!ranges) out.set(lineage, (ranges = []));
    addSkipped(ranges, from, to);
  }
  return out;
}

/**
 * From which record position lineage `older` comes again after restart `rule`; undefined: not at
 * all. The notice says where its checkpoint left the channel (`at`): that lineage from there,
 * newer ones (attempts that died after the checkpoint) whole, older ones not. Without it (a
 * producer without a snapshot of its numbering): from the barrier, when this consumer saw it, else
 * from the start.
 */
function regeneratedFrom(channel: ChannelState, rule: RestartRule, older: number): number | undefined {
  if (rule.at) return older < rule.at[0] ? undefined : older === rule.at[0] ? rule.at[1] : 0;
  return rule.from > 0 ? (channel.barriers.get(older)?.get(rule.from) ?? 0) : 0;
}

function parseChannelKey(key: string): { edgeId: string; producer: number } | undefined {
  const slash = key.lastIndexOf('/');
  if (slash <= 0) return undefined;
  const producer = Number(key.slice(slash + 1));
  return Number.isInteger(producer) && String(producer) === key.slice(slash + 1) ? { edgeId: key.slice(0, slash), producer } : undefined;
}

/** A group of the channel waits for its start or for a gap to fill. */
function hasGaps(channel: ChannelState): boolean {
  for (const group of channel.groups.values()) if (group.next === undefined || group.early.size > 0) return true;
  return false;
}

function slotPositions(table: EdgeChannels, slot: number): Map<number, number> {
  const lineage = table.lineage[slot]!;
  return new Map(lineage === -1 ? [] : [[lineage, table.position[slot]!]]);
}

/** A hand-over entry of a channel kept in the arrays (the default state for one not heard from). */
function slotHandover(key: string, table: EdgeChannels, slot: number): ChannelHandover {
  const group = table.group[slot]!;
  const lineage = table.lineage[slot]!;
  return {
    key,
    minAttempt: table.minAttemptOf(slot),
    attempt: table.attemptOf(slot),
    order: group === -1 ? [] : [{ attempt: group, next: table.next[slot]! }],
    early: [],
    positions: lineage === -1 ? [] : [[lineage, table.position[slot]!]],
    counters: zeroCounters(),
    watermark: table.watermark[slot]!,
    ended: table.isEnded(slot),
    barriers: [],
    superseded: [],
  };
}

/** Resumes a hand-over entry into the arrays when it fits them (see channel-table.ts); false: it does not. */
function resumeInSlot(table: EdgeChannels, slot: number, h: ChannelHandover): boolean {
  const order = h.order;
  const fits =
    !h.replay &&
    h.early.length === 0 &&
    (order.length === 0 || (order.length === 1 && order[0]!.next !== null && order[0]!.attempt === h.attempt)) &&
    h.positions.length <= 1 &&
    !hasCounts({ ...zeroCounters(), ...h.counters }) &&
    (h.superseded ?? []).length === 0 &&
    !h.restarted &&
    !h.replayedBy &&
    (h.skipped ?? []).length === 0 &&
    (h.barriers ?? []).every(([, at]) => at.every(([, position]) => position === 0));
  if (!fits) return false;
  table.see(slot);
  table.minAttempt[slot] = h.minAttempt;
  table.attempt[slot] = h.attempt;
  table.group[slot] = order.length === 0 ? -1 : order[0]!.attempt;
  table.next[slot] = order.length === 0 ? 0 : order[0]!.next!;
  table.lineage[slot] = h.positions.length === 0 ? -1 : h.positions[0]![0];
  table.position[slot] = h.positions.length === 0 ? 0 : h.positions[0]![1];
  table.setWatermark(slot, h.watermark);
  table.setEnded(slot, h.ended);
  return true;
}

/** Restores a snapshot's positions into the arrays when they fit them; false: they do not. */
function restoreInSlot(
  table: EdgeChannels,
  slot: number,
  positions: readonly [number, number][],
  counters: ChannelCounters | undefined,
  ended: boolean | undefined,
  checkpointId: number | undefined,
): boolean {
  const lineage = table.lineage[slot]!;
  const fits =
    !(counters && hasCounts({ ...zeroCounters(), ...counters })) &&
    positions.length <= 1 &&
    (positions.length === 0 || lineage === -1 || positions[0]![0] === lineage) &&
    // At the barrier of `checkpointId`: a position past 0 is kept as that barrier's.
    (checkpointId === undefined || positions.every(([, next]) => next === 0));
  if (!fits) return false;
  table.see(slot);
  if (ended) table.setEnded(slot, true);
  if (positions.length === 1) {
    table.lineage[slot] = positions[0]![0];
    table.position[slot] = positions[0]![1];
  }
  return true;
}

/** Every input channel of a gate by key, in channel order, as read-only states (see `InputGate.channels`). */
class ChannelsView implements ReadonlyMap<string, ChannelState> {
  constructor(private readonly tables: readonly EdgeChannels[]) {}

  get size(): number {
    return this.tables.reduce((n, t) => n + t.size, 0);
  }

  get(key: string): ChannelState | undefined {
    const at = parseChannelKey(key);
    const table = at && this.tables.find((t) => t.edge.id === at.edgeId);
    const slot = at && table ? table.slotOf(at.producer) : -1;
    return table && slot >= 0 ? table.state(slot) : undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  *entries(): MapIterator<[string, ChannelState]> {
    for (const table of this.tables) for (let slot = 0; slot < table.size; slot++) yield [channelKey(table.edge.id, table.producerOf(slot)), table.state(slot)];
  }

  *keys(): MapIterator<string> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): MapIterator<ChannelState> {
    for (const [, state] of this.entries()) yield state;
  }

  [Symbol.iterator](): MapIterator<[string, ChannelState]> {
    return this.entries();
  }

  forEach(callback: (value: ChannelState, key: string, map: ReadonlyMap<string, ChannelState>) => void): void {
    for (const [key, state] of this.entries()) callback(state, key, this);
  }
}

/** Records counted on a channel (unreplayed ones are part of missing). */
const countedRecords = (c: ChannelCounters): number => c.duplicateRecords + c.missingRecords + c.replayedRecords + (c.regeneratedRecords ?? 0);

const hasCounts = (c: ChannelCounters): boolean => c.duplicateRecords > 0 || c.missingRecords > 0 || c.replayedRecords > 0 || (c.regeneratedRecords ?? 0) > 0 || (c.unreplayedRecords ?? 0) > 0;
