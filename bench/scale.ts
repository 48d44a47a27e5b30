/**
 * Scale benchmark (issue 12, item 4): the recommendation join at parallelism 4000 and the ingest
 * job at 5000 through the REAL AWS adapters (SQS FIFO, DynamoDB, S3 clients of lib/aws against the
 * embedded emulator, or AWS_ENDPOINT_URL), units packed, at a low record rate; then a cost model.
 *
 *   npm run bench:scale -- [--quick] [--join-parallelism 4000] [--ingest-parallelism 5000] ...  (--help)
 *
 * RUN THROUGH THE PROJECT'S OWN CODE, per job:
 * - submit (JobService: queues created paced, job and unit items written), task units hosted by
 *   hostUnit (the composition root the child processes, Lambda and Fargate run) in two worker
 *   threads, first attempts in one and restarts in the other (bench/lib/unit-thread.ts), each unit
 *   over its own view of its thread's AWS clients (a kill switch with a slot in shared memory);
 * - the control plane, in the main thread with clients of its own: JobController (supervisor,
 *   failover handler by the job's strategy, recovery metrics); checkpoints ONLY through the Step
 *   Functions steps (CheckpointSteps: trigger, then runCheckpointWorkflow: poll, finalize, notify),
 *   none on a schedule;
 * - idle window: sources are paced to one record per `--first-record-s` per subtask, and the
 *   generator emits the first one only that long after it opened, so the job runs with no records
 *   until then; load window: exactly one such period later (every source subtask emits once in
 *   any window of that length, so the window's average is exact even though emissions bunch);
 * - kill: one unit's I/O is cut at once (every call of its ports hangs from then on, results in
 *   flight are never seen: its heartbeats, polls, sends, acks stop as in a SIGKILLed process; its
 *   SQS leases stay until their visibility timeout) and the supervisor gets the exit notice a
 *   process launcher gives for SIGKILL. Recovery = failure -> the unit's new attempt RUNNING and
 *   its input available (the RecoveryMetrics record), then one more checkpoint through the steps.
 * - a third, short run: the join at P=16 at 10,000 records/s (the batching regime) for the
 *   per-message and per-record coefficients of the cost model.
 * COUNTED: every HTTP call per service (lib/aws/clients.ts requestCounts) and what AWS bills for
 * it (billedCounts: 64 KiB SQS chunks, DynamoDB read/write units, S3 write/read requests); the
 * largest DynamoDB item written (bench/lib/metadata-observer.ts over the real adapter).
 * MODELLED: dollars (the price table printed), compute sizes, and the cost model's
 * extrapolation (bench/lib/scale-cost.ts; how each coefficient is derived is printed).
 */
import { commandFlags, defineFlags, type FlagValues } from '../lib/cli/flags';
import { count, markdownTable, seconds } from './lib/report';
import { describeMachine, machineInfo, writeResults, type MachineInfo } from './lib/results';
import { ObservedMetadataStore, kindsBetween, kindsSum, type ItemRecord, type KindCounts } from './lib/metadata-observer';
import { ObservedBlobStore } from './lib/blob-observer';
import {
  PRICE_TABLE,
  PRICES,
  ZERO,
  add,
  clampZero,
  dollars,
  dollarsPerHour,
  fargatePerHour,
  flinkCost,
  joinUnits,
  lambdaPerHour,
  minus,
  modelRow,
  scale,
  type Billed,
  type Coefficients,
  type ModelRow,
} from './lib/scale-cost';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createAwsPorts, ensureInfrastructure, billedCounts, requestCounts } from '../lib/aws';
import { loadConfig, type SluiceConfig } from '../lib/config';
import { resolveEndpoint } from '../lib/local/emulator';
import { startDynamoDbLocal } from './lib/dynamodb-local';
import { jobRegistry } from '../examples/jobs';
import { JobService } from '../lib/jobs/job-service';
import { isSinglePoint, JobStore, type SubtaskStats } from '../lib/jobs/job-store';
import { JobController } from '../lib/jobs/job-controller';
import { CheckpointSteps } from '../lib/jobs/checkpoint-steps';
import { runCheckpointWorkflow } from '../lib/api-server/checkpoint-workflow';
import { createFailoverHandler } from '../lib/recovery/failover-handler';
import { RecoveryMetrics } from '../lib/recovery/recovery-metrics';
import { PortCheckpointCatalog } from '../lib/checkpoint/catalog';
import type { ChannelTransport } from '../lib/ports/channels';
import type { MetadataStore } from '../lib/ports/metadata-store';
import type { BlobStore } from '../lib/ports/blob-store';
import type { FailoverStrategy } from '../lib/jobs/job-store';
import type { Logger } from '../lib/ports/telemetry';
import { UnitThreads, type ThreadCounts } from './lib/unit-threads';
import { countingChannels } from './lib/channel-counting';

const FLAGS = defineFlags({
  quick: { type: 'boolean', help: 'a quick run: join P=200, ingest P=500, sources paced to one record per 30 s (the other flags still apply)' },
  joinParallelism: { type: 'number', default: 300, integer: true, min: 1, help: 'parallelism of the recommendation join (4000: with --no-records and --join-failover single on this machine; hours here, docs/scale.md)' },
  ingestParallelism: { type: 'number', default: 1000, integer: true, min: 1, help: 'parallelism of the ingest job (5000: its 100 units\' long polls timed out on the emulator here under load, docs/scale.md)' },
  subtasksPerUnit: { type: 'number', default: 100, integer: true, min: 1, help: 'subtasks per task unit (whole pipeline slices)' },
  runs: { type: 'list', default: ['join', 'ingest', 'p16'], choices: ['join', 'ingest', 'p16'], help: 'which runs' },
  firstRecordS: { type: 'number', default: 60, min: 5, help: 'each source subtask emits one record per this many seconds, the first this long after it opened (idle before, load after)' },
  noRecords: { type: 'boolean', help: 'sources emit no record during the run: an idle window of --idle-s, no load window (checkpoint requests are net of the idle rate). At P=4000 one record per source per period is a watermark to 4000 channels each: 0.6 M channel messages/s at --first-record-s 60, more than one machine carries (docs/scale.md)' },
  idleS: { type: 'number', default: 60, min: 5, help: 'with --no-records: the idle window measured' },
  checkpoints: { type: 'number', default: 3, integer: true, min: 1, help: 'checkpoints through the Step Functions steps before the kill' },
  killAfterS: { type: 'number', default: 0, min: 0, help: "seconds between the last checkpoint and the kill (0: right after it, this process's busiest moment: every unit finishes that checkpoint's work; later, the recovery path with less of this one process's load in it)" },
  joinFailover: { type: 'string', default: 'single-exact', choices: ['single', 'single-exact', 'region', 'full'], help: 'failover of the join (one checkpoint region: region restarts every unit; single and single-exact restart only the killed one, see docs/scale.md)' },
  ingestFailover: { type: 'string', default: 'region', choices: ['single', 'region', 'full'], help: 'failover of the ingest job (a region per pipeline, inside a unit)' },
  checkpointTimeoutS: { type: 'number', default: 240, min: 10, help: 'checkpoint timeout of the jobs (the workflow polls until it is decided)' },
  heartbeatTimeoutS: { type: 'number', default: 120, min: 10, help: 'heartbeat timeout of the jobs: a unit whose record is not written for this long is failed (every unit shares this process, and at P=4000 a checkpoint queues its 12,000 acknowledgements before the heartbeats)' },
  processBufferMb: { type: 'number', default: 0, min: 0, help: "a budget (MiB, estimated) of input buffered by all units of this process together, 0 for none: past half of it a unit receives one envelope at a time, past all of it none (channel-mux.ts InputBudget; costs extra receives)" },
  unitBufferMb: { type: 'number', default: 16, min: 1, help: "most memory (MiB, estimated) each unit's multiplexed inputs hold before its poller waits (a unit process of its own: 64; every unit shares this process: 122 units at P=4000)" },
  dynamodbLocal: { type: 'boolean', help: "DynamoDB on DynamoDB Local (AWS's own emulator, as in the LocalStack lane; started here through localstack/host.sh, needs a JDK 17+ and mvn), SQS and S3 on moto: at P=4000 moto's one DynamoDB process answers each call in 0.2-5 s, and a restart waits on a few (docs/scale.md)" },
  pollMs: { type: 'number', default: 500, integer: true, min: 50, help: 'supervisor poll (the local control plane)' },
  supervisorEveryS: { type: 'number', default: 60, min: 1, help: 'MODEL: the cloud supervisor pass interval (the control plane priced per job)' },
  p16Rate: { type: 'number', default: 10_000, min: 1, help: 'records/s of the P=16 run (events + feature updates)' },
  p16SubtasksPerUnit: { type: 'number', default: 0, integer: true, min: 0, help: 'subtasks per unit of the P=16 run (0: --subtasks-per-unit, the packing of the large runs, which puts its 48 subtasks in one unit; 12: 4 units)' },
  p16Seconds: { type: 'number', default: 20, min: 5, help: 'measured window of the P=16 run (after 10 s of warm-up)' },
  p16LingerMs: { type: 'number', default: 200, integer: true, min: 1, help: "the P=16 job's linger (JobSettings.lingerMs, default 200): longest wait of records in a writer, and each unit's send tick to each other unit" },
  checkpointIntervalS: { type: 'number', default: 60, min: 0, help: 'MODEL: checkpoint interval priced in $/hour' },
  unitVcpu: { type: 'number', default: 1, min: 0.25, help: 'MODEL: Fargate vCPU per unit of --subtasks-per-unit subtasks' },
  unitGb: { type: 'number', default: 2, min: 0.5, help: 'MODEL: Fargate GB per unit' },
  parallelismPerKpu: { type: 'number', default: 1, integer: true, min: 1, help: 'Managed Flink parallelism per KPU (its default: 1)' },
  out: { type: 'string', default: 'bench/results/scale.json', help: 'JSON results file' },
  reportFrom: { type: 'string', help: 'print the report (model, thresholds) again from saved results files, without running anything: several (a,b,...) are reported together, a later run of a name replacing an earlier one, and written to --out' },
});
type Flags = FlagValues<typeof FLAGS>;

// ---- counting ----------------------------------------------------------------------------------

interface Snapshot {
  at: number;
  http: { sqs: number; dynamodb: number; s3: number };
  billed: Billed;
  /** DynamoDB read units of the units' threads alone (the rest is this thread's: control plane). */
  unitsDdbRead: number;
  messages: number;
  payloadBytes: number;
  cpuUs: number;
}

/** What the main thread (control plane, job service) sent. */
const sent = { messages: 0, bytes: 0 };
/** The bench's own reads of unit records for its progress lines (checkpointProgress): left out of every count. */
let progressReads: ObservedMetadataStore | undefined;

/** This thread's counts and the unit threads' added up. */
async function snapshot(threads: UnitThreads): Promise<Snapshot> {
  const t = Object.values(await threads.counts());
  const sum = (f: (c: ThreadCounts) => number) => t.reduce((n, c) => n + f(c), 0);
  const r = requestCounts();
  const b = billedCounts();
  const cpu = process.cpuUsage();
  const own = { reads: progressReads?.reads ?? 0, units: progressReads?.readUnits ?? 0 };
  return {
    at: performance.now(),
    http: { sqs: r.sqs + sum((c) => c.http.sqs), dynamodb: r.dynamodb - own.reads + sum((c) => c.http.dynamodb), s3: r.s3 + sum((c) => c.http.s3) },
    billed: {
      sqs: b.sqsRequests + sum((c) => c.billed.sqsRequests),
      ddbRead: b.dynamodbReadUnits - own.units + sum((c) => c.billed.dynamodbReadUnits),
      ddbWrite: b.dynamodbWriteUnits + sum((c) => c.billed.dynamodbWriteUnits),
      s3Write: b.s3WriteRequests + sum((c) => c.billed.s3WriteRequests),
      s3Read: b.s3ReadRequests + sum((c) => c.billed.s3ReadRequests),
    },
    unitsDdbRead: sum((c) => c.billed.dynamodbReadUnits),
    messages: sent.messages + sum((c) => c.sent.messages),
    payloadBytes: sent.bytes + sum((c) => c.sent.bytes),
    // The process's CPU: every thread's.
    cpuUs: cpu.user + cpu.system,
  };
}

interface Window {
  seconds: number;
  http: { sqs: number; dynamodb: number; s3: number; total: number };
  billed: Billed;
  /** DynamoDB read units of the units' threads alone. */
  unitsDdbRead?: number;
  /** Data + control messages sent (entries), and their payload bytes. */
  messages: number;
  payloadBytes: number;
  cpuSeconds: number;
}

function between(a: Snapshot, b: Snapshot): Window {
  const http = { sqs: b.http.sqs - a.http.sqs, dynamodb: b.http.dynamodb - a.http.dynamodb, s3: b.http.s3 - a.http.s3 };
  return {
    seconds: (b.at - a.at) / 1000,
    http: { ...http, total: http.sqs + http.dynamodb + http.s3 },
    billed: minus(b.billed, a.billed),
    unitsDdbRead: b.unitsDdbRead - a.unitsDdbRead,
    messages: b.messages - a.messages,
    payloadBytes: b.payloadBytes - a.payloadBytes,
    cpuSeconds: (b.cpuUs - a.cpuUs) / 1e6,
  };
}

const perSecond = (w: Window): Billed => scale(w.billed, 1 / w.seconds);

// ---- warnings and errors -----------------------------------------------------------------------

/** Keeps the units' and control plane's warnings and errors (the latest 200), with their unit. */
const problems: string[] = [];
function keepProblem(line: string): void {
  // The latest 200: what went wrong last is what a crash needs.
  if (problems.length >= 200) problems.shift();
  problems.push(line);
  if (process.env.SCALE_VERBOSE) console.error(line);
}
/** The control plane's logger (the units' is their thread's): warnings and errors kept, info lines about SCALE_INFO's units on stderr. */
function problemLogger(attrs: Record<string, unknown> = {}): Logger {
  const who = `control${attrs.unitId !== undefined ? ` (${String(attrs.unitId)}${attrs.attempt !== undefined ? `#${String(attrs.attempt)}` : ''})` : ''}`;
  const keep = (level: string) => (message: string) => keepProblem(`${new Date().toISOString().slice(11, 19)} ${level} ${who}: ${message}`);
  // SCALE_INFO=<unit id>[,<unit id>...]: the control plane's info lines about those units too (a failover's steps).
  const info = process.env.SCALE_INFO && process.env.SCALE_INFO.split(',').includes(String(attrs.unitId)) ? (message: string) => console.error(`${new Date().toISOString().slice(11, 23)} INFO ${who}: ${message}`) : () => undefined;
  return { debug: () => undefined, info, warn: keep('WARN'), error: keep('ERROR'), child: (more) => problemLogger({ ...attrs, ...more }) };
}

// ---- one job ------------------------------------------------------------------------------------

interface CheckpointRun {
  checkpointId: number | null;
  outcome: string;
  seconds: number;
  polls: number;
  window: Window;
  /** The window less the background (load-window) rate over its duration. */
  netHttp: number;
  /**
   * The same for billed units, but DynamoDB reads are the units' (net of their background rate)
   * and the checkpoint steps' own: not the local supervisor's, which reads every unit record each
   * --poll-ms here (deployed a pass runs once a minute, charged in the idle cost). Net of a
   * background that included them, the figure moved with the records' sizes (idle 503-900 read
   * units/s at P=4000) more than with the checkpoint's own reads.
   */
  netBilled: Billed;
  /** DynamoDB read units of the checkpoint steps (trigger, polls, finalize, notify) themselves. */
  stepReadUnits?: number;
  /** The local supervisor's DynamoDB read units in the window (left out of netBilled). */
  supervisorReadUnits?: number;
  /** DynamoDB writes and billed write units, and S3 PUTs, per kind of item or object within the window (gross). */
  writesByKind?: { ddb: KindCounts; s3: KindCounts };
  message?: string;
  /** This process's heap and resident set (MB) when the checkpoint was decided (every unit is in it). */
  heapMb?: number;
  rssMb?: number;
}

interface JobRun {
  name: string;
  job: string;
  parallelism: number;
  subtasks: number;
  units: number;
  queues: number;
  regions: number;
  failover: FailoverStrategy;
  /** The job's linger, when set (JobSettings.lingerMs; missing: the default, 200 ms). */
  lingerMs?: number;
  recordsPerSecond: number;
  submitSeconds: number;
  startSeconds: number;
  /** Heap and resident set (MB) with every unit RUNNING, before any record or checkpoint. */
  startHeapMb?: number;
  startRssMb?: number;
  submitWindow: Window;
  idle: Window;
  load: Window;
  controlPlane: { reads: number; writes: number; readUnits: number; writeUnits: number; seconds: number; supervisorReadUnits?: number };
  /** Writes per kind within the load window (the background a checkpoint's are net of). */
  loadWritesByKind?: { ddb: KindCounts; s3: KindCounts };
  checkpoints: CheckpointRun[];
  recovery?: {
    unitId: string;
    subtasks: number;
    detectionMs: number;
    recoveryMs: number | null;
    runningAgainMs: number;
    unitsRestarted: number;
    /** Heap and resident set (MB) once the new attempt was seen RUNNING. */
    heapMb?: number;
    rssMb?: number;
    /**
     * The control plane's event-loop delay from the kill until the new attempt was seen RUNNING
     * (ms). Before the unit threads (runs before 2026-12-07) every unit, the control plane and the
     * restart shared this one thread.
     */
    eventLoopDelayMs?: { mean: number; p99: number; max: number };
    /** The same for the first attempts' thread and the restarts' thread. */
    threadLoopDelayMs?: { units: { mean: number; p99: number; max: number }; restart: { mean: number; p99: number; max: number } };
    droppedRecords: number | null;
    checkpointAfter: CheckpointRun;
  };
  largest: ItemRecord[];
  hottestPartitionWrites: { pk: string; writes: number };
  errors: string[];
  /** The invocation that measured this run, and where (runs of several invocations are reported together: --report-from). */
  command?: string;
  machine?: MachineInfo;
}

interface Env {
  flags: Flags;
  config: SluiceConfig;
  /** The control plane's DynamoDB and S3 clients (supervisor, failover, checkpoint steps), apart from the units' threads. */
  controlMetadata: MetadataStore;
  controlBlobs: BlobStore;
  /** The job service's queue calls (create, delete; a checkpoint's trigger to the sources). */
  channels: ChannelTransport;
  queuePrefix: string;
  log: (line: string) => void;
  /** Saves what a run measured so far (a run of P=5000 takes an hour: a crash at its end must not lose it). */
  save: (run: JobRun) => void;
}

const fmtBilled = (b: Billed, digits = 1) =>
  `SQS ${b.sqs.toFixed(digits)}, DDB RRU ${b.ddbRead.toFixed(digits)} WRU ${b.ddbWrite.toFixed(digits)}, S3 PUT ${b.s3Write.toFixed(digits)} GET ${b.s3Read.toFixed(digits)}`;

/** The heaps of every thread (control plane and units) and the process's resident set, in MB. */
async function memory(threads: UnitThreads): Promise<{ heapMb: number; rssMb: number }> {
  const m = process.memoryUsage();
  const t = Object.values(await threads.counts());
  return { heapMb: Math.round(m.heapUsed / 2 ** 20) + t.reduce((n, c) => n + c.heapMb, 0), rssMb: Math.round(m.rss / 2 ** 20) };
}

/**
 * A long checkpoint's progress, every `everyMs`, from the unit records (their last reports: a
 * subtask's checkpoint progress rides along with its next report, so it can lag up to a minute):
 * subtasks past checkpoint N, and the units' transport (envelopes held, lapsed and received again).
 */
function checkpointProgress(metadata: MetadataStore, threads: UnitThreads, jobId: string, checkpointId: number, log: (line: string) => void, watchUnit?: string, everyMs = 60_000): () => void {
  progressReads ??= new ObservedMetadataStore(metadata);
  const units = new JobStore(progressReads);
  const started = Date.now();
  let stopped = false;
  const timer = setInterval(() => {
    void Promise.all([units.getUnits(jobId), memory(threads)]).then(([records, mem]) => {
      if (stopped) return;
      let subtasks = 0;
      let past = 0;
      const t = { held: 0, buffered: 0, received: 0, lapsed: 0, expired: 0, failed: 0, lease: 0 };
      for (const u of records) {
        for (const s of Object.values(u.stats ?? {})) {
          subtasks++;
          if ((s.lastCheckpoint ?? 0) >= checkpointId) past++;
        }
        t.held += u.transport?.envelopesHeld ?? 0;
        t.buffered += u.transport?.bufferedBytes ?? 0;
        t.received += u.transport?.envelopesReceived ?? 0;
        t.lapsed += u.transport?.envelopesLapsed ?? 0;
        t.expired += u.transport?.expiredReceipts ?? 0;
        t.failed += u.transport?.deleteFailures ?? 0;
        t.lease = Math.max(t.lease, u.transport?.leaseSeconds ?? 0);
      }
      log(
        `  checkpoint ${checkpointId} after ${Math.round((Date.now() - started) / 1000)} s: ${past} of ${subtasks} subtasks past it (as last reported); ` +
          `units' transport: ${count(t.held)} envelopes held, ${(t.buffered / 2 ** 20).toFixed(0)} MB buffered, ${count(t.received)} received, ${count(t.lapsed)} lapsed, ${count(t.expired)} expired receipts, ${count(t.failed)} failed deletes, longest lease ${t.lease} s; heap ${mem.heapMb} MB`,
      );
      // The unit killed before this checkpoint: how far its restarted subtasks are, and their replays.
      const watched = watchUnit === undefined ? undefined : records.find((u) => u.unitId === watchUnit);
      if (watched) {
        const stats: SubtaskStats[] = Object.values(watched.stats ?? {});
        const replaying = stats.filter((x) => (x.replaysAwaited ?? 0) > 0);
        const tr = watched.transport;
        log(
          `    ${watched.unitId} attempt ${watched.attempt} (${watched.status}): ${stats.filter((x) => (x.lastCheckpoint ?? 0) >= checkpointId).length} of ${stats.length} subtasks past it; ` +
            `${replaying.length} subtask(s) still wait for replays of ${count(replaying.reduce((n, x) => n + (x.replaysAwaited ?? 0), 0))} channel(s); ` +
            `transport: ${count(tr?.envelopesHeld ?? 0)} envelopes held, ${((tr?.bufferedBytes ?? 0) / 2 ** 20).toFixed(1)} MB buffered, ${count(tr?.envelopesReceived ?? 0)} received` +
            (tr?.poller ? `, its poller ${tr.poller.state} for ${Math.round((Date.now() - tr.poller.since) / 1000)} s (as last reported)` : ''),
        );
      }
    }, () => undefined);
  }, everyMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

interface JobSpec {
  name: string;
  job: 'recommendation-join' | 'ingest';
  parallelism: number;
  params: Record<string, number | boolean>;
  failover: FailoverStrategy;
  subtasksPerUnit: number;
  lingerMs?: number;
  recordsPerSecond: number;
  kill: boolean;
  killAfterS?: number;
  checkpoints: number;
  idle: boolean;
  loadSeconds?: number;
  records?: boolean;
}

async function runJob(env: Env, spec: JobSpec): Promise<JobRun> {
  const { flags } = env;
  const controlStore = new ObservedMetadataStore(env.controlMetadata);
  const controlBlobs = new ObservedBlobStore(env.controlBlobs);
  // The units in threads of their own (first attempts in one, restarts in another): deployed, the
  // control plane, which stays in this thread, runs in its own Lambda and Step Functions.
  const launcher = new UnitThreads({
    config: env.config,
    queuePrefix: env.queuePrefix,
    inputBufferBytes: flags.unitBufferMb * 2 ** 20,
    processBufferBytes: flags.processBufferMb * 2 ** 20,
    infoUnits: process.env.SCALE_INFO?.split(',') ?? [],
    heapMb: 12_288,
    onProblem: keepProblem,
  });
  try {
    await launcher.start();
    return await runJobWith(env, spec, launcher, controlStore, controlBlobs);
  } finally {
    await launcher.close();
  }
}

async function runJobWith(env: Env, spec: JobSpec, launcher: UnitThreads, controlStore: ObservedMetadataStore, controlBlobs: ObservedBlobStore): Promise<JobRun> {
  const { flags, log } = env;
  const snap = () => snapshot(launcher);
  const kinds = async () => {
    const t = Object.values(await launcher.counts());
    return {
      ddb: kindsSum(controlStore.writesByKind(), ...t.map((c) => c.ddbKinds)),
      s3: kindsSum(controlBlobs.writesByKind(), ...t.map((c) => c.s3Kinds)),
    };
  };
  const kindsSince = async (a: { ddb: KindCounts; s3: KindCounts }) => {
    const b = await kinds();
    return { ddb: kindsBetween(a.ddb, b.ddb), s3: kindsBetween(a.s3, b.s3) };
  };
  const jobs = new JobStore(controlStore);
  const service = new JobService({ jobs, channels: env.channels, registry: jobRegistry, queuePrefix: env.queuePrefix, launcher });
  // The checkpoint steps' and the supervisor's reads counted apart (CheckpointRun.netBilled).
  const stepStore = new ObservedMetadataStore(controlStore);
  const stepJobs = new JobStore(stepStore);
  const steps = new CheckpointSteps({ jobs: stepJobs, service: new JobService({ jobs: stepJobs, channels: env.channels, registry: jobRegistry, queuePrefix: env.queuePrefix, launcher }), metadata: stepStore, blobs: controlBlobs });
  const supervision = new ObservedMetadataStore(controlStore);
  const metrics = new RecoveryMetrics(controlStore);
  const controller = new JobController({
    service: new JobService({ jobs: new JobStore(supervision), channels: env.channels, registry: jobRegistry, queuePrefix: env.queuePrefix, launcher }),
    metadata: supervision,
    blobs: controlBlobs,
    metrics,
    pollMs: flags.pollMs,
    logger: problemLogger(),
    onFailure: createFailoverHandler({
      jobs,
      service,
      launcher,
      metrics,
      latestManifest: (jobId) => new PortCheckpointCatalog(jobId, controlStore, controlBlobs).loadLatest(),
      logger: problemLogger(),
    }),
  });

  log(`\n== ${spec.name}: ${spec.job} at parallelism ${spec.parallelism}, ${spec.subtasksPerUnit} subtasks per unit, failover '${spec.failover}'${spec.lingerMs !== undefined ? `, linger ${spec.lingerMs} ms` : ''} ==`);
  const s0 = await snap();
  const job = await service.submit({
    job: spec.job,
    params: spec.params,
    failover: spec.failover,
    subtasksPerUnit: spec.subtasksPerUnit,
    ...(spec.lingerMs !== undefined ? { lingerMs: spec.lingerMs } : {}),
    // Generous: 12,000 subtasks share two cores with the emulator here.
    heartbeatTimeoutSeconds: flags.heartbeatTimeoutS,
    checkpoint: { timeoutSeconds: flags.checkpointTimeoutS },
  });
  const s1 = await snap();
  const submitSeconds = (s1.at - s0.at) / 1000;
  log(`submitted ${job.jobId}: ${job.shape.subtasks} subtasks in ${job.units.length} units, ${job.queues.length} queues, ${job.regions.length} regions (${submitSeconds.toFixed(1)} s)`);
  const running = controller.run(job.jobId);
  running.catch(() => undefined);

  await waitFor('every unit RUNNING', 15 * 60_000, async () => {
    const units = await jobs.getUnits(job.jobId);
    const up = units.filter((u) => u.status === 'RUNNING').length;
    if (launcher.errors.length) throw new Error(`units failed to start: ${launcher.errors.slice(0, 3).join('; ')}`);
    return up === job.units.length ? true : undefined;
  }, 2000);
  const s2 = await snap();
  const startSeconds = (s2.at - s1.at) / 1000;
  const started = await memory(launcher);
  log(`all ${job.units.length} units RUNNING ${startSeconds.toFixed(1)} s after submit (${((s2.cpuUs - s1.cpuUs) / 1e6).toFixed(1)} CPU s here); heap ${started.heapMb} MB, RSS ${started.rssMb} MB`);

  // Idle: until the first record (first launch + firstRecordS, less a margin).
  let idle: Window;
  const firstRecordAt = launcher.firstLaunchAt + flags.firstRecordS * 1000;
  const records = spec.records !== false;
  const ca = { reads: controlStore.reads, writes: controlStore.writes, readUnits: controlStore.readUnits, writeUnits: controlStore.writeUnits, supervisorReadUnits: supervision.readUnits };
  if (spec.idle) {
    await sleep(3000);
    const a = await snap();
    const end = records ? firstRecordAt - 3000 : Date.now() + flags.idleS * 1000;
    if (end - Date.now() < 10_000) log(`WARNING: only ${((end - Date.now()) / 1000).toFixed(1)} s of idle window left (raise --first-record-s)`);
    await sleep(Math.max(5000, end - Date.now()));
    idle = between(a, await snap());
    log(`idle ${idle.seconds.toFixed(1)} s: ${fmtBilled(perSecond(idle))} billed/s; HTTP ${idle.http.total / idle.seconds >= 0 ? (idle.http.total / idle.seconds).toFixed(1) : '?'}/s`);
  } else {
    idle = between(s2, s2);
  }

  // Load: from the first records on, one whole period of the sources' pacing (without records:
  // none; what follows is measured against the idle window).
  let load = idle;
  let loadWritesByKind: JobRun['loadWritesByKind'];
  if (records) {
    const loadStart = spec.idle ? Math.max(Date.now(), firstRecordAt + 2000) : Date.now() + 10_000;
    await sleep(Math.max(0, loadStart - Date.now()));
    const la = await snap();
    const ka = await kinds();
    Object.assign(ca, { reads: controlStore.reads, writes: controlStore.writes, readUnits: controlStore.readUnits, writeUnits: controlStore.writeUnits, supervisorReadUnits: supervision.readUnits });
    await sleep((spec.loadSeconds ?? flags.firstRecordS) * 1000);
    load = between(la, await snap());
    loadWritesByKind = await kindsSince(ka);
  }
  const controlPlane = {
    reads: controlStore.reads - ca.reads,
    writes: controlStore.writes - ca.writes,
    readUnits: controlStore.readUnits - ca.readUnits,
    writeUnits: controlStore.writeUnits - ca.writeUnits,
    seconds: load.seconds,
    supervisorReadUnits: supervision.readUnits - ca.supervisorReadUnits,
  };
  if (records) log(`load ${load.seconds.toFixed(1)} s at ${spec.recordsPerSecond.toFixed(1)} records/s: ${fmtBilled(perSecond(load))} billed/s; ${(load.messages / load.seconds).toFixed(1)} messages/s; CPU ${(load.cpuSeconds / load.seconds).toFixed(2)} vCPU here`);
  else log('no load window (--no-records): checkpoints are measured net of the idle rate');

  const background = perSecond(load);
  // The units' reads alone: a checkpoint's DynamoDB reads are theirs and the steps' (CheckpointRun.netBilled).
  const unitsReadRate = (load.unitsDdbRead ?? 0) / load.seconds;
  const backgroundHttp = load.http.total / load.seconds;
  const checkpoint = async (watchUnit?: string): Promise<CheckpointRun> => {
    const a = await snap();
    const ka = await kinds();
    const [stepsAt, supervisedAt] = [stepStore.readUnits, supervision.readUnits];
    const triggered = await steps.trigger({ jobId: job.jobId });
    if (triggered.checkpointId === null) {
      const w = between(a, await snap());
      return { checkpointId: null, outcome: triggered.outcome ?? 'refused', seconds: w.seconds, polls: 0, window: w, netHttp: 0, netBilled: ZERO };
    }
    const stopProgress = checkpointProgress(env.controlMetadata, launcher, job.jobId, triggered.checkpointId, log, watchUnit);
    const run = await runCheckpointWorkflow(steps, { jobId: job.jobId, checkpointId: triggered.checkpointId }, { defaultWaitSeconds: 1, maxPolls: flags.checkpointTimeoutS + 60 }).finally(stopProgress);
    const w = between(a, await snap());
    const r: CheckpointRun = {
      checkpointId: triggered.checkpointId,
      outcome: run.result.outcome ?? '?',
      seconds: w.seconds,
      polls: run.polls,
      window: w,
      netHttp: Math.max(0, w.http.total - backgroundHttp * w.seconds),
      netBilled: { ...clampZero(minus(w.billed, scale(background, w.seconds))), ddbRead: Math.max(0, (w.unitsDdbRead ?? 0) - unitsReadRate * w.seconds) + (stepStore.readUnits - stepsAt) },
      stepReadUnits: stepStore.readUnits - stepsAt,
      supervisorReadUnits: supervision.readUnits - supervisedAt,
      writesByKind: await kindsSince(ka),
      ...(run.result.message ? { message: run.result.message } : {}),
      ...(await memory(launcher)),
    };
    if (r.outcome !== 'completed') for (const p of problems.splice(0, 20)) log(`  ${p}`);
    log(`checkpoint ${r.checkpointId}: ${r.outcome} in ${r.seconds.toFixed(1)} s (${r.polls} polls; their steps read ${count(r.stepReadUnits ?? 0)} RRU); ${count(w.http.total)} HTTP calls (${count(r.netHttp)} net of background); billed net of background (DynamoDB reads: the units' and the steps', not the local supervisor's ${count(r.supervisorReadUnits ?? 0)}): ${fmtBilled(r.netBilled, 0)}; heap ${r.heapMb} MB, RSS ${r.rssMb} MB${r.message ? `; ${r.message.slice(0, 400)}` : ''}`);
    return r;
  };
  const checkpoints: CheckpointRun[] = [];
  for (let i = 0; i < spec.checkpoints; i++) checkpoints.push(await checkpoint());

  let recovery: JobRun['recovery'];
  if (spec.kill && (spec.killAfterS ?? 0) > 0) {
    log(`waiting ${spec.killAfterS} s before the kill (--kill-after-s)`);
    await sleep(spec.killAfterS! * 1000);
  }
  if (spec.kill) {
    // The middle one of the units that host consumers (the join's, or the ingest job's units,
    // which host every task): its restart restores keyed state and, under single, marks its input
    // sub-partitions unavailable and tells every producer unit. A source unit has neither.
    const consumerTasks = new Set((await service.graphOf(job.jobId)).tasks.filter((t) => t.inputs.length > 0).map((t) => t.id));
    const consumerUnits = job.units.filter((u) => u.subtasks.some((s) => consumerTasks.has(s.slice(0, s.lastIndexOf('#')))));
    const victim = consumerUnits[Math.floor(consumerUnits.length / 2)]!;
    const loopDelay = monitorEventLoopDelay({ resolution: 20 });
    loopDelay.enable();
    await launcher.counts(true); // the unit threads' event-loop delays from here on
    const failedAt = Date.now();
    const attempt = launcher.kill(job.jobId, victim.unitId);
    controller.unitExited({ jobId: job.jobId, unitId: victim.unitId, attempt, code: null, signal: 'SIGKILL', at: failedAt });
    log(`killed ${victim.unitId} attempt ${attempt} (${victim.subtasks.length} subtasks of ${[...new Set(victim.subtasks.map((s) => s.slice(0, s.lastIndexOf('#'))))].join(', ')})`);
    const event = await waitFor('the failed unit available again', 10 * 60_000, async () => {
      const events = await metrics.list(job.jobId);
      const e = events.find((x) => x.unitId === victim.unitId && x.attempt === attempt);
      return e && e.availableAgainAt !== null ? e : undefined;
    }, 250);
    const back = await waitFor('the new attempt RUNNING', 10 * 60_000, async () => {
      const u = (await jobs.getUnits(job.jobId)).find((x) => x.unitId === victim.unitId);
      return u && u.attempt > attempt && u.status === 'RUNNING' ? Date.now() : undefined;
    }, 250);
    loopDelay.disable();
    const eventLoopDelayMs = { mean: Math.round(loopDelay.mean / 1e6), p99: Math.round(loopDelay.percentile(99) / 1e6), max: Math.round(loopDelay.max / 1e6) };
    const threads = await launcher.counts();
    const threadLoopDelayMs = { units: threads.units.loopDelayMs, restart: threads.restart.loopDelayMs };
    const recoveredMemory = await memory(launcher);
    const fmtDelay = (d: { mean: number; p99: number; max: number }) => `mean ${d.mean} ms, p99 ${d.p99} ms, max ${d.max} ms`;
    log(
      `recovered: detected after ${event.detectionMs} ms; available again ${event.recoveryMs} ms after the failure; new attempt RUNNING (seen) after ${back - failedAt} ms; ${event.unitsRestarted} unit(s) restarted; heap ${recoveredMemory.heapMb} MB, RSS ${recoveredMemory.rssMb} MB; ` +
        `event-loop delay meanwhile: control plane ${fmtDelay(eventLoopDelayMs)}; first attempts' thread ${fmtDelay(threadLoopDelayMs.units)}; restarts' thread ${fmtDelay(threadLoopDelayMs.restart)}`,
    );
    const after = await checkpoint(victim.unitId);
    const again = (await metrics.list(job.jobId)).find((x) => x.seq === event.seq) ?? event;
    recovery = {
      unitId: victim.unitId,
      subtasks: victim.subtasks.length,
      detectionMs: event.detectionMs,
      recoveryMs: event.recoveryMs,
      runningAgainMs: back - failedAt,
      unitsRestarted: event.unitsRestarted,
      ...recoveredMemory,
      eventLoopDelayMs,
      threadLoopDelayMs,
      droppedRecords: (again as { recordsDropped?: number }).recordsDropped ?? null,
      checkpointAfter: after,
    };
  }

  const byKind = new Map<string, ItemRecord>();
  const final = Object.values(await launcher.counts());
  for (const m of [controlStore.largest, ...final.map((c) => new Map(c.largest))]) for (const [kind, rec] of m) if (!byKind.has(kind) || byKind.get(kind)!.bytes < rec.bytes) byKind.set(kind, rec);
  const largest = [...byKind.values()];
  largest.sort((a, b) => b.bytes - a.bytes);
  // Each thread's own hottest key (a key written from two threads is counted per thread).
  const hottest = [controlStore.hottest, ...final.map((c) => c.hottest)].sort((a, b) => b.writes - a.writes)[0]!;
  const result: JobRun = {
    name: spec.name,
    job: spec.job,
    parallelism: spec.parallelism,
    subtasks: job.shape.subtasks,
    units: job.units.length,
    queues: job.queues.length,
    regions: job.regions.length,
    failover: spec.failover,
    ...(spec.lingerMs !== undefined ? { lingerMs: spec.lingerMs } : {}),
    recordsPerSecond: spec.recordsPerSecond,
    submitSeconds,
    startSeconds,
    startHeapMb: started.heapMb,
    startRssMb: started.rssMb,
    submitWindow: between(s0, s1),
    idle,
    load,
    controlPlane,
    ...(loadWritesByKind ? { loadWritesByKind } : {}),
    checkpoints,
    ...(recovery ? { recovery } : {}),
    largest: largest.slice(0, 5),
    hottestPartitionWrites: { pk: hottest.pk, writes: hottest.writes },
    errors: launcher.errors,
  };
  // Saved before the job is cancelled: cancelling 100+ units and their queues on a busy emulator
  // is the last step and the one that waited longest (and a report lost at that point is an hour).
  env.save(result);
  const cancelled = service.cancel(job.jobId).catch((e: unknown) => log(`cancel: ${e instanceof Error ? e.message : String(e)}`));
  if ((await Promise.race([cancelled.then(() => true), sleep(300_000).then(() => false)])) === false) log('cancel: not done after 300 s; going on');
  await Promise.race([running, sleep(30_000)]);
  return result;
}

/**
 * What the checkpoints before the kill wrote, per kind of DynamoDB item and S3 object: writes and
 * billed units per checkpoint (mean), gross and net of the load window's rate of the same kind.
 */
function writeBreakdown(r: JobRun): string[] {
  const ck = r.checkpoints.filter((c) => c.checkpointId !== null && c.writesByKind);
  if (ck.length === 0) return [];
  const out = [`checkpoint writes by kind (mean of ${ck.length} checkpoint(s), ${r.subtasks} subtasks, ${r.units} units; net: less the load window's rate of the kind):`];
  for (const store of ['ddb', 's3'] as const) {
    const total = kindsSum(...ck.map((c) => c.writesByKind![store]));
    const seconds = ck.reduce((n, c) => n + c.seconds, 0);
    const bg = r.loadWritesByKind?.[store] ?? {};
    const rows = Object.entries(total).map(([kind, n]) => {
      const rate = (bg[kind]?.units ?? 0) / Math.max(1e-9, r.load.seconds);
      const net = Math.max(0, n.units - rate * seconds) / ck.length;
      return { kind, writes: n.writes / ck.length, units: n.units / ck.length, net };
    });
    rows.sort((x, y) => y.net - x.net || y.units - x.units);
    const unitName = store === 'ddb' ? 'WRU' : 'PUT/LIST';
    const netSum = rows.reduce((n, x) => n + x.net, 0);
    out.push(`  ${store === 'ddb' ? 'DynamoDB' : 'S3'} (${unitName}): ${rows.reduce((n, x) => n + x.units, 0).toFixed(0)} gross, ${netSum.toFixed(0)} net per checkpoint; per subtask net ${(netSum / r.subtasks).toFixed(3)}`);
    for (const x of rows) {
      out.push(`    ${x.kind.padEnd(44)} ${x.writes.toFixed(0).padStart(7)} writes ${x.units.toFixed(0).padStart(8)} ${unitName} (net ${x.net.toFixed(0)}, ${(x.net / r.subtasks).toFixed(3)} per subtask; ${(x.units / Math.max(1, x.writes)).toFixed(2)} per write)`);
    }
  }
  return out;
}

// ---- main ---------------------------------------------------------------------------------------

/** A source pace whose first record comes after 10^7 s (116 days): none during a run. */
const NO_RECORDS_RATE = 1e-7;

const money = (x: number) => (x >= 100 ? `$${x.toFixed(0)}` : x >= 1 ? `$${x.toFixed(2)}` : x >= 0.01 ? `$${x.toFixed(3)}` : `$${x.toPrecision(2)}`);

async function main(): Promise<void> {
  const flags = commandFlags('bench:scale', 'npm run bench:scale -- [flags]', FLAGS);
  if (flags.quick) {
    if (!process.argv.includes('--join-parallelism')) flags.joinParallelism = 200;
    if (!process.argv.includes('--first-record-s')) flags.firstRecordS = 30;
    if (!process.argv.includes('--ingest-parallelism')) flags.ingestParallelism = 500;
  }
  if (flags.reportFrom) {
    const files = flags.reportFrom.split(',').filter(Boolean);
    const saved = files.map((file) => ({ file, ...(JSON.parse(readFileSync(file, 'utf8')) as { runs: JobRun[]; command: string; machine: MachineInfo; flags: Flags }) }));
    // One run per job and parallelism (the join at P=300 and at P=4000 are both reported); a later
    // file's run of the same job and parallelism replaces an earlier one.
    const byName = new Map<string, JobRun>();
    for (const s of saved) for (const r of s.runs) byName.set(`${r.name === 'p16' ? 'p16' : r.job}@${r.parallelism}`, { ...r, command: r.command ?? s.command, machine: r.machine ?? s.machine });
    for (const s of saved) console.log(`report of ${s.file} (measured by: ${s.command})`);
    const first = saved[0]!;
    const command = files.length === 1 ? first.command : `npm run bench:scale -- --report-from ${flags.reportFrom}`;
    report({ ...first.flags, out: flags.out, reportFrom: undefined }, [...byName.values()], command, first.machine, performance.now());
    return;
  }
  const wallStart = performance.now();
  const machine = machineInfo();
  const args = process.argv.slice(2).join(' ');
  const command = args ? `npm run bench:scale -- ${args}` : 'npm run bench:scale';
  console.log('Sluice scale benchmark: the real AWS adapters on the emulator; units in two worker threads (first attempts, restarts), the control plane in the main thread');
  console.log(describeMachine(machine));
  console.log(`rerun:   ${command}`);

  if (flags.dynamodbLocal && (process.env.AWS_ENDPOINT_URL?.trim() || process.env.AWS_ENDPOINT_URL_DYNAMODB?.trim())) {
    throw new Error('--dynamodb-local starts DynamoDB Local for the embedded emulator: unset AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_DYNAMODB, or leave the flag out');
  }
  const ddbLocal = flags.dynamodbLocal ? await startDynamoDbLocal({ log: (line) => /install|listens|error|exception/i.test(line) && console.log(`dynamodb-local: ${line}`) }) : undefined;
  if (ddbLocal) process.env.AWS_ENDPOINT_URL_DYNAMODB = ddbLocal.endpoint;
  const endpoint = await resolveEndpoint().catch(async (e: unknown) => {
    await ddbLocal?.stop();
    throw e;
  });
  const config = { ...loadConfig(), table: 'sluice-scale', bucket: 'sluice-scale', queuePrefix: 'scale' };
  // The units' clients are their threads' own (bench/lib/unit-thread.ts). The control plane's
  // DynamoDB and S3 calls (a failover's reads and writes, the checkpoint steps) and the job service's
  // queue calls here: deployed, they run in their own Lambda and Step Functions. The SDK's timeouts
  // run from the request's start, also while it waits for a socket: long, as a submit's 20,000
  // queue creations queue here.
  const queued = { connectionTimeoutMs: 1_800_000, requestTimeoutMs: 1_800_000, maxAttempts: 6 };
  const controlPorts = createAwsPorts(config, { maxSockets: 16, ...queued });
  const servicePorts = createAwsPorts(config, { maxSockets: 64, ...queued });
  await ensureInfrastructure(config, controlPorts.clients);
  console.log(`endpoint: ${endpoint.started ? `embedded emulator, one process per service (moto, unless its AWS_ENDPOINT_URL_<SERVICE> was given): ${Object.entries(endpoint.endpoints).map(([s, u]) => `${s} ${u}`).join(', ')}` : endpoint.endpoint}`);
  const period = flags.firstRecordS;
  const runs: JobRun[] = [];
  const measured = (run: JobRun): JobRun => ({ ...run, command, machine: { ...machine, loadavg1m: machineInfo().loadavg1m } });
  // Until the report replaces it, --out holds the runs measured so far (`--report-from` reads it).
  const save = (run: JobRun) => writeResults(resolve(dirname(fileURLToPath(import.meta.url)), '..', flags.out), { benchmark: 'scale', partial: true, generatedAt: new Date().toISOString(), command, machine, flags, prices: PRICES, runs: [...runs, measured(run)] });
  const env: Env = { flags, config, controlMetadata: controlPorts.metadata, controlBlobs: controlPorts.blobs, channels: countingChannels(servicePorts.channels, sent), queuePrefix: config.queuePrefix, log: (l) => console.log(l), save };

  try {
    if (flags.runs.includes('join')) {
      const P = flags.joinParallelism;
      // Events: one per subtask per period; feature updates paced to the same span (a tenth).
      runs.push(
        measured(await runJob(env, {
          name: 'join',
          job: 'recommendation-join',
          parallelism: P,
          params: { parallelism: P, partitions: P, events: P * 1000, featureUpdates: P * 100, users: 999_999, minutes: 60, rate: flags.noRecords ? NO_RECORDS_RATE : 1 / period },
          failover: flags.joinFailover as FailoverStrategy,
          subtasksPerUnit: flags.subtasksPerUnit,
          recordsPerSecond: flags.noRecords ? 0 : (P / period) * 1.1,
          kill: true,
          killAfterS: flags.killAfterS,
          checkpoints: flags.checkpoints,
          idle: true,
          records: !flags.noRecords,
        })),
      );
    }
    if (flags.runs.includes('ingest')) {
      const P = flags.ingestParallelism;
      runs.push(
        measured(await runJob(env, {
          name: 'ingest',
          job: 'ingest',
          parallelism: P,
          params: { parallelism: P, partitions: P, recordsPerPartition: 1000, rate: flags.noRecords ? NO_RECORDS_RATE : 1 / period },
          failover: flags.ingestFailover as FailoverStrategy,
          subtasksPerUnit: flags.subtasksPerUnit,
          recordsPerSecond: flags.noRecords ? 0 : P / period,
          kill: true,
          killAfterS: flags.killAfterS,
          checkpoints: flags.checkpoints,
          idle: true,
          records: !flags.noRecords,
        })),
      );
    }
    if (flags.runs.includes('p16')) {
      const P = 16;
      const eventRate = flags.p16Rate / 1.1 / P;
      const seconds = flags.p16Seconds + 10 + 120;
      runs.push(
        measured(await runJob(env, {
          name: 'p16',
          job: 'recommendation-join',
          parallelism: P,
          params: { parallelism: P, partitions: P, events: Math.ceil(eventRate * P * seconds), featureUpdates: Math.ceil(eventRate * P * seconds * 0.1), users: 100_000, minutes: 60, rate: eventRate },
          failover: 'single',
          subtasksPerUnit: flags.p16SubtasksPerUnit || flags.subtasksPerUnit,
          lingerMs: flags.p16LingerMs,
          recordsPerSecond: flags.p16Rate,
          kill: false,
          checkpoints: 1,
          idle: false,
          loadSeconds: flags.p16Seconds,
        })),
      );
    }
    report(flags, runs, command, machine, wallStart);
  } finally {
    // Cancelled units may still be ending: what they meet once the emulator is gone is not news.
    finished = true;
    controlPorts.clients.destroy();
    servicePorts.clients.destroy();
    await endpoint.stop();
    await ddbLocal?.stop();
  }
}

let finished = false;
process.on('unhandledRejection', (error) => {
  if (finished) return;
  console.error('unhandled rejection:', error instanceof Error ? error.message : error);
});

/** The local supervisor's DynamoDB reads in a run: per second here (every `pollMs`) and per supervision pass. */
function supervisorReads(r: JobRun, flags: Flags): { perSecond: number; perPass: number } {
  const perSecond = (r.controlPlane.supervisorReadUnits ?? r.controlPlane.readUnits) / r.controlPlane.seconds;
  return { perSecond, perPass: perSecond * (flags.pollMs / 1000) };
}

function report(flags: Flags, runs: JobRun[], command: string, machine: ReturnType<typeof machineInfo>, wallStart: number): void {
  const byParallelism = (a: JobRun, b: JobRun) => a.parallelism - b.parallelism;
  const joins = runs.filter((r) => r.name !== 'p16' && r.job === 'recommendation-join').sort(byParallelism);
  const ingests = runs.filter((r) => r.job === 'ingest').sort(byParallelism);
  const p16 = runs.find((r) => r.name === 'p16');
  // The cost model's idle and checkpoint coefficients come from the largest join measured with an
  // idle window: rates at P=300 are not what P=4000 does (issue 12 asks for them at P>=1000).
  const join = [...joins].reverse().find((r) => r.idle.seconds > 0) ?? joins.at(-1);
  const ingest = ingests.at(-1);

  console.log('\nPrice table (us-east-1 list prices):\n');
  console.log(markdownTable(['item', 'price'], PRICE_TABLE));

  // ---- measured -----------------------------------------------------------------------------
  const rows: string[][] = [];
  for (const r of runs) {
    const idle = r.idle.seconds > 0 ? perSecond(r.idle) : undefined;
    const load = perSecond(r.load);
    const ck = r.checkpoints.filter((c) => c.checkpointId !== null);
    const ckHttp = ck.length ? ck.reduce((n, c) => n + c.netHttp, 0) / ck.length : NaN;
    const ckBilled = ck.length ? scale(ck.reduce((n, c) => add(n, c.netBilled), ZERO), 1 / ck.length) : ZERO;
    const flink = flinkCost(r.parallelism, flags.parallelismPerKpu);
    rows.push([
      `${r.job} P=${r.parallelism}`,
      `${r.subtasks} / ${r.units} / ${r.queues}`,
      r.largest[0] ? `${count(r.largest[0].bytes)} B` : '-',
      idle ? `${(r.idle.http.sqs / r.idle.seconds).toFixed(1)} / ${(r.idle.http.dynamodb / r.idle.seconds).toFixed(1)} / ${(r.idle.http.s3 / r.idle.seconds).toFixed(1)}` : '-',
      idle ? money(dollarsPerHour(idle)) : '-',
      `${r.recordsPerSecond.toFixed(0)}`,
      `${(r.load.http.sqs / r.load.seconds).toFixed(1)} / ${(r.load.http.dynamodb / r.load.seconds).toFixed(1)} / ${(r.load.http.s3 / r.load.seconds).toFixed(1)}`,
      money(dollarsPerHour(load)),
      `${count(ckHttp)} (${count(ckBilled.sqs + ckBilled.ddbRead + ckBilled.ddbWrite + ckBilled.s3Read + ckBilled.s3Write)} billed, ${money(dollars(ckBilled))})`,
      `${ck.map((c) => c.seconds.toFixed(0)).join(', ')} s`,
      r.recovery ? `${seconds(r.recovery.recoveryMs ?? NaN)} (RUNNING ${seconds(r.recovery.runningAgainMs)}); ckpt after: ${r.recovery.checkpointAfter.outcome}` : '-',
      `${flink.kpus} KPU = ${money(flink.perHour)}`,
    ]);
  }
  const header = ['run', 'subtasks / units / queues', 'largest item', 'idle HTTP/s SQS / DDB / S3', 'idle $/h', 'records/s', 'load HTTP/s SQS / DDB / S3', 'load $/h (requests)', 'requests per checkpoint (net)', 'checkpoint times', 'recovery', 'Managed Flink'];
  console.log(`\nMeasured through the real adapters (${flags.subtasksPerUnit} subtasks per unit; P=16 run: ${flags.p16SubtasksPerUnit || flags.subtasksPerUnit}):\n`);
  console.log(markdownTable(header, rows, header.map((_, c) => (c === 0 ? 'left' : 'right'))));

  for (const r of runs) {
    console.log(`\n${r.name}: ${r.command ? `measured by \`${r.command}\`${r.machine ? ` (load average ${r.machine.loadavg1m})` : ''}` : ''}`);
    console.log(`  largest DynamoDB items written (by kind):`);
    for (const it of r.largest) console.log(`  ${String(it.bytes).padStart(7)} B  ${it.pk} / ${it.sk}`);
    console.log(`  hottest partition key: ${r.hottestPartitionWrites.writes} writes in one second (${r.hottestPartitionWrites.pk})`);
    const idle = r.idle.seconds > 0 ? perSecond(r.idle) : undefined;
    if (idle) console.log(`  idle billed/s: ${fmtBilled(idle, 2)} over ${r.idle.seconds.toFixed(0)} s`);
    console.log(`  load billed/s: ${fmtBilled(perSecond(r.load), 2)} over ${r.load.seconds.toFixed(0)} s; ${(r.load.messages / r.load.seconds).toFixed(1)} messages/s sent, ${(r.load.payloadBytes / Math.max(1, r.load.messages)).toFixed(0)} B each; CPU in the unit process ${(r.load.cpuSeconds / r.load.seconds).toFixed(2)} vCPU`);
    console.log(`  control plane (supervisor every ${flags.pollMs} ms, JobService.view): ${(r.controlPlane.reads / r.controlPlane.seconds).toFixed(1)} reads/s, ${(r.controlPlane.readUnits / r.controlPlane.seconds).toFixed(1)} RRU/s`);
    console.log(`  submit: ${r.submitSeconds.toFixed(1)} s, ${count(r.submitWindow.http.total)} HTTP calls (SQS ${r.submitWindow.http.sqs}); all units RUNNING after ${r.startSeconds.toFixed(1)} s`);
    if (r.startHeapMb !== undefined) console.log(`  heap with every unit RUNNING: ${r.startHeapMb} MB (RSS ${r.startRssMb} MB)`);
    for (const c of r.checkpoints) console.log(`  checkpoint ${c.checkpointId}: ${c.outcome}, ${c.seconds.toFixed(1)} s, ${count(c.window.http.total)} HTTP calls (SQS ${c.window.http.sqs}, DDB ${c.window.http.dynamodb}, S3 ${c.window.http.s3}), net ${count(c.netHttp)}${c.heapMb !== undefined ? `; heap ${c.heapMb} MB, RSS ${c.rssMb} MB after it` : ''}`);
    if (r.recovery) {
      const rc = r.recovery;
      console.log(`  kill ${rc.unitId} (${rc.subtasks} subtasks), failover '${r.failover}': detected ${rc.detectionMs} ms (exit notice), available again ${rc.recoveryMs} ms, new attempt seen RUNNING ${rc.runningAgainMs} ms, ${rc.unitsRestarted} unit(s) restarted, records dropped ${rc.droppedRecords ?? '?'}; checkpoint ${rc.checkpointAfter.checkpointId} after it: ${rc.checkpointAfter.outcome} in ${rc.checkpointAfter.seconds.toFixed(1)} s`);
    }
    if (r.errors.length) console.log(`  unit errors: ${r.errors.slice(0, 5).join('; ')}`);
    for (const line of writeBreakdown(r)) console.log(`  ${line}`);
  }

  // ---- coefficients ------------------------------------------------------------------------------
  const base = join ?? ingest;
  let coefficients: Coefficients | undefined;
  if (base && p16) {
    const { perSecond: readsHere, perPass: controlPerPass } = supervisorReads(base, flags);
    const controlPlanePerS: Billed = { ...ZERO, ddbRead: controlPerPass / flags.supervisorEveryS };
    const idleTotal = perSecond(base.idle);
    const controlHere: Billed = { ...ZERO, ddbRead: readsHere };
    const idlePerUnit = scale(clampZero(minus(idleTotal, controlHere)), 1 / base.units);
    // Load beyond idle and beyond the SQS of its messages, per unit (heartbeat reports, staging).
    const p16Load = perSecond(p16.load);
    const p16Control: Billed = { ...ZERO, ddbRead: p16.controlPlane.readUnits / p16.controlPlane.seconds };
    const p16Msgs = p16.load.messages / p16.load.seconds;
    const p16Idle = add(scale(idlePerUnit, p16.units), p16Control);
    const sqsPerMessage = p16Msgs > 0 ? Math.max(0, p16Load.sqs - p16Idle.sqs) / p16Msgs : 3;
    const loadPerUnit = scale(clampZero({ ...minus(p16Load, p16Idle), sqs: 0 }), 1 / p16.units);
    const ck = base.checkpoints.filter((c) => c.checkpointId !== null);
    const ckBilled = scale(ck.reduce((n, c) => add(n, c.netBilled), ZERO), 1 / Math.max(1, ck.length));
    // Snapshots and acknowledgements go with subtasks; SQS (barriers, trigger and complete) with units.
    const checkpointPerSubtask: Billed = { ...ckBilled, sqs: 0 };
    const checkpointPerUnit: Billed = { ...ZERO, sqs: ckBilled.sqs / base.units };
    coefficients = {
      idlePerUnit,
      loadPerUnit,
      controlPlanePerS,
      sqsPerMessage,
      bytesPerRecord: p16.load.payloadBytes / Math.max(1, p16.recordsPerSecond * p16.load.seconds),
      checkpointPerSubtask: scale(checkpointPerSubtask, 1 / base.subtasks),
      checkpointPerUnit,
      cpuSecondsPerRecord: p16.load.cpuSeconds / (p16.recordsPerSecond * p16.load.seconds),
      lingerMs: 200,
      maxMessageBytes: 256 * 1024,
    };
    console.log(`
Cost model coefficients (how each is derived):
- idle per unit = (${base.name} idle billed/s - its supervisor's reads) / ${base.units} units: ${fmtBilled(idlePerUnit, 4)} per s
- control plane per job = the reads of one supervision pass (measured: ${controlPerPass.toFixed(1)} RRU) every ${flags.supervisorEveryS} s (the cloud's schedule)
- SQS requests per data message = (P=16 load SQS billed/s - idle at its units) / messages sent per s = ${sqsPerMessage.toFixed(2)}
- load per unit (beyond messages) = (P=16 load billed/s - idle, SQS aside) / ${p16.units} units: ${fmtBilled(loadPerUnit, 3)} per s
- bytes per record = P=16 payload bytes / records = ${coefficients.bytesPerRecord.toFixed(0)} B; CPU per record (P=16, in this process) = ${(coefficients.cpuSecondsPerRecord * 1e6).toFixed(1)} us
- checkpoint = ${base.name}'s net billed per checkpoint: S3 and DynamoDB per subtask (${fmtBilled(coefficients.checkpointPerSubtask, 3)}), SQS per unit (${checkpointPerUnit.sqs.toFixed(1)})
- messages per second (all-to-all join): each source unit flushes every 200 ms to the join units its records hash to (bench/lib/scale-cost.ts allToAllMessagesPerSecond)
- compute: Fargate ${flags.unitVcpu} vCPU + ${flags.unitGb} GB per unit of ${flags.subtasksPerUnit} subtasks, more vCPU when records x CPU per record needs it; checkpoints every ${flags.checkpointIntervalS} s`);

    const model: ModelRow[] = [];
    for (const P of [4, 16, 256, 4000]) {
      for (const R of [0, 10_000, 1_000_000]) {
        model.push(modelRow(coefficients, { parallelism: P, recordsPerSecond: R, subtasksPerUnit: flags.subtasksPerUnit, checkpointIntervalS: flags.checkpointIntervalS, unitVcpu: flags.unitVcpu, unitGb: flags.unitGb, parallelismPerKpu: flags.parallelismPerKpu }));
      }
    }
    const mh = ['P', 'records/s', 'units', 'msgs/s', 'SQS req/s', 'DDB RRU+WRU/s', 'S3 req/s', 'requests $/h', 'compute $/h (vCPU)', 'total $/h', 'Flink KPU / $/h', 'req $/M records', 'Flink $/M records'];
    const mrows = model.map((m) => [
      String(m.parallelism),
      count(m.recordsPerSecond),
      String(m.units),
      m.messagesPerSecond.toFixed(0),
      m.billedPerSecond.sqs.toFixed(1),
      (m.billedPerSecond.ddbRead + m.billedPerSecond.ddbWrite).toFixed(1),
      (m.billedPerSecond.s3Read + m.billedPerSecond.s3Write).toFixed(1),
      money(m.requestDollarsPerHour),
      `${money(m.computeDollarsPerHour)} (${m.computeVcpu.toFixed(1)})`,
      money(m.totalDollarsPerHour),
      `${m.flinkKpus} / ${money(m.flinkDollarsPerHour)}`,
      Number.isNaN(m.requestDollarsPerMillionRecords) ? '-' : money(m.requestDollarsPerMillionRecords),
      Number.isNaN(m.flinkDollarsPerMillionRecords) ? '-' : money(m.flinkDollarsPerMillionRecords),
    ]);
    console.log(`\nCost model: the recommendation join, ${flags.subtasksPerUnit} subtasks per unit, Managed Flink at ${flags.parallelismPerKpu} parallelism per KPU:\n`);
    console.log(markdownTable(mh, mrows, mh.map(() => 'right')));

    // Packings of the P=4000 join: compute only.
    const P = 4000;
    const flink = flinkCost(P, flags.parallelismPerKpu);
    const packings = [1, 10, 100, 1000].map((n) => {
      const units = joinUnits(P, n);
      const vcpu = Math.max(0.25, (flags.unitVcpu * n) / flags.subtasksPerUnit);
      const gb = Math.max(0.5, vcpu * (flags.unitGb / flags.unitVcpu));
      return [String(n), String(units), `${vcpu} vCPU / ${gb} GB`, money(fargatePerHour(units, vcpu, gb)), money(lambdaPerHour(units, Math.max(gb, 0.128))), money(flink.perHour)];
    });
    console.log(`\nCompute of the P=4000 join by packing (unit size ${flags.unitVcpu} vCPU per ${flags.subtasksPerUnit} subtasks, at least Fargate's 0.25 vCPU / 0.5 GB), vs Managed Flink at P=4000:\n`);
    console.log(markdownTable(['subtasks/unit', 'units', 'unit size', 'Fargate $/h', 'Lambda $/h (same GB)', 'Managed Flink $/h'], packings, ['right', 'right', 'right', 'right', 'right', 'right']));
    if (join) console.log(`(measured: ${join.units} units of ${flags.subtasksPerUnit} subtasks used ${(join.load.cpuSeconds / join.load.seconds).toFixed(2)} vCPU in all here at ${join.recordsPerSecond.toFixed(0)} records/s: ${((join.load.cpuSeconds / join.load.seconds) / join.units).toFixed(3)} vCPU per unit)`);

    // ---- thresholds --------------------------------------------------------------------------------
    const lines: [string, boolean | undefined, string][] = [];
    const item = Math.max(0, ...runs.map((r) => r.largest[0]?.bytes ?? 0));
    const bigRuns = runs.filter((r) => r.name !== 'p16');
    // Issue 12: at least three checkpoints through the steps, a kill, its recovery and one more checkpoint.
    const wholeRun = (r: JobRun) => r.checkpoints.length >= 3 && r.checkpoints.every((c) => c.outcome === 'completed') && r.recovery?.checkpointAfter.outcome === 'completed' && r.recovery.recoveryMs !== null;
    const named = (r: JobRun) => `${r.job} P=${r.parallelism} (${r.checkpoints.length}+1)${wholeRun(r) ? '' : ' (NOT whole)'}`;
    lines.push([`created, checkpointed (at least 3, then 1 after the kill) and recovered through the real adapters: ${bigRuns.map(named).join(', ')}`,
      bigRuns.length > 0 && bigRuns.every(wholeRun), '']);
    // The seed's scale itself, measured (not modelled): the join at P=4000 and the ingest job at P=5000.
    const seedJoin = joins.filter((r) => r.parallelism >= 4000).at(-1);
    const seedIngest = ingests.filter((r) => r.parallelism >= 5000).at(-1);
    const seedRuns = [seedJoin, seedIngest].filter((r): r is JobRun => r !== undefined);
    const missing = [seedJoin ? '' : 'recommendation-join P=4000', seedIngest ? '' : 'ingest P=5000'].filter(Boolean);
    lines.push([`at the seed's scale, created, checkpointed and recovered through the real adapters: ${seedRuns.map(named).join(', ') || 'none'}${missing.length ? `; not measured: ${missing.join(', ')}` : ''}`,
      missing.length === 0 && seedRuns.every(wholeRun), '']);
    lines.push([`no DynamoDB item over 400 KB (largest ${item} B)`, item <= 400 * 1024, '']);
    for (const j of joins) {
      if (j.idle.seconds > 0) {
        // The local supervisor reads every unit record each 500 ms; the cloud's runs once a minute
        // (the model's control plane): judged with the cloud's, both printed.
        const idleHere = perSecond(j.idle);
        const { perSecond: readsHere, perPass } = supervisorReads(j, flags);
        const idleCloud = dollarsPerHour({ ...idleHere, ddbRead: Math.max(0, idleHere.ddbRead - readsHere) + perPass / flags.supervisorEveryS });
        lines.push([`idle request cost at P=${j.parallelism} <= $2/hour (measured ${money(idleCloud)}/h with a supervision pass every ${flags.supervisorEveryS} s; ${money(dollarsPerHour(idleHere))}/h with the local supervisor reading every ${flags.pollMs} ms)`, idleCloud <= 2, '']);
      }
      const ck = j.checkpoints.filter((c) => c.checkpointId !== null);
      const worst = Math.max(...ck.map((c) => c.netHttp), ...ck.map((c) => { const b = c.netBilled; return b.sqs + b.ddbRead + b.ddbWrite + b.s3Read + b.s3Write; }));
      if (ck.length > 0) lines.push([`one checkpoint at P=${j.parallelism} <= 50,000 requests (worst: ${count(worst)}, the larger of HTTP calls and billed units, net of background${ck.every((c) => c.supervisorReadUnits !== undefined) ? " and the local supervisor's reads" : ''})`, worst <= 50_000, '']);
    }
    // P=4000 from the measured coefficients, while the join at P=4000 itself is not measured.
    const idle4000 = modelRow(coefficients, { parallelism: 4000, recordsPerSecond: 0, subtasksPerUnit: flags.subtasksPerUnit, checkpointIntervalS: 0, unitVcpu: flags.unitVcpu, unitGb: flags.unitGb, parallelismPerKpu: flags.parallelismPerKpu });
    if (!seedJoin) lines.push([`MODEL: idle request cost at P=4000 <= $2/hour (${idle4000.units} units x measured idle per unit + a supervision pass every ${flags.supervisorEveryS} s, no checkpoints: ${money(idle4000.requestDollarsPerHour)}/h; with a checkpoint every ${flags.checkpointIntervalS} s: ${money(model.find((m) => m.parallelism === 4000 && m.recordsPerSecond === 0)!.requestDollarsPerHour)}/h)`, idle4000.requestDollarsPerHour <= 2, '']);
    const ckBase = base.checkpoints.filter((c) => c.checkpointId !== null);
    const httpPerSubtask = ckBase.reduce((n, c) => n + c.netHttp, 0) / Math.max(1, ckBase.length) / base.subtasks;
    const b4000 = add(scale(coefficients.checkpointPerSubtask, 12_000), scale(coefficients.checkpointPerUnit, joinUnits(4000, flags.subtasksPerUnit)));
    const billed4000 = b4000.sqs + b4000.ddbRead + b4000.ddbWrite + b4000.s3Read + b4000.s3Write;
    if (!seedJoin) lines.push([`MODEL: one checkpoint at P=4000 (12,000 subtasks) <= 50,000 requests (${base.name}'s per-subtask figures x 12,000: ${count(httpPerSubtask * 12_000)} HTTP calls, ${count(billed4000)} billed units, ${money(dollars(b4000))})`, Math.max(httpPerSubtask * 12_000, billed4000) <= 50_000, '']);
    const sqs16 = p16 ? p16.load.http.sqs / p16.load.seconds : NaN;
    const sqs16b = p16 ? perSecond(p16.load).sqs : NaN;
    lines.push([`<= 100 SQS requests/s at P=16 at ${flags.p16Rate} records/s (measured ${sqs16.toFixed(1)} HTTP, ${sqs16b.toFixed(1)} billed, ${p16?.units} units, linger ${p16?.lingerMs ?? 200} ms)`, p16 ? Math.max(sqs16, sqs16b) <= 100 : undefined, '']);
    const at4 = model.find((m) => m.parallelism === 4 && m.recordsPerSecond === 10_000)!;
    lines.push([`request cost per million records at P=4, 10,000 records/s (model: ${money(at4.requestDollarsPerMillionRecords)}) <= Managed Flink's whole cost per million (${money(at4.flinkDollarsPerMillionRecords)})`, at4.requestDollarsPerMillionRecords <= at4.flinkDollarsPerMillionRecords, '']);
    const packed = fargatePerHour(joinUnits(P, flags.subtasksPerUnit), flags.unitVcpu, flags.unitGb);
    lines.push([`a packing at which P=4000 join compute <= Managed Flink (${flags.subtasksPerUnit}/unit: ${money(packed)}/h vs ${money(flink.perHour)}/h)`, packed <= flink.perHour, '']);
    // The seed's 5 s is single-point recovery's; a region restart of the whole join is reported, not judged by it.
    for (const j of joins) {
      if (!j.recovery) continue;
      const judged = isSinglePoint(j.failover);
      lines.push([`recovery <= 5 s at P=${j.parallelism} (failover '${j.failover}', ${j.recovery.unitsRestarted} unit(s) restarted; failure -> available again: ${seconds(j.recovery.recoveryMs ?? NaN)})${judged ? '' : ': the seed\'s 5 s is for single-point recovery'}`, judged ? (j.recovery.recoveryMs ?? Infinity) <= 5000 : undefined, '']);
    }
    console.log('\nIssue 12 thresholds:\n');
    for (const [what, ok] of lines) console.log(`  ${ok === undefined ? 'n/a ' : ok ? 'PASS' : 'FAIL'}  ${what}`);

    const out = resolve(dirname(fileURLToPath(import.meta.url)), '..', flags.out);
    writeResults(out, {
      benchmark: 'scale',
      generatedAt: new Date().toISOString(),
      command,
      machine,
      flags,
      prices: PRICES,
      runs,
      coefficients,
      model,
      thresholds: lines.map(([what, ok]) => ({ what, pass: ok ?? null })),
      wallSeconds: Math.round((performance.now() - wallStart) / 100) / 10,
    });
    console.log(`\nresults written to ${flags.out}`);
  } else {
    console.log('\n(cost model and thresholds need the join or ingest run and the p16 run)');
    writeResults(resolve(dirname(fileURLToPath(import.meta.url)), '..', flags.out), { benchmark: 'scale', generatedAt: new Date().toISOString(), command, machine, flags, prices: PRICES, runs });
  }
  console.log(`rerun:   ${command}`);
  console.log(`total wall time ${seconds(performance.now() - wallStart)}`);
}

main()
  .then(() => process.exit(0))
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    // What the units and the control plane warned of before it (a P=5000 run ended on a queue
    // that "no longer exists" with nothing else to go by).
    if (problems.length > 0) console.error(`\nwarnings and errors before it (${problems.length}${problems.length >= 200 ? ', the latest 200' : ''}):\n${problems.map((p) => `  ${p}`).join('\n')}`);
    process.exit(1);
  });
