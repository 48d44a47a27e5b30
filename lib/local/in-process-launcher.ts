/**
 * Runs task units inside this process, for unit tests and simulations on in-memory ports.
 * Stopping a unit cancels its subtasks (there is no process to kill). With `handoverAfterMs`
 * each invocation hands over to the next after that long, as a Lambda unit does before its
 * time limit.
 */
import type { JobRegistry } from '../api/registry';
import type { JobRecord, JobStore, UnitPlacement } from '../jobs/job-store';
import type { UnitLauncher } from '../jobs/job-service';
import type { BlobStore } from '../ports/blob-store';
import type { ChannelTransport } from '../ports/channels';
import type { MetadataStore } from '../ports/metadata-store';
import type { Logger, MetricsSink } from '../ports/telemetry';
import type { ControlMessage } from '../runtime/messages';
import type { UnitOutcome } from '../runtime/task-unit';
import { hostUnit } from '../host/unit-host';

export interface InProcessLauncherDeps {
  channels: ChannelTransport;
  blobs: BlobStore;
  metadata: MetadataStore;
  jobs: JobStore;
  registry: JobRegistry;
  queuePrefix: string;
  /** Each invocation hands over to the next after this long (default: never). */
  handoverAfterMs?: number;
  handoverGraceMs?: number;
  /** The units' log and metrics (default: none). */
  logger?: Logger;
  metrics?: MetricsSink;
  metricsEveryMs?: number;
}

export class InProcessLauncher implements UnitLauncher {
  readonly results = new Map<string, Promise<UnitOutcome>>();
  private readonly attempts = new Map<string, number>();
  /** Control queue of each unit launched (`<jobId>/<unitId>`). */
  private readonly controlQueues = new Map<string, string>();
  /** Hand-overs per unit attempt (`<jobId>/<unitId>#<attempt>`). */
  readonly handovers = new Map<string, number>();

  constructor(private readonly deps: InProcessLauncherDeps) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const run = this.invocations(job.jobId, unit.unitId, attempt);
    run.catch(() => undefined);
    this.results.set(`${job.jobId}/${unit.unitId}#${attempt}`, run);
    this.attempts.set(`${job.jobId}/${unit.unitId}`, attempt);
    this.controlQueues.set(`${job.jobId}/${unit.unitId}`, unit.controlQueue);
  }

  /** One attempt: its first invocation, then one more per hand-over. */
  private async invocations(jobId: string, unitId: string, attempt: number): Promise<UnitOutcome> {
    const { handoverAfterMs, handoverGraceMs, ...deps } = this.deps;
    const key = `${jobId}/${unitId}#${attempt}`;
    for (let resume = false; ; resume = true) {
      const outcome = await hostUnit({
        ...deps,
        jobId,
        unitId,
        attempt,
        resume,
        ...(handoverAfterMs !== undefined ? { handoverAt: Date.now() + handoverAfterMs } : {}),
        ...(handoverGraceMs !== undefined ? { handoverGraceMs } : {}),
      });
      if (outcome !== 'HANDED_OVER') return outcome;
      this.handovers.set(key, (this.handovers.get(key) ?? 0) + 1);
    }
  }

  /** Cancels the attempt launched last (the control queue outlives attempts: name the attempt). */
  async stop(jobId: string, unitId: string): Promise<void> {
    const attempt = this.attempts.get(`${jobId}/${unitId}`);
    const queue = this.controlQueues.get(`${jobId}/${unitId}`);
    if (attempt === undefined || queue === undefined) return;
    const message: ControlMessage = { type: 'cancel', attempt };
    await this.deps.channels
      .send(queue, [
        { groupId: 'control', dedupId: `stop-${unitId}-${attempt}`, body: JSON.stringify(message) },
      ])
      .catch(() => undefined);
  }

  /** Resolves when every launched unit has ended. */
  async settled(): Promise<UnitOutcome[]> {
    return Promise.all(this.results.values());
  }
}
