/**
 * Recovery benchmark: one join subtask fails in a 4000-parallel recommendation join; what does
 * each failover strategy cost?
 *
 *   npm run bench:recovery -- [--parallelism 4000] [--seed 42] [--detect exit|heartbeat] ...  (--help)
 *
 * SIMULATED EXACTLY (the project's own code runs):
 * - the job graph: examples/jobs/recommendation-join.ts built at the given parallelism and
 *   expanded by buildExecutionGraph (tasks, hash edges, one checkpoint region);
 * - the failover: FailoverHandler (planner, AvailabilityRegistry, RecoveryMetrics, JobStore) on the
 *   in-memory metadata store, with a recording launcher and control sender;
 * - announceAvailable of every restarted unit, at its modelled up-time;
 * - every producer of the failed join subtask's inputs (all 2 x P source subtasks: the edges are
 *   all-to-all) runs its records through a real RecordWriter whose gate is a real AvailabilityView
 *   fed the real control messages at their modelled arrival times. The transport is a counting
 *   no-op (it keeps no message). Producers run one at a time, so one writer (P channel buffers) is
 *   in memory at once. Records are the job's own generated records, routed by its key selector.
 *   The window simulated in full is from `--warm-ms` before the failure until the last producer
 *   has heard that the consumer is back, plus 1 s.
 * MODELLED (stated latencies, printed below): detection, handler, control-message fan-out and
 * delivery, unit start, state restore, unit launch throughput, the checkpoint age, consumer
 * headroom for catch-up, the dead attempt's SQS leases; and everything outside the simulated
 * window (rates x time).
 */
import { commandFlags, defineFlags, type FlagValues } from '../lib/cli/flags';
import { seededRandom } from './lib/random';
import { count, markdownTable, percent, seconds } from './lib/report';
import { describeMachine, machineInfo, writeResults } from './lib/results';
import { SimClock } from './lib/sim-clock';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveParams } from '../lib/api/registry';
import type { Json } from '../lib/api/functions';
import { buildExecutionGraph, controlQueue, type ExecutionGraph } from '../lib/graph/execution-graph';
import { DEFAULT_SETTINGS, type JobView, type UnitLauncher } from '../lib/jobs/job-service';
import { JobStore, storedJob, type FailoverStrategy, type JobRecord, type UnitPlacement } from '../lib/jobs/job-store';
import { unitShardCount } from '../lib/ports/metadata-keys';
import type { UnitFailure } from '../lib/jobs/supervisor';
import { MemoryMetadataStore } from '../lib/memory/metadata-store';
import type { ChannelTransport, OutboundMessage } from '../lib/ports/channels';
import type { ControlMessage } from '../lib/runtime/messages';
import { RecordWriter } from '../lib/runtime/record-writer';
import { DeterminantLog } from '../lib/runtime/determinants';
import { AvailabilityView, type AvailabilityMessage } from '../lib/recovery/availability';
import { FailoverHandler, announceAvailable, type FailoverOutcome } from '../lib/recovery/failover-handler';
import { RecoveryMetrics, type FailureEvent } from '../lib/recovery/recovery-metrics';
import { eventAt, featureAt, joinShape, recommendationJoinJob, type JoinShape } from '../examples/jobs/recommendation-join';

// ---- flags ---------------------------------------------------------------------------------

const FLAGS = defineFlags({
  parallelism: { type: 'number', default: 4000, integer: true, min: 2, help: 'parallelism of every operator (sources, join)' },
  seed: { type: 'number', default: 42, help: 'PRNG seed (failed subtask, jitter, lease sample, flush phases)' },
  failIndex: { type: 'number', default: -1, help: 'index of the failed join subtask (-1: drawn from the seed)' },
  eventRate: { type: 'number', default: 200, help: 'behaviour events per second per events subtask' },
  featureRate: { type: 'number', default: 50, help: 'feature updates per second per features subtask' },
  users: { type: 'number', default: 999_999, help: 'distinct users (join keys)' },
  detect: { type: 'string', default: 'exit', choices: ['exit', 'heartbeat'], help: 'how the failure is seen: the exit notice, or a stale heartbeat' },
  exitNoticeMs: { type: 'number', default: 300, help: 'exit/crash notice reaching the supervisor (process exit event, ECS task state change)' },
  heartbeatMs: { type: 'number', default: 2000, help: 'unit heartbeat interval (TaskUnit default)' },
  heartbeatTimeoutMs: { type: 'number', default: 10_000, help: 'heartbeat timeout (job default)' },
  pollMs: { type: 'number', default: 500, help: 'supervisor poll interval (Supervisor default)' },
  handlerMs: { type: 'number', default: 60, help: 'failover handler store round trips before notices/launch (6 DynamoDB calls x 10 ms)' },
  controlSendsPerS: { type: 'number', default: 1500, help: 'control-message sends per second from one process (50 SDK sockets / ~33 ms per SendMessage)' },
  controlReceiveMs: { type: 'number', default: 30, help: 'control message send-to-receipt by the unit long-poll (mean; uniform 0.5x..1.5x)' },
  startMs: { type: 'number', default: 1500, help: 'unit start: process/container/Lambda cold start until it runs' },
  joinStateMb: { type: 'number', default: 64, help: 'keyed state per join subtask (restore size)' },
  sourceStateMb: { type: 'number', default: 0.01, help: 'state per source subtask (offsets)' },
  restoreMbps: { type: 'number', default: 100, help: 'S3 restore bandwidth per unit (MB/s)' },
  announceMs: { type: 'number', default: 20, help: 'announceAvailable flag writes (2 DynamoDB round trips)' },
  launchesPerS: { type: 'number', default: 100, help: 'unit launch throughput for mass restarts (Lambda: +1000 concurrency per 10 s)' },
  checkpointIntervalS: { type: 'number', default: 30, help: 'checkpoint interval' },
  checkpointAgeS: { type: 'number', default: -1, help: 'age of the last completed checkpoint at the failure (-1: interval/2, the mean)' },
  headroom: { type: 'number', default: 1.5, check: (v) => (v > 1 ? undefined : 'must be more than 1'), help: 'consumer throughput / normal input rate (for catch-up after recovery)' },
  visibilityS: { type: 'number', default: 300, help: 'SQS visibility timeout the input gate asks for (InputGate default)' },
  leasedChannels: { type: 'number', default: 50, help: 'channels of the failed consumer with a message in flight at the crash (gate buffer 40 + polls)' },
  lingerMs: { type: 'number', default: 200, help: 'producer flush interval (SubtaskRunner linger)' },
  warmMs: { type: 'number', default: 1000, help: 'simulated time before the failure' },
  failAtS: { type: 'number', default: 600, help: 'job time of the failure (selects the generated records)' },
  windowS: { type: 'number', default: 60, help: 'job time whose output is the base of the loss fraction' },
  out: { type: 'string', default: 'bench/results/recovery.json', help: 'JSON results file' },
});
type Flags = FlagValues<typeof FLAGS>;


// ---- the job ---------------------------------------------------------------------------------

interface Setup {
  flags: Flags;
  graph: ExecutionGraph;
  shape: JoinShape;
  units: UnitPlacement[];
  failedIndex: number;
  failedUnit: string;
  /** Time of the failure detection after the crash, and how it was sampled. */
  detectionMs: number;
  ckptAgeS: number;
  rng: () => number;
}

const QUEUE_PREFIX = 'bench';
const JOB_ID = 'recommendation-join-bench';

function buildSetup(flags: Flags): Setup {
  const rng = seededRandom(flags.seed);
  const P = flags.parallelism;
  const params = resolveParams(recommendationJoinJob, {
    parallelism: P,
    // Enough generated input for the job time simulated; the records are computed on demand.
    events: Math.min(1_000_000_000, Math.ceil(P * flags.eventRate * (flags.failAtS + 3600))),
    featureUpdates: Math.min(1_000_000_000, Math.ceil(P * flags.featureRate * (flags.failAtS + 3600))),
    users: flags.users,
    partitions: P,
    minutes: 60,
  });
  const graph = buildExecutionGraph(recommendationJoinJob.build(params));
  const units = graph.subtasks.map((s, n) => ({ unitId: `${s.taskId}-${s.index}`, subtasks: [s.id], controlQueue: controlQueue(QUEUE_PREFIX, JOB_ID, n) }));
  const failedIndex = flags.failIndex >= 0 ? flags.failIndex : Math.floor(rng() * P);
  const detectionMs =
    flags.detect === 'exit'
      ? flags.exitNoticeMs + rng() * flags.pollMs
      : // Crash at a uniform phase after the last heartbeat; stale once older than the timeout; seen at the next poll.
        flags.heartbeatTimeoutMs - rng() * flags.heartbeatMs + rng() * flags.pollMs;
  const ckptAgeS = flags.checkpointAgeS >= 0 ? flags.checkpointAgeS : flags.checkpointIntervalS / 2;
  return { flags, graph, shape: joinShape(params), units, failedIndex, failedUnit: `join-${failedIndex}`, detectionMs, ckptAgeS, rng };
}

// ---- the failover, run by the real handler ------------------------------------------------------

interface HandlerRun {
  outcome: FailoverOutcome;
  /** Control messages the handler sent: (unit, message, simulated send time). */
  sent: { unitId: string; message: ControlMessage; at: number }[];
  launches: { unitId: string; attempt: number }[];
  stops: number;
  wallMs: number;
  jobs: JobStore;
  metadata: MemoryMetadataStore;
  metrics: RecoveryMetrics;
  clock: SimClock;
  job: JobRecord;
  view: () => Promise<JobView>;
}

type SendControl = (run: HandlerRun, unitIds: string[], message: ControlMessage) => Promise<void>;

async function runHandler(setup: Setup, strategy: FailoverStrategy, sendControl?: SendControl): Promise<HandlerRun> {
  const metadata = new MemoryMetadataStore();
  const jobs = new JobStore(metadata);
  const clock = new SimClock();
  const job: JobRecord = {
    jobId: JOB_ID,
    name: 'recommendation-join',
    params: {},
    settings: { ...DEFAULT_SETTINGS, failover: strategy },
    status: 'RUNNING',
    createdAt: 0,
    queuePrefix: 'sim',
    shape: { units: setup.units.length, subtasks: setup.graph.subtasks.length, regions: setup.graph.regions.length, queues: 0, unitShards: unitShardCount(setup.units.length) },
    units: setup.units,
    regions: setup.graph.regions,
    queues: [],
  };
  await jobs.createJob(storedJob(job));
  for (const u of setup.units) {
    await jobs.startUnitAttempt(JOB_ID, u.unitId, u.subtasks, 0);
    await jobs.reportUnit(JOB_ID, u.unitId, 0, { status: u.unitId === setup.failedUnit ? 'FAILED' : 'RUNNING' });
  }
  const view = async (): Promise<JobView> => ({
    job: { ...(await jobs.getJob(JOB_ID)), units: job.units, regions: job.regions, queues: job.queues },
    units: await jobs.getUnits(JOB_ID),
    totals: { recordsIn: 0, recordsOut: 0, dropped: 0, missing: 0, replayed: 0, duplicateRecords: 0, regenerated: 0, unreplayed: 0, resent: 0, requests: {} },
  });
  const sent: HandlerRun['sent'] = [];
  const launches: HandlerRun['launches'] = [];
  let stops = 0;
  const launcher: UnitLauncher = {
    launch: async (_job, unit, attempt) => void launches.push({ unitId: unit.unitId, attempt }),
    stop: async () => void stops++,
  };
  const metrics = new RecoveryMetrics(metadata, { clock, settleMs: 0 });
  const handler = new FailoverHandler({
    jobs,
    launcher,
    metrics,
    clock,
    concurrency: 64,
    service: {
      sendControl: (_job, unitIds, message) => (sendControl ? sendControl(run, unitIds, message) : Promise.resolve(void sent.push(...unitIds.map((unitId) => ({ unitId, message, at: clock.t }))))),
      graphOf: async () => setup.graph,
      fail: async () => undefined,
    },
  });
  const failure: UnitFailure = {
    unitId: setup.failedUnit,
    attempt: 0,
    subtasks: [`join#${setup.failedIndex}`],
    reason: 'process exited with code 1',
    failedAt: 0,
    detectedAt: setup.detectionMs,
  };
  clock.t = setup.detectionMs;
  const v = await view();
  const run = { sent, launches, stops: 0, wallMs: 0, jobs, metadata, metrics, clock, job, view } as unknown as HandlerRun;
  const started = performance.now();
  run.outcome = await handler.handle(failure, v);
  run.wallMs = performance.now() - started;
  run.stops = stops;
  return run;
}

/** A ChannelTransport that only records which control queue got which message (for announceAvailable). */
function recordingControlTransport(into: { queue: string; message: ControlMessage }[]): ChannelTransport {
  const fail = async () => {
    throw new Error('not used');
  };
  return {
    createQueues: fail,
    deleteQueues: fail,
    listQueues: fail,
    receive: fail,
    delete: fail,
    changeVisibility: fail,
    send: async (queue, messages) => {
      for (const m of messages) into.push({ queue, message: JSON.parse(m.body) as ControlMessage });
    },
  };
}

// ---- producers, simulated in full ------------------------------------------------------------

interface Delivery {
  at: number;
  message: AvailabilityMessage;
}

interface ProducerTotals {
  /** Records to the failed consumer per phase, by source. */
  toFailed: { events: { warm: number; outage: number; after: number }; features: { warm: number; outage: number; after: number } };
  droppedEvents: number;
  droppedFeatures: number;
  /** Records written to every other consumer between the failure and "available again". */
  toOthersDuringOutage: number;
  /** Bytes of messages queued for the failed consumer while it was down (queue growth). */
  queuedBytesDuringOutage: number;
  messagesToFailed: number;
  messages: number;
  records: number;
  /** Per producer: records to the failed consumer after the restart (for the lease estimate), per second. */
  perChannelRateToFailed: Map<string, number>;
  /** Per producer subtask: its drop counter at the end (reported to the metrics as heartbeats). */
  droppedBySubtask: Map<string, number>;
  lastAvailableNoticeAt: number;
  simulatedRecords: number;
}

/**
 * Runs every producer of the failed consumer through a real RecordWriter, one producer at a time.
 * `deliveries` are the availability messages per producer unit with their arrival times.
 */
async function simulateProducers(setup: Setup, deliveries: Map<string, Delivery[]>, tUp: number, tEnd: number): Promise<ProducerTotals> {
  const { graph, shape, flags, failedIndex } = setup;
  const P = flags.parallelism;
  const totals: ProducerTotals = {
    toFailed: { events: { warm: 0, outage: 0, after: 0 }, features: { warm: 0, outage: 0, after: 0 } },
    droppedEvents: 0,
    droppedFeatures: 0,
    toOthersDuringOutage: 0,
    queuedBytesDuringOutage: 0,
    messagesToFailed: 0,
    messages: 0,
    records: 0,
    perChannelRateToFailed: new Map(),
    droppedBySubtask: new Map(),
    lastAvailableNoticeAt: 0,
    simulatedRecords: 0,
  };
  const tA = -flags.warmMs;
  const phaseRng = seededRandom(flags.seed ^ 0x51ed);
  for (const edge of graph.edges) {
    const isEvents = edge.from === 'events';
    const rate = isEvents ? flags.eventRate : flags.featureRate;
    const bucket = isEvents ? totals.toFailed.events : totals.toFailed.features;
    for (let p = 0; p < P; p++) {
      let flushAt = 0; // the time of the flush being done
      let toFailedAfterUp = 0;
      const transport = {
        send: async (queue: string, messages: readonly OutboundMessage[]) => {
          totals.messages += messages.length;
          if (queue !== 'failed') return;
          totals.messagesToFailed += messages.length;
          for (const m of messages) {
            const n = (JSON.parse(m.body) as { r?: Json[] }).r?.length ?? 0;
            if (flushAt < 0) bucket.warm += n;
            else if (flushAt < tUp) {
              bucket.outage += n;
              totals.queuedBytesDuringOutage += Buffer.byteLength(m.body);
            } else {
              bucket.after += n;
              toFailedAfterUp += n;
            }
          }
        },
      } as unknown as ChannelTransport;
      const view = new AvailabilityView({ edges: [edge.id] });
      const writer = new RecordWriter({
        edge,
        producerIndex: p,
        consumerParallelism: P,
        attempt: 0,
        queueOf: (c) => (c === failedIndex ? 'failed' : 'other'),
        transport,
        gate: view,
      });
      const unitId = `${edge.from}-${p}`;
      const inbox = deliveries.get(unitId) ?? [];
      let next = 0;
      const phase = phaseRng() * flags.lingerMs;
      let nextFlush = Math.ceil((tA - phase) / flags.lingerMs) * flags.lingerMs + phase;
      let writtenAtFail = -1;
      let writtenAtUp = -1;
      const o0 = Math.ceil((flags.failAtS + tA / 1000) * rate);
      const o1 = Math.floor((flags.failAtS + tEnd / 1000) * rate);
      const failedBefore = () => writer.dropped[failedIndex]!;
      for (let o = o0; o < o1; o++) {
        const t = (o / rate - flags.failAtS) * 1000;
        while (nextFlush <= t) {
          flushAt = nextFlush;
          await writer.flush();
          nextFlush += flags.lingerMs;
        }
        if (writtenAtFail < 0 && t >= 0) writtenAtFail = writer.recordsWritten;
        if (writtenAtUp < 0 && t >= tUp) writtenAtUp = writer.recordsWritten;
        while (next < inbox.length && inbox[next]!.at <= t) view.apply(inbox[next++]!.message);
        writer.emit((isEvents ? eventAt(shape, p, o) : featureAt(shape, p, o)) as unknown as Json);
        totals.simulatedRecords++;
      }
      flushAt = tEnd;
      await writer.flush();
      const dropped = failedBefore();
      if (isEvents) totals.droppedEvents += dropped;
      else totals.droppedFeatures += dropped;
      totals.droppedBySubtask.set(`${edge.from}#${p}`, dropped);
      totals.records += writer.recordsWritten;
      // Records to the other consumers between the failure and the consumer's return (approximately:
      // all written records in that span minus those to the failed consumer).
      if (writtenAtFail >= 0 && writtenAtUp >= 0) totals.toOthersDuringOutage += writtenAtUp - writtenAtFail;
      const afterSeconds = (tEnd - tUp) / 1000;
      if (afterSeconds > 0) totals.perChannelRateToFailed.set(unitId, toFailedAfterUp / afterSeconds);
      if (inbox.length > 0) totals.lastAvailableNoticeAt = Math.max(totals.lastAvailableNoticeAt, inbox[inbox.length - 1]!.at);
    }
  }
  // Records to the failed consumer during the outage are not "the rest of the job".
  totals.toOthersDuringOutage -= totals.toFailed.events.outage + totals.toFailed.features.outage;
  return totals;
}

// ---- steady-state overhead of the single modes -----------------------------------------------

interface Overhead {
  records: number;
  channels: number;
  plainNsPerRecord: number;
  loggedNsPerRecord: number;
  logCpuPercent: number;
  logBytesPerRecord: number;
  logBytesPerSubtask: number;
  recordsPerInputMessage: number;
  determinantBytesPerRecord: number;
}

/**
 * What the in-flight log and the determinants cost when nothing fails, measured with the real
 * RecordWriter and DeterminantLog: the job's own event records through one writer (64 channels,
 * a no-op transport, flushing every 2000 records) with and without the log; and one step per input
 * message, carried by every output channel, in bytes per input record.
 */
async function measureOverhead(setup: Setup): Promise<Overhead> {
  const records = 200_000;
  const channels = 64;
  const edge = setup.graph.edges.find((e) => e.from === 'events')!;
  const events = Array.from({ length: records }, (_, o) => eventAt(setup.shape, 0, o) as unknown as Json);
  const transport = { send: async () => undefined } as unknown as ChannelTransport;
  const run = async (inflightLog: boolean) => {
    const writer = new RecordWriter({ edge, producerIndex: 0, consumerParallelism: channels, attempt: 0, queueOf: () => 'q', transport, inflightLog });
    const started = process.cpuUsage();
    for (let i = 0; i < events.length; i++) {
      writer.emit(events[i]!);
      if (i % 2000 === 1999) await writer.flush();
    }
    await writer.flush();
    const cpu = process.cpuUsage(started);
    return { ns: ((cpu.user + cpu.system) * 1000) / records, logBytes: writer.log?.size.bytes ?? 0 };
  };
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const plain: number[] = [];
  const logged: number[] = [];
  let logBytes = 0;
  for (let k = 0; k < 3; k++) {
    plain.push((await run(false)).ns);
    const l = await run(true);
    logged.push(l.ns);
    logBytes = l.logBytes;
  }
  // Determinants: a consumer taking input messages of r records, one step each, with every output
  // channel carrying the steps since its last message (one output message per channel per linger).
  const r = 100;
  const dets = new DeterminantLog();
  let detBytes = 0;
  const inputMessages = 2000;
  for (let m = 0; m < inputMessages; m++) {
    dets.records(`e0/${m % (2 * setup.flags.parallelism)}`, 0, m * r, r);
    if (m % 50 === 49) for (let c = 0; c < channels; c++) detBytes += JSON.stringify(dets.takeFor(`out/${c}`) ?? []).length;
  }
  const plainNs = median(plain);
  const loggedNs = median(logged);
  return {
    records,
    channels,
    plainNsPerRecord: plainNs,
    loggedNsPerRecord: loggedNs,
    logCpuPercent: ((loggedNs - plainNs) / plainNs) * 100,
    logBytesPerRecord: logBytes / records,
    logBytesPerSubtask: (logBytes / records) * setup.flags.eventRate * setup.flags.checkpointIntervalS,
    recordsPerInputMessage: r,
    determinantBytesPerRecord: detBytes / (inputMessages * r),
  };
}

// ---- strategies ----------------------------------------------------------------------------------

interface StrategyResult {
  strategy: FailoverStrategy;
  unitsRestarted: number;
  controlMessages: number;
  /** Unavailability notices the handler did not send because the unit was back first. */
  controlMessagesSkipped: number;
  fencedQueues: number;
  handlerWallMs: number;
  /** From the recovery metrics record (ms after the crash). */
  event: FailureEvent;
  recoveryMs: number;
  /** single*: when the last producer heard the consumer was back. */
  producersResumedMs: number | null;
  jobDowntimeMs: number;
  catchUpMs: number;
  outputRecordsInWindow: number;
  droppedRecords: number;
  droppedOutput: number;
  /** Records the producers replayed to the restarted consumer from their in-flight logs (single*: its input since its checkpoint). */
  resentFromLogs: number;
  outputLost: number;
  outputLossFraction: number;
  recordsDelayed: number;
  recordsReplayed: number;
  queueGrowthBytes: number;
  toOthersDuringOutage: number | null;
  leaseBlocked: { channels: number; untilMs: number; records: number } | null;
  simulatedRecords: number;
}

const restoreMs = (flags: Flags, unitId: string) => ((unitId.startsWith('join-') ? flags.joinStateMb : flags.sourceStateMb) / flags.restoreMbps) * 1000;

async function runSingle(setup: Setup, strategy: 'single' | 'single-buffered' | 'single-exact'): Promise<StrategyResult> {
  const { flags, rng } = setup;
  const tMarked = setup.detectionMs + flags.handlerMs;
  // The new attempt is launched with the notices (not after them), starts, restores, announces.
  const tUp = tMarked + flags.startMs + restoreMs(flags, setup.failedUnit);
  const tAnnounce = tUp + flags.announceMs;
  const announced: { queue: string; message: ControlMessage }[] = [];
  let announcedAt: number | undefined;
  const announce = async (run: HandlerRun) => {
    if (announcedAt !== undefined) return;
    announcedAt = tAnnounce;
    const saved = run.clock.t;
    run.clock.t = tAnnounce;
    await announceAvailable({
      metadata: run.metadata,
      channels: recordingControlTransport(announced),
      job: run.job,
      graph: setup.graph,
      unitId: setup.failedUnit,
      attempt: 1,
      metrics: run.metrics,
      clock: run.clock,
    });
    run.clock.t = Math.max(saved, run.clock.t);
  };
  // The handler's fan-out: the k-th notice leaves at tMarked + k / rate. When that passes the
  // moment the new attempt announces itself, the announce happens first (in simulated time), and
  // the handler's check between chunks sees the flag move on.
  let sentCount = 0;
  const run = await runHandler(setup, strategy, async (r, unitIds, message) => {
    for (const unitId of unitIds) {
      const at = tMarked + (sentCount++ / flags.controlSendsPerS) * 1000;
      if (at >= tAnnounce) await announce(r);
      r.sent.push({ unitId, message, at });
    }
  });
  await announce(run);

  const jitter = () => flags.controlReceiveMs * (0.5 + rng());
  const deliveries = new Map<string, Delivery[]>();
  const deliver = (unitId: string, at: number, message: ControlMessage) => {
    if (message.type !== 'availability') return;
    let list = deliveries.get(unitId);
    if (!list) deliveries.set(unitId, (list = []));
    list.push({ at, message });
  };
  for (const { unitId, at, message } of run.sent) deliver(unitId, at + jitter(), message);
  const unitOfQueue = new Map(setup.units.map((u) => [u.controlQueue, u.unitId]));
  announced.forEach(({ queue, message }, k) => deliver(unitOfQueue.get(queue)!, tAnnounce + (k / flags.controlSendsPerS) * 1000 + jitter(), message));
  for (const list of deliveries.values()) list.sort((a, b) => a.at - b.at);
  const lastNotice = Math.max(0, ...[...deliveries.values()].map((l) => l[l.length - 1]!.at));
  const tEnd = Math.max(lastNotice, tUp) + 1000;

  const sim = await simulateProducers(setup, deliveries, tUp, tEnd);

  // The metrics record its drops from the producers' counters (as their heartbeats would report them).
  for (const [subtask, dropped] of sim.droppedBySubtask) {
    const unitId = subtask.replace('#', '-');
    await run.jobs.reportUnit(JOB_ID, unitId, 0, {
      heartbeatAt: tEnd,
      stats: { [subtask]: { status: 'running', recordsIn: 0, recordsOut: 0, dropped, duplicates: 0, fenced: 0 } },
    });
  }
  run.clock.t = tEnd;
  await run.metrics.observe(await run.view());
  const event = (await run.metrics.get(JOB_ID, run.outcome.event!.seq))!;

  // The failed consumer's normal input rate: every record routed to it over the whole simulated
  // window (sent or dropped), so neither the outage nor the flush timing biases it.
  const windowS = (tEnd + flags.warmMs) / 1000;
  const { events: ev, features: fe } = sim.toFailed;
  const eventsToFailed = ev.warm + ev.outage + ev.after + sim.droppedEvents;
  const recordsToFailedPerS = (eventsToFailed + fe.warm + fe.outage + fe.after + sim.droppedFeatures) / windowS;
  // What the failed subtask had consumed since its last completed checkpoint: its output of it was
  // staged in its sink, never committed; its producers replay it from their in-flight logs
  // (lib/runtime/replay.ts), so it is regenerated, not lost. Only what single drops is lost.
  const resentFromLogs = Math.round(recordsToFailedPerS * setup.ckptAgeS);
  const outputLost = strategy === 'single' ? sim.droppedEvents : 0;
  const outputInWindow = flags.parallelism * flags.eventRate * flags.windowS;
  const delayed = sim.toFailed.events.outage + sim.toFailed.features.outage;
  // Backlog at the restart, drained at (headroom - 1) x the normal rate.
  const catchUpMs = recordsToFailedPerS > 0 ? (delayed / recordsToFailedPerS / (flags.headroom - 1)) * 1000 : 0;
  // Channels whose head message the dead attempt had received: blocked until its lease runs out.
  const producers = [...sim.perChannelRateToFailed.keys()];
  const leased = Array.from({ length: Math.min(flags.leasedChannels, producers.length) }, () => producers[Math.floor(rng() * producers.length)]!);
  const leaseUntil = flags.visibilityS * 1000;
  const leaseRecords = Math.round(leased.reduce((n, p) => n + sim.perChannelRateToFailed.get(p)! * Math.max(0, (leaseUntil - tUp) / 1000), 0));
  return {
    strategy,
    unitsRestarted: run.outcome.plan!.restarts.length,
    controlMessages: run.outcome.controlMessages + announced.length,
    controlMessagesSkipped: run.outcome.controlMessagesSkipped ?? 0,
    fencedQueues: run.outcome.plan!.fence.length,
    handlerWallMs: run.wallMs,
    event,
    recoveryMs: event.recoveryMs!,
    producersResumedMs: strategy === 'single' ? sim.lastAvailableNoticeAt : null,
    jobDowntimeMs: 0,
    catchUpMs,
    outputRecordsInWindow: outputInWindow,
    droppedRecords: sim.droppedEvents + sim.droppedFeatures,
    droppedOutput: sim.droppedEvents,
    resentFromLogs,
    outputLost,
    outputLossFraction: outputLost / outputInWindow,
    recordsDelayed: delayed,
    recordsReplayed: resentFromLogs,
    queueGrowthBytes: sim.queuedBytesDuringOutage,
    toOthersDuringOutage: sim.toOthersDuringOutage,
    leaseBlocked: { channels: new Set(leased).size, untilMs: leaseUntil, records: leaseRecords },
    simulatedRecords: sim.simulatedRecords,
  };
}

async function runMass(setup: Setup, strategy: 'region' | 'full'): Promise<StrategyResult> {
  const { flags } = setup;
  const run = await runHandler(setup, strategy);
  const tStopped = setup.detectionMs + flags.handlerMs;
  // Launches in the handler's order at the launch throughput; each unit starts, restores, announces.
  const ups = run.launches.map((l, k) => ({ ...l, at: tStopped + (k / flags.launchesPerS) * 1000 + flags.startMs + restoreMs(flags, l.unitId) }));
  ups.sort((a, b) => a.at - b.at);
  const sink: { queue: string; message: ControlMessage }[] = [];
  const channels = recordingControlTransport(sink);
  for (const u of ups) {
    run.clock.t = u.at + flags.announceMs;
    await announceAvailable({ metadata: run.metadata, channels, job: run.job, graph: setup.graph, unitId: u.unitId, attempt: u.attempt, metrics: run.metrics, clock: run.clock });
  }
  run.clock.t = ups[ups.length - 1]!.at + flags.announceMs;
  await run.metrics.observe(await run.view());
  const event = (await run.metrics.get(JOB_ID, run.outcome.event!.seq))!;
  const P = flags.parallelism;
  const inputPerS = P * (flags.eventRate + flags.featureRate);
  const recoveryMs = event.recoveryMs!;
  // Everything the sources read since the restored checkpoint is read again, including what the
  // job did between the crash and the stop (discarded with the uncommitted output).
  const replayed = Math.round(inputPerS * (setup.ckptAgeS + tStopped / 1000));
  // Input that arrived while no unit ran: it waits for the restart.
  const delayed = Math.round(inputPerS * ((recoveryMs - tStopped) / 1000));
  return {
    strategy,
    unitsRestarted: run.outcome.plan!.restarts.length,
    controlMessages: run.outcome.controlMessages + sink.length,
    controlMessagesSkipped: 0,
    fencedQueues: run.outcome.plan!.fence.length,
    handlerWallMs: run.wallMs,
    event,
    recoveryMs,
    producersResumedMs: null,
    jobDowntimeMs: recoveryMs,
    // The whole job reprocesses (checkpoint age + downtime) of input at (headroom - 1) x the rate.
    catchUpMs: ((setup.ckptAgeS * 1000 + recoveryMs) / (flags.headroom - 1)),
    outputRecordsInWindow: P * flags.eventRate * flags.windowS,
    droppedRecords: 0,
    droppedOutput: 0,
    resentFromLogs: 0,
    outputLost: 0,
    outputLossFraction: 0,
    recordsDelayed: delayed,
    recordsReplayed: replayed,
    queueGrowthBytes: 0,
    toOthersDuringOutage: null,
    leaseBlocked: null,
    simulatedRecords: 0,
  };
}

// ---- report ----------------------------------------------------------------------------------------

const fmtS = seconds;
const fmtN = count;
const fmtPct = (f: number) => (f === 0 ? '0 %' : f < 0.0001 ? `${(f * 100).toExponential(1)} %` : percent(f, 4));

async function main(): Promise<void> {
  const flags = commandFlags('bench:recovery', 'npm run bench:recovery -- [flags]', FLAGS);
  const wallStart = performance.now();
  const machine = machineInfo();
  const args = process.argv.slice(2).join(' ');
  const command = args ? `npm run bench:recovery -- ${args}` : 'npm run bench:recovery';
  console.log('Sluice recovery benchmark (simulation)');
  console.log(describeMachine(machine));
  console.log(`rerun:   ${command}`);

  const setup = buildSetup(flags);
  const P = flags.parallelism;
  console.log(
    `\njob: recommendation-join at parallelism ${P}: tasks ${setup.graph.tasks.map((t) => `${t.id}(${t.parallelism})`).join(', ')}; ` +
      `${setup.graph.edges.length} hash edges (all-to-all); ${setup.graph.regions.length} checkpoint region; ${setup.units.length} task units (one subtask each)`,
  );
  console.log(`failure: join subtask ${setup.failedIndex} (unit ${setup.failedUnit}) crashes at job time ${flags.failAtS} s`);
  console.log('\nlatency model (flags; --help lists them all):');
  const detection =
    flags.detect === 'exit'
      ? `exit notice ${flags.exitNoticeMs} ms + supervisor poll phase U(0, ${flags.pollMs}) ms`
      : `heartbeat timeout ${flags.heartbeatTimeoutMs} ms - crash phase U(0, ${flags.heartbeatMs}) ms + poll phase U(0, ${flags.pollMs}) ms`;
  console.log(`  detection     = ${detection}  -> ${setup.detectionMs.toFixed(0)} ms (seeded draw)`);
  console.log(`  handler       = ${flags.handlerMs} ms of store round trips, then notices and launch together`);
  console.log(`  notify        = one control message per (producer unit, sub-partition), ${flags.controlSendsPerS}/s from one process, + receive ${flags.controlReceiveMs} ms x U(0.5, 1.5)`);
  console.log(`  restart       = unit start ${flags.startMs} ms + restore (state / ${flags.restoreMbps} MB/s: join ${flags.joinStateMb} MB, source ${flags.sourceStateMb} MB) + announce ${flags.announceMs} ms`);
  console.log(`  mass restart  = launches at ${flags.launchesPerS}/s, each then start + restore as above`);
  console.log(`  checkpoints   = every ${flags.checkpointIntervalS} s; the last completed one is ${setup.ckptAgeS} s old at the crash`);
  console.log(`  input         = ${flags.eventRate} events/s and ${flags.featureRate} feature updates/s per source subtask (${fmtN(P * (flags.eventRate + flags.featureRate))} records/s in all); one output per event`);
  console.log(`  catch-up      = backlog drained at (headroom ${flags.headroom} - 1) x the normal rate`);
  console.log(`  SQS leases    = ${flags.leasedChannels} channels of the failed consumer had a message in flight; FIFO keeps them blocked until the visibility timeout (${flags.visibilityS} s)`);
  console.log(`  loss base     = the job's output over ${flags.windowS} s`);

  const results: StrategyResult[] = [];
  for (const strategy of ['single', 'single-buffered', 'single-exact', 'region', 'full'] as const) {
    const started = performance.now();
    const result = strategy === 'region' || strategy === 'full' ? await runMass(setup, strategy) : await runSingle(setup, strategy);
    results.push(result);
    console.log(`  ... ${strategy} done in ${fmtS(performance.now() - started)} wall (handler ${result.handlerWallMs.toFixed(0)} ms wall${result.simulatedRecords ? `, ${fmtN(result.simulatedRecords)} records through RecordWriter` : ''})`);
  }

  const header = ['strategy', 'output loss', 'lost / dropped recs', 'delayed / replayed', 'recovery time', 'producers resumed', 'units restarted', 'job-wide downtime', 'caught up after'];
  const rows = results.map((r) => [
    r.strategy,
    fmtPct(r.outputLossFraction),
    `${fmtN(r.outputLost)} / ${fmtN(r.droppedRecords)}`,
    `${fmtN(r.recordsDelayed)} / ${fmtN(r.recordsReplayed)}`,
    fmtS(r.recoveryMs),
    r.producersResumedMs === null ? '-' : fmtS(r.producersResumedMs),
    String(r.unitsRestarted),
    r.jobDowntimeMs === 0 ? '0 s' : fmtS(r.jobDowntimeMs),
    fmtS(r.catchUpMs),
  ]);
  console.log(`\nOne failed join subtask at parallelism ${P} (seed ${flags.seed}):\n`);
  console.log(markdownTable(header, rows, header.map((_, c) => (c === 0 ? 'left' : 'right'))));
  const single = results[0]!;
  const buffered = results[1]!;
  const exact = results[2]!;
  const region = results[3]!;
  const full = results[4]!;
  const overhead = await measureOverhead(setup);
  console.log(`
Reading the table:
- output loss: lost output records / the job's output over ${flags.windowS} s (${fmtN(single.outputRecordsInWindow)} records). Lost = events dropped by
  producers while the consumer was down (simulated; single only). What the failed subtask had consumed since its last
  checkpoint is not lost: its producers replay it from their in-flight logs (${fmtN(single.resentFromLogs)} records, modelled: its measured
  input rate x ${setup.ckptAgeS} s). region/full/single-exact are exactly-once; single-buffered loses nothing, and the join's chained
  sink regenerates its output, so none of the single modes duplicates anything here.
  "dropped recs" counts every record the writers dropped (events and feature updates).
- delayed: records that waited in the failed consumer's queue for its restart (simulated); replayed: single*: records resent
  from the in-flight logs; region/full: source records read again from the restored checkpoint (modelled: rate x (checkpoint
  age + time to the stop)).
- recovery time: failure -> the failed unit (single*) or the last restarted unit (region/full) restored and available
  (read back from the RecoveryMetrics record). producers resumed: the last producer received "available" (notice fan-out).
  single-exact: the join feeds its chained sink, so it has no determinants to collect (an inner task with a queue to its
  consumers would add one control message per consumer unit and their S3 answers, about ${flags.announceMs + flags.controlReceiveMs} ms).
- job-wide downtime: time no part of the job makes progress. Under single* the other ${P - 1} join subtasks never stop
  (${fmtN(single.toOthersDuringOutage ?? 0)} records reached them during the outage); under region/full all ${full.unitsRestarted} units restart.
- single-buffered and single-exact cost queue growth instead of loss: ${fmtN(buffered.recordsDelayed)} records (${(buffered.queueGrowthBytes / 2 ** 20).toFixed(1)} MiB of messages)
  queue for the consumer while it is down, and it is behind for ${fmtS(buffered.catchUpMs)} more.
- SQS FIFO leases: ${single.leaseBlocked!.channels} channels into the restarted consumer stay blocked until ${fmtS(single.leaseBlocked!.untilMs)} after the crash
  (messages the dead attempt had received); ~${fmtN(single.leaseBlocked!.records)} records wait behind them. A visibility timeout near the
  heartbeat timeout would cut this.
- control messages per failure (handler + announce): single ${single.controlMessages} (${single.controlMessagesSkipped} unavailability notices skipped:
  the unit was back before the fan-out reached them), single-buffered ${buffered.controlMessages}, single-exact ${exact.controlMessages}, region ${region.controlMessages}, full ${full.controlMessages}.
  fenced queues: region ${region.fencedQueues}, full ${full.fencedQueues}. The replay adds one request per producer unit and input edge.
- steady-state overhead of the single modes (measured here with the real RecordWriter, ${fmtN(overhead.records)} event records to ${overhead.channels} channels,
  median of 3): CPU ${overhead.plainNsPerRecord.toFixed(0)} ns/record without the in-flight log, ${overhead.loggedNsPerRecord.toFixed(0)} with it (+${overhead.logCpuPercent.toFixed(0)} %);
  memory: the log holds one checkpoint interval of output, ${overhead.logBytesPerRecord.toFixed(0)} bytes/record (${fmtN(overhead.logBytesPerSubtask / 2 ** 20)} MiB per source subtask at
  ${flags.eventRate} events/s and a ${flags.checkpointIntervalS} s interval); determinants (single-exact, inner tasks only) ride on data messages:
  ${overhead.determinantBytesPerRecord.toFixed(1)} bytes per input record (one step per input message of ${overhead.recordsPerInputMessage} records, sent on each of
  ${overhead.channels} output channels); SQS requests: none more in steady state (logs in memory, determinants piggybacked), one S3 object per
  producer subtask and edge at the end of a bounded job.
- simulated exactly: the failover handler and planner, availability flags and views, announceAvailable, the recovery
  metrics record, and ${fmtN(single.simulatedRecords + buffered.simulatedRecords + exact.simulatedRecords)} records through the real RecordWriter (one writer at a time, counting transport).
  modelled: every latency above, the replay, catch-up and lease figures.

total wall time ${fmtS(performance.now() - wallStart)}`);

  const out = resolve(dirname(fileURLToPath(import.meta.url)), '..', flags.out);
  writeResults(
    out,
    {
      benchmark: 'recovery',
      generatedAt: new Date().toISOString(),
      command,
      machine,
      flags,
      failedSubtask: `join#${setup.failedIndex}`,
      detectionMs: Math.round(setup.detectionMs),
      checkpointAgeS: setup.ckptAgeS,
      overhead,
      results: results.map(({ event, ...r }) => ({
        ...r,
        event: { detectedAt: event.detectedAt, restartedAt: event.restartedAt, availableAgainAt: event.availableAgainAt, recoveryMs: event.recoveryMs, recordsDropped: event.recordsDropped, status: event.status },
      })),
      wallSeconds: Math.round((performance.now() - wallStart) / 100) / 10,
    },
  );
  console.log(`results written to ${flags.out}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
