/**
 * The job API on this machine: the same handlers as the Lambda functions, behind a local HTTP
 * server, over in-process services. Task units run as child processes of the local runtime
 * against the configured AWS endpoint (the embedded emulator, LocalStack, or real AWS); each
 * job's checkpoint schedule runs on a LocalCheckpointScheduler; a supervisor watches each job
 * submitted here until it ends. The web UI (ui/, built in memory at start) is served at /ui/.
 */
import { createApiRouter } from '../../functions/api/handlers';
import { buildApiServices, JobNotRunningError, type ApiServices, type CheckpointService, type SchedulerPort } from '../../functions/api/services';
import { loadJobRegistry } from '../api/jobs-module';
import type { JobRegistry } from '../api/registry';
import { loadConfig, type SluiceConfig } from '../config';
import { UnknownJobError } from '../jobs/job-store';
import { Supervisor } from '../jobs/supervisor';
import { PortCheckpointCatalog } from '../checkpoint/catalog';
import { createFailoverHandler } from '../recovery/failover-handler';
import { RecoveryMetrics } from '../recovery/recovery-metrics';
import { LocalRuntime } from '../local/local-runtime';
import type { Clock } from '../ports/clock';
import { LocalCheckpointScheduler, type CheckpointSchedule } from '../schedule';
import { buildUiAssets } from '../ui/build';
import { isUiPath, serveUiAsset, type UiAssets } from '../ui/serve';
import { serveProxy, type ProxyHandler, type ProxyServer } from './http';
import { runCheckpointWorkflow } from './checkpoint-workflow';

/** Each job's schedule on a LocalCheckpointScheduler; a fire calls `fire(jobId)`. */
export class LocalSchedulerPort implements SchedulerPort {
  private readonly schedulers = new Map<string, LocalCheckpointScheduler>();
  /** What a fire does (set once the services exist). */
  fire: (jobId: string, fireTime: number) => Promise<void> = async () => undefined;

  constructor(private readonly options: { clock?: Clock; log?: (line: string) => void } = {}) {}

  check(_schedule: CheckpointSchedule): void {}

  async apply(jobId: string, schedule: CheckpointSchedule | null): Promise<void> {
    const existing = this.schedulers.get(jobId);
    if (!schedule) {
      this.schedulers.delete(jobId);
      await existing?.stop();
      return;
    }
    if (existing) {
      existing.setSchedule(schedule); // no restart: the next fire time is recomputed now
      return;
    }
    const scheduler = new LocalCheckpointScheduler({
      schedule,
      ...(this.options.clock ? { clock: this.options.clock } : {}),
      onFire: async (t) => {
        try {
          await this.fire(jobId, t);
        } catch (err) {
          // The job ended (or is gone): stop firing for it.
          if (err instanceof JobNotRunningError || err instanceof UnknownJobError) {
            await this.apply(jobId, null);
            return;
          }
          throw err;
        }
      },
      onError: (err) => this.options.log?.(`checkpoint schedule of ${jobId}: ${err instanceof Error ? err.message : String(err)}`),
    });
    this.schedulers.set(jobId, scheduler);
    scheduler.start();
  }

  /** The running scheduler of a job (tests, diagnostics). */
  get(jobId: string): LocalCheckpointScheduler | undefined {
    return this.schedulers.get(jobId);
  }

  async stopAll(): Promise<void> {
    const all = [...this.schedulers.values()];
    this.schedulers.clear();
    await Promise.all(all.map((s) => s.stop()));
  }
}

export interface LocalApiOptions {
  config?: SluiceConfig;
  /** The jobs; default: the process's jobs module (lib/api/jobs-module.ts). */
  registry?: JobRegistry;
  port?: number;
  host?: string;
  /** Replaces the provisional checkpoint service (the coordinator wiring). */
  checkpoints?: (runtime: LocalRuntime) => CheckpointService;
  /** Milliseconds between supervision passes of a job (default 500). */
  supervisePollMs?: number;
  /** Serve the web UI at /ui/ (default true): built from ui/ with esbuild when the server starts. */
  ui?: boolean;
  log?: (line: string) => void;
}

export interface LocalApi {
  url: string;
  services: ApiServices;
  runtime: LocalRuntime;
  scheduler: LocalSchedulerPort;
  server: ProxyServer;
  close(): Promise<void>;
}

/** Starts the local API server: prepares the table and bucket, then listens. */
export async function startLocalApi(options: LocalApiOptions = {}): Promise<LocalApi> {
  const config = options.config ?? loadConfig();
  const log = options.log ?? (() => undefined);
  const registry = options.registry ?? (await loadJobRegistry());
  const runtime = new LocalRuntime(config, registry);
  let closed = false;
  const wake = new AbortController();
  let ui: UiAssets | undefined;
  try {
    [ui] = await Promise.all([options.ui === false ? undefined : buildUiAssets(), runtime.prepare()]);
  } catch (err) {
    runtime.close();
    throw err;
  }

  // The supervisors sleep on this clock; closing the API ends their loops.
  const supervisionClock: Clock = {
    now: () => Date.now(),
    sleep: (ms) =>
      new Promise<void>((resolve, reject) => {
        if (closed) return reject(new Error('local API closed'));
        const timer = setTimeout(resolve, ms);
        wake.signal.addEventListener('abort', () => (clearTimeout(timer), reject(new Error('local API closed'))), { once: true });
      }),
  };
  const watching = new Set<Promise<unknown>>();
  const workflows = new Set<Promise<unknown>>();
  const scheduler = new LocalSchedulerPort({ log });
  const services = buildApiServices({
    metadata: runtime.ports.metadata,
    channels: runtime.ports.channels,
    blobs: runtime.ports.blobs,
    registry,
    queuePrefix: config.queuePrefix,
    launcher: runtime.launcher,
    jobService: runtime.service,
    scheduler,
    logger: runtime.controlLogger,
    metrics: runtime.controlMetrics,
    ...(options.checkpoints ? { checkpoints: options.checkpoints(runtime) } : {}),
    // The rest of a triggered checkpoint: the state machine's steps, run here in the background.
    startCheckpoint: async (jobId, checkpointId, steps) => {
      const run = runCheckpointWorkflow(steps, { jobId, checkpointId }, { signal: wake.signal })
        .then((r) => log(`checkpoint ${checkpointId} of ${jobId}: ${r.result.outcome ?? 'undecided'}${r.result.message ? ` (${r.result.message})` : ''}`))
        .catch((err: unknown) => {
          if (!closed) log(`checkpoint ${checkpointId} of ${jobId}: workflow failed: ${err instanceof Error ? err.message : String(err)}`);
        })
        .finally(() => workflows.delete(run));
      workflows.add(run);
    },
    onSubmitted: (job) => {
      // A failed unit is failed over by the job's strategy, as the cloud supervisor does; a
      // checkpoint pending at the time fails that region at its timeout. The failure events'
      // drop and processed counters grow from the supervisor's views until they settle.
      const metrics = new RecoveryMetrics(runtime.ports.metadata);
      const onFailure = createFailoverHandler({
        jobs: runtime.jobs,
        service: runtime.service,
        launcher: runtime.launcher,
        metrics,
        latestManifest: (jobId) => new PortCheckpointCatalog(jobId, runtime.ports.metadata, runtime.ports.blobs).loadLatest(),
        logger: runtime.controlLogger,
        metricsSink: runtime.controlMetrics,
      });
      const supervisor = new Supervisor({
        service: runtime.service,
        clock: supervisionClock,
        pollMs: options.supervisePollMs ?? 500,
        onFailure,
        logger: runtime.controlLogger,
        metrics: runtime.controlMetrics,
        onProgress: (view) => void metrics.observe(view).catch(() => undefined),
      });
      runtime.launcher.onExit((exit) => supervisor.unitExited(exit));
      const watch = supervisor
        .watch(job.jobId)
        .then(async (view) => {
          await metrics.observe(view).catch(() => undefined);
          log(`job ${job.jobId} ended: ${view.job.status}${view.job.error ? ` (${view.job.error})` : ''}`);
        })
        .catch((err: unknown) => {
          if (!closed) log(`supervising ${job.jobId} stopped: ${err instanceof Error ? err.message : String(err)}`);
        })
        .finally(() => {
          watching.delete(watch);
          if (!closed) void scheduler.apply(job.jobId, null);
        });
      watching.add(watch);
    },
  });
  scheduler.fire = async (jobId) => {
    const { checkpointId } = await services.checkpoints.trigger(jobId);
    log(`checkpoint ${checkpointId} of ${jobId} triggered by its schedule`);
  };

  const api = createApiRouter(services);
  const assets = ui;
  const handler: ProxyHandler = assets
    ? async (event, context) => {
        if (!isUiPath(event.path)) return api(event, context);
        const etag = Object.entries(event.headers ?? {}).find(([k]) => k.toLowerCase() === 'if-none-match')?.[1];
        return serveUiAsset(assets, event.httpMethod, event.path, etag);
      }
    : api;
  const server = await serveProxy(handler, {
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.host !== undefined ? { host: options.host } : {}),
    log,
  });
  return {
    url: server.url,
    services,
    runtime,
    scheduler,
    server,
    async close() {
      if (closed) return;
      closed = true;
      wake.abort();
      await server.close();
      await scheduler.stopAll();
      await Promise.allSettled([...watching, ...workflows]);
      runtime.close();
    },
  };
}
