/**
 * Barrier alignment of one consumer subtask. Barrier N arrives on each open input channel at its
 * own time; once a channel has delivered it, what that channel delivers next belongs after the
 * checkpoint and is held here. When every open channel (one that has not ended) has delivered N,
 * the subtask takes N and the held events are released, in their order of arrival.
 *
 * - A barrier at or below the last checkpoint taken or given up is stale (a replay) and ignored.
 * - A newer barrier that overtakes the one being aligned (its producer never sent the older one,
 *   e.g. it restarted) declines the older checkpoint and starts aligning the newer one.
 * - The coordinator may abort the checkpoint being aligned (a dead producer's barrier never
 *   comes): the alignment ends and its held events go on.
 *
 * The aligner decides; the subtask acts (through `AlignmentHooks`): it takes and declines the
 * checkpoint and handles released events, which may re-enter the aligner (a released barrier
 * opens the next alignment).
 */

export interface AlignmentHooks<E> {
  /** Newest checkpoint this subtask has taken or given up: barriers up to it are stale. */
  lastCheckpoint(): number;
  /** Checkpoint N will not be taken here (aborted, or declined at a hand-over): its barriers are stale from now on. */
  passed(checkpointId: number): void;
  /** Every open channel delivered barrier N: snapshot, acknowledge and forward it. */
  checkpoint(checkpointId: number): Promise<void>;
  /** Tells the coordinator this subtask gives checkpoint N up, and why. */
  decline(checkpointId: number, reason: string): Promise<void>;
  /** Handles events that waited behind a barrier, in order (may re-enter the aligner). */
  release(events: readonly E[]): Promise<void>;
  /**
   * Input channels are numbered 0 to channelCount() - 1, in a stable order (the input gate's):
   * alignment keeps one byte per channel and a count, not a key per channel that delivered the
   * barrier (a join subtask at parallelism 4000 reads 8000 channels, a job of them 32 million).
   */
  channelCount(): number;
  /** How many input channels are open (have not ended). */
  openCount(): number;
  isOpen(channel: number): boolean;
  /** The channel's key, for a status. */
  channelName(channel: number): string;
}

/** An alignment in progress, as reported in the subtask's counters. */
export interface AlignmentStatus {
  checkpointId: number;
  /** Open channels whose barrier has not arrived yet: the first STATUS_CHANNELS of them. */
  waitingFor: string[];
  /** How many there are, when more than `waitingFor` lists. */
  waiting?: number;
  /** Events held behind the barrier. */
  held: number;
}

/** Most channels a status names (it goes into the unit's record, a DynamoDB item). */
export const STATUS_CHANNELS = 10;

export class BarrierAligner<E> {
  /** The checkpoint being aligned and how many channels' barriers have arrived (their bytes in `arrived`). */
  private current: { checkpointId: number; count: number } | undefined;
  /** Per channel, 1 once its barrier of the current checkpoint arrived; reused from one alignment to the next. */
  private arrived = new Uint8Array(0);
  private heldEvents: E[] = [];
  /** Checkpoints the coordinator aborted, applied between two batches (`applyAborts`). */
  private readonly aborted: number[] = [];

  constructor(private readonly hooks: AlignmentHooks<E>) {}

  /** The checkpoint being aligned, if any. */
  get checkpointId(): number | undefined {
    return this.current?.checkpointId;
  }

  get aligning(): boolean {
    return this.current !== undefined;
  }

  /** Events delivered after their channel's barrier and not handled yet. */
  get held(): readonly E[] {
    return this.heldEvents;
  }

  status(): AlignmentStatus | undefined {
    const current = this.current;
    if (!current) return undefined;
    // Counted (a status goes with every heartbeat): the channels that delivered the barrier are
    // open (what follows their barrier, an end of input too, is held), so the rest of the open ones
    // wait; only the first few are named.
    const { hooks, arrived } = this;
    const waitingFor: string[] = [];
    const count = hooks.channelCount();
    for (let c = 0; c < count && waitingFor.length < STATUS_CHANNELS; c++) if (arrived[c] !== 1 && hooks.isOpen(c)) waitingFor.push(hooks.channelName(c));
    const total = Math.max(waitingFor.length, hooks.openCount() - current.count);
    return { checkpointId: current.checkpointId, waitingFor, ...(total > waitingFor.length ? { waiting: total } : {}), held: this.heldEvents.length };
  }

  /** True (and the event is kept) when the event's channel has delivered the barrier being aligned. */
  hold(channel: number, event: E): boolean {
    if (this.current === undefined || this.arrived[channel] !== 1) return false;
    this.heldEvents.push(event);
    return true;
  }

  /**
   * Barrier N delivered on a channel. Undefined when nothing is left to wait for: a barrier that
   * neither completes the alignment nor overtakes one is taken without a promise (a join subtask
   * takes 2P of them per checkpoint, and its input loop awaits only what returns one).
   */
  barrier(channel: number, checkpointId: number): Promise<void> | undefined {
    if (checkpointId <= this.hooks.lastCheckpoint()) return undefined; // stale
    if (this.current && checkpointId > this.current.checkpointId) return this.overtaken(channel, checkpointId);
    if (this.current && checkpointId < this.current.checkpointId) return undefined;
    this.arrive(channel, checkpointId);
    return this.maybeAligned();
  }

  /** A newer barrier overtook the one being aligned: that one is declined, and the newer one aligned. */
  private async overtaken(channel: number, checkpointId: number): Promise<void> {
    const older = this.current!.checkpointId;
    await this.hooks.decline(older, `barrier ${checkpointId} arrived before barrier ${older} was aligned`);
    await this.releaseHeld(checkpointId);
    // Replaying what waited may already have completed this checkpoint: never align it again.
    if (checkpointId <= this.hooks.lastCheckpoint()) return;
    if (this.current && checkpointId < this.current.checkpointId) return;
    this.arrive(channel, checkpointId);
    await this.maybeAligned();
  }

  private arrive(channel: number, checkpointId: number): void {
    const current = (this.current ??= this.begin(checkpointId));
    if (this.arrived[channel] !== 1) {
      this.arrived[channel] = 1;
      current.count++;
    }
  }

  /** A channel ended: the alignment no longer waits for it. */
  channelEnded(): Promise<void> | undefined {
    return this.maybeAligned();
  }

  /** The coordinator aborted checkpoint N (applied at the next `applyAborts`). */
  abort(checkpointId: number): void {
    this.aborted.push(checkpointId);
  }

  /** An aborted alignment lets its held channels go on. */
  async applyAborts(): Promise<void> {
    if (this.aborted.length === 0) return;
    const aborted = new Set(this.aborted.splice(0));
    if (this.current && aborted.has(this.current.checkpointId)) {
      this.hooks.passed(this.current.checkpointId);
      await this.releaseHeld(undefined);
    }
  }

  /**
   * Gives the alignment in progress up (it holds back too much): checkpoint N is declined here, and
   * what it held goes on (the region's next checkpoint covers this subtask again).
   */
  async giveUp(reason: string): Promise<void> {
    const current = this.current;
    if (!current) return;
    await this.hooks.decline(current.checkpointId, reason);
    this.hooks.passed(current.checkpointId);
    await this.releaseHeld(undefined);
  }

  /**
   * Declines every alignment until nothing is held (a hand-over): processing what one alignment
   * held back may open the next one, since its barrier was held too.
   */
  async declineAll(reason: (checkpointId: number) => string): Promise<void> {
    while (this.current) {
      const { checkpointId } = this.current;
      await this.hooks.decline(checkpointId, reason(checkpointId));
      this.hooks.passed(checkpointId);
      await this.releaseHeld(undefined);
    }
  }

  /** Takes the checkpoint once every open channel has delivered its barrier (undefined: not yet). */
  private maybeAligned(): Promise<void> | undefined {
    const current = this.current;
    if (!current || !this.aligned(current)) return undefined;
    return this.complete(current.checkpointId);
  }

  private async complete(checkpointId: number): Promise<void> {
    await this.hooks.checkpoint(checkpointId);
    await this.releaseHeld(undefined);
  }

  /**
   * Every open channel has delivered the barrier being aligned. Until as many have arrived as are
   * open, some have not; once as many have, one pass counts the open ones among them (a channel
   * that arrived may have ended since, or one that had ended may have reopened: a new attempt).
   */
  private aligned(current: { count: number }): boolean {
    const open = this.hooks.openCount();
    if (current.count < open) return false;
    let n = 0;
    for (let c = 0; c < this.arrived.length; c++) if (this.arrived[c] === 1 && this.hooks.isOpen(c)) n++;
    return n === open;
  }

  /** A new alignment: no channel has arrived. */
  private begin(checkpointId: number): { checkpointId: number; count: number } {
    const count = this.hooks.channelCount();
    if (this.arrived.length !== count) this.arrived = new Uint8Array(count);
    else this.arrived.fill(0);
    return { checkpointId, count: 0 };
  }

  /** Ends the current alignment (starting `next`, if given) and releases what waited behind it. */
  private async releaseHeld(next: number | undefined): Promise<void> {
    const waiting = this.heldEvents;
    this.heldEvents = [];
    this.current = next === undefined ? undefined : this.begin(next);
    await this.hooks.release(waiting);
  }
}
