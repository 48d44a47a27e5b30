/**
 * A worker thread that hosts task units for bench:scale (its entry; `unit-threads.ts` starts it).
 *
 * Why a thread: at P=4000 one thread ran 119 units of 100 subtasks, the control plane and the
 * restarted unit, and a failover's steps waited seconds at a time behind the others' work (event
 * loop stalls up to 8.5 s, docs/scale.md). Deployed, the control plane is a Lambda and a restarted
 * unit a process of its own; here the first attempts run in one thread, restarts in another, each
 * with an event loop, heap and sockets of its own, and the control plane stays in the main thread.
 *
 * Each unit runs through hostUnit (what the child processes, Lambda and Fargate run) over its own
 * kill switch. A kill is a flag in shared memory, set by the main thread: it takes effect at the
 * unit's next call or result even while this thread is busy, as SIGKILL does not wait for a process.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Session } from 'node:inspector/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createAwsPorts, billedCounts, requestCounts } from '../../lib/aws';
import type { SluiceConfig } from '../../lib/config';
import { jobRegistry } from '../../examples/jobs';
import { JobStore, type JobRecord, type UnitPlacement } from '../../lib/jobs/job-store';
import { hostUnit } from '../../lib/host/unit-host';
import type { ControlMessage } from '../../lib/runtime/messages';
import type { Logger } from '../../lib/ports/telemetry';
import { killSwitch } from '../../lib/memory/kill-switch';
import { InputBudget } from '../../lib/runtime/channel-mux';
import { ObservedMetadataStore } from './metadata-observer';
import { ObservedBlobStore } from './blob-observer';
import { countingChannels, receivesFrom } from './channel-counting';
import type { ThreadCounts, ThreadReply, ThreadRequest, UnitThreadData } from './unit-threads';

const data = workerData as UnitThreadData;
const port = parentPort!;
const killed = new Int32Array(data.killFlags);

/**
 * The thread's clients. Receives: a socket per long poll (two per unit). Sends, deletes and
 * visibility changes, S3 and DynamoDB: few sockets, so a checkpoint's thousands of barrier
 * envelopes and snapshot writes queue here, not at the emulator's one-threaded servers. The SDK's
 * connection and request timeouts run from the request's start, also while it waits here for a
 * socket: long, or a queued call fails as unreachable (the P=1000 join's barrier envelopes did, 30 s
 * into its first checkpoint; the P=4000 join's snapshot writes after 300 s). Deletes and visibility
 * changes have sockets of their own: queued behind a checkpoint's barrier sends they came after the
 * envelope's lease, and a FIFO group whose first envelope is not deleted delivers nothing after it.
 */
function ports(config: SluiceConfig, many: boolean) {
  const queued = { connectionTimeoutMs: 1_800_000, requestTimeoutMs: 1_800_000, maxAttempts: 6 };
  const polls = createAwsPorts(config, { maxSockets: 1024, connectionTimeoutMs: 30_000, requestTimeoutMs: 120_000, maxAttempts: 6 });
  // A restart's sends on 128 sockets: its announce tells every producer unit at once (80 at P=4000).
  const sends = createAwsPorts(config, { maxSockets: many ? 64 : 128, ...queued });
  const settles = many ? createAwsPorts(config, { maxSockets: 64, ...queued }) : sends;
  const rest = createAwsPorts(config, { maxSockets: 32, ...queued });
  return { channels: receivesFrom(polls.channels, settles.channels, sends.channels), metadata: rest.metadata, blobs: rest.blobs };
}

const sent = { messages: 0, bytes: 0 };

function post(message: ThreadReply): void {
  port.postMessage(message);
}

function logger(attrs: Record<string, unknown> = {}): Logger {
  const who = `${String(attrs.unitId ?? data.role)}${attrs.attempt !== undefined ? `#${String(attrs.attempt)}` : ''}`;
  const keep = (level: string) => (message: string) => post({ type: 'problem', line: `${new Date().toISOString().slice(11, 19)} ${level} ${who}: ${message}` });
  // SCALE_INFO=<unit id>[,...]: those units' info lines too, on stderr (what a stuck unit waits for).
  const info = data.infoUnits.includes(String(attrs.unitId))
    ? (message: string) => console.error(`${new Date().toISOString().slice(11, 23)} INFO ${who}${attrs.subtask ? ` ${String(attrs.subtask)}` : ''}: ${message}`)
    : () => undefined;
  return { debug: () => undefined, info, warn: keep('WARN'), error: keep('ERROR'), child: (more) => logger({ ...attrs, ...more }) };
}

const own = ports(data.config, data.role === 'units');
const metadata = new ObservedMetadataStore(own.metadata);
const blobs = new ObservedBlobStore(own.blobs);
const channels = countingChannels(own.channels, sent);
const budget = data.processBufferBytes > 0 ? new InputBudget(data.processBufferBytes) : undefined;
const live = new Map<string, { attempt: number; controlQueue: string; kill: () => void }>();
const loopDelay = monitorEventLoopDelay({ resolution: 20 });
loopDelay.enable();

/**
 * SCALE_PROFILE_RESTART=<dir>: a CPU profile of this thread's first 60 s from a restart it
 * launches (one at a time) (`<dir>/<unit>-<attempt>.cpuprofile`, for Chrome's DevTools): where a restart's time goes
 * in its own event loop (at P=4000 it stalled up to 4.7 s around its restore).
 */
let profiling = false;
async function profileRestart(name: string, ms = 60_000): Promise<void> {
  const dir = process.env.SCALE_PROFILE_RESTART;
  // One profile at a time: a restart within another's 60 s is in that one's profile already.
  if (!dir || data.role === 'units' || profiling) return;
  profiling = true;
  const session = new Session();
  try {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 1000 });
    await session.post('Profiler.start');
    await new Promise((r) => setTimeout(r, ms));
    const { profile } = await session.post('Profiler.stop');
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/${name}.cpuprofile`, JSON.stringify(profile));
  } finally {
    session.disconnect();
    profiling = false;
  }
  console.error(`profile of ${name}: ${dir}/${name}.cpuprofile`);
}

function launch(job: JobRecord, unit: UnitPlacement, attempt: number, slot: number): void {
  if (attempt > 0) void profileRestart(`${unit.unitId}-${attempt}`).catch((error: unknown) => console.error(`profile of ${unit.unitId}: ${String(error)}`));
  // Killed by the main thread through its slot (seen at the unit's next call or result) or by a stop.
  const sw = killSwitch({ shared: { flags: killed, slot } });
  // A killed unit's inboxes are never taken again: its share leaves the thread's budget with it
  // (released by the kill message that follows the flag, or by a stop).
  const share = budget?.member();
  const kill = () => {
    sw.kill();
    share?.release();
  };
  const wrap = <T extends object>(target: T): T => sw.wrap(target);
  const unitMetadata = wrap(metadata);
  void hostUnit({
    jobId: job.jobId,
    job,
    unitId: unit.unitId,
    attempt,
    queuePrefix: data.queuePrefix,
    channels: wrap(channels),
    blobs: wrap(blobs),
    metadata: unitMetadata,
    jobs: new JobStore(unitMetadata),
    registry: jobRegistry,
    logger: logger(),
    inputBufferBytes: data.inputBufferBytes,
    ...(share ? { inputBudget: share } : {}),
  }).catch((error: unknown) => {
    if (!sw.dead) post({ type: 'error', line: `${unit.unitId}#${attempt}: ${error instanceof Error ? error.message : String(error)}` });
  });
  live.set(`${job.jobId}/${unit.unitId}`, { attempt, controlQueue: unit.controlQueue, kill });
}

async function stop(jobId: string, unitId: string): Promise<void> {
  const unit = live.get(`${jobId}/${unitId}`);
  if (!unit) return;
  const message: ControlMessage = { type: 'cancel', attempt: unit.attempt };
  await channels.send(unit.controlQueue, [{ groupId: 'control', dedupId: `stop-${unitId}-${unit.attempt}`, body: JSON.stringify(message) }]).catch(() => undefined);
  // As a process launcher's stop ends the process: the unit's I/O is cut now, so it does not go
  // on calling the queues a cancel deletes next (each call an error in the run's output).
  unit.kill();
}

function counts(): ThreadCounts {
  const ms = (ns: number) => Math.round(ns / 1e6);
  return {
    http: requestCounts(),
    billed: billedCounts(),
    sent: { ...sent },
    ddbKinds: metadata.writesByKind(),
    s3Kinds: blobs.writesByKind(),
    largest: [...metadata.largest],
    hottest: metadata.hottest,
    heapMb: Math.round(getHeapStatistics().used_heap_size / 2 ** 20),
    loopDelayMs: { mean: ms(loopDelay.mean), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
  };
}

port.on('message', (request: ThreadRequest) => {
  switch (request.type) {
    case 'launch':
      launch(request.job, request.unit, request.attempt, request.slot);
      post({ type: 'done', id: request.id });
      return;
    case 'kill':
      live.get(`${request.jobId}/${request.unitId}`)?.kill();
      post({ type: 'done', id: request.id });
      return;
    case 'stop':
      void stop(request.jobId, request.unitId).then(() => post({ type: 'done', id: request.id }));
      return;
    case 'counts':
      post({ type: 'counts', id: request.id, counts: counts() });
      if (request.resetLoopDelay) loopDelay.reset();
      return;
  }
});
post({ type: 'ready' });
