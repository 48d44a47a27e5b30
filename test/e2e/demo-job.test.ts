/**
 * The demo job end to end on the emulator process: task units are child processes, records cross
 * real SQS FIFO queues, state and output go to S3, metadata to DynamoDB.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListQueuesCommand } from '@aws-sdk/client-sqs';
import { loadConfig } from '../../lib/config';
import { LocalRuntime } from '../../lib/local/local-runtime';
import { jobRegistry } from '../../examples/jobs';
import { checkDemoOutput } from '../../examples/jobs/demo-check';

const config = { ...loadConfig(), table: 'sluice-e2e-demo', bucket: 'sluice-e2e-demo', queuePrefix: 'e2edemo' };
let runtime: LocalRuntime;

beforeAll(async () => {
  runtime = new LocalRuntime(config, jobRegistry);
  await runtime.prepare();
});
afterAll(() => runtime.close());

async function queuesOf(jobId: string): Promise<string[]> {
  const out = await runtime.ports.clients.sqs.send(new ListQueuesCommand({ QueueNamePrefix: `${config.queuePrefix}-${jobId}` }));
  return out.QueueUrls ?? [];
}

describe('demo job on child-process units and the AWS emulator', () => {
  it('writes exactly the expected hourly aggregates to S3 and deletes its queues', async () => {
    const params = { records: 60_000, parallelism: 3, users: 200, hours: 4, partitions: 9 };
    const job = await runtime.service.submit({ job: 'demo', params });
    expect(job.units).toHaveLength(6); // generator+parse chained, aggregate+sink chained: 2 tasks x 3
    expect(await queuesOf(job.jobId)).toHaveLength(3 + 6); // 3 sub-partitions on the keyBy edge, 6 control queues

    const view = await runtime.supervisor({ pollMs: 300 }).watch(job.jobId);

    expect(view.job.status).toBe('FINISHED');
    expect(view.totals.recordsIn).toBe(60_000);
    const check = await checkDemoOutput(runtime.ports.clients.s3, config.bucket, job.jobId, view.job.params);
    expect(check.wrong).toEqual([]);
    expect(check.unexpected).toEqual([]);
    expect(check.duplicated).toEqual([]);
    expect(check.unmarked).toEqual([]); // every hourly partition has its _SUCCESS marker
    expect(check.found).toBe(check.expected);
    expect(view.totals.recordsOut).toBe(check.expected);
    expect(view.units.every((u) => u.status === 'FINISHED' && u.attempt === 0)).toBe(true);
    expect(view.totals.requests.sqs).toBeGreaterThan(0);
    expect(await queuesOf(job.jobId)).toEqual([]);
  });

  it('a killed task unit is a real process kill, seen by the supervisor and named in the job status', async () => {
    const params = { records: 2_000_000, parallelism: 2, rate: 5_000 };
    const job = await runtime.service.submit({ job: 'demo', params });
    const victim = 'hourly-aggregate-1';
    const supervisor = runtime.supervisor({ pollMs: 200 });
    const watching = supervisor.watch(job.jobId);

    // Wait until the victim is running, then kill its process.
    for (let i = 0; i < 100; i++) {
      const units = await runtime.jobs.getUnits(job.jobId);
      if (units.find((u) => u.unitId === victim)?.status === 'RUNNING') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const pid = runtime.launcher.pid(job.jobId, victim)!;
    expect(pid).toBeGreaterThan(0);
    expect(runtime.launcher.kill(job.jobId, victim)).toBe(true);

    const view = await watching;
    expect(() => process.kill(pid, 0)).toThrow(); // the process is gone
    expect(supervisor.failures.map((f) => f.unitId)).toEqual([victim]);
    expect(supervisor.failures[0]!.reason).toContain('SIGKILL');
    expect(view.job.status).toBe('FAILED');
    expect(view.job.error).toContain(victim);
    expect(view.totals.recordsIn).toBeLessThan(2_000_000);
    expect(await queuesOf(job.jobId)).toEqual([]);
  });
});
