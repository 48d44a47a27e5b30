/**
 * The engine's per-record path: the demo job (generator -> parse -> keyBy(user) -> hourly
 * aggregate -> S3 sink) on the in-memory ports with the in-process launcher, checkpoints on, beside
 * the per-record floor of the same job measured in the same process, the same run.
 *
 *   npm run bench:engine -- [--records 1000000] [--parallelism 4] [--users 1000] [--hours 6]
 *     [--partitions 16] [--checkpoint-every 1] [--reps 5] [--out bench/results/engine.json]
 *
 * The engine: every task unit runs in this process (one core: the in-process launcher), its
 * channels are the in-memory SQS transport (messages are JSON strings, as on SQS), its metadata and
 * blobs the in-memory DynamoDB and S3; a JobController takes checkpoints every `--checkpoint-every`
 * seconds (default 1: a run takes a few seconds, and Flink's comparison figure ran with exactly-once
 * checkpoints, so checkpoints must complete during the measured runs; each run's count is reported,
 * and a run that completed none is called out). Records/s is records over the job's wall time (submit to FINISHED); CPU per record is
 * this process's CPU time (user + system, all threads: GC helpers too) over the records.
 *
 * The floor: what this job cannot do without, in one tight loop on the same records: generate the
 * line (the demo's generator), parse and enrich it, hash the user to its consumer, serialize it and
 * pack it into a message body per consumer (the size the engine uses), and parse the bodies back
 * (the consumer's JSON). Nothing else: no channels, state, checkpoints, sink. A second floor adds
 * the keyed aggregate (the job's one operator with state, on a plain Map) for reference. A third
 * packs the records as the engine's channels do, as rows of one shape (record-rows.ts: keys once
 * per message, each record as its values) instead of JSON objects: the floor of the engine's own
 * wire format, so that what the rows save is not counted as the engine's overhead gone.
 *
 * Runs alternate floor / engine `--reps` times after one untimed warm-up of each (the JIT); the
 * medians are reported, and the median of each run's engine over the floor measured just before
 * it. The engine's output is checked against the expected aggregates every run.
 */
import os from 'node:os';
import { commandFlags, commandWith, defineFlags } from '../lib/cli/flags';
import { markdownTable, median, round } from './lib/report';
import { describeMachine, machineInfo, writeResults } from './lib/results';
import { jobRegistry } from '../examples/jobs';
import { demoLine, demoShape, expectedAggregates, HOUR_MS, hourlyCounts, parseAndEnrich, partitionSize, type DemoShape, type Enriched, type HourlyAggregate } from '../examples/jobs/demo';
import { JobController } from '../lib/jobs/job-controller';
import { JobService } from '../lib/jobs/job-service';
import { JobStore } from '../lib/jobs/job-store';
import { InProcessLauncher } from '../lib/local/in-process-launcher';
import { createMemoryPorts, memoryRequestCounts } from '../lib/memory';
import { MAX_MESSAGE_BYTES } from '../lib/ports/channels';
import { hashPartition } from '../lib/runtime/record-writer';
import { recordsOfRows, rowShapeOf, rowText, type RowShape } from '../lib/runtime/record-rows';
import type { Json } from '../lib/api/functions';

const FLAGS = defineFlags({
  records: { type: 'number', default: 1_000_000, integer: true, min: 1, help: 'input records' },
  parallelism: { type: 'number', default: 4, integer: true, min: 1, help: 'subtasks per operator' },
  users: { type: 'number', default: 1000, integer: true, min: 1, help: 'distinct users (keys)' },
  hours: { type: 'number', default: 6, integer: true, min: 1, help: 'event-time span of the input' },
  partitions: { type: 'number', default: 16, integer: true, min: 1, help: 'generator partitions' },
  checkpointEvery: { type: 'number', default: 1, min: 0, help: 'seconds between checkpoints (0: none); 1 so that they complete within a run of a few seconds' },
  reps: { type: 'number', default: 5, integer: true, min: 1, help: 'timed runs of each (after one untimed warm-up of each)' },
  out: { type: 'string', default: 'bench/results/engine.json', help: 'JSON results file' },
});

interface Sample {
  seconds: number;
  cpuSeconds: number;
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function timed<T>(body: () => Promise<T> | T): Promise<{ sample: Sample; value: T }> {
  const cpu = cpuNow();
  const start = performance.now();
  const value = await body();
  return { sample: { seconds: (performance.now() - start) / 1000, cpuSeconds: cpuNow() - cpu }, value };
}

/**
 * The floor loop. `aggregate`: also the hourly window aggregate on a Map per consumer. Returns a checksum
 * so no step can be optimized away.
 */
function floor(shape: DemoShape, consumers: number, aggregate: boolean, rows = false): number {
  const maxBytes = MAX_MESSAGE_BYTES - 96;
  let rowShape: RowShape | undefined;
  const parts: string[][] = Array.from({ length: consumers }, () => []);
  const bytes = new Array<number>(consumers).fill(0);
  const states = Array.from({ length: consumers }, () => new Map<string, Record<string, unknown>>());
  let checksum = 0;
  const consume = (c: number) => {
    const body = rowShape
      ? `{"p":0,"a":0,"s":0,"l":0,"n":0,"t":"d","k":${rowShape.text},"c":[${parts[c]!.join(',')}]}`
      : `{"p":0,"a":0,"s":0,"l":0,"n":0,"t":"d","r":[${parts[c]!.join(',')}]}`;
    parts[c] = [];
    bytes[c] = 0;
    const message = JSON.parse(body) as { r: Enriched[]; k?: unknown; c?: unknown };
    const records = (rowShape ? recordsOfRows(message.k, message.c) : message.r) as Enriched[];
    if (!aggregate) {
      checksum += records.length;
      return;
    }
    const state = states[c]!;
    for (const e of records) {
      let slot = state.get(e.user);
      if (!slot) state.set(e.user, (slot = {}));
      // The window's work per record: the hour's accumulator of the key, updated by the job's aggregate function.
      const hour = Math.floor(e.ts / HOUR_MS) * HOUR_MS;
      slot[hour] = hourlyCounts.add(e, (slot[hour] as ReturnType<typeof hourlyCounts.createAccumulator> | undefined) ?? hourlyCounts.createAccumulator());
      checksum++;
    }
  };
  for (let p = 0; p < shape.partitions; p++) {
    const n = partitionSize(shape, p);
    for (let o = 0; o < n; o++) {
      const e = parseAndEnrich(demoLine(shape, p, o));
      const c = hashPartition(e.user, consumers);
      if (rows && !rowShape) rowShape = rowShapeOf(e as unknown as Json);
      const part = rowShape ? rowText(e as unknown as Json, rowShape) : JSON.stringify(e);
      const size = Buffer.byteLength(part) + 1;
      if (bytes[c]! + size > maxBytes) consume(c);
      parts[c]!.push(part);
      bytes[c]! += size;
    }
  }
  for (let c = 0; c < consumers; c++) if (parts[c]!.length > 0) consume(c);
  return checksum;
}

interface EngineRun {
  requests: ReturnType<typeof memoryRequestCounts>;
  checkpoints: number;
  /** Reads the output back and compares it with the expected aggregates (not timed). */
  check(): Promise<void>;
}

/** One run of the demo job on the in-memory ports, until it has FINISHED. */
async function engine(params: Record<string, number>, checkpointEveryMs: number): Promise<EngineRun> {
  const ports = createMemoryPorts();
  const jobs = new JobStore(ports.metadata);
  const launcher = new InProcessLauncher({ ...ports, jobs, registry: jobRegistry, queuePrefix: 'bench' });
  const service = new JobService({ jobs, channels: ports.channels, registry: jobRegistry, queuePrefix: 'bench', launcher });
  const job = await service.submit({ job: 'demo', params, checkpoint: { handle: 'regional', intervalSeconds: Math.max(1, Math.round(checkpointEveryMs / 1000)) } });
  const controller = new JobController({ service, metadata: ports.metadata, blobs: ports.blobs, pollMs: 200, ...(checkpointEveryMs > 0 ? { checkpointEveryMs } : { checkpointEveryMs: 3_600_000 }) });
  const view = await controller.run(job.jobId);
  await launcher.settled();
  if (view.job.status !== 'FINISHED') throw new Error(`bench job ${job.jobId} ended ${view.job.status}: ${view.job.error ?? ''}`);
  if (view.totals.recordsIn !== params.records) throw new Error(`bench job read ${view.totals.recordsIn} records, not ${params.records}`);
  const checkpoints = (await controller.driver!.history()).filter((h) => h.outcome.status === 'completed').length;
  // The output, read back: every aggregate as computed directly from the input.
  const check = async () => {
    const expected = expectedAggregates(demoShape(view.job.params));
    let found = 0;
    for (const f of await ports.blobs.list(`output/${job.jobId}/`)) {
      if (f.key.endsWith('/_SUCCESS')) continue;
      for (const line of Buffer.from((await ports.blobs.get(f.key))!).toString('utf8').trim().split('\n')) {
        const a = JSON.parse(line) as HourlyAggregate;
        const want = expected.get(`${a.user}|${a.hourStart}`);
        if (!want || want.events !== a.events || want.amount !== a.amount || want.buys !== a.buys) throw new Error(`bench job ${job.jobId}: wrong aggregate ${line}`);
        found++;
      }
    }
    if (found !== expected.size) throw new Error(`bench job ${job.jobId}: ${found} aggregates, ${expected.size} expected`);
  };
  return { requests: memoryRequestCounts(ports), checkpoints, check };
}

async function main(): Promise<void> {
  const o = commandFlags('engine', 'npm run bench:engine -- [flags]', FLAGS);
  const command = commandWith('npm run bench:engine --', o, Object.keys(FLAGS));
  const params = { records: o.records, parallelism: o.parallelism, users: o.users, hours: o.hours, partitions: o.partitions, rate: 0 };
  const shape = demoShape(params);
  const loadBefore = os.loadavg()[0]!;

  const floors: Sample[] = [];
  const floorsAggregate: Sample[] = [];
  const floorsRows: Sample[] = [];
  const engines: Sample[] = [];
  /** Checkpoints completed in each timed engine run. */
  const checkpoints: number[] = [];
  let last: Awaited<ReturnType<typeof engine>> | undefined;
  for (let rep = 0; rep <= o.reps; rep++) {
    const f = await timed(() => floor(shape, o.parallelism, false));
    const fa = await timed(() => floor(shape, o.parallelism, true));
    const fr = await timed(() => floor(shape, o.parallelism, false, true));
    if (f.value !== o.records || fa.value !== o.records || fr.value !== o.records) throw new Error('floor loop lost records');
    const e = await timed(() => engine(params, o.checkpointEvery * 1000));
    await e.value.check();
    last = e.value;
    const label = rep === 0 ? 'warm-up' : `run ${rep}`;
    console.log(
      `${label}: floor ${Math.round(o.records / f.sample.cpuSeconds).toLocaleString('en-US')} records/s per core; ` +
        `engine ${Math.round(o.records / e.sample.seconds).toLocaleString('en-US')} records/s, ${e.sample.seconds.toFixed(2)} s, CPU ${e.sample.cpuSeconds.toFixed(2)} s, ` +
        `${e.value.checkpoints} checkpoint(s) completed; load ${os.loadavg()[0]!.toFixed(2)}`,
    );
    if (rep === 0) continue;
    floors.push(f.sample);
    floorsAggregate.push(fa.sample);
    floorsRows.push(fr.sample);
    engines.push(e.sample);
    checkpoints.push(e.value.checkpoints);
  }

  const perRecordUs = (s: Sample) => (s.cpuSeconds / o.records) * 1e6;
  const floorUs = median(floors.map(perRecordUs));
  const floorAggregateUs = median(floorsAggregate.map(perRecordUs));
  const floorRowsUs = median(floorsRows.map(perRecordUs));
  const engineUs = median(engines.map(perRecordUs));
  const engineRate = median(engines.map((s) => o.records / s.seconds));
  const ratio = engineUs / floorUs;
  // Each run's engine over the floor measured just before it: the floor itself moves by ±10 %
  // between runs on this shared machine, and a ratio of two medians taken minutes apart moves with it.
  const pairRatios = engines.map((e, i) => perRecordUs(e) / perRecordUs(floors[i]!));
  const pairRatio = median(pairRatios);
  const machine = { ...machineInfo(), loadavg1mBefore: round(loadBefore, 2), loadavg1mAfter: round(os.loadavg()[0]!, 2) };

  const rows = [
    ['floor: generate, parse, hash, pack, JSON', '-', round(floorUs, 2).toFixed(2), Math.round(1e6 / floorUs).toLocaleString('en-US'), '1.00'],
    ['floor + keyed aggregate (Map)', '-', round(floorAggregateUs, 2).toFixed(2), Math.round(1e6 / floorAggregateUs).toLocaleString('en-US'), (floorAggregateUs / floorUs).toFixed(2)],
    ['floor with records as rows (the engine\'s wire format)', '-', round(floorRowsUs, 2).toFixed(2), Math.round(1e6 / floorRowsUs).toLocaleString('en-US'), (floorRowsUs / floorUs).toFixed(2)],
    [
      `engine: demo job, in-memory ports, checkpoints every ${o.checkpointEvery} s (${checkpoints.join(', ')} completed)`,
      Math.round(engineRate).toLocaleString('en-US'),
      round(engineUs, 2).toFixed(2),
      Math.round(1e6 / engineUs).toLocaleString('en-US'),
      ratio.toFixed(2),
    ],
  ];
  console.log('');
  console.log(`the demo job, ${o.records.toLocaleString('en-US')} records, parallelism ${o.parallelism}, ${o.users} users, ${o.hours} hours; medians of ${o.reps} runs`);
  console.log(markdownTable(['what', 'records/s (wall)', 'CPU µs per record', 'records/s per core of CPU', 'x floor'], rows, ['left', 'right', 'right', 'right', 'right']));
  console.log(`engine / floor of each run (the floor measured just before its engine): ${pairRatios.map((r) => r.toFixed(2)).join(', ')}; median ${pairRatio.toFixed(2)}`);
  console.log(`engine / floor with rows (the engine's overhead beyond its own wire format): ${(engineUs / floorRowsUs).toFixed(2)}`);
  if (o.checkpointEvery > 0 && checkpoints.some((n) => n === 0)) {
    console.log(`NOTE: ${checkpoints.filter((n) => n === 0).length} of ${checkpoints.length} timed runs completed no checkpoint (shorter than the interval): use a shorter --checkpoint-every to measure them with checkpoints`);
  }
  console.log(`engine: checkpoints completed per timed run: ${checkpoints.join(', ')}; requests on the in-memory ports (last run): ${last!.requests.total} (SQS ${last!.requests.sqs}, DynamoDB ${last!.requests.dynamodb}, S3 ${last!.requests.s3})`);
  console.log(`${describeMachine(machineInfo())}; load average (1 min) ${machine.loadavg1mBefore} before, ${machine.loadavg1mAfter} after`);
  console.log(`rerun: ${command}`);

  writeResults(o.out, {
    bench: 'engine',
    command,
    at: new Date().toISOString(),
    machine,
    params: { ...params, checkpointEverySeconds: o.checkpointEvery, reps: o.reps },
    floor: { cpuUsPerRecord: round(floorUs, 3), recordsPerCoreSecond: Math.round(1e6 / floorUs), runs: floors },
    floorWithAggregate: { cpuUsPerRecord: round(floorAggregateUs, 3), recordsPerCoreSecond: Math.round(1e6 / floorAggregateUs), runs: floorsAggregate },
    floorWithRows: { cpuUsPerRecord: round(floorRowsUs, 3), recordsPerCoreSecond: Math.round(1e6 / floorRowsUs), runs: floorsRows },
    engine: {
      recordsPerSecond: Math.round(engineRate),
      cpuUsPerRecord: round(engineUs, 3),
      timesFloor: round(ratio, 3),
      timesFloorPerRun: pairRatios.map((r) => round(r, 3)),
      timesFloorMedianOfRuns: round(pairRatio, 3),
      timesFloorWithRows: round(engineUs / floorRowsUs, 3),
      checkpointsPerRun: checkpoints,
      requestsLastRun: last!.requests,
      runs: engines,
    },
  });
  console.log(`wrote ${o.out}`);
}

main().catch((error: unknown) => {
  console.error(`bench:engine failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
