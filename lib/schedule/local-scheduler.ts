/**
 * The local checkpoint scheduler: fires a callback at each fire time of a schedule, on the Clock
 * port (a fake clock in tests). Its schedule can be changed while it runs: the change wakes it and
 * the next fire time is recomputed from the time of the change, so going from every hour to every
 * five minutes takes effect at the next five-minute mark, not after the hour.
 *
 * Fire times that pass while the callback runs (a checkpoint slower than the interval) are skipped,
 * not queued: the next fire time is computed from when the callback returns.
 */
import { systemClock, type Clock } from '../ports/clock';
import { nextFireTime, parseSchedule, type CheckpointSchedule } from './schedule';

export interface LocalCheckpointSchedulerOptions {
  /** The schedule; null or undefined: paused until setSchedule. */
  schedule?: CheckpointSchedule | null;
  /** Called at each fire time with that fire time; awaited before the next one is computed. */
  onFire: (fireTime: number) => void | Promise<void>;
  /** A failed callback (the scheduler keeps going). Default: console.error. */
  onError?: (error: unknown, fireTime: number) => void;
  clock?: Clock;
  /**
   * Cancellable sleep. Default: a cancellable timer with the system clock, else `clock.sleep`
   * raced with the wake-up (a fake clock's leftover sleep is harmless).
   */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Longest single wait; a far fire time is reached in several waits (timers max out at ~24.8 days). */
const MAX_WAIT_MS = 3_600_000;

function abortableTimer(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export class LocalCheckpointScheduler {
  private current: CheckpointSchedule | null;
  private next: number | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake = new AbortController();
  private readonly clock: Clock;
  /** Fire times the callback was called for, most recent last (bounded). */
  readonly fired: number[] = [];
  /** Fire times skipped because the callback was still running. */
  skipped = 0;

  constructor(private readonly options: LocalCheckpointSchedulerOptions) {
    this.clock = options.clock ?? systemClock;
    this.current = options.schedule ? parseSchedule(options.schedule, this.clock.now()) : null;
  }

  get schedule(): CheckpointSchedule | null {
    return this.current;
  }

  /** The next fire time, or undefined when paused, stopped or out of fire times. */
  get nextFireAt(): number | undefined {
    return this.running ? this.next : undefined;
  }

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.recompute(this.clock.now());
    this.loop = this.run();
  }

  /**
   * Changes the schedule without a restart (null pauses). The next fire time is recomputed from
   * now. Validates first: an invalid schedule throws and leaves the current one in place.
   */
  setSchedule(schedule: CheckpointSchedule | null): void {
    const now = this.clock.now();
    this.current = schedule ? parseSchedule(schedule, now) : null;
    if (!this.running) return;
    this.recompute(now);
    this.interrupt();
  }

  /** Stops; resolves once the loop has ended (after a callback that is running returns). */
  async stop(): Promise<void> {
    if (!this.running) return this.loop;
    this.running = false;
    this.interrupt();
    await this.loop;
  }

  private recompute(after: number): void {
    this.next = this.current ? nextFireTime(this.current, after) : undefined;
  }

  private interrupt(): void {
    this.wake.abort();
    this.wake = new AbortController();
  }

  private async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.options.sleep) return this.options.sleep(ms, signal);
    if (this.clock === systemClock) return abortableTimer(ms, signal);
    if (signal.aborted) return;
    await new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => resolve(), { once: true });
      this.clock.sleep(ms).then(() => resolve());
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      const signal = this.wake.signal;
      const due = this.next;
      if (due === undefined) {
        // Paused or out of fire times: wait for setSchedule or stop.
        await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
        continue;
      }
      const now = this.clock.now();
      if (now < due) {
        await this.wait(Math.min(due - now, MAX_WAIT_MS), signal);
        continue; // re-read: woken by a change, or not due yet
      }
      if (signal.aborted) continue;
      this.fired.push(due);
      if (this.fired.length > 1000) this.fired.splice(0, this.fired.length - 1000);
      try {
        await this.options.onFire(due);
      } catch (error) {
        (this.options.onError ?? ((e, t) => console.error(`checkpoint schedule: the callback for ${new Date(t).toISOString()} failed:`, e)))(error, due);
      }
      // A change made during the callback has already set `next` from the change time.
      if (this.next === due) {
        const after = Math.max(due, this.clock.now());
        this.recompute(after);
        // Count the fire times that passed while the callback ran.
        if (this.current && after > due) {
          for (let t = nextFireTime(this.current, due); t !== undefined && t <= after; t = nextFireTime(this.current, t)) this.skipped++;
        }
      }
    }
  }
}
