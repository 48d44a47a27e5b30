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
  /** The current key's values, looked up once per key change rather than once per access. */
  private slot: Record<string, Json> | undefined;

  /** The state view of the key currently being processed. */
  readonly state: KeyedValueState = {
    get: <T extends Json>(name: string) => this.slot?.[name] as T | undefined,
    set: (name, value) => {
      if (!this.slot) this.values.set(this.currentKey, (this.slot = {}));
      this.slot[name] = value;
    },
    clear: (name) => {
      const slot = this.slot;
      if (!slot) return;
      delete slot[name];
      for (const _ in slot) return;
      this.values.delete(this.currentKey);
      this.slot = undefined;
    },
  };

  setCurrentKey(key: string): void {
    if (key === this.currentKey && this.slot !== undefined) return;
    this.currentKey = key;
    this.slot = this.values.get(key);
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
    this.slot = undefined;
    this.currentKey = '';
    for (const [k, v] of snapshot.values) this.values.set(k, v);
    for (const [t, keys] of snapshot.timers) this.timers.set(t, new Set(keys));
  }
}
