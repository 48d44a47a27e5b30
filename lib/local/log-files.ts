/**
 * The local runtime's log files, under .sluice/logs/<jobId>/: one per task unit (`<unitId>.log`,
 * its stdout and stderr: Powertools JSON lines, EMF lines, and whatever else the process printed)
 * and `control.log` for the control plane of the job (supervisor, failover, checkpoint driver),
 * in the same JSON format. `sluice logs <jobId>` reads them.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './process-launcher';

/** Where the local runtime writes logs unless told otherwise. */
export const DEFAULT_LOG_DIR = join(REPO_ROOT, '.sluice', 'logs');

/** The control plane's file in a job's log directory (a unit id is `<task>-<n>`, never this). */
export const CONTROL_LOG = 'control.log';

/** Lines not about one job (none carries a jobId) go to this file at the top of the log directory. */
export const RUNTIME_LOG = 'runtime.log';

/**
 * A line writer that appends each JSON line to its job's control log, by the line's `jobId` (log
 * lines) or `job` (EMF lines). Appends are synchronous: the control plane writes a few lines a
 * second, and a line is on disk before the process can exit.
 */
export function controlLogWriter(logDir: string): (line: string) => void {
  const made = new Set<string>();
  return (line) => {
    let jobId: unknown;
    try {
      const parsed = JSON.parse(line) as { jobId?: unknown; job?: unknown };
      jobId = parsed.jobId ?? parsed.job;
    } catch {
      jobId = undefined;
    }
    const dir = typeof jobId === 'string' && /^[A-Za-z0-9_.-]+$/.test(jobId) ? join(logDir, jobId) : logDir;
    if (!made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    appendFileSync(join(dir, dir === logDir ? RUNTIME_LOG : CONTROL_LOG), `${line}\n`);
  };
}
