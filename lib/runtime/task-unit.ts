/**
 * A task unit: the process (child process, Lambda invocation or Fargate task) that hosts one or
 * more subtasks of a job. It heartbeats its status and counters into the metadata store, listens
 * on its control queue, and ends when its subtasks end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import type { Json } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { ExecutionGraph } from '../graph/execution-graph';
import { parseSubtaskId } from '../graph/execution-graph';
import { silentLogger, type Logger } from '../ports/telemetry';
import { UNIT_LIFECYCLE, type SubtaskStats, type TransportStats, type UnitRecordStore, type UnitStatus } from '../ports/unit-records';
import type { CheckpointIO, SubtaskSnapshot } from './checkpoint-io';
import { HANDOVER_FORMAT, writeHandover, type SubtaskHandover } from './handover';
import type { ControlMessage, ReplayRequest } from './messages';
import { ReplayRequestFilter } from './replay-requests';
import type { SubPartitionGate } from './record-writer';
import { ReplayProgress, type ReplaySender } from './replay-requester';
import { determinantAnswerKey, type DeterminantSender } from './determinant-requester';
import { MAX_MESSAGE_BYTES } from '../ports/channels';
import { MUX_OVERHEAD_BYTES, type UnitChannels } from './channel-mux';
import { SubtaskRunner, type SubtaskEnvironment, type SubtaskStatus } from './subtask';

export interface TaskUnitOptions {
  jobId: string;
  unitId: string;
  attempt: number;
  graph: ExecutionGraph;
  subtasks: string[];
  controlQueue: string;
  queuePrefix: string;
  channels: ChannelTransport;
  blobs: BlobStore;
  /** Where the unit reports itself (the control plane's job store). */
  jobs: UnitRecordStore;
  gate?: SubPartitionGate;
  checkpoints?: CheckpointIO;
  /** Snapshot to restore per subtask id. */
  restore?: Map<string, SubtaskSnapshot>;
  /** Union list state to restore per subtask id (subtasks of one task may share one object). */
  restoreUnion?: Map<string, Record<string, Json[]>>;
  /** Lowest producer attempt accepted per input channel. */
  minAttempt?: (edgeId: string, producer: number) => number;
  /** Region and full failover: producers restart with their consumers (see InputGateOptions.groupsStartAtZero). */
  groupsStartAtZero?: boolean;
  /** Keep in-flight logs for restarted consumers (single-point recovery: see replay.ts). */
  inflightLog?: boolean;
  /** This unit restarted alone: its consumer subtasks ask their producers for a replay through this. */
  replaySender?: ReplaySender;
  /** Exactly-once single-point recovery (single-exact): see SubtaskEnvironment.exactOnce. */
  exactOnce?: boolean;
  /** The subtasks' writer linger (SubtaskEnvironment.lingerMs; the mux ticks with the same, channel-mux.ts). */
  lingerMs?: number;
  /** This unit restarted alone under single-exact: its inner tasks ask their consumers for their determinants through this. */
  determinantSender?: DeterminantSender;
  /** Invocation of this attempt (0 first; +1 per hand-over). */
  generation?: number;
  /**
   * This invocation's owner token (default: a new one). A resumed invocation has already claimed
   * the record with it; a first invocation takes the record with it at start.
   */
  owner?: string;
  /** Live state per subtask handed over by the previous invocation (instead of `restore`). */
  resume?: Map<string, SubtaskHandover>;
  /** Time (ms since the epoch) to hand over to the next invocation; none: run to the end. */
  handoverAt?: number;
  /**
   * Longest wait for a barrier alignment in progress at hand-over time (default 10 s: below the
   * input gate's 15 s visibility timeout, so the events held back are not delivered again meanwhile).
   */
  handoverGraceMs?: number;
  /**
   * How often the unit looks at its counters (default 1 s): when they changed, its record is
   * written (a report, which is also a heartbeat), at most this often.
   */
  heartbeatMs?: number;
  /**
   * Longest time without a write (default 3 s): when the counters did not change, a small liveness
   * heartbeat goes instead of the whole record, so an idle unit hosting many subtasks costs one
   * small write per this interval, not a record of every subtask's counters per second.
   */
  livenessMs?: number;
  /** The record is rewritten at least this often (default 60 s), for the request counters an idle unit still runs up. */
  reportMaxAgeMs?: number;
  /** AWS requests made so far by this process, by service (reported with the heartbeat). */
  requestCounts?: () => Record<string, number>;
  /** Requests of the attempt's earlier invocations (from the hand-over), added to this process's. */
  requestsBefore?: Record<string, number>;
  /**
   * The unit's multiplexed channels (channel-mux.ts): its subtasks write and read their channels
   * through it, over one input queue per unit. Without it they use their sub-partition queues.
   */
  mux?: UnitChannels;
  /** Wraps the transport the subtasks use (the host measures their input lag per task through it). */
  observeInputs?: (channels: ChannelTransport) => ChannelTransport;
  /**
   * A subtask failed (an exception inside it): under single-point recovery it restarts alone in the
   * unit, the others running on. Resolves with what the new incarnation restores from, or
   * undefined when it must not restart (the unit then fails as a whole, as without this).
   */
  restartSubtask?: (subtask: string, error: unknown, restart: number) => Promise<SubtaskRestart | undefined>;
  /** Handles control messages the unit itself does not know (checkpoints, availability). */
  onControl?: (message: ControlMessage) => Promise<void>;
  /** The unit's log (the host gives it the job, unit, attempt and invocation keys). */
  logger?: Logger;
}

/**
 * Longest long-poll wait of an idle control queue: 20 s, SQS's longest, backed off from 1 s (a long
 * poll returns as soon as a message arrives, so a trigger is not delayed). A long poll of a unit
 * that died goes on at SQS (and at the emulator) until its wait ends, and the first message it
 * takes then is hidden for CONTROL_VISIBILITY_SECONDS from the unit's restarted attempt, which
 * reads the same queue (chaos seed 50054: a restarted source learned of its consumer's restart 10 s
 * late). That is why this was 1 s, at 100 receives a second for 100 idle units (issue 12: most of
 * the P=5000 ingest job's idle requests). What a restart must not wait 10 s for no longer depends
 * on the queue: a hidden message holds back its own FIFO group only (controlGroup); a restarted
 * unit reads its availability flags again while a sub-partition it writes to is unavailable
 * (scheduleRefreshes); a replay request with no answer is asked again once no replay progressed for 4 s; a lost trigger
 * fails one checkpoint, not the next.
 */
export const CONTROL_IDLE_WAIT_SECONDS = 20;
/** How long a control message taken by a receive stays hidden (handling one takes well under this). */
const CONTROL_VISIBILITY_SECONDS = 10;

/** What a subtask restarted inside its unit starts from (see TaskUnitOptions.restartSubtask). */
export interface SubtaskRestart {
  restore?: SubtaskSnapshot;
  restoreUnion?: Record<string, Json[]>;
  replaySender?: ReplaySender;
  determinantSender?: DeterminantSender;
}

/**
 * The attempt a subtask's channels carry (producer attempt, lineage, replay and determinant
 * requests). Without restarts inside units it is the unit's attempt. A unit that may restart a
 * subtask alone numbers them `unit attempt × 1000 + restarts`: above every earlier incarnation's,
 * below the next unit attempt's (a unit restarts a subtask at most MAX_SUBTASK_RESTARTS times).
 */
export function subtaskAttempt(unitAttempt: number, restarts: number, restartsInUnit: boolean): number {
  return restartsInUnit ? unitAttempt * SUBTASK_ATTEMPTS_PER_UNIT_ATTEMPT + restarts : unitAttempt;
}
export const SUBTASK_ATTEMPTS_PER_UNIT_ATTEMPT = 1000;
/** Restarts of one subtask inside one unit attempt; the next failure fails the unit. */
export const MAX_SUBTASK_RESTARTS = 3;

export class ZombieUnitError extends Error {
  override name = 'ZombieUnitError';
}

/** How a unit's run ends: a final status, or handed over to its next invocation. */
export type UnitOutcome = UnitStatus | 'HANDED_OVER';

export class TaskUnit {
  /** One runner per hosted subtask; a subtask restarted in the unit gets a new one in its place. */
  readonly runners: SubtaskRunner[];
  /** Restarts inside the unit, per subtask id. */
  private readonly restarts = new Map<string, number>();
  private stopped = false;
  /** Aborted when the unit ends: its control long poll does not hold the end up. */
  private readonly ending = new AbortController();
  /** The unit was told to stop (or a subtask failed for good): nothing restarts. */
  private cancelling = false;
  private control: Promise<void> = Promise.resolve();
  /** A hand-over has begun: control messages are no longer read (the successor reads them). */
  private handingOver = false;
  private readonly owner: string;
  /** This process's request counts when the unit started (a warm Lambda container keeps counting). */
  private readonly requestsAtStart: Record<string, number>;
  private readonly log: Logger;

  constructor(private readonly options: TaskUnitOptions) {
    this.owner = options.owner ?? randomUUID();
    this.log = options.logger ?? silentLogger;
    this.requestsAtStart = { ...options.requestCounts?.() };
    for (const id of options.subtasks) {
      const { taskId, index } = parseSubtaskId(id);
      const task = options.graph.tasks.find((t) => t.id === taskId);
      if (!task || index >= task.parallelism) throw new Error(`unit ${options.unitId}: job has no subtask '${id}'`);
    }
    this.subtaskChannels = options.observeInputs ? options.observeInputs(options.mux ?? options.channels) : (options.mux ?? options.channels);
    // A subtask restarted in its unit before a hand-over goes on as that incarnation.
    for (const [id, h] of options.resume ?? []) if (h.restarts) this.restarts.set(id, h.restarts);
    this.runners = options.subtasks.map((id) =>
      this.runner(id, {
        attempt: subtaskAttempt(options.attempt, this.restarts.get(id) ?? 0, options.restartSubtask !== undefined),
        checkpoints: this.restarts.has(id) ? options.checkpoints?.forIncarnation(this.restarts.get(id)!) : options.checkpoints,
        restore: options.restore?.get(id),
        restoreUnion: options.restoreUnion?.get(id),
        resume: options.resume?.get(id),
        ...(options.replaySender ? { replaySender: options.replaySender } : {}),
        ...(options.determinantSender ? { determinantSender: options.determinantSender } : {}),
      }),
    );
  }

  /** What the subtasks write to and read from: the multiplexed channels, or their own queues. */
  private readonly subtaskChannels: ChannelTransport;

  /** A runner of subtask `id`, with what differs between its first start and a restart in the unit. */
  private runner(
    id: string,
    start: Pick<SubtaskEnvironment, 'attempt' | 'checkpoints' | 'restore' | 'restoreUnion' | 'resume' | 'replaySender' | 'determinantSender'>,
  ): SubtaskRunner {
    const { options } = this;
    const { taskId, index } = parseSubtaskId(id);
    const task = options.graph.tasks.find((t) => t.id === taskId)!;
    const { mux } = options;
    return new SubtaskRunner({
      ...start,
      jobId: options.jobId,
      graph: options.graph,
      task,
      index,
      queuePrefix: options.queuePrefix,
      channels: this.subtaskChannels,
      blobs: options.blobs,
      gate: options.gate,
      generation: options.generation ?? 0,
      minAttempt: options.minAttempt,
      ...(options.groupsStartAtZero ? { groupsStartAtZero: true } : {}),
      ...(options.inflightLog ? { inflightLog: true } : {}),
      ...(options.exactOnce ? { exactOnce: true } : {}),
      ...(options.lingerMs !== undefined ? { lingerMs: options.lingerMs } : {}),
      // Multiplexed: each channel message leaves room for its envelope and part header.
      ...(mux ? { maxMessageBytes: MAX_MESSAGE_BYTES - MUX_OVERHEAD_BYTES, inputEnded: () => mux.close(id), multiplexed: true } : {}),
      replayProgress: this.replayProgress,
      onFinished: () => this.reportFinished(),
      logger: this.log.child({ subtask: id }),
    });
  }

  /**
   * Shared by the subtasks' replay requesters: none gives up (or asks again) while any of them is
   * being answered, or while the unit's poller waits for its own deletes.
   */
  private readonly replayProgress = new ReplayProgress(() => this.options.mux?.waitsForDeletes() ?? false);

  /** Runs every subtask to its end, or to a hand-over; resolves with how the unit ended. */
  async run(): Promise<UnitOutcome> {
    const { jobs, jobId, unitId, attempt } = this.options;
    const started = this.options.resume
      ? await jobs.reportUnit(jobId, unitId, attempt, { status: UNIT_LIFECYCLE.move('STARTING', 'RUNNING'), heartbeatAt: Date.now() }, this.owner)
      : await jobs.startInvocation(jobId, unitId, attempt, this.owner);
    if (!started) throw new ZombieUnitError(`unit ${unitId} attempt ${attempt} was superseded (or is run by another invocation) before it started`);
    const heartbeat = this.heartbeatLoop();
    this.control = this.controlLoop();
    const { handoverAt, mux } = this.options;
    mux?.start();
    const timer = handoverAt === undefined ? undefined : setTimeout(() => void this.beginHandover(), Math.max(0, handoverAt - Date.now()));
    // A subtask that finishes is reported at once (`onFinished`, before it lets go of its end of
    // input), not at the next heartbeat: a unit killed right after has nothing left to recover.
    const results = await Promise.all(this.runners.map((_, slot) => this.runSlot(slot)));
    clearTimeout(timer);
    const failed = this.runners.find((r) => r.status === 'failed');
    const handingOver = !failed && results.includes('handed-over') && results.every((s) => s === 'handed-over' || s === 'finished');
    // Multiplexed: everything queued goes out (barriers included) before the writers' sequence
    // numbers are handed over or the unit ends; envelopes no subtask took become visible again.
    const muxFailure = await mux?.flush().then(
      () => undefined,
      (error: unknown) => error,
    );
    await mux?.stopReceiving(handingOver);
    if (mux) this.log.info('multiplexed channels', { ...mux.stats });
    if (handingOver && muxFailure) throw muxFailure;
    // The heartbeat goes on while the state is written: a large state must not look like a dead unit.
    const handedOver = handingOver ? await this.handOver() : undefined;
    this.stopped = true;
    await Promise.allSettled([heartbeat]);
    if (handedOver) {
      this.ending.abort();
      await Promise.allSettled([this.control]);
      return handedOver;
    }
    const status = UNIT_LIFECYCLE.move('RUNNING', failed ? 'FAILED' : results.every((s) => s === 'finished') ? 'FINISHED' : 'CANCELLED');
    const error = failed ? describe(failed.error) : undefined;
    // Reported before the control loop's long poll is ended: the supervisor learns the unit's end at
    // once. What the loop still receives concerns subtasks that have ended.
    try {
      await jobs.reportUnit(jobId, unitId, attempt, { ...this.report(), status, ...(error ? { error } : {}) }, this.owner);
    } finally {
      this.ending.abort();
      await Promise.allSettled([this.control]);
    }
    if (failed) this.log.error(`subtask ${failed.id} failed: ${error}`, { subtask: failed.id, ...(failed.error instanceof Error ? { error: failed.error } : {}) });
    return status;
  }

  /**
   * Runs the subtask of one slot to its end. Under single-point recovery a subtask that fails is
   * restarted alone in its slot (`restartSubtask`): its inboxes drop what arrives while it is down
   * (its producers replay it from their in-flight logs), and the new incarnation restores from its
   * region's latest checkpoint and asks for its replays, as a restarted unit's subtasks do. Without
   * a restart a failed subtask stops the unit's other subtasks: the unit fails as a whole.
   */
  private async runSlot(slot: number): Promise<SubtaskStatus> {
    for (;;) {
      const runner = this.runners[slot]!;
      const status = await runner.run();
      // Handed over: what arrives for it stays for the next invocation (stopReceiving releases it;
      // what its producers here delivered goes to the unit's queue).
      if (status === 'handed-over') this.options.mux?.handedOver(runner.id);
      else this.options.mux?.close(runner.id);
      if (status !== 'failed') return status;
      const restart = await this.restart(runner);
      if (!restart) {
        this.log.error(`subtask ${runner.id} failed: ${describe(runner.error)}; the unit stops`, { subtask: runner.id });
        this.cancel();
        return status;
      }
      this.runners[slot] = restart;
      this.options.mux?.open(runner.id);
    }
  }

  /** The new incarnation of a failed subtask, or undefined when it does not restart in the unit. */
  private async restart(failed: SubtaskRunner): Promise<SubtaskRunner | undefined> {
    const { restartSubtask } = this.options;
    if (!restartSubtask || this.stopped || this.handingOver || this.cancelling) return undefined;
    const count = (this.restarts.get(failed.id) ?? 0) + 1;
    if (count > MAX_SUBTASK_RESTARTS) return undefined;
    const plan = await restartSubtask(failed.id, failed.error, count).catch((error: unknown) => {
      this.log.error(`subtask ${failed.id} could not be restarted in its unit: ${describe(error)}`, { subtask: failed.id });
      return undefined;
    });
    if (!plan || this.stopped || this.handingOver || this.cancelling) return undefined;
    this.restarts.set(failed.id, count);
    const attempt = subtaskAttempt(this.options.attempt, count, true);
    this.log.warn(`subtask ${failed.id} failed: ${describe(failed.error)}; restarted in its unit as attempt ${attempt} (restart ${count} of ${MAX_SUBTASK_RESTARTS}), from checkpoint ${plan.restore?.checkpointId ?? 'none'}`, {
      subtask: failed.id,
      subtaskAttempt: attempt,
    });
    return this.runner(failed.id, {
      attempt,
      checkpoints: this.options.checkpoints?.forIncarnation(count),
      restore: plan.restore,
      restoreUnion: plan.restoreUnion,
      ...(plan.replaySender ? { replaySender: plan.replaySender } : {}),
      ...(plan.determinantSender ? { determinantSender: plan.determinantSender } : {}),
    });
  }

  /**
   * Starts the hand-over: control messages stay in the queue for the successor from now on (the
   * ones already received are applied first), then every subtask stops at its next safe point.
   */
  async beginHandover(): Promise<void> {
    if (this.handingOver || this.stopped) return;
    this.handingOver = true;
    await this.control;
    this.log.info('handing over to the next invocation');
    for (const r of this.runners) r.requestHandover(this.options.handoverGraceMs ?? 10_000);
  }

  /** Writes the live state, points the unit record at it, and ends this invocation. */
  private async handOver(): Promise<UnitOutcome> {
    const { jobs, jobId, unitId, attempt, blobs } = this.options;
    const generation = (this.options.generation ?? 0) + 1;
    const key = await writeHandover(blobs, {
      format: HANDOVER_FORMAT,
      jobId,
      unitId,
      attempt,
      generation,
      at: Date.now(),
      subtasks: this.runners.map((r) => ({ ...r.handoverState(), ...(this.restarts.has(r.id) ? { restarts: this.restarts.get(r.id)! } : {}) })),
      requests: this.requests(),
    });
    if (!(await jobs.recordHandover(jobId, unitId, attempt, this.owner, generation, key, this.report()))) {
      this.log.warn(`unit ${unitId} attempt ${attempt} was superseded during its hand-over; ending`);
      return 'CANCELLED';
    }
    this.log.info(`handed over to invocation ${generation}`, { nextInvocation: generation, handover: key });
    return 'HANDED_OVER';
  }

  cancel(): void {
    this.cancelling = true;
    for (const r of this.runners) r.cancel();
  }

  /** A subtask finished: the unit's record says so at once (before the subtask lets go of its end of input). */
  private async reportFinished(): Promise<void> {
    const { jobs, jobId, unitId, attempt } = this.options;
    await jobs.reportUnit(jobId, unitId, attempt, this.report(), this.owner).catch(() => undefined);
  }

  private report(): { heartbeatAt: number; stats: Record<string, SubtaskStats>; requests: Record<string, number>; transport?: TransportStats } {
    const stats: Record<string, SubtaskStats> = {};
    for (const r of this.runners) {
      // Handed over: what the next invocation continues as (the supervisor waits for 'ended' sinks).
      const status: SubtaskStatus = r.status === 'handed-over' ? r.handoverState().status : r.status;
      const restarts = this.restarts.get(r.id);
      stats[r.id] = { status, ...r.counters(), ...(restarts ? { restarts } : {}) };
    }
    // The transport's counters ride along (they alone never cause a write: see reportSignature).
    const transport = this.options.mux?.report();
    return { heartbeatAt: Date.now(), stats, requests: this.requests(), ...(transport ? { transport } : {}) };
  }

  private deleteFailuresWarned = 0;
  private receiveFailuresWarned = 0;

  /** Envelopes the transport could not delete (they come again) and receives tried again: said once per heartbeat that saw new ones. */
  private warnTransportFailures(): void {
    const mux = this.options.mux;
    if (!mux) return;
    if (mux.stats.deleteFailures !== this.deleteFailuresWarned) {
      this.log.warn(`${mux.stats.deleteFailures - this.deleteFailuresWarned} input envelope(s) could not be deleted and will come again: ${mux.lastDeleteError ?? 'unknown error'}`);
      this.deleteFailuresWarned = mux.stats.deleteFailures;
    }
    const receiveFailures = mux.stats.receiveFailures ?? 0;
    if (receiveFailures !== this.receiveFailuresWarned) {
      this.log.warn(`${receiveFailures - this.receiveFailuresWarned} receive(s) of the input queue failed and were tried again: ${mux.lastReceiveError ?? 'unknown error'}`);
      this.receiveFailuresWarned = receiveFailures;
    }
  }

  private requests(): Record<string, number> {
    const total = { ...this.options.requestsBefore };
    for (const [service, n] of Object.entries(this.options.requestCounts?.() ?? {})) total[service] = (total[service] ?? 0) + n - (this.requestsAtStart[service] ?? 0);
    return total;
  }

  /**
   * Subtask statuses as last reported, and whether any input had been read: a change is reported
   * at once, not at the next heartbeat (the first records read show a job is flowing).
   */
  private reportedStatuses = '';

  private statuses(): string {
    return `${this.runners.map((r) => r.status).join(',')}|${this.runners.some((r) => r.recordsIn > 0)}`;
  }

  /**
   * Heartbeats, adaptive: each `heartbeatMs` the unit's counters are compared with what it last
   * reported; changed, the record is written (at most that often); unchanged, only a liveness
   * heartbeat once `livenessMs` passed since the last write. A subtask's status change (a sink at
   * end of input now waits for its final commit) is written within a step, not a heartbeat later.
   * A refused write means a newer attempt exists or the job stopped this one: the unit stops.
   */
  private async heartbeatLoop(): Promise<void> {
    const { jobs, jobId, unitId, attempt } = this.options;
    const policy = new HeartbeatPolicy({
      livenessMs: this.options.livenessMs ?? 3000,
      reportMaxAgeMs: this.options.reportMaxAgeMs ?? 60_000,
      now: Date.now(),
    });
    this.reportedStatuses = this.statuses();
    while (!this.stopped) {
      await sleepUnless(this.options.heartbeatMs ?? 1000, () => this.stopped || this.statuses() !== this.reportedStatuses);
      if (this.stopped) return;
      this.reportedStatuses = this.statuses();
      this.warnTransportFailures();
      const report = this.report();
      const write = policy.next(Date.now(), `${this.reportedStatuses}|${reportSignature(report.stats)}`);
      if (write === 'none') continue;
      const current = write === 'report' ? await jobs.reportUnit(jobId, unitId, attempt, report, this.owner) : await jobs.beat(jobId, unitId, attempt);
      if (!current) {
        // A newer attempt of this unit exists, or the job stopped it: stop writing anything.
        this.log.warn(`unit ${unitId} attempt ${attempt} was superseded; stopping`);
        this.cancel();
        return;
      }
    }
  }

  /**
   * Reads the control queue. Its long poll backs off from 1 s to CONTROL_IDLE_WAIT_SECONDS while
   * nothing comes (a long poll returns as soon as a message arrives, so a trigger is not delayed),
   * never past the time to hand over; the unit's end aborts it.
   */
  private async controlLoop(): Promise<void> {
    const { channels, controlQueue: queue, handoverAt } = this.options;
    let wait = 1;
    while (!this.stopped && !this.handingOver) {
      const untilHandover = handoverAt === undefined ? Infinity : Math.floor((handoverAt - Date.now()) / 1000);
      // At least a second: a poll of 0 s answers at once (in memory without yielding to timers), and
      // a loop of them would starve the timer that starts the hand-over.
      const waitSeconds = Math.max(1, Math.min(wait, untilHandover));
      let failed: unknown;
      const messages = await channels
        .receive(queue, { max: 10, waitSeconds, visibilityTimeoutSeconds: CONTROL_VISIBILITY_SECONDS, signal: this.ending.signal })
        .catch((error: unknown) => ((failed = error), []));
      wait = messages.length > 0 ? 1 : Math.min(CONTROL_IDLE_WAIT_SECONDS, wait * 2);
      if (failed !== undefined && !this.stopped && !this.ending.signal.aborted) {
        // A failed receive (queue deleted with the job, endpoint gone) answers at once: retrying at
        // once would be a tight loop of failing calls, and in memory it starves every timer.
        this.log.warn(`control queue ${queue}: receive failed, retrying in ${waitSeconds} s: ${failed instanceof Error ? failed.message : String(failed)}`);
        await sleep(waitSeconds * 1000, undefined, { signal: this.ending.signal }).catch(() => undefined);
      }
      // Replay requests are answered together, after the rest (each goes in a group of its own, so
      // nothing orders them against the others): see replay-requests.ts.
      // A message whose handling fails is logged and the loop goes on: an exception here used to end
      // the loop without a word, and the unit ran on deaf to triggers, replay requests and cancels
      // (at P=4000, ten producer units never answered a restarted join unit's replays).
      const replays: ReplayRequest[] = [];
      for (const m of messages) {
        let message: ControlMessage;
        try {
          message = JSON.parse(m.body) as ControlMessage;
        } catch {
          this.log.error(`control queue ${queue}: dropped a message that is not JSON: ${m.body.slice(0, 120)}`);
          continue;
        }
        if (message.type === 'replay') replays.push(...message.requests);
        else await this.onControl(message).catch((error: unknown) => this.log.error(`control message ${message.type} failed: ${describe(error)}`, { type: message.type }));
      }
      if (replays.length > 0) await this.answerReplays(replays);
      if (messages.length > 0) await channels.delete(queue, messages.map((m) => m.receipt)).catch(() => undefined);
    }
  }

  /** Which replay requests' channels are still to answer (the newest request of each, once). */
  private readonly replayFilter = new ReplayRequestFilter();
  /** Replay requests whose answer could not be sent (logged; their consumers ask again). */
  replayAnswersFailed = 0;

  /**
   * Every subtask of the unit that writes a requested edge and is asked answers with its own
   * channel, all at once: answers to one consumer unit share envelopes (a retry asks only the
   * producers that were silent; the others' answers are on their way).
   */
  private async answerReplays(requests: readonly ReplayRequest[]): Promise<void> {
    const wanted = this.replayFilter.take(requests);
    await Promise.all(
      wanted.map(async (request) => {
        const producers = this.runners.filter(
          (r) => parseSubtaskId(r.id).index in request.from && this.options.graph.tasks.some((t) => t.id === r.taskId && t.outputs.some((e) => e.id === request.edgeId)),
        );
        const sent = await Promise.all(producers.map((r) => r.replay(request))).catch((error: unknown) => {
          // Its channels stay silent at the consumer, which asks again under a new request number
          // (this filter takes a newer request); not answering is never silent here.
          this.replayAnswersFailed++;
          this.log.warn(`could not answer the replay of edge ${request.edgeId} to consumer ${request.consumer} (attempt ${request.consumerAttempt}, request ${request.request}): ${describe(error)}; the consumer asks again`, {
            edgeId: request.edgeId,
            consumer: request.consumer,
            consumerAttempt: request.consumerAttempt,
            request: request.request,
          });
          return undefined;
        });
        if (!sent) return;
        this.log.info(
          `replayed edge ${request.edgeId} to consumer ${request.consumer} (attempt ${request.consumerAttempt}, request ${request.request}): ` +
            `${sent.reduce((n, k) => n + k, 0)} record(s) from ${producers.map((r) => r.id).join(', ') || 'no subtask of this unit'}`,
          { edgeId: request.edgeId, consumer: request.consumer, consumerAttempt: request.consumerAttempt, request: request.request },
        );
      }),
    );
    // A storm shows here: requests that came again before they were answered.
    if (wanted.length < requests.length) this.log.info(`replay requests: ${requests.length - wanted.length} of ${requests.length} superseded or repeated, not answered again`);
  }

  private async onControl(message: ControlMessage): Promise<void> {
    const targets = (ids: string[]) => this.runners.filter((r) => ids.includes(r.id));
    this.log.debug(`control message ${message.type}`, 'checkpointId' in message ? { checkpointId: message.checkpointId } : undefined);
    switch (message.type) {
      case 'cancel':
        if (message.attempt === undefined || message.attempt === this.options.attempt) this.cancel();
        return;
      case 'triggerCheckpoint':
        return targets(message.subtasks).forEach((r) => r.triggerCheckpoint(message.checkpointId));
      case 'checkpointComplete':
        return targets(message.subtasks).forEach((r) => r.checkpointComplete(message.checkpointId));
      case 'commitFinal':
        return targets(message.subtasks).forEach((r) => r.commitFinal());
      case 'checkpointAborted':
        return targets(message.subtasks).forEach((r) => r.abortCheckpoint(message.checkpointId));
      case 'replay':
        return this.answerReplays(message.requests);
      case 'determinants': {
        // Each subtask of the unit that reads the producer fences its older attempts and answers with what it holds.
        const { request } = message;
        const answers = this.runners.map((r) => ({ consumer: r.id, answer: r.answerDeterminants(request) }));
        // One object for the unit's consumers (not one per consumer subtask: P x restarted producers at scale).
        const given = answers.flatMap(({ consumer, answer }) => (answer ? [{ consumer, ...answer }] : []));
        if (given.length > 0) await this.options.blobs.put(determinantAnswerKey(this.options.jobId, request.producer, request.attempt, this.options.unitId), JSON.stringify({ answers: given }));
        this.log.info(`answered ${request.producer} attempt ${request.attempt} with its determinants from ${request.from}`, {
          producer: request.producer,
          producerAttempt: request.attempt,
          answers: answers.filter((a) => a.answer).map((a) => `${a.consumer}:${a.answer!.steps.length}`),
        });
        return;
      }
      default:
        return this.options.onControl?.(message);
    }
  }
}

/**
 * Checkpoint progress in a subtask's stats: it changes every second while a checkpoint aligns
 * (`aligning`: the channels still waited for, events held) and as each subtask takes it
 * (`lastCheckpoint`). Nothing reads it from the record promptly (the coordinator reads
 * acknowledgements; a stuck job's report reads it minutes later; a finished subtask's is written
 * with its status change), so it rides along with the next report instead of causing one: a
 * unit's record is large (up to ~100 KB at P=4000, billed 1 write unit per KB), and rewriting it
 * each second of every checkpoint was most of a checkpoint's DynamoDB writes (docs/scale.md).
 */
const CHECKPOINT_PROGRESS: ReadonlySet<string> = new Set(['lastCheckpoint', 'aligning']);

/** What of a unit's subtask stats decides whether its record is written now: all but checkpoint progress. */
export function reportSignature(stats: Record<string, SubtaskStats>): string {
  return JSON.stringify(stats, (key, value: unknown) => (CHECKPOINT_PROGRESS.has(key) ? undefined : value));
}

/**
 * Which heartbeat write a unit makes now: its record ('report') when its counters changed since
 * the last report or the report is `reportMaxAgeMs` old; a liveness heartbeat ('beat') when
 * nothing was written for `livenessMs`; otherwise nothing. An idle unit hosting many subtasks
 * thus writes one small item every `livenessMs`, not its record of every subtask each second.
 */
export class HeartbeatPolicy {
  private reported: string | undefined;
  private reportedAt: number;
  private wroteAt: number;

  constructor(private readonly options: { livenessMs: number; reportMaxAgeMs: number; now: number }) {
    this.reportedAt = options.now;
    this.wroteAt = options.now;
  }

  next(now: number, stats: string): 'report' | 'beat' | 'none' {
    if (stats !== this.reported || now - this.reportedAt >= this.options.reportMaxAgeMs) {
      this.reported = stats;
      this.reportedAt = this.wroteAt = now;
      return 'report';
    }
    if (now - this.wroteAt >= this.options.livenessMs) {
      this.wroteAt = now;
      return 'beat';
    }
    return 'none';
  }
}

async function sleepUnless(ms: number, stop: () => boolean): Promise<void> {
  const step = 100;
  for (let waited = 0; waited < ms && !stop(); waited += step) await sleep(step);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
