/**
 * Determinants for exactly-once single-point recovery (`single-exact`; Clonos, SIGMOD 2021).
 *
 * What an inner task sends depends on its input and state and on one more thing: the order in
 * which it took its input channels, and where its event time advanced (timers fire there). A
 * restarted task that replays its input (replay.ts) in the same order, with the same advances,
 * regenerates exactly the same records at the same record positions (its writers restore their
 * numbering from the checkpoint, lineage 0 for every task), and its consumers drop what they
 * already had by position: nothing lost, nothing twice.
 *
 * The order is recorded as steps: `['d', channel, lineage, n, k]` (records n..n+k of a channel's
 * lineage went into the operator chain), `['w', W]` (event time advanced to W) and `['p', T]`
 * (processing time moved to T: the clock that processing-time timers, state TTL and
 * `currentProcessingTime` read moves only by these steps, and timers fire only at them). Steps are made
 * durable before their effects leave the task by travelling with them: every data message a task
 * sends carries the steps it has not yet sent on that channel (`dt`), so each consumer holds a
 * prefix of the producer's steps covering everything it received. A step is recorded before its
 * effects (input-driver.ts): a message sealed while they are under way carries it. A restarted
 * producer asks its consumers for the steps after its checkpoint and takes the longest prefix:
 * every record any consumer received is regenerated as it was; records none received may come out
 * otherwise.
 * A consumer answering stops taking the producer's old attempt (it is fenced), so no record of the
 * old attempt can arrive after the answer.
 *
 * Steps are kept (producer and consumers) until the producer's next checkpoint completes: the
 * producer's barrier says how many steps precede it (`di`).
 */

export type Step = readonly ['d', string, number, number, number] | readonly ['w', number] | readonly ['p', number];

export interface DeterminantLogState {
  base: number;
  steps: Step[];
  sent: [string, number][];
  barriers: [number, number][];
}

export type DeterminantStoreState = [string, { base: number; steps: Step[]; barriers: [number, number][] }][];

/** The producer side: the steps of one subtask, and how far each output channel has carried them. */
export class DeterminantLog {
  private steps: Step[] = [];
  /** Index of steps[0] (steps before it were trimmed). */
  private base = 0;
  /** Per channel (edge/consumer): the index of the first step not sent on it yet. */
  private readonly sent = new Map<string, number>();
  /** Step count at each barrier not yet trimmed. */
  private readonly barriers = new Map<number, number>();
  /** Step count at the last barrier: the steps before it are counted by it and never grow. */
  private sealed = 0;

  constructor(start = 0) {
    this.base = start;
  }

  /** A restored subtask goes on from the step count of its checkpoint. */
  restart(at: number): void {
    this.steps = [];
    this.base = at;
    this.sent.clear();
    this.barriers.clear();
    this.sealed = at;
  }

  state(): DeterminantLogState {
    return { base: this.base, steps: [...this.steps], sent: [...this.sent], barriers: [...this.barriers] };
  }

  /** Continues a predecessor invocation's log (a hand-over). */
  resume(state: DeterminantLogState): void {
    this.base = state.base;
    this.steps = [...state.steps];
    this.sent.clear();
    for (const [k, v] of state.sent) this.sent.set(k, v);
    this.barriers.clear();
    for (const [k, v] of state.barriers) this.barriers.set(k, v);
    this.sealed = Math.max(this.base, ...this.barriers.values());
  }

  /** Index of the next step. */
  get length(): number {
    return this.base + this.steps.length;
  }

  records(channel: string, lineage: number, n: number, k: number): void {
    if (k <= 0) return;
    const last = this.steps.at(-1);
    // Consecutive records of one channel are one step, unless a barrier came between: a step
    // counted before a barrier stays as it was (a restore follows the steps from the count on).
    if (last && this.length > this.sealed && last[0] === 'd' && last[1] === channel && last[2] === lineage && last[3] + last[4] === n) {
      this.steps[this.steps.length - 1] = ['d', channel, lineage, last[3], last[4] + k];
      return;
    }
    this.steps.push(['d', channel, lineage, n, k]);
  }

  watermark(w: number): void {
    this.steps.push(['w', w]);
  }

  processingTime(t: number): void {
    this.steps.push(['p', t]);
  }

  /**
   * The steps channel `key` has not carried yet, as the `dt` field of the message sealed now:
   * [first index, steps], at most `maxBytes` of JSON (the rest goes with the channel's next
   * message: a consumer's steps are always a contiguous run).
   */
  takeFor(key: string, maxBytes = Infinity): [number, Step[]] | undefined {
    const from = Math.max(this.sent.get(key) ?? this.base, this.base);
    let to = this.length;
    if (to <= from) return undefined;
    const steps: Step[] = [];
    let bytes = 16;
    for (let i = from; i < to; i++) {
      const step = this.steps[i - this.base]!;
      const size = JSON.stringify(step).length + 1;
      if (bytes + size > maxBytes && steps.length > 0) {
        to = i;
        break;
      }
      bytes += size;
      steps.push(step);
    }
    // A step still growing (the last records step) is sent again, whole, with the next message.
    this.sent.set(key, to === this.length ? Math.max(from, to - 1) : to);
    return [from, steps];
  }

  /** Barrier N leaves now: its consumers learn how many steps precede it. */
  barrier(checkpointId: number): number {
    this.barriers.set(checkpointId, this.length);
    this.sealed = this.length;
    return this.length;
  }

  /** Checkpoint N completed: the steps before its barrier are not needed any more. */
  trim(checkpointId: number): void {
    const at = this.barriers.get(checkpointId);
    for (const id of [...this.barriers.keys()]) if (id <= checkpointId) this.barriers.delete(id);
    if (at === undefined || at <= this.base) return;
    this.steps = this.steps.slice(at - this.base);
    this.base = at;
  }
}

/**
 * The consumer side: the steps each producer sent along, per producer subtask (`<task>#<index>`),
 * kept from the producer's last completed checkpoint on.
 */
export class DeterminantStore {
  private readonly byProducer = new Map<string, { base: number; steps: Step[]; barriers: Map<number, number> }>();

  /** A data message's `dt`: steps from index `first`. Overlaps with what is held (a step sent again grown) replace it. */
  add(producer: string, first: number, steps: readonly Step[]): void {
    let held = this.byProducer.get(producer);
    if (!held) this.byProducer.set(producer, (held = { base: first, steps: [], barriers: new Map() }));
    const end = held.base + held.steps.length;
    if (first > end) {
      // A gap: the steps between were trimmed here meanwhile, or came in a message fenced off. Start over at `first`.
      held.base = first;
      held.steps = [...steps];
      return;
    }
    const keep = Math.max(0, first - held.base);
    if (first < held.base) {
      const skip = held.base - first;
      if (skip >= steps.length) return;
      held.steps = [...held.steps.slice(0, keep), ...steps.slice(skip)];
      return;
    }
    held.steps = [...held.steps.slice(0, keep), ...steps];
  }

  /** The producer's barrier N said `index` steps precede it. */
  barrier(producer: string, checkpointId: number, index: number): void {
    this.byProducer.get(producer)?.barriers.set(checkpointId, index);
  }

  /** Checkpoint N completed for the region: the steps before each producer's barrier N go. */
  trim(checkpointId: number): void {
    for (const held of this.byProducer.values()) {
      const at = held.barriers.get(checkpointId);
      for (const id of [...held.barriers.keys()]) if (id <= checkpointId) held.barriers.delete(id);
      if (at === undefined || at <= held.base) continue;
      held.steps = held.steps.slice(Math.min(held.steps.length, at - held.base));
      held.base = at;
    }
  }

  /** What a restarted producer asks for: its steps from `from` on, as far as they are held here. */
  from(producer: string, from: number): { first: number; steps: Step[] } {
    const held = this.byProducer.get(producer);
    if (!held || held.base + held.steps.length <= from) return { first: from, steps: [] };
    const start = Math.max(from, held.base);
    return { first: start, steps: held.steps.slice(start - held.base) };
  }

  state(): DeterminantStoreState {
    return [...this.byProducer].map(([p, h]) => [p, { base: h.base, steps: [...h.steps], barriers: [...h.barriers] }]);
  }

  resume(state: DeterminantStoreState): void {
    this.byProducer.clear();
    for (const [p, h] of state) this.byProducer.set(p, { base: h.base, steps: [...h.steps], barriers: new Map(h.barriers) });
  }
}

/**
 * The longest run of steps from `from` that the answers cover, contiguous: every step up to the
 * last one any consumer received. Answers agree where they overlap (one producer, one history),
 * except that a records step still growing when a message left may be shorter in one answer
 * than in another: the longest version is the step as it was.
 */
export function mergeAnswers(from: number, answers: readonly { first: number; steps: readonly Step[] }[]): Step[] {
  const out: Step[] = [];
  for (let i = from; ; i++) {
    let step: Step | undefined;
    for (const a of answers) {
      const s = i >= a.first ? a.steps[i - a.first] : undefined;
      if (s && (!step || (s[0] === 'd' && step[0] === 'd' && s[4] > step[4]))) step = s;
    }
    if (!step) return out;
    out.push(step);
  }
}
