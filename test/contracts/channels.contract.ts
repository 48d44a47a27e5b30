/**
 * Contract of ChannelTransport (SQS FIFO semantics), run against every implementation.
 * `make` returns a transport; every test uses its own queues.
 */
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, type ChannelTransport, type InboundMessage, type OutboundMessage } from '../../lib/ports/channels';
import { uniqueName } from './names';

const msg = (groupId: string, n: number, body = `${groupId}:${n}`): OutboundMessage => ({ groupId, dedupId: `${groupId}-${n}`, body });

/** Receives (and deletes) until `count` messages arrived or the deadline passed. */
async function drain(t: ChannelTransport, queue: string, count: number, timeoutMs = 15_000): Promise<InboundMessage[]> {
  const out: InboundMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count && Date.now() < deadline) {
    const got = await t.receive(queue, { max: 10, waitSeconds: 1 });
    out.push(...got);
    if (got.length) await t.delete(queue, got.map((m) => m.receipt));
  }
  return out;
}

export function channelTransportContract(label: string, make: () => Promise<ChannelTransport>): void {
  describe(`ChannelTransport contract: ${label}`, () => {
    async function setup(queues = 1) {
      const t = await make();
      const names = Array.from({ length: queues }, () => uniqueName('q'));
      await t.createQueues(names);
      return { t, names, q: names[0]! };
    }

    it('creates queues idempotently, lists them by prefix and deletes them (ignoring missing ones)', async () => {
      const t = await make();
      const prefix = uniqueName('lst');
      const names = [`${prefix}-b`, `${prefix}-a`, `${prefix}-c`];
      await t.createQueues(names);
      await t.createQueues(names.slice(0, 2));
      expect(await t.listQueues(prefix)).toEqual([`${prefix}-a`, `${prefix}-b`, `${prefix}-c`]);
      expect(await t.listQueues(`${prefix}-a`)).toEqual([`${prefix}-a`]);
      await t.deleteQueues([`${prefix}-a`, `${prefix}-never-created`]);
      expect(await t.listQueues(prefix)).toEqual([`${prefix}-b`, `${prefix}-c`]);
      // A name with the suffix names the same queue.
      await t.deleteQueues([`${prefix}-b.fifo`, `${prefix}-c`]);
      expect(await t.listQueues(prefix)).toEqual([]);
    });

    it('tells when each message was sent (SQS SentTimestamp), for input lag', async () => {
      const { t, q } = await setup();
      const before = Date.now();
      await t.send(q, [msg('0', 0), msg('0', 1)]);
      const after = Date.now();
      const got = await drain(t, q, 2);
      expect(got).toHaveLength(2);
      // SQS stamps with its own clock, in whole milliseconds: allow a second of skew either way.
      for (const m of got) expect(m.sentAt).toBeGreaterThanOrEqual(before - 1000);
      for (const m of got) expect(m.sentAt).toBeLessThanOrEqual(after + 1000);
    });

    it('refuses queue names SQS would refuse, with a clear message', async () => {
      const t = await make();
      await expect(t.createQueues(['x'.repeat(76)])).rejects.toThrow(/81 characters with '.fifo'; SQS allows 80/);
      await expect(t.createQueues(['bad name'])).rejects.toThrow(/letters, digits, hyphens and underscores/);
      const longest = uniqueName('l').padEnd(75, 'x');
      await t.createQueues([longest]);
      expect(await t.listQueues(longest)).toEqual([longest]);
    });

    it('keeps order per message group across many batches and reports the group', async () => {
      const { t, q } = await setup();
      const a = Array.from({ length: 23 }, (_, i) => msg('0', i));
      const b = Array.from({ length: 7 }, (_, i) => msg('1', i));
      // Interleaved in one send call: the adapter splits it into several batches.
      await t.send(q, [...a.slice(0, 12), ...b, ...a.slice(12)]);
      const got = await drain(t, q, 30);
      expect(got).toHaveLength(30);
      expect(got.filter((m) => m.groupId === '0').map((m) => m.body)).toEqual(a.map((m) => m.body));
      expect(got.filter((m) => m.groupId === '1').map((m) => m.body)).toEqual(b.map((m) => m.body));
    });

    it('splits by payload size, not only by count, and rejects an oversized message before sending', async () => {
      const { t, q } = await setup();
      const big = Array.from({ length: 12 }, (_, i) => msg('0', i, `${i}:`.padEnd(60 * 1024, 'x')));
      await t.send(q, big);
      const got = await drain(t, q, 12);
      expect(got.map((m) => m.body.split(':')[0])).toEqual(big.map((_, i) => String(i)));
      await expect(t.send(q, [msg('0', 100), msg('0', 101, 'y'.repeat(MAX_MESSAGE_BYTES + 1))])).rejects.toThrow(/bytes; the limit is/);
      // Nothing of the refused call was sent.
      expect(await t.receive(q, { max: 10, waitSeconds: 0 })).toEqual([]);
    });

    it('blocks a message group while one of its messages is in flight, not other groups', async () => {
      const { t, q } = await setup();
      await t.send(q, [msg('A', 1), msg('A', 2), msg('B', 1)]);
      const first = await t.receive(q, { max: 1, waitSeconds: 1 });
      expect(first).toHaveLength(1);
      const blocked = first[0]!.groupId;
      // Only the other group can be served while the first is in flight.
      const second = await t.receive(q, { max: 10, waitSeconds: 0 });
      expect(second.length).toBeGreaterThan(0);
      expect(second.every((m) => m.groupId !== blocked)).toBe(true);
      expect(await t.receive(q, { max: 10, waitSeconds: 0 })).toEqual([]);
      await t.delete(q, [...first, ...second].map((m) => m.receipt));
      const rest = await drain(t, q, 3 - first.length - second.length);
      const all = [...first, ...second, ...rest];
      expect(all.filter((m) => m.groupId === 'A').map((m) => m.body)).toEqual(['A:1', 'A:2']);
      expect(all.filter((m) => m.groupId === 'B').map((m) => m.body)).toEqual(['B:1']);
    });

    it('serves a message group to one receive at a time, also to long polls that wake together', async () => {
      // A consumer whose long poll is still pending at the queue when it dies (killed, or its
      // abort not seen by the server) takes the next message and holds it in flight: the group's
      // later messages must wait behind it, never go to another receive first.
      const { t, names } = await setup(3);
      await Promise.all(
        names.map(async (q) => {
          const polls = Array.from({ length: 6 }, () => t.receive(q, { max: 10, waitSeconds: 2, visibilityTimeoutSeconds: 30 }));
          await new Promise((r) => setTimeout(r, 300));
          // One by one: a poll that wakes for a later message must see the group blocked by the first.
          for (const n of [1, 2, 3, 4, 5]) {
            await t.send(q, [msg('A', n)]);
            await new Promise((r) => setTimeout(r, 30));
          }
          const got = (await Promise.all(polls)).filter((g) => g.length > 0);
          expect(got, q).toHaveLength(1);
          const bodies = got[0]!.map((m) => m.body);
          expect(bodies, q).toEqual(['A:1', 'A:2', 'A:3', 'A:4', 'A:5'].slice(0, bodies.length));
        }),
      );
    });

    it('makes a message visible again after its visibility timeout, still first in its group', async () => {
      const { t, q } = await setup();
      await t.send(q, [msg('0', 1), msg('0', 2)]);
      const first = await t.receive(q, { max: 1, waitSeconds: 1, visibilityTimeoutSeconds: 1 });
      expect(first.map((m) => m.body)).toEqual(['0:1']);
      expect(await t.receive(q, { max: 10, waitSeconds: 0 })).toEqual([]);
      const started = Date.now();
      const again = await t.receive(q, { max: 1, waitSeconds: 5 });
      expect(again.map((m) => m.body)).toEqual(['0:1']);
      expect(Date.now() - started).toBeLessThan(4_500);
      await t.delete(q, again.map((m) => m.receipt));
      expect((await drain(t, q, 1)).map((m) => m.body)).toEqual(['0:2']);
    });

    it('redelivers a whole expired batch in order (a consumer that died holding several messages)', async () => {
      const { t, q } = await setup();
      await t.send(q, [1, 2, 3, 4, 5, 6, 7].map((i) => msg('0', i)));
      const held = await t.receive(q, { max: 4, waitSeconds: 1, visibilityTimeoutSeconds: 1 });
      expect(held.map((m) => m.body)).toEqual(['0:1', '0:2', '0:3', '0:4']);
      await new Promise((r) => setTimeout(r, 1_300));
      const again = await t.receive(q, { max: 10, waitSeconds: 2 });
      expect(again.map((m) => m.body)).toEqual(['0:1', '0:2', '0:3', '0:4', '0:5', '0:6', '0:7']);
    });


    it('keeps messages in flight past their first timeout when their visibility is extended', async () => {
      const { t, q } = await setup();
      await t.send(q, Array.from({ length: 12 }, (_, i) => msg(String(i), 0))); // 12 groups: all can be in flight
      const held: InboundMessage[] = [];
      // A 4 s timeout extended every second: 3 s of margin per round, so a slow call on a busy
      // machine does not let a receipt lapse (a 2 s timeout failed a loaded clean-clone run on moto).
      for (let i = 0; i < 10 && held.length < 12; i++) held.push(...(await t.receive(q, { max: 10, waitSeconds: 1, visibilityTimeoutSeconds: 4 })));
      expect(held).toHaveLength(12);
      // Twelve receipts: more than one ChangeMessageVisibilityBatch.
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 1_000));
        expect(await t.changeVisibility(q, held.map((m) => m.receipt), 4)).toEqual({ expired: [] });
      }
      // Five seconds after the receive (past the first timeout), nothing came back, and every receipt still deletes.
      expect(await t.receive(q, { max: 10, waitSeconds: 0 })).toEqual([]);
      expect(await t.delete(q, held.map((m) => m.receipt))).toEqual({ expired: [] });
      await new Promise((r) => setTimeout(r, 4_500));
      expect(await t.receive(q, { max: 10, waitSeconds: 0 })).toEqual([]);
    });

    it('rejects a visibility timeout outside 0 to 12 hours', async () => {
      const { t, q } = await setup();
      await t.send(q, [msg('0', 1)]);
      const [m] = await t.receive(q, { max: 1, waitSeconds: 1 });
      await expect(t.changeVisibility(q, [m!.receipt], 43_201)).rejects.toThrow(/visibility timeout must be from 0 to 43200 seconds, got 43201/);
      expect(await t.delete(q, [m!.receipt])).toEqual({ expired: [] });
    });

    it('drops a message whose dedup id was already sent to the queue', async () => {
      const { t, q } = await setup();
      await t.send(q, [{ groupId: '0', dedupId: 'd1', body: 'first' }]);
      await t.send(q, [{ groupId: '0', dedupId: 'd1', body: 'retry of first' }, { groupId: '0', dedupId: 'd2', body: 'second' }]);
      const got = await drain(t, q, 2);
      expect(got.map((m) => m.body)).toEqual(['first', 'second']);
      // Also after the first copy was received and deleted (SQS keeps ids for 5 minutes).
      await t.send(q, [{ groupId: '0', dedupId: 'd1', body: 'late retry of first' }]);
      expect(await t.receive(q, { max: 10, waitSeconds: 1 })).toEqual([]);
    });

    it('returns from a long poll as soon as a message arrives', async () => {
      const { t, q } = await setup();
      const started = Date.now();
      const pending = t.receive(q, { max: 10, waitSeconds: 10 });
      await new Promise((r) => setTimeout(r, 300));
      await t.send(q, [msg('0', 1)]);
      const got = await pending;
      expect(got.map((m) => m.body)).toEqual(['0:1']);
      expect(Date.now() - started).toBeLessThan(3_000);
    });

    it('returns from a long poll when the in-flight message blocking a group is deleted', async () => {
      const { t, q } = await setup();
      await t.send(q, [msg('0', 1), msg('0', 2)]);
      const [first] = await t.receive(q, { max: 1, waitSeconds: 1 });
      const started = Date.now();
      const pending = t.receive(q, { max: 10, waitSeconds: 10 });
      await new Promise((r) => setTimeout(r, 300));
      await t.delete(q, [first!.receipt]);
      expect((await pending).map((m) => m.body)).toEqual(['0:2']);
      expect(Date.now() - started).toBeLessThan(3_000);
    });

    it('waits the whole long poll on an empty queue', async () => {
      const { t, q } = await setup();
      const started = Date.now();
      expect(await t.receive(q, { max: 10, waitSeconds: 1 })).toEqual([]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    });

    it('ends a long poll its signal aborts, with an AbortError, and the queue goes on working', async () => {
      const { t, q } = await setup();
      const controller = new AbortController();
      // SQS may go on serving an aborted long poll: a message it takes meanwhile comes again after
      // the poll's visibility timeout (1 s here), so nothing is lost.
      const polling = t.receive(q, { max: 10, waitSeconds: 20, visibilityTimeoutSeconds: 1, signal: controller.signal });
      setTimeout(() => controller.abort(), 200);
      await expect(polling).rejects.toMatchObject({ name: 'AbortError' });
      await t.send(q, [msg('after', 0)]);
      const got: string[] = [];
      for (let i = 0; i < 10 && got.length === 0; i++) got.push(...(await t.receive(q, { max: 10, waitSeconds: 2 })).map((m) => m.body));
      expect(got).toEqual(['after:0']);
    });

    it('deletes more than 10 receipts in one call', async () => {
      const { t, q } = await setup();
      await t.send(q, Array.from({ length: 25 }, (_, i) => msg(String(i), 0)));
      // Latest receipt per message: on a loaded machine collecting all 25 can outlast the
      // visibility timeout (a fresh clone's npm test: 5 came back, their receipts stale, and the
      // delete left them). So the receipts are renewed, and those that had expired (their messages
      // visible again) are received again, until all 25 are held for the next 4 s.
      const receipts = new Map<string, string>();
      for (let i = 0; i < 40; i++) {
        const got = await t.receive(q, { max: 10, waitSeconds: 1, visibilityTimeoutSeconds: 4 });
        for (const m of got) receipts.set(m.body, m.receipt);
        if (receipts.size < 25) continue;
        const { expired } = await t.changeVisibility(q, [...receipts.values()], 4);
        if (expired.length === 0) break;
        for (const [body, receipt] of receipts) if (expired.includes(receipt)) receipts.delete(body);
      }
      expect(receipts.size).toBe(25);
      expect(await t.delete(q, [...receipts.values()])).toEqual({ expired: [] });
      await new Promise((r) => setTimeout(r, 4_300)); // past the visibility timeout: none comes back
      expect(await t.receive(q, { max: 10, waitSeconds: 0 })).toEqual([]);
    });

    it('names a missing queue in the error and validates receive options', async () => {
      const { t, q } = await setup();
      const missing = uniqueName('gone');
      await expect(t.send(missing, [msg('0', 1)])).rejects.toMatchObject({
        name: 'SluiceAwsError',
        kind: 'missing-queue',
        message: `queue '${missing}' no longer exists (deleted while the job ran?)`,
      });
      await expect(t.receive(missing, { max: 1, waitSeconds: 0 })).rejects.toMatchObject({ kind: 'missing-queue' });
      await expect(t.receive(q, { max: 11, waitSeconds: 0 })).rejects.toThrow(/max must be an integer from 1 to 10/);
      await expect(t.receive(q, { max: 1, waitSeconds: 21 })).rejects.toThrow(/waitSeconds must be from 0 to 20/);
    });
  });
}

/**
 * Receipt handles expire as on SQS FIFO (its own contract: LocalStack does not keep it, so the
 * LocalStack lane leaves its file out; see localstack/README.md).
 */
export function receiptExpiryContract(label: string, make: () => Promise<ChannelTransport>): void {
  describe(`ChannelTransport receipt expiry: ${label}`, () => {
    async function setup() {
      const t = await make();
      const q = uniqueName('q');
      await t.createQueues([q]);
      return { t, q };
    }

    it('expires a receipt with its visibility timeout: delete reports it, the message comes again', async () => {
      const { t, q } = await setup();
      await t.send(q, [msg('0', 1), msg('0', 2)]);
      const [first] = await t.receive(q, { max: 1, waitSeconds: 1, visibilityTimeoutSeconds: 1 });
      expect(first!.body).toBe('0:1');
      await new Promise((r) => setTimeout(r, 1_500));
      // SQS FIFO: "The receipt handle has expired" (an entry failure), not a silent success.
      expect(await t.delete(q, [first!.receipt])).toEqual({ expired: [first!.receipt] });
      expect(await t.changeVisibility(q, [first!.receipt], 30)).toEqual({ expired: [first!.receipt] });
      const again = await t.receive(q, { max: 1, waitSeconds: 2, visibilityTimeoutSeconds: 5 });
      expect(again.map((m) => m.body)).toEqual(['0:1']);
      expect(again[0]!.receiveCount).toBe(2);
      // The old receipt stays expired once the message was received again; the new one works.
      expect(await t.delete(q, [first!.receipt])).toEqual({ expired: [first!.receipt] });
      expect(await t.receive(q, { max: 10, waitSeconds: 0 })).toEqual([]); // still in flight
      expect(await t.delete(q, [again[0]!.receipt])).toEqual({ expired: [] });
      const rest = await drain(t, q, 1);
      expect(rest.map((m) => [m.body, m.receiveCount])).toEqual([['0:2', 1]]);
    });
  });
}
