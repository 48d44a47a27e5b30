/**
 * A unit fails while the controller is still storing a checkpoint it has just completed. The
 * coordinator decided N before it heard of the failure, so N stands, and its "complete" reaches
 * the old attempts, whose sinks commit N's transactions. The restarted region must restore from
 * N, every unit of it: a unit that starts after N is stored restores from N, one that starts
 * before from N - 1, and a sink restored from N (committing N's transaction) fed by a source
 * restored from N - 1 commits N's records a second time (the LocalStack lane's exactly-once test
 * saw 447 duplicated ids).
 */
import { describe, expect, it } from 'vitest';
import { createMemoryPorts } from '../../../lib/memory';
import { jobRegistry } from '../../../examples/jobs';
import { expectedIngestIds } from '../../../examples/jobs/ingest';
import { PortCheckpointCatalog } from '../../../lib/checkpoint/catalog';
import { JobController } from '../../../lib/jobs/job-controller';
import { JobService, type UnitLauncher } from '../../../lib/jobs/job-service';
import { JobStore, type JobRecord, type UnitPlacement } from '../../../lib/jobs/job-store';
import { InProcessLauncher } from '../../../lib/local/in-process-launcher';
import type { BlobStore } from '../../../lib/ports/blob-store';
import { createFailoverHandler } from '../../../lib/recovery/failover-handler';
import { readOutput } from './helpers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Records, for each restarted attempt, the latest completed checkpoint when it was launched. */
class ObservingLauncher implements UnitLauncher {
  readonly restartsSaw: { unitId: string; attempt: number; latest: number | undefined }[] = [];

  constructor(
    private readonly inner: InProcessLauncher,
    private readonly latest: (jobId: string) => Promise<number | undefined>,
  ) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    // The sink's new attempt starts late (a cold start): without the fence the checkpoint being
    // stored lands between the two starts, and the source restores from the one before it.
    if (attempt > 0 && unit.unitId.startsWith('s3-sink')) await sleep(1500);
    if (attempt > 0) this.restartsSaw.push({ unitId: unit.unitId, attempt, latest: await this.latest(job.jobId) });
    await this.inner.launch(job, unit, attempt);
  }

  stop(jobId: string, unitId: string): Promise<void> {
    return this.inner.stop(jobId, unitId);
  }
}

/** The controller's blob store: once armed, the next manifest write calls `during` and takes a second. */
function slowManifests(blobs: BlobStore) {
  const state: { armed: boolean; during?: (checkpointId: number) => void; persisting?: number } = { armed: false };
  const store = new Proxy(blobs, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== 'put' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return async (key: string, body: unknown) => {
        const m = /^checkpoints\/[^/]+\/(\d+)\/manifest/.exec(key);
        if (m && state.armed) {
          state.armed = false;
          state.persisting = Number(m[1]);
          state.during?.(state.persisting);
          await sleep(1000);
        }
        return (value as (k: string, b: unknown) => Promise<void>).call(target, key, body);
      };
    },
  });
  return { store, state };
}

describe('a restart while a completed checkpoint is being stored', () => {
  it('the restarted region restores from that checkpoint, and the output is exact', async () => {
    const ports = createMemoryPorts();
    const jobs = new JobStore(ports.metadata);
    const catalog = (jobId: string) => new PortCheckpointCatalog(jobId, ports.metadata, ports.blobs);
    const inner = new InProcessLauncher({ channels: ports.channels, blobs: ports.blobs, metadata: ports.metadata, jobs, registry: jobRegistry, queuePrefix: 'rp' });
    const launcher = new ObservingLauncher(inner, async (jobId) => (await catalog(jobId).loadLatest())?.checkpointId);
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'rp', launcher });
    // Paced (about 8 s of input) so checkpoints complete while records flow.
    const params = { parallelism: 1, partitions: 2, recordsPerPartition: 2000, rate: 500 };
    const job = await service.submit({ job: 'ingest', params, failover: 'region', heartbeatTimeoutSeconds: 60, checkpoint: { handle: 'global', timeoutSeconds: 5 } });
    const slow = slowManifests(ports.blobs);
    const controller: JobController = new JobController({
      service,
      metadata: ports.metadata,
      blobs: slow.store,
      pollMs: 50,
      checkpointEveryMs: 300,
      onFailure: createFailoverHandler({
        jobs,
        service,
        launcher,
        latestManifest: (jobId) => catalog(jobId).loadLatest(),
        fencePending: () => controller.fenceRestart(),
      }),
    });
    const sink = job.units.find((u) => u.unitId.startsWith('s3-sink'))!;
    // The sink's attempt 0 fails just as the controller starts writing a completed checkpoint.
    slow.state.during = () => controller.unitExited({ jobId: job.jobId, unitId: sink.unitId, attempt: 0, code: 1, signal: null, at: Date.now() });
    const running = controller.run(job.jobId);
    for (let i = 0; i < 200 && (await catalog(job.jobId).loadLatest()) === undefined; i++) await sleep(50);
    expect(await catalog(job.jobId).loadLatest()).toBeDefined();
    slow.state.armed = true;

    const view = await running;
    expect(view.job.status).toBe('FINISHED');
    expect(slow.state.persisting).toBeDefined();
    // The region (source and sink) restarted once, each from the checkpoint being stored at the failure.
    expect(launcher.restartsSaw.map((r) => [r.unitId, r.attempt, r.latest]).sort()).toEqual(
      job.units.map((u) => [u.unitId, 1, slow.state.persisting]).sort(),
    );
    const ids = (await readOutput<{ id: string }>(ports.blobs, job.jobId)).map((r) => r.id);
    expect(ids.length - new Set(ids).size).toBe(0);
    expect(new Set(ids)).toEqual(expectedIngestIds(view.job.params));
  }, 60_000);
});
