/** `sluice run`'s arguments: its own, and the rest read as `sluice submit` reads them; one clear sentence for what is wrong. */
import { describe, expect, it } from 'vitest';
import { parseRunArgs, RUN_USAGE } from '../../../lib/cli/local-run';
import { USAGE } from '../../../lib/cli/parse';

describe('sluice run arguments', () => {
  it('takes the jobs module and the checkpoint interval, and the job and its options as submit does', () => {
    expect(parseRunArgs(['clicks', '--jobs', 'src/jobs.ts', '--param', 'records=100', '--param', 'label=x', '--param', 'fast=true', '--failover', 'single', '--checkpoint-every=0'])).toEqual({
      jobs: 'src/jobs.ts',
      request: { job: 'clicks', params: { records: 100, label: 'x', fast: true }, failover: 'single', checkpoint: { handle: 'regional', intervalSeconds: 0 } },
    });
    expect(parseRunArgs(['demo', '--handle', 'global'])).toEqual({ request: { job: 'demo', checkpoint: { handle: 'global', intervalSeconds: 3 } } });
    expect(parseRunArgs(['demo', '--help'])).toBe('help');
    expect(RUN_USAGE).toMatch(/^usage: sluice run <job>/);
    expect(USAGE).toMatch(/\n  run +run a job on this machine/);
  });

  it('names what is wrong', () => {
    expect(() => parseRunArgs([])).toThrow('run needs a job name');
    expect(() => parseRunArgs(['--jobs'])).toThrow('--jobs needs a value');
    expect(() => parseRunArgs(['a', 'b'])).toThrow("'run' takes a job name; unexpected 'b'");
    expect(() => parseRunArgs(['a', '--param', 'records'])).toThrow(/--param takes name=value as one argument/);
    expect(() => parseRunArgs(['a', '--schedule', 'rate(5 minutes)'])).toThrow('run takes no --schedule: it checkpoints every --checkpoint-every seconds');
    expect(() => parseRunArgs(['a', '--checkpoint-every=-1'])).toThrow("--checkpoint-every must be a number of seconds, 0 or more, got '-1'");
    expect(() => parseRunArgs(['a', '--checkpoint-every', 'soon'])).toThrow("--checkpoint-every must be a number of seconds, 0 or more, got 'soon'");
    expect(() => parseRunArgs(['a', '--now'])).toThrow("option --now does not apply to 'run'");
  });
});
