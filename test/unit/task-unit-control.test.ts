/**
 * A task unit's control loop outlives a message whose handling fails: a replay answer that cannot
 * be sent is logged and counted (its consumer asks again), a message that is not JSON is dropped
 * with an error, and the loop goes on answering. An exception there used to end the loop without a
 * word, leaving the unit deaf to triggers, replay requests and cancels (docs/scale.md, "A restarted
 * join unit's replays").
 */
import { describe, expect, it } from 'vitest';
import type { Json, SourceFunction } from '../../lib/api/functions';
import { JobBuilder } from '../../lib/api/job';
import { buildExecutionGraph, subPartitionQueue } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport } from '../../lib/memory';
import type { OutboundMessage } from '../../lib/ports/channels';
import type { Logger } from '../../lib/ports/telemetry';
import type { UnitRecordStore } from '../../lib/ports/unit-records';
import type { ReplayRequest } from '../../lib/runtime/messages';
import { TaskUnit } from '../../lib/runtime/task-unit';

const CONTROL = 'ctl-0';

describe("a task unit's control loop", () => {
  it('goes on after a replay answer it could not send and a message that is not JSON, and answers the next request', async () => {
    // A source that stays open with nothing to read, then a sink in a task of its own.
    const source = (): SourceFunction<Json> => ({
      open: async () => undefined,
      poll: async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return { records: [], done: false };
      },
      snapshotOffsets: () => null,
      restoreOffsets: () => undefined,
    });
    const builder = new JobBuilder('ctl', { parallelism: 1 });
    builder
      .source('src', source)
      .rebalance()
      .sink('out', () => ({ open: async () => undefined, write: () => undefined, prepare: async () => null, commit: async () => undefined, abort: async () => undefined }));
    const graph = buildExecutionGraph(builder.build());
    const edge = graph.edges[0]!;
    const consumerQueue = subPartitionQueue('t', 'job-ctl', edge.id, 0);
    let failSends = true;
    class Failing extends MemoryChannelTransport {
      override async send(queue: string, messages: readonly OutboundMessage[]) {
        if (queue === consumerQueue && failSends) throw new Error('send timed out');
        return super.send(queue, messages);
      }
    }
    const channels = new Failing();
    await channels.createQueues([CONTROL, consumerQueue]);
    const lines: string[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (m) => void lines.push(`WARN ${m}`),
      error: (m) => void lines.push(`ERROR ${m}`),
      child: () => logger,
    };
    const jobs: UnitRecordStore = { startInvocation: async () => true, reportUnit: async () => true, recordHandover: async () => true, beat: async () => true };
    const unit = new TaskUnit({ jobId: 'job-ctl', unitId: 'src-0', attempt: 0, graph, subtasks: [`${graph.tasks[0]!.id}#0`], controlQueue: CONTROL, queuePrefix: 't', channels, blobs: new MemoryBlobStore(), jobs, heartbeatMs: 3_600_000, logger });
    const run = unit.run();
    const ask = (request: number): Promise<void> => {
      const r: ReplayRequest = { edgeId: edge.id, consumer: 0, consumerAttempt: 1, request, from: { 0: [] } };
      return channels.send(CONTROL, [{ groupId: `replay-${request}`, dedupId: `r${request}`, body: JSON.stringify({ type: 'replay', requests: [r] }) }]);
    };
    const until = async (what: () => boolean) => {
      for (let i = 0; i < 400 && !what(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(what()).toBe(true);
    };
    await ask(1);
    await until(() => unit.replayAnswersFailed === 1);
    expect(lines.some((l) => /^WARN could not answer the replay of edge .* to consumer 0 \(attempt 1, request 1\): send timed out; the consumer asks again$/.test(l))).toBe(true);
    await channels.send(CONTROL, [{ groupId: 'junk', dedupId: 'junk', body: 'not json' }]);
    await until(() => lines.some((l) => l.startsWith(`ERROR control queue ${CONTROL}: dropped a message that is not JSON: not json`)));
    // The loop still answers: the consumer's next request gets its replay's end.
    failSends = false;
    await ask(2);
    const answers: string[] = [];
    await until(() => {
      void channels.receive(consumerQueue, { max: 10, waitSeconds: 0 }).then((ms) => answers.push(...ms.map((m) => m.body)));
      return answers.some((b) => b.includes('"rq":2') && b.includes('"t":"x"'));
    });
    unit.cancel();
    expect(await run).toBe('CANCELLED');
  });
});
