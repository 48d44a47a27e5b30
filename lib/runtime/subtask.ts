/**
 * One running subtask: reads its source or its input gate, pushes records through its operator
 * chain, writes to its record writers, and takes part in checkpoints:
 *
 * - a source takes a trigger between two polls: it snapshots its offsets, then sends barrier N;
 * - any other subtask aligns barrier N across its open input channels (events that arrive on a
 *   channel after its barrier wait in memory), snapshots, forwards the barrier, then goes on;
 * - a sink stages its output under N and commits every staged transaction up to N when the
 *   coordinator says N is complete for its region.
 *
 * At end of input a sink stages its last output and waits for `commitFinal`, sent once every
 * subtask of its region has ended, so no output becomes visible that a region restart would
 * produce again.
 *
 * `SubtaskRunner` is the composition root of those jobs, each in its own room: the source loop
 * (source-driver.ts) or the input loop (input-driver.ts, with the barrier aligner,
 * barrier-aligner.ts), the output writers (subtask-output.ts), the sink's transactions
 * (sink-ledger.ts) and the state a snapshot or a hand-over captures (state-capture.ts). It owns
 * the lifecycle: restore or resume, run, finish, hand over.
 */
import type { Json, RuntimeContext, SourceFunction } from '../api/functions';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { Clock } from '../ports/clock';
import { CARRIED_COUNTERS } from '../ports/unit-records';
import type { ExecutionEdge, ExecutionGraph, TaskVertex } from '../graph/execution-graph';
import { consumersOf as consumerIndexesOf, subPartitionQueue, subPartitionQueues, subtaskId } from '../graph/execution-graph';
import type { CheckpointIO, SubtaskSnapshot } from './checkpoint-io';
import type { ChannelCounters, EdgeCounters, SubtaskHandover } from './handover';
import { InputDriver } from './input-driver';
import { InputGate } from './input-gate';
import { END_OF_TIME, OperatorChain } from './operator-chain';
import { RecordWriter, type SubPartitionGate } from './record-writer';
import { SinkLedger, finalCommitKey, type FinalCommitRecord } from './sink-ledger';
import { SourceDriver } from './source-driver';
import { captureState, type StatefulParts } from './state-capture';
import type { DeterminantRequest, ReplayRequest } from './messages';
import type { Logger } from '../ports/telemetry';
import { finalLogKey, logSpill, type FinalLog } from './replay';
import { ReplayRequester, type ReplayProgress, type ReplaySender } from './replay-requester';
import { DeterminantLog, type Step } from './determinants';
import { collectDeterminants, type DeterminantSender } from './determinant-requester';
import { SubtaskOutput } from './subtask-output';
import { ReadBases, rereadChannel } from './source-reread';
import type { LoggedMessage } from './inflight-log';
import { UnionStateBackend } from './union-state';

export type SubtaskStatus = 'created' | 'running' | 'ended' | 'finished' | 'failed' | 'cancelled' | 'handed-over';

export interface SubtaskEnvironment {
  jobId: string;
  graph: ExecutionGraph;
  task: TaskVertex;
  index: number;
  attempt: number;
  queuePrefix: string;
  channels: ChannelTransport;
  blobs: BlobStore;
  gate?: SubPartitionGate;
  /** Snapshots and acknowledgements; without it barriers pass through unaligned. */
  checkpoints?: CheckpointIO;
  /** State to start from (the region's restore point). */
  restore?: SubtaskSnapshot;
  /** Live state handed over by the previous invocation of this attempt (instead of `restore`). */
  resume?: SubtaskHandover;
  /** Invocation of this attempt (0 first; +1 per hand-over). */
  generation?: number;
  /**
   * Union list state to start from: name -> the entries of every subtask of this task at their
   * regions' restore points (see unit-host). Restored before any operator opens. May be shared by
   * the subtasks of one unit: each subtask restores a copy.
   */
  restoreUnion?: Record<string, Json[]>;
  /** Lowest producer attempt accepted per input channel. */
  minAttempt?: (edgeId: string, producer: number) => number;
  /** Region and full failover: producers restart with their consumers (see InputGateOptions.groupsStartAtZero). */
  groupsStartAtZero?: boolean;
  /**
   * Keep in-flight logs of what the writers send until the consumers' next checkpoint completes,
   * for restarted consumers (single-point recovery: see replay.ts).
   */
  inflightLog?: boolean;
  /**
   * This consumer restarted alone (single-point recovery): it asks its producers for what its dead
   * attempt consumed after the checkpoint it restores from, through this, before it reads on.
   */
  replaySender?: ReplaySender;
  /** The unit's replay progress, shared by its subtasks' requesters (see ReplayProgress). */
  replayProgress?: ReplayProgress;
  /**
   * Exactly-once single-point recovery (single-exact): every task numbers its output in one lineage
   * continued from its checkpoint (as sources do), and an inner task records the order it takes its
   * input in as determinants that travel with its output (determinants.ts).
   */
  exactOnce?: boolean;
  /** A restarted inner task (single-exact) asks its consumers for its determinants through this. */
  determinantSender?: DeterminantSender;
  /** Channel messages are packed up to this many bytes (default MAX_MESSAGE_BYTES; less when multiplexed). */
  maxMessageBytes?: number;
  /**
   * The channels are multiplexed (channel-mux.ts): the unit settles what a subtask takes, so its
   * input gate extends no visibility, and takes up to MUX_RECEIVE_MAX messages a batch from its
   * inbox instead of SQS's 10 (a join subtask at P=4000 takes 8000 barriers per checkpoint).
   */
  multiplexed?: boolean;
  /**
   * Called once the input loop has ended (every input channel ended; not for a hand-over): what
   * still arrives for this subtask is stale (the unit's multiplexed inboxes drop it from then on).
   */
  inputEnded?: () => void;
  /** Records a source reads per poll. */
  sourceBatchSize?: number;
  /** Longest time records wait in a writer buffer before they are sent. */
  lingerMs?: number;
  /** Time for the input gate's visibility extension and gap timeouts (tests move it). */
  clock?: Clock;
  /** Where the subtask logs (replays asked for and answered from S3). */
  logger?: Logger;
  /**
   * Called once the subtask has finished (status `finished`, output and end of input sent on) and
   * before it deletes the end-of-input messages it held: the unit reports itself there, so a kill
   * in between leaves a unit recorded finished, not one restarted into a queue whose end of input
   * is gone (it would wait for it forever).
   */
  onFinished?: () => Promise<void>;
}

/**
 * Most input channels a subtask's counters list (`channels`). They go into its unit's record, one
 * DynamoDB item of at most 400 KB: after a restart at parallelism 4000 every one of a join
 * subtask's 8000 channels can have counts (about 90 bytes each), and a unit hosts 100 subtasks.
 */
export const CHANNELS_REPORTED = 16;

/** Most channel messages an input gate takes from a multiplexed inbox per batch. */
export const MUX_RECEIVE_MAX = 500;

export interface SubtaskCounters {
  recordsIn: number;
  recordsOut: number;
  dropped: number;
  /** Input messages dropped as redeliveries of a sequence number already delivered. */
  duplicates: number;
  fenced: number;
  /** Input records dropped as already processed (a restored source replaying them). */
  duplicateRecords: number;
  /** Input records never seen: a channel's record position jumped (see messages.ts). */
  missingRecords: number;
  /** Input records processed from messages received before (re-read after this subtask restarted). */
  replayedRecords: number;
  /** Input records a restarted producer sends again (what this consumer took of its dead attempt after its restore point). */
  regeneratedRecords: number;
  /** Input records skipped for good that no producer counts (a replay could not give them; a restored source forgot their drop): lost, part of `missingRecords`. */
  unreplayedRecords: number;
  /** Output records sent again to restarted consumers from the in-flight logs. */
  resentRecords: number;
  /** Input deletes whose receipt had expired (the message came again). */
  expiredReceipts: number;
  /** Input messages that came before an earlier one of their channel and waited for it. */
  reordered: number;
  /**
   * Per input channel (edge/producer), the channels with non-zero record counters: at most
   * CHANNELS_REPORTED of them, those with the most records counted (the subtask's totals above
   * count every channel).
   */
  channels?: Record<string, ChannelCounters>;
  /** Channels with non-zero counters left out of `channels`. */
  channelsOmitted?: number;
  /** Per input edge with any: missing, unreplayed and regenerated records over all its channels. */
  edges?: Record<string, EdgeCounters>;
  lastCheckpoint: number;
  /**
   * A barrier alignment in progress: the checkpoint, the channels it still waits for (the first
   * few; `waiting` counts them when there are more), events held.
   */
  aligning?: { checkpointId: number; waitingFor: string[]; waiting?: number; held: number };
  /** Channels (edge/producer) still open. */
  openChannels?: number;
  /** When few are open (at most 4) and no input came for a while, what each waits for (InputGate.describeOpen). */
  openDetail?: string[];
  /** Restarted alone: input channels whose replay has not come yet (see replay.ts), as of the requester's last look. */
  replaysAwaited?: number;
  /** Its input ended and it is finishing: the step it is in (a stuck job's report names it). */
  ending?: string;
}

/** No input for this long with few channels open: the counters say what those channels wait for. */
const STALL_DETAIL_MS = 15_000;

/** Under single-exact, how often an inner task's recorded processing time moves without a timer due (state TTL, currentProcessingTime). */
const PROCESSING_TIME_STEP_MS = 1000;

export class SubtaskRunner {
  readonly id: string;
  readonly taskId: string;
  status: SubtaskStatus = 'created';
  error: unknown;
  private readonly output: SubtaskOutput;
  private readonly chain: OperatorChain;
  private readonly source: SourceFunction<Json> | undefined;
  /** Union list state of this subtask, shared by the operators of its chain. */
  private readonly union = new UnionStateBackend();
  /** The loop: a source's, or the input gate's for any other subtask (exactly one of the two). */
  private readonly sourceDriver: SourceDriver | undefined;
  private readonly input: InputDriver | undefined;
  /** Transactions of the chained sink, if the task ends in one. */
  private readonly ledger: SinkLedger | undefined;
  /** The counters of the attempt whose final record this one committed again (see `finishRecordedFinal`). */
  private recorded: SubtaskCounters | undefined;
  /** Input progress as last reported (see `inputStalled`). */
  private stall = { recordsIn: 0, since: Date.now() };
  private cancelled = false;
  /** Newest checkpoint taken here, restored from, or given up (aborted, declined at a hand-over). */
  private lastCheckpoint = 0;
  private finalCommit: (() => void) | undefined;
  private finalCommitRequested = false;
  /** Hand-over asked for: stop at the next safe point, waiting at most until `deadline` for an alignment. */
  private handover: { deadline: number } | undefined;
  /** The state left for the next invocation, once handed over. */
  private handedOver: SubtaskHandover | undefined;
  /** A restarted consumer's replay requests (single-point recovery). */
  private replays: ReplayRequester | undefined;
  /** The order this inner task takes its input in (single-exact), carried by its output. */
  private readonly determinants: DeterminantLog | undefined;
  /** Producers whose older attempts to fence once the input gate exists (asked before it started). */
  private readonly pendingFences: DeterminantRequest[] = [];
  /** A source with in-flight logs: where it can read again from, per checkpoint (source-reread.ts). */
  private readonly bases: ReadBases | undefined;

  constructor(private readonly env: SubtaskEnvironment) {
    const { task, index, graph } = env;
    this.id = subtaskId(task.id, index);
    this.taskId = task.id;
    const parallelism = new Map(graph.tasks.map((t) => [t.id, t.parallelism]));
    const head = task.operators[0]!;
    this.determinants = env.exactOnce && task.inputs.length > 0 && task.outputs.length > 0 ? new DeterminantLog() : undefined;
    this.bases = head.kind === 'source' && env.inflightLog && task.outputs.length > 0 ? new ReadBases() : undefined;
    const writers = task.outputs.map(
      (edge) =>
        new RecordWriter({
          edge,
          producerIndex: index,
          consumerParallelism: parallelism.get(edge.to)!,
          attempt: env.attempt,
          queueOf: subPartitionQueues(env.queuePrefix, env.jobId, edge.id),
          transport: env.channels,
          gate: env.gate,
          // A source's records are a function of its offsets: one lineage for all its attempts,
          // continued from a checkpoint (restore). Other tasks number each attempt on its own,
          // except under single-exact, where their determinants make their output a function too.
          lineage: head.kind === 'source' || env.exactOnce ? 0 : env.attempt,
          inflightLog: env.inflightLog === true,
          ...(env.inflightLog ? { logSpill: logSpill(env.blobs, env.jobId, edge.id, index, env.attempt) } : {}),
          ...(env.maxMessageBytes !== undefined ? { maxMessageBytes: env.maxMessageBytes } : {}),
          ...(this.determinants ? { determinants: this.determinants } : {}),
          ...(this.bases ? { regenerate: (consumer: number, lineage: number, from: number, to: number) => this.reread(edge.id, consumer, lineage, from, to) } : {}),
        }),
    );
    this.output = new SubtaskOutput(this.id, writers, env.lingerMs);
    this.chain = new OperatorChain(task, writers);
    if (this.determinants) this.chain.recordProcessingTime(Date.now());
    this.ledger = this.chain.sink && new SinkLedger(this.chain.sink);
    const commitCompleted = async () => {
      // Processing-time timers fire between batches; what they emit goes out at once.
      if (this.tickProcessingTime() > 0) await this.output.flush();
      await this.ledger?.commitCompleted();
    };
    if (head.kind === 'source') {
      this.source = head.source!();
      this.sourceDriver = new SourceDriver(
        this.source,
        this.chain,
        this.output,
        {
          checkpoint: (id) => this.checkpoint(id),
          betweenBatches: commitCompleted,
          cancelled: () => this.cancelled,
          handoverRequested: () => this.handover !== undefined,
        },
        env.sourceBatchSize,
      );
    } else {
      this.input = new InputDriver(
        this.chain,
        this.output,
        {
          cancelled: () => this.cancelled,
          handover: () => this.handover,
          betweenBatches: async () => {
            await commitCompleted();
            if (this.replays && this.input?.gate) await this.replays.tick(this.input.gate);
          },
        },
        env.checkpoints && {
          lastCheckpoint: () => this.lastCheckpoint,
          passed: (id) => void (this.lastCheckpoint = Math.max(this.lastCheckpoint, id)),
          checkpoint: (id) => this.checkpoint(id),
          decline: (id, reason) => env.checkpoints!.decline(id, this.id, reason),
        },
      );
    }
  }

  /**
   * True when a few channels (1-4) are open and no record came in for STALL_DETAIL_MS: then the
   * counters say what those channels wait for. Not sooner, so unit records of a healthy job stay small.
   */
  private inputStalled(open: number): boolean {
    const now = Date.now();
    if (this.driver.recordsIn !== this.stall.recordsIn) this.stall = { recordsIn: this.driver.recordsIn, since: now };
    return open > 0 && open <= 4 && now - this.stall.since >= STALL_DETAIL_MS;
  }

  /** The step of `finish` it is in, while its status is still 'running'. */
  private ending: string | undefined;

  /** Records read so far (what `counters()` reports, without going over the input channels). */
  get recordsIn(): number {
    return this.driver.recordsIn;
  }

  counters(): SubtaskCounters {
    // Finished from a dead attempt's final record: what that attempt counted up to its end, less
    // what the unit record already carries over from it (CARRIED_COUNTERS, counted from 0 again).
    if (this.recorded) return { ...this.recorded, ...Object.fromEntries(CARRIED_COUNTERS.map((k) => [k, 0])), lastCheckpoint: this.lastCheckpoint };
    const gate = this.input?.gate;
    const channels = gate?.channelCounters(CHANNELS_REPORTED);
    const omitted = gate ? gate.countedChannels() - Object.keys(channels ?? {}).length : 0;
    const edges = gate?.edgeCounters() ?? {};
    const aligning = this.input?.alignment();
    return {
      recordsIn: this.driver.recordsIn,
      recordsOut: this.chain.recordsOut,
      dropped: this.output.dropped,
      ...this.gateCounters(),
      ...(channels && Object.keys(channels).length > 0 ? { channels } : {}),
      ...(omitted > 0 ? { channelsOmitted: omitted } : {}),
      ...(Object.keys(edges).length > 0 ? { edges } : {}),
      lastCheckpoint: this.lastCheckpoint,
      ...(aligning ? { aligning } : {}),
      ...(gate ? { openChannels: gate.openCount() } : {}),
      ...(this.replays && this.replays.awaiting > 0 ? { replaysAwaited: this.replays.awaiting } : {}),
      ...(gate && this.inputStalled(gate.openCount()) ? { openDetail: gate.describeOpen() } : {}),
      ...(this.ending !== undefined && this.status === 'running' ? { ending: this.ending } : {}),
    };
  }

  cancel(): void {
    this.cancelled = true;
    this.sourceDriver?.interrupt();
    this.finalCommit?.();
  }

  /** Source subtasks: take checkpoint N at the next opportunity. */
  triggerCheckpoint(checkpointId: number): void {
    if (this.sourceDriver && checkpointId > this.lastCheckpoint) this.sourceDriver.trigger(checkpointId);
  }

  /**
   * Fires the processing-time timers that are due; returns how many fired. Under single-exact an
   * inner task's processing time moves by recorded steps only (determinants.ts): a step when a
   * timer is due or at least PROCESSING_TIME_STEP_MS have passed, and timers fire only right after
   * one, so a restarted attempt following the steps fires them at the same records. While it still
   * follows its dead attempt's steps, nothing moves here.
   */
  private tickProcessingTime(): number {
    if (!this.determinants) return this.chain.advanceProcessingTime();
    if (this.input?.followingDeterminants) return 0;
    const wall = Date.now();
    const due = this.chain.nextProcessingTimer();
    if (wall - this.chain.processingTime < PROCESSING_TIME_STEP_MS && (due === undefined || due > wall)) return 0;
    this.determinants.processingTime(wall);
    this.chain.setProcessingTime(wall);
    return this.chain.advanceProcessingTime();
  }

  /** The coordinator completed N for this subtask's region: commit staged output up to N, trim the in-flight logs and determinants. */
  checkpointComplete(checkpointId: number): void {
    this.ledger?.complete(checkpointId);
    this.output.trimLogs(checkpointId);
    this.bases?.complete(checkpointId);
    this.determinants?.trim(checkpointId);
    this.input?.gate?.determinants.trim(checkpointId);
    // A source may tell its broker (a Kafka consumer group's offsets, for lag monitoring): never needed for recovery.
    if (this.source?.checkpointComplete) {
      Promise.resolve()
        .then(() => this.source!.checkpointComplete!(checkpointId))
        .catch((error: unknown) => this.env.logger?.warn('source could not act on a completed checkpoint', { subtask: this.id, checkpointId, error: String(error) }));
    }
  }

  /**
   * A restarted producer of this subtask's input asks for its determinants (single-exact): from now
   * on its older attempts are fenced off this subtask's channels, and the steps held for it are
   * the answer (`undefined` when this subtask does not read from it).
   */
  answerDeterminants(request: DeterminantRequest): { first: number; steps: Step[] } | undefined {
    const task = request.producer.slice(0, request.producer.lastIndexOf('#'));
    if (!this.env.task.inputs.some((e) => e.from === task)) return undefined;
    const gate = this.input?.gate;
    if (!gate) {
      this.pendingFences.push(request);
      return { first: request.from, steps: [] };
    }
    gate.fenceProducer(request.producer, request.attempt);
    return gate.determinants.from(request.producer, request.from);
  }

  /** A restarted consumer asks for its channels of one output edge again (see replay.ts). */
  replay(request: ReplayRequest): Promise<number> {
    return this.output.replay(request);
  }

  /** Records [from, to) of one output channel, read again from the newest read base before them (source-reread.ts). */
  private async reread(edgeId: string, consumer: number, lineage: number, from: number, to: number): Promise<LoggedMessage[]> {
    const base = this.bases?.find(edgeId, lineage, consumer, from);
    if (!base) {
      this.env.logger?.warn(`cannot read ${edgeId} channel ${consumer} again from record ${from}: no checkpoint kept is that old`, { edgeId, consumer, from, to });
      return [];
    }
    const parallelism = new Map(this.env.graph.tasks.map((t) => [t.id, t.parallelism]));
    const messages = await rereadChannel({
      task: this.env.task,
      index: this.env.index,
      parallelism: (taskId) => parallelism.get(taskId)!,
      context: this.context(),
      base,
      edgeId,
      consumer,
      from,
      to,
      ...(this.env.sourceBatchSize !== undefined ? { batchSize: this.env.sourceBatchSize } : {}),
      ...(this.env.maxMessageBytes !== undefined ? { maxMessageBytes: this.env.maxMessageBytes } : {}),
    });
    const got = messages.reduce((n, m) => n + m.count, 0);
    this.env.logger?.info(`read ${edgeId} channel ${consumer} again from checkpoint ${base.checkpointId}: records ${from}..${to - 1} for a replay its log no longer held (${got} regenerated)`, { edgeId, consumer, from, to, checkpointId: base.checkpointId, regenerated: got });
    return messages;
  }

  /** The coordinator gave checkpoint N up for this region: stop aligning it. */
  abortCheckpoint(checkpointId: number): void {
    this.input?.abort(checkpointId);
  }

  /**
   * The unit must end soon: stop at the next safe point and keep the live state for the next
   * invocation. A barrier alignment in progress may finish within `graceMs`; after that its
   * checkpoint is declined (the region's next checkpoint covers it).
   */
  requestHandover(graceMs: number): void {
    this.handover = { deadline: Date.now() + graceMs };
    this.sourceDriver?.interrupt();
    this.finalCommit?.();
  }

  /** What the next invocation continues from (after `run` resolved 'handed-over' or 'finished'). */
  handoverState(): SubtaskHandover {
    if (this.handedOver) return this.handedOver;
    if (this.status !== 'finished') throw new Error(`subtask ${this.id} is ${this.status}: nothing to hand over`);
    return {
      subtask: this.id,
      status: 'finished',
      lastCheckpoint: this.lastCheckpoint,
      watermark: this.chain.currentWatermark,
      sinkPending: [],
      triggers: [],
      writers: [],
      channels: [],
      counters: this.handoverCounters(),
    };
  }

  /** Every subtask of this region has ended: the last staged output may become visible. */
  commitFinal(): void {
    this.finalCommitRequested = true;
    this.finalCommit?.();
  }

  async run(): Promise<SubtaskStatus> {
    this.status = 'running';
    try {
      // Union state first: operators read it when they open. A copy, since the union may be shared.
      // A hand-over carries this subtask's live union state instead.
      const union = this.env.resume ? this.env.resume.union : this.env.restoreUnion;
      if (union) this.union.restore(structuredClone(union));
      const ctx = this.context();
      await this.chain.open(ctx);
      if (this.source) await this.source.open(ctx);
      const resume = this.env.resume;
      if (resume) this.resume(resume);
      else if (this.env.restore) await this.restore(this.env.restore);
      // A restarted inner task numbers its output in a lineage of its own: its consumers learn from
      // which checkpoint, and count what it sends them again (a source continues its lineage, and
      // under single-exact every task does).
      if (!resume && !this.source && !this.env.exactOnce && this.env.attempt > 0) this.output.announceRestart(this.env.restore?.checkpointId ?? 0, this.env.restore?.writers ?? []);
      if (resume?.status === 'finished' || (!resume && this.ledger && (await this.finishRecordedFinal()))) {
        this.status = 'finished';
        await this.env.onFinished?.();
        return this.status;
      }
      if (resume?.status === 'ended') {
        this.status = 'ended';
        await this.awaitFinalCommit(resume.finalStaged);
      } else {
        const quiesced = this.sourceDriver ? await this.sourceDriver.run() : await this.runInputs();
        if (!quiesced && this.input) this.env.inputEnded?.();
        if (this.cancelled) return (this.status = 'cancelled');
        if (quiesced) {
          await this.keepForHandover('running');
          return (this.status = 'handed-over');
        }
        await this.finish();
        if (!this.handedOver && !this.cancelled) {
          this.status = 'finished';
          await this.env.onFinished?.();
          await this.input?.deleteEnds();
        }
      }
      if (this.handedOver) return (this.status = 'handed-over');
      return (this.status = this.cancelled ? 'cancelled' : 'finished');
    } catch (error) {
      this.error = error;
      return (this.status = 'failed');
    } finally {
      await this.input?.gate?.stop();
      await this.source?.close?.();
    }
  }

  /** The running loop (exactly one exists): its input count is the subtask's. */
  private get driver(): SourceDriver | InputDriver {
    return (this.sourceDriver ?? this.input)!;
  }

  private context(): RuntimeContext {
    const { env } = this;
    return {
      jobId: env.jobId,
      operatorId: env.task.operators[0]!.id,
      subtaskIndex: env.index,
      parallelism: env.task.parallelism,
      attempt: env.attempt,
      blobs: env.blobs,
      unionState: <T extends Json>(name: string) => this.union.state<T>(name),
    };
  }

  /** The input gate of a consumer, started where its restore or hand-over left its channels. */
  private runInputs(): Promise<boolean> {
    const { env } = this;
    const input = this.input!;
    const parallelism = new Map(env.graph.tasks.map((t) => [t.id, t.parallelism]));
    const gate = new InputGate({
      inputs: env.task.inputs,
      consumerIndex: env.index,
      producerParallelism: (taskId) => parallelism.get(taskId)!,
      queueOf: (edge: ExecutionEdge) => subPartitionQueue(env.queuePrefix, env.jobId, edge.id, env.index),
      transport: env.channels,
      minAttempt: env.minAttempt,
      ...(env.groupsStartAtZero ? { groupsStartAtZero: true } : {}),
      ...(env.clock ? { clock: env.clock } : {}),
      ...(env.multiplexed ? { extendVisibility: false, receiveMax: MUX_RECEIVE_MAX } : {}),
      onError: (error) => input.fail(error),
    });
    if (env.resume) {
      gate.resume(env.resume.channels, env.resume.counters);
      if (env.resume.determinantStore) gate.determinants.resume(env.resume.determinantStore);
      gate.duplicates = env.resume.counters.duplicates;
      gate.fenced = env.resume.counters.fenced;
    } else if (env.restore?.channels) {
      gate.restorePositions(env.restore.channels, env.restore.checkpointId);
    }
    return this.startInputs(gate);
  }

  /** A consumer restarted alone asks its producers for its replays first (see replay-requester.ts). */
  private async startInputs(gate: InputGate): Promise<boolean> {
    const { env } = this;
    for (const f of this.pendingFences.splice(0)) gate.fenceProducer(f.producer, f.attempt);
    this.input!.determinants = this.determinants;
    // Single-exact: a restarted inner task takes its input in its dead attempt's order first.
    if (this.determinants && env.determinantSender && !env.resume && env.attempt > 0) {
      const collected = await collectDeterminants({
        jobId: env.jobId,
        producer: this.id,
        attempt: env.attempt,
        from: this.determinants.length,
        consumers: consumersOf(env.graph, env.task, env.index),
        send: env.determinantSender,
        blobs: env.blobs,
        ...(env.logger ? { logger: env.logger } : {}),
      });
      this.input!.follow(collected.steps);
    }
    // Single-exact: the clock this attempt starts on is a step too, before any record reads it (an
    // attempt that follows steps takes its clock from them instead); a hand-over goes on with its own.
    if (this.determinants && !env.resume && !this.input!.followingDeterminants) this.determinants.processingTime(this.chain.processingTime);
    if (env.replaySender && !env.resume) {
      const parallelism = new Map(env.graph.tasks.map((t) => [t.id, t.parallelism]));
      this.replays = new ReplayRequester({
        jobId: env.jobId,
        inputs: env.task.inputs,
        consumerIndex: env.index,
        consumerAttempt: env.attempt,
        producerParallelism: (taskId) => parallelism.get(taskId)!,
        send: env.replaySender,
        blobs: env.blobs,
        ...(env.replayProgress ? { unitProgress: env.replayProgress } : {}),
        ...(env.logger ? { logger: env.logger } : {}),
      });
      await this.replays.begin(gate);
    }
    return this.input!.run(gate);
  }

  /** Restores state from the snapshot; staged output of the restored checkpoint is committed. */
  private async restore(snapshot: SubtaskSnapshot): Promise<void> {
    if (snapshot.source !== undefined) this.source?.restoreOffsets(snapshot.source);
    // Where it can read again from: the checkpoints its dead attempt's log still covered, and this one.
    this.bases?.restore(snapshot.readBases ?? []);
    if (snapshot.source !== undefined && snapshot.writers) this.bases?.add({ checkpointId: snapshot.checkpointId, source: snapshot.source, writers: snapshot.writers });
    this.bases?.complete(snapshot.checkpointId);
    // A source re-reads from its offsets: its records take the positions they had (see messages.ts).
    if (this.source || this.env.exactOnce) this.output.restorePositions(snapshot.writers ?? []);
    this.determinants?.restart(snapshot.determinants ?? 0);
    // Counters are state too: what the dead attempt counted after the checkpoint is counted again.
    this.output.restoreCounters(snapshot.writers ?? []);
    if (snapshot.keyed) this.chain.keyedState?.restore(snapshot.keyed);
    if (snapshot.processingTime !== undefined) this.chain.restoreProcessingTime(snapshot.processingTime);
    if (snapshot.watermark > Number.MIN_SAFE_INTEGER) this.chain.advanceWatermark(snapshot.watermark);
    this.lastCheckpoint = snapshot.checkpointId;
    // The restored checkpoint completed, so everything staged up to it belongs in the output.
    const staged = snapshot.sinkPending ?? [];
    if (staged.length === 0) return;
    if (!this.ledger) throw new Error(`snapshot of ${this.id} at checkpoint ${snapshot.checkpointId} holds staged sink transactions, but the subtask has no sink`);
    await this.ledger.commitRestored(staged);
  }

  /** Resumes a previous invocation's live state (see handover.ts). */
  private resume(h: SubtaskHandover): void {
    if (h.subtask !== this.id) throw new Error(`subtask ${this.id} given the hand-over of ${h.subtask}`);
    this.output.resume(h.writers);
    if (h.determinants) this.determinants?.resume(h.determinants);
    if (h.source !== undefined) this.source?.restoreOffsets(h.source);
    this.bases?.restore(h.readBases ?? []);
    if (h.keyed) this.chain.keyedState?.restore(h.keyed);
    if (h.processingTime !== undefined) this.chain.restoreProcessingTime(h.processingTime);
    // Timers up to it have fired already (they are gone from the keyed state): nothing fires twice.
    if (h.watermark > Number.MIN_SAFE_INTEGER) this.chain.advanceWatermark(h.watermark);
    this.lastCheckpoint = h.lastCheckpoint;
    this.ledger?.resume(h.sinkPending);
    for (const id of h.triggers) this.sourceDriver?.trigger(id);
    this.driver.recordsIn = h.counters.recordsIn;
    this.chain.recordsOut = h.counters.recordsOut;
  }

  private handoverCounters(): SubtaskHandover['counters'] {
    return { recordsIn: this.driver.recordsIn, recordsOut: this.chain.recordsOut, ...this.gateCounters() };
  }

  /** A subtask resumed as finished starts no input gate: its counters are the handed-over ones. */
  private gateCounters(): Omit<SubtaskCounters, 'recordsIn' | 'recordsOut' | 'dropped' | 'lastCheckpoint' | 'aligning' | 'openChannels' | 'channels'> {
    const carried = this.env.resume?.counters;
    const gate = this.input?.gate;
    const counters = gate?.counters();
    return {
      duplicates: gate?.duplicates ?? carried?.duplicates ?? 0,
      fenced: gate?.fenced ?? carried?.fenced ?? 0,
      duplicateRecords: counters?.duplicateRecords ?? carried?.duplicateRecords ?? 0,
      missingRecords: counters?.missingRecords ?? carried?.missingRecords ?? 0,
      replayedRecords: counters?.replayedRecords ?? carried?.replayedRecords ?? 0,
      regeneratedRecords: counters?.regeneratedRecords ?? carried?.regeneratedRecords ?? 0,
      unreplayedRecords: counters?.unreplayedRecords ?? carried?.unreplayedRecords ?? 0,
      resentRecords: this.output.resent + (carried?.resentRecords ?? 0),
      expiredReceipts: counters?.expiredReceipts ?? carried?.expiredReceipts ?? 0,
      reordered: counters?.reordered ?? carried?.reordered ?? 0,
    };
  }

  /** The parts whose state a snapshot or a hand-over captures. */
  private stateful(): StatefulParts {
    return { subtask: this.id, chain: this.chain, source: this.source, union: this.union, ledger: this.ledger, output: this.output, input: this.input, determinants: this.determinants, bases: this.bases };
  }

  /**
   * Keeps the live state for the next invocation. What a sink received since its last checkpoint
   * is staged as its own transaction under the next checkpoint id: it commits with that
   * checkpoint (it precedes its barrier), and is never committed if the region restores instead.
   */
  private async keepForHandover(status: 'running' | 'ended', finalStaged?: Json): Promise<void> {
    // Held events would be lost: their sequence numbers are in the handed-over channel state.
    const aligner = this.input?.aligner;
    if (aligner && (aligner.aligning || aligner.held.length > 0)) throw new Error(`subtask ${this.id}: hand-over with an alignment open (${aligner.held.length} events held)`);
    if (this.ledger && status === 'running') {
      const next = this.lastCheckpoint + 1;
      await this.ledger.stage(next, `h${next}-a${this.env.attempt}-g${this.env.generation ?? 0}`, this.chain.currentWatermark);
    }
    this.handedOver = captureState(this.stateful(), {
      status,
      lastCheckpoint: this.lastCheckpoint,
      ...(finalStaged !== undefined ? { finalStaged } : {}),
      triggers: this.sourceDriver?.triggers ?? [],
      counters: this.handoverCounters(),
    });
  }

  /** Snapshot, acknowledge, forward the barrier. */
  private async checkpoint(checkpointId: number): Promise<void> {
    const io = this.env.checkpoints;
    if (!io || checkpointId <= this.lastCheckpoint) return;
    await this.ledger?.stage(checkpointId, `c${checkpointId}-a${this.env.attempt}`, this.chain.currentWatermark);
    // Both writes take their state before their first await.
    const { task, index } = this.env;
    const snapshot = captureState(this.stateful(), { checkpointId });
    // A source can read again from here (its offsets and numbering at the barrier) until checkpoints after it complete.
    if (snapshot.source !== undefined && snapshot.writers) this.bases?.add({ checkpointId, source: snapshot.source, writers: snapshot.writers });
    const [handle, unionHandle] = await Promise.all([
      io.writeSnapshot(snapshot),
      this.union.names.length > 0 ? io.writeUnion({ checkpointId, taskId: task.id, subtaskIndex: index, parallelism: task.parallelism }, this.union) : undefined,
    ]);
    this.lastCheckpoint = checkpointId;
    const di = this.determinants?.barrier(checkpointId);
    this.output.emitEvent({ t: 'b', c: checkpointId, ...(di !== undefined ? { di } : {}) });
    await this.output.flush();
    // The snapshot first (restore reads it), then the union object: retention and discard cover both.
    await io.acknowledge(checkpointId, this.id, unionHandle ? [handle, unionHandle] : [handle]);
  }

  /**
   * End of input: fire every timer and tell the consumers. A sink stages its last output and
   * commits it (with anything still pending) once its whole region has ended.
   */
  private async finish(): Promise<void> {
    this.ending = 'firing its timers and sending its end of input';
    this.chain.advanceWatermark(END_OF_TIME);
    this.output.emitEvent({ t: 'e' });
    await this.output.flush();
    this.ending = 'writing its final logs';
    // A consumer restarting after this subtask's unit is gone reads its in-flight logs from S3.
    const { jobId, index, attempt, blobs } = this.env;
    await Promise.all(
      this.output.finalLogs().map(({ edgeId, log, restart }) => blobs.put(finalLogKey(jobId, edgeId, index, attempt), JSON.stringify({ producer: index, attempt, log, ...(restart ? { restart } : {}) } satisfies FinalLog))),
    );
    if (!this.ledger) return;
    this.ending = 'staging its last output';
    const last = await this.ledger.prepareFinal();
    this.status = 'ended';
    await this.awaitFinalCommit(last);
  }

  /** An ended sink: commits everything once its region has ended, or keeps it for a hand-over. */
  private async awaitFinalCommit(last: Json | undefined): Promise<void> {
    if (!this.finalCommitRequested && !this.handover) await new Promise<void>((resolve) => (this.finalCommit = resolve));
    if (this.cancelled) return;
    if (!this.finalCommitRequested) return this.keepForHandover('ended', last);
    const { blobs, jobId, attempt } = this.env;
    // Its counters go along: an attempt that finishes from the record reports what this one counted.
    const { aligning: _a, openChannels: _o, openDetail: _d, replaysAwaited: _r, ...counters } = this.counters();
    await this.ledger!.commitFinal(last, { blobs, key: finalCommitKey(jobId, this.id), attempt, counters: counters as unknown as Json });
  }

  /**
   * A sink whose final commit was released before (an earlier attempt wrote its final record, then
   * died before its unit was recorded finished): true once that record is committed again. Its
   * region restarted and sends its input again; none of it may become output a second time.
   */
  private async finishRecordedFinal(): Promise<boolean> {
    const body = await this.env.blobs.get(finalCommitKey(this.env.jobId, this.id));
    if (!body) return false;
    const final = JSON.parse(Buffer.from(body).toString('utf8')) as FinalCommitRecord;
    await this.ledger!.commitRecorded(final);
    if (final.counters) this.recorded = final.counters as unknown as SubtaskCounters;
    return true;
  }
}

/** Every consumer subtask of a subtask's output edges (who may hold its determinants). */
function consumersOf(graph: ExecutionGraph, task: TaskVertex, index: number): string[] {
  const parallelism = new Map(graph.tasks.map((t) => [t.id, t.parallelism]));
  const out = new Set<string>();
  for (const edge of task.outputs) {
    const consumers = parallelism.get(edge.to)!;
    for (const j of consumerIndexesOf(edge, index, consumers)) out.add(subtaskId(edge.to, j));
  }
  return [...out];
}
