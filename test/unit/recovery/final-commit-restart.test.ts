/**
 * A sink killed in the middle of its region's final commit, after some of it became visible and
 * before its unit was recorded finished. Its region restarts from a checkpoint and sends its input
 * again; the sink's new attempt must commit what the dead one was committing, and nothing of the
 * replayed input a second time. (The LocalStack lane's exactly-once test, seed 3005: s3-sink-1
 * killed just after generator-1 finished; 10,207 ids committed twice.)
 */
import { describe, expect, it } from 'vitest';
import { createMemoryPorts, type MemoryPorts } from '../../../lib/memory';
import { jobRegistry } from '../../../examples/jobs';
import { expectedIngestIds } from '../../../examples/jobs/ingest';
import { PortCheckpointCatalog } from '../../../lib/checkpoint/catalog';
import { JobController } from '../../../lib/jobs/job-controller';
import { JobService, type UnitLauncher } from '../../../lib/jobs/job-service';
import { JobStore, type JobRecord, type UnitPlacement } from '../../../lib/jobs/job-store';
import { InProcessLauncher } from '../../../lib/local/in-process-launcher';
import { createFailoverHandler } from '../../../lib/recovery/failover-handler';
import { finalCommitKey } from '../../../lib/runtime/sink-ledger';
import { readOutput } from './helpers';
import { killSwitch } from '../../../lib/memory/kill-switch';


/**
 * The sink's first attempt runs on ports that die at the first delete of a staged file of its last
 * transaction (its copy to the output is done): dead with its last output visible and the rest of
 * its final commit undone. `died` reports the exit. Every other attempt runs on the plain ports.
 */
class DyingSinkLauncher implements UnitLauncher {
  private readonly plain: InProcessLauncher;
  private readonly dying: InProcessLauncher;

  constructor(ports: MemoryPorts, jobs: JobStore, died: (unitId: string) => void) {
    const sw = killSwitch({ abortReceives: true });
    const deps = { jobs, registry: jobRegistry, queuePrefix: 'fc' };
    this.plain = new InProcessLauncher({ ...deps, channels: ports.channels, blobs: ports.blobs, metadata: ports.metadata });
    let armed = true;
    const blobs = sw.wrap(ports.blobs);
    const dyingBlobs = new Proxy(blobs, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (prop !== 'delete' || typeof value !== 'function') return value;
        return async (keys: string[]) => {
          if (armed && keys.some((k) => k.startsWith('staging/') && k.includes('/final/'))) {
            armed = false;
            sw.kill();
            died(this.sinkUnit);
          }
          return (value as (k: string[]) => Promise<void>)(keys);
        };
      },
    });
    this.dying = new InProcessLauncher({ ...deps, channels: sw.wrap(ports.channels), blobs: dyingBlobs, metadata: sw.wrap(ports.metadata) });
  }

  sinkUnit = '';

  launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const first = unit.unitId.startsWith('s3-sink') && attempt === 0;
    if (first) this.sinkUnit = unit.unitId;
    return (first ? this.dying : this.plain).launch(job, unit, attempt);
  }

  async stop(jobId: string, unitId: string): Promise<void> {
    await this.plain.stop(jobId, unitId);
  }
}

describe('a sink killed during its final commit', () => {
  it('its region restarts; the new attempt commits the recorded final commit, and the output is exact', async () => {
    const ports = createMemoryPorts();
    const jobs = new JobStore(ports.metadata);
    let controller: JobController | undefined;
    let jobId = '';
    const launcher = new DyingSinkLauncher(ports, jobs, (unitId) => controller!.unitExited({ jobId, unitId, attempt: 0, code: null, signal: 'SIGKILL', at: Date.now() }));
    const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'fc', launcher });
    // Paced (about 3 s of input), so checkpoints complete on the way and some are staged at the end.
    const params = { parallelism: 1, partitions: 2, recordsPerPartition: 1000, rate: 500 };
    const job = await service.submit({ job: 'ingest', params, failover: 'region', heartbeatTimeoutSeconds: 60, checkpoint: { handle: 'regional', timeoutSeconds: 5 } });
    jobId = job.jobId;
    const sinkUnit = job.units.find((u) => u.unitId.startsWith('s3-sink'))!.unitId;
    controller = new JobController({
      service,
      metadata: ports.metadata,
      blobs: ports.blobs,
      pollMs: 50,
      checkpointEveryMs: 150,
      onFailure: createFailoverHandler({ jobs, service, launcher, latestManifest: (id) => new PortCheckpointCatalog(id, ports.metadata, ports.blobs).loadLatest() }),
    });
    const view = await controller.run(job.jobId);

    expect(view.job.status).toBe('FINISHED');
    // The sink died once, in its final commit, and its region restarted from a checkpoint.
    expect(controller.supervisor.failures.map((f) => `${f.unitId}#${f.attempt}`)).toEqual([`${sinkUnit}#0`]);
    expect(view.units.map((u) => u.attempt)).toEqual(job.units.map(() => 1));
    expect(await ports.blobs.get(finalCommitKey(job.jobId, 's3-sink#0'))).toBeDefined();
    // The new attempt reports what the dead one counted up to its end (it read nothing itself):
    // every record once, none missing.
    const sinkStats = view.units.find((u) => u.unitId === sinkUnit)!.stats!['s3-sink#0']!;
    expect(sinkStats).toMatchObject({ status: 'finished', recordsIn: 2 * 1000, missingRecords: 0 });
    const ids = (await readOutput<{ id: string }>(ports.blobs, job.jobId)).map((r) => r.id);
    expect(ids.length - new Set(ids).size).toBe(0);
    expect(new Set(ids)).toEqual(expectedIngestIds(view.job.params));
  }, 60_000);
});
