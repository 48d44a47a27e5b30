import { describe, expect, it } from 'vitest';
import { createMemoryPorts } from '../../../lib/memory';
import { JobStore } from '../../../lib/jobs/job-store';
import { JobService } from '../../../lib/jobs/job-service';
import { Supervisor } from '../../../lib/jobs/supervisor';
import { InProcessLauncher } from '../../../lib/local/in-process-launcher';
import { buildExecutionGraph } from '../../../lib/graph/execution-graph';
import { JobSpecError } from '../../../lib/graph/job-graph';
import { jobRegistry } from '../../../examples/jobs';
import {
  checkRecommendations,
  eventAt,
  eventPartitionSize,
  expectedRecommendations,
  featureAt,
  featureUser,
  joinShape,
  type Recommendation,
} from '../../../examples/jobs/recommendation-join';
import { readOutput } from './helpers';

describe('recommendation-join job', () => {
  it('is registered with validated parameters and builds two hash edges into one region', () => {
    const definition = jobRegistry.get('recommendation-join');
    expect(definition.params.parallelism!.default).toBe(8);
    const { graph, params } = jobRegistry.build('recommendation-join', {});
    expect(params.parallelism).toBe(8);
    const exec = buildExecutionGraph(graph);
    expect(exec.tasks.map((t) => [t.id, t.operators.map((o) => o.id), t.parallelism])).toEqual([
      ['events', ['events'], 8],
      ['features', ['features'], 8],
      ['join', ['join', 's3-sink'], 8],
    ]);
    expect(exec.edges.map((e) => [e.from, e.to, e.kind, e.input])).toEqual([
      ['events', 'join', 'hash', 0],
      ['features', 'join', 'hash', 1],
    ]);
    expect(exec.regions).toHaveLength(1);
    expect(() => jobRegistry.build('recommendation-join', { users: 0 })).toThrow(JobSpecError);
    expect(() => jobRegistry.build('recommendation-join', { parallelism: 2.5 })).toThrow(/whole number/);
  });

  it('generates deterministic, unique events and feature versions owned by their user', () => {
    const shape = joinShape(jobRegistry.build('recommendation-join', { events: 1000, featureUpdates: 300, users: 40, partitions: 7 }).params);
    const ids = new Set<string>();
    let total = 0;
    for (let p = 0; p < shape.partitions; p++) {
      for (let o = 0; o < eventPartitionSize(shape, p); o++) {
        const e = eventAt(shape, p, o);
        expect(eventAt(shape, p, o)).toEqual(e);
        ids.add(e.id);
        total++;
      }
    }
    expect(total).toBe(1000);
    expect([...ids].sort()).toEqual([...expectedRecommendations(shape).keys()].sort());
    const f = featureAt(shape, 3, 5);
    expect(f.version).toBe(5 * 7 + 3);
    expect(featureUser(shape, f.version)).toBe(f.user);
  });

  it('runs on in-memory ports and emits exactly one enriched record per event', async () => {
    const ports = createMemoryPorts();
    const jobs = new JobStore(ports.metadata);
    const launcher = new InProcessLauncher({ ...ports, jobs, registry: jobRegistry, queuePrefix: 'rj' });
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'rj', launcher });
    // Paced (~1 s of input per source subtask) so that events and feature updates interleave.
    const params = { parallelism: 3, events: 12_000, featureUpdates: 3_000, users: 150, partitions: 5, minutes: 90, rate: 4000 };

    const job = await service.submit({ job: 'recommendation-join', params });
    const view = await new Supervisor({ service, pollMs: 50 }).watch(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    expect(view.totals.recordsIn).toBe(15_000);
    expect(view.totals.recordsOut).toBe(12_000);

    const shape = joinShape(view.job.params);
    const records = await readOutput<Recommendation>(ports.blobs, job.jobId);
    const check = checkRecommendations(shape, records);
    expect(check).toMatchObject({ expected: 12_000, seen: 12_000, missing: [], duplicates: [], unexpected: [], wrong: [] });
    // Feature updates are paced to the same span as the events: most events meet a feature of their user.
    const enriched = records.filter((r) => r.featureVersion !== null).length;
    expect(enriched).toBeGreaterThan(records.length / 2);
    expect(records.every((r) => r.featureVersion === null || r.segment !== 'unknown')).toBe(true);
    expect(await ports.channels.listQueues(`rj-${job.jobId}`)).toEqual([]);
  });

  it('reports loss, duplicates and wrong joins precisely', () => {
    const shape = { events: 5, featureUpdates: 10, users: 3, partitions: 1, minutes: 1 };
    const good = Array.from({ length: 5 }, (_, o) => eventAt(shape, 0, o));
    const out = (i: number, featureVersion: number | null = null): Recommendation => ({
      ...good[i]!,
      featureVersion,
      segment: 'x',
      recommended: 'y',
    });
    const otherUsersVersion = [...Array(10).keys()].find((v) => featureUser(shape, v) !== good[1]!.user)!;
    const check = checkRecommendations(shape, [out(0), out(0), out(1, otherUsersVersion), out(3), { ...out(4), id: 'ev-99' }]);
    expect(check.missing).toEqual(['ev-2', 'ev-4']);
    expect(check.duplicates).toEqual(['ev-0']);
    expect(check.wrong).toEqual(['ev-1']);
    expect(check.unexpected).toEqual(['ev-99']);
    expect(check.seen).toBe(3);
  });
});
