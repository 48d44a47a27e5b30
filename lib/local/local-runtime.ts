/**
 * The local runtime: the same job service, supervisor and task units as in the cloud, with task
 * units as child processes and AWS reached at the configured endpoint (the embedded emulator,
 * LocalStack, or real AWS).
 */
import type { JobRegistry } from '../api/registry';
import { createAwsPorts, ensureInfrastructure, type AwsPorts } from '../aws';
import { configToEnv, type SluiceConfig } from '../config';
import { JobService } from '../jobs/job-service';
import { JobStore } from '../jobs/job-store';
import { Supervisor, type FailureHandler } from '../jobs/supervisor';
import type { JobView } from '../jobs/job-service';
import { ProcessLauncher, type ProcessLauncherOptions } from './process-launcher';
import { JobController, type ControllerOptions } from '../jobs/job-controller';
import { PortCheckpointCatalog } from '../checkpoint/catalog';
import { createFailoverHandler } from '../recovery/failover-handler';
import { RecoveryMetrics } from '../recovery/recovery-metrics';

export class LocalRuntime {
  readonly ports: AwsPorts;
  readonly jobs: JobStore;
  readonly launcher: ProcessLauncher;
  readonly service: JobService;

  constructor(
    readonly config: SluiceConfig,
    registry: JobRegistry,
    options: Pick<ProcessLauncherOptions, 'restartDelayMs' | 'handoverAfterMs' | 'beforeRestart'> = {},
  ) {
    this.ports = createAwsPorts(config);
    this.jobs = new JobStore(this.ports.metadata);
    this.launcher = new ProcessLauncher({ env: configToEnv(config), ...options });
    this.service = new JobService({
      jobs: this.jobs,
      channels: this.ports.channels,
      registry,
      queuePrefix: config.queuePrefix,
      launcher: this.launcher,
    });
  }

  /** Creates the table and bucket if they are missing (fails clearly if AWS is unreachable). */
  async prepare(): Promise<void> {
    await ensureInfrastructure(this.config, this.ports.clients);
  }

  /**
   * The control plane of one job (supervisor, checkpoints, failover by the job's strategy), told
   * about unit exits. `failover: false` fails the job at the first unit failure instead.
   */
  controller(options: Omit<ControllerOptions, 'service' | 'metadata' | 'blobs'> & { failover?: boolean; log?: (line: string) => void } = {}): JobController {
    const { failover = true, log, ...rest } = options;
    const metrics = rest.metrics ?? new RecoveryMetrics(this.ports.metadata);
    const onFailure =
      rest.onFailure ??
      (failover
        ? createFailoverHandler({
            jobs: this.jobs,
            service: this.service,
            launcher: this.launcher,
            metrics,
            latestManifest: (jobId) => new PortCheckpointCatalog(jobId, this.ports.metadata, this.ports.blobs).loadLatest(),
            ...(log ? { log } : {}),
          })
        : undefined);
    const controller = new JobController({ ...rest, metrics, onFailure, service: this.service, metadata: this.ports.metadata, blobs: this.ports.blobs });
    this.launcher.onExit((exit) => controller.unitExited(exit));
    return controller;
  }

  /** A supervisor for one job, told about every unit process that exits. */
  supervisor(options: { onProgress?: (view: JobView) => void; onFailure?: FailureHandler; pollMs?: number } = {}): Supervisor {
    const supervisor = new Supervisor({ service: this.service, ...options });
    this.launcher.onExit((exit) => supervisor.unitExited(exit));
    return supervisor;
  }

  close(): void {
    this.launcher.killAll();
    this.ports.clients.destroy();
  }
}
