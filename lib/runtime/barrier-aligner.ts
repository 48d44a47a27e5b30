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
  /** Keys of the input channels still open, in a stable order. */
  openChannels(): Iterable<string>;
  /**
   * How many input channels are open, and whether one is: given both, alignment counts instead of
   * going over every open channel at each barrier (a join subtask at parallelism 4000 has 8000).
   */
  openCount?(): number;
  isOpen?(channel: string): boolean;
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
  /** The checkpoint being aligned and the channels whose barrier has arrived. */
  private current: { checkpointId: number; arrived: Set<string> } | undefined;
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
    // open (what follows their barrier, an end of input too, is held), so the rest of the open ones wait.
    const counted = this.hooks.openCount && this.hooks.isOpen ? Math.max(0, this.hooks.openCount() - current.arrived.size) : undefined;
    const waitingFor: string[] = [];
    let waiting = 0;
    for (const key of this.hooks.openChannels()) {
      if (current.arrived.has(key)) continue;
      waiting++;
      if (waitingFor.length < STATUS_CHANNELS) waitingFor.push(key);
      else if (counted !== undefined) break;
    }
    const total = counted ?? waiting;
    return { checkpointId: current.checkpointId, waitingFor, ...(total > waitingFor.length ? { waiting: total } : {}), held: this.heldEvents.length };
  }

  /** True (and the event is kept) when the event's channel has delivered the barrier being aligned. */
  hold(channel: string, event: E): boolean {
    if (!this.current?.arrived.has(channel)) return false;
    this.heldEvents.push(event);
    return true;
  }

  /** Barrier N delivered on a channel. */
  async barrier(channel: string, checkpointId: number): Promise<void> {
    if (checkpointId <= this.hooks.lastCheckpoint()) return; // stale
    if (this.current && checkpointId > this.current.checkpointId) {
      const older = this.current.checkpointId;
      await this.hooks.decline(older, `barrier ${checkpointId} arrived before barrier ${older} was aligned`);
      await this.releaseHeld(checkpointId);
    }
    // Replaying what waited may already have completed this checkpoint: never align it again.
    if (checkpointId <= this.hooks.lastCheckpoint()) return;
    if (this.current && checkpointId < this.current.checkpointId) return;
    this.current ??= { checkpointId, arrived: new Set() };
    this.current.arrived.add(channel);
    await this.maybeAligned();
  }

  /** A channel ended: the alignment no longer waits for it. */
  async channelEnded(): Promise<void> {
    await this.maybeAligned();
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

  /** Takes the checkpoint once every open channel has delivered its barrier. */
  private async maybeAligned(): Promise<void> {
    const current = this.current;
    if (!current || !this.aligned(current)) return;
    await this.hooks.checkpoint(current.checkpointId);
    await this.releaseHeld(undefined);
  }

  /** Every open channel has delivered the barrier being aligned. */
  private aligned(current: { arrived: Set<string> }): boolean {
    const { openCount } = this.hooks;
    if (!openCount || !this.hooks.isOpen) {
      for (const key of this.hooks.openChannels()) if (!current.arrived.has(key)) return false;
      return true;
    }
    // Counted: the open channels that arrived are all of them. Until as many have arrived as are
    // open, some have not (one pass over the arrived ones once as many have).
    const open = openCount.call(this.hooks);
    return current.arrived.size >= open && this.arrivedOpen(current) === open;
  }

  private arrivedOpen(current: { arrived: Set<string> }): number {
    let n = 0;
    for (const key of current.arrived) if (this.hooks.isOpen!(key)) n++;
    return n;
  }

  /** Ends the current alignment (starting `next`, if given) and releases what waited behind it. */
  private async releaseHeld(next: number | undefined): Promise<void> {
    const waiting = this.heldEvents;
    this.heldEvents = [];
    this.current = next === undefined ? undefined : { checkpointId: next, arrived: new Set() };
    await this.hooks.release(waiting);
  }
}
