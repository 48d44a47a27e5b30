/** `sluice run`'s arguments: what it runs, and one clear sentence for what it cannot. */
import { describe, expect, it } from 'vitest';
import { parseRunArgs, RUN_USAGE } from '../../../lib/cli/local-run';
import { USAGE } from '../../../lib/cli/parse';

describe('sluice run arguments', () => {
  it('takes a job, its parameters, the jobs module, the failover strategy and the checkpoint interval', () => {
    expect(parseRunArgs(['clicks', '--jobs', 'src/jobs.ts', '--param', 'records=100', '--param', 'label=x', '--param', 'fast=true', '--failover', 'single', '--checkpoint-every', '0'])).toEqual({
      job: 'clicks',
      jobs: 'src/jobs.ts',
      params: { records: 100, label: 'x', fast: true },
      failover: 'single',
      checkpointEvery: 0,
    });
    expect(parseRunArgs(['demo'])).toEqual({ job: 'demo', params: {}, failover: 'region', checkpointEvery: 3 });
    expect(parseRunArgs(['--help'])).toBe('help');
    expect(RUN_USAGE).toMatch(/^usage: sluice run <job>/);
    expect(USAGE).toContain('run <job> [--jobs FILE]');
  });

  it('names what is wrong', () => {
    expect(() => parseRunArgs([])).toThrow('run takes one job name, got none');
    expect(() => parseRunArgs(['a', 'b'])).toThrow('run takes one job name, got a b');
    expect(() => parseRunArgs(['a', '--param', 'records'])).toThrow("--param must be name=value, got 'records'");
    expect(() => parseRunArgs(['a', '--failover', 'some'])).toThrow("--failover must be one of full, region, single, single-buffered, got 'some'");
    expect(() => parseRunArgs(['a', '--checkpoint-every=-1'])).toThrow("--checkpoint-every must be a number of seconds, 0 or more, got '-1'");
    expect(() => parseRunArgs(['a', '--checkpoint-every', 'soon'])).toThrow("--checkpoint-every must be a number of seconds, 0 or more, got 'soon'");
    expect(() => parseRunArgs(['a', '--bogus'])).toThrow(/Unknown option '--bogus'/);
  });
});
