/**
 * A barrier alignment held far longer than the input visibility timeout (15 s), against the strict
 * in-memory transport (receipts expire as on SQS FIFO) on a fake clock: no real minute passes. On
 * sub-partition queues and through a task unit's multiplexed channels (the path units take).
 * The same scenario runs against SQS in test/integration/long-alignment.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { MemoryBlobStore, MemoryChannelTransport, MemoryMetadataStore } from '../../lib/memory';
import type { Clock } from '../../lib/ports/clock';
import { longAlignmentScenario } from '../contracts/long-alignment.scenario';

/** A clock that moves only when told; sleepers wake as it passes their time. */
class FakeClock implements Clock {
  private t = 1_700_000_000_000;
  private sleepers: { at: number; wake: () => void }[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number): Promise<void> {
    return new Promise((wake) => this.sleepers.push({ at: this.t + ms, wake }));
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.at <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.at > this.t);
    for (const s of due) s.wake();
  }
}

const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

describe('barrier alignment longer than the visibility timeout', () => {
  for (const variant of ['queues', 'mux'] as const) {
    it(`${variant === 'mux' ? "through a unit's multiplexed channels" : 'on sub-partition queues'}: holds its input for 60 s, the consumer survives, nothing lost, nothing duplicated, no receipt expired`, async () => {
      const clock = new FakeClock();
      const channels = new MemoryChannelTransport({ clock });
      const jobId = `job-la-${variant}`;
      const seen = await longAlignmentScenario(
        { channels, blobs: new MemoryBlobStore(), metadata: new MemoryMetadataStore(), clock, jobId, queuePrefix: 'la' },
        async () => {
          // A minute passes, one second at a time; the runner, the gate and the unit's channels keep running meanwhile.
          for (let s = 0; s < 60; s++) {
            clock.advance(1_000);
            await tick();
          }
        },
        variant,
      );
      // What was held in flight stayed in flight under its first receipt: never received again.
      expect([channels.redeliveries, channels.expiredReceipts]).toEqual([0, 0]);
      // Extended every 5 s for the minute: held for 12 rounds or more.
      expect(seen.extensions).toBeGreaterThanOrEqual(12);
    });
  }
});
