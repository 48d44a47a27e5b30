/**
 * A job reads a Kinesis stream on the emulator, aggregates per user and event-time hour, and writes
 * the exactly-once S3 sink; one task unit is killed (SIGKILL) once a checkpoint has completed, under
 * `region` failover. The committed S3 output must equal what the input says, row for row.
 */
import { CreateStreamCommand, DeleteStreamCommand, waitUntilStreamExists } from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { AwsKinesisStreams, createKinesisClient } from '../../lib/aws/kinesis-streams';
import { LocalRuntime } from '../../lib/local/local-runtime';
import { jobRegistry } from '../../examples/jobs';
import { readOutputLines } from '../../examples/jobs/output-check';
import { clickEvents, expectedHourly, hourlyKey, type HourlyClicks } from '../../examples/jobs/stream-ingest';

const config = { ...loadConfig(), table: 'sluice-e2e-kin', bucket: 'sluice-e2e-kin', queuePrefix: 'e2ekin' };
const kinesis = createKinesisClient(config);
const streams = new AwsKinesisStreams(kinesis);
const stream = `clicks-${Date.now().toString(36)}`;
let runtime: LocalRuntime;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  runtime = new LocalRuntime(config, jobRegistry);
  await runtime.prepare();
  await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 4 }));
  await waitUntilStreamExists({ client: kinesis, maxWaitTime: 30 }, { StreamName: stream });
});
afterAll(async () => {
  await kinesis.send(new DeleteStreamCommand({ StreamName: stream })).catch(() => undefined);
  kinesis.destroy();
  await runtime.close();
});

describe('Kinesis -> hourly windows -> S3, with a unit killed', () => {
  it('writes exactly the hourly aggregates the stream holds, after a region restart', async () => {
    const events = clickEvents(24_000, 150, 6);
    for (let i = 0; i < events.length; i += 500) {
      let batch = events.slice(i, i + 500).map((e) => ({ partitionKey: e.user, data: Buffer.from(JSON.stringify(e)) }));
      while (batch.length > 0) {
        const { results } = await streams.putRecords(stream, batch);
        batch = batch.filter((_, k) => 'errorCode' in results[k]!);
      }
    }
    // 200 records a call, 5 calls a second per shard: the read takes several checkpoints.
    const job = await runtime.service.submit({
      job: 'kinesis-ingest',
      params: { parallelism: 2, stream, bounded: true, recordsPerCall: 200 },
      failover: 'region',
      heartbeatTimeoutSeconds: 20,
      checkpoint: { handle: 'regional', timeoutSeconds: 10 },
    });
    const controller = runtime.controller({ pollMs: 250, checkpointEveryMs: 700 });
    let finished = false;
    const running = controller.run(job.jobId).finally(() => (finished = true));

    // Once a checkpoint has completed (observed, not timed), kill a running source unit.
    let killed: string | undefined;
    while (!finished && !killed) {
      const completed = (await controller.driver?.history())?.some((h) => h.outcome.status === 'completed');
      const units = (await runtime.jobs.getUnits(job.jobId)).filter((u) => u.status === 'RUNNING' && u.subtasks.some((s) => s.startsWith('kinesis#')));
      if (completed && units.length > 0 && runtime.launcher.kill(job.jobId, units[0]!.unitId)) killed = units[0]!.unitId;
      else await sleep(100);
    }
    const view = await running;
    expect(view.job.status).toBe('FINISHED');
    expect(killed).toBeDefined();
    expect(controller.supervisor.failures.map((f) => f.unitId)).toContain(killed);

    const expected = expectedHourly(events);
    const { lines } = await readOutputLines(runtime.ports.clients.s3, config.bucket, `output/${job.jobId}/`);
    const rows = lines.map((l) => JSON.parse(l) as HourlyClicks);
    const byKey = new Map(rows.map((r) => [hourlyKey(r), r]));
    expect(byKey.size).toBe(rows.length); // no row twice
    expect(byKey).toEqual(expected);
  });
});
