import { beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryChannelTransport, MemoryMetadataStore } from '../../../lib/memory';
import { DEFAULT_SETTINGS, type JobView, type UnitLauncher } from '../../../lib/jobs/job-service';
import { JobStore, storedJob, type JobRecord, type FailoverStrategy, type UnitPlacement, type UnitRecord } from '../../../lib/jobs/job-store';
import type { UnitFailure } from '../../../lib/jobs/supervisor';
import type { ExecutionGraph } from '../../../lib/graph/execution-graph';
import type { ControlMessage } from '../../../lib/runtime/messages';
import type { MetaItem, Condition } from '../../../lib/ports/metadata-store';
import { AvailabilityRegistry, flagGroupsByUnit, loadAvailabilityView } from '../../../lib/recovery/availability';
import type { RestoreManifest } from '../../../lib/recovery/failover-planner';
import { FailoverHandler, announceAvailable, createFailoverHandler, type FailoverHandlerOptions, type FailoverService } from '../../../lib/recovery/failover-handler';
import { textLogger, type MetricDef } from '../../../lib/ports/telemetry';
import { RecoveryMetrics, failureSk } from '../../../lib/recovery/recovery-metrics';
import { joinGraph } from './helpers';

/** Every side effect of the handler, in order. */
type Call = [string, ...unknown[]];

class LoggingJobStore extends JobStore {
  constructor(
    metadata: MemoryMetadataStore,
    private readonly log: Call[],
  ) {
    super(metadata);
  }
  override async startUnitAttempt(jobId: string, unitId: string, subtasks: string[], attempt: number, previous?: UnitRecord): Promise<boolean> {
    const ok = await super.startUnitAttempt(jobId, unitId, subtasks, attempt, previous);
    this.log.push(['attempt', unitId, attempt, ok]);
    return ok;
  }
}

/** Logs the availability flag writes. */
class LoggingMetadata extends MemoryMetadataStore {
  constructor(private readonly log: Call[]) {
    super();
  }
  override async put(pk: string, sk: string, item: MetaItem, conditions?: readonly Condition[]): Promise<boolean> {
    const ok = await super.put(pk, sk, item, conditions);
    // One item per (edge, consumer unit): each flag it holds is logged as (edge#consumer, available, attempt).
    if (ok && sk.startsWith('SUBPART#')) {
      for (const [consumer, version] of Object.entries(item.flags as Record<string, number>)) this.log.push(['flag', `${String(item.edgeId)}#${consumer}`, version % 2 === 0, Math.floor(version / 2)]);
    }
    return ok;
  }
}

interface Fixture {
  log: Call[];
  metadata: LoggingMetadata;
  jobs: LoggingJobStore;
  graph: ExecutionGraph;
  job: JobRecord;
  channels: MemoryChannelTransport;
  service: FailoverService & { failed: string[] };
  launcher: UnitLauncher;
  view(): Promise<JobView>;
  failure(unitId: string, attempt?: number): UnitFailure;
  handler(options?: Pick<FailoverHandlerOptions, 'maxFailures' | 'failureWindowMs' | 'clock' | 'logger' | 'metricsSink' | 'latestManifest' | 'fencePending'>): FailoverHandler;
}

async function fixture(strategy: FailoverStrategy, p = 3): Promise<Fixture> {
  const log: Call[] = [];
  const metadata = new LoggingMetadata(log);
  const jobs = new LoggingJobStore(metadata, log);
  const graph = joinGraph(p);
  const units: UnitPlacement[] = graph.subtasks.map((s, n) => ({ unitId: `${s.taskId}-${s.index}`, subtasks: [s.id], controlQueue: `t-job-c${n}` }));
  const channels = new MemoryChannelTransport();
  await channels.createQueues(units.map((u) => u.controlQueue));
  const job: JobRecord = {
    jobId: 'job',
    name: 'join-shape',
    params: {},
    settings: { ...DEFAULT_SETTINGS, failover: strategy },
    status: 'RUNNING',
    createdAt: Date.now(),
    queuePrefix: 't',
    shape: { units: units.length, subtasks: graph.subtasks.length, regions: graph.regions.length, queues: 0, unitShards: 1 },
    units,
    regions: graph.regions,
    queues: [],
  };
  await jobs.createJob(storedJob(job));
  for (const u of units) {
    await jobs.startUnitAttempt('job', u.unitId, u.subtasks, 0);
    await jobs.reportUnit('job', u.unitId, 0, { status: 'RUNNING' });
  }
  log.length = 0;
  const failed: string[] = [];
  const service: Fixture['service'] = {
    failed,
    sendControl: async (_job, unitIds, message) => {
      log.push(['control', [...unitIds], message]);
    },
    graphOf: async () => graph,
    fail: async (jobId, reason) => {
      failed.push(reason);
      log.push(['fail', jobId]);
    },
  };
  const launcher: UnitLauncher = {
    launch: async (_job, unit, attempt) => {
      log.push(['launch', unit.unitId, attempt]);
    },
    stop: async (_jobId, unitId, attempt) => {
      log.push(['stop', unitId, attempt]);
    },
  };
  const view = async (): Promise<JobView> => ({
    job: { ...(await jobs.getJob('job')), units, regions: graph.regions, queues: [] },
    units: await jobs.getUnits('job'),
    totals: { recordsIn: 0, recordsOut: 0, dropped: 0, missing: 0, replayed: 0, duplicateRecords: 0, regenerated: 0, unreplayed: 0, resent: 0, requests: {} },
  });
  const failure = (unitId: string, attempt = 0): UnitFailure => ({
    unitId,
    attempt,
    subtasks: units.find((u) => u.unitId === unitId)!.subtasks,
    reason: 'process exited with code 1',
    failedAt: 1000,
    detectedAt: 1600,
  });
  const handler = (options: Parameters<Fixture['handler']>[0] = {}) => new FailoverHandler({ jobs, service, launcher, ...options });
  return { log, metadata, jobs, graph, job, channels, service, launcher, view, failure, handler };
}

const kinds = (log: Call[]) => log.map((c) => c[0]);

describe('FailoverHandler, strategy single', () => {
  let f: Fixture;
  beforeEach(async () => {
    f = await fixture('single');
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED', error: 'boom' });
  });

  it('marks both input sub-partitions unavailable and tells each producer unit first, bumps the attempt, then launches', async () => {
    const outcome = await f.handler().handle(f.failure('join-1'), await f.view());
    expect(outcome.status).toBe('recovering');
    // The producers hear before anything else is decided (the plan, the budget, the bump).
    expect(f.log.slice(0, 4)).toEqual([
      ['flag', 'e0#1', false, 0],
      ['flag', 'e1#1', false, 0],
      ['control', ['a-0', 'a-1', 'a-2'], { type: 'availability', edgeId: 'e0', consumer: 1, available: false, attempt: 0 }],
      ['control', ['b-0', 'b-1', 'b-2'], { type: 'availability', edgeId: 'e1', consumer: 1, available: false, attempt: 0 }],
    ]);
    expect(f.log.slice(4)).toEqual([
      ['attempt', 'join-1', 1, true],
      ['launch', 'join-1', 1],
    ]);
    expect(outcome.controlMessages).toBe(6);
    const steps = outcome.steps.map((s) => s.step);
    expect(steps.indexOf('notified')).toBeLessThan(steps.indexOf('launched'));
    expect(steps.filter((s) => s !== 'unavailable' && s !== 'notified')).toEqual(['planned', 'stopped', 'attempts', 'fenced', 'launched']);
    // No other unit got a new attempt.
    const attempts = Object.fromEntries((await f.jobs.getUnits('job')).map((u) => [u.unitId, u.attempt]));
    expect(Object.entries(attempts).filter(([, a]) => a !== 0)).toEqual([['join-1', 1]]);
  });

  it('launches without waiting for the manifest (the unit reads its own restore point); the event names the checkpoint once it is read, after the handling is over', async () => {
    let release!: () => void;
    const read = new Promise<void>((r) => (release = r));
    const manifest: RestoreManifest = {
      checkpointId: 7,
      regions: f.graph.regions.map((r) => ({ regionId: r.id, restoreFrom: 7, subtasks: r.subtasks.map((subtask) => ({ subtask, state: [] })), finished: [] })),
    };
    const handling = f.handler({ latestManifest: () => read.then(() => manifest) }).handle(f.failure('join-1'), await f.view());
    for (let i = 0; i < 200 && !f.log.some((c) => c[0] === 'launch'); i++) await new Promise((r) => setTimeout(r, 5));
    expect(f.log.filter((c) => c[0] === 'launch')).toEqual([['launch', 'join-1', 1]]);
    const before = (await new RecoveryMetrics(f.metadata).list('job'))[0]!;
    expect(before.restoreFrom).toBeNull();
    // The handling is over before the manifest came (a failure after it is not held up).
    expect((await handling).status).toBe('recovering');
    release();
    let after = before;
    for (let i = 0; i < 200 && after.restoreFrom === null; i++) {
      await new Promise((r) => setTimeout(r, 5));
      after = (await new RecoveryMetrics(f.metadata).list('job'))[0]!;
    }
    expect(after.restoreFrom).toBe(7);
  });

  it('records the failure event under JOB#<jobId> / FAILURE#<seq>', async () => {
    await f.handler().handle(f.failure('join-1'), await f.view());
    const item = await f.metadata.get('JOB#job', failureSk(1));
    expect(failureSk(1)).toBe('FAILURE#00000001');
    expect(item).toMatchObject({
      seq: 1,
      unitId: 'join-1',
      attempt: 0,
      newAttempt: 1,
      strategy: 'single',
      failedAt: 1000,
      detectedAt: 1600,
      detectionMs: 600,
      unitsRestarted: 1,
      unavailable: ['e0/1', 'e1/1'],
      status: 'RECOVERING',
      availableAgainAt: null,
    });
    expect(typeof item!.restartedAt).toBe('number');
    expect((await new RecoveryMetrics(f.metadata).list('job')).map((e) => e.seq)).toEqual([1]);
  });

  it('does not read again a record the supervisor read at detection with no other failover around (recordFresh)', async () => {
    const reads: string[] = [];
    const getUnit = f.jobs.getUnit.bind(f.jobs);
    f.jobs.getUnit = async (jobId: string, unitId: string) => {
      reads.push(unitId);
      return getUnit(jobId, unitId);
    };
    // Neither the handler nor the bump (what the new attempt carries over) reads it.
    const fresh = await f.handler().handle({ ...f.failure('join-1'), recordFresh: true }, await f.view());
    expect(fresh.status).toBe('recovering');
    expect(reads).toEqual([]);
    expect(f.log.filter((c) => c[0] === 'launch')).toEqual([['launch', 'join-1', 1]]);
    // Not fresh, or fresh but the view holds another attempt of the unit: the handler reads it too.
    await f.jobs.reportUnit('job', 'join-2', 0, { status: 'FAILED', error: 'boom' });
    reads.length = 0;
    await f.handler().handle(f.failure('join-2'), await f.view());
    expect(reads).toEqual(['join-2', 'join-2']);
    const view = await f.view();
    const older = { ...view, units: view.units.map((u) => (u.unitId === 'join-1' ? { ...u, attempt: 0 } : u)) };
    reads.length = 0;
    const stale = await f.handler().handle({ ...f.failure('join-1', 1), recordFresh: true }, older);
    expect(reads).toEqual(['join-1', 'join-1']);
    expect(stale.status).toBe('recovering');
    expect(f.log.filter((c) => c[0] === 'launch')).toEqual([['launch', 'join-1', 1], ['launch', 'join-2', 1], ['launch', 'join-1', 2]]);
  });

  it('records the failure event while the pending checkpoints are fenced, and launches only once both are done', async () => {
    let release!: () => void;
    let fencing = false;
    const fencePending = async () => {
      fencing = true;
      await new Promise<void>((r) => (release = r));
      return [];
    };
    const handling = f.handler({ fencePending }).handle(f.failure('join-1'), await f.view());
    const metrics = new RecoveryMetrics(f.metadata);
    while (!fencing || (await metrics.list('job')).length === 0) await new Promise((r) => setImmediate(r));
    expect((await metrics.list('job')).map((e) => [e.unitId, e.status])).toEqual([['join-1', 'RECOVERING']]);
    expect(f.log.filter((c) => c[0] === 'launch')).toEqual([]);
    release();
    expect((await handling).status).toBe('recovering');
    expect(f.log.filter((c) => c[0] === 'launch')).toEqual([['launch', 'join-1', 1]]);
  });

  it('takes the event\'s number, reads the failure budget and writes the new attempt\'s record and heartbeat item at once', async () => {
    // Each of the four calls waits until all four are in flight; one that waited for another
    // would hold the rest until the fallback releases them, and the test sees it.
    const inFlight = new Set<string>();
    let together = false;
    let release!: () => void;
    const all = new Promise<void>((r) => (release = r));
    let timedOut = false;
    const fallback = setTimeout(() => {
      timedOut = true;
      release();
    }, 5_000);
    const gate = async (name: string) => {
      inFlight.add(name);
      if (inFlight.size === 4 && !timedOut) {
        together = true;
        release();
      }
      await all;
    };
    const { put, update, query } = f.metadata;
    f.metadata.put = async (pk, sk, item, conditions) => {
      if (item.unitId === 'join-1' && item.attempt === 1) await gate(`put ${item.status === undefined ? 'heartbeat' : 'record'}`);
      return put.call(f.metadata, pk, sk, item, conditions);
    };
    f.metadata.update = async (pk, sk, changes, conditions) => {
      if (sk === 'FAILURESEQ') await gate('event number');
      return update.call(f.metadata, pk, sk, changes, conditions);
    };
    f.metadata.query = async (pk, prefix, options) => {
      if (prefix === 'FAILURE#') await gate('budget');
      return query.call(f.metadata, pk, prefix, options);
    };
    const outcome = await f.handler().handle({ ...f.failure('join-1'), recordFresh: true }, await f.view());
    clearTimeout(fallback);
    expect(outcome.status).toBe('recovering');
    expect([...inFlight].sort()).toEqual(['budget', 'event number', 'put heartbeat', 'put record']);
    expect(together).toBe(true);
    expect(outcome.event).toMatchObject({ seq: 1, unitId: 'join-1', newAttempt: 1, status: 'RECOVERING' });
  });

  it('two racing bumps, their writes interleaved every way a seeded schedule finds: the record and the heartbeat item end at the higher attempt', async () => {
    let seed = 12345;
    const ticks = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % 4;
    };
    const { put } = f.metadata;
    f.metadata.put = async (pk, sk, item, conditions) => {
      for (let n = ticks(); n > 0; n--) await new Promise((r) => setImmediate(r));
      return put.call(f.metadata, pk, sk, item, conditions);
    };
    for (let round = 0; round < 20; round++) {
      const base = 1 + 2 * round;
      const [lower, higher] = await Promise.all([
        f.jobs.startUnitAttempt('job', 'join-1', ['join#1'], base),
        f.jobs.startUnitAttempt('job', 'join-1', ['join#1'], base + 1),
      ]);
      expect(higher).toBe(true);
      expect(typeof lower).toBe('boolean');
      expect((await f.jobs.getUnit('job', 'join-1'))!.attempt).toBe(base + 1);
      // The heartbeat item follows: the lower attempt's beat is refused, the higher one's taken.
      expect(await f.jobs.beat('job', 'join-1', base)).toBe(false);
      expect(await f.jobs.beat('job', 'join-1', base + 1)).toBe(true);
    }
  });

  it('ignores a failure of an attempt that was already replaced', async () => {
    const handler = f.handler();
    await handler.handle(f.failure('join-1'), await f.view());
    f.log.length = 0;
    const again = await handler.handle(f.failure('join-1'), await f.view());
    expect(again.status).toBe('stale');
    expect(f.log).toEqual([]);
  });

  it('lets only one of two racing handlers recover the same failure', async () => {
    const view = await f.view();
    const outcomes = await Promise.all([f.handler().handle(f.failure('join-1'), view), f.handler().handle(f.failure('join-1'), view)]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['recovering', 'superseded']);
    expect(f.log.filter((c) => c[0] === 'launch')).toEqual([['launch', 'join-1', 1]]);
    // Both may tell the producers (the notices are idempotent: a view applies a version once);
    // only one restarts the unit.
    const notices = f.log.filter((c) => c[0] === 'control');
    expect(notices.length === 2 || notices.length === 4).toBe(true);
    expect(new Set(notices.map((c) => JSON.stringify(c))).size).toBe(2);
  });

  it('stops a unit that may still run (stale heartbeat) before it bumps its attempt', async () => {
    await f.jobs.reportUnit('job', 'join-2', 0, { status: 'RUNNING' });
    await f.handler().handle({ ...f.failure('join-2'), reason: 'no heartbeat for 12 s' }, await f.view());
    const lifecycle = f.log.filter((c) => c[0] === 'stop' || c[0] === 'attempt');
    expect(kinds(lifecycle)).toEqual(['stop', 'attempt']);
    expect(lifecycle[0]).toEqual(['stop', 'join-2', 0]);
  });

  it('stops the unavailability fan-out once the restarted unit has announced itself', async () => {
    const big = await fixture('single', 250);
    await big.jobs.reportUnit('job', 'join-7', 0, { status: 'FAILED' });
    const chunks: number[] = [];
    const service: FailoverService = {
      ...big.service,
      sendControl: async (_job, unitIds, message) => {
        chunks.push(unitIds.length);
        // The new attempt comes back while the first chunk of e0 is being sent.
        if (message.type === 'availability' && message.edgeId === 'e0' && chunks.length === 1) {
          await announceAvailable({ metadata: big.metadata, channels: big.channels, job: big.job, graph: big.graph, unitId: 'join-7', attempt: 1 });
        }
      },
    };
    const outcome = await new FailoverHandler({ jobs: big.jobs, service, launcher: big.launcher, noticeChunk: 100 }).handle(big.failure('join-7'), await big.view());
    // Each sub-partition has 250 producer units; e0 stopped after one chunk, e1 after its first too
    // (the announce marked both sub-partitions available).
    expect(outcome.controlMessages).toBe(200);
    expect(outcome.controlMessagesSkipped).toBe(300);
    expect(chunks).toEqual([100, 100]);
  });

  it('gives up once the failures within the window exceed the budget, naming the failures that used it up', async () => {
    let now = 100_000;
    const clock = { now: () => now, sleep: async () => undefined };
    const handler = f.handler({ maxFailures: 2, failureWindowMs: 60_000, clock });
    const failAt = async (attempt: number, at: number) => {
      now = at;
      await f.jobs.reportUnit('job', 'join-1', attempt, { status: 'FAILED' });
      return handler.handle({ ...f.failure('join-1', attempt), failedAt: at, detectedAt: at }, await f.view());
    };
    expect((await failAt(0, 100_000)).status).toBe('recovering');
    expect((await failAt(1, 110_000)).status).toBe('recovering');
    // Third failure within 60 s: over the budget of 2.
    const outcome = await failAt(2, 120_000);
    expect(outcome.status).toBe('gave-up');
    expect(f.service.failed[0]).toMatch(/3 task unit failures within 60 s, more than the budget of 2/);
    expect(f.service.failed[0]).toMatch(/join-1 attempt 0: process exited with code 1; join-1 attempt 1: .*; join-1 attempt 2/);
    expect(outcome.event).toMatchObject({ status: 'GAVE_UP', unitsRestarted: 0 });
  });

  it('logs each failover and the give-up with job, unit and attempt, and counts restarted units and give-ups', async () => {
    let now = 100_000;
    const clock = { now: () => now, sleep: async () => undefined };
    const lines: string[] = [];
    const counted: [string, number, Record<string, string>][] = [];
    const handler = f.handler({
      maxFailures: 1,
      failureWindowMs: 60_000,
      clock,
      logger: textLogger((line, level) => lines.push(`${level} ${line}`), { withContext: true }),
      metricsSink: { add: (m: MetricDef, v, d) => counted.push([m.name, v, { ...d }]), flush: () => undefined },
    });
    const failAt = async (attempt: number, at: number) => {
      now = at;
      await f.jobs.reportUnit('job', 'join-1', attempt, { status: 'FAILED' });
      return handler.handle({ ...f.failure('join-1', attempt), failedAt: at, detectedAt: at }, await f.view());
    };
    expect((await failAt(0, 100_000)).status).toBe('recovering');
    expect((await failAt(1, 110_000)).status).toBe('gave-up');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^info failover \(single\) of join-1 attempt 0: 1 unit\(s\) restarted, 2 sub-partition\(s\) unavailable, .* jobId=job unitId=join-1 attempt=0 strategy=single/);
    expect(lines[1]).toMatch(/^error 2 task unit failures within 60 s, more than the budget of 1; giving up\. .* jobId=job unitId=join-1 attempt=1/);
    expect(counted).toEqual([
      ['UnitsRestarted', 1, { job: 'job' }],
      ['FailoverGaveUp', 1, { job: 'job' }],
    ]);
  });

  it('counts only the failures inside the window: a failure long ago leaves the budget whole', async () => {
    let now = 0;
    const clock = { now: () => now, sleep: async () => undefined };
    const handler = f.handler({ maxFailures: 1, failureWindowMs: 60_000, clock });
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    expect((await handler.handle({ ...f.failure('join-1', 0), failedAt: 0 }, await f.view())).status).toBe('recovering');
    now = 200_000;
    await f.jobs.reportUnit('job', 'join-1', 1, { status: 'FAILED' });
    expect((await handler.handle({ ...f.failure('join-1', 1), failedAt: 200_000 }, await f.view())).status).toBe('recovering');
  });

  it('ignores a failure of an attempt another failover has replaced, even when the view it was detected in is older', async () => {
    const view = await f.view();
    expect((await f.handler().handle(f.failure('join-1'), view)).status).toBe('recovering');
    f.log.length = 0;
    // The same failure again, from the same (now stale) view: the store says attempt 1 runs.
    expect((await f.handler().handle(f.failure('join-1'), view)).status).toBe('stale');
    expect(f.log).toEqual([]);
  });

  it('two units failed together restart in one failover: each once, their sub-partitions marked together', async () => {
    await f.jobs.reportUnit('job', 'join-2', 0, { status: 'FAILED' });
    const outcome = await f.handler().handleAll([f.failure('join-1'), f.failure('join-2')], await f.view());
    expect(outcome.status).toBe('recovering');
    expect(f.log.filter((c) => c[0] === 'launch')).toEqual([
      ['launch', 'join-1', 1],
      ['launch', 'join-2', 1],
    ]);
    expect(outcome.plan!.failedUnits).toEqual(['join-1', 'join-2']);
    expect(outcome.plan!.unavailable).toHaveLength(4);
    // Producers are told about both consumers; neither failed join is told about the other.
    const told = f.log.filter((c) => c[0] === 'control').flatMap((c) => c[1] as string[]);
    expect(told.every((u) => !u.startsWith('join'))).toBe(true);
    expect(outcome.event).toMatchObject({ unitId: 'join-1', alsoFailed: [{ unitId: 'join-2', attempt: 0 }], unitsRestarted: 2 });
  });

  it('two units failed together at different attempts: each marked unavailable with its own attempt, producers told of both', async () => {
    // join-2 failed before and is back at attempt 1 (its flags say "attempt 1 is up").
    await f.jobs.startUnitAttempt('job', 'join-2', ['join#2'], 1);
    await f.jobs.reportUnit('job', 'join-2', 1, { status: 'FAILED' });
    const registry = new AvailabilityRegistry(f.metadata, 'job', flagGroupsByUnit(f.graph, f.job.units));
    await registry.markUnavailable([{ edgeId: 'e0', consumer: 2 }, { edgeId: 'e1', consumer: 2 }], 0);
    await registry.markAvailable([{ edgeId: 'e0', consumer: 2 }, { edgeId: 'e1', consumer: 2 }], 1);
    f.log.length = 0;
    const outcome = await f.handler().handleAll([f.failure('join-1', 0), f.failure('join-2', 1)], await f.view());
    expect(outcome.status).toBe('recovering');
    // Marked with attempt 0 only, join-2's flags (attempt 1 up) would refuse the write and its
    // producers would never hear that it is down.
    expect(await registry.get({ edgeId: 'e0', consumer: 2 })).toMatchObject({ available: false, attempt: 1 });
    expect(await registry.get({ edgeId: 'e0', consumer: 1 })).toMatchObject({ available: false, attempt: 0 });
    const notices = f.log.filter((c) => c[0] === 'control').map((c) => c[2] as { consumer: number; attempt: number });
    expect(notices.map((n) => `${n.consumer}@${n.attempt}`).sort()).toEqual(['1@0', '1@0', '2@1', '2@1']);
  });

  it('createFailoverHandler returns the supervisor hook', async () => {
    const onFailure = createFailoverHandler({ jobs: f.jobs, service: f.service, launcher: f.launcher });
    await onFailure([f.failure('join-1')], await f.view());
    expect(f.log.at(-1)).toEqual(['launch', 'join-1', 1]);
  });
});

describe('announceAvailable (called by the restarted unit alongside its restore)', () => {
  it('marks the sub-partitions available with the new attempt, tells the producers, and closes the outage in the metrics', async () => {
    const f = await fixture('single');
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    await f.handler().handle(f.failure('join-1'), await f.view());

    const result = await announceAvailable({ metadata: f.metadata, channels: f.channels, job: f.job, graph: f.graph, unitId: 'join-1', attempt: 1 });
    expect(result.superseded).toBe(false);
    expect(result.changed).toEqual([{ edgeId: 'e0', consumer: 1 }, { edgeId: 'e1', consumer: 1 }]);
    expect(result.messages).toBe(6);
    const flags = await new AvailabilityRegistry(f.metadata, 'job', flagGroupsByUnit(f.graph, f.job.units)).list();
    expect(flags.map((x) => [x.edgeId, x.consumer, x.available, x.attempt])).toEqual([
      ['e0', 1, true, 1],
      ['e1', 1, true, 1],
    ]);
    // The producer units' control queues got the message; the join units' did not.
    const a0 = f.job.units.find((u) => u.unitId === 'a-0')!.controlQueue;
    const received = await f.channels.receive(a0, { max: 10, waitSeconds: 0 });
    expect(received.map((m) => JSON.parse(m.body) as ControlMessage)).toEqual([{ type: 'availability', edgeId: 'e0', consumer: 1, available: true, attempt: 1 }]);
    const join0 = f.job.units.find((u) => u.unitId === 'join-0')!.controlQueue;
    expect(await f.channels.receive(join0, { max: 10, waitSeconds: 0 })).toEqual([]);
    expect(result.event).toMatchObject({ status: 'AVAILABLE', pendingUnits: 0 });
    const event = (await new RecoveryMetrics(f.metadata).list('job'))[0]!;
    expect(event.availableAgainAt).toBeGreaterThan(0);
    expect(event.failedUnitAvailableAt).toBe(event.availableAgainAt);
    expect(event.recoveryMs).toBe(event.availableAgainAt! - 1000);
    // Announcing twice changes nothing and sends nothing.
    const again = await announceAvailable({ metadata: f.metadata, channels: f.channels, job: f.job, graph: f.graph, unitId: 'join-1', attempt: 1 });
    expect(again).toMatchObject({ changed: [], messages: 0, superseded: false, event: undefined });
  });

  it('a packed unit hosting producers of its own input: its own view takes the news, which no message brings it', async () => {
    const f = await fixture('single', 2);
    // Pipeline slices, as placement packs them: unit u1 hosts a#1 and b#1 and the join#1 they feed.
    const units: UnitPlacement[] = [0, 1].map((i) => ({ unitId: `u${i}`, subtasks: [`a#${i}`, `b#${i}`, `join#${i}`], controlQueue: f.job.units[i]!.controlQueue }));
    const job = { ...f.job, units };
    const registry = new AvailabilityRegistry(f.metadata, 'job', flagGroupsByUnit(f.graph, units));
    await registry.markUnavailable([{ edgeId: 'e0', consumer: 1 }, { edgeId: 'e1', consumer: 1 }], 0);
    // The restarted unit's view, loaded (as hostUnit does, alongside its restore) before it announces.
    const view = await loadAvailabilityView({ metadata: f.metadata, jobId: 'job', graph: f.graph, subtasks: units[1]!.subtasks });
    expect(view.unavailable()).toEqual([{ edgeId: 'e0', consumer: 1 }, { edgeId: 'e1', consumer: 1 }]);

    const result = await announceAvailable({ metadata: f.metadata, channels: f.channels, job, graph: f.graph, unitId: 'u1', attempt: 1, view });
    // u0 hosts the other producers (a#0, b#0): one message per sub-partition; u1 gets none.
    expect(result.messages).toBe(2);
    expect(await f.channels.receive(units[1]!.controlQueue, { max: 10, waitSeconds: 0 })).toEqual([]);
    // Its own writers (a#1 and b#1 to join#1) take records and barriers again.
    expect(view.isAvailable('e0', 1)).toBe(true);
    expect(view.isAvailable('e1', 1)).toBe(true);
    expect(view.unavailableCount).toBe(0);
    // A later failure of the new attempt still wins over this.
    expect(view.apply({ edgeId: 'e0', consumer: 1, available: false, attempt: 1 })).toBe(true);
    expect(view.isAvailable('e0', 1)).toBe(false);
  });

  it('a packed unit: each producer unit gets one message per edge, listing every sub-partition of it, and its view applies them all', async () => {
    const f = await fixture('single', 2);
    // u0 hosts every source subtask, u1 both join subtasks (four input sub-partitions on two edges).
    const units: UnitPlacement[] = [
      { unitId: 'u0', subtasks: ['a#0', 'a#1', 'b#0', 'b#1'], controlQueue: f.job.units[0]!.controlQueue },
      { unitId: 'u1', subtasks: ['join#0', 'join#1'], controlQueue: f.job.units[1]!.controlQueue },
    ];
    const job = { ...f.job, units };
    const all = [0, 1].flatMap((consumer) => ['e0', 'e1'].map((edgeId) => ({ edgeId, consumer })));
    await new AvailabilityRegistry(f.metadata, 'job', flagGroupsByUnit(f.graph, units)).markUnavailable(all, 0);
    const view = await loadAvailabilityView({ metadata: f.metadata, jobId: 'job', graph: f.graph, subtasks: units[0]!.subtasks });
    expect(view.unavailableCount).toBe(4);

    const result = await announceAvailable({ metadata: f.metadata, channels: f.channels, job, graph: f.graph, unitId: 'u1', attempt: 1 });
    expect(result.messages).toBe(4); // notices: (producer unit, sub-partition)
    const received = (await f.channels.receive(units[0]!.controlQueue, { max: 10, waitSeconds: 0 })).map((m) => JSON.parse(m.body) as ControlMessage);
    expect(received.sort((x, y) => ((x as { edgeId: string }).edgeId < (y as { edgeId: string }).edgeId ? -1 : 1))).toEqual([
      { type: 'availability', edgeId: 'e0', consumer: 0, consumers: [0, 1], available: true, attempt: 1 },
      { type: 'availability', edgeId: 'e1', consumer: 0, consumers: [0, 1], available: true, attempt: 1 },
    ]);
    for (const m of received) expect(view.handleControl(m)).toBe(true);
    expect(view.unavailableCount).toBe(0);
  });

  it('with the flags read at the start, tells the producers while the flags are written, and records "available again" only once the restore is done', async () => {
    const f = await fixture('single');
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    await f.handler().handle(f.failure('join-1'), await f.view());
    const registry = AvailabilityRegistry.forJob(f.metadata, f.job, f.graph);
    const refs = [{ edgeId: 'e0', consumer: 1 }, { edgeId: 'e1', consumer: 1 }];
    const stored = await registry.storedFlags(refs);
    // The flags' write is held until released; so is the restore.
    let releaseWrite!: () => void;
    const writeHeld = new Promise<void>((resolve) => (releaseWrite = resolve));
    const metadata = new Proxy(f.metadata, {
      get(target, prop) {
        if (prop === 'put') {
          return async (pk: string, sk: string, item: MetaItem, conditions?: readonly Condition[]) => {
            if (sk.startsWith('SUBPART#')) await writeHeld;
            return target.put(pk, sk, item, conditions);
          };
        }
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    let restoreDone!: () => void;
    const restored = new Promise<void>((resolve) => (restoreDone = resolve));
    const announcing = announceAvailable({ metadata, channels: f.channels, job: f.job, graph: f.graph, unitId: 'join-1', attempt: 1, stored, restored });

    // The producers hear it while the write is held: a view orders updates by version, so it may.
    const a0 = f.job.units.find((u) => u.unitId === 'a-0')!.controlQueue;
    const told: ControlMessage[] = [];
    await vi.waitFor(async () => {
      told.push(...(await f.channels.receive(a0, { max: 10, waitSeconds: 0 })).map((m) => JSON.parse(m.body) as ControlMessage));
      expect(told).toEqual([{ type: 'availability', edgeId: 'e0', consumer: 1, available: true, attempt: 1 }]);
    });
    expect(await registry.get(refs[0]!)).toMatchObject({ available: false, attempt: 0 });
    releaseWrite();
    await vi.waitFor(async () => expect(await registry.get(refs[1]!)).toMatchObject({ available: true, attempt: 1 }));
    // Flags written and producers told, the state not yet restored: the outage is still open.
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect((await new RecoveryMetrics(f.metadata).list('job'))[0]).toMatchObject({ status: 'RECOVERING' });
    restoreDone();
    const result = await announcing;
    expect(result).toMatchObject({ superseded: false, changed: refs, messages: 6 });
    expect(result.event).toMatchObject({ status: 'AVAILABLE' });
    expect(result.steps!.restoredMs).toBeGreaterThanOrEqual(result.steps!.noticesMs);
    // Nothing told twice: every producer unit got one message.
    for (const u of f.job.units.filter((x) => x.unitId !== 'a-0' && !x.unitId.startsWith('join'))) {
      expect(await f.channels.receive(u.controlQueue, { max: 10, waitSeconds: 0 })).toHaveLength(1);
    }
  });

  it('a restore that fails alongside the announce records nothing and fails the announce', async () => {
    const f = await fixture('single');
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    await f.handler().handle(f.failure('join-1'), await f.view());
    const restored = Promise.reject(new Error('snapshot unreadable'));
    restored.catch(() => undefined);
    await expect(announceAvailable({ metadata: f.metadata, channels: f.channels, job: f.job, graph: f.graph, unitId: 'join-1', attempt: 1, restored })).rejects.toThrow('snapshot unreadable');
    expect((await new RecoveryMetrics(f.metadata).list('job'))[0]).toMatchObject({ status: 'RECOVERING' });
  });

  it('with stale flags read at the start, a sub-partition the write flips that they did not predict is told too', async () => {
    const f = await fixture('single');
    const registry = AvailabilityRegistry.forJob(f.metadata, f.job, f.graph);
    const refs = [{ edgeId: 'e0', consumer: 1 }, { edgeId: 'e1', consumer: 1 }];
    // Read before anything was marked: no flag, nothing predicted.
    const stored = await registry.storedFlags(refs);
    expect(registry.predictAvailable(refs, 1, stored)).toEqual([]);
    await registry.markUnavailable(refs, 0);
    const result = await announceAvailable({ metadata: f.metadata, channels: f.channels, job: f.job, graph: f.graph, unitId: 'join-1', attempt: 1, stored });
    expect(result).toMatchObject({ superseded: false, changed: refs, messages: 6 });
  });

  it('is a no-op for a first attempt, and reports a superseded attempt', async () => {
    const f = await fixture('single');
    const first = await announceAvailable({ metadata: f.metadata, channels: f.channels, job: f.job, graph: f.graph, unitId: 'join-0', attempt: 0 });
    expect(first).toMatchObject({ changed: [], messages: 0, superseded: false });
    expect(await f.metadata.query('JOB#job', 'SUBPART#')).toEqual([]);
    // Attempt 2 has already failed and been marked; a slow attempt 1 must stop.
    await new AvailabilityRegistry(f.metadata, 'job', flagGroupsByUnit(f.graph, f.job.units)).markUnavailable([{ edgeId: 'e0', consumer: 0 }], 2);
    const late = await announceAvailable({ metadata: f.metadata, channels: f.channels, job: f.job, graph: f.graph, unitId: 'join-0', attempt: 1 });
    expect(late.superseded).toBe(true);
  });
});

describe('FailoverHandler, strategies region and full', () => {
  it('region (join: one region): stops every old attempt that may run, then bumps all, then launches all; nothing marked', async () => {
    const f = await fixture('region');
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    const outcome = await f.handler().handle(f.failure('join-1'), await f.view());
    expect(outcome.status).toBe('recovering');
    const k = kinds(f.log);
    expect(k.filter((x) => x === 'stop')).toHaveLength(8); // not the FAILED one
    expect(f.log.some((c) => c[0] === 'stop' && c[1] === 'join-1')).toBe(false);
    expect(k.lastIndexOf('stop')).toBeLessThan(k.indexOf('attempt'));
    expect(k.lastIndexOf('attempt')).toBeLessThan(k.indexOf('launch'));
    expect(f.log.filter((c) => c[0] === 'launch')).toHaveLength(9);
    expect(f.log.filter((c) => c[0] === 'launch' && c[2] !== 1)).toEqual([]);
    expect(k).not.toContain('flag');
    expect(k).not.toContain('control');
    expect(outcome.plan!.fence).toHaveLength(6);
    expect(outcome.event).toMatchObject({ unitsRestarted: 9, pendingUnits: 9 });
    // Each stop names the attempt it replaces: a newer attempt launched meanwhile is left alone.
    expect(f.log.filter((c) => c[0] === 'stop').every((c) => c[2] === 0)).toBe(true);

    // Available again once every restarted unit has announced itself.
    const metrics = new RecoveryMetrics(f.metadata);
    for (const u of f.job.units.filter((x) => x.unitId !== 'b-2')) await metrics.unitAvailable('job', u.unitId, 1, 5000);
    expect((await metrics.get('job', 1))!.availableAgainAt).toBeNull();
    expect((await metrics.get('job', 1))!.failedUnitAvailableAt).toBe(5000);
    await metrics.unitAvailable('job', 'b-2', 1, 7000);
    expect(await metrics.get('job', 1)).toMatchObject({ availableAgainAt: 7000, recoveryMs: 6000, status: 'AVAILABLE', pendingUnits: 0 });
  });

  it('region: units of one region failed together (or while a failover ran) restart the region once', async () => {
    const f = await fixture('region');
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    const view = await f.view();
    const outcome = await f.handler().handleAll([f.failure('join-1'), f.failure('a-0'), f.failure('b-2')], view);
    expect(outcome.status).toBe('recovering');
    const launched = f.log.filter((c) => c[0] === 'launch');
    expect(launched).toHaveLength(9);
    expect(new Set(launched.map((c) => c[1])).size).toBe(9);
    expect(launched.every((c) => c[2] === 1)).toBe(true);
    // A failure of the replaced attempt found in the next pass changes nothing.
    f.log.length = 0;
    expect((await f.handler().handleAll([f.failure('a-1')], view)).status).toBe('stale');
    expect(f.log).toEqual([]);
  });

  it('a restarted unit that fails again before it is back supersedes the first event; the outage counts from the first failure', async () => {
    const f = await fixture('region');
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    const first = await f.handler().handle(f.failure('join-1'), await f.view());
    const metrics = new RecoveryMetrics(f.metadata);
    // Some units are back, then a restarted one dies before the region is.
    await metrics.unitAvailable('job', 'a-0', 1, 2000);
    await f.jobs.reportUnit('job', 'join-2', 1, { status: 'FAILED' });
    const second = await f.handler().handle({ ...f.failure('join-2', 1), failedAt: 3000, detectedAt: 3100 }, await f.view());
    expect(await metrics.get('job', first.event!.seq)).toMatchObject({ status: 'SUPERSEDED', supersededBy: second.event!.seq });
    expect(second.event).toMatchObject({ supersedes: [first.event!.seq], outageStartedAt: 1000 });
    for (const u of f.job.units) await metrics.unitAvailable('job', u.unitId, 2, 9000);
    expect(await metrics.get('job', second.event!.seq)).toMatchObject({ status: 'AVAILABLE', recoveryMs: 8000 });
  });

  it('full: every unit restarts with its own next attempt', async () => {
    const f = await fixture('full');
    await f.jobs.startUnitAttempt('job', 'a-0', ['a#0'], 4);
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    f.log.length = 0;
    await f.handler().handle(f.failure('join-1'), await f.view());
    const launched = Object.fromEntries(f.log.filter((c) => c[0] === 'launch').map((c) => [c[1], c[2]]));
    expect(Object.keys(launched)).toHaveLength(9);
    expect(launched['a-0']).toBe(5);
    expect(launched['join-1']).toBe(1);
  });
});

describe('RecoveryMetrics.observe', () => {
  it('counts the producers\' drops and the rest of the job\'s records from detection until settled', async () => {
    const f = await fixture('single');
    const stats = (recordsIn: number, dropped: number) => ({ status: 'running', recordsIn, recordsOut: recordsIn, dropped, duplicates: 0, fenced: 0 });
    for (const u of f.job.units) await f.jobs.reportUnit('job', u.unitId, 0, { stats: { [u.subtasks[0]!]: stats(100, 5) } });
    await f.jobs.reportUnit('job', 'join-1', 0, { status: 'FAILED' });
    let now = 10_000;
    const clock = { now: () => now, sleep: async () => undefined };
    const metrics = new RecoveryMetrics(f.metadata, { clock, settleMs: 1000 });
    await new FailoverHandler({ jobs: f.jobs, service: f.service, launcher: f.launcher, metrics, clock }).handle(f.failure('join-1'), await f.view());

    // Producers dropped 7 more each; the other joins read 50 more; the failed one's counters do not count.
    for (const u of f.job.units.filter((x) => x.unitId !== 'join-1')) {
      await f.jobs.reportUnit('job', u.unitId, 0, { heartbeatAt: 11_000, stats: { [u.subtasks[0]!]: stats(150, u.unitId.startsWith('join') ? 0 : 12) } });
    }
    let [event] = await metrics.observe(await f.view());
    expect(event).toMatchObject({ recordsDropped: 42, recordsProcessed: 8 * 50, status: 'RECOVERING' });

    now = 12_000;
    await metrics.unitAvailable('job', 'join-1', 1);
    // Heartbeats older than available + settle: not closed yet.
    [event] = await metrics.observe(await f.view());
    expect(event ?? (await metrics.get('job', 1))).toMatchObject({ status: 'AVAILABLE' });
    for (const u of f.job.units.filter((x) => x.unitId !== 'join-1')) {
      await f.jobs.reportUnit('job', u.unitId, 0, { heartbeatAt: 13_500, stats: { [u.subtasks[0]!]: stats(400, u.unitId.startsWith('join') ? 0 : 13) } });
    }
    [event] = await metrics.observe(await f.view());
    // Processed froze when the unit was back; drops count until the producers heard of it.
    expect(event).toMatchObject({ status: 'CLOSED', recordsDropped: 48, recordsProcessed: 400, availableAgainAt: 12_000, recoveryMs: 11_000 });
    expect(await metrics.observe(await f.view())).toEqual([]);
  });
});
