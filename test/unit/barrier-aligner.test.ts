/**
 * The barrier aligner on its own: events are strings `<channel>:<what>`, where `b<N>` is barrier N
 * and anything else a record; a small driver hands them to the aligner as the input driver does.
 */
import { describe, expect, it } from 'vitest';
import { BarrierAligner, STATUS_CHANNELS } from '../../lib/runtime/barrier-aligner';
import { seededRandom } from '../../bench/lib/random';

/** `counted`: the aligner also gets the open channels' count (how the input driver wires it), instead of walking them. */
function harness(channels: string[], lastCheckpoint = 0, counted = false) {
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
    openChannels: () => open,
    ...(counted ? { openCount: () => open.size, isOpen: (key: string) => open.has(key) } : {}),
  });
  async function handle(event: string): Promise<void> {
    const [channel, what] = event.split(':') as [string, string];
    if (aligner.hold(channel, event)) return;
    if (what === 'end') {
      open.delete(channel);
      log.push(`ended ${channel}`);
      return aligner.channelEnded();
    }
    if (what.startsWith('b')) return aligner.barrier(channel, Number(what.slice(1)));
    log.push(`processed ${event}`);
  }
  const feed = async (...events: string[]) => {
    for (const e of events) await handle(e);
  };
  return { aligner, log, feed, last: () => last };
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

  it('decides the same counting the open channels as walking them', async () => {
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
      const walked = harness(channels);
      const counted = harness(channels, 0, true);
      for (const [i, e] of events.entries()) {
        await walked.feed(e);
        await counted.feed(e);
        if (i % 7 === 0) {
          walked.aligner.abort(walked.aligner.checkpointId ?? 0);
          counted.aligner.abort(counted.aligner.checkpointId ?? 0);
          await walked.aligner.applyAborts();
          await counted.aligner.applyAborts();
        }
        expect(counted.aligner.status()).toEqual(walked.aligner.status());
      }
      expect(counted.log).toEqual(walked.log);
    }
  });

  it('names at most a few waiting channels in its status and counts them all', async () => {
    const channels = Array.from({ length: 40 }, (_, i) => `c${i}`);
    for (const counted of [false, true]) {
      const { aligner, feed } = harness(channels, 0, counted);
      await feed('c3:b1', 'c3:r1');
      expect(aligner.status()).toEqual({ checkpointId: 1, waitingFor: channels.filter((c) => c !== 'c3').slice(0, STATUS_CHANNELS), waiting: 39, held: 1 });
    }
  });
});
