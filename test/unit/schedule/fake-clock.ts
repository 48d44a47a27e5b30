import type { Clock } from '../../../lib/ports/clock';

/** A clock that moves only when told; sleepers wake in time order as it moves. */
export class FakeClock implements Clock {
  private sleepers: { at: number; resolve: () => void }[] = [];
  constructor(private t: number) {}

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.sleepers.push({ at: this.t + Math.max(0, ms), resolve }));
  }

  /** Lets pending promise chains run (several macrotask turns). */
  static async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }

  /** Moves to `target`, waking each sleeper at its own time, in order. */
  async advanceTo(target: number): Promise<void> {
    await FakeClock.settle();
    for (;;) {
      this.sleepers.sort((a, b) => a.at - b.at);
      const first = this.sleepers[0];
      if (!first || first.at > target) break;
      this.sleepers.shift();
      this.t = Math.max(this.t, first.at);
      first.resolve();
      await FakeClock.settle();
    }
    this.t = Math.max(this.t, target);
    await FakeClock.settle();
  }

  advance(ms: number): Promise<void> {
    return this.advanceTo(this.t + ms);
  }
}
