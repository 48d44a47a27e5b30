import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../lib/observability/logger';
import { EmfMetrics } from '../../../lib/observability/metrics';
import { Metrics, METRIC_NAMESPACE } from '../../../lib/observability/metric-names';
import { textLogger } from '../../../lib/ports/telemetry';

describe('Powertools logger', () => {
  it('writes one JSON object per line with the persistent keys of its children', () => {
    const lines: string[] = [];
    const root = createLogger({ write: (l) => lines.push(l), attributes: { jobId: 'demo-1' } });
    const unit = root.child({ unitId: 'generator-0', attempt: 2, invocation: 1 });
    unit.info('restoring', { checkpointId: 7 });
    unit.child({ subtask: 'generator#0' }).warn('slow');
    root.error('failed', { error: new Error('boom') });
    unit.debug('not at INFO');
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed).toHaveLength(3);
    expect(parsed[0]).toMatchObject({ level: 'INFO', message: 'restoring', service: 'sluice', jobId: 'demo-1', unitId: 'generator-0', attempt: 2, invocation: 1, checkpointId: 7 });
    expect(typeof parsed[0].timestamp).toBe('string');
    expect(parsed[1]).toMatchObject({ level: 'WARN', message: 'slow', jobId: 'demo-1', unitId: 'generator-0', subtask: 'generator#0' });
    expect(parsed[2]).toMatchObject({ level: 'ERROR', message: 'failed', jobId: 'demo-1', error: { name: 'Error', message: 'boom' } });
    expect(parsed[2]).not.toHaveProperty('unitId');
  });

  it('a text logger writes the message and the line attributes', () => {
    const lines: string[] = [];
    const log = textLogger((l, level) => lines.push(`${level}: ${l}`)).child({ unitId: 'u' });
    log.warn('superseded', { attempt: 3, checkpointId: undefined });
    expect(lines).toEqual(['warn: superseded attempt=3']);
  });
});

describe('EMF metrics', () => {
  it('emits one line per dimension set with exactly the dimensions of the metric table', () => {
    const lines: string[] = [];
    const metrics = new EmfMetrics({ write: (l) => lines.push(l), disabled: false });
    metrics.add(Metrics.RecordsIn, 10, { job: 'j', operator: 'parse' });
    metrics.add(Metrics.RecordsIn, 5, { job: 'j', operator: 'parse' });
    metrics.add(Metrics.RecordsOut, 4, { job: 'j', operator: 'parse' });
    metrics.add(Metrics.RecordsIn, 1, { job: 'j', operator: 'sink' });
    metrics.add(Metrics.CheckpointDuration, 120, { job: 'j' });
    metrics.add(Metrics.CheckpointDuration, 80, { job: 'j' });
    metrics.flush();
    const emf = lines.map((l) => JSON.parse(l));
    expect(emf).toHaveLength(3);
    const parse = emf.find((e) => e.operator === 'parse');
    expect(parse._aws.CloudWatchMetrics).toEqual([
      { Namespace: METRIC_NAMESPACE, Dimensions: [['job', 'operator']], Metrics: [{ Name: 'RecordsIn', Unit: 'Count' }, { Name: 'RecordsOut', Unit: 'Count' }] },
    ]);
    expect(parse).toMatchObject({ job: 'j', operator: 'parse', RecordsIn: 15, RecordsOut: 4 });
    expect(parse).not.toHaveProperty('service');
    const job = emf.find((e) => e.operator === undefined);
    expect(job._aws.CloudWatchMetrics[0].Dimensions).toEqual([['job']]);
    expect(job.CheckpointDuration).toEqual([120, 80]);
    metrics.flush();
    expect(lines).toHaveLength(3);
  });

  it('refuses dimensions the metric does not have', () => {
    const metrics = new EmfMetrics({ write: () => undefined });
    expect(() => metrics.add(Metrics.RecordsIn, 1, { job: 'j' })).toThrow(/RecordsIn takes the dimensions job, operator/);
    expect(() => metrics.add(Metrics.Handovers, 1, { job: 'j', operator: 'x' })).toThrow(/Handovers takes the dimensions job,/);
  });

  it('splits more than 99 samples of one metric over several lines (EMF takes at most 100)', () => {
    const lines: string[] = [];
    const metrics = new EmfMetrics({ write: (l) => lines.push(l), disabled: false });
    for (let i = 0; i < 150; i++) metrics.add(Metrics.InputLag, i, { job: 'j', operator: 'agg' });
    metrics.flush();
    const values = lines.map((l) => JSON.parse(l).InputLag);
    expect(values.map((v) => v.length)).toEqual([99, 51]);
  });
});
