/**
 * The task unit's Lambda handler: it asks the unit to hand over a margin before the invocation's
 * time limit, and invokes the function again for the same attempt only when the unit handed over.
 */
import { describe, expect, it } from 'vitest';
import { LAMBDA_HANDOVER_MARGIN_MS, makeHandler, type TaskUnitEvent } from '../../functions/task-unit';
import type { UnitOutcome } from '../../lib/runtime/task-unit';

function harness(outcome: UnitOutcome, invokeFailures = 0) {
  const runs: { event: TaskUnitEvent; handoverAt: number | undefined }[] = [];
  const invokes: { functionName: string; event: TaskUnitEvent }[] = [];
  let failures = invokeFailures;
  const handler = makeHandler({
    retryDelayMs: 1,
    run: async (event, handoverAt) => {
      runs.push({ event, handoverAt });
      return outcome;
    },
    invoke: async (functionName, event) => {
      invokes.push({ functionName, event });
      if (failures-- > 0) throw new Error('Rate exceeded');
    },
  });
  return { handler, runs, invokes };
}

const context = { functionName: 'sluice-TaskUnit', getRemainingTimeInMillis: () => 900_000 };

describe('task unit Lambda handler', () => {
  it('hands over a margin before the time limit and re-invokes itself for the same attempt', async () => {
    const { handler, runs, invokes } = harness('HANDED_OVER');
    const before = Date.now();
    const result = await handler({ jobId: 'j', unitId: 'u-1', attempt: 2 }, context);
    expect(result).toEqual({ status: 'HANDED_OVER' });
    const at = runs[0]!.handoverAt!;
    expect(at).toBeGreaterThanOrEqual(before + 900_000 - LAMBDA_HANDOVER_MARGIN_MS);
    expect(at).toBeLessThanOrEqual(Date.now() + 900_000 - LAMBDA_HANDOVER_MARGIN_MS);
    expect(invokes).toEqual([{ functionName: 'sluice-TaskUnit', event: { jobId: 'j', unitId: 'u-1', attempt: 2, resume: true } }]);
  });

  it('does not re-invoke when the unit finished, failed or was cancelled', async () => {
    for (const outcome of ['FINISHED', 'FAILED', 'CANCELLED'] as const) {
      const { handler, invokes } = harness(outcome);
      expect(await handler({ jobId: 'j', unitId: 'u-1', attempt: 0, resume: true }, context)).toEqual({ status: outcome });
      expect(invokes).toEqual([]);
    }
  });

  it('retries a failed self-invoke, and never fails the invocation (Lambda would rerun the event)', async () => {
    const flaky = harness('HANDED_OVER', 2);
    expect(await flaky.handler({ jobId: 'j', unitId: 'u-1', attempt: 0 }, context)).toEqual({ status: 'HANDED_OVER' });
    expect(flaky.invokes).toHaveLength(3);
    const down = harness('HANDED_OVER', 10);
    expect(await down.handler({ jobId: 'j', unitId: 'u-1', attempt: 0 }, context)).toEqual({ status: 'HANDOVER_LOST' });
    expect(down.invokes).toHaveLength(3);
  });
});
