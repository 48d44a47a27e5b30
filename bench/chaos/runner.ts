/**
 * The chaos runner: runs one fault schedule against the local runtime (child-process task units on
 * the emulator) and checks the committed S3 output against what the input says it must be.
 *
 * A schedule is a job (the demo or the recommendation join), a failover strategy and 1–3 kills.
 * Each kill waits for an observed moment, never a timer alone:
 *   running          a share of the input has been read;
 *   after-trigger    a new checkpoint has just been triggered (the kill lands mid-checkpoint);
 *   during-failover  a failover is in progress (a failure event is RECOVERING);
 *   after-input      every source has reached end of input.
 *   final-commit     a region's final commit has been released (its sinks are committing their
 *                    last output): only with `finalCommitKills` (flag --final-commit-kills), so
 *                    the plans of seeds run before it existed stay the same.
 * and then SIGKILLs one unit, or two at the same instant, of a role (source, inner, sink). The
 * plan is a pure function of the seed (`planSchedule`), so a seed reproduces its plan; when a
 * kill lands still depends on the machine, and the result records when it did.
 *
 * What is measured comes from S3, read with the SDK: lost and duplicated events against the
 * generator's formula (the demo: per-(user, hour) event counts; the join: one record per event).
 * What the job reported (drops, duplicates discarded, failure events) is read separately, so the
 * two can be compared.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Json } from '../../lib/api/functions';
import type { FailoverStrategy } from '../../lib/jobs/job-store';
import type { JobView } from '../../lib/jobs/job-service';
import type { LocalRuntime } from '../../lib/local/local-runtime';
import type { JobController } from '../../lib/jobs/job-controller';
import { RecoveryMetrics, type FailureEvent } from '../../lib/recovery/recovery-metrics';
import { readOutputLines } from '../../examples/jobs/output-check';
import { aggregateKey, demoShape, expectedAggregates, type HourlyAggregate } from '../../examples/jobs/demo';
import { checkRecommendations, joinShape, type Recommendation } from '../../examples/jobs/recommendation-join';
import { seededRandom } from '../lib/random';
import { inputEnded, progressSignature } from '../../lib/jobs/progress-watch';
import { regionsReadyForFinalCommit } from '../../lib/jobs/supervisor';
import { parseSubtaskId } from '../../lib/graph/execution-graph';

export type ChaosJob = 'demo' | 'join';
export type KillRole = 'source' | 'inner' | 'sink' | 'any';
export type KillMoment = 'running' | 'after-trigger' | 'during-failover' | 'after-input' | 'final-commit';

export interface KillSpec {
  moment: KillMoment;
  role: KillRole;
  /** Units killed at the same instant. */
  count: 1 | 2;
  /** 'running': share of the input read before the kill. */
  fraction?: number;
  /** Wait after the moment is seen, before the kill. */
  delayMs: number;
}

export interface Schedule {
  seed: number;
  job: ChaosJob;
  strategy: FailoverStrategy;
  parallelism: number;
  /** Subtasks a unit hosts (absent: 1, a unit per subtask); a kill then takes every subtask of its unit. */
  subtasksPerUnit?: number;
  kills: KillSpec[];
}

export interface KillRecord {
  spec: KillSpec;
  /** Units killed, as `<unitId>#<attempt>`; empty when the moment never came. */
  units: string[];
  /** Milliseconds after submit. */
  atMs: number | null;
  note?: string;
}

export type ChaosOutcome = 'FINISHED' | 'FAILED' | 'HUNG' | 'CANCELLED';

export interface ChaosResult {
  schedule: Schedule;
  jobId: string;
  outcome: ChaosOutcome;
  error?: string;
  kills: KillRecord[];
  /** Events the input holds (what the output must account for). */
  expected: number;
  /** Measured from S3: events missing from the committed output, and events in it twice. */
  lost: number;
  duplicated: number;
  /** Committed values that are wrong for another reason (the join: a feature of another user). */
  wrong: number;
  /**
   * Reported by the producers of the records the output counts one for one (`countedTasks`: the
   * demo's generator; the join's behaviour events, and the join itself, whose sink is not chained):
   * records dropped for unavailable sub-partitions, as the producers count them. Not the loss: a
   * source restored from a checkpoint forgets its dead attempt's drops, and counts as dropped what
   * it sends again to a consumer that already has it (verdict.ts).
   */
  reportedDropped: number;
  /**
   * Reported by the consumers of the counted tasks' output edges: records they never saw (position
   * gaps: what was dropped for them, and what no replay could give them). The loss, as the job
   * reports it. (Results saved before it was counted per edge: every input edge.)
   */
  reportedMissing: number;
  /**
   * Of `reportedMissing`: records the consumers asked for in a replay that no producer had any more
   * (their dead attempt consumed them, and the producer's log went with a restart of the producer
   * or was trimmed past them), or that a restored source sent again when they were past them.
   * Absent from results saved before it was counted.
   */
  reportedUnreplayed?: number;
  /** Reported by the consumers of the counted tasks' output edges: records a restarted producer sent again (regenerated after its restore point). */
  reportedDuplicates: number;
  /** Failure events the job recorded, with their recovery times. */
  failures: { unit: string; reason: string; strategy: string; status: string; recoveryMs: number | null; unitsRestarted: number }[];
  /** Units whose attempt changed, as `<unitId>#<attempt>`. */
  restarted: string[];
  totalMs: number;
}

/** The plan for a seed: the job, the strategy and the kills. */
export function planSchedule(
  seed: number,
  options: { strategies: readonly FailoverStrategy[]; jobs: readonly ChaosJob[]; finalCommitKills?: boolean; subtasksPerUnit?: readonly number[] },
): Schedule {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const job = pick(options.jobs);
  const strategy = pick(options.strategies);
  const n = 1 + Math.floor(random() * 3);
  const kills: KillSpec[] = [];
  for (let k = 0; k < n; k++) {
    const moments: KillMoment[] = k === 0 ? ['running', 'running', 'after-trigger', 'after-input'] : ['running', 'after-trigger', 'during-failover', 'during-failover', 'after-input'];
    const moment = pick(moments);
    const role: KillRole = moment === 'after-input' ? pick(['inner', 'sink'] as const) : pick(['source', 'inner', 'sink', 'any'] as const);
    kills.push({
      moment,
      role,
      count: random() < 0.3 ? 2 : 1,
      ...(moment === 'running' ? { fraction: 0.1 + random() * 0.5 } : {}),
      delayMs: Math.floor(random() * (moment === 'after-trigger' ? 150 : 400)),
    });
  }
  if (options.finalCommitKills) {
    // From a stream of its own: the kills above are those of the same seed without the flag.
    const extra = seededRandom(seed ^ 0x2545f491);
    kills.push({ moment: 'final-commit', role: 'sink', count: extra() < 0.3 ? 2 : 1, delayMs: Math.floor(extra() * 300) });
  }
  // Also from a stream of its own, and only when there is a choice: without it a seed plans as before.
  const packings = options.subtasksPerUnit ?? [1];
  const packing = packings.length > 1 ? packings[Math.floor(seededRandom(seed ^ 0x68e31da4)() * packings.length)]! : packings[0]!;
  return { seed, job, strategy, parallelism: 2, ...(packing > 1 ? { subtasksPerUnit: packing } : {}), kills };
}

export interface RunOptions {
  runtime: LocalRuntime;
  /** Seconds the sources take to emit their input (rate-limited), so kills have time to land. */
  sourceSeconds?: number;
  /** A job with no progress for this long is HUNG (cancelled and reported). */
  stallMs?: number;
  /** Longest run of one schedule. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

function jobRequest(schedule: Schedule, sourceSeconds: number): { job: string; params: { [k: string]: Json }; input: number } {
  const p = schedule.parallelism;
  if (schedule.job === 'demo') {
    const records = 60_000;
    return {
      job: 'demo',
      params: { records, parallelism: p, users: 200, hours: 3, partitions: 8, rate: Math.ceil(records / p / sourceSeconds) },
      input: records,
    };
  }
  const events = 24_000;
  return {
    job: 'recommendation-join',
    params: { parallelism: p, events, featureUpdates: 2_400, users: 200, partitions: 6, minutes: 60, rate: Math.ceil(events / p / sourceSeconds), chainSink: false },
    input: events + 2_400,
  };
}

/** Roles of a job's units, from its execution graph: sources have no input, sinks end in a sink. */
async function unitRoles(runtime: LocalRuntime, jobId: string): Promise<Map<string, Set<KillRole>>> {
  const graph = await runtime.service.graphOf(jobId);
  const job = (await runtime.service.view(jobId)).job;
  const roleOf = new Map<string, Set<KillRole>>();
  for (const task of graph.tasks) {
    const roles = new Set<KillRole>(['any']);
    if (task.inputs.length === 0) roles.add('source');
    else if (task.operators.at(-1)!.kind === 'sink') roles.add('sink');
    else roles.add('inner');
    // A sink chained behind an operator (the demo's aggregate) is an inner task too.
    if (task.inputs.length > 0 && task.operators.length > 1) roles.add('inner');
    roleOf.set(task.id, roles);
  }
  const out = new Map<string, Set<KillRole>>();
  for (const u of job.units) {
    const roles = new Set<KillRole>();
    for (const s of u.subtasks) for (const r of roleOf.get(parseSubtaskId(s).taskId) ?? []) roles.add(r);
    out.set(u.unitId, roles);
  }
  return out;
}

/** Runs one schedule to its end and checks the output. */
export async function runSchedule(schedule: Schedule, options: RunOptions): Promise<ChaosResult> {
  const { runtime } = options;
  const log = options.log ?? (() => undefined);
  const sourceSeconds = options.sourceSeconds ?? 12;
  const request = jobRequest(schedule, sourceSeconds);
  const started = Date.now();
  const job = await runtime.service.submit({
    job: request.job,
    params: request.params,
    failover: schedule.strategy,
    ...(schedule.subtasksPerUnit ? { subtasksPerUnit: schedule.subtasksPerUnit } : {}),
    heartbeatTimeoutSeconds: 20,
    checkpoint: { handle: 'regional', intervalSeconds: 1, timeoutSeconds: 15 },
  });
  const metrics = new RecoveryMetrics(runtime.ports.metadata);
  // A kill planned at end of input finds the sinks there: they wait to commit until it has fired.
  let holdFinal = schedule.kills.some((k) => k.moment === 'after-input');
  const controller = runtime.controller({ pollMs: 250, checkpointEveryMs: 1000, metrics, stallTimeoutMs: 60_000, mayReleaseFinal: () => !holdFinal });
  let ended = false;
  const running = controller.run(job.jobId).finally(() => (ended = true));

  const roles = await unitRoles(runtime, job.jobId);
  const graph = await runtime.service.graphOf(job.jobId);
  const sourceTasks = new Set(graph.tasks.filter((t) => t.inputs.length === 0).map((t) => t.id));
  const random = seededRandom(schedule.seed ^ 0x5bd1e995);

  const kills: KillRecord[] = [];
  const killing = (async () => {
    for (const spec of schedule.kills) {
      if (spec.moment !== 'after-input' && !schedule.kills.slice(kills.length).some((k) => k.moment === 'after-input')) holdFinal = false;
      const record: KillRecord = { spec, units: [], atMs: null };
      kills.push(record);
      const seen = await waitForMoment(spec, runtime, controller, metrics, job.jobId, request.input, sourceTasks, () => ended);
      const releaseAfter = spec.moment === 'after-input' && !schedule.kills.slice(kills.length).some((k) => k.moment === 'after-input');
      if (!seen) {
        record.note = 'the job ended before the moment came';
        continue;
      }
      if (spec.delayMs > 0) await sleep(spec.delayMs);
      const choose = async () => {
        const view = await runtime.service.view(job.jobId).catch(() => undefined);
        if (!view || view.job.status !== 'RUNNING') return undefined;
        const alive = view.units.filter((u) => roles.get(u.unitId)?.has(spec.role) && runtime.launcher.pid(job.jobId, u.unitId) !== undefined && u.status !== 'FINISHED');
        const victims: typeof alive = [];
        while (victims.length < spec.count && alive.length > 0) victims.push(...alive.splice(Math.floor(random() * alive.length), 1));
        // CHAOS_VICTIMS="<kill index>:<unit>,<unit>;...": these units instead (when a kill lands moves
        // which are alive, so a broken schedule's victims are not always the seed's on a rerun).
        const forced = process.env.CHAOS_VICTIMS?.split(';').find((f) => f.startsWith(`${kills.length - 1}:`));
        if (forced) {
          victims.length = 0;
          for (const id of forced.slice(forced.indexOf(':') + 1).split(',')) victims.push(...view.units.filter((u) => u.unitId === id));
        }
        return victims;
      };
      // A failover may have stopped every unit of the role for a moment (`full` restarts them all):
      // a kill during it tries again, while the failover lasts, rather than missing it.
      const recovering = async () => !ended && spec.moment === 'during-failover' && (await metrics.list(job.jobId).catch(() => [])).some((e) => e.status === 'RECOVERING');
      let victims: Awaited<ReturnType<typeof choose>>;
      for (;;) {
        victims = await choose();
        const at = Date.now() - started;
        // Same instant: all signals are sent before anything else runs.
        for (const v of victims ?? []) if (runtime.launcher.kill(job.jobId, v.unitId)) record.units.push(`${v.unitId}#${v.attempt}`);
        if (record.units.length > 0) record.atMs = at;
        if (record.units.length > 0 || !victims || !(await recovering())) break;
        await sleep(50);
      }
      if (!victims) {
        record.note = 'the job ended before the kill';
        continue;
      }
      if (record.units.length === 0) {
        record.note = `no ${spec.role} unit was running`;
        continue;
      }
      log(`  kill ${record.units.join(' + ')} at ${(record.atMs! / 1000).toFixed(1)} s (${spec.moment}, ${spec.role})`);
      if (releaseAfter) holdFinal = false;
      // The next kill looks for its own moment from here on (a failover of this one, say); a kill
      // during a failover looks at once: a single-point failover is over in ~100-300 ms, and after
      // a pause it was missed (the kill then waited for the job's end, 'the moment never came').
      if (schedule.kills[kills.length]?.moment !== 'during-failover') await sleep(300);
    }
  })();

  // Whatever happens to the kills, the sinks are released once they are done.
  void killing.finally(() => (holdFinal = false));
  const outcome = await watchForStall(running, runtime, job.jobId, options.stallMs ?? 90_000, options.timeoutMs ?? 300_000);
  ended = true;
  await killing;
  const view = outcome.view;
  // CHAOS_VIEW_DIR: the job's final view (every unit's counters per subtask and channel), to read a broken schedule by.
  const events = await metrics.list(job.jobId);
  // With it, the checkpoint driver's log (triggers, outcomes) and the failure events in full.
  if (process.env.CHAOS_VIEW_DIR) {
    const debug = { view, checkpointLog: controller.driver?.log ?? [], failures: events };
    writeFileSync(join(process.env.CHAOS_VIEW_DIR, `${schedule.seed}.json`), JSON.stringify(debug, null, 1));
  }
  const measured = await measureOutput(runtime, schedule.job, job.jobId, request.params);
  return {
    schedule,
    jobId: job.jobId,
    outcome: outcome.outcome,
    ...(outcome.error ? { error: outcome.error } : {}),
    kills,
    expected: measured.expected,
    lost: measured.lost,
    duplicated: measured.duplicated,
    wrong: measured.wrong,
    reportedDropped: countedTasks(schedule.job).reduce((n, task) => n + droppedBy(view, task), 0),
    ...countedEdgeCounters(view, graph, countedTasks(schedule.job)),
    failures: events.map(describeEvent),
    restarted: view.units.filter((u) => u.attempt > 0).map((u) => `${u.unitId}#${u.attempt}`),
    totalMs: Date.now() - started,
  };
}

function describeEvent(e: FailureEvent) {
  const units = [e.unitId, ...(e.alsoFailed ?? []).map((f) => f.unitId)].join('+');
  return { unit: units, reason: e.reason, strategy: e.strategy, status: e.status, recoveryMs: e.recoveryMs, unitsRestarted: e.unitsRestarted };
}

/**
 * The tasks whose output records stand one for one for events of the output: the demo's generator
 * (its aggregate is chained to the sink); the join's behaviour events, and the join, whose sink the
 * chaos job does not chain (`chainSink: false`): a recommendation it drops for an unavailable sink
 * is an event lost (chaos seed 70009: 808 of 1,104 lost events were the join's drops). Feature
 * updates are not: a dropped one changes which version an event meets, not whether it is there.
 */
export function countedTasks(job: ChaosJob): string[] {
  return job === 'demo' ? ['generator'] : ['events', 'join'];
}

/** What the consumers of these tasks' output edges count as missing, unreplayed and regenerated (over every channel of those edges). */
function countedEdgeCounters(view: JobView, graph: { tasks: { inputs: { id: string; from: string }[] }[] }, tasks: readonly string[]) {
  const counted = new Set(graph.tasks.flatMap((t) => t.inputs.filter((e) => tasks.includes(e.from)).map((e) => e.id)));
  const out = { reportedMissing: 0, reportedUnreplayed: 0, reportedDuplicates: 0 };
  for (const u of view.units) {
    for (const s of Object.values(u.stats ?? {})) {
      for (const [edge, c] of Object.entries(s.edges ?? {})) {
        if (!counted.has(edge)) continue;
        out.reportedMissing += c.missingRecords;
        out.reportedUnreplayed += c.unreplayedRecords;
        out.reportedDuplicates += c.regeneratedRecords;
      }
    }
  }
  return out;
}

/** Records the subtasks of one task dropped for unavailable consumers. */
function droppedBy(view: JobView, taskId: string): number {
  let n = 0;
  for (const u of view.units) for (const [id, s] of Object.entries(u.stats ?? {})) if (parseSubtaskId(id).taskId === taskId) n += s.dropped;
  return n;
}

async function waitForMoment(
  spec: KillSpec,
  runtime: LocalRuntime,
  controller: JobController,
  metrics: RecoveryMetrics,
  jobId: string,
  input: number,
  sourceTasks: Set<string>,
  ended: () => boolean,
): Promise<boolean> {
  const pendingNow = () => controller.driver?.coordinator.pendingCheckpoints() ?? [];
  const triggers = () => controller.driver?.log.filter((l) => l.startsWith('trigger')).length ?? 0;
  const triggersBefore = triggers();
  let inputEndedAt: number | undefined;
  for (;;) {
    if (ended()) return false;
    // Past end of input a moment other than 'after-input' may never come (nothing left to
    // checkpoint or to fail over): give up after a while, so held sinks are released.
    if (spec.moment !== 'after-input') {
      if (inputEndedAt === undefined) {
        const view = await runtime.service.view(jobId).catch(() => undefined);
        if (view && inputEnded(view, sourceTasks)) inputEndedAt = Date.now();
      } else if (Date.now() - inputEndedAt > 15_000) return false;
    }
    switch (spec.moment) {
      case 'running': {
        const view = await runtime.service.view(jobId).catch(() => undefined);
        if (view && view.totals.recordsIn >= (spec.fraction ?? 0.3) * input) return true;
        break;
      }
      case 'after-trigger':
        if (triggers() > triggersBefore && pendingNow().length > 0) return true;
        break;
      case 'during-failover': {
        const events = await metrics.list(jobId).catch(() => []);
        if (events.some((e) => e.status === 'RECOVERING')) return true;
        break;
      }
      case 'after-input': {
        const view = await runtime.service.view(jobId).catch(() => undefined);
        if (view && inputEnded(view, sourceTasks)) return true;
        break;
      }
      case 'final-commit': {
        // A region whose subtasks have all ended is released by the supervisor's next pass.
        const view = await runtime.service.view(jobId).catch(() => undefined);
        if (view && regionsReadyForFinalCommit(view).length > 0) return true;
        break;
      }
    }
    await sleep(50);
  }
}

/**
 * Waits for the job to end. A job whose progress (records read and written, unit attempts and
 * statuses) stands still for `stallMs` is HUNG: it is cancelled so the run can go on.
 */
async function watchForStall(
  running: Promise<JobView>,
  runtime: LocalRuntime,
  jobId: string,
  stallMs: number,
  timeoutMs: number,
): Promise<{ outcome: ChaosOutcome; view: JobView; error?: string }> {
  let done: JobView | undefined;
  let failed: unknown;
  void running.then((v) => (done = v), (e: unknown) => (failed = e ?? new Error('controller failed')));
  const started = Date.now();
  let signature = '';
  let movedAt = Date.now();
  while (!done && !failed) {
    await sleep(500);
    const view = await runtime.service.view(jobId).catch(() => undefined);
    if (!view) continue;
    const now = progressSignature(view);
    if (now !== signature) {
      signature = now;
      movedAt = Date.now();
    }
    const hung = Date.now() - movedAt > stallMs || Date.now() - started > timeoutMs;
    if (hung && view.job.status === 'RUNNING') {
      const waiting = view.units
        .filter((u) => u.status !== 'FINISHED')
        .map((u) => `${u.unitId}#${u.attempt} ${u.status} ${Object.entries(u.stats ?? {}).map(([id, s]) => `${id}:${s.status}`).join(',')}`)
        .join('; ');
      await runtime.service.cancel(jobId).catch(() => undefined);
      await running.catch(() => undefined);
      return { outcome: 'HUNG', view: await runtime.service.view(jobId), error: `no progress for ${Math.round((Date.now() - movedAt) / 1000)} s: ${waiting}` };
    }
  }
  if (failed) throw failed;
  const view = done!;
  const status = view.job.status;
  return { outcome: status === 'RUNNING' ? 'HUNG' : status, view, ...(view.job.error ? { error: view.job.error } : {}) };
}

/** Lost and duplicated events, measured from the committed output in S3 against the input. */
async function measureOutput(runtime: LocalRuntime, kind: ChaosJob, jobId: string, params: Record<string, unknown>) {
  const { lines } = await readOutputLines(runtime.ports.clients.s3, runtime.config.bucket, `output/${jobId}/`);
  if (kind === 'demo') {
    const expected = expectedAggregates(demoShape(params as never));
    const found = new Map<string, number>();
    let wrong = 0;
    for (const line of lines) {
      const row = JSON.parse(line) as HourlyAggregate;
      const key = aggregateKey(row);
      found.set(key, (found.get(key) ?? 0) + row.events);
      if (!expected.has(key)) wrong++;
    }
    let lost = 0;
    let duplicated = 0;
    let total = 0;
    for (const [key, want] of expected) {
      total += want.events;
      const got = found.get(key) ?? 0;
      if (got < want.events) lost += want.events - got;
      if (got > want.events) duplicated += got - want.events;
    }
    return { expected: total, lost, duplicated, wrong };
  }
  const shape = joinShape(params as never);
  const check = checkRecommendations(shape, lines.map((l) => JSON.parse(l) as Recommendation));
  return { expected: shape.events, lost: check.missing.length, duplicated: check.duplicates.length, wrong: check.wrong.length + check.unexpected.length };
}
