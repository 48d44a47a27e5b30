import { describe, expect, it } from 'vitest';
import { createMemoryPorts } from '../../lib/memory';
import { JobStore } from '../../lib/jobs/job-store';
import { JobService } from '../../lib/jobs/job-service';
import { Supervisor } from '../../lib/jobs/supervisor';
import { InProcessLauncher } from '../../lib/local/in-process-launcher';
import { jobRegistry } from '../../examples/jobs';
import { aggregateKey, demoShape, expectedAggregates, type HourlyAggregate } from '../../examples/jobs/demo';

describe('demo job on in-memory ports', () => {
  it('produces exactly the expected hourly aggregates and cleans up its queues', async () => {
    const ports = createMemoryPorts();
    const jobs = new JobStore(ports.metadata);
    const launcher = new InProcessLauncher({ ...ports, jobs, registry: jobRegistry, queuePrefix: 'test' });
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'test', launcher });
    const params = { parallelism: 3, records: 20_000, users: 50, hours: 3, partitions: 7 };

    const job = await service.submit({ job: 'demo', params });
    const view = await new Supervisor({ service, pollMs: 50 }).watch(job.jobId);

    expect(view.job.status).toBe('FINISHED');
    expect(view.totals.recordsIn).toBe(20_000);
    const expected = expectedAggregates(demoShape(view.job.params));
    const files = await ports.blobs.list(`output/${job.jobId}/`);
    const actual = new Map<string, HourlyAggregate>();
    const markers: string[] = [];
    for (const f of files) {
      const text = Buffer.from((await ports.blobs.get(f.key))!).toString('utf8');
      if (f.key.endsWith('/_SUCCESS')) {
        markers.push(f.key);
        continue;
      }
      for (const line of text.trim().split('\n')) {
        const a = JSON.parse(line) as HourlyAggregate;
        expect(actual.has(aggregateKey(a))).toBe(false);
        actual.set(aggregateKey(a), a);
        expect(f.key).toContain(`dt=${a.hour.slice(0, 10)}/hour=${a.hour.slice(11, 13)}/`);
      }
    }
    expect(actual.size).toBe(expected.size);
    // Every hourly partition with data is marked complete once the job has ended.
    const hours = new Set([...actual.values()].map((a) => `dt=${a.hour.slice(0, 10)}/hour=${a.hour.slice(11, 13)}`));
    expect(markers.map((k) => k.split('/').slice(2, 4).join('/')).sort()).toEqual([...hours].sort());
    for (const [key, a] of expected) expect(actual.get(key)).toEqual(a);
    expect(view.totals.recordsOut).toBe(expected.size);
    expect(await ports.blobs.list(`staging/${job.jobId}/`)).toEqual([]);
    expect(await ports.channels.listQueues(`test-${job.jobId}`)).toEqual([]);
  });
});
