/**
 * A task unit's metrics, from what it already reports: each heartbeat's counters (per subtask,
 * cumulative for the attempt) become per-task increments, summed over the unit's subtasks of one
 * task and published every `everyMs` and when the unit's invocation ends. Input lag comes from the
 * messages the unit receives (`observeInputLag`), hand-overs from the host.
 *
 * No Powertools here: it writes to the MetricsSink port.
 */
import { forwardingTransport, type ChannelTransport, type InboundMessage, type ReceiveOptions } from '../ports/channels';
import type { MetricsSink } from '../ports/telemetry';
import type { SubtaskStats, UnitRecordStore } from '../ports/unit-records';
import { Metrics } from './metric-names';

/** Counters of a subtask that become metrics, by stats field. */
const COUNTERS = [
  ['recordsIn', Metrics.RecordsIn],
  ['recordsOut', Metrics.RecordsOut],
  ['dropped', Metrics.RecordsDropped],
  ['duplicateRecords', Metrics.RecordsDuplicated],
  ['missingRecords', Metrics.RecordsMissing],
  ['replayedRecords', Metrics.RecordsReplayed],
] as const;

/** Always published (a task that reads and writes nothing shows 0); the others only when they grow. */
const ALWAYS = new Set<string>(['recordsIn', 'recordsOut']);

type CounterField = (typeof COUNTERS)[number][0];
export type CounterValues = Partial<Record<CounterField, number>>;

export interface UnitReport {
  stats?: Readonly<Record<string, Partial<SubtaskStats>>>;
  requests?: Readonly<Record<string, number>>;
}

export interface UnitMetricsOptions {
  jobId: string;
  sink: MetricsSink;
  /** Publish at most this often (default 10 s); `flush` publishes at once. */
  everyMs?: number;
  now?: () => number;
  /**
   * Counters already counted (a resumed invocation continues its predecessor's counters): per
   * subtask id, and the AWS requests by service.
   */
  baseline?: { stats?: Readonly<Record<string, CounterValues>>; requests?: Readonly<Record<string, number>> };
}

const taskOf = (subtask: string) => subtask.slice(0, subtask.lastIndexOf('#'));

/** Growth of a cumulative counter; one that went down was reset and counts from 0. */
const growth = (now: number, before: number) => (now >= before ? now - before : now);

export class UnitMetrics {
  private readonly last = new Map<string, CounterValues>();
  private lastRequests: Record<string, number>;
  /** Increments not yet published, per task and counter. */
  private readonly pending = new Map<string, Map<CounterField, number>>();
  private readonly requests = new Map<string, number>();
  /** Oldest input message age per task since the last publish. */
  private readonly lag = new Map<string, number>();
  private lastFlush: number;
  private readonly now: () => number;

  constructor(private readonly options: UnitMetricsOptions) {
    this.now = options.now ?? Date.now;
    this.lastFlush = this.now();
    for (const [id, counters] of Object.entries(options.baseline?.stats ?? {})) this.last.set(id, { ...counters });
    this.lastRequests = { ...options.baseline?.requests };
  }

  /** A unit report (heartbeat, status change, hand-over): adds what grew since the last one. */
  observe(report: UnitReport): void {
    for (const [id, stats] of Object.entries(report.stats ?? {})) {
      const before = this.last.get(id) ?? {};
      const task = taskOf(id);
      let counts = this.pending.get(task);
      if (!counts) this.pending.set(task, (counts = new Map()));
      const seen: CounterValues = {};
      for (const [field] of COUNTERS) {
        const value = stats[field];
        if (typeof value !== 'number') continue;
        seen[field] = value;
        counts.set(field, (counts.get(field) ?? 0) + growth(value, before[field] ?? 0));
      }
      this.last.set(id, { ...before, ...seen });
    }
    for (const [service, n] of Object.entries(report.requests ?? {})) {
      // `total` is the sum the request counter adds; CloudWatch sums the services itself.
      if (service === 'total') continue;
      this.requests.set(service, (this.requests.get(service) ?? 0) + growth(n, this.lastRequests[service] ?? 0));
      this.lastRequests[service] = n;
    }
    if (this.now() - this.lastFlush >= (this.options.everyMs ?? 10_000)) this.flush();
  }

  /** Ages (ms) of input messages of one task, as received. */
  inputLag(taskId: string, ageMs: number): void {
    this.lag.set(taskId, Math.max(this.lag.get(taskId) ?? 0, Math.max(0, ageMs)));
  }

  /** The unit handed over to its next invocation. */
  handedOver(): void {
    this.options.sink.add(Metrics.Handovers, 1, { job: this.options.jobId });
  }

  /** The failure the unit's restart recovered from is over (the last restarted unit is back). */
  recovered(recoveryMs: number): void {
    this.options.sink.add(Metrics.RecoveryTime, recoveryMs, { job: this.options.jobId });
  }

  /** Publishes what was counted since the last publish. */
  flush(): void {
    const job = this.options.jobId;
    const sink = this.options.sink;
    for (const [operator, counts] of this.pending) {
      for (const [field, metric] of COUNTERS) {
        const n = counts.get(field);
        if (n === undefined || (n === 0 && !ALWAYS.has(field))) continue;
        sink.add(metric, n, { job, operator });
      }
    }
    for (const [operator, ms] of this.lag) sink.add(Metrics.InputLag, ms, { job, operator });
    for (const [service, n] of this.requests) if (n > 0) sink.add(Metrics.AwsRequests, n, { job, service });
    this.pending.clear();
    this.lag.clear();
    this.requests.clear();
    this.lastFlush = this.now();
    sink.flush();
  }
}

/**
 * The transport with every receive from the given queues reported as input lag: the age of each
 * received message (now minus its send time), by the task that reads the queue. Other queues (the
 * unit's control queue) pass through unobserved. No extra request: SQS returns SentTimestamp
 * with the message.
 */
export function observeInputLag(transport: ChannelTransport, taskOfQueue: ReadonlyMap<string, string>, record: (taskId: string, ageMs: number) => void, now: () => number = Date.now): ChannelTransport {
  return forwardingTransport(transport, {
    async receive(queue: string, options: ReceiveOptions): Promise<InboundMessage[]> {
      const messages = await transport.receive(queue, options);
      const task = taskOfQueue.get(queue);
      if (task !== undefined && messages.length > 0) {
        const at = now();
        let oldest: number | undefined;
        for (const m of messages) if (m.sentAt !== undefined && (oldest === undefined || m.sentAt < oldest)) oldest = m.sentAt;
        if (oldest !== undefined) record(task, at - oldest);
      }
      return messages;
    },
  });
}

/**
 * The unit record store with every report the unit makes (heartbeats, status changes, the
 * hand-over) also counted as metrics: the heartbeat already carries the counters.
 */
export function observeReports(store: UnitRecordStore, metrics: UnitMetrics): UnitRecordStore {
  return {
    startInvocation: (jobId, unitId, attempt, owner) => store.startInvocation(jobId, unitId, attempt, owner),
    beat: (jobId, unitId, attempt) => store.beat(jobId, unitId, attempt),
    async reportUnit(jobId, unitId, attempt, changes, owner) {
      const ok = await store.reportUnit(jobId, unitId, attempt, changes, owner);
      if (ok) metrics.observe(changes);
      return ok;
    },
    async recordHandover(jobId, unitId, attempt, owner, generation, key, report) {
      const ok = await store.recordHandover(jobId, unitId, attempt, owner, generation, key, report);
      if (ok) metrics.observe(report);
      return ok;
    },
  };
}
