/**
 * `npm run demo`: runs the demo job end to end on the local runtime.
 *
 * Starts the embedded AWS emulator unless AWS_ENDPOINT_URL names one (LocalStack, say), creates
 * the table and bucket, submits the demo job (generator -> parse -> keyBy(user) -> hourly
 * aggregate -> S3) with task units as child processes, shows progress, prints a summary, and
 * checks every aggregate in S3 against the expected value.
 *
 *   npm run demo -- [--records N] [--parallelism P] [--users U] [--hours H]
 *                   [--checkpoint-every SECONDS] [--failover region|full|single|single-buffered|single-exact]
 *                   [--kill-after SECONDS] [--spares N]       (--help says what each does)
 */
import { requestCounts } from '../lib/aws';
import { loadConfig } from '../lib/config';
import { resolveEndpoint } from '../lib/local/emulator';
import { LocalRuntime } from '../lib/local/local-runtime';
import { FAILOVER_STRATEGIES, type JobView } from '../lib/jobs/job-service';
import { loadJobRegistry } from '../lib/api/jobs-module';
import { buildExecutionGraph } from '../lib/graph/execution-graph';
import { RecoveryMetrics } from '../lib/recovery/recovery-metrics';
import { commandFlags, defineFlags } from '../lib/cli/flags';

const FLAGS = defineFlags({
  records: { type: 'number', default: 1_000_000, integer: true, min: 1, help: 'input records' },
  parallelism: { type: 'number', default: 4, integer: true, min: 1, help: 'subtasks per operator' },
  users: { type: 'number', default: 1000, integer: true, min: 1, help: 'distinct users (keys)' },
  hours: { type: 'number', default: 6, integer: true, min: 1, help: 'event-time span of the input' },
  checkpointEvery: { type: 'number', default: 3, min: 0, help: 'seconds between checkpoints (0: none)' },
  failover: { type: 'string', default: 'region', choices: FAILOVER_STRATEGIES, help: 'failover strategy' },
  killAfter: { type: 'number', optional: true, min: 0, help: 'kill one task unit (SIGKILL) this many seconds after the job starts' },
  spares: { type: 'number', optional: true, integer: true, min: 0, help: 'idle unit processes kept warm for restarts (default: the job\'s unit count under region and full, 2 under the single modes)' },
});

// A bad flag is named with what is wrong (exit 2) before anything starts; --help lists the flags.
const args = commandFlags(
  'demo',
  'npm run demo -- [--records N] [--parallelism P] [--users U] [--hours H] [--checkpoint-every SECONDS] [--failover region|full|single|single-buffered|single-exact] [--kill-after SECONDS] [--spares N]',
  FLAGS,
);

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<number> {
  const started = Date.now();
  const endpoint = await resolveEndpoint();
  console.log(endpoint.started ? `AWS emulator (moto) started at ${endpoint.endpoint}` : `using AWS endpoint ${endpoint.endpoint}`);
  const config = loadConfig();
  const registry = await loadJobRegistry();
  const params = { records: args.records, parallelism: args.parallelism, users: args.users, hours: args.hours };
  // One unit per subtask. Warm spares: enough for what one failure restarts (every unit under
  // region/full: the keyBy joins the whole job into one region; one unit under the single modes).
  const units = buildExecutionGraph(registry.build('demo', params).graph).subtasks.length;
  const spares = args.spares ?? (args.failover === 'region' || args.failover === 'full' ? units : 2);
  const runtime = new LocalRuntime(config, registry, { spares });
  try {
    // The job's units start as warm spares while the table and bucket are made: records flow at once.
    await Promise.all([runtime.prepare(), runtime.launcher.warm(units)]);
    const job = await runtime.service.submit({
      job: 'demo',
      params,
      failover: args.failover,
      checkpoint: { handle: 'regional', intervalSeconds: args.checkpointEvery },
    });
    console.log(`job ${job.jobId}: ${fmt(params.records)} records, parallelism ${params.parallelism}, ${units} task units (child processes), ${job.queues.length} queues`);
    console.log(`  table ${config.table}, bucket ${config.bucket}, logs in .sluice/logs/${job.jobId}/ (npm run sluice -- logs ${job.jobId})`);

    const runStart = Date.now();
    let lastIn = 0;
    let lastAt = runStart;
    let firstRead: number | undefined;
    // Polled twice a second (the supervisor's default): once a second made "records flowing" up to
    // a second late, 2.2 s after the job line on a fresh clone's first run.
    const controller = runtime.controller({
      pollMs: 500,
      onProgress: (view) => {
        const now = Date.now();
        if (!firstRead && view.totals.recordsIn > 0) {
          firstRead = now;
          console.log(`  [${((now - runStart) / 1000).toFixed(1).padStart(4)} s] records flowing: ${fmt(view.totals.recordsIn)} read`);
        }
        if (now - lastAt < 2000) return;
        const rate = ((view.totals.recordsIn - lastIn) * 1000) / (now - lastAt);
        lastIn = view.totals.recordsIn;
        lastAt = now;
        const running = view.units.filter((u) => u.status === 'RUNNING').length;
        const finished = view.units.filter((u) => u.status === 'FINISHED').length;
        const pct = ((100 * view.totals.recordsIn) / params.records).toFixed(0);
        console.log(
          `  [${((now - runStart) / 1000).toFixed(0).padStart(4)} s] read ${fmt(view.totals.recordsIn)} (${pct} %, ${fmt(rate)}/s)  aggregates out ${fmt(view.totals.recordsOut)}  units running ${running}, finished ${finished}`,
        );
      },
    });

    if (args.killAfter !== undefined) {
      const victim = job.units.find((u) => u.unitId.startsWith('hourly-aggregate')) ?? job.units[0]!;
      setTimeout(() => {
        const killed = runtime.launcher.kill(job.jobId, victim.unitId);
        console.log(`  killing task unit ${victim.unitId} (pid ${runtime.launcher.pid(job.jobId, victim.unitId) ?? '?'}) with SIGKILL: ${killed ? 'sent' : 'unit not running'}`);
      }, args.killAfter * 1000).unref();
    }

    const view = await controller.run(job.jobId);
    const seconds = (Date.now() - runStart) / 1000;
    for (const f of controller.supervisor.failures) {
      console.log(`  failure: unit ${f.unitId} attempt ${f.attempt} — ${f.reason}; detected after ${fmt(f.detectedAt - f.failedAt)} ms; failover '${job.settings.failover}'`);
    }
    for (const e of await new RecoveryMetrics(runtime.ports.metadata).list(job.jobId)) {
      const since = (at: number | null) => (at === null ? '-' : `${fmt(at - e.failedAt)} ms`);
      console.log(
        `  recovery: failure ${e.seq} (${e.unitId}) ${e.status}: failure to available again ${e.recoveryMs === null ? '-' : `${fmt(e.recoveryMs)} ms`} ` +
          `(detected ${since(e.detectedAt)}, restarted ${since(e.restartedAt)}, available ${since(e.availableAgainAt)} after the failure; ${e.unitsRestarted} unit(s) restarted, ${fmt(e.recordsDropped)} records dropped)`,
      );
    }
    if (runtime.launcher.launches.warm > 0) console.log(`  unit starts: ${runtime.launcher.launches.warm} into warm spares, ${runtime.launcher.launches.cold} cold`);
    const handovers = view.units.reduce((n, u) => n + (u.generation ?? 0), 0);
    if (handovers > 0) {
      console.log(`  hand-overs: ${handovers} (units continued in a next invocation of the same attempt; SLUICE_HANDOVER_AFTER_MS=${process.env.SLUICE_HANDOVER_AFTER_MS ?? '-'})`);
    }
    const history = await controller.driver!.history();
    const completed = history.filter((h) => h.outcome.status === 'completed');
    // The last checkpoints of a bounded job may find every subtask finished (nothing to write).
    const withState = completed.filter((h) => h.bytesWritten > 0).at(-1);
    console.log(
      `  checkpoints: ${completed.length} completed, ${history.length - completed.length} failed` +
        (withState ? `; last with state: ${withState.checkpointId} (${withState.durationMs} ms, ${fmt(withState.bytesWritten)} bytes in S3)` : ''),
    );
    return await summarize(view, seconds, runtime, started);
  } finally {
    runtime.close();
    await endpoint.stop();
  }
}

async function summarize(view: JobView, seconds: number, runtime: LocalRuntime, started: number): Promise<number> {
  const { job, totals } = view;
  const driver = requestCounts();
  const unitRequests = totals.requests.total ?? 0;
  const requests = unitRequests + driver.total;
  console.log('');
  console.log(`job ${job.jobId} ${job.status}${job.error ? `: ${job.error}` : ''}`);
  console.log(`  records in         ${fmt(totals.recordsIn)}`);
  console.log(`  aggregates out     ${fmt(totals.recordsOut)}`);
  console.log(`  time               ${seconds.toFixed(1)} s (job), ${((Date.now() - started) / 1000).toFixed(1)} s (total, with setup)`);
  console.log(`  throughput         ${fmt(totals.recordsIn / seconds)} records/s`);
  console.log(
    `  AWS requests       ${fmt(requests)} (SQS ${fmt((totals.requests.sqs ?? 0) + driver.sqs)}, DynamoDB ${fmt((totals.requests.dynamodb ?? 0) + driver.dynamodb)}, S3 ${fmt((totals.requests.s3 ?? 0) + driver.s3)}): ${(requests / (totals.recordsIn / 1000)).toFixed(2)} per 1000 records`,
  );
  if (job.status !== 'FINISHED') return 1;

  // Check the output independently: every object under the job's prefix, read with the S3 client.
  // Loaded here, not at start: --help works whatever state the jobs are in.
  const { checkDemoOutput } = await import('../examples/jobs/demo-check');
  const check = await checkDemoOutput(runtime.ports.clients.s3, runtime.config.bucket, job.jobId, job.params);
  console.log(
    `  output check       ${check.ok ? 'OK' : 'MISMATCH'}: ${fmt(check.found)} aggregates in ${check.files} files under s3://${runtime.config.bucket}/output/${job.jobId}/, ${fmt(check.expected)} expected, ${check.wrong.length} wrong or missing, ${check.unexpected.length} unexpected, ${check.duplicated.length} duplicated, ${check.unmarked.length} hourly partitions without _SUCCESS`,
  );
  return check.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
