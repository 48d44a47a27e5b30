/**
 * Keyed state backend of one subtask: value state per key and event-time timers per key.
 * The whole backend snapshots to one JSON document (stored in S3 at a checkpoint).
 */
import type { Json, KeyedValueState } from '../api/functions';

export interface KeyedStateSnapshot {
  values: [string, Record<string, Json>][];
  timers: [number, string[]][];
}

export class KeyedStateBackend {
  private readonly values = new Map<string, Record<string, Json>>();
  private readonly timers = new Map<number, Set<string>>();
  private currentKey = '';

  /** The state view of the key currently being processed. */
  readonly state: KeyedValueState = {
    get: <T extends Json>(name: string) => this.values.get(this.currentKey)?.[name] as T | undefined,
    set: (name, value) => {
      let slot = this.values.get(this.currentKey);
      if (!slot) this.values.set(this.currentKey, (slot = {}));
      slot[name] = value;
    },
    clear: (name) => {
      const slot = this.values.get(this.currentKey);
      if (!slot) return;
      delete slot[name];
      if (Object.keys(slot).length === 0) this.values.delete(this.currentKey);
    },
  };

  setCurrentKey(key: string): void {
    this.currentKey = key;
  }

  registerTimer(timestamp: number): void {
    let keys = this.timers.get(timestamp);
    if (!keys) this.timers.set(timestamp, (keys = new Set()));
    keys.add(this.currentKey);
  }

  /** Removes and returns the timers due at `watermark`, earliest first. */
  takeDueTimers(watermark: number): [number, string][] {
    const due = [...this.timers.keys()].filter((t) => t <= watermark).sort((a, b) => a - b);
    const out: [number, string][] = [];
    for (const t of due) {
      for (const key of this.timers.get(t)!) out.push([t, key]);
      this.timers.delete(t);
    }
    return out;
  }

  get keyCount(): number {
    return this.values.size;
  }

  snapshot(): KeyedStateSnapshot {
    return {
      values: [...this.values.entries()].map(([k, v]) => [k, structuredClone(v)]),
      timers: [...this.timers.entries()].map(([t, keys]) => [t, [...keys]]),
    };
  }

  restore(snapshot: KeyedStateSnapshot): void {
    this.values.clear();
    this.timers.clear();
    for (const [k, v] of snapshot.values) this.values.set(k, v);
    for (const [t, keys] of snapshot.timers) this.timers.set(t, new Set(keys));
  }
}
