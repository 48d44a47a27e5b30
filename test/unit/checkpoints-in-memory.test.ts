import { describe, expect, it } from 'vitest';
import { createMemoryPorts } from '../../lib/memory';
import { JobStore } from '../../lib/jobs/job-store';
import { JobService } from '../../lib/jobs/job-service';
import { JobController } from '../../lib/jobs/job-controller';
import { CheckpointDriver } from '../../lib/jobs/checkpoint-driver';
import { InProcessLauncher } from '../../lib/local/in-process-launcher';
import { jobRegistry } from '../../examples/jobs';
import { expectedIngestIds } from '../../examples/jobs/ingest';
import { aggregateKey, demoShape, expectedAggregates, type HourlyAggregate } from '../../examples/jobs/demo';

function setup() {
  const ports = createMemoryPorts();
  const jobs = new JobStore(ports.metadata);
  const launcher = new InProcessLauncher({ ...ports, jobs, registry: jobRegistry, queuePrefix: 'test' });
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'test', launcher });
  return { ports, service };
}

async function outputLines(ports: ReturnType<typeof createMemoryPorts>, jobId: string): Promise<string[]> {
  const lines: string[] = [];
  for (const f of await ports.blobs.list(`output/${jobId}/`)) {
    if (f.key.endsWith('/_SUCCESS')) continue;
    lines.push(...Buffer.from((await ports.blobs.get(f.key))!).toString('utf8').trim().split('\n'));
  }
  return lines;
}

describe('aligned checkpoints on in-memory ports', () => {
  it('ingest job: regional checkpoints complete per pipeline region, output committed per checkpoint, exactly once', async () => {
    const { ports, service } = setup();
    // ~9 s of input: checkpoints every 300 ms complete within it however busy the machine is (at
    // 4000 records/s a loaded machine finished the job after one).
    const params = { parallelism: 3, partitions: 6, recordsPerPartition: 3000, rate: 2000 };
    const job = await service.submit({ job: 'ingest', params, checkpoint: { handle: 'regional', intervalSeconds: 1 } });
    expect(job.regions).toHaveLength(3);
    const controller = new JobController({ service, metadata: ports.metadata, blobs: ports.blobs, pollMs: 50, checkpointEveryMs: 300 });
    const view = await controller.run(job.jobId);
    expect(view.job.status).toBe('FINISHED');

    const history = await controller.driver!.history();
    const completed = history.filter((h) => h.outcome.status === 'completed');
    expect(completed.length).toBeGreaterThanOrEqual(1);
    for (const h of completed) expect(h.regions.completed).toBe(3);
    // Committed files per checkpoint transaction, plus the final one per sink subtask.
    const files = (await ports.blobs.list(`output/${job.jobId}/`)).map((f) => f.key);
    expect(files.some((k) => /part-\d-c\d+-a\d+\.jsonl$/.test(k))).toBe(true);
    expect(files.some((k) => /part-\d-final\.jsonl$/.test(k))).toBe(true);

    const ids = (await outputLines(ports, job.jobId)).map((l) => (JSON.parse(l) as { id: string }).id);
    expect(ids.length).toBe(18_000);
    expect(new Set(ids)).toEqual(expectedIngestIds(view.job.params));
    expect(await ports.blobs.list(`staging/${job.jobId}/`)).toEqual([]);
  });

  it('demo job under the global handle: keyed state snapshots and the output stays exact', async () => {
    const { ports, service } = setup();
    const params = { parallelism: 2, records: 40_000, users: 40, hours: 3, partitions: 4, rate: 4000 };
    const job = await service.submit({ job: 'demo', params, checkpoint: { handle: 'global', intervalSeconds: 1 } });
    const controller = new JobController({ service, metadata: ports.metadata, blobs: ports.blobs, pollMs: 50, checkpointEveryMs: 250 });
    const view = await controller.run(job.jobId);
    expect(view.job.status).toBe('FINISHED');
    const history = await controller.driver!.history();
    expect(history.filter((h) => h.outcome.status === 'completed').length).toBeGreaterThanOrEqual(2);
    // While the job ran, a completed checkpoint wrote snapshots of the subtasks of the one region
    // (the last ones may find every subtask finished, with nothing to write).
    const withState = history.find((h) => h.outcome.status === 'completed' && h.bytesWritten > 0)!;
    expect(withState.regions.total).toBe(1);
    expect(withState.bytesWritten).toBeGreaterThan(0);

    const expected = expectedAggregates(demoShape(view.job.params));
    const rows = (await outputLines(ports, job.jobId)).map((l) => JSON.parse(l) as HourlyAggregate);
    expect(rows.length).toBe(expected.size);
    for (const row of rows) expect(row).toEqual(expected.get(aggregateKey(row)));
  });
});

describe('concurrent checkpoint triggers', () => {
  it("are refused by default and queued with whenBusy 'queue'", async () => {
    for (const whenBusy of ['refuse', 'queue'] as const) {
      // No units run: only the coordinator's answer to a second trigger matters here.
      const ports = createMemoryPorts();
      const jobs = new JobStore(ports.metadata);
      const idle = { launch: async () => {}, stop: async () => {} };
      const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'test', launcher: idle });
      const job = await service.submit({ job: 'ingest', params: { parallelism: 2 }, checkpoint: { whenBusy } });
      const driver = await CheckpointDriver.create({ job, graph: await service.graphOf(job.jobId), metadata: ports.metadata, blobs: ports.blobs, control: service });
      expect(await driver.trigger()).toBe(1);
      expect(await driver.trigger()).toBeUndefined(); // checkpoint 1 is still pending
      expect(driver.coordinator.queuedTriggers()).toBe(whenBusy === 'queue' ? 1 : 0);
    }
  });
});
