/**
 * Simulated time for the benchmarks: the project's code reads it through the Clock port, and a
 * sleep moves it on at once, so a simulation of minutes runs in milliseconds and repeats exactly.
 */
import type { Clock } from '../../lib/ports/clock';

export class SimClock implements Clock {
  constructor(public t = 0) {}

  now(): number {
    return this.t;
  }

  async sleep(ms: number): Promise<void> {
    this.t += ms;
  }

  /** Moves time on by `ms` (a step of the simulation). */
  advance(ms: number): number {
    return (this.t += ms);
  }
}
