/**
 * One replay request answered by two attempts of the same producer (single-exact, chaos seed
 * 45375's kill pattern: a source killed while it answers its restarted consumers' replays).
 *
 * A producer unit deletes a control message only after handling it, and the replay it answers
 * goes out with the writer's next flush. Killed after part of the answer went out and before the
 * delete, the request comes again from the control queue, and the producer's new attempt answers
 * it too, under the same consumer attempt and request number, in a message group of its own. The
 * gate took both groups as one sequence: the dead attempt's messages 0..k, then the new attempt's
 * from k+1 on. The two attempts cut their records into messages differently (a restored source
 * re-reads at its own pace), so the new attempt's message k+1 started past what the dead one's
 * first k+1 messages held: the records between were counted missing, and lost (nothing sends them
 * again, and no `g` said they were unreplayable).
 */
import { describe, expect, it } from 'vitest';
import { RecordWriter } from '../../lib/runtime/record-writer';
import { InputGate, channelKey } from '../../lib/runtime/input-gate';
import { MemoryChannelTransport } from '../../lib/memory';
import { forwardingTransport, type ChannelTransport, type OutboundMessage } from '../../lib/ports/channels';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';

const edge: ExecutionEdge = { id: 'e0', kind: 'forward', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: true };
const key = channelKey('e0', 0);

/** A transport that a kill cuts: after `left` messages, nothing more goes out. */
function dying(transport: MemoryChannelTransport, left: { n: number }): ChannelTransport {
  return forwardingTransport(transport, {
    send: async (q, messages: readonly OutboundMessage[]) => {
      const sent = messages.slice(0, Math.max(0, left.n));
      left.n -= sent.length;
      await transport.send(q, sent);
    },
  });
}

async function take(gate: InputGate, polls = 10): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < polls; i++) {
    const { events, discarded } = await gate.next(20);
    for (const e of events) if (e.message.t === 'd') out.push(...(e.message.r as string[]));
    await gate.acknowledge(discarded);
    await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
    gate.release();
  }
  return out;
}

const records = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `r${from + i}`);

describe('a replay request answered by a dead producer attempt in part and by its new attempt in full', () => {
  it('gives the consumer every record once: the answers are not spliced by sequence number', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const source = (attempt: number, via: ChannelTransport) =>
      new RecordWriter({ edge, producerIndex: 0, consumerParallelism: 1, attempt, lineage: 0, queueOf: () => 'in', transport: via, inflightLog: true });

    // The source's first attempt sent r0..r14, one record a message; the consumer's dead attempt
    // took them all, and its new attempt restored from scratch (no checkpoint completed).
    const alive = { n: Infinity };
    const old = source(0, dying(transport, alive));
    for (let i = 0; i < 15; i++) {
      old.emit(`r${i}`);
      await old.flush();
    }
    for (let got = await transport.receive('in', { max: 10, waitSeconds: 0 }); got.length > 0; got = await transport.receive('in', { max: 10, waitSeconds: 0 })) {
      await transport.delete('in', got.map((m) => m.receipt));
    }
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, waitSeconds: 0.02, onError: (e) => { throw e; } });
    gate.awaitReplay(key, 1, 1);
    gate.start();

    // The old attempt answers request 1, and dies after 4 of its messages went out.
    await old.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1, request: 1, from: {} });
    alive.n = 4;
    await old.flush();
    expect(await take(gate, 3)).toEqual(records(0, 4));

    // Its new attempt (restored from scratch: the same checkpoint as the consumer) re-reads three
    // records a message, and answers request 1, which the dead attempt never deleted.
    const restarted = source(1, transport);
    restarted.restorePositions({ edgeId: 'e0', lineage: 0, position: [0], roundRobin: 0 });
    for (let i = 0; i < 15; i += 3) {
      for (let j = i; j < i + 3; j++) restarted.emit(`r${j}`);
      await restarted.flush();
    }
    await restarted.replay({ edgeId: 'e0', consumer: 0, consumerAttempt: 1, request: 1, from: {} });
    await restarted.flush();
    for (let i = 15; i < 18; i++) restarted.emit(`r${i}`);
    await restarted.flush();

    const got = [...records(0, 4), ...(await take(gate))];
    expect(got).toEqual(records(0, 18));
    expect(gate.counters()).toMatchObject({ missingRecords: 0, unreplayedRecords: 0 });
    expect(gate.awaitedReplays()).toEqual([]);
    await gate.stop();
  });
});
