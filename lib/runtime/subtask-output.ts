/**
 * The output side of one subtask: its record writers (one per output edge), when they send, and
 * their numbering as a checkpoint snapshot or a hand-over keeps it. The operator chain writes
 * records into the writers; this sends them on (full messages at once, partial ones after the
 * linger time) and puts barriers and end of input on every output channel.
 */
import type { InflightLogState } from './inflight-log';
import type { ChannelEvent, ReplayRequest } from './messages';
import type { RestartNotice } from './replay';
import type { WriterHandover } from './handover';
import type { RecordWriter, WriterPositions } from './record-writer';

export class SubtaskOutput {
  private lastFlush = Date.now();

  constructor(
    /** Name of the subtask, for errors. */
    private readonly subtask: string,
    readonly writers: readonly RecordWriter[],
    /** Longest time records wait in a writer buffer before they are sent. */
    private readonly lingerMs = 200,
  ) {}

  /** Records dropped because their consumer was unavailable, over all writers. */
  get dropped(): number {
    return this.writers.reduce((n, w) => n + w.droppedRecords, 0);
  }

  /** A barrier or end of input, on every output channel. */
  emitEvent(event: Exclude<ChannelEvent, { t: 'd' | 'x' | 'r' }>): void {
    for (const w of this.writers) w.emitEvent(event);
  }

  /**
   * Sends full messages at once and partial ones after the linger time (watermarks alone at most
   * every second). The linger's sends are `linger` messages: a unit's transport sends those of all
   * its subtasks on one tick (channel-mux.ts), and this resolves once they are sent.
   */
  async maybeFlush(): Promise<void> {
    if (Date.now() - this.lastFlush >= this.lingerMs) {
      this.lastFlush = Date.now();
      await Promise.all(this.writers.filter((w) => w.hasPending()).map((w) => w.flush(true, false, true)));
      return;
    }
    await Promise.all(this.writers.filter((w) => w.hasSealed()).map((w) => w.flush(false)));
  }

  /**
   * Sends everything buffered; not `forced`, a channel's watermark without records waits for its
   * interval (record-writer.ts) and rides on the next message instead.
   */
  async flush(forced = true): Promise<void> {
    this.lastFlush = Date.now();
    await Promise.all(this.writers.filter((w) => w.hasPending()).map((w) => w.flush(true, forced)));
  }

  /** Checkpoint N completed for this subtask's region: the in-flight logs keep only what came after barrier N. */
  trimLogs(checkpointId: number): void {
    for (const w of this.writers) w.trimLog(checkpointId);
  }

  /** A restarted consumer asks for its channels of one edge again (see replay.ts); the replay is sent at once. */
  async replay(request: ReplayRequest): Promise<number> {
    const writer = this.writers.find((w) => w.edgeId === request.edgeId);
    if (!writer) return 0;
    const before = writer.replayedRecords;
    await writer.replay(request);
    await writer.flush(false);
    return writer.replayedRecords - before;
  }

  /**
   * This subtask restarted in a lineage of its own, from checkpoint N (0: from scratch): its
   * consumers count what comes again, from where N's snapshot (`restored`) left each channel.
   */
  announceRestart(checkpointId: number, restored: readonly WriterPositions[] = []): void {
    for (const w of this.writers) w.announceRestart(checkpointId, restored);
  }

  /** Records sent again to restarted consumers, over all writers. */
  get resent(): number {
    return this.writers.reduce((n, w) => n + w.replayedRecords, 0);
  }

  /** The in-flight logs a finished subtask leaves in S3 for a consumer that restarts after it is gone. */
  finalLogs(): { edgeId: string; log: InflightLogState; restart?: RestartNotice }[] {
    return this.writers.flatMap((w) => (w.log ? [{ edgeId: w.edgeId, log: w.log.state(), ...(w.restart ? { restart: w.restart } : {}) }] : []));
  }

  /** Record numbering per output edge, for a checkpoint snapshot. */
  positions(): WriterPositions[] {
    return this.writers.map((w) => w.positions());
  }

  /** Sequence numbers and numbering per output edge, for a hand-over (the same attempt continues). */
  handoverState(): WriterHandover[] {
    return this.writers.map((w) => w.handoverState());
  }

  /** A restored source continues the record numbering of its snapshot. */
  restorePositions(state: readonly WriterPositions[]): void {
    for (const s of state) this.writer(s.edgeId, 'snapshot').restorePositions(s);
  }

  /** Any restored subtask: the writers' counters go back to the checkpoint's. */
  restoreCounters(state: readonly WriterPositions[]): void {
    for (const s of state) this.writer(s.edgeId, 'snapshot').restoreCounters(s);
  }

  resume(state: readonly WriterHandover[]): void {
    for (const s of state) this.writer(s.edgeId, 'hand-over').resume(s);
  }

  private writer(edgeId: string, from: 'snapshot' | 'hand-over'): RecordWriter {
    const writer = this.writers.find((x) => x.edgeId === edgeId);
    if (!writer) throw new Error(`${from} of ${this.subtask} names output edge ${edgeId}, which the subtask does not have`);
    return writer;
  }
}
