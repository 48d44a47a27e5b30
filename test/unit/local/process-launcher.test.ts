/** The local process launcher: after killAll (the runtime's close), nothing it was asked to start runs. */
import { mkdtempSync, writeFileSync } from 'node:fs';
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
const job = { jobId: 'job-l' } as JobRecord;
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
});
