/**
 * The MetricsSink port over Powertools for AWS Lambda's Metrics: CloudWatch Embedded Metric Format
 * (EMF), one JSON line per dimension set, in the namespace of lib/observability/metric-names.ts.
 * In Lambda (and in a Fargate task whose logs go to CloudWatch) CloudWatch turns the lines into
 * metrics with no API call; locally they are lines of the unit's or the control plane's log file.
 *
 * Powertools adds a `service` dimension to every metric by default; it is cleared here, so each
 * metric carries exactly the dimensions the table gives it (what the dashboard and alarms query).
 * Counts of one metric and dimension set are summed per flush; other values stay separate samples.
 */
import { Metrics as PowertoolsMetrics, MetricUnit } from '@aws-lambda-powertools/metrics';

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];
import type { MetricDef, MetricsSink } from '../ports/telemetry';
import { METRIC_NAMESPACE } from './metric-names';

/**
 * Samples of one metric per line: EMF allows 100, and Powertools publishes to stdout by itself
 * once a metric holds 100, so a line takes 99.
 */
const MAX_VALUES = 99;

interface Group {
  dimensions: [string, string][];
  values: Map<string, { metric: MetricDef; values: number[] }>;
}

export interface EmfMetricsOptions {
  namespace?: string;
  /** Where lines go (default: stdout, where Lambda's CloudWatch Logs agent reads EMF). */
  write?: (line: string) => void;
  /** Default: POWERTOOLS_METRICS_DISABLED=true turns publishing off, as for Powertools itself. */
  disabled?: boolean;
  /**
   * Publish each value at once, one line each (a long-lived process with no natural flush point:
   * the local control plane). Default: values wait for `flush`.
   */
  immediate?: boolean;
}

export class EmfMetrics implements MetricsSink {
  private readonly powertools: PowertoolsMetrics;
  private readonly groups = new Map<string, Group>();
  private readonly write: (line: string) => void;
  private readonly disabled: boolean;
  private readonly immediate: boolean;

  constructor(options: EmfMetricsOptions = {}) {
    this.powertools = new PowertoolsMetrics({ namespace: options.namespace ?? METRIC_NAMESPACE });
    this.powertools.clearDefaultDimensions();
    this.write = options.write ?? ((line) => process.stdout.write(`${line}\n`));
    this.disabled = options.disabled ?? process.env.POWERTOOLS_METRICS_DISABLED?.toLowerCase() === 'true';
    this.immediate = options.immediate ?? false;
  }

  add(metric: MetricDef, value: number, dimensions: Readonly<Record<string, string>>): void {
    const keys = Object.keys(dimensions);
    if (keys.length !== metric.dimensions.length || !metric.dimensions.every((d) => typeof dimensions[d] === 'string' && dimensions[d] !== '')) {
      throw new Error(`metric ${metric.name} takes the dimensions ${metric.dimensions.join(', ')}, got ${JSON.stringify(dimensions)}`);
    }
    if (!Number.isFinite(value)) throw new Error(`metric ${metric.name}: value must be a finite number, got ${value}`);
    const pairs = metric.dimensions.map((d) => [d, dimensions[d]!] as [string, string]);
    const key = JSON.stringify(pairs);
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = { dimensions: pairs, values: new Map() }));
    let entry = group.values.get(metric.name);
    if (!entry) group.values.set(metric.name, (entry = { metric, values: [] }));
    if (metric.unit === 'Count' && entry.values.length > 0) entry.values[0]! += value;
    else entry.values.push(value);
    if (this.immediate) this.flush();
  }

  flush(): void {
    const groups = [...this.groups.values()];
    this.groups.clear();
    if (this.disabled) return;
    for (const group of groups) {
      const entries = [...group.values.values()];
      for (let offset = 0; entries.some((e) => e.values.length > offset); offset += MAX_VALUES) {
        for (const [name, value] of group.dimensions) this.powertools.addDimension(name, value);
        for (const { metric, values } of entries) {
          for (const v of values.slice(offset, offset + MAX_VALUES)) this.powertools.addMetric(metric.name, metric.unit as Unit, v);
        }
        const line = JSON.stringify(this.powertools.serializeMetrics());
        this.powertools.clearMetrics();
        this.powertools.clearDimensions();
        this.write(line);
      }
    }
  }
}
