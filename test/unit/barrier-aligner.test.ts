/**
 * The barrier aligner on its own: events are strings `<channel>:<what>`, where `b<N>` is barrier N
 * and anything else a record; a small driver hands them to the aligner as the input driver does.
 */
import { describe, expect, it } from 'vitest';
import { BarrierAligner, STATUS_CHANNELS } from '../../lib/runtime/barrier-aligner';
import { seededRandom } from '../../bench/lib/random';

/** The aligner as the input driver wires it: channels by number (their names for its status), counted open. */
function harness(channels: string[], lastCheckpoint = 0) {
  const open = new Set(channels);
  const log: string[] = [];
  let last = lastCheckpoint;
  const aligner: BarrierAligner<string> = new BarrierAligner<string>({
    lastCheckpoint: () => last,
    passed: (id) => void (last = Math.max(last, id)),
    checkpoint: async (id) => {
      log.push(`checkpoint ${id}`);
      last = id;
    },
    decline: async (id, reason) => void log.push(`decline ${id}: ${reason}`),
    release: async (events) => {
      for (const e of events) await handle(e);
    },
    channelCount: () => channels.length,
    openCount: () => open.size,
    isOpen: (channel) => open.has(channels[channel]!),
    channelName: (channel) => channels[channel]!,
  });
  async function handle(event: string): Promise<void> {
    const [channel, what] = event.split(':') as [string, string];
    const index = channels.indexOf(channel);
    if (aligner.hold(index, event)) return;
    if (what === 'end') {
      open.delete(channel);
      log.push(`ended ${channel}`);
      return aligner.channelEnded();
    }
    if (what.startsWith('b')) return aligner.barrier(index, Number(what.slice(1)));
    log.push(`processed ${event}`);
  }
  const feed = async (...events: string[]) => {
    for (const e of events) await handle(e);
  };
  return { aligner, log, feed, last: () => last, reopen: (channel: string) => void open.add(channel) };
}

/**
 * The alignment rules written plainly (a set of channel names that delivered the barrier, every
 * open channel walked at each step), as the aligner kept them before it counted by channel number:
 * the model the aligner must decide like.
 */
function model(channels: string[]) {
  const open = new Set(channels);
  const log: string[] = [];
  let last = 0;
  let current: { id: number; arrived: Set<string> } | undefined;
  let held: string[] = [];
  const release = async (next: number | undefined) => {
    const waiting = held;
    held = [];
    current = next === undefined ? undefined : { id: next, arrived: new Set() };
    for (const e of waiting) await handle(e);
  };
  const maybeAligned = async () => {
    if (!current || ![...open].every((c) => current!.arrived.has(c))) return;
    log.push(`checkpoint ${current.id}`);
    last = current.id;
    await release(undefined);
  };
  async function handle(event: string): Promise<void> {
    const [channel, what] = event.split(':') as [string, string];
    if (current?.arrived.has(channel)) return void held.push(event);
    if (what === 'end') {
      open.delete(channel);
      log.push(`ended ${channel}`);
      return maybeAligned();
    }
    if (!what.startsWith('b')) return void log.push(`processed ${event}`);
    const id = Number(what.slice(1));
    if (id <= last) return;
    if (current && id > current.id) {
      log.push(`decline ${current.id}: barrier ${id} arrived before barrier ${current.id} was aligned`);
      await release(id);
    }
    if (id <= last || (current && id < current.id)) return;
    current ??= { id, arrived: new Set() };
    current.arrived.add(channel);
    await maybeAligned();
  }
  const abort = async (id: number) => {
    if (current?.id !== id) return;
    last = Math.max(last, id);
    await release(undefined);
  };
  const status = () => {
    if (!current) return undefined;
    const waiting = channels.filter((c) => open.has(c) && !current!.arrived.has(c));
    const waitingFor = waiting.slice(0, STATUS_CHANNELS);
    return { checkpointId: current.id, waitingFor, ...(waiting.length > waitingFor.length ? { waiting: waiting.length } : {}), held: held.length };
  };
  return { log, handle, abort, status, checkpointId: () => current?.id };
}

describe('barrier aligner', () => {
  it('holds a channel after its barrier until every open channel has delivered it, then checkpoints and releases in order', async () => {
    const { aligner, log, feed } = harness(['a', 'b']);
    await feed('a:b1', 'a:r1', 'b:r2', 'a:r3');
    expect(log).toEqual(['processed b:r2']);
    expect(aligner.status()).toEqual({ checkpointId: 1, waitingFor: ['b'], held: 2 });
    await feed('b:b1');
    expect(log).toEqual(['processed b:r2', 'checkpoint 1', 'processed a:r1', 'processed a:r3']);
    expect(aligner.aligning).toBe(false);
    expect(aligner.held).toEqual([]);
  });

  it('stops waiting for a channel that ends', async () => {
    const { log, feed } = harness(['a', 'b']);
    await feed('a:b1', 'a:r1', 'b:end');
    expect(log).toEqual(['ended b', 'checkpoint 1', 'processed a:r1']);
  });

  it('ignores a barrier at or below the last checkpoint (a replay)', async () => {
    const { aligner, log, feed } = harness(['a', 'b'], 4);
    await feed('a:b3', 'a:b4', 'a:r1');
    expect(aligner.aligning).toBe(false);
    expect(log).toEqual(['processed a:r1']);
  });

  it('declines the older checkpoint when a newer barrier overtakes it, and aligns the newer one', async () => {
    const { log, feed, last } = harness(['a', 'b']);
    // a sent barrier 1 then 2; b (restarted) never sends 1.
    await feed('a:b1', 'a:r1', 'a:b2', 'a:r2', 'b:b2');
    expect(log).toEqual(['decline 1: barrier 2 arrived before barrier 1 was aligned', 'processed a:r1', 'checkpoint 2', 'processed a:r2']);
    expect(last()).toBe(2);
  });

  it('ignores an older barrier while aligning a newer one', async () => {
    const { aligner, log, feed } = harness(['a', 'b']);
    await feed('a:b2', 'b:b1', 'b:r1');
    expect(aligner.checkpointId).toBe(2);
    expect(log).toEqual(['processed b:r1']);
    expect(aligner.status()?.waitingFor).toEqual(['b']);
  });

  it('ends an aborted alignment only between batches, releasing what it held; the checkpoint is then stale', async () => {
    const { aligner, log, feed, last } = harness(['a', 'b']);
    await feed('a:b3', 'a:r1');
    aligner.abort(3);
    expect(aligner.aligning).toBe(true);
    await aligner.applyAborts();
    expect(aligner.aligning).toBe(false);
    expect(last()).toBe(3);
    await feed('b:b3', 'b:r2');
    expect(log).toEqual(['processed a:r1', 'processed b:r2']);
  });

  it('leaves an alignment alone when another checkpoint is aborted', async () => {
    const { aligner, feed } = harness(['a', 'b']);
    await feed('a:b3', 'a:r1');
    aligner.abort(2);
    await aligner.applyAborts();
    expect(aligner.status()).toEqual({ checkpointId: 3, waitingFor: ['b'], held: 1 });
  });

  it('declines every alignment until nothing is held (a hand-over), the next one opened by a held barrier too', async () => {
    const { aligner, log, feed, last } = harness(['a', 'b']);
    await feed('a:b1', 'a:r1', 'a:b2', 'a:r2');
    await aligner.declineAll((id) => `handed over at ${id}`);
    expect(log).toEqual(['decline 1: handed over at 1', 'processed a:r1', 'decline 2: handed over at 2', 'processed a:r2']);
    expect(aligner.aligning).toBe(false);
    expect(aligner.held).toEqual([]);
    expect(last()).toBe(2);
  });

  it('decides as the plain rules do (a set of channels walked at each step), counting by channel number', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const random = seededRandom(seed);
      const channels = ['a', 'b', 'c', 'd'];
      const events: string[] = [];
      const next = new Map(channels.map((c) => [c, 1]));
      const ended = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const c = channels[Math.floor(random() * channels.length)]!;
        if (ended.has(c)) continue;
        const r = random();
        if (r < 0.05) {
          ended.add(c);
          events.push(`${c}:end`);
        } else if (r < 0.45) {
          // Mostly the next barrier; sometimes one skipped (a restarted producer) or a replayed one.
          const id = next.get(c)! + (random() < 0.1 ? 1 : 0) - (random() < 0.05 ? 1 : 0);
          next.set(c, Math.max(next.get(c)!, id + 1));
          events.push(`${c}:b${id}`);
        } else events.push(`${c}:r${i}`);
      }
      const counted = harness(channels);
      const plain = model(channels);
      for (const [i, e] of events.entries()) {
        await counted.feed(e);
        await plain.handle(e);
        if (i % 7 === 0) {
          counted.aligner.abort(counted.aligner.checkpointId ?? 0);
          await counted.aligner.applyAborts();
          await plain.abort(plain.checkpointId() ?? 0);
        }
        expect(counted.aligner.status()).toEqual(plain.status());
      }
      expect(counted.log).toEqual(plain.log);
    }
  });

  it('names at most a few waiting channels in its status and counts them all', async () => {
    const channels = Array.from({ length: 40 }, (_, i) => `c${i}`);
    const { aligner, feed } = harness(channels);
    await feed('c3:b1', 'c3:r1');
    expect(aligner.status()).toEqual({ checkpointId: 1, waitingFor: channels.filter((c) => c !== 'c3').slice(0, STATUS_CHANNELS), waiting: 39, held: 1 });
  });

  it('waits for a channel that reopens (a new producer attempt) and forgets the arrivals of an alignment once it ends', async () => {
    const { aligner, log, feed, reopen } = harness(['a', 'b', 'c']);
    await feed('c:end', 'a:b1');
    reopen('c');
    await feed('b:b1');
    expect(log).toEqual(['ended c']);
    expect(aligner.status()).toEqual({ checkpointId: 1, waitingFor: ['c'], held: 0 });
    await feed('c:b1', 'a:r1');
    expect(log).toEqual(['ended c', 'checkpoint 1', 'processed a:r1']);
    // The next alignment starts with no channel arrived: a's record is not held.
    await feed('b:b2', 'a:r2');
    expect(log.at(-1)).toBe('processed a:r2');
    expect(aligner.status()).toEqual({ checkpointId: 2, waitingFor: ['a', 'c'], held: 0 });
  });
});
