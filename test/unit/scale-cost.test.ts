/** The arithmetic of bench:scale's cost model (bench/lib/scale-cost.ts): prices, Flink, units, messages. */
import { describe, expect, it } from 'vitest';
import { ZERO, allToAllMessagesPerSecond, dollarsPerHour, flinkCost, joinUnitRoles, joinUnits, modelRow, type Coefficients } from '../../bench/lib/scale-cost';

describe('scale cost model', () => {
  it('prices billed units at the stated list prices', () => {
    // 1 SQS request/s = 3600/h at $0.50/M; 1 WRU/s at $1.25/M; 1 S3 PUT/s at $0.005/1000.
    expect(dollarsPerHour({ ...ZERO, sqs: 1 })).toBeCloseTo(0.0018, 6);
    expect(dollarsPerHour({ ...ZERO, ddbWrite: 1 })).toBeCloseTo(0.0045, 6);
    expect(dollarsPerHour({ ...ZERO, ddbRead: 1 })).toBeCloseTo(0.0009, 6);
    expect(dollarsPerHour({ ...ZERO, s3Write: 1 })).toBeCloseTo(0.018, 6);
  });

  it('counts Managed Flink KPUs with the orchestration KPU', () => {
    expect(flinkCost(4)).toEqual({ kpus: 5, perHour: 5 * 0.11 });
    expect(flinkCost(4000).kpus).toBe(4001);
    expect(flinkCost(4000, 4).kpus).toBe(1001);
  });

  it('packs the join pipeline by pipeline: its sources, then its joins', () => {
    expect(joinUnits(4000, 100)).toBe(120);
    expect(joinUnitRoles(4000, 100)).toEqual({ producers: 80, consumers: 40 });
    expect(joinUnits(16, 100)).toBe(1);
    expect(joinUnits(16, 12)).toBe(4);
    expect(joinUnits(4000, 1)).toBe(12_000);
  });

  it('sends one message per reached unit pair per linger, no more than the records', () => {
    const o = { lingerMs: 200, bytesPerRecord: 100, maxMessageBytes: 256 * 1024 };
    // Few records: about one message per record.
    expect(allToAllMessagesPerSecond(100, 100, 10, o)).toBeCloseTo(10, 0);
    // Many records: every pair every linger.
    expect(allToAllMessagesPerSecond(4, 4, 100_000, o)).toBeCloseTo(4 * 4 * 5 * Math.ceil((100_000 * 0.2 / 16) * 100 / (256 * 1024)), 0);
    // Producers and consumers apart: pairs are producers x consumers.
    expect(allToAllMessagesPerSecond(8, 2, 100_000, o)).toBeCloseTo(8 * 2 * 5, 0);
    expect(allToAllMessagesPerSecond(4, 4, 0, o)).toBe(0);
  });

  it('adds idle, control plane, messages and checkpoints', () => {
    const c: Coefficients = {
      idlePerUnit: { ...ZERO, sqs: 0.1 },
      loadPerUnit: { ...ZERO, ddbWrite: 0.3 },
      controlPlanePerS: { ...ZERO, ddbRead: 0.05 },
      sqsPerMessage: 3,
      bytesPerRecord: 100,
      checkpointPerSubtask: { ...ZERO, s3Write: 1, ddbWrite: 1 },
      checkpointPerUnit: { ...ZERO, sqs: 10 },
      cpuSecondsPerRecord: 1e-5,
      lingerMs: 200,
      maxMessageBytes: 256 * 1024,
    };
    const idle = modelRow(c, { parallelism: 16, recordsPerSecond: 0, subtasksPerUnit: 12, checkpointIntervalS: 60, unitVcpu: 1, unitGb: 2, parallelismPerKpu: 1 });
    expect(idle.units).toBe(4);
    expect(idle.billedPerSecond.sqs).toBeCloseTo(4 * 0.1 + (4 * 10) / 60, 6);
    expect(idle.billedPerSecond.s3Write).toBeCloseTo(48 / 60, 6);
    expect(idle.computeVcpu).toBe(4);
    const busy = modelRow(c, { parallelism: 16, recordsPerSecond: 1_000_000, subtasksPerUnit: 12, checkpointIntervalS: 60, unitVcpu: 1, unitGb: 2, parallelismPerKpu: 1 });
    expect(busy.computeVcpu).toBeCloseTo(10, 6);
    expect(busy.billedPerSecond.ddbWrite).toBeCloseTo(4 * 0.3 + 48 / 60, 6);
  });
});
