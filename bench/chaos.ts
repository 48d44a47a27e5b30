/**
 * `npm run test:chaos -- --schedules N --seed S [--strategy region,full,single,single-buffered,single-exact]
 * [--jobs demo,join]`: randomized fault schedules against the emulator (see bench/chaos/runner.ts).
 * One row per schedule, a summary per strategy, JSON in bench/results/chaos.json. Exits non-zero
 * when a schedule breaks what its strategy promises:
 *   region, full       FINISHED, nothing lost, nothing duplicated;
 *   single             never hangs; loss and duplicates as the consumers reported them (loss =
 *                      missing on the counted edges, duplicates = regenerated; what a restarted
 *                      inner task lost at its input after its dead attempt sent it on may be
 *                      counted in both, equally);
 *                      no duplicates when only sources were killed;
 *   single-buffered    the same, and nothing dropped, nothing lost (bench/chaos/verdict.ts).
 *   single-exact       nothing lost, nothing duplicated, and only the killed units restart.
 * `--judge FILE` prints the rows and the summary of a saved run again, judged by today's verdict.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../lib/config';
import { resolveEndpoint } from '../lib/local/emulator';
import { LocalRuntime } from '../lib/local/local-runtime';
import type { FailoverStrategy } from '../lib/jobs/job-store';
import { jobRegistry } from '../examples/jobs';
import { planSchedule, runSchedule, type ChaosJob, type ChaosResult } from './chaos/runner';
import { verdict } from './chaos/verdict';
import { commandFlags, defineFlags } from '../lib/cli/flags';
import { quantile } from './lib/report';
import { describeMachine, machineInfo, writeResults } from './lib/results';

const STRATEGIES: FailoverStrategy[] = ['region', 'full', 'single', 'single-buffered', 'single-exact'];
const JOBS: ChaosJob[] = ['demo', 'join'];

const args = commandFlags(
  'chaos',
  "npm run test:chaos -- [flags]\n       npm run test:chaos -- --judge bench/results/chaos.json   (print a saved run again, judged by today's verdict)",
  defineFlags({
    schedules: { type: 'number', default: 10, integer: true, min: 1, help: 'fault schedules to run' },
    seed: { type: 'number', default: 1, integer: true, help: 'seed of the first schedule (the next ones take seed + 1, ...)' },
    strategy: { type: 'list', default: STRATEGIES, choices: STRATEGIES, help: 'failover strategies to draw from' },
    jobs: { type: 'list', default: JOBS, choices: JOBS, help: 'jobs to draw from' },
    out: { type: 'string', default: join(dirname(fileURLToPath(import.meta.url)), 'results', 'chaos.json'), help: 'JSON results file' },
    finalCommitKills: { type: 'boolean', help: "one more kill per schedule: a sink just after its region's final commit was released" },
    subtasksPerUnit: { type: 'list', default: ['1'], choices: ['1', '2', '3', '4'], help: 'subtasks a unit hosts, drawn per schedule (1,3: packed units in some schedules)' },
    judge: { type: 'string', help: 'print the rows and summary of a saved run again, judged by the verdict of today (runs nothing)' },
  }),
);

const HEADER = 'seed  job     strategy         outcome   lost  dup  drops unrepl  missing  regen     recovery ms (sup: superseded) time   kills';

async function main(): Promise<number> {
  if (args.judge) return judgeSaved(args.judge);
  const { schedules, seed, strategy: strategies, jobs, finalCommitKills } = args;
  const subtasksPerUnit = args.subtasksPerUnit.map(Number);
  const packed = subtasksPerUnit.some((n) => n > 1) ? ` --subtasks-per-unit ${subtasksPerUnit.join(',')}` : '';
  const command = `npm run test:chaos -- --schedules ${schedules} --seed ${seed} --strategy ${strategies.join(',')} --jobs ${jobs.join(',')}${finalCommitKills ? ' --final-commit-kills' : ''}${packed}`;

  const endpoint = await resolveEndpoint();
  const config = { ...loadConfig(), table: 'sluice-chaos', bucket: 'sluice-chaos', queuePrefix: 'chaos' };
  const runtime = new LocalRuntime(config, jobRegistry);
  const results: ChaosResult[] = [];
  const started = Date.now();
  try {
    await runtime.prepare();
    console.log(`chaos: ${schedules} schedules from seed ${seed} (${strategies.join(', ')}; ${jobs.join(', ')}) on ${endpoint.endpoint}`);
    console.log(HEADER);
    for (let i = 0; i < schedules; i++) {
      const schedule = planSchedule(seed + i, { strategies, jobs, subtasksPerUnit, ...(finalCommitKills ? { finalCommitKills: true } : {}) });
      const result = await runSchedule(schedule, { runtime });
      results.push(result);
      console.log(row(result));
      if (result.error && result.outcome !== 'FINISHED') console.log(`      ${result.error.slice(0, 400)}`);
      // What has run so far, after each schedule: a long run stopped early keeps its rows (`--judge` reads them).
      const partial = { command, at: new Date().toISOString(), machine: machineInfo(), totalMs: Date.now() - started, completed: results.length, planned: schedules };
      writeResults(args.out, { ...partial, summary: report(results, strategies, false).summary, simulatedRecoveryMs: Object.fromEntries(readSimulated()), results });
    }
  } finally {
    runtime.close();
    await endpoint.stop();
  }

  const totalMs = Date.now() - started;
  const { summary, broken } = report(results, strategies);
  console.log(`\n${results.length} schedules in ${(totalMs / 1000).toFixed(0)} s; rerun: ${command}`);
  const machine = machineInfo();
  console.log(describeMachine(machine));
  const simulatedRecoveryMs = Object.fromEntries(readSimulated());
  writeResults(args.out, { command, at: new Date().toISOString(), machine, totalMs, summary, simulatedRecoveryMs, results });
  console.log(`results: ${args.out}`);
  return broken === 0 ? 0 : 1;
}

/** Prints the summary per strategy (and the broken schedules); returns it with the broken count. */
function report(results: ChaosResult[], strategies: readonly FailoverStrategy[], print = true) {
  const summary = strategies.map((strategy) => {
    const runs = results.filter((r) => r.schedule.strategy === strategy);
    const recovery = runs.flatMap((r) => r.failures.map((f) => f.recoveryMs).filter((ms): ms is number => ms !== null)).sort((a, b) => a - b);
    return {
      strategy,
      runs: runs.length,
      finished: runs.filter((r) => r.outcome === 'FINISHED').length,
      failed: runs.filter((r) => r.outcome === 'FAILED').length,
      hung: runs.filter((r) => r.outcome === 'HUNG').length,
      broken: runs.filter((r) => !verdict(r).ok).length,
      lost: runs.reduce((n, r) => n + r.lost, 0),
      duplicated: runs.reduce((n, r) => n + r.duplicated, 0),
      reportedDropped: runs.reduce((n, r) => n + r.reportedDropped, 0),
      reportedUnreplayed: runs.reduce((n, r) => n + (r.reportedUnreplayed ?? 0), 0),
      reportedMissing: runs.reduce((n, r) => n + r.reportedMissing, 0),
      reportedDuplicates: runs.reduce((n, r) => n + r.reportedDuplicates, 0),
      recoveryMs: { samples: recovery.length, median: quantile(recovery, 0.5), worst: recovery.at(-1) ?? null },
    };
  });
  if (!print) return { summary, broken: results.filter((r) => !verdict(r).ok).length };
  console.log('');
  console.log('strategy          runs  finished  failed  hung  broken     lost  duplicated  reported drops  reported unreplayed  reported missing  reported regenerated  recovery median / worst (ms)');
  for (const s of summary) {
    console.log(
      `${s.strategy.padEnd(17)} ${String(s.runs).padStart(4)}  ${String(s.finished).padStart(8)}  ${String(s.failed).padStart(6)}  ${String(s.hung).padStart(4)}  ${String(s.broken).padStart(6)}  ` +
        `${String(s.lost).padStart(7)}  ${String(s.duplicated).padStart(10)}  ${String(s.reportedDropped).padStart(14)}  ${String(s.reportedUnreplayed).padStart(19)}  ${String(s.reportedMissing).padStart(16)}  ${String(s.reportedDuplicates).padStart(17)}  ${s.recoveryMs.median ?? '-'} / ${s.recoveryMs.worst ?? '-'}`,
    );
  }
  // Beside the simulated recovery of bench:recovery (parallelism 4000, a latency model), if it ran.
  const simulated = readSimulated();
  if (simulated.size > 0) {
    console.log('');
    console.log('recovery (failure -> available again), measured here vs simulated by bench:recovery at parallelism 4000:');
    for (const s of summary) {
      const sim = simulated.get(s.strategy);
      console.log(`  ${s.strategy.padEnd(16)} measured median ${s.recoveryMs.median ?? '-'} ms, worst ${s.recoveryMs.worst ?? '-'} ms (${s.recoveryMs.samples} failures); simulated ${sim === undefined ? '-' : `${Math.round(sim)} ms`}`);
    }
  }
  const broken = results.filter((r) => !verdict(r).ok);
  for (const r of broken) console.log(`broken: seed ${r.schedule.seed} (${r.schedule.strategy}, ${r.schedule.job}): ${verdict(r).why.join('; ')}`);
  return { summary, broken: broken.length };
}

function judgeSaved(file: string): number {
  if (!existsSync(file)) throw new Error(`--judge: ${file} does not exist`);
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { command?: string; at?: string; totalMs?: number; results?: ChaosResult[] };
  if (!Array.isArray(saved.results)) throw new Error(`--judge: ${file} has no results array (not a chaos run's JSON)`);
  const results = saved.results;
  console.log(`chaos: ${results.length} schedules saved in ${file} (${saved.at ?? 'undated'}; ${saved.command ?? 'command unknown'}), judged again`);
  console.log(HEADER);
  for (const r of results) console.log(row(r));
  const strategies = STRATEGIES.filter((s) => results.some((r) => r.schedule.strategy === s));
  const { broken } = report(results, strategies);
  if (saved.totalMs !== undefined) console.log(`\n${results.length} schedules in ${(saved.totalMs / 1000).toFixed(0)} s`);
  return broken === 0 ? 0 : 1;
}
/** Simulated recovery time per strategy from bench/results/recovery.json (empty when it is missing). */
function readSimulated(): Map<string, number> {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'results', 'recovery.json');
  if (!existsSync(file)) return new Map();
  const data = JSON.parse(readFileSync(file, 'utf8')) as { results?: { strategy: string; recoveryMs?: number }[] };
  return new Map((data.results ?? []).filter((r) => typeof r.recoveryMs === 'number').map((r) => [r.strategy, r.recoveryMs!]));
}

function row(r: ChaosResult): string {
  const kills = r.kills.map((k) => (k.units.length > 0 ? `${k.units.join('+')}@${((k.atMs ?? 0) / 1000).toFixed(1)}s(${k.spec.moment})` : `-(${k.spec.moment}: ${k.note})`)).join(' ');
  const recovery = r.failures.map((f) => (f.status === 'SUPERSEDED' ? 'sup' : (f.recoveryMs ?? '?'))).join(',') || '-';
  const mark = verdict(r).ok ? ' ' : '!';
  return (
    `${String(r.schedule.seed).padEnd(5)} ${(r.schedule.job + (r.schedule.subtasksPerUnit ? `/${r.schedule.subtasksPerUnit}` : '')).padEnd(7)} ${r.schedule.strategy.padEnd(16)} ${mark}${r.outcome.padEnd(8)} ` +
    `${String(r.lost).padStart(5)} ${String(r.duplicated).padStart(4)} ${String(r.reportedDropped).padStart(6)} ${String(r.reportedUnreplayed ?? 0).padStart(6)} ${String(r.reportedMissing).padStart(8)} ${String(r.reportedDuplicates).padStart(9)}  ` +
    `${recovery.padEnd(15)} ${(r.totalMs / 1000).toFixed(0).padStart(4)} s  ${kills}`
  );
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`chaos failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
