/**
 * A task unit's logs and metrics, captured: the demo job on in-memory ports with every unit
 * handing over to a next invocation, its JSON log lines and EMF lines checked against what the
 * job did.
 */
import { describe, expect, it } from 'vitest';
import { jobRegistry } from '../../../examples/jobs';
import { JobService } from '../../../lib/jobs/job-service';
import { JobStore } from '../../../lib/jobs/job-store';
import { Supervisor } from '../../../lib/jobs/supervisor';
import { InProcessLauncher } from '../../../lib/local/in-process-launcher';
import { createMemoryPorts, MemoryChannelTransport } from '../../../lib/memory';
import { createLogger } from '../../../lib/observability/logger';
import { Metrics, METRIC_NAMESPACE } from '../../../lib/observability/metric-names';
import { EmfMetrics } from '../../../lib/observability/metrics';
import { observeInputLag, UnitMetrics } from '../../../lib/observability/unit-metrics';
import type { MetricDef, MetricsSink } from '../../../lib/ports/telemetry';

/** What a sink was given, as (metric, value, dimensions) rows. */
function recordingSink() {
  const rows: { name: string; value: number; dimensions: Record<string, string> }[] = [];
  let flushes = 0;
  const sink: MetricsSink = {
    add: (metric: MetricDef, value, dimensions) => rows.push({ name: metric.name, value, dimensions: { ...dimensions } }),
    flush: () => void flushes++,
  };
  return { sink, rows, flushes: () => flushes };
}

describe('unit metrics', () => {
  it('turns cumulative heartbeat counters into per-task increments, and a counter that went down into a restart', () => {
    let now = 0;
    const { sink, rows, flushes } = recordingSink();
    const m = new UnitMetrics({ jobId: 'j', sink, everyMs: 1000, now: () => now });
    m.observe({ stats: { 'parse#0': { recordsIn: 10, recordsOut: 9, dropped: 0 }, 'parse#1': { recordsIn: 5, recordsOut: 5 } }, requests: { sqs: 4 } });
    now = 500;
    m.observe({ stats: { 'parse#0': { recordsIn: 30, recordsOut: 28, dropped: 2 } }, requests: { sqs: 10, s3: 1, total: 11 } });
    expect(flushes()).toBe(0);
    now = 1000;
    m.observe({ stats: { 'parse#1': { recordsIn: 3, recordsOut: 3 } } });
    expect(flushes()).toBe(1);
    const of = (name: string) => rows.filter((r) => r.name === name);
    expect(of('RecordsIn')).toEqual([{ name: 'RecordsIn', value: 30 + 5 + 3, dimensions: { job: 'j', operator: 'parse' } }]);
    expect(of('RecordsOut')[0]!.value).toBe(28 + 5 + 3);
    expect(of('RecordsDropped')).toEqual([{ name: 'RecordsDropped', value: 2, dimensions: { job: 'j', operator: 'parse' } }]);
    expect(of('RecordsDuplicated')).toEqual([]);
    expect(of('AwsRequests').map((r) => [r.dimensions.service, r.value]).sort()).toEqual([['s3', 1], ['sqs', 10]]);
  });

  it('counts a resumed invocation from its hand-over, not from zero', () => {
    const { sink, rows } = recordingSink();
    const m = new UnitMetrics({ jobId: 'j', sink, baseline: { stats: { 'agg#0': { recordsIn: 100, recordsOut: 7 } }, requests: { sqs: 50 } } });
    m.observe({ stats: { 'agg#0': { recordsIn: 120, recordsOut: 7 } }, requests: { sqs: 53 } });
    m.flush();
    expect(rows.map((r) => [r.name, r.value])).toEqual([
      ['RecordsIn', 20],
      ['RecordsOut', 0],
      ['AwsRequests', 3],
    ]);
  });

  it('reports the oldest received message age of a task as its input lag, not the control queue', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in-0', 'ctl']);
    const lag: [string, number][] = [];
    let now = Date.now();
    const observed = observeInputLag(transport, new Map([['in-0', 'agg']]), (task, ms) => lag.push([task, ms]), () => now);
    await transport.send('in-0', [{ groupId: '0', dedupId: 'a', body: 'x' }]);
    await transport.send('ctl', [{ groupId: 'control', dedupId: 'b', body: 'y' }]);
    const sentBy = Date.now();
    now = sentBy + 5000;
    expect(await observed.receive('in-0', { max: 10, waitSeconds: 0 })).toHaveLength(1);
    expect(await observed.receive('ctl', { max: 10, waitSeconds: 0 })).toHaveLength(1);
    expect(lag).toHaveLength(1);
    expect(lag[0]![0]).toBe('agg');
    expect(lag[0]![1]).toBeGreaterThanOrEqual(5000);
  });
});

describe('a job run with captured telemetry', () => {
  it('logs JSON lines with job, unit, attempt and invocation, and emits EMF that adds up to what the job did', async () => {
    const ports = createMemoryPorts();
    const jobs = new JobStore(ports.metadata);
    const logLines: string[] = [];
    const emfLines: string[] = [];
    const launcher = new InProcessLauncher({
      ...ports,
      jobs,
      registry: jobRegistry,
      queuePrefix: 'tel',
      handoverAfterMs: 400,
      handoverGraceMs: 500,
      logger: createLogger({ write: (l) => logLines.push(l) }),
      metrics: new EmfMetrics({ write: (l) => emfLines.push(l), disabled: false }),
      metricsEveryMs: 200,
    });
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'tel', launcher });
    const records = 6000;
    const job = await service.submit({ job: 'demo', params: { parallelism: 2, records, users: 20, hours: 2, partitions: 4, rate: 3000 } });
    const view = await new Supervisor({ service, pollMs: 50 }).watch(job.jobId);
    await launcher.settled();
    expect(view.job.status).toBe('FINISHED');
    // Rate-limited to about 2 s of input: every unit outlives its 400 ms invocations.
    const handovers = [...launcher.handovers.values()].reduce((a, b) => a + b, 0);
    expect(handovers).toBeGreaterThan(0);

    const logs = logLines.map((l) => JSON.parse(l));
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) {
      expect(line).toMatchObject({ service: 'sluice', jobId: job.jobId, unitId: expect.any(String), attempt: 0 });
      expect(['INFO', 'WARN', 'ERROR', 'DEBUG']).toContain(line.level);
    }
    // Every line after an invocation started names it; a hand-over shows in the invocations seen.
    const invocations = new Set(logs.filter((l) => l.invocation !== undefined).map((l) => `${l.unitId}#${l.invocation}`));
    expect([...invocations].some((i) => !i.endsWith('#0'))).toBe(true);
    expect(logs.filter((l) => /handed over to invocation/.test(l.message))).toHaveLength(handovers);

    const emf = emfLines.map((l) => JSON.parse(l));
    for (const e of emf) expect(e._aws.CloudWatchMetrics[0].Namespace).toBe(METRIC_NAMESPACE);
    const sum = (name: string, operator?: string) =>
      emf.filter((e) => e[name] !== undefined && e.job === job.jobId && (operator === undefined || e.operator === operator)).reduce((n, e) => n + [e[name]].flat().reduce((a: number, b: number) => a + b, 0), 0);
    const dims = (name: string) => new Set(emf.filter((e) => e[name] !== undefined).map((e) => JSON.stringify(e._aws.CloudWatchMetrics[0].Dimensions)));
    // Hand-overs included, the increments add up to the job's totals exactly.
    expect(sum('RecordsIn', 'generator')).toBe(records);
    expect(sum('RecordsOut', 'hourly-aggregate')).toBe(view.totals.recordsOut);
    expect(sum('Handovers')).toBe(handovers);
    expect(dims('RecordsIn')).toEqual(new Set([JSON.stringify([[...Metrics.RecordsIn.dimensions]])]));
    expect(emf.some((e) => e.operator === 'hourly-aggregate' && e.InputLag !== undefined)).toBe(true);
    expect(emf.some((e) => e.operator === 'generator' && e.InputLag !== undefined)).toBe(false);
  });
});
