/**
 * Starts task units as child processes of the local runtime, so killing one is a real kill.
 * Each unit's output goes to its own log file under .sluice/logs/<jobId>/.
 *
 * Units run the task unit bundled ahead of time (lib/local/unit-bundle.ts), as on Lambda: no
 * TypeScript is compiled at unit start. The launcher also keeps `spares` warm spares: unit
 * processes started with no job, idle once they have loaded the code and made their clients. A
 * launch (a first start, a restart, the next invocation after a hand-over) claims one when there
 * is one, telling it which job, unit and attempt to become over its IPC channel; a replacement is
 * started in the background. So a restart restores into a running process instead of waiting for
 * one to boot. An idle spare ends with its parent (its IPC channel closes).
 *
 * A unit that hands over (exit code 75, see lib/runtime/handover.ts) is started again at once as
 * the next invocation of the same attempt, as the Lambda function re-invokes itself; that exit is
 * not a failure and is not reported to exit listeners.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { JobRecord, UnitPlacement } from '../jobs/job-store';
import type { UnitLauncher } from '../jobs/job-service';
import { HANDED_OVER_EXIT_CODE } from '../runtime/handover';
import { JOBS_MODULE_ENV } from '../api/jobs-module';
import { FROM_SOURCE, PACKAGE_ROOT, WORK_ROOT } from '../util/package-root';
import { runnableEntry, type RunnableEntry } from './unit-bundle';

export const REPO_ROOT = PACKAGE_ROOT;

/** The entry point the units run, by its path in the package. */
export const TASK_UNIT_ENTRY = 'functions/task-unit';

export interface UnitExit {
  jobId: string;
  unitId: string;
  attempt: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
  /** The launcher stopped it (a failover, a cancel): the system's own stop, not a failure. */
  stopped?: boolean;
}

/** What a spare is told to become (functions/task-unit.ts reads it from its IPC channel). */
export interface SpareAssignment {
  type: 'run';
  /** The unit's whole environment, as a process started for it would have it. */
  env: Record<string, string>;
  /** The job's record (it does not change after submission): the unit need not read it. */
  job: JobRecord;
}

export interface ProcessLauncherOptions {
  /** Environment for the units (the config as variables). */
  env: Record<string, string>;
  logDir?: string;
  /**
   * Another unit entry (tests: a stand-in), run as is (a .ts file through tsx); default the
   * bundled functions/task-unit. With `spares` it must wait as a spare does (functions/task-unit.ts).
   */
  entry?: string;
  /** Idle unit processes kept warm for the next launches (default 0). */
  spares?: number;
  /**
   * Extra wait before starting a restarted attempt (attempt > 0), to model a slow restart (a
   * Lambda cold start, a Fargate task placement) in local tests and demos.
   */
  restartDelayMs?: number;
  /**
   * Waited for before a restarted attempt (attempt > 0) starts, after `restartDelayMs`: a test
   * holds a restart until it has observed what should happen while the unit is down.
   */
  beforeRestart?: (jobId: string, unitId: string, attempt: number) => Promise<void>;
  /** Each invocation hands over to the next after this long, as a Lambda unit before its time limit. */
  handoverAfterMs?: number;
}

interface Spare {
  child: ChildProcess;
  /** The jobs module it was started with (SLUICE_JOBS_MODULE): only a unit of the same may claim it. */
  jobsModule: string | undefined;
  /** It has loaded the code and made its clients. */
  ready: boolean;
  /** Its stderr until it is claimed (why it died, if it dies idle). */
  stderr: string;
}

/**
 * The node arguments of a unit process. In a checkout a TypeScript jobs module (sluice run --jobs)
 * is loaded through tsx, so it may import the sources as the checkout's own code does; the
 * installed package leaves it to Node's type stripping (README: Node 22.18 or later).
 */
function nodeArgs(entry: RunnableEntry, env: Record<string, string>): string[] {
  const jobs = env[JOBS_MODULE_ENV];
  const tsx = FROM_SOURCE && jobs !== undefined && /\.[cm]?ts$/.test(jobs) && !entry.nodeArgs.includes('tsx');
  return tsx ? [...entry.nodeArgs, '--import', 'tsx'] : entry.nodeArgs;
}

/** Spares that died idle in a row before the launcher stops starting new ones. */
const MAX_SPARE_DEATHS = 3;

export class ProcessLauncher implements UnitLauncher {
  private readonly running = new Map<string, { child: ChildProcess; attempt: number; stopped?: boolean }>();
  private readonly listeners: ((exit: UnitExit) => void)[] = [];
  readonly exits: UnitExit[] = [];
  /** Hand-overs per unit attempt (`<jobId>/<unitId>#<attempt>`). */
  readonly handovers = new Map<string, number>();
  /** Launches that got a warm spare, and launches that started a process. */
  readonly launches = { warm: 0, cold: 0 };
  /** Units being stopped: a hand-over exit does not start a next invocation. */
  private readonly stopping = new Set<string>();
  private readonly spares: Spare[] = [];
  private spareDeaths = 0;
  private closed = false;
  private readonly entry: Promise<RunnableEntry>;

  constructor(private readonly options: ProcessLauncherOptions) {
    const custom = options.entry;
    this.entry = custom ? Promise.resolve({ file: custom, nodeArgs: custom.endsWith('.ts') ? ['--import', 'tsx'] : [] }) : runnableEntry(TASK_UNIT_ENTRY);
    // Built (or checked) now, while the caller prepares its job: the first launch does not wait.
    this.entry.catch(() => undefined);
    void this.replenish(options.spares ?? 0);
  }

  /**
   * Starts spares until `count` are idle (a caller about to launch many units at once: the demo
   * before it submits its job). Resolves when they are ready.
   */
  async warm(count: number): Promise<void> {
    // The spares do not keep this process alive (they are unref'ed): this wait does.
    const keepAlive = setInterval(() => undefined, 60_000);
    try {
      await this.replenish(count);
      await Promise.all(
        this.spares.map((s) =>
          s.ready
            ? undefined
            : new Promise<void>((resolve) => {
                s.child.once('message', () => resolve());
                s.child.once('exit', () => resolve());
              }),
        ),
      );
    } finally {
      clearInterval(keepAlive);
    }
  }

  /** Idle spares now (started or ready). */
  get idleSpares(): number {
    return this.spares.length;
  }

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    if (attempt > 0 && this.options.restartDelayMs) await sleep(this.options.restartDelayMs);
    if (attempt > 0 && this.options.beforeRestart) await this.options.beforeRestart(job.jobId, unit.unitId, attempt);
    this.stopping.delete(`${job.jobId}/${unit.unitId}`);
    await this.startInvocation(job, unit, attempt, false);
  }

  /** The environment a unit process runs with. */
  private unitEnv(job: JobRecord, unit: UnitPlacement, attempt: number, resume: boolean): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    return {
      ...env,
      ...this.options.env,
      SLUICE_JOB_ID: job.jobId,
      SLUICE_UNIT_ID: unit.unitId,
      SLUICE_ATTEMPT: String(attempt),
      ...(resume ? { SLUICE_RESUME: '1' } : {}),
      ...(this.options.handoverAfterMs ? { SLUICE_HANDOVER_AFTER_MS: String(this.options.handoverAfterMs) } : {}),
    };
  }

  private async startInvocation(job: JobRecord, unit: UnitPlacement, attempt: number, resume: boolean): Promise<void> {
    const entry = await this.entry;
    // After killAll nothing starts: a restart that was waiting out its delay would otherwise leave
    // a unit running, unsupervised, after its runtime (or test) has ended.
    if (this.closed) return;
    const env = this.unitEnv(job, unit, attempt, resume);
    const spare = this.claimSpare(env[JOBS_MODULE_ENV]);
    let child: ChildProcess;
    if (spare) {
      child = spare;
      // Not delivered (it died just now): killed, so its exit reports the unit failed and it restarts.
      child.send({ type: 'run', env, job } satisfies SpareAssignment, (error) => void (error && child.kill('SIGKILL')));
      this.launches.warm++;
      // A replacement, once this launch's unit has had its head start.
      setTimeout(() => void this.replenish(this.options.spares ?? 0), 500).unref();
    } else {
      child = spawn(process.execPath, [...nodeArgs(entry, env), entry.file], { cwd: WORK_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      this.launches.cold++;
    }
    this.attach(job, unit, attempt, child);
  }

  /** The oldest live spare, preferring ready ones; undefined when there is none. */
  private claimSpare(jobsModule: string | undefined): ChildProcess | undefined {
    const live = (s: Spare) => s.jobsModule === jobsModule && s.child.exitCode === null && s.child.signalCode === null && s.child.connected;
    const index = this.spares.findIndex((s) => s.ready && live(s));
    const at = index >= 0 ? index : this.spares.findIndex(live);
    if (at < 0) return undefined;
    const [spare] = this.spares.splice(at, 1);
    spare!.child.stderr!.removeAllListeners('data');
    return spare!.child;
  }

  /** Starts spares until `count` are idle. */
  private async replenish(count: number): Promise<void> {
    if (this.closed || this.spares.length >= count) return;
    let entry: RunnableEntry;
    try {
      entry = await this.entry;
    } catch {
      return; // launches report the build error
    }
    while (!this.closed && this.spares.length < count && this.spareDeaths < MAX_SPARE_DEATHS) {
      const env: Record<string, string> = { SLUICE_SPARE: '1' };
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
      Object.assign(env, this.options.env);
      const child = spawn(process.execPath, [...nodeArgs(entry, env), entry.file], { cwd: WORK_ROOT, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
      const spare: Spare = { child, jobsModule: env[JOBS_MODULE_ENV], ready: false, stderr: '' };
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (chunk: string) => (spare.stderr = (spare.stderr + chunk).slice(-2000)));
      child.once('message', () => {
        spare.ready = true;
        this.spareDeaths = 0;
      });
      child.on('error', () => undefined); // reported through 'exit'
      child.once('exit', (code, signal) => {
        const at = this.spares.indexOf(spare);
        if (at < 0) return; // claimed: the unit's own exit handler reports it
        this.spares.splice(at, 1);
        if (this.closed) return;
        this.spareDeaths++;
        if (this.spareDeaths >= MAX_SPARE_DEATHS) {
          console.error(`sluice: warm spare unit processes keep dying at start (exit ${code ?? signal}); units start cold from now on:\n${spare.stderr.trim()}`);
        }
      });
      // An idle spare does not keep this process alive.
      child.unref();
      for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
      (child as unknown as { channel?: { unref?: () => void } }).channel?.unref?.();
      this.spares.push(spare);
    }
  }

  /** Makes `child` the running process of the unit: its log file, its exit. */
  private attach(job: JobRecord, unit: UnitPlacement, attempt: number, child: ChildProcess): void {
    const key = `${job.jobId}/${unit.unitId}`;
    const logDir = join(this.options.logDir ?? join(WORK_ROOT, '.sluice', 'logs'), job.jobId);
    mkdirSync(logDir, { recursive: true });
    const log = createWriteStream(join(logDir, `${unit.unitId}.log`), { flags: 'a' });
    // A claimed spare was unref'ed while idle: a running unit is waited for like any other.
    child.ref();
    for (const stream of [child.stdout, child.stderr]) (stream as unknown as { ref?: () => void } | null)?.ref?.();
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    const running: { child: ChildProcess; attempt: number; stopped?: boolean } = { child, attempt };
    this.running.set(key, running);
    child.on('exit', (code, signal) => {
      const current = this.running.get(key)?.child === child;
      if (current) this.running.delete(key);
      setTimeout(() => log.end(), 100);
      if (code === HANDED_OVER_EXIT_CODE && current && !this.stopping.has(key)) {
        const invocation = `${key}#${attempt}`;
        this.handovers.set(invocation, (this.handovers.get(invocation) ?? 0) + 1);
        void this.startInvocation(job, unit, attempt, true);
        return;
      }
      const stopped = running.stopped === true;
      const exit: UnitExit = { jobId: job.jobId, unitId: unit.unitId, attempt, code, signal, at: Date.now(), ...(stopped ? { stopped } : {}) };
      this.exits.push(exit);
      for (const l of this.listeners) l(exit);
    });
  }

  onExit(listener: (exit: UnitExit) => void): void {
    this.listeners.push(listener);
  }

  pid(jobId: string, unitId: string): number | undefined {
    return this.running.get(`${jobId}/${unitId}`)?.child.pid;
  }

  /** Kills a unit's process with a signal (SIGKILL by default: no goodbye, like a crash). */
  kill(jobId: string, unitId: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    const entry = this.running.get(`${jobId}/${unitId}`);
    return entry ? entry.child.kill(signal) : false;
  }

  async stop(jobId: string, unitId: string, attempt?: number): Promise<void> {
    const entry = this.running.get(`${jobId}/${unitId}`);
    // A newer attempt than the one to stop is already running: leave it alone.
    if (entry && attempt !== undefined && entry.attempt > attempt) return;
    this.stopping.add(`${jobId}/${unitId}`);
    if (!entry) return;
    entry.stopped = true;
    const exited = new Promise((r) => entry.child.once('exit', r));
    entry.child.kill('SIGTERM');
    const timer = setTimeout(() => entry.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }

  /** Kills every unit still running, and the spares (on shutdown of the local runtime); no unit starts after it. */
  killAll(): void {
    this.closed = true;
    for (const key of this.running.keys()) this.stopping.add(key);
    for (const { child } of this.running.values()) child.kill('SIGKILL');
    this.running.clear();
    for (const { child } of this.spares.splice(0)) child.kill('SIGKILL');
  }
}
