/**
 * Queue creation at scale (issue 12): CreateQueue / DeleteQueue calls are paced and a throttled
 * call is retried while the pace halves. SQS throttling cannot be provoked on the emulator, so the
 * adapter runs here over a stand-in SQS client that answers like SQS does when it throttles.
 */
import { describe, expect, it } from 'vitest';
import { CreateQueueCommand } from '@aws-sdk/client-sqs';
import { loadConfig } from '../../lib/config';
import { Pacer, QUEUE_ATTRIBUTES, SqsChannelTransport, isThrottled } from '../../lib/aws/sqs-channels';
import type { AwsClients } from '../../lib/aws/clients';

/** A stand-in SQS whose CreateQueue calls number `throttled(n)` are throttled. */
function throttlingSqs(throttled: (call: number) => boolean) {
  const created: { name: string; attributes: Record<string, string>; at: number }[] = [];
  let calls = 0;
  const sqs = {
    send: async (command: unknown) => {
      calls++;
      if (command instanceof CreateQueueCommand) {
        if (throttled(calls)) throw Object.assign(new Error('Rate exceeded'), { name: 'RequestThrottled', $fault: 'client' });
        created.push({ name: command.input.QueueName!, attributes: command.input.Attributes as Record<string, string>, at: Date.now() });
        return { QueueUrl: `https://sqs.test/123/${command.input.QueueName}` };
      }
      throw new Error(`unexpected ${String(command)}`);
    },
  };
  const clients = { config: loadConfig({}), sqs } as unknown as AwsClients;
  return { clients, created, calls: () => calls };
}

describe('SQS queue creation at scale', () => {
  it('retries throttled CreateQueue calls, slows down, and creates every queue in high-throughput mode', async () => {
    const { clients, created, calls } = throttlingSqs((n) => n === 5 || n === 6 || n === 30);
    const transport = new SqsChannelTransport(clients, { queueOpsPerSecond: 1000, concurrency: 4 });
    const names = Array.from({ length: 60 }, (_, i) => `q-${i}`);
    await transport.createQueues(names);
    expect(created.map((c) => c.name).sort()).toEqual(names.map((n) => `${n}.fifo`).sort());
    expect(created.every((c) => c.attributes.DeduplicationScope === 'messageGroup' && c.attributes.FifoThroughputLimit === 'perMessageGroupId')).toBe(true);
    expect(QUEUE_ATTRIBUTES.FifoQueue).toBe('true');
    expect(calls()).toBe(63);
    expect(transport.throttledQueueOps).toBe(3);
  });

  it('gives up on a call still throttled after its attempts, naming the queue', async () => {
    const { clients } = throttlingSqs(() => true);
    const transport = new SqsChannelTransport(clients, { queueOpsPerSecond: 1000, queueOpAttempts: 3 });
    await expect(transport.createQueues(['stuck'])).rejects.toThrow(/CreateQueue on queue 'stuck'/);
    expect(transport.throttledQueueOps).toBe(2);
  });

  it('spaces calls at the pace and halves it after a throttle', async () => {
    const pacer = new Pacer(50);
    const t0 = Date.now();
    for (let i = 0; i < 6; i++) await pacer.take();
    // Five gaps of 20 ms at least (timers never fire early).
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5 * 20 - 2);
    pacer.slowDown();
    expect(pacer.callsPerSecond).toBe(25);
    expect(isThrottled(Object.assign(new Error('x'), { name: 'ThrottlingException' }))).toBe(true);
    expect(isThrottled(Object.assign(new Error('x'), { name: 'QueueDoesNotExist' }))).toBe(false);
    expect(() => new Pacer(0)).toThrow(/above 0/);
  });
});
