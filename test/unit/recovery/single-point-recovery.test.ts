/**
 * Single-point recovery end to end, in-process on the in-memory ports: the recommendation join
 * with one join subtask that crashes once. The test launcher wires the recovery pieces into the
 * task unit the way the runtime is meant to: the unit's AvailabilityView is its writers' gate,
 * availability control messages update it, and a restarted unit calls announceAvailable first.
 */
import { describe, expect, it } from 'vitest';
import { createMemoryPorts, type MemoryPorts } from '../../../lib/memory';
import { JobRegistry } from '../../../lib/api/registry';
import { buildExecutionGraph } from '../../../lib/graph/execution-graph';
import { JobService, type UnitLauncher } from '../../../lib/jobs/job-service';
import { JobStore, type JobRecord, type UnitPlacement } from '../../../lib/jobs/job-store';
import { Supervisor } from '../../../lib/jobs/supervisor';
import { forwardingTransport, type ChannelTransport, type ReceiveOptions } from '../../../lib/ports/channels';
import { TaskUnit, type UnitOutcome } from '../../../lib/runtime/task-unit';
import { hashPartition } from '../../../lib/runtime/record-writer';
import { AvailabilityRegistry, flagPerSubPartition, loadAvailabilityView } from '../../../lib/recovery/availability';
import { FailoverHandler, announceAvailable } from '../../../lib/recovery/failover-handler';
import { RecoveryMetrics } from '../../../lib/recovery/recovery-metrics';
import { multiplexedChannels } from '../../../lib/host/unit-host';
import {
  RecommendationJoin,
  buildRecommendationJoin,
  checkRecommendations,
  eventUser,
  joinShape,
  recommendationJoinJob,
  type Recommendation,
} from '../../../examples/jobs/recommendation-join';
import { readOutput } from './helpers';

const CRASH_AT = 'ev-3000';

/** The recommendation join whose join function throws once, at one event. */
function crashingRegistry(): { registry: JobRegistry; crashed: () => boolean } {
  let crashed = false;
  const registry = new JobRegistry([
    {
      ...recommendationJoinJob,
      build: (params) =>
        buildRecommendationJoin(params, {
          join: () => {
            const join = new RecommendationJoin();
            return {
              processElement(record, ctx) {
                if (!crashed && 'id' in record && record.id === CRASH_AT) {
                  crashed = true;
                  throw new Error(`injected crash at ${CRASH_AT}`);
                }
                join.processElement(record, ctx);
              },
            };
          },
        }),
    },
  ]);
  return { registry, crashed: () => crashed };
}

/**
 * Messages a crashed consumer had received stay invisible (and block their FIFO group) for the
 * visibility timeout the input gate asks for (300 s); the test shortens it to 2 s.
 */
function shortVisibility(inner: ChannelTransport, seconds: number): ChannelTransport {
  return forwardingTransport(inner, {
    receive: (q, o: ReceiveOptions) => inner.receive(q, { ...o, visibilityTimeoutSeconds: Math.min(o.visibilityTimeoutSeconds ?? seconds, seconds) }),
  });
}

/** Runs units in-process with the recovery wiring; a restarted attempt takes `restartMs` to come up. */
class RecoveryWiredLauncher implements UnitLauncher {
  readonly runs: Promise<UnitOutcome>[] = [];
  readonly announced: { unitId: string; attempt: number; messages: number }[] = [];

  constructor(
    private readonly deps: { ports: MemoryPorts; channels: ChannelTransport; jobs: JobStore; registry: JobRegistry; queuePrefix: string; restartMs: number },
  ) {}

  async launch(job: JobRecord, unit: UnitPlacement, attempt: number): Promise<void> {
    const { ports, channels, jobs, registry, queuePrefix } = this.deps;
    const run = (async () => {
      const graph = buildExecutionGraph(registry.build(job.name, job.params).graph);
      if (attempt > 0) await new Promise((r) => setTimeout(r, this.deps.restartMs)); // start + restore
      const announced = await announceAvailable({ metadata: ports.metadata, channels, job, graph, unitId: unit.unitId, attempt });
      this.announced.push({ unitId: unit.unitId, attempt, messages: announced.messages });
      const view = await loadAvailabilityView({ metadata: ports.metadata, jobId: job.jobId, graph, subtasks: unit.subtasks });
      // The unit's channels multiplexed over its input queue, as the unit host wires them.
      const mux = multiplexedChannels({ channels, queuePrefix, attempt }, job, unit, graph);
      const taskUnit = new TaskUnit({
        ...(mux ? { mux } : {}),
        jobId: job.jobId,
        unitId: unit.unitId,
        attempt,
        graph,
        subtasks: unit.subtasks,
        controlQueue: unit.controlQueue,
        queuePrefix,
        channels,
        blobs: ports.blobs,
        jobs,
        gate: view,
        heartbeatMs: 200,
        onControl: async (message) => {
          view.handleControl(message);
        },
      });
      return taskUnit.run();
    })();
    run.catch(() => undefined);
    this.runs.push(run);
  }

  async stop(): Promise<void> {
    // In-process units have no process to kill; a superseded attempt cancels itself at its next heartbeat.
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('single-point recovery of the recommendation join (in-process, memory ports)', () => {
  it('restarts only the failed join subtask; loss is confined to its keys and measured', async () => {
    const ports = createMemoryPorts();
    const channels = shortVisibility(ports.channels, 2);
    const jobs = new JobStore(ports.metadata);
    const { registry, crashed } = crashingRegistry();
    const launcher = new RecoveryWiredLauncher({ ports, channels, jobs, registry, queuePrefix: 'sp', restartMs: 400 });
    const service = new JobService({ jobs, channels, registry, queuePrefix: 'sp', launcher });
    const metrics = new RecoveryMetrics(ports.metadata, { settleMs: 300 });
    const handler = new FailoverHandler({ jobs, service, launcher, metrics });
    // ~3 s of input per source subtask; the crash comes about a third of the way in.
    const params = { parallelism: 3, events: 9000, featureUpdates: 900, users: 120, partitions: 6, minutes: 60, rate: 1000 };

    const job = await service.submit({ job: 'recommendation-join', params, failover: 'single' });
    const supervisor = new Supervisor({ service, pollMs: 50, onFailure: handler.onFailure, onProgress: (v) => void metrics.observe(v) });
    const view = await withTimeout(supervisor.watch(job.jobId), 60_000, 'the job');
    await metrics.observe(view);

    expect(crashed()).toBe(true);
    expect(view.job.status).toBe('FINISHED');
    expect(supervisor.failures).toHaveLength(1);
    const shape = joinShape(view.job.params);
    const failedIndex = hashPartition(eventUser(shape, 3000), 3);
    const failedUnit = `join-${failedIndex}`;
    expect(supervisor.failures[0]!.unitId).toBe(failedUnit);

    // No other unit restarted.
    const attempts = Object.fromEntries(view.units.map((u) => [u.unitId, u.attempt]));
    expect(Object.entries(attempts).filter(([, a]) => a > 0)).toEqual([[failedUnit, 1]]);

    // Producers dropped records for the failed join while it was down.
    expect(view.totals.dropped).toBeGreaterThan(0);
    expect(launcher.announced.find((a) => a.attempt === 1)).toEqual({ unitId: failedUnit, attempt: 1, messages: 6 });

    // Output: no duplicates, no join mistakes; every lost event belongs to the failed subtask's keys.
    const records = await readOutput<Recommendation>(ports.blobs, job.jobId);
    const check = checkRecommendations(shape, records);
    expect(check.duplicates).toEqual([]);
    expect(check.unexpected).toEqual([]);
    expect(check.wrong).toEqual([]);
    expect(check.missing.length).toBeGreaterThan(0);
    const lostElsewhere = check.missing.filter((id) => hashPartition(eventUser(shape, Number(id.slice(3))), 3) !== failedIndex);
    expect(lostElsewhere).toEqual([]);
    const routedToFailed = [...Array(shape.events).keys()].filter((i) => hashPartition(eventUser(shape, i), 3) === failedIndex).length;
    expect(check.missing.length).toBeLessThan(routedToFailed);
    expect(check.seen + check.missing.length).toBe(shape.events);

    // The failure event: timeline and counters.
    const [event] = await metrics.list(job.jobId);
    expect(event).toMatchObject({ seq: 1, unitId: failedUnit, attempt: 0, newAttempt: 1, strategy: 'single', status: 'CLOSED', unitsRestarted: 1 });
    expect(event!.unavailable).toEqual([`e0/${failedIndex}`, `e1/${failedIndex}`]);
    expect(event!.detectedAt).toBeGreaterThanOrEqual(event!.failedAt);
    expect(event!.restartedAt!).toBeGreaterThanOrEqual(event!.detectedAt);
    expect(event!.availableAgainAt!).toBeGreaterThanOrEqual(event!.restartedAt! + 350);
    expect(event!.recordsDropped).toBe(view.totals.dropped);
    expect(event!.recordsProcessed).toBeGreaterThan(0);

    // The flags end available, at the new attempt.
    const flags = await new AvailabilityRegistry(ports.metadata, job.jobId, flagPerSubPartition).list();
    expect(flags.map((f) => [f.edgeId, f.consumer, f.available, f.attempt])).toEqual([
      ['e0', failedIndex, true, 1],
      ['e1', failedIndex, true, 1],
    ]);
    await Promise.allSettled(launcher.runs);
  });
});
