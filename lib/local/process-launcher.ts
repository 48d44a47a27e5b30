/**
 * Starts task units as child processes of the local runtime, so killing one is a real kill.
 * Each unit's output goes to its own log file under .sluice/logs/<jobId>/.
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
import { entryPoint, PACKAGE_ROOT, WORK_ROOT } from '../util/package-root';

export const REPO_ROOT = PACKAGE_ROOT;

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

export interface ProcessLauncherOptions {
  /** Environment for the units (the config as variables). */
  env: Record<string, string>;
  logDir?: string;
  /** The task unit's TypeScript entry (run through tsx); default functions/task-unit (built: dist/functions/task-unit.js). */
  entry?: string;
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

export class ProcessLauncher implements UnitLauncher {
  private readonly running = new Map<string, { child: ChildProcess; attempt: number; stopped?: boolean }>();
  private readonly listeners: ((exit: UnitExit) => void)[] = [];
  readonly exits: UnitExit[] = [];
  /** Hand-overs per unit attempt (`<jobId>/<unitId>#<attempt>`). */
  readonly handovers = new Map<string, number>();
  /** Units being stopped: a hand-over exit does not start a next invocation. */
  private readonly stopping = new Set<string>();
  private closed = false;

  constructor(private readonly options: ProcessLauncherOptions) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    if (attempt > 0 && this.options.restartDelayMs) await sleep(this.options.restartDelayMs);
    if (attempt > 0 && this.options.beforeRestart) await this.options.beforeRestart(job.jobId, unit.unitId, attempt);
    this.stopping.delete(`${job.jobId}/${unit.unitId}`);
    this.spawnInvocation(job, unit, attempt, false);
  }

  private spawnInvocation(job: JobRecord, unit: UnitPlacement, attempt: number, resume: boolean): void {
    // After killAll nothing starts: a restart that was waiting out its delay would otherwise leave
    // a unit running, unsupervised, after its runtime (or test) has ended.
    if (this.closed) return;
    const key = `${job.jobId}/${unit.unitId}`;
    const logDir = join(this.options.logDir ?? join(WORK_ROOT, '.sluice', 'logs'), job.jobId);
    mkdirSync(logDir, { recursive: true });
    const log = createWriteStream(join(logDir, `${unit.unitId}.log`), { flags: 'a' });
    const entry = this.options.entry ? { file: this.options.entry, nodeArgs: ['--import', 'tsx'] } : entryPoint('functions/task-unit');
    const child = spawn(process.execPath, [...entry.nodeArgs, entry.file], {
      cwd: WORK_ROOT,
      env: {
        ...process.env,
        ...this.options.env,
        SLUICE_JOB_ID: job.jobId,
        SLUICE_UNIT_ID: unit.unitId,
        SLUICE_ATTEMPT: String(attempt),
        ...(resume ? { SLUICE_RESUME: '1' } : {}),
        ...(this.options.handoverAfterMs ? { SLUICE_HANDOVER_AFTER_MS: String(this.options.handoverAfterMs) } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
        this.spawnInvocation(job, unit, attempt, true);
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

  /** Kills every unit still running (on shutdown of the local runtime); no unit starts after it. */
  killAll(): void {
    this.closed = true;
    for (const key of this.running.keys()) this.stopping.add(key);
    for (const { child } of this.running.values()) child.kill('SIGKILL');
    this.running.clear();
  }
}
