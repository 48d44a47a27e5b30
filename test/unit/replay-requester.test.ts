/**
 * A restarted consumer's replay requests (lib/runtime/replay-requester.ts): after `retryMs` it asks
 * again only for the channels whose replay has not progressed; a replay that is arriving, however
 * slowly, is left to finish (asking again would make its producer send it all over).
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionEdge } from '../../lib/graph/execution-graph';
import { MemoryBlobStore, MemoryChannelTransport } from '../../lib/memory';
import { InputGate } from '../../lib/runtime/input-gate';
import type { ReplayRequest } from '../../lib/runtime/messages';
import { replayBodies } from '../../lib/runtime/replay';
import { ReplayProgress, ReplayRequester } from '../../lib/runtime/replay-requester';

// One all-to-all edge from two producers: two channels into consumer 0.
const edge: ExecutionEdge = { id: 'e0', kind: 'hash', from: 'a', to: 'b', toOperator: 'b', input: 0, pointwise: false };

describe('ReplayRequester', () => {
  it('asks again only for channels whose replay has not progressed since the last look', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 2, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    const sent: ReplayRequest[] = [];
    let now = 0;
    const requester = new ReplayRequester({
      jobId: 'j',
      inputs: [edge],
      consumerIndex: 0,
      consumerAttempt: 1,
      producerParallelism: () => 2,
      send: async (request) => void sent.push(request),
      blobs: new MemoryBlobStore(),
      checkAfterMs: 3_600_000, // no finished producers here
      retryMs: 10_000,
      now: () => now,
    });
    await requester.begin(gate);
    await requester.sent();
    gate.start();
    expect(sent.map((r) => [r.request, Object.keys(r.from)])).toEqual([[1, ['0', '1']]]);

    // Producer 0 answers request 1, slowly: two of its messages have come, not its end.
    const excerpt = { lineage: 0, from: 0, messages: [0, 1, 2].map((i) => ({ first: i * 2, count: 2, fields: `"r":[${i * 2},${i * 2 + 1}]` })), barriers: [], end: 6 };
    const bodies = replayBodies(excerpt, { producer: 0, attempt: 0, consumerAttempt: 1, request: 1 });
    await transport.send('in', bodies.slice(0, 2).map((body, s) => ({ groupId: '0.0.r1.1', dedupId: `r-${s}`, body })));
    const taken = async () => {
      const { events } = await gate.next(200);
      await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
      gate.release();
      return events;
    };
    await taken();
    expect(gate.awaitedReplays()).toEqual([
      { key: 'e0/0', consumerAttempt: 1, request: 1, received: 2 },
      { key: 'e0/1', consumerAttempt: 1, request: 1, received: 0 },
    ]);

    // Producer 0's replay is arriving: producer 1's answer may be queued behind it, not asked again yet.
    now = 10_000;
    await requester.tick(gate);
    await requester.sent();
    expect(sent.map((r) => [r.request, Object.keys(r.from)])).toEqual([[1, ['0', '1']]]);
    // No replay progressed for the first retry's interval: producer 1 (silent) is asked again;
    // producer 0's replay goes on as it was.
    now = 14_000;
    await requester.tick(gate);
    await requester.sent();
    expect(sent.map((r) => [r.request, Object.keys(r.from)])).toEqual([[1, ['0', '1']], [2, ['1']]]);
    expect(gate.awaitedReplays().map((w) => [w.key, w.request])).toEqual([['e0/0', 1], ['e0/1', 2]]);

    // Producer 0's replay makes no progress for another retryMs: now it is asked again too.
    now = 24_000;
    await requester.tick(gate);
    await requester.sent();
    expect(sent.map((r) => [r.request, Object.keys(r.from)]).at(-1)).toEqual([3, ['0', '1']]);

    // The rest of request 1 is stale now: dropped, and the channel waits for request 3.
    await transport.send('in', bodies.slice(2).map((body, s) => ({ groupId: '0.0.r1.1', dedupId: `r-${s + 2}`, body })));
    await taken();
    expect(gate.staleReplays).toBeGreaterThan(0);
    expect(gate.awaitedReplays().map((w) => [w.key, w.request])).toEqual([['e0/0', 3], ['e0/1', 3]]);
    await gate.stop();
  });

  it('takes an answer to an earlier request that was on its way when a silent channel was asked again, and then only that one', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 2, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    const sent: number[] = [];
    let now = 0;
    const requester = new ReplayRequester({
      jobId: 'j', inputs: [edge], consumerIndex: 0, consumerAttempt: 1, producerParallelism: () => 2,
      send: async (request) => void sent.push(request.request),
      blobs: new MemoryBlobStore(), checkAfterMs: 3_600_000, retryMs: 10_000, now: () => now,
    });
    await requester.begin(gate);
    await requester.sent();
    gate.start();
    // Nothing came within 4 s: both channels are asked again (request 2), then again (request 3).
    now = 4_000;
    await requester.tick(gate);
    await requester.sent();
    now = 14_000;
    await requester.tick(gate);
    await requester.sent();
    expect(sent).toEqual([1, 2, 3]);
    // The producers answer request 1 only now (they were busy): the answers still count.
    const excerpt = { lineage: 0, from: 0, messages: [{ first: 0, count: 2, fields: '"r":[0,1]' }], barriers: [], end: 2 };
    for (const producer of [0, 1]) {
      const bodies = replayBodies(excerpt, { producer, attempt: 0, consumerAttempt: 1, request: 1 });
      await transport.send('in', bodies.map((body, s) => ({ groupId: `${producer}.0.r1.1`, dedupId: `r1-${producer}-${s}`, body })));
    }
    const records: unknown[] = [];
    for (let i = 0; i < 20 && gate.awaitedReplays().length > 0; i++) {
      const { events } = await gate.next(200);
      for (const e of events) if (e.message.t === 'd') records.push(...e.message.r);
      await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
      gate.release();
    }
    expect(gate.awaitedReplays()).toEqual([]);
    expect(records).toEqual([0, 1, 0, 1]);
    expect(gate.staleReplays).toBe(0);
    // Their answers to request 3 come after: stale (the replay ended), nothing taken twice.
    const again = replayBodies(excerpt, { producer: 0, attempt: 0, consumerAttempt: 1, request: 3 });
    await transport.send('in', again.map((body, s) => ({ groupId: '0.0.r1.3', dedupId: `r3-${s}`, body })));
    const { events } = await gate.next(200);
    expect(events.filter((e) => e.message.t === 'd')).toEqual([]);
    expect(gate.staleReplays).toBeGreaterThan(0);
    await gate.stop();
  });

  it('asks again soon the first time (a request a dead producer\'s poll took is hidden 10 s), then after retryMs, backing off to maxRetryMs', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 2, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    const sent: number[] = [];
    let now = 0;
    const requester = new ReplayRequester({
      jobId: 'j', inputs: [edge], consumerIndex: 0, consumerAttempt: 1, producerParallelism: () => 2,
      send: async (request) => void sent.push(request.request),
      blobs: new MemoryBlobStore(), checkAfterMs: 3_600_000, retryMs: 10_000, now: () => now,
    });
    await requester.begin(gate);
    await requester.sent();
    // 4 s, then 10 s, 20 s, 40 s and 40 s again (the default maxRetryMs).
    const schedule = [
      [3_999, [1]], [4_000, [1, 2]], [13_999, [1, 2]], [14_000, [1, 2, 3]], [33_999, [1, 2, 3]], [34_000, [1, 2, 3, 4]],
      [73_999, [1, 2, 3, 4]], [74_000, [1, 2, 3, 4, 5]], [113_999, [1, 2, 3, 4, 5]], [114_000, [1, 2, 3, 4, 5, 6]],
    ] as const;
    for (const [at, requests] of schedule) {
      now = at;
      await requester.tick(gate);
      await requester.sent();
      expect(sent, `at ${at} ms`).toEqual(requests);
    }
    await gate.stop();
  });

  it('gives up only once no replay has progressed for giveUpMs, not at a deadline from the first request', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const producers = 3;
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => producers, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    let now = 0;
    const requester = new ReplayRequester({
      jobId: 'j', inputs: [edge], consumerIndex: 0, consumerAttempt: 1, producerParallelism: () => producers,
      send: async () => undefined,
      blobs: new MemoryBlobStore(), checkAfterMs: 3_600_000, retryMs: 10_000, giveUpMs: 120_000, now: () => now,
    });
    await requester.begin(gate);
    await requester.sent();
    gate.start();
    const answer = async (producer: number, request: number) => {
      const excerpt = { lineage: 0, from: 0, messages: [{ first: 0, count: 1, fields: '"r":[0]' }], barriers: [], end: 1 };
      const bodies = replayBodies(excerpt, { producer, attempt: 0, consumerAttempt: 1, request });
      await transport.send('in', bodies.map((body, s) => ({ groupId: `${producer}.0.r1.${request}`, dedupId: `r-${producer}-${request}-${s}`, body })));
      for (let i = 0; i < 20 && gate.awaitedReplays().some((w) => w.key === `e0/${producer}`); i++) {
        const { events } = await gate.next(100);
        await gate.acknowledge(new Map([['in', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
        gate.release();
      }
    };
    // Busy producers answer one channel every 100 s: 300 s in all, past a 120 s deadline.
    await requester.tick(gate);
    await requester.sent();
    now = 100_000;
    await answer(0, gate.awaitedReplays().find((w) => w.key === 'e0/0')!.request);
    await requester.tick(gate);
    await requester.sent();
    now = 200_000;
    await answer(1, gate.awaitedReplays().find((w) => w.key === 'e0/1')!.request);
    await requester.tick(gate);
    await requester.sent();
    now = 310_000;
    await requester.tick(gate); // 110 s without progress: still waiting
    await requester.sent();
    expect(gate.awaitedReplays().map((w) => w.key)).toEqual(['e0/2']);
    // Nothing for 120 s: producer 2's unit is taken to be gone.
    now = 320_000;
    await expect(requester.tick(gate)).rejects.toThrow(/no replay from the producers of e0\/2, and no replay progressed for 120 s .*320 s since the first/);
    await gate.stop();
  });
  it('does not give up while a unit-mate\'s replay progresses (the unit\'s producers answer its subtasks in turn)', async () => {
    // Two joins of one restarted unit: the producers answer join 0's channels, one every 100 s, and
    // nothing of join 1's yet. Join 1 waits while its unit's replays progress, and gives up only
    // after 120 s of nothing in the whole unit.
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in0', 'in1']);
    const producers = 3;
    let now = 0;
    const unitProgress = new ReplayProgress();
    const join = (consumer: number) => {
      const gate = new InputGate({ inputs: [edge], consumerIndex: consumer, producerParallelism: () => producers, queueOf: () => `in${consumer}`, transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
      const requester = new ReplayRequester({
        jobId: 'j', inputs: [edge], consumerIndex: consumer, consumerAttempt: 1, producerParallelism: () => producers,
        send: async () => undefined, unitProgress,
        blobs: new MemoryBlobStore(), checkAfterMs: 3_600_000, retryMs: 10_000, giveUpMs: 120_000, now: () => now,
      });
      return { gate, requester };
    };
    const [a, b] = [join(0), join(1)];
    for (const j of [a, b]) {
      await j.requester.begin(j.gate);
      await j.requester.sent();
      j.gate.start();
    }
    const answer = async (producer: number) => {
      const request = a.gate.awaitedReplays().find((w) => w.key === `e0/${producer}`)!.request;
      const excerpt = { lineage: 0, from: 0, messages: [{ first: 0, count: 1, fields: '"r":[0]' }], barriers: [], end: 1 };
      const bodies = replayBodies(excerpt, { producer, attempt: 0, consumerAttempt: 1, request });
      await transport.send('in0', bodies.map((body, s) => ({ groupId: `${producer}.0.r1.${request}`, dedupId: `r-${producer}-${request}-${s}`, body })));
      for (let i = 0; i < 20 && a.gate.awaitedReplays().some((w) => w.key === `e0/${producer}`); i++) {
        const { events } = await a.gate.next(100);
        await a.gate.acknowledge(new Map([['in0', events.flatMap((e) => (e.receipt ? [e.receipt] : []))]]));
        a.gate.release();
      }
    };
    for (const t of [100_000, 200_000, 300_000]) {
      now = t;
      await answer(t / 100_000 - 1);
      await a.requester.tick(a.gate);
      await a.requester.sent();
      await b.requester.tick(b.gate); // 300 s without an answer of its own: still waiting
      await b.requester.sent();
    }
    expect(a.gate.awaitedReplays()).toEqual([]);
    expect(b.gate.awaitedReplays()).toHaveLength(3);
    now = 410_000;
    await b.requester.tick(b.gate);
    await b.requester.sent();
    now = 420_000;
    await expect(b.requester.tick(b.gate)).rejects.toThrow(/no replay from the producers of e0\/0, e0\/1, e0\/2, and no replay of its unit progressed for 120 s/);
    for (const j of [a, b]) await j.gate.stop();
  });
  it('neither asks again nor gives up while its unit holds its input back (its poller waits for its deletes)', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 2, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    const sent: ReplayRequest[] = [];
    let now = 0;
    let held = true;
    const requester = new ReplayRequester({
      jobId: 'j', inputs: [edge], consumerIndex: 0, consumerAttempt: 1, producerParallelism: () => 2,
      send: async (request) => void sent.push(request), unitProgress: new ReplayProgress(() => held),
      blobs: new MemoryBlobStore(), checkAfterMs: 3_600_000, firstRetryMs: 4_000, retryMs: 10_000, giveUpMs: 120_000, now: () => now,
    });
    await requester.begin(gate);
    await requester.sent();
    gate.start();
    // Five minutes of silence while held: the answers may be in its queue; nothing asked, no error.
    for (now = 1_000; now <= 300_000; now += 1_000) {
      await requester.tick(gate);
      await requester.sent();
    }
    expect(sent.map((r) => r.request)).toEqual([1]);
    // Held no more: the retries and the deadline count from the last moment it was held.
    held = false;
    now = 304_000;
    await requester.tick(gate);
    await requester.sent();
    expect(sent.map((r) => r.request)).toEqual([1, 2]);
    now = 419_000;
    await requester.tick(gate);
    await requester.sent();
    now = 420_500;
    await expect(requester.tick(gate)).rejects.toThrow(/no replay of its unit progressed for 120 s/);
    await gate.stop();
  });

  it('names the first ten channels it waited for and how many more, not all of them', async () => {
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const producers = 12;
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => producers, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    let now = 0;
    const requester = new ReplayRequester({
      jobId: 'j', inputs: [edge], consumerIndex: 0, consumerAttempt: 1, producerParallelism: () => producers,
      send: async () => undefined,
      blobs: new MemoryBlobStore(), checkAfterMs: 3_600_000, giveUpMs: 120_000, now: () => now,
    });
    await requester.begin(gate);
    await requester.sent();
    await requester.tick(gate);
    await requester.sent();
    now = 120_000;
    await expect(requester.tick(gate)).rejects.toThrow(/producers of e0\/0, e0\/1, e0\/2, e0\/3, e0\/4, e0\/5, e0\/6, e0\/7, e0\/8, e0\/9 and 2 more, and no replay progressed/);
    await gate.stop();
  });

  it('looks at the waiting channels at most once a second between its decisions, and not at all once every replay came', async () => {
    // tick runs between any two batches of input; a look lists every waiting channel (8,000 for a
    // join at P=4000), so looking at every batch cost a restarted join unit much of its CPU.
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 2, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    let looks = 0;
    const awaited = gate.awaitedReplays.bind(gate);
    gate.awaitedReplays = () => (looks++, awaited());
    let now = 0;
    const sent: number[] = [];
    const requester = new ReplayRequester({
      jobId: 'j', inputs: [edge], consumerIndex: 0, consumerAttempt: 1, producerParallelism: () => 2,
      send: async (request) => void sent.push(request.request),
      blobs: new MemoryBlobStore(), checkAfterMs: 3_600_000, firstRetryMs: 4_000, now: () => now,
    });
    await requester.begin(gate);
    await requester.sent();
    gate.start();
    for (; now < 3_000; now += 10) await requester.tick(gate);
    expect(looks).toBe(3); // at 0, 1000 and 2000 ms, not 300 times
    now = 4_000; // the retry is due: looked at on time
    await requester.tick(gate);
    await requester.sent();
    expect([looks, sent]).toEqual([4, [1, 2]]);
    // Both producers answer request 2: nothing waits any more.
    for (const producer of [0, 1]) {
      const bodies = replayBodies({ lineage: 0, from: 0, messages: [], barriers: [], end: 0 }, { producer, attempt: 0, consumerAttempt: 1, request: 2 });
      await transport.send('in', bodies.map((body, s) => ({ groupId: `${producer}.0.r1.2`, dedupId: `r-${producer}-${s}`, body })));
    }
    for (let i = 0; i < 20 && awaited().length > 0; i++) {
      await gate.next(100);
      gate.release();
    }
    expect(awaited()).toEqual([]);
    now = 5_000;
    await requester.tick(gate); // sees that none waits
    await requester.sent();
    const after = looks;
    for (now = 5_000; now < 300_000; now += 1_000) await requester.tick(gate);
    expect([looks - after, sent]).toEqual([0, [1, 2]]);
    await gate.stop();
  });

  it('does not hold the subtask while its requests go out: answers are taken meanwhile, and no retry is sent on top', async () => {
    // A unit's channels share envelopes and FIFO groups: a subtask that takes no input while its
    // requests go out (minutes, for a restarted join unit at P=4000) holds back its unit-mates' answers.
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 2, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    let now = 0;
    const sent: number[] = [];
    let release: () => void = () => undefined;
    const requester = new ReplayRequester({
      jobId: 'j', inputs: [edge], consumerIndex: 0, consumerAttempt: 1, producerParallelism: () => 2,
      send: (request) => (sent.push(request.request), new Promise<void>((resolve) => (release = resolve))),
      blobs: new MemoryBlobStore(), checkAfterMs: 3_600_000, firstRetryMs: 4_000, now: () => now,
    });
    await requester.begin(gate); // resolves although the send has not
    gate.start();
    const bodies = replayBodies({ lineage: 0, from: 0, messages: [{ first: 0, count: 1, fields: '"r":[7]' }], barriers: [], end: 1 }, { producer: 0, attempt: 0, consumerAttempt: 1, request: 1 });
    await transport.send('in', bodies.map((body, s) => ({ groupId: '0.0.r1.1', dedupId: `r-${s}`, body })));
    const { events } = await gate.next(500);
    gate.release();
    expect(events.filter((e) => e.message.t === 'd').map((e) => e.message.t === 'd' && e.message.r)).toEqual([[7]]);
    // Still sending at 60 s: nothing is asked again on top of it.
    now = 60_000;
    await requester.tick(gate);
    expect(sent).toEqual([1]);
    // Once out, producer 1's channel (silent) is asked again after the interval, counted from then.
    release();
    await requester.sent();
    now = 63_999;
    await requester.tick(gate);
    expect(sent).toEqual([1]);
    now = 64_000;
    await requester.tick(gate);
    expect(sent).toEqual([1, 2]);
    release();
    await requester.sent();
    await gate.stop();
  });

  it('answers an empty channel with one message, its watermark on the end; a channel with records gets the watermark after them', async () => {
    const address = { producer: 0, attempt: 0, consumerAttempt: 1, request: 1 };
    const empty = replayBodies({ lineage: 0, from: 5, messages: [], barriers: [], end: 5 }, address, { nextSequence: 3, watermark: 700 });
    expect(empty.map((b) => JSON.parse(b).t)).toEqual(['x']);
    expect(JSON.parse(empty[0]!)).toMatchObject({ t: 'x', n: 5, ls: 3, w: 700 });
    const full = replayBodies({ lineage: 0, from: 5, messages: [{ first: 5, count: 1, fields: '"r":[7]' }], barriers: [], end: 6 }, address, { nextSequence: 3, watermark: 700 });
    expect(full.map((b) => JSON.parse(b).t)).toEqual(['d', 'w', 'x']);
    // The consumer takes the watermark of the one message, then the channel goes on live.
    const transport = new MemoryChannelTransport();
    await transport.createQueues(['in']);
    const gate = new InputGate({ inputs: [edge], consumerIndex: 0, producerParallelism: () => 1, queueOf: () => 'in', transport, waitSeconds: 0.05, onError: (e) => { throw e; } });
    gate.restorePositions([{ key: 'e0/0', positions: [[0, 5]], counters: { duplicateRecords: 0, missingRecords: 0, replayedRecords: 0 } }]);
    gate.awaitReplay('e0/0', 1, 1);
    gate.start();
    await transport.send('in', [{ groupId: '0.0.r1.1', dedupId: 'r-0', body: empty[0]! }]);
    const events: string[] = [];
    for (let i = 0; i < 10 && events.length === 0; i++) {
      const batch = await gate.next(100);
      events.push(...batch.events.map((e) => (e.message.t === 'w' ? `w${e.message.w}` : e.message.t)));
      gate.release();
    }
    expect(events).toEqual(['w700']);
    expect(gate.awaitedReplays()).toEqual([]);
    await gate.stop();
  });
});
