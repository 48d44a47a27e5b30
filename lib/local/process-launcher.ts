/**
 * Starts task units as child processes of the local runtime, so killing one is a real kill.
 * Each unit's output goes to its own log file under .sluice/logs/<jobId>/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobRecord, UnitPlacement } from '../jobs/job-store';
import type { UnitLauncher } from '../jobs/job-service';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface UnitExit {
  jobId: string;
  unitId: string;
  attempt: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface ProcessLauncherOptions {
  /** Environment for the units (the config as variables). */
  env: Record<string, string>;
  logDir?: string;
  entry?: string;
  /**
   * Extra wait before starting a restarted attempt (attempt > 0), to model a slow restart (a
   * Lambda cold start, a Fargate task placement) in local tests and demos.
   */
  restartDelayMs?: number;
}

export class ProcessLauncher implements UnitLauncher {
  private readonly running = new Map<string, { child: ChildProcess; attempt: number }>();
  private readonly listeners: ((exit: UnitExit) => void)[] = [];
  readonly exits: UnitExit[] = [];

  constructor(private readonly options: ProcessLauncherOptions) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    if (attempt > 0 && this.options.restartDelayMs) await new Promise((r) => setTimeout(r, this.options.restartDelayMs));
    const key = `${job.jobId}/${unit.unitId}`;
    const logDir = join(this.options.logDir ?? join(REPO_ROOT, '.sluice', 'logs'), job.jobId);
    mkdirSync(logDir, { recursive: true });
    const log = createWriteStream(join(logDir, `${unit.unitId}.log`), { flags: 'a' });
    const entry = this.options.entry ?? join(REPO_ROOT, 'functions', 'task-unit.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', entry], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...this.options.env, SLUICE_JOB_ID: job.jobId, SLUICE_UNIT_ID: unit.unitId, SLUICE_ATTEMPT: String(attempt) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    this.running.set(key, { child, attempt });
    child.on('exit', (code, signal) => {
      if (this.running.get(key)?.child === child) this.running.delete(key);
      const exit = { jobId: job.jobId, unitId: unit.unitId, attempt, code, signal, at: Date.now() };
      this.exits.push(exit);
      for (const l of this.listeners) l(exit);
      setTimeout(() => log.end(), 100);
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

  async stop(jobId: string, unitId: string): Promise<void> {
    const entry = this.running.get(`${jobId}/${unitId}`);
    if (!entry) return;
    const exited = new Promise((r) => entry.child.once('exit', r));
    entry.child.kill('SIGTERM');
    const timer = setTimeout(() => entry.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }

  /** Kills every unit still running (on shutdown of the local runtime). */
  killAll(): void {
    for (const { child } of this.running.values()) child.kill('SIGKILL');
    this.running.clear();
  }
}
