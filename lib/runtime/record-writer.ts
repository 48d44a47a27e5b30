/**
 * Record writer: the producer side of one edge in one subtask. Routes records to channels
 * (forward, hash, rebalance, broadcast), packs them into size-bounded messages, and sends them
 * to the sub-partition queues in batches.
 *
 * A sub-partition marked unavailable (its consumer failed, under single-point recovery) gets no
 * records: they are dropped and counted per channel, so the loss is measured, never silent. A
 * dropped record still takes its record position (see messages.ts), so a replay numbers the same
 * records the same way and the consumer sees the drop as a jump it can compare with this count.
 *
 * Per consumer channel it keeps numbers only (sequence, position, drops, watermark times): a
 * source at parallelism 4000 writes to 4000 channels per edge. A buffer object exists only for a
 * channel with records waiting, and a watermark waiting to go out is one value for the writer and
 * a count of the channels it still has to reach, so finding what is pending costs nothing per
 * channel.
 */
import type { Json } from '../api/functions';
import { MAX_MESSAGE_BYTES, type ChannelTransport, type OutboundMessage } from '../ports/channels';
import type { ExecutionEdge } from '../graph/execution-graph';
import type { WriterHandover, WriterPositions } from './handover';
import type { DeterminantLog } from './determinants';
import { DEFAULT_LOG_BYTES, InflightLog, type LoggedMessage, type LogSpill } from './inflight-log';
import type { ChannelEvent, ChannelMessage, ReplayRequest } from './messages';
import { rowShapeOf, rowText, type RowShape } from './record-rows';
import { positionIn, replayBodies, replayGroupId, restartEvent, type RestartNotice } from './replay';

/** Tells a writer whether a consumer sub-partition takes records now. */
export interface SubPartitionGate {
  isAvailable(edgeId: string, consumer: number): boolean;
}

export const alwaysAvailable: SubPartitionGate = { isAvailable: () => true };

export interface RecordWriterOptions {
  edge: ExecutionEdge;
  producerIndex: number;
  consumerParallelism: number;
  attempt: number;
  /** Queue name of consumer j's sub-partition on this edge. */
  queueOf: (consumer: number) => string;
  transport: ChannelTransport;
  gate?: SubPartitionGate;
  /** Records are packed into messages up to this many bytes. */
  maxMessageBytes?: number;
  /** Lineage of the record numbering (default: the attempt; see messages.ts). */
  lineage?: number;
  /**
   * Keep an in-flight log of what is sent on each channel until the consumers' next checkpoint
   * completes (single-point recovery replays it to a restarted consumer: see replay.ts).
   */
  inflightLog?: boolean;
  /** The subtask's determinants (single-exact): each data message carries what its channel has not carried yet. */
  determinants?: DeterminantLog;
  /** Where the in-flight log writes what does not fit in memory (S3). */
  logSpill?: LogSpill;
  /**
   * A channel without records gets a message carrying only a watermark at most this often
   * (default 1 s) from a lenient flush; watermarks otherwise ride on the next data message.
   * Barriers, end of input and forced flushes send a waiting watermark at once.
   */
  watermarkEveryMs?: number;
  /**
   * A source's records are a function of its offsets: what a replay asks for before the log's start
   * (records [from, to) of channel `consumer` in `lineage`) is read again (source-reread.ts). The
   * messages cover [from, x), x ≤ to; what they do not cover the replay reports as a gap.
   */
  regenerate?: (consumer: number, lineage: number, from: number, to: number) => Promise<LoggedMessage[]>;
}

export type { WriterPositions } from './handover';

/**
 * Records buffered for one channel (only while there are some): the latest as JSON texts, the
 * earlier ones joined by CHUNK_RECORDS into one text each.
 */
interface ChannelBuffer {
  parts: string[];
  chunks: string[];
  count: number;
  /** UTF-8 bytes of the records (each with its comma or bracket) and of the rows' keys. */
  bytes: number;
  /** Record position of the first record. */
  first: number;
  /** The keys of the message's rows (record-rows.ts), from its first record; undefined: records as JSON. */
  shape: RowShape | undefined;
}

/**
 * Records a buffer keeps as separate texts before it joins them. A message holds ~2,000 records
 * and a channel fills slowly when a writer has many (16 channels from each of 4 sources in the
 * demo), so separate texts lived through several young-generation collections and were copied
 * and promoted: ~280 bytes per record in bench:engine, against ~8 for 4 channels. Joined in
 * chunks, they die young; the chunk is one object (a micro-benchmark of 16 channels filled at
 * random, sealed and parsed: 1.58 -> 1.31 µs per record of CPU, the cost of 4 channels).
 */
const CHUNK_RECORDS = 32;

const ENVELOPE_BYTES = 96;
/** Room a message keeps for the determinants it carries (single-exact; about 600 steps). */
const DETERMINANT_BYTES = 16 * 1024;

export class RecordWriter {
  readonly edgeId: string;
  /** Consumer channels of the edge (this writer writes to all of them, or to its own alone: pointwise). */
  private readonly consumers: number;
  /** Channels with records buffered. */
  private readonly buffers = new Map<number, ChannelBuffer>();
  private readonly sequence: number[];
  /** Next record position per channel (records buffered, sent or dropped so far in this lineage). */
  private readonly position: number[];
  private lineage: number;
  private readonly outbox = new Map<number, OutboundMessage[]>();
  /** Channels whose outbox holds more than records and watermarks (a control event, a replay): never sent as `linger`. */
  private readonly outboxControl = new Set<number>();
  private readonly maxBytes: number;
  private readonly gate: SubPartitionGate;
  private roundRobin: number;
  /** Records dropped per consumer because its sub-partition was unavailable. */
  readonly dropped: number[];
  /** Their sum. */
  private droppedTotal = 0;
  recordsWritten = 0;
  /** What was sent per channel since the consumers' last completed checkpoint (when kept). */
  readonly log: InflightLog | undefined;
  /** Records sent again to restarted consumers. */
  replayedRecords = 0;
  /** Of those, records read again from the source (its log no longer held them). */
  regeneratedRecords = 0;
  /** The last watermark emitted, and whether end of input went out (what a replay's end tells). */
  private lastWatermark: number | undefined;
  private ended = false;
  /** This writer's subtask restarted in a lineage of its own: its notice, which a replay repeats. */
  private restartNotice: RestartNotice | undefined;
  /** When each channel last got a watermark (alone or with records). */
  private readonly watermarkSentAt: Float64Array;
  private readonly watermarkEveryMs: number;
  /**
   * Watermarks emitted so far, and per channel how many had been when it last carried one: a
   * channel whose count is behind has `lastWatermark` to send with its next message.
   */
  private watermarksEmitted = 0;
  private readonly watermarkTaken: Float64Array;
  /** Channels with a watermark waiting. */
  private watermarksWaiting = 0;
  /** The fields of a watermark-only message, for the last watermark sent alone. */
  private watermarkFields: [number, string] | undefined;

  constructor(private readonly options: RecordWriterOptions) {
    this.edgeId = options.edge.id;
    const n = options.consumerParallelism;
    this.consumers = n;
    this.sequence = new Array<number>(n).fill(0);
    this.position = new Array<number>(n).fill(0);
    this.lineage = options.lineage ?? options.attempt;
    this.dropped = new Array<number>(n).fill(0);
    // With determinants, each message keeps room for the steps it carries (DETERMINANT_BYTES at most).
    this.maxBytes = Math.min(options.maxMessageBytes ?? MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES) - ENVELOPE_BYTES - (options.determinants ? DETERMINANT_BYTES : 0);
    this.gate = options.gate ?? alwaysAvailable;
    this.roundRobin = options.producerIndex % n;
    this.log = options.inflightLog ? new InflightLog(n, this.lineage, DEFAULT_LOG_BYTES, options.logSpill) : undefined;
    this.watermarkSentAt = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
    this.watermarkTaken = new Float64Array(n);
    this.watermarkEveryMs = options.watermarkEveryMs ?? 1000;
  }

  /** Sequence numbers and counters, for the next invocation of this attempt (call after a flush). */
  handoverState(): WriterHandover {
    if (this.hasPending()) throw new Error(`writer of edge ${this.edgeId}: hand-over with unsent messages`);
    return {
      edgeId: this.edgeId,
      sequence: [...this.sequence],
      dropped: [...this.dropped],
      roundRobin: this.roundRobin,
      lineage: this.lineage,
      position: [...this.position],
      ...(this.log ? { log: this.log.state() } : {}),
      ...(this.lastWatermark !== undefined ? { lastWatermark: this.lastWatermark } : {}),
      ...(this.ended ? { ended: true } : {}),
      ...(this.restartNotice ? { restart: this.restartNotice } : {}),
    };
  }

  /** Continues a predecessor's channels: same message group, next sequence numbers and positions. */
  resume(state: WriterHandover): void {
    if (state.edgeId !== this.edgeId || state.sequence.length !== this.sequence.length) {
      throw new Error(`writer of edge ${this.edgeId} (${this.sequence.length} channels) cannot resume the hand-over of edge ${state.edgeId} (${state.sequence.length} channels)`);
    }
    state.sequence.forEach((s, c) => (this.sequence[c] = s));
    state.dropped.forEach((d, c) => (this.dropped[c] = d));
    this.droppedTotal = sum(this.dropped);
    state.position?.forEach((n, c) => (this.position[c] = n));
    if (state.lineage !== undefined) this.lineage = state.lineage;
    this.roundRobin = state.roundRobin;
    if (state.log) this.log?.resume(state.log);
    this.lastWatermark = state.lastWatermark;
    this.ended = state.ended === true;
    this.restartNotice = state.restart;
  }

  /** Lineage and record positions for a checkpoint (taken with the source offsets, before the barrier). */
  positions(): WriterPositions {
    return { edgeId: this.edgeId, lineage: this.lineage, position: [...this.position], roundRobin: this.roundRobin, dropped: [...this.dropped], resent: this.replayedRecords };
  }

  /**
   * A subtask restored from a checkpoint: its counters go back to the checkpoint's (any task; a
   * source also restores its numbering, `restorePositions`).
   */
  restoreCounters(state: WriterPositions): void {
    if (state.edgeId !== this.edgeId) throw new Error(`writer of edge ${this.edgeId} cannot restore the counters of edge ${state.edgeId}`);
    state.dropped?.forEach((d, c) => (this.dropped[c] = d));
    this.droppedTotal = sum(this.dropped);
    this.replayedRecords = state.resent ?? 0;
  }

  /**
   * A source restored from a checkpoint: it re-reads from the checkpointed offsets, so its records
   * get the positions they had then (same lineage). Sequence numbers stay per attempt (new group).
   */
  restorePositions(state: WriterPositions): void {
    if (state.edgeId !== this.edgeId || state.position.length !== this.position.length) {
      throw new Error(`writer of edge ${this.edgeId} (${this.position.length} channels) cannot restore the positions of edge ${state.edgeId} (${state.position.length} channels)`);
    }
    if (this.hasPending() || this.sequence.some((s) => s > 0)) throw new Error(`writer of edge ${this.edgeId}: positions restored after records were written`);
    state.position.forEach((n, c) => (this.position[c] = n));
    this.lineage = state.lineage;
    this.roundRobin = state.roundRobin;
    this.log?.restart(this.lineage, this.position);
  }

  /** Routes one record to its channel(s). */
  emit(record: Json): void {
    const { edge } = this.options;
    switch (edge.kind) {
      case 'forward':
        return this.append(this.options.producerIndex, record);
      case 'hash':
        return this.append(hashPartition(edge.key!(record), this.consumers), record);
      case 'rebalance':
        this.roundRobin = (this.roundRobin + 1) % this.consumers;
        return this.append(this.roundRobin, record);
      case 'broadcast': {
        // Serialized once, appended to every channel.
        const part = JSON.stringify(record);
        for (let c = 0; c < this.consumers; c++) this.append(c, record, part);
      }
    }
  }

  /** Attaches a watermark to every channel; it travels with the next message of each. */
  emitWatermark(watermark: number): void {
    // Only the channels this producer writes to (a pointwise edge has one): an idle buffer's
    // watermark would never be sent and would keep the writer "pending" forever.
    this.watermarksEmitted++;
    this.watermarksWaiting = this.options.edge.pointwise ? 1 : this.consumers;
    this.lastWatermark = watermark;
  }

  /** Records dropped for unavailable sub-partitions, over all channels. */
  get droppedRecords(): number {
    return this.droppedTotal;
  }

  /** Sends a control event (barrier, end of input) on every channel, after the records before it. */
  emitEvent(event: Exclude<ChannelEvent, { t: 'd' | 'x' | 'r' }>): void {
    // The same event on every channel: its fields are written once.
    const fields = eventFields(event);
    for (const c of this.channels()) {
      this.seal(c, true);
      // End of input always goes out: the queue is durable, and a consumer restarting after an
      // outage must still see its producers end. Barriers to an unavailable consumer are useless.
      if (event.t === 'e' || this.gate.isAvailable(this.edgeId, c)) this.enqueueRaw(c, event.t, fields, undefined, event.t === 'b');
    }
    // Everything before the barrier is in the consumers' snapshots once its checkpoint completes.
    if (event.t === 'b') this.log?.barrier(event.c, this.position);
    if (event.t === 'e') this.ended = true;
  }

  /**
   * This subtask restarted from checkpoint N (0: from scratch) in a lineage of its own: the
   * consumers learn that what its dead attempts sent after barrier N comes again, and count it.
   * `restored`: the writers' numbering in checkpoint N's snapshot, so each channel's notice says
   * from which lineage and position (a consumer may never have seen barrier N of that lineage).
   */
  announceRestart(checkpointId: number, restored: readonly WriterPositions[] = []): void {
    const at = restored.find((w) => w.edgeId === this.edgeId);
    this.restartNotice = { checkpointId, ...(at ? { lineage: at.lineage, position: [...at.position] } : {}) };
    for (const c of this.channels()) {
      this.seal(c, true);
      // Each channel's notice says where the checkpoint left that channel: its fields are its own.
      this.enqueueRaw(c, 'r', eventFields(restartEvent(this.restartNotice, c)));
    }
  }

  /** The restart notice, for a finished producer's final log (a replay from it repeats the notice too). */
  get restart(): RestartNotice | undefined {
    return this.restartNotice;
  }

  /** Checkpoint N completed for this edge's region: the log keeps only what came after barrier N. */
  trimLog(checkpointId: number): void {
    this.log?.trim(checkpointId);
  }

  /**
   * A restarted consumer asks for its channel again (see replay.ts): the logged messages from its
   * position of this writer's lineage, then the end event, in a message group of their own.
   * Without a log (a strategy that does not replay) only the end event goes: nothing to wait for.
   */
  async replay(request: ReplayRequest): Promise<void> {
    const consumer = request.consumer;
    if (!(consumer >= 0 && consumer < this.consumers)) throw new Error(`replay of edge ${this.edgeId} asks for consumer ${consumer}; the edge has ${this.consumers}`);
    if (this.options.edge.pointwise && consumer !== this.options.producerIndex) return;
    // Sealed first: what is buffered now is in the log, so in the replay. The excerpt and where the
    // live channel goes on are taken at the same moment (what is sealed later comes after both).
    this.seal(consumer, true);
    const position = positionIn(this.lineage, request.from[this.options.producerIndex]);
    const address = { producer: this.options.producerIndex, attempt: this.options.attempt, consumerAttempt: request.consumerAttempt, request: request.request };
    // Without a log nothing can be sent again: an empty replay, after which the live group goes on as it comes.
    const taken = this.log?.excerpt(consumer, position) ?? { lineage: this.lineage, from: position, messages: [], barriers: [], end: position };
    // The live group's first message is the restart notice, if any: everything before `ls` is
    // skipped by the consumer, so the replay must carry it.
    const restart = this.restartNotice && restartEvent(this.restartNotice, consumer);
    const live = { nextSequence: this.sequence[consumer]!, watermark: this.lastWatermark, ended: this.ended, ...(restart ? { restart } : {}) };
    let excerpt = this.log ? await this.log.complete(taken, position) : taken;
    // A log that starts after the position asked for cannot give what lies between: a source reads
    // it again (the same records at the same positions); what is still not covered, the end says.
    let covered = position;
    if (this.log && taken.from > position && this.options.regenerate) {
      const again = await this.options.regenerate(consumer, taken.lineage, position, taken.from);
      if (again.length > 0 && again[0]!.first === position) {
        covered = again.at(-1)!.first + again.at(-1)!.count;
        // Contiguous with the log only when it covers all of the gap (else the log's part follows a gap).
        excerpt = { ...excerpt, from: position, messages: [...again, ...excerpt.messages] };
        this.regeneratedRecords += covered - position;
      }
    }
    const unreplayable = Math.max(0, taken.from - covered);
    const tail = this.log ? { ...live, ...(unreplayable > 0 ? { unreplayable } : {}) } : {};
    const groupId = replayGroupId(address);
    const list = this.outbox.get(consumer) ?? [];
    replayBodies(excerpt, address, tail).forEach((body, s) => list.push({ groupId, dedupId: `${groupId}-${s}`, body }));
    this.outbox.set(consumer, list);
    this.outboxControl.add(consumer);
    this.replayedRecords += excerpt.messages.reduce((n, m) => n + m.count, 0);
  }

  /** True when sealed messages wait to be sent or a buffer is worth sealing. */
  hasPending(): boolean {
    return this.outbox.size > 0 || this.buffers.size > 0 || this.watermarksWaiting > 0;
  }

  /** True when full messages wait to be sent. */
  hasSealed(): boolean {
    return this.outbox.size > 0;
  }

  /**
   * Sends the sealed messages, one batched call sequence per queue; with `partial` (the linger
   * time passed, or a control event follows) it first seals the partly filled buffers too. Not
   * `forced`, a channel with a watermark and no records waits until its watermark interval passed.
   * `linger`: the flush is due only because the linger time passed, so a channel's records and
   * watermarks are sent as `linger` messages (the unit's transport may hold them until its next
   * send tick to share an envelope, see channel-mux.ts); a channel with a control event or a
   * replay in its outbox is sent as usual.
   */
  async flush(partial = true, forced = true, linger = false): Promise<void> {
    // Every channel while a watermark waits for some; else only those with records.
    if (partial && this.watermarksWaiting > 0) for (const c of this.channels()) this.seal(c, forced);
    else if (partial && this.buffers.size > 0) for (const c of [...this.buffers.keys()].sort((a, b) => a - b)) this.seal(c, forced);
    const sends = [...this.outbox.entries()].map(([consumer, messages]) => {
      if (linger && !this.outboxControl.has(consumer)) for (const m of messages) m.linger = true;
      return this.options.transport.send(this.options.queueOf(consumer), messages);
    });
    this.outbox.clear();
    this.outboxControl.clear();
    await Promise.all(sends);
  }

  /** Consumers this producer writes to on this edge, in order. */
  private *channels(): Iterable<number> {
    if (this.options.edge.pointwise) {
      yield this.options.producerIndex;
      return;
    }
    for (let c = 0; c < this.consumers; c++) yield c;
  }

  /** A watermark waits to go out on this channel. */
  private watermarkWaits(consumer: number): boolean {
    return this.watermarkTaken[consumer]! < this.watermarksEmitted && (!this.options.edge.pointwise || consumer === this.options.producerIndex);
  }

  /** `serialized`: the record as JSON, when the caller already has it (broadcast). */
  private append(consumer: number, record: Json, serialized?: string): void {
    if (!this.gate.isAvailable(this.edgeId, consumer)) {
      // The records before it go out as one message: a message's records are consecutive positions.
      if (this.buffers.has(consumer)) this.seal(consumer, true);
      this.dropped[consumer]!++;
      this.droppedTotal++;
      this.position[consumer]!++;
      this.log?.skipTo(consumer, this.position[consumer]!);
      return;
    }
    let buffer = this.buffers.get(consumer);
    let part = encode(buffer ?? (buffer = this.newBuffer(consumer, record)), record, serialized);
    let size = Buffer.byteLength(part) + 1;
    if (buffer.count > 0 && buffer.bytes + size > this.maxBytes) {
      this.seal(consumer, true);
      // The next message's rows take their keys from this record.
      const next = this.newBuffer(consumer, record);
      if (next.shape?.text !== buffer.shape?.text) part = encode(next, record, serialized);
      size = Buffer.byteLength(part) + 1;
      buffer = next;
    }
    if (buffer.bytes + size > this.maxBytes) {
      throw new Error(`a record on edge ${this.edgeId} is ${size} bytes; records must be smaller than ${this.maxBytes - buffer.bytes} bytes`);
    }
    if (buffer.count === 0) this.buffers.set(consumer, buffer);
    this.position[consumer]!++;
    buffer.parts.push(part);
    buffer.count++;
    if (buffer.parts.length === CHUNK_RECORDS) {
      buffer.chunks.push(buffer.parts.join(','));
      buffer.parts.length = 0;
    }
    buffer.bytes += size;
    this.recordsWritten++;
  }

  /**
   * Turns a channel's buffered records (and watermark) into one message in the outbox. A
   * watermark alone waits (unless `forced`) until the channel's watermark interval has passed.
   */
  private seal(consumer: number, forced: boolean): void {
    const buffer = this.buffers.get(consumer);
    const waits = this.watermarkWaits(consumer);
    if (!buffer && !waits) return;
    const now = Date.now();
    if (!buffer && !forced && now - this.watermarkSentAt[consumer]! < this.watermarkEveryMs) return;
    const watermark = waits ? this.lastWatermark : undefined;
    if (waits) {
      this.watermarkTaken[consumer] = this.watermarksEmitted;
      this.watermarksWaiting--;
    }
    if (watermark !== undefined) this.watermarkSentAt[consumer] = now;
    // Records buffered while the sub-partition was available still go out (the queue is
    // durable); only records that arrive while it is unavailable are dropped, and counted.
    if (!buffer) {
      // Every channel gets the same watermark: its fields are written once per value.
      const cached = this.watermarkFields;
      const fields = cached && cached[0] === watermark ? cached : (this.watermarkFields = [watermark!, eventFields({ t: 'w', w: watermark! })]);
      this.enqueueRaw(consumer, 'w', fields[1]);
      return;
    }
    // Records are already JSON; splice them in rather than stringify twice.
    if (buffer.parts.length > 0) buffer.chunks.push(buffer.parts.join(','));
    const records = spliced(buffer.chunks);
    // Determinants travel with the records they caused: durable before their effects are.
    const dt = this.options.determinants?.takeFor(`${this.edgeId}/${consumer}`, DETERMINANT_BYTES);
    const determinants = dt ? JSON.stringify(dt) : '';
    const { shape } = buffer;
    const head = shape ? `"k":${shape.text},"c":` : '"r":';
    const fields = `${head}${records}${watermark === undefined ? '' : `,"w":${watermark}`}${dt ? `,"dt":${determinants}` : ''}`;
    this.log?.append(consumer, { first: buffer.first, count: buffer.count, fields });
    this.buffers.delete(consumer);
    // The records' UTF-8 size is counted already (buffer.bytes: each record's, plus one for its
    // comma or bracket, and one more bracket, and the rows' keys); the rest of the body is ASCII
    // but the keys (counted in their shape) and the determinants.
    const wide = buffer.bytes - headBytes(shape) + 1 - records.length + (shape ? shape.bytes - shape.text.length : 0) + (dt ? Buffer.byteLength(determinants) - determinants.length : 0);
    this.enqueueRaw(consumer, 'd', fields, buffer.first, false, wide);
  }

  /** An empty buffer for channel `consumer` whose first record is `record` (not in `buffers` until it has one). */
  private newBuffer(consumer: number, record: Json): ChannelBuffer {
    const shape = rowShapeOf(record);
    return { parts: [], chunks: [], count: 0, bytes: headBytes(shape), first: this.position[consumer]!, shape };
  }

  /**
   * `first`: position of the message's first record (data); control events take the next position.
   * `lazy`: a barrier, which the flush need not wait for (the records before it are what must be
   * sent before the checkpoint is acknowledged; a barrier lost with its unit only fails the checkpoint).
   */
  private enqueueRaw(consumer: number, type: ChannelMessage['t'], fields: string, first = this.position[consumer]!, lazy = false, wide?: number): void {
    const seq = this.sequence[consumer]!++;
    const { producerIndex: p, attempt: a } = this.options;
    const body = `{"p":${p},"a":${a},"s":${seq},"l":${this.lineage},"n":${first},"t":"${type}"${fields ? `,${fields}` : ''}}`;
    const list = this.outbox.get(consumer) ?? [];
    // One message group per producer attempt: messages a dead consumer left in flight block only
    // their own (old) group until their visibility timeout, never the new attempt's channel.
    // `wide`: the UTF-8 bytes of the body beyond its length in characters, when known (data), so
    // the unit's transport need not measure a ~256 KB body again.
    list.push({ groupId: `${p}.${a}`, dedupId: `${p}-${a}-${seq}`, body, ...(lazy ? { lazy } : {}), ...(wide !== undefined ? { bytes: body.length + wide } : {}) });
    this.outbox.set(consumer, list);
    if (type !== 'd' && type !== 'w') this.outboxControl.add(consumer);
  }
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** A record's text in `buffer`'s message: a row of its shape, or JSON (`serialized`, when the caller has it). */
function encode(buffer: ChannelBuffer, record: Json, serialized: string | undefined): string {
  return buffer.shape ? rowText(record, buffer.shape) : (serialized ?? JSON.stringify(record));
}

/** Bytes counted for a message's rows before their records: `"k":<keys>,"c":` is 5 more than `"r":`, one spare. */
const headBytes = (shape: RowShape | undefined): number => (shape ? shape.bytes + 6 : 0);

/**
 * `[chunk,chunk,...]` by concatenation, not join: the text stays a chain of the chunks (V8 cons
 * strings) until the transport copies it into the message it sends (the unit's envelope, or the
 * queue's request). A join copied it first into a ~240 KB string of its own, a large object on
 * fresh pages: ~200 µs per message of page faults and copying on this machine (~0.1 µs a record).
 */
export function spliced(chunks: readonly string[]): string {
  let text = '[';
  for (let i = 0; i < chunks.length; i++) text += i === 0 ? chunks[i]! : ',' + chunks[i]!;
  return text + ']';
}

/** A control event's fields after its type, as a message body carries them. */
function eventFields(event: Exclude<ChannelEvent, { t: 'd' | 'x' }>): string {
  const { t: _, ...rest } = event;
  return Object.entries(rest).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
}

/** Stable string hash (FNV-1a, 32 bit) mapped onto the consumer subtasks. */
export function hashPartition(key: string, parallelism: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % parallelism;
}
