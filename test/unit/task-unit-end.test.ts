/**
 * How a task unit tells the control plane about its end: a subtask whose status changes (a sink
 * at end of input, waiting for its final commit) is reported before the next heartbeat is due, and the unit's final status does not wait for its
 * control loop's long poll to run out (the supervisor learns it at once; what the loop still
 * receives concerns subtasks that have ended).
 */
import { describe, expect, it } from 'vitest';
import type { Json, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport } from '../../lib/memory';
import type { ReceiveOptions } from '../../lib/ports/channels';
import type { UnitRecord, UnitRecordStore } from '../../lib/ports/unit-records';
import { TaskUnit } from '../../lib/runtime/task-unit';

const CONTROL = 'ctl-0';

/** The memory transport, counting control-queue receives still waiting. */
class WatchedTransport extends MemoryChannelTransport {
  controlPolls = 0;
  override async receive(queue: string, options: ReceiveOptions) {
    if (queue !== CONTROL) return super.receive(queue, options);
    this.controlPolls++;
    try {
      return await super.receive(queue, options);
    } finally {
      this.controlPolls--;
    }
  }
}

describe('a task unit at its end', () => {
  it('reports a sink that reached end of input before its next heartbeat, and its final status while the control loop still polls', async () => {
    let release: (() => void) | undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // A source that finishes once the test lets it, chained into a sink (which then waits for its final commit).
    const source = (): SourceFunction<Json> => ({
      open: async () => undefined,
      poll: async () => {
        await gate;
        return { records: [1, 2, 3], done: true };
      },
      snapshotOffsets: () => null,
      restoreOffsets: () => undefined,
    });
    const builder = new JobBuilder('end', { parallelism: 1 });
    builder.source('src', source).sink('out', () => ({ open: async () => undefined, write: () => undefined, prepare: async () => null, commit: async () => undefined, abort: async () => undefined }));
    const graph = buildExecutionGraph(builder.build());
    const channels = new WatchedTransport();
    await channels.createQueues([CONTROL]);
    const reports: { changes: Partial<UnitRecord>; controlPolls: number }[] = [];
    const jobs: UnitRecordStore = {
      startInvocation: async () => true,
      reportUnit: async (_j, _u, _a, changes) => {
        reports.push({ changes, controlPolls: channels.controlPolls });
        return true;
      },
      recordHandover: async () => true,
      beat: async () => true,
    };
    const subtask = `${graph.tasks[0]!.id}#0`;
    const statusIn = (r: { changes: Partial<UnitRecord> }) => (r.changes.stats?.[subtask] as { status?: string } | undefined)?.status;
    const unit = new TaskUnit({
      jobId: 'job-end',
      unitId: 'src-0',
      attempt: 0,
      graph,
      subtasks: [subtask],
      controlQueue: CONTROL,
      queuePrefix: 't',
      channels,
      blobs: new MemoryBlobStore(),
      jobs,
      // A heartbeat no test waits for: what is reported before the end comes from the status change.
      heartbeatMs: 3_600_000,
    });
    const run = unit.run();
    while (channels.controlPolls === 0) await new Promise((resolve) => setImmediate(resolve));
    release!();
    while (!reports.some((r) => statusIn(r) === 'ended')) await new Promise((resolve) => setTimeout(resolve, 5));
    await channels.send(CONTROL, [{ groupId: 'control', dedupId: 'final', body: JSON.stringify({ type: 'commitFinal', subtasks: [subtask] }) }]);
    expect(await run).toBe('FINISHED');
    const final = reports.find((r) => r.changes.status === 'FINISHED');
    expect(final && statusIn(final)).toBe('finished');
    // The final status went out while the control loop's long poll (1 s) was still open.
    expect(final!.controlPolls).toBe(1);
  });

  it('backs off when its control queue fails to answer (deleted with the job) instead of polling again at once', async () => {
    const source = (): SourceFunction<Json> => ({
      open: async () => undefined,
      poll: async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return { records: [], done: false };
      },
      snapshotOffsets: () => null,
      restoreOffsets: () => undefined,
    });
    const builder = new JobBuilder('gone', { parallelism: 1 });
    builder.source('src', source).sink('out', () => ({ open: async () => undefined, write: () => undefined, prepare: async () => null, commit: async () => undefined, abort: async () => undefined }));
    const graph = buildExecutionGraph(builder.build());
    let receives = 0;
    class Counting extends MemoryChannelTransport {
      override async receive(queue: string, options: ReceiveOptions) {
        if (queue === CONTROL) receives++;
        return super.receive(queue, options);
      }
    }
    const channels = new Counting();
    // No control queue: every receive fails at once, as after the job's queues were deleted.
    const jobs: UnitRecordStore = { startInvocation: async () => true, reportUnit: async () => true, recordHandover: async () => true, beat: async () => true };
    const unit = new TaskUnit({ jobId: 'job-gone', unitId: 'src-0', attempt: 0, graph, subtasks: [`${graph.tasks[0]!.id}#0`], controlQueue: CONTROL, queuePrefix: 't', channels, blobs: new MemoryBlobStore(), jobs, heartbeatMs: 3_600_000 });
    const run = unit.run();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // 1 s, then 2 s between failed receives: two or three calls, not a tight loop (thousands).
    expect(receives).toBeGreaterThanOrEqual(1);
    expect(receives).toBeLessThanOrEqual(3);
    unit.cancel();
    expect(await run).toBe('CANCELLED');
  });
});
