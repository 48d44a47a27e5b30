/**
 * Upstream in-flight log of one output edge of a producer subtask: the data messages it sent on
 * each channel since the consumer's last completed checkpoint. A consumer that restarts restores
 * from that checkpoint; what its dead attempt consumed after it was deleted from the queue, so
 * the producer replays it from here (see replay.ts for the protocol). Trimmed when a checkpoint
 * completes: everything before that checkpoint's barrier is in the consumer's snapshot.
 *
 * One lineage per log (the writer's record numbering, see messages.ts): a writer that changes
 * lineage (a source restored from a checkpoint) starts an empty log at its restored positions.
 *
 * Bounded in memory: past `maxBytes` the oldest messages of the largest channel go to a segment in
 * S3 (`spill`; a long checkpoint interval, an hourly one say, can hold far more than memory), read
 * back by a replay and deleted when a checkpoint covers them. Without a place to spill, they are
 * given up and counted (`overflowRecords`): a replay that needs them says where its gap is, and the
 * consumer counts the records it skips as missing. Nothing is lost silently.
 */

/** One sent data message: its records as JSON fields (`"r":[…]` and an optional `,"w":…`). */
export interface LoggedMessage {
  /** Record position of its first record. */
  first: number;
  /** Records in it. */
  count: number;
  fields: string;
}

/** Messages of one channel written to S3: positions [first, end). */
export interface SpilledSegment {
  key: string;
  first: number;
  end: number;
  count: number;
}

/** Where a log writes what does not fit in memory (an S3 prefix of the producer's). */
export interface LogSpill {
  /** A key for the next segment of channel `consumer`. */
  keyFor(consumer: number, first: number): string;
  put(key: string, body: string): Promise<void>;
  get(key: string): Promise<string | undefined>;
  delete(keys: readonly string[]): Promise<void>;
}

export interface InflightLogState {
  lineage: number;
  /** Per consumer channel: the position the log covers from, the segments in S3, and the messages after them. */
  channels: { from: number; messages: LoggedMessage[]; spilled?: SpilledSegment[] }[];
  /** Record positions at each barrier not yet trimmed: [checkpointId, position per consumer]. */
  barriers: [number, number[]][];
  overflowRecords: number;
}

/** What a replay of one channel from a position gets. */
export interface LogExcerpt {
  lineage: number;
  /** First position the excerpt covers: the requested one, or later when the log no longer has it (a gap). */
  from: number;
  messages: LoggedMessage[];
  /** Segments in S3 before `messages` (read them with `readSpilled`). */
  spilled?: SpilledSegment[];
  /** Barriers of checkpoints not completed yet, at or after `from`, with the record position they follow. */
  barriers: { checkpointId: number; position: number }[];
  /** Position after the last logged record: live messages from here on follow the replay. */
  end: number;
}

export const DEFAULT_LOG_BYTES = 64 * 1024 * 1024;

interface ChannelLog {
  from: number;
  end: number;
  messages: LoggedMessage[];
  bytes: number;
  spilled: SpilledSegment[];
}

/** Bytes written to S3 in one segment, when the memory bound is passed. */
const SEGMENT_BYTES = 8 * 1024 * 1024;

export class InflightLog {
  /**
   * The channels that hold or held something, by consumer. A channel not in it is at its base
   * position with nothing logged: a source of the P=4000 join writes 4000 channels, and an entry
   * for each (an object and two arrays, ~150 bytes) was ~40 MB per task unit of 100 subtasks
   * before any record was written.
   */
  private channels = new Map<number, ChannelLog>();
  /** Where each channel's log starts while it is not in `channels` (undefined: 0). */
  private base: readonly number[] | undefined;
  private readonly barriers = new Map<number, number[]>();
  private bytes = 0;
  /** Records given up past the bound (a replay that needed them reports a gap). */
  overflowRecords = 0;
  /** Segments written to S3 so far, and writes in progress (a replay waits for them). */
  spilledSegments = 0;
  private readonly writes = new Set<Promise<void>>();

  constructor(
    private readonly consumers: number,
    public lineage: number,
    private readonly maxBytes = DEFAULT_LOG_BYTES,
    private readonly spill?: LogSpill,
  ) {}

  /** A new lineage starting at these positions (a restored source): nothing before them is logged. */
  restart(lineage: number, positions: readonly number[]): void {
    this.lineage = lineage;
    this.dropSpilled([...this.channels.values()].flatMap((c) => c.spilled));
    this.channels = new Map();
    this.base = [...positions];
    this.barriers.clear();
    this.bytes = 0;
  }

  private baseOf(consumer: number): number {
    return this.base?.[consumer] ?? 0;
  }

  /** A channel's log as it is (not stored when it has nothing: see `channels`). */
  private view(consumer: number): ChannelLog {
    const at = this.baseOf(consumer);
    return this.channels.get(consumer) ?? { from: at, end: at, messages: [], bytes: 0, spilled: [] };
  }

  /** A channel's log, kept from now on. */
  private channel(consumer: number): ChannelLog {
    let channel = this.channels.get(consumer);
    if (!channel) {
      if (!(consumer >= 0 && consumer < this.consumers)) throw new RangeError(`in-flight log of ${this.consumers} channels has no channel ${consumer}`);
      this.channels.set(consumer, (channel = this.view(consumer)));
    }
    return channel;
  }

  /** A data message was sealed for sending on channel `consumer`. */
  append(consumer: number, message: LoggedMessage): void {
    const channel = this.channel(consumer);
    channel.messages.push(message);
    channel.end = message.first + message.count;
    const size = message.fields.length + 32;
    channel.bytes += size;
    this.bytes += size;
    while (this.bytes > this.maxBytes) if (!this.shed()) break;
  }

  /** Records up to `end` on channel `consumer` are accounted for without a message (dropped for an unavailable consumer). */
  skipTo(consumer: number, end: number): void {
    if (end <= this.view(consumer).end) return;
    this.channel(consumer).end = end;
  }

  /** Barrier N left with these record positions (one per consumer channel). */
  barrier(checkpointId: number, positions: readonly number[]): void {
    this.barriers.set(checkpointId, [...positions]);
  }

  /**
   * Checkpoint N completed for the region of this edge's consumers: their snapshots hold every
   * record before barrier N, so the log keeps only what came after it.
   */
  trim(checkpointId: number): void {
    const at = this.barriers.get(checkpointId);
    for (const id of [...this.barriers.keys()]) if (id <= checkpointId) this.barriers.delete(id);
    if (!at) return;
    for (let c = 0; c < this.consumers; c++) {
      const upTo = at[c]!;
      if (upTo <= (this.channels.get(c)?.from ?? this.baseOf(c))) continue;
      const channel = this.channel(c);
      let drop = 0;
      while (drop < channel.messages.length && channel.messages[drop]!.first + channel.messages[drop]!.count <= upTo) drop++;
      this.remove(channel, drop);
      const covered = channel.spilled.filter((g) => g.end <= upTo);
      if (covered.length > 0) {
        channel.spilled = channel.spilled.filter((g) => g.end > upTo);
        this.dropSpilled(covered);
      }
      channel.from = Math.max(channel.from, upTo);
    }
  }

  /** What channel `consumer` needs again from record `position` of the log's lineage on. */
  excerpt(consumer: number, position: number): LogExcerpt {
    const channel = this.view(consumer);
    const messages = channel.messages.filter((m) => m.first + m.count > position);
    const spilled = channel.spilled.filter((g) => g.end > position);
    const barriers = [...this.barriers]
      .map(([checkpointId, at]) => ({ checkpointId, position: at[consumer]! }))
      .filter((b) => b.position >= position)
      .sort((a, b) => a.checkpointId - b.checkpointId);
    return { lineage: this.lineage, from: Math.max(position, channel.from), messages, ...(spilled.length > 0 ? { spilled } : {}), barriers, end: Math.max(channel.end, position) };
  }

  /**
   * An excerpt with its spilled segments read back from S3 (after the writes in progress): every
   * logged message from its position on, in order.
   */
  async complete(excerpt: LogExcerpt, position: number): Promise<LogExcerpt> {
    if (!excerpt.spilled?.length) return excerpt;
    await Promise.all(this.writes);
    const earlier: LoggedMessage[] = [];
    for (const g of excerpt.spilled) earlier.push(...(await readSegment(this.spill, g)).filter((m) => m.first + m.count > position));
    return { ...excerpt, messages: [...earlier, ...excerpt.messages], spilled: [] };
  }

  /** Messages and bytes held now (all channels). */
  get size(): { messages: number; bytes: number } {
    let messages = 0;
    for (const c of this.channels.values()) messages += c.messages.length;
    return { messages, bytes: this.bytes };
  }

  state(): InflightLogState {
    return {
      lineage: this.lineage,
      channels: Array.from({ length: this.consumers }, (_, i) => {
        const c = this.view(i);
        return { from: c.from, messages: [...c.messages], ...(c.spilled.length > 0 ? { spilled: [...c.spilled] } : {}) };
      }),
      barriers: [...this.barriers],
      overflowRecords: this.overflowRecords,
    };
  }

  /** Continues a predecessor invocation's log (a hand-over). */
  resume(state: InflightLogState): void {
    if (state.channels.length !== this.consumers) throw new Error(`in-flight log of ${this.consumers} channels cannot resume one of ${state.channels.length}`);
    this.lineage = state.lineage;
    this.bytes = 0;
    this.channels = new Map();
    this.base = state.channels.map((c) => c.from);
    state.channels.forEach((c, i) => {
      const spilled = c.spilled ?? [];
      if (c.messages.length === 0 && spilled.length === 0) return; // at its base, nothing logged
      const bytes = c.messages.reduce((n, m) => n + m.fields.length + 32, 0);
      this.bytes += bytes;
      const last = c.messages.at(-1);
      this.channels.set(i, { from: c.from, end: last ? last.first + last.count : (spilled.at(-1)?.end ?? c.from), messages: [...c.messages], bytes, spilled: [...spilled] });
    });
    this.barriers.clear();
    for (const [id, at] of state.barriers) this.barriers.set(id, at);
    this.overflowRecords = state.overflowRecords;
  }

  /**
   * Makes room: the oldest messages of the largest channel go to an S3 segment (up to
   * SEGMENT_BYTES), or without a place to spill, the oldest one is given up and counted.
   */
  private shed(): boolean {
    let largest: ChannelLog | undefined;
    let index = 0;
    // The largest, the lowest consumer among equals.
    for (const [c, channel] of this.channels) if (!largest || channel.bytes > largest.bytes || (channel.bytes === largest.bytes && c < index)) (largest = channel), (index = c);
    const oldest = largest?.messages[0];
    if (!largest || !oldest) return false;
    if (!this.spill) {
      this.overflowRecords += oldest.count;
      this.remove(largest, 1);
      largest.from = oldest.first + oldest.count;
      return true;
    }
    let n = 0;
    let bytes = 0;
    while (n < largest.messages.length && (n === 0 || bytes < SEGMENT_BYTES)) bytes += largest.messages[n++]!.fields.length + 32;
    const messages = largest.messages.slice(0, n);
    const last = messages[n - 1]!;
    const segment: SpilledSegment = {
      key: this.spill.keyFor(index, oldest.first),
      first: oldest.first,
      end: last.first + last.count,
      count: messages.reduce((k, m) => k + m.count, 0),
    };
    const write = this.spill.put(segment.key, JSON.stringify(messages)).finally(() => this.writes.delete(write));
    write.catch(() => undefined); // a replay that needs it reports the failure (readSegment)
    this.writes.add(write);
    largest.spilled.push(segment);
    this.spilledSegments++;
    this.remove(largest, n);
    return true;
  }

  private dropSpilled(segments: readonly SpilledSegment[]): void {
    if (segments.length === 0 || !this.spill) return;
    void this.spill.delete(segments.map((g) => g.key)).catch(() => undefined);
  }

  private remove(channel: { messages: LoggedMessage[]; bytes: number }, count: number): void {
    if (count === 0) return;
    const removed = channel.messages.splice(0, count);
    const bytes = removed.reduce((n, m) => n + m.fields.length + 32, 0);
    channel.bytes -= bytes;
    this.bytes -= bytes;
  }
}

/** A spilled segment's messages, read back (a missing segment is an error naming it: never a silent gap). */
export async function readSegment(spill: Pick<LogSpill, 'get'> | undefined, segment: SpilledSegment): Promise<LoggedMessage[]> {
  const body = spill ? await spill.get(segment.key) : undefined;
  if (body === undefined) throw new Error(`in-flight log segment ${segment.key} (records ${segment.first}..${segment.end - 1}) is missing`);
  return JSON.parse(body) as LoggedMessage[];
}
