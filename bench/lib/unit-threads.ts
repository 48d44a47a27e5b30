/**
 * bench:scale's task units in worker threads (`unit-thread.ts`), behind the UnitLauncher the control
 * plane launches them through: first attempts in one thread, restarts in another, the control plane
 * in the caller's. What the threads count (HTTP calls, billed units, messages, DynamoDB and S3
 * writes by kind, their largest items) is fetched with `counts()` and added to the caller's own.
 */
import { Worker } from 'node:worker_threads';
import type { UnitLauncher } from '../../lib/jobs/job-service';
import type { JobRecord, UnitPlacement } from '../../lib/jobs/job-store';
import type { SluiceConfig } from '../../lib/config';
import type { BilledCounts, RequestCounts } from '../../lib/aws';
import type { ItemRecord, KindCounts } from './metadata-observer';

export type ThreadRole = 'units' | 'restart';

export interface UnitThreadData {
  role: ThreadRole;
  config: SluiceConfig;
  queuePrefix: string;
  inputBufferBytes: number;
  /** The thread's budget of buffered input over all its units (0: none). */
  processBufferBytes: number;
  /** Units whose info lines go to stderr (SCALE_INFO). */
  infoUnits: string[];
  /** One Int32 per launch (its slot): non-zero once the main thread killed that unit. */
  killFlags: SharedArrayBuffer;
}

export type ThreadRequest =
  | { type: 'launch'; id: number; job: JobRecord; unit: UnitPlacement; attempt: number; slot: number }
  | { type: 'stop'; id: number; jobId: string; unitId: string }
  | { type: 'kill'; id: number; jobId: string; unitId: string }
  | { type: 'counts'; id: number; resetLoopDelay?: boolean };

export interface ThreadCounts {
  http: RequestCounts;
  billed: BilledCounts;
  sent: { messages: number; bytes: number };
  ddbKinds: KindCounts;
  s3Kinds: KindCounts;
  /** Largest item written per kind. */
  largest: [string, ItemRecord][];
  hottest: { pk: string; second: number; writes: number };
  heapMb: number;
  /** The thread's event-loop delay since its last reset. */
  loopDelayMs: { mean: number; p99: number; max: number };
}

export type ThreadReply =
  | { type: 'ready' }
  | { type: 'done'; id: number }
  | { type: 'counts'; id: number; counts: ThreadCounts }
  | { type: 'problem'; line: string }
  | { type: 'error'; line: string };

/** A request before it is numbered (Omit over each member of the union). */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

const SLOTS = 1 << 16;

class UnitThread {
  readonly worker: Worker;
  readonly killed = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: ThreadReply) => void>();
  readonly ready: Promise<void>;
  private failure: Error | undefined;

  constructor(
    readonly role: ThreadRole,
    data: Omit<UnitThreadData, 'role' | 'killFlags'>,
    onProblem: (line: string) => void,
    onError: (line: string) => void,
    heapMb: number,
  ) {
    this.worker = new Worker(new URL('./unit-thread.ts', import.meta.url), {
      workerData: { ...data, role, killFlags: this.killed.buffer } satisfies UnitThreadData,
      resourceLimits: { maxOldGenerationSizeMb: heapMb, maxYoungGenerationSizeMb: 192 },
    });
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (reply: ThreadReply) => {
        if (reply.type === 'ready') resolve();
        else if (reply.type === 'problem') onProblem(reply.line);
        else if (reply.type === 'error') onError(reply.line);
        else {
          const done = this.waiting.get(reply.id);
          this.waiting.delete(reply.id);
          done?.(reply);
        }
      });
      this.worker.on('error', (error) => {
        this.failure = error;
        onError(`${role} thread: ${error.message}`);
        reject(error);
        for (const done of this.waiting.values()) done({ type: 'error', line: error.message });
        this.waiting.clear();
      });
    });
    this.ready.catch(() => undefined);
  }

  request(message: WithoutId<ThreadRequest>): Promise<ThreadReply> {
    if (this.failure) return Promise.reject(new Error(`${this.role} thread failed: ${this.failure.message}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (reply) => (reply.type === 'error' ? reject(new Error(`${this.role} thread failed: ${reply.line}`)) : resolve(reply)));
      this.worker.postMessage({ ...message, id });
    });
  }
}

export class UnitThreads implements UnitLauncher {
  private readonly units: UnitThread;
  private readonly restarts: UnitThread;
  private readonly live = new Map<string, { attempt: number; thread: UnitThread; slot: number }>();
  private nextSlot = 0;
  readonly errors: string[] = [];
  firstLaunchAt = 0;

  constructor(options: { config: SluiceConfig; queuePrefix: string; inputBufferBytes: number; processBufferBytes: number; infoUnits: string[]; heapMb: number; onProblem: (line: string) => void }) {
    const data = { config: options.config, queuePrefix: options.queuePrefix, inputBufferBytes: options.inputBufferBytes, infoUnits: options.infoUnits };
    const onError = (line: string) => this.errors.push(line);
    this.units = new UnitThread('units', { ...data, processBufferBytes: options.processBufferBytes }, options.onProblem, onError, options.heapMb);
    // A restarted unit is a process of its own when deployed: no share of the first attempts' budget.
    this.restarts = new UnitThread('restart', { ...data, processBufferBytes: 0 }, options.onProblem, onError, Math.min(options.heapMb, 4096));
  }

  async start(): Promise<void> {
    await Promise.all([this.units.ready, this.restarts.ready]);
  }

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    if (!this.firstLaunchAt) this.firstLaunchAt = Date.now();
    const thread = attempt > 0 ? this.restarts : this.units;
    const slot = this.nextSlot++;
    if (slot >= SLOTS) throw new Error(`more than ${SLOTS} unit launches in one bench:scale run`);
    this.live.set(`${job.jobId}/${unit.unitId}`, { attempt, thread, slot });
    await thread.request({ type: 'launch', job, unit, attempt, slot });
  }

  async stop(jobId: string, unitId: string, attempt?: number): Promise<void> {
    const live = this.live.get(`${jobId}/${unitId}`);
    if (!live || (attempt !== undefined && live.attempt > attempt)) return;
    await live.thread.request({ type: 'stop', jobId, unitId });
  }

  /** Cuts the unit's I/O at once (a shared flag, seen by its next call or result however busy its thread is); returns the attempt killed. */
  kill(jobId: string, unitId: string): number {
    const live = this.live.get(`${jobId}/${unitId}`);
    if (!live) throw new Error(`no unit ${unitId} of ${jobId} was launched`);
    Atomics.store(live.thread.killed, live.slot, 1);
    void live.thread.request({ type: 'kill', jobId, unitId }).catch(() => undefined);
    // As a process launcher forgets a process that exited: a stop of it has nothing to end.
    this.live.delete(`${jobId}/${unitId}`);
    return live.attempt;
  }

  /** Each thread's counts so far, by role (`resetLoopDelay`: start its event-loop delay histogram again after reading it). */
  async counts(resetLoopDelay = false): Promise<Record<ThreadRole, ThreadCounts>> {
    const ask = async (t: UnitThread) => {
      const reply = await t.request({ type: 'counts', resetLoopDelay });
      if (reply.type !== 'counts') throw new Error(`${t.role} thread answered ${reply.type} to counts`);
      return reply.counts;
    };
    const [units, restart] = await Promise.all([ask(this.units), ask(this.restarts)]);
    return { units, restart };
  }

  async close(): Promise<void> {
    await Promise.all([this.units.worker.terminate(), this.restarts.worker.terminate()]);
  }
}
