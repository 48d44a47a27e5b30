/**
 * The local runtime: the same job service, supervisor and task units as in the cloud, with task
 * units as child processes and AWS reached at the configured endpoint (the embedded emulator,
 * LocalStack, or real AWS).
 *
 * Logs: each unit's output goes to .sluice/logs/<jobId>/<unitId>.log (the launcher), and the
 * control plane of each job (supervisor, failover, checkpoint driver) writes the same Powertools
 * JSON lines, and its EMF metrics, to .sluice/logs/<jobId>/control.log.
 */
import type { JobRegistry } from '../api/registry';
import { createAwsPorts, ensureInfrastructure, type AwsPorts } from '../aws';
import { configToEnv, type SluiceConfig } from '../config';
import { JobService } from '../jobs/job-service';
import { JobStore } from '../jobs/job-store';
import { Supervisor, type FailureHandler } from '../jobs/supervisor';
import type { JobView } from '../jobs/job-service';
import { ProcessLauncher, type ProcessLauncherOptions } from './process-launcher';
import { controlLogWriter, DEFAULT_LOG_DIR } from './log-files';
import { createLogger } from '../observability/logger';
import { EmfMetrics } from '../observability/metrics';
import { teeLogger, type Logger, type MetricsSink } from '../ports/telemetry';
import { JobController, type ControllerOptions } from '../jobs/job-controller';
import { PortCheckpointCatalog } from '../checkpoint/catalog';
import { createFailoverHandler } from '../recovery/failover-handler';
import { RecoveryMetrics } from '../recovery/recovery-metrics';

/** Idle unit processes the local runtime keeps for restarts unless told otherwise. */
export const DEFAULT_SPARES = 2;

export class LocalRuntime {
  readonly ports: AwsPorts;
  readonly jobs: JobStore;
  readonly launcher: ProcessLauncher;
  readonly service: JobService;
  /** Where the units' and the control plane's log files go (one directory per job). */
  readonly logDir: string;
  /** The control plane's log and metrics: JSON lines in each job's control.log. */
  readonly controlLogger: Logger;
  readonly controlMetrics: MetricsSink;

  constructor(
    readonly config: SluiceConfig,
    registry: JobRegistry,
    options: Pick<ProcessLauncherOptions, 'restartDelayMs' | 'handoverAfterMs' | 'beforeRestart' | 'logDir' | 'spares'> = {},
  ) {
    this.ports = createAwsPorts(config);
    this.jobs = new JobStore(this.ports.metadata);
    this.logDir = options.logDir ?? DEFAULT_LOG_DIR;
    const write = controlLogWriter(this.logDir);
    this.controlLogger = createLogger({ write, attributes: { plane: 'control' } });
    this.controlMetrics = new EmfMetrics({ write, immediate: true });
    // Two warm spares: a failed unit restarts into a running process (see process-launcher.ts).
    this.launcher = new ProcessLauncher({ env: configToEnv(config), spares: DEFAULT_SPARES, ...options, logDir: this.logDir });
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
  controller(options: Omit<ControllerOptions, 'service' | 'metadata' | 'blobs'> & { failover?: boolean } = {}): JobController {
    const { failover = true, ...rest } = options;
    // The job's control.log always; a caller's logger (a test printing its progress) as well.
    const logger = rest.logger ? teeLogger(this.controlLogger, rest.logger) : this.controlLogger;
    const metricsSink = rest.metricsSink ?? this.controlMetrics;
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
            // Checkpoints are decided in this process: new attempts launch once its decisions are stored.
            fencePending: (): Promise<number[]> => controller.fenceRestart(),
            logger,
            metricsSink,
          })
        : undefined);
    const controller: JobController = new JobController({ ...rest, logger, metricsSink, metrics, onFailure, service: this.service, metadata: this.ports.metadata, blobs: this.ports.blobs });
    this.launcher.onExit((exit) => controller.unitExited(exit));
    return controller;
  }

  /** A supervisor for one job, told about every unit process that exits. */
  supervisor(options: { onProgress?: (view: JobView) => void; onFailure?: FailureHandler; pollMs?: number } = {}): Supervisor {
    const supervisor = new Supervisor({ service: this.service, logger: this.controlLogger, metrics: this.controlMetrics, ...options });
    this.launcher.onExit((exit) => supervisor.unitExited(exit));
    return supervisor;
  }

  close(): void {
    this.launcher.killAll();
    this.ports.clients.destroy();
  }
}
