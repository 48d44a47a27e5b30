/**
 * The local process launcher: after killAll (the runtime's close), nothing it was asked to start
 * runs; a launch claims a warm spare, which becomes the unit (its log, its exit), and is replaced.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { JobRecord, UnitPlacement } from '../../../lib/jobs/job-store';
import { ProcessLauncher } from '../../../lib/local/process-launcher';

const dir = mkdtempSync(join(tmpdir(), 'sluice-launcher-'));
// A stand-in unit that lives until it is killed.
const entry = join(dir, 'idle-unit.mjs');
writeFileSync(entry, 'setInterval(() => {}, 1000);\n');
// A stand-in spare: idle until told which unit to become, then that unit until it is killed.
const spareEntry = join(dir, 'spare-unit.mjs');
writeFileSync(
  spareEntry,
  [
    "const become = (env) => { console.log(`unit ${env.SLUICE_UNIT_ID} attempt ${env.SLUICE_ATTEMPT} pid ${process.pid}`); setInterval(() => {}, 1000); };",
    "if (!process.send) become(process.env);",
    "else {",
    "  let claimed = false;",
    "  process.on('disconnect', () => { if (!claimed) process.exit(0); });",
    "  process.once('message', (m) => { claimed = true; become(m.env); });",
    "  process.send({ type: 'ready' });",
    "}",
  ].join('\n'),
);
const job = { jobId: 'job-l' } as JobRecord;

/** Resolves once `check` holds, looking every 20 ms (the test's timeout bounds the wait). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await sleep(20);
}
const unit = { unitId: 'u-0' } as UnitPlacement;

describe('ProcessLauncher', () => {
  it('starts no restart that was still waiting out its delay when killAll came', async () => {
    const launcher = new ProcessLauncher({ env: {}, entry, logDir: dir, restartDelayMs: 300 });
    const restart = launcher.launch(job, unit, 1);
    launcher.killAll();
    await restart;
    await sleep(100);
    expect(launcher.pid(job.jobId, unit.unitId)).toBeUndefined();
  });

  it('kills what runs at killAll, and the exit is not a restart', async () => {
    const launcher = new ProcessLauncher({ env: {}, entry, logDir: dir });
    await launcher.launch(job, unit, 0);
    const pid = launcher.pid(job.jobId, unit.unitId);
    expect(pid).toBeGreaterThan(0);
    const exited = new Promise((resolve) => launcher.onExit(resolve));
    launcher.killAll();
    expect(await exited).toMatchObject({ unitId: 'u-0', attempt: 0, signal: 'SIGKILL' });
    expect(launcher.pid(job.jobId, unit.unitId)).toBeUndefined();
  });

  it('a launch claims a warm spare: the spare becomes the unit (log, pid, exit) and another takes its place', async () => {
    const logDir = mkdtempSync(join(tmpdir(), 'sluice-spares-'));
    const launcher = new ProcessLauncher({ env: {}, entry: spareEntry, logDir, spares: 1 });
    try {
      await launcher.warm(1);
      expect(launcher.idleSpares).toBe(1);
      const exits: unknown[] = [];
      launcher.onExit((e) => exits.push(e));
      await launcher.launch(job, unit, 2);
      expect(launcher.launches).toEqual({ warm: 1, cold: 0 });
      const pid = launcher.pid(job.jobId, unit.unitId);
      const log = join(logDir, job.jobId, `${unit.unitId}.log`);
      await until(() => existsSync(log) && readFileSync(log, 'utf8').includes('\n'));
      expect(readFileSync(log, 'utf8')).toContain(`unit u-0 attempt 2 pid ${pid}`);
      // The replacement is started in the background.
      await until(() => launcher.idleSpares === 1);

      expect(launcher.kill(job.jobId, unit.unitId)).toBe(true);
      await until(() => exits.length === 1);
      expect(exits[0]).toMatchObject({ jobId: 'job-l', unitId: 'u-0', attempt: 2, signal: 'SIGKILL' });
    } finally {
      launcher.killAll();
    }
    expect(launcher.idleSpares).toBe(0);
  });

  it('a spare that dies idle is no unit exit, and a launch without a spare starts a process', async () => {
    const logDir = mkdtempSync(join(tmpdir(), 'sluice-spares-'));
    const launcher = new ProcessLauncher({ env: {}, entry: spareEntry, logDir });
    const exits: unknown[] = [];
    launcher.onExit((e) => exits.push(e));
    try {
      await launcher.warm(1);
      expect(launcher.idleSpares).toBe(1);
      const idle = (launcher as unknown as { spares: { child: { kill(s: string): boolean } }[] }).spares[0]!;
      idle.child.kill('SIGKILL');
      await until(() => launcher.idleSpares === 0);
      expect(exits).toEqual([]);
      // No spare (none kept: `spares` is 0): the unit starts as a process of its own.
      await launcher.launch(job, unit, 0);
      expect(launcher.launches).toEqual({ warm: 0, cold: 1 });
      const pid = launcher.pid(job.jobId, unit.unitId);
      const log = join(logDir, job.jobId, `${unit.unitId}.log`);
      await until(() => existsSync(log) && readFileSync(log, 'utf8').includes('\n'));
      expect(readFileSync(log, 'utf8')).toContain(`unit u-0 attempt 0 pid ${pid}`);
      expect(launcher.kill(job.jobId, unit.unitId)).toBe(true);
      await until(() => exits.length === 1);
      expect(exits[0]).toMatchObject({ unitId: 'u-0', attempt: 0, signal: 'SIGKILL' });
    } finally {
      launcher.killAll();
    }
  });
});
