/**
 * A long poll its caller gave up on (lib/runtime/claimed-receive.ts): on the in-memory transport,
 * as on SQS, it runs on and takes what arrives, hidden for the visibility it asked for; a claimed
 * receive makes that a few seconds instead of the lease. Visibility runs on a clock the test moves.
 */
import { describe, expect, it } from 'vitest';
import { MemoryChannelTransport } from '../../lib/memory';
import type { ChannelTransport, OutboundMessage, ReceiveOptions } from '../../lib/ports/channels';
import { CLAIM_SECONDS, receiveClaimed } from '../../lib/runtime/claimed-receive';

const LEASE = 15;
const settle = () => new Promise((resolve) => setTimeout(resolve, 30));
const message = (n: number): OutboundMessage => ({ groupId: 'p0.1', dedupId: `m${n}`, body: `{"n":${n}}` });

async function setup() {
  let now = 1_000_000;
  const transport = new MemoryChannelTransport({ clock: { now: () => now } });
  await transport.createQueues(['q']);
  return { transport, advance: (seconds: number) => void (now += seconds * 1000) };
}

/** A consumer that stopped (or died) while its long poll waited on an idle queue; then the producer sends. */
async function abandonedPoll(transport: ChannelTransport, receive: (options: ReceiveOptions) => Promise<unknown>): Promise<void> {
  const abort = new AbortController();
  const poll = receive({ max: 10, waitSeconds: 5, visibilityTimeoutSeconds: LEASE, signal: abort.signal });
  await settle();
  abort.abort();
  await expect(poll).rejects.toMatchObject({ name: 'AbortError' });
  await transport.send('q', [message(1), message(2)]);
  await settle();
}

describe('an abandoned long poll', () => {
  it('takes what arrives before its wait ends and hides it, with its group, for the visibility it asked for', async () => {
    const { transport, advance } = await setup();
    await abandonedPoll(transport, (o) => transport.receive('q', o));
    expect(await transport.receive('q', { max: 10, waitSeconds: 0 })).toEqual([]);
    advance(LEASE - 1);
    expect(await transport.receive('q', { max: 10, waitSeconds: 0 })).toEqual([]);
    advance(2);
    const again = await transport.receive('q', { max: 10, waitSeconds: 0 });
    expect(again.map((m) => [m.body, m.receiveCount])).toEqual([
      ['{"n":1}', 2],
      ['{"n":2}', 2],
    ]);
  });

  it('hides what it took only for the claim when the receive was claimed', async () => {
    const { transport, advance } = await setup();
    await abandonedPoll(transport, (o) => receiveClaimed(transport, 'q', o, true));
    expect(await transport.receive('q', { max: 10, waitSeconds: 0 })).toEqual([]);
    advance(CLAIM_SECONDS + 1);
    const again = await transport.receive('q', { max: 10, waitSeconds: 0 });
    expect(again.map((m) => m.body)).toEqual(['{"n":1}', '{"n":2}']);
  });
});

describe('a claimed receive', () => {
  it('holds what it got for the whole visibility asked for, with one extension', async () => {
    const { transport, advance } = await setup();
    await transport.send('q', [message(1)]);
    let extensions = 0;
    const counting: ChannelTransport = Object.assign(Object.create(transport) as ChannelTransport, {
      changeVisibility: (queue: string, receipts: readonly string[], seconds: number) => {
        extensions++;
        expect(seconds).toBe(LEASE);
        return transport.changeVisibility(queue, receipts, seconds);
      },
    });
    const got = await receiveClaimed(counting, 'q', { max: 10, waitSeconds: 1, visibilityTimeoutSeconds: LEASE }, true);
    expect(got.map((m) => m.body)).toEqual(['{"n":1}']);
    expect(extensions).toBe(1);
    advance(LEASE - 1);
    expect(await transport.receive('q', { max: 10, waitSeconds: 0 })).toEqual([]);
    expect(await transport.delete('q', [got[0]!.receipt])).toEqual({ expired: [] });
  });

  it('asks for the lease itself behind a backlog, when it cannot wait, or when the lease is no longer than the claim', async () => {
    const { transport, advance } = await setup();
    const asked: (number | undefined)[] = [];
    const spying: ChannelTransport = Object.assign(Object.create(transport) as ChannelTransport, {
      receive: (queue: string, options: ReceiveOptions) => {
        asked.push(options.visibilityTimeoutSeconds);
        return transport.receive(queue, options);
      },
      changeVisibility: () => {
        throw new Error('no extension expected');
      },
    });
    await transport.send('q', [message(1)]);
    expect(await receiveClaimed(spying, 'q', { max: 10, waitSeconds: 2, visibilityTimeoutSeconds: LEASE }, false)).toHaveLength(1);
    advance(LEASE + 1);
    expect(await receiveClaimed(spying, 'q', { max: 10, waitSeconds: 0, visibilityTimeoutSeconds: LEASE }, true)).toHaveLength(1);
    advance(LEASE + 1);
    expect(await receiveClaimed(spying, 'q', { max: 10, waitSeconds: 2, visibilityTimeoutSeconds: CLAIM_SECONDS }, true)).toHaveLength(1);
    expect(asked).toEqual([LEASE, LEASE, CLAIM_SECONDS]);
  });
});
