/**
 * Runs task units inside this process, for unit tests and simulations on in-memory ports.
 * Stopping a unit cancels its subtasks (there is no process to kill).
 */
import type { JobRegistry } from '../api/registry';
import type { JobRecord, JobStore, UnitPlacement, UnitStatus } from '../jobs/job-store';
import type { UnitLauncher } from '../jobs/job-service';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { MetadataStore } from '../ports/metadata-store';
import type { ControlMessage } from '../runtime/messages';
import { hostUnit } from '../runtime/unit-host';

export class InProcessLauncher implements UnitLauncher {
  readonly results = new Map<string, Promise<UnitStatus>>();
  private readonly attempts = new Map<string, number>();

  constructor(
    private readonly deps: { channels: ChannelTransport; blobs: BlobStore; metadata: MetadataStore; jobs: JobStore; registry: JobRegistry; queuePrefix: string },
  ) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const run = hostUnit({ ...this.deps, jobId: job.jobId, unitId: unit.unitId, attempt });
    run.catch(() => undefined);
    this.results.set(`${job.jobId}/${unit.unitId}#${attempt}`, run);
    this.attempts.set(`${job.jobId}/${unit.unitId}`, attempt);
  }

  /** Cancels the attempt launched last (the control queue outlives attempts: name the attempt). */
  async stop(jobId: string, unitId: string): Promise<void> {
    const attempt = this.attempts.get(`${jobId}/${unitId}`);
    if (attempt === undefined) return;
    const message: ControlMessage = { type: 'cancel', attempt };
    await this.deps.channels
      .send((await this.deps.jobs.getJob(jobId)).units.find((u) => u.unitId === unitId)!.controlQueue, [
        { groupId: 'control', dedupId: `stop-${unitId}-${attempt}`, body: JSON.stringify(message) },
      ])
      .catch(() => undefined);
  }

  /** Resolves when every launched unit has ended. */
  async settled(): Promise<UnitStatus[]> {
    return Promise.all(this.results.values());
  }
}
