/**
 * Recovery in the demo, measured: the demo job on the local runtime (task units as child processes,
 * the embedded emulator), one unit killed with SIGKILL, `--kills` times per strategy, each kill
 * once the previous failure is available again and a checkpoint has completed after it. Failure
 * to available again per kill, from the job's own failure records (RecoveryMetrics: failedAt is
 * the process's exit, availableAgainAt the restarted unit's announcement; under region the last
 * restarted unit's), with its steps (detected, restarted) and the machine's load at that moment;
 * and "caught up": from available again to the end of the next checkpoint, which completes once the
 * restarted units have read up to its barriers (what a dead unit's receives left in flight comes
 * back only after their visibility timeout, and its FIFO group waits behind it).
 *
 *   npm run bench:demo-recovery -- [--strategies single,region] [--kills 10] [--records 100000000]
 *     [--parallelism 4] [--pause-ms 1000] [--out bench/results/demo-recovery.json]
 *
 * The job runs at the demo's full speed (the emulator as loaded as in `npm run demo`); it is
 * cancelled after the last kill (its output is the demo's, checked by `npm run demo`). Victims:
 * the hourly-aggregate units in turn (`--victims sources` for the generator units).
 */
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { commandFlags, commandWith, defineFlags } from '../lib/cli/flags';
import { markdownTable, median, quantile, round } from './lib/report';
import { describeMachine, machineInfo, writeResults } from './lib/results';
import { loadJobRegistry } from '../lib/api/jobs-module';
import { loadConfig } from '../lib/config';
import { buildExecutionGraph } from '../lib/graph/execution-graph';
import type { FailoverStrategy } from '../lib/jobs/job-store';
import { resolveEndpoint } from '../lib/local/emulator';
import { LocalRuntime } from '../lib/local/local-runtime';
import { RecoveryMetrics, type FailureEvent } from '../lib/recovery/recovery-metrics';

const FLAGS = defineFlags({
  strategies: { type: 'list', default: ['single', 'region'], choices: ['single', 'single-buffered', 'region', 'full'], help: 'failover strategies, one job each' },
  kills: { type: 'number', default: 10, integer: true, min: 1, help: 'kills per strategy (the failure budget allows 10 in 10 minutes)' },
  records: { type: 'number', default: 100_000_000, integer: true, min: 1, help: 'input records (enough to outlast the kills at ~250,000 records/s; the job is cancelled after them)' },
  parallelism: { type: 'number', default: 4, integer: true, min: 1, help: 'subtasks per operator' },
  victims: { type: 'string', default: 'aggregates', choices: ['aggregates', 'sources'], help: 'which units are killed, in turn' },
  pauseMs: { type: 'number', default: 1000, integer: true, min: 0, help: 'wait after a checkpoint completed past a recovery, before the next kill' },
  out: { type: 'string', default: 'bench/results/demo-recovery.json', help: 'JSON results file' },
});

interface Kill {
  strategy: string;
  kill: number;
  unitId: string;
  detectionMs: number;
  restartedMs: number | null;
  recoveryMs: number;
  /**
   * Available again to the end of the first checkpoint triggered after it: when the restarted
   * units had caught up with their channels (null for the last kill, which waits for none).
   */
  caughtUpMs: number | null;
  unitsRestarted: number;
  recordsDropped: number;
  /** Units started into a warm spare / cold, over the whole job so far. */
  warmStarts: number;
  coldStarts: number;
  loadavg1m: number;
}

/** Resolves once `check` returns a value, looking every `everyMs`; fails after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function runStrategy(strategy: FailoverStrategy, o: ReturnType<typeof flags>, runtimeOf: (spares: number) => LocalRuntime): Promise<Kill[]> {
  const registry = await loadJobRegistry();
  const params = { records: o.records, parallelism: o.parallelism };
  const units = buildExecutionGraph(registry.build('demo', params).graph).subtasks.length;
  // As the demo keeps them: enough for what one failure restarts.
  const runtime = runtimeOf(strategy === 'region' || strategy === 'full' ? units : 2);
  const kills: Kill[] = [];
  try {
    await Promise.all([runtime.prepare(), runtime.launcher.warm(units)]);
    const job = await runtime.service.submit({ job: 'demo', params, failover: strategy, checkpoint: { handle: 'regional', intervalSeconds: 3 } });
    const controller = runtime.controller({ pollMs: 1000 });
    const running = controller.run(job.jobId);
    running.catch(() => undefined);
    const metrics = new RecoveryMetrics(runtime.ports.metadata);
    const victims = job.units.filter((u) => u.unitId.startsWith(o.victims === 'sources' ? 'generator' : 'hourly-aggregate'));
    const completedSince = async (at: number) => (await controller.driver?.history())?.find((h) => h.outcome.status === 'completed' && h.triggerTime > at);
    const stillRunning = async () => {
      const view = await runtime.service.view(job.jobId);
      if (view.job.status !== 'RUNNING') throw new Error(`job ${job.jobId} is ${view.job.status} after ${kills.length} kill(s) (${view.job.error ?? 'raise --records'})`);
    };

    // First kill once records flow and a checkpoint has completed (there is state to restore).
    await until('the first completed checkpoint', async () => ((await completedSince(0)) ? true : undefined));
    for (let k = 1; k <= o.kills; k++) {
      const victim = victims[(k - 1) % victims.length]!;
      await stillRunning();
      if (!runtime.launcher.kill(job.jobId, victim.unitId)) throw new Error(`unit ${victim.unitId} is not running at kill ${k}`);
      const event = await until(`failure ${k} to be available again`, async () => {
        const e = (await metrics.list(job.jobId)).find((x) => x.seq === k);
        return e && e.recoveryMs !== null ? e : undefined;
      });
      const loadavg1m = round(os.loadavg()[0]!, 2);
      const r = row(strategy, k, event, runtime, loadavg1m);
      kills.push(r);
      const recoveredAt = event.availableAgainAt!;
      if (k < o.kills) {
        const after = await until(`a checkpoint after failure ${k}`, async () => {
          await stillRunning();
          return completedSince(recoveredAt);
        });
        r.caughtUpMs = after.endTime - recoveredAt;
      }
      console.log(
        `  ${strategy} kill ${k} (${victim.unitId}): failure to available again ${r.recoveryMs} ms (detected ${r.detectionMs} ms, restarted ${r.restartedMs ?? '-'} ms; ${r.unitsRestarted} unit(s) restarted; starts warm ${r.warmStarts}, cold ${r.coldStarts}); caught up ${r.caughtUpMs ?? '-'} ms; load ${loadavg1m}`,
      );
      if (k === o.kills) break;
      await sleep(o.pauseMs);
    }
    await runtime.service.cancel(job.jobId);
    await running;
    return kills;
  } finally {
    runtime.close();
  }
}

function row(strategy: string, kill: number, e: FailureEvent, runtime: LocalRuntime, loadavg1m: number): Kill {
  return {
    strategy,
    kill,
    unitId: e.unitId,
    detectionMs: e.detectionMs,
    restartedMs: e.restartedAt === null ? null : e.restartedAt - e.failedAt,
    recoveryMs: e.recoveryMs!,
    caughtUpMs: null,
    unitsRestarted: e.unitsRestarted,
    recordsDropped: e.recordsDropped,
    warmStarts: runtime.launcher.launches.warm,
    coldStarts: runtime.launcher.launches.cold,
    loadavg1m,
  };
}

const flags = () => commandFlags('demo-recovery', 'npm run bench:demo-recovery -- [flags]', FLAGS);

async function main(): Promise<void> {
  const o = flags();
  const command = commandWith('npm run bench:demo-recovery --', o, Object.keys(FLAGS));
  const started = Date.now();
  const endpoint = await resolveEndpoint();
  const machineBefore = machineInfo();
  const all: Kill[] = [];
  try {
    const config = loadConfig();
    const registry = await loadJobRegistry();
    for (const strategy of o.strategies as FailoverStrategy[]) {
      console.log(`${strategy}: the demo job (${o.records.toLocaleString('en-US')} records, parallelism ${o.parallelism}), ${o.kills} kills`);
      all.push(...(await runStrategy(strategy, o, (spares) => new LocalRuntime(config, registry, { spares }))));
    }
  } finally {
    await endpoint.stop();
  }

  const summary = o.strategies.map((strategy) => {
    const rows = all.filter((k) => k.strategy === strategy);
    const sorted = rows.map((k) => k.recoveryMs).sort((a, b) => a - b);
    const loads = rows.map((k) => k.loadavg1m);
    const caughtUp = rows.flatMap((k) => (k.caughtUpMs === null ? [] : [k.caughtUpMs]));
    return {
      strategy,
      kills: rows.length,
      recoveryMedianMs: median(sorted),
      recoveryP90Ms: quantile(sorted, 0.9),
      recoveryMaxMs: sorted.at(-1)!,
      detectionMedianMs: median(rows.map((k) => k.detectionMs)),
      restartedMedianMs: median(rows.map((k) => k.restartedMs ?? NaN).filter((x) => !Number.isNaN(x))),
      // The last kill waits for no checkpoint: with --kills 1 there is no caught-up figure (null).
      caughtUpMedianMs: caughtUp.length > 0 ? median(caughtUp) : null,
      caughtUpMaxMs: caughtUp.length > 0 ? Math.max(...caughtUp) : null,
      loadavg1m: { min: Math.min(...loads), median: median(loads), max: Math.max(...loads) },
    };
  });
  console.log('');
  console.log(
    markdownTable(
      ['strategy', 'kills', 'failure → available again: median', 'p90', 'max', 'detected (median)', 'restarted (median)', 'caught up (next checkpoint done): median / max', 'load (1 min) min / median / max'],
      summary.map((s) => [
        s.strategy,
        String(s.kills),
        `${Math.round(s.recoveryMedianMs)} ms`,
        `${s.recoveryP90Ms} ms`,
        `${s.recoveryMaxMs} ms`,
        `${Math.round(s.detectionMedianMs)} ms`,
        `${Math.round(s.restartedMedianMs)} ms`,
        s.caughtUpMedianMs === null ? '-' : `${Math.round(s.caughtUpMedianMs)} / ${s.caughtUpMaxMs} ms`,
        `${s.loadavg1m.min} / ${s.loadavg1m.median} / ${s.loadavg1m.max}`,
      ]),
      ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
    ),
  );
  console.log(`${describeMachine(machineInfo())} (${os.cpus().length} cores: a load above that means the run shared the CPU)`);
  console.log(`rerun: ${command}`);
  writeResults(o.out, { bench: 'demo-recovery', command, at: new Date().toISOString(), totalSeconds: round((Date.now() - started) / 1000), machine: { ...machineBefore, loadavg1mAfter: round(os.loadavg()[0]!, 2) }, summary, kills: all });
  console.log(`wrote ${o.out}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench:demo-recovery failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
